/*
 * A Hrana statement result (StmtResult) turned into what tools return:
 * columns with their declared types, rows of cells (hrana_cell_from_value),
 * capped in rows and in bytes. Shared by every tool that runs SQL, so that
 * a row looks the same whichever tool produced it. Pure functions, any
 * thread; everything returned is newly built, never shared with the input.
 */
#ifndef TM_ROWS_H
#define TM_ROWS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

struct jsonw;

/*
 * The output schema of one statement's result, as JSON text for embedding
 * in a tool's outputSchema: an object with columns, rows, row_count,
 * rows_available, truncated, affected_row_count and last_insert_rowid.
 */
#define ROWS_SCHEMA_PROPERTIES                                                                     \
    "\"columns\":{\"type\":\"array\",\"items\":{\"type\":\"object\",\"properties\":{"              \
    "\"name\":{\"type\":[\"string\",\"null\"]},\"type\":{\"type\":[\"string\",\"null\"],"          \
    "\"description\":\"declared column type, null for expressions\"}},"                            \
    "\"required\":[\"name\",\"type\"]}},"                                                          \
    "\"rows\":{\"type\":\"array\",\"items\":{\"type\":\"array\"},\"description\":\"Each cell: "    \
    "null for NULL; a JSON integer for INTEGER within +-(2^53-1); a string for TEXT; "             \
    "{type:'integer',value:'<decimal>'} for larger integers; {type:'float',value:n} for REAL "     \
    "(value null when not finite); {type:'blob',base64:'...'} for BLOB.\"},"                       \
    "\"row_count\":{\"type\":\"integer\",\"description\":\"rows returned here\"},"                 \
    "\"rows_available\":{\"type\":\"integer\",\"description\":\"rows the statement produced\"},"   \
    "\"truncated\":{\"type\":\"boolean\"},"                                                        \
    "\"affected_row_count\":{\"type\":\"integer\"},"                                               \
    "\"last_insert_rowid\":{\"type\":\"string\"}"

/*
 * The columns of a StmtResult's `cols` as [{"name", "type"}] (new
 * reference; name and type null when the server gave none). NULL on OOM.
 */
json_t *rows_columns(const json_t *cols);

/*
 * Turns a StmtResult `sr` (borrowed) into {columns, rows, row_count,
 * rows_available, truncated[, affected_row_count][, last_insert_rowid]}
 * (new reference). At most `max_rows` rows are taken, and rows only while
 * their cells fit in *bytes_left, which is reduced by what was taken: a
 * caller running several statements shares one budget among them. NULL
 * with *why set (a static string) when `sr` is malformed or memory ran out.
 */
json_t *rows_from_result(const json_t *sr, long max_rows, size_t *bytes_left, const char **why);

/* What rows_write_result wrote, for the tool's summary line. */
struct rows_counts {
    size_t n_columns;
    size_t n_rows;      /* row_count: rows written */
    size_t n_available; /* rows_available: rows the statement produced */
    bool is_truncated;
};

/*
 * rows_from_result written straight to `w` as JSON text, without building
 * jansson values: the same object, fields, caps and budget (a parser reads
 * both as equal), strings ASCII-only with \u escapes as json_dumps with
 * JSON_ENSURE_ASCII writes them. true with *counts filled on success;
 * false with *why set (a static string) when `sr` is malformed or memory
 * ran out, leaving `w` holding partial text the caller discards.
 */
bool rows_write_result(struct jsonw *w, const json_t *sr, long max_rows, size_t *bytes_left,
                       struct rows_counts *counts, const char **why);

/*
 * rows_write_result for a whole Hrana pipeline answer `body` (`len` bytes)
 * read without jansson: its first of `n_results` results must be
 * {"type":"ok","response":{"type":"execute","result":{...}}} with cols
 * before rows. true when the answer is valid JSON of that shape, with the
 * object written to `w` and *bytes_left and *counts set as
 * rows_write_result would set them. false for anything else (a statement
 * error, another shape, text jansson would refuse, out of memory), with
 * *bytes_left and *counts untouched and `w` to be discarded: the caller
 * then reads the answer the ordinary way.
 */
bool rows_write_from_pipeline(struct jsonw *w, const char *body, size_t len, size_t n_results,
                              long max_rows, size_t *bytes_left, struct rows_counts *counts);

#endif
