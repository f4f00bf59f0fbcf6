/*
 * Unit tests for the web front's helpers, through web.h and web_page.h:
 * routing, form parsing (hostile input included), HTML and JSON escaping,
 * CSRF tokens, and the block that hands out a URL. The pages themselves are
 * tested in a real browser (tests/integration/web.test.mjs).
 */
#include "activity.h"
#include "web.h"

#include <sodium.h>

#include "test.h"
#include "web_page.h"

static struct config cfg;

static struct web *new_web(void)
{
    struct web *w = NULL;
    ASSERT_INT_EQ(web_create(&cfg, NULL, NULL, &w), TM_OK);
    ASSERT_NOT_NULL(w);
    return w;
}

static void test_route(void)
{
    char token[STORE_TOKEN_LEN + 1] = "";
    const char *t = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    char path[128];

    ASSERT_INT_EQ(web_route("/", token), WEB_SIGNUP);
    ASSERT_INT_EQ(web_route("/signup", token), WEB_SIGNUP);
    ASSERT_INT_EQ(web_route("/assets/app.js", token), WEB_ASSET);
    ASSERT_INT_EQ(web_route("/mcp", token), WEB_NONE);
    ASSERT_INT_EQ(web_route("/healthz", token), WEB_NONE);
    snprintf(path, sizeof(path), "/u/%s/", t);
    ASSERT_INT_EQ(web_route(path, token), WEB_DASHBOARD);
    ASSERT_STR_EQ(token, t);
    snprintf(path, sizeof(path), "/u/%s/rotate", t);
    ASSERT_INT_EQ(web_route(path, token), WEB_DASHBOARD);
    snprintf(path, sizeof(path), "/u/%s/revoke", t);
    ASSERT_INT_EQ(web_route(path, token), WEB_DASHBOARD);
    /* The MCP endpoints stay http.c's. */
    snprintf(path, sizeof(path), "/u/%s/mcp", t);
    ASSERT_INT_EQ(web_route(path, token), WEB_NONE);
    snprintf(path, sizeof(path), "/u/%s/sse", t);
    ASSERT_INT_EQ(web_route(path, token), WEB_NONE);
    snprintf(path, sizeof(path), "/u/%s", t);
    ASSERT_INT_EQ(web_route(path, token), WEB_NONE);
    ASSERT_INT_EQ(web_route("/u/short/", token), WEB_NONE);
    snprintf(path, sizeof(path), "/u/%sA/", t);
    ASSERT_INT_EQ(web_route(path, token), WEB_NONE);
}

static void test_form(void)
{
    struct web_form f;
    static const char body[] = "label=my+laptop&db_url=libsql%3A%2F%2Fa-b.turso.io&db_token="
                               "ey%2BJ%2F%3D&empty=&read_only=1";

    ASSERT_INT_EQ(web_form_parse(&f, body, strlen(body)), TM_OK);
    ASSERT_STR_EQ(web_form_get(&f, "label"), "my laptop");
    ASSERT_STR_EQ(web_form_get(&f, "db_url"), "libsql://a-b.turso.io");
    ASSERT_STR_EQ(web_form_get(&f, "db_token"), "ey+J/=");
    ASSERT_STR_EQ(web_form_get(&f, "empty"), "");
    ASSERT_STR_EQ(web_form_get(&f, "read_only"), "1");
    ASSERT_NULL(web_form_get(&f, "missing"));
    web_form_cleanup(&f);
    web_form_cleanup(&f); /* twice is fine */

    /* Empty, stray ampersands. */
    ASSERT_INT_EQ(web_form_parse(&f, "", 0), TM_OK);
    ASSERT_INT_EQ(f.n, 0);
    web_form_cleanup(&f);
    ASSERT_INT_EQ(web_form_parse(&f, "&&a=1&&", 7), TM_OK);
    ASSERT_STR_EQ(web_form_get(&f, "a"), "1");
    web_form_cleanup(&f);

    /* Hostile or ambiguous input is refused, never half read. */
    static const char *const bad[] = {
        "a=1&a=2", /* a repeated field: which one counts? */
        "a=%zz",   "a=%4", "a=%00", "noequals", "=value", "a=1&b",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (web_form_parse(&f, bad[i], strlen(bad[i])) != TM_ERR_INVALID)
            TEST_FAIL("form %zu (%s) was accepted", i, bad[i]);
        ASSERT_NULL(f.buf);
    }
    ASSERT_INT_EQ(web_form_parse(&f, "a=b\0c", 5), TM_ERR_INVALID);
    char many[WEB_FORM_MAX_FIELDS * 8 + 16] = "";
    for (int i = 0; i <= WEB_FORM_MAX_FIELDS; i++) {
        char one[16];
        snprintf(one, sizeof(one), "%sf%d=1", i ? "&" : "", i);
        strcat(many, one);
    }
    ASSERT_INT_EQ(web_form_parse(&f, many, strlen(many)), TM_ERR_INVALID);
    char *big = malloc(WEB_MAX_FORM_BYTES + 2);
    ASSERT_NOT_NULL(big);
    memset(big, 'a', WEB_MAX_FORM_BYTES + 1);
    big[0] = 'x';
    big[1] = '=';
    ASSERT_INT_EQ(web_form_parse(&f, big, WEB_MAX_FORM_BYTES + 1), TM_ERR_TOO_LARGE);
    free(big);
}

static void test_escaping(void)
{
    struct buf b = {0};
    web_buf_html(&b, "<script>alert(\"x\" & 'y')</script>");
    ASSERT_STR_EQ(b.data, "&lt;script&gt;alert(&quot;x&quot; &amp; &#39;y&#39;)&lt;/script&gt;");
    buf_cleanup(&b);
    ASSERT_NULL(b.data);

    web_buf_json_str(&b, "a\"b\\c\n</script>");
    ASSERT_STR_EQ(b.data, "\"a\\\"b\\\\c\\u000a\\u003c/script\\u003e\"");
    buf_cleanup(&b);

    /* Growing past the first block keeps everything, formatted or not. */
    for (int i = 0; i < 2000; i++)
        buf_addf(&b, "%04d,", i);
    ASSERT_INT_EQ(b.len, 2000 * 5);
    ASSERT(strncmp(b.data + 5 * 1999, "1999,", 5) == 0);
    ASSERT(!b.is_failed);
    buf_cleanup(&b);
}

static void test_csrf(void)
{
    struct web *w = new_web();
    struct web *other = new_web();
    struct web_reply reply = {0};
    struct web_request req = {.method = "POST", .path = "/signup"};
    char token[WEB_CSRF_TOKEN_LEN + 1], again[WEB_CSRF_TOKEN_LEN + 1];
    char cookie[WEB_CSRF_NONCE_LEN + 1];

    /* No cookie yet: one is set, SameSite=Strict and HttpOnly. */
    web_csrf_issue(w, &req, &reply, token);
    ASSERT_INT_EQ(strlen(token), WEB_CSRF_TOKEN_LEN);
    ASSERT(strncmp(reply.set_cookie, "tm_csrf=", 8) == 0);
    ASSERT_NOT_NULL(strstr(reply.set_cookie, "SameSite=Strict"));
    ASSERT_NOT_NULL(strstr(reply.set_cookie, "HttpOnly"));
    ASSERT_NULL(strstr(reply.set_cookie, "Secure")); /* plain http here */
    memcpy(cookie, reply.set_cookie + 8, WEB_CSRF_NONCE_LEN);
    cookie[WEB_CSRF_NONCE_LEN] = '\0';

    /* The cookie and its token go together; nothing else does. */
    req.csrf_cookie = cookie;
    ASSERT(web_csrf_ok(w, &req, token));
    ASSERT(!web_csrf_ok(other, &req, token)); /* another process's key */
    ASSERT(!web_csrf_ok(w, &req, NULL));
    ASSERT(!web_csrf_ok(w, &req, ""));
    char flipped[WEB_CSRF_TOKEN_LEN + 1];
    memcpy(flipped, token, sizeof(flipped));
    flipped[5] = flipped[5] == 'A' ? 'B' : 'A';
    ASSERT(!web_csrf_ok(w, &req, flipped));
    req.csrf_cookie = NULL;
    ASSERT(!web_csrf_ok(w, &req, token));
    req.csrf_cookie = "not-a-nonce";
    ASSERT(!web_csrf_ok(w, &req, token));

    /* With a cookie already there, it is reused (two tabs keep working). */
    req.csrf_cookie = cookie;
    memset(&reply, 0, sizeof(reply));
    web_csrf_issue(w, &req, &reply, again);
    ASSERT_STR_EQ(reply.set_cookie, "");
    ASSERT_STR_EQ(again, token);

    /* A browser saying the request came from another site is refused. */
    req.fetch_site = "cross-site";
    ASSERT(!web_csrf_ok(w, &req, token));
    req.fetch_site = "same-site";
    ASSERT(!web_csrf_ok(w, &req, token));
    req.fetch_site = "same-origin";
    ASSERT(web_csrf_ok(w, &req, token));

    web_destroy(&w);
    web_destroy(&other);
    ASSERT_NULL(w);
    web_destroy(NULL);
}

static void test_render_url(void)
{
    struct buf b = {0};
    const char *t = "Zm9vYmFyZm9vYmFyZm9vYmFyZm9vYmFyZm9vYmFyZm9";

    web_render_url(&b, "https://mcp.example.com", t);
    ASSERT(!b.is_failed);
    ASSERT_NOT_NULL(strstr(b.data, "id=\"mcp-url\">https://mcp.example.com/u/"));
    ASSERT_NOT_NULL(strstr(b.data, "&quot;mcp-remote&quot;, &quot;https://mcp.example.com/u/"));
    ASSERT_NOT_NULL(strstr(b.data, "&quot;url&quot;: &quot;https://mcp.example.com/u/"));
    ASSERT_NOT_NULL(strstr(b.data, "curl -sS &#39;https://mcp.example.com/u/"));
    ASSERT_NOT_NULL(strstr(b.data, "href=\"/u/Zm9vYmFyZm9vYmFyZm9vYmFyZm9vYmFyZm9vYmFyZm9/\""));
    buf_cleanup(&b);
}

static void test_base(void)
{
    struct web *w = new_web();
    struct web_request req = {.host = "127.0.0.1:4321"};
    char base[WEB_BASE_MAX];

    web_base(w, &req, base);
    ASSERT_STR_EQ(base, "http://127.0.0.1:4321");
    /* Anything odd in Host falls back to the configured address. */
    req.host = "evil.example/\"><script>";
    web_base(w, &req, base);
    ASSERT_STR_EQ(base, "http://127.0.0.1:8787");
    web_destroy(&w);

    ASSERT_INT_EQ(config_set(&cfg, "public_url", "https://mcp.example.com/", NULL, 0), TM_OK);
    w = new_web();
    req.host = "127.0.0.1:4321";
    web_base(w, &req, base);
    ASSERT_STR_EQ(base, "https://mcp.example.com");
    struct web_reply reply = {0};
    char token[WEB_CSRF_TOKEN_LEN + 1];
    web_csrf_issue(w, &req, &reply, token);
    ASSERT_NOT_NULL(strstr(reply.set_cookie, "; Secure"));
    web_destroy(&w);
}

static void count_entry(const struct store_activity_entry *e, void *ctx)
{
    int *n = ctx;
    ASSERT_STR_EQ(e->tool, "turso_query");
    (*n)++;
}

/* The hook mcp.c calls when a tool call finishes lands in the user's activity. */
static void test_note_activity(void)
{
    char dir[] = "/tmp/tm-test-web-XXXXXX";
    char data[64];
    struct store *s = NULL;
    struct web *w = NULL;
    struct creds c = {0};
    char token[STORE_TOKEN_LEN + 1], id[STORE_ID_LEN + 1];
    int n = 0;

    ASSERT_NOT_NULL(mkdtemp(dir));
    snprintf(data, sizeof(data), "%s/data", dir);
    ASSERT_INT_EQ(store_open(data, NULL, &s, NULL), TM_OK);
    c.label = strdup("hooked");
    ASSERT_NOT_NULL(c.label);
    ASSERT_INT_EQ(store_add(s, &c, token, id), TM_OK);
    creds_cleanup(&c);

    web_note_activity(id, "turso_query", "orders", "ok"); /* before web_create: dropped */
    ASSERT_INT_EQ(web_create(&cfg, s, NULL, &w), TM_OK);
    web_note_activity(id, "turso_query", "orders", "ok");
    web_note_activity(id, "turso_query", NULL, "error");
    web_note_activity(id, "turso_query", "bad name; DROP", "ok"); /* not a name: dropped */
    web_note_activity("0123456789abcdef", "turso_query", NULL, "ok");
    web_note_activity(NULL, NULL, NULL, NULL);
    /* Entries are queued off the calling thread; a reader flushes before it reads. */
    activity_flush();
    ASSERT_INT_EQ(store_activity(s, id, count_entry, &n), TM_OK);
    ASSERT_INT_EQ(n, 2);
    web_destroy(&w);
    web_note_activity(id, "turso_query", "orders", "ok"); /* after web_destroy: dropped */
    n = 0;
    ASSERT_INT_EQ(store_activity(s, id, count_entry, &n), TM_OK);
    ASSERT_INT_EQ(n, 2);
    store_close(&s);
    sodium_memzero(token, sizeof(token));
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    ASSERT_INT_EQ(system(cmd), 0);
}

int main(void)
{
    if (sodium_init() < 0)
        TEST_FAIL("sodium_init failed");
    ASSERT_INT_EQ(config_init(&cfg), TM_OK);

    RUN(test_route);
    RUN(test_form);
    RUN(test_escaping);
    RUN(test_csrf);
    RUN(test_render_url);
    RUN(test_base);
    RUN(test_note_activity);

    config_cleanup(&cfg);
    TEST_DONE();
}
