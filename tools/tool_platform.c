/*
 * Helpers shared by the Platform API tools: argument tables, Turso's
 * naming and time formats, and sending a call with the user's token.
 */
#include "tool_platform.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "dbaccess.h"

static const char *type_name(json_type t)
{
    switch (t) {
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_TRUE:
    case JSON_FALSE:
        return "true or false";
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    default:
        return "a value";
    }
}

static bool has_type(const json_t *v, json_type t)
{
    if (t == JSON_TRUE || t == JSON_FALSE)
        return json_is_boolean(v);
    return json_typeof(v) == t;
}

json_t *tool_platform_check_args(const json_t *args, const struct tool_arg *known, size_t n,
                                 const char *tool)
{
    const char *key;
    const json_t *value;
    json_object_foreach((json_t *)args, key, value)
    {
        const struct tool_arg *a = NULL;
        for (size_t i = 0; i < n && !a; i++)
            if (strcmp(known[i].name, key) == 0)
                a = &known[i];
        if (!a) {
            char names[512];
            size_t used = 0;
            names[0] = '\0';
            for (size_t i = 0; i < n; i++) {
                int w = snprintf(names + used, sizeof(names) - used, "%s%s", i ? ", " : "",
                                 known[i].name);
                if (w < 0 || (size_t)w >= sizeof(names) - used)
                    break;
                used += (size_t)w;
            }
            return tool_error_result("Unknown argument \"%.64s\"; %s takes %s.", key, tool, names);
        }
        if (!has_type(value, a->type))
            return tool_error_result("Argument \"%s\" must be %s.", a->name, type_name(a->type));
    }
    return NULL;
}

const char *tool_platform_missing(const struct creds *c)
{
    if (c->platform_token && c->org)
        return NULL;
    return "this URL was set up without a Turso Platform API token and organization, which "
           "managing databases and reading usage need. The server's operator can add them with "
           "`turso-mcp user add --platform-token-file FILE --org ORG` (a new URL).";
}

bool tool_platform_is_new_name(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > 64)
        return false;
    for (const char *p = s; *p; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-'))
            return false;
    }
    return true;
}

bool tool_platform_is_name(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > 128)
        return false;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p < 0x20 || *p == 0x7f)
            return false;
    }
    return true;
}

static bool digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

bool tool_platform_is_timestamp(const char *s)
{
    /* YYYY-MM-DDTHH:MM:SS, then optional .fraction, then Z or +hh:mm / -hh:mm. */
    if (!s || strlen(s) < 20 || strlen(s) > 40)
        return false;
    if (!digits(s, 4) || s[4] != '-' || !digits(s + 5, 2) || s[7] != '-' || !digits(s + 8, 2) ||
        (s[10] != 'T' && s[10] != 't') || !digits(s + 11, 2) || s[13] != ':' ||
        !digits(s + 14, 2) || s[16] != ':' || !digits(s + 17, 2))
        return false;
    int month = (s[5] - '0') * 10 + (s[6] - '0'), day = (s[8] - '0') * 10 + (s[9] - '0');
    int hour = (s[11] - '0') * 10 + (s[12] - '0'), minute = (s[14] - '0') * 10 + (s[15] - '0');
    int second = (s[17] - '0') * 10 + (s[18] - '0');
    if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60)
        return false;
    const char *p = s + 19;
    if (*p == '.') {
        p++;
        size_t n = strspn(p, "0123456789");
        if (n == 0)
            return false;
        p += n;
    }
    if ((*p == 'Z' || *p == 'z') && p[1] == '\0')
        return true;
    return (*p == '+' || *p == '-') && digits(p + 1, 2) && p[3] == ':' && digits(p + 4, 2) &&
           p[6] == '\0';
}

bool tool_platform_is_expiration(const char *s)
{
    if (!s || !*s || strlen(s) > 32)
        return false;
    if (strcmp(s, "never") == 0)
        return true;
    const char *p = s;
    while (*p) {
        size_t n = strspn(p, "0123456789");
        if (n == 0 || !strchr("wdhms", p[n]) || p[n] == '\0')
            return false;
        p += n + 1;
    }
    return true;
}

void tool_platform_format_time(long long t, char *out, size_t out_len)
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (!gmtime_r(&tt, &tm) || strftime(out, out_len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, out_len, "%lld", t);
}

enum tm_err tool_platform_call(struct tool_call *call, const char *method, const char *path,
                               const json_t *body, platform_done_fn done, void *ctx)
{
    struct platform_request req = {
        .method = method,
        .path = path,
        .body = body,
        .timeout_ms = call->env->upstream_timeout_ms,
    };
    return platform_call(dbaccess_platform(call->env->db), call->creds->platform_token, &req, done,
                         ctx);
}
