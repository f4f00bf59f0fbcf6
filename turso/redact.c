/*
 * Redaction of messages that may hold what Turso or a proxy echoed back:
 * one place, so that every error text a model, a log or a page shows has
 * been through the same rules. Pure functions, any thread.
 */
#include "redact.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

static bool is_b64url(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
}

/* Replaces m[start, start + len) with "***" (or as many '*' when shorter). */
static size_t mask_range(char *m, size_t start, size_t len)
{
    if (len <= 3) {
        memset(m + start, '*', len);
        return start + len;
    }
    memcpy(m + start, "***", 3);
    memmove(m + start + 3, m + start + len, strlen(m + start + len) + 1);
    return start + 3;
}

static void mask_secret(char *m, const char *secret)
{
    size_t n = secret ? strlen(secret) : 0;
    if (n == 0)
        return;
    size_t from = 0;
    char *hit;
    /* Search on after each mask, so a secret that contains "***" still ends. */
    while ((hit = memmem(m + from, strlen(m + from), secret, n)) != NULL)
        from = mask_range(m, (size_t)(hit - m), n);
}

/* Anything shaped like a JWT: "eyJ" (base64 of `{"`) then two more dot-separated segments. */
static void mask_jwts(char *m)
{
    size_t i = 0;
    while (m[i]) {
        if (strncmp(m + i, "eyJ", 3) == 0 && (i == 0 || !is_b64url((unsigned char)m[i - 1]))) {
            size_t j = i, n_dots = 0;
            while (is_b64url((unsigned char)m[j]) || m[j] == '.') {
                n_dots += m[j] == '.';
                j++;
            }
            if (n_dots >= 2) {
                i = mask_range(m, i, j - i);
                continue;
            }
        }
        i++;
    }
}

/* "Bearer <credential>" keeps the word and loses the credential. */
static void mask_bearers(char *m)
{
    size_t i = 0;
    while (m[i]) {
        if (strncasecmp(m + i, "bearer ", 7) == 0) {
            size_t s = i + 7, j = s;
            while (m[j] && m[j] != ' ' && m[j] != '"' && m[j] != '\'' && m[j] != ',' &&
                   m[j] != '`' && m[j] != '}')
                j++;
            if (j > s && !(j - s == 3 && strncmp(m + s, "***", 3) == 0)) {
                i = mask_range(m, s, j - s);
                continue;
            }
        }
        i++;
    }
}

static void clean_text(char *m)
{
    unsigned char *p = (unsigned char *)m;
    while (*p) {
        unsigned char b = *p;
        size_t n = b < 0x80             ? 1
                   : (b & 0xE0) == 0xC0 ? 2
                   : (b & 0xF0) == 0xE0 ? 3
                   : (b & 0xF8) == 0xF0 ? 4
                                        : 0;
        if (n == 1) {
            if (b < 0x20 || b == 0x7f)
                *p = ' ';
            p++;
            continue;
        }
        bool is_ok = n > 0;
        uint32_t cp = n == 2 ? b & 0x1F : n == 3 ? b & 0x0F : b & 0x07;
        /* A NUL fails the continuation test, so this never reads past the end. */
        for (size_t i = 1; is_ok && i < n; i++) {
            if ((p[i] & 0xC0) != 0x80)
                is_ok = false;
            else
                cp = (cp << 6) | (p[i] & 0x3F);
        }
        if (is_ok &&
            ((n == 2 && cp < 0x80) || (n == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
             (n == 4 && (cp < 0x10000 || cp > 0x10FFFF))))
            is_ok = false;
        if (!is_ok) {
            *p++ = '?';
            continue;
        }
        p += n;
    }
}

void redact_message(char *message, const char *secret)
{
    if (!message)
        return;
    mask_secret(message, secret);
    mask_jwts(message);
    mask_bearers(message);
    clean_text(message);
}
