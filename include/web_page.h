/*
 * What the page modules of the web front share, and nothing else includes:
 * the `struct web` they all read, a growing text buffer with HTML escaping,
 * the page frame, CSRF tokens, form parsing, and the block that shows a new
 * URL with its client setup. web.c implements these; signup.c and
 * dashboard.c build their pages with them. Thread: any MHD thread; `struct
 * web` is frozen after web_create except for its atomic counter.
 */
#ifndef TM_WEB_PAGE_H
#define TM_WEB_PAGE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "credcheck.h"
#include "creds.h"
#include "web.h"

/* Longest form body the pages accept: labels, a URL and two JWTs fit many times over. */
#define WEB_MAX_FORM_BYTES 32768
/* Turso checks in flight from the signup page at once; more get "busy, try again". */
#define WEB_MAX_CHECKS 32
/* A CSRF nonce (16 bytes) and its HMAC (32 bytes) as unpadded base64url. */
#define WEB_CSRF_NONCE_LEN 22
#define WEB_CSRF_TOKEN_LEN 43

struct web {
    const struct config *cfg;          /* borrowed */
    struct store *store;               /* borrowed */
    struct turso_transport *transport; /* borrowed */
    char *public_base;                 /* public_url without trailing slash, or NULL */
    bool is_https;                     /* public_base is https: cookies get Secure */
    unsigned char csrf_key[32];        /* HMAC key for CSRF tokens, drawn at start */
    atomic_int n_checks;               /* signup checks in flight */
};

/* Room for a base URL: a scheme, a Host header or public_url. */
#define WEB_BASE_MAX 300

/* A call waiting on Turso: the signup form and its check's outcome. */
struct web_call {
    struct web *w;
    char base[WEB_BASE_MAX]; /* the base URL for the page that finishes it */
    unsigned long request_id;
    bool wants_json;
    struct creds creds; /* what the form gave; wiped when the call is freed */
    char csrf_token[WEB_CSRF_TOKEN_LEN + 1];
    char set_cookie[160];
    struct credcheck_result result; /* written before wake */
    web_wake_fn wake;
    void *wake_ctx;
};

/* ---- text ---------------------------------------------------------------- */

/* Adds `s` with & < > " ' escaped, for text and attribute values alike. */
void web_buf_html(struct buf *b, const char *s);

/* Starts a page: doctype, head with the stylesheet and script, the title, <main>. */
void web_page_begin(struct buf *b, const char *title);
/* Ends the page. */
void web_page_end(struct buf *b);

/*
 * Moves `b` into `reply` as an HTML page with `status`; a buffer that ran
 * out of memory becomes a 500 instead.
 */
void web_reply_page(struct web_reply *reply, int status, struct buf *b, bool is_secret);
/* A plain-text reply (errors outside any page: 404, 405, 413...). */
void web_reply_text(struct web_reply *reply, int status, const char *text);
/* A JSON reply from `b` (already JSON). */
void web_reply_json(struct web_reply *reply, int status, struct buf *b, bool is_secret);

/* Adds a JSON string literal for `s` (quotes and escapes). */
void web_buf_json_str(struct buf *b, const char *s);

/* ---- CSRF ------------------------------------------------------------------ */

/*
 * The form token for this browser: reuses a well-formed tm_csrf cookie or
 * draws a new nonce and sets the cookie on `reply`.
 */
void web_csrf_issue(struct web *w, const struct web_request *req, struct web_reply *reply,
                    char token_out[WEB_CSRF_TOKEN_LEN + 1]);

/* True when the cookie and `form_token` belong together (and the fetch was same-origin). */
bool web_csrf_ok(const struct web *w, const struct web_request *req, const char *form_token);

/* ---- forms ----------------------------------------------------------------- */

#define WEB_FORM_MAX_FIELDS 16

/* A parsed application/x-www-form-urlencoded body; values may be secrets. */
struct web_form {
    char *buf; /* decoded copy of the body; wiped when freed */
    size_t buf_len;
    size_t n;
    const char *names[WEB_FORM_MAX_FIELDS];
    const char *values[WEB_FORM_MAX_FIELDS];
};

/* Parses `body`; TM_ERR_INVALID for malformed or repeated fields, TM_ERR_TOO_LARGE. */
enum tm_err web_form_parse(struct web_form *f, const char *body, size_t len);
/* The value of `name`, or NULL. Borrowed from `f`. */
const char *web_form_get(const struct web_form *f, const char *name);
/* Wipes and frees. Accepts a zeroed form. */
void web_form_cleanup(struct web_form *f);

/* True if the request body is a form (Content-Type application/x-www-form-urlencoded). */
bool web_is_form(const struct web_request *req);
/* True if the client asked for JSON rather than a page. */
bool web_wants_json(const struct web_request *req);

/* ---- shared blocks ---------------------------------------------------------- */

/*
 * The new URL, once, with copy buttons and ready-to-paste setup for Claude
 * (Connectors; claude_desktop_config.json with mcp-remote), Cursor
 * (mcp.json) and a curl initialize line, plus the dashboard link.
 */
void web_render_url(struct buf *b, const char *base, const char *token);

/*
 * The base of the URLs handed out: public_url when set, else the address
 * the browser used (its Host header, which http.c has already checked is
 * ours), so that a page reached at 127.0.0.1:PORT hands out URLs that work.
 */
void web_base(const struct web *w, const struct web_request *req, char out[WEB_BASE_MAX]);

/* A hidden CSRF field. */
void web_render_csrf(struct buf *b, const char *token);

/* Page handlers, one per module. */
enum web_status signup_handle(struct web *w, const struct web_request *req, struct web_reply *reply,
                              struct web_call **call_out, web_wake_fn wake, void *ctx);
void signup_resume(struct web *w, struct web_call *call, struct web_reply *reply);
void dashboard_handle(struct web *w, const struct web_request *req, struct web_reply *reply);

#endif
