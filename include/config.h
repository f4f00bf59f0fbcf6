/*
 * Server configuration: one table of keys (type, default, bounds, whether
 * sensitive) drives the config file parser, the command-line flags, --help
 * and the redacted dump. Values are layered: defaults < file < flags.
 * The struct is filled before any thread starts and never changes after.
 */
#ifndef TM_CONFIG_H
#define TM_CONFIG_H

#include <stddef.h>
#include <stdio.h>

#include "tm_err.h"

struct config {
    char *listen_host;           /* address to bind, default 127.0.0.1 */
    int listen_port;             /* default 8787; 0 picks a free port */
    char *data_dir;              /* holds store.db and master.key */
    char *public_url;            /* base of the URLs handed to users; NULL: http://host:port */
    char *api_url;               /* Turso Platform API base URL */
    char *db_scheme;             /* https, or http for local servers */
    char *allowed_origins;       /* extra allowed browser origins, comma-separated, or "*" */
    char *allowed_hosts;         /* extra allowed Host values, comma-separated, or "*" */
    long max_body_bytes;         /* request bodies above this get 413 */
    long max_rows;               /* rows a query returns at most */
    long max_result_bytes;       /* bytes of row data a query returns at most */
    long session_idle_seconds;   /* idle MCP sessions expire after this */
    long max_sessions;           /* sessions held at once, oldest idle evicted first */
    long upstream_timeout_ms;    /* a Turso request's total time limit */
    long connect_timeout_ms;     /* a Turso connection's time limit */
    long sse_keepalive_seconds;  /* between keep-alive comments on SSE streams */
    long call_deadline_ms;       /* one tool call's overall time limit */
    long shutdown_grace_seconds; /* how long calls in flight may finish on SIGTERM */
    long rate_limit_rps;         /* per-URL average requests per second; 0 off */
    long rate_limit_burst;       /* per-URL burst above the rate */
    long max_concurrent_calls;   /* per-URL requests running at once; 0 off */
    long threads;                /* HTTP worker threads */
    long max_connections;        /* open client connections at once */
    char *log_format;            /* json or text */
    char *log_level;             /* debug, info, warn, error */
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

/* Prints every key as a flag with its default and description, for --help. */
void config_print_help(FILE *out);

/* Prints the effective values, sensitive ones as ***. */
void config_dump(const struct config *c, FILE *out);

/* The base URL users get; a new string the caller frees. */
char *config_public_base(const struct config *c);

#endif
