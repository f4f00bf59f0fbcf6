/*
 * `turso-mcp user add|list|revoke`, `keygen` and `healthcheck`. `add`
 * checks the credentials against Turso before anything is stored (a
 * `SELECT 1` through the pipeline for a database token, `GET
 * /v1/organizations` for a Platform API token), then seals them and prints
 * the user's URL once. Secrets are read from files or stdin and wiped
 * after use.
 */
#include "admin.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "creds.h"
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

/* Runs SELECT 1 with the database credentials; 0 when Turso answers it. */
static int check_database(struct turso_transport *t, const struct creds *c, long timeout_ms)
{
    char message[512] = "";
    json_t *results = NULL;
    json_t *requests = json_pack("[{s:s, s:{s:s}}]", "type", "execute", "stmt", "sql", "SELECT 1");
    if (!requests)
        return 1;
    enum tm_err rc = hrana_pipeline_sync(t, c->db_url, c->db_token, requests, timeout_ms, &results,
                                         message, sizeof(message));
    json_decref(requests);
    if (rc == TM_OK) {
        json_t *response = NULL;
        const char *emsg = NULL, *code = NULL;
        rc = hrana_result_get(json_array_get(results, 0), &response, &emsg, &code);
        if (rc != TM_OK)
            snprintf(message, sizeof(message), "SELECT 1 failed: %s",
                     emsg ? emsg : "unreadable answer");
    }
    json_decref(results);
    if (rc != TM_OK) {
        fprintf(stderr, "The database did not accept these credentials: %s\n", message);
        return 1;
    }
    return 0;
}

/* Lists the organizations the Platform API token can see; 0 when it is accepted. */
static int check_platform(struct turso_transport *t, const char *api_url, const struct creds *c,
                          long timeout_ms)
{
    char url[1024];
    snprintf(url, sizeof(url), "%s/v1/organizations", api_url);
    struct turso_request req = {
        .method = "GET", .url = url, .bearer = c->platform_token, .timeout_ms = timeout_ms};
    struct turso_reply reply = {0};
    enum tm_err rc = turso_transport_call(t, &req, &reply);
    int ret = 0;
    if (rc != TM_OK || reply.err != TM_OK) {
        fprintf(stderr, "The Turso Platform API could not be reached at %s: %s\n", api_url,
                reply.err != TM_OK ? reply.message : tm_err_message(rc));
        ret = 1;
    } else if (reply.status != 200) {
        json_t *body = json_loadb(reply.body, reply.body_len, 0, NULL);
        const char *why = json_string_value(json_object_get(body, "error"));
        fprintf(stderr, "The Turso Platform API refused this token (HTTP %ld): %s\n", reply.status,
                why ? why : "no reason given");
        json_decref(body);
        ret = 1;
    }
    turso_reply_cleanup(&reply);
    return ret;
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
                                         .user_agent = "turso-mcp/" TM_VERSION};
    if (turso_transport_start(&topts, &t) != TM_OK) {
        fprintf(stderr, "user add: cannot start the HTTP client\n");
        goto out;
    }
    if (c.db_url && check_database(t, &c, cfg->upstream_timeout_ms) != 0)
        goto out;
    if (c.platform_token && check_platform(t, cfg->api_url, &c, cfg->upstream_timeout_ms) != 0)
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

int admin_user(const struct config *cfg, int argc, char **argv)
{
    if (argc < 1) {
        fprintf(stderr, "usage: turso-mcp user add|list|revoke ...\n");
        return 2;
    }
    if (strcmp(argv[0], "add") == 0)
        return user_add(cfg, argc - 1, argv + 1);
    if (strcmp(argv[0], "list") == 0 && argc == 1)
        return user_list(cfg);
    if (strcmp(argv[0], "revoke") == 0 && argc == 2)
        return user_revoke(cfg, argv[1]);
    fprintf(stderr, "usage: turso-mcp user add|list|revoke ...\n");
    return 2;
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
                                         .user_agent = "turso-mcp-healthcheck/" TM_VERSION};
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
