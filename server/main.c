/*
 * turso-mcp: starts things in order, waits for SIGINT/SIGTERM, tears down
 * in reverse. Library initialisation happens before any thread starts.
 * Commands: `serve` (the default), `user add|list|revoke|rotate`,
 * `keys rotate|status`, `store check`, `keygen` and `healthcheck`; settings
 * are parsed by config.c, the rest by admin.c.
 */
#include <curl/curl.h>
#include <jansson.h>
#include <signal.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "admin.h"
#include "config.h"
#include "dbaccess.h"
#include "http.h"
#include "log.h"
#include "mcp.h"
#include "session.h"
#include "store.h"
#include "tool.h"
#include "turso_transport.h"
#include "web.h"

static void usage(FILE *out)
{
    fprintf(out,
            "turso-mcp %s: an MCP server that puts Turso databases in front of AI clients\n\n"
            "Usage:\n"
            "  turso-mcp serve [--config FILE] [--data-dir DIR] [--listen HOST:PORT] [options]\n"
            "  turso-mcp serve --print-config    print the effective settings and exit\n"
            "  turso-mcp user add --label NAME [--db-url URL --db-token-file FILE]\n"
            "                     [--platform-token-file FILE --org ORG] [--default-db NAME]\n"
            "                     [--read-only] [--api-url URL] [--db-scheme https|http]\n"
            "  turso-mcp user list                 one user a line, id first\n"
            "  turso-mcp user revoke ID\n"
            "  turso-mcp user rotate < URL-FILE    current URL on stdin; prints the new URL\n"
            "  turso-mcp keys rotate               add a master key version and make it current\n"
            "  turso-mcp keys status               records per master key version\n"
            "  turso-mcp store check               check the store's structure and key checks\n"
            "  turso-mcp keygen                  print a new master key (for master_key_file)\n"
            "  turso-mcp healthcheck             exit 0 if the server on LISTEN answers /healthz\n"
            "  turso-mcp --help | --version\n\n"
            "Secrets are read from files (or - for stdin), never from the command line.\n\n"
            "Settings: the defaults, then the --config file (`key = value` lines; without\n"
            "--config, the file named by TURSO_MCP_CONFIG), then environment variables\n"
            "TURSO_MCP_<KEY> (upper case: TURSO_MCP_DATA_DIR, TURSO_MCP_MAX_ROWS, ...), then\n"
            "these flags; each later one wins. `serve --print-config` shows the outcome.\n\n",
            TM_VERSION);
    config_print_help(out);
}

static enum log_level parse_level(const char *s)
{
    if (strcmp(s, "debug") == 0)
        return LOG_DEBUG;
    if (strcmp(s, "warn") == 0)
        return LOG_WARN;
    if (strcmp(s, "error") == 0)
        return LOG_ERROR;
    return LOG_INFO;
}

/* Waits until no tool call is running, or `seconds` have passed. */
static void wait_for_calls(struct mcp_server *mcp, long seconds)
{
    struct timespec tick = {.tv_sec = 0, .tv_nsec = 20 * 1000000L};
    for (long waited_ms = 0; mcp_calls_in_flight(mcp) > 0 && waited_ms < seconds * 1000;
         waited_ms += 20)
        nanosleep(&tick, NULL);
}

static int serve(struct config *cfg, const char *program)
{
    int rc = 1;
    struct store *store = NULL;
    struct turso_transport *transport = NULL;
    struct dbaccess *db = NULL;
    struct session_table *sessions = NULL;
    struct mcp_server *mcp = NULL;
    struct http_server *http = NULL;
    struct web *web = NULL;
    bool is_registry_ready = false;
    char *base = NULL;
    char *data_path = NULL;

    /* Signals are taken by sigwait below, so every thread started from here blocks them. */
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);

    bool is_new_key = false;
    if (admin_open_store(cfg, &store, &is_new_key) != TM_OK)
        goto out;
    data_path = realpath(cfg->data_dir, NULL);
    if (is_new_key)
        fprintf(stdout, "Created a new master key in %s/master.key (keep it; it opens the store)\n",
                data_path ? data_path : cfg->data_dir);
    if (tool_registry_init() != 0) {
        fprintf(stderr, "the tool registry failed its own checks\n");
        goto out;
    }
    is_registry_ready = true;
    struct turso_transport_opts topts = {
        .connect_timeout_ms = cfg->connect_timeout_ms,
        .total_timeout_ms = cfg->upstream_timeout_ms,
        .user_agent = "turso-mcp/" TM_VERSION,
    };
    if (turso_transport_start(&topts, &transport) != TM_OK) {
        fprintf(stderr, "cannot start the Turso transport\n");
        goto out;
    }
    struct dbaccess_opts dopts = {
        .transport = transport, .api_url = cfg->api_url, .db_scheme = cfg->db_scheme};
    enum tm_err err = dbaccess_create(&dopts, &db);
    if (err != TM_OK) {
        fprintf(stderr, "cannot set up database access (api_url %s, db_scheme %s): %s\n",
                cfg->api_url, cfg->db_scheme, tm_err_message(err));
        goto out;
    }
    struct tool_env env = {
        .transport = transport,
        .db = db,
        .max_rows = cfg->max_rows,
        .max_result_bytes = cfg->max_result_bytes,
        .upstream_timeout_ms = cfg->upstream_timeout_ms,
        .call_deadline_ms = cfg->call_deadline_ms,
    };
    if (session_table_create((size_t)cfg->max_sessions, cfg->session_idle_seconds, &sessions) !=
            TM_OK ||
        mcp_server_create(sessions, &env, &mcp) != TM_OK) {
        fprintf(stderr, "out of memory\n");
        goto out;
    }
    if (web_create(cfg, store, transport, &web) != TM_OK) {
        fprintf(stderr, "out of memory\n");
        goto out;
    }
    if (http_server_start(cfg, store, mcp, web, &http) != TM_OK) {
        fprintf(stderr, "cannot listen on %s:%d\n", cfg->listen_host, cfg->listen_port);
        goto out;
    }
    cfg->listen_port = http_server_port(http);
    base = config_public_base(cfg);
    fprintf(stdout, "turso-mcp listening on http://%s%s%s:%d\n",
            strchr(cfg->listen_host, ':') ? "[" : "", cfg->listen_host,
            strchr(cfg->listen_host, ':') ? "]" : "", cfg->listen_port);
    fprintf(stdout,
            "Add a user:  %s user add --data-dir %s --label NAME --db-url URL "
            "--db-token-file FILE\n"
            "Their URL:   %s/u/<token>/mcp\n",
            program, data_path ? data_path : cfg->data_dir, base ? base : "");
    fflush(stdout);
    log_msg(LOG_INFO, "event=ready port=%d threads=%ld", cfg->listen_port, cfg->threads);

    int sig = 0;
    sigwait(&stop_signals, &sig);
    log_msg(LOG_INFO, "event=stopping signal=%d calls_in_flight=%zu streams=%zu", sig,
            mcp_calls_in_flight(mcp), http_server_open_streams(http));
    /* No new connections; calls in flight get a bounded time to finish. */
    http_server_quiesce(http);
    wait_for_calls(mcp, cfg->shutdown_grace_seconds);
    rc = 0;
out:
    /* Reverse order: end streams and upstream calls (resuming their clients), then stop. */
    http_server_end_streams(http);
    turso_transport_stop(&transport);
    http_server_stop(&http);
    web_destroy(&web);
    dbaccess_destroy(&db);
    mcp_server_destroy(&mcp);
    session_table_destroy(&sessions);
    if (is_registry_ready)
        tool_registry_cleanup();
    store_close(&store);
    free(base);
    free(data_path);
    return rc;
}

int main(int argc, char **argv)
{
    if (sodium_init() < 0) {
        fprintf(stderr, "libsodium failed to initialise\n");
        return 1;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "libcurl failed to initialise\n");
        return 1;
    }
    json_object_seed(0);
    signal(SIGPIPE, SIG_IGN);

    int rc = 2;
    struct config cfg;
    char **rest = calloc((size_t)argc + 1, sizeof(char *));
    if (!rest || config_init(&cfg) != TM_OK) {
        fprintf(stderr, "out of memory\n");
        free(rest);
        curl_global_cleanup();
        return 1;
    }
    const char *command = argc > 1 ? argv[1] : "serve";
    if (strcmp(command, "--help") == 0 || strcmp(command, "-h") == 0 ||
        strcmp(command, "help") == 0) {
        usage(stdout);
        rc = 0;
        goto out;
    }
    if (strcmp(command, "--version") == 0) {
        printf("turso-mcp %s\n", TM_VERSION);
        rc = 0;
        goto out;
    }
    int first = argc > 1 && argv[1][0] != '-' ? 2 : 1;
    if (first == 1)
        command = "serve";
    int n_rest = 0;
    char err[512];
    enum tm_err perr = config_parse_args(&cfg, argc - first, argv + first, environ, rest, &n_rest,
                                         err, sizeof(err));
    if (perr != TM_OK) {
        fprintf(stderr, "%s\n", perr == TM_ERR_NOMEM ? "out of memory" : err);
        rc = 2;
        goto out;
    }
    log_set_level(parse_level(cfg.log_level));
    log_set_json(strcmp(cfg.log_format, "text") != 0);
    if (strcmp(command, "serve") == 0) {
        if (n_rest == 1 && (strcmp(rest[0], "--help") == 0 || strcmp(rest[0], "-h") == 0)) {
            usage(stdout);
            rc = 0;
            goto out;
        }
        bool is_print = n_rest == 1 && strcmp(rest[0], "--print-config") == 0;
        if (n_rest > 0 && !is_print) {
            fprintf(stderr, "unknown option %s (see turso-mcp --help)\n", rest[0]);
            rc = 2;
            goto out;
        }
        if (is_print) {
            config_dump(&cfg, stdout);
            rc = 0;
        } else {
            rc = serve(&cfg, argv[0]);
        }
    } else if (strcmp(command, "user") == 0) {
        rc = admin_user(&cfg, n_rest, rest);
    } else if (strcmp(command, "keys") == 0) {
        rc = admin_keys(&cfg, n_rest, rest);
    } else if (strcmp(command, "store") == 0) {
        rc = admin_store(&cfg, n_rest, rest);
    } else if (strcmp(command, "keygen") == 0) {
        rc = admin_keygen(n_rest, rest);
    } else if (strcmp(command, "healthcheck") == 0) {
        rc = admin_healthcheck(&cfg, n_rest, rest);
    } else {
        fprintf(stderr, "unknown command %s (see turso-mcp --help)\n", command);
        rc = 2;
    }
out:
    config_cleanup(&cfg);
    free(rest);
    curl_global_cleanup();
    return rc;
}
