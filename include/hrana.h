/*
 * Hrana over HTTP (v2, JSON): building pipeline requests, sending them
 * through the transport and reading the three error layers of the answer
 * (HTTP status, each result, each batch step). Values follow turso-api.md
 * §2.4: integers as decimal strings, floats as numbers (null when not
 * finite), blobs as unpadded base64.
 *
 * It knows nothing of MCP. Thread: any; callbacks run on the transport's callback threads.
 */
#ifndef TM_HRANA_H
#define TM_HRANA_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tm_err.h"
#include "turso_transport.h"

/*
 * An argument as a client gives it, to a Hrana value (new reference):
 * JSON integer -> integer, real -> float, string -> text, true/false ->
 * integer 1/0, null -> null, {"base64": "..."} -> blob, and a Hrana value
 * object ({"type":"integer","value":"..."}, {"type":"float",...},
 * {"type":"text",...}, {"type":"blob","base64":...}, {"type":"null"})
 * checked and passed through. NULL on anything else, with a reason in err.
 */
json_t *hrana_value_from_arg(const json_t *arg, char *err, size_t err_len);

/*
 * A Hrana value from a result row, to the cell form tools return (new
 * reference): null -> null; integer within +-(2^53-1) -> JSON integer;
 * other integers -> {"type":"integer","value":"<decimal>"}; float ->
 * {"type":"float","value":<number or null>}; text -> string; blob ->
 * {"type":"blob","base64":"..."}. A plain JSON number in a cell is always an
 * integer and a plain string always text. NULL if `v` is not a valid value.
 */
json_t *hrana_cell_from_value(const json_t *v);

/* The largest integer a cell gives as a plain JSON number: 2^53 - 1. */
#define HRANA_MAX_SAFE_INT INT64_C(9007199254740991)

/* A Hrana integer's decimal text (`len` bytes) to *out; false if not one or out of range. */
bool hrana_int64_parse(const char *s, size_t len, int64_t *out);

/* A row value as read, before it becomes a cell (what hrana_cell_from_value builds). */
struct hrana_cell {
    enum {
        HRANA_CELL_NULL,
        HRANA_CELL_INTEGER,     /* i within +-(2^53-1): a plain JSON integer */
        HRANA_CELL_BIG_INTEGER, /* i beyond: {"type":"integer","value":"<decimal>"} */
        HRANA_CELL_FLOAT,       /* d finite: {"type":"float","value":d} */
        HRANA_CELL_FLOAT_NULL,  /* not finite: {"type":"float","value":null} */
        HRANA_CELL_TEXT,        /* s, len: a string */
        HRANA_CELL_BLOB,        /* s, len: the base64, {"type":"blob","base64":"..."} */
    } kind;
    int64_t i;
    double d;
    const char *s; /* borrowed from `v`; NULs allowed, len bytes */
    size_t len;
    /* A float's text as the answer had it (borrowed), when it was read
     * without jansson; NULL otherwise. */
    const char *num;
    size_t num_len;
};

/*
 * Reads a row value `v` (borrowed) into *out without building anything,
 * with the checks of hrana_cell_from_value. false if `v` is not a valid value.
 */
bool hrana_cell_read(const json_t *v, struct hrana_cell *out);

/*
 * A Stmt object (new reference) for `sql` with `args`: NULL, a JSON array
 * (positional) or an object (named; keys given with or without their :, @
 * or $ prefix). NULL with a reason in err if an argument is invalid.
 */
json_t *hrana_stmt(const char *sql, const json_t *args, char *err, size_t err_len);

/*
 * Writes the origin of a database URL, "scheme://host[:port]" with scheme and
 * host in lower case, to `out` (out_len bytes, NUL-terminated): http and
 * https stay, libsql:// becomes https://, any path, query or fragment is
 * dropped. TM_ERR_INVALID for another scheme, no host, user info or a bad
 * port; TM_ERR_TOO_LARGE when out is too small. Pipelines go to
 * <origin>/v2/pipeline.
 */
enum tm_err hrana_origin(const char *db_url, char *out, size_t out_len);

/* What a pipeline call ends with. */
struct hrana_outcome {
    enum tm_err err;     /* TM_OK: the pipeline ran; each result says how its request did */
    long http_status;    /* the HTTP status, 0 if none arrived */
    json_t *results;     /* borrowed: the results array (without the one for `close`) */
    const char *message; /* when err != TM_OK: a clear, secret-free explanation */
};

/*
 * Runs on a transport callback thread; `o` is valid only during the call. To keep
 * results past it on another thread, take a json_deep_copy: the transport
 * thread drops its own references afterwards, so a json_incref'd value would
 * be shared between threads.
 */
typedef void (*hrana_done_fn)(const struct hrana_outcome *o, void *ctx);

/*
 * POSTs `{"baton":null,"requests":[...requests, close]}` to
 * <origin of db_url>/v2/pipeline with `token` as Bearer (NULL for none).
 * `close` is added where the server accepts it: a server that rejects it
 * (the local tursodb) is remembered per origin and the same pipeline is sent
 * again without it. `requests` is borrowed (the call serialises it at once).
 * On TM_OK `done` runs exactly once; otherwise never.
 */
enum tm_err hrana_pipeline(struct turso_transport *t, const char *db_url, const char *token,
                           const json_t *requests, long timeout_ms, hrana_done_fn done, void *ctx);

/*
 * Reads a 2xx pipeline answer before it is parsed: `body` (`len` bytes,
 * borrowed for the call) should hold `n_results` results, the caller's
 * requests first (any after them are a `close` the caller never sees).
 * Returns true when it consumed the answer: `done` will not run, and the
 * call is over. Returns false, having changed nothing, to leave the answer
 * to the ordinary path, which parses it and runs `done`. A transport callback thread.
 */
typedef bool (*hrana_raw_fn)(const char *body, size_t len, size_t n_results, void *ctx);

/*
 * hrana_pipeline with `raw` (may be NULL) offered each 2xx answer first,
 * for a caller that reads one known shape faster than jansson can.
 */
enum tm_err hrana_pipeline_raw(struct turso_transport *t, const char *db_url, const char *token,
                               const json_t *requests, long timeout_ms, hrana_raw_fn raw,
                               hrana_done_fn done, void *ctx);

/*
 * Blocking form for the command line. *results_out gets a new reference to
 * the results on TM_OK; message (err_len bytes) explains any failure.
 */
enum tm_err hrana_pipeline_sync(struct turso_transport *t, const char *db_url, const char *token,
                                const json_t *requests, long timeout_ms, json_t **results_out,
                                char *message, size_t message_len);

/*
 * Reads one pipeline result: TM_OK with *response set (borrowed) when it is
 * {"type":"ok"}; TM_ERR_UPSTREAM with *error_message and *error_code
 * (borrowed, code may be NULL) when it is {"type":"error"}; TM_ERR_INVALID
 * when it is neither.
 */
enum tm_err hrana_result_get(const json_t *result, json_t **response, const char **error_message,
                             const char **error_code);

#endif
