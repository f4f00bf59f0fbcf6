/*
 * The SQLite backend of the user store: `store.db` (WAL) beside the master
 * key file `master.key`, both in the data directory, unless the key comes
 * from a file of the operator's (a Docker secret). Token, record id and
 * sealing are done here with libsodium; the credentials' byte form comes
 * from creds.c. Any thread may call in: one mutex serialises the single
 * SQLite connection, and crypto runs outside it.
 */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define MASTER_KEY_FILE "master.key"
#define STORE_DB_FILE   "store.db"
#define MASTER_KEY_LEN  32
/* "v<version>:<64 hex>\n" is under 80 bytes; a longer file is not one of ours. */
#define MASTER_KEY_FILE_MAX 128
#define MASTER_KEY_VERSION  1
/* Nine digits keep the version inside an int and inside four bytes of associated data. */
#define MASTER_KEY_VERSION_DIGITS 9
#define TOKEN_BYTES               32
#define RECORD_ID_LEN             crypto_generichash_BYTES
#define SUBKEY_LEN                crypto_generichash_KEYBYTES
#define AD_LEN                    (RECORD_ID_LEN + 4)
#define NONCE_LEN                 crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define TAG_LEN                   crypto_aead_xchacha20poly1305_ietf_ABYTES
#define BUSY_TIMEOUT_MS           5000
/* last_used_at is for `user list`; a write per request would serialise every request. */
#define TOUCH_INTERVAL_S 60
/* A public id is 64 bits, so a collision is all but impossible; retry a few times anyway. */
#define ADD_ATTEMPTS   4
#define SCHEMA_VERSION 1

/* crypto_kdf contexts: exactly crypto_kdf_CONTEXTBYTES characters, one per purpose. */
#define KDF_CTX_LOOKUP "tmlookup"
#define KDF_CTX_SEAL   "tmsealer"
#define KDF_CTX_CHECK  "tmkcheck"
_Static_assert(sizeof(KDF_CTX_LOOKUP) - 1 == crypto_kdf_CONTEXTBYTES, "kdf context length");
_Static_assert(sizeof(KDF_CTX_SEAL) - 1 == crypto_kdf_CONTEXTBYTES, "kdf context length");
_Static_assert(sizeof(KDF_CTX_CHECK) - 1 == crypto_kdf_CONTEXTBYTES, "kdf context length");
_Static_assert(MASTER_KEY_LEN == crypto_kdf_KEYBYTES, "master key is a kdf key");
_Static_assert(SUBKEY_LEN == crypto_aead_xchacha20poly1305_ietf_KEYBYTES, "seal key size");
_Static_assert(STORE_TOKEN_LEN == 43, "base64url of 32 bytes without padding");
_Static_assert(STORE_MASTER_KEY_TEXT_MAX >=
                   1 + MASTER_KEY_VERSION_DIGITS + 1 + 2 * MASTER_KEY_LEN + 2,
               "room for the longest key text");

struct store {
    /*
     * Guards db and every prepared statement. Each public function takes it
     * around its SQL only: never during crypto, never while calling back.
     */
    pthread_mutex_t lock;
    bool has_lock; /* lock was initialised (store_close also frees half-opened stores) */
    sqlite3 *db;
    sqlite3_stmt *st_insert;
    sqlite3_stmt *st_find;
    sqlite3_stmt *st_touch;
    sqlite3_stmt *st_list;
    sqlite3_stmt *st_revoke;
    int key_version;                      /* version of the master key in master.key */
    unsigned char lookup_key[SUBKEY_LEN]; /* keys the hash from token to record id */
    unsigned char seal_key[SUBKEY_LEN];   /* keys the hash from token to sealing key */
};

/*
 * schema_steps[v] takes a store from user_version v to v + 1; append only.
 * users.sealed is nonce || ciphertext; label and is_read_only are kept in
 * the clear as well (they are also sealed) so that `user list` needs no token.
 */
static const char *const schema_steps[SCHEMA_VERSION] = {
    "CREATE TABLE users ("
    " id INTEGER PRIMARY KEY,"
    " record_id BLOB NOT NULL UNIQUE,"
    " public_id TEXT NOT NULL UNIQUE,"
    " key_version INTEGER NOT NULL,"
    " label TEXT,"
    " is_read_only INTEGER NOT NULL,"
    " sealed BLOB NOT NULL,"
    " created_at INTEGER NOT NULL,"
    " last_used_at INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE master_keys ("
    " version INTEGER PRIMARY KEY,"
    " key_check BLOB NOT NULL);",
};

/* Logs an SQLite failure (the message names no bound value) and maps it. Call under lock. */
static enum tm_err sql_fail(sqlite3 *db, const char *op, int rc)
{
    log_msg(LOG_ERROR, "event=store_sql_failed op=%s rc=%d err=\"%s\"", op, rc,
            db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
    return (rc & 0xff) == SQLITE_NOMEM ? TM_ERR_NOMEM : TM_ERR_STORE;
}

static enum tm_err exec_sql(sqlite3 *db, const char *op, const char *sql)
{
    int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return sql_fail(db, op, rc);
    return TM_OK;
}

static void lock(struct store *s)
{
    pthread_mutex_lock(&s->lock);
}

static void unlock(struct store *s)
{
    pthread_mutex_unlock(&s->lock);
}

static void put_u32le(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v & 0xffu);
    p[1] = (unsigned char)((v >> 8) & 0xffu);
    p[2] = (unsigned char)((v >> 16) & 0xffu);
    p[3] = (unsigned char)((v >> 24) & 0xffu);
}

static enum tm_err write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return TM_ERR_IO;
        buf += n;
        len -= (size_t)n;
    }
    return TM_OK;
}

/* ---- master key file -------------------------------------------------- */

/* Parses "v<version>:<64 hex>\n" strictly: one format, one meaning. */
static enum tm_err parse_master_key(const char *text, size_t len, int *version,
                                    unsigned char key[MASTER_KEY_LEN])
{
    size_t pos = 1;
    size_t bin_len = 0;
    const char *end = NULL;
    int v = 0;

    if (len < 2 || text[0] != 'v' || text[1] < '1' || text[1] > '9')
        return TM_ERR_INVALID;
    while (pos < len && text[pos] >= '0' && text[pos] <= '9') {
        if (pos > MASTER_KEY_VERSION_DIGITS)
            return TM_ERR_INVALID;
        v = v * 10 + (text[pos] - '0');
        pos++;
    }
    if (pos >= len || text[pos] != ':')
        return TM_ERR_INVALID;
    pos++;
    if (len - pos != 2 * MASTER_KEY_LEN + 1 || text[len - 1] != '\n')
        return TM_ERR_INVALID;
    if (sodium_hex2bin(key, MASTER_KEY_LEN, text + pos, 2 * MASTER_KEY_LEN, NULL, &bin_len, &end) !=
            0 ||
        bin_len != MASTER_KEY_LEN || end != text + pos + 2 * MASTER_KEY_LEN) {
        sodium_memzero(key, MASTER_KEY_LEN);
        return TM_ERR_INVALID;
    }
    *version = v;
    return TM_OK;
}

enum tm_err store_master_key_new(char out[STORE_MASTER_KEY_TEXT_MAX])
{
    unsigned char key[MASTER_KEY_LEN];
    int n = snprintf(out, STORE_MASTER_KEY_TEXT_MAX, "v%d:", MASTER_KEY_VERSION);

    randombytes_buf(key, sizeof(key));
    sodium_bin2hex(out + n, STORE_MASTER_KEY_TEXT_MAX - (size_t)n, key, sizeof(key));
    strcat(out, "\n");
    sodium_memzero(key, sizeof(key));
    return TM_OK;
}

/*
 * Writes a fresh key to a temporary file, then links it to master.key.
 * link(), unlike rename(), fails when master.key already exists, so an
 * existing key is never replaced, and a crash never leaves half a key under
 * the real name. TM_ERR_EXISTS: another process won the race; read theirs.
 */
static enum tm_err create_master_key(int dir_fd)
{
    enum tm_err err = TM_ERR_IO;
    char text[STORE_MASTER_KEY_TEXT_MAX];
    char tmp_name[64];
    int fd = -1;
    bool has_tmp = false;

    store_master_key_new(text);
    snprintf(tmp_name, sizeof(tmp_name), MASTER_KEY_FILE ".%08" PRIx32 "%08" PRIx32 ".tmp",
             randombytes_random(), randombytes_random());

    fd = openat(dir_fd, tmp_name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        log_msg(LOG_ERROR, "event=store_master_key_create_failed errno=%d err=\"%s\"", errno,
                strerror(errno));
        goto out;
    }
    has_tmp = true;
    /* The umask can only clear bits, but be explicit about what the file is. */
    if (fchmod(fd, 0600) != 0 || write_all(fd, text, strlen(text)) != TM_OK || fsync(fd) != 0) {
        log_msg(LOG_ERROR, "event=store_master_key_create_failed errno=%d err=\"%s\"", errno,
                strerror(errno));
        goto out;
    }
    if (close(fd) != 0) {
        fd = -1;
        log_msg(LOG_ERROR, "event=store_master_key_create_failed errno=%d err=\"%s\"", errno,
                strerror(errno));
        goto out;
    }
    fd = -1;
    if (linkat(dir_fd, tmp_name, dir_fd, MASTER_KEY_FILE, 0) != 0) {
        if (errno == EEXIST) {
            err = TM_ERR_EXISTS;
            goto out;
        }
        log_msg(LOG_ERROR, "event=store_master_key_create_failed errno=%d err=\"%s\"", errno,
                strerror(errno));
        goto out;
    }
    err = TM_OK;
out:
    if (fd >= 0)
        close(fd);
    if (has_tmp)
        unlinkat(dir_fd, tmp_name, 0);
    /* The link and the unlink must reach the disk before we hand out tokens. */
    if (err == TM_OK && fsync(dir_fd) != 0)
        err = TM_ERR_IO;
    sodium_memzero(text, sizeof(text));
    return err;
}

/*
 * Whether `path` resolves to a name inside the directory `dir_path`
 * resolves to. When either does not resolve, says true: the stricter answer.
 */
static bool is_inside(const char *path, const char *dir_path)
{
    char *file = realpath(path, NULL);
    char *dir = realpath(dir_path, NULL);
    size_t dir_len = dir ? strlen(dir) : 0;
    bool inside = !file || !dir || strcmp(dir, "/") == 0 ||
                  (strncmp(file, dir, dir_len) == 0 && file[dir_len] == '/');
    free(file);
    free(dir);
    return inside;
}

/*
 * Checks the key file behind `fd` and reads the key from it. `is_shared_ok`
 * lets group and others read the file, never write it (see load_master_key).
 */
static enum tm_err read_master_key(int fd, bool is_shared_ok, int *version,
                                   unsigned char key[MASTER_KEY_LEN])
{
    enum tm_err err = TM_ERR_IO;
    char text[MASTER_KEY_FILE_MAX + 1];
    size_t len = 0;
    struct stat st;
    mode_t refused = is_shared_ok ? (S_IWGRP | S_IWOTH) : (S_IRWXG | S_IRWXO);

    if (fstat(fd, &st) != 0)
        goto out;
    if (!S_ISREG(st.st_mode)) {
        log_msg(LOG_ERROR, "event=store_master_key_rejected reason=not_a_file");
        err = TM_ERR_INVALID;
        goto out;
    }
    if (st.st_mode & refused) {
        log_msg(LOG_ERROR, "event=store_master_key_rejected reason=permissions mode=%04o",
                (unsigned)(st.st_mode & 07777));
        err = TM_ERR_DENIED;
        goto out;
    }
    while (len < sizeof(text)) {
        ssize_t n = read(fd, text + len, sizeof(text) - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            goto out;
        if (n == 0)
            break;
        len += (size_t)n;
    }
    if (len > MASTER_KEY_FILE_MAX || parse_master_key(text, len, version, key) != TM_OK) {
        log_msg(LOG_ERROR, "event=store_master_key_rejected reason=malformed");
        err = TM_ERR_INVALID;
        goto out;
    }
    err = TM_OK;
out:
    sodium_memzero(text, sizeof(text));
    return err;
}

/*
 * Reads the master key from `key_file`, which is never created. A file we
 * did not make may be readable by group and others, if it lies outside the
 * data directory and none but its owner may write it: Docker mounts
 * secrets 0444 (swarm) or with the host file's mode (compose), as it cannot
 * know which user the container runs as, and the container holds no other
 * user to read it. The key alone opens no record without the users' URLs.
 * Inside the data directory, where we create keys 0600, a looser mode
 * means a copy went wrong, and is refused as for master.key.
 */
static enum tm_err load_key_file(const char *key_file, const char *data_dir, int *version,
                                 unsigned char key[MASTER_KEY_LEN])
{
    /* No O_NOFOLLOW: /run/secrets entries may be symlinks; fstat checks the target. */
    int fd = open(key_file, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        log_msg(LOG_ERROR, "event=store_master_key_open_failed path=\"%s\" errno=%d err=\"%s\"",
                key_file, e, strerror(e));
        return e == ENOENT ? TM_ERR_NOT_FOUND : e == EACCES ? TM_ERR_DENIED : TM_ERR_IO;
    }
    enum tm_err err = read_master_key(fd, !is_inside(key_file, data_dir), version, key);
    close(fd);
    return err;
}

/* Reads master.key, creating it first if it does not exist. */
static enum tm_err load_master_key(int dir_fd, int *version, unsigned char key[MASTER_KEY_LEN],
                                   bool *created)
{
    enum tm_err err = TM_ERR_IO;
    int fd = -1;

    /* Twice at most: if another process creates the key between our two opens, read theirs. */
    for (int attempt = 0; attempt < 2 && fd < 0; attempt++) {
        /* No O_NOFOLLOW: a key mounted as a secret is often a symlink; fstat checks the target. */
        fd = openat(dir_fd, MASTER_KEY_FILE, O_RDONLY | O_CLOEXEC);
        if (fd >= 0)
            break;
        if (errno != ENOENT) {
            log_msg(LOG_ERROR, "event=store_master_key_open_failed errno=%d err=\"%s\"", errno,
                    strerror(errno));
            goto out;
        }
        err = create_master_key(dir_fd);
        if (err == TM_OK)
            *created = true;
        else if (err != TM_ERR_EXISTS)
            goto out;
        err = TM_ERR_IO;
    }
    if (fd < 0)
        goto out;
    err = read_master_key(fd, false, version, key);
out:
    if (fd >= 0)
        close(fd);
    return err;
}

/* ---- tokens and records ----------------------------------------------- */

static bool is_base64url(char ch)
{
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
           ch == '-' || ch == '_';
}

/*
 * Decodes a URL token. Only the canonical encoding of 32 bytes passes
 * (sodium also rejects stray low bits in the last character), so one set of
 * token bytes has exactly one text form.
 */
static bool token_decode(const char *token, unsigned char bin[TOKEN_BYTES])
{
    size_t bin_len = 0;
    const char *end = NULL;

    if (!token || strnlen(token, STORE_TOKEN_LEN + 1) != STORE_TOKEN_LEN)
        return false;
    for (size_t i = 0; i < STORE_TOKEN_LEN; i++) {
        if (!is_base64url(token[i]))
            return false;
    }
    if (sodium_base642bin(bin, TOKEN_BYTES, token, STORE_TOKEN_LEN, NULL, &bin_len, &end,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
        bin_len != TOKEN_BYTES || end != token + STORE_TOKEN_LEN) {
        sodium_memzero(bin, TOKEN_BYTES);
        return false;
    }
    return true;
}

/*
 * From the token bytes: the record id (lookup subkey), its public prefix,
 * and, when seal_key is not NULL, the record's sealing key (seal subkey).
 */
static void derive_record(const struct store *s, const unsigned char token[TOKEN_BYTES],
                          unsigned char record_id[RECORD_ID_LEN], char public_id[STORE_ID_LEN + 1],
                          unsigned char seal_key[SUBKEY_LEN])
{
    crypto_generichash(record_id, RECORD_ID_LEN, token, TOKEN_BYTES, s->lookup_key,
                       sizeof(s->lookup_key));
    sodium_bin2hex(public_id, STORE_ID_LEN + 1, record_id, STORE_ID_LEN / 2);
    if (seal_key)
        crypto_generichash(seal_key, SUBKEY_LEN, token, TOKEN_BYTES, s->seal_key,
                           sizeof(s->seal_key));
}

/* Associated data: binds a sealed blob to its record and its key version. */
static void build_ad(unsigned char ad[AD_LEN], const unsigned char record_id[RECORD_ID_LEN],
                     int key_version)
{
    memcpy(ad, record_id, RECORD_ID_LEN);
    put_u32le(ad + RECORD_ID_LEN, (uint32_t)key_version);
}

static bool is_public_id(const char *id)
{
    if (!id || strnlen(id, STORE_ID_LEN + 1) != STORE_ID_LEN)
        return false;
    for (size_t i = 0; i < STORE_ID_LEN; i++) {
        if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
            return false;
    }
    return true;
}

/* ---- opening ------------------------------------------------------------ */

/*
 * Compares the master key with the check value recorded for its version,
 * so that a wrong or regenerated key stops the server at startup instead of
 * turning every user away. Records it on first use of a version.
 * Runs inside the schema transaction.
 */
static enum tm_err check_master_key(sqlite3 *db, int version, const unsigned char check[SUBKEY_LEN])
{
    enum tm_err err = TM_ERR_STORE;
    sqlite3_stmt *st = NULL;
    int rc;

    rc = sqlite3_prepare_v2(db, "SELECT key_check FROM master_keys WHERE version = ?1", -1, &st,
                            NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int(st, 1, version);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const void *stored = sqlite3_column_blob(st, 0);
        if (!stored || sqlite3_column_bytes(st, 0) != SUBKEY_LEN ||
            sodium_memcmp(stored, check, SUBKEY_LEN) != 0) {
            log_msg(LOG_ERROR, "event=store_master_key_rejected reason=mismatch key_version=%d",
                    version);
            err = TM_ERR_DENIED;
            goto out;
        }
        err = TM_OK;
        goto out;
    }
    if (rc != SQLITE_DONE) {
        err = sql_fail(db, "key_check", rc);
        goto out;
    }
    sqlite3_finalize(st);
    st = NULL;

    /* No check value but records sealed under this version: the store was edited. */
    rc =
        sqlite3_prepare_v2(db, "SELECT 1 FROM users WHERE key_version = ?1 LIMIT 1", -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int(st, 1, version);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        log_msg(LOG_ERROR, "event=store_master_key_rejected reason=check_missing key_version=%d",
                version);
        err = TM_ERR_DENIED;
        goto out;
    }
    if (rc != SQLITE_DONE) {
        err = sql_fail(db, "key_check", rc);
        goto out;
    }
    sqlite3_finalize(st);
    st = NULL;

    rc = sqlite3_prepare_v2(db, "INSERT INTO master_keys (version, key_check) VALUES (?1, ?2)", -1,
                            &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int(st, 1, version);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_blob(st, 2, check, SUBKEY_LEN, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc != SQLITE_DONE) {
        err = sql_fail(db, "key_check", rc);
        goto out;
    }
    err = TM_OK;
out:
    sqlite3_finalize(st);
    return err;
}

/* Brings the schema to SCHEMA_VERSION and checks the key, in one transaction. */
static enum tm_err prepare_schema(sqlite3 *db, int key_version,
                                  const unsigned char check[SUBKEY_LEN])
{
    enum tm_err err = TM_ERR_STORE;
    sqlite3_stmt *st = NULL;
    bool in_tx = false;
    int user_version;
    int rc;

    /* IMMEDIATE: two processes opening a new store must not both create it. */
    err = exec_sql(db, "begin", "BEGIN IMMEDIATE");
    if (err != TM_OK)
        goto out;
    in_tx = true;

    rc = sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL);
    if (rc != SQLITE_OK) {
        err = sql_fail(db, "user_version", rc);
        goto out;
    }
    rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        err = sql_fail(db, "user_version", rc);
        goto out;
    }
    user_version = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    st = NULL;
    if (user_version < 0 || user_version > SCHEMA_VERSION) {
        log_msg(LOG_ERROR, "event=store_schema_unknown schema_version=%d supported=%d",
                user_version, SCHEMA_VERSION);
        err = TM_ERR_STORE;
        goto out;
    }
    for (int v = user_version; v < SCHEMA_VERSION; v++) {
        err = exec_sql(db, "migrate", schema_steps[v]);
        if (err != TM_OK)
            goto out;
    }
    if (user_version != SCHEMA_VERSION) {
        char sql[64];
        snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", SCHEMA_VERSION);
        err = exec_sql(db, "migrate", sql);
        if (err != TM_OK)
            goto out;
    }
    err = check_master_key(db, key_version, check);
    if (err != TM_OK)
        goto out;
    err = exec_sql(db, "commit", "COMMIT");
    if (err != TM_OK)
        goto out;
    in_tx = false;
out:
    sqlite3_finalize(st);
    if (in_tx)
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return err;
}

static enum tm_err prepare_stmt(sqlite3 *db, const char *sql, sqlite3_stmt **st)
{
    int rc = sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL);
    if (rc != SQLITE_OK)
        return sql_fail(db, "prepare", rc);
    return TM_OK;
}

static enum tm_err open_db(struct store *s, int dir_fd, const char *data_dir,
                           const unsigned char check[SUBKEY_LEN])
{
    enum tm_err err = TM_ERR_STORE;
    sqlite3_stmt *st = NULL;
    char *path = NULL;
    size_t path_len;
    int fd;
    int rc;

    /* SQLite would create the file with the umask's mode; -wal and -shm copy the file's. */
    fd = openat(dir_fd, STORE_DB_FILE, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        log_msg(LOG_ERROR, "event=store_db_open_failed errno=%d err=\"%s\"", errno,
                strerror(errno));
        err = TM_ERR_IO;
        goto out;
    }
    close(fd);

    path_len = strlen(data_dir) + 1 + strlen(STORE_DB_FILE) + 1;
    path = malloc(path_len);
    if (!path) {
        err = TM_ERR_NOMEM;
        goto out;
    }
    snprintf(path, path_len, "%s/%s", data_dir, STORE_DB_FILE);

    /* NOMUTEX: s->lock already serialises every use of this connection. */
    rc = sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        err = sql_fail(s->db, "open", rc);
        goto out;
    }
    sqlite3_extended_result_codes(s->db, 1);
    sqlite3_busy_timeout(s->db, BUSY_TIMEOUT_MS);

    /* journal_mode answers with the mode it got; anything but wal means no WAL. */
    rc = sqlite3_prepare_v2(s->db, "PRAGMA journal_mode=WAL", -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        err = sql_fail(s->db, "journal_mode", rc);
        goto out;
    }
    if (!sqlite3_column_text(st, 0) ||
        sqlite3_stricmp((const char *)sqlite3_column_text(st, 0), "wal") != 0) {
        log_msg(LOG_ERROR, "event=store_db_open_failed reason=no_wal");
        err = TM_ERR_STORE;
        goto out;
    }
    sqlite3_finalize(st);
    st = NULL;
    /*
     * FULL: a URL we handed out must survive a power cut. secure_delete: a
     * revoked record's bytes (its label, in particular) are overwritten.
     */
    err = exec_sql(s->db, "pragma", "PRAGMA synchronous=FULL; PRAGMA secure_delete=ON");
    if (err != TM_OK)
        goto out;

    err = prepare_schema(s->db, s->key_version, check);
    if (err != TM_OK)
        goto out;

    err = prepare_stmt(s->db,
                       "INSERT INTO users (record_id, public_id, key_version, label,"
                       " is_read_only, sealed, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                       &s->st_insert);
    if (err == TM_OK)
        err = prepare_stmt(s->db,
                           "SELECT key_version, sealed, last_used_at FROM users"
                           " WHERE record_id = ?1",
                           &s->st_find);
    if (err == TM_OK)
        err = prepare_stmt(s->db,
                           "UPDATE users SET last_used_at = ?2"
                           " WHERE record_id = ?1 AND last_used_at <= ?2 - ?3",
                           &s->st_touch);
    if (err == TM_OK)
        err = prepare_stmt(s->db,
                           "SELECT public_id, label, created_at, last_used_at, is_read_only,"
                           " key_version FROM users ORDER BY created_at, id",
                           &s->st_list);
    if (err == TM_OK)
        err = prepare_stmt(s->db, "DELETE FROM users WHERE public_id = ?1", &s->st_revoke);
out:
    sqlite3_finalize(st);
    free(path);
    return err;
}

/* Creates data_dir (0700) if needed and opens it, so that later names resolve inside it. */
static enum tm_err open_data_dir(const char *data_dir, int *dir_fd)
{
    struct stat st;
    int fd;

    if (mkdir(data_dir, 0700) != 0 && errno != EEXIST) {
        log_msg(LOG_ERROR, "event=store_data_dir_failed errno=%d err=\"%s\"", errno,
                strerror(errno));
        return TM_ERR_IO;
    }
    fd = open(data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        log_msg(LOG_ERROR, "event=store_data_dir_failed errno=%d err=\"%s\"", errno,
                strerror(errno));
        return TM_ERR_IO;
    }
    /* An existing directory is the operator's; say so if others can look in, but go on. */
    if (fstat(fd, &st) == 0 && (st.st_mode & (S_IRWXG | S_IRWXO)))
        log_msg(LOG_WARN, "event=store_data_dir_open_to_others mode=%04o",
                (unsigned)(st.st_mode & 07777));
    *dir_fd = fd;
    return TM_OK;
}

enum tm_err store_open(const char *data_dir, const char *key_file, struct store **out,
                       bool *created_key)
{
    enum tm_err err = TM_ERR_INTERNAL;
    struct store *s = NULL;
    unsigned char master[MASTER_KEY_LEN];
    unsigned char check[SUBKEY_LEN];
    bool created = false;
    int dir_fd = -1;

    if (!data_dir || !*data_dir || !out)
        return TM_ERR_INVALID;
    s = calloc(1, sizeof(*s));
    if (!s)
        return TM_ERR_NOMEM;
    if (pthread_mutex_init(&s->lock, NULL) != 0)
        goto out;
    s->has_lock = true;

    err = open_data_dir(data_dir, &dir_fd);
    if (err != TM_OK)
        goto out;
    if (key_file && *key_file)
        err = load_key_file(key_file, data_dir, &s->key_version, master);
    else
        err = load_master_key(dir_fd, &s->key_version, master, &created);
    if (err != TM_OK)
        goto out;
    /* Keep only the subkeys: the master key itself is wiped below. */
    if (crypto_kdf_derive_from_key(s->lookup_key, SUBKEY_LEN, 1, KDF_CTX_LOOKUP, master) != 0 ||
        crypto_kdf_derive_from_key(s->seal_key, SUBKEY_LEN, 1, KDF_CTX_SEAL, master) != 0 ||
        crypto_kdf_derive_from_key(check, SUBKEY_LEN, 1, KDF_CTX_CHECK, master) != 0) {
        err = TM_ERR_CRYPTO;
        goto out;
    }
    err = open_db(s, dir_fd, data_dir, check);
    if (err != TM_OK)
        goto out;

    *out = s;
    s = NULL;
    if (created_key)
        *created_key = created;
    err = TM_OK;
out:
    if (dir_fd >= 0)
        close(dir_fd);
    sodium_memzero(master, sizeof(master));
    sodium_memzero(check, sizeof(check));
    store_close(&s);
    return err;
}

void store_close(struct store **sp)
{
    struct store *s;

    if (!sp || !*sp)
        return;
    s = *sp;
    sqlite3_finalize(s->st_insert);
    sqlite3_finalize(s->st_find);
    sqlite3_finalize(s->st_touch);
    sqlite3_finalize(s->st_list);
    sqlite3_finalize(s->st_revoke);
    /* All statements are finalised, so close cannot be busy; the last close folds the WAL in. */
    if (sqlite3_close(s->db) != SQLITE_OK)
        log_msg(LOG_ERROR, "event=store_close_failed err=\"%s\"", sqlite3_errmsg(s->db));
    if (s->has_lock)
        pthread_mutex_destroy(&s->lock);
    sodium_memzero(s, sizeof(*s));
    free(s);
    *sp = NULL;
}

/* ---- records ------------------------------------------------------------ */

/* TM_ERR_EXISTS when the record or public id is taken (the caller draws a new token). */
static enum tm_err insert_record(struct store *s, const unsigned char record_id[RECORD_ID_LEN],
                                 const char *public_id, const struct creds *c,
                                 const unsigned char *sealed, size_t sealed_len, int64_t now)
{
    enum tm_err err = TM_ERR_STORE;
    sqlite3_stmt *st = s->st_insert;
    int rc;

    lock(s);
    rc = sqlite3_bind_blob(st, 1, record_id, RECORD_ID_LEN, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(st, 2, public_id, STORE_ID_LEN, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int(st, 3, s->key_version);
    if (rc == SQLITE_OK)
        rc = c->label ? sqlite3_bind_text(st, 4, c->label, -1, SQLITE_STATIC)
                      : sqlite3_bind_null(st, 4);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int(st, 5, c->is_read_only ? 1 : 0);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_blob64(st, 6, sealed, sealed_len, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 7, now);
    if (rc != SQLITE_OK) {
        err = sql_fail(s->db, "insert", rc);
        goto out;
    }
    /* A single statement in autocommit mode: one transaction, all or nothing. */
    rc = sqlite3_step(st);
    if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY) {
        err = TM_ERR_EXISTS;
        goto out;
    }
    if (rc != SQLITE_DONE) {
        err = sql_fail(s->db, "insert", rc);
        goto out;
    }
    err = TM_OK;
out:
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    unlock(s);
    return err;
}

enum tm_err store_add(struct store *s, const struct creds *c, char token_out[STORE_TOKEN_LEN + 1],
                      char id_out[STORE_ID_LEN + 1])
{
    enum tm_err err = TM_ERR_INTERNAL;
    unsigned char token[TOKEN_BYTES];
    unsigned char record_id[RECORD_ID_LEN];
    unsigned char key[SUBKEY_LEN];
    unsigned char ad[AD_LEN];
    char public_id[STORE_ID_LEN + 1];
    unsigned char *plain = NULL;
    size_t plain_len = 0;
    unsigned char *sealed = NULL;
    size_t sealed_len = 0;

    if (!s || !c || !token_out || !id_out)
        return TM_ERR_INVALID;
    err = creds_encode(c, &plain, &plain_len);
    if (err != TM_OK)
        goto out;
    sealed_len = NONCE_LEN + plain_len + TAG_LEN;
    sealed = malloc(sealed_len);
    if (!sealed) {
        err = TM_ERR_NOMEM;
        goto out;
    }

    for (int attempt = 0; attempt < ADD_ATTEMPTS; attempt++) {
        unsigned long long ct_len = 0;

        randombytes_buf(token, sizeof(token));
        derive_record(s, token, record_id, public_id, key);
        build_ad(ad, record_id, s->key_version);
        randombytes_buf(sealed, NONCE_LEN);
        if (crypto_aead_xchacha20poly1305_ietf_encrypt(sealed + NONCE_LEN, &ct_len, plain,
                                                       plain_len, ad, sizeof(ad), NULL, sealed,
                                                       key) != 0) {
            err = TM_ERR_CRYPTO;
            goto out;
        }
        err = insert_record(s, record_id, public_id, c, sealed, sealed_len, (int64_t)time(NULL));
        if (err != TM_ERR_EXISTS)
            break;
    }
    if (err != TM_OK)
        goto out;

    sodium_bin2base64(token_out, STORE_TOKEN_LEN + 1, token, sizeof(token),
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    memcpy(id_out, public_id, STORE_ID_LEN + 1);
    err = TM_OK;
out:
    sodium_memzero(token, sizeof(token));
    sodium_memzero(key, sizeof(key));
    creds_wipe_free(plain, plain_len);
    free(sealed);
    return err;
}

/* Copies the record's sealed blob out, so that it is opened outside the lock. */
static enum tm_err load_record(struct store *s, const unsigned char record_id[RECORD_ID_LEN],
                               int64_t *key_version, unsigned char **sealed, size_t *sealed_len,
                               int64_t *last_used_at)
{
    enum tm_err err = TM_ERR_STORE;
    sqlite3_stmt *st = s->st_find;
    unsigned char *copy = NULL;
    const void *blob;
    int blob_len;
    int rc;

    lock(s);
    rc = sqlite3_bind_blob(st, 1, record_id, RECORD_ID_LEN, SQLITE_STATIC);
    if (rc != SQLITE_OK) {
        err = sql_fail(s->db, "find", rc);
        goto out;
    }
    rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) {
        err = TM_ERR_NOT_FOUND;
        goto out;
    }
    if (rc != SQLITE_ROW) {
        err = sql_fail(s->db, "find", rc);
        goto out;
    }
    blob = sqlite3_column_blob(st, 1);
    blob_len = sqlite3_column_bytes(st, 1);
    copy = malloc(blob_len > 0 ? (size_t)blob_len : 1);
    if (!copy) {
        err = TM_ERR_NOMEM;
        goto out;
    }
    if (blob && blob_len > 0)
        memcpy(copy, blob, (size_t)blob_len);
    *key_version = sqlite3_column_int64(st, 0);
    *last_used_at = sqlite3_column_int64(st, 2);
    *sealed = copy;
    *sealed_len = blob_len > 0 ? (size_t)blob_len : 0;
    copy = NULL;
    err = TM_OK;
out:
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    unlock(s);
    free(copy);
    return err;
}

/* Best effort: a failed touch only makes `user list` staler, so find still succeeds. */
static void touch_record(struct store *s, const unsigned char record_id[RECORD_ID_LEN], int64_t now)
{
    sqlite3_stmt *st = s->st_touch;
    int rc;

    lock(s);
    rc = sqlite3_bind_blob(st, 1, record_id, RECORD_ID_LEN, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 2, now);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int(st, 3, TOUCH_INTERVAL_S);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
        log_msg(LOG_WARN, "event=store_touch_failed rc=%d err=\"%s\"", rc, sqlite3_errmsg(s->db));
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    unlock(s);
}

enum tm_err store_find(struct store *s, const char *token, struct creds *out,
                       char id_out[STORE_ID_LEN + 1])
{
    enum tm_err err = TM_ERR_INTERNAL;
    unsigned char token_bin[TOKEN_BYTES];
    unsigned char record_id[RECORD_ID_LEN];
    unsigned char key[SUBKEY_LEN];
    unsigned char ad[AD_LEN];
    char public_id[STORE_ID_LEN + 1] = "";
    unsigned char *sealed = NULL;
    size_t sealed_len = 0;
    unsigned char *plain = NULL;
    size_t plain_len = 0;
    int64_t key_version = 0;
    int64_t last_used_at = 0;
    int64_t now;
    struct creds found = {0};
    const char *reason = NULL; /* why a record that exists did not open; logged once */

    if (out)
        memset(out, 0, sizeof(*out));
    if (!s || !out)
        return TM_ERR_INVALID;
    /* A malformed token cannot name a record: answer before any hashing or SQL. */
    if (!token_decode(token, token_bin))
        return TM_ERR_NOT_FOUND;
    derive_record(s, token_bin, record_id, public_id, key);
    sodium_memzero(token_bin, sizeof(token_bin));

    err = load_record(s, record_id, &key_version, &sealed, &sealed_len, &last_used_at);
    if (err != TM_OK)
        goto out;
    /* Only the current key is loaded; an older version would need its own subkeys. */
    if (key_version != s->key_version) {
        reason = "key_version";
        err = TM_ERR_DENIED;
        goto out;
    }
    if (sealed_len < NONCE_LEN + TAG_LEN) {
        reason = "short";
        err = TM_ERR_DENIED;
        goto out;
    }
    plain_len = sealed_len - NONCE_LEN - TAG_LEN;
    plain = malloc(plain_len > 0 ? plain_len : 1);
    if (!plain) {
        err = TM_ERR_NOMEM;
        goto out;
    }
    build_ad(ad, record_id, s->key_version);
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(plain, NULL, NULL, sealed + NONCE_LEN,
                                                   sealed_len - NONCE_LEN, ad, sizeof(ad), sealed,
                                                   key) != 0) {
        reason = "auth";
        err = TM_ERR_DENIED;
        goto out;
    }
    err = creds_decode(plain, plain_len, &found);
    if (err == TM_ERR_INVALID) {
        reason = "decode";
        err = TM_ERR_DENIED;
        goto out;
    }
    if (err != TM_OK)
        goto out;

    now = (int64_t)time(NULL);
    if (now - last_used_at >= TOUCH_INTERVAL_S)
        touch_record(s, record_id, now);

    *out = found;
    memset(&found, 0, sizeof(found));
    if (id_out)
        memcpy(id_out, public_id, STORE_ID_LEN + 1);
    err = TM_OK;
out:
    if (reason)
        log_msg(LOG_WARN, "event=store_open_failed id=%s reason=%s key_version=%" PRId64, public_id,
                reason, key_version);
    sodium_memzero(key, sizeof(key));
    creds_cleanup(&found);
    creds_wipe_free(plain, plain_len);
    free(sealed);
    return err;
}

/* One row of `user list`, copied out so the callback runs without the lock. */
struct list_row {
    struct store_user_info info;
    char *label; /* owned; NULL when the user has none */
};

/* Copies every row out under the lock. On failure the rows so far stay in *rows for the caller. */
static enum tm_err collect_rows(struct store *s, struct list_row **rows, size_t *n_rows)
{
    enum tm_err err = TM_ERR_STORE;
    sqlite3_stmt *st = s->st_list;
    size_t cap = 0;
    int rc;

    lock(s);
    for (;;) {
        struct list_row *row;
        const char *text;

        rc = sqlite3_step(st);
        if (rc == SQLITE_DONE)
            break;
        if (rc != SQLITE_ROW) {
            err = sql_fail(s->db, "list", rc);
            goto out;
        }
        if (*n_rows == cap) {
            size_t new_cap = cap ? cap * 2 : 16;
            struct list_row *grown = realloc(*rows, new_cap * sizeof(**rows));
            if (!grown) {
                err = TM_ERR_NOMEM;
                goto out;
            }
            *rows = grown;
            cap = new_cap;
        }
        row = &(*rows)[*n_rows];
        memset(row, 0, sizeof(*row));
        (*n_rows)++;
        text = (const char *)sqlite3_column_text(st, 0);
        snprintf(row->info.id, sizeof(row->info.id), "%s", text ? text : "");
        text = (const char *)sqlite3_column_text(st, 1);
        if (text) {
            row->label = strdup(text);
            if (!row->label) {
                err = TM_ERR_NOMEM;
                goto out;
            }
        }
        row->info.created_at = sqlite3_column_int64(st, 2);
        row->info.last_used_at = sqlite3_column_int64(st, 3);
        row->info.is_read_only = sqlite3_column_int(st, 4) != 0;
        row->info.key_version = sqlite3_column_int(st, 5);
    }
    err = TM_OK;
out:
    sqlite3_reset(st);
    unlock(s);
    return err;
}

enum tm_err store_list(struct store *s, store_list_fn fn, void *ctx)
{
    enum tm_err err = TM_ERR_INTERNAL;
    struct list_row *rows = NULL;
    size_t n_rows = 0;

    if (!s || !fn)
        return TM_ERR_INVALID;
    err = collect_rows(s, &rows, &n_rows);
    if (err != TM_OK)
        goto out;
    /* Outside the lock, so that a callback may call back into the store. */
    for (size_t i = 0; i < n_rows; i++) {
        rows[i].info.label = rows[i].label ? rows[i].label : "";
        fn(&rows[i].info, ctx);
    }
out:
    for (size_t i = 0; i < n_rows; i++)
        free(rows[i].label);
    free(rows);
    return err;
}

enum tm_err store_revoke(struct store *s, const char *id)
{
    enum tm_err err = TM_ERR_STORE;
    sqlite3_stmt *st;
    int rc;

    if (!s)
        return TM_ERR_INVALID;
    /* Only our own id format can match a row; anything else is simply not there. */
    if (!is_public_id(id))
        return TM_ERR_NOT_FOUND;
    st = s->st_revoke;
    lock(s);
    rc = sqlite3_bind_text(st, 1, id, STORE_ID_LEN, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc != SQLITE_DONE) {
        err = sql_fail(s->db, "revoke", rc);
        goto out;
    }
    err = sqlite3_changes(s->db) > 0 ? TM_OK : TM_ERR_NOT_FOUND;
out:
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    unlock(s);
    return err;
}
