/*
 * The configuration table and its parsers. Each key is described once in
 * `keys[]`; the file parser, the environment, the flag parser, --help and
 * the dump all walk that table, so a new setting is one line here and one
 * field in the struct. Runs on the main thread before any other starts.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

enum key_type { KEY_STRING, KEY_LONG, KEY_HOSTPORT, KEY_BOOL };

struct key {
    const char *name; /* file key; the flag is the same with - for _ */
    enum key_type type;
    size_t offset;     /* of the field in struct config */
    const char *def;   /* default as text; NULL for none */
    long min, max;     /* bounds for KEY_LONG */
    bool is_sensitive; /* printed as *** */
    const char *help;
};

#define FIELD(f) offsetof(struct config, f)

static const struct key keys[] = {
    {"listen", KEY_HOSTPORT, FIELD(listen_host), "127.0.0.1:8787", 0, 0, false,
     "address and port to serve on (HOST:PORT; port 0 picks a free one)"},
    {"data_dir", KEY_STRING, FIELD(data_dir), "./data", 0, 0, false,
     "directory holding the encrypted store (and the master key, unless master_key_file)"},
    {"master_key_file", KEY_STRING, FIELD(master_key_file), NULL, 0, 0, false,
     "read the master key from this file (e.g. a Docker secret) instead of DATA_DIR/master.key; "
     "it is never created"},
    {"public_url", KEY_STRING, FIELD(public_url), NULL, 0, 0, false,
     "base URL printed in user URLs (default http://LISTEN)"},
    {"allowed_origins", KEY_STRING, FIELD(allowed_origins), "", 0, 0, false,
     "browser origins allowed besides the public URL's own (comma-separated; * for any)"},
    {"allowed_hosts", KEY_STRING, FIELD(allowed_hosts), "", 0, 0, false,
     "Host header values accepted besides the public URL's and loopback names (comma-separated; "
     "* for any)"},
    {"api_url", KEY_STRING, FIELD(api_url), "https://api.turso.tech", 0, 0, false,
     "base URL of the Turso Platform API"},
    {"db_scheme", KEY_STRING, FIELD(db_scheme), "https", 0, 0, false,
     "scheme used to reach a database Hostname from the Platform API (https or http)"},
    {"max_body_bytes", KEY_LONG, FIELD(max_body_bytes), "4194304", 1024, 64L << 20, false,
     "largest request body accepted; larger ones get 413"},
    {"max_rows", KEY_LONG, FIELD(max_rows), "500", 1, 100000, false,
     "rows a query returns at most"},
    {"max_result_bytes", KEY_LONG, FIELD(max_result_bytes), "262144", 1024, 64L << 20, false,
     "bytes of row data a query returns at most"},
    {"session_idle_seconds", KEY_LONG, FIELD(session_idle_seconds), "1800", 5, 7 * 86400, false,
     "idle MCP sessions expire after this many seconds"},
    {"max_sessions", KEY_LONG, FIELD(max_sessions), "100000", 16, 10000000, false,
     "MCP sessions held at once; the least recently used goes first"},
    {"upstream_timeout_ms", KEY_LONG, FIELD(upstream_timeout_ms), "30000", 100, 600000, false,
     "total time limit of one request to Turso"},
    {"connect_timeout_ms", KEY_LONG, FIELD(connect_timeout_ms), "5000", 100, 60000, false,
     "time limit for connecting to Turso"},
    {"sse_keepalive_seconds", KEY_LONG, FIELD(sse_keepalive_seconds), "15", 1, 3600, false,
     "seconds between keep-alive comments on open SSE streams"},
    {"call_deadline_ms", KEY_LONG, FIELD(call_deadline_ms), "60000", 100, 600000, false,
     "overall time limit of one tool call, all its Turso requests together"},
    {"shutdown_grace_seconds", KEY_LONG, FIELD(shutdown_grace_seconds), "10", 0, 600, false,
     "on SIGTERM, how long calls in flight may take to finish"},
    {"rate_limit_rps", KEY_LONG, FIELD(rate_limit_rps), "20", 0, 100000, false,
     "requests per second one URL may make on average (0: no limit)"},
    {"rate_limit_burst", KEY_LONG, FIELD(rate_limit_burst), "40", 1, 1000000, false,
     "requests one URL may make at once above its rate"},
    {"max_concurrent_calls", KEY_LONG, FIELD(max_concurrent_calls), "16", 0, 100000, false,
     "requests one URL may have running at once (0: no limit)"},
    {"threads", KEY_LONG, FIELD(threads), "2", 1, 256, false, "HTTP worker threads"},
    {"connection_memory_bytes", KEY_LONG, FIELD(connection_memory_bytes), "4096", 4096, 1L << 20,
     false,
     "memory each client connection may use for headers and buffers (SSE streams hold one each)"},
    {"max_connections", KEY_LONG, FIELD(max_connections), "16384", 16, 1000000, false,
     "client connections held open at once"},
    {"log_format", KEY_STRING, FIELD(log_format), "json", 0, 0, false,
     "json (one object a line) or text"},
    {"log_level", KEY_STRING, FIELD(log_level), "info", 0, 0, false, "debug, info, warn or error"},
    {"signup_enabled", KEY_BOOL, FIELD(is_signup_enabled), "true", 0, 0, false,
     "serve the signup page at / (true or false); the per-URL pages are always on"},
    {"signup_allowed_db_hosts", KEY_STRING, FIELD(signup_allowed_db_hosts), "*.turso.io", 0, 0,
     false,
     "database hosts the signup page may connect to (comma-separated: *, *.suffix, host or "
     "host:port)"},
    {"max_users", KEY_LONG, FIELD(max_users), "100000", 1, 100000000, false,
     "URLs the store holds at most; the signup page refuses more"},
};

#define N_KEYS (sizeof(keys) / sizeof(keys[0]))

static const struct key *find_key(const char *name)
{
    /* Accept `max_rows`, `max-rows` and `--max-rows` alike. */
    while (*name == '-')
        name++;
    for (size_t i = 0; i < N_KEYS; i++) {
        const char *a = keys[i].name, *b = name;
        while (*a && (*a == *b || (*a == '_' && *b == '-'))) {
            a++;
            b++;
        }
        if (!*a && !*b)
            return &keys[i];
    }
    return NULL;
}

/* Checks the text of keys whose values are more than any string; NULL when fine. */
static const char *check_value(const struct key *k, const char *value)
{
    if (strcmp(k->name, "db_scheme") == 0 && strcmp(value, "https") != 0 &&
        strcmp(value, "http") != 0)
        return "db_scheme must be https or http";
    if (strcmp(k->name, "api_url") == 0 && strncmp(value, "https://", 8) != 0 &&
        strncmp(value, "http://", 7) != 0)
        return "api_url must start with https:// or http://";
    if (strcmp(k->name, "api_url") == 0 && strpbrk(value, " \t?#"))
        return "api_url must be a base URL without spaces, query or fragment";
    if (strcmp(k->name, "log_format") == 0 && strcmp(value, "json") != 0 &&
        strcmp(value, "text") != 0)
        return "log_format must be json or text";
    if (strcmp(k->name, "log_level") == 0 && strcmp(value, "debug") != 0 &&
        strcmp(value, "info") != 0 && strcmp(value, "warn") != 0 && strcmp(value, "error") != 0)
        return "log_level must be debug, info, warn or error";
    return NULL;
}

static enum tm_err set_key(struct config *c, const struct key *k, const char *value, char *err,
                           size_t err_len)
{
    /* Every way in (defaults, file, environment, flags) is checked here. */
    const char *why = check_value(k, value);
    if (why) {
        snprintf(err, err_len, "%s", why);
        return TM_ERR_INVALID;
    }
    char *base = (char *)c;
    switch (k->type) {
    case KEY_STRING: {
        char **field = (char **)(base + k->offset);
        char *copy = strdup(value);
        if (!copy)
            return TM_ERR_NOMEM;
        free(*field);
        *field = copy;
        return TM_OK;
    }
    case KEY_LONG: {
        char *end = NULL;
        errno = 0;
        long v = strtol(value, &end, 10);
        if (errno || end == value || *end || v < k->min || v > k->max) {
            snprintf(err, err_len, "%s must be a whole number from %ld to %ld", k->name, k->min,
                     k->max);
            return TM_ERR_INVALID;
        }
        *(long *)(base + k->offset) = v;
        return TM_OK;
    }
    case KEY_BOOL: {
        bool *field = (bool *)(base + k->offset);
        if (strcmp(value, "true") == 0 || strcmp(value, "yes") == 0 || strcmp(value, "on") == 0 ||
            strcmp(value, "1") == 0) {
            *field = true;
        } else if (strcmp(value, "false") == 0 || strcmp(value, "no") == 0 ||
                   strcmp(value, "off") == 0 || strcmp(value, "0") == 0) {
            *field = false;
        } else {
            snprintf(err, err_len, "%s must be true or false", k->name);
            return TM_ERR_INVALID;
        }
        return TM_OK;
    }
    case KEY_HOSTPORT: {
        /* HOST:PORT, with [v6]:PORT for IPv6 literals. */
        const char *colon = strrchr(value, ':');
        char *end = NULL;
        long port = colon ? strtol(colon + 1, &end, 10) : -1;
        if (!colon || colon == value || !end || *end || colon[1] == '\0' || port < 0 ||
            port > 65535) {
            snprintf(err, err_len, "%s must be HOST:PORT", k->name);
            return TM_ERR_INVALID;
        }
        const char *host = value;
        size_t host_len = (size_t)(colon - value);
        if (host[0] == '[' && host_len > 2 && host[host_len - 1] == ']') {
            host++;
            host_len -= 2;
        }
        char *copy = strndup(host, host_len);
        if (!copy)
            return TM_ERR_NOMEM;
        free(c->listen_host);
        c->listen_host = copy;
        c->listen_port = (int)port;
        return TM_OK;
    }
    }
    return TM_ERR_INTERNAL;
}

enum tm_err config_init(struct config *c)
{
    memset(c, 0, sizeof(*c));
    char err[128];
    for (size_t i = 0; i < N_KEYS; i++) {
        if (!keys[i].def)
            continue;
        enum tm_err rc = set_key(c, &keys[i], keys[i].def, err, sizeof(err));
        if (rc != TM_OK) {
            config_cleanup(c);
            return rc;
        }
    }
    return TM_OK;
}

void config_cleanup(struct config *c)
{
    if (!c)
        return;
    free(c->listen_host);
    free(c->data_dir);
    free(c->master_key_file);
    free(c->public_url);
    free(c->api_url);
    free(c->db_scheme);
    free(c->allowed_origins);
    free(c->allowed_hosts);
    free(c->log_level);
    free(c->log_format);
    free(c->signup_allowed_db_hosts);
    memset(c, 0, sizeof(*c));
}

enum tm_err config_set(struct config *c, const char *name, const char *value, char *err,
                       size_t err_len)
{
    const struct key *k = find_key(name);
    if (!k) {
        snprintf(err, err_len, "unknown setting %s", name);
        return TM_ERR_NOT_FOUND;
    }
    return set_key(c, k, value, err, err_len);
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    char *e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '\n'))
        *--e = '\0';
    return s;
}

enum tm_err config_load_file(struct config *c, const char *path, char *err, size_t err_len)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, err_len, "cannot open config file %s: %s", path, strerror(errno));
        return TM_ERR_IO;
    }
    enum tm_err rc = TM_OK;
    char line[1024];
    int lineno = 0;
    while (fgets(line, sizeof(line), f)) {
        lineno++;
        char *s = trim(line);
        if (*s == '\0' || *s == '#')
            continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            snprintf(err, err_len, "%s:%d: expected key = value", path, lineno);
            rc = TM_ERR_INVALID;
            break;
        }
        *eq = '\0';
        char *key = trim(s), *value = trim(eq + 1);
        size_t vlen = strlen(value);
        if (vlen >= 2 && value[0] == '"' && value[vlen - 1] == '"') {
            value[vlen - 1] = '\0';
            value++;
        }
        char why[160];
        rc = config_set(c, key, value, why, sizeof(why));
        if (rc != TM_OK) {
            snprintf(err, err_len, "%s:%d: %s", path, lineno, why);
            break;
        }
    }
    fclose(f);
    return rc;
}

/* The value of `name` in a NULL-terminated `NAME=value` array (the first, as getenv). */
static const char *env_get(char *const *envp, const char *name)
{
    size_t len = strlen(name);
    for (char *const *e = envp; e && *e; e++)
        if (strncmp(*e, name, len) == 0 && (*e)[len] == '=')
            return *e + len + 1;
    return NULL;
}

/* TURSO_MCP_ and the key's name in upper case: max_rows gives TURSO_MCP_MAX_ROWS. */
static void env_name(const struct key *k, char *out, size_t out_len)
{
    int n = snprintf(out, out_len, "%s", CONFIG_ENV_PREFIX);
    for (const char *p = k->name; *p && (size_t)n + 1 < out_len; p++, n++)
        out[n] = (*p >= 'a' && *p <= 'z') ? (char)(*p - 'a' + 'A') : *p;
    out[n] = '\0';
}

/* Whether `var` (NAME=value) is a TURSO_MCP_ variable we read. */
static bool is_known_env(const char *var)
{
    char name[64];
    if (strncmp(var, CONFIG_ENV_FILE "=", strlen(CONFIG_ENV_FILE) + 1) == 0)
        return true;
    for (size_t i = 0; i < N_KEYS; i++) {
        env_name(&keys[i], name, sizeof(name));
        size_t len = strlen(name);
        if (strncmp(var, name, len) == 0 && var[len] == '=')
            return true;
    }
    return false;
}

enum tm_err config_load_env(struct config *c, char *const *envp, char *err, size_t err_len)
{
    char name[64], why[160];
    for (size_t i = 0; i < N_KEYS; i++) {
        env_name(&keys[i], name, sizeof(name));
        const char *value = env_get(envp, name);
        if (!value)
            continue;
        enum tm_err rc = set_key(c, &keys[i], value, why, sizeof(why));
        if (rc != TM_OK) {
            snprintf(err, err_len, "%s: %s", name, why);
            return rc;
        }
    }
    /*
     * Others under our prefix are not an error: Kubernetes, for one, gives
     * a pod TURSO_MCP_PORT and friends for a service named turso-mcp. But a
     * misspelt setting should not pass unnoticed. The value is not logged.
     */
    for (char *const *e = envp; e && *e; e++) {
        if (strncmp(*e, CONFIG_ENV_PREFIX, strlen(CONFIG_ENV_PREFIX)) != 0 || is_known_env(*e))
            continue;
        int name_len = (int)strcspn(*e, "=");
        log_msg(LOG_WARN, "event=config_unknown_env name=%.*s", name_len > 64 ? 64 : name_len, *e);
    }
    return TM_OK;
}

/*
 * Applies one flag if the table knows it: *used is 0 when it does not
 * (a flag of the command's own), 1 for --name=value, 2 for --name value.
 */
static enum tm_err apply_flag(struct config *c, int argc, char **argv, int i, int *used, char *err,
                              size_t err_len)
{
    const char *arg = argv[i];
    const char *eq = strchr(arg, '=');
    size_t name_len = eq ? (size_t)(eq - arg) : strlen(arg);
    char name[64];

    *used = 0;
    if (name_len >= sizeof(name))
        return TM_OK;
    memcpy(name, arg, name_len);
    name[name_len] = '\0';
    const struct key *k = find_key(name);
    if (!k)
        return TM_OK;
    const char *value = eq ? eq + 1 : (i + 1 < argc ? argv[i + 1] : NULL);
    if (!value) {
        snprintf(err, err_len, "%s needs a value", name);
        return TM_ERR_INVALID;
    }
    char why[160];
    enum tm_err rc = set_key(c, k, value, why, sizeof(why));
    if (rc != TM_OK) {
        snprintf(err, err_len, "%s: %s", name, why);
        return rc;
    }
    *used = eq ? 1 : 2;
    return TM_OK;
}

enum tm_err config_parse_args(struct config *c, int argc, char **argv, char *const *envp,
                              char **rest, int *n_rest, char *err, size_t err_len)
{
    enum tm_err rc = TM_OK;
    bool has_config_flag = false;

    *n_rest = 0;
    /* 1. The file: every --config in order, or else the one the environment names. */
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--config") != 0)
            continue;
        if (i + 1 >= argc) {
            snprintf(err, err_len, "--config needs a file");
            return TM_ERR_INVALID;
        }
        has_config_flag = true;
        rc = config_load_file(c, argv[++i], err, err_len);
        if (rc != TM_OK)
            return rc;
    }
    const char *env_file = env_get(envp, CONFIG_ENV_FILE);
    if (!has_config_flag && env_file && *env_file) {
        rc = config_load_file(c, env_file, err, err_len);
        if (rc != TM_OK)
            return rc;
    }
    /* 2. The environment. */
    rc = config_load_env(c, envp, err, err_len);
    if (rc != TM_OK)
        return rc;
    /* 3. The flags; the command's own are kept, in order, for it. */
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0) {
            i++;
            continue;
        }
        int used = 0;
        if (strncmp(argv[i], "--", 2) == 0) {
            rc = apply_flag(c, argc, argv, i, &used, err, err_len);
            if (rc != TM_OK)
                return rc;
        }
        if (used == 0)
            rest[(*n_rest)++] = argv[i];
        else
            i += used - 1;
    }
    return TM_OK;
}

void config_print_help(FILE *out)
{
    for (size_t i = 0; i < N_KEYS; i++) {
        char flag[64];
        snprintf(flag, sizeof(flag), "--%s", keys[i].name);
        for (char *p = flag + 2; *p; p++)
            if (*p == '_')
                *p = '-';
        fprintf(out, "  %-24s %s", flag, keys[i].help);
        if (keys[i].def && *keys[i].def)
            fprintf(out, " (default %s)", keys[i].def);
        fputc('\n', out);
    }
}

/* Prints `table`'s values from `c` as `key = value` lines a config file can read back. */
static void dump_keys(const struct key *table, size_t n, const struct config *c, FILE *out)
{
    const char *base = (const char *)c;
    for (size_t i = 0; i < n; i++) {
        const struct key *k = &table[i];
        fprintf(out, "%s = ", k->name);
        switch (k->type) {
        case KEY_STRING: {
            const char *v = *(char *const *)(base + k->offset);
            /* An unset secret prints as empty, so the dump says whether one is set. */
            fprintf(out, "%s\n", !v ? "" : k->is_sensitive && *v ? "***" : v);
            break;
        }
        case KEY_LONG:
            fprintf(out, "%ld\n", *(const long *)(base + k->offset));
            break;
        case KEY_HOSTPORT: {
            bool is_v6 = strchr(c->listen_host, ':') != NULL;
            fprintf(out, is_v6 ? "[%s]:%d\n" : "%s:%d\n", c->listen_host, c->listen_port);
            break;
        case KEY_BOOL:
            fprintf(out, "%s\n", *(const bool *)(base + k->offset) ? "true" : "false");
            break;
        }
        }
    }
}

void config_dump(const struct config *c, FILE *out)
{
    dump_keys(keys, N_KEYS, c, out);
}

char *config_local_base(const struct config *c)
{
    const char *host = c->listen_host;
    bool is_v6 = strchr(host, ':') != NULL;
    /* A wildcard bind is not an address a client can use. */
    if (strcmp(host, "0.0.0.0") == 0)
        host = "127.0.0.1";
    else if (strcmp(host, "::") == 0)
        host = "::1";
    size_t len = strlen(host) + 32;
    char *s = malloc(len);
    if (!s)
        return NULL;
    snprintf(s, len, is_v6 ? "http://[%s]:%d" : "http://%s:%d", host, c->listen_port);
    return s;
}

char *config_public_base(const struct config *c)
{
    if (c->public_url && *c->public_url) {
        char *s = strdup(c->public_url);
        size_t n = s ? strlen(s) : 0;
        while (n > 0 && s[n - 1] == '/')
            s[--n] = '\0';
        return s;
    }
    return config_local_base(c);
}
