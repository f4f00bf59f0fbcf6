/*
 * The JSON writer behind jsonw.h: the shared growing buffer and jansson's string
 * and number forms, so text written here parses to the same values that
 * json_dumps would have produced. Any thread; no shared state.
 */
#include "jsonw.h"

#include <float.h>
#include <inttypes.h>
#include <jansson.h>
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
    /* buf_add is inline with a fast path for bytes that fit: this runs for
     * every cell of large results. */
    if (!w->is_failed && !buf_add(&w->out, s, len))
        w->is_failed = true;
}

void jsonw_utf8_mend(char *s)
{
    size_t len = strlen(s);
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t n = jsonw_utf8_decode(s + i, len - i, &cp);
        if (n == 0) {
            s[i] = '?';
            n = 1;
        }
        i += n;
    }
}

/* See jsonw.h. */
/* One row per 16 bytes. */
/* clang-format off */
#define STOP_ROW(v) v, v, v, v, v, v, v, v, v, v, v, v, v, v, v, v
const unsigned char jsonw_stop_class[256] = {
    STOP_ROW(JSONW_STOP_ALWAYS), STOP_ROW(JSONW_STOP_ALWAYS),         /* 0x00-0x1f */
    0, 0, JSONW_STOP_ALWAYS, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,   /* 0x20-0x2f: '"' */
    STOP_ROW(0), STOP_ROW(0),                                         /* 0x30-0x4f */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, JSONW_STOP_ALWAYS, 0, 0, 0,   /* 0x50-0x5f: '\\' */
    STOP_ROW(0), STOP_ROW(0),                                         /* 0x60-0x7f */
    STOP_ROW(JSONW_STOP_ASCII), STOP_ROW(JSONW_STOP_ASCII), STOP_ROW(JSONW_STOP_ASCII),
    STOP_ROW(JSONW_STOP_ASCII), STOP_ROW(JSONW_STOP_ASCII), STOP_ROW(JSONW_STOP_ASCII),
    STOP_ROW(JSONW_STOP_ASCII), STOP_ROW(JSONW_STOP_ASCII),           /* 0x80-0xff */
};
#undef STOP_ROW
/* clang-format on */

void jsonw_string(struct jsonw *w, const char *s, size_t len, bool is_ascii)
{
    static const char hex[] = "0123456789ABCDEF";
    const unsigned char *p = (const unsigned char *)s;
    /* Worst case: every byte a \u00xx escape, or 4 bytes to a 12-byte surrogate pair. */
    if (len > SIZE_MAX / 8 || !reserve(w, len * 6 + 2))
        return;
    char *out = w->out.data + w->out.len;
    *out++ = '"';
    unsigned char stops = is_ascii ? JSONW_STOP_ALWAYS | JSONW_STOP_ASCII : JSONW_STOP_ALWAYS;
    size_t i = 0;
    while (i < len) {
        /* Copy the run that needs no escaping in one go. */
        size_t run = i;
        while (run < len && !(jsonw_stop_class[p[run]] & stops))
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
    /* Digits from the right; unsigned, so that INT64_MIN negates. */
    char num[24], *end = num + sizeof(num), *p = end;
    uint64_t u = n < 0 ? 0 - (uint64_t)n : (uint64_t)n;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (n < 0)
        *--p = '-';
    jsonw_raw(w, p, (size_t)(end - p));
}

/*
 * Writes a real from its significant digits (`digits`, n_digits of them, the
 * first not 0, none trailing 0) and the decimal exponent of the first one
 * (value = 0.d1d2... * 10^(exp10 + 1)), as "%.{precision}g" would print it
 * after the changes jansson makes: ".0" after a bare integer, and an exponent
 * without '+' or leading zeros.
 */
static void write_real_digits(struct jsonw *w, bool is_negative, const char *digits,
                              size_t n_digits, int exp10, int precision)
{
    char num[48], *o = num;
    if (is_negative)
        *o++ = '-';
    if (exp10 < -4 || exp10 >= precision) {
        *o++ = digits[0];
        if (n_digits > 1) {
            *o++ = '.';
            memcpy(o, digits + 1, n_digits - 1);
            o += n_digits - 1;
        }
        o += snprintf(o, 8, "e%d", exp10);
    } else if (exp10 < 0) {
        *o++ = '0';
        *o++ = '.';
        for (int i = -1; i > exp10; i--)
            *o++ = '0';
        memcpy(o, digits, n_digits);
        o += n_digits;
    } else {
        size_t n_int = (size_t)exp10 + 1;
        for (size_t i = 0; i < n_int; i++)
            *o++ = i < n_digits ? digits[i] : '0';
        *o++ = '.';
        if (n_digits > n_int) {
            memcpy(o, digits + n_int, n_digits - n_int);
            o += n_digits - n_int;
        } else {
            *o++ = '0';
        }
    }
    jsonw_raw(w, num, (size_t)(o - num));
}

/*
 * Splits "%.*e" text ("-d.ddde+XX") into sign, significant digits (trailing
 * zeros dropped) and exponent. false if it is not that shape.
 */
static bool split_e_text(const char *text, bool *is_negative, char *digits, size_t *n_digits,
                         int *exp10)
{
    const char *p = text;
    size_t n = 0;
    *is_negative = *p == '-';
    if (*is_negative)
        p++;
    for (; *p && *p != 'e'; p++) {
        if (*p >= '0' && *p <= '9')
            digits[n++] = *p;
    }
    if (*p != 'e' || n == 0)
        return false;
    *exp10 = atoi(p + 1);
    while (n > 1 && digits[n - 1] == '0')
        n--;
    *n_digits = n;
    return true;
}

void jsonw_real(struct jsonw *w, double d)
{
    if (!isfinite(d)) {
        jsonw_raw(w, "null", 4);
        return;
    }
    if (d == 0) {
        jsonw_raw(w, signbit(d) ? "-0.0" : "0.0", signbit(d) ? 4 : 3);
        return;
    }
    /* The fewest significant digits that read back as d: any decimal of 15
     * or fewer digits reads back as itself from a normal double, so trying
     * 15 (trailing zeros dropped), 16 and 17 finds them; subnormals hold
     * fewer digits, so for them every count is tried. */
    char text[40], digits[24];
    for (int precision = fabs(d) < DBL_MIN ? 1 : 15; precision <= 17; precision++) {
        snprintf(text, sizeof(text), "%.*e", precision - 1, d);
        if (precision < 17 && strtod(text, NULL) != d)
            continue;
        bool is_negative;
        size_t n_digits;
        int exp10;
        if (!split_e_text(text, &is_negative, digits, &n_digits, &exp10)) {
            w->is_failed = true;
            return;
        }
        write_real_digits(w, is_negative, digits, n_digits, exp10, precision);
        return;
    }
}

bool jsonw_real_text(struct jsonw *w, const char *text, size_t len)
{
    /* -?int(.frac)?([eE][+-]?digits)? */
    const char *p = text, *end = text + len;
    bool is_negative = p < end && *p == '-';
    if (is_negative)
        p++;
    char digits[16];
    size_t n_digits = 0;
    long n_int = 0;  /* digits before the point */
    long first = -1; /* the index of the first nonzero digit, counted over all digits */
    long n_seen = 0; /* digits seen so far */
    bool is_fraction = false;
    for (; p < end && *p != 'e' && *p != 'E'; p++) {
        if (*p == '.' && !is_fraction) {
            is_fraction = true;
            continue;
        }
        if (*p < '0' || *p > '9')
            return false;
        if (!is_fraction)
            n_int++;
        if (first < 0 && *p != '0')
            first = n_seen;
        n_seen++;
        if (first < 0)
            continue;
        if (n_digits == sizeof(digits))
            return false;
        digits[n_digits++] = *p;
    }
    if (n_seen == 0)
        return false;
    if (first < 0)
        return false; /* zero: jsonw_real writes its sign */
    long exp10 = n_int - 1 - first;
    if (p < end) {
        p++;
        bool is_exp_negative = p < end && *p == '-';
        if (p < end && (*p == '-' || *p == '+'))
            p++;
        if (p >= end || end - p > 4)
            return false;
        long e = 0;
        for (; p < end; p++) {
            if (*p < '0' || *p > '9')
                return false;
            e = e * 10 + (*p - '0');
        }
        exp10 += is_exp_negative ? -e : e;
    }
    while (n_digits > 1 && digits[n_digits - 1] == '0')
        n_digits--;
    /* More than 15 significant digits may not be the fewest that read back
     * as the same double, and near a double's limits the text may not be a
     * double at all: jsonw_real decides those. */
    if (n_digits > 15 || exp10 < -300 || exp10 > 300)
        return false;
    write_real_digits(w, is_negative, digits, n_digits, (int)exp10, 15);
    return true;
}

void jsonw_value(struct jsonw *w, const json_t *v, bool is_ascii)
{
    const char *key;
    size_t key_len;
    json_t *member;
    size_t i;
    bool is_first = true;
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        jsonw_raw(w, "{", 1);
        json_object_keylen_foreach((json_t *)v, key, key_len, member)
        {
            if (!is_first)
                jsonw_raw(w, ",", 1);
            is_first = false;
            jsonw_string(w, key, key_len, is_ascii);
            jsonw_raw(w, ":", 1);
            jsonw_value(w, member, is_ascii);
        }
        jsonw_raw(w, "}", 1);
        break;
    case JSON_ARRAY:
        jsonw_raw(w, "[", 1);
        json_array_foreach(v, i, member)
        {
            if (i)
                jsonw_raw(w, ",", 1);
            jsonw_value(w, member, is_ascii);
        }
        jsonw_raw(w, "]", 1);
        break;
    case JSON_STRING:
        jsonw_string(w, json_string_value(v), json_string_length(v), is_ascii);
        break;
    case JSON_INTEGER:
        jsonw_int(w, (int64_t)json_integer_value(v));
        break;
    case JSON_REAL:
        jsonw_real(w, json_real_value(v));
        break;
    case JSON_TRUE:
        jsonw_raw(w, "true", 4);
        break;
    case JSON_FALSE:
        jsonw_raw(w, "false", 5);
        break;
    case JSON_NULL:
        jsonw_raw(w, "null", 4);
        break;
    }
}

char *jsonw_dumps(const json_t *v, bool is_ascii, size_t *len)
{
    struct jsonw w;
    jsonw_init(&w);
    jsonw_value(&w, v, is_ascii);
    return jsonw_take(&w, len);
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
