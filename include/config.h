/*
 * Server configuration: one table of keys (type, default, bounds, whether
 * sensitive) drives the config file parser, the environment variables,
 * the command-line flags, --help and the redacted dump. Values are layered:
 * defaults < file < environment < flags. The struct is filled on the main
 * thread before any other starts and never changes after.
 */
#ifndef TM_CONFIG_H
#define TM_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "tm_err.h"

/* Every key can be set as TURSO_MCP_<KEY> in upper case, e.g. TURSO_MCP_MAX_ROWS. */
#define CONFIG_ENV_PREFIX "TURSO_MCP_"
/* The config file to read when no --config flag names one. */
#define CONFIG_ENV_FILE "TURSO_MCP_CONFIG"

struct config {
    char *listen_host;            /* address to bind, default 127.0.0.1 */
    int listen_port;              /* default 8787; 0 picks a free port */
    char *data_dir;               /* holds store.db and master.key */
    char *master_key_file;        /* the master key elsewhere (a Docker secret); NULL or "": none */
    char *public_url;             /* base of the URLs handed to users; NULL: http://host:port */
    char *api_url;                /* Turso Platform API base URL */
    char *db_scheme;              /* https, or http for local servers */
    char *allowed_origins;        /* extra allowed browser origins, comma-separated, or "*" */
    char *allowed_hosts;          /* extra allowed Host values, comma-separated, or "*" */
    long max_body_bytes;          /* request bodies above this get 413 */
    long max_rows;                /* rows a query returns at most */
    long max_result_bytes;        /* bytes of row data a query returns at most */
    long session_idle_seconds;    /* idle MCP sessions expire after this */
    long max_sessions;            /* sessions held at once, oldest idle evicted first */
    long upstream_timeout_ms;     /* a Turso request's total time limit */
    long connect_timeout_ms;      /* a Turso connection's time limit */
    long sse_keepalive_seconds;   /* between keep-alive comments on SSE streams */
    long call_deadline_ms;        /* one tool call's overall time limit */
    long shutdown_grace_seconds;  /* how long calls in flight may finish on SIGTERM */
    long rate_limit_rps;          /* per-URL average requests per second; 0 off */
    long rate_limit_burst;        /* per-URL burst above the rate */
    long max_concurrent_calls;    /* per-URL requests running at once; 0 off */
    long threads;                 /* HTTP worker threads */
    long max_connections;         /* open client connections at once */
    long connection_memory_bytes; /* per-connection buffer memory (libmicrohttpd) */
    char *log_format;             /* json or text */
    char *log_level;              /* debug, info, warn, error */
    bool is_signup_enabled;       /* serve the signup page at / */
    char *signup_allowed_db_hosts; /* hosts the signup page may reach: *, *.suffix, host[:port] */
    long max_users;                /* URLs the store holds at most (signup refuses more) */
};

/* Fills `c` with the defaults. Returns TM_ERR_NOMEM on failure. */
enum tm_err config_init(struct config *c);

/* Frees the strings of `c`. */
void config_cleanup(struct config *c);

/*
 * Applies `key = value` lines from `path` (# comments, blank lines). On
 * error writes a one-line reason to err.
 */
enum tm_err config_load_file(struct config *c, const char *path, char *err, size_t err_len);

/*
 * Sets one key from its name as a flag (`--max-rows`) or a file key
 * (`max_rows`) and its text value, checking type and bounds.
 * TM_ERR_NOT_FOUND if no such key.
 */
enum tm_err config_set(struct config *c, const char *name, const char *value, char *err,
                       size_t err_len);

/*
 * Applies TURSO_MCP_<KEY> variables from `envp` (NULL-terminated
 * NAME=value strings, as `environ`). A bad value fails with a reason in err
 * that names the variable (never its value). Variables under the prefix
 * that are no setting are logged as a warning and otherwise ignored.
 */
enum tm_err config_load_env(struct config *c, char *const *envp, char *err, size_t err_len);

/*
 * Layers the settings of a command line over the defaults already in `c`:
 * the --config FILE (every one given, in order; else the file named by
 * TURSO_MCP_CONFIG in envp), then the environment, then each --setting VALUE
 * or --setting=VALUE that the table knows. Other arguments are copied, in
 * order, to rest[] (room for argc pointers, borrowed from argv) and counted
 * in *n_rest. On error writes a one-line reason to err: TM_ERR_INVALID for
 * a bad value, TM_ERR_IO for an unreadable file, TM_ERR_NOT_FOUND for an
 * unknown key in the file, TM_ERR_NOMEM.
 */
enum tm_err config_parse_args(struct config *c, int argc, char **argv, char *const *envp,
                              char **rest, int *n_rest, char *err, size_t err_len);

/* Prints every key as a flag with its default and description, for --help. */
void config_print_help(FILE *out);

/*
 * Prints the effective values as `key = value` lines (a config file can read
 * them back), sensitive ones as ***.
 */
void config_dump(const struct config *c, FILE *out);

/* The base URL users get: public_url, else config_local_base. A new string the caller frees. */
char *config_public_base(const struct config *c);

/*
 * http://HOST:PORT of the listen address, with a wildcard bind replaced by
 * loopback; a new string the caller frees, NULL when out of memory.
 */
char *config_local_base(const struct config *c);

#endif
