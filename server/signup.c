/*
 * The signup page: GET / shows the form; POST /signup checks the form's
 * credentials with Turso (through credcheck, on the transport: the request
 * is suspended meanwhile, never holding an MHD thread), then seals them in
 * the store and shows the new URL once. Errors come back on the page with
 * the non-secret fields kept; secret fields are never echoed or logged.
 * Only form bodies are taken: a JSON body would pass the tokens through
 * jansson, which frees without wiping.
 */
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hrana.h"
#include "log.h"
#include "store.h"
#include "web_page.h"

#define LABEL_MAX  64
#define DB_URL_MAX 512
#define TOKEN_MAX  8192
#define SLUG_MAX   64

/* What the form held that may be shown again: never a token. */
struct form_echo {
    const char *label;
    const char *db_url;
    const char *org;
    const char *default_db;
    bool is_read_only;
};

static void render_field(struct buf *b, const char *name, const char *label, const char *type,
                         const char *value, const char *placeholder, const char *help,
                         bool is_required)
{
    buf_addf(b, "<label for=\"%s\">%s</label>\n<input id=\"%s\" name=\"%s\" type=\"%s\"", name,
             label, name, name, type);
    if (value && *value) {
        buf_adds(b, " value=\"");
        web_buf_html(b, value);
        buf_adds(b, "\"");
    }
    if (placeholder)
        buf_addf(b, " placeholder=\"%s\"", placeholder);
    if (strcmp(type, "password") == 0)
        buf_adds(b, " autocomplete=\"off\" spellcheck=\"false\"");
    if (is_required)
        buf_adds(b, " required");
    buf_adds(b, ">\n");
    if (help)
        buf_addf(b, "<p class=\"help\">%s</p>\n", help);
}

/* The whole form page, with an error above the form when there is one. */
static void render_form(struct buf *b, const char *csrf, const struct form_echo *echo,
                        const char *error)
{
    web_page_begin(b, "turso-mcp: connect your Turso database");
    buf_adds(b, "<h1>Connect Turso to your AI</h1>\n"
                "<p class=\"lead\">Paste a Turso key once and get one secret URL for Claude, "
                "Cursor or any MCP client. Your key is checked with Turso, then stored "
                "encrypted under a key only your URL opens.</p>\n");
    if (error) {
        buf_adds(b, "<div class=\"error\" id=\"error\" role=\"alert\">");
        web_buf_html(b, error);
        buf_adds(b, "</div>\n");
    }
    buf_adds(b, "<form method=\"post\" action=\"/signup\" id=\"signup\" autocomplete=\"off\">\n");
    web_render_csrf(b, csrf);
    buf_adds(b, "<fieldset>\n<legend>A database</legend>\n");
    render_field(b, "db_url", "Database URL", "text", echo ? echo->db_url : NULL,
                 "libsql://my-db-myorg.turso.io", "From <code>turso db show my-db --url</code>.",
                 false);
    render_field(b, "db_token", "Database token", "password", NULL, NULL,
                 "From <code>turso db tokens create my-db</code>.", false);
    buf_adds(b, "</fieldset>\n<fieldset>\n<legend>Or (and) a Platform API token</legend>\n");
    render_field(b, "org", "Organization", "text", echo ? echo->org : NULL, "my-org",
                 "Your organization's slug (<code>turso org list</code>).", false);
    render_field(b, "platform_token", "Platform API token", "password", NULL, NULL,
                 "From <code>turso auth api-tokens mint NAME</code>; lets the AI list and "
                 "manage databases.",
                 false);
    buf_adds(b, "</fieldset>\n<fieldset>\n<legend>This URL</legend>\n");
    render_field(b, "label", "Label", "text", echo ? echo->label : NULL, "laptop-claude",
                 "For you, to tell your URLs apart.", true);
    render_field(b, "default_db", "Default database (optional)", "text",
                 echo ? echo->default_db : NULL, "my-db", NULL, false);
    buf_addf(b,
             "<label class=\"check\"><input type=\"checkbox\" id=\"read_only\" "
             "name=\"read_only\" value=\"1\"%s> Read-only: this URL may only read</label>\n",
             echo && echo->is_read_only ? " checked" : "");
    buf_adds(b, "</fieldset>\n<button type=\"submit\" id=\"submit\">Check with Turso and "
                "create my URL</button>\n</form>\n");
    web_page_end(b);
}

static void reply_form(struct web *w, const struct web_request *req, struct web_reply *reply,
                       int status, const struct form_echo *echo, const char *error)
{
    char csrf[WEB_CSRF_TOKEN_LEN + 1];
    struct buf b = {0};

    web_csrf_issue(w, req, reply, csrf);
    if (web_wants_json(req) && error) {
        buf_adds(&b, "{\"error\":");
        web_buf_json_str(&b, error);
        buf_adds(&b, "}");
        web_reply_json(reply, status, &b, false);
        return;
    }
    render_form(&b, csrf, echo, error);
    web_reply_page(reply, status, &b, false);
}

/* ---- validation -------------------------------------------------------------- */

static bool is_label(const char *s)
{
    size_t len = s ? strnlen(s, LABEL_MAX + 1) : 0;
    if (len == 0 || len > LABEL_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return false;
    return true;
}

/* Token text: printable ASCII without spaces (JWTs and the like). */
static bool is_token(const char *s)
{
    size_t len = s ? strnlen(s, TOKEN_MAX + 1) : 0;
    if (len == 0 || len > TOKEN_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (s[i] <= 0x20 || s[i] >= 0x7f)
            return false;
    return true;
}

static bool is_slug(const char *s, bool allow_upper)
{
    size_t len = s ? strnlen(s, SLUG_MAX + 1) : 0;
    if (len == 0 || len > SLUG_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' ||
              (allow_upper && ((ch >= 'A' && ch <= 'Z') || ch == '_'))))
            return false;
    }
    return true;
}

/*
 * Whether the signup page may send a request to this database host. The
 * server reaches whatever URL a visitor types, so an open list would let
 * anyone aim it at hosts only it can see; `signup_allowed_db_hosts` says
 * where databases may live: "*", "*.suffix", a host, or host:port.
 */
static bool is_host_allowed(const char *list, const char *authority)
{
    const char *bracket = authority[0] == '[' ? strchr(authority, ']') : NULL;
    size_t host_len = bracket ? (size_t)(bracket - authority) + 1 : strcspn(authority, ":");
    const char *p = list;
    while (p && *p) {
        while (*p == ' ' || *p == ',')
            p++;
        size_t n = strcspn(p, ",");
        size_t m = n;
        while (m > 0 && p[m - 1] == ' ')
            m--;
        if (m == 1 && p[0] == '*')
            return true;
        if (m > 2 && p[0] == '*' && p[1] == '.') {
            size_t suffix = m - 1; /* ".turso.io" */
            if (host_len > suffix && strncasecmp(authority + host_len - suffix, p + 1, suffix) == 0)
                return true;
        } else if (m > 0) {
            if ((m == host_len && strncasecmp(authority, p, m) == 0) ||
                (m == strlen(authority) && strncasecmp(authority, p, m) == 0))
                return true;
        }
        p += n;
    }
    return false;
}

/* A form value, or NULL when absent or empty. */
static const char *field(const struct web_form *f, const char *name)
{
    const char *v = web_form_get(f, name);
    return v && *v ? v : NULL;
}

/*
 * Checks the form and fills *c (strings copied). Returns NULL, or what is
 * wrong in words for the page.
 */
static const char *read_form(const struct web *w, const struct web_form *f, struct creds *c,
                             struct form_echo *echo)
{
    const char *label = field(f, "label"), *db_url = field(f, "db_url");
    const char *db_token = field(f, "db_token"), *org = field(f, "org");
    const char *platform_token = field(f, "platform_token"), *default_db = field(f, "default_db");
    const char *ro = field(f, "read_only");
    char origin[DB_URL_MAX + 16];

    echo->label = label;
    echo->db_url = db_url;
    echo->org = org;
    echo->default_db = default_db;
    echo->is_read_only = ro && (strcmp(ro, "1") == 0 || strcmp(ro, "on") == 0 ||
                                strcmp(ro, "true") == 0 || strcmp(ro, "yes") == 0);
    if (!is_label(label))
        return "Give this URL a label of 1 to 64 characters.";
    if (!db_url && !platform_token)
        return "Give a database URL and its token, or a Platform API token and your "
               "organization (or both).";
    if (db_url) {
        if (strlen(db_url) > DB_URL_MAX || hrana_origin(db_url, origin, sizeof(origin)) != TM_OK)
            return "The database URL must look like libsql://my-db-myorg.turso.io (or "
                   "https://...).";
        if (!is_host_allowed(w->cfg->signup_allowed_db_hosts, strstr(origin, "://") + 3))
            return "This server does not connect to databases on that host.";
        if (!db_token)
            return "The database URL needs its database token.";
    }
    if (db_token && !is_token(db_token))
        return "The database token does not look like a token (no spaces, at most 8 KiB).";
    if (platform_token && !org)
        return "The Platform API token needs your organization's slug.";
    if (org && !platform_token)
        return "The organization needs a Platform API token.";
    if (org && !is_slug(org, false))
        return "The organization slug has lower-case letters, digits and dashes only.";
    if (platform_token && !is_token(platform_token))
        return "The Platform API token does not look like a token (no spaces, at most 8 KiB).";
    if (default_db && !is_slug(default_db, true))
        return "The default database name has letters, digits, dashes and underscores only.";

    memset(c, 0, sizeof(*c));
    c->is_read_only = echo->is_read_only;
    if (!(c->label = strdup(label)) || (db_url && !(c->db_url = strdup(db_url))) ||
        (db_token && !(c->db_token = strdup(db_token))) || (org && !(c->org = strdup(org))) ||
        (platform_token && !(c->platform_token = strdup(platform_token))) ||
        (default_db && !(c->default_db = strdup(default_db)))) {
        creds_cleanup(c);
        return "The server ran out of memory; try again.";
    }
    return NULL;
}

/* ---- the check ------------------------------------------------------------------ */

/* Runs on a transport callback thread: keep the verdict, wake the request. */
static void check_done(const struct credcheck_result *r, void *ctx)
{
    struct web_call *call = ctx;
    web_wake_fn wake = call->wake;
    void *wake_ctx = call->wake_ctx;

    call->result = *r;
    atomic_fetch_sub(&call->w->n_checks, 1);
    /* The call may be resumed and freed as soon as this runs: nothing after it. */
    wake(wake_ctx);
}

enum web_status signup_handle(struct web *w, const struct web_request *req, struct web_reply *reply,
                              struct web_call **call_out, web_wake_fn wake, void *ctx)
{
    struct web_form f = {0};
    struct form_echo echo = {0};
    struct web_call *call = NULL;
    const char *why;
    enum tm_err err;
    enum web_status st = WEB_DONE;

    if (strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0) {
        if (strcmp(req->path, "/") != 0) {
            web_reply_text(reply, 404, "Not Found");
            return WEB_DONE;
        }
        reply_form(w, req, reply, 200, NULL, NULL);
        return WEB_DONE;
    }
    if (strcmp(req->method, "POST") != 0) {
        web_reply_text(reply, 405, "Method Not Allowed\n");
        return WEB_DONE;
    }
    if (!web_is_form(req)) {
        web_reply_text(reply, 415,
                       "Send the form as application/x-www-form-urlencoded (JSON bodies are not "
                       "taken, so that tokens never pass through the JSON parser).\n");
        return WEB_DONE;
    }
    err = web_form_parse(&f, req->body, req->body_len);
    if (err == TM_ERR_TOO_LARGE) {
        web_reply_text(reply, 413, "The form is too large.\n");
        return WEB_DONE;
    }
    if (err != TM_OK) {
        reply_form(w, req, reply, 400, NULL, "The form could not be read; please try again.");
        return WEB_DONE;
    }
    if (!web_csrf_ok(w, req, web_form_get(&f, "csrf"))) {
        log_msg(LOG_INFO, "event=signup_refused rid=%lu reason=csrf", req->request_id);
        reply_form(w, req, reply, 403, NULL,
                   "This form has expired or did not come from this page. Nothing was saved; "
                   "please fill it in again.");
        goto out;
    }
    call = calloc(1, sizeof(*call));
    if (!call) {
        web_reply_text(reply, 500, "Internal Server Error\n");
        goto out;
    }
    why = read_form(w, &f, &call->creds, &echo);
    if (why) {
        log_msg(LOG_INFO, "event=signup_refused rid=%lu reason=form", req->request_id);
        reply_form(w, req, reply, 400, &echo, why);
        goto out;
    }
    int64_t n_users = 0;
    if (store_count_users(w->store, &n_users) != TM_OK || n_users >= w->cfg->max_users) {
        log_msg(LOG_WARN, "event=signup_refused rid=%lu reason=store_full users=%" PRId64,
                req->request_id, n_users);
        reply_form(w, req, reply, 503, &echo,
                   "This server cannot take another URL right now (its store is full). Nothing "
                   "was saved.");
        goto out;
    }
    if (atomic_fetch_add(&w->n_checks, 1) >= WEB_MAX_CHECKS) {
        atomic_fetch_sub(&w->n_checks, 1);
        reply_form(w, req, reply, 503, &echo,
                   "Too many signups are being checked right now; please try again in a moment.");
        goto out;
    }
    call->w = w;
    web_base(w, req, call->base);
    call->request_id = req->request_id;
    call->wants_json = web_wants_json(req);
    call->wake = wake;
    call->wake_ctx = ctx;
    web_csrf_issue(w, req, reply, call->csrf_token);
    memcpy(call->set_cookie, reply->set_cookie, sizeof(call->set_cookie));
    err = credcheck_start(w->transport, w->cfg->api_url, &call->creds, w->cfg->upstream_timeout_ms,
                          check_done, call);
    if (err != TM_OK) {
        atomic_fetch_sub(&w->n_checks, 1);
        reply_form(w, req, reply, 503, &echo,
                   "The server could not ask Turso just now; nothing was saved. Please try again.");
        goto out;
    }
    *call_out = call;
    call = NULL;
    st = WEB_PENDING;
out:
    web_call_destroy(&call);
    web_form_cleanup(&f);
    return st;
}

/* Turso's message, unless it somehow holds one of the secrets just typed. */
static const char *safe_message(const struct web_call *call)
{
    const char *m = call->result.message;
    if ((call->creds.db_token && strstr(m, call->creds.db_token)) ||
        (call->creds.platform_token && strstr(m, call->creds.platform_token)))
        return "(Turso's message is not shown because it repeats your token)";
    return m;
}

void signup_resume(struct web *w, struct web_call *call, struct web_reply *reply)
{
    struct form_echo echo = {.label = call->creds.label,
                             .db_url = call->creds.db_url,
                             .org = call->creds.org,
                             .default_db = call->creds.default_db,
                             .is_read_only = call->creds.is_read_only};
    char token[STORE_TOKEN_LEN + 1] = "";
    char id[STORE_ID_LEN + 1] = "";
    char error[768];
    struct buf b = {0};
    int status = 400;

    if (call->result.verdict != CREDCHECK_OK) {
        const char *lead = "";
        switch (call->result.verdict) {
        case CREDCHECK_REFUSED:
            lead = "Turso did not accept this key, so nothing was saved.";
            break;
        case CREDCHECK_UNREACHABLE:
            lead = "Turso could not be reached, so nothing was saved. Please try again in a "
                   "moment.";
            status = 502;
            break;
        default:
            lead = "Turso did not confirm these credentials, so nothing was saved.";
            break;
        }
        snprintf(error, sizeof(error), "%s %s", lead, safe_message(call));
        log_msg(LOG_INFO, "event=signup_refused rid=%lu reason=turso check=%s verdict=%d",
                call->request_id, call->result.what ? call->result.what : "-",
                (int)call->result.verdict);
        /* The form again, with the cookie the first half may have set. */
        memcpy(reply->set_cookie, call->set_cookie, sizeof(reply->set_cookie));
        if (call->wants_json) {
            buf_adds(&b, "{\"error\":");
            web_buf_json_str(&b, error);
            buf_adds(&b, "}");
            web_reply_json(reply, status, &b, false);
            return;
        }
        render_form(&b, call->csrf_token, &echo, error);
        web_reply_page(reply, status, &b, false);
        return;
    }

    enum tm_err err = store_add(w->store, &call->creds, token, id);
    if (err != TM_OK) {
        log_msg(LOG_ERROR, "event=signup_failed rid=%lu reason=\"%s\"", call->request_id,
                tm_err_message(err));
        memcpy(reply->set_cookie, call->set_cookie, sizeof(reply->set_cookie));
        render_form(&b, call->csrf_token, &echo,
                    "Turso accepted the key, but the server could not store your URL (its store "
                    "is full or failing). Nothing was saved.");
        web_reply_page(reply, 503, &b, false);
        return;
    }
    log_msg(LOG_INFO, "event=signup_added rid=%lu user=%s mode=%s", call->request_id, id,
            call->creds.is_read_only ? "read-only" : "read-write");
    if (call->wants_json) {
        buf_addf(&b, "{\"id\":\"%s\",\"url\":\"%s/u/%s/mcp\",\"dashboard\":\"%s/u/%s/\"}", id,
                 call->base, token, call->base, token);
        web_reply_json(reply, 200, &b, true);
    } else {
        web_page_begin(&b, "turso-mcp: your URL");
        buf_adds(&b, "<h1>Your URL is ready</h1>\n<p class=\"lead\">Turso accepted the key for "
                     "<strong>");
        web_buf_html(&b, call->creds.label);
        buf_addf(&b, "</strong> (%s).</p>\n",
                 call->creds.is_read_only ? "read-only" : "read-write");
        web_render_url(&b, call->base, token);
        web_page_end(&b);
        web_reply_page(reply, 200, &b, true);
    }
    memcpy(reply->set_cookie, call->set_cookie, sizeof(reply->set_cookie));
    sodium_memzero(token, sizeof(token));
}
