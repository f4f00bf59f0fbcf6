/*
 * The activity writer: a bounded queue under one mutex, drained by one
 * thread into store_log_activities. `flush_lock` serialises drains, so an
 * explicit flush and the thread never write the same entries twice or out
 * of order.
 */
#include "activity.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

/* Enough for a burst of calls between two drains; beyond it entries are dropped. */
#define ACTIVITY_QUEUE_MAX 8192
/* A drain starts early when this many are waiting. */
#define ACTIVITY_BATCH 512

struct pending {
    char id[STORE_ID_LEN + 1];
    char tool[STORE_ACTIVITY_NAME_MAX + 1];
    char database[STORE_ACTIVITY_NAME_MAX + 1];
    char outcome[24];
    int64_t at;
};

static struct {
    pthread_mutex_t lock; /* guards the queue, the flags and `dropped` */
    pthread_cond_t wake;
    pthread_mutex_t flush_lock; /* one drain at a time */
    pthread_t thread;
    struct store *store;
    struct pending *queue;
    size_t n_queued;
    unsigned long dropped;
    bool is_running, is_stopping;
} act = {.lock = PTHREAD_MUTEX_INITIALIZER,
         .wake = PTHREAD_COND_INITIALIZER,
         .flush_lock = PTHREAD_MUTEX_INITIALIZER};

/* Takes what is queued and writes it. */
static void drain(void)
{
    pthread_mutex_lock(&act.flush_lock);
    pthread_mutex_lock(&act.lock);
    size_t n = act.n_queued;
    struct pending *batch = n ? malloc(n * sizeof(*batch)) : NULL;
    if (batch) {
        memcpy(batch, act.queue, n * sizeof(*batch));
        act.n_queued = 0;
    }
    unsigned long dropped = act.dropped;
    act.dropped = 0;
    struct store *store = act.store;
    pthread_mutex_unlock(&act.lock);

    if (dropped)
        log_msg(LOG_WARN, "event=activity_dropped count=%lu", dropped);
    struct store_activity_item *items = batch ? calloc(n, sizeof(*items)) : NULL;
    if (items && store) {
        for (size_t i = 0; i < n; i++)
            items[i] = (struct store_activity_item){.id = batch[i].id,
                                                    .tool = batch[i].tool,
                                                    .database = batch[i].database,
                                                    .outcome = batch[i].outcome,
                                                    .at = batch[i].at};
        enum tm_err err = store_log_activities(store, items, n, NULL);
        if (err != TM_OK)
            log_msg(LOG_WARN, "event=activity_not_logged count=%zu reason=\"%s\"", n,
                    tm_err_message(err));
    }
    free(items);
    free(batch);
    pthread_mutex_unlock(&act.flush_lock);
}

static void *writer(void *arg)
{
    pthread_mutex_lock(&act.lock);
    while (!act.is_stopping) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 1;
        if (act.n_queued < ACTIVITY_BATCH)
            pthread_cond_timedwait(&act.wake, &act.lock, &until);
        if (act.n_queued == 0)
            continue;
        pthread_mutex_unlock(&act.lock);
        drain();
        pthread_mutex_lock(&act.lock);
    }
    pthread_mutex_unlock(&act.lock);
    return NULL;
}

enum tm_err activity_start(struct store *store)
{
    pthread_mutex_lock(&act.lock);
    if (act.is_running) {
        pthread_mutex_unlock(&act.lock);
        return TM_OK;
    }
    act.queue = calloc(ACTIVITY_QUEUE_MAX, sizeof(*act.queue));
    if (!act.queue) {
        pthread_mutex_unlock(&act.lock);
        return TM_ERR_NOMEM;
    }
    act.store = store;
    act.is_stopping = false;
    act.n_queued = 0;
    if (pthread_create(&act.thread, NULL, writer, NULL) != 0) {
        free(act.queue);
        act.queue = NULL;
        pthread_mutex_unlock(&act.lock);
        return TM_ERR_INTERNAL;
    }
    act.is_running = true;
    pthread_mutex_unlock(&act.lock);
    return TM_OK;
}

void activity_stop(void)
{
    pthread_mutex_lock(&act.lock);
    if (!act.is_running) {
        pthread_mutex_unlock(&act.lock);
        return;
    }
    act.is_stopping = true;
    pthread_cond_signal(&act.wake);
    pthread_mutex_unlock(&act.lock);
    pthread_join(act.thread, NULL);
    drain();
    pthread_mutex_lock(&act.lock);
    act.is_running = false;
    free(act.queue);
    act.queue = NULL;
    act.store = NULL;
    pthread_mutex_unlock(&act.lock);
}

void activity_note(const char *user_id, const char *tool, const char *database, const char *outcome)
{
    if (!user_id || !tool || !outcome)
        return;
    pthread_mutex_lock(&act.lock);
    if (!act.is_running || act.is_stopping) {
        pthread_mutex_unlock(&act.lock);
        return;
    }
    if (act.n_queued == ACTIVITY_QUEUE_MAX) {
        act.dropped++;
    } else {
        struct pending *e = &act.queue[act.n_queued++];
        snprintf(e->id, sizeof(e->id), "%s", user_id);
        snprintf(e->tool, sizeof(e->tool), "%s", tool);
        snprintf(e->database, sizeof(e->database), "%s", database ? database : "");
        snprintf(e->outcome, sizeof(e->outcome), "%s", outcome);
        e->at = (int64_t)time(NULL);
        if (act.n_queued == ACTIVITY_BATCH)
            pthread_cond_signal(&act.wake);
    }
    pthread_mutex_unlock(&act.lock);
}

void activity_flush(void)
{
    pthread_mutex_lock(&act.lock);
    bool is_running = act.is_running;
    pthread_mutex_unlock(&act.lock);
    if (is_running)
        drain();
}
