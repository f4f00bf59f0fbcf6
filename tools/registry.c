/*
 * The tool registry: the one list of tools, their schemas checked once at
 * startup, and the `tools/list` answer serialised once, since it never
 * changes while the server runs.
 */
#include "tool.h"

#include <string.h>

#include "log.h"

extern const struct tool_desc tool_turso_query;
extern const struct tool_desc tool_turso_batch_execute;
extern const struct tool_desc tool_turso_schema_inspector;
extern const struct tool_desc tool_turso_database_manager;
extern const struct tool_desc tool_turso_analytics;

static const struct tool_desc *const tools[] = {
    &tool_turso_query,
    &tool_turso_batch_execute,
    &tool_turso_schema_inspector,
    &tool_turso_database_manager,
    &tool_turso_analytics,
};

#define N_TOOLS (sizeof(tools) / sizeof(tools[0]))

static char *list_json;

static json_t *load_schema(const struct tool_desc *t, const char *which, const char *text)
{
    json_error_t jerr;
    json_t *schema = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
    /* Clients reject a whole tool list whose schemas lack a root object type. */
    const char *type = schema ? json_string_value(json_object_get(schema, "type")) : NULL;
    if (!schema || !json_is_object(schema) || !type || strcmp(type, "object") != 0) {
        log_msg(LOG_ERROR, "event=tool_schema_invalid tool=%s schema=%s line=%d reason=\"%s\"",
                t->name, which, jerr.line, schema ? "root type is not object" : jerr.text);
        json_decref(schema);
        return NULL;
    }
    return schema;
}

static json_t *describe_tool(const struct tool_desc *t)
{
    json_t *in = load_schema(t, "input", t->input_schema);
    json_t *out = load_schema(t, "output", t->output_schema);
    if (!in || !out) {
        json_decref(in);
        json_decref(out);
        return NULL;
    }
    return json_pack("{s:s, s:s, s:s, s:o, s:o, s:{s:s, s:b, s:b, s:b, s:b}}", "name", t->name,
                     "title", t->title, "description", t->description, "inputSchema", in,
                     "outputSchema", out, "annotations", "title", t->title, "readOnlyHint",
                     t->is_read_only, "destructiveHint", t->is_destructive, "idempotentHint",
                     t->is_idempotent, "openWorldHint", t->is_open_world);
}

int tool_registry_init(void)
{
    json_t *list = json_array();
    if (!list)
        return -1;
    for (size_t i = 0; i < N_TOOLS; i++) {
        json_t *d = describe_tool(tools[i]);
        if (!d || json_array_append_new(list, d) != 0) {
            json_decref(list);
            return -1;
        }
    }
    json_t *result = json_pack("{s:o}", "tools", list);
    if (!result)
        return -1;
    list_json = json_dumps(result, JSON_COMPACT);
    json_decref(result);
    return list_json ? 0 : -1;
}

void tool_registry_cleanup(void)
{
    free(list_json);
    list_json = NULL;
}

const struct tool_desc *tool_registry_find(const char *name)
{
    for (size_t i = 0; i < N_TOOLS; i++)
        if (strcmp(tools[i]->name, name) == 0)
            return tools[i];
    return NULL;
}

const char *tool_registry_list_json(void)
{
    return list_json;
}
