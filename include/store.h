/*
 * The encrypted user store. An opaque `struct store` behind one small API,
 * so that a shared-database backend can sit beside the SQLite one.
 *
 * Scheme: a user's URL token is 32 random bytes (base64url, no padding).
 * The record is found by a keyed BLAKE2b hash of the token (key: a subkey
 * of the first master key version); the credentials are sealed with
 * XChaCha20-Poly1305 under a key derived from a master key version and the
 * token, with the record id and key version as associated data. The token
 * itself is never stored.
 *
 * Master keys carry versions (`master.key` holds one `v<N>:<hex>` line per
 * version, oldest first; the last is current). A record sealed under an
 * older version is re-sealed under the current one when its owner next
 * uses it. Each user also has a short activity log (tool, database, time,
 * outcome: never SQL, arguments or secrets).
 *
 * All functions are safe to call from any thread (one mutex guards the
 * main SQLite connection; store_find_id reads through connections of its
 * own). Nothing is ever written half: one transaction per change.
 */
#ifndef TM_STORE_H
#define TM_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "creds.h"
#include "tm_err.h"

/* Length of a URL token as text: base64url of 32 bytes, no padding. */
#define STORE_TOKEN_LEN 43
/*
 * Length of a public user id as text: hex of the first 8 bytes of the record
 * id the user was created with. It stays the same when the URL is rotated.
 */
#define STORE_ID_LEN 16
/* Activity entries kept per user; older ones are deleted as new ones come. */
#define STORE_ACTIVITY_MAX 100
/* Longest tool or database name an activity entry keeps. */
#define STORE_ACTIVITY_NAME_MAX 128

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

/* One master key version, for `keys status`. */
struct store_key_info {
    int version;
    int64_t n_records; /* records sealed under this version */
    bool is_current;   /* new records and migrations use this version */
    bool is_loaded;    /* present in master.key (records under it can be opened) */
    bool is_lookup;    /* the version whose subkey finds every record (the first) */
};

typedef void (*store_key_fn)(const struct store_key_info *info, void *ctx);

/* One activity entry; every string is borrowed, valid only during the callback. */
struct store_activity_entry {
    int64_t at;           /* Unix seconds */
    const char *tool;     /* never NULL */
    const char *database; /* "" when the call named none */
    const char *outcome;  /* "ok", "error", "cancelled", ... */
};

typedef void (*store_activity_fn)(const struct store_activity_entry *e, void *ctx);

/* One problem found by store_check: a secret-free sentence. */
typedef void (*store_problem_fn)(const char *problem, void *ctx);

/* Room for a master key's text: "v<version>:<64 hex>\n" and the NUL. */
#define STORE_MASTER_KEY_TEXT_MAX 80

/*
 * Opens (creating on first use) `data_dir`: the directory (0700) and the
 * SQLite store `store.db` (WAL). The master keys come from `key_file` when
 * it is not NULL or "" (never created nor written; group and others may
 * read it if it lies outside data_dir and only its owner may write it: a
 * Docker secret), else from `data_dir/master.key` (created 0600 on first
 * use, never overwritten, refused if group or others have any access).
 * *created_key, when not NULL, is set to true when this call generated the
 * master key. On success *out owns the store; close it with store_close.
 * Errors: TM_ERR_NOT_FOUND for a key_file that does not exist;
 * TM_ERR_INVALID for a malformed key file (versions must increase);
 * TM_ERR_DENIED for a key file with looser permissions than these, one we
 * may not read, a version whose key is not the one the store recorded, or a
 * file that does not start with the store's first version (which finds
 * every record); TM_ERR_STORE for a store of a newer schema; TM_ERR_IO.
 * Stores of schema 1 are upgraded. Each failure is logged here.
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
 * id. Updates last_used_at (at most once a minute per record) when the
 * record opens: one that does not open does not count as used. A record
 * sealed under an older master key version is opened with that version's
 * key and re-sealed under the current one (best effort: the find succeeds
 * either way). Notices a master.key rewritten by another process.
 * TM_ERR_NOT_FOUND: no such token (also for malformed tokens).
 * TM_ERR_DENIED: a record exists but does not open (tampered, swapped, or
 * sealed under a version master.key does not hold); logged once here with
 * the public id, never the token.
 */
enum tm_err store_find(struct store *s, const char *token, struct creds *out,
                       char id_out[STORE_ID_LEN + 1]);

/* A user's record found by its token, still sealed (see store_find_id). */
struct store_sealed;

/*
 * Whether `token` names a live record, without opening it: the check every
 * request to a user's URL makes, most of which (listing tools, ping,
 * notifications) need no credentials. Writes the public id to id_out.
 * A revocation or rotation committed by any process before the call is
 * seen by it: the record is read from SQLite, or taken from a copy read
 * earlier while SQLite's WAL-index header shows that nothing has been
 * committed since. That copy is the row as in the file (credentials still
 * sealed), never a token or a credential in the clear.
 * When sealed_out is NULL the check counts as a use (last_used_at, as
 * store_find). Otherwise sealed_out receives the record as read (the
 * caller frees it with store_sealed_free), so that store_open_sealed can
 * open the credentials later in the same request without reading the
 * store again; it holds the token's bytes, never the credentials in the
 * clear. The use is then the caller's to count, once it knows whether the
 * request opens the record: store_open_sealed counts it if the record
 * opens, store_count_use for a request that never opens it.
 * A record that exists but would not open (tampered, or sealed under a key
 * version master.key lacks) is found here; store_open_sealed refuses it,
 * and so it never counts as used by a request that needed it open.
 * TM_ERR_NOT_FOUND: no such token (also for malformed tokens).
 * Thread: any; concurrent calls use separate read connections.
 */
enum tm_err store_find_id(struct store *s, const char *token, char id_out[STORE_ID_LEN + 1],
                          struct store_sealed **sealed_out);

/*
 * Opens a record from store_find_id into *out (the caller cleans it with
 * creds_cleanup), as store_find does, re-sealing it under the current
 * master key version if it is older, and counting the use when it opens.
 * TM_ERR_DENIED as for store_find.
 */
enum tm_err store_open_sealed(struct store *s, const struct store_sealed *sealed,
                              struct creds *out);

/*
 * Counts a use of a record from store_find_id (last_used_at, at most once
 * a minute) for a request that never opens it (listing tools, ping,
 * notifications): there the URL check is the whole use. No decrypting;
 * best effort, as every update of last_used_at.
 */
void store_count_use(struct store *s, const struct store_sealed *sealed);

/*
 * How many URL checks (store_find_id, store_find) were answered from the
 * recently seen rows without asking SQLite: a cache nothing else shows,
 * so that tests can tell it works.
 */
uint64_t store_url_cache_hits(struct store *s);

/* Wipes and frees what store_find_id gave; clears *p. Accepts NULL. */
void store_sealed_free(struct store_sealed **p);

/* Calls fn for each user, oldest first; fn runs without the lock and may call the store. */
enum tm_err store_list(struct store *s, store_list_fn fn, void *ctx);

/* How many users the store holds, into *n. */
enum tm_err store_count_users(struct store *s, int64_t *n);

/*
 * Deletes the user with public id `id`, and their activity, in one
 * transaction. TM_ERR_NOT_FOUND if there is none.
 */
enum tm_err store_revoke(struct store *s, const char *id);

/*
 * Gives the URL `old_token` a new secret: in one transaction the record is
 * opened with the old token, sealed again under a fresh token (a new record
 * id, the current key version) and the old record id is gone, so the old
 * token stops working at once. The public id, label, credentials and
 * activity stay. Writes the new token to new_token_out (the caller wipes
 * it) and the public id to id_out (may be NULL).
 * TM_ERR_NOT_FOUND: no such token (or it was rotated or revoked meanwhile).
 * TM_ERR_DENIED: the record exists but does not open.
 */
enum tm_err store_rotate(struct store *s, const char *old_token,
                         char new_token_out[STORE_TOKEN_LEN + 1], char id_out[STORE_ID_LEN + 1]);

/*
 * Adds master key version N+1 to master.key and makes it current: the file
 * is written whole to a temporary name (0600) with every old line kept,
 * then renamed over master.key; its key check is recorded in the same
 * store transaction. Records move to it as their owners use them; a server
 * that has the store open notices the new file within a few seconds.
 * *version_out (may be NULL) receives N+1. TM_ERR_TOO_LARGE when the file
 * already holds the most versions it may; TM_ERR_IO when it cannot be
 * written (a read-only mounted secret, say).
 */
enum tm_err store_rotate_master_key(struct store *s, int *version_out);

/*
 * Calls fn for every key version that master.key or the store knows, oldest
 * first, with the number of records sealed under it.
 */
enum tm_err store_key_status(struct store *s, store_key_fn fn, void *ctx);

/*
 * Checks what can be checked without users' tokens: SQLite's integrity
 * check; every row's structure (id lengths and form, known key versions,
 * sealed blob long enough to hold a nonce, a tag and credentials, flags);
 * each master key version in master.key against its recorded key check, and
 * that the first version (which finds records) is the store's; unique
 * public ids; activity rows of existing users only, none over the cap.
 * Whether a sealed blob really opens needs its token, so it is not checked
 * here (a tampered blob shows when its owner calls). Calls fn once per
 * problem (may be NULL); *n_problems (may be NULL) gets their count.
 * Returns TM_OK when the check ran (problems or not).
 */
enum tm_err store_check(struct store *s, store_problem_fn fn, void *ctx, size_t *n_problems);

/*
 * Appends an entry to the activity of user `id` and drops all but their
 * STORE_ACTIVITY_MAX newest, in one transaction. `tool` is a name of at
 * most STORE_ACTIVITY_NAME_MAX bytes of [A-Za-z0-9_.-], `database` the
 * same or NULL/"" for none, `outcome` a word of [a-z_] (at most 16).
 * Nothing else is recorded: never SQL, arguments or secrets.
 * TM_ERR_INVALID for names outside that form; TM_ERR_NOT_FOUND when the
 * user does not exist (revoked meanwhile). Written without waiting for the
 * disk (a crash may lose the newest entries, never a user record).
 */
enum tm_err store_log_activity(struct store *s, const char *id, const char *tool,
                               const char *database, const char *outcome, int64_t at);

/* One entry for store_log_activities; every string is borrowed for the call. */
struct store_activity_item {
    const char *id;       /* public user id */
    const char *tool;     /* forms as for store_log_activity */
    const char *database; /* NULL or "" for none */
    const char *outcome;
    int64_t at; /* Unix seconds */
};

/*
 * store_log_activity for many entries in one transaction (one lock, one
 * commit): entries of malformed names or of users revoked meanwhile are
 * skipped. *n_logged (may be NULL) gets how many were written.
 */
enum tm_err store_log_activities(struct store *s, const struct store_activity_item *items,
                                 size_t n_items, size_t *n_logged);

/* Calls fn for the activity of user `id`, newest first; fn runs without the lock. */
enum tm_err store_activity(struct store *s, const char *id, store_activity_fn fn, void *ctx);

#endif
