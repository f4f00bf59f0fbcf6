/*
 * A user's credentials as held in memory while one of their requests runs.
 * Every string is heap-owned by the struct; creds_cleanup() wipes each
 * with sodium_memzero before freeing it. creds_encode/creds_decode give the
 * byte form that the store seals; the encoding is private to creds.c.
 */
#ifndef TM_CREDS_H
#define TM_CREDS_H

#include <stdbool.h>
#include <stddef.h>

#include "tm_err.h"

struct creds {
    char *label;          /* shown in `user list`; not secret */
    char *db_url;         /* database URL with scheme, or NULL */
    char *db_token;       /* database token for db_url, or NULL (local servers need none) */
    char *platform_token; /* Platform API token, or NULL */
    char *org;            /* organization slug for platform_token, or NULL */
    char *default_db;     /* default database name, or NULL */
    bool is_read_only;    /* the URL may only read */
};

/* Wipes and frees every member; the struct itself is the caller's. Accepts NULL. */
void creds_cleanup(struct creds *c);

/*
 * Serialises `c` into a new buffer written to *out (caller frees it with
 * creds_wipe_free after use) and its length to *out_len.
 */
enum tm_err creds_encode(const struct creds *c, unsigned char **out, size_t *out_len);

/* Parses bytes from creds_encode into *out (zeroed first). TM_ERR_INVALID on garbage. */
enum tm_err creds_decode(const unsigned char *buf, size_t len, struct creds *out);

/* sodium_memzero then free; accepts NULL. */
void creds_wipe_free(void *p, size_t len);

#endif
