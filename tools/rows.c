/*
 * Statement results to tool output: columns, cells and the row and byte
 * caps, shared by turso_query and turso_batch_execute. Runs on whatever
 * thread reads the Hrana answer; it copies what it keeps, so the answer
 * can be freed on its own thread afterwards.
 */
#include "rows.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>

#include "hrana.h"
#include "jsonw.h"

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

/* cell_size for a cell read by hrana_cell_read, without building it. */
static size_t read_cell_size(const struct hrana_cell *c, size_t big_len)
{
    switch (c->kind) {
    case HRANA_CELL_TEXT:
        return c->len + 3;
    case HRANA_CELL_BIG_INTEGER:
        return 32 + big_len;
    case HRANA_CELL_FLOAT:
    case HRANA_CELL_FLOAT_NULL:
        return 32 + 24;
    case HRANA_CELL_BLOB:
        return 32 + c->len + 24;
    default:
        return 24;
    }
}

/* A string member, or null, as JSON text. */
static void write_string_or_null(struct jsonw *w, const json_t *v)
{
    if (json_is_string(v))
        jsonw_string(w, json_string_value(v), json_string_length(v), true);
    else
        jsonw_lit(w, "null");
}

/* One cell in the form hrana_cell_from_value builds; adds its cell_size to *row_bytes. */
static void write_cell(struct jsonw *w, const struct hrana_cell *c, size_t *row_bytes)
{
    char num[24];
    int k = 0;
    switch (c->kind) {
    case HRANA_CELL_NULL:
        jsonw_lit(w, "null");
        break;
    case HRANA_CELL_INTEGER:
        jsonw_int(w, c->i);
        break;
    case HRANA_CELL_BIG_INTEGER:
        k = snprintf(num, sizeof(num), "%" PRId64, c->i);
        jsonw_lit(w, "{\"type\":\"integer\",\"value\":\"");
        jsonw_raw(w, num, (size_t)k);
        jsonw_lit(w, "\"}");
        break;
    case HRANA_CELL_FLOAT:
        jsonw_lit(w, "{\"type\":\"float\",\"value\":");
        jsonw_real(w, c->d);
        jsonw_lit(w, "}");
        break;
    case HRANA_CELL_FLOAT_NULL:
        jsonw_lit(w, "{\"type\":\"float\",\"value\":null}");
        break;
    case HRANA_CELL_TEXT:
        jsonw_string(w, c->s, c->len, true);
        break;
    case HRANA_CELL_BLOB:
        jsonw_lit(w, "{\"type\":\"blob\",\"base64\":");
        jsonw_string(w, c->s, c->len, true);
        jsonw_lit(w, "}");
        break;
    }
    *row_bytes += read_cell_size(c, (size_t)(k > 0 ? k : 0));
}

bool rows_write_result(struct jsonw *w, const json_t *sr, long max_rows, size_t *bytes_left,
                       struct rows_counts *counts, const char **why)
{
    const json_t *cols = json_object_get(sr, "cols");
    const json_t *rows = json_object_get(sr, "rows");
    size_t i;
    const json_t *col;

    *why = NULL;
    if (!json_is_array(cols) || !json_is_array(rows)) {
        *why = "the result has no columns or rows";
        return false;
    }
    jsonw_lit(w, "{\"columns\":[");
    json_array_foreach(cols, i, col)
    {
        jsonw_lit(w, i ? ",{\"name\":" : "{\"name\":");
        write_string_or_null(w, json_object_get(col, "name"));
        jsonw_lit(w, ",\"type\":");
        write_string_or_null(w, json_object_get(col, "decltype"));
        jsonw_lit(w, "}");
    }
    jsonw_lit(w, "],\"rows\":[");
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
            return false;
        }
        /* Written first, then taken back if it does not fit the budget. */
        size_t mark = w->len, row_bytes = 0;
        jsonw_lit(w, taken ? ",[" : "[");
        for (size_t c = 0; c < json_array_size(row); c++) {
            struct hrana_cell cell;
            if (!hrana_cell_read(json_array_get(row, c), &cell)) {
                *why = "a value in a row is malformed";
                return false;
            }
            if (c)
                jsonw_lit(w, ",");
            write_cell(w, &cell, &row_bytes);
        }
        jsonw_lit(w, "]");
        if (w->is_failed)
            break;
        if (row_bytes > *bytes_left) {
            jsonw_truncate(w, mark);
            is_truncated = true;
            break;
        }
        *bytes_left -= row_bytes;
        taken++;
    }
    jsonw_lit(w, "],\"row_count\":");
    jsonw_int(w, (int64_t)taken);
    jsonw_lit(w, ",\"rows_available\":");
    jsonw_int(w, (int64_t)n_rows);
    jsonw_lit(w, is_truncated ? ",\"truncated\":true" : ",\"truncated\":false");
    const json_t *affected = json_object_get(sr, "affected_row_count");
    if (json_is_integer(affected)) {
        jsonw_lit(w, ",\"affected_row_count\":");
        jsonw_int(w, (int64_t)json_integer_value(affected));
    }
    const json_t *rowid = json_object_get(sr, "last_insert_rowid");
    if (json_is_string(rowid)) {
        jsonw_lit(w, ",\"last_insert_rowid\":");
        jsonw_string(w, json_string_value(rowid), json_string_length(rowid), true);
    }
    jsonw_lit(w, "}");
    if (w->is_failed) {
        *why = "out of memory";
        return false;
    }
    counts->n_columns = json_array_size(cols);
    counts->n_rows = taken;
    counts->n_available = n_rows;
    counts->is_truncated = is_truncated;
    return true;
}
