/*
 * The credentials codec: a private, versioned byte form of struct creds,
 * which the store seals and later opens. The decoder trusts nothing: it is
 * only ever fed bytes that passed authentication, but a bug or an old
 * format must end in TM_ERR_INVALID, never in a read out of bounds.
 * Pure functions on caller-owned data; safe from any thread.
 */
#include "creds.h"

#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/*
 * Layout, integers little endian:
 *   u8 version      CREDS_FORMAT_VERSION
 *   u8 flags        bit 0: is_read_only; every other bit must be zero
 *   then for each field, in the order of fields_of():
 *     u8 tag        0: NULL, 1: present
 *     u32 length    only when present, at most CREDS_FIELD_MAX
 *     bytes         only when present; no terminator, and no NUL inside
 * Nothing may follow the last field, so each struct has one encoding.
 */
#define CREDS_FORMAT_VERSION 1
#define CREDS_FLAG_READ_ONLY 0x01u
#define CREDS_TAG_NULL       0
#define CREDS_TAG_PRESENT    1
#define CREDS_N_FIELDS       6
/* Turso tokens are JWTs of a few hundred bytes; this leaves room, and bounds the decoder. */
#define CREDS_FIELD_MAX   16384u
#define CREDS_ENCODED_MAX (2u + CREDS_N_FIELDS * (1u + 4u + CREDS_FIELD_MAX))

/* The string members of `c`, in encoding order. */
static void fields_of(struct creds *c, char **fields[CREDS_N_FIELDS])
{
    fields[0] = &c->label;
    fields[1] = &c->db_url;
    fields[2] = &c->db_token;
    fields[3] = &c->platform_token;
    fields[4] = &c->org;
    fields[5] = &c->default_db;
}

static void put_u32le(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v & 0xffu);
    p[1] = (unsigned char)((v >> 8) & 0xffu);
    p[2] = (unsigned char)((v >> 16) & 0xffu);
    p[3] = (unsigned char)((v >> 24) & 0xffu);
}

static uint32_t get_u32le(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

void creds_wipe_free(void *p, size_t len)
{
    if (!p)
        return;
    sodium_memzero(p, len);
    free(p);
}

void creds_cleanup(struct creds *c)
{
    char **fields[CREDS_N_FIELDS];

    if (!c)
        return;
    fields_of(c, fields);
    for (size_t i = 0; i < CREDS_N_FIELDS; i++) {
        if (*fields[i])
            creds_wipe_free(*fields[i], strlen(*fields[i]) + 1);
        *fields[i] = NULL;
    }
    c->is_read_only = false;
}

enum tm_err creds_encode(const struct creds *c, unsigned char **out, size_t *out_len)
{
    /* fields_of() wants a mutable struct; a shallow copy lends it the pointers only. */
    struct creds view;
    char **fields[CREDS_N_FIELDS];
    size_t lens[CREDS_N_FIELDS];
    unsigned char *buf = NULL;
    size_t total = 2;
    size_t pos = 0;

    if (!c || !out || !out_len)
        return TM_ERR_INVALID;
    view = *c;
    fields_of(&view, fields);
    for (size_t i = 0; i < CREDS_N_FIELDS; i++) {
        lens[i] = 0;
        if (!*fields[i]) {
            total += 1;
            continue;
        }
        /* strnlen: a runaway string costs at most the cap to reject. */
        lens[i] = strnlen(*fields[i], CREDS_FIELD_MAX + 1);
        if (lens[i] > CREDS_FIELD_MAX)
            return TM_ERR_TOO_LARGE;
        total += 1 + 4 + lens[i];
    }

    buf = malloc(total);
    if (!buf)
        return TM_ERR_NOMEM;
    buf[pos++] = CREDS_FORMAT_VERSION;
    buf[pos++] = c->is_read_only ? CREDS_FLAG_READ_ONLY : 0;
    for (size_t i = 0; i < CREDS_N_FIELDS; i++) {
        if (!*fields[i]) {
            buf[pos++] = CREDS_TAG_NULL;
            continue;
        }
        buf[pos++] = CREDS_TAG_PRESENT;
        put_u32le(buf + pos, (uint32_t)lens[i]);
        pos += 4;
        memcpy(buf + pos, *fields[i], lens[i]);
        pos += lens[i];
    }
    *out = buf;
    *out_len = total;
    return TM_OK;
}

enum tm_err creds_decode(const unsigned char *buf, size_t len, struct creds *out)
{
    enum tm_err err = TM_ERR_INVALID;
    struct creds tmp = {0};
    char **fields[CREDS_N_FIELDS];
    size_t pos = 0;
    unsigned flags;

    if (!out)
        return TM_ERR_INVALID;
    memset(out, 0, sizeof(*out));
    if (!buf || len < 2 || len > CREDS_ENCODED_MAX)
        goto out;
    if (buf[pos++] != CREDS_FORMAT_VERSION)
        goto out;
    flags = buf[pos++];
    if (flags & ~CREDS_FLAG_READ_ONLY)
        goto out;
    tmp.is_read_only = (flags & CREDS_FLAG_READ_ONLY) != 0;

    fields_of(&tmp, fields);
    for (size_t i = 0; i < CREDS_N_FIELDS; i++) {
        uint32_t field_len;
        char *s;

        /* Every check compares against what is left, so pos never passes len. */
        if (pos >= len)
            goto out;
        if (buf[pos] == CREDS_TAG_NULL) {
            pos++;
            continue;
        }
        if (buf[pos] != CREDS_TAG_PRESENT)
            goto out;
        pos++;
        if (len - pos < 4)
            goto out;
        field_len = get_u32le(buf + pos);
        pos += 4;
        if (field_len > CREDS_FIELD_MAX || field_len > len - pos)
            goto out;
        /* A NUL inside would silently cut the string short of what was sealed. */
        if (memchr(buf + pos, '\0', field_len))
            goto out;
        s = malloc((size_t)field_len + 1);
        if (!s) {
            err = TM_ERR_NOMEM;
            goto out;
        }
        memcpy(s, buf + pos, field_len);
        s[field_len] = '\0';
        *fields[i] = s;
        pos += field_len;
    }
    if (pos != len)
        goto out;

    *out = tmp;
    memset(&tmp, 0, sizeof(tmp));
    err = TM_OK;
out:
    creds_cleanup(&tmp);
    return err;
}
