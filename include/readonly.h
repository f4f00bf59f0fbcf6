/*
 * Deciding, before anything runs, that statements only read: for a
 * read-only URL that Turso does not enforce itself (a database token we
 * did not mint) and for batches in mode "read", which Turso does not
 * enforce either (the local tursodb and SQLite take BEGIN TRANSACTION
 * READONLY as a plain BEGIN). The lexical scan (sql_scan) settles most
 * statements; for the rest the server is asked with Hrana `describe`
 * requests, and a server that cannot answer (the local tursodb) gets a
 * conservative refusal. Used by turso_query and turso_batch_execute.
 * Thread: any; the callback runs on the caller's thread or the transport's.
 */
#ifndef TM_READONLY_H
#define TM_READONLY_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "tm_err.h"
#include "tool.h"

/* What the lexical scan alone says about one statement. */
enum readonly_class {
    READONLY_YES,    /* provably only reads */
    READONLY_WRITES, /* starts with a keyword that writes (INSERT, CREATE, BEGIN...) */
    READONLY_ASK,    /* cannot tell (a write keyword inside, a PRAGMA...): ask the server */
};

/* Classifies one statement of `len` bytes. Pure. */
enum readonly_class readonly_classify(const char *sql, size_t len);

/*
 * Ends a check. `is_allowed`: every statement only reads. Otherwise
 * `refusal` is an error result (tool_error_result) saying which statement
 * and why, for tool_call_finish (a new reference for the callee; NULL when
 * memory ran out).
 */
typedef void (*readonly_done_fn)(bool is_allowed, json_t *refusal, void *ctx);

/*
 * Checks that each of the `n` statements in `sqls` (borrowed for the
 * duration of this call only) only reads. `lead` opens every refusal, e.g.
 * "This URL is read-only" (copied). Statements the scan proves read-only
 * pass; one that starts with a write keyword is refused before any call;
 * the others go to database `database` of call->creds (NULL: the default)
 * as one pipeline of `describe` requests and pass when Turso reports
 * is_readonly. `done` runs exactly once, possibly before this returns.
 * Returns TM_OK, or TM_ERR_NOMEM when `done` will not run.
 */
enum tm_err readonly_check(struct tool_call *call, const char *database, const char *const *sqls,
                           size_t n, const char *lead, readonly_done_fn done, void *ctx);

#endif
