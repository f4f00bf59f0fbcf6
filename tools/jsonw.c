/*
 * The JSON writer behind jsonw.h: the shared growing buffer and jansson's string
 * and number forms, so text written here parses to the same values that
 * json_dumps would have produced. Any thread; no shared state.
 */
#include "jsonw.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void jsonw_init(struct jsonw *w)
{
    memset(w, 0, sizeof(*w));
}

void jsonw_cleanup(struct jsonw *w)
{
    buf_cleanup(&w->out);
    jsonw_init(w);
}

/* Room for `extra` more bytes and a NUL; false (and failed) if memory ran out. */
static bool reserve(struct jsonw *w, size_t extra)
{
    if (w->is_failed)
        return false;
    if (!buf_reserve(&w->out, extra)) {
        w->is_failed = true;
        return false;
    }
    return true;
}

void jsonw_raw(struct jsonw *w, const char *s, size_t len)
{
    if (!reserve(w, len))
        return;
    buf_add(&w->out, s, len);
}

void jsonw_lit(struct jsonw *w, const char *s)
{
    jsonw_raw(w, s, strlen(s));
}

size_t jsonw_utf8_decode(const char *text, size_t left, uint32_t *cp)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t n;
    uint32_t c = s[0], min;
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if ((c & 0xe0) == 0xc0) {
        n = 2, c &= 0x1f, min = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
        n = 3, c &= 0x0f, min = 0x800;
    } else if ((c & 0xf8) == 0xf0) {
        n = 4, c &= 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (n > left)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        c = (c << 6) | (s[i] & 0x3f);
    }
    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
        return 0;
    *cp = c;
    return n;
}

void jsonw_string(struct jsonw *w, const char *s, size_t len, bool is_ascii)
{
    static const char hex[] = "0123456789ABCDEF";
    const unsigned char *p = (const unsigned char *)s;
    /* Worst case: every byte a \u00xx escape, or 4 bytes to a 12-byte surrogate pair. */
    if (len > SIZE_MAX / 8 || !reserve(w, len * 6 + 2))
        return;
    char *out = w->out.data + w->out.len;
    *out++ = '"';
    size_t i = 0;
    while (i < len) {
        /* Copy the run that needs no escaping in one go. */
        size_t run = i;
        while (run < len && p[run] >= 0x20 && p[run] != '"' && p[run] != '\\' &&
               (!is_ascii || p[run] < 0x80))
            run++;
        memcpy(out, p + i, run - i);
        out += run - i;
        i = run;
        if (i == len)
            break;
        unsigned char c = p[i];
        if (c == '"' || c == '\\') {
            *out++ = '\\';
            *out++ = (char)c;
            i++;
            continue;
        }
        if (c < 0x20) {
            const char *short_form = NULL;
            switch (c) {
            case '\b':
                short_form = "\\b";
                break;
            case '\f':
                short_form = "\\f";
                break;
            case '\n':
                short_form = "\\n";
                break;
            case '\r':
                short_form = "\\r";
                break;
            case '\t':
                short_form = "\\t";
                break;
            default:
                break;
            }
            if (short_form) {
                memcpy(out, short_form, 2);
                out += 2;
            } else {
                memcpy(out, "\\u00", 4);
                out[4] = hex[c >> 4];
                out[5] = hex[c & 15];
                out += 6;
            }
            i++;
            continue;
        }
        uint32_t cp = 0;
        size_t n = jsonw_utf8_decode(s + i, len - i, &cp);
        if (!n) {
            w->is_failed = true;
            return;
        }
        if (cp >= 0x10000) {
            cp -= 0x10000;
            uint32_t hi = 0xd800 | (cp >> 10), lo = 0xdc00 | (cp & 0x3ff);
            out += sprintf(out, "\\u%04" PRIX32 "\\u%04" PRIX32, hi, lo);
        } else {
            out += sprintf(out, "\\u%04" PRIX32, cp);
        }
        i += n;
    }
    *out++ = '"';
    *out = '\0';
    w->out.len = (size_t)(out - w->out.data);
}

void jsonw_int(struct jsonw *w, int64_t n)
{
    char num[24];
    int k = snprintf(num, sizeof(num), "%" PRId64, n);
    jsonw_raw(w, num, (size_t)k);
}

void jsonw_real(struct jsonw *w, double d)
{
    if (!isfinite(d)) {
        jsonw_raw(w, "null", 4);
        return;
    }
    char num[40];
    int k = snprintf(num, sizeof(num), "%.17g", d);
    if (k < 0 || (size_t)k >= sizeof(num) - 3) {
        w->is_failed = true;
        return;
    }
    size_t len = (size_t)k;
    /* jansson keeps a real a real: a '.' or an exponent, never a bare integer. */
    if (!memchr(num, '.', len) && !memchr(num, 'e', len)) {
        memcpy(num + len, ".0", 3);
        len += 2;
    }
    /* And drops the exponent's '+' and leading zeros: 1e+05 becomes 1e5. */
    char *e = memchr(num, 'e', len);
    if (e) {
        char *start = e + 1, *end = e + 2;
        if (*start == '-')
            start++;
        while (*end == '0')
            end++;
        if (end != start) {
            memmove(start, end, len + 1 - (size_t)(end - num));
            len -= (size_t)(end - start);
        }
    }
    jsonw_raw(w, num, len);
}

void jsonw_truncate(struct jsonw *w, size_t len)
{
    buf_truncate(&w->out, len);
}

char *jsonw_take(struct jsonw *w, size_t *len)
{
    if (w->is_failed) {
        jsonw_cleanup(w);
        return NULL;
    }
    return buf_take(&w->out, len);
}
