/*
 * The logger: one line per event on stderr, written with a single write()
 * so that lines from different threads never interleave.
 */
#include "log.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static enum log_level min_level = LOG_INFO;
static bool is_json = true;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_set_level(enum log_level min)
{
    min_level = min;
}

void log_set_json(bool json)
{
    is_json = json;
}

/* snprintf at `pos`, never past `cap`; returns the new length (at most cap - 1). */
__attribute__((format(printf, 4, 5))) static size_t append(char *out, size_t pos, size_t cap,
                                                           const char *fmt, ...)
{
    if (pos >= cap - 1)
        return cap - 1;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out + pos, cap - pos, fmt, ap);
    va_end(ap);
    if (n < 0)
        return pos;
    return pos + (size_t)n < cap - 1 ? pos + (size_t)n : cap - 1;
}

/* Appends `s` (len bytes) as the inside of a JSON string; returns the new length. */
static size_t put_escaped(char *out, size_t pos, size_t cap, const char *s, size_t len)
{
    for (size_t i = 0; i < len && pos + 7 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            out[pos++] = '\\';
            out[pos++] = (char)c;
        } else if (c < 0x20) {
            pos = append(out, pos, cap, "\\u%04x", c);
        } else {
            out[pos++] = (char)c;
        }
    }
    return pos;
}

static bool is_number(const char *s, size_t len)
{
    size_t i = s[0] == '-' ? 1 : 0, digits = 0, dots = 0;
    for (; i < len; i++) {
        if (s[i] >= '0' && s[i] <= '9')
            digits++;
        else if (s[i] == '.' && dots++ == 0 && digits > 0)
            continue;
        else
            return false;
    }
    /* No leading zeros except "0" and "0.x": JSON forbids them. */
    size_t start = s[0] == '-' ? 1 : 0;
    if (digits == 0 || s[len - 1] == '.' ||
        (len - start > 1 && s[start] == '0' && s[start + 1] != '.'))
        return false;
    return true;
}

/*
 * Turns `key=value key="quoted value" ...` into the members of a JSON
 * object, so that every log line is one JSON object for log collectors.
 */
static size_t to_json_members(char *out, size_t pos, size_t cap, const char *msg)
{
    const char *p = msg;
    while (*p && pos + 16 < cap) {
        while (*p == ' ')
            p++;
        if (!*p)
            break;
        const char *key = p;
        size_t key_len = strcspn(p, "= ");
        if (p[key_len] != '=' || key_len == 0) {
            /* Free text: the rest of the line is the message. */
            pos = append(out, pos, cap, ",\"msg\":\"");
            pos = put_escaped(out, pos, cap, p, strlen(p));
            pos = append(out, pos, cap, "\"");
            break;
        }
        const char *value = p + key_len + 1;
        size_t value_len;
        bool is_quoted = *value == '"';
        if (is_quoted) {
            value++;
            const char *end = strchr(value, '"');
            value_len = end ? (size_t)(end - value) : strlen(value);
            p = value + value_len + (end ? 1 : 0);
        } else {
            value_len = strcspn(value, " ");
            p = value + value_len;
        }
        pos = append(out, pos, cap, ",\"");
        pos = put_escaped(out, pos, cap, key, key_len);
        if (!is_quoted && value_len > 0 && is_number(value, value_len)) {
            pos = append(out, pos, cap, "\":%.*s", (int)value_len, value);
        } else {
            pos = append(out, pos, cap, "\":\"");
            pos = put_escaped(out, pos, cap, value, value_len);
            pos = append(out, pos, cap, "\"");
        }
    }
    return pos < cap ? pos : cap - 1;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    if (level < min_level)
        return;
    char line[2048], msg[1536];
    struct timespec now;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (m < 0)
        return;
    char ts[64];
    snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, now.tv_nsec / 1000000);
    size_t len;
    if (is_json) {
        int n =
            snprintf(line, sizeof(line), "{\"ts\":\"%s\",\"level\":\"%s\"", ts, level_names[level]);
        len = to_json_members(line, (size_t)n, sizeof(line) - 2, msg);
        if (len >= sizeof(line) - 3) {
            /* Too long to convert whole: keep valid JSON with the start of the text. */
            len = to_json_members(line, (size_t)n, sizeof(line) - 2, "truncated=1");
            len = append(line, len, sizeof(line) - 2, ",\"msg\":\"");
            len = put_escaped(line, len, sizeof(line) - 300, msg, strlen(msg));
            len = append(line, len, sizeof(line) - 2, "\"");
        }
        line[len++] = '}';
    } else {
        int n = snprintf(line, sizeof(line), "%s level=%s %s", ts, level_names[level], msg);
        len = n < 0 ? 0 : (size_t)n;
        if (len > sizeof(line) - 2)
            len = sizeof(line) - 2;
    }
    line[len++] = '\n';
    /* A short write to stderr loses part of a log line; nothing better to do. */
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}

/* Appends len bytes of s to out (n used of out_len), truncating, and keeps it NUL-terminated. */
static void append_bytes(char *out, size_t out_len, size_t *n, const char *s, size_t len)
{
    if (len > out_len - 1 - *n)
        len = out_len - 1 - *n;
    memcpy(out + *n, s, len);
    *n += len;
    out[*n] = '\0';
}

void log_mask_path(const char *path, char *out, size_t out_len)
{
    if (!out_len)
        return;
    out[0] = '\0';
    if (!path)
        return;
    size_t n = 0;
    const char *rest = path;
    /* `/u/<token>` and `/u/<token>/...`: the segment after /u/ is the secret. */
    if (strncmp(path, "/u/", 3) == 0) {
        append_bytes(out, out_len, &n, "/u/***", 6);
        rest = path + 3 + strcspn(path + 3, "/?");
    }
    append_bytes(out, out_len, &n, rest, strcspn(rest, "?"));
}
