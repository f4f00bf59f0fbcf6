/*
 * Statement results to tool output: columns, cells and the row and byte
 * caps, shared by turso_query and turso_batch_execute. Runs on whatever
 * thread reads the Hrana answer; it copies what it keeps, so the answer
 * can be freed on its own thread afterwards.
 */
#include "rows.h"

#include <stdbool.h>

#include "hrana.h"

/* A rough size of a cell as JSON, for the byte cap; cheaper than serialising. */
static size_t cell_size(const json_t *cell)
{
    switch (json_typeof(cell)) {
    case JSON_STRING:
        return json_string_length(cell) + 3;
    case JSON_OBJECT: {
        const json_t *b = json_object_get(cell, "base64");
        const json_t *v = json_object_get(cell, "value");
        return 32 + (b ? json_string_length(b) : 0) +
               (json_is_string(v) ? json_string_length(v) : 24);
    }
    default:
        return 24;
    }
}

/* A string member copied, or null; NULL on OOM. */
static json_t *string_or_null(const json_t *v)
{
    return json_is_string(v) ? json_stringn(json_string_value(v), json_string_length(v))
                             : json_null();
}

json_t *rows_columns(const json_t *cols)
{
    json_t *out = json_array();
    size_t i;
    const json_t *col;
    if (!out)
        return NULL;
    json_array_foreach(cols, i, col)
    {
        json_t *c = json_pack("{s:o, s:o}", "name", string_or_null(json_object_get(col, "name")),
                              "type", string_or_null(json_object_get(col, "decltype")));
        if (!c || json_array_append_new(out, c) != 0) {
            json_decref(out);
            return NULL;
        }
    }
    return out;
}

/* One row to cells; NULL with *why set if a value is malformed. */
static json_t *row_cells(const json_t *row, size_t *row_bytes, const char **why)
{
    json_t *out = json_array();
    if (!out)
        return NULL;
    for (size_t c = 0; c < json_array_size(row); c++) {
        json_t *cell = hrana_cell_from_value(json_array_get(row, c));
        if (!cell) {
            *why = "a value in a row is malformed";
            json_decref(out);
            return NULL;
        }
        *row_bytes += cell_size(cell);
        if (json_array_append_new(out, cell) != 0) {
            json_decref(out);
            return NULL;
        }
    }
    return out;
}

json_t *rows_from_result(const json_t *sr, long max_rows, size_t *bytes_left, const char **why)
{
    const json_t *cols = json_object_get(sr, "cols");
    const json_t *rows = json_object_get(sr, "rows");
    json_t *out = NULL, *columns = NULL, *out_rows = NULL;

    *why = NULL;
    if (!json_is_array(cols) || !json_is_array(rows)) {
        *why = "the result has no columns or rows";
        return NULL;
    }
    columns = rows_columns(cols);
    out_rows = json_array();
    if (!columns || !out_rows)
        goto fail;
    size_t n_rows = json_array_size(rows), taken = 0;
    bool is_truncated = false;
    for (size_t r = 0; r < n_rows; r++) {
        if ((long)taken >= max_rows) {
            is_truncated = true;
            break;
        }
        const json_t *row = json_array_get(rows, r);
        if (!json_is_array(row)) {
            *why = "a row is not an array";
            goto fail;
        }
        size_t row_bytes = 0;
        json_t *out_row = row_cells(row, &row_bytes, why);
        if (!out_row)
            goto fail;
        if (row_bytes > *bytes_left) {
            json_decref(out_row);
            is_truncated = true;
            break;
        }
        *bytes_left -= row_bytes;
        if (json_array_append_new(out_rows, out_row) != 0)
            goto fail;
        taken++;
    }
    out = json_pack("{s:o, s:o, s:I, s:I, s:b}", "columns", columns, "rows", out_rows, "row_count",
                    (json_int_t)taken, "rows_available", (json_int_t)n_rows, "truncated",
                    is_truncated);
    columns = out_rows = NULL; /* json_pack's "o" took them, even on failure */
    if (!out)
        goto fail;
    const json_t *affected = json_object_get(sr, "affected_row_count");
    if (json_is_integer(affected) &&
        json_object_set_new(out, "affected_row_count",
                            json_integer(json_integer_value(affected))) != 0)
        goto fail;
    const json_t *rowid = json_object_get(sr, "last_insert_rowid");
    if (json_is_string(rowid) &&
        json_object_set_new(out, "last_insert_rowid", string_or_null(rowid)) != 0)
        goto fail;
    return out;
fail:
    json_decref(columns);
    json_decref(out_rows);
    json_decref(out);
    if (!*why)
        *why = "out of memory";
    return NULL;
}
