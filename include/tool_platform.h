/*
 * What the two Platform API tools (turso_database_manager, turso_analytics)
 * share: argument checks against a small table, the checks Turso's own
 * rules imply (names, timestamps, token expirations), and one way to send a
 * Platform API call with the user's token. Thread: any.
 */
#ifndef TM_TOOL_PLATFORM_H
#define TM_TOOL_PLATFORM_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "platform.h"
#include "tool.h"

/* One argument a tool takes: its name and JSON type. */
struct tool_arg {
    const char *name;
    json_type type; /* JSON_INTEGER also accepts nothing else; JSON_TRUE means boolean */
};

/*
 * Checks every member of `args` against `known` (n of them): an unknown
 * name or a wrong type gives an isError result (new reference) naming the
 * argument and what it should be; NULL when all are fine. `tool` names the
 * tool in the message.
 */
json_t *tool_platform_check_args(const json_t *args, const struct tool_arg *known, size_t n,
                                 const char *tool);

/*
 * NULL when `c` can use the Platform API; otherwise why not, as a sentence
 * to put after "cannot ...". Borrowed static text.
 */
const char *tool_platform_missing(const struct creds *c);

/* Turso's rule for a new database or group name: 1 to 64 of a-z, 0-9 and '-'. */
bool tool_platform_is_new_name(const char *s);

/* A name to look up: 1 to 128 bytes, no control characters. */
bool tool_platform_is_name(const char *s);

/* RFC 3339 with a zone, as Turso wants it: 2025-11-30T08:15:00Z, …+01:00, fractions allowed. */
bool tool_platform_is_timestamp(const char *s);

/* A token expiration Turso accepts: "never" or number+unit groups (w d h m s), e.g. 2w1d30m. */
bool tool_platform_is_expiration(const char *s);

/* Unix seconds as RFC 3339 UTC ("2025-11-30T08:15:00Z") into out (at least 21 bytes). */
void tool_platform_format_time(long long t, char *out, size_t out_len);

/*
 * Sends a Platform API call with the user's token and the call's time
 * limit; `done` runs on a transport callback thread. Same return contract as
 * platform_call.
 */
enum tm_err tool_platform_call(struct tool_call *call, const char *method, const char *path,
                               const json_t *body, platform_done_fn done, void *ctx);

#endif
