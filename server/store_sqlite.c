/*
 * The SQLite backend of the user store: `store.db` (WAL) beside the master
 * key file `master.key`, both in the data directory, unless the key comes
 * from a file of the operator's (a Docker secret). Token, record id and
 * sealing are done here with libsodium; the credentials' byte form comes
 * from creds.c. Any thread may call in: one mutex serialises the main
 * SQLite connection and the key set, and crypto runs outside it. The
 * token check of store_find_id reads through a small pool of extra
 * connections instead, so that it waits neither on that mutex nor on the
 * activity writer, and skips SQLite altogether while SQLite's WAL-index
 * header shows that nothing was committed since it last asked.
 */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define MASTER_KEY_FILE    "master.key"
#define STORE_DB_FILE      "store.db"
#define MASTER_KEY_LEN     32
#define MASTER_KEY_VERSION 1
/* Nine digits keep the version inside an int and inside four bytes of associated data. */
#define MASTER_KEY_VERSION_DIGITS 9
#define MASTER_KEY_VERSION_MAX    999999999
/* "v<version>:<64 hex>\n" is under 80 bytes; a file holds at most this many versions. */
#define MASTER_KEY_LINE_MAX     80
#define MASTER_KEY_VERSIONS_MAX 64
#define MASTER_KEY_FILE_MAX     (MASTER_KEY_LINE_MAX * MASTER_KEY_VERSIONS_MAX)
#define TOKEN_BYTES             32
#define RECORD_ID_LEN           crypto_generichash_BYTES
#define SUBKEY_LEN              crypto_generichash_KEYBYTES
#define AD_LEN                  (RECORD_ID_LEN + 4)
#define NONCE_LEN               crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define TAG_LEN                 crypto_aead_xchacha20poly1305_ietf_ABYTES
/* The shortest credentials encoding (creds.c): version, flags and six absent fields. */
#define CREDS_MIN_LEN   8
#define SEALED_MIN_LEN  (NONCE_LEN + TAG_LEN + CREDS_MIN_LEN)
#define BUSY_TIMEOUT_MS 5000
/* last_used_at is for `user list`; a write per request would serialise every request. */
#define TOUCH_INTERVAL_S 60
/* How often a find looks whether `keys rotate` (another process) changed master.key. */
#define KEY_RELOAD_INTERVAL_S 2
/* A public id is 64 bits, so a collision is all but impossible; retry a few times anyway. */
#define ADD_ATTEMPTS         4
#define SCHEMA_VERSION       2
#define ACTIVITY_OUTCOME_MAX 16
#define STRINGIFY_(x)        #x
#define STRINGIFY(x)         STRINGIFY_(x)

/*
 * SQLite's WAL-index header: the first 48 bytes of store.db-shm, written
 * twice in a row (copies at 0 and 48) by whichever connection commits,
 * in any process. It holds a counter that each commit increments, the
 * WAL's last frame, its salts and a checksum, so while it reads the same
 * no transaction has been committed (walformat.html, "The WAL-Index
 * Header"). Its byte 12 is isInit.
 */
#define WAL_HDR_LEN     48
#define WAL_HDR_IS_INIT 12
/* Users whose URL check store_find_id can answer without SQLite (see struct live_cache). */
#define LIVE_SLOTS 64

/* A record by its id; the main connection and the readers both use it (read_record). */
#define FIND_SQL                                                                                   \
    "SELECT key_version, sealed, last_used_at, public_id FROM users WHERE record_id = ?1"

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

/* What one master key version gives: only subkeys are kept, never the master key itself. */
struct key_entry {
    int version;
    unsigned char seal_key[SUBKEY_LEN]; /* keys the hash from token to sealing key */
    unsigned char check[SUBKEY_LEN];    /* compared with master_keys.key_check */
};

/*
 * The versions of master.key, oldest first; the last is current.
 *
 * Record ids come from the FIRST version's lookup subkey, for as long as
 * the store lives. A record id is how a token finds its record, so a
 * lookup key that followed the current version would change every record
 * id at each rotation: either every id would be rewritten at once (which
 * needs every token) or a find would hash the token once per version
 * (slower, and more ways for one token to name a row). Keeping the lookup
 * key costs nothing in secrecy: it only turns a token into an id, and
 * whoever has a token can use it anyway; what rotation protects is the
 * sealing, and seal keys do follow the current version. Stores made before
 * versions existed derived it from their only version, v1, so they read
 * on unchanged.
 */
struct key_set {
    int n;
    struct key_entry e[MASTER_KEY_VERSIONS_MAX];
    unsigned char lookup_key[SUBKEY_LEN]; /* from e[0] */
};

/* Which master.key was loaded: a rename by `keys rotate` gives another inode. */
struct file_id {
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
};

/*
 * A read connection for store_find_id, with its one statement. A caller
 * takes one from the store's idle list, uses it alone and gives it back, so
 * no two threads ever share one; the list grows to the number of threads
 * that check tokens at the same time (the HTTP pool's size).
 */
struct reader {
    sqlite3 *db;
    sqlite3_stmt *st_find; /* FIND_SQL */
    struct reader *next;   /* in store.idle_readers */
};

/* A record as read from its row, copied out so that it is opened outside the lock. */
struct loaded_record {
    int64_t key_version;
    unsigned char *sealed; /* owned */
    size_t sealed_len;
    int64_t last_used_at;
    char public_id[STORE_ID_LEN + 1];
};

/* A record's row as it was when the store was in the state live_cache.state names. */
struct live_entry {
    bool is_used;
    unsigned char record_id[RECORD_ID_LEN];
    struct loaded_record rec; /* sealed: the ciphertext, as in the file */
};

/*
 * What store_find_id learnt from SQLite, valid for as long as nothing is
 * committed: each entry is a record's row as read in the state `state`,
 * and the whole cache is dropped as soon as the WAL-index header differs
 * from it. It holds what the file holds (record ids, public ids, sealed
 * credentials), never a token, a key or a credential in the clear.
 */
struct live_cache {
    pthread_mutex_t lock; /* guards everything here; never held during SQL */
    bool has_lock;
    bool has_state;
    unsigned char state[WAL_HDR_LEN];
    struct live_entry slots[LIVE_SLOTS];
    uint64_t n_hits; /* checks answered here, without SQLite */
};

struct store {
    /*
     * Guards db, every prepared statement, `keys`, `key_file` and
     * `keys_checked_at`. Each public function takes it around its SQL and
     * key lookups only: never during sealing or opening, never while
     * calling back.
     */
    pthread_mutex_t lock;
    bool has_lock; /* lock was initialised (store_close also frees half-opened stores) */
    sqlite3 *db;
    sqlite3_stmt *st_insert;
    sqlite3_stmt *st_find;
    sqlite3_stmt *st_touch;
    sqlite3_stmt *st_list;
    sqlite3_stmt *st_revoke;
    sqlite3_stmt *st_migrate;
    sqlite3_stmt *st_rekey;
    sqlite3_stmt *st_act_insert;
    sqlite3_stmt *st_act_trim;
    sqlite3_stmt *st_act_list;
    int dir_fd; /* the data directory, for master.key; -1 when closed */
    struct key_set keys;
    struct file_id key_file; /* the master.key loaded, or last refused */
    char *key_path;          /* the operator's key file, or NULL for master.key in dir_fd */
    bool is_key_shared_ok;   /* key_path lies outside the data dir: group/others may read */
    int64_t keys_checked_at; /* CLOCK_MONOTONIC seconds of the last look at master.key */
    /* A copy of keys.lookup_key: constant after open, so read without the lock. */
    unsigned char lookup_key[SUBKEY_LEN];
    char *db_path;                /* store.db's path, for readers; constant after open */
    pthread_mutex_t readers_lock; /* guards idle_readers; never held while a reader runs */
    bool has_readers_lock;        /* readers_lock was initialised */
    struct reader *idle_readers;  /* readers no thread is using */
    /*
     * store.db-shm's first page, mapped read-only to read the WAL-index
     * header, or NULL (then every URL check goes to SQLite). SQLite never
     * truncates the file while a connection of ours has the store open.
     */
    const unsigned char *shm;
    size_t shm_len;
    struct live_cache live;
};

/*
 * schema_steps[v] takes a store from user_version v to v + 1; append only.
 * users.sealed is nonce || ciphertext; label and is_read_only are kept in
 * the clear as well (they are also sealed) so that `user list` needs no token.
 * activity holds names and outcomes only; a trigger deletes a user's
 * activity with the user, inside the same statement.
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

    "CREATE TABLE activity ("
    " id INTEGER PRIMARY KEY,"
    " public_id TEXT NOT NULL,"
    " at INTEGER NOT NULL,"
    " tool TEXT NOT NULL,"
    " database TEXT NOT NULL,"
    " outcome TEXT NOT NULL);"
    "CREATE INDEX activity_by_user ON activity (public_id, id);"
    "CREATE TRIGGER users_delete_activity AFTER DELETE ON users BEGIN"
    " DELETE FROM activity WHERE public_id = old.public_id; END;",
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

static int64_t monotonic_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec;
}

/* ---- master key file -------------------------------------------------- */

/* Parses one line "v<version>:<64 hex>\n" strictly: one format, one meaning. */
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

/*
 * Parses the whole file: one or more lines, versions strictly increasing.
 * Keeps only the subkeys of each version in *ks; master keys are wiped.
 */
static enum tm_err parse_master_keys(const char *text, size_t len, struct key_set *ks)
{
    enum tm_err err = TM_ERR_INVALID;
    unsigned char master[MASTER_KEY_LEN];
    size_t pos = 0;

    memset(ks, 0, sizeof(*ks));
    while (pos < len) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t line_len = nl ? (size_t)(nl - (text + pos)) + 1 : len - pos;
        struct key_entry *e;
        int version = 0;

        if (ks->n == MASTER_KEY_VERSIONS_MAX)
            goto out;
        if (parse_master_key(text + pos, line_len, &version, master) != TM_OK)
            goto out;
        if (ks->n > 0 && version <= ks->e[ks->n - 1].version)
            goto out;
        e = &ks->e[ks->n];
        e->version = version;
        if (crypto_kdf_derive_from_key(e->seal_key, SUBKEY_LEN, 1, KDF_CTX_SEAL, master) != 0 ||
            crypto_kdf_derive_from_key(e->check, SUBKEY_LEN, 1, KDF_CTX_CHECK, master) != 0 ||
            (ks->n == 0 && crypto_kdf_derive_from_key(ks->lookup_key, SUBKEY_LEN, 1, KDF_CTX_LOOKUP,
                                                      master) != 0)) {
            err = TM_ERR_CRYPTO;
            goto out;
        }
        ks->n++;
        pos += line_len;
    }
    err = ks->n > 0 ? TM_OK : TM_ERR_INVALID;
out:
    sodium_memzero(master, sizeof(master));
    if (err != TM_OK)
        sodium_memzero(ks, sizeof(*ks));
    return err;
}

static enum tm_err write_key_tmp(int dir_fd, const char *text, size_t len, char *tmp_name,
                                 size_t tmp_name_len)
{
    enum tm_err err = TM_ERR_IO;
    int fd;

    snprintf(tmp_name, tmp_name_len, MASTER_KEY_FILE ".%08" PRIx32 "%08" PRIx32 ".tmp",
             randombytes_random(), randombytes_random());
    fd = openat(dir_fd, tmp_name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        tmp_name[0] = '\0';
        goto out;
    }
    /* The umask can only clear bits, but be explicit about what the file is. */
    if (fchmod(fd, 0600) != 0 || write_all(fd, text, len) != TM_OK || fsync(fd) != 0) {
        close(fd);
        goto out;
    }
    if (close(fd) != 0)
        goto out;
    err = TM_OK;
out:
    if (err != TM_OK)
        log_msg(LOG_ERROR, "event=store_master_key_write_failed errno=%d err=\"%s\"", errno,
                strerror(errno));
    return err;
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
    unsigned char key[MASTER_KEY_LEN];
    char text[MASTER_KEY_LINE_MAX];
    char tmp_name[64] = "";
    int n;

    randombytes_buf(key, sizeof(key));
    n = snprintf(text, sizeof(text), "v%d:", MASTER_KEY_VERSION);
    sodium_bin2hex(text + n, sizeof(text) - (size_t)n, key, sizeof(key));
    strcat(text, "\n");
    err = write_key_tmp(dir_fd, text, strlen(text), tmp_name, sizeof(tmp_name));
    if (err != TM_OK)
        goto out;
    if (linkat(dir_fd, tmp_name, dir_fd, MASTER_KEY_FILE, 0) != 0) {
        if (errno == EEXIST) {
            err = TM_ERR_EXISTS;
            goto out;
        }
        log_msg(LOG_ERROR, "event=store_master_key_create_failed errno=%d err=\"%s\"", errno,
                strerror(errno));
        err = TM_ERR_IO;
        goto out;
    }
    err = TM_OK;
out:
    if (tmp_name[0])
        unlinkat(dir_fd, tmp_name, 0);
    /* The link and the unlink must reach the disk before we hand out tokens. */
    if (err == TM_OK && fsync(dir_fd) != 0)
        err = TM_ERR_IO;
    sodium_memzero(key, sizeof(key));
    sodium_memzero(text, sizeof(text));
    return err;
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

static void file_id_of(const struct stat *st, struct file_id *id)
{
    id->dev = st->st_dev;
    id->ino = st->st_ino;
    id->size = st->st_size;
    id->mtime = st->st_mtim;
}

static bool file_id_eq(const struct file_id *a, const struct file_id *b)
{
    return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec;
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
 * Reads the key file into text (MASTER_KEY_FILE_MAX + 1 bytes) after
 * checking that it is a regular file only its owner may read: master.key in
 * `dir_fd` when `key_path` is NULL, else the operator's file. A file we did
 * not make may be readable by group and others (`is_shared_ok`), if it lies
 * outside the data directory and none but its owner may write it: Docker
 * mounts secrets 0444 (swarm) or with the host file's mode (compose), as it
 * cannot know which user the container runs as. The key alone opens no
 * record without the users' URLs. ENOENT is returned as TM_ERR_NOT_FOUND,
 * without a log line, so that the caller may create master.key.
 */
static enum tm_err read_key_file(int dir_fd, const char *key_path, bool is_shared_ok, char *text,
                                 size_t *len, struct file_id *id)
{
    enum tm_err err = TM_ERR_IO;
    struct stat st;
    int fd;
    mode_t refused = is_shared_ok ? (S_IWGRP | S_IWOTH) : (S_IRWXG | S_IRWXO);

    *len = 0;
    /* No O_NOFOLLOW: a key mounted as a secret is often a symlink; fstat checks the target. */
    fd = key_path ? open(key_path, O_RDONLY | O_CLOEXEC)
                  : openat(dir_fd, MASTER_KEY_FILE, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        if (e == ENOENT)
            return TM_ERR_NOT_FOUND;
        log_msg(LOG_ERROR, "event=store_master_key_open_failed errno=%d err=\"%s\"", e,
                strerror(e));
        return e == EACCES ? TM_ERR_DENIED : TM_ERR_IO;
    }
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
    while (*len < MASTER_KEY_FILE_MAX + 1) {
        ssize_t n = read(fd, text + *len, MASTER_KEY_FILE_MAX + 1 - *len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            goto out;
        if (n == 0)
            break;
        *len += (size_t)n;
    }
    if (*len > MASTER_KEY_FILE_MAX) {
        log_msg(LOG_ERROR, "event=store_master_key_rejected reason=malformed");
        err = TM_ERR_INVALID;
        goto out;
    }
    file_id_of(&st, id);
    err = TM_OK;
out:
    close(fd);
    return err;
}

/*
 * Reads the key file into *ks: the operator's `key_path` (never created),
 * or master.key, created first if it does not exist.
 */
static enum tm_err load_master_keys(int dir_fd, const char *key_path, bool is_shared_ok,
                                    struct key_set *ks, struct file_id *id, bool *created)
{
    enum tm_err err = TM_ERR_IO;
    char text[MASTER_KEY_FILE_MAX + 1];
    size_t len = 0;

    /* Twice at most: if another process creates the key between our two opens, read theirs. */
    for (int attempt = 0; attempt < 2; attempt++) {
        err = read_key_file(dir_fd, key_path, is_shared_ok, text, &len, id);
        if (err == TM_ERR_NOT_FOUND && key_path) {
            log_msg(LOG_ERROR,
                    "event=store_master_key_open_failed path=\"%s\" reason=missing "
                    "hint=\"create it with: turso-mcp keygen > FILE\"",
                    key_path);
            goto out;
        }
        if (err != TM_ERR_NOT_FOUND)
            break;
        err = create_master_key(dir_fd);
        if (err == TM_OK)
            *created = true;
        else if (err != TM_ERR_EXISTS)
            goto out;
        err = TM_ERR_IO;
    }
    if (err != TM_OK)
        goto out;
    if (parse_master_keys(text, len, ks) != TM_OK) {
        log_msg(LOG_ERROR, "event=store_master_key_rejected reason=malformed");
        err = TM_ERR_INVALID;
        goto out;
    }
    err = TM_OK;
out:
    sodium_memzero(text, sizeof(text));
    return err;
}

/* The entry for `version`, or NULL. Call under lock. */
static const struct key_entry *key_find(const struct key_set *ks, int64_t version)
{
    for (int i = 0; i < ks->n; i++)
        if (ks->e[i].version == version)
            return &ks->e[i];
    return NULL;
}

/* ---- tokens and records ----------------------------------------------- */

/* All ones when lo <= x <= hi, else zero; without a branch (x, lo, hi below 256). */
static uint32_t in_range(uint32_t x, uint32_t lo, uint32_t hi)
{
    /* x - lo or hi - x wraps around, setting the top bit, exactly when x is outside. */
    return ((((x - lo) | (hi - x)) >> 31) & 1) - 1;
}

/*
 * The 6 bits of a base64url character; *valid is all ones if it is one,
 * else zero. Masks instead of branches or a table, so that the time taken
 * says nothing about a secret token.
 */
static uint32_t base64url_value(unsigned char c, uint32_t *valid)
{
    uint32_t upper = in_range(c, 'A', 'Z'), lower = in_range(c, 'a', 'z');
    uint32_t digit = in_range(c, '0', '9'), dash = in_range(c, '-', '-');
    uint32_t underscore = in_range(c, '_', '_');
    *valid = upper | lower | digit | dash | underscore;
    return (upper & (c - 'A')) | (lower & (c - 'a' + 26)) | (digit & (c - '0' + 52)) | (dash & 62) |
           (underscore & 63);
}

/*
 * Decodes a URL token. Only the canonical encoding of 32 bytes passes: 43
 * characters of the base64url alphabet whose 2 spare low bits are zero, so
 * one set of token bytes has exactly one text form. Not sodium_base642bin:
 * the libsodium Debian 12 ships (1.0.18) reads every byte from 0x80 up as
 * '_' in the URL-safe alphabet, which would give each token with a '_'
 * 128 more spellings per '_'.
 */
static bool token_decode(const char *token, unsigned char bin[TOKEN_BYTES])
{
    uint32_t bad = 0; /* any bit set: not a canonical token */
    uint32_t bits = 0;
    int n_bits = 0;
    size_t n = 0;

    if (!token || strnlen(token, STORE_TOKEN_LEN + 1) != STORE_TOKEN_LEN)
        return false;
    for (size_t i = 0; i < STORE_TOKEN_LEN; i++) {
        uint32_t valid;
        bits = (bits << 6) | base64url_value((unsigned char)token[i], &valid);
        bad |= ~valid;
        n_bits += 6;
        if (n_bits >= 8) {
            n_bits -= 8;
            bin[n++] = (unsigned char)(bits >> n_bits);
        }
    }
    /* 43 characters carry 258 bits: 256 are the token, the last 2 must be zero. */
    bad |= bits & ((1u << n_bits) - 1);
    if (bad || n != TOKEN_BYTES) {
        sodium_memzero(bin, TOKEN_BYTES);
        return false;
    }
    return true;
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

/* From the token bytes: the record id (first version's lookup subkey) and its public prefix. */
static void derive_record_id(const struct store *s, const unsigned char token[TOKEN_BYTES],
                             unsigned char record_id[RECORD_ID_LEN],
                             char public_id[STORE_ID_LEN + 1])
{
    crypto_generichash(record_id, RECORD_ID_LEN, token, TOKEN_BYTES, s->lookup_key,
                       sizeof(s->lookup_key));
    if (public_id)
        sodium_bin2hex(public_id, STORE_ID_LEN + 1, record_id, STORE_ID_LEN / 2);
}

/* The record's sealing key: the token hashed under one version's seal subkey. */
static void derive_record_key(const unsigned char seal_subkey[SUBKEY_LEN],
                              const unsigned char token[TOKEN_BYTES], unsigned char key[SUBKEY_LEN])
{
    crypto_generichash(key, SUBKEY_LEN, token, TOKEN_BYTES, seal_subkey, SUBKEY_LEN);
}

/*
 * Copies the current version and its seal subkey out under the lock, so
 * that sealing runs without it and a concurrent reload cannot split them.
 */
static void current_key(struct store *s, int *version, unsigned char seal_subkey[SUBKEY_LEN])
{
    lock(s);
    const struct key_entry *e = &s->keys.e[s->keys.n - 1];
    *version = e->version;
    memcpy(seal_subkey, e->seal_key, SUBKEY_LEN);
    unlock(s);
}

/*
 * Seals `plain` for the record `record_id` of `token` under the current key
 * version into a new buffer *sealed_out (nonce || ciphertext; the caller
 * frees it) and tells which version that was.
 */
static enum tm_err seal_record(struct store *s, const unsigned char token[TOKEN_BYTES],
                               const unsigned char record_id[RECORD_ID_LEN],
                               const unsigned char *plain, size_t plain_len,
                               unsigned char **sealed_out, size_t *sealed_len_out, int *version_out)
{
    enum tm_err err = TM_ERR_CRYPTO;
    unsigned char subkey[SUBKEY_LEN];
    unsigned char key[SUBKEY_LEN];
    unsigned char ad[AD_LEN];
    unsigned long long ct_len = 0;
    size_t sealed_len = NONCE_LEN + plain_len + TAG_LEN;
    unsigned char *sealed = malloc(sealed_len);
    int version = 0;

    if (!sealed)
        return TM_ERR_NOMEM;
    current_key(s, &version, subkey);
    derive_record_key(subkey, token, key);
    build_ad(ad, record_id, version);
    randombytes_buf(sealed, NONCE_LEN);
    if (crypto_aead_xchacha20poly1305_ietf_encrypt(sealed + NONCE_LEN, &ct_len, plain, plain_len,
                                                   ad, sizeof(ad), NULL, sealed, key) != 0)
        goto out;
    *sealed_out = sealed;
    sealed = NULL;
    *sealed_len_out = sealed_len;
    *version_out = version;
    err = TM_OK;
out:
    free(sealed);
    sodium_memzero(subkey, sizeof(subkey));
    sodium_memzero(key, sizeof(key));
    return err;
}

/* ---- opening ------------------------------------------------------------ */

/*
 * Compares the master key with the check value recorded for its version,
 * so that a wrong or regenerated key stops the server at startup instead of
 * turning every user away. Records it on first use of a version when
 * `may_record`; otherwise a version without a check is TM_ERR_NOT_FOUND.
 * Runs inside a transaction (or, with !may_record, reads only).
 */
static enum tm_err check_master_key(sqlite3 *db, int version, const unsigned char check[SUBKEY_LEN],
                                    bool may_record)
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
    if (!may_record) {
        err = TM_ERR_NOT_FOUND;
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

/*
 * Checks every version of master.key against the store: the first version
 * must be the store's lookup version (the lowest with a key check), since
 * it finds every record; each version must match its recorded check (new
 * ones are recorded). Records under versions the file lacks cannot be
 * opened: that is said, but the store still opens for everyone else.
 * Runs inside the schema transaction.
 */
static enum tm_err check_master_keys(sqlite3 *db, const struct key_set *ks)
{
    enum tm_err err = TM_ERR_STORE;
    sqlite3_stmt *st = NULL;
    int rc;

    rc = sqlite3_prepare_v2(db, "SELECT min(version) FROM master_keys", -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        err = sql_fail(db, "key_check", rc);
        goto out;
    }
    if (sqlite3_column_type(st, 0) != SQLITE_NULL &&
        sqlite3_column_int64(st, 0) != ks->e[0].version) {
        log_msg(LOG_ERROR,
                "event=store_master_key_rejected reason=lookup_version store_first=%" PRId64
                " file_first=%d",
                (int64_t)sqlite3_column_int64(st, 0), ks->e[0].version);
        err = TM_ERR_DENIED;
        goto out;
    }
    sqlite3_finalize(st);
    st = NULL;

    for (int i = 0; i < ks->n; i++) {
        err = check_master_key(db, ks->e[i].version, ks->e[i].check, true);
        if (err != TM_OK)
            goto out;
    }

    rc = sqlite3_prepare_v2(db, "SELECT key_version, count(*) FROM users GROUP BY key_version", -1,
                            &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    while (rc == SQLITE_ROW) {
        if (!key_find(ks, sqlite3_column_int64(st, 0)))
            log_msg(LOG_WARN,
                    "event=store_key_version_missing key_version=%" PRId64 " records=%" PRId64,
                    (int64_t)sqlite3_column_int64(st, 0), (int64_t)sqlite3_column_int64(st, 1));
        rc = sqlite3_step(st);
    }
    if (rc != SQLITE_DONE) {
        err = sql_fail(db, "key_check", rc);
        goto out;
    }
    err = TM_OK;
out:
    sqlite3_finalize(st);
    return err;
}

/* Brings the schema to SCHEMA_VERSION and checks the keys, in one transaction. */
static enum tm_err prepare_schema(sqlite3 *db, const struct key_set *ks)
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
    err = check_master_keys(db, ks);
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

static enum tm_err prepare_statements(struct store *s)
{
    static const struct {
        size_t offset;
        const char *sql;
    } stmts[] = {
        {offsetof(struct store, st_insert),
         "INSERT INTO users (record_id, public_id, key_version, label,"
         " is_read_only, sealed, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"},
        {offsetof(struct store, st_find), FIND_SQL},
        {offsetof(struct store, st_touch), "UPDATE users SET last_used_at = ?2"
                                           " WHERE record_id = ?1 AND last_used_at <= ?2 - ?3"},
        {offsetof(struct store, st_list),
         "SELECT public_id, label, created_at, last_used_at, is_read_only,"
         " key_version FROM users ORDER BY created_at, id"},
        {offsetof(struct store, st_revoke), "DELETE FROM users WHERE public_id = ?1"},
        /* Both updates name the version they read, so a concurrent change makes them miss. */
        {offsetof(struct store, st_migrate), "UPDATE users SET key_version = ?3, sealed = ?4"
                                             " WHERE record_id = ?1 AND key_version = ?2"},
        {offsetof(struct store, st_rekey),
         "UPDATE users SET record_id = ?3, key_version = ?4, sealed = ?5"
         " WHERE record_id = ?1 AND key_version = ?2"},
        {offsetof(struct store, st_act_insert),
         "INSERT INTO activity (public_id, at, tool, database, outcome)"
         " SELECT ?1, ?2, ?3, ?4, ?5 WHERE EXISTS (SELECT 1 FROM users WHERE public_id = ?1)"},
        {offsetof(struct store, st_act_trim),
         "DELETE FROM activity WHERE public_id = ?1 AND id <= (SELECT id FROM activity"
         " WHERE public_id = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)"},
        {offsetof(struct store, st_act_list), "SELECT at, tool, database, outcome FROM activity"
                                              " WHERE public_id = ?1 ORDER BY id DESC LIMIT ?2"},
    };
    for (size_t i = 0; i < sizeof(stmts) / sizeof(stmts[0]); i++) {
        sqlite3_stmt **st = (sqlite3_stmt **)((char *)s + stmts[i].offset);
        enum tm_err err = prepare_stmt(s->db, stmts[i].sql, st);
        if (err != TM_OK)
            return err;
    }
    return TM_OK;
}

static enum tm_err open_db(struct store *s, const char *data_dir)
{
    enum tm_err err = TM_ERR_STORE;
    sqlite3_stmt *st = NULL;
    char *path = NULL; /* owned by s->db_path once built */
    size_t path_len;
    int fd;
    int rc;

    /* SQLite would create the file with the umask's mode; -wal and -shm copy the file's. */
    fd = openat(s->dir_fd, STORE_DB_FILE, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
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
    s->db_path = path;

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

    err = prepare_schema(s->db, &s->keys);
    if (err != TM_OK)
        goto out;
    err = prepare_statements(s);
out:
    sqlite3_finalize(st);
    return err;
}

/* ---- read connections for the token check ------------------------------ */

static void reader_close(struct reader *r)
{
    if (!r)
        return;
    sqlite3_finalize(r->st_find);
    sqlite3_close(r->db);
    free(r);
}

/*
 * Opens one more read connection on store.db (already in WAL mode, its
 * schema made by open_db). query_only: it never writes, so it never holds
 * a write lock that the main connection or another process would wait on.
 */
static enum tm_err reader_open(const struct store *s, struct reader **out)
{
    enum tm_err err = TM_ERR_STORE;
    struct reader *r = calloc(1, sizeof(*r));
    int rc;

    if (!r)
        return TM_ERR_NOMEM;
    rc = sqlite3_open_v2(s->db_path, &r->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        err = sql_fail(r->db, "reader_open", rc);
        goto out;
    }
    sqlite3_extended_result_codes(r->db, 1);
    sqlite3_busy_timeout(r->db, BUSY_TIMEOUT_MS);
    err = exec_sql(r->db, "reader_pragma", "PRAGMA query_only=ON");
    if (err != TM_OK)
        goto out;
    err = prepare_stmt(r->db, FIND_SQL, &r->st_find);
    if (err != TM_OK)
        goto out;
    *out = r;
    r = NULL;
out:
    reader_close(r);
    return err;
}

/* Takes an idle reader, or opens one when every reader is in use. */
static enum tm_err reader_take(struct store *s, struct reader **out)
{
    pthread_mutex_lock(&s->readers_lock);
    struct reader *r = s->idle_readers;
    if (r)
        s->idle_readers = r->next;
    pthread_mutex_unlock(&s->readers_lock);
    if (r) {
        *out = r;
        return TM_OK;
    }
    return reader_open(s, out);
}

static void reader_give_back(struct store *s, struct reader *r)
{
    pthread_mutex_lock(&s->readers_lock);
    r->next = s->idle_readers;
    s->idle_readers = r;
    pthread_mutex_unlock(&s->readers_lock);
}

/* ---- the URL check's cache, kept while nothing is committed ------------- */

/*
 * Maps store.db-shm's header read-only for wal_state. open_db has run
 * queries, so SQLite has made and initialised the file. Without it (say a
 * file system where SQLite keeps the index elsewhere) there is no cache.
 */
static void map_shm(struct store *s)
{
    struct stat st;
    int fd = openat(s->dir_fd, STORE_DB_FILE "-shm", O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return;
    if (fstat(fd, &st) == 0 && st.st_size >= 2 * WAL_HDR_LEN) {
        void *p = mmap(NULL, 2 * WAL_HDR_LEN, PROT_READ, MAP_SHARED, fd, 0);
        if (p != MAP_FAILED) {
            s->shm = p;
            s->shm_len = 2 * WAL_HDR_LEN;
        }
    }
    close(fd);
}

/*
 * Reads the WAL-index header into out, as SQLite's readers do: a writer
 * updates the second copy, then the first, so the first is read before the
 * second and the two must agree. False when they do not (a commit is being
 * written) or the index is not initialised: then the state is unknown.
 */
static bool wal_state(const struct store *s, unsigned char out[WAL_HDR_LEN])
{
    const volatile unsigned char *hdr = s->shm;
    unsigned char second[WAL_HDR_LEN];
    if (!hdr)
        return false;
    atomic_thread_fence(memory_order_acquire);
    for (size_t i = 0; i < WAL_HDR_LEN; i++)
        out[i] = hdr[i];
    atomic_thread_fence(memory_order_acquire);
    for (size_t i = 0; i < WAL_HDR_LEN; i++)
        second[i] = hdr[WAL_HDR_LEN + i];
    return memcmp(out, second, WAL_HDR_LEN) == 0 && out[WAL_HDR_IS_INIT] == 1;
}

static struct live_entry *live_slot(struct live_cache *c, const unsigned char id[RECORD_ID_LEN])
{
    /* Record ids are keyed hashes already: any byte spreads them evenly. */
    return &c->slots[id[0] % LIVE_SLOTS];
}

static void live_clear(struct live_cache *c)
{
    for (size_t i = 0; i < LIVE_SLOTS; i++)
        free(c->slots[i].rec.sealed);
    memset(c->slots, 0, sizeof(c->slots));
}

/* Copies a row, sealed blob included; false when out of memory. */
static bool record_copy(struct loaded_record *to, const struct loaded_record *from)
{
    unsigned char *sealed = malloc(from->sealed_len > 0 ? from->sealed_len : 1);
    if (!sealed)
        return false;
    memcpy(sealed, from->sealed, from->sealed_len);
    *to = *from;
    to->sealed = sealed;
    return true;
}

/*
 * Copies the row of `record_id` into *rec if it was read in the state
 * `state` (the header read just now). A different state means commits
 * happened since the cache was filled, so all of it is dropped first.
 */
static bool live_find(struct store *s, const unsigned char state[WAL_HDR_LEN],
                      const unsigned char record_id[RECORD_ID_LEN], struct loaded_record *rec)
{
    struct live_cache *c = &s->live;
    bool is_found = false;
    pthread_mutex_lock(&c->lock);
    if (!c->has_state || memcmp(c->state, state, WAL_HDR_LEN) != 0) {
        live_clear(c);
        memcpy(c->state, state, WAL_HDR_LEN);
        c->has_state = true;
    } else {
        const struct live_entry *slot = live_slot(c, record_id);
        if (slot->is_used && memcmp(slot->record_id, record_id, RECORD_ID_LEN) == 0)
            is_found = record_copy(rec, &slot->rec);
    }
    c->n_hits += is_found;
    pthread_mutex_unlock(&c->lock);
    return is_found;
}

uint64_t store_url_cache_hits(struct store *s)
{
    if (!s || !s->live.has_lock)
        return 0;
    pthread_mutex_lock(&s->live.lock);
    uint64_t n = s->live.n_hits;
    pthread_mutex_unlock(&s->live.lock);
    return n;
}

/*
 * Notes a row SQLite read after `state` was read: kept only if the cache
 * is still in that state (no commit seen since), which may be older than
 * what SQLite showed but never newer.
 */
static void live_note(struct store *s, const unsigned char state[WAL_HDR_LEN],
                      const unsigned char record_id[RECORD_ID_LEN], const struct loaded_record *rec)
{
    struct live_cache *c = &s->live;
    pthread_mutex_lock(&c->lock);
    if (c->has_state && memcmp(c->state, state, WAL_HDR_LEN) == 0) {
        struct live_entry *slot = live_slot(c, record_id);
        free(slot->rec.sealed);
        slot->is_used = record_copy(&slot->rec, rec);
        if (slot->is_used)
            memcpy(slot->record_id, record_id, RECORD_ID_LEN);
        else
            memset(slot, 0, sizeof(*slot));
    }
    pthread_mutex_unlock(&c->lock);
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
    bool created = false;

    if (!data_dir || !*data_dir || !out)
        return TM_ERR_INVALID;
    s = calloc(1, sizeof(*s));
    if (!s)
        return TM_ERR_NOMEM;
    s->dir_fd = -1;
    if (pthread_mutex_init(&s->lock, NULL) != 0)
        goto out;
    s->has_lock = true;
    if (pthread_mutex_init(&s->readers_lock, NULL) != 0)
        goto out;
    s->has_readers_lock = true;
    if (pthread_mutex_init(&s->live.lock, NULL) != 0)
        goto out;
    s->live.has_lock = true;

    err = open_data_dir(data_dir, &s->dir_fd);
    if (err != TM_OK)
        goto out;
    if (key_file && *key_file) {
        s->key_path = strdup(key_file);
        if (!s->key_path) {
            err = TM_ERR_NOMEM;
            goto out;
        }
        /* Inside the data dir, where we make keys 0600, a looser mode means a bad copy. */
        s->is_key_shared_ok = !is_inside(key_file, data_dir);
    }
    err = load_master_keys(s->dir_fd, s->key_path, s->is_key_shared_ok, &s->keys, &s->key_file,
                           &created);
    if (err != TM_OK)
        goto out;
    memcpy(s->lookup_key, s->keys.lookup_key, SUBKEY_LEN);
    s->keys_checked_at = monotonic_s();
    err = open_db(s, data_dir);
    if (err != TM_OK)
        goto out;
    map_shm(s);

    *out = s;
    s = NULL;
    if (created_key)
        *created_key = created;
    err = TM_OK;
out:
    store_close(&s);
    return err;
}

void store_close(struct store **sp)
{
    struct store *s;

    if (!sp || !*sp)
        return;
    s = *sp;
    while (s->idle_readers) {
        struct reader *r = s->idle_readers;
        s->idle_readers = r->next;
        reader_close(r);
    }
    sqlite3_finalize(s->st_insert);
    sqlite3_finalize(s->st_find);
    sqlite3_finalize(s->st_touch);
    sqlite3_finalize(s->st_list);
    sqlite3_finalize(s->st_revoke);
    sqlite3_finalize(s->st_migrate);
    sqlite3_finalize(s->st_rekey);
    sqlite3_finalize(s->st_act_insert);
    sqlite3_finalize(s->st_act_trim);
    sqlite3_finalize(s->st_act_list);
    /* All statements are finalised, so close cannot be busy; the last close folds the WAL in. */
    if (sqlite3_close(s->db) != SQLITE_OK)
        log_msg(LOG_ERROR, "event=store_close_failed err=\"%s\"", sqlite3_errmsg(s->db));
    if (s->dir_fd >= 0)
        close(s->dir_fd);
    free(s->key_path);
    free(s->db_path);
    if (s->has_lock)
        pthread_mutex_destroy(&s->lock);
    if (s->has_readers_lock)
        pthread_mutex_destroy(&s->readers_lock);
    live_clear(&s->live);
    if (s->live.has_lock)
        pthread_mutex_destroy(&s->live.lock);
    if (s->shm)
        munmap((void *)s->shm, s->shm_len);
    sodium_memzero(s, sizeof(*s));
    free(s);
    *sp = NULL;
}

/* ---- master key versions ------------------------------------------------ */

/*
 * Adopts a master.key that another process (`keys rotate`) has written
 * since we loaded ours, so that a running server opens records sealed
 * under the new version and migrates records to it. Looks at most every
 * KEY_RELOAD_INTERVAL_S unless `force` (a record names a version we do
 * not have). The new file is taken only if its first version is ours
 * (same lookup key) and every version matches a recorded key check; a
 * version without one yet (the rotation has renamed the file but not
 * committed) is tried again later. Call under lock.
 */
static void reload_keys_locked(struct store *s, bool force)
{
    struct key_set *ks = NULL;
    char *text = NULL;
    size_t len = 0;
    struct file_id id;
    struct stat st;
    int64_t now = monotonic_s();
    const char *reason = NULL;

    if (!force && now - s->keys_checked_at < KEY_RELOAD_INTERVAL_S)
        return;
    s->keys_checked_at = now;
    if ((s->key_path ? stat(s->key_path, &st) : fstatat(s->dir_fd, MASTER_KEY_FILE, &st, 0)) != 0)
        return;
    file_id_of(&st, &id);
    if (file_id_eq(&id, &s->key_file))
        return;
    ks = sodium_malloc(sizeof(*ks));
    text = sodium_malloc(MASTER_KEY_FILE_MAX + 1);
    if (!ks || !text)
        goto out;
    if (read_key_file(s->dir_fd, s->key_path, s->is_key_shared_ok, text, &len, &id) != TM_OK ||
        parse_master_keys(text, len, ks) != TM_OK) {
        reason = "malformed";
        goto out;
    }
    if (ks->e[0].version != s->keys.e[0].version ||
        sodium_memcmp(ks->lookup_key, s->lookup_key, SUBKEY_LEN) != 0) {
        reason = "lookup_version";
        goto out;
    }
    for (int i = 0; i < ks->n; i++) {
        enum tm_err err = check_master_key(s->db, ks->e[i].version, ks->e[i].check, false);
        if (err == TM_ERR_NOT_FOUND)
            goto out; /* not committed yet, or never: look again later, quietly */
        if (err != TM_OK) {
            reason = "mismatch";
            goto out;
        }
    }
    memcpy(&s->keys, ks, sizeof(*ks));
    s->key_file = id;
    log_msg(LOG_INFO, "event=store_keys_reloaded versions=%d current=%d", s->keys.n,
            s->keys.e[s->keys.n - 1].version);
out:
    /* A file we refuse is said once (its id is remembered), and the keys we have stay. */
    if (reason) {
        log_msg(LOG_ERROR, "event=store_keys_reload_refused reason=%s", reason);
        s->key_file = id;
    }
    sodium_free(ks);
    sodium_free(text);
}

/* ---- records ------------------------------------------------------------ */

/* TM_ERR_EXISTS when the record or public id is taken (the caller draws a new token). */
static enum tm_err insert_record(struct store *s, const unsigned char record_id[RECORD_ID_LEN],
                                 const char *public_id, const struct creds *c, int key_version,
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
        rc = sqlite3_bind_int(st, 3, key_version);
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

    for (int attempt = 0; attempt < ADD_ATTEMPTS; attempt++) {
        int version = 0;

        randombytes_buf(token, sizeof(token));
        derive_record_id(s, token, record_id, public_id);
        free(sealed);
        sealed = NULL;
        err = seal_record(s, token, record_id, plain, plain_len, &sealed, &sealed_len, &version);
        if (err != TM_OK)
            goto out;
        err = insert_record(s, record_id, public_id, c, version, sealed, sealed_len,
                            (int64_t)time(NULL));
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
    creds_wipe_free(plain, plain_len);
    free(sealed);
    return err;
}

/*
 * Reads the row of record_id with `st` (a find statement of `db`) into
 * *rec. The caller holds whatever guards db.
 */
static enum tm_err read_record(sqlite3 *db, sqlite3_stmt *st,
                               const unsigned char record_id[RECORD_ID_LEN],
                               struct loaded_record *rec)
{
    enum tm_err err = TM_ERR_STORE;
    unsigned char *copy = NULL;
    const void *blob;
    const char *public_id;
    size_t id_len;
    int blob_len;
    int rc;

    rc = sqlite3_bind_blob(st, 1, record_id, RECORD_ID_LEN, SQLITE_STATIC);
    if (rc != SQLITE_OK) {
        err = sql_fail(db, "find", rc);
        goto out;
    }
    rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) {
        err = TM_ERR_NOT_FOUND;
        goto out;
    }
    if (rc != SQLITE_ROW) {
        err = sql_fail(db, "find", rc);
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
    rec->key_version = sqlite3_column_int64(st, 0);
    rec->last_used_at = sqlite3_column_int64(st, 2);
    public_id = (const char *)sqlite3_column_text(st, 3);
    id_len = public_id ? (size_t)sqlite3_column_bytes(st, 3) : 0;
    if (id_len > STORE_ID_LEN)
        id_len = STORE_ID_LEN; /* not a public id; is_public_id refuses what is left */
    memcpy(rec->public_id, public_id ? public_id : "", id_len);
    rec->public_id[id_len] = '\0';
    rec->sealed = copy;
    rec->sealed_len = blob_len > 0 ? (size_t)blob_len : 0;
    copy = NULL;
    err = TM_OK;
out:
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    free(copy);
    return err;
}

static enum tm_err load_record(struct store *s, const unsigned char record_id[RECORD_ID_LEN],
                               struct loaded_record *rec)
{
    lock(s);
    enum tm_err err = read_record(s->db, s->st_find, record_id, rec);
    unlock(s);
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

/*
 * Copies the seal subkey of `version` out under the lock, reloading
 * master.key first when it may have changed. False when no loaded version
 * has that number.
 */
static bool seal_subkey_for(struct store *s, int64_t version, unsigned char subkey[SUBKEY_LEN])
{
    const struct key_entry *e;

    lock(s);
    reload_keys_locked(s, false);
    e = key_find(&s->keys, version);
    if (!e) {
        reload_keys_locked(s, true);
        e = key_find(&s->keys, version);
    }
    if (e)
        memcpy(subkey, e->seal_key, SUBKEY_LEN);
    unlock(s);
    return e != NULL;
}

/* The version new seals use now. */
static int current_version(struct store *s)
{
    lock(s);
    int v = s->keys.e[s->keys.n - 1].version;
    unlock(s);
    return v;
}

/*
 * Opens `rec`, the row of `token`'s record: on TM_OK *out holds the
 * credentials and *plain_out their encoded bytes (the caller wipes and
 * frees them with creds_wipe_free). A record that exists but does not open
 * is TM_ERR_DENIED, logged here once with its public id.
 */
static enum tm_err unseal_record(struct store *s, const unsigned char token[TOKEN_BYTES],
                                 const unsigned char record_id[RECORD_ID_LEN],
                                 const struct loaded_record *rec, struct creds *out,
                                 unsigned char **plain_out, size_t *plain_len_out)
{
    enum tm_err err = TM_ERR_INTERNAL;
    unsigned char subkey[SUBKEY_LEN];
    unsigned char key[SUBKEY_LEN];
    unsigned char ad[AD_LEN];
    unsigned char *plain = NULL;
    size_t plain_len = 0;
    struct creds found = {0};
    const char *reason = NULL; /* why a record that exists did not open; logged once */

    if (rec->key_version < 1 || rec->key_version > MASTER_KEY_VERSION_MAX ||
        !seal_subkey_for(s, rec->key_version, subkey)) {
        reason = "key_version";
        err = TM_ERR_DENIED;
        goto out;
    }
    if (rec->sealed_len < NONCE_LEN + TAG_LEN) {
        reason = "short";
        err = TM_ERR_DENIED;
        goto out;
    }
    plain_len = rec->sealed_len - NONCE_LEN - TAG_LEN;
    plain = malloc(plain_len > 0 ? plain_len : 1);
    if (!plain) {
        err = TM_ERR_NOMEM;
        goto out;
    }
    derive_record_key(subkey, token, key);
    build_ad(ad, record_id, (int)rec->key_version);
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(plain, NULL, NULL, rec->sealed + NONCE_LEN,
                                                   rec->sealed_len - NONCE_LEN, ad, sizeof(ad),
                                                   rec->sealed, key) != 0) {
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
    *out = found;
    memset(&found, 0, sizeof(found));
    *plain_out = plain;
    *plain_len_out = plain_len;
    plain = NULL;
    err = TM_OK;
out:
    if (reason)
        log_msg(LOG_WARN, "event=store_open_failed id=%s reason=%s key_version=%" PRId64,
                rec->public_id, reason, rec->key_version);
    sodium_memzero(subkey, sizeof(subkey));
    sodium_memzero(key, sizeof(key));
    creds_cleanup(&found);
    creds_wipe_free(plain, plain_len);
    return err;
}

/* load_record, then unseal_record. */
static enum tm_err open_record(struct store *s, const unsigned char token[TOKEN_BYTES],
                               const unsigned char record_id[RECORD_ID_LEN],
                               struct loaded_record *rec, struct creds *out,
                               unsigned char **plain_out, size_t *plain_len_out)
{
    enum tm_err err = load_record(s, record_id, rec);
    if (err != TM_OK)
        return err;
    return unseal_record(s, token, record_id, rec, out, plain_out, plain_len_out);
}

/*
 * Re-seals an opened record under the current key version (lazy
 * migration). One UPDATE, which names the version it read: if another
 * thread or process migrated or rotated the record meanwhile, it changes
 * nothing. Best effort: the caller already has what it asked for.
 */
static void migrate_record(struct store *s, const unsigned char token[TOKEN_BYTES],
                           const unsigned char record_id[RECORD_ID_LEN],
                           const struct loaded_record *rec, const unsigned char *plain,
                           size_t plain_len)
{
    unsigned char *sealed = NULL;
    size_t sealed_len = 0;
    int version = 0;
    sqlite3_stmt *st = s->st_migrate;
    int rc;

    if (seal_record(s, token, record_id, plain, plain_len, &sealed, &sealed_len, &version) != TM_OK)
        return;
    if (version == rec->key_version) {
        free(sealed);
        return;
    }
    lock(s);
    rc = sqlite3_bind_blob(st, 1, record_id, RECORD_ID_LEN, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 2, rec->key_version);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int(st, 3, version);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_blob64(st, 4, sealed, sealed_len, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
        log_msg(LOG_WARN, "event=store_migrate_failed id=%s rc=%d err=\"%s\"", rec->public_id, rc,
                sqlite3_errmsg(s->db));
    else if (sqlite3_changes(s->db) > 0)
        log_msg(LOG_INFO, "event=store_record_migrated id=%s from=%" PRId64 " to=%d",
                rec->public_id, rec->key_version, version);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    unlock(s);
    free(sealed);
}

/* A record found by store_find_id, still sealed, with what opening it takes. */
struct store_sealed {
    unsigned char token[TOKEN_BYTES]; /* wiped by store_sealed_free */
    unsigned char record_id[RECORD_ID_LEN];
    struct loaded_record rec;
};

/* Reads the row of a record through a reader connection: its own read transaction. */
static enum tm_err read_fresh(struct store *s, const unsigned char record_id[RECORD_ID_LEN],
                              struct loaded_record *rec)
{
    struct reader *r = NULL;
    enum tm_err err = reader_take(s, &r);
    if (err != TM_OK)
        return err;
    err = read_record(r->db, r->st_find, record_id, rec);
    reader_give_back(s, r);
    return err;
}

/* The record `token` names, still sealed (caller frees with store_sealed_free). */
static enum tm_err find_sealed(struct store *s, const char *token, struct store_sealed **out)
{
    enum tm_err err = TM_ERR_STORE;
    unsigned char state[WAL_HDR_LEN];
    struct store_sealed *found = calloc(1, sizeof(*found));

    *out = NULL;
    if (!found)
        return TM_ERR_NOMEM;
    if (!token_decode(token, found->token)) {
        err = TM_ERR_NOT_FOUND;
        goto out;
    }
    derive_record_id(s, found->token, found->record_id, NULL);
    /*
     * A revocation or rotation committed by any connection or process
     * before this call changes the WAL-index header, which is read first:
     * the cache answers only while the header is what it was when SQLite
     * found the record live. Otherwise SQLite is asked, in a read
     * transaction that starts from the newest commit.
     */
    bool has_state = wal_state(s, state);
    if (!has_state || !live_find(s, state, found->record_id, &found->rec)) {
        err = read_fresh(s, found->record_id, &found->rec);
        if (err != TM_OK)
            goto out;
        if (!is_public_id(found->rec.public_id)) {
            err = TM_ERR_STORE;
            goto out;
        }
        if (has_state)
            live_note(s, state, found->record_id, &found->rec);
    }
    *out = found;
    found = NULL;
    err = TM_OK;
out:
    store_sealed_free(&found);
    return err;
}

/* Counts a use of the record: last_used_at, at most once per TOUCH_INTERVAL_S. */
static void touch_if_due(struct store *s, const struct store_sealed *found)
{
    int64_t now = (int64_t)time(NULL);
    if (now - found->rec.last_used_at >= TOUCH_INTERVAL_S)
        touch_record(s, found->record_id, now);
}

enum tm_err store_find_id(struct store *s, const char *token, char id_out[STORE_ID_LEN + 1],
                          struct store_sealed **sealed_out)
{
    struct store_sealed *found = NULL;

    if (sealed_out)
        *sealed_out = NULL;
    if (!s || !id_out)
        return TM_ERR_INVALID;
    enum tm_err err = find_sealed(s, token, &found);
    if (err != TM_OK)
        return err;
    memcpy(id_out, found->rec.public_id, STORE_ID_LEN + 1);
    if (sealed_out) {
        /* The caller counts the use once it knows whether the record must open. */
        *sealed_out = found;
        return TM_OK;
    }
    touch_if_due(s, found);
    store_sealed_free(&found);
    return TM_OK;
}

void store_count_use(struct store *s, const struct store_sealed *sealed)
{
    if (s && sealed)
        touch_if_due(s, sealed);
}

enum tm_err store_open_sealed(struct store *s, const struct store_sealed *sealed, struct creds *out)
{
    unsigned char *plain = NULL;
    size_t plain_len = 0;

    if (out)
        memset(out, 0, sizeof(*out));
    if (!s || !sealed || !out)
        return TM_ERR_INVALID;
    enum tm_err err =
        unseal_record(s, sealed->token, sealed->record_id, &sealed->rec, out, &plain, &plain_len);
    if (err == TM_OK && sealed->rec.key_version != current_version(s))
        migrate_record(s, sealed->token, sealed->record_id, &sealed->rec, plain, plain_len);
    creds_wipe_free(plain, plain_len);
    /* Only a record that opened counts as used. */
    if (err == TM_OK)
        touch_if_due(s, sealed);
    return err;
}

void store_sealed_free(struct store_sealed **p)
{
    if (!p || !*p)
        return;
    free((*p)->rec.sealed);
    sodium_memzero(*p, sizeof(**p));
    free(*p);
    *p = NULL;
}

/* The URL check, then opening: the two halves a request that needs credentials runs. */
enum tm_err store_find(struct store *s, const char *token, struct creds *out,
                       char id_out[STORE_ID_LEN + 1])
{
    struct store_sealed *sealed = NULL;

    if (out)
        memset(out, 0, sizeof(*out));
    if (!s || !out)
        return TM_ERR_INVALID;
    enum tm_err err = find_sealed(s, token, &sealed);
    if (err == TM_OK)
        err = store_open_sealed(s, sealed, out); /* counts the use if it opens */
    if (err == TM_OK && id_out)
        memcpy(id_out, sealed->rec.public_id, STORE_ID_LEN + 1);
    store_sealed_free(&sealed);
    return err;
}

/* Moves the record from old_id to new_id, sealed anew; one UPDATE, so all or nothing. */
static enum tm_err rekey_record(struct store *s, const unsigned char old_id[RECORD_ID_LEN],
                                int64_t old_version, const unsigned char new_id[RECORD_ID_LEN],
                                int new_version, const unsigned char *sealed, size_t sealed_len)
{
    enum tm_err err = TM_ERR_STORE;
    sqlite3_stmt *st = s->st_rekey;
    int rc;

    lock(s);
    rc = sqlite3_bind_blob(st, 1, old_id, RECORD_ID_LEN, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 2, old_version);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_blob(st, 3, new_id, RECORD_ID_LEN, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int(st, 4, new_version);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_blob64(st, 5, sealed, sealed_len, SQLITE_STATIC);
    if (rc != SQLITE_OK) {
        err = sql_fail(s->db, "rotate", rc);
        goto out;
    }
    rc = sqlite3_step(st);
    if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY) {
        err = TM_ERR_EXISTS;
        goto out;
    }
    if (rc != SQLITE_DONE) {
        err = sql_fail(s->db, "rotate", rc);
        goto out;
    }
    /* Nothing changed: rotated, migrated or revoked since we read it. */
    err = sqlite3_changes(s->db) > 0 ? TM_OK : TM_ERR_NOT_FOUND;
out:
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    unlock(s);
    return err;
}

enum tm_err store_rotate(struct store *s, const char *old_token,
                         char new_token_out[STORE_TOKEN_LEN + 1], char id_out[STORE_ID_LEN + 1])
{
    enum tm_err err = TM_ERR_INTERNAL;
    unsigned char old_bin[TOKEN_BYTES];
    unsigned char new_bin[TOKEN_BYTES];
    unsigned char old_id[RECORD_ID_LEN];
    unsigned char new_id[RECORD_ID_LEN];
    struct loaded_record rec = {0};
    struct creds c = {0};
    unsigned char *plain = NULL;
    size_t plain_len = 0;
    unsigned char *sealed = NULL;
    size_t sealed_len = 0;

    if (!s || !new_token_out)
        return TM_ERR_INVALID;
    if (!token_decode(old_token, old_bin))
        return TM_ERR_NOT_FOUND;
    derive_record_id(s, old_bin, old_id, NULL);
    err = open_record(s, old_bin, old_id, &rec, &c, &plain, &plain_len);
    if (err != TM_OK)
        goto out;
    for (int attempt = 0; attempt < ADD_ATTEMPTS; attempt++) {
        int version = 0;

        randombytes_buf(new_bin, sizeof(new_bin));
        derive_record_id(s, new_bin, new_id, NULL);
        free(sealed);
        sealed = NULL;
        err = seal_record(s, new_bin, new_id, plain, plain_len, &sealed, &sealed_len, &version);
        if (err != TM_OK)
            goto out;
        err = rekey_record(s, old_id, rec.key_version, new_id, version, sealed, sealed_len);
        if (err != TM_ERR_EXISTS)
            break;
    }
    if (err != TM_OK)
        goto out;
    sodium_bin2base64(new_token_out, STORE_TOKEN_LEN + 1, new_bin, sizeof(new_bin),
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    if (id_out)
        memcpy(id_out, rec.public_id, STORE_ID_LEN + 1);
    log_msg(LOG_INFO, "event=store_record_rotated id=%s", rec.public_id);
    err = TM_OK;
out:
    sodium_memzero(old_bin, sizeof(old_bin));
    sodium_memzero(new_bin, sizeof(new_bin));
    creds_cleanup(&c);
    creds_wipe_free(plain, plain_len);
    free(sealed);
    free(rec.sealed);
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

enum tm_err store_count_users(struct store *s, int64_t *n)
{
    sqlite3_stmt *st = NULL;
    enum tm_err err = TM_OK;
    int rc;

    if (!s || !n)
        return TM_ERR_INVALID;
    lock(s);
    rc = sqlite3_prepare_v2(s->db, "SELECT count(*) FROM users", -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *n = sqlite3_column_int64(st, 0);
    else
        err = sql_fail(s->db, "count", rc);
    sqlite3_finalize(st);
    unlock(s);
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

/* ---- master key rotation and status ------------------------------------ */

/*
 * Under the lock and inside one IMMEDIATE transaction (which also keeps a
 * second `keys rotate` in another process out): re-read master.key, which
 * must still start with our lookup version; record the new version's key
 * check; write old lines + the new one to a temporary file and rename it
 * over master.key; commit. If the commit fails after the rename, the file
 * holds a version with no check yet: the next open records it (no record
 * uses it), so nothing is lost either way.
 */
enum tm_err store_rotate_master_key(struct store *s, int *version_out)
{
    enum tm_err err = TM_ERR_INTERNAL;
    struct key_set *ks = NULL;
    char *text = NULL;
    size_t len = 0;
    unsigned char master[MASTER_KEY_LEN];
    char tmp_name[64] = "";
    struct file_id id;
    struct stat st;
    bool in_tx = false;
    int version;
    int n;

    if (!s)
        return TM_ERR_INVALID;
    if (s->key_path) {
        /* The operator's file (a Docker secret) is theirs to change: add a line to it. */
        log_msg(LOG_ERROR,
                "event=store_master_key_rotate_refused reason=key_file path=\"%s\" "
                "hint=\"append a line from turso-mcp keygen with the next version\"",
                s->key_path);
        return TM_ERR_DENIED;
    }
    ks = sodium_malloc(sizeof(*ks));
    text = sodium_malloc(MASTER_KEY_FILE_MAX + MASTER_KEY_LINE_MAX + 1);
    if (!ks || !text) {
        sodium_free(ks);
        sodium_free(text);
        return TM_ERR_NOMEM;
    }
    lock(s);
    err = exec_sql(s->db, "begin", "BEGIN IMMEDIATE");
    if (err != TM_OK)
        goto out;
    in_tx = true;
    err = read_key_file(s->dir_fd, NULL, false, text, &len, &id);
    if (err == TM_ERR_NOT_FOUND)
        err = TM_ERR_IO;
    if (err != TM_OK)
        goto out;
    if (parse_master_keys(text, len, ks) != TM_OK) {
        log_msg(LOG_ERROR, "event=store_master_key_rejected reason=malformed");
        err = TM_ERR_INVALID;
        goto out;
    }
    if (ks->e[0].version != s->keys.e[0].version ||
        sodium_memcmp(ks->lookup_key, s->lookup_key, SUBKEY_LEN) != 0) {
        log_msg(LOG_ERROR, "event=store_master_key_rejected reason=lookup_version");
        err = TM_ERR_DENIED;
        goto out;
    }
    for (int i = 0; i < ks->n; i++) {
        err = check_master_key(s->db, ks->e[i].version, ks->e[i].check, true);
        if (err != TM_OK)
            goto out;
    }
    if (ks->n == MASTER_KEY_VERSIONS_MAX) {
        err = TM_ERR_TOO_LARGE;
        goto out;
    }
    if (ks->e[ks->n - 1].version >= MASTER_KEY_VERSION_MAX) {
        err = TM_ERR_INVALID;
        goto out;
    }
    version = ks->e[ks->n - 1].version + 1;

    randombytes_buf(master, sizeof(master));
    struct key_entry *e = &ks->e[ks->n];
    e->version = version;
    if (crypto_kdf_derive_from_key(e->seal_key, SUBKEY_LEN, 1, KDF_CTX_SEAL, master) != 0 ||
        crypto_kdf_derive_from_key(e->check, SUBKEY_LEN, 1, KDF_CTX_CHECK, master) != 0) {
        err = TM_ERR_CRYPTO;
        goto out;
    }
    ks->n++;
    /* A check already there for a version the file never had: someone edited the store. */
    err = check_master_key(s->db, version, e->check, true);
    if (err != TM_OK)
        goto out;

    /* The old lines stay byte for byte; a file without a final newline was refused above. */
    n = snprintf(text + len, MASTER_KEY_LINE_MAX, "v%d:", version);
    sodium_bin2hex(text + len + n, MASTER_KEY_LINE_MAX - (size_t)n, master, sizeof(master));
    len += (size_t)n + 2 * MASTER_KEY_LEN;
    text[len++] = '\n';
    err = write_key_tmp(s->dir_fd, text, len, tmp_name, sizeof(tmp_name));
    if (err != TM_OK)
        goto out;
    if (renameat(s->dir_fd, tmp_name, s->dir_fd, MASTER_KEY_FILE) != 0) {
        log_msg(LOG_ERROR, "event=store_master_key_write_failed errno=%d err=\"%s\"", errno,
                strerror(errno));
        err = TM_ERR_IO;
        goto out;
    }
    tmp_name[0] = '\0';
    if (fsync(s->dir_fd) != 0)
        log_msg(LOG_WARN, "event=store_master_key_dir_sync_failed errno=%d", errno);
    err = exec_sql(s->db, "commit", "COMMIT");
    in_tx = false;
    if (err != TM_OK)
        goto out;
    if (fstatat(s->dir_fd, MASTER_KEY_FILE, &st, 0) == 0)
        file_id_of(&st, &id);
    memcpy(&s->keys, ks, sizeof(*ks));
    s->key_file = id;
    log_msg(LOG_INFO, "event=store_master_key_rotated current=%d versions=%d", version, ks->n);
    if (version_out)
        *version_out = version;
    err = TM_OK;
out:
    if (in_tx)
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    if (tmp_name[0])
        unlinkat(s->dir_fd, tmp_name, 0);
    unlock(s);
    sodium_memzero(master, sizeof(master));
    sodium_free(ks);
    sodium_free(text);
    return err;
}

enum tm_err store_key_status(struct store *s, store_key_fn fn, void *ctx)
{
    enum tm_err err = TM_ERR_STORE;
    /* At most the file's versions plus the versions the store names; grown as needed. */
    struct store_key_info *rows = NULL;
    size_t n_rows = 0, cap = 0;
    sqlite3_stmt *st = NULL;
    int rc;

    if (!s || !fn)
        return TM_ERR_INVALID;
    lock(s);
    reload_keys_locked(s, true);
    rc = sqlite3_prepare_v2(s->db,
                            "SELECT v.version, (SELECT count(*) FROM users u"
                            " WHERE u.key_version = v.version) FROM (SELECT version FROM"
                            " master_keys UNION SELECT key_version FROM users) v ORDER BY 1",
                            -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    for (; rc == SQLITE_ROW; rc = sqlite3_step(st)) {
        if (n_rows == cap) {
            size_t new_cap = cap ? cap * 2 : 16;
            struct store_key_info *grown = realloc(rows, new_cap * sizeof(*rows));
            if (!grown) {
                err = TM_ERR_NOMEM;
                goto out;
            }
            rows = grown;
            cap = new_cap;
        }
        struct store_key_info *info = &rows[n_rows++];
        int64_t v = sqlite3_column_int64(st, 0);
        memset(info, 0, sizeof(*info));
        info->version = v > INT32_MAX ? INT32_MAX : (v < INT32_MIN ? INT32_MIN : (int)v);
        info->n_records = sqlite3_column_int64(st, 1);
        info->is_loaded = key_find(&s->keys, v) != NULL;
        info->is_current = v == s->keys.e[s->keys.n - 1].version;
        info->is_lookup = v == s->keys.e[0].version;
    }
    if (rc != SQLITE_DONE) {
        err = sql_fail(s->db, "key_status", rc);
        goto out;
    }
    err = TM_OK;
out:
    sqlite3_finalize(st);
    unlock(s);
    for (size_t i = 0; err == TM_OK && i < n_rows; i++)
        fn(&rows[i], ctx);
    free(rows);
    return err;
}

/* ---- store check ---------------------------------------------------------- */

/* Problems found so far, as owned strings, handed to the callback after the lock is released. */
struct problems {
    char **items;
    size_t n, cap;
    bool is_oom;
};

__attribute__((format(printf, 2, 3))) static void problem(struct problems *p, const char *fmt, ...)
{
    char buf[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (p->n == p->cap) {
        size_t new_cap = p->cap ? p->cap * 2 : 16;
        char **grown = realloc(p->items, new_cap * sizeof(*grown));
        if (!grown) {
            p->is_oom = true;
            return;
        }
        p->items = grown;
        p->cap = new_cap;
    }
    p->items[p->n] = strdup(buf);
    if (!p->items[p->n]) {
        p->is_oom = true;
        return;
    }
    p->n++;
}

static bool is_name(const unsigned char *text, int len, int max)
{
    if (!text || len < 1 || len > max)
        return false;
    for (int i = 0; i < len; i++) {
        unsigned char ch = text[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '.' || ch == '-'))
            return false;
    }
    return true;
}

static bool is_outcome(const unsigned char *text, int len)
{
    if (!text || len < 1 || len > ACTIVITY_OUTCOME_MAX)
        return false;
    for (int i = 0; i < len; i++)
        if (!((text[i] >= 'a' && text[i] <= 'z') || text[i] == '_'))
            return false;
    return true;
}

/* Runs `sql` and calls row() for each row; the one helper every check below uses. */
static int check_query(struct store *s, const char *sql,
                       void (*row)(sqlite3_stmt *st, struct store *s, struct problems *p),
                       struct problems *p)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    for (; rc == SQLITE_ROW; rc = sqlite3_step(st))
        row(st, s, p);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static void check_integrity_row(sqlite3_stmt *st, struct store *s, struct problems *p)
{
    const char *msg = (const char *)sqlite3_column_text(st, 0);
    if (!msg || strcmp(msg, "ok") != 0)
        problem(p, "SQLite integrity: %s", msg ? msg : "(no message)");
}

static void check_user_row(sqlite3_stmt *st, struct store *s, struct problems *p)
{
    int64_t rowid = sqlite3_column_int64(st, 0);
    const char *id = (const char *)sqlite3_column_text(st, 2);
    int64_t version = sqlite3_column_int64(st, 3);
    char who[48];

    if (is_public_id(id))
        snprintf(who, sizeof(who), "user %s", id);
    else
        snprintf(who, sizeof(who), "user row %" PRId64, rowid);
    if (!is_public_id(id))
        problem(p, "%s: public id is not 16 lower-case hex digits", who);
    if (sqlite3_column_type(st, 1) != SQLITE_BLOB || sqlite3_column_bytes(st, 1) != RECORD_ID_LEN)
        problem(p, "%s: record id is not %d bytes", who, RECORD_ID_LEN);
    if (sqlite3_column_type(st, 3) != SQLITE_INTEGER || version < 1 ||
        version > MASTER_KEY_VERSION_MAX)
        problem(p, "%s: key version is not a version number", who);
    else if (sqlite3_column_int(st, 7) == 0)
        problem(p, "%s: key version %" PRId64 " has no key check in the store", who, version);
    else if (!key_find(&s->keys, version))
        problem(p, "%s: key version %" PRId64 " is not in master.key, so it cannot be opened", who,
                version);
    if (sqlite3_column_type(st, 4) != SQLITE_BLOB ||
        sqlite3_column_bytes(st, 4) < (int)SEALED_MIN_LEN)
        problem(p, "%s: sealed credentials shorter than a nonce, a tag and an empty record", who);
    if (sqlite3_column_type(st, 5) != SQLITE_INTEGER ||
        (sqlite3_column_int64(st, 5) != 0 && sqlite3_column_int64(st, 5) != 1))
        problem(p, "%s: read-only flag is neither 0 nor 1", who);
    if (sqlite3_column_type(st, 6) != SQLITE_INTEGER || sqlite3_column_int64(st, 6) <= 0)
        problem(p, "%s: creation time is not a positive number", who);
    if (sqlite3_column_type(st, 8) != SQLITE_INTEGER || sqlite3_column_int64(st, 8) < 0)
        problem(p, "%s: last use time is negative", who);
    if (sqlite3_column_type(st, 9) != SQLITE_NULL && sqlite3_column_type(st, 9) != SQLITE_TEXT)
        problem(p, "%s: label is not text", who);
}

static void check_duplicate_row(sqlite3_stmt *st, struct store *s, struct problems *p)
{
    problem(p, "%" PRId64 " users share the %s %s", (int64_t)sqlite3_column_int64(st, 1),
            (const char *)sqlite3_column_text(st, 2), (const char *)sqlite3_column_text(st, 0));
}

static void check_key_row(sqlite3_stmt *st, struct store *s, struct problems *p)
{
    int64_t version = sqlite3_column_int64(st, 0);
    const void *stored = sqlite3_column_blob(st, 1);
    const struct key_entry *e = key_find(&s->keys, version);

    if (!stored || sqlite3_column_bytes(st, 1) != SUBKEY_LEN) {
        problem(p, "key version %" PRId64 ": key check is not %d bytes", version, SUBKEY_LEN);
        return;
    }
    if (e && sodium_memcmp(stored, e->check, SUBKEY_LEN) != 0)
        problem(p, "key version %" PRId64 ": master.key does not match its key check", version);
}

static void check_lookup_row(sqlite3_stmt *st, struct store *s, struct problems *p)
{
    if (sqlite3_column_type(st, 0) != SQLITE_NULL &&
        sqlite3_column_int64(st, 0) != s->keys.e[0].version)
        problem(p,
                "the store's first key version is %" PRId64
                " but master.key starts with version %d: records cannot be found",
                (int64_t)sqlite3_column_int64(st, 0), s->keys.e[0].version);
}

static void check_activity_row(sqlite3_stmt *st, struct store *s, struct problems *p)
{
    int64_t rowid = sqlite3_column_int64(st, 0);
    const unsigned char *tool = sqlite3_column_text(st, 2);
    const unsigned char *db = sqlite3_column_text(st, 3);
    const unsigned char *outcome = sqlite3_column_text(st, 4);

    if (sqlite3_column_int(st, 5) == 0)
        problem(p, "activity row %" PRId64 ": belongs to no user", rowid);
    if (sqlite3_column_type(st, 1) != SQLITE_INTEGER || sqlite3_column_int64(st, 1) <= 0)
        problem(p, "activity row %" PRId64 ": time is not a positive number", rowid);
    if (!is_name(tool, sqlite3_column_bytes(st, 2), STORE_ACTIVITY_NAME_MAX))
        problem(p, "activity row %" PRId64 ": tool is not a name", rowid);
    if (sqlite3_column_bytes(st, 3) > 0 &&
        !is_name(db, sqlite3_column_bytes(st, 3), STORE_ACTIVITY_NAME_MAX))
        problem(p, "activity row %" PRId64 ": database is not a name", rowid);
    if (!is_outcome(outcome, sqlite3_column_bytes(st, 4)))
        problem(p, "activity row %" PRId64 ": outcome is not a word", rowid);
}

static void check_activity_count_row(sqlite3_stmt *st, struct store *s, struct problems *p)
{
    problem(p, "user %s has %" PRId64 " activity entries, more than %d",
            (const char *)sqlite3_column_text(st, 0), (int64_t)sqlite3_column_int64(st, 1),
            STORE_ACTIVITY_MAX);
}

enum tm_err store_check(struct store *s, store_problem_fn fn, void *ctx, size_t *n_problems)
{
    enum tm_err err = TM_ERR_STORE;
    struct problems p = {0};
    int rc;

    if (!s)
        return TM_ERR_INVALID;
    lock(s);
    reload_keys_locked(s, true);
    rc = check_query(s, "PRAGMA integrity_check", check_integrity_row, &p);
    if (rc == SQLITE_OK)
        rc = check_query(s,
                         "SELECT u.id, u.record_id, u.public_id, u.key_version, u.sealed,"
                         " u.is_read_only, u.created_at, EXISTS (SELECT 1 FROM master_keys k"
                         " WHERE k.version = u.key_version), u.last_used_at, u.label"
                         " FROM users u ORDER BY u.id",
                         check_user_row, &p);
    if (rc == SQLITE_OK)
        rc = check_query(s,
                         "SELECT public_id, count(*), 'public id' FROM users GROUP BY public_id"
                         " HAVING count(*) > 1 UNION ALL SELECT hex(record_id), count(*),"
                         " 'record id' FROM users GROUP BY record_id HAVING count(*) > 1",
                         check_duplicate_row, &p);
    if (rc == SQLITE_OK)
        rc = check_query(s, "SELECT version, key_check FROM master_keys ORDER BY version",
                         check_key_row, &p);
    if (rc == SQLITE_OK)
        rc = check_query(s, "SELECT min(version) FROM master_keys", check_lookup_row, &p);
    if (rc == SQLITE_OK)
        rc = check_query(s,
                         "SELECT a.id, a.at, a.tool, a.database, a.outcome, EXISTS (SELECT 1"
                         " FROM users u WHERE u.public_id = a.public_id) FROM activity a"
                         " ORDER BY a.id",
                         check_activity_row, &p);
    if (rc == SQLITE_OK)
        rc = check_query(s,
                         "SELECT public_id, count(*) FROM activity GROUP BY public_id"
                         " HAVING count(*) > " STRINGIFY(STORE_ACTIVITY_MAX),
                         check_activity_count_row, &p);
    /* Versions in master.key that the store has no check for (a rotation that did not commit). */
    for (int i = 0; rc == SQLITE_OK && i < s->keys.n; i++) {
        enum tm_err kerr = check_master_key(s->db, s->keys.e[i].version, s->keys.e[i].check, false);
        if (kerr == TM_ERR_NOT_FOUND)
            problem(&p, "key version %d of master.key has no key check in the store",
                    s->keys.e[i].version);
    }
    if (rc != SQLITE_OK) {
        err = sql_fail(s->db, "check", rc);
        unlock(s);
        goto out;
    }
    unlock(s);
    if (p.is_oom) {
        err = TM_ERR_NOMEM;
        goto out;
    }
    for (size_t i = 0; fn && i < p.n; i++)
        fn(p.items[i], ctx);
    if (n_problems)
        *n_problems = p.n;
    err = TM_OK;
out:
    for (size_t i = 0; i < p.n; i++)
        free(p.items[i]);
    free(p.items);
    return err;
}

/* ---- activity ------------------------------------------------------------- */

/* Checks one entry's names; TM_ERR_INVALID for anything outside their forms. */
static enum tm_err check_activity(const struct store_activity_item *a)
{
    if (!is_public_id(a->id) || !a->tool ||
        !is_name((const unsigned char *)a->tool, (int)strnlen(a->tool, STORE_ACTIVITY_NAME_MAX + 1),
                 STORE_ACTIVITY_NAME_MAX) ||
        !a->outcome ||
        !is_outcome((const unsigned char *)a->outcome,
                    (int)strnlen(a->outcome, ACTIVITY_OUTCOME_MAX + 1)))
        return TM_ERR_INVALID;
    if (a->database && *a->database &&
        !is_name((const unsigned char *)a->database,
                 (int)strnlen(a->database, STORE_ACTIVITY_NAME_MAX + 1), STORE_ACTIVITY_NAME_MAX))
        return TM_ERR_INVALID;
    return TM_OK;
}

/* Inserts one entry; call inside the transaction. */
static enum tm_err insert_activity(struct store *s, const struct store_activity_item *a)
{
    enum tm_err err = TM_OK;
    int rc = sqlite3_bind_text(s->st_act_insert, 1, a->id, STORE_ID_LEN, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(s->st_act_insert, 2, a->at);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(s->st_act_insert, 3, a->tool, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(s->st_act_insert, 4, a->database ? a->database : "", -1,
                               SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(s->st_act_insert, 5, a->outcome, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(s->st_act_insert);
    if (rc != SQLITE_DONE) {
        err = sql_fail(s->db, "activity", rc);
        goto out;
    }
    if (sqlite3_changes(s->db) == 0)
        err = TM_ERR_NOT_FOUND; /* the user was revoked meanwhile */
out:
    sqlite3_reset(s->st_act_insert);
    sqlite3_clear_bindings(s->st_act_insert);
    return err;
}

/* Drops all but the user's STORE_ACTIVITY_MAX newest entries; inside the transaction. */
static enum tm_err trim_activity(struct store *s, const char *id)
{
    enum tm_err err = TM_OK;
    int rc = sqlite3_bind_text(s->st_act_trim, 1, id, STORE_ID_LEN, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int(s->st_act_trim, 2, STORE_ACTIVITY_MAX);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(s->st_act_trim);
    if (rc != SQLITE_DONE)
        err = sql_fail(s->db, "activity", rc);
    sqlite3_reset(s->st_act_trim);
    sqlite3_clear_bindings(s->st_act_trim);
    return err;
}

enum tm_err store_log_activities(struct store *s, const struct store_activity_item *items,
                                 size_t n_items, size_t *n_logged)
{
    enum tm_err err = TM_OK;
    bool in_tx = false;
    size_t logged = 0;

    if (!s)
        return TM_ERR_INVALID;
    lock(s);
    /*
     * NORMAL for this transaction only: in WAL mode it skips the fsync at
     * commit, so a crash may lose the newest entries but never corrupts
     * anything, and activity never waits on the disk.
     */
    err = exec_sql(s->db, "activity", "PRAGMA synchronous=NORMAL");
    if (err != TM_OK)
        goto out;
    err = exec_sql(s->db, "begin", "BEGIN IMMEDIATE");
    if (err != TM_OK)
        goto out;
    in_tx = true;
    for (size_t i = 0; i < n_items; i++) {
        /* A malformed entry, or one of a user revoked meanwhile, is skipped, not fatal. */
        if (check_activity(&items[i]) != TM_OK)
            continue;
        enum tm_err one = insert_activity(s, &items[i]);
        if (one == TM_OK)
            logged++;
        else if (one != TM_ERR_NOT_FOUND) {
            err = one;
            goto out;
        }
    }
    /* Each user's log is trimmed once per batch, after their last entry in it. */
    for (size_t i = 0; i < n_items; i++) {
        if (!is_public_id(items[i].id))
            continue;
        bool is_last = true;
        for (size_t j = i + 1; j < n_items && is_last; j++)
            is_last = !items[j].id || strncmp(items[j].id, items[i].id, STORE_ID_LEN) != 0;
        if (!is_last)
            continue;
        err = trim_activity(s, items[i].id);
        if (err != TM_OK)
            goto out;
    }
    err = exec_sql(s->db, "commit", "COMMIT");
    if (err == TM_OK)
        in_tx = false;
out:
    if (in_tx) {
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        logged = 0;
    }
    /* Every other write waits for the disk again. */
    sqlite3_exec(s->db, "PRAGMA synchronous=FULL", NULL, NULL, NULL);
    unlock(s);
    if (n_logged)
        *n_logged = logged;
    return err;
}

enum tm_err store_log_activity(struct store *s, const char *id, const char *tool,
                               const char *database, const char *outcome, int64_t at)
{
    struct store_activity_item item = {
        .id = id, .tool = tool, .database = database, .outcome = outcome, .at = at};
    enum tm_err err = check_activity(&item);
    if (err != TM_OK)
        return err;
    size_t logged = 0;
    err = store_log_activities(s, &item, 1, &logged);
    return err == TM_OK && logged == 0 ? TM_ERR_NOT_FOUND : err;
}

/* One activity entry copied out of its row. */
struct activity_row {
    int64_t at;
    char tool[STORE_ACTIVITY_NAME_MAX + 1];
    char database[STORE_ACTIVITY_NAME_MAX + 1];
    char outcome[ACTIVITY_OUTCOME_MAX + 1];
};

enum tm_err store_activity(struct store *s, const char *id, store_activity_fn fn, void *ctx)
{
    enum tm_err err = TM_ERR_STORE;
    struct activity_row *rows = NULL;
    size_t n_rows = 0;
    sqlite3_stmt *st;
    int rc;

    if (!s || !fn)
        return TM_ERR_INVALID;
    if (!is_public_id(id))
        return TM_OK; /* no such user: no activity */
    rows = calloc(STORE_ACTIVITY_MAX, sizeof(*rows));
    if (!rows)
        return TM_ERR_NOMEM;
    st = s->st_act_list;
    lock(s);
    rc = sqlite3_bind_text(st, 1, id, STORE_ID_LEN, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int(st, 2, STORE_ACTIVITY_MAX);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    /* LIMIT bounds the rows; the count check keeps that from being a buffer's only guard. */
    for (; rc == SQLITE_ROW && n_rows < STORE_ACTIVITY_MAX; rc = sqlite3_step(st)) {
        struct activity_row *r = &rows[n_rows++];
        const char *t;
        r->at = sqlite3_column_int64(st, 0);
        t = (const char *)sqlite3_column_text(st, 1);
        snprintf(r->tool, sizeof(r->tool), "%s", t ? t : "");
        t = (const char *)sqlite3_column_text(st, 2);
        snprintf(r->database, sizeof(r->database), "%s", t ? t : "");
        t = (const char *)sqlite3_column_text(st, 3);
        snprintf(r->outcome, sizeof(r->outcome), "%s", t ? t : "");
    }
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        err = sql_fail(s->db, "activity_list", rc);
    else
        err = TM_OK;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    unlock(s);
    for (size_t i = 0; err == TM_OK && i < n_rows; i++) {
        struct store_activity_entry e = {.at = rows[i].at,
                                         .tool = rows[i].tool,
                                         .database = rows[i].database,
                                         .outcome = rows[i].outcome};
        fn(&e, ctx);
    }
    free(rows);
    return err;
}
