/*
 * The logger: one line per event on stderr, written with a single write()
 * so that lines from different threads never interleave.
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static enum log_level min_level = LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_set_level(enum log_level min)
{
    min_level = min;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    if (level < min_level)
        return;
    char line[2048];
    struct timespec now;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     now.tv_nsec / 1000000, level_names[level]);
    if (n < 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (m < 0)
        return;
    size_t len = (size_t)n + (size_t)m;
    if (len > sizeof(line) - 2)
        len = sizeof(line) - 2;
    line[len++] = '\n';
    /* A short write to stderr loses part of a log line; nothing better to do. */
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}

void log_mask_path(const char *path, char *out, size_t out_len)
{
    if (!out_len)
        return;
    out[0] = '\0';
    if (!path)
        return;
    size_t path_len = strcspn(path, "?");
    const char *masked = "";
    size_t keep = path_len;
    const char *rest = "";
    /* `/u/<token>` and `/u/<token>/...`: the segment after /u/ is the secret. */
    if (strncmp(path, "/u/", 3) == 0) {
        keep = 3;
        masked = "***";
        rest = path + 3 + strcspn(path + 3, "/?");
    }
    size_t rest_len = strcspn(rest, "?");
    snprintf(out, out_len, "%.*s%s%.*s", (int)keep, path, masked, (int)rest_len, rest);
}
