/*
 * The read-only check shared by the SQL tools: the lexical scan first, then
 * Hrana `describe` for what the scan cannot settle, and a conservative
 * refusal when the server cannot describe (the local tursodb rejects the
 * whole pipeline with "unknown variant `describe`"). The check never runs
 * a statement: describe only prepares it.
 */
#include "readonly.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dbaccess.h"
#include "hrana.h"
#include "sql_scan.h"

#define READONLY_LEAD_MAX 120

/* First keywords of statements that change the database or the transaction state. */
static const char *const write_starts[] = {
    "INSERT", "UPDATE", "DELETE",  "REPLACE",  "CREATE",    "DROP",
    "ALTER",  "ATTACH", "DETACH",  "VACUUM",   "REINDEX",   "BEGIN",
    "COMMIT", "END",    "ANALYZE", "ROLLBACK", "SAVEPOINT", "RELEASE",
};

/* A statement the server is asked about. */
struct asked {
    size_t index;        /* position among the caller's statements */
    char first_word[16]; /* for messages */
};

/* One check in flight, from readonly_check until `done` has run. */
struct check {
    size_t n;       /* the caller's statement count, for "statement i of n" */
    size_t n_asked; /* entries in `asked` */
    struct asked *asked;
    char lead[READONLY_LEAD_MAX];
    readonly_done_fn done;
    void *ctx;
};

enum readonly_class readonly_classify(const char *sql, size_t len)
{
    struct sql_scan s;
    sql_scan(sql, len, &s);
    if (s.is_read_only)
        return READONLY_YES;
    for (size_t i = 0; i < sizeof(write_starts) / sizeof(write_starts[0]); i++)
        if (strcmp(s.first_word, write_starts[i]) == 0)
            return READONLY_WRITES;
    return READONLY_ASK;
}

/* "The statement" or "Statement 2 of 5 (index 1)", for a refusal. */
static void which(char *out, size_t out_len, size_t index, size_t n)
{
    if (n == 1)
        snprintf(out, out_len, "the statement");
    else
        snprintf(out, out_len, "statement %zu of %zu (index %zu)", index + 1, n, index);
}

static void check_destroy(struct check *c)
{
    if (!c)
        return;
    free(c->asked);
    free(c);
}

/* Ends the check: runs `done` and frees it. */
static void check_end(struct check *c, bool is_allowed, json_t *refusal)
{
    readonly_done_fn done = c->done;
    void *ctx = c->ctx;
    check_destroy(c);
    done(is_allowed, refusal, ctx);
}

static void on_described(const struct hrana_outcome *o, void *arg)
{
    struct check *c = arg;
    char w[96];

    if (o->err != TM_OK) {
        if (o->message && strstr(o->message, "describe")) {
            which(w, sizeof(w), c->asked[0].index, c->n);
            check_end(c, false,
                      tool_error_result(
                          "%s, and %s could not be shown to only read: it is not a plain SELECT, "
                          "VALUES, WITH ... SELECT or EXPLAIN without keywords that can write "
                          "(it starts with %s), and this Turso server cannot check statements "
                          "(it does not support Hrana `describe`). Nothing was run. Rewrite it "
                          "as a plain read, or run it on a URL that may write.",
                          c->lead, w, c->asked[0].first_word[0] ? c->asked[0].first_word : "?"));
            return;
        }
        check_end(c, false,
                  tool_error_result("%s, and Turso could not be asked whether the statements "
                                    "only read: %s. Nothing was run.",
                                    c->lead, o->message ? o->message : "unknown failure"));
        return;
    }
    for (size_t i = 0; i < c->n_asked; i++) {
        json_t *response = NULL;
        const char *message = NULL, *code = NULL;
        enum tm_err rc =
            hrana_result_get(json_array_get(o->results, i), &response, &message, &code);
        which(w, sizeof(w), c->asked[i].index, c->n);
        if (rc == TM_ERR_UPSTREAM) {
            check_end(c, false,
                      tool_error_result("%s, and %s could not be checked for writes: %s%s%s%s. "
                                        "Nothing was run.",
                                        c->lead, w, message, code ? " (" : "", code ? code : "",
                                        code ? ")" : ""));
            return;
        }
        const json_t *ro = json_object_get(json_object_get(response, "result"), "is_readonly");
        if (rc != TM_OK || !json_is_boolean(ro)) {
            check_end(c, false,
                      tool_error_result("%s, and Turso's answer on whether %s only reads could "
                                        "not be read. Nothing was run.",
                                        c->lead, w));
            return;
        }
        if (!json_is_true(ro)) {
            check_end(c, false,
                      tool_error_result("%s, and Turso reports that %s writes (it starts with "
                                        "%s). Nothing was run. Only statements that read run "
                                        "here.",
                                        c->lead, w, c->asked[i].first_word));
            return;
        }
    }
    check_end(c, true, NULL);
}

enum tm_err readonly_check(struct tool_call *call, const char *database, const char *const *sqls,
                           size_t n, const char *lead, readonly_done_fn done, void *ctx)
{
    struct check *c = NULL;
    json_t *requests = NULL;
    enum tm_err err = TM_ERR_NOMEM;
    char w[96];

    c = calloc(1, sizeof(*c));
    if (!c)
        goto out;
    c->n = n;
    c->done = done;
    c->ctx = ctx;
    snprintf(c->lead, sizeof(c->lead), "%s", lead);
    c->asked = calloc(n > 0 ? n : 1, sizeof(*c->asked));
    requests = json_array();
    if (!c->asked || !requests)
        goto out;
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(sqls[i]);
        enum readonly_class k = readonly_classify(sqls[i], len);
        if (k == READONLY_YES)
            continue;
        struct sql_scan s;
        sql_scan(sqls[i], len, &s);
        if (k == READONLY_WRITES) {
            which(w, sizeof(w), i, n);
            json_t *refusal = tool_error_result(
                "%s, and %s may write (%s). Nothing was run. Only SELECT, VALUES, WITH ... SELECT "
                "and EXPLAIN statements run here.",
                c->lead, w, s.first_word);
            json_decref(requests);
            check_end(c, false, refusal);
            return TM_OK;
        }
        struct asked *a = &c->asked[c->n_asked++];
        a->index = i;
        memcpy(a->first_word, s.first_word, sizeof(a->first_word));
        json_t *req = json_pack("{s:s, s:s}", "type", "describe", "sql", sqls[i]);
        if (!req || json_array_append_new(requests, req) != 0)
            goto out;
    }
    if (c->n_asked == 0) {
        json_decref(requests);
        check_end(c, true, NULL);
        return TM_OK;
    }
    err = dbaccess_pipeline(call->env->db, call->creds, database, requests,
                            call->env->upstream_timeout_ms, on_described, c);
    if (err == TM_OK)
        c = NULL; /* on_described owns it now */
out:
    json_decref(requests);
    check_destroy(c);
    return err;
}
