/*
 * Building the steps of a turso_batch_execute batch and reading its answer:
 * which statements ran, which failed and why, and whether the transaction
 * committed, proven from the COMMIT and ROLLBACK steps rather than assumed.
 * No I/O; the tool (turso_batch_execute.c) sends and finishes.
 */
#include "batch.h"

#include <stdio.h>
#include <string.h>

#include "rows.h"

/* How one step of the answer ended. */
enum step_state {
    STEP_OK,
    STEP_ERROR,
    STEP_SKIPPED,
};

/* One step of the answer, borrowed from it. */
struct step {
    enum step_state state;
    const json_t *result; /* StmtResult when STEP_OK */
    const char *message;  /* when STEP_ERROR */
    const char *code;     /* when STEP_ERROR; may be NULL */
};

bool batch_mode_parse(const char *name, enum batch_mode *out)
{
    if (!name)
        return false;
    if (strcmp(name, "write") == 0)
        *out = BATCH_WRITE;
    else if (strcmp(name, "read") == 0)
        *out = BATCH_READ;
    else if (strcmp(name, "deferred") == 0)
        *out = BATCH_DEFERRED;
    else
        return false;
    return true;
}

const char *batch_mode_name(enum batch_mode mode)
{
    switch (mode) {
    case BATCH_READ:
        return "read";
    case BATCH_DEFERRED:
        return "deferred";
    case BATCH_WRITE:
    default:
        return "write";
    }
}

const char *batch_begin_sql(enum batch_mode mode)
{
    switch (mode) {
    case BATCH_READ:
        /* What @libsql/client sends; sqld, the local tursodb and SQLite all accept it. */
        return "BEGIN TRANSACTION READONLY";
    case BATCH_DEFERRED:
        return "BEGIN DEFERRED";
    case BATCH_WRITE:
    default:
        return "BEGIN IMMEDIATE";
    }
}

size_t batch_step_of(size_t i, bool is_transaction)
{
    return is_transaction ? i + 1 : i;
}

static json_t *cond_ok(size_t step)
{
    return json_pack("{s:s, s:I}", "type", "ok", "step", (json_int_t)step);
}

/* A step running `stmt` (stolen) under `cond` (stolen; NULL: always). */
static json_t *step_new(json_t *stmt, json_t *cond)
{
    json_t *s = json_object();
    if (!s || !stmt) {
        json_decref(s);
        json_decref(stmt);
        json_decref(cond);
        return NULL;
    }
    /* The condition first, as turso-api.md writes steps: it reads before the statement. */
    if (cond && json_object_set_new(s, "condition", cond) != 0) {
        json_decref(s);
        json_decref(stmt);
        return NULL;
    }
    if (json_object_set_new(s, "stmt", stmt) != 0) {
        json_decref(s);
        return NULL;
    }
    return s;
}

static json_t *control_stmt(const char *sql)
{
    return json_pack("{s:s, s:b}", "sql", sql, "want_rows", 0);
}

json_t *batch_steps(const json_t *stmts, enum batch_mode mode, bool is_transaction)
{
    size_t n = json_array_size(stmts);
    json_t *steps = json_array();
    if (!steps)
        return NULL;
    if (is_transaction &&
        json_array_append_new(steps, step_new(control_stmt(batch_begin_sql(mode)), NULL)) != 0)
        goto fail;
    for (size_t i = 0; i < n; i++) {
        json_t *stmt = json_deep_copy(json_array_get(stmts, i));
        /* Each statement needs the step before it: BEGIN or the previous statement. */
        json_t *cond = is_transaction ? cond_ok(batch_step_of(i, true) - 1) : NULL;
        if ((is_transaction && !cond) || json_array_append_new(steps, step_new(stmt, cond)) != 0)
            goto fail;
    }
    if (is_transaction) {
        size_t commit = n + 1;
        if (json_array_append_new(steps, step_new(control_stmt("COMMIT"), cond_ok(n))) != 0)
            goto fail;
        /* Roll back only what began and did not commit (turso-api.md §2.8). */
        json_t *guard = json_pack("{s:s, s:[o, {s:s, s:o}]}", "type", "and", "conds", cond_ok(0),
                                  "type", "not", "cond", cond_ok(commit));
        if (!guard || json_array_append_new(steps, step_new(control_stmt("ROLLBACK"), guard)) != 0)
            goto fail;
    }
    return steps;
fail:
    json_decref(steps);
    return NULL;
}

/* Reads step i of the answer; false if it is malformed. */
static bool step_get(const json_t *results, const json_t *errors, size_t i, struct step *out)
{
    const json_t *r = json_array_get(results, i);
    const json_t *e = json_array_get(errors, i);
    memset(out, 0, sizeof(*out));
    if (e && !json_is_null(e)) {
        if (!json_is_object(e))
            return false;
        out->state = STEP_ERROR;
        out->message = json_string_value(json_object_get(e, "message"));
        if (!out->message)
            out->message = "Turso reported an error without a message";
        out->code = json_string_value(json_object_get(e, "code"));
        return true;
    }
    if (r && !json_is_null(r)) {
        if (!json_is_object(r))
            return false;
        out->state = STEP_OK;
        out->result = r;
        return true;
    }
    out->state = STEP_SKIPPED;
    return true;
}

static json_t *error_object(const struct step *s)
{
    json_t *e = json_pack("{s:s}", "message", s->message);
    if (e && s->code && json_object_set_new(e, "code", json_string(s->code)) != 0) {
        json_decref(e);
        return NULL;
    }
    return e;
}

/* " (CODE)" or "", for messages. */
static void code_suffix(const struct step *s, char *out, size_t out_len)
{
    if (s->code)
        snprintf(out, out_len, " (%s)", s->code);
    else
        out[0] = '\0';
}

/* How the rollback went, when a transaction did not commit. */
enum rollback {
    ROLLBACK_RAN,         /* the ROLLBACK step succeeded */
    ROLLBACK_NOT_NEEDED,  /* BEGIN failed: there was nothing to undo */
    ROLLBACK_AUTOMATIC,   /* SQLite had already rolled back (e.g. after an ABORT-class error) */
    ROLLBACK_FAILED,      /* the ROLLBACK step failed: the transaction may still be open */
    ROLLBACK_DID_NOT_RUN, /* BEGIN succeeded, yet the ROLLBACK was skipped: unexpected */
};

static const char *const rollback_names[] = {"ran", "not_needed", "automatic", "failed",
                                             "did_not_run"};

static enum rollback rollback_of(const struct step *begin, const struct step *rb)
{
    if (rb->state == STEP_OK)
        return ROLLBACK_RAN;
    if (rb->state == STEP_ERROR)
        return strstr(rb->message, "no transaction is active") ? ROLLBACK_AUTOMATIC
                                                               : ROLLBACK_FAILED;
    return begin->state == STEP_OK ? ROLLBACK_DID_NOT_RUN : ROLLBACK_NOT_NEEDED;
}

/* "Statements 1-2", "Statement 1" (1-based), to open a sentence; empty when first > last. */
static void range_text(char *out, size_t out_len, size_t first, size_t last)
{
    if (first > last)
        out[0] = '\0';
    else if (first == last)
        snprintf(out, out_len, "Statement %zu", first);
    else
        snprintf(out, out_len, "Statements %zu-%zu", first, last);
}

/* The per-statement entries; counts what happened. NULL with *why on failure. */
static json_t *statement_entries(const json_t *results, const json_t *errors, size_t n,
                                 bool is_transaction, bool is_committed, long max_rows,
                                 size_t max_bytes, size_t counts[3], size_t *first_failed,
                                 const char **why)
{
    json_t *list = json_array();
    size_t bytes_left = max_bytes;
    *first_failed = n;
    if (!list)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        struct step s;
        if (!step_get(results, errors, batch_step_of(i, is_transaction), &s)) {
            *why = "a step result is malformed";
            goto fail;
        }
        counts[s.state]++;
        /* In a transaction that did not commit, what ran was undone. */
        const char *status = s.state == STEP_ERROR             ? "error"
                             : s.state == STEP_SKIPPED         ? "skipped"
                             : is_transaction && !is_committed ? "rolled_back"
                                                               : "ok";
        json_t *entry = json_pack("{s:I, s:s}", "index", (json_int_t)i, "status", status);
        if (!entry)
            goto fail;
        int rc = 0;
        if (s.state == STEP_OK) {
            json_t *rows = rows_from_result(s.result, max_rows, &bytes_left, why);
            rc = rows ? json_object_update(entry, rows) : -1;
            json_decref(rows);
        } else if (s.state == STEP_ERROR) {
            if (*first_failed == n)
                *first_failed = i;
            rc = json_object_set_new(entry, "error", error_object(&s));
        }
        if (rc != 0) {
            json_decref(entry);
            goto fail;
        }
        if (json_array_append_new(list, entry) != 0)
            goto fail;
    }
    return list;
fail:
    json_decref(list);
    if (!*why)
        *why = "out of memory";
    return NULL;
}

/* Adds {"step", "message", "code"} for a failed control step as `key`. */
static int set_step_error(json_t *out, const char *key, const char *step, const struct step *s)
{
    json_t *e = error_object(s);
    if (!e || json_object_set_new(e, "step", json_string(step)) != 0 ||
        json_object_set_new(out, key, e) != 0)
        return -1;
    return 0;
}

/* The summary and extra fields of a transaction that did not commit. */
static int explain_rollback(json_t *out, struct batch_report *rep, size_t n, size_t failed,
                            const struct step *begin, const struct step *commit,
                            const struct step *rb, const struct step *failed_step)
{
    enum rollback how = rollback_of(begin, rb);
    char code[64], ran[64], rest[64], undo[160] = "";
    size_t len = 0;
    char *buf = rep->summary;
    size_t cap = sizeof(rep->summary);

    if (json_object_set_new(out, "rollback", json_string(rollback_names[how])) != 0)
        return -1;
    if (how == ROLLBACK_FAILED && set_step_error(out, "rollback_error", "ROLLBACK", rb) != 0)
        return -1;

    if (begin->state != STEP_OK) {
        if (begin->state == STEP_ERROR &&
            set_step_error(out, "transaction_error", "BEGIN", begin) != 0)
            return -1;
        code_suffix(begin, code, sizeof(code));
        snprintf(buf, cap,
                 "The transaction could not begin: %s%s. Nothing was committed: no statement "
                 "ran.",
                 begin->state == STEP_ERROR ? begin->message : "BEGIN did not run", code);
        return 0;
    }
    if (failed < n) {
        code_suffix(failed_step, code, sizeof(code));
        len = (size_t)snprintf(buf, cap, "Statement %zu of %zu (index %zu) failed: %s%s. ",
                               failed + 1, n, failed, failed_step->message, code);
        range_text(ran, sizeof(ran), 1, failed);
        range_text(rest, sizeof(rest), failed + 2, n);
        if (ran[0])
            snprintf(undo, sizeof(undo), " %s ran but %s undone.", ran,
                     failed == 1 ? "was" : "were");
        if (rest[0])
            snprintf(undo + strlen(undo), sizeof(undo) - strlen(undo), " %s did not run.", rest);
    } else if (commit->state == STEP_ERROR) {
        if (set_step_error(out, "transaction_error", "COMMIT", commit) != 0)
            return -1;
        code_suffix(commit, code, sizeof(code));
        len = (size_t)snprintf(buf, cap, "All %zu statements ran, but COMMIT failed: %s%s. ", n,
                               commit->message, code);
    } else {
        len = (size_t)snprintf(buf, cap, "The transaction did not commit (COMMIT did not run). ");
    }
    if (len >= cap)
        len = cap - 1;
    switch (how) {
    case ROLLBACK_RAN:
        snprintf(buf + len, cap - len, "Nothing was committed: the transaction was rolled back.%s",
                 undo);
        break;
    case ROLLBACK_AUTOMATIC:
        snprintf(buf + len, cap - len,
                 "Nothing was committed: SQLite had already rolled the transaction back.%s", undo);
        break;
    case ROLLBACK_FAILED:
        code_suffix(rb, code, sizeof(code));
        snprintf(buf + len, cap - len,
                 "Nothing was committed, but the ROLLBACK failed (%s%s): the server may hold the "
                 "transaction open until its connection ends.",
                 rb->message, code);
        break;
    case ROLLBACK_DID_NOT_RUN:
    case ROLLBACK_NOT_NEEDED:
    default:
        snprintf(buf + len, cap - len,
                 "Nothing was committed (COMMIT did not succeed), but the server skipped the "
                 "ROLLBACK: the transaction may stay open until its connection ends.");
        break;
    }
    return 0;
}

bool batch_read(const json_t *result, size_t n, bool is_transaction, enum batch_mode mode,
                long max_rows, size_t max_bytes, struct batch_report *out, const char **why)
{
    const json_t *results = json_object_get(result, "step_results");
    const json_t *errors = json_object_get(result, "step_errors");
    size_t n_steps = is_transaction ? n + 3 : n;
    size_t counts[3] = {0, 0, 0}, failed = n;
    struct step begin = {0}, commit = {0}, rb = {0}, failed_step = {0};
    json_t *st = NULL, *list = NULL;

    *why = NULL;
    memset(out, 0, sizeof(*out));
    if (!json_is_array(results) || !json_is_array(errors)) {
        *why = "the batch result has no step_results or step_errors";
        return false;
    }
    if (json_array_size(results) != n_steps || json_array_size(errors) != n_steps) {
        *why = "the batch result does not have one entry per step";
        return false;
    }
    bool is_committed = false;
    if (is_transaction) {
        if (!step_get(results, errors, 0, &begin) || !step_get(results, errors, n + 1, &commit) ||
            !step_get(results, errors, n + 2, &rb)) {
            *why = "a step result is malformed";
            return false;
        }
        is_committed = commit.state == STEP_OK;
    }
    list = statement_entries(results, errors, n, is_transaction, is_committed, max_rows, max_bytes,
                             counts, &failed, why);
    if (!list)
        return false;
    if (failed < n)
        step_get(results, errors, batch_step_of(failed, is_transaction), &failed_step);

    const char *status = is_transaction
                             ? (is_committed ? "committed" : "rolled_back")
                             : (counts[STEP_ERROR] == 0 ? "completed" : "completed_with_errors");
    st = json_pack("{s:s, s:b, s:I, s:I, s:I, s:I}", "status", status, "transaction",
                   is_transaction, "statement_count", (json_int_t)n, "succeeded",
                   (json_int_t)counts[STEP_OK], "failed", (json_int_t)counts[STEP_ERROR], "skipped",
                   (json_int_t)counts[STEP_SKIPPED]);
    if (!st)
        goto fail;
    if (is_transaction &&
        (json_object_set_new(st, "mode", json_string(batch_mode_name(mode))) != 0 ||
         json_object_set_new(st, "committed", json_boolean(is_committed)) != 0))
        goto fail;
    if (failed < n) {
        char label[64];
        snprintf(label, sizeof(label), "statement %zu of %zu", failed + 1, n);
        json_t *f = json_pack("{s:I, s:s}", "index", (json_int_t)failed, "statement", label);
        json_t *e = error_object(&failed_step);
        int rc = f && e ? json_object_update(f, e) : -1;
        json_decref(e);
        if (rc != 0) {
            json_decref(f);
            goto fail;
        }
        if (json_object_set_new(st, "failed_statement", f) != 0)
            goto fail;
    }

    if (is_transaction && is_committed) {
        if (n == 1)
            snprintf(out->summary, sizeof(out->summary),
                     "Committed: the statement succeeded in a transaction.");
        else
            snprintf(out->summary, sizeof(out->summary),
                     "Committed: all %zu statements succeeded in one transaction.", n);
    } else if (is_transaction) {
        out->is_error = true;
        if (explain_rollback(st, out, n, failed, &begin, &commit, &rb, &failed_step) != 0)
            goto fail;
    } else if (counts[STEP_ERROR] == 0 && counts[STEP_SKIPPED] == 0) {
        snprintf(out->summary, sizeof(out->summary),
                 "All %zu statement%s succeeded, each on its own (no transaction): each took "
                 "effect as it ran.",
                 n, n == 1 ? "" : "s");
    } else {
        char code[64] = "", first[512] = "";
        out->is_error = true;
        if (failed < n) {
            code_suffix(&failed_step, code, sizeof(code));
            snprintf(first, sizeof(first),
                     " The first failure: statement %zu of %zu (index %zu): %s%s.", failed + 1, n,
                     failed, failed_step.message, code);
        }
        snprintf(out->summary, sizeof(out->summary),
                 "Ran %zu statements each on its own (no transaction): %zu succeeded and took "
                 "effect, %zu failed%s.%s See each statement's status.",
                 n, counts[STEP_OK], counts[STEP_ERROR],
                 counts[STEP_SKIPPED] ? ", some were not run by the server" : "", first);
    }
    /* Last, so that the outcome reads before the detail. */
    if (json_object_set_new(st, "statements", list) != 0) {
        list = NULL;
        goto fail;
    }
    out->structured = st;
    return true;
fail:
    json_decref(list);
    json_decref(st);
    if (!*why)
        *why = "out of memory";
    return false;
}

void batch_report_cleanup(struct batch_report *r)
{
    if (!r)
        return;
    json_decref(r->structured);
    r->structured = NULL;
}
