/*
 * Schema introspection for turso_schema_inspector, without I/O: the
 * queries, a model of what they returned, and the tool's output built from
 * it (turso-api.md §6.2).
 *
 * One pipeline normally does it: sqlite_schema, plus sqlite_schema joined
 * with the table-valued pragmas (pragma_table_info(m.name) and friends), or,
 * for one table, the pragmas with the name as a bound argument and an exact
 * count(*). Where a server cannot run those (the local tursodb builds pragma
 * text from the name unquoted, so a name holding a double quote fails), a
 * second pipeline asks per table with PRAGMA and a quoted identifier.
 *
 * The model is a JSON object owned by the tool:
 *   {"objects": [[type, name, tbl_name, sql], ...],
 *    "columns": {table: [[cid, name, type, notnull, dflt_value, pk], ...]},
 *    "foreign_keys": {table: [[id, seq, table, from, to, on_update, on_delete, match], ...]},
 *    "index_list": {table: [[seq, name, unique, origin, partial], ...]},
 *    "index_info": {index: [[seqno, cid, name], ...]}}
 * with cells as hrana_cell_from_value makes them; nothing in it is shared
 * with a Hrana answer. Pure functions, any thread.
 */
#ifndef TM_SCHEMA_H
#define TM_SCHEMA_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* The kinds of detail rows, each a member of the model. */
enum schema_kind {
    SCHEMA_COLUMNS,
    SCHEMA_FOREIGN_KEYS,
    SCHEMA_INDEX_LIST,
    SCHEMA_INDEX_INFO,
    SCHEMA_N_KINDS,
};

/* Where each result sits in the first pipeline. */
enum schema_result {
    SCHEMA_R_OBJECTS = 0, /* sqlite_schema */
    SCHEMA_R_DETAIL = 1,  /* results 1 .. SCHEMA_N_KINDS: one per kind, in enum order */
    SCHEMA_R_COUNT = 1 + SCHEMA_N_KINDS, /* table requests only: count(*) */
};

/* True for names SQLite, Turso or its tooling keep for themselves. */
bool schema_is_internal(const char *name);

/* The first pipeline for the whole schema (new reference; NULL on OOM). */
json_t *schema_overview_requests(void);

/*
 * The first pipeline for one table or view named `table` (len bytes) (new
 * reference). NULL on OOM or when the name holds a NUL byte.
 */
json_t *schema_table_requests(const char *table, size_t len);

/* An empty model (new reference; NULL on OOM). */
json_t *schema_model_new(void);

/* Fills the model's objects from the sqlite_schema StmtResult; false if it is malformed or OOM. */
bool schema_model_set_objects(json_t *model, const json_t *sr);

/*
 * Adds the rows of a detail StmtResult of `kind`. With `owner` NULL each
 * row starts with the name it belongs to (the joined queries); otherwise
 * every row belongs to `owner`. False if malformed or OOM.
 */
bool schema_model_add(json_t *model, enum schema_kind kind, const json_t *sr, const char *owner);

/* Forgets every detail row, keeping the objects (before asking again per table). */
void schema_model_clear_details(json_t *model);

/*
 * The table or view that `name` means: an exact match, else the only one
 * equal ignoring ASCII case (as SQLite resolves names). Its name (borrowed
 * from the model) or NULL; *type gets "table" or "view".
 */
const char *schema_model_find(const json_t *model, const char *name, const char **type);

/*
 * The names of the tables and views that are not internal, as a sentence
 * such as "Tables: a, b. Views: v." (at most `out_len` bytes; long lists end
 * with "and N more"); "The database has no tables or views." when empty.
 */
void schema_names_text(const json_t *model, char *out, size_t out_len);

/*
 * The second pipeline, per table with PRAGMA and quoted names: for `only`
 * (a name from schema_model_find) or, when NULL, every table and view that
 * is not internal, at most `max_tables` of them. *plan (new reference) gets
 * one [kind, owner] pair per request, for schema_model_add_planned. New
 * reference; NULL on OOM.
 */
json_t *schema_fallback_requests(const json_t *model, const char *only, size_t max_tables,
                                 json_t **plan);

/* Adds the answer `sr` to request i of a fallback pipeline, as plan entry `entry` says. */
bool schema_model_add_planned(json_t *model, const json_t *entry, const json_t *sr);

/*
 * The whole-schema output: {"tables", "views", "indexes", "triggers",
 * "truncated"} without internal objects (new reference; NULL on OOM). Past
 * `max_bytes`, objects are listed by name only and truncated is true.
 * `summary` gets a sentence for the text block.
 */
json_t *schema_overview(const json_t *model, size_t max_bytes, char *summary, size_t summary_len);

/*
 * The one-table output {"table": {...}} for `name` of `type` (from
 * schema_model_find), with `row_count` (stolen; may be NULL, then
 * `count_error` says why). New reference; NULL on OOM.
 */
json_t *schema_table(const json_t *model, const char *name, const char *type, json_t *row_count,
                     const char *count_error, char *summary, size_t summary_len);

#endif
