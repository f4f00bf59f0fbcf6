/*
 * The Turso Platform API client: builds the URL from the configured base
 * and an escaped path, sends the call through the transport, and reads the
 * answer as the official clients do (turso-api.md §3.1): JSON on success,
 * {"error": "..."} on failure, anything else quoted briefly. Every message
 * passes redact_message before anyone sees it.
 * Callbacks run on a transport callback thread, or on the thread that drove
 * the connection (see callbacks_never_block).
 */
#include "platform.h"

#include "jsonr.h"
#include "jsonw.h"
#include "redact.h"

#include <pthread.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PLATFORM_DEFAULT_URL "https://api.turso.tech"
#define PLATFORM_URL_MAX     2048
#define PLATFORM_MESSAGE_MAX 1024
/* How much of a non-JSON error body is quoted. */
#define PLATFORM_EXCERPT 200

struct platform {
    struct turso_transport *transport; /* borrowed */
    char *api_url;                     /* no trailing slash */
};

/* One call in flight, from platform_call until `done` has run. */
struct pcall {
    char *token; /* our copy, only for masking messages; wiped */
    size_t token_len;
    const char *api_url; /* borrowed from the platform, which outlives calls */
    long timeout_ms;
    platform_done_fn done;
    void *ctx;
    char message[PLATFORM_MESSAGE_MAX];
};

enum tm_err platform_create(const struct platform_opts *opts, struct platform **out)
{
    const char *url = opts && opts->api_url ? opts->api_url : PLATFORM_DEFAULT_URL;
    if (!out || !opts || !opts->transport)
        return TM_ERR_INVALID;
    if (strncasecmp(url, "https://", 8) != 0 && strncasecmp(url, "http://", 7) != 0)
        return TM_ERR_INVALID;
    if (strpbrk(url, " \r\n\t?#"))
        return TM_ERR_INVALID;
    struct platform *p = calloc(1, sizeof(*p));
    if (!p)
        return TM_ERR_NOMEM;
    p->transport = opts->transport;
    p->api_url = strdup(url);
    if (!p->api_url) {
        free(p);
        return TM_ERR_NOMEM;
    }
    size_t len = strlen(p->api_url);
    while (len > 0 && p->api_url[len - 1] == '/')
        p->api_url[--len] = '\0';
    *out = p;
    return TM_OK;
}

void platform_destroy(struct platform **pp)
{
    if (!pp || !*pp)
        return;
    free((*pp)->api_url);
    free(*pp);
    *pp = NULL;
}

const char *platform_api_url(const struct platform *p)
{
    return p->api_url;
}

static bool is_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

/* Appends `s` escaped at out[*pos]; false when it does not fit. */
static bool put_escaped(char *out, size_t out_len, size_t *pos, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        size_t need = is_unreserved(*p) ? 1 : 3;
        if (*pos + need >= out_len)
            return false;
        if (need == 1) {
            out[(*pos)++] = (char)*p;
        } else {
            out[(*pos)++] = '%';
            out[(*pos)++] = hex[*p >> 4];
            out[(*pos)++] = hex[*p & 15];
        }
    }
    return true;
}

enum tm_err platform_path(char *out, size_t out_len, const char *fmt, ...)
{
    enum tm_err err = TM_OK;
    size_t pos = 0;
    va_list ap;

    if (!out || out_len == 0 || !fmt)
        return TM_ERR_INVALID;
    va_start(ap, fmt);
    for (const char *f = fmt; *f; f++) {
        if (f[0] == '%' && f[1] == 's') {
            const char *arg = va_arg(ap, const char *);
            if (!arg) {
                err = TM_ERR_INVALID;
                break;
            }
            if (!put_escaped(out, out_len, &pos, arg)) {
                err = TM_ERR_TOO_LARGE;
                break;
            }
            f++;
            continue;
        }
        if (f[0] == '%' && f[1] == '%')
            f++;
        if (pos + 1 >= out_len) {
            err = TM_ERR_TOO_LARGE;
            break;
        }
        out[pos++] = *f;
    }
    va_end(ap);
    out[err == TM_OK ? pos : 0] = '\0';
    return err;
}

enum tm_err platform_query_add(char *out, size_t out_len, const char *key, const char *value)
{
    if (!out || !key)
        return TM_ERR_INVALID;
    if (!value)
        return TM_OK;
    size_t start = strlen(out), pos = start;
    if (pos + 1 >= out_len)
        return TM_ERR_TOO_LARGE;
    out[pos++] = strchr(out, '?') ? '&' : '?';
    out[pos] = '\0';
    bool ok = put_escaped(out, out_len, &pos, key);
    if (ok && pos + 1 < out_len)
        out[pos++] = '=';
    else
        ok = false;
    ok = ok && put_escaped(out, out_len, &pos, value);
    out[ok ? pos : start] = '\0';
    return ok ? TM_OK : TM_ERR_TOO_LARGE;
}

/* ---- messages ---- */

/* The message for a transfer that produced no HTTP status. */
static void transport_message(struct pcall *c, const struct turso_reply *r)
{
    switch (r->err) {
    case TM_ERR_NETWORK:
        snprintf(c->message, sizeof(c->message),
                 "The Turso Platform API could not be reached at %s: %s", c->api_url, r->message);
        break;
    case TM_ERR_TIMEOUT:
        /* The call's deadline, not this request's timeout, ran out. */
        if (r->is_deadline)
            snprintf(c->message, sizeof(c->message),
                     "The call ran out of time before the Turso Platform API answered (%s)",
                     c->api_url);
        else if (c->timeout_ms > 0)
            snprintf(c->message, sizeof(c->message),
                     "The Turso Platform API did not answer within %ld ms (%s)", c->timeout_ms,
                     c->api_url);
        else
            snprintf(c->message, sizeof(c->message),
                     "The Turso Platform API did not answer in time (%s): %s", c->api_url,
                     r->message);
        break;
    case TM_ERR_TOO_LARGE:
        snprintf(c->message, sizeof(c->message), "The Turso Platform API's answer is too large: %s",
                 r->message);
        break;
    case TM_ERR_CANCELLED:
        snprintf(c->message, sizeof(c->message),
                 "The request to the Turso Platform API was cancelled: %s", r->message);
        break;
    default:
        snprintf(c->message, sizeof(c->message),
                 "The request to the Turso Platform API at %s failed: %s", c->api_url, r->message);
        break;
    }
}

static bool is_blank(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n')
            return false;
    }
    return true;
}

/* What Turso said in a failed answer: {"error"} or {"message"}, else a short excerpt. */
static void error_detail(const char *body, size_t body_len, char *out, size_t out_len)
{
    json_t *root = json_loadb(body, body_len, JSON_DECODE_ANY, NULL);
    const char *error = json_string_value(json_object_get(root, "error"));
    const char *msg = json_string_value(json_object_get(root, "message"));
    const char *code = json_string_value(json_object_get(root, "code"));
    if (error || msg) {
        snprintf(out, out_len, "%s%s%s%s", error ? error : msg, code ? " (code " : "",
                 code ? code : "", code ? ")" : "");
    } else {
        size_t start = 0, end = body_len;
        while (start < end && is_blank(body + start, 1))
            start++;
        while (end > start && is_blank(body + end - 1, 1))
            end--;
        size_t n = end - start;
        if (n > PLATFORM_EXCERPT) {
            n = PLATFORM_EXCERPT;
            while (n > 0 && ((unsigned char)body[start + n] & 0xC0) == 0x80)
                n--;
        }
        if (n > 0)
            snprintf(out, out_len, "%.*s", (int)n, body + start);
        else
            snprintf(out, out_len, "no reason given");
    }
    json_decref(root);
}

/* The error code and message for a non-2xx answer. */
static enum tm_err status_message(struct pcall *c, long status, const char *body, size_t body_len)
{
    char detail[PLATFORM_MESSAGE_MAX - 300];
    error_detail(body, body_len, detail, sizeof(detail));
    enum tm_err err = TM_ERR_UPSTREAM;
    const char *what = "The Turso Platform API answered with an error";
    const char *advice = "";
    switch (status) {
    case 400:
        err = TM_ERR_INVALID;
        what = "Turso refused the request";
        break;
    case 401:
        err = TM_ERR_DENIED;
        what = "The Turso Platform API token was refused";
        advice = ". Check that it is a Platform API token (not a database token) and that it has "
                 "not expired or been revoked.";
        break;
    case 402:
        what = "The Turso plan does not allow this";
        break;
    case 403:
        err = TM_ERR_DENIED;
        what = "The Turso Platform API token lacks permission for this";
        break;
    case 404:
        err = TM_ERR_NOT_FOUND;
        what = "Not found on Turso";
        break;
    case 409:
        err = TM_ERR_EXISTS;
        what = "Already exists on Turso";
        break;
    case 422:
        err = TM_ERR_INVALID;
        what = "Turso could not accept this";
        break;
    case 429:
        what = "Turso is limiting the request rate";
        advice = ". Try again shortly.";
        break;
    default:
        if (status >= 500) {
            what = "The Turso Platform API failed";
            advice = ". Try again later.";
        }
        break;
    }
    snprintf(c->message, sizeof(c->message), "%s (HTTP %ld): %s%s", what, status, detail, advice);
    return err;
}

static void pcall_destroy(struct pcall *c)
{
    if (!c)
        return;
    if (c->token) {
        sodium_memzero(c->token, c->token_len);
        free(c->token);
    }
    free(c);
}

static void on_reply(const struct turso_reply *r, void *arg)
{
    struct pcall *c = arg;
    struct platform_reply out = {.err = r->err, .status = r->status};

    if (r->err != TM_OK) {
        transport_message(c, r);
    } else if (r->status < 200 || r->status > 299) {
        out.err = status_message(c, r->status, r->body, r->body_len);
    } else if (!is_blank(r->body, r->body_len)) {
        json_error_t jerr;
        /* A bare array is a valid answer (GET /v1/organizations). */
        out.json = jsonr_loadb(r->body, r->body_len, JSON_ALLOW_NUL, &jerr);
        if (!out.json) {
            out.err = TM_ERR_UPSTREAM;
            snprintf(c->message, sizeof(c->message),
                     "The Turso Platform API sent an answer that is not JSON (HTTP %ld): %s",
                     r->status, jerr.text);
        }
    }
    if (out.err != TM_OK) {
        redact_message(c->message, c->token);
        out.message = c->message;
    }
    c->done(&out, c->ctx);
    pcall_destroy(c);
}

enum tm_err platform_call(struct platform *p, const char *token, const struct platform_request *req,
                          platform_done_fn done, void *ctx)
{
    enum tm_err err = TM_ERR_INVALID;
    struct pcall *c = NULL;
    char *body = NULL;
    size_t body_len = 0;
    char url[PLATFORM_URL_MAX];

    if (!p || !req || !req->method || !req->path || req->path[0] != '/' || !done ||
        req->timeout_ms < 0)
        goto out;
    /* Paths come from platform_path; anything else here is a bug or an injection. */
    if (strpbrk(req->path, " \r\n\t#"))
        goto out;
    if ((size_t)snprintf(url, sizeof(url), "%s%s", p->api_url, req->path) >= sizeof(url)) {
        err = TM_ERR_TOO_LARGE;
        goto out;
    }
    err = TM_ERR_NOMEM;
    c = calloc(1, sizeof(*c));
    if (!c)
        goto out;
    c->api_url = p->api_url;
    c->timeout_ms = req->timeout_ms;
    c->done = done;
    c->ctx = ctx;
    if (token && token[0]) {
        c->token_len = strlen(token);
        c->token = malloc(c->token_len + 1);
        if (!c->token)
            goto out;
        memcpy(c->token, token, c->token_len + 1);
    }
    if (req->body) {
        body = jsonw_dumps(req->body, false, &body_len);
        if (!body)
            goto out;
    }
    struct turso_request treq = {
        .method = req->method,
        .url = url,
        .bearer = token,
        .body = body,
        .body_len = body_len,
        .timeout_ms = req->timeout_ms,
    };
    err = turso_transport_submit(p->transport, &treq, on_reply, c);
    if (err == TM_OK)
        c = NULL; /* on_reply owns it now */
out:
    free(body);
    pcall_destroy(c);
    return err;
}

/* Where platform_call_sync waits; lives on the caller's stack. */
struct sync_wait {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool is_done; /* guarded by lock, as the fields below until it is set */
    enum tm_err err;
    long status;
    json_t *json;
    char *message;
    size_t message_len;
};

static void sync_done(struct platform_reply *r, void *arg)
{
    struct sync_wait *w = arg;
    pthread_mutex_lock(&w->lock);
    w->err = r->err;
    w->status = r->status;
    /* A copy: the waiting thread must not share refcounts with this one. */
    if (r->json) {
        w->json = json_deep_copy(r->json);
        if (!w->json) {
            w->err = TM_ERR_NOMEM;
            snprintf(w->message, w->message_len, "out of memory");
        }
    }
    if (r->err != TM_OK)
        snprintf(w->message, w->message_len, "%s", r->message);
    json_decref(r->json);
    w->is_done = true;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

enum tm_err platform_call_sync(struct platform *p, const char *token,
                               const struct platform_request *req, long *status, json_t **json_out,
                               char *message, size_t message_len)
{
    char scratch[8];
    struct sync_wait w;
    memset(&w, 0, sizeof(w));
    w.message = message && message_len > 0 ? message : scratch;
    w.message_len = message && message_len > 0 ? message_len : sizeof(scratch);
    w.message[0] = '\0';
    if (json_out)
        *json_out = NULL;
    if (status)
        *status = 0;
    if (pthread_mutex_init(&w.lock, NULL) != 0)
        return TM_ERR_INTERNAL;
    if (pthread_cond_init(&w.cond, NULL) != 0) {
        pthread_mutex_destroy(&w.lock);
        return TM_ERR_INTERNAL;
    }
    enum tm_err err = platform_call(p, token, req, sync_done, &w);
    if (err != TM_OK) {
        snprintf(w.message, w.message_len, "could not call the Turso Platform API: %s",
                 tm_err_message(err));
    } else {
        pthread_mutex_lock(&w.lock);
        while (!w.is_done)
            pthread_cond_wait(&w.cond, &w.lock);
        pthread_mutex_unlock(&w.lock);
        err = w.err;
        if (status)
            *status = w.status;
        if (err == TM_OK && json_out)
            *json_out = w.json;
        else
            json_decref(w.json);
    }
    pthread_cond_destroy(&w.cond);
    pthread_mutex_destroy(&w.lock);
    return err;
}

enum tm_err platform_jwt_claims(const char *jwt, long long *exp, char access[4])
{
    enum tm_err err = TM_ERR_INVALID;
    unsigned char *buf = NULL;
    json_t *claims = NULL;

    if (exp)
        *exp = 0;
    if (access)
        access[0] = '\0';
    if (!jwt)
        return TM_ERR_INVALID;
    const char *dot1 = strchr(jwt, '.');
    const char *dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
    if (!dot1 || !dot2 || dot1 == jwt || dot2 == dot1 + 1 || strchr(dot2 + 1, '.'))
        return TM_ERR_INVALID;
    size_t seg_len = (size_t)(dot2 - dot1 - 1);
    if (seg_len > 8192)
        return TM_ERR_INVALID;
    buf = malloc(seg_len + 1);
    if (!buf)
        return TM_ERR_NOMEM;
    size_t len = 0;
    /* Padding is optional in JWTs; libsodium's no-padding variant refuses it, so strip it. */
    size_t in_len = seg_len;
    while (in_len > 0 && dot1[in_len] == '=')
        in_len--;
    if (sodium_base642bin(buf, seg_len, dot1 + 1, in_len, NULL, &len, NULL,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0)
        goto out;
    claims = json_loadb((const char *)buf, len, 0, NULL);
    if (!json_is_object(claims))
        goto out;
    const json_t *e = json_object_get(claims, "exp");
    if (e && !json_is_integer(e) && !json_is_real(e))
        goto out;
    if (exp && e)
        *exp =
            json_is_integer(e) ? (long long)json_integer_value(e) : (long long)json_real_value(e);
    const char *a = json_string_value(json_object_get(claims, "a"));
    if (access && a && (strcmp(a, "ro") == 0 || strcmp(a, "rw") == 0))
        snprintf(access, 4, "%s", a);
    err = TM_OK;
out:
    json_decref(claims);
    free(buf);
    return err;
}
