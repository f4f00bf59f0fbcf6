/*
 * A growing byte buffer, NUL-terminated once anything was added, with an
 * optional cap. Every buffer of the server (request bodies, pages, results,
 * dumps, metrics) is one of these, so growth, caps and failure handling
 * live in one place. Growth copies and wipes the old block instead of
 * realloc, and cleanup wipes, because some buffers hold tokens and a buffer
 * does not know which. Failures are sticky: after one, adds do nothing.
 * A zeroed struct is an empty buffer with no cap. One thread at a time.
 */
#ifndef TM_BUF_H
#define TM_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

struct buf {
    char *data;     /* the bytes and a NUL, or NULL before the first add */
    size_t len;     /* bytes held, without the NUL */
    size_t cap;     /* bytes allocated */
    size_t max;     /* most bytes it may hold; 0: no cap */
    bool is_failed; /* an allocation failed */
    bool is_over;   /* an add would have passed max */
};

/* An empty buffer that holds at most `max` bytes (0: no cap). */
void buf_init(struct buf *b, size_t max);

/* Room for `more` bytes and a NUL; false when failed or over the cap (and then sticky). */
bool buf_reserve(struct buf *b, size_t more);

/* buf_add when the bytes may not fit as they are; see below. */
bool buf_add_growing(struct buf *b, const void *s, size_t n);

/*
 * Appends `n` bytes; false if it could not (nothing is added then). Inline
 * for when they fit the room there is: readers and writers of large results
 * add a few bytes at a time, millions of times.
 */
static inline bool buf_add(struct buf *b, const void *s, size_t n)
{
    if (n >= b->cap - b->len || (b->max && n > b->max - b->len) || b->is_failed || b->is_over)
        return buf_add_growing(b, s, n);
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
    return true;
}

/* Appends a NUL-terminated string. */
bool buf_adds(struct buf *b, const char *s);

/* Appends printf-formatted text. */
bool buf_addf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Keeps the first `len` bytes (a length read from b->len earlier); clears is_over. */
void buf_truncate(struct buf *b, size_t len);

/* Whether anything failed (memory or the cap). */
static inline bool buf_is_bad(const struct buf *b)
{
    return b->is_failed || b->is_over;
}

/*
 * The bytes (NUL-terminated, "" for an empty buffer; the caller frees them
 * with free()) and their length in *len (may be NULL). The buffer is left
 * empty. NULL if an allocation failed at any point, or now.
 */
char *buf_take(struct buf *b, size_t *len);

/* Wipes and frees the bytes; the buffer is left empty. Accepts a buffer never used. */
void buf_cleanup(struct buf *b);

#endif
