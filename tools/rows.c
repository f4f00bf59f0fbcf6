/*
 * Statement results to tool output: columns, cells and the row and byte
 * caps, shared by turso_query and turso_batch_execute. Runs on whatever
 * thread reads the Hrana answer; it copies what it keeps, so the answer
 * can be freed on its own thread afterwards.
 */
#include "rows.h"

#include "buf.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
        /* Turso's own text when it can stand as is: formatting a double costs
         * more than the rest of the cell. */
        if (!c->num || !jsonw_real_text(w, c->num, c->num_len))
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
        size_t mark = w->out.len, row_bytes = 0;
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

/*
 * The pipeline answer read without jansson, for the one shape the local
 * tursodb and Turso send for a single execute. Every byte is checked as
 * jsonr_loadb(JSON_ALLOW_NUL) would check it; anything it does not expect
 * makes it give up, and the caller takes the ordinary path, which then
 * produces the same result or the same error.
 */

/* A growing scratch buffer for one decoded string. */
struct scan {
    const char *p, *end;
    int depth;        /* of nested values being skipped */
    struct buf key;   /* the last object key */
    struct buf value; /* a cell's "value" or a column's "name" */
    struct buf b64;   /* a cell's "base64" or a column's "decltype" */
    struct buf type;  /* a cell's "type" */
};

/* Deeper than this is no Hrana answer; give up rather than recurse. */
#define SCAN_MAX_DEPTH 64

static void ws(struct scan *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

/* Skips whitespace and takes `c` if it comes next. */
static bool take(struct scan *s, char c)
{
    ws(s);
    if (s->p < s->end && *s->p == c) {
        s->p++;
        return true;
    }
    return false;
}

/* Four hex digits after \u; -1 if they are not. */
static long hex4(struct scan *s)
{
    if (s->end - s->p < 4)
        return -1;
    long v = 0;
    for (int i = 0; i < 4; i++) {
        int d = jsonw_hex_digit((unsigned char)s->p[i]);
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    s->p += 4;
    return v;
}

/* A string (after whitespace) decoded into `b` (NULL: only checked); false if not one. */
static bool scan_string(struct scan *s, struct buf *b)
{
    if (b)
        b->len = 0;
    if (!take(s, '"'))
        return false;
    for (;;) {
        const char *run = s->p;
        while (s->p < s->end && !jsonw_stop_class[(unsigned char)*s->p])
            s->p++;
        if (b && s->p > run && !buf_add(b, run, (size_t)(s->p - run)))
            return false;
        if (s->p >= s->end)
            return false;
        unsigned char c = (unsigned char)*s->p;
        if (c == '"') {
            s->p++;
            return true;
        }
        if (c < 0x20)
            return false;
        if (c >= 0x80) {
            uint32_t cp;
            size_t n = jsonw_utf8_decode(s->p, (size_t)(s->end - s->p), &cp);
            if (!n || (b && !buf_add(b, s->p, n)))
                return false;
            s->p += n;
            continue;
        }
        /* A backslash. */
        if (++s->p >= s->end)
            return false;
        unsigned char e = (unsigned char)*s->p++;
        int plain = jsonw_unescape(e);
        if (plain >= 0) {
            char out = (char)plain;
            if (b && !buf_add(b, &out, 1))
                return false;
            continue;
        }
        if (e != 'u')
            return false;
        long v = hex4(s);
        if (v < 0)
            return false;
        uint32_t cp = (uint32_t)v;
        if (cp >= 0xDC00 && cp <= 0xDFFF)
            return false;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (s->end - s->p < 2 || s->p[0] != '\\' || s->p[1] != 'u')
                return false;
            s->p += 2;
            long lo = hex4(s);
            if (lo < 0xDC00 || lo > 0xDFFF)
                return false;
            cp = jsonw_surrogate_pair(cp, (uint32_t)lo);
        }
        char u[4];
        size_t n = jsonw_utf8_encode(cp, u);
        if (b && !buf_add(b, u, n))
            return false;
    }
}

/*
 * A number (after whitespace) as JSON and jansson read it: *is_int when it
 * has no fraction or exponent, with its value in *i; else *d. false if it
 * is not a number, or jansson would refuse it (an integer beyond int64, a
 * real that overflows).
 */
static bool scan_number(struct scan *s, bool *is_int, int64_t *i, double *d)
{
    ws(s);
    const char *start = s->p;
    if (s->p < s->end && *s->p == '-')
        s->p++;
    if (s->p >= s->end || *s->p < '0' || *s->p > '9')
        return false;
    if (*s->p == '0')
        s->p++;
    else
        while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
            s->p++;
    *is_int = true;
    if (s->p < s->end && *s->p == '.') {
        *is_int = false;
        s->p++;
        if (s->p >= s->end || *s->p < '0' || *s->p > '9')
            return false;
        while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
            s->p++;
    }
    if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
        *is_int = false;
        s->p++;
        if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
            s->p++;
        if (s->p >= s->end || *s->p < '0' || *s->p > '9')
            return false;
        while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
            s->p++;
    }
    char num[64];
    size_t n = (size_t)(s->p - start);
    if (n >= sizeof(num))
        return false; /* longer than any number Turso writes: let jansson judge */
    memcpy(num, start, n);
    num[n] = '\0';
    errno = 0;
    if (*is_int) {
        long long v = strtoll(num, NULL, 10);
        if (errno == ERANGE)
            return false;
        *i = (int64_t)v;
        *d = (double)v;
        return true;
    }
    *d = strtod(num, NULL);
    return isfinite(*d);
}

static bool scan_word(struct scan *s, const char *word)
{
    ws(s);
    size_t n = strlen(word);
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0)
        return false;
    s->p += n;
    return true;
}

/* Any value, checked and skipped. */
static bool skip_value(struct scan *s)
{
    ws(s);
    if (s->p >= s->end)
        return false;
    bool is_int;
    int64_t i;
    double d;
    switch (*s->p) {
    case '"':
        return scan_string(s, NULL);
    case 't':
        return scan_word(s, "true");
    case 'f':
        return scan_word(s, "false");
    case 'n':
        return scan_word(s, "null");
    case '[':
    case '{': {
        bool is_object = *s->p == '{';
        if (++s->depth > SCAN_MAX_DEPTH)
            return false;
        s->p++;
        if (!take(s, is_object ? '}' : ']')) {
            do {
                if (is_object && (!scan_string(s, NULL) || !take(s, ':')))
                    return false;
                if (!skip_value(s))
                    return false;
            } while (take(s, ','));
            if (!take(s, is_object ? '}' : ']'))
                return false;
        }
        s->depth--;
        return true;
    }
    default:
        return scan_number(s, &is_int, &i, &d);
    }
}

/* Object keys: call after '{' (or a ','); the key lands in s->key. */
static bool scan_key(struct scan *s)
{
    /* A key holding NUL is left to jansson to judge. */
    return scan_string(s, &s->key) && !memchr(s->key.data ? s->key.data : "", '\0', s->key.len) &&
           take(s, ':');
}

static bool key_is(const struct scan *s, const char *name)
{
    return s->key.len == strlen(name) && memcmp(s->key.data, name, s->key.len) == 0;
}

/* A string into `b`, or any other value skipped with *is_string false. */
static bool scan_maybe_string(struct scan *s, struct buf *b, bool *is_string)
{
    ws(s);
    *is_string = s->p < s->end && *s->p == '"';
    return *is_string ? scan_string(s, b) : skip_value(s);
}

/* The columns array: [{"name","decltype"}...] written as rows_columns builds it. */
static bool scan_columns(struct scan *s, struct jsonw *w, size_t *n_columns)
{
    if (!take(s, '['))
        return false;
    jsonw_lit(w, "{\"columns\":[");
    size_t n = 0;
    if (!take(s, ']')) {
        do {
            bool has_name = false, has_type = false, seen_name = false, seen_type = false;
            ws(s);
            if (s->p < s->end && *s->p == '{') {
                s->p++;
                if (!take(s, '}')) {
                    do {
                        if (!scan_key(s))
                            return false;
                        if (key_is(s, "name")) {
                            if (seen_name || !scan_maybe_string(s, &s->value, &has_name))
                                return false;
                            seen_name = true;
                        } else if (key_is(s, "decltype")) {
                            if (seen_type || !scan_maybe_string(s, &s->b64, &has_type))
                                return false;
                            seen_type = true;
                        } else if (!skip_value(s)) {
                            return false;
                        }
                    } while (take(s, ','));
                    if (!take(s, '}'))
                        return false;
                }
            } else if (!skip_value(s)) {
                return false;
            }
            jsonw_lit(w, n ? ",{\"name\":" : "{\"name\":");
            if (has_name)
                jsonw_string(w, s->value.data, s->value.len, true);
            else
                jsonw_lit(w, "null");
            jsonw_lit(w, ",\"type\":");
            if (has_type)
                jsonw_string(w, s->b64.data, s->b64.len, true);
            else
                jsonw_lit(w, "null");
            jsonw_lit(w, "}");
            n++;
        } while (take(s, ','));
        if (!take(s, ']'))
            return false;
    }
    jsonw_lit(w, "],\"rows\":[");
    *n_columns = n;
    return true;
}

/* One cell object read as hrana_cell_read reads its json_t; false if malformed. */
static bool scan_cell(struct scan *s, struct hrana_cell *c)
{
    enum { V_NONE, V_STRING, V_NUMBER, V_NULL, V_OTHER } value = V_NONE;
    bool has_type = false, has_b64 = false, seen_b64 = false, is_int = false;
    int64_t vi = 0;
    double vd = 0;
    const char *num = NULL; /* the number's text, for a float */
    size_t num_len = 0;
    if (!take(s, '{'))
        return false;
    if (!take(s, '}')) {
        do {
            if (!scan_key(s))
                return false;
            if (key_is(s, "type")) {
                if (has_type || !scan_string(s, &s->type))
                    return false;
                has_type = true;
            } else if (key_is(s, "value")) {
                if (value != V_NONE)
                    return false;
                ws(s);
                char first = s->p < s->end ? *s->p : '\0';
                if (first == '"') {
                    if (!scan_string(s, &s->value))
                        return false;
                    value = V_STRING;
                } else if (first == '-' || (first >= '0' && first <= '9')) {
                    num = s->p;
                    if (!scan_number(s, &is_int, &vi, &vd))
                        return false;
                    num_len = (size_t)(s->p - num);
                    value = V_NUMBER;
                } else if (first == 'n') {
                    if (!scan_word(s, "null"))
                        return false;
                    value = V_NULL;
                } else {
                    if (!skip_value(s))
                        return false;
                    value = V_OTHER;
                }
            } else if (key_is(s, "base64")) {
                if (seen_b64 || !scan_maybe_string(s, &s->b64, &has_b64))
                    return false;
                seen_b64 = true;
            } else if (!skip_value(s)) {
                return false;
            }
        } while (take(s, ','));
        if (!take(s, '}'))
            return false;
    }
    if (!has_type)
        return false;
    memset(c, 0, sizeof(*c));
    const char *t = s->type.data;
    size_t tl = s->type.len;
#define TYPE_IS(name) (tl == sizeof(name) - 1 && memcmp(t, name, tl) == 0)
    if (TYPE_IS("null")) {
        c->kind = HRANA_CELL_NULL;
    } else if (TYPE_IS("integer")) {
        if (value != V_STRING || !hrana_int64_parse(s->value.data, s->value.len, &c->i))
            return false;
        c->kind = c->i >= -HRANA_MAX_SAFE_INT && c->i <= HRANA_MAX_SAFE_INT
                      ? HRANA_CELL_INTEGER
                      : HRANA_CELL_BIG_INTEGER;
    } else if (TYPE_IS("float")) {
        if (value == V_NULL) {
            c->kind = HRANA_CELL_FLOAT_NULL;
        } else if (value == V_NUMBER) {
            c->d = vd;
            c->kind = isfinite(vd) ? HRANA_CELL_FLOAT : HRANA_CELL_FLOAT_NULL;
            c->num = num;
            c->num_len = num_len;
        } else {
            return false;
        }
    } else if (TYPE_IS("text")) {
        if (value != V_STRING)
            return false;
        c->kind = HRANA_CELL_TEXT;
        c->s = s->value.data ? s->value.data : "";
        c->len = s->value.len;
    } else if (TYPE_IS("blob")) {
        if (!has_b64)
            return false;
        c->kind = HRANA_CELL_BLOB;
        c->s = s->b64.data ? s->b64.data : "";
        c->len = s->b64.len;
    } else {
        return false;
    }
#undef TYPE_IS
    (void)is_int;
    return true;
}

/* The rows array, streamed into `w` under the caps, as rows_write_result does. */
static bool scan_rows(struct scan *s, struct jsonw *w, long max_rows, size_t *bytes_left,
                      struct rows_counts *counts)
{
    size_t n_rows = 0, taken = 0;
    bool is_truncated = false;
    if (!take(s, '['))
        return false;
    if (!take(s, ']')) {
        do {
            n_rows++;
            if (is_truncated || (long)taken >= max_rows) {
                /* Past the caps: counted and checked, not read. */
                is_truncated = true;
                if (!skip_value(s))
                    return false;
                continue;
            }
            size_t mark = w->out.len, row_bytes = 0;
            if (!take(s, '['))
                return false;
            jsonw_lit(w, taken ? ",[" : "[");
            if (!take(s, ']')) {
                size_t n_cells = 0;
                do {
                    struct hrana_cell cell;
                    if (!scan_cell(s, &cell))
                        return false;
                    if (n_cells++)
                        jsonw_lit(w, ",");
                    write_cell(w, &cell, &row_bytes);
                } while (take(s, ','));
                if (!take(s, ']'))
                    return false;
            }
            jsonw_lit(w, "]");
            if (w->is_failed)
                return false;
            if (row_bytes > *bytes_left) {
                jsonw_truncate(w, mark);
                is_truncated = true;
                continue;
            }
            *bytes_left -= row_bytes;
            taken++;
        } while (take(s, ','));
        if (!take(s, ']'))
            return false;
    }
    counts->n_rows = taken;
    counts->n_available = n_rows;
    counts->is_truncated = is_truncated;
    return true;
}

/* response.result: cols before rows, written as they come; the rest kept for the end. */
static bool scan_stmt_result(struct scan *s, struct jsonw *w, long max_rows, size_t *bytes_left,
                             struct rows_counts *counts)
{
    bool seen_cols = false, seen_rows = false, seen_affected = false, seen_rowid = false;
    bool has_affected = false, has_rowid = false;
    int64_t affected = 0;
    char rowid[64];
    size_t rowid_len = 0;
    if (!take(s, '{') || take(s, '}'))
        return false;
    do {
        if (!scan_key(s))
            return false;
        if (key_is(s, "cols")) {
            if (seen_cols || !scan_columns(s, w, &counts->n_columns))
                return false;
            seen_cols = true;
        } else if (key_is(s, "rows")) {
            if (!seen_cols || seen_rows || !scan_rows(s, w, max_rows, bytes_left, counts))
                return false;
            seen_rows = true;
        } else if (key_is(s, "affected_row_count")) {
            if (seen_affected)
                return false;
            seen_affected = true;
            ws(s);
            char first = s->p < s->end ? *s->p : '\0';
            if (first == '-' || (first >= '0' && first <= '9')) {
                double d;
                if (!scan_number(s, &has_affected, &affected, &d))
                    return false;
            } else if (!skip_value(s)) {
                return false;
            }
        } else if (key_is(s, "last_insert_rowid")) {
            if (seen_rowid || !scan_maybe_string(s, &s->value, &has_rowid))
                return false;
            seen_rowid = true;
            if (has_rowid) {
                if (s->value.len >= sizeof(rowid))
                    return false;
                rowid_len = s->value.len;
                memcpy(rowid, s->value.data ? s->value.data : "", rowid_len);
            }
        } else if (!skip_value(s)) {
            return false;
        }
    } while (take(s, ','));
    if (!take(s, '}') || !seen_rows)
        return false;
    jsonw_lit(w, "],\"row_count\":");
    jsonw_int(w, (int64_t)counts->n_rows);
    jsonw_lit(w, ",\"rows_available\":");
    jsonw_int(w, (int64_t)counts->n_available);
    jsonw_lit(w, counts->is_truncated ? ",\"truncated\":true" : ",\"truncated\":false");
    if (has_affected) {
        jsonw_lit(w, ",\"affected_row_count\":");
        jsonw_int(w, affected);
    }
    if (has_rowid) {
        jsonw_lit(w, ",\"last_insert_rowid\":");
        jsonw_string(w, rowid, rowid_len, true);
    }
    jsonw_lit(w, "}");
    return true;
}

/* {"type":"<want>", ...}: an object whose first member is that type; leaves s after it. */
static bool scan_typed_open(struct scan *s, const char *want)
{
    if (!take(s, '{') || !scan_key(s) || !key_is(s, "type") || !scan_string(s, &s->type))
        return false;
    return s->type.len == strlen(want) && memcmp(s->type.data, want, s->type.len) == 0;
}

/* The first result: {"type":"ok","response":{"type":"execute","result":{...}}}. */
static bool scan_first_result(struct scan *s, struct jsonw *w, long max_rows, size_t *bytes_left,
                              struct rows_counts *counts)
{
    bool seen_response = false, seen_result = false;
    if (!scan_typed_open(s, "ok"))
        return false;
    while (take(s, ',')) {
        if (!scan_key(s) || key_is(s, "type"))
            return false;
        if (!key_is(s, "response")) {
            if (!skip_value(s))
                return false;
            continue;
        }
        if (seen_response || !scan_typed_open(s, "execute"))
            return false;
        seen_response = true;
        while (take(s, ',')) {
            if (!scan_key(s) || key_is(s, "type"))
                return false;
            if (!key_is(s, "result")) {
                if (!skip_value(s))
                    return false;
                continue;
            }
            if (seen_result || !scan_stmt_result(s, w, max_rows, bytes_left, counts))
                return false;
            seen_result = true;
        }
        if (!take(s, '}'))
            return false;
    }
    return take(s, '}') && seen_result;
}

bool rows_write_from_pipeline(struct jsonw *w, const char *body, size_t len, size_t n_results,
                              long max_rows, size_t *bytes_left, struct rows_counts *counts)
{
    struct scan s = {.p = body, .end = body + len};
    size_t budget = *bytes_left, n = 0;
    bool is_ok = false, seen_results = false;
    struct rows_counts got = {0};

    if (!body || n_results < 1 || !take(&s, '{') || take(&s, '}'))
        goto out;
    do {
        if (!scan_key(&s))
            goto out;
        if (!key_is(&s, "results")) {
            if (!skip_value(&s))
                goto out;
            continue;
        }
        if (seen_results || !take(&s, '['))
            goto out;
        seen_results = true;
        if (take(&s, ']'))
            goto out;
        do {
            if (n == 0 ? !scan_first_result(&s, w, max_rows, &budget, &got) : !skip_value(&s))
                goto out;
            n++;
        } while (take(&s, ','));
        if (!take(&s, ']'))
            goto out;
    } while (take(&s, ','));
    if (!take(&s, '}') || !seen_results || n != n_results)
        goto out;
    ws(&s);
    is_ok = s.p == s.end && !w->is_failed;
out:
    buf_cleanup(&s.key);
    buf_cleanup(&s.value);
    buf_cleanup(&s.b64);
    buf_cleanup(&s.type);
    if (is_ok) {
        *bytes_left = budget;
        *counts = got;
    }
    return is_ok;
}
