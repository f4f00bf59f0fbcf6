/*
 * MCP sessions (Mcp-Session-Id): which user a session belongs to, the
 * protocol version it negotiated and its log level. Sessions expire after
 * an idle time and the least recently used is evicted when the table is
 * full. A session is only ever visible through the URL of the user who
 * opened it. Thread-safe: one mutex guards the table.
 */
#ifndef TM_SESSION_H
#define TM_SESSION_H

#include <stdbool.h>
#include <stddef.h>

#include "tm_err.h"

/* Session ids are 16 random bytes as lowercase hex. */
#define SESSION_ID_LEN      32
#define SESSION_USER_LEN    16
#define SESSION_VERSION_LEN 10

struct session_table;

struct session_info {
    char version[SESSION_VERSION_LEN + 1]; /* negotiated protocol version */
    int log_level;                         /* index into the MCP log levels; -1 unset */
};

/* A table holding at most `max` sessions that expire after `idle_seconds`. */
enum tm_err session_table_create(size_t max, long idle_seconds, struct session_table **out);

/* Frees the table; clears *t; accepts NULL. */
void session_table_destroy(struct session_table **t);

/* Opens a session for `user_id` (SESSION_USER_LEN chars) and writes its id. */
enum tm_err session_open(struct session_table *t, const char *user_id, const char *version,
                         char id_out[SESSION_ID_LEN + 1]);

/*
 * Finds session `id` of `user_id`, marks it used and copies its state to
 * *out (may be NULL). TM_ERR_NOT_FOUND when absent, expired or another
 * user's.
 */
enum tm_err session_touch(struct session_table *t, const char *id, const char *user_id,
                          struct session_info *out);

/* Sets the log level of a session (see session_touch for errors). */
enum tm_err session_set_log_level(struct session_table *t, const char *id, const char *user_id,
                                  int level);

/* Sets the negotiated version of a session (see session_touch for errors). */
enum tm_err session_set_version(struct session_table *t, const char *id, const char *user_id,
                                const char *version);

/* Ends session `id` of `user_id`; TM_ERR_NOT_FOUND as for session_touch. */
enum tm_err session_close(struct session_table *t, const char *id, const char *user_id);

/* Sessions held now (expired ones not yet swept may count). */
size_t session_count(struct session_table *t);

#endif
