/*
 * The web front's common part: routing among its pages, the static assets,
 * replies with their security headers, CSRF tokens, form parsing, HTML
 * escaping and the block that hands a new URL over. The pages themselves
 * are signup.c and dashboard.c. Runs on libmicrohttpd's threads.
 */
#include "web.h"

#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "activity.h"
#include "log.h"
#include "web_assets.h"
#include "web_page.h"

/*
 * No inline script or style at all, so the policy needs no hash or nonce:
 * the page's one script and stylesheet come from our own origin. Forms may
 * only post to us, nothing may frame the page, and no Referer ever leaves
 * (the dashboard's path is the secret).
 */
#define WEB_CSP                                                                                    \
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src "        \
    "'self'; "                                                                                     \
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

enum tm_err web_create(const struct config *cfg, struct store *store,
                       struct turso_transport *transport, struct web **out)
{
    struct web *w = calloc(1, sizeof(*w));
    if (!w)
        return TM_ERR_NOMEM;
    w->cfg = cfg;
    w->store = store;
    w->transport = transport;
    if (cfg->public_url && *cfg->public_url) {
        w->public_base = config_public_base(cfg);
        if (!w->public_base) {
            free(w);
            return TM_ERR_NOMEM;
        }
        w->is_https = strncmp(w->public_base, "https://", 8) == 0;
    }
    randombytes_buf(w->csrf_key, sizeof(w->csrf_key));
    atomic_init(&w->n_checks, 0);
    if (activity_start(store) != TM_OK) {
        free(w->public_base);
        free(w);
        return TM_ERR_NOMEM;
    }
    *out = w;
    return TM_OK;
}

void web_destroy(struct web **wp)
{
    if (!wp || !*wp)
        return;
    struct web *w = *wp;
    activity_stop();
    free(w->public_base);
    sodium_memzero(w, sizeof(*w));
    free(w);
    *wp = NULL;
}

void web_note_activity(const char *user_id, const char *tool, const char *database,
                       const char *outcome)
{
    activity_note(user_id, tool, database, outcome);
}

enum web_page web_route(const char *path, char token_out[STORE_TOKEN_LEN + 1])
{
    if (strcmp(path, "/") == 0 || strcmp(path, "/signup") == 0)
        return WEB_SIGNUP;
    if (strncmp(path, "/assets/", 8) == 0)
        return WEB_ASSET;
    if (strncmp(path, "/u/", 3) != 0)
        return WEB_NONE;
    const char *token = path + 3;
    size_t len = strcspn(token, "/");
    const char *rest = token + len;
    if (len != STORE_TOKEN_LEN ||
        (strcmp(rest, "/") != 0 && strcmp(rest, "/rotate") != 0 && strcmp(rest, "/revoke") != 0))
        return WEB_NONE;
    memcpy(token_out, token, len);
    token_out[len] = '\0';
    return WEB_DASHBOARD;
}

static void serve_asset(const struct web_request *req, struct web_reply *reply)
{
    static const struct {
        const char *path;
        const char *type;
        const char *body;
    } assets[] = {
        {"/assets/app.css", "text/css; charset=utf-8", web_asset_app_css},
        {"/assets/app.js", "text/javascript; charset=utf-8", web_asset_app_js},
    };
    if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
        web_reply_text(reply, 405, "Method Not Allowed\n");
        return;
    }
    for (size_t i = 0; i < sizeof(assets) / sizeof(assets[0]); i++) {
        if (strcmp(req->path, assets[i].path) != 0)
            continue;
        reply->status = 200;
        reply->body = strdup(assets[i].body);
        reply->body_len = reply->body ? strlen(reply->body) : 0;
        reply->content_type = assets[i].type;
        reply->cache = "public, max-age=300";
        if (!reply->body)
            web_reply_text(reply, 500, "Internal Server Error\n");
        return;
    }
    web_reply_text(reply, 404, "Not Found");
}

enum web_status web_handle(struct web *w, const struct web_request *req, struct web_reply *reply,
                           struct web_call **call_out, web_wake_fn wake, void *ctx)
{
    char token[STORE_TOKEN_LEN + 1] = "";
    enum web_status st = WEB_DONE;

    memset(reply, 0, sizeof(*reply));
    *call_out = NULL;
    switch (web_route(req->path, token)) {
    case WEB_SIGNUP:
        if (!w->cfg->is_signup_enabled) {
            web_reply_text(reply, 404, "Not Found");
            break;
        }
        st = signup_handle(w, req, reply, call_out, wake, ctx);
        break;
    case WEB_ASSET:
        serve_asset(req, reply);
        break;
    case WEB_DASHBOARD:
        dashboard_handle(w, req, reply);
        break;
    case WEB_NONE:
        web_reply_text(reply, 404, "Not Found");
        break;
    }
    sodium_memzero(token, sizeof(token));
    return st;
}

void web_resume(struct web *w, struct web_call **call, struct web_reply *reply)
{
    memset(reply, 0, sizeof(*reply));
    if (!call || !*call) {
        web_reply_text(reply, 500, "Internal Server Error\n");
        return;
    }
    signup_resume(w, *call, reply);
    web_call_destroy(call);
}

void web_call_destroy(struct web_call **call)
{
    if (!call || !*call)
        return;
    struct web_call *c = *call;
    creds_cleanup(&c->creds);
    sodium_memzero(c, sizeof(*c));
    free(c);
    *call = NULL;
}

/* Wipes a body that held a URL token, when libmicrohttpd lets go of it. */
static void free_secret_body(void *p)
{
    if (!p)
        return;
    sodium_memzero(p, strlen(p));
    free(p);
}

enum MHD_Result web_send(struct MHD_Connection *conn, struct web_reply *reply, int *status_out)
{
    struct MHD_Response *resp;
    char *body = reply->body;
    size_t len = reply->body_len;

    if (!body) {
        resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    } else if (reply->is_secret) {
        resp = MHD_create_response_from_buffer_with_free_callback(len, body, free_secret_body);
    } else {
        resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    }
    if (!resp) {
        web_reply_cleanup(reply);
        return MHD_NO;
    }
    reply->body = NULL;
    if (reply->content_type)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, reply->content_type);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL,
                            reply->cache ? reply->cache : "no-store");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
    if (reply->status == 405)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "GET, POST");
    if (reply->is_page) {
        MHD_add_response_header(resp, "Content-Security-Policy", WEB_CSP);
        MHD_add_response_header(resp, "X-Frame-Options", "DENY");
        MHD_add_response_header(resp, "Cross-Origin-Opener-Policy", "same-origin");
        MHD_add_response_header(resp, "Cross-Origin-Resource-Policy", "same-origin");
    }
    if (reply->set_cookie[0])
        MHD_add_response_header(resp, MHD_HTTP_HEADER_SET_COOKIE, reply->set_cookie);
    *status_out = reply->status;
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned int)reply->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

void web_reply_cleanup(struct web_reply *reply)
{
    if (!reply)
        return;
    if (reply->body && reply->is_secret)
        sodium_memzero(reply->body, reply->body_len);
    free(reply->body);
    reply->body = NULL;
}

/* ---- text ---------------------------------------------------------------- */

void web_buf_html(struct buf *b, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '&':
            buf_adds(b, "&amp;");
            break;
        case '<':
            buf_adds(b, "&lt;");
            break;
        case '>':
            buf_adds(b, "&gt;");
            break;
        case '"':
            buf_adds(b, "&quot;");
            break;
        case '\'':
            buf_adds(b, "&#39;");
            break;
        default:
            buf_add(b, s, 1);
        }
    }
}

void web_buf_json_str(struct buf *b, const char *s)
{
    buf_adds(b, "\"");
    for (; s && *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') {
            char esc[2] = {'\\', (char)ch};
            buf_add(b, esc, 2);
        } else if (ch < 0x20 || ch == '<' || ch == '>' || ch == '&') {
            buf_addf(b, "\\u%04x", ch);
        } else {
            buf_add(b, s, 1);
        }
    }
    buf_adds(b, "\"");
}

void web_page_begin(struct buf *b, const char *title)
{
    buf_adds(b, "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
                "<meta name=\"referrer\" content=\"no-referrer\">\n<title>");
    web_buf_html(b, title);
    buf_adds(b, "</title>\n<link rel=\"stylesheet\" href=\"/assets/app.css\">\n"
                "<script src=\"/assets/app.js\" defer></script>\n</head>\n<body>\n<main>\n");
}

void web_page_end(struct buf *b)
{
    buf_adds(b, "<footer><p>turso-mcp " TM_VERSION
                ": your Turso databases for AI clients over MCP.</p></footer>\n"
                "</main>\n</body>\n</html>\n");
}

static void reply_from_buf(struct web_reply *reply, int status, struct buf *b, const char *type,
                           bool is_secret)
{
    if (b->is_failed || !b->data) {
        buf_cleanup(b);
        web_reply_text(reply, 500, "Internal Server Error\n");
        return;
    }
    reply->status = status;
    reply->content_type = type;
    reply->is_secret = is_secret;
    /* The buffer may be larger than its text; MHD frees the pointer we give it. */
    reply->body = b->data;
    reply->body_len = b->len;
    memset(b, 0, sizeof(*b));
}

void web_reply_page(struct web_reply *reply, int status, struct buf *b, bool is_secret)
{
    reply_from_buf(reply, status, b, "text/html; charset=utf-8", is_secret);
    reply->is_page = true;
}

void web_reply_json(struct web_reply *reply, int status, struct buf *b, bool is_secret)
{
    reply_from_buf(reply, status, b, "application/json", is_secret);
}

void web_reply_text(struct web_reply *reply, int status, const char *text)
{
    web_reply_cleanup(reply);
    reply->status = status;
    reply->content_type = "text/plain; charset=utf-8";
    reply->is_secret = false;
    reply->is_page = false;
    reply->body = strdup(text);
    reply->body_len = reply->body ? strlen(reply->body) : 0;
}

/* ---- CSRF ------------------------------------------------------------------ */

static bool is_b64url_text(const char *s, size_t len)
{
    if (!s || strnlen(s, len + 1) != len)
        return false;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '_'))
            return false;
    }
    return true;
}

/* token = base64url(HMAC-SHA256(csrf_key, "tm-csrf:" || nonce text)). */
static void csrf_token_for(const struct web *w, const char *nonce,
                           char token_out[WEB_CSRF_TOKEN_LEN + 1])
{
    unsigned char mac[crypto_auth_hmacsha256_BYTES];
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, w->csrf_key, sizeof(w->csrf_key));
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)"tm-csrf:", 8);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)nonce, WEB_CSRF_NONCE_LEN);
    crypto_auth_hmacsha256_final(&st, mac);
    sodium_bin2base64(token_out, WEB_CSRF_TOKEN_LEN + 1, mac, sizeof(mac),
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(&st, sizeof(st));
}

void web_csrf_issue(struct web *w, const struct web_request *req, struct web_reply *reply,
                    char token_out[WEB_CSRF_TOKEN_LEN + 1])
{
    char nonce[WEB_CSRF_NONCE_LEN + 1];
    if (is_b64url_text(req->csrf_cookie, WEB_CSRF_NONCE_LEN)) {
        memcpy(nonce, req->csrf_cookie, WEB_CSRF_NONCE_LEN + 1);
    } else {
        unsigned char raw[16];
        randombytes_buf(raw, sizeof(raw));
        sodium_bin2base64(nonce, sizeof(nonce), raw, sizeof(raw),
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        snprintf(reply->set_cookie, sizeof(reply->set_cookie),
                 "tm_csrf=%s; Path=/; HttpOnly; SameSite=Strict%s", nonce,
                 w->is_https ? "; Secure" : "");
    }
    csrf_token_for(w, nonce, token_out);
}

bool web_csrf_ok(const struct web *w, const struct web_request *req, const char *form_token)
{
    char expected[WEB_CSRF_TOKEN_LEN + 1];
    /* A browser says where a request comes from; another site's page is refused outright. */
    if (req->fetch_site && strcmp(req->fetch_site, "same-origin") != 0 &&
        strcmp(req->fetch_site, "none") != 0)
        return false;
    if (!is_b64url_text(req->csrf_cookie, WEB_CSRF_NONCE_LEN) ||
        !is_b64url_text(form_token, WEB_CSRF_TOKEN_LEN))
        return false;
    csrf_token_for(w, req->csrf_cookie, expected);
    bool ok = sodium_memcmp(expected, form_token, WEB_CSRF_TOKEN_LEN) == 0;
    sodium_memzero(expected, sizeof(expected));
    return ok;
}

void web_render_csrf(struct buf *b, const char *token)
{
    buf_adds(b, "<input type=\"hidden\" name=\"csrf\" value=\"");
    web_buf_html(b, token);
    buf_adds(b, "\">\n");
}

/* ---- forms ----------------------------------------------------------------- */

static int hex_value(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* Decodes one name or value in place (+ is a space, %XX a byte); false on a bad escape or NUL. */
static bool form_decode(char *s)
{
    char *out = s;
    for (char *in = s; *in; in++) {
        if (*in == '+') {
            *out++ = ' ';
        } else if (*in == '%') {
            int hi = hex_value(in[1]);
            int lo = hi >= 0 ? hex_value(in[2]) : -1;
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                return false;
            *out++ = (char)(hi * 16 + lo);
            in += 2;
        } else {
            *out++ = *in;
        }
    }
    *out = '\0';
    return true;
}

enum tm_err web_form_parse(struct web_form *f, const char *body, size_t len)
{
    memset(f, 0, sizeof(*f));
    if (len > WEB_MAX_FORM_BYTES)
        return TM_ERR_TOO_LARGE;
    if (body && memchr(body, '\0', len))
        return TM_ERR_INVALID;
    f->buf = malloc(len + 1);
    if (!f->buf)
        return TM_ERR_NOMEM;
    f->buf_len = len + 1;
    if (len)
        memcpy(f->buf, body, len);
    f->buf[len] = '\0';
    char *p = f->buf;
    while (*p) {
        char *end = p + strcspn(p, "&");
        bool is_last = *end == '\0';
        *end = '\0';
        if (*p) {
            char *eq = strchr(p, '=');
            if (!eq || f->n == WEB_FORM_MAX_FIELDS)
                goto bad;
            *eq = '\0';
            if (!form_decode(p) || !form_decode(eq + 1) || !*p || web_form_get(f, p))
                goto bad;
            f->names[f->n] = p;
            f->values[f->n] = eq + 1;
            f->n++;
        }
        if (is_last)
            break;
        p = end + 1;
    }
    return TM_OK;
bad:
    web_form_cleanup(f);
    return TM_ERR_INVALID;
}

const char *web_form_get(const struct web_form *f, const char *name)
{
    for (size_t i = 0; i < f->n; i++)
        if (strcmp(f->names[i], name) == 0)
            return f->values[i];
    return NULL;
}

void web_form_cleanup(struct web_form *f)
{
    if (f->buf) {
        sodium_memzero(f->buf, f->buf_len);
        free(f->buf);
    }
    memset(f, 0, sizeof(*f));
}

bool web_is_form(const struct web_request *req)
{
    return req->content_type &&
           strncasecmp(req->content_type, "application/x-www-form-urlencoded", 33) == 0;
}

bool web_wants_json(const struct web_request *req)
{
    return req->accept && strstr(req->accept, "application/json") &&
           !strstr(req->accept, "text/html");
}

/* ---- the URL and its setup ----------------------------------------------------- */

/* One copyable block: a heading, an explanation, the text, and a copy button. */
static void render_snippet(struct buf *b, const char *id, const char *heading, const char *explain,
                           const char *text)
{
    buf_addf(b, "<section class=\"snippet\">\n<h3>%s</h3>\n<p>%s</p>\n", heading, explain);
    buf_addf(b, "<pre id=\"%s\">", id);
    web_buf_html(b, text);
    buf_addf(b,
             "</pre>\n<button type=\"button\" class=\"copy\" data-copy=\"%s\">Copy</button>\n"
             "</section>\n",
             id);
}

void web_base(const struct web *w, const struct web_request *req, char out[WEB_BASE_MAX])
{
    if (w->public_base) {
        snprintf(out, WEB_BASE_MAX, "%s", w->public_base);
        return;
    }
    if (req->host && *req->host && strlen(req->host) < WEB_BASE_MAX - 8 &&
        strcspn(req->host, "/\\\"'<> ") == strlen(req->host)) {
        snprintf(out, WEB_BASE_MAX, "http://%s", req->host);
        return;
    }
    char *base = config_public_base(w->cfg);
    snprintf(out, WEB_BASE_MAX, "%s", base ? base : "");
    free(base);
}

void web_render_url(struct buf *b, const char *base, const char *token)
{
    struct buf url = {0}, text = {0};

    buf_addf(&url, "%s/u/%s/mcp", base, token);
    buf_adds(b, "<section class=\"url\">\n<h2>Your MCP URL</h2>\n"
                "<p class=\"warn\">Shown only this once: copy it now. Treat it like a "
                "password; whoever has it can use your database with its rights.</p>\n"
                "<div class=\"secret\"><code id=\"mcp-url\">");
    web_buf_html(b, url.data ? url.data : "");
    buf_adds(b, "</code>\n<button type=\"button\" class=\"copy\" data-copy=\"mcp-url\">"
                "Copy</button></div>\n</section>\n<section class=\"setup\">\n"
                "<h2>Add it to your client</h2>\n");
    render_snippet(b, "snip-connector", "Claude (claude.ai, Desktop, mobile)",
                   "Settings &rarr; Connectors &rarr; Add custom connector, and paste the URL. "
                   "Claude connects from Anthropic's servers, so the URL must be reachable over "
                   "public HTTPS.",
                   url.data ? url.data : "");
    buf_adds(&text, "{\n  \"mcpServers\": {\n    \"turso\": {\n      \"command\": \"npx\",\n"
                    "      \"args\": [\"-y\", \"mcp-remote\", ");
    web_buf_json_str(&text, url.data);
    buf_adds(&text, "]\n    }\n  }\n}");
    render_snippet(b, "snip-claude-desktop", "Claude Desktop through mcp-remote",
                   "In <code>claude_desktop_config.json</code>:", text.data ? text.data : "");
    buf_cleanup(&text);
    buf_adds(&text, "{\n  \"mcpServers\": {\n    \"turso\": {\n      \"url\": ");
    web_buf_json_str(&text, url.data);
    buf_adds(&text, "\n    }\n  }\n}");
    render_snippet(b, "snip-cursor", "Cursor",
                   "In <code>~/.cursor/mcp.json</code> (or <code>.cursor/mcp.json</code> in a "
                   "project):",
                   text.data ? text.data : "");
    buf_cleanup(&text);
    buf_addf(&text,
             "curl -sS '%s' -H 'Content-Type: application/json' -H 'Accept: "
             "application/json, text/event-stream' -d "
             "'{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{"
             "\"protocolVersion\":\"2025-06-18\",\"capabilities\":{},\"clientInfo\":{"
             "\"name\":\"curl\",\"version\":\"0\"}}}'",
             url.data ? url.data : "");
    render_snippet(b, "snip-curl", "Try it with curl",
                   "An MCP initialize request:", text.data ? text.data : "");
    buf_cleanup(&text);
    buf_adds(b, "</section>\n<p class=\"manage\">See what this URL can reach and its recent "
                "activity, rotate it or revoke it: <a id=\"dashboard-link\" href=\"/u/");
    web_buf_html(b, token);
    buf_adds(b, "/\">this URL's page</a> (keep it as private as the URL).</p>\n");
    if (url.is_failed || text.is_failed)
        b->is_failed = true;
    buf_cleanup(&url);
}
