/*
 * The queries behind turso_schema_inspector, the model of their answers,
 * and the output built from it. The joined queries let one pipeline carry
 * the whole schema; the per-table PRAGMA form is the fallback for servers
 * that cannot run them. No I/O here: the tool file sends and finishes.
 */
#include "schema.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "hrana.h"
#include "sql_scan.h"

/* Model members, in enum schema_kind order. */
static const char *const kind_keys[SCHEMA_N_KINDS] = {"columns", "foreign_keys", "index_list",
                                                      "index_info"};

/* Cells per detail row (without the owner column of the joined queries). */
static const size_t kind_widths[SCHEMA_N_KINDS] = {6, 8, 5, 3};

/* The PRAGMA of each kind, for the fallback. */
static const char *const kind_pragmas[SCHEMA_N_KINDS] = {"table_info", "foreign_key_list",
                                                         "index_list", "index_info"};

static const char objects_sql[] = "SELECT type, name, tbl_name, sql FROM sqlite_schema "
                                  "ORDER BY type, name";

/* The whole schema's details, each row led by the name it belongs to. */
static const char *const joined_sql[SCHEMA_N_KINDS] = {
    "SELECT m.name, p.cid, p.name, p.type, p.\"notnull\", p.dflt_value, p.pk "
    "FROM sqlite_schema AS m JOIN pragma_table_info(m.name) AS p "
    "WHERE m.type IN ('table', 'view') ORDER BY m.name, p.cid",
    "SELECT m.name, f.id, f.seq, f.\"table\", f.\"from\", f.\"to\", f.on_update, f.on_delete, "
    "f.\"match\" FROM sqlite_schema AS m JOIN pragma_foreign_key_list(m.name) AS f "
    "WHERE m.type = 'table' ORDER BY m.name, f.id, f.seq",
    "SELECT m.name, l.seq, l.name, l.\"unique\", l.origin, l.partial "
    "FROM sqlite_schema AS m JOIN pragma_index_list(m.name) AS l "
    "WHERE m.type = 'table' ORDER BY m.name, l.seq",
    "SELECT m.name, i.seqno, i.cid, i.name "
    "FROM sqlite_schema AS m JOIN pragma_index_info(m.name) AS i "
    "WHERE m.type = 'index' ORDER BY m.name, i.seqno",
};

/* One table's details, its name bound as ?; index_info stays joined (all indexes). */
static const char *const table_sql[SCHEMA_N_KINDS] = {
    "SELECT cid, name, type, \"notnull\", dflt_value, pk FROM pragma_table_info(?) ORDER BY cid",
    "SELECT id, seq, \"table\", \"from\", \"to\", on_update, on_delete, \"match\" "
    "FROM pragma_foreign_key_list(?) ORDER BY id, seq",
    "SELECT seq, name, \"unique\", origin, partial FROM pragma_index_list(?) ORDER BY seq",
    NULL,
};

/* How many names schema_names_text lists before "and N more". */
#define SCHEMA_NAMES_LISTED 60

bool schema_is_internal(const char *name)
{
    return strncasecmp(name, "sqlite_", 7) == 0 || strncasecmp(name, "_litestream_", 12) == 0 ||
           strncasecmp(name, "libsql_", 7) == 0;
}

static json_t *execute(const char *sql, const char *arg)
{
    if (!arg)
        return json_pack("{s:s, s:{s:s}}", "type", "execute", "stmt", "sql", sql);
    return json_pack("{s:s, s:{s:s, s:[{s:s, s:s}]}}", "type", "execute", "stmt", "sql", sql,
                     "args", "type", "text", "value", arg);
}

/* Appends `req` (stolen) to `list`; false on OOM. */
static bool append(json_t *list, json_t *req)
{
    return req && json_array_append_new(list, req) == 0;
}

json_t *schema_overview_requests(void)
{
    json_t *list = json_array();
    if (!list || !append(list, execute(objects_sql, NULL)))
        goto fail;
    for (int k = 0; k < SCHEMA_N_KINDS; k++)
        if (!append(list, execute(joined_sql[k], NULL)))
            goto fail;
    return list;
fail:
    json_decref(list);
    return NULL;
}

json_t *schema_table_requests(const char *table, size_t len)
{
    char *quoted = sql_quote_ident(table, len);
    char *count_sql = NULL;
    json_t *list = NULL;
    if (!quoted)
        return NULL;
    size_t count_len = strlen(quoted) + 32;
    count_sql = malloc(count_len);
    list = json_array();
    if (!count_sql || !list)
        goto fail;
    snprintf(count_sql, count_len, "SELECT count(*) FROM %s", quoted);
    if (!append(list, execute(objects_sql, NULL)))
        goto fail;
    for (int k = 0; k < SCHEMA_N_KINDS; k++) {
        json_t *req = table_sql[k] ? execute(table_sql[k], table) : execute(joined_sql[k], NULL);
        if (!append(list, req))
            goto fail;
    }
    if (!append(list, execute(count_sql, NULL)))
        goto fail;
    free(quoted);
    free(count_sql);
    return list;
fail:
    free(quoted);
    free(count_sql);
    json_decref(list);
    return NULL;
}

json_t *schema_model_new(void)
{
    json_t *m = json_pack("{s:[]}", "objects");
    for (int k = 0; m && k < SCHEMA_N_KINDS; k++) {
        if (json_object_set_new(m, kind_keys[k], json_object()) != 0) {
            json_decref(m);
            return NULL;
        }
    }
    return m;
}

/* A row of Hrana values as cells, from `from` on; NULL if malformed or OOM. */
static json_t *row_cells(const json_t *row, size_t from)
{
    json_t *out = json_array();
    if (!out || !json_is_array(row))
        goto fail;
    for (size_t i = from; i < json_array_size(row); i++) {
        json_t *cell = hrana_cell_from_value(json_array_get(row, i));
        if (!cell || json_array_append_new(out, cell) != 0)
            goto fail;
    }
    return out;
fail:
    json_decref(out);
    return NULL;
}

bool schema_model_set_objects(json_t *model, const json_t *sr)
{
    const json_t *rows = json_object_get(sr, "rows");
    json_t *objects = json_object_get(model, "objects");
    if (!json_is_array(rows) || !json_is_array(objects))
        return false;
    json_array_clear(objects);
    size_t i;
    const json_t *row;
    json_array_foreach(rows, i, row)
    {
        json_t *cells = row_cells(row, 0);
        /* type, name, tbl_name as text; sql text or null. */
        if (!cells || json_array_size(cells) != 4 || !json_is_string(json_array_get(cells, 0)) ||
            !json_is_string(json_array_get(cells, 1)) ||
            !json_is_string(json_array_get(cells, 2))) {
            json_decref(cells);
            return false;
        }
        if (json_array_append_new(objects, cells) != 0)
            return false;
    }
    return true;
}

/* The rows of `kind` for `owner`, created empty when missing (borrowed). */
static json_t *owner_rows(json_t *model, enum schema_kind kind, const char *owner)
{
    json_t *by_owner = json_object_get(model, kind_keys[kind]);
    json_t *rows = json_object_get(by_owner, owner);
    if (rows)
        return rows;
    rows = json_array();
    if (!rows || json_object_set_new(by_owner, owner, rows) != 0)
        return NULL;
    return rows;
}

bool schema_model_add(json_t *model, enum schema_kind kind, const json_t *sr, const char *owner)
{
    const json_t *rows = json_object_get(sr, "rows");
    size_t lead = owner ? 0 : 1;
    if (!json_is_array(rows) || kind >= SCHEMA_N_KINDS)
        return false;
    /* A table's rows exist even when it has none of this kind: it was asked. */
    if (owner && !owner_rows(model, kind, owner))
        return false;
    size_t i;
    const json_t *row;
    json_array_foreach(rows, i, row)
    {
        const char *name = owner;
        if (!owner) {
            /* The owner column: a text value (a table or index name). */
            const json_t *v = json_array_get(row, 0);
            const char *type = json_string_value(json_object_get(v, "type"));
            name = json_string_value(json_object_get(v, "value"));
            if (!type || strcmp(type, "text") != 0 || !name)
                return false;
        }
        json_t *cells = row_cells(row, lead);
        json_t *list = cells ? owner_rows(model, kind, name) : NULL;
        if (!cells || json_array_size(cells) != kind_widths[kind] || !list) {
            json_decref(cells);
            return false;
        }
        if (json_array_append_new(list, cells) != 0)
            return false;
    }
    return true;
}

void schema_model_clear_details(json_t *model)
{
    for (int k = 0; k < SCHEMA_N_KINDS; k++)
        json_object_clear(json_object_get(model, kind_keys[k]));
}

/* Object i's cells: type, name, tbl_name, sql. */
static const char *obj_str(const json_t *obj, size_t i)
{
    return json_string_value(json_array_get(obj, i));
}

static bool is_relation(const char *type)
{
    return strcmp(type, "table") == 0 || strcmp(type, "view") == 0;
}

const char *schema_model_find(const json_t *model, const char *name, const char **type)
{
    const json_t *objects = json_object_get(model, "objects");
    const char *found = NULL, *found_type = NULL;
    size_t n_found = 0, i;
    const json_t *obj;
    json_array_foreach(objects, i, obj)
    {
        const char *t = obj_str(obj, 0), *n = obj_str(obj, 1);
        if (!is_relation(t))
            continue;
        if (strcmp(n, name) == 0) {
            *type = t;
            return n;
        }
        if (strcasecmp(n, name) == 0) {
            found = n;
            found_type = t;
            n_found++;
        }
    }
    if (n_found != 1)
        return NULL;
    *type = found_type;
    return found;
}

/* Appends a, b and c to out at *len, never past out_len; keeps it NUL-terminated. */
static void put(char *out, size_t out_len, size_t *len, const char *a, const char *b, const char *c)
{
    if (*len + 1 >= out_len)
        return;
    int n = snprintf(out + *len, out_len - *len, "%s%s%s", a, b, c);
    if (n > 0)
        *len += (size_t)n;
    if (*len >= out_len)
        *len = out_len - 1;
}

void schema_names_text(const json_t *model, char *out, size_t out_len)
{
    static const char *const types[] = {"table", "view"};
    static const char *const heads[] = {"Tables: ", "Views: "};
    size_t len = 0;
    out[0] = '\0';
    for (int t = 0; t < 2; t++) {
        size_t n = 0, i;
        const json_t *obj;
        json_array_foreach(json_object_get(model, "objects"), i, obj)
        {
            const char *name = obj_str(obj, 1);
            if (strcmp(obj_str(obj, 0), types[t]) != 0 || schema_is_internal(name))
                continue;
            if (n < SCHEMA_NAMES_LISTED) {
                const char *sep = n > 0 ? ", " : len > 0 ? " " : "";
                put(out, out_len, &len, sep, n == 0 ? heads[t] : "", "\"");
                put(out, out_len, &len, name, "\"", "");
            }
            n++;
        }
        if (n > SCHEMA_NAMES_LISTED) {
            char more[48];
            snprintf(more, sizeof(more), " and %zu more", n - SCHEMA_NAMES_LISTED);
            put(out, out_len, &len, more, "", "");
        }
        if (n > 0)
            put(out, out_len, &len, ".", "", "");
    }
    if (len == 0)
        snprintf(out, out_len, "The database has no tables or views.");
}

/* Adds one fallback request: PRAGMA <kind>("owner"). */
static bool plan_add(json_t *requests, json_t *plan, enum schema_kind kind, const char *owner)
{
    char *quoted = sql_quote_ident(owner, strlen(owner));
    if (!quoted)
        return false;
    size_t len = strlen(quoted) + 40;
    char *sql = malloc(len);
    bool is_ok = false;
    if (sql) {
        snprintf(sql, len, "PRAGMA %s(%s)", kind_pragmas[kind], quoted);
        is_ok = append(requests, execute(sql, NULL)) &&
                append(plan, json_pack("[s, s]", kind_keys[kind], owner));
    }
    free(sql);
    free(quoted);
    return is_ok;
}

json_t *schema_fallback_requests(const json_t *model, const char *only, size_t max_tables,
                                 json_t **plan)
{
    json_t *requests = json_array(), *p = json_array(), *asked = json_object();
    const json_t *objects = json_object_get(model, "objects");
    size_t i;
    const json_t *obj;
    *plan = NULL;
    if (!requests || !p || !asked)
        goto fail;
    /* Tables and views first: which indexes to ask about depends on them. */
    json_array_foreach(objects, i, obj)
    {
        const char *type = obj_str(obj, 0), *name = obj_str(obj, 1);
        if (!is_relation(type))
            continue;
        if (only ? strcmp(name, only) != 0
                 : schema_is_internal(name) || json_object_size(asked) >= max_tables)
            continue;
        if (json_object_set_new(asked, name, json_true()) != 0 ||
            !plan_add(requests, p, SCHEMA_COLUMNS, name))
            goto fail;
        if (strcmp(type, "table") == 0 && (!plan_add(requests, p, SCHEMA_FOREIGN_KEYS, name) ||
                                           !plan_add(requests, p, SCHEMA_INDEX_LIST, name)))
            goto fail;
    }
    json_array_foreach(objects, i, obj)
    {
        if (strcmp(obj_str(obj, 0), "index") != 0 || !json_object_get(asked, obj_str(obj, 2)))
            continue;
        /* Automatic indexes show only in one table's detail. */
        if (!only && schema_is_internal(obj_str(obj, 1)))
            continue;
        if (!plan_add(requests, p, SCHEMA_INDEX_INFO, obj_str(obj, 1)))
            goto fail;
    }
    json_decref(asked);
    *plan = p;
    return requests;
fail:
    json_decref(requests);
    json_decref(p);
    json_decref(asked);
    return NULL;
}

bool schema_model_add_planned(json_t *model, const json_t *entry, const json_t *sr)
{
    const char *key = json_string_value(json_array_get(entry, 0));
    const char *owner = json_string_value(json_array_get(entry, 1));
    for (int k = 0; key && owner && k < SCHEMA_N_KINDS; k++)
        if (strcmp(key, kind_keys[k]) == 0)
            return schema_model_add(model, (enum schema_kind)k, sr, owner);
    return false;
}

/* An integer cell's value, else `dflt`. */
static json_int_t cell_int(const json_t *c, json_int_t dflt)
{
    return json_is_integer(c) ? json_integer_value(c) : dflt;
}

/*
 * Cells go into the output by reference: the model is the tool's own and is
 * freed before the output leaves the thread that built it.
 */
static json_t *cell(const json_t *row, size_t i)
{
    const json_t *c = json_array_get(row, i);
    return json_incref(c ? (json_t *)c : json_null());
}

/* The rows of `kind` for `owner`, or NULL when they were never fetched (borrowed). */
static const json_t *rows_of(const json_t *model, enum schema_kind kind, const char *owner)
{
    return json_object_get(json_object_get(model, kind_keys[kind]), owner);
}

/* Column entries for `name`; *out NULL when they were never fetched. False on OOM. */
static bool columns_of(const json_t *model, const char *name, json_t **out)
{
    const json_t *rows = rows_of(model, SCHEMA_COLUMNS, name);
    *out = NULL;
    if (!rows)
        return true;
    json_t *list = json_array();
    size_t i;
    const json_t *row;
    if (!list)
        return false;
    json_array_foreach(rows, i, row)
    {
        json_t *c =
            json_pack("{s:o, s:o, s:b, s:o, s:I}", "name", cell(row, 1), "type", cell(row, 2),
                      "not_null", cell_int(json_array_get(row, 3), 0) != 0, "default", cell(row, 4),
                      "primary_key", cell_int(json_array_get(row, 5), 0));
        if (!c || json_array_append_new(list, c) != 0) {
            json_decref(list);
            return false;
        }
    }
    *out = list;
    return true;
}

/* Foreign keys of `name`, one entry per constraint (rows grouped by id). NULL on OOM. */
static json_t *foreign_keys_of(const json_t *model, const char *name)
{
    const json_t *rows = rows_of(model, SCHEMA_FOREIGN_KEYS, name);
    json_t *list = json_array(), *fk = NULL;
    json_int_t id = -1;
    size_t i;
    const json_t *row;
    if (!list)
        return NULL;
    json_array_foreach(rows, i, row)
    {
        json_int_t row_id = cell_int(json_array_get(row, 0), -1);
        if (!fk || row_id != id) {
            fk = json_pack("{s:[], s:o, s:[], s:o, s:o, s:o}", "columns", "references_table",
                           cell(row, 2), "references_columns", "on_update", cell(row, 5),
                           "on_delete", cell(row, 6), "match", cell(row, 7));
            if (!fk || json_array_append_new(list, fk) != 0)
                goto fail;
            id = row_id;
        }
        if (json_array_append_new(json_object_get(fk, "columns"), cell(row, 3)) != 0 ||
            json_array_append_new(json_object_get(fk, "references_columns"), cell(row, 4)) != 0)
            goto fail;
    }
    return list;
fail:
    json_decref(list);
    return NULL;
}

/* The index_list row of index `index` on `table`, or NULL (borrowed). */
static const json_t *index_list_row(const json_t *model, const char *table, const char *index)
{
    size_t i;
    const json_t *row;
    json_array_foreach(rows_of(model, SCHEMA_INDEX_LIST, table), i, row)
    {
        const char *n = json_string_value(json_array_get(row, 1));
        if (n && strcmp(n, index) == 0)
            return row;
    }
    return NULL;
}

/* The sql of object `name` of `type`, or null (new reference). */
static json_t *object_sql(const json_t *model, const char *type, const char *name)
{
    size_t i;
    const json_t *obj;
    json_array_foreach(json_object_get(model, "objects"), i, obj)
    {
        if (strcmp(obj_str(obj, 0), type) == 0 && strcmp(obj_str(obj, 1), name) == 0)
            return cell(obj, 3);
    }
    return json_null();
}

static const char *origin_name(const char *origin)
{
    if (!origin)
        return NULL;
    if (strcmp(origin, "c") == 0)
        return "create_index";
    if (strcmp(origin, "u") == 0)
        return "unique_constraint";
    if (strcmp(origin, "pk") == 0)
        return "primary_key";
    return origin;
}

/* One index entry; what index_list says is added when known. NULL on OOM. */
static json_t *index_entry(const json_t *model, const char *name, const char *table)
{
    json_t *cols = json_array();
    size_t i;
    const json_t *row;
    if (!cols)
        return NULL;
    json_array_foreach(rows_of(model, SCHEMA_INDEX_INFO, name), i, row)
    {
        /* A null name is an expression (SQLite) or its text (the local tursodb). */
        if (json_array_append_new(cols, cell(row, 2)) != 0) {
            json_decref(cols);
            return NULL;
        }
    }
    json_t *e = json_pack("{s:s, s:s, s:o}", "name", name, "table", table, "columns", cols);
    const json_t *lr = index_list_row(model, table, name);
    if (e && lr) {
        const char *origin = origin_name(json_string_value(json_array_get(lr, 3)));
        if (json_object_set_new(e, "unique",
                                json_boolean(cell_int(json_array_get(lr, 2), 0) != 0)) != 0 ||
            (origin && json_object_set_new(e, "origin", json_string(origin)) != 0) ||
            json_object_set_new(e, "partial",
                                json_boolean(cell_int(json_array_get(lr, 4), 0) != 0)) != 0) {
            json_decref(e);
            return NULL;
        }
    }
    if (e && json_object_set_new(e, "sql", object_sql(model, "index", name)) != 0) {
        json_decref(e);
        return NULL;
    }
    return e;
}

/* A table or view entry for the overview; NULL on OOM. *is_partial when never fetched. */
static json_t *relation_entry(const json_t *model, const char *type, const char *name,
                              const json_t *sql, bool *is_partial)
{
    json_t *cols = NULL, *fks = NULL;
    *is_partial = false;
    if (!columns_of(model, name, &cols))
        return NULL;
    if (!cols) {
        *is_partial = true;
        return json_pack("{s:s}", "name", name);
    }
    bool is_table = strcmp(type, "table") == 0;
    if (is_table) {
        fks = foreign_keys_of(model, name);
        if (!fks) {
            json_decref(cols);
            return NULL;
        }
    }
    json_t *e = json_pack("{s:s, s:o}", "name", name, "columns", cols);
    if (e && is_table && json_object_set_new(e, "foreign_keys", fks) != 0) {
        fks = NULL;
        json_decref(e);
        return NULL;
    }
    if (!e) {
        json_decref(fks);
        return NULL;
    }
    if (json_object_set(e, "sql", (json_t *)sql) != 0) {
        json_decref(e);
        return NULL;
    }
    return e;
}

static size_t json_size(const json_t *v)
{
    return json_dumpb(v, NULL, 0, JSON_COMPACT);
}

static const char *plural(size_t n, const char *one, const char *many)
{
    return n == 1 ? one : many;
}

json_t *schema_overview(const json_t *model, size_t max_bytes, char *summary, size_t summary_len)
{
    json_t *out = json_pack("{s:[], s:[], s:[], s:[]}", "tables", "views", "indexes", "triggers");
    size_t used = 0, i;
    bool is_truncated = false;
    const json_t *obj;
    if (!out)
        return NULL;
    json_array_foreach(json_object_get(model, "objects"), i, obj)
    {
        const char *type = obj_str(obj, 0), *name = obj_str(obj, 1), *table = obj_str(obj, 2);
        const json_t *sql = json_array_get(obj, 3);
        json_t *e = NULL;
        const char *list = NULL;
        bool is_partial = false;
        if (schema_is_internal(name) || schema_is_internal(table))
            continue;
        if (is_relation(type)) {
            list = strcmp(type, "table") == 0 ? "tables" : "views";
            e = relation_entry(model, type, name, sql, &is_partial);
        } else if (strcmp(type, "index") == 0) {
            list = "indexes";
            e = index_entry(model, name, table);
        } else if (strcmp(type, "trigger") == 0) {
            list = "triggers";
            e = json_pack("{s:s, s:s, s:O}", "name", name, "table", table, "sql", sql);
        } else {
            continue;
        }
        if (!e)
            goto fail;
        size_t size = json_size(e);
        if (is_partial || used + size > max_bytes) {
            /* Past the cap, the name still tells the model what exists. */
            json_decref(e);
            e = is_relation(type) ? json_pack("{s:s}", "name", name)
                                  : json_pack("{s:s, s:s}", "name", name, "table", table);
            if (!e)
                goto fail;
            size = json_size(e);
            is_truncated = true;
        }
        used += size;
        if (json_array_append_new(json_object_get(out, list), e) != 0)
            goto fail;
    }
    if (json_object_set_new(out, "truncated", json_boolean(is_truncated)) != 0)
        goto fail;
    size_t n_t = json_array_size(json_object_get(out, "tables"));
    size_t n_v = json_array_size(json_object_get(out, "views"));
    size_t n_i = json_array_size(json_object_get(out, "indexes"));
    size_t n_g = json_array_size(json_object_get(out, "triggers"));
    snprintf(summary, summary_len, "Schema: %zu %s, %zu %s, %zu %s, %zu %s.%s", n_t,
             plural(n_t, "table", "tables"), n_v, plural(n_v, "view", "views"), n_i,
             plural(n_i, "index", "indexes"), n_g, plural(n_g, "trigger", "triggers"),
             is_truncated ? " Some objects are listed by name only, to keep the answer small; "
                            "ask for one with the `table` argument."
                          : "");
    return out;
fail:
    json_decref(out);
    return NULL;
}

json_t *schema_table(const json_t *model, const char *name, const char *type, json_t *row_count,
                     const char *count_error, char *summary, size_t summary_len)
{
    json_t *t = NULL, *cols = NULL, *indexes = json_array(), *triggers = json_array();
    json_t *seen = json_object();
    size_t i;
    const json_t *obj, *row;
    bool is_table = strcmp(type, "table") == 0;

    if (!indexes || !triggers || !seen || !columns_of(model, name, &cols))
        goto fail;
    if (!cols && !(cols = json_array()))
        goto fail;
    /* Indexes as index_list orders them (automatic ones included), then any it missed. */
    json_array_foreach(rows_of(model, SCHEMA_INDEX_LIST, name), i, row)
    {
        const char *iname = json_string_value(json_array_get(row, 1));
        if (!iname || json_object_get(seen, iname))
            continue;
        json_t *e = index_entry(model, iname, name);
        if (!e || json_array_append_new(indexes, e) != 0 ||
            json_object_set_new(seen, iname, json_true()) != 0)
            goto fail;
    }
    json_array_foreach(json_object_get(model, "objects"), i, obj)
    {
        const char *otype = obj_str(obj, 0), *oname = obj_str(obj, 1);
        if (strcmp(obj_str(obj, 2), name) != 0)
            continue;
        json_t *e = NULL;
        if (strcmp(otype, "index") == 0 && !json_object_get(seen, oname)) {
            e = index_entry(model, oname, name);
            if (!e || json_array_append_new(indexes, e) != 0)
                goto fail;
        } else if (strcmp(otype, "trigger") == 0) {
            e = json_pack("{s:s, s:o}", "name", oname, "sql", cell(obj, 3));
            if (!e || json_array_append_new(triggers, e) != 0)
                goto fail;
        }
    }
    t = json_pack("{s:s, s:s, s:o, s:o}", "name", name, "type", type, "sql",
                  object_sql(model, type, name), "columns", cols);
    cols = NULL;
    if (!t)
        goto fail;
    if (is_table) {
        json_t *fks = foreign_keys_of(model, name);
        if (!fks || json_object_set_new(t, "foreign_keys", fks) != 0)
            goto fail;
    }
    if (json_object_set_new(t, "indexes", indexes) != 0) {
        indexes = NULL;
        goto fail;
    }
    indexes = NULL;
    if (json_object_set_new(t, "triggers", triggers) != 0) {
        triggers = NULL;
        goto fail;
    }
    triggers = NULL;
    if (row_count && json_object_set(t, "row_count", row_count) != 0)
        goto fail;
    if (!row_count && json_object_set_new(
                          t, "row_count_error",
                          json_string(count_error ? count_error : "the row count is unknown")) != 0)
        goto fail;

    size_t n_c = json_array_size(json_object_get(t, "columns"));
    size_t n_i = json_array_size(json_object_get(t, "indexes"));
    size_t n_f = json_array_size(json_object_get(t, "foreign_keys"));
    size_t n_g = json_array_size(json_object_get(t, "triggers"));
    char rows[64];
    if (json_is_integer(row_count))
        snprintf(rows, sizeof(rows), "%" JSON_INTEGER_FORMAT " %s", json_integer_value(row_count),
                 plural((size_t)json_integer_value(row_count), "row", "rows"));
    else if (json_is_object(row_count))
        snprintf(rows, sizeof(rows), "%s rows",
                 json_string_value(json_object_get(row_count, "value")));
    else
        snprintf(rows, sizeof(rows), "row count unavailable");
    snprintf(summary, summary_len, "%s \"%s\": %zu %s, %zu %s, %zu %s, %zu %s, %s.",
             is_table ? "Table" : "View", name, n_c, plural(n_c, "column", "columns"), n_i,
             plural(n_i, "index", "indexes"), n_f, plural(n_f, "foreign key", "foreign keys"), n_g,
             plural(n_g, "trigger", "triggers"), rows);
    json_t *out = json_pack("{s:o}", "table", t);
    json_decref(seen);
    json_decref(row_count);
    return out;
fail:
    json_decref(t);
    json_decref(cols);
    json_decref(indexes);
    json_decref(triggers);
    json_decref(seen);
    json_decref(row_count);
    return NULL;
}
