/*
 * A URL's own page, for whoever holds the URL: GET /u/<token>/ shows what it
 * can reach (label, database host, organization, default database, mode;
 * never a token) and its recent activity (tool, database, time, outcome);
 * POST /u/<token>/rotate gives it a new secret (the old one stops at once)
 * and POST /u/<token>/revoke deletes it. Unknown tokens get the same bare
 * 404 as the MCP endpoint. Only local store work: nothing here waits on Turso.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hrana.h"
#include "activity.h"
#include "log.h"
#include "store.h"
#include "web_page.h"

static void render_row(struct buf *b, const char *name, const char *value)
{
    buf_adds(b, "<tr><th scope=\"row\">");
    web_buf_html(b, name);
    buf_adds(b, "</th><td>");
    web_buf_html(b, value);
    buf_adds(b, "</td></tr>\n");
}

static void render_activity_row(const struct store_activity_entry *e, void *ctx)
{
    struct buf *b = ctx;
    char when[32] = "";
    time_t t = (time_t)e->at;
    struct tm tm;

    if (gmtime_r(&t, &tm))
        strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm);
    buf_adds(b, "<tr><td>");
    web_buf_html(b, when);
    buf_adds(b, "</td><td>");
    web_buf_html(b, e->tool);
    buf_adds(b, "</td><td>");
    web_buf_html(b, *e->database ? e->database : "(default)");
    buf_addf(b, "</td><td class=\"outcome-%s\">", strcmp(e->outcome, "ok") == 0 ? "ok" : "bad");
    web_buf_html(b, e->outcome);
    buf_adds(b, "</td></tr>\n");
}

static void count_activity(const struct store_activity_entry *e, void *ctx)
{
    (*(int *)ctx)++;
}

static void render_dashboard(struct web *w, struct buf *b, const char *token, const char *id,
                             const struct creds *c, const char *csrf)
{
    char origin[600];
    int n_activity = 0;

    web_page_begin(b, "turso-mcp: your URL");
    buf_adds(b, "<h1>");
    web_buf_html(b, c->label ? c->label : "Your URL");
    buf_adds(b, "</h1>\n<p class=\"lead\">This page belongs to one secret URL. Whoever has the "
                "URL can see it, so keep both private.</p>\n"
                "<h2>What this URL can reach</h2>\n<table class=\"facts\">\n");
    if (c->db_url && hrana_origin(c->db_url, origin, sizeof(origin)) == TM_OK)
        render_row(b, "Database", strstr(origin, "://") + 3);
    if (c->org)
        render_row(b, "Organization", c->org);
    if (c->platform_token)
        render_row(b, "Platform API", "yes: can list and manage the organization's databases");
    render_row(b, "Default database", c->default_db ? c->default_db : "(none)");
    render_row(b, "Mode", c->is_read_only ? "read-only" : "read-write");
    render_row(b, "Id", id);
    buf_adds(b, "</table>\n<h2>Recent activity</h2>\n");
    /* Calls just made may still be queued: show them too. */
    activity_flush();
    store_activity(w->store, id, count_activity, &n_activity);
    if (n_activity == 0) {
        buf_adds(b, "<p id=\"no-activity\">No tool calls yet.</p>\n");
    } else {
        buf_adds(b, "<table class=\"activity\" id=\"activity\">\n<thead><tr><th>Time</th>"
                    "<th>Tool</th><th>Database</th><th>Outcome</th></tr></thead>\n<tbody>\n");
        store_activity(w->store, id, render_activity_row, b);
        buf_adds(b, "</tbody>\n</table>\n");
    }
    buf_adds(b, "<h2>Rotate or revoke</h2>\n<p>Rotating gives this URL a new secret: the old "
                "URL stops working at once, and you paste the new one into your clients. "
                "Revoking deletes the URL and its stored credentials for good.</p>\n"
                "<div class=\"actions\">\n<form method=\"post\" action=\"/u/");
    web_buf_html(b, token);
    buf_adds(b, "/rotate\" id=\"rotate-form\">\n");
    web_render_csrf(b, csrf);
    buf_adds(b, "<button type=\"submit\" id=\"rotate\">Rotate URL</button>\n</form>\n"
                "<form method=\"post\" action=\"/u/");
    web_buf_html(b, token);
    buf_adds(b, "/revoke\" id=\"revoke-form\">\n");
    web_render_csrf(b, csrf);
    buf_adds(b, "<button type=\"submit\" id=\"revoke\" class=\"danger\">Revoke URL</button>\n"
                "</form>\n</div>\n");
    web_page_end(b);
}

/* A page after a POST that went wrong in the browser's part: expired form, say. */
static void reply_message(struct web_reply *reply, int status, const char *title,
                          const char *message)
{
    struct buf b = {0};
    web_page_begin(&b, title);
    buf_adds(&b, "<h1>");
    web_buf_html(&b, title);
    buf_adds(&b, "</h1>\n<div class=\"error\" id=\"error\" role=\"alert\">");
    web_buf_html(&b, message);
    buf_adds(&b, "</div>\n");
    web_page_end(&b);
    web_reply_page(reply, status, &b, false);
}

/* Reads the POSTed form and checks its CSRF token; false with the reply queued otherwise. */
static bool post_allowed(struct web *w, const struct web_request *req, struct web_reply *reply)
{
    struct web_form f = {0};
    bool ok = false;

    if (!web_is_form(req) || web_form_parse(&f, req->body, req->body_len) != TM_OK) {
        reply_message(reply, 400, "This request could not be read",
                      "Nothing was changed. Go back to the page, reload it and try again.");
        return false;
    }
    ok = web_csrf_ok(w, req, web_form_get(&f, "csrf"));
    web_form_cleanup(&f);
    if (!ok) {
        log_msg(LOG_INFO, "event=dashboard_refused rid=%lu reason=csrf", req->request_id);
        reply_message(reply, 403, "This form has expired",
                      "Nothing was changed: the form did not come from this URL's page, or it "
                      "is too old. Reload the page and try again.");
    }
    return ok;
}

void dashboard_handle(struct web *w, const struct web_request *req, struct web_reply *reply)
{
    const char *action = strrchr(req->path, '/') + 1; /* "", "rotate" or "revoke" */
    bool is_get = strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0;
    struct creds c = {0};
    char id[STORE_ID_LEN + 1] = "";
    char csrf[WEB_CSRF_TOKEN_LEN + 1];
    char fresh[STORE_TOKEN_LEN + 1] = "";
    struct buf b = {0};

    if ((*action == '\0' && !is_get) || (*action != '\0' && strcmp(req->method, "POST") != 0)) {
        web_reply_text(reply, 405, "Method Not Allowed\n");
        return;
    }
    /* Unknown, revoked and unopenable tokens all look like a missing page, as on /mcp. */
    if (store_find(w->store, req->token, &c, id) != TM_OK) {
        web_reply_text(reply, 404, "Not Found");
        return;
    }
    if (*action == '\0') {
        web_csrf_issue(w, req, reply, csrf);
        render_dashboard(w, &b, req->token, id, &c, csrf);
        web_reply_page(reply, 200, &b, true);
        goto out;
    }
    if (!post_allowed(w, req, reply))
        goto out;
    if (strcmp(action, "rotate") == 0) {
        enum tm_err err = store_rotate(w->store, req->token, fresh, NULL);
        if (err != TM_OK) {
            web_reply_text(reply, err == TM_ERR_NOT_FOUND ? 404 : 500,
                           err == TM_ERR_NOT_FOUND ? "Not Found" : "Internal Server Error\n");
            goto out;
        }
        log_msg(LOG_INFO, "event=dashboard_rotated rid=%lu user=%s", req->request_id, id);
        web_page_begin(&b, "turso-mcp: your new URL");
        buf_adds(&b, "<h1>Rotated</h1>\n<p class=\"lead\" id=\"rotated\">The old URL has "
                     "stopped working. Put the new one into your clients.</p>\n");
        char base[WEB_BASE_MAX];
        web_base(w, req, base);
        web_render_url(&b, base, fresh);
        web_page_end(&b);
        web_reply_page(reply, 200, &b, true);
    } else {
        enum tm_err err = store_revoke(w->store, id);
        if (err != TM_OK && err != TM_ERR_NOT_FOUND) {
            web_reply_text(reply, 500, "Internal Server Error\n");
            goto out;
        }
        log_msg(LOG_INFO, "event=dashboard_revoked rid=%lu user=%s", req->request_id, id);
        web_page_begin(&b, "turso-mcp: URL revoked");
        buf_adds(&b, "<h1>Revoked</h1>\n<p class=\"lead\" id=\"revoked\">This URL no longer "
                     "works, and its stored credentials are deleted. Remove it from your "
                     "clients.</p>\n<p><a href=\"/\">Create a new URL</a></p>\n");
        web_page_end(&b);
        web_reply_page(reply, 200, &b, false);
    }
out:
    creds_cleanup(&c);
    sodium_memzero(fresh, sizeof(fresh));
}
