/*
 * Hrana over HTTP v2 (JSON): client arguments to Hrana values, result values
 * to the cells tools return, Stmt objects, and pipelines posted through the
 * transport with their three error layers read back. A small table remembers
 * which origins reject `close` (the local tursodb). Builders run on any
 * thread; pipeline completions run on a transport callback thread, or on
 * the thread that drove the connection (see callbacks_never_block).
 */
#include "hrana.h"
#include "jsonr.h"
#include "jsonw.h"

#include "redact.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define HRANA_ORIGIN_MAX     300
#define HRANA_NO_CLOSE_SLOTS 32
#define HRANA_TEXT_EXCERPT   200
#define HRANA_MESSAGE_MAX    1024
#define HRANA_B64_CHUNK      4096 /* base64 characters checked per step */

/* What the local tursodb says when it meets a `close` request. */
#define HRANA_CLOSE_REJECTED "unknown variant `close`"

/*
 * Origins whose server rejected `close`, so that later pipelines to them go
 * without it. Guarded by no_close_lock, taken by any thread calling
 * hrana_pipeline and by the transport thread when a rejection arrives. Slots
 * are reused round-robin: forgetting an origin only costs one resend.
 */
static pthread_mutex_t no_close_lock = PTHREAD_MUTEX_INITIALIZER;
static char no_close_origins[HRANA_NO_CLOSE_SLOTS][HRANA_ORIGIN_MAX];
static size_t no_close_next;

static bool no_close_has(const char *origin)
{
    bool has = false;
    pthread_mutex_lock(&no_close_lock);
    for (size_t i = 0; i < HRANA_NO_CLOSE_SLOTS && !has; i++)
        has = strcmp(no_close_origins[i], origin) == 0;
    pthread_mutex_unlock(&no_close_lock);
    return has;
}

static void no_close_remember(const char *origin)
{
    pthread_mutex_lock(&no_close_lock);
    bool has = false;
    for (size_t i = 0; i < HRANA_NO_CLOSE_SLOTS && !has; i++)
        has = strcmp(no_close_origins[i], origin) == 0;
    if (!has) {
        snprintf(no_close_origins[no_close_next], HRANA_ORIGIN_MAX, "%s", origin);
        no_close_next = (no_close_next + 1) % HRANA_NO_CLOSE_SLOTS;
    }
    pthread_mutex_unlock(&no_close_lock);
}

static void set_err(char *err, size_t err_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t err_len, const char *fmt, ...)
{
    if (!err || err_len == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
}

/*
 * A short, printable copy of client input for an error message: non-ASCII and
 * control bytes become '?', so a cut can never leave broken UTF-8 behind.
 */
static const char *excerpt(const char *s, size_t len, char *buf, size_t buf_len)
{
    size_t max = buf_len - 4; /* room for "..." and the NUL */
    size_t n = len < max ? len : max;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        buf[i] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    buf[n] = '\0';
    if (n < len)
        memcpy(buf + n, "...", 4);
    return buf;
}

/* A whole decimal int64: an optional '-' then digits, nothing else. */
static bool parse_int64(const char *s, size_t len, int64_t *out);

bool hrana_int64_parse(const char *s, size_t len, int64_t *out)
{
    return parse_int64(s, len, out);
}

static bool parse_int64(const char *s, size_t len, int64_t *out)
{
    size_t i = 0;
    if (len > 0 && s[0] == '-')
        i = 1;
    if (i == len)
        return false;
    for (; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
    }
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno == ERANGE || end != s + len)
        return false;
    *out = (int64_t)v;
    return true;
}

/*
 * Standard-alphabet base64, padded (exactly) or unpadded. Decoded in chunks
 * into a stack buffer, so checking a large blob allocates nothing.
 */
static bool base64_is_valid(const char *s, size_t len)
{
    unsigned char bin[HRANA_B64_CHUNK / 4 * 3];
    size_t off = 0, bin_len = 0;
    if (len == 0)
        return true;
    /* Whole chunks hold whole 4-character groups, so they decode unpadded. */
    while (len - off > HRANA_B64_CHUNK) {
        if (sodium_base642bin(bin, sizeof(bin), s + off, HRANA_B64_CHUNK, NULL, &bin_len, NULL,
                              sodium_base64_VARIANT_ORIGINAL_NO_PADDING) != 0)
            return false;
        off += HRANA_B64_CHUNK;
    }
    int variant = s[len - 1] == '=' ? sodium_base64_VARIANT_ORIGINAL
                                    : sodium_base64_VARIANT_ORIGINAL_NO_PADDING;
    return sodium_base642bin(bin, sizeof(bin), s + off, len - off, NULL, &bin_len, NULL, variant) ==
           0;
}

/* {"type": type, key: value}; steals value (NULL key: no value). */
static json_t *tagged(const char *type, const char *key, json_t *value)
{
    json_t *o = json_object();
    if (!o || json_object_set_new(o, "type", json_string(type)) != 0) {
        json_decref(value);
        json_decref(o);
        return NULL;
    }
    if (key && json_object_set_new(o, key, value) != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *integer_value(int64_t v)
{
    char num[32];
    snprintf(num, sizeof(num), "%" PRId64, v);
    return tagged("integer", "value", json_string(num));
}

static json_t *nomem(char *err, size_t err_len)
{
    set_err(err, err_len, "out of memory");
    return NULL;
}

/* A blob from a "base64" member, re-emitted without padding. */
static json_t *blob_value(const json_t *b64, char *err, size_t err_len)
{
    if (!json_is_string(b64)) {
        set_err(err, err_len, "a blob needs \"base64\" with a base64 string");
        return NULL;
    }
    const char *s = json_string_value(b64);
    size_t len = json_string_length(b64);
    if (!base64_is_valid(s, len)) {
        set_err(err, err_len,
                "\"base64\" is not valid base64 (standard alphabet A-Z a-z 0-9 + /, "
                "with or without = padding)");
        return NULL;
    }
    while (len > 0 && s[len - 1] == '=')
        len--;
    json_t *v = tagged("blob", "base64", json_stringn(s, len));
    return v ? v : nomem(err, err_len);
}

static json_t *float_value(double d, char *err, size_t err_len)
{
    if (!isfinite(d)) {
        set_err(err, err_len, "a float must be finite");
        return NULL;
    }
    json_t *v = tagged("float", "value", json_real(d));
    return v ? v : nomem(err, err_len);
}

/* An object argument: the {"base64": ...} blob form or a Hrana value. */
static json_t *value_from_object(const json_t *arg, char *err, size_t err_len)
{
    char buf[48];
    const json_t *type = json_object_get(arg, "type");
    json_t *v = NULL;

    if (!type) {
        const json_t *b64 = json_object_get(arg, "base64");
        if (!b64) {
            set_err(err, err_len,
                    "an object must be {\"base64\": \"...\"} (a blob) or a Hrana value with "
                    "\"type\"");
            return NULL;
        }
        return blob_value(b64, err, err_len);
    }
    if (!json_is_string(type)) {
        set_err(err, err_len, "\"type\" must be a string");
        return NULL;
    }
    const char *ts = json_string_value(type);
    const json_t *value = json_object_get(arg, "value");
    if (strcmp(ts, "null") == 0) {
        v = tagged("null", NULL, NULL);
        return v ? v : nomem(err, err_len);
    }
    if (strcmp(ts, "integer") == 0) {
        int64_t n = 0;
        if (!json_is_string(value)) {
            set_err(err, err_len,
                    "an integer value must be a string of decimal digits, such as \"42\"");
            return NULL;
        }
        if (!parse_int64(json_string_value(value), json_string_length(value), &n)) {
            set_err(err, err_len,
                    "\"%s\" is not a decimal integer between -9223372036854775808 and "
                    "9223372036854775807",
                    excerpt(json_string_value(value), json_string_length(value), buf, sizeof(buf)));
            return NULL;
        }
        v = integer_value(n);
        return v ? v : nomem(err, err_len);
    }
    if (strcmp(ts, "float") == 0) {
        if (!json_is_number(value)) {
            set_err(err, err_len, "a float value must be a JSON number");
            return NULL;
        }
        return float_value(json_number_value(value), err, err_len);
    }
    if (strcmp(ts, "text") == 0) {
        if (!json_is_string(value)) {
            set_err(err, err_len, "a text value must be a string");
            return NULL;
        }
        v = tagged("text", "value",
                   json_stringn(json_string_value(value), json_string_length(value)));
        return v ? v : nomem(err, err_len);
    }
    if (strcmp(ts, "blob") == 0)
        return blob_value(json_object_get(arg, "base64"), err, err_len);
    set_err(err, err_len, "unknown value type \"%s\" (expected null, integer, float, text or blob)",
            excerpt(ts, json_string_length(type), buf, sizeof(buf)));
    return NULL;
}

json_t *hrana_value_from_arg(const json_t *arg, char *err, size_t err_len)
{
    json_t *v = NULL;
    if (!arg) {
        set_err(err, err_len, "missing value");
        return NULL;
    }
    switch (json_typeof(arg)) {
    case JSON_NULL:
        v = tagged("null", NULL, NULL);
        break;
    case JSON_TRUE:
        v = integer_value(1);
        break;
    case JSON_FALSE:
        v = integer_value(0);
        break;
    case JSON_INTEGER:
        v = integer_value((int64_t)json_integer_value(arg));
        break;
    case JSON_REAL:
        return float_value(json_real_value(arg), err, err_len);
    case JSON_STRING:
        v = tagged("text", "value", json_stringn(json_string_value(arg), json_string_length(arg)));
        break;
    case JSON_OBJECT:
        return value_from_object(arg, err, err_len);
    case JSON_ARRAY:
    default:
        set_err(err, err_len,
                "an array is not a value (use a string, a number, a boolean, null or "
                "{\"base64\": \"...\"})");
        return NULL;
    }
    return v ? v : nomem(err, err_len);
}

bool hrana_cell_read(const json_t *v, struct hrana_cell *out)
{
    const char *type = json_string_value(json_object_get(v, "type"));
    if (!type)
        return false;
    const json_t *value = json_object_get(v, "value");
    memset(out, 0, sizeof(*out));

    if (strcmp(type, "null") == 0) {
        out->kind = HRANA_CELL_NULL;
        return true;
    }
    if (strcmp(type, "integer") == 0) {
        if (!json_is_string(value) ||
            !parse_int64(json_string_value(value), json_string_length(value), &out->i))
            return false;
        /* Beyond 2^53 a JSON number loses digits in most clients. */
        out->kind = out->i >= -HRANA_MAX_SAFE_INT && out->i <= HRANA_MAX_SAFE_INT
                        ? HRANA_CELL_INTEGER
                        : HRANA_CELL_BIG_INTEGER;
        return true;
    }
    if (strcmp(type, "float") == 0) {
        /* Servers write non-finite results as null. */
        if (json_is_null(value)) {
            out->kind = HRANA_CELL_FLOAT_NULL;
            return true;
        }
        if (!json_is_number(value))
            return false;
        out->d = json_number_value(value);
        out->kind = isfinite(out->d) ? HRANA_CELL_FLOAT : HRANA_CELL_FLOAT_NULL;
        return true;
    }
    if (strcmp(type, "text") == 0) {
        if (!json_is_string(value))
            return false;
        out->kind = HRANA_CELL_TEXT;
        out->s = json_string_value(value);
        out->len = json_string_length(value);
        return true;
    }
    if (strcmp(type, "blob") == 0) {
        const json_t *b64 = json_object_get(v, "base64");
        if (!json_is_string(b64))
            return false;
        out->kind = HRANA_CELL_BLOB;
        out->s = json_string_value(b64);
        out->len = json_string_length(b64);
        return true;
    }
    return false;
}

json_t *hrana_cell_from_value(const json_t *v)
{
    struct hrana_cell c;
    if (!hrana_cell_read(v, &c))
        return NULL;
    switch (c.kind) {
    case HRANA_CELL_NULL:
        return json_null();
    case HRANA_CELL_INTEGER:
        return json_integer((json_int_t)c.i);
    case HRANA_CELL_BIG_INTEGER:
        return integer_value(c.i);
    case HRANA_CELL_FLOAT:
        return tagged("float", "value", json_real(c.d));
    case HRANA_CELL_FLOAT_NULL:
        return tagged("float", "value", json_null());
    case HRANA_CELL_TEXT:
        return json_stringn(c.s, c.len);
    case HRANA_CELL_BLOB:
        return tagged("blob", "base64", json_stringn(c.s, c.len));
    }
    return NULL;
}

json_t *hrana_stmt(const char *sql, const json_t *args, char *err, size_t err_len)
{
    char reason[256];
    char buf[48];
    json_t *stmt = NULL, *list = NULL, *result = NULL;

    if (!sql) {
        set_err(err, err_len, "the SQL text is missing");
        goto out;
    }
    stmt = json_object();
    if (!stmt) {
        nomem(err, err_len);
        goto out;
    }
    if (json_object_set_new(stmt, "sql", json_string(sql)) != 0) {
        /* json_string refuses text that is not UTF-8. */
        set_err(err, err_len, "the SQL text is not valid UTF-8 (or memory ran out)");
        goto out;
    }

    if (!args || json_is_null(args)) {
        /* No arguments: no "args" key. */
    } else if (json_is_array(args)) {
        if (json_array_size(args) > 0) {
            list = json_array();
            if (!list) {
                nomem(err, err_len);
                goto out;
            }
            for (size_t i = 0; i < json_array_size(args); i++) {
                reason[0] = '\0';
                json_t *v = hrana_value_from_arg(json_array_get(args, i), reason, sizeof(reason));
                if (!v) {
                    /* Numbered from 1, as SQL parameters are. */
                    set_err(err, err_len, "argument %zu: %s", i + 1, reason);
                    goto out;
                }
                if (json_array_append_new(list, v) != 0) {
                    nomem(err, err_len);
                    goto out;
                }
            }
            if (json_object_set_new(stmt, "args", list) != 0) {
                list = NULL;
                nomem(err, err_len);
                goto out;
            }
            list = NULL;
        }
    } else if (json_is_object(args)) {
        if (json_object_size(args) > 0) {
            list = json_array();
            if (!list) {
                nomem(err, err_len);
                goto out;
            }
            /* Names go as given: sqld matches a slot with or without its prefix. */
            for (void *it = json_object_iter((json_t *)args); it;
                 it = json_object_iter_next((json_t *)args, it)) {
                const char *key = json_object_iter_key(it);
                size_t key_len = json_object_iter_key_len(it);
                if (key_len == 0) {
                    set_err(err, err_len, "argument names must not be empty");
                    goto out;
                }
                reason[0] = '\0';
                json_t *v =
                    hrana_value_from_arg(json_object_iter_value(it), reason, sizeof(reason));
                if (!v) {
                    set_err(err, err_len, "argument \"%s\": %s",
                            excerpt(key, key_len, buf, sizeof(buf)), reason);
                    goto out;
                }
                json_t *named = json_object();
                if (!named || json_object_set_new(named, "name", json_stringn(key, key_len)) != 0) {
                    json_decref(v);
                    json_decref(named);
                    nomem(err, err_len);
                    goto out;
                }
                /* set_new and append_new release what they were given, even on failure. */
                if (json_object_set_new(named, "value", v) != 0) {
                    json_decref(named);
                    nomem(err, err_len);
                    goto out;
                }
                if (json_array_append_new(list, named) != 0) {
                    nomem(err, err_len);
                    goto out;
                }
            }
            if (json_object_set_new(stmt, "named_args", list) != 0) {
                list = NULL;
                nomem(err, err_len);
                goto out;
            }
            list = NULL;
        }
    } else {
        set_err(err, err_len,
                "arguments must be an array (positional) or an object (named), not %s",
                json_is_string(args) ? "a string" : "a number or boolean");
        goto out;
    }
    result = stmt;
    stmt = NULL;
out:
    json_decref(list);
    json_decref(stmt);
    return result;
}

static bool is_host_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_';
}

static bool is_ipv6_char(char c)
{
    return (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || (c >= '0' && c <= '9') || c == ':' ||
           c == '.';
}

enum tm_err hrana_origin(const char *db_url, char *out, size_t out_len)
{
    const char *scheme = NULL, *rest = NULL;

    if (!db_url || !out || out_len == 0)
        return TM_ERR_INVALID;
    if (strncasecmp(db_url, "https://", 8) == 0) {
        scheme = "https";
        rest = db_url + 8;
    } else if (strncasecmp(db_url, "http://", 7) == 0) {
        scheme = "http";
        rest = db_url + 7;
    } else if (strncasecmp(db_url, "libsql://", 9) == 0) {
        /* libsql://host is how Turso prints database URLs; it means HTTPS. */
        scheme = "https";
        rest = db_url + 9;
    } else {
        return TM_ERR_INVALID;
    }

    size_t auth_len = strcspn(rest, "/?#");
    const char *auth_end = rest + auth_len;
    const char *host_end = NULL;
    if (auth_len == 0)
        return TM_ERR_INVALID;
    /* User info could carry a credential into messages and logs. */
    if (memchr(rest, '@', auth_len))
        return TM_ERR_INVALID;
    if (rest[0] == '[') {
        const char *close = memchr(rest, ']', auth_len);
        if (!close || close == rest + 1)
            return TM_ERR_INVALID;
        for (const char *p = rest + 1; p < close; p++) {
            if (!is_ipv6_char(*p))
                return TM_ERR_INVALID;
        }
        host_end = close + 1;
    } else {
        host_end = rest;
        while (host_end < auth_end && *host_end != ':') {
            if (!is_host_char(*host_end))
                return TM_ERR_INVALID;
            host_end++;
        }
        if (host_end == rest)
            return TM_ERR_INVALID;
    }
    if (host_end < auth_end) {
        const char *port = host_end + 1;
        size_t port_len = (size_t)(auth_end - port);
        long n = 0;
        if (*host_end != ':' || port_len == 0 || port_len > 5)
            return TM_ERR_INVALID;
        for (const char *p = port; p < auth_end; p++) {
            if (*p < '0' || *p > '9')
                return TM_ERR_INVALID;
            n = n * 10 + (*p - '0');
        }
        if (n < 1 || n > 65535)
            return TM_ERR_INVALID;
    }

    size_t scheme_len = strlen(scheme);
    if (scheme_len + 3 + auth_len + 1 > out_len)
        return TM_ERR_TOO_LARGE;
    memcpy(out, scheme, scheme_len);
    memcpy(out + scheme_len, "://", 3);
    char *o = out + scheme_len + 3;
    for (size_t i = 0; i < auth_len; i++) {
        char c = rest[i];
        o[i] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
    }
    o[auth_len] = '\0';
    return TM_OK;
}

/* One pipeline in flight, from hrana_pipeline until `done` has run. */
struct pipeline_call {
    struct turso_transport *t;
    char origin[HRANA_ORIGIN_MAX];
    char url[HRANA_ORIGIN_MAX + sizeof("/v2/pipeline")];
    char *token; /* our copy for a resend; wiped when the call ends */
    size_t token_len;
    char *requests_json; /* the caller's requests serialised compactly: "[...]" */
    size_t requests_json_len;
    size_t n_requests;
    bool has_close; /* the body in flight ends with {"type":"close"} */
    long timeout_ms;
    hrana_done_fn done;
    hrana_raw_fn raw; /* may take a 2xx answer before it is parsed; NULL: never */
    void *ctx;
    /* What hrana_outcome.message points at; lives until `done` returns. */
    char message[HRANA_MESSAGE_MAX];
};

static void call_destroy(struct pipeline_call *c)
{
    if (!c)
        return;
    if (c->token) {
        sodium_memzero(c->token, c->token_len);
        free(c->token);
    }
    free(c->requests_json);
    free(c);
}

static void on_reply(const struct turso_reply *r, void *arg);

/* Posts the pipeline, with or without `close` as c->has_close says. */
static enum tm_err call_send(struct pipeline_call *c)
{
    static const char head[] = "{\"baton\":null,\"requests\":";
    static const char close_req[] = "{\"type\":\"close\"}";
    /* Room for head, the array, a comma, close and the closing "}". */
    size_t cap = sizeof(head) + c->requests_json_len + 1 + sizeof(close_req) + 2;
    char *body = malloc(cap);
    if (!body)
        return TM_ERR_NOMEM;

    size_t len = 0;
    memcpy(body, head, sizeof(head) - 1);
    len += sizeof(head) - 1;
    /* The array without its final ']', so close can join it. */
    memcpy(body + len, c->requests_json, c->requests_json_len - 1);
    len += c->requests_json_len - 1;
    if (c->has_close) {
        if (c->n_requests > 0)
            body[len++] = ',';
        memcpy(body + len, close_req, sizeof(close_req) - 1);
        len += sizeof(close_req) - 1;
    }
    memcpy(body + len, "]}", 3);
    len += 2;

    struct turso_request req = {
        .method = "POST",
        .url = c->url,
        .bearer = c->token,
        .body = body,
        .body_len = len,
        .timeout_ms = c->timeout_ms,
    };
    /* The transport copies everything, and may already be running on_reply
     * (which frees c) by the time submit returns: c is not touched after. */
    enum tm_err err = turso_transport_submit(c->t, &req, on_reply, c);
    free(body);
    return err;
}

/*
 * Makes c->message safe to show: the token (should a server ever echo it)
 * and anything like a credential masked, control bytes and bytes that are
 * not UTF-8 (such as the tail of a cut) replaced.
 */
static void message_finish(struct pipeline_call *c)
{
    redact_message(c->message, c->token_len > 0 ? c->token : NULL);
}

/* The message for a transfer that produced no HTTP status. */
static void transport_message(struct pipeline_call *c, const struct turso_reply *r)
{
    switch (r->err) {
    case TM_ERR_NETWORK:
        snprintf(c->message, sizeof(c->message), "Turso could not be reached at %s: %s", c->origin,
                 r->message);
        break;
    case TM_ERR_TIMEOUT:
        /* The call's deadline, not this pipeline's timeout, ran out. */
        if (r->is_deadline)
            snprintf(c->message, sizeof(c->message),
                     "The call ran out of time before Turso answered (%s)", c->origin);
        else if (c->timeout_ms > 0)
            snprintf(c->message, sizeof(c->message), "Turso did not answer within %ld ms (%s)",
                     c->timeout_ms, c->origin);
        else
            snprintf(c->message, sizeof(c->message), "Turso did not answer in time (%s): %s",
                     c->origin, r->message);
        break;
    case TM_ERR_TOO_LARGE:
        snprintf(c->message, sizeof(c->message), "Turso's answer from %s is too large: %s",
                 c->origin, r->message);
        break;
    case TM_ERR_CANCELLED:
        snprintf(c->message, sizeof(c->message), "The request to Turso at %s was cancelled: %s",
                 c->origin, r->message);
        break;
    default:
        snprintf(c->message, sizeof(c->message), "The request to Turso at %s failed: %s", c->origin,
                 r->message);
        break;
    }
}

/*
 * The message for a non-2xx answer, read as @libsql/hrana-client does: a
 * JSON {"message", "code"} is a Hrana error, a JSON {"error"} (sqld's auth
 * and namespace failures) is its text, anything else is quoted.
 */
static void upstream_message(struct pipeline_call *c, long status, const char *body,
                             size_t body_len)
{
    char detail[HRANA_MESSAGE_MAX - 100]; /* leaves room for the prefix */
    const char *prefix = NULL;
    json_t *root = json_loadb(body, body_len, 0, NULL);
    const char *msg = json_string_value(json_object_get(root, "message"));
    const char *code = json_string_value(json_object_get(root, "code"));
    const char *error = json_string_value(json_object_get(root, "error"));

    if (status == 401)
        prefix = "Turso rejected the database token (HTTP 401)";
    else if (status == 403)
        prefix = "The database token lacks permission (HTTP 403)";

    if (msg && code) {
        snprintf(detail, sizeof(detail), "%s (code %s)", msg, code);
    } else if (msg) {
        snprintf(detail, sizeof(detail), "%s", msg);
    } else if (error) {
        snprintf(detail, sizeof(detail), "%s", error);
    } else {
        size_t start = 0, end = body_len;
        while (start < end && (body[start] == ' ' || (body[start] >= '\t' && body[start] <= '\r')))
            start++;
        while (end > start &&
               (body[end - 1] == ' ' || (body[end - 1] >= '\t' && body[end - 1] <= '\r')))
            end--;
        size_t n = end - start;
        if (n > HRANA_TEXT_EXCERPT) {
            n = HRANA_TEXT_EXCERPT;
            /* Back off to a character boundary. */
            while (n > 0 && ((unsigned char)body[start + n] & 0xC0) == 0x80)
                n--;
        }
        if (prefix)
            snprintf(detail, sizeof(detail), "%.*s", (int)n, body + start);
        else if (n > 0)
            snprintf(detail, sizeof(detail), "Server returned HTTP status %ld: %.*s", status,
                     (int)n, body + start);
        else
            snprintf(detail, sizeof(detail), "Server returned HTTP status %ld", status);
    }
    if (prefix && detail[0])
        snprintf(c->message, sizeof(c->message), "%s: %s", prefix, detail);
    else if (prefix)
        snprintf(c->message, sizeof(c->message), "%s", prefix);
    else
        snprintf(c->message, sizeof(c->message), "%s", detail);
    json_decref(root);
}

static void on_reply(const struct turso_reply *r, void *arg)
{
    struct pipeline_call *c = arg;
    struct hrana_outcome o;
    json_t *root = NULL, *results = NULL;

    memset(&o, 0, sizeof(o));
    o.err = r->err;
    o.http_status = r->status;
    if (r->err != TM_OK) {
        transport_message(c, r);
        goto out;
    }
    if (r->status < 200 || r->status > 299) {
        if (c->has_close &&
            memmem(r->body, r->body_len, HRANA_CLOSE_REJECTED, sizeof(HRANA_CLOSE_REJECTED) - 1)) {
            /* The local tursodb: remember it and send the same pipeline without close. */
            no_close_remember(c->origin);
            c->has_close = false;
            enum tm_err err = call_send(c);
            if (err == TM_OK)
                return; /* on_reply runs again for the resend, and frees c then */
            o.err = err;
            o.http_status = 0;
            snprintf(c->message, sizeof(c->message),
                     "The request to Turso at %s could not be sent again without close: %s",
                     c->origin, tm_err_message(err));
            goto out;
        }
        o.err = TM_ERR_UPSTREAM;
        upstream_message(c, r->status, r->body, r->body_len);
        goto out;
    }

    size_t n_sent = c->n_requests + (c->has_close ? 1 : 0);
    if (c->raw && c->raw(r->body, r->body_len, n_sent, c->ctx)) {
        call_destroy(c); /* the raw reader ended the call; done never runs */
        return;
    }
    json_error_t jerr;
    /* Text values may hold NUL (\u0000). */
    root = jsonr_loadb(r->body, r->body_len, JSON_ALLOW_NUL, &jerr);
    if (!root) {
        o.err = TM_ERR_UPSTREAM;
        snprintf(c->message, sizeof(c->message), "Turso's answer from %s is not valid JSON: %s",
                 c->origin, jerr.text);
        goto out;
    }
    json_t *all = json_object_get(root, "results");
    if (!json_is_array(all)) {
        o.err = TM_ERR_UPSTREAM;
        snprintf(c->message, sizeof(c->message), "Turso's answer from %s has no results array",
                 c->origin);
        goto out;
    }
    if (json_array_size(all) != n_sent) {
        o.err = TM_ERR_UPSTREAM;
        snprintf(c->message, sizeof(c->message),
                 "Turso's answer from %s has %zu results for %zu requests", c->origin,
                 json_array_size(all), n_sent);
        goto out;
    }
    if (c->has_close) {
        /* The caller never sees the result of the close we added. */
        results = json_array();
        for (size_t i = 0; results && i < c->n_requests; i++) {
            if (json_array_append(results, json_array_get(all, i)) != 0) {
                json_decref(results);
                results = NULL;
            }
        }
    } else {
        results = json_incref(all);
    }
    if (!results) {
        o.err = TM_ERR_NOMEM;
        snprintf(c->message, sizeof(c->message), "out of memory reading Turso's answer");
        goto out;
    }
    o.results = results;

out:
    if (o.err != TM_OK) {
        message_finish(c);
        o.message = c->message;
    }
    c->done(&o, c->ctx);
    json_decref(results);
    json_decref(root);
    call_destroy(c);
}

enum tm_err hrana_pipeline(struct turso_transport *t, const char *db_url, const char *token,
                           const json_t *requests, long timeout_ms, hrana_done_fn done, void *ctx)
{
    return hrana_pipeline_raw(t, db_url, token, requests, timeout_ms, NULL, done, ctx);
}

enum tm_err hrana_pipeline_raw(struct turso_transport *t, const char *db_url, const char *token,
                               const json_t *requests, long timeout_ms, hrana_raw_fn raw,
                               hrana_done_fn done, void *ctx)
{
    struct pipeline_call *c = NULL;
    enum tm_err err = TM_ERR_INVALID;

    if (!t || !db_url || !json_is_array(requests) || !done || timeout_ms < 0)
        goto out;
    err = TM_ERR_NOMEM;
    c = calloc(1, sizeof(*c));
    if (!c)
        goto out;
    c->t = t;
    c->timeout_ms = timeout_ms;
    c->done = done;
    c->raw = raw;
    c->ctx = ctx;
    err = hrana_origin(db_url, c->origin, sizeof(c->origin));
    if (err != TM_OK) {
        err = TM_ERR_INVALID;
        goto out;
    }
    snprintf(c->url, sizeof(c->url), "%s/v2/pipeline", c->origin);
    err = TM_ERR_NOMEM;
    if (token && token[0]) {
        c->token_len = strlen(token);
        c->token = malloc(c->token_len + 1);
        if (!c->token)
            goto out;
        memcpy(c->token, token, c->token_len + 1);
    }
    c->n_requests = json_array_size(requests);
    c->requests_json = jsonw_dumps(requests, false, &c->requests_json_len);
    if (!c->requests_json)
        goto out;
    c->has_close = !no_close_has(c->origin);

    err = call_send(c);
    if (err == TM_OK)
        c = NULL; /* on_reply owns it now */
out:
    call_destroy(c);
    return err;
}

/* Where hrana_pipeline_sync waits; lives on the caller's stack. */
struct sync_state {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool is_done; /* guarded by lock, like the fields below until it is set */
    enum tm_err err;
    json_t *results;
    char *message;
    size_t message_len;
};

static void sync_done(const struct hrana_outcome *o, void *arg)
{
    struct sync_state *s = arg;
    pthread_mutex_lock(&s->lock);
    s->err = o->err;
    /* A copy, not a reference: the transport thread drops its own references
     * after this returns, and jansson's refcounts are no safe hand-off
     * between threads. Out of memory shows as an error here. */
    if (o->err == TM_OK) {
        s->results = json_deep_copy(o->results);
        if (!s->results) {
            s->err = TM_ERR_NOMEM;
            set_err(s->message, s->message_len, "out of memory copying Turso's answer");
        }
    } else if (s->message && s->message_len > 0)
        snprintf(s->message, s->message_len, "%s", o->message);
    s->is_done = true;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

enum tm_err hrana_pipeline_sync(struct turso_transport *t, const char *db_url, const char *token,
                                const json_t *requests, long timeout_ms, json_t **results_out,
                                char *message, size_t message_len)
{
    struct sync_state s;
    enum tm_err err;

    if (message && message_len > 0)
        message[0] = '\0';
    memset(&s, 0, sizeof(s));
    s.message = message;
    s.message_len = message_len;
    if (pthread_mutex_init(&s.lock, NULL) != 0)
        return TM_ERR_INTERNAL;
    if (pthread_cond_init(&s.cond, NULL) != 0) {
        pthread_mutex_destroy(&s.lock);
        return TM_ERR_INTERNAL;
    }
    err = hrana_pipeline(t, db_url, token, requests, timeout_ms, sync_done, &s);
    if (err != TM_OK) {
        char origin[HRANA_ORIGIN_MAX];
        if (db_url && hrana_origin(db_url, origin, sizeof(origin)) != TM_OK)
            set_err(message, message_len,
                    "not a valid database URL (expected https://, http:// or libsql:// and a "
                    "host)");
        else
            set_err(message, message_len, "could not send the pipeline: %s", tm_err_message(err));
    } else {
        pthread_mutex_lock(&s.lock);
        while (!s.is_done)
            pthread_cond_wait(&s.cond, &s.lock);
        pthread_mutex_unlock(&s.lock);
        err = s.err;
        if (err == TM_OK && results_out)
            *results_out = s.results;
        else
            json_decref(s.results);
    }
    pthread_cond_destroy(&s.cond);
    pthread_mutex_destroy(&s.lock);
    return err;
}

enum tm_err hrana_result_get(const json_t *result, json_t **response, const char **error_message,
                             const char **error_code)
{
    if (response)
        *response = NULL;
    if (error_message)
        *error_message = NULL;
    if (error_code)
        *error_code = NULL;
    const char *type = json_string_value(json_object_get(result, "type"));
    if (!type)
        return TM_ERR_INVALID;
    if (strcmp(type, "ok") == 0) {
        json_t *r = json_object_get(result, "response");
        if (!json_is_object(r))
            return TM_ERR_INVALID;
        if (response)
            *response = r;
        return TM_OK;
    }
    if (strcmp(type, "error") == 0) {
        const json_t *e = json_object_get(result, "error");
        const char *msg = json_string_value(json_object_get(e, "message"));
        if (error_message)
            *error_message = msg ? msg : "Turso reported an error without a message";
        if (error_code)
            *error_code = json_string_value(json_object_get(e, "code"));
        return TM_ERR_UPSTREAM;
    }
    return TM_ERR_INVALID;
}
