/*
 * The session table: a hash table of fixed-size entries chained by id, plus
 * a doubly linked list in order of last use, so that expiry and eviction
 * take the oldest first in constant time per session.
 */
#include "session.h"

#include <pthread.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct session {
    char id[SESSION_ID_LEN + 1];
    char user_id[SESSION_USER_LEN + 1];
    struct session_info info;
    time_t last_used;
    struct session *hash_next;           /* chain in the bucket */
    struct session *lru_prev, *lru_next; /* lru_prev is more recently used */
};

struct session_table {
    pthread_mutex_t lock; /* guards everything below; taken by every function */
    struct session **buckets;
    size_t n_buckets;
    size_t n_sessions;
    size_t max_sessions;
    long idle_seconds;
    struct session *lru_head; /* most recently used */
    struct session *lru_tail; /* least recently used */
};

static time_t now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec;
}

static size_t bucket_of(const struct session_table *t, const char *id)
{
    /* Ids are random hex, so their first 16 digits are already well spread. */
    uint64_t h = 0;
    for (int i = 0; i < 16 && id[i]; i++)
        h = h * 16 + (uint64_t)(id[i] <= '9' ? id[i] - '0' : id[i] - 'a' + 10);
    return (size_t)(h % t->n_buckets);
}

static void lru_unlink(struct session_table *t, struct session *s)
{
    if (s->lru_prev)
        s->lru_prev->lru_next = s->lru_next;
    else
        t->lru_head = s->lru_next;
    if (s->lru_next)
        s->lru_next->lru_prev = s->lru_prev;
    else
        t->lru_tail = s->lru_prev;
    s->lru_prev = s->lru_next = NULL;
}

static void lru_push_front(struct session_table *t, struct session *s)
{
    s->lru_prev = NULL;
    s->lru_next = t->lru_head;
    if (t->lru_head)
        t->lru_head->lru_prev = s;
    t->lru_head = s;
    if (!t->lru_tail)
        t->lru_tail = s;
}

static void remove_session(struct session_table *t, struct session *s)
{
    struct session **pp = &t->buckets[bucket_of(t, s->id)];
    while (*pp && *pp != s)
        pp = &(*pp)->hash_next;
    if (*pp)
        *pp = s->hash_next;
    lru_unlink(t, s);
    t->n_sessions--;
    free(s);
}

static void sweep_expired(struct session_table *t, time_t now)
{
    while (t->lru_tail && now - t->lru_tail->last_used > t->idle_seconds)
        remove_session(t, t->lru_tail);
}

static struct session *lookup(struct session_table *t, const char *id)
{
    if (strlen(id) != SESSION_ID_LEN)
        return NULL;
    for (struct session *s = t->buckets[bucket_of(t, id)]; s; s = s->hash_next)
        if (sodium_memcmp(s->id, id, SESSION_ID_LEN) == 0)
            return s;
    return NULL;
}

enum tm_err session_table_create(size_t max, long idle_seconds, struct session_table **out)
{
    struct session_table *t = calloc(1, sizeof(*t));
    if (!t)
        return TM_ERR_NOMEM;
    t->n_buckets = max < 1024 ? 1024 : max;
    t->buckets = calloc(t->n_buckets, sizeof(*t->buckets));
    if (!t->buckets) {
        free(t);
        return TM_ERR_NOMEM;
    }
    t->max_sessions = max;
    t->idle_seconds = idle_seconds;
    pthread_mutex_init(&t->lock, NULL);
    *out = t;
    return TM_OK;
}

void session_table_destroy(struct session_table **tp)
{
    if (!tp || !*tp)
        return;
    struct session_table *t = *tp;
    struct session *s = t->lru_head;
    while (s) {
        struct session *next = s->lru_next;
        free(s);
        s = next;
    }
    free(t->buckets);
    pthread_mutex_destroy(&t->lock);
    free(t);
    *tp = NULL;
}

enum tm_err session_open(struct session_table *t, const char *user_id, const char *version,
                         char id_out[SESSION_ID_LEN + 1])
{
    struct session *s = calloc(1, sizeof(*s));
    if (!s)
        return TM_ERR_NOMEM;
    unsigned char raw[SESSION_ID_LEN / 2];
    randombytes_buf(raw, sizeof(raw));
    sodium_bin2hex(s->id, sizeof(s->id), raw, sizeof(raw));
    snprintf(s->user_id, sizeof(s->user_id), "%s", user_id);
    snprintf(s->info.version, sizeof(s->info.version), "%s", version);
    s->info.log_level = -1;

    pthread_mutex_lock(&t->lock);
    time_t now = now_seconds();
    s->last_used = now;
    sweep_expired(t, now);
    while (t->n_sessions >= t->max_sessions && t->lru_tail)
        remove_session(t, t->lru_tail);
    size_t b = bucket_of(t, s->id);
    s->hash_next = t->buckets[b];
    t->buckets[b] = s;
    lru_push_front(t, s);
    t->n_sessions++;
    memcpy(id_out, s->id, SESSION_ID_LEN + 1);
    pthread_mutex_unlock(&t->lock);
    return TM_OK;
}

/* Finds a live session of user_id and marks it used; call with the lock held. */
static struct session *find_live(struct session_table *t, const char *id, const char *user_id)
{
    time_t now = now_seconds();
    sweep_expired(t, now);
    struct session *s = lookup(t, id);
    if (!s || strcmp(s->user_id, user_id) != 0)
        return NULL;
    s->last_used = now;
    lru_unlink(t, s);
    lru_push_front(t, s);
    return s;
}

enum tm_err session_touch(struct session_table *t, const char *id, const char *user_id,
                          struct session_info *out)
{
    pthread_mutex_lock(&t->lock);
    struct session *s = find_live(t, id, user_id);
    if (s && out)
        *out = s->info;
    pthread_mutex_unlock(&t->lock);
    return s ? TM_OK : TM_ERR_NOT_FOUND;
}

enum tm_err session_set_log_level(struct session_table *t, const char *id, const char *user_id,
                                  int level)
{
    pthread_mutex_lock(&t->lock);
    struct session *s = find_live(t, id, user_id);
    if (s)
        s->info.log_level = level;
    pthread_mutex_unlock(&t->lock);
    return s ? TM_OK : TM_ERR_NOT_FOUND;
}

enum tm_err session_set_version(struct session_table *t, const char *id, const char *user_id,
                                const char *version)
{
    pthread_mutex_lock(&t->lock);
    struct session *s = find_live(t, id, user_id);
    if (s)
        snprintf(s->info.version, sizeof(s->info.version), "%s", version);
    pthread_mutex_unlock(&t->lock);
    return s ? TM_OK : TM_ERR_NOT_FOUND;
}

enum tm_err session_close(struct session_table *t, const char *id, const char *user_id)
{
    pthread_mutex_lock(&t->lock);
    struct session *s = find_live(t, id, user_id);
    if (s)
        remove_session(t, s);
    pthread_mutex_unlock(&t->lock);
    return s ? TM_OK : TM_ERR_NOT_FOUND;
}

size_t session_count(struct session_table *t)
{
    pthread_mutex_lock(&t->lock);
    size_t n = t->n_sessions;
    pthread_mutex_unlock(&t->lock);
    return n;
}
