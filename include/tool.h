/*
 * The tool interface. Each tool file exports one `struct tool_desc`; the
 * registry lists them, validates their schemas once at startup and finds
 * them by name. A call is asynchronous: `run` starts the work (usually a
 * Hrana request) and the tool calls tool_call_finish() exactly once, from
 * whatever thread its last callback runs on. Tools never see HTTP.
 */
#ifndef TM_TOOL_H
#define TM_TOOL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "creds.h"
#include "dbaccess.h"
#include "turso_transport.h"

/* What every call may use; frozen after startup. */
struct tool_env {
    struct turso_transport *transport;
    struct dbaccess *db;      /* reaches a user's databases */
    long max_rows;            /* server cap on rows returned */
    long max_result_bytes;    /* server cap on row data returned */
    long upstream_timeout_ms; /* total time for one Turso request */
    long call_deadline_ms;    /* total time for one call, all its requests together */
};

struct tool_call;
typedef void (*tool_finish_fn)(struct tool_call *call, char *result, size_t len, bool is_error);

struct tool_call {
    const struct tool_env *env;
    const struct creds *creds; /* borrowed: valid until finish is called */
    const json_t *args;        /* borrowed: the `arguments` object, valid until finish */
    tool_finish_fn finish;     /* takes the CallToolResult as JSON text (malloc'd) */
    void *owner;               /* the caller's, untouched by tools */
};

struct tool_desc {
    const char *name;
    const char *title;
    const char *description;   /* teaches the model when and how to use the tool */
    const char *input_schema;  /* JSON text; root type object */
    const char *output_schema; /* JSON text; root type object */
    bool is_read_only;
    bool is_destructive;
    bool is_idempotent;
    bool is_open_world;
    void (*run)(struct tool_call *call);
};

/*
 * Ends a call with `result` (stolen), from tool_result, tool_ok_result or
 * tool_error_result: written as JSON text here, its structured content
 * serialised once for both the text block and structuredContent. A NULL
 * result (out of memory) ends the call with an internal error.
 */
void tool_call_finish(struct tool_call *call, json_t *result);

/*
 * Ends a call with a CallToolResult already written as compact JSON text:
 * `result` (malloc'd, `len` bytes, taken; NULL on OOM) goes into the reply
 * as is. `is_error` says whether it has isError true. For large results,
 * where building jansson values and dumping them costs more than the query.
 */
static inline void tool_call_finish_text(struct tool_call *call, char *result, size_t len,
                                         bool is_error)
{
    call->finish(call, result, len, is_error);
}

/*
 * A result with isError true and `fmt` as its text (new reference, NULL on
 * OOM). Results are a CallToolResult's parts, for tool_call_finish.
 */
json_t *tool_error_result(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * A successful result: `structured` (stolen) as structuredContent and, as
 * text, `summary` followed by the same data as JSON. When `is_untrusted`
 * the data is fenced as content from the database, not instructions. NULL
 * on OOM.
 */
json_t *tool_ok_result(json_t *structured, const char *summary, bool is_untrusted);

/*
 * tool_ok_result with isError set when `is_error`: for a call that failed
 * yet has structured detail worth returning (a batch that was rolled back
 * says what each statement did). `structured` is stolen. NULL on OOM.
 */
json_t *tool_result(json_t *structured, const char *summary, bool is_untrusted, bool is_error);

/*
 * A result from the three above (borrowed) as the compact JSON text of its
 * CallToolResult, what tool_call_finish sends: the text block holds the
 * structured content ASCII-only, as json_dumps writes it with
 * JSON_ENSURE_ASCII, and structuredContent is that same text. The caller
 * frees it with free(); its length goes to *len and its isError to
 * *is_error. NULL on OOM.
 */
char *tool_result_dumps(const json_t *result, size_t *len, bool *is_error);

/*
 * A successful CallToolResult as JSON text, for `structured` given as JSON
 * text (borrowed, `structured_len` bytes, ASCII-only as json_dumps writes
 * with JSON_ENSURE_ASCII): what tool_result_dumps writes for
 * tool_ok_result. The result (caller frees with free(), length in *len) is
 * NULL on OOM.
 */
char *tool_ok_result_text(const char *structured, size_t structured_len, const char *summary,
                          bool is_untrusted, size_t *len);

/* Builds the registry: parses and checks every tool's schemas. Call once at startup. */
int tool_registry_init(void);

/* Frees what tool_registry_init built. */
void tool_registry_cleanup(void);

/* The tool named `name`, or NULL. */
const struct tool_desc *tool_registry_find(const char *name);

/*
 * The `tools/list` result as compact JSON text, built once at init
 * (borrowed; lives until cleanup).
 */
const char *tool_registry_list_json(void);

#endif
