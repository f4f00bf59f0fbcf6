/*
 * Unit tests for the encrypted user store (SQLite backend), through
 * store.h. Each case works in its own data directory under one mkdtemp
 * directory, removed at the end. Tampering goes through the sqlite3 API on
 * store.db directly, as an attacker with the file would.
 */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <sodium.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "test.h"

static char root[] = "/tmp/tm-test-store-XXXXXX";
static int n_dirs;

/* Distinctive values, so that a plaintext copy in the store file would be found. */
#define SECRET_URL      "libsql://secret-orders-db-acme.aws-eu-west-1.turso.io"
#define SECRET_DB_TOKEN "eyJhbGciOiJFZERTQSJ9.SECRET-DB-TOKEN-PAYLOAD.c2lnbmF0dXJl"
#define SECRET_PLATFORM "SECRET-PLATFORM-TOKEN-d2b1f0a9c8e7"
#define SECRET_ORG      "secret-org-acme-industries"
#define SECRET_DB       "secret-default-database"
#define PLAIN_LABEL     "cursor-on-the-work-laptop"

/* ---- helpers --------------------------------------------------------------- */

static void new_data_dir(char *out, size_t out_len)
{
    /* A path that does not exist yet: store_open must create it. */
    snprintf(out, out_len, "%s/data%d", root, n_dirs++);
}

static void path_in(char *out, size_t out_len, const char *dir, const char *name)
{
    snprintf(out, out_len, "%s/%s", dir, name);
}

static unsigned char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    unsigned char *buf = NULL;
    size_t cap = 0;

    *len = 0;
    if (!f)
        return NULL;
    for (;;) {
        if (*len == cap) {
            cap = cap ? cap * 2 : 4096;
            buf = realloc(buf, cap);
            ASSERT_NOT_NULL(buf);
        }
        size_t n = fread(buf + *len, 1, cap - *len, f);
        if (n == 0)
            break;
        *len += n;
    }
    fclose(f);
    return buf;
}

static void write_file(const char *path, const char *text, mode_t mode)
{
    unlink(path);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, mode);
    ASSERT(fd >= 0);
    ASSERT_INT_EQ(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    ASSERT_INT_EQ(fchmod(fd, mode), 0);
    close(fd);
}

static bool contains(const unsigned char *hay, size_t hay_len, const void *needle,
                     size_t needle_len)
{
    return hay && memmem(hay, hay_len, needle, needle_len) != NULL;
}

static void fill_creds(struct creds *c, const char *label, bool is_read_only)
{
    memset(c, 0, sizeof(*c));
    c->label = label ? strdup(label) : NULL;
    c->db_url = strdup(SECRET_URL);
    c->db_token = strdup(SECRET_DB_TOKEN);
    c->platform_token = strdup(SECRET_PLATFORM);
    c->org = strdup(SECRET_ORG);
    c->default_db = strdup(SECRET_DB);
    c->is_read_only = is_read_only;
    ASSERT((!label || c->label) && c->db_url && c->db_token && c->platform_token && c->org &&
           c->default_db);
}

static void assert_str_or_null_eq(const char *a, const char *b)
{
    if (!a || !b)
        ASSERT(a == b);
    else
        ASSERT_STR_EQ(a, b);
}

static void assert_creds_eq(const struct creds *a, const struct creds *b)
{
    assert_str_or_null_eq(a->label, b->label);
    assert_str_or_null_eq(a->db_url, b->db_url);
    assert_str_or_null_eq(a->db_token, b->db_token);
    assert_str_or_null_eq(a->platform_token, b->platform_token);
    assert_str_or_null_eq(a->org, b->org);
    assert_str_or_null_eq(a->default_db, b->default_db);
    ASSERT_INT_EQ(a->is_read_only, b->is_read_only);
}

static void assert_clean(const struct creds *c)
{
    ASSERT_NULL(c->label);
    ASSERT_NULL(c->db_url);
    ASSERT_NULL(c->db_token);
    ASSERT_NULL(c->platform_token);
    ASSERT_NULL(c->org);
    ASSERT_NULL(c->default_db);
}

static bool is_token_text(const char *t)
{
    if (strlen(t) != STORE_TOKEN_LEN)
        return false;
    for (size_t i = 0; i < STORE_TOKEN_LEN; i++) {
        char ch = t[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '_'))
            return false;
    }
    return true;
}

static bool is_hex_id(const char *id)
{
    if (strlen(id) != STORE_ID_LEN)
        return false;
    for (size_t i = 0; i < STORE_ID_LEN; i++) {
        if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
            return false;
    }
    return true;
}

/* Opens a fresh store in a new directory and adds one user with all fields set. */
static struct store *open_new(char *dir, size_t dir_len)
{
    struct store *s = NULL;
    bool created = false;
    new_data_dir(dir, dir_len);
    ASSERT_INT_EQ(store_open(dir, NULL, &s, &created), TM_OK);
    ASSERT_NOT_NULL(s);
    ASSERT(created);
    return s;
}

static void add_user(struct store *s, const char *label, bool is_read_only,
                     char token[STORE_TOKEN_LEN + 1], char id[STORE_ID_LEN + 1])
{
    struct creds c;
    fill_creds(&c, label, is_read_only);
    ASSERT_INT_EQ(store_add(s, &c, token, id), TM_OK);
    creds_cleanup(&c);
}

static enum tm_err find(struct store *s, const char *token)
{
    struct creds out;
    enum tm_err err = store_find(s, token, &out, NULL);
    if (err != TM_OK)
        assert_clean(&out);
    creds_cleanup(&out);
    return err;
}

/* A second connection to store.db, as someone with the file would have. */
static sqlite3 *db_open(const char *dir)
{
    char path[512];
    sqlite3 *db = NULL;
    path_in(path, sizeof(path), dir, "store.db");
    ASSERT_INT_EQ(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    return db;
}

static void db_exec(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
        TEST_FAIL("sql failed: %s: %s", sql, msg ? msg : "?");
}

/* Runs one statement, binding `id` to ?1 when the statement has it. */
static void db_exec_id(sqlite3 *db, const char *sql, const char *id)
{
    sqlite3_stmt *st = NULL;
    ASSERT_INT_EQ(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    if (sqlite3_bind_parameter_count(st) > 0)
        ASSERT_INT_EQ(sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC), SQLITE_OK);
    if (sqlite3_step(st) != SQLITE_DONE)
        TEST_FAIL("sql failed: %s: %s", sql, sqlite3_errmsg(db));
    sqlite3_finalize(st);
}

static int64_t db_int(sqlite3 *db, const char *sql, const char *id)
{
    sqlite3_stmt *st = NULL;
    int64_t v;
    ASSERT_INT_EQ(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    if (id)
        ASSERT_INT_EQ(sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC), SQLITE_OK);
    ASSERT_INT_EQ(sqlite3_step(st), SQLITE_ROW);
    v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static unsigned char *get_sealed(sqlite3 *db, const char *id, size_t *len)
{
    sqlite3_stmt *st = NULL;
    unsigned char *copy;
    ASSERT_INT_EQ(
        sqlite3_prepare_v2(db, "SELECT sealed FROM users WHERE public_id = ?1", -1, &st, NULL),
        SQLITE_OK);
    ASSERT_INT_EQ(sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC), SQLITE_OK);
    ASSERT_INT_EQ(sqlite3_step(st), SQLITE_ROW);
    *len = (size_t)sqlite3_column_bytes(st, 0);
    ASSERT(*len > 0);
    copy = malloc(*len);
    ASSERT_NOT_NULL(copy);
    memcpy(copy, sqlite3_column_blob(st, 0), *len);
    sqlite3_finalize(st);
    return copy;
}

static void set_sealed(sqlite3 *db, const char *id, const unsigned char *blob, size_t len)
{
    sqlite3_stmt *st = NULL;
    ASSERT_INT_EQ(
        sqlite3_prepare_v2(db, "UPDATE users SET sealed = ?2 WHERE public_id = ?1", -1, &st, NULL),
        SQLITE_OK);
    ASSERT_INT_EQ(sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC), SQLITE_OK);
    ASSERT_INT_EQ(sqlite3_bind_blob(st, 2, blob, (int)len, SQLITE_STATIC), SQLITE_OK);
    ASSERT_INT_EQ(sqlite3_step(st), SQLITE_DONE);
    ASSERT_INT_EQ(sqlite3_changes(db), 1);
    sqlite3_finalize(st);
}

/* Runs store_find with stderr sent to a file, and returns what was logged (caller frees). */
static char *find_logged(struct store *s, const char *token, enum tm_err *err)
{
    char path[512];
    size_t len = 0;
    unsigned char *text;
    int saved, fd;

    path_in(path, sizeof(path), root, "stderr.log");
    fflush(stderr);
    saved = dup(STDERR_FILENO);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ASSERT(saved >= 0 && fd >= 0);
    ASSERT(dup2(fd, STDERR_FILENO) >= 0);
    close(fd);
    *err = find(s, token);
    fflush(stderr);
    ASSERT(dup2(saved, STDERR_FILENO) >= 0);
    close(saved);
    text = read_all(path, &len);
    ASSERT_NOT_NULL(text);
    text = realloc(text, len + 1);
    ASSERT_NOT_NULL(text);
    text[len] = '\0';
    unlink(path);
    return (char *)text;
}

/* ---- cases ------------------------------------------------------------------- */

static void test_open_creates_dir_and_key(void)
{
    char dir[256], key_path[512];
    struct store *s = NULL;
    bool created = false;
    struct stat st;
    size_t len1 = 0, len2 = 0;
    unsigned char *key1, *key2;

    new_data_dir(dir, sizeof(dir));
    ASSERT_INT_EQ(store_open(dir, NULL, &s, &created), TM_OK);
    ASSERT(created);
    ASSERT_INT_EQ(stat(dir, &st), 0);
    ASSERT_INT_EQ(st.st_mode & 07777, 0700);
    path_in(key_path, sizeof(key_path), dir, "master.key");
    ASSERT_INT_EQ(stat(key_path, &st), 0);
    ASSERT_INT_EQ(st.st_mode & 07777, 0600);
    key1 = read_all(key_path, &len1);
    /* v1:<64 hex>\n */
    ASSERT_INT_EQ(len1, 3 + 64 + 1);
    ASSERT(memcmp(key1, "v1:", 3) == 0);
    ASSERT(key1[len1 - 1] == '\n');
    for (size_t i = 3; i < 3 + 64; i++)
        ASSERT((key1[i] >= '0' && key1[i] <= '9') || (key1[i] >= 'a' && key1[i] <= 'f'));
    store_close(&s);
    ASSERT_NULL(s);
    store_close(&s); /* NULL is fine */
    store_close(NULL);

    /* Reopen: the key is read, not replaced. */
    created = true;
    ASSERT_INT_EQ(store_open(dir, NULL, &s, &created), TM_OK);
    ASSERT(!created);
    ASSERT_INT_EQ(stat(key_path, &st), 0);
    ASSERT_INT_EQ(st.st_mode & 07777, 0600);
    key2 = read_all(key_path, &len2);
    ASSERT_INT_EQ(len1, len2);
    ASSERT(memcmp(key1, key2, len1) == 0);
    store_close(&s);

    /* No temporary key file is left behind; the store file is private too. */
    char db_path[512];
    path_in(db_path, sizeof(db_path), dir, "store.db");
    ASSERT_INT_EQ(stat(db_path, &st), 0);
    ASSERT_INT_EQ(st.st_mode & 077, 0);
    FILE *ls = NULL;
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "ls -A '%s'", dir);
    ls = popen(cmd, "r");
    ASSERT_NOT_NULL(ls);
    char name[256];
    while (fgets(name, sizeof(name), ls)) {
        name[strcspn(name, "\n")] = '\0';
        if (strcmp(name, "master.key") != 0 && strncmp(name, "store.db", 8) != 0)
            TEST_FAIL("unexpected file in data dir: %s", name);
    }
    pclose(ls);

    sodium_memzero(key1, len1);
    sodium_memzero(key2, len2);
    free(key1);
    free(key2);
}

static void test_schema_and_wal(void)
{
    char dir[256], wal[512];
    struct store *s = open_new(dir, sizeof(dir));
    char token[STORE_TOKEN_LEN + 1], id[STORE_ID_LEN + 1];
    struct stat st;
    add_user(s, "x", false, token, id);

    sqlite3 *db = db_open(dir);
    ASSERT_INT_EQ(db_int(db, "PRAGMA user_version", NULL), 2);
    sqlite3_stmt *stmt = NULL;
    ASSERT_INT_EQ(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &stmt, NULL), SQLITE_OK);
    ASSERT_INT_EQ(sqlite3_step(stmt), SQLITE_ROW);
    ASSERT_STR_EQ((const char *)sqlite3_column_text(stmt, 0), "wal");
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    path_in(wal, sizeof(wal), dir, "store.db-wal");
    ASSERT_INT_EQ(stat(wal, &st), 0);
    ASSERT_INT_EQ(st.st_mode & 077, 0);
    store_close(&s);
    sodium_memzero(token, sizeof(token));

    /* A store from a newer version is refused rather than misread. */
    db = db_open(dir);
    db_exec(db, "PRAGMA user_version = 99");
    sqlite3_close(db);
    ASSERT_INT_EQ(store_open(dir, NULL, &s, NULL), TM_ERR_STORE);
    ASSERT_NULL(s);
}

static void test_roundtrip(void)
{
    char dir[256];
    struct store *s = open_new(dir, sizeof(dir));
    char token[STORE_TOKEN_LEN + 1], id[STORE_ID_LEN + 1], found_id[STORE_ID_LEN + 1];
    char token2[STORE_TOKEN_LEN + 1], id2[STORE_ID_LEN + 1];
    struct creds in, out;

    fill_creds(&in, PLAIN_LABEL, true);
    ASSERT_INT_EQ(store_add(s, &in, token, id), TM_OK);
    ASSERT(is_token_text(token));
    ASSERT(is_hex_id(id));
    ASSERT_INT_EQ(store_find(s, token, &out, found_id), TM_OK);
    assert_creds_eq(&in, &out);
    ASSERT_STR_EQ(found_id, id);
    creds_cleanup(&out);

    /* NULL fields stay NULL, read-write stays read-write. */
    struct creds partial = {0};
    partial.db_url = strdup("http://127.0.0.1:8080");
    ASSERT_NOT_NULL(partial.db_url);
    ASSERT_INT_EQ(store_add(s, &partial, token2, id2), TM_OK);
    ASSERT(strcmp(token, token2) != 0);
    ASSERT(strcmp(id, id2) != 0);
    ASSERT_INT_EQ(store_find(s, token2, &out, NULL), TM_OK);
    assert_creds_eq(&partial, &out);
    ASSERT_NULL(out.label);
    ASSERT_NULL(out.db_token);
    ASSERT(!out.is_read_only);
    creds_cleanup(&out);

    /* Both survive a reopen. */
    store_close(&s);
    ASSERT_INT_EQ(store_open(dir, NULL, &s, NULL), TM_OK);
    ASSERT_INT_EQ(store_find(s, token, &out, found_id), TM_OK);
    assert_creds_eq(&in, &out);
    ASSERT_STR_EQ(found_id, id);
    creds_cleanup(&out);
    ASSERT_INT_EQ(store_find(s, token2, &out, NULL), TM_OK);
    assert_creds_eq(&partial, &out);
    creds_cleanup(&out);

    /* Arguments the contract does not allow. */
    ASSERT_INT_EQ(store_add(s, NULL, token2, id2), TM_ERR_INVALID);
    ASSERT_INT_EQ(store_find(s, token, NULL, NULL), TM_ERR_INVALID);
    ASSERT_INT_EQ(store_open(NULL, NULL, &s, NULL), TM_ERR_INVALID);
    ASSERT_NOT_NULL(s);

    store_close(&s);
    creds_cleanup(&in);
    creds_cleanup(&partial);
    sodium_memzero(token, sizeof(token));
    sodium_memzero(token2, sizeof(token2));
}

static void test_wrong_token(void)
{
    char dir[256];
    struct store *s = open_new(dir, sizeof(dir));
    char token[STORE_TOKEN_LEN + 1], id[STORE_ID_LEN + 1];
    char other[STORE_TOKEN_LEN + 1];
    unsigned char bytes[32];

    add_user(s, "a", false, token, id);
    for (int i = 0; i < 20; i++) {
        randombytes_buf(bytes, sizeof(bytes));
        sodium_bin2base64(other, sizeof(other), bytes, sizeof(bytes),
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        ASSERT(is_token_text(other));
        ASSERT_INT_EQ(find(s, other), TM_ERR_NOT_FOUND);
    }
    ASSERT_INT_EQ(find(s, token), TM_OK);
    store_close(&s);
    sodium_memzero(token, sizeof(token));
}

static void test_malformed_tokens(void)
{
    char dir[256];
    struct store *s = open_new(dir, sizeof(dir));
    char token[STORE_TOKEN_LEN + 1], id[STORE_ID_LEN + 1];
    char bad[STORE_TOKEN_LEN + 8];
    static const char bad_chars[] = {'+', '/', '=', ' ', '.', '%', '\n', '\x80'};
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

    add_user(s, "a", false, token, id);
    ASSERT_INT_EQ(find(s, NULL), TM_ERR_NOT_FOUND);
    ASSERT_INT_EQ(find(s, ""), TM_ERR_NOT_FOUND);
    ASSERT_INT_EQ(find(s, "abc"), TM_ERR_NOT_FOUND);

    /* One character short, one too many. */
    memcpy(bad, token, STORE_TOKEN_LEN - 1);
    bad[STORE_TOKEN_LEN - 1] = '\0';
    ASSERT_INT_EQ(find(s, bad), TM_ERR_NOT_FOUND);
    snprintf(bad, sizeof(bad), "%sA", token);
    ASSERT_INT_EQ(find(s, bad), TM_ERR_NOT_FOUND);
    /* Padded, as standard base64 would be. */
    snprintf(bad, sizeof(bad), "%s=", token);
    ASSERT_INT_EQ(find(s, bad), TM_ERR_NOT_FOUND);

    /* Right length, a character outside the base64url alphabet. */
    for (size_t i = 0; i < sizeof(bad_chars); i++) {
        memcpy(bad, token, STORE_TOKEN_LEN + 1);
        bad[10] = bad_chars[i];
        ASSERT_INT_EQ(find(s, bad), TM_ERR_NOT_FOUND);
    }

    /*
     * The last character carries 4 bits of the 32 bytes and 2 bits that must
     * be zero: a token with those bits set names the same bytes, so it must
     * not be accepted as a second spelling of the real one.
     */
    const char *pos = strchr(alphabet, token[STORE_TOKEN_LEN - 1]);
    ASSERT_NOT_NULL(pos);
    size_t idx = (size_t)(pos - alphabet);
    ASSERT_INT_EQ(idx % 4, 0);
    memcpy(bad, token, STORE_TOKEN_LEN + 1);
    bad[STORE_TOKEN_LEN - 1] = alphabet[idx + 1];
    ASSERT_INT_EQ(find(s, bad), TM_ERR_NOT_FOUND);

    /* Every byte that is not in the alphabet, at the first and the last position. */
    for (int c = 1; c < 256; c++) {
        if (strchr(alphabet, c))
            continue;
        for (size_t at = 0; at < STORE_TOKEN_LEN; at += STORE_TOKEN_LEN - 1) {
            memcpy(bad, token, STORE_TOKEN_LEN + 1);
            bad[at] = (char)c;
            ASSERT_INT_EQ(find(s, bad), TM_ERR_NOT_FOUND);
        }
    }

    /*
     * Random tokens (each alphabet character many times over) all decode to
     * their record. Where one has a '_', every byte from 0x80 up in its place
     * is refused: a decoder that reads those bytes as '_' (libsodium 1.0.18's
     * does) would take them as a second spelling of the same token.
     */
    int n_underscores = 0;
    for (int i = 0; i < 32; i++) {
        char more[STORE_TOKEN_LEN + 1], more_id[STORE_ID_LEN + 1], found_id[STORE_ID_LEN + 1];
        add_user(s, "more", false, more, more_id);
        ASSERT_INT_EQ(find(s, more), TM_OK);
        ASSERT_INT_EQ(store_find_id(s, more, found_id, NULL), TM_OK);
        ASSERT_STR_EQ(found_id, more_id);
        for (size_t at = 0; at < STORE_TOKEN_LEN; at++) {
            if (more[at] != '_')
                continue;
            n_underscores++;
            memcpy(bad, more, STORE_TOKEN_LEN + 1);
            for (int c = 0x80; c < 256; c++) {
                bad[at] = (char)c;
                ASSERT_INT_EQ(find(s, bad), TM_ERR_NOT_FOUND);
            }
        }
        sodium_memzero(more, sizeof(more));
    }
    /* 32 tokens of 43 characters without a '_': about one chance in 10^9. */
    ASSERT(n_underscores > 0);

    /* The real token still works. */
    ASSERT_INT_EQ(find(s, token), TM_OK);
    store_close(&s);
    sodium_memzero(token, sizeof(token));
    sodium_memzero(bad, sizeof(bad));
}

static void test_wrong_master_key(void)
{
    char dir[256], key_path[512];
    struct store *s = open_new(dir, sizeof(dir));
    char token[STORE_TOKEN_LEN + 1], id[STORE_ID_LEN + 1];
    unsigned char other[32];
    char text[80], hex[65];
    size_t saved_len = 0;
    unsigned char *saved;

    add_user(s, "a", true, token, id);
    store_close(&s);
    path_in(key_path, sizeof(key_path), dir, "master.key");
    saved = read_all(key_path, &saved_len);
    ASSERT_NOT_NULL(saved);
    saved = realloc(saved, saved_len + 1);
    ASSERT_NOT_NULL(saved);
    saved[saved_len] = '\0';

    /* Another well-formed key: the store refuses to open rather than turn everyone away. */
    randombytes_buf(other, sizeof(other));
    sodium_bin2hex(hex, sizeof(hex), other, sizeof(other));
    snprintf(text, sizeof(text), "v1:%s\n", hex);
    write_file(key_path, text, 0600);
    ASSERT_INT_EQ(store_open(dir, NULL, &s, NULL), TM_ERR_DENIED);
    ASSERT_NULL(s);
    /* Still the file we wrote: a refused key is never replaced. */
    size_t now_len = 0;
    unsigned char *now = read_all(key_path, &now_len);
    ASSERT_INT_EQ(now_len, strlen(text));
    ASSERT(memcmp(now, text, now_len) == 0);
    free(now);

    /* Deleting the key check does not let the wrong key in either. */
    sqlite3 *db = db_open(dir);
    db_exec(db, "CREATE TABLE saved_keys AS SELECT * FROM master_keys; DELETE FROM master_keys");
    ASSERT_INT_EQ(store_open(dir, NULL, &s, NULL), TM_ERR_DENIED);
    ASSERT_NULL(s);
    db_exec(db, "INSERT INTO master_keys SELECT * FROM saved_keys; DROP TABLE saved_keys");
    sqlite3_close(db);

    /* The right key back: everything opens, so nothing was damaged. */
    write_file(key_path, (const char *)saved, 0600);
    ASSERT_INT_EQ(store_open(dir, NULL, &s, NULL), TM_OK);
    struct creds out;
    ASSERT_INT_EQ(store_find(s, token, &out, NULL), TM_OK);
    ASSERT_STR_EQ(out.db_token, SECRET_DB_TOKEN);
    ASSERT(out.is_read_only);
    creds_cleanup(&out);
    store_close(&s);

    /* A deleted key file means a new key, which must not open the old store. */
    ASSERT_INT_EQ(unlink(key_path), 0);
    bool created = false;
    ASSERT_INT_EQ(store_open(dir, NULL, &s, &created), TM_ERR_DENIED);
    ASSERT_NULL(s);

    sodium_memzero(saved, saved_len);
    free(saved);
    sodium_memzero(token, sizeof(token));
}

static void test_bad_master_key_file(void)
{
    char dir[256], key_path[512];
    struct store *s = NULL;
    struct stat st;
    static const char *const malformed[] = {
        "",
        "v1:\n",
        "v1:0123\n",
        "v1:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", /* no newline */
        "v1:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1fff\n",
        "v1:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1g\n",
        "v0:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n",
        "1:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n",
        "v1 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n",
        "v1:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n\n",
        "v1234567890:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n",
    };

    new_data_dir(dir, sizeof(dir));
    ASSERT_INT_EQ(mkdir(dir, 0700), 0);
    path_in(key_path, sizeof(key_path), dir, "master.key");
    for (size_t i = 0; i < sizeof(malformed) / sizeof(malformed[0]); i++) {
        write_file(key_path, malformed[i], 0600);
        if (store_open(dir, NULL, &s, NULL) != TM_ERR_INVALID)
            TEST_FAIL("malformed key %zu was not rejected", i);
        ASSERT_NULL(s);
        /* Never overwritten. */
        size_t len = 0;
        unsigned char *text = read_all(key_path, &len);
        ASSERT_INT_EQ(len, strlen(malformed[i]));
        ASSERT(len == 0 || memcmp(text, malformed[i], len) == 0);
        free(text);
    }

    /* A valid key that group or others may read is refused, whatever its content. */
    static const char good[] =
        "v1:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n";
    static const mode_t loose[] = {0640, 0604, 0644, 0660, 0610, 0601};
    for (size_t i = 0; i < sizeof(loose) / sizeof(loose[0]); i++) {
        write_file(key_path, good, loose[i]);
        ASSERT_INT_EQ(store_open(dir, NULL, &s, NULL), TM_ERR_DENIED);
        ASSERT_NULL(s);
        ASSERT_INT_EQ(stat(key_path, &st), 0);
        ASSERT_INT_EQ(st.st_mode & 07777, loose[i]);
    }
    /* Read-only for the owner is fine, and so is a higher version. */
    write_file(key_path, good, 0400);
    ASSERT_INT_EQ(store_open(dir, NULL, &s, NULL), TM_OK);
    store_close(&s);

    char dir2[256], key_path2[512];
    new_data_dir(dir2, sizeof(dir2));
    ASSERT_INT_EQ(mkdir(dir2, 0700), 0);
    path_in(key_path2, sizeof(key_path2), dir2, "master.key");
    write_file(key_path2, "v12:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n",
               0600);
    bool created = true;
    ASSERT_INT_EQ(store_open(dir2, NULL, &s, &created), TM_OK);
    ASSERT(!created);
    char token[STORE_TOKEN_LEN + 1], id[STORE_ID_LEN + 1];
    add_user(s, "v12", false, token, id);
    ASSERT_INT_EQ(find(s, token), TM_OK);
    store_close(&s);
    sqlite3 *db = db_open(dir2);
    ASSERT_INT_EQ(db_int(db, "SELECT key_version FROM users WHERE public_id = ?1", id), 12);
    sqlite3_close(db);

    /* A directory where the key should be. */
    ASSERT_INT_EQ(unlink(key_path), 0);
    ASSERT_INT_EQ(mkdir(key_path, 0700), 0);
    ASSERT(store_open(dir, NULL, &s, NULL) != TM_OK);
    ASSERT_NULL(s);
    ASSERT_INT_EQ(rmdir(key_path), 0);
}

static void test_tampered_blob(void)
{
    char dir[256];
    struct store *s = open_new(dir, sizeof(dir));
    char token[STORE_TOKEN_LEN + 1], id[STORE_ID_LEN + 1];
    size_t len = 0;
    unsigned char *orig, *bad;
    enum tm_err err;

    add_user(s, PLAIN_LABEL, false, token, id);
    sqlite3 *db = db_open(dir);
    orig = get_sealed(db, id, &len);
    /* Nonce, ciphertext and tag: first byte, one in the middle, the last. */
    size_t positions[] = {0, 23, 24, len / 2, len - 17, len - 1};
    bad = malloc(len);
    ASSERT_NOT_NULL(bad);
    for (size_t i = 0; i < sizeof(positions) / sizeof(positions[0]); i++) {
        memcpy(bad, orig, len);
        bad[positions[i]] ^= 0x01;
        set_sealed(db, id, bad, len);
        char *log = find_logged(s, token, &err);
        ASSERT_INT_EQ(err, TM_ERR_DENIED);
        /* One warning naming the public id, and nothing of the token. */
        ASSERT_NOT_NULL(strstr(log, "\"event\":\"store_open_failed\""));
        ASSERT_NOT_NULL(strstr(log, id));
        ASSERT_NULL(strstr(log, token));
        ASSERT_NULL(strstr(log, SECRET_DB_TOKEN));
        int n_lines = 0;
        for (const char *c = log; *c; c++)
            n_lines += *c == '\n';
        ASSERT_INT_EQ(n_lines, 1);
        free(log);
    }
    /* Truncated and emptied blobs are refused the same way. */
    set_sealed(db, id, orig, len - 1);
    ASSERT_INT_EQ(find(s, token), TM_ERR_DENIED);
    set_sealed(db, id, orig, 39);
    ASSERT_INT_EQ(find(s, token), TM_ERR_DENIED);
    set_sealed(db, id, orig, 1);
    ASSERT_INT_EQ(find(s, token), TM_ERR_DENIED);
    db_exec(db, "UPDATE users SET sealed = x''");
    ASSERT_INT_EQ(find(s, token), TM_ERR_DENIED);

    /* Put back, it opens again: the failures above were the tampering. */
    set_sealed(db, id, orig, len);
    ASSERT_INT_EQ(find(s, token), TM_OK);

    /* The key version is bound in as well. */
    db_exec(db, "UPDATE users SET key_version = 2");
    ASSERT_INT_EQ(find(s, token), TM_ERR_DENIED);
    db_exec(db, "UPDATE users SET key_version = 1");
    ASSERT_INT_EQ(find(s, token), TM_OK);

    sqlite3_close(db);
    store_close(&s);
    free(orig);
    free(bad);
    sodium_memzero(token, sizeof(token));
}

static void test_swapped_blobs(void)
{
    char dir[256];
    struct store *s = open_new(dir, sizeof(dir));
    char token_a[STORE_TOKEN_LEN + 1], id_a[STORE_ID_LEN + 1];
    char token_b[STORE_TOKEN_LEN + 1], id_b[STORE_ID_LEN + 1];
    size_t len_a = 0, len_b = 0;

    add_user(s, "a", false, token_a, id_a);
    add_user(s, "b", true, token_b, id_b);
    sqlite3 *db = db_open(dir);
    unsigned char *blob_a = get_sealed(db, id_a, &len_a);
    unsigned char *blob_b = get_sealed(db, id_b, &len_b);
    set_sealed(db, id_a, blob_b, len_b);
    set_sealed(db, id_b, blob_a, len_a);
    ASSERT_INT_EQ(find(s, token_a), TM_ERR_DENIED);
    ASSERT_INT_EQ(find(s, token_b), TM_ERR_DENIED);

    /* Put back, both open again. */
    set_sealed(db, id_a, blob_a, len_a);
    set_sealed(db, id_b, blob_b, len_b);
    ASSERT_INT_EQ(find(s, token_a), TM_OK);
    ASSERT_INT_EQ(find(s, token_b), TM_OK);
    sqlite3_close(db);

    store_close(&s);
    free(blob_a);
    free(blob_b);
    sodium_memzero(token_a, sizeof(token_a));
    sodium_memzero(token_b, sizeof(token_b));
}

/*
 * Pins the on-disk format, so that it cannot change silently (another
 * backend or a migration tool must read it): record id and sealing key are
 * BLAKE2b of the token bytes keyed with kdf subkeys of master.key, and the
 * blob is nonce || XChaCha20-Poly1305(creds_encode) with associated data
 * record id || key version (u32 little endian).
 */
static void test_sealed_format(void)
{
    char dir[256], key_path[512];
    struct store *s = open_new(dir, sizeof(dir));
    char token[STORE_TOKEN_LEN + 1], id[STORE_ID_LEN + 1];
    char token_b[STORE_TOKEN_LEN + 1], id_b[STORE_ID_LEN + 1];
    unsigned char master[32], lookup[32], seal[32], tok[32], tok_b[32];
    unsigned char rid[32], rid_b[32], key[32], ad[36];
    char hex_id[STORE_ID_LEN + 1];
    size_t len = 0, bin_len = 0, blob_len = 0;
    unsigned char *text, *blob, *plain;
    struct creds in, out;

    fill_creds(&in, PLAIN_LABEL, true);
    ASSERT_INT_EQ(store_add(s, &in, token, id), TM_OK);
    add_user(s, "other", false, token_b, id_b);
    store_close(&s);

    path_in(key_path, sizeof(key_path), dir, "master.key");
    text = read_all(key_path, &len);
    ASSERT_INT_EQ(len, 68);
    ASSERT_INT_EQ(
        sodium_hex2bin(master, sizeof(master), (const char *)text + 3, 64, NULL, &bin_len, NULL),
        0);
    ASSERT_INT_EQ(bin_len, 32);
    ASSERT_INT_EQ(crypto_kdf_derive_from_key(lookup, sizeof(lookup), 1, "tmlookup", master), 0);
    ASSERT_INT_EQ(crypto_kdf_derive_from_key(seal, sizeof(seal), 1, "tmsealer", master), 0);
    ASSERT_INT_EQ(sodium_base642bin(tok, sizeof(tok), token, STORE_TOKEN_LEN, NULL, &bin_len, NULL,
                                    sodium_base64_VARIANT_URLSAFE_NO_PADDING),
                  0);
    ASSERT_INT_EQ(sodium_base642bin(tok_b, sizeof(tok_b), token_b, STORE_TOKEN_LEN, NULL, &bin_len,
                                    NULL, sodium_base64_VARIANT_URLSAFE_NO_PADDING),
                  0);
    crypto_generichash(rid, sizeof(rid), tok, sizeof(tok), lookup, sizeof(lookup));
    crypto_generichash(rid_b, sizeof(rid_b), tok_b, sizeof(tok_b), lookup, sizeof(lookup));
    crypto_generichash(key, sizeof(key), tok, sizeof(tok), seal, sizeof(seal));
    sodium_bin2hex(hex_id, sizeof(hex_id), rid, 8);
    ASSERT_STR_EQ(hex_id, id);

    sqlite3 *db = db_open(dir);
    blob = get_sealed(db, id, &blob_len);
    sqlite3_stmt *st = NULL;
    ASSERT_INT_EQ(
        sqlite3_prepare_v2(db, "SELECT record_id FROM users WHERE public_id = ?1", -1, &st, NULL),
        SQLITE_OK);
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    ASSERT_INT_EQ(sqlite3_step(st), SQLITE_ROW);
    ASSERT_INT_EQ(sqlite3_column_bytes(st, 0), 32);
    ASSERT(memcmp(sqlite3_column_blob(st, 0), rid, 32) == 0);
    sqlite3_finalize(st);
    sqlite3_close(db);

    ASSERT(blob_len > 24 + 16);
    plain = malloc(blob_len);
    ASSERT_NOT_NULL(plain);
    memcpy(ad, rid, 32);
    memcpy(ad + 32, "\x01\x00\x00\x00", 4);
    ASSERT_INT_EQ(crypto_aead_xchacha20poly1305_ietf_decrypt(
                      plain, NULL, NULL, blob + 24, blob_len - 24, ad, sizeof(ad), blob, key),
                  0);
    ASSERT_INT_EQ(creds_decode(plain, blob_len - 24 - 16, &out), TM_OK);
    assert_creds_eq(&in, &out);
    creds_cleanup(&out);

    /* Each part of the associated data matters. */
    memcpy(ad, rid_b, 32);
    ASSERT(crypto_aead_xchacha20poly1305_ietf_decrypt(plain, NULL, NULL, blob + 24, blob_len - 24,
                                                      ad, sizeof(ad), blob, key) != 0);
    memcpy(ad, rid, 32);
    memcpy(ad + 32, "\x02\x00\x00\x00", 4);
    ASSERT(crypto_aead_xchacha20poly1305_ietf_decrypt(plain, NULL, NULL, blob + 24, blob_len - 24,
                                                      ad, sizeof(ad), blob, key) != 0);
    ASSERT(crypto_aead_xchacha20poly1305_ietf_decrypt(plain, NULL, NULL, blob + 24, blob_len - 24,
                                                      ad, 32, blob, key) != 0);

    sodium_memzero(plain, blob_len);
    free(plain);
    free(blob);
    sodium_memzero(text, len);
    free(text);
    sodium_memzero(master, sizeof(master));
    sodium_memzero(key, sizeof(key));
    sodium_memzero(token, sizeof(token));
    sodium_memzero(token_b, sizeof(token_b));
    creds_cleanup(&in);
}

struct list_seen {
    int n;
    char ids[8][STORE_ID_LEN + 1];
    char labels[8][64];
    bool ro[8];
    int64_t created[8];
    int64_t last_used[8];
    int key_version[8];
};

static void collect(const struct store_user_info *info, void *ctx)
{
    struct list_seen *seen = ctx;
    ASSERT(seen->n < 8);
    ASSERT_NOT_NULL(info->label);
    snprintf(seen->ids[seen->n], sizeof(seen->ids[0]), "%s", info->id);
    snprintf(seen->labels[seen->n], sizeof(seen->labels[0]), "%s", info->label);
    seen->ro[seen->n] = info->is_read_only;
    seen->created[seen->n] = info->created_at;
    seen->last_used[seen->n] = info->last_used_at;
    seen->key_version[seen->n] = info->key_version;
    seen->n++;
}

static void test_list(void)
{
    char dir[256];
    struct store *s = open_new(dir, sizeof(dir));
    char tokens[3][STORE_TOKEN_LEN + 1], ids[3][STORE_ID_LEN + 1];
    struct list_seen seen;
    int64_t t0 = (int64_t)time(NULL);

    memset(&seen, 0, sizeof(seen));
    ASSERT_INT_EQ(store_list(s, collect, &seen), TM_OK);
    ASSERT_INT_EQ(seen.n, 0);

    add_user(s, "first", false, tokens[0], ids[0]);
    add_user(s, "second", true, tokens[1], ids[1]);
    add_user(s, NULL, false, tokens[2], ids[2]);
    int64_t t1 = (int64_t)time(NULL);
    ASSERT_INT_EQ(find(s, tokens[1]), TM_OK);

    memset(&seen, 0, sizeof(seen));
    ASSERT_INT_EQ(store_list(s, collect, &seen), TM_OK);
    ASSERT_INT_EQ(seen.n, 3);
    /* Oldest first: insertion order within the same second. */
    for (int i = 0; i < 3; i++) {
        ASSERT_STR_EQ(seen.ids[i], ids[i]);
        ASSERT(seen.created[i] >= t0 && seen.created[i] <= t1);
        ASSERT_INT_EQ(seen.key_version[i], 1);
        /* Nothing secret in what list hands out. */
        ASSERT(strstr(seen.labels[i], "SECRET") == NULL);
        ASSERT(strstr(seen.labels[i], tokens[i]) == NULL);
    }
    ASSERT_STR_EQ(seen.labels[0], "first");
    ASSERT_STR_EQ(seen.labels[1], "second");
    ASSERT_STR_EQ(seen.labels[2], ""); /* no label: empty, never NULL */
    ASSERT(!seen.ro[0]);
    ASSERT(seen.ro[1]);
    ASSERT(!seen.ro[2]);
    ASSERT_INT_EQ(seen.last_used[0], 0);
    ASSERT(seen.last_used[1] >= t0);
    ASSERT_INT_EQ(seen.last_used[2], 0);

    ASSERT_INT_EQ(store_list(s, NULL, NULL), TM_ERR_INVALID);
    store_close(&s);
    sodium_memzero(tokens, sizeof(tokens));
}

/* A callback may call back into the store: list does not hold the lock while calling. */
static void revoke_each(const struct store_user_info *info, void *ctx)
{
    struct store *s = ctx;
    ASSERT_INT_EQ(store_revoke(s, info->id), TM_OK);
}

static void count(const struct store_user_info *info, void *ctx)
{
    (*(int *)ctx)++;
}

static void count_activity(const struct store_activity_entry *e, void *ctx)
{
    (*(int *)ctx)++;
}

static void test_revoke(void)
{
    char dir[256];
    struct store *s = open_new(dir, sizeof(dir));
    char token_a[STORE_TOKEN_LEN + 1], id_a[STORE_ID_LEN + 1];
    char token_b[STORE_TOKEN_LEN + 1], id_b[STORE_ID_LEN + 1];
    int n = 0;

    add_user(s, "a", false, token_a, id_a);
    add_user(s, "b", false, token_b, id_b);
    ASSERT_INT_EQ(store_revoke(s, id_a), TM_OK);
    ASSERT_INT_EQ(find(s, token_a), TM_ERR_NOT_FOUND);
    ASSERT_INT_EQ(find(s, token_b), TM_OK);
    ASSERT_INT_EQ(store_revoke(s, id_a), TM_ERR_NOT_FOUND);
    ASSERT_INT_EQ(store_revoke(s, "0000000000000000"), TM_ERR_NOT_FOUND);
    ASSERT_INT_EQ(store_revoke(s, NULL), TM_ERR_NOT_FOUND);
    ASSERT_INT_EQ(store_revoke(s, ""), TM_ERR_NOT_FOUND);
    ASSERT_INT_EQ(store_revoke(s, "' OR 1=1 --"), TM_ERR_NOT_FOUND);
    /* Our ids are lower case hex; a prefix or another spelling is not the id. */
    char upper[STORE_ID_LEN + 1];
    for (size_t i = 0; i <= STORE_ID_LEN; i++)
        upper[i] = (char)(id_b[i] >= 'a' && id_b[i] <= 'f' ? id_b[i] - 'a' + 'A' : id_b[i]);
    if (strcmp(upper, id_b) != 0)
        ASSERT_INT_EQ(store_revoke(s, upper), TM_ERR_NOT_FOUND);
    char prefix[STORE_ID_LEN];
    memcpy(prefix, id_b, STORE_ID_LEN - 1);
    prefix[STORE_ID_LEN - 1] = '\0';
    ASSERT_INT_EQ(store_revoke(s, prefix), TM_ERR_NOT_FOUND);
    ASSERT_INT_EQ(find(s, token_b), TM_OK);

    /* Revoked stays revoked across a reopen. */
    store_close(&s);
    ASSERT_INT_EQ(store_open(dir, NULL, &s, NULL), TM_OK);
    ASSERT_INT_EQ(find(s, token_a), TM_ERR_NOT_FOUND);
    ASSERT_INT_EQ(find(s, token_b), TM_OK);

    ASSERT_INT_EQ(store_list(s, revoke_each, s), TM_OK);
    ASSERT_INT_EQ(store_list(s, count, &n), TM_OK);
    ASSERT_INT_EQ(n, 0);
    ASSERT_INT_EQ(find(s, token_b), TM_ERR_NOT_FOUND);
    store_close(&s);
    sodium_memzero(token_a, sizeof(token_a));
    sodium_memzero(token_b, sizeof(token_b));
}

/* What another process does to the store: `turso-mcp user revoke` or `user rotate`. */
enum other_op { OTHER_REVOKE, OTHER_ROTATE };

/*
 * Runs `op` in a child process with a store of its own on `dir`, as the
 * admin CLI would while the server runs. For a rotation the child writes
 * the new token to new_token.
 */
static void in_other_process(const char *dir, enum other_op op, const char *arg,
                             char new_token[STORE_TOKEN_LEN + 1])
{
    int fds[2];
    ASSERT_INT_EQ(pipe(fds), 0);
    pid_t pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) {
        struct store *other = NULL;
        char token[STORE_TOKEN_LEN + 1] = "";
        char id[STORE_ID_LEN + 1];
        enum tm_err err = store_open(dir, NULL, &other, NULL);
        if (err == TM_OK)
            err =
                op == OTHER_REVOKE ? store_revoke(other, arg) : store_rotate(other, arg, token, id);
        store_close(&other);
        ssize_t n = write(fds[1], token, sizeof(token));
        _exit(err == TM_OK && n == (ssize_t)sizeof(token) ? 0 : 1);
    }
    close(fds[1]);
    int status = 0;
    ASSERT_INT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    char token[STORE_TOKEN_LEN + 1];
    ASSERT_INT_EQ(read(fds[0], token, sizeof(token)), (ssize_t)sizeof(token));
    close(fds[0]);
    if (new_token)
        memcpy(new_token, token, sizeof(token));
    sodium_memzero(token, sizeof(token));
}

/*
 * More users than the URL check's cache has slots, so that some share one:
 * every check, from SQLite or from the cache, still names its own user, and
 * what it found opens into that user's credentials.
 */
static void test_find_id_shared_slots(void)
{
    enum { N_USERS = 66 }; /* more than the cache's 64 slots */
    char dir[256];
    struct store *s = open_new(dir, sizeof(dir));
    char tokens[N_USERS][STORE_TOKEN_LEN + 1], ids[N_USERS][STORE_ID_LEN + 1];
    char label[16], id[STORE_ID_LEN + 1];
    for (int i = 0; i < N_USERS; i++) {
        snprintf(label, sizeof(label), "u%d", i);
        add_user(s, label, false, tokens[i], ids[i]);
    }
    uint64_t hits = store_url_cache_hits(s);
    /* Nothing is committed between these checks (they count no use). */
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < N_USERS; i++) {
            struct store_sealed *sealed = NULL;
            ASSERT_INT_EQ(store_find_id(s, tokens[i], id, &sealed), TM_OK);
            ASSERT_STR_EQ(id, ids[i]);
            if (round == 2) {
                struct creds out;
                ASSERT_INT_EQ(store_open_sealed(s, sealed, &out), TM_OK);
                snprintf(label, sizeof(label), "u%d", i);
                ASSERT_STR_EQ(out.label, label);
                creds_cleanup(&out);
            }
            store_sealed_free(&sealed);
        }
    }
    ASSERT(store_url_cache_hits(s) > hits);
    store_close(&s);
    sodium_memzero(tokens, sizeof(tokens));
}

/*
 * The token check of requests that need no credentials: it names the user
 * without opening the record, and a revocation or rotation committed by
 * another process shows on the very next check.
 */
static void test_find_id(void)
{
    char dir[256];
    struct store *s = open_new(dir, sizeof(dir));
    char token_a[STORE_TOKEN_LEN + 1], id_a[STORE_ID_LEN + 1];
    char token_b[STORE_TOKEN_LEN + 1], id_b[STORE_ID_LEN + 1];
    char fresh[STORE_TOKEN_LEN + 1];
    char id[STORE_ID_LEN + 1];

    add_user(s, "a", false, token_a, id_a);
    add_user(s, "b", false, token_b, id_b);
    ASSERT_INT_EQ(store_find_id(s, token_a, id, NULL), TM_OK);
    ASSERT_STR_EQ(id, id_a);
    ASSERT_INT_EQ(store_find_id(s, token_b, id, NULL), TM_OK);
    ASSERT_STR_EQ(id, id_b);

    /* Unknown and malformed tokens name nobody. */
    struct store_sealed *sealed = (struct store_sealed *)1;
    static const char *const unknown[] = {"CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC", "", NULL,
                                          "' OR 1=1 --"};
    for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
        ASSERT_INT_EQ(store_find_id(s, unknown[i], id, &sealed), TM_ERR_NOT_FOUND);
        ASSERT_NULL(sealed);
    }

    /* What it found opens later into the same credentials, as store_find would. */
    struct creds in, out;
    struct store_sealed *sealed_again = NULL;
    fill_creds(&in, "c", true);
    char token_c[STORE_TOKEN_LEN + 1], id_c[STORE_ID_LEN + 1];
    ASSERT_INT_EQ(store_add(s, &in, token_c, id_c), TM_OK);
    ASSERT_INT_EQ(store_find_id(s, token_c, id, &sealed), TM_OK);
    ASSERT_STR_EQ(id, id_c);
    ASSERT_INT_EQ(store_open_sealed(s, sealed, &out), TM_OK);
    assert_creds_eq(&in, &out);
    creds_cleanup(&out);
    creds_cleanup(&in);
    store_sealed_free(&sealed);
    ASSERT_NULL(sealed);
    store_sealed_free(&sealed);

    /* It does not open the record: a tampered blob still names its user; opening refuses it. */
    sqlite3 *db = db_open(dir);
    size_t len = 0;
    unsigned char *orig = get_sealed(db, id_a, &len);
    set_sealed(db, id_a, orig, len - 1);
    ASSERT_INT_EQ(store_find_id(s, token_a, id, &sealed), TM_OK);
    ASSERT_INT_EQ(store_open_sealed(s, sealed, &out), TM_ERR_DENIED);
    assert_clean(&out);
    store_sealed_free(&sealed);
    ASSERT_INT_EQ(find(s, token_a), TM_ERR_DENIED);
    set_sealed(db, id_a, orig, len);
    sqlite3_close(db);
    free(orig);

    /*
     * Repeated checks with nothing committed in between may be answered
     * without SQLite; whatever is committed next must still show at once.
     * Each change below follows such checks, and is checked right after.
     */
    uint64_t hits = store_url_cache_hits(s);
    /* Each token three times in a row: two users may share a cache slot
     * (one chance in 64), and taking turns they would evict each other. */
    for (int i = 0; i < 3; i++) {
        ASSERT_INT_EQ(store_find_id(s, token_a, id, NULL), TM_OK);
        ASSERT_STR_EQ(id, id_a);
    }
    for (int i = 0; i < 3; i++) {
        ASSERT_INT_EQ(store_find_id(s, token_b, id, NULL), TM_OK);
        ASSERT_STR_EQ(id, id_b);
    }
    /* Some of them were answered without SQLite, or the checks below would test nothing. */
    ASSERT(store_url_cache_hits(s) > hits);
    /* Found from the cache, the record still opens: the copy is the row as in the file. */
    ASSERT_INT_EQ(store_find_id(s, token_c, id, &sealed), TM_OK);
    store_sealed_free(&sealed);
    ASSERT_INT_EQ(store_find_id(s, token_c, id, &sealed_again), TM_OK);
    ASSERT_INT_EQ(store_open_sealed(s, sealed_again, &out), TM_OK);
    ASSERT_STR_EQ(out.label, "c");
    creds_cleanup(&out);
    store_sealed_free(&sealed_again);

    /* Another process revokes a: the next check already misses it; b is untouched. */
    in_other_process(dir, OTHER_REVOKE, id_a, NULL);
    ASSERT_INT_EQ(store_find_id(s, token_a, id, NULL), TM_ERR_NOT_FOUND);
    ASSERT_INT_EQ(store_find_id(s, token_b, id, NULL), TM_OK);
    ASSERT_INT_EQ(store_find_id(s, token_b, id, NULL), TM_OK);

    /* Another process rotates b: the old token is dead at the next check, the new one is b. */
    in_other_process(dir, OTHER_ROTATE, token_b, fresh);
    ASSERT_INT_EQ(store_find_id(s, token_b, id, NULL), TM_ERR_NOT_FOUND);
    ASSERT_INT_EQ(store_find_id(s, fresh, id, NULL), TM_OK);
    ASSERT_STR_EQ(id, id_b);
    ASSERT_INT_EQ(store_find_id(s, fresh, id, NULL), TM_OK);

    /* Someone with the file deletes c behind the store's back: gone at once too. */
    ASSERT_INT_EQ(store_find_id(s, token_c, id, NULL), TM_OK);
    db = db_open(dir);
    db_exec_id(db, "DELETE FROM users WHERE public_id = ?1", id_c);
    sqlite3_close(db);
    ASSERT_INT_EQ(store_find_id(s, token_c, id, NULL), TM_ERR_NOT_FOUND);

    /* And this process's own revocation shows the same way. */
    ASSERT_INT_EQ(store_find_id(s, fresh, id, NULL), TM_OK);
    ASSERT_INT_EQ(store_revoke(s, id_b), TM_OK);
    ASSERT_INT_EQ(store_find_id(s, fresh, id, NULL), TM_ERR_NOT_FOUND);

    store_close(&s);
    sodium_memzero(token_a, sizeof(token_a));
    sodium_memzero(token_b, sizeof(token_b));
    sodium_memzero(fresh, sizeof(fresh));
    sodium_memzero(token_c, sizeof(token_c));
}

static void assert_no_secrets_in(const char *path, const char *tokens[], size_t n_tokens,
                                 bool must_exist)
{
    size_t len = 0;
    unsigned char *bytes = read_all(path, &len);
    static const char *const secrets[] = {SECRET_URL, SECRET_DB_TOKEN, SECRET_PLATFORM, SECRET_ORG,
                                          SECRET_DB};

    if (!bytes) {
        ASSERT(!must_exist);
        return;
    }
    for (size_t i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++) {
        if (contains(bytes, len, secrets[i], strlen(secrets[i])))
            TEST_FAIL("%s holds secret %zu in the clear", path, i);
        /* Or a recognisable part of one. */
        if (contains(bytes, len, secrets[i] + 4, 16))
            TEST_FAIL("%s holds part of secret %zu in the clear", path, i);
    }
    for (size_t i = 0; i < n_tokens; i++) {
        unsigned char bin[32];
        size_t bin_len = 0;
        ASSERT_INT_EQ(sodium_base642bin(bin, sizeof(bin), tokens[i], STORE_TOKEN_LEN, NULL,
                                        &bin_len, NULL, sodium_base64_VARIANT_URLSAFE_NO_PADDING),
                      0);
        ASSERT_INT_EQ(bin_len, 32);
        if (contains(bytes, len, tokens[i], STORE_TOKEN_LEN))
            TEST_FAIL("%s holds token %zu as text", path, i);
        if (contains(bytes, len, bin, 16) || contains(bytes, len, bin + 16, 16))
            TEST_FAIL("%s holds token %zu as bytes", path, i);
        sodium_memzero(bin, sizeof(bin));
    }
    free(bytes);
}

static bool file_contains(const char *path, const char *text)
{
    size_t len = 0;
    unsigned char *bytes = read_all(path, &len);
    bool found = contains(bytes, len, text, strlen(text));
    free(bytes);
    return found;
}

static void test_no_plaintext_secrets(void)
{
    char dir[256], db_path[512], wal_path[512], shm_path[512];
    struct store *s = open_new(dir, sizeof(dir));
    char tokens[5][STORE_TOKEN_LEN + 1], ids[5][STORE_ID_LEN + 1];
    const char *token_ptrs[5];

    for (int i = 0; i < 5; i++) {
        add_user(s, PLAIN_LABEL, i % 2, tokens[i], ids[i]);
        token_ptrs[i] = tokens[i];
    }
    for (int i = 0; i < 5; i++)
        ASSERT_INT_EQ(find(s, tokens[i]), TM_OK);
    ASSERT_INT_EQ(store_revoke(s, ids[4]), TM_OK);

    path_in(db_path, sizeof(db_path), dir, "store.db");
    path_in(wal_path, sizeof(wal_path), dir, "store.db-wal");
    path_in(shm_path, sizeof(shm_path), dir, "store.db-shm");
    /* While open, most of the data sits in the WAL. */
    assert_no_secrets_in(db_path, token_ptrs, 5, true);
    assert_no_secrets_in(wal_path, token_ptrs, 5, true);
    assert_no_secrets_in(shm_path, token_ptrs, 5, false);
    /* The search does find what is stored in the clear: the label. */
    ASSERT(file_contains(db_path, PLAIN_LABEL) || file_contains(wal_path, PLAIN_LABEL));

    store_close(&s);
    assert_no_secrets_in(db_path, token_ptrs, 5, true);
    assert_no_secrets_in(wal_path, token_ptrs, 5, false);
    ASSERT(file_contains(db_path, PLAIN_LABEL));
    sodium_memzero(tokens, sizeof(tokens));
}

static void test_last_used(void)
{
    char dir[256];
    struct store *s = open_new(dir, sizeof(dir));
    char token[STORE_TOKEN_LEN + 1], id[STORE_ID_LEN + 1];
    const char *q = "SELECT last_used_at FROM users WHERE public_id = ?1";

    add_user(s, "a", false, token, id);
    sqlite3 *db = db_open(dir);
    ASSERT_INT_EQ(db_int(db, q, id), 0);
    int64_t t0 = (int64_t)time(NULL);
    ASSERT_INT_EQ(find(s, token), TM_OK);
    int64_t first = db_int(db, q, id);
    ASSERT(first >= t0 && first <= (int64_t)time(NULL));

    /* Within the minute: no write. */
    char sql[128];
    int64_t recent = (int64_t)time(NULL) - 30;
    snprintf(sql, sizeof(sql), "UPDATE users SET last_used_at = %lld", (long long)recent);
    db_exec(db, sql);
    ASSERT_INT_EQ(find(s, token), TM_OK);
    ASSERT_INT_EQ(db_int(db, q, id), recent);

    /* After it: updated. */
    int64_t old = (int64_t)time(NULL) - 120;
    snprintf(sql, sizeof(sql), "UPDATE users SET last_used_at = %lld", (long long)old);
    db_exec(db, sql);
    t0 = (int64_t)time(NULL);
    ASSERT_INT_EQ(find(s, token), TM_OK);
    ASSERT(db_int(db, q, id) >= t0);

    /* A failed open does not count as a use. */
    db_exec(db, sql);
    db_exec(db, "UPDATE users SET key_version = 7");
    ASSERT_INT_EQ(find(s, token), TM_ERR_DENIED);
    ASSERT_INT_EQ(db_int(db, q, id), old);

    sqlite3_close(db);
    store_close(&s);
    sodium_memzero(token, sizeof(token));
}

/*
 * The request path keeps store_find's rule. The URL check that hands out
 * the sealed record counts nothing itself: a request that opens the
 * record (initialize, tools/call) counts the use when it opens, one that
 * never opens it (tools/list, ping) with store_count_use, and a record
 * that does not open counts no use, however often it is called.
 */
static void test_last_used_by_requests(void)
{
    char dir[256];
    struct store *s = open_new(dir, sizeof(dir));
    char token[STORE_TOKEN_LEN + 1], id[STORE_ID_LEN + 1], found_id[STORE_ID_LEN + 1];
    const char *q = "SELECT last_used_at FROM users WHERE public_id = ?1";
    struct store_sealed *sealed = NULL;
    struct creds out;
    char sql[128];
    int64_t old = (int64_t)time(NULL) - 120;
    snprintf(sql, sizeof(sql), "UPDATE users SET last_used_at = %lld", (long long)old);

    add_user(s, "a", false, token, id);
    sqlite3 *db = db_open(dir);

    /* A tool call: the check counts nothing, the opening does. */
    db_exec(db, sql);
    ASSERT_INT_EQ(store_find_id(s, token, found_id, &sealed), TM_OK);
    ASSERT_STR_EQ(found_id, id);
    ASSERT_INT_EQ(db_int(db, q, id), old);
    int64_t t0 = (int64_t)time(NULL);
    ASSERT_INT_EQ(store_open_sealed(s, sealed, &out), TM_OK);
    ASSERT(db_int(db, q, id) >= t0);
    creds_cleanup(&out);
    store_sealed_free(&sealed);

    /* A tools/list: counted without opening. */
    db_exec(db, sql);
    ASSERT_INT_EQ(store_find_id(s, token, found_id, &sealed), TM_OK);
    ASSERT_INT_EQ(db_int(db, q, id), old);
    t0 = (int64_t)time(NULL);
    store_count_use(s, sealed);
    ASSERT(db_int(db, q, id) >= t0);
    store_sealed_free(&sealed);

    /* A tool call on a record that does not open: no use, check or opening. */
    db_exec(db, sql);
    db_exec(db, "UPDATE users SET key_version = 7");
    for (int i = 0; i < 2; i++) {
        ASSERT_INT_EQ(store_find_id(s, token, found_id, &sealed), TM_OK);
        ASSERT_INT_EQ(store_open_sealed(s, sealed, &out), TM_ERR_DENIED);
        assert_clean(&out);
        store_sealed_free(&sealed);
        ASSERT_INT_EQ(db_int(db, q, id), old);
    }
    /* While a tools/list on it, which never decrypts, still counts. */
    ASSERT_INT_EQ(store_find_id(s, token, found_id, &sealed), TM_OK);
    store_count_use(s, sealed);
    ASSERT(db_int(db, q, id) >= t0);
    store_sealed_free(&sealed);
    store_count_use(s, NULL);

    /* The check alone, handing nothing out, is a use by itself. */
    db_exec(db, sql);
    ASSERT_INT_EQ(store_find_id(s, token, found_id, NULL), TM_OK);
    ASSERT(db_int(db, q, id) >= t0);

    sqlite3_close(db);
    store_close(&s);
    sodium_memzero(token, sizeof(token));
}

static void test_too_large_creds(void)
{
    char dir[256];
    struct store *s = open_new(dir, sizeof(dir));
    char token[STORE_TOKEN_LEN + 1], id[STORE_ID_LEN + 1];
    struct creds c = {0};
    int n = 0;

    c.db_token = malloc(1 << 20);
    ASSERT_NOT_NULL(c.db_token);
    memset(c.db_token, 'x', (1 << 20) - 1);
    c.db_token[(1 << 20) - 1] = '\0';
    ASSERT_INT_EQ(store_add(s, &c, token, id), TM_ERR_TOO_LARGE);
    ASSERT_INT_EQ(store_list(s, count, &n), TM_OK);
    ASSERT_INT_EQ(n, 0);
    free(c.db_token);
    store_close(&s);
}

static void test_rotate_token(void)
{
    char dir[256];
    struct store *s = open_new(dir, sizeof(dir));
    char token[STORE_TOKEN_LEN + 1], id[STORE_ID_LEN + 1];
    char other[STORE_TOKEN_LEN + 1], other_id[STORE_ID_LEN + 1];
    char fresh[STORE_TOKEN_LEN + 1], fresh_id[STORE_ID_LEN + 1];
    char again[STORE_TOKEN_LEN + 1];
    char found_id[STORE_ID_LEN + 1];
    struct creds in, out;
    struct list_seen seen;

    fill_creds(&in, PLAIN_LABEL, true);
    ASSERT_INT_EQ(store_add(s, &in, token, id), TM_OK);
    add_user(s, "bystander", false, other, other_id);
    ASSERT_INT_EQ(store_log_activity(s, id, "turso_query", "orders", "ok", 1000), TM_OK);

    ASSERT_INT_EQ(store_rotate(s, token, fresh, fresh_id), TM_OK);
    ASSERT(is_token_text(fresh));
    ASSERT(strcmp(fresh, token) != 0);
    /* The public id stays, so `user list`, revoke and the activity carry on. */
    ASSERT_STR_EQ(fresh_id, id);
    /* The old token is dead at once; the new one opens the same credentials. */
    ASSERT_INT_EQ(find(s, token), TM_ERR_NOT_FOUND);
    ASSERT_INT_EQ(store_find(s, fresh, &out, found_id), TM_OK);
    assert_creds_eq(&in, &out);
    ASSERT_STR_EQ(found_id, id);
    creds_cleanup(&out);
    ASSERT_INT_EQ(find(s, other), TM_OK);

    memset(&seen, 0, sizeof(seen));
    ASSERT_INT_EQ(store_list(s, collect, &seen), TM_OK);
    ASSERT_INT_EQ(seen.n, 2);
    ASSERT_STR_EQ(seen.ids[0], id);
    ASSERT_STR_EQ(seen.labels[0], PLAIN_LABEL);
    ASSERT(seen.ro[0]);
    int n_activity = 0;
    ASSERT_INT_EQ(store_activity(s, id, count_activity, &n_activity), TM_OK);
    ASSERT_INT_EQ(n_activity, 1);

    /* Rotating with the old token again, or with nonsense, finds nothing. */
    ASSERT_INT_EQ(store_rotate(s, token, again, NULL), TM_ERR_NOT_FOUND);
    ASSERT_INT_EQ(store_rotate(s, "not-a-token", again, NULL), TM_ERR_NOT_FOUND);
    ASSERT_INT_EQ(store_rotate(s, NULL, again, NULL), TM_ERR_NOT_FOUND);
    ASSERT_INT_EQ(store_rotate(NULL, fresh, again, NULL), TM_ERR_INVALID);

    /* A record that does not open is not rotated. */
    sqlite3 *db = db_open(dir);
    size_t len = 0;
    unsigned char *blob = get_sealed(db, id, &len);
    blob[len - 1] ^= 1;
    set_sealed(db, id, blob, len);
    ASSERT_INT_EQ(store_rotate(s, fresh, again, NULL), TM_ERR_DENIED);
    blob[len - 1] ^= 1;
    set_sealed(db, id, blob, len);
    free(blob);
    sqlite3_close(db);

    /* Across a reopen, and rotated twice: only the newest token works. */
    store_close(&s);
    ASSERT_INT_EQ(store_open(dir, NULL, &s, NULL), TM_OK);
    ASSERT_INT_EQ(store_rotate(s, fresh, again, NULL), TM_OK);
    ASSERT_INT_EQ(find(s, fresh), TM_ERR_NOT_FOUND);
    ASSERT_INT_EQ(find(s, token), TM_ERR_NOT_FOUND);
    ASSERT_INT_EQ(find(s, again), TM_OK);
    /* Revoking by the public id still works after rotation. */
    ASSERT_INT_EQ(store_revoke(s, id), TM_OK);
    ASSERT_INT_EQ(find(s, again), TM_ERR_NOT_FOUND);
    ASSERT_INT_EQ(find(s, other), TM_OK);

    store_close(&s);
    creds_cleanup(&in);
    sodium_memzero(token, sizeof(token));
    sodium_memzero(fresh, sizeof(fresh));
    sodium_memzero(again, sizeof(again));
    sodium_memzero(other, sizeof(other));
}

/* Two threads rotate the same token: exactly one wins, and its token is the one that works. */
struct rotate_race {
    struct store *s;
    const char *token;
    char fresh[STORE_TOKEN_LEN + 1];
    enum tm_err err;
};

static void *rotate_main(void *arg)
{
    struct rotate_race *r = arg;
    r->err = store_rotate(r->s, r->token, r->fresh, NULL);
    return NULL;
}

static void test_rotate_race(void)
{
    char dir[256];
    struct store *s = open_new(dir, sizeof(dir));
    char token[STORE_TOKEN_LEN + 1], id[STORE_ID_LEN + 1];
    struct rotate_race races[4];
    pthread_t threads[4];
    int n_won = 0;

    add_user(s, "raced", false, token, id);
    for (int i = 0; i < 4; i++) {
        memset(&races[i], 0, sizeof(races[i]));
        races[i].s = s;
        races[i].token = token;
        ASSERT_INT_EQ(pthread_create(&threads[i], NULL, rotate_main, &races[i]), 0);
    }
    for (int i = 0; i < 4; i++)
        ASSERT_INT_EQ(pthread_join(threads[i], NULL), 0);
    for (int i = 0; i < 4; i++) {
        if (races[i].err == TM_OK) {
            n_won++;
            ASSERT_INT_EQ(find(s, races[i].fresh), TM_OK);
        } else {
            ASSERT_INT_EQ(races[i].err, TM_ERR_NOT_FOUND);
        }
    }
    ASSERT_INT_EQ(n_won, 1);
    ASSERT_INT_EQ(find(s, token), TM_ERR_NOT_FOUND);
    store_close(&s);
}

struct key_seen {
    int n;
    struct store_key_info k[8];
};

static void collect_keys(const struct store_key_info *info, void *ctx)
{
    struct key_seen *seen = ctx;
    ASSERT(seen->n < 8);
    seen->k[seen->n++] = *info;
}

static int64_t records_on(struct store *s, int version)
{
    struct key_seen seen;
    memset(&seen, 0, sizeof(seen));
    ASSERT_INT_EQ(store_key_status(s, collect_keys, &seen), TM_OK);
    for (int i = 0; i < seen.n; i++)
        if (seen.k[i].version == version)
            return seen.k[i].n_records;
    return 0;
}

static char *read_text(const char *path)
{
    size_t len = 0;
    unsigned char *bytes = read_all(path, &len);
    ASSERT_NOT_NULL(bytes);
    bytes = realloc(bytes, len + 1);
    ASSERT_NOT_NULL(bytes);
    bytes[len] = '\0';
    return (char *)bytes;
}

static void test_master_key_rotation(void)
{
    char dir[256], key_path[512];
    struct store *s = open_new(dir, sizeof(dir));
    struct store *other = NULL;
    char tokens[3][STORE_TOKEN_LEN + 1], ids[3][STORE_ID_LEN + 1];
    char late[STORE_TOKEN_LEN + 1], late_id[STORE_ID_LEN + 1];
    struct key_seen seen;
    struct stat st;
    int version = 0;
    struct creds out;

    for (int i = 0; i < 3; i++)
        add_user(s, "keyed", i == 1, tokens[i], ids[i]);
    path_in(key_path, sizeof(key_path), dir, "master.key");
    char *v1_text = read_text(key_path);

    /* A second handle, as a running server beside the admin command would have. */
    ASSERT_INT_EQ(store_open(dir, NULL, &other, NULL), TM_OK);

    ASSERT_INT_EQ(store_rotate_master_key(s, &version), TM_OK);
    ASSERT_INT_EQ(version, 2);
    /* The old line is kept byte for byte, the new one appended; still private. */
    char *v2_text = read_text(key_path);
    ASSERT_INT_EQ(strlen(v2_text), 2 * 68);
    ASSERT(strncmp(v2_text, v1_text, 68) == 0);
    ASSERT(strncmp(v2_text + 68, "v2:", 3) == 0);
    ASSERT_INT_EQ(stat(key_path, &st), 0);
    ASSERT_INT_EQ(st.st_mode & 07777, 0600);

    memset(&seen, 0, sizeof(seen));
    ASSERT_INT_EQ(store_key_status(s, collect_keys, &seen), TM_OK);
    ASSERT_INT_EQ(seen.n, 2);
    ASSERT_INT_EQ(seen.k[0].version, 1);
    ASSERT_INT_EQ(seen.k[0].n_records, 3);
    ASSERT(seen.k[0].is_lookup && seen.k[0].is_loaded && !seen.k[0].is_current);
    ASSERT_INT_EQ(seen.k[1].version, 2);
    ASSERT_INT_EQ(seen.k[1].n_records, 0);
    ASSERT(!seen.k[1].is_lookup && seen.k[1].is_loaded && seen.k[1].is_current);

    /* Records on v1 still open, and each moves to v2 on its owner's next call. */
    ASSERT_INT_EQ(find(s, tokens[0]), TM_OK);
    ASSERT_INT_EQ(records_on(s, 1), 2);
    ASSERT_INT_EQ(records_on(s, 2), 1);
    ASSERT_INT_EQ(store_find(s, tokens[1], &out, NULL), TM_OK);
    ASSERT(out.is_read_only);
    ASSERT_STR_EQ(out.db_token, SECRET_DB_TOKEN);
    creds_cleanup(&out);
    ASSERT_INT_EQ(records_on(s, 1), 1);
    /* A migrated record opens again, under v2 now. */
    ASSERT_INT_EQ(find(s, tokens[0]), TM_OK);
    ASSERT_INT_EQ(records_on(s, 2), 2);

    /*
     * The other handle loaded v1 only. It still opens everything (v2
     * records make it read master.key again), and new records it seals go
     * to v2 once it has seen the new file.
     */
    ASSERT_INT_EQ(find(other, tokens[0]), TM_OK);
    ASSERT_INT_EQ(find(other, tokens[2]), TM_OK);
    ASSERT_INT_EQ(records_on(s, 1), 0);
    add_user(other, "late", false, late, late_id);
    sqlite3 *db = db_open(dir);
    ASSERT_INT_EQ(db_int(db, "SELECT key_version FROM users WHERE public_id = ?1", late_id), 2);
    ASSERT_INT_EQ(find(s, late), TM_OK);

    /* A new record goes straight to the current version. */
    char tok4[STORE_TOKEN_LEN + 1], id4[STORE_ID_LEN + 1];
    add_user(s, "new", false, tok4, id4);
    ASSERT_INT_EQ(db_int(db, "SELECT key_version FROM users WHERE public_id = ?1", id4), 2);

    /* Everything survives a reopen; a third version keeps both older lines. */
    store_close(&s);
    store_close(&other);
    ASSERT_INT_EQ(store_open(dir, NULL, &s, NULL), TM_OK);
    ASSERT_INT_EQ(store_rotate_master_key(s, &version), TM_OK);
    ASSERT_INT_EQ(version, 3);
    char *v3_text = read_text(key_path);
    ASSERT_INT_EQ(strlen(v3_text), 3 * 68);
    ASSERT(strncmp(v3_text, v2_text, 2 * 68) == 0);
    for (int i = 0; i < 3; i++)
        ASSERT_INT_EQ(find(s, tokens[i]), TM_OK);
    ASSERT_INT_EQ(find(s, late), TM_OK);
    ASSERT_INT_EQ(find(s, tok4), TM_OK);
    ASSERT_INT_EQ(records_on(s, 3), 5);
    ASSERT_INT_EQ(records_on(s, 2), 0);
    size_t n_problems = 99;
    ASSERT_INT_EQ(store_check(s, NULL, NULL, &n_problems), TM_OK);
    ASSERT_INT_EQ(n_problems, 0);
    store_close(&s);

    /* Dropping the first version (which finds records) is refused at open. */
    write_file(key_path, v3_text + 68, 0600);
    ASSERT_INT_EQ(store_open(dir, NULL, &s, NULL), TM_ERR_DENIED);
    ASSERT_NULL(s);
    /* Versions out of order are not a key file. */
    char swapped[3 * 68 + 1];
    snprintf(swapped, sizeof(swapped), "%.68s%.68s%.68s", v3_text, v3_text + 2 * 68, v3_text + 68);
    write_file(key_path, swapped, 0600);
    ASSERT_INT_EQ(store_open(dir, NULL, &s, NULL), TM_ERR_INVALID);
    /* A changed key for a version is refused. */
    char changed[3 * 68 + 1];
    snprintf(changed, sizeof(changed), "%s", v3_text);
    changed[68 + 10] = changed[68 + 10] == 'a' ? 'b' : 'a';
    write_file(key_path, changed, 0600);
    ASSERT_INT_EQ(store_open(dir, NULL, &s, NULL), TM_ERR_DENIED);
    /* Dropping a middle version opens, but its records (none now) would be lost: check says. */
    write_file(key_path, v3_text, 0600);
    ASSERT_INT_EQ(store_open(dir, NULL, &s, NULL), TM_OK);
    ASSERT_INT_EQ(find(s, tokens[0]), TM_OK);
    store_close(&s);

    sqlite3_close(db);
    free(v1_text);
    free(v2_text);
    free(v3_text);
    sodium_memzero(tokens, sizeof(tokens));
    sodium_memzero(late, sizeof(late));
}

/* A store made before master key versions (v1 only, schema 1) reads on and migrates. */
static void test_old_store_upgrades(void)
{
    char dir[256];
    struct store *s = open_new(dir, sizeof(dir));
    char token[STORE_TOKEN_LEN + 1], id[STORE_ID_LEN + 1];
    int version = 0;

    add_user(s, "old", false, token, id);
    store_close(&s);
    /* Back to schema 1: no activity table. */
    sqlite3 *db = db_open(dir);
    db_exec(db, "DROP TRIGGER users_delete_activity; DROP TABLE activity;"
                " PRAGMA user_version = 1");
    sqlite3_close(db);
    ASSERT_INT_EQ(store_open(dir, NULL, &s, NULL), TM_OK);
    ASSERT_INT_EQ(find(s, token), TM_OK);
    ASSERT_INT_EQ(store_log_activity(s, id, "turso_query", NULL, "ok", 5), TM_OK);
    ASSERT_INT_EQ(store_rotate_master_key(s, &version), TM_OK);
    ASSERT_INT_EQ(find(s, token), TM_OK);
    ASSERT_INT_EQ(records_on(s, 2), 1);
    store_close(&s);
    sodium_memzero(token, sizeof(token));
}

static void print_problem(const char *problem, void *ctx)
{
    int *n = ctx;
    (*n)++;
    fprintf(stderr, "  (expected) problem: %s\n", problem);
}

static void test_check(void)
{
    char dir[256], key_path[512];
    struct store *s = open_new(dir, sizeof(dir));
    char tokens[3][STORE_TOKEN_LEN + 1], ids[3][STORE_ID_LEN + 1];
    size_t n = 99;
    int n_called = 0;

    for (int i = 0; i < 3; i++)
        add_user(s, "checked", false, tokens[i], ids[i]);
    ASSERT_INT_EQ(store_log_activity(s, ids[0], "turso_query", "db1", "ok", 10), TM_OK);
    ASSERT_INT_EQ(store_check(s, print_problem, &n_called, &n), TM_OK);
    ASSERT_INT_EQ(n, 0);
    ASSERT_INT_EQ(n_called, 0);

    /* Each kind of damage is seen, one problem each. */
    static const struct {
        const char *sql;
        size_t n_problems;
    } damage[] = {
        {"UPDATE users SET record_id = x'00' WHERE public_id = ?1", 1},
        /* The user's activity no longer names a user either. */
        {"UPDATE users SET public_id = 'NOT-HEX-AT-ALL!!' WHERE public_id = ?1", 2},
        {"UPDATE users SET key_version = 9 WHERE public_id = ?1", 1},
        {"UPDATE users SET sealed = x'0011' WHERE public_id = ?1", 1},
        {"UPDATE users SET is_read_only = 7 WHERE public_id = ?1", 1},
        {"UPDATE users SET created_at = 0 WHERE public_id = ?1", 1},
        {"INSERT INTO activity (public_id, at, tool, database, outcome)"
         " VALUES ('ffffffffffffffff', 1, 'turso_query', '', 'ok')",
         1},
        {"UPDATE activity SET tool = 'DROP TABLE x;' WHERE public_id = ?1", 1},
        {"UPDATE master_keys SET key_check = zeroblob(32)", 1},
    };
    /* Damage must be committed for the store's connection to see it; TEMP copies undo it. */
    static const char restore[] =
        "DELETE FROM users; DELETE FROM activity; DELETE FROM master_keys;"
        " INSERT INTO users SELECT * FROM temp.u; INSERT INTO activity SELECT * FROM temp.a;"
        " INSERT INTO master_keys SELECT * FROM temp.k";
    sqlite3 *db = db_open(dir);
    db_exec(db, "CREATE TEMP TABLE u AS SELECT * FROM users;"
                " CREATE TEMP TABLE a AS SELECT * FROM activity;"
                " CREATE TEMP TABLE k AS SELECT * FROM master_keys");
    for (size_t i = 0; i < sizeof(damage) / sizeof(damage[0]); i++) {
        db_exec_id(db, damage[i].sql, ids[0]);
        n_called = 0;
        ASSERT_INT_EQ(store_check(s, print_problem, &n_called, &n), TM_OK);
        if (n != damage[i].n_problems)
            TEST_FAIL("damage %zu: %zu problems, expected %zu", i, n, damage[i].n_problems);
        ASSERT_INT_EQ(n_called, n);
        db_exec(db, restore);
    }
    /* A user with too much activity. */
    for (int i = 0; i <= STORE_ACTIVITY_MAX; i++)
        db_exec_id(db,
                   "INSERT INTO activity (public_id, at, tool, database, outcome)"
                   " VALUES (?1, 1, 'turso_query', '', 'ok')",
                   ids[1]);
    ASSERT_INT_EQ(store_check(s, NULL, NULL, &n), TM_OK);
    ASSERT_INT_EQ(n, 1);
    db_exec(db, restore);
    sqlite3_close(db);

    /* Healthy again: the damage was all there was. */
    ASSERT_INT_EQ(store_check(s, NULL, NULL, &n), TM_OK);
    ASSERT_INT_EQ(n, 0);
    ASSERT_INT_EQ(store_check(NULL, NULL, NULL, &n), TM_ERR_INVALID);

    /* A version dropped from master.key while records use it. */
    int version = 0;
    ASSERT_INT_EQ(store_rotate_master_key(s, &version), TM_OK);
    ASSERT_INT_EQ(find(s, tokens[2]), TM_OK); /* now on v2 */
    store_close(&s);
    path_in(key_path, sizeof(key_path), dir, "master.key");
    char *text = read_text(key_path);
    text[68] = '\0';
    write_file(key_path, text, 0600);
    ASSERT_INT_EQ(store_open(dir, NULL, &s, NULL), TM_OK);
    ASSERT_INT_EQ(find(s, tokens[0]), TM_OK);
    ASSERT_INT_EQ(find(s, tokens[2]), TM_ERR_DENIED);
    ASSERT_INT_EQ(store_check(s, NULL, NULL, &n), TM_OK);
    ASSERT_INT_EQ(n, 1);
    store_close(&s);
    sodium_memzero(text, strlen(text));
    free(text);
    sodium_memzero(tokens, sizeof(tokens));
}

struct activity_seen {
    int n;
    int64_t at[STORE_ACTIVITY_MAX + 1];
    char tool[4][64];
    char database[4][64];
    char outcome[4][32];
};

static void collect_activity(const struct store_activity_entry *e, void *ctx)
{
    struct activity_seen *seen = ctx;
    ASSERT(seen->n <= STORE_ACTIVITY_MAX);
    ASSERT_NOT_NULL(e->tool);
    ASSERT_NOT_NULL(e->database);
    ASSERT_NOT_NULL(e->outcome);
    if (seen->n < 4) {
        snprintf(seen->tool[seen->n], sizeof(seen->tool[0]), "%s", e->tool);
        snprintf(seen->database[seen->n], sizeof(seen->database[0]), "%s", e->database);
        snprintf(seen->outcome[seen->n], sizeof(seen->outcome[0]), "%s", e->outcome);
    }
    seen->at[seen->n++] = e->at;
}

static void test_activity(void)
{
    char dir[256];
    struct store *s = open_new(dir, sizeof(dir));
    char token[STORE_TOKEN_LEN + 1], id[STORE_ID_LEN + 1];
    char token_b[STORE_TOKEN_LEN + 1], id_b[STORE_ID_LEN + 1];
    struct activity_seen seen;

    add_user(s, "active", false, token, id);
    add_user(s, "quiet", false, token_b, id_b);
    memset(&seen, 0, sizeof(seen));
    ASSERT_INT_EQ(store_activity(s, id, collect_activity, &seen), TM_OK);
    ASSERT_INT_EQ(seen.n, 0);

    ASSERT_INT_EQ(store_log_activity(s, id, "turso_query", "orders-db", "ok", 100), TM_OK);
    ASSERT_INT_EQ(store_log_activity(s, id, "turso_query", NULL, "error", 101), TM_OK);
    ASSERT_INT_EQ(store_log_activity(s, id, "turso_schema_inspector", "", "cancelled", 102), TM_OK);
    memset(&seen, 0, sizeof(seen));
    ASSERT_INT_EQ(store_activity(s, id, collect_activity, &seen), TM_OK);
    ASSERT_INT_EQ(seen.n, 3);
    /* Newest first. */
    ASSERT_INT_EQ(seen.at[0], 102);
    ASSERT_STR_EQ(seen.tool[0], "turso_schema_inspector");
    ASSERT_STR_EQ(seen.database[0], "");
    ASSERT_STR_EQ(seen.outcome[0], "cancelled");
    ASSERT_STR_EQ(seen.database[1], "");
    ASSERT_STR_EQ(seen.outcome[1], "error");
    ASSERT_STR_EQ(seen.tool[2], "turso_query");
    ASSERT_STR_EQ(seen.database[2], "orders-db");
    ASSERT_INT_EQ(seen.at[2], 100);
    /* Someone else's log is their own. */
    memset(&seen, 0, sizeof(seen));
    ASSERT_INT_EQ(store_activity(s, id_b, collect_activity, &seen), TM_OK);
    ASSERT_INT_EQ(seen.n, 0);

    /* Only names and words: no SQL, no arguments, no markup. */
    ASSERT_INT_EQ(store_log_activity(s, id, "SELECT * FROM t", NULL, "ok", 1), TM_ERR_INVALID);
    ASSERT_INT_EQ(store_log_activity(s, id, "turso_query", "db'; DROP", "ok", 1), TM_ERR_INVALID);
    ASSERT_INT_EQ(store_log_activity(s, id, "turso_query", "<script>", "ok", 1), TM_ERR_INVALID);
    ASSERT_INT_EQ(store_log_activity(s, id, "turso_query", NULL, "OK!", 1), TM_ERR_INVALID);
    ASSERT_INT_EQ(store_log_activity(s, id, "", NULL, "ok", 1), TM_ERR_INVALID);
    ASSERT_INT_EQ(store_log_activity(s, id, NULL, NULL, "ok", 1), TM_ERR_INVALID);
    ASSERT_INT_EQ(store_log_activity(s, id, "turso_query", NULL, NULL, 1), TM_ERR_INVALID);
    ASSERT_INT_EQ(store_log_activity(s, "nope", "turso_query", NULL, "ok", 1), TM_ERR_INVALID);
    char long_name[STORE_ACTIVITY_NAME_MAX + 2];
    memset(long_name, 'a', sizeof(long_name) - 1);
    long_name[sizeof(long_name) - 1] = '\0';
    ASSERT_INT_EQ(store_log_activity(s, id, long_name, NULL, "ok", 1), TM_ERR_INVALID);
    long_name[STORE_ACTIVITY_NAME_MAX] = '\0';
    ASSERT_INT_EQ(store_log_activity(s, id_b, long_name, long_name, "ok", 1), TM_OK);
    /* No such user: nothing is written. */
    ASSERT_INT_EQ(store_log_activity(s, "0123456789abcdef", "turso_query", NULL, "ok", 1),
                  TM_ERR_NOT_FOUND);

    /* Bounded: only the newest STORE_ACTIVITY_MAX stay. */
    for (int i = 0; i < STORE_ACTIVITY_MAX + 20; i++)
        ASSERT_INT_EQ(store_log_activity(s, id, "turso_query", "db", "ok", 1000 + i), TM_OK);
    memset(&seen, 0, sizeof(seen));
    ASSERT_INT_EQ(store_activity(s, id, collect_activity, &seen), TM_OK);
    ASSERT_INT_EQ(seen.n, STORE_ACTIVITY_MAX);
    ASSERT_INT_EQ(seen.at[0], 1000 + STORE_ACTIVITY_MAX + 19);
    ASSERT_INT_EQ(seen.at[STORE_ACTIVITY_MAX - 1], 1020);
    sqlite3 *db = db_open(dir);
    char sql[128];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM activity WHERE public_id = ?1");
    ASSERT_INT_EQ(db_int(db, sql, id), STORE_ACTIVITY_MAX);
    /* Writing activity does not leave the connection without fsync for user records. */
    ASSERT_INT_EQ(db_int(db, "PRAGMA synchronous", NULL), 2); /* this connection's default */

    /*
     * A batch: two users interleaved, past the cap, with a malformed entry
     * and one of an unknown user among them. Those two are skipped; each
     * user keeps only their newest STORE_ACTIVITY_MAX.
     */
    enum { N_BATCH = 2 * STORE_ACTIVITY_MAX + 60 };
    struct store_activity_item items[N_BATCH];
    for (int i = 0; i < N_BATCH; i++)
        items[i] = (struct store_activity_item){
            .id = i % 2 ? id_b : id, .tool = "turso_query", .outcome = "ok", .at = 5000 + i};
    items[7].tool = "not a name";
    items[8].id = "0123456789abcdef";
    size_t logged = 0;
    ASSERT_INT_EQ(store_log_activities(s, items, N_BATCH, &logged), TM_OK);
    ASSERT_INT_EQ(logged, N_BATCH - 2);
    ASSERT_INT_EQ(db_int(db, sql, id), STORE_ACTIVITY_MAX);
    ASSERT_INT_EQ(db_int(db, sql, id_b), STORE_ACTIVITY_MAX);
    memset(&seen, 0, sizeof(seen));
    ASSERT_INT_EQ(store_activity(s, id, collect_activity, &seen), TM_OK);
    ASSERT_INT_EQ(seen.at[0], 5000 + N_BATCH - 2);
    ASSERT_INT_EQ(seen.at[STORE_ACTIVITY_MAX - 1], 5000 + N_BATCH - 2 * STORE_ACTIVITY_MAX);
    ASSERT_INT_EQ(store_log_activities(s, items, 0, &logged), TM_OK);
    ASSERT_INT_EQ(logged, 0);

    /* Revoking a user deletes their activity in the same statement. */
    ASSERT_INT_EQ(store_revoke(s, id), TM_OK);
    ASSERT_INT_EQ(db_int(db, sql, id), 0);
    ASSERT_INT_EQ(db_int(db, sql, id_b), STORE_ACTIVITY_MAX);
    sqlite3_close(db);
    memset(&seen, 0, sizeof(seen));
    ASSERT_INT_EQ(store_activity(s, id, collect_activity, &seen), TM_OK);
    ASSERT_INT_EQ(seen.n, 0);
    ASSERT_INT_EQ(store_activity(s, "garbage", collect_activity, &seen), TM_OK);
    ASSERT_INT_EQ(store_activity(s, id, NULL, NULL), TM_ERR_INVALID);
    store_close(&s);
    sodium_memzero(token, sizeof(token));
    sodium_memzero(token_b, sizeof(token_b));
}

struct worker {
    struct store *s;
    int n_ok;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    for (int i = 0; i < 25; i++) {
        char token[STORE_TOKEN_LEN + 1], id[STORE_ID_LEN + 1];
        struct creds in, out;
        fill_creds(&in, "thread", i % 2);
        if (store_add(w->s, &in, token, id) == TM_OK &&
            store_find(w->s, token, &out, NULL) == TM_OK) {
            if (out.db_token && strcmp(out.db_token, SECRET_DB_TOKEN) == 0 &&
                out.is_read_only == in.is_read_only)
                w->n_ok++;
            creds_cleanup(&out);
        }
        creds_cleanup(&in);
        sodium_memzero(token, sizeof(token));
    }
    return NULL;
}

static void test_threads(void)
{
    char dir[256];
    struct store *s = open_new(dir, sizeof(dir));
    struct worker workers[4];
    pthread_t threads[4];
    int n = 0;

    for (int i = 0; i < 4; i++) {
        workers[i].s = s;
        workers[i].n_ok = 0;
        ASSERT_INT_EQ(pthread_create(&threads[i], NULL, worker_main, &workers[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        ASSERT_INT_EQ(pthread_join(threads[i], NULL), 0);
        ASSERT_INT_EQ(workers[i].n_ok, 25);
    }
    ASSERT_INT_EQ(store_list(s, count, &n), TM_OK);
    ASSERT_INT_EQ(n, 100);
    int64_t n_users = 0;
    ASSERT_INT_EQ(store_count_users(s, &n_users), TM_OK);
    ASSERT_INT_EQ(n_users, 100);
    store_close(&s);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

/* A key from keygen in a file of its own, outside any data directory. */
static void write_new_key(const char *path, mode_t mode)
{
    char text[STORE_MASTER_KEY_TEXT_MAX];
    ASSERT_INT_EQ(store_master_key_new(text), TM_OK);
    write_file(path, text, mode);
    sodium_memzero(text, sizeof(text));
}

static void test_keygen_format(void)
{
    char a[STORE_MASTER_KEY_TEXT_MAX], b[STORE_MASTER_KEY_TEXT_MAX];
    ASSERT_INT_EQ(store_master_key_new(a), TM_OK);
    ASSERT_INT_EQ(store_master_key_new(b), TM_OK);
    /* v1:, 64 lower-case hex digits and a newline: what master.key holds. */
    ASSERT_INT_EQ(strlen(a), 3 + 64 + 1);
    ASSERT(strncmp(a, "v1:", 3) == 0);
    for (size_t i = 3; i < 3 + 64; i++)
        ASSERT((a[i] >= '0' && a[i] <= '9') || (a[i] >= 'a' && a[i] <= 'f'));
    ASSERT_INT_EQ(a[67], '\n');
    ASSERT(strcmp(a, b) != 0);
}

static void test_key_file(void)
{
    char dir[256], key_dir[256], key_path[512], link_path[512], default_key[512];
    struct store *s = NULL;
    bool created = true;
    char token[STORE_TOKEN_LEN + 1], id[STORE_ID_LEN + 1];
    struct stat st;

    new_data_dir(dir, sizeof(dir));
    path_in(default_key, sizeof(default_key), dir, "master.key");
    path_in(key_dir, sizeof(key_dir), root, "secrets");
    ASSERT(mkdir(key_dir, 0755) == 0 || errno == EEXIST);
    path_in(key_path, sizeof(key_path), key_dir, "turso_mcp_master_key");

    /* A key file that is not there is an error, and is never created. */
    unlink(key_path);
    ASSERT_INT_EQ(store_open(dir, key_path, &s, &created), TM_ERR_NOT_FOUND);
    ASSERT_NULL(s);
    ASSERT(stat(key_path, &st) != 0);
    ASSERT(stat(default_key, &st) != 0);

    /* Docker's modes: 0444 (swarm secrets), 0644 (a compose bind mount), 0400, 0600. */
    write_new_key(key_path, 0444);
    ASSERT_INT_EQ(store_open(dir, key_path, &s, &created), TM_OK);
    ASSERT(!created);
    add_user(s, "secret-key", false, token, id);
    store_close(&s);
    /* The data directory got no key of its own. */
    ASSERT(stat(default_key, &st) != 0);
    static const mode_t readable[] = {0644, 0440, 0400, 0600, 0604};
    for (size_t i = 0; i < sizeof(readable) / sizeof(readable[0]); i++) {
        ASSERT_INT_EQ(chmod(key_path, readable[i]), 0);
        ASSERT_INT_EQ(store_open(dir, key_path, &s, NULL), TM_OK);
        ASSERT_INT_EQ(find(s, token), TM_OK);
        store_close(&s);
    }
    /* Writable by anyone but the owner: refused, and left as it was. */
    static const mode_t writable[] = {0664, 0646, 0666, 0620, 0602};
    for (size_t i = 0; i < sizeof(writable) / sizeof(writable[0]); i++) {
        ASSERT_INT_EQ(chmod(key_path, writable[i]), 0);
        ASSERT_INT_EQ(store_open(dir, key_path, &s, NULL), TM_ERR_DENIED);
        ASSERT_NULL(s);
        ASSERT_INT_EQ(stat(key_path, &st), 0);
        ASSERT_INT_EQ(st.st_mode & 07777, writable[i]);
    }
    ASSERT_INT_EQ(chmod(key_path, 0444), 0);

    /* Through a symlink, as /run/secrets entries may be. */
    path_in(link_path, sizeof(link_path), key_dir, "link");
    unlink(link_path);
    ASSERT_INT_EQ(symlink(key_path, link_path), 0);
    ASSERT_INT_EQ(store_open(dir, link_path, &s, NULL), TM_OK);
    ASSERT_INT_EQ(find(s, token), TM_OK);
    store_close(&s);

    /* "" means no key file: the data directory's master.key, made now, which is another key. */
    ASSERT_INT_EQ(store_open(dir, "", &s, &created), TM_ERR_DENIED);
    ASSERT_NULL(s);
    ASSERT_INT_EQ(stat(default_key, &st), 0);
    ASSERT_INT_EQ(unlink(default_key), 0);

    /* Another well-formed key does not open this store. */
    write_new_key(key_path, 0444);
    ASSERT_INT_EQ(store_open(dir, key_path, &s, NULL), TM_ERR_DENIED);
    ASSERT_NULL(s);

    /* Malformed, or not a file. */
    write_file(key_path, "v1:0123\n", 0444);
    ASSERT_INT_EQ(store_open(dir, key_path, &s, NULL), TM_ERR_INVALID);
    ASSERT_INT_EQ(store_open(dir, key_dir, &s, NULL), TM_ERR_INVALID);
    ASSERT_NULL(s);

    /* Inside the data directory the rule for master.key holds, even when named. */
    char inner[512], other_dir[256];
    new_data_dir(other_dir, sizeof(other_dir));
    ASSERT_INT_EQ(mkdir(other_dir, 0700), 0);
    path_in(inner, sizeof(inner), other_dir, "operator.key");
    write_new_key(inner, 0644);
    ASSERT_INT_EQ(store_open(other_dir, inner, &s, NULL), TM_ERR_DENIED);
    ASSERT_NULL(s);
    /* Also when the path reaches it through a symlink from outside. */
    unlink(link_path);
    ASSERT_INT_EQ(symlink(inner, link_path), 0);
    ASSERT_INT_EQ(store_open(other_dir, link_path, &s, NULL), TM_ERR_DENIED);
    ASSERT_NULL(s);
    ASSERT_INT_EQ(chmod(inner, 0600), 0);
    ASSERT_INT_EQ(store_open(other_dir, inner, &s, &created), TM_OK);
    ASSERT(!created);
    store_close(&s);

    ASSERT_INT_EQ(unlink(link_path), 0);
    sodium_memzero(token, sizeof(token));
}

int main(void)
{
    if (sodium_init() < 0)
        TEST_FAIL("sodium_init failed");
    if (!mkdtemp(root))
        TEST_FAIL("mkdtemp failed");

    RUN(test_open_creates_dir_and_key);
    RUN(test_schema_and_wal);
    RUN(test_roundtrip);
    RUN(test_wrong_token);
    RUN(test_malformed_tokens);
    RUN(test_wrong_master_key);
    RUN(test_bad_master_key_file);
    RUN(test_keygen_format);
    RUN(test_key_file);
    RUN(test_tampered_blob);
    RUN(test_swapped_blobs);
    RUN(test_sealed_format);
    RUN(test_list);
    RUN(test_revoke);
    RUN(test_find_id);
    RUN(test_find_id_shared_slots);
    RUN(test_no_plaintext_secrets);
    RUN(test_last_used);
    RUN(test_last_used_by_requests);
    RUN(test_too_large_creds);
    RUN(test_rotate_token);
    RUN(test_rotate_race);
    RUN(test_master_key_rotation);
    RUN(test_old_store_upgrades);
    RUN(test_check);
    RUN(test_activity);
    RUN(test_threads);

    if (nftw(root, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        TEST_FAIL("could not remove %s", root);
    TEST_DONE();
}
