/*
 * Token buckets in an open-addressing table keyed by public user id.
 * Entries are never removed while the server runs: there is one per user
 * who made a request, a few dozen bytes each, bounded by the store's size.
 */
#include "ratelimit.h"

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ID_LEN 16

struct bucket {
    char id[ID_LEN + 1]; /* "" when the slot is free */
    double tokens;
    double last_s; /* monotonic seconds of the last refill */
    long running;
};

struct ratelimit {
    pthread_mutex_t lock; /* guards the table */
    struct bucket *slots;
    size_t n_slots, n_used;
    double rps, burst;
    long max_concurrent;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t hash_id(const char *id)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *id; id++)
        h = (h ^ (unsigned char)*id) * 1099511628211ULL;
    return h;
}

enum tm_err ratelimit_create(double rps, double burst, long max_concurrent, struct ratelimit **out)
{
    struct ratelimit *rl = calloc(1, sizeof(*rl));
    if (!rl)
        return TM_ERR_NOMEM;
    rl->n_slots = 1024;
    rl->slots = calloc(rl->n_slots, sizeof(*rl->slots));
    if (!rl->slots) {
        free(rl);
        return TM_ERR_NOMEM;
    }
    rl->rps = rps;
    rl->burst = burst < 1 ? 1 : burst;
    rl->max_concurrent = max_concurrent;
    pthread_mutex_init(&rl->lock, NULL);
    *out = rl;
    return TM_OK;
}

void ratelimit_destroy(struct ratelimit **rl)
{
    if (!rl || !*rl)
        return;
    pthread_mutex_destroy(&(*rl)->lock);
    free((*rl)->slots);
    free(*rl);
    *rl = NULL;
}

/* Doubles the table when it is over half full; call with the lock held. */
static bool grow(struct ratelimit *rl)
{
    size_t n = rl->n_slots * 2;
    struct bucket *slots = calloc(n, sizeof(*slots));
    if (!slots)
        return false;
    for (size_t i = 0; i < rl->n_slots; i++) {
        if (!rl->slots[i].id[0])
            continue;
        size_t j = hash_id(rl->slots[i].id) % n;
        while (slots[j].id[0])
            j = (j + 1) % n;
        slots[j] = rl->slots[i];
    }
    free(rl->slots);
    rl->slots = slots;
    rl->n_slots = n;
    return true;
}

/* The bucket of `id`, created full if new; NULL on OOM. Lock held. */
static struct bucket *find(struct ratelimit *rl, const char *id, bool is_create)
{
    if (is_create && rl->n_used * 2 >= rl->n_slots && !grow(rl))
        return NULL;
    size_t i = hash_id(id) % rl->n_slots;
    while (rl->slots[i].id[0]) {
        if (strncmp(rl->slots[i].id, id, ID_LEN) == 0)
            return &rl->slots[i];
        i = (i + 1) % rl->n_slots;
    }
    if (!is_create)
        return NULL;
    struct bucket *b = &rl->slots[i];
    strncpy(b->id, id, ID_LEN);
    b->id[ID_LEN] = '\0';
    b->tokens = rl->burst;
    b->last_s = now_s();
    rl->n_used++;
    return b;
}

bool ratelimit_enter(struct ratelimit *rl, const char *user_id, int *retry_after_s)
{
    bool ok = true;
    pthread_mutex_lock(&rl->lock);
    struct bucket *b = find(rl, user_id, true);
    if (!b)
        goto out; /* out of memory: do not punish the user for it */
    if (rl->rps > 0) {
        double now = now_s();
        b->tokens = fmin(rl->burst, b->tokens + (now - b->last_s) * rl->rps);
        b->last_s = now;
        if (b->tokens < 1.0) {
            *retry_after_s = (int)ceil((1.0 - b->tokens) / rl->rps);
            ok = false;
            goto out;
        }
    }
    if (rl->max_concurrent > 0 && b->running >= rl->max_concurrent) {
        *retry_after_s = 1;
        ok = false;
        goto out;
    }
    if (rl->rps > 0)
        b->tokens -= 1.0;
    b->running++;
out:
    if (!ok && *retry_after_s < 1)
        *retry_after_s = 1;
    pthread_mutex_unlock(&rl->lock);
    return ok;
}

void ratelimit_leave(struct ratelimit *rl, const char *user_id)
{
    pthread_mutex_lock(&rl->lock);
    struct bucket *b = find(rl, user_id, false);
    if (b && b->running > 0)
        b->running--;
    pthread_mutex_unlock(&rl->lock);
}
