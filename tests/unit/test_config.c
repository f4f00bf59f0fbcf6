/*
 * Unit tests for the configuration table: defaults, the file parser and
 * its line numbers, bounds, and the layering file < environment < flags
 * through config_parse_args, the one entry point main uses. Includes
 * config.c to reach the dump of a table with a sensitive key (no key of
 * the real table is one today). Files go to one mkdtemp directory.
 */
#include "../../server/config.c"

#include <ftw.h>
#include <stdio.h>
#include <unistd.h>

#include "test.h"

static char root[] = "/tmp/tm-test-config-XXXXXX";
static int n_files;

/* Writes `text` to a new file under root; its path goes to `out`. */
static void write_conf(char *out, size_t out_len, const char *text)
{
    snprintf(out, out_len, "%s/conf%d", root, n_files++);
    FILE *f = fopen(out, "w");
    ASSERT_NOT_NULL(f);
    ASSERT_INT_EQ(fputs(text, f) >= 0, 1);
    ASSERT_INT_EQ(fclose(f), 0);
}

/* What config_dump prints, as a string the caller frees. */
static char *dump(const struct config *c)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    ASSERT_NOT_NULL(f);
    config_dump(c, f);
    ASSERT_INT_EQ(fclose(f), 0);
    return text;
}

/* Runs config_parse_args on a NULL-terminated argv and envp, over the defaults. */
static enum tm_err parse(struct config *c, char **argv, char **envp, char **rest, int *n_rest,
                         char *err, size_t err_len)
{
    int argc = 0;
    while (argv[argc])
        argc++;
    ASSERT_INT_EQ(config_init(c), TM_OK);
    err[0] = '\0';
    return config_parse_args(c, argc, argv, envp, rest, n_rest, err, err_len);
}

static void test_defaults(void)
{
    struct config c;
    ASSERT_INT_EQ(config_init(&c), TM_OK);
    ASSERT_STR_EQ(c.listen_host, "127.0.0.1");
    ASSERT_INT_EQ(c.listen_port, 8787);
    ASSERT_STR_EQ(c.data_dir, "./data");
    ASSERT_NULL(c.master_key_file);
    ASSERT_NULL(c.public_url);
    ASSERT_STR_EQ(c.api_url, "https://api.turso.tech");
    ASSERT_INT_EQ(c.max_rows, 500);
    ASSERT_INT_EQ(c.max_body_bytes, 4194304);
    ASSERT_INT_EQ(c.threads, 2);
    ASSERT_STR_EQ(c.log_level, "info");
    char *base = config_public_base(&c);
    ASSERT_STR_EQ(base, "http://127.0.0.1:8787");
    free(base);

    /* A wildcard bind is reached on loopback; a public URL loses its trailing slashes. */
    char err[160];
    ASSERT_INT_EQ(config_set(&c, "listen", "0.0.0.0:9000", err, sizeof(err)), TM_OK);
    base = config_local_base(&c);
    ASSERT_STR_EQ(base, "http://127.0.0.1:9000");
    free(base);
    ASSERT_INT_EQ(config_set(&c, "listen", "[::]:9001", err, sizeof(err)), TM_OK);
    base = config_local_base(&c);
    ASSERT_STR_EQ(base, "http://[::1]:9001");
    free(base);
    ASSERT_INT_EQ(config_set(&c, "public-url", "https://mcp.example.com//", err, sizeof(err)),
                  TM_OK);
    base = config_public_base(&c);
    ASSERT_STR_EQ(base, "https://mcp.example.com");
    free(base);
    base = config_local_base(&c);
    ASSERT_STR_EQ(base, "http://[::1]:9001");
    free(base);
    config_cleanup(&c);
    config_cleanup(NULL);
}

static void test_file(void)
{
    char path[512], err[512];
    struct config c;

    write_conf(path, sizeof(path),
               "# a comment\n"
               "\n"
               "  listen = 127.0.0.1:9100  \n"
               "data_dir=\"/srv/turso mcp\"\r\n"
               "master_key_file = /run/secrets/turso_mcp_master_key\n"
               "max-rows = 42\n"
               "\t# indented comment\n"
               "public_url =\n");
    ASSERT_INT_EQ(config_init(&c), TM_OK);
    ASSERT_INT_EQ(config_load_file(&c, path, err, sizeof(err)), TM_OK);
    ASSERT_INT_EQ(c.listen_port, 9100);
    ASSERT_STR_EQ(c.data_dir, "/srv/turso mcp");
    ASSERT_STR_EQ(c.master_key_file, "/run/secrets/turso_mcp_master_key");
    ASSERT_INT_EQ(c.max_rows, 42);
    ASSERT_STR_EQ(c.public_url, "");
    config_cleanup(&c);

    /* Each error names the file and the line, and stops there. */
    static const struct {
        const char *text;
        enum tm_err err;
        const char *says;
    } bad[] = {
        {"listen = 127.0.0.1:1\nno equals sign here\n", TM_ERR_INVALID, ":2: expected key = value"},
        {"# one\n# two\nmax_rows = 0\n", TM_ERR_INVALID, ":3: max_rows must be a whole number"},
        {"\n\n\n\nmax_rowz = 5\n", TM_ERR_NOT_FOUND, ":5: unknown setting max_rowz"},
        {"listen = localhost\n", TM_ERR_INVALID, ":1: listen must be HOST:PORT"},
        {"threads = 2\nthreads = two\n", TM_ERR_INVALID, ":2: threads must be a whole number"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        write_conf(path, sizeof(path), bad[i].text);
        ASSERT_INT_EQ(config_init(&c), TM_OK);
        err[0] = '\0';
        ASSERT_INT_EQ(config_load_file(&c, path, err, sizeof(err)), bad[i].err);
        if (!strstr(err, bad[i].says) || strncmp(err, path, strlen(path)) != 0)
            TEST_FAIL("case %zu: \"%s\" does not start with the path and say \"%s\"", i, err,
                      bad[i].says);
        config_cleanup(&c);
    }

    ASSERT_INT_EQ(config_init(&c), TM_OK);
    snprintf(path, sizeof(path), "%s/missing.conf", root);
    ASSERT_INT_EQ(config_load_file(&c, path, err, sizeof(err)), TM_ERR_IO);
    ASSERT_NOT_NULL(strstr(err, "missing.conf"));
    config_cleanup(&c);
}

static void test_bounds(void)
{
    struct config c;
    char err[160];
    ASSERT_INT_EQ(config_init(&c), TM_OK);

    static const struct {
        const char *key, *value;
        enum tm_err err;
    } cases[] = {
        {"max_rows", "1", TM_OK},
        {"max_rows", "100000", TM_OK},
        {"max_rows", "0", TM_ERR_INVALID},
        {"max_rows", "100001", TM_ERR_INVALID},
        {"max_rows", "-5", TM_ERR_INVALID},
        {"max_rows", "12x", TM_ERR_INVALID},
        {"max_rows", "", TM_ERR_INVALID},
        {"max_rows", "99999999999999999999999", TM_ERR_INVALID},
        {"threads", "256", TM_OK},
        {"threads", "257", TM_ERR_INVALID},
        {"shutdown_grace_seconds", "0", TM_OK},
        {"listen", "127.0.0.1:0", TM_OK},
        {"listen", "127.0.0.1:65535", TM_OK},
        {"listen", "127.0.0.1:65536", TM_ERR_INVALID},
        {"listen", "127.0.0.1:", TM_ERR_INVALID},
        {"listen", ":8787", TM_ERR_INVALID},
        {"listen", "[::1]:8787", TM_OK},
        {"no_such_key", "1", TM_ERR_NOT_FOUND},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        enum tm_err rc = config_set(&c, cases[i].key, cases[i].value, err, sizeof(err));
        if (rc != cases[i].err)
            TEST_FAIL("%s = \"%s\": got %d, want %d", cases[i].key, cases[i].value, rc,
                      cases[i].err);
    }
    /* A refused value leaves the last good one; the message gives the range. */
    ASSERT_INT_EQ(c.max_rows, 100000);
    ASSERT_INT_EQ(config_set(&c, "max_rows", "0", err, sizeof(err)), TM_ERR_INVALID);
    ASSERT_STR_EQ(err, "max_rows must be a whole number from 1 to 100000");
    ASSERT_INT_EQ(c.max_rows, 100000);
    ASSERT_STR_EQ(c.listen_host, "::1");
    config_cleanup(&c);
}

static void test_env(void)
{
    char path[512], err[512];
    char *rest[8];
    int n_rest = -1;
    struct config c;

    write_conf(path, sizeof(path), "max_rows = 10\nlisten = 127.0.0.1:9200\nthreads = 3\n");
    char *argv[] = {"--config", path, NULL};
    char *envp[] = {"HOME=/root",
                    "TURSO_MCP_MAX_ROWS=20",
                    "TURSO_MCP_DATA_DIR=/data",
                    "TURSO_MCP_MASTER_KEY_FILE=/run/secrets/turso_mcp_master_key",
                    "TURSO_MCP_PUBLIC_URL=",
                    "turso_mcp_threads=7",                /* names are upper case */
                    "TURSO_MCP_PORT=tcp://10.0.0.1:8787", /* what Kubernetes sets: ignored */
                    NULL};
    ASSERT_INT_EQ(parse(&c, argv, envp, rest, &n_rest, err, sizeof(err)), TM_OK);
    ASSERT_INT_EQ(n_rest, 0);
    ASSERT_INT_EQ(c.max_rows, 20);      /* environment over file */
    ASSERT_INT_EQ(c.listen_port, 9200); /* the file where the environment is silent */
    ASSERT_INT_EQ(c.threads, 3);        /* lower-case names are not ours */
    ASSERT_STR_EQ(c.data_dir, "/data"); /* environment over default */
    ASSERT_STR_EQ(c.public_url, "");    /* empty is a value: the default base */
    ASSERT_STR_EQ(c.master_key_file, "/run/secrets/turso_mcp_master_key");
    char *base = config_public_base(&c);
    ASSERT_STR_EQ(base, "http://127.0.0.1:9200");
    free(base);
    config_cleanup(&c);

    /* A bad value names the variable, and not the value. */
    char *bad_env[] = {"TURSO_MCP_MAX_ROWS=lots", NULL};
    char *no_args[] = {NULL};
    ASSERT_INT_EQ(parse(&c, no_args, bad_env, rest, &n_rest, err, sizeof(err)), TM_ERR_INVALID);
    ASSERT_STR_EQ(err, "TURSO_MCP_MAX_ROWS: max_rows must be a whole number from 1 to 100000");
    config_cleanup(&c);
    char *bad_listen[] = {"TURSO_MCP_LISTEN=0.0.0.0", NULL};
    ASSERT_INT_EQ(parse(&c, no_args, bad_listen, rest, &n_rest, err, sizeof(err)), TM_ERR_INVALID);
    ASSERT_STR_EQ(err, "TURSO_MCP_LISTEN: listen must be HOST:PORT");
    config_cleanup(&c);

    /* TURSO_MCP_CONFIG names the file when no --config does, and still yields to the rest. */
    char config_var[600];
    snprintf(config_var, sizeof(config_var), "TURSO_MCP_CONFIG=%s", path);
    char *file_env[] = {config_var, "TURSO_MCP_THREADS=5", NULL};
    ASSERT_INT_EQ(parse(&c, no_args, file_env, rest, &n_rest, err, sizeof(err)), TM_OK);
    ASSERT_INT_EQ(c.max_rows, 10);
    ASSERT_INT_EQ(c.threads, 5);
    config_cleanup(&c);

    char other[512];
    write_conf(other, sizeof(other), "max_rows = 11\n");
    char *argv_other[] = {"--config", other, NULL};
    ASSERT_INT_EQ(parse(&c, argv_other, file_env, rest, &n_rest, err, sizeof(err)), TM_OK);
    ASSERT_INT_EQ(c.max_rows, 11);      /* --config over TURSO_MCP_CONFIG */
    ASSERT_INT_EQ(c.listen_port, 8787); /* and only that file is read */
    config_cleanup(&c);

    snprintf(config_var, sizeof(config_var), "TURSO_MCP_CONFIG=%s/none.conf", root);
    char *missing_env[] = {config_var, NULL};
    ASSERT_INT_EQ(parse(&c, no_args, missing_env, rest, &n_rest, err, sizeof(err)), TM_ERR_IO);
    ASSERT_NOT_NULL(strstr(err, "none.conf"));
    config_cleanup(&c);
}

static void test_flags(void)
{
    char path[512], err[512];
    char *rest[16];
    int n_rest = -1;
    struct config c;

    write_conf(path, sizeof(path), "max_rows = 10\nthreads = 3\ndata_dir = /file\n");
    char *envp[] = {"TURSO_MCP_MAX_ROWS=20", "TURSO_MCP_THREADS=4", NULL};
    /* The flags come before --config on purpose: the order of layers is fixed, not positional. */
    char *argv[] = {"add",
                    "--max-rows",
                    "30",
                    "--label",
                    "laptop",
                    "--read-only",
                    "--threads=6",
                    "--config",
                    path,
                    "--db-url",
                    "http://127.0.0.1:1",
                    "--max-rows",
                    "31",
                    "tail",
                    NULL};
    ASSERT_INT_EQ(parse(&c, argv, envp, rest, &n_rest, err, sizeof(err)), TM_OK);
    ASSERT_INT_EQ(c.max_rows, 31);      /* flags over environment; the last flag wins */
    ASSERT_INT_EQ(c.threads, 6);        /* --name=value */
    ASSERT_STR_EQ(c.data_dir, "/file"); /* the file where nothing else speaks */
    /* The command's own arguments, in order, without the settings. */
    ASSERT_INT_EQ(n_rest, 7);
    ASSERT_STR_EQ(rest[0], "add");
    ASSERT_STR_EQ(rest[1], "--label");
    ASSERT_STR_EQ(rest[2], "laptop");
    ASSERT_STR_EQ(rest[3], "--read-only");
    ASSERT_STR_EQ(rest[4], "--db-url");
    ASSERT_STR_EQ(rest[5], "http://127.0.0.1:1");
    ASSERT_STR_EQ(rest[6], "tail");
    config_cleanup(&c);

    static const struct {
        char *argv[4];
        enum tm_err err;
        const char *says;
    } bad[] = {
        {{"--max-rows", "0", NULL},
         TM_ERR_INVALID,
         "--max-rows: max_rows must be a whole number from 1 to 100000"},
        {{"--max-rows", NULL}, TM_ERR_INVALID, "--max-rows needs a value"},
        {{"--listen=nope", NULL}, TM_ERR_INVALID, "--listen: listen must be HOST:PORT"},
        {{"--config", NULL}, TM_ERR_INVALID, "--config needs a file"},
    };
    char *no_env[] = {NULL};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        enum tm_err rc = parse(&c, (char **)bad[i].argv, no_env, rest, &n_rest, err, sizeof(err));
        if (rc != bad[i].err || strcmp(err, bad[i].says) != 0)
            TEST_FAIL("case %zu: got %d \"%s\", want \"%s\"", i, rc, err, bad[i].says);
        config_cleanup(&c);
    }

    /* A file error stops everything, with its line. */
    char broken[512];
    write_conf(broken, sizeof(broken), "threads = 1\nthreads = 0\n");
    char *argv_broken[] = {"--threads", "4", "--config", broken, NULL};
    ASSERT_INT_EQ(parse(&c, argv_broken, no_env, rest, &n_rest, err, sizeof(err)), TM_ERR_INVALID);
    ASSERT_NOT_NULL(strstr(err, ":2: threads must be a whole number"));
    config_cleanup(&c);

    /* Unknown flags are the command's to judge. */
    char *argv_unknown[] = {"--print-config", "--no-such-flag", "x", NULL};
    ASSERT_INT_EQ(parse(&c, argv_unknown, no_env, rest, &n_rest, err, sizeof(err)), TM_OK);
    ASSERT_INT_EQ(n_rest, 3);
    ASSERT_STR_EQ(rest[0], "--print-config");
    config_cleanup(&c);
}

static void test_dump(void)
{
    struct config c;
    char err[160], path[512];

    ASSERT_INT_EQ(config_init(&c), TM_OK);
    ASSERT_INT_EQ(config_set(&c, "listen", "[::1]:9300", err, sizeof(err)), TM_OK);
    ASSERT_INT_EQ(config_set(&c, "master_key_file", "/run/secrets/k", err, sizeof(err)), TM_OK);
    ASSERT_INT_EQ(config_set(&c, "max_rows", "77", err, sizeof(err)), TM_OK);
    char *text = dump(&c);
    /* Every key, once, at the start of a line. */
    for (size_t i = 0; i < N_KEYS; i++) {
        char line[96];
        snprintf(line, sizeof(line), "%s = ", keys[i].name);
        bool is_found = strncmp(text, line, strlen(line)) == 0;
        for (const char *p = strchr(text, '\n'); p && !is_found; p = strchr(p + 1, '\n'))
            is_found = strncmp(p + 1, line, strlen(line)) == 0;
        if (!is_found)
            TEST_FAIL("the dump has no line for %s:\n%s", keys[i].name, text);
    }
    ASSERT_NOT_NULL(strstr(text, "listen = [::1]:9300\n"));
    ASSERT_NOT_NULL(strstr(text, "master_key_file = /run/secrets/k\n"));
    ASSERT_NOT_NULL(strstr(text, "max_rows = 77\n"));
    ASSERT_NOT_NULL(strstr(text, "public_url = \n"));

    /* It reads back as a config file giving the same settings. */
    write_conf(path, sizeof(path), text);
    struct config again;
    ASSERT_INT_EQ(config_init(&again), TM_OK);
    ASSERT_INT_EQ(config_load_file(&again, path, err, sizeof(err)), TM_OK);
    char *text_again = dump(&again);
    ASSERT_STR_EQ(text_again, text);
    free(text_again);
    free(text);
    config_cleanup(&again);

    /* A sensitive key prints as *** when set, and as empty when not. */
    static const struct key secret_keys[] = {
        {"public_url", KEY_STRING, FIELD(public_url), NULL, 0, 0, true, "secret"},
        {"api_url", KEY_STRING, FIELD(api_url), NULL, 0, 0, true, "secret"},
        {"data_dir", KEY_STRING, FIELD(data_dir), NULL, 0, 0, false, "plain"},
    };
    ASSERT_INT_EQ(config_set(&c, "api_url", "https://user:hunter2@api.example", err, sizeof(err)),
                  TM_OK);
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    ASSERT_NOT_NULL(f);
    dump_keys(secret_keys, 3, &c, f);
    ASSERT_INT_EQ(fclose(f), 0);
    ASSERT_STR_EQ(out, "public_url = \napi_url = ***\ndata_dir = ./data\n");
    ASSERT_NULL(strstr(out, "hunter2"));
    free(out);
    config_cleanup(&c);
}

static void test_help(void)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    ASSERT_NOT_NULL(f);
    config_print_help(f);
    ASSERT_INT_EQ(fclose(f), 0);
    /* Every key as a flag, with - for _. */
    ASSERT_NOT_NULL(strstr(text, "  --listen "));
    ASSERT_NOT_NULL(strstr(text, "  --master-key-file "));
    ASSERT_NOT_NULL(strstr(text, "  --max-rows "));
    ASSERT_NOT_NULL(strstr(text, "(default 500)"));
    ASSERT_NULL(strstr(text, "--max_rows"));
    free(text);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

int main(void)
{
    if (!mkdtemp(root))
        TEST_FAIL("mkdtemp failed");

    RUN(test_defaults);
    RUN(test_file);
    RUN(test_bounds);
    RUN(test_env);
    RUN(test_flags);
    RUN(test_dump);
    RUN(test_help);

    if (nftw(root, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        TEST_FAIL("could not remove %s", root);
    TEST_DONE();
}
