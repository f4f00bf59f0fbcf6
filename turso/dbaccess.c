/*
 * Database access for one call. A database URL in the credentials is used
 * as it is. With a Platform API token the database's host is looked up
 * (GET …/databases/{name} → Hostname) and a short-lived database token is
 * minted (POST …/auth/tokens, read-only for a read-only URL); both are
 * cached in memory, per platform token, until shortly before the token
 * expires. A 401 from the database on a minted token drops it, looks the
 * database up again, mints anew and retries once. Failures found before
 * anything is sent are delivered through the same callback as Turso's
 * own, so that every tool has one error path.
 * Thread: any; the steps of a call after the first run where the transport
 * runs callbacks: a callback thread, or the thread that drove the
 * connection (see callbacks_never_block).
 */
#include "dbaccess.h"

#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "redact.h"

/* Hosts and tokens held at once; the least recently used goes first when full. */
#define DBACCESS_CACHE_MAX 1024
/* What a minted token is asked to live, and how long before its end it is dropped. */
#define DBACCESS_TOKEN_EXPIRATION "1h"
#define DBACCESS_TOKEN_TTL_S      3600LL
#define DBACCESS_EXPIRY_MARGIN_S  300LL
/* Organization and database names longer than this are used but not cached. */
#define DBACCESS_NAME_MAX    128
#define DBACCESS_ORIGIN_MAX  300
#define DBACCESS_MESSAGE_MAX 1024
/* Minted tokens longer than this are refused: Turso's are a few hundred bytes. */
#define DBACCESS_TOKEN_MAX 16384

/* One cached host and token: whose, for what, until when. */
struct entry {
    bool is_used;
    unsigned char owner[crypto_generichash_BYTES]; /* BLAKE2b of the platform token */
    char org[DBACCESS_NAME_MAX];
    char db[DBACCESS_NAME_MAX];
    bool is_read_only; /* the token was minted read-only */
    char origin[DBACCESS_ORIGIN_MAX];
    char *token; /* the minted token; wiped when the entry goes */
    size_t token_len;
    long long expires_at;         /* Unix seconds after which the entry is not used */
    unsigned long long last_used; /* d->clock when last found or stored */
};

struct dbaccess {
    struct turso_transport *transport; /* borrowed */
    struct platform *platform;
    char *db_scheme;
    /* Guards entries and clock. Taken briefly by any thread to look up, store
     * or drop an entry; never held during I/O or while a callback runs. */
    pthread_mutex_t lock;
    bool has_lock;
    struct entry *entries; /* DBACCESS_CACHE_MAX of them */
    unsigned long long clock;
};

enum op_kind { OP_PIPELINE, OP_GET };

/* One call on the Platform API path, from dbaccess_pipeline/get until its callback ran. */
struct op {
    struct dbaccess *d;
    const struct creds *c; /* borrowed until the callback has run */
    enum op_kind kind;
    char *db;                                      /* the database name (our copy) */
    unsigned char owner[crypto_generichash_BYTES]; /* BLAKE2b of c->platform_token */
    json_t *requests;                              /* OP_PIPELINE: our deep copy */
    char *path;                                    /* OP_GET: the path to get */
    hrana_done_fn done;
    dbaccess_get_fn get_done;
    void *ctx;
    long timeout_ms;
    long long deadline_ms; /* monotonic; 0: none */
    char origin[DBACCESS_ORIGIN_MAX];
    char *token; /* the database token in use; wiped */
    size_t token_len;
    bool is_retry; /* already minted anew after a 401 */
    char message[DBACCESS_MESSAGE_MAX];
};

static void entry_wipe(struct entry *e)
{
    if (e->token) {
        sodium_memzero(e->token, e->token_len);
        free(e->token);
    }
    sodium_memzero(e, sizeof(*e));
}

static bool is_scheme_ok(const char *s)
{
    return s && (strcmp(s, "https") == 0 || strcmp(s, "http") == 0);
}

enum tm_err dbaccess_create(const struct dbaccess_opts *opts, struct dbaccess **out)
{
    enum tm_err err = TM_ERR_NOMEM;
    if (!opts || !out)
        return TM_ERR_INVALID;
    const char *scheme = opts->db_scheme ? opts->db_scheme : "https";
    if (!is_scheme_ok(scheme))
        return TM_ERR_INVALID;
    struct dbaccess *d = calloc(1, sizeof(*d));
    if (!d)
        return TM_ERR_NOMEM;
    d->transport = opts->transport;
    d->db_scheme = strdup(scheme);
    d->entries = calloc(DBACCESS_CACHE_MAX, sizeof(*d->entries));
    if (!d->db_scheme || !d->entries)
        goto fail;
    if (pthread_mutex_init(&d->lock, NULL) != 0) {
        err = TM_ERR_INTERNAL;
        goto fail;
    }
    d->has_lock = true;
    struct platform_opts popts = {.transport = opts->transport, .api_url = opts->api_url};
    err = platform_create(&popts, &d->platform);
    if (err != TM_OK)
        goto fail;
    *out = d;
    return TM_OK;
fail:
    dbaccess_destroy(&d);
    return err;
}

void dbaccess_destroy(struct dbaccess **dp)
{
    if (!dp || !*dp)
        return;
    struct dbaccess *d = *dp;
    if (d->entries) {
        for (size_t i = 0; i < DBACCESS_CACHE_MAX; i++)
            entry_wipe(&d->entries[i]);
        free(d->entries);
    }
    if (d->has_lock)
        pthread_mutex_destroy(&d->lock);
    platform_destroy(&d->platform);
    free(d->db_scheme);
    free(d);
    *dp = NULL;
}

struct platform *dbaccess_platform(struct dbaccess *d)
{
    return d->platform;
}

const char *dbaccess_database_name(const struct creds *c, const char *name)
{
    return name && *name ? name : c->default_db;
}

static bool is_default_name(const struct creds *c, const char *name)
{
    return !name || !*name || (c->default_db && strcmp(name, c->default_db) == 0);
}

bool dbaccess_uses_platform(const struct creds *c, const char *name)
{
    if (!c->platform_token || !c->org)
        return false;
    return !(c->db_url && is_default_name(c, name));
}

bool dbaccess_is_read_only_enforced(const struct creds *c)
{
    return c->platform_token != NULL && c->org != NULL && c->db_url == NULL;
}

/* ---- the cache ---- */

static long long now_s(void)
{
    return (long long)time(NULL);
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool is_cacheable(const char *org, const char *db)
{
    return strlen(org) < DBACCESS_NAME_MAX && strlen(db) < DBACCESS_NAME_MAX;
}

/* The entry for this key, or NULL. Holding d->lock. */
static struct entry *cache_lookup(struct dbaccess *d, const unsigned char *owner, const char *org,
                                  const char *db, bool is_read_only)
{
    for (size_t i = 0; i < DBACCESS_CACHE_MAX; i++) {
        struct entry *e = &d->entries[i];
        if (e->is_used && e->is_read_only == is_read_only && strcmp(e->db, db) == 0 &&
            strcmp(e->org, org) == 0 && sodium_memcmp(e->owner, owner, sizeof(e->owner)) == 0)
            return e;
    }
    return NULL;
}

/* Copies a live entry's origin and token into the op; false on a miss. */
static bool cache_find(struct op *op)
{
    struct dbaccess *d = op->d;
    bool is_hit = false;
    if (!is_cacheable(op->c->org, op->db))
        return false;
    pthread_mutex_lock(&d->lock);
    struct entry *e = cache_lookup(d, op->owner, op->c->org, op->db, op->c->is_read_only);
    if (e && e->expires_at <= now_s()) {
        entry_wipe(e);
        e = NULL;
    }
    if (e) {
        op->token = malloc(e->token_len + 1);
        if (op->token) {
            memcpy(op->token, e->token, e->token_len + 1);
            op->token_len = e->token_len;
            memcpy(op->origin, e->origin, sizeof(op->origin));
            e->last_used = ++d->clock;
            is_hit = true;
        }
    }
    pthread_mutex_unlock(&d->lock);
    return is_hit;
}

/* Stores the op's origin and token until `expires_at`; out of memory only skips caching. */
static void cache_put(struct op *op, long long expires_at)
{
    struct dbaccess *d = op->d;
    if (!is_cacheable(op->c->org, op->db) || expires_at <= now_s())
        return;
    char *token = malloc(op->token_len + 1);
    if (!token)
        return;
    memcpy(token, op->token, op->token_len + 1);

    pthread_mutex_lock(&d->lock);
    struct entry *e = cache_lookup(d, op->owner, op->c->org, op->db, op->c->is_read_only);
    if (!e) {
        /* A free slot, else an expired one, else the least recently used. */
        struct entry *lru = NULL;
        long long now = now_s();
        for (size_t i = 0; i < DBACCESS_CACHE_MAX && !e; i++) {
            struct entry *x = &d->entries[i];
            if (!x->is_used || x->expires_at <= now)
                e = x;
            else if (!lru || x->last_used < lru->last_used)
                lru = x;
        }
        if (!e)
            e = lru;
    }
    entry_wipe(e);
    e->is_used = true;
    memcpy(e->owner, op->owner, sizeof(e->owner));
    snprintf(e->org, sizeof(e->org), "%s", op->c->org);
    snprintf(e->db, sizeof(e->db), "%s", op->db);
    e->is_read_only = op->c->is_read_only;
    memcpy(e->origin, op->origin, sizeof(e->origin));
    e->token = token;
    e->token_len = op->token_len;
    e->expires_at = expires_at;
    e->last_used = ++d->clock;
    pthread_mutex_unlock(&d->lock);
}

/* Drops the op's entry if it still holds the token the op used (a newer one stays). */
static void cache_drop(struct op *op)
{
    struct dbaccess *d = op->d;
    if (!op->token || !is_cacheable(op->c->org, op->db))
        return;
    pthread_mutex_lock(&d->lock);
    struct entry *e = cache_lookup(d, op->owner, op->c->org, op->db, op->c->is_read_only);
    if (e && e->token_len == op->token_len &&
        sodium_memcmp(e->token, op->token, op->token_len) == 0)
        entry_wipe(e);
    pthread_mutex_unlock(&d->lock);
}

void dbaccess_forget(struct dbaccess *d, const char *org, const char *name)
{
    if (!d || !org || !name)
        return;
    pthread_mutex_lock(&d->lock);
    for (size_t i = 0; i < DBACCESS_CACHE_MAX; i++) {
        struct entry *e = &d->entries[i];
        if (e->is_used && strcmp(e->org, org) == 0 && strcmp(e->db, name) == 0)
            entry_wipe(e);
    }
    pthread_mutex_unlock(&d->lock);
}

/* ---- one call on the Platform API path ---- */

static void op_destroy(struct op *op)
{
    if (!op)
        return;
    if (op->token) {
        sodium_memzero(op->token, op->token_len);
        free(op->token);
    }
    json_decref(op->requests);
    free(op->path);
    free(op->db);
    free(op);
}

static void op_drop_token(struct op *op)
{
    if (op->token) {
        sodium_memzero(op->token, op->token_len);
        free(op->token);
    }
    op->token = NULL;
    op->token_len = 0;
}

/* Ends the op with a failure found on our side (message in op->message), then frees it. */
static void op_fail(struct op *op, enum tm_err err, long status)
{
    redact_message(op->message, op->c->platform_token);
    if (op->kind == OP_PIPELINE) {
        struct hrana_outcome o = {.err = err, .http_status = status, .message = op->message};
        op->done(&o, op->ctx);
    } else {
        struct dbaccess_get_outcome o = {.err = err, .message = op->message, .body = ""};
        op->get_done(&o, op->ctx);
    }
    op_destroy(op);
}

/* Time left for the next step: 0 means the transport's default; -1 means none is left. */
static long op_remaining(struct op *op)
{
    if (op->deadline_ms == 0)
        return 0;
    long long left = op->deadline_ms - now_ms();
    return left > 0 ? (long)left : -1;
}

static void op_timed_out(struct op *op)
{
    snprintf(op->message, sizeof(op->message),
             "Turso did not answer within %ld ms (reaching database \"%.100s\")", op->timeout_ms,
             op->db);
    op_fail(op, TM_ERR_TIMEOUT, 0);
}

/*
 * A Platform API step that ran out of time had the op's time left as its
 * timeout (when the op has a deadline): said as the op's own timeout, not
 * the few ms less that were left when the step began.
 */
static bool is_op_out_of_time(const struct op *op, enum tm_err err)
{
    return err == TM_ERR_TIMEOUT && op->deadline_ms != 0;
}

static void op_resolve(struct op *op);
static void op_send(struct op *op);

static void on_pipeline(const struct hrana_outcome *o, void *arg)
{
    struct op *op = arg;
    if (o->err == TM_ERR_UPSTREAM && o->http_status == 401 && !op->is_retry) {
        /* Expired or rotated: never use that token again, and try once with a new one. */
        cache_drop(op);
        op_drop_token(op);
        op->is_retry = true;
        op_resolve(op);
        return;
    }
    if (o->err == TM_ERR_NETWORK)
        cache_drop(op); /* the host may have moved: look it up next time */
    if (o->err == TM_ERR_UPSTREAM && o->http_status == 403 && op->c->is_read_only) {
        struct hrana_outcome ro = *o;
        snprintf(op->message, sizeof(op->message),
                 "This URL is read-only: Turso refused the request under the read-only token it "
                 "was given. %s",
                 o->message ? o->message : "");
        ro.message = op->message;
        op->done(&ro, op->ctx);
    } else {
        op->done(o, op->ctx);
    }
    op_destroy(op);
}

static void on_get(const struct turso_reply *r, void *arg)
{
    struct op *op = arg;
    struct dbaccess_get_outcome o = {
        .err = r->err, .http_status = r->status, .body = r->body, .body_len = r->body_len};
    if (r->err == TM_OK && r->status == 401 && !op->is_retry && op->c->platform_token) {
        cache_drop(op);
        op_drop_token(op);
        op->is_retry = true;
        op_resolve(op);
        return;
    }
    if (r->err != TM_OK) {
        if (r->err == TM_ERR_NETWORK)
            cache_drop(op);
        snprintf(op->message, sizeof(op->message), "The request to Turso at %s failed: %s",
                 op->origin, r->message);
        redact_message(op->message, op->token);
        o.message = op->message;
    }
    op->get_done(&o, op->ctx);
    op_destroy(op);
}

/* Sends the pipeline or the GET to op->origin with op->token. */
static void op_send(struct op *op)
{
    long left = op_remaining(op);
    if (left < 0) {
        op_timed_out(op);
        return;
    }
    enum tm_err err;
    if (op->kind == OP_PIPELINE) {
        err = hrana_pipeline(op->d->transport, op->origin, op->token, op->requests, left,
                             on_pipeline, op);
    } else {
        char url[DBACCESS_ORIGIN_MAX + 1024];
        if ((size_t)snprintf(url, sizeof(url), "%s%s", op->origin, op->path) >= sizeof(url)) {
            err = TM_ERR_TOO_LARGE;
        } else {
            struct turso_request req = {
                .method = "GET", .url = url, .bearer = op->token, .timeout_ms = left};
            err = turso_transport_submit(op->d->transport, &req, on_get, op);
        }
    }
    if (err != TM_OK) {
        snprintf(op->message, sizeof(op->message),
                 "The request to database \"%.100s\" at %s could not be sent: %s", op->db,
                 op->origin, tm_err_message(err));
        op_fail(op, err, 0);
    }
}

/* Unix seconds after which a token minted now should not be used any more. */
static long long token_deadline(const char *jwt)
{
    long long now = now_s();
    long long end = now + DBACCESS_TOKEN_TTL_S;
    long long exp = 0;
    char access[4];
    if (platform_jwt_claims(jwt, &exp, access) == TM_OK && exp > 0 && exp < end)
        end = exp;
    return end - DBACCESS_EXPIRY_MARGIN_S;
}

static void on_token(struct platform_reply *r, void *arg)
{
    struct op *op = arg;
    const char *jwt = NULL;
    if (is_op_out_of_time(op, r->err)) {
        op_timed_out(op);
        goto out;
    }
    if (r->err != TM_OK) {
        snprintf(op->message, sizeof(op->message),
                 "Could not mint a database token for \"%.100s\": %s", op->db, r->message);
        op_fail(op, r->err, r->status);
        goto out;
    }
    jwt = json_string_value(json_object_get(r->json, "jwt"));
    size_t len = jwt ? strlen(jwt) : 0;
    if (len == 0 || len > DBACCESS_TOKEN_MAX || strpbrk(jwt, " \r\n\t")) {
        snprintf(op->message, sizeof(op->message),
                 "The Turso Platform API minted no usable database token for \"%.100s\" (its "
                 "answer has no jwt string)",
                 op->db);
        op_fail(op, TM_ERR_UPSTREAM, r->status);
        goto out;
    }
    long long exp = 0;
    char access[4] = "";
    platform_jwt_claims(jwt, &exp, access);
    if (op->c->is_read_only && strcmp(access, "rw") == 0) {
        /* Never let a read-only URL write because Turso minted the wrong kind. */
        snprintf(op->message, sizeof(op->message),
                 "Turso minted a read-write token for \"%.100s\" where a read-only one was asked "
                 "for; this read-only URL will not use it.",
                 op->db);
        op_fail(op, TM_ERR_UPSTREAM, r->status);
        goto out;
    }
    op->token = malloc(len + 1);
    if (!op->token) {
        snprintf(op->message, sizeof(op->message), "out of memory");
        op_fail(op, TM_ERR_NOMEM, 0);
        goto out;
    }
    memcpy(op->token, jwt, len + 1);
    op->token_len = len;
    cache_put(op, token_deadline(jwt));
    op_send(op);
out:
    json_decref(r->json);
}

/* POST …/databases/{db}/auth/tokens: a token for this op, read-only for a read-only URL. */
static void op_mint(struct op *op)
{
    char path[1024];
    enum tm_err err = platform_path(
        path, sizeof(path), "/v1/organizations/%s/databases/%s/auth/tokens", op->c->org, op->db);
    if (err == TM_OK)
        err = platform_query_add(path, sizeof(path), "expiration", DBACCESS_TOKEN_EXPIRATION);
    if (err == TM_OK)
        err = platform_query_add(path, sizeof(path), "authorization",
                                 op->c->is_read_only ? "read-only" : "full-access");
    long left = op_remaining(op);
    if (err == TM_OK && left < 0) {
        op_timed_out(op);
        return;
    }
    json_t *body = NULL;
    if (err == TM_OK) {
        body = json_pack("{s:{s:{s:[]}}}", "permissions", "read_attach", "databases");
        err = body ? TM_OK : TM_ERR_NOMEM;
    }
    if (err == TM_OK) {
        struct platform_request req = {
            .method = "POST", .path = path, .body = body, .timeout_ms = left};
        err = platform_call(op->d->platform, op->c->platform_token, &req, on_token, op);
    }
    json_decref(body);
    if (err != TM_OK) {
        snprintf(op->message, sizeof(op->message),
                 "Could not ask Turso for a token for database \"%.100s\": %s", op->db,
                 tm_err_message(err));
        op_fail(op, err, 0);
    }
}

/* A Hostname as Turso gives it: letters, digits, '-', '.', and a :port for local servers. */
static bool is_hostname_ok(const char *h)
{
    size_t n = strlen(h);
    if (n == 0 || n > 253)
        return false;
    for (const char *p = h; *p; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.' || c == ':'))
            return false;
    }
    return true;
}

static void on_database(struct platform_reply *r, void *arg)
{
    struct op *op = arg;
    if (is_op_out_of_time(op, r->err)) {
        op_timed_out(op);
        goto out;
    }
    if (r->err == TM_ERR_NOT_FOUND) {
        snprintf(op->message, sizeof(op->message),
                 "There is no database \"%.100s\" in organization \"%.100s\" that this token can "
                 "see. %s",
                 op->db, op->c->org, r->message);
        op_fail(op, r->err, r->status);
        goto out;
    }
    if (r->err != TM_OK) {
        snprintf(op->message, sizeof(op->message), "Could not look up database \"%.100s\": %s",
                 op->db, r->message);
        op_fail(op, r->err, r->status);
        goto out;
    }
    const char *host =
        json_string_value(json_object_get(json_object_get(r->json, "database"), "Hostname"));
    char url[DBACCESS_ORIGIN_MAX];
    if (!host || !is_hostname_ok(host) ||
        (size_t)snprintf(url, sizeof(url), "%s://%s", op->d->db_scheme, host) >= sizeof(url) ||
        hrana_origin(url, op->origin, sizeof(op->origin)) != TM_OK) {
        snprintf(op->message, sizeof(op->message),
                 "The Turso Platform API gave no usable Hostname for database \"%.100s\"", op->db);
        op_fail(op, TM_ERR_UPSTREAM, r->status);
        goto out;
    }
    op_mint(op);
out:
    json_decref(r->json);
}

/* GET …/databases/{db}: where the database lives. */
static void op_resolve(struct op *op)
{
    char path[1024];
    long left = op_remaining(op);
    if (left < 0) {
        op_timed_out(op);
        return;
    }
    enum tm_err err =
        platform_path(path, sizeof(path), "/v1/organizations/%s/databases/%s", op->c->org, op->db);
    if (err == TM_OK) {
        struct platform_request req = {.method = "GET", .path = path, .timeout_ms = left};
        err = platform_call(op->d->platform, op->c->platform_token, &req, on_database, op);
    }
    if (err != TM_OK) {
        snprintf(op->message, sizeof(op->message),
                 "Could not look up database \"%.100s\" on the Turso Platform API: %s", op->db,
                 tm_err_message(err));
        op_fail(op, err, 0);
    }
}

/* Builds an op for the Platform API path; NULL on out of memory. */
static struct op *op_create(struct dbaccess *d, const struct creds *c, const char *db,
                            long timeout_ms, void *ctx)
{
    struct op *op = calloc(1, sizeof(*op));
    if (!op)
        return NULL;
    op->d = d;
    op->c = c;
    op->ctx = ctx;
    op->timeout_ms = timeout_ms;
    op->deadline_ms = timeout_ms > 0 ? now_ms() + timeout_ms : 0;
    op->db = strdup(db);
    if (!op->db) {
        free(op);
        return NULL;
    }
    crypto_generichash(op->owner, sizeof(op->owner), (const unsigned char *)c->platform_token,
                       strlen(c->platform_token), NULL, 0);
    return op;
}

static void op_start(struct op *op)
{
    if (cache_find(op))
        op_send(op);
    else
        op_resolve(op);
}

/* Delivers a failure found before sending, through the caller's callback. */
static enum tm_err fail(enum tm_err err, const char *message, hrana_done_fn done, void *ctx)
{
    struct hrana_outcome o = {.err = err, .message = message};
    done(&o, ctx);
    return TM_OK;
}

static enum tm_err fail_get(enum tm_err err, const char *message, dbaccess_get_fn done, void *ctx)
{
    struct dbaccess_get_outcome o = {.err = err, .message = message, .body = ""};
    done(&o, ctx);
    return TM_OK;
}

/*
 * Why `c` cannot reach database `name` without the Platform API, into
 * message; TM_ERR_NOT_FOUND. Only for a name the Platform path does not take.
 */
static enum tm_err unreachable(const struct creds *c, const char *name, char *message, size_t len)
{
    const char *db = dbaccess_database_name(c, name);
    if (c->db_url)
        snprintf(message, len, "This URL reaches only its own database%s%s%s, not \"%.64s\".",
                 c->default_db ? " \"" : "", c->default_db ? c->default_db : "",
                 c->default_db ? "\"" : "", db ? db : "");
    else if (c->platform_token)
        snprintf(message, len,
                 "This URL was set up without an organization, so it cannot find databases.");
    else
        snprintf(message, len, "This URL was set up without a database URL, so it cannot run SQL.");
    return TM_ERR_NOT_FOUND;
}

static const char no_database_named[] =
    "Say which database: pass `database` (its name). This URL has no default database.";

enum tm_err dbaccess_pipeline_raw(struct dbaccess *d, const struct creds *c, const char *name,
                                  const json_t *requests, long timeout_ms, hrana_raw_fn raw,
                                  hrana_done_fn done, void *ctx)
{
    /* Only the direct path reads answers raw; the Platform path has its own retries. */
    if (c->db_url && is_default_name(c, name))
        return hrana_pipeline_raw(d->transport, c->db_url, c->db_token, requests, timeout_ms, raw,
                                  done, ctx);
    return dbaccess_pipeline(d, c, name, requests, timeout_ms, done, ctx);
}

enum tm_err dbaccess_pipeline(struct dbaccess *d, const struct creds *c, const char *name,
                              const json_t *requests, long timeout_ms, hrana_done_fn done,
                              void *ctx)
{
    char message[300];
    if (c->db_url && is_default_name(c, name))
        return hrana_pipeline(d->transport, c->db_url, c->db_token, requests, timeout_ms, done,
                              ctx);
    if (!dbaccess_uses_platform(c, name))
        return fail(unreachable(c, name, message, sizeof(message)), message, done, ctx);
    const char *db = dbaccess_database_name(c, name);
    if (!db)
        return fail(TM_ERR_INVALID, no_database_named, done, ctx);
    if (!json_is_array(requests) || !done || timeout_ms < 0)
        return TM_ERR_INVALID;
    struct op *op = op_create(d, c, db, timeout_ms, ctx);
    if (!op)
        return TM_ERR_NOMEM;
    op->kind = OP_PIPELINE;
    op->done = done;
    /* A copy of our own: later steps run on the transport thread, after the caller let go. */
    op->requests = json_deep_copy(requests);
    if (!op->requests) {
        op_destroy(op);
        return TM_ERR_NOMEM;
    }
    op_start(op);
    return TM_OK;
}

enum tm_err dbaccess_get(struct dbaccess *d, const struct creds *c, const char *name,
                         const char *path, long timeout_ms, dbaccess_get_fn done, void *ctx)
{
    char message[300];
    if (!path || path[0] != '/' || strpbrk(path, " \r\n\t#") || !done || timeout_ms < 0)
        return TM_ERR_INVALID;
    if (c->db_url && is_default_name(c, name)) {
        struct op *op = calloc(1, sizeof(*op));
        if (!op)
            return TM_ERR_NOMEM;
        op->d = d;
        op->c = c;
        op->kind = OP_GET;
        op->get_done = done;
        op->ctx = ctx;
        op->is_retry = true; /* the URL's own token: nothing to mint anew */
        op->timeout_ms = timeout_ms;
        op->deadline_ms = timeout_ms > 0 ? now_ms() + timeout_ms : 0;
        op->db = strdup(c->default_db ? c->default_db : "");
        op->path = strdup(path);
        if (c->db_token) {
            op->token_len = strlen(c->db_token);
            op->token = malloc(op->token_len + 1);
            if (op->token)
                memcpy(op->token, c->db_token, op->token_len + 1);
        }
        if (!op->db || !op->path || (c->db_token && !op->token)) {
            op_destroy(op);
            return TM_ERR_NOMEM;
        }
        if (hrana_origin(c->db_url, op->origin, sizeof(op->origin)) != TM_OK) {
            op_destroy(op);
            return fail_get(TM_ERR_INVALID, "This URL's database URL is not valid.", done, ctx);
        }
        op_send(op);
        return TM_OK;
    }
    if (!dbaccess_uses_platform(c, name))
        return fail_get(unreachable(c, name, message, sizeof(message)), message, done, ctx);
    const char *db = dbaccess_database_name(c, name);
    if (!db)
        return fail_get(TM_ERR_INVALID, no_database_named, done, ctx);
    struct op *op = op_create(d, c, db, timeout_ms, ctx);
    if (!op)
        return TM_ERR_NOMEM;
    op->kind = OP_GET;
    op->get_done = done;
    op->path = strdup(path);
    if (!op->path) {
        op_destroy(op);
        return TM_ERR_NOMEM;
    }
    op_start(op);
    return TM_OK;
}
