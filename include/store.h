/*
 * The encrypted user store. An opaque `struct store` behind one small API,
 * so that a shared-database backend can sit beside the SQLite one.
 *
 * Scheme: a user's URL token is 32 random bytes (base64url, no padding).
 * The record is found by a keyed BLAKE2b hash of the token (key: a subkey
 * of the master key); the credentials are sealed with XChaCha20-Poly1305
 * under a key derived from the master key and the token, with the record
 * id and key version as associated data. The token itself is never stored.
 *
 * All functions are safe to call from any thread (one mutex guards the
 * SQLite connection). Nothing is ever written half: one transaction per change.
 */
#ifndef TM_STORE_H
#define TM_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "creds.h"
#include "tm_err.h"

/* Length of a URL token as text: base64url of 32 bytes, no padding. */
#define STORE_TOKEN_LEN 43
/* Length of a public user id as text: hex of the first 8 bytes of the record id. */
#define STORE_ID_LEN 16

struct store;

/* What `user list` shows; no secret in here. */
struct store_user_info {
    char id[STORE_ID_LEN + 1];
    const char *label;    /* borrowed, never NULL: valid only during the callback */
    int64_t created_at;   /* Unix seconds */
    int64_t last_used_at; /* Unix seconds, 0 if never */
    bool is_read_only;
    int key_version;
};

typedef void (*store_list_fn)(const struct store_user_info *info, void *ctx);

/* Room for a master key's text: "v<version>:<64 hex>\n" and the NUL. */
#define STORE_MASTER_KEY_TEXT_MAX 80

/*
 * Opens (creating on first use) `data_dir`: the directory (0700) and the
 * SQLite store `store.db` (WAL). The master key comes from `key_file` when
 * it is not NULL or "" (never created; group and others may read it if it
 * lies outside data_dir and only its owner may write it: a Docker secret),
 * else from `data_dir/master.key` (created 0600 on first use, never
 * overwritten, refused if group or others have any access). *created_key,
 * when not NULL, is set to true when this call generated the master key.
 * On success *out owns the store; close it with store_close.
 * Errors: TM_ERR_NOT_FOUND for a key_file that does not exist;
 * TM_ERR_INVALID for a malformed key file; TM_ERR_DENIED for a key file
 * with looser permissions than these, one we may not read, or a key that
 * is not the one the store was made with; TM_ERR_STORE for a store of a
 * newer schema; TM_ERR_IO. Each failure is logged here (a key file by its path).
 */
enum tm_err store_open(const char *data_dir, const char *key_file, struct store **out,
                       bool *created_key);

/*
 * Writes a new random master key in the key file format
 * ("v<version>:<64 hex>\n", NUL-terminated) to `out`, for `turso-mcp
 * keygen`. The caller wipes `out` (sodium_memzero) when done.
 */
enum tm_err store_master_key_new(char out[STORE_MASTER_KEY_TEXT_MAX]);

/* Closes and frees the store, wiping key material; clears *s. Accepts NULL. */
void store_close(struct store **s);

/*
 * Seals `c` under a fresh random token and inserts the record. Writes the
 * token (NUL-terminated) to token_out and the public id to id_out.
 * The caller wipes token_out when done with it.
 */
enum tm_err store_add(struct store *s, const struct creds *c, char token_out[STORE_TOKEN_LEN + 1],
                      char id_out[STORE_ID_LEN + 1]);

/*
 * Looks up the record for `token` and opens it into *out (the caller
 * cleans it with creds_cleanup). id_out, when not NULL, receives the public
 * id. Updates last_used_at (at most once a minute per record).
 * TM_ERR_NOT_FOUND: no such token (also for malformed tokens).
 * TM_ERR_DENIED: a record exists but does not open (tampered, swapped, or
 * sealed under another key version); logged once here with the public id,
 * never the token.
 */
enum tm_err store_find(struct store *s, const char *token, struct creds *out,
                       char id_out[STORE_ID_LEN + 1]);

/* Calls fn for each user, oldest first; fn runs without the lock and may call the store. */
enum tm_err store_list(struct store *s, store_list_fn fn, void *ctx);

/* Deletes the user with public id `id`. TM_ERR_NOT_FOUND if there is none. */
enum tm_err store_revoke(struct store *s, const char *id);

#endif
