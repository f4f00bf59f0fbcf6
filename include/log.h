/*
 * One logger: a line per event on stderr, `key=value` pairs after a level
 * and a UTC timestamp. Callers mask URL tokens with log_mask_path() before
 * they log a path; secrets are never passed to log_msg().
 * Thread-safe: each line is written with a single write().
 */
#ifndef TM_LOG_H
#define TM_LOG_H

#include <stdbool.h>
#include <stddef.h>

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR };

/* Lines below `min` are dropped. Call before threads start. */
void log_set_level(enum log_level min);

/* One JSON object a line (the default), or plain `key=value` text. Call before threads start. */
void log_set_json(bool json);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Copies `path` into `out` (size `out_len`, always NUL-terminated) with the
 * token segment of `/u/<token>/...` replaced by `***`, and any query
 * string dropped.
 */
void log_mask_path(const char *path, char *out, size_t out_len);

#endif
