/*
 * `turso-mcp user add|list|revoke|rotate`, `keys rotate|status`, `store
 * check`, `keygen` and `healthcheck`. `add` checks the credentials against
 * Turso before anything is stored (a `SELECT 1` through the pipeline for a
 * database token, `GET /v1/organizations` for a Platform API token), then
 * seals them and prints the user's URL once; `rotate` takes the current URL
 * on stdin (only its holder can open the record) and prints the new one.
 * Secrets are read from files or stdin and wiped after use.
 */
#include "admin.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "credcheck.h"
#include "creds.h"
#include "dbaccess.h"
#include "hrana.h"
#include "log.h"
#include "store.h"
#include "turso_transport.h"

/* Longest secret accepted from a file: Turso's JWTs are well under 4 KiB. */
#define SECRET_MAX 16384

/* Reads a secret from `path` ("-" for stdin) without its trailing white space. */
static char *read_secret(const char *path, char *why, size_t why_len)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    if (!f) {
        snprintf(why, why_len, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = sodium_malloc(SECRET_MAX + 1);
    size_t len = buf ? fread(buf, 1, SECRET_MAX + 1, f) : 0;
    bool is_error = f != stdin ? ferror(f) : false;
    if (f != stdin)
        fclose(f);
    if (!buf || is_error || len > SECRET_MAX) {
        snprintf(why, why_len, "cannot read a secret of at most %d bytes from %s", SECRET_MAX,
                 path);
        sodium_free(buf);
        return NULL;
    }
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' ' ||
                       buf[len - 1] == '\t'))
        len--;
    buf[len] = '\0';
    char *s = strdup(buf);
    sodium_free(buf); /* sodium_free wipes before freeing */
    if (!s)
        snprintf(why, why_len, "out of memory");
    return s;
}

enum tm_err admin_open_store(const struct config *cfg, struct store **out, bool *created_key)
{
    const char *key_file =
        cfg->master_key_file && *cfg->master_key_file ? cfg->master_key_file : NULL;
    enum tm_err err = store_open(cfg->data_dir, key_file, out, created_key);
    if (err == TM_OK)
        return TM_OK;
    if (key_file && err == TM_ERR_NOT_FOUND)
        fprintf(stderr,
                "The master key file %s does not exist. Create one with\n"
                "  turso-mcp keygen > FILE\n"
                "and keep it: it opens the store in %s.\n",
                key_file, cfg->data_dir);
    else
        fprintf(stderr, "cannot open the store in %s%s%s: %s (the log line above says why)\n",
                cfg->data_dir, key_file ? " with the master key in " : "", key_file ? key_file : "",
                tm_err_message(err));
    return err;
}

static bool is_db_url(const char *u)
{
    return strncmp(u, "https://", 8) == 0 || strncmp(u, "http://", 7) == 0 ||
           strncmp(u, "libsql://", 9) == 0;
}

/* Checks the credentials with Turso as the signup page does; 0 when Turso accepts them. */
/* Where sync_pipeline waits; lives on the caller's stack. */
struct pipeline_wait {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool is_done; /* guarded by lock, as the fields below until it is set */
    enum tm_err err;
    char message[512];
};

static void pipeline_done(const struct hrana_outcome *o, void *arg)
{
    struct pipeline_wait *w = arg;
    pthread_mutex_lock(&w->lock);
    w->err = o->err;
    if (o->err != TM_OK) {
        snprintf(w->message, sizeof(w->message), "%s", o->message);
    } else {
        json_t *response = NULL;
        const char *emsg = NULL, *code = NULL;
        if (hrana_result_get(json_array_get(o->results, 0), &response, &emsg, &code) != TM_OK) {
            w->err = TM_ERR_UPSTREAM;
            snprintf(w->message, sizeof(w->message), "SELECT 1 failed: %s",
                     emsg ? emsg : "unreadable answer");
        }
    }
    w->is_done = true;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

/* Runs SELECT 1 on database `name` the way the server will reach it; 0 when it answers. */
static int check_through_platform(struct dbaccess *db, const struct creds *c, const char *name,
                                  long timeout_ms)
{
    struct pipeline_wait w;
    memset(&w, 0, sizeof(w));
    json_t *requests = json_pack("[{s:s, s:{s:s}}]", "type", "execute", "stmt", "sql", "SELECT 1");
    if (!requests || pthread_mutex_init(&w.lock, NULL) != 0) {
        json_decref(requests);
        return 1;
    }
    pthread_cond_init(&w.cond, NULL);
    enum tm_err rc = dbaccess_pipeline(db, c, name, requests, timeout_ms, pipeline_done, &w);
    json_decref(requests);
    if (rc == TM_OK) {
        pthread_mutex_lock(&w.lock);
        while (!w.is_done)
            pthread_cond_wait(&w.cond, &w.lock);
        pthread_mutex_unlock(&w.lock);
        rc = w.err;
    } else {
        snprintf(w.message, sizeof(w.message), "%s", tm_err_message(rc));
    }
    pthread_cond_destroy(&w.cond);
    pthread_mutex_destroy(&w.lock);
    if (rc != TM_OK) {
        const char *shown = dbaccess_database_name(c, name);
        fprintf(stderr, "Database \"%s\" could not be reached through the Platform API: %s\n",
                shown ? shown : "(none named)", w.message);
        return 1;
    }
    return 0;
}

/*
 * Checks the credentials as signup does (credcheck), then, when the server
 * will reach the default database through the Platform API (no database
 * URL for it), that it exists and answers SELECT 1 with a minted token.
 */
static int check_creds(struct turso_transport *t, const struct config *cfg, const struct creds *c)
{
    struct credcheck_result r;
    enum tm_err err = credcheck_run(t, cfg->api_url, c, cfg->upstream_timeout_ms, &r);
    if (err != TM_OK) {
        fprintf(stderr, "user add: cannot check the credentials: %s\n", tm_err_message(err));
        return 1;
    }
    if (r.verdict == CREDCHECK_OK) {
        if (!c->platform_token || !c->default_db || !dbaccess_uses_platform(c, NULL))
            return 0;
        struct dbaccess *db = NULL;
        struct dbaccess_opts dopts = {
            .transport = t, .api_url = cfg->api_url, .db_scheme = cfg->db_scheme};
        err = dbaccess_create(&dopts, &db);
        if (err != TM_OK) {
            fprintf(stderr, "user add: cannot use api_url %s with db_scheme %s: %s\n", cfg->api_url,
                    cfg->db_scheme, tm_err_message(err));
            return 1;
        }
        int ret = check_through_platform(db, c, NULL, cfg->upstream_timeout_ms);
        dbaccess_destroy(&db);
        return ret;
    }
    if (strcmp(r.what, "database") == 0)
        fprintf(stderr, "The database did not accept these credentials: %s\n", r.message);
    else
        fprintf(stderr, "%s\n", r.message);
    return 1;
}

static int user_add(const struct config *cfg, int argc, char **argv)
{
    int rc = 2;
    struct creds c = {0};
    struct store *store = NULL;
    struct turso_transport *t = NULL;
    char token[STORE_TOKEN_LEN + 1] = "";
    char id[STORE_ID_LEN + 1] = "";
    char why[512];
    char *base = NULL;
    const char *db_token_file = NULL, *platform_token_file = NULL;

    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        char **field = NULL;
        if (strcmp(a, "--read-only") == 0) {
            c.is_read_only = true;
            continue;
        }
        if (strcmp(a, "--label") == 0)
            field = &c.label;
        else if (strcmp(a, "--db-url") == 0)
            field = &c.db_url;
        else if (strcmp(a, "--org") == 0)
            field = &c.org;
        else if (strcmp(a, "--default-db") == 0)
            field = &c.default_db;
        else if (strcmp(a, "--db-token-file") == 0 && v) {
            db_token_file = v;
            i++;
            continue;
        } else if (strcmp(a, "--platform-token-file") == 0 && v) {
            platform_token_file = v;
            i++;
            continue;
        } else if (strcmp(a, "--db-token") == 0 || strcmp(a, "--platform-token") == 0) {
            fprintf(stderr,
                    "%s: secrets are never taken on the command line (they would sit in "
                    "the shell history and the process list); use %s-file FILE or - for "
                    "stdin\n",
                    a, a);
            goto out;
        } else {
            fprintf(stderr, "user add: unknown option %s\n", a);
            goto out;
        }
        if (!v) {
            fprintf(stderr, "user add: %s needs a value\n", a);
            goto out;
        }
        free(*field);
        *field = strdup(v);
        if (!*field)
            goto out;
        i++;
    }
    if (!c.label || !*c.label) {
        fprintf(stderr, "user add: --label NAME is required\n");
        goto out;
    }
    if (!c.db_url && !platform_token_file) {
        fprintf(stderr, "user add: give --db-url URL --db-token-file FILE, or "
                        "--platform-token-file FILE --org ORG (or both)\n");
        goto out;
    }
    if (c.db_url && !is_db_url(c.db_url)) {
        fprintf(stderr, "user add: --db-url must start with https://, http:// or libsql://\n");
        goto out;
    }
    if (c.db_url && !db_token_file) {
        fprintf(stderr, "user add: --db-url needs --db-token-file FILE (- for stdin)\n");
        goto out;
    }
    if (platform_token_file && !c.org) {
        fprintf(stderr, "user add: --platform-token-file needs --org ORG\n");
        goto out;
    }
    if (c.org && !platform_token_file) {
        fprintf(stderr, "user add: --org ORG goes with --platform-token-file FILE\n");
        goto out;
    }
    rc = 1;
    if (db_token_file) {
        c.db_token = read_secret(db_token_file, why, sizeof(why));
        if (!c.db_token) {
            fprintf(stderr, "user add: %s\n", why);
            goto out;
        }
    }
    if (platform_token_file) {
        c.platform_token = read_secret(platform_token_file, why, sizeof(why));
        if (!c.platform_token) {
            fprintf(stderr, "user add: %s\n", why);
            goto out;
        }
    }
    struct turso_transport_opts topts = {.connect_timeout_ms = cfg->connect_timeout_ms,
                                         .total_timeout_ms = cfg->upstream_timeout_ms,
                                         .user_agent = "turso-mcp/" TM_VERSION,
                                         .n_threads = 1}; /* one request at a time */
    if (turso_transport_start(&topts, &t) != TM_OK) {
        fprintf(stderr, "user add: cannot start the HTTP client\n");
        goto out;
    }
    if (check_creds(t, cfg, &c) != 0)
        goto out;

    bool is_new_key = false;
    if (admin_open_store(cfg, &store, &is_new_key) != TM_OK)
        goto out;
    enum tm_err err;
    if (is_new_key)
        fprintf(stderr, "Created a new master key in %s/master.key\n", cfg->data_dir);
    err = store_add(store, &c, token, id);
    if (err != TM_OK) {
        fprintf(stderr, "user add: cannot store the user: %s\n", tm_err_message(err));
        goto out;
    }
    base = config_public_base(cfg);
    if (!base)
        goto out;
    fprintf(stderr, "Added user %s (%s%s). Their URL, shown only this once:\n", id, c.label,
            c.is_read_only ? ", read-only" : "");
    printf("%s/u/%s/mcp\n", base, token);
    fflush(stdout);
    rc = 0;
out:
    sodium_memzero(token, sizeof(token));
    creds_cleanup(&c);
    store_close(&store);
    turso_transport_stop(&t);
    free(base);
    return rc;
}

static void format_time(int64_t t, char *out, size_t len)
{
    if (t <= 0) {
        snprintf(out, len, "never");
        return;
    }
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void print_user(const struct store_user_info *u, void *ctx)
{
    char created[32], used[32];
    format_time(u->created_at, created, sizeof(created));
    format_time(u->last_used_at, used, sizeof(used));
    printf("%-16s  %-20s  %-20s  %-10s  %s\n", u->id, created, used,
           u->is_read_only ? "read-only" : "read-write", u->label ? u->label : "");
}

static int user_list(const struct config *cfg)
{
    struct store *store = NULL;
    bool is_new_key = false;
    if (admin_open_store(cfg, &store, &is_new_key) != TM_OK)
        return 1;
    enum tm_err err;
    printf("%-16s  %-20s  %-20s  %-10s  %s\n", "ID", "CREATED", "LAST_USED", "MODE", "LABEL");
    err = store_list(store, print_user, NULL);
    store_close(&store);
    if (err != TM_OK) {
        fprintf(stderr, "user list: %s\n", tm_err_message(err));
        return 1;
    }
    return 0;
}

static int user_revoke(const struct config *cfg, const char *id)
{
    struct store *store = NULL;
    bool is_new_key = false;
    if (admin_open_store(cfg, &store, &is_new_key) != TM_OK)
        return 1;
    enum tm_err err = store_revoke(store, id);
    store_close(&store);
    if (err == TM_ERR_NOT_FOUND) {
        fprintf(stderr, "user revoke: no user with id %s\n", id);
        return 1;
    }
    if (err != TM_OK) {
        fprintf(stderr, "user revoke: %s\n", tm_err_message(err));
        return 1;
    }
    printf("Revoked user %s; their URL no longer works.\n", id);
    return 0;
}

/*
 * The token in what the holder pasted: a whole URL (…/u/<token>/mcp, /sse,
 * or the dashboard's …/u/<token>/) or the bare token. Copies it to out.
 */
static bool token_from_text(const char *text, char out[STORE_TOKEN_LEN + 1])
{
    const char *t = strstr(text, "/u/");
    size_t len;

    t = t ? t + 3 : text;
    while (*t == ' ' || *t == '\t')
        t++;
    len = strcspn(t, "/?# \t\r\n");
    if (len != STORE_TOKEN_LEN)
        return false;
    memcpy(out, t, len);
    out[len] = '\0';
    return true;
}

static int user_rotate(const struct config *cfg)
{
    int rc = 1;
    struct store *store = NULL;
    char why[256];
    char old_token[STORE_TOKEN_LEN + 1] = "";
    char new_token[STORE_TOKEN_LEN + 1] = "";
    char id[STORE_ID_LEN + 1] = "";
    char *base = NULL;
    char *text = read_secret("-", why, sizeof(why));

    if (!text) {
        fprintf(stderr, "user rotate: %s\n", why);
        goto out;
    }
    if (!token_from_text(text, old_token)) {
        fprintf(stderr, "user rotate: give the current URL (or its token) on stdin\n");
        rc = 2;
        goto out;
    }
    bool is_new_key = false;
    enum tm_err err = admin_open_store(cfg, &store, &is_new_key);
    if (err != TM_OK)
        goto out;
    err = store_rotate(store, old_token, new_token, id);
    if (err == TM_ERR_NOT_FOUND) {
        fprintf(stderr, "user rotate: no user has this URL (revoked, or already rotated)\n");
        goto out;
    }
    if (err != TM_OK) {
        fprintf(stderr, "user rotate: %s\n", tm_err_message(err));
        goto out;
    }
    base = config_public_base(cfg);
    if (!base)
        goto out;
    fprintf(stderr,
            "Rotated user %s: the old URL no longer works. The new one, shown only "
            "this once:\n",
            id);
    printf("%s/u/%s/mcp\n", base, new_token);
    fflush(stdout);
    rc = 0;
out:
    if (text) {
        sodium_memzero(text, strlen(text));
        free(text);
    }
    sodium_memzero(old_token, sizeof(old_token));
    sodium_memzero(new_token, sizeof(new_token));
    store_close(&store);
    free(base);
    return rc;
}

int admin_user(const struct config *cfg, int argc, char **argv)
{
    if (argc < 1) {
        fprintf(stderr, "usage: turso-mcp user add|list|revoke|rotate ...\n");
        return 2;
    }
    if (strcmp(argv[0], "add") == 0)
        return user_add(cfg, argc - 1, argv + 1);
    if (strcmp(argv[0], "list") == 0 && argc == 1)
        return user_list(cfg);
    if (strcmp(argv[0], "revoke") == 0 && argc == 2)
        return user_revoke(cfg, argv[1]);
    if (strcmp(argv[0], "rotate") == 0 && argc == 1)
        return user_rotate(cfg);
    fprintf(stderr, "usage: turso-mcp user add|list|revoke|rotate ...\n");
    return 2;
}

/* Opens the store for a command, saying why it could not. */
static struct store *open_for(const struct config *cfg, const char *command)
{
    struct store *store = NULL;
    bool is_new_key = false;
    (void)command; /* admin_open_store says what went wrong */
    if (admin_open_store(cfg, &store, &is_new_key) != TM_OK)
        return NULL;
    return store;
}

static int keys_rotate(const struct config *cfg)
{
    struct store *store = open_for(cfg, "keys rotate");
    int version = 0;
    if (!store)
        return 1;
    enum tm_err err = store_rotate_master_key(store, &version);
    store_close(&store);
    if (err == TM_ERR_TOO_LARGE) {
        fprintf(stderr, "keys rotate: master.key already holds as many versions as it may\n");
        return 1;
    }
    if (err != TM_OK) {
        fprintf(stderr, "keys rotate: %s\n", tm_err_message(err));
        return 1;
    }
    printf("Master key version %d is now current; every older version stays in master.key.\n"
           "Records move to it the next time their owner calls (a running server notices within "
           "seconds).\n",
           version);
    return 0;
}

/* Sums what `keys status` prints below its table. */
struct key_totals {
    int64_t n_records, n_old, n_unopenable;
};

static void print_key(const struct store_key_info *k, void *ctx)
{
    struct key_totals *t = ctx;
    char state[96];
    snprintf(state, sizeof(state), "%s%s%s", k->is_current ? "current" : "old",
             k->is_lookup ? ", finds records" : "",
             k->is_loaded ? "" : ", NOT IN master.key (its records cannot be opened)");
    printf("v%-9d  %-8" PRId64 "  %s\n", k->version, k->n_records, state);
    t->n_records += k->n_records;
    if (!k->is_current)
        t->n_old += k->n_records;
    if (!k->is_loaded)
        t->n_unopenable += k->n_records;
}

static int keys_status(const struct config *cfg)
{
    struct store *store = open_for(cfg, "keys status");
    struct key_totals t = {0};
    if (!store)
        return 1;
    printf("%-10s  %-8s  %s\n", "VERSION", "RECORDS", "STATE");
    enum tm_err err = store_key_status(store, print_key, &t);
    store_close(&store);
    if (err != TM_OK) {
        fprintf(stderr, "keys status: %s\n", tm_err_message(err));
        return 1;
    }
    printf("%" PRId64 " of %" PRId64 " records on older versions\n", t.n_old, t.n_records);
    return t.n_unopenable > 0 ? 1 : 0;
}

int admin_keys(const struct config *cfg, int argc, char **argv)
{
    if (argc == 1 && strcmp(argv[0], "rotate") == 0)
        return keys_rotate(cfg);
    if (argc == 1 && strcmp(argv[0], "status") == 0)
        return keys_status(cfg);
    fprintf(stderr, "usage: turso-mcp keys rotate|status\n");
    return 2;
}

static void print_problem(const char *problem, void *ctx)
{
    printf("problem: %s\n", problem);
}

int admin_store(const struct config *cfg, int argc, char **argv)
{
    if (argc != 1 || strcmp(argv[0], "check") != 0) {
        fprintf(stderr, "usage: turso-mcp store check\n");
        return 2;
    }
    struct store *store = open_for(cfg, "store check");
    size_t n = 0;
    if (!store)
        return 1;
    enum tm_err err = store_check(store, print_problem, NULL, &n);
    store_close(&store);
    if (err != TM_OK) {
        fprintf(stderr, "store check: %s\n", tm_err_message(err));
        return 1;
    }
    if (n > 0) {
        printf("store check: %zu problem%s\n", n, n == 1 ? "" : "s");
        return 1;
    }
    printf("store check: ok (record structure, key versions and checks, activity; sealed "
           "contents open only with their URLs)\n");
    return 0;
}
int admin_keygen(int argc, char **argv)
{
    char text[STORE_MASTER_KEY_TEXT_MAX];

    if (argc > 0) {
        fprintf(stderr, "usage: turso-mcp keygen > FILE\n");
        return 2;
    }
    if (store_master_key_new(text) != TM_OK) {
        fprintf(stderr, "keygen: cannot make a key\n");
        return 1;
    }
    fputs(text, stdout);
    sodium_memzero(text, sizeof(text));
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "keygen: cannot write the key: %s\n", strerror(errno));
        return 1;
    }
    if (isatty(STDOUT_FILENO))
        fprintf(stderr, "Save it to a file instead: turso-mcp keygen > master.key (then set "
                        "master_key_file, or TURSO_MCP_MASTER_KEY_FILE, to that file)\n");
    return 0;
}

/* A health probe's limit: well inside Docker's default HEALTHCHECK timeout of 30 s. */
#define HEALTHCHECK_TIMEOUT_MS 3000

int admin_healthcheck(const struct config *cfg, int argc, char **argv)
{
    int rc = 1;
    struct turso_transport *t = NULL;
    struct turso_reply reply = {0};
    char *base = NULL;
    char url[512];

    if (argc > 0) {
        fprintf(stderr, "usage: turso-mcp healthcheck [--listen HOST:PORT]\n");
        return 2;
    }
    if (cfg->listen_port == 0) {
        fprintf(stderr, "healthcheck: listen has port 0, so there is no known port to ask\n");
        return 2;
    }
    base = config_local_base(cfg);
    if (!base) {
        fprintf(stderr, "out of memory\n");
        goto out;
    }
    snprintf(url, sizeof(url), "%s/healthz", base);
    struct turso_transport_opts topts = {.connect_timeout_ms = HEALTHCHECK_TIMEOUT_MS,
                                         .total_timeout_ms = HEALTHCHECK_TIMEOUT_MS,
                                         .user_agent = "turso-mcp-healthcheck/" TM_VERSION,
                                         .n_threads = 1};
    if (turso_transport_start(&topts, &t) != TM_OK) {
        fprintf(stderr, "healthcheck: cannot start the HTTP client\n");
        goto out;
    }
    struct turso_request req = {.method = "GET", .url = url};
    enum tm_err err = turso_transport_call(t, &req, &reply);
    if (err != TM_OK) {
        printf("unhealthy: %s: %s\n", url, reply.message);
        goto out;
    }
    if (reply.status != 200) {
        printf("unhealthy: %s answered HTTP %ld\n", url, reply.status);
        goto out;
    }
    printf("healthy: %s answered 200\n", url);
    rc = 0;
out:
    turso_reply_cleanup(&reply);
    turso_transport_stop(&t);
    free(base);
    return rc;
}
