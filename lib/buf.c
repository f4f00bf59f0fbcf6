/* The growing buffer of buf.h. */
#include "buf.h"

#include <sodium.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void buf_init(struct buf *b, size_t max)
{
    memset(b, 0, sizeof(*b));
    b->max = max;
}

bool buf_reserve(struct buf *b, size_t more)
{
    if (b->is_failed || b->is_over)
        return false;
    if (more > SIZE_MAX / 2 - b->len) {
        b->is_failed = true;
        return false;
    }
    if (b->max && b->len + more > b->max) {
        b->is_over = true;
        return false;
    }
    size_t need = b->len + more + 1;
    if (need <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap *= 2;
    /* Not realloc: the old block would be freed unwiped, and it may hold a token. */
    char *grown = malloc(cap);
    if (!grown) {
        b->is_failed = true;
        return false;
    }
    if (b->data) {
        memcpy(grown, b->data, b->len + 1);
        sodium_memzero(b->data, b->cap);
        free(b->data);
    } else {
        grown[0] = '\0';
    }
    b->data = grown;
    b->cap = cap;
    return true;
}

bool buf_add_growing(struct buf *b, const void *s, size_t n)
{
    if (!buf_reserve(b, n))
        return false;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
    return true;
}

bool buf_adds(struct buf *b, const char *s)
{
    return buf_add(b, s, strlen(s));
}

bool buf_addf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || !buf_reserve(b, (size_t)n)) {
        if (n < 0)
            b->is_failed = true;
        return false;
    }
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return true;
}

void buf_truncate(struct buf *b, size_t len)
{
    if (len < b->len) {
        sodium_memzero(b->data + len, b->len - len);
        b->len = len;
    }
    b->is_over = false;
}

char *buf_take(struct buf *b, size_t *len)
{
    if (b->is_failed || (!b->data && !buf_reserve(b, 0))) {
        buf_cleanup(b);
        return NULL;
    }
    char *out = b->data;
    if (len)
        *len = b->len;
    size_t max = b->max;
    memset(b, 0, sizeof(*b));
    b->max = max;
    return out;
}

void buf_cleanup(struct buf *b)
{
    if (b->data) {
        sodium_memzero(b->data, b->cap);
        free(b->data);
    }
    size_t max = b->max;
    memset(b, 0, sizeof(*b));
    b->max = max;
}
