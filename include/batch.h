/*
 * The Hrana batch behind turso_batch_execute, and how its answer reads.
 *
 * With a transaction, n statements become n + 3 steps (turso-api.md §6.1):
 *   0        BEGIN IMMEDIATE | BEGIN TRANSACTION READONLY | BEGIN DEFERRED
 *   1..n     statement i-1, run only if step i-1 succeeded
 *   n+1      COMMIT, only if step n succeeded
 *   n+2      ROLLBACK, only if BEGIN succeeded and COMMIT did not
 * so a failure skips everything after it and the rollback undoes what ran.
 * Without one, the n statements are n unconditional steps: each runs on its
 * own (autocommit) whatever happened before it.
 * Pure functions, any thread; nothing returned shares memory with inputs.
 */
#ifndef TM_BATCH_H
#define TM_BATCH_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

enum batch_mode {
    BATCH_WRITE,    /* BEGIN IMMEDIATE: takes the write lock up front */
    BATCH_READ,     /* BEGIN TRANSACTION READONLY: only reads (checked by the tool too) */
    BATCH_DEFERRED, /* BEGIN DEFERRED: locks as statements need them */
};

/* "write", "read" or "deferred" to *out; false for anything else. */
bool batch_mode_parse(const char *name, enum batch_mode *out);

/* The name batch_mode_parse accepts for `mode`. */
const char *batch_mode_name(enum batch_mode mode);

/* The BEGIN statement for `mode`. */
const char *batch_begin_sql(enum batch_mode mode);

/* The index of the step that runs statement `i` (0-based). */
size_t batch_step_of(size_t i, bool is_transaction);

/*
 * The `steps` array of one Hrana batch (new reference) running `stmts`, an
 * array of Stmt objects (borrowed; each copied), as the file comment says.
 * NULL on OOM.
 */
json_t *batch_steps(const json_t *stmts, enum batch_mode mode, bool is_transaction);

/* What a batch's answer says, for the tool to return. */
struct batch_report {
    json_t *structured; /* the tool's structuredContent (owned by the report) */
    bool is_error;      /* something failed: the result is an error, with detail */
    char summary[1024]; /* one or two sentences for the text block */
};

/*
 * Reads a BatchResult (`result`, borrowed: {"step_results", "step_errors"})
 * of the batch batch_steps built for `n` statements. Rows are capped at
 * `max_rows` per statement and `max_bytes` of cell data for the whole
 * batch. Whether a transaction committed is decided from the COMMIT step,
 * and "nothing was committed" only said when the ROLLBACK ran, was not
 * needed (BEGIN failed) or found that SQLite had already rolled back.
 * Returns true and fills *out (release with batch_report_cleanup); false
 * with *why set (a static string) when the answer is malformed or memory ran
 * out.
 */
bool batch_read(const json_t *result, size_t n, bool is_transaction, enum batch_mode mode,
                long max_rows, size_t max_bytes, struct batch_report *out, const char **why);

/* Releases what batch_read filled in; accepts a zeroed report. */
void batch_report_cleanup(struct batch_report *r);

#endif
