/*
 * The HTTP transport to Turso: libcurl multi handles driven, event style, each
 * by a thread of its own (a lane). Submitters on any thread copy their request
 * into a transfer, queue it on the least busy lane under that lane's `lock`
 * and wake its thread through an eventfd; the thread owns an epoll set holding
 * that eventfd and the sockets curl asks it to watch
 * (CURLMOPT_SOCKETFUNCTION), sleeps in epoll_wait until a socket is ready or
 * curl's timer (CURLMOPT_TIMERFUNCTION) is due, and hands each event to
 * curl_multi_socket_action, so that a turn costs in proportion to what
 * happened rather than to the number of transfers. Completion callbacks run
 * holding no lock, so a callback may submit again: on callback worker
 * threads, or, for a small answer in a group whose callbacks never block, on
 * the lane thread itself (see finish). Easy handles are reset and kept for
 * later requests. Each transfer carries the call group of the thread that
 * submitted it: cancelling a group marks its transfers, lane by lane, and
 * each lane's thread ends its own; a group's deadline shortens each
 * transfer's timeout. Hrana and the Platform API sit above; this file knows
 * neither.
 *
 * Why lanes: an upstream that closes every connection after one answer (as
 * `tursodb --sync-server` does) makes each call a new TCP connection, and the
 * kernel's work for it falls on the thread that connects. One thread then
 * feeds the upstream more slowly than it answers; two keep it busy.
 */
#include "turso_transport.h"

#include <assert.h>
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "metrics.h"

#define TRANSPORT_CONNECT_TIMEOUT_MS 5000L
#define TRANSPORT_TOTAL_TIMEOUT_MS   30000L
#define TRANSPORT_CLOCK_SLACK_MS     25
#define TRANSPORT_WORKERS_MAX        16
#define TRANSPORT_MAX_RESPONSE_LEN   ((size_t)64 * 1024 * 1024)
#define TRANSPORT_USER_AGENT         "turso-mcp"
/* An answer up to this size becomes a result in tens of microseconds, less
 * than handing it to a callback thread costs (see struct turso_transport). */
#define TRANSPORT_INLINE_REPLY_MAX ((size_t)4 * 1024)
/* Only an upper bound: submissions and stop wake the thread at once, and
 * curl's timer shortens the wait. Each time it elapses curl gets a timeout
 * action anyway, so that no lost timer can leave a transfer stuck. */
#define TRANSPORT_POLL_MS 1000
/* Events taken from epoll per wait; more simply wait for the next turn. */
#define TRANSPORT_EVENTS_MAX 64
/* Idle easy handles kept for later requests, and the largest response
 * buffer kept with one (a point query's answer is a few KiB). */
#define TRANSPORT_IDLE_MAX     64
#define TRANSPORT_IDLE_BUF_MAX ((size_t)16 * 1024)
/* How many cancelled group ids are remembered for later submissions. */
#define TRANSPORT_CANCELLED_MAX 1024
/* Lanes at most, and by default one per online CPU up to this many. */
#define TRANSPORT_LANES_MAX     8
#define TRANSPORT_LANES_DEFAULT 4

/* The submitting thread's call group; see turso_transport_set_group. */
static _Thread_local struct turso_call_group current_group;

/* The last group id handed out; ids start at 1. */
static atomic_uint_fast64_t last_group_id;

/* Where turso_transport_call waits; lives on the caller's stack. */
struct sync_wait {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool is_done;             /* guarded by lock */
    struct turso_reply reply; /* written by a lane thread before is_done */
};

/* One request, from submit until its completion has been reported. */
struct xfer {
    /* From the idle pool or new; reset once the transfer is over (see
     * xfer_release_curl) and given back by xfer_destroy. */
    CURL *easy;
    bool is_easy_reset;
    /* Request headers; one line holds the bearer, so every line is wiped
     * before the list is freed. */
    struct curl_slist *headers;
    char *body; /* our copy of the request body (curl does not copy it) */
    size_t body_len;
    struct buf resp;   /* the response, capped at max_response_len; always allocated */
    bool is_too_large; /* the write callback refused data over the cap */
    bool is_nomem;     /* the write callback could not grow resp */
    char errbuf[CURL_ERROR_SIZE];
    long timeout_ms;               /* total timeout; cut to the deadline at start */
    struct turso_call_group group; /* the submitter's group, fixed at submit */
    bool is_deadline_bound;        /* the group's deadline, not timeout_ms, limits it */
    bool is_cancelled;             /* guarded by its lane's lock */
    turso_reply_fn fn;             /* NULL when waiter is set */
    void *ctx;
    struct sync_wait *waiter;  /* set by turso_transport_call */
    struct turso_transport *t; /* the transport it belongs to */
    struct lane *lane;         /* the lane it was queued on; NULL before */
    struct turso_reply reply;  /* filled by finish, read by the callback worker */
    struct xfer *cb_next;      /* in the callback queue */
    /* Links in its lane's queue (next only) or active list; changed under
     * the lane's lock, so that cancel_group can walk both. */
    struct xfer *prev;
    struct xfer *next;
};

/*
 * An easy handle kept for the next request, with the response buffer it
 * last filled. The handle is reset: it holds no option, header list or
 * pointer of its last request, only what curl keeps across a reset (the
 * share, its connection and buffers). The buffer is wiped and empty.
 */
struct idle {
    CURL *easy;
    struct buf resp;
};

/*
 * One multi handle and the thread that drives it. Transfers stay on the lane
 * they were queued on until they end.
 */
struct lane {
    struct turso_transport *t;
    CURLM *multi;
    /* The lane thread's epoll set: wake_fd and curl's sockets. Only the lane
     * thread changes it (from curl's socket callback). */
    int epoll_fd;
    /* An eventfd that submit, cancel_group and stop write to (holding lock,
     * so that stop cannot close it meanwhile) to wake the thread. */
    int wake_fd;
    /* When curl wants a timeout action, in CLOCK_MONOTONIC ns; -1: never.
     * Lane thread only (written from curl's timer callback). */
    int64_t timer_at_ns;
    /* By descriptor number: whether curl watches it (see on_socket).
     * Lane thread only. */
    bool *is_watched;
    size_t n_is_watched;
    pthread_t thread;
    bool has_thread;
    /* Protects the queue, is_stopping, is_asleep, is_woken, the links of
     * the active list, each of its transfers' is_cancelled and has_cancels.
     * Taken by submitters and cancellers on any thread and briefly by the
     * lane thread; never held while a callback runs or while curl works. */
    pthread_mutex_t lock;
    bool has_lock;
    struct xfer *queue_head;
    struct xfer *queue_tail;
    bool is_stopping;
    /* The thread is about to sleep, or sleeps, in epoll_wait; is_woken: and
     * wake_fd was written since. Wakeups are skipped otherwise. */
    bool is_asleep;
    bool is_woken;
    /* In the multi handle. Only the lane thread adds and unlinks (holding
     * lock); cancel_group reads it holding lock. */
    struct xfer *active;
    bool has_cancels; /* some active transfer has is_cancelled set */
    /* Transfers queued or running here, to pick the least busy lane. */
    atomic_int n_busy;
};

struct turso_transport {
    CURLSH *share;
    /* One mutex per kind of data the share handle protects; curl takes them
     * through share_lock/share_unlock. */
    pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST];
    int n_share_locks; /* how many of share_locks are initialised */
    struct lane lanes[TRANSPORT_LANES_MAX];
    int n_lanes; /* how many lanes are set up (their threads may not all run) */
    /* Guards the cancelled ids. Taken alone, or inside a lane's lock (by
     * enqueue), never the other way round. */
    pthread_mutex_t cancel_lock;
    bool has_cancel_lock;
    /* The last TRANSPORT_CANCELLED_MAX cancelled group ids, oldest
     * overwritten first; 0 marks an empty slot. */
    uint64_t cancelled[TRANSPORT_CANCELLED_MAX];
    size_t cancelled_next; /* the slot the next id goes to */
    /* The same ids in ascending order, for a binary search on every submit
     * (a scan of the ring under the lock cost more than the rest of
     * enqueue). */
    uint64_t cancelled_sorted[TRANSPORT_CANCELLED_MAX];
    size_t n_cancelled;
    long connect_timeout_ms;
    long total_timeout_ms;
    size_t max_response_len;
    char *user_agent;
    /* Reusing handles spares curl's set-up and buffers per request.
     * idle_lock guards idle and n_idle; submitters take, and whoever frees
     * a transfer gives back. */
    pthread_mutex_t idle_lock;
    bool has_idle_lock;
    struct idle idle[TRANSPORT_IDLE_MAX];
    int n_idle;
    /*
     * Callbacks run on these workers, not on a lane thread: turning a large
     * answer into a tool result takes milliseconds, and a thread that drives
     * connections must not wait for it (nor must other users' calls). The
     * exception is a small answer in a group whose callbacks never block:
     * running it takes less than waking a worker (a futex round trip and a
     * switch of threads per call). `cb_lock` guards the queue and
     * cb_is_stopping.
     */
    pthread_t workers[TRANSPORT_WORKERS_MAX];
    int n_workers;
    pthread_mutex_t cb_lock;
    pthread_cond_t cb_wake;
    bool has_cb_lock;
    struct xfer *cb_head, *cb_tail;
    bool cb_is_stopping;
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Wakes the lane's thread, if it sleeps and nobody woke it yet: awake, it
 * looks at the queue and at is_stopping before it sleeps again. Holding
 * l->lock (see wake_fd). */
static void wake(struct lane *l)
{
    if (!l->is_asleep || l->is_woken)
        return;
    uint64_t one = 1;
    /* A full counter (EAGAIN) already means a wakeup is pending. */
    ssize_t n = write(l->wake_fd, &one, sizeof(one));
    (void)n;
    l->is_woken = true;
}

static void share_lock(CURL *handle, curl_lock_data data, curl_lock_access access, void *userptr)
{
    struct turso_transport *t = userptr;
    if ((int)data >= 0 && data < CURL_LOCK_DATA_LAST)
        pthread_mutex_lock(&t->share_locks[data]);
}

static void share_unlock(CURL *handle, curl_lock_data data, void *userptr)
{
    struct turso_transport *t = userptr;
    if ((int)data >= 0 && data < CURL_LOCK_DATA_LAST)
        pthread_mutex_unlock(&t->share_locks[data]);
}

/* Wipes every header line (the Authorization one holds the bearer) and frees the list. */
static void headers_wipe_free(struct curl_slist *headers)
{
    for (struct curl_slist *h = headers; h; h = h->next) {
        if (h->data)
            sodium_memzero(h->data, strlen(h->data));
    }
    curl_slist_free_all(headers);
}

/* Ends the transfer's use of curl and of the bearer; the response stays.
 * The handle is kept, reset, for xfer_destroy to give back. */
static void xfer_release_curl(struct xfer *x)
{
    /* Reset before the list is freed: the handle points at it. */
    if (x->easy && !x->is_easy_reset) {
        curl_easy_reset(x->easy);
        x->is_easy_reset = true;
    }
    headers_wipe_free(x->headers);
    x->headers = NULL;
}

/* Takes an idle handle and its buffer into `x`; false when there is none. */
static bool idle_take(struct turso_transport *t, struct xfer *x)
{
    bool is_taken = false;
    pthread_mutex_lock(&t->idle_lock);
    if (t->n_idle > 0) {
        t->n_idle--;
        x->easy = t->idle[t->n_idle].easy;
        x->resp = t->idle[t->n_idle].resp;
        is_taken = true;
    }
    pthread_mutex_unlock(&t->idle_lock);
    return is_taken;
}

/* Gives the transfer's handle and buffer back to the pool, or frees them. */
static void idle_give(struct turso_transport *t, struct xfer *x)
{
    struct buf *b = &x->resp;
    /* The response may hold a minted token: wiped whether kept or freed. A
     * failed transfer truncated it, so wipe all of it, not just len. */
    bool is_buf_kept = b->data && !buf_is_bad(b) && b->cap <= TRANSPORT_IDLE_BUF_MAX;
    if (is_buf_kept) {
        sodium_memzero(b->data, b->cap);
        b->len = 0;
    } else {
        buf_cleanup(b);
        buf_init(b, t->max_response_len);
    }
    bool is_kept = false;
    if (x->easy && x->is_easy_reset) {
        pthread_mutex_lock(&t->idle_lock);
        if (t->n_idle < TRANSPORT_IDLE_MAX) {
            t->idle[t->n_idle].easy = x->easy;
            t->idle[t->n_idle].resp = *b;
            t->n_idle++;
            is_kept = true;
        }
        pthread_mutex_unlock(&t->idle_lock);
    }
    if (!is_kept) {
        curl_easy_cleanup(x->easy);
        buf_cleanup(b);
    }
    x->easy = NULL;
    memset(b, 0, sizeof(*b));
}

static void xfer_destroy(struct xfer *x)
{
    if (!x)
        return;
    xfer_release_curl(x);
    free(x->body);
    idle_give(x->t, x);
    free(x);
}

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct xfer *x = userdata;
    size_t n = size * nmemb;
    if (!buf_add(&x->resp, ptr, n)) {
        if (x->resp.is_over)
            x->is_too_large = true;
        else
            x->is_nomem = true;
        return 0; /* curl aborts with CURLE_WRITE_ERROR */
    }
    return n;
}

static bool has_crlf(const char *s)
{
    return strpbrk(s, "\r\n") != NULL;
}

/*
 * curl closes every connection through here. One the server has already
 * closed (the local engine closes after each answer; any server closes idle
 * ones in time) is closed with a reset instead of a FIN: everything it sent
 * has been read, and the server's side is released at once rather than
 * waiting in TIME_WAIT, which is less work for both ends and keeps thousands
 * of dead sockets off a busy host. A connection still open closes normally,
 * so a server never sees a reset on a connection it was keeping.
 */
static int close_upstream_socket(void *unused, curl_socket_t fd)
{
    (void)unused;
    char byte;
    if (recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT) == 0) {
        static const struct linger reset_on_close = {.l_onoff = 1, .l_linger = 0};
        (void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset_on_close, sizeof(reset_on_close));
    }
    return close(fd);
}

/* Copies `req` into a new transfer with a configured easy handle. */
static enum tm_err xfer_create(struct turso_transport *t, const struct turso_request *req,
                               struct xfer **out)
{
    enum tm_err err = TM_ERR_NOMEM;
    struct xfer *x = NULL;
    char *auth = NULL;
    size_t auth_len = 0;
    bool is_get = false, is_post = false;

    if (!req->method || !req->url || (!req->body && req->body_len > 0) || req->timeout_ms < 0) {
        err = TM_ERR_INVALID;
        goto out;
    }
    if (strcmp(req->method, "GET") == 0) {
        is_get = true;
    } else if (strcmp(req->method, "POST") == 0) {
        is_post = true;
    } else if (strcmp(req->method, "PATCH") != 0 && strcmp(req->method, "DELETE") != 0) {
        err = TM_ERR_INVALID;
        goto out;
    }
    /* A GET with a body would need a custom request; nothing here sends one. */
    if (is_get && req->body) {
        err = TM_ERR_INVALID;
        goto out;
    }
    /* A CR or LF in the bearer would let it inject header lines. */
    if (req->bearer && has_crlf(req->bearer)) {
        err = TM_ERR_INVALID;
        goto out;
    }

    x = calloc(1, sizeof(*x));
    if (x)
        x->t = t;
    if (!x)
        goto out;
    if (!idle_take(t, x)) {
        buf_init(&x->resp, t->max_response_len);
        x->easy = curl_easy_init();
        if (!x->easy)
            goto out;
    }
    /* Allocated from the start, so that every reply has a body, "" at least
     * (a kept buffer may have given its bytes to a waiter). */
    if (!buf_reserve(&x->resp, 0))
        goto out;
    if (req->body) {
        /* +1 so that an empty body still gets a distinct allocation. */
        x->body = malloc(req->body_len + 1);
        if (!x->body)
            goto out;
        memcpy(x->body, req->body, req->body_len);
        x->body[req->body_len] = '\0';
        x->body_len = req->body_len;
    }

    /* No Expect: 100-continue for large bodies: curl would stall up to a
     * second waiting for a 100 that servers need not send. */
    struct curl_slist *h = curl_slist_append(NULL, "Expect:");
    if (!h)
        goto out;
    x->headers = h;
    /* Without a body, "Content-Type:" stops curl adding its form type. */
    h = curl_slist_append(x->headers,
                          req->body ? "Content-Type: application/json" : "Content-Type:");
    if (!h)
        goto out;
    x->headers = h;
    if (req->bearer && req->bearer[0]) {
        static const char prefix[] = "Authorization: Bearer ";
        size_t token_len = strlen(req->bearer);
        auth_len = sizeof(prefix) + token_len; /* includes the NUL */
        auth = malloc(auth_len);
        if (!auth)
            goto out;
        memcpy(auth, prefix, sizeof(prefix) - 1);
        memcpy(auth + sizeof(prefix) - 1, req->bearer, token_len + 1);
        h = curl_slist_append(x->headers, auth);
        if (!h)
            goto out;
        x->headers = h;
    }

    CURL *e = x->easy;
    /* Set on the handle when the transfer starts, shortened by the group's
     * deadline as it stands then. */
    x->timeout_ms = req->timeout_ms > 0 ? req->timeout_ms : t->total_timeout_ms;
    x->group = current_group;
    CURLcode rc = CURLE_OK;
    /* Each setopt below only copies or stores; any failure is out of memory
     * or an unsupported option, both fatal for this request. */
    rc |= curl_easy_setopt(e, CURLOPT_URL, req->url);
    rc |= curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    rc |= curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    rc |= curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, t->connect_timeout_ms);
    rc |= curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
    rc |= curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
    rc |= curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
    rc |= curl_easy_setopt(e, CURLOPT_USERAGENT, t->user_agent);
    rc |= curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->headers);
    rc |= curl_easy_setopt(e, CURLOPT_SHARE, t->share);
    rc |= curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_data);
    rc |= curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    rc |= curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
    rc |= curl_easy_setopt(e, CURLOPT_PRIVATE, x);
    rc |= curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, close_upstream_socket);
    /* Redirects would carry the bearer to another host. */
    rc |= curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    if (is_get) {
        rc |= curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    } else {
        if (!is_post)
            rc |= curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, req->method);
        /* A body always goes with an explicit size, so curl sends
         * Content-Length and never chunks the upload. A POST or PATCH
         * without a body says Content-Length: 0. */
        if (req->body || strcmp(req->method, "DELETE") != 0) {
            rc |= curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)x->body_len);
            rc |= curl_easy_setopt(e, CURLOPT_POSTFIELDS, x->body ? x->body : "");
        }
    }
    if (rc != CURLE_OK) {
        err = TM_ERR_INTERNAL;
        goto out;
    }

    *out = x;
    x = NULL;
    err = TM_OK;
out:
    if (auth)
        sodium_memzero(auth, auth_len);
    free(auth);
    xfer_destroy(x);
    return err;
}

/* Where `id` is, or would go, in cancelled_sorted. Holding t->cancel_lock. */
static size_t cancelled_find(const struct turso_transport *t, uint64_t id)
{
    size_t lo = 0, hi = t->n_cancelled;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (t->cancelled_sorted[mid] < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Whether `id` is among the remembered cancelled groups. Holding t->cancel_lock. */
static bool is_group_cancelled(const struct turso_transport *t, uint64_t id)
{
    if (id == 0 || t->n_cancelled == 0)
        return false;
    size_t i = cancelled_find(t, id);
    return i < t->n_cancelled && t->cancelled_sorted[i] == id;
}

/* Remembers a cancelled group `id` (not 0, not yet remembered), forgetting
 * the oldest when full. Holding t->cancel_lock. */
static void remember_cancelled(struct turso_transport *t, uint64_t id)
{
    uint64_t *sorted = t->cancelled_sorted;
    uint64_t oldest = t->cancelled[t->cancelled_next];
    if (oldest != 0) {
        size_t i = cancelled_find(t, oldest);
        assert(i < t->n_cancelled && sorted[i] == oldest);
        memmove(&sorted[i], &sorted[i + 1], (t->n_cancelled - i - 1) * sizeof(*sorted));
        t->n_cancelled--;
    }
    size_t i = cancelled_find(t, id);
    memmove(&sorted[i + 1], &sorted[i], (t->n_cancelled - i) * sizeof(*sorted));
    sorted[i] = id;
    t->n_cancelled++;
    t->cancelled[t->cancelled_next] = id;
    t->cancelled_next = (t->cancelled_next + 1) % TRANSPORT_CANCELLED_MAX;
}

/* The lane with the fewest transfers, the first of those tied: requests
 * one at a time all take the first lane and its kept-alive connections. */
static struct lane *least_busy_lane(struct turso_transport *t)
{
    struct lane *best = &t->lanes[0];
    int best_busy = atomic_load_explicit(&best->n_busy, memory_order_relaxed);
    for (int i = 1; i < t->n_lanes && best_busy > 0; i++) {
        int busy = atomic_load_explicit(&t->lanes[i].n_busy, memory_order_relaxed);
        if (busy < best_busy) {
            best = &t->lanes[i];
            best_busy = busy;
        }
    }
    return best;
}

/* Queues `x` on the least busy lane, or refuses it when stopping. */
static enum tm_err enqueue(struct turso_transport *t, struct xfer *x)
{
    struct lane *l = least_busy_lane(t);
    pthread_mutex_lock(&l->lock);
    if (l->is_stopping) {
        pthread_mutex_unlock(&l->lock);
        return TM_ERR_CANCELLED;
    }
    /* A group cancelled before this submission: the thread ends it at once.
     * Checked inside the lane's lock, so that a cancel either is seen here
     * or finds the transfer in the queue (cancel_group remembers the id
     * before it walks the lanes). */
    pthread_mutex_lock(&t->cancel_lock);
    x->is_cancelled = is_group_cancelled(t, x->group.id);
    pthread_mutex_unlock(&t->cancel_lock);
    x->lane = l;
    x->next = NULL;
    if (l->queue_tail)
        l->queue_tail->next = x;
    else
        l->queue_head = x;
    l->queue_tail = x;
    atomic_fetch_add_explicit(&l->n_busy, 1, memory_order_relaxed);
    /* Woken under the lock: stop cannot get past setting is_stopping, so
     * wake_fd cannot be closed, until this returns. */
    wake(l);
    pthread_mutex_unlock(&l->lock);
    return TM_OK;
}

/*
 * Reports the end of a transfer (to its callback or its waiter) and frees it.
 * Its lane's thread only, holding no lock.
 */
static void run_callback(struct xfer *x);

static void finish(struct xfer *x, enum tm_err err, long status, const char *message)
{
    struct turso_reply reply;
    double seconds = 0;
    if (x->easy)
        curl_easy_getinfo(x->easy, CURLINFO_TOTAL_TIME, &seconds);
    metrics_upstream(err != TM_OK || status < 200 || status > 299, seconds * 1000.0);
    if (x->lane)
        atomic_fetch_sub_explicit(&x->lane->n_busy, 1, memory_order_relaxed);

    /* The transfer is over: wipe the bearer before anyone else runs. */
    xfer_release_curl(x);

    memset(&reply, 0, sizeof(reply));
    reply.err = err;
    reply.is_deadline = err == TM_ERR_TIMEOUT && x->is_deadline_bound;
    if (err == TM_OK) {
        reply.status = status;
    } else {
        /* A failed transfer has no body worth keeping. */
        buf_truncate(&x->resp, 0);
        snprintf(reply.message, sizeof(reply.message), "%s",
                 message && message[0] ? message : tm_err_message(err));
    }
    reply.body = x->resp.data;
    reply.body_len = x->resp.len;

    if (x->waiter) {
        struct sync_wait *w = x->waiter;
        reply.body = buf_take(&x->resp, &reply.body_len); /* the caller's now */
        pthread_mutex_lock(&w->lock);
        w->reply = reply;
        w->is_done = true;
        pthread_cond_signal(&w->cond);
        pthread_mutex_unlock(&w->lock);
        xfer_destroy(x);
    } else if (x->t && x->t->n_workers > 0 &&
               !(x->group.callbacks_never_block && reply.body_len <= TRANSPORT_INLINE_REPLY_MAX)) {
        struct turso_transport *t = x->t;
        x->reply = reply;
        x->cb_next = NULL;
        pthread_mutex_lock(&t->cb_lock);
        if (t->cb_tail)
            t->cb_tail->cb_next = x;
        else
            t->cb_head = x;
        t->cb_tail = x;
        pthread_mutex_unlock(&t->cb_lock);
        /* After unlocking, so the worker woken does not at once block on the
         * lock. With no worker asleep, glibc's signal sees no waiter and
         * returns without a system call. */
        pthread_cond_signal(&t->cb_wake);
    } else {
        x->reply = reply;
        run_callback(x);
    }
}

/* Runs a finished transfer's callback, then frees the transfer. */
static void run_callback(struct xfer *x)
{
    /* Whatever the callback submits joins the transfer's group; what it
     * sets itself does not outlive it. */
    struct turso_call_group saved = current_group;
    current_group = x->group;
    x->fn(&x->reply, x->ctx);
    current_group = saved;
    xfer_destroy(x);
}

/* A callback worker: runs queued callbacks until stopped and the queue is empty. */
static void *callback_worker(void *arg)
{
    struct turso_transport *t = arg;
    pthread_setname_np(pthread_self(), "tm-callback");
    pthread_mutex_lock(&t->cb_lock);
    for (;;) {
        while (!t->cb_head && !t->cb_is_stopping)
            pthread_cond_wait(&t->cb_wake, &t->cb_lock);
        struct xfer *x = t->cb_head;
        if (!x)
            break; /* stopping, and nothing left to run */
        t->cb_head = x->cb_next;
        if (!t->cb_head)
            t->cb_tail = NULL;
        pthread_mutex_unlock(&t->cb_lock);
        run_callback(x);
        pthread_mutex_lock(&t->cb_lock);
    }
    pthread_mutex_unlock(&t->cb_lock);
    return NULL;
}

static enum tm_err map_curl_error(CURLcode rc)
{
    switch (rc) {
    case CURLE_OPERATION_TIMEDOUT:
        return TM_ERR_TIMEOUT;
    case CURLE_OUT_OF_MEMORY:
        return TM_ERR_NOMEM;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
        return TM_ERR_INVALID;
    default:
        /* Resolve, connect, TLS, send and receive failures, a peer that closed
         * the connection: all mean Turso could not be reached. */
        return TM_ERR_NETWORK;
    }
}

/* Turns curl's verdict on a finished transfer into a reply. */
static void complete(struct xfer *x, CURLcode rc)
{
    /* When the deadline cut the timeout, a timeout once it has passed is the
     * deadline's; a connect timeout fires earlier, while time is left. curl
     * keeps its own clock and rounds, so it may fire a few ms before ours
     * says the deadline passed: allow that much. */
    if (rc == CURLE_OPERATION_TIMEDOUT && x->is_deadline_bound &&
        mono_ms() + TRANSPORT_CLOCK_SLACK_MS >= x->group.deadline_ms) {
        char message[128];
        snprintf(message, sizeof(message),
                 "the call ran out of time (%ld ms left for this request)", x->timeout_ms);
        finish(x, TM_ERR_TIMEOUT, 0, message);
        return;
    }
    /* Any other timeout is the request's own: not reported as the deadline. */
    x->is_deadline_bound = false;
    if (rc == CURLE_OK) {
        long status = 0;
        curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
        finish(x, TM_OK, status, NULL);
        return;
    }
    if (x->is_too_large && rc == CURLE_WRITE_ERROR) {
        char message[128];
        snprintf(message, sizeof(message), "the response exceeded %zu bytes", x->resp.max);
        finish(x, TM_ERR_TOO_LARGE, 0, message);
        return;
    }
    if (x->is_nomem && rc == CURLE_WRITE_ERROR) {
        finish(x, TM_ERR_NOMEM, 0, NULL);
        return;
    }
    /* curl's error buffer names the host and the failure, never a header. */
    finish(x, map_curl_error(rc), 0, x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc));
}

/* The two below run on the lane's thread, holding l->lock. */
static void active_unlink(struct lane *l, struct xfer *x)
{
    if (x->prev)
        x->prev->next = x->next;
    else
        l->active = x->next;
    if (x->next)
        x->next->prev = x->prev;
    x->prev = x->next = NULL;
}

static void active_add(struct lane *l, struct xfer *x)
{
    x->prev = NULL;
    x->next = l->active;
    if (l->active)
        l->active->prev = x;
    l->active = x;
}

/* Reports every transfer curl has finished. */
static void drain_done(struct lane *l)
{
    CURLMsg *m;
    int n_left = 0;
    while ((m = curl_multi_info_read(l->multi, &n_left)) != NULL) {
        if (m->msg != CURLMSG_DONE)
            continue;
        /* Read the message before remove_handle invalidates it. */
        CURL *e = m->easy_handle;
        CURLcode rc = m->data.result;
        char *priv = NULL;
        curl_easy_getinfo(e, CURLINFO_PRIVATE, &priv);
        struct xfer *x = (struct xfer *)priv;
        curl_multi_remove_handle(l->multi, e);
        pthread_mutex_lock(&l->lock);
        active_unlink(l, x);
        pthread_mutex_unlock(&l->lock);
        complete(x, rc);
    }
}

/*
 * Ends every queued and running transfer with TM_ERR_CANCELLED. Callbacks
 * cannot queue more (submit refuses once stopping), so this ends.
 */
static void cancel_all(struct lane *l)
{
    for (;;) {
        pthread_mutex_lock(&l->lock);
        struct xfer *x = l->active;
        bool is_active = x != NULL;
        if (x) {
            active_unlink(l, x);
        } else {
            x = l->queue_head;
            if (x) {
                l->queue_head = x->next;
                if (!l->queue_head)
                    l->queue_tail = NULL;
                x->next = NULL;
            }
        }
        pthread_mutex_unlock(&l->lock);
        if (!x)
            break;
        if (is_active)
            curl_multi_remove_handle(l->multi, x->easy);
        finish(x, TM_ERR_CANCELLED, 0, "the transport is stopping");
    }
}

/* Ends the running transfers that turso_transport_cancel_group marked. */
static void end_cancelled(struct lane *l)
{
    struct xfer *ended = NULL;
    pthread_mutex_lock(&l->lock);
    if (l->has_cancels) {
        l->has_cancels = false;
        struct xfer *x = l->active;
        while (x) {
            struct xfer *next = x->next;
            if (x->is_cancelled) {
                active_unlink(l, x);
                x->next = ended;
                ended = x;
            }
            x = next;
        }
    }
    pthread_mutex_unlock(&l->lock);
    while (ended) {
        struct xfer *x = ended;
        ended = x->next;
        x->next = NULL;
        curl_multi_remove_handle(l->multi, x->easy);
        finish(x, TM_ERR_CANCELLED, 0, "the call was cancelled");
    }
}

/*
 * Starts the transfers queued so far, or ends those whose group was
 * cancelled or is out of time. Each leaves the queue and joins the active
 * list in one hold of the lock, so a cancel always finds it in one of them.
 * Transfers queued meanwhile (by the callbacks run here) wait for the next
 * turn, which comes at once since submitting wakes the thread.
 */
static void start_queued(struct lane *l)
{
    pthread_mutex_lock(&l->lock);
    struct xfer *last = l->queue_tail;
    pthread_mutex_unlock(&l->lock);
    bool is_last = last == NULL;
    while (!is_last) {
        enum tm_err err = TM_OK;
        uint64_t late_ms = 0;
        pthread_mutex_lock(&l->lock);
        struct xfer *x = l->queue_head;
        l->queue_head = x->next;
        if (!l->queue_head)
            l->queue_tail = NULL;
        x->next = NULL;
        is_last = x == last;
        if (x->is_cancelled) {
            err = TM_ERR_CANCELLED;
        } else if (x->group.deadline_ms != 0) {
            /* Differences in unsigned arithmetic: any int64 deadline is safe. */
            int64_t now = mono_ms();
            if (x->group.deadline_ms <= now) {
                err = TM_ERR_TIMEOUT;
                late_ms = (uint64_t)now - (uint64_t)x->group.deadline_ms;
                x->is_deadline_bound = true;
            } else {
                uint64_t left_ms = (uint64_t)x->group.deadline_ms - (uint64_t)now;
                if (left_ms < (uint64_t)x->timeout_ms) {
                    x->timeout_ms = (long)left_ms;
                    x->is_deadline_bound = true;
                }
            }
        }
        if (err == TM_OK)
            active_add(l, x);
        pthread_mutex_unlock(&l->lock);

        if (err == TM_ERR_CANCELLED) {
            finish(x, err, 0, "the call was cancelled");
            continue;
        }
        if (err == TM_ERR_TIMEOUT) {
            char message[128];
            snprintf(message, sizeof(message),
                     "the call ran out of time (its deadline passed %llu ms ago)",
                     (unsigned long long)late_ms);
            finish(x, err, 0, message);
            continue;
        }
        if (curl_easy_setopt(x->easy, CURLOPT_TIMEOUT_MS, x->timeout_ms) != CURLE_OK ||
            curl_multi_add_handle(l->multi, x->easy) != CURLM_OK) {
            pthread_mutex_lock(&l->lock);
            active_unlink(l, x);
            pthread_mutex_unlock(&l->lock);
            finish(x, TM_ERR_INTERNAL, 0, "could not start the transfer");
        }
    }
}

/* Where the thread notes whether curl watches socket `s`, growing the
 * table as needed; NULL if it cannot grow. Lane thread only. */
static bool *watched_slot(struct lane *l, curl_socket_t s)
{
    if (s < 0)
        return NULL;
    size_t i = (size_t)s;
    if (i >= l->n_is_watched) {
        size_t n = l->n_is_watched ? l->n_is_watched : 64;
        while (n <= i)
            n *= 2;
        bool *grown = realloc(l->is_watched, n * sizeof(*grown));
        if (!grown)
            return NULL;
        memset(grown + l->n_is_watched, 0, (n - l->n_is_watched) * sizeof(*grown));
        l->is_watched = grown;
        l->n_is_watched = n;
    }
    return &l->is_watched[i];
}

/*
 * curl's socket callback: keeps the epoll set in step with the sockets curl
 * wants watched. A socket curl stops watching is left in the set: nearly
 * always curl closes it next, which drops it from the set without a system
 * call. One left open that becomes ready is dropped then (see run), and a
 * new socket given the same number is added afresh.
 */
static int on_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    struct lane *l = userp;
    (void)easy;
    (void)socketp;
    bool *is_watched = watched_slot(l, s);
    if (what == CURL_POLL_REMOVE) {
        if (is_watched)
            *is_watched = false;
        else
            epoll_ctl(l->epoll_fd, EPOLL_CTL_DEL, s, NULL); /* cannot note it: drop it now */
        return 0;
    }
    struct epoll_event ev;
    memset(&ev, 0, sizeof(ev));
    ev.events = ((what & CURL_POLL_IN) ? EPOLLIN : 0) | ((what & CURL_POLL_OUT) ? EPOLLOUT : 0);
    ev.data.fd = s;
    /* A socket left in the set (still open) answers ADD with EEXIST; a
     * watched one closed behind our back answers MOD with ENOENT. */
    int op = is_watched && *is_watched ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    int rc = epoll_ctl(l->epoll_fd, op, s, &ev);
    if (rc != 0 && op == EPOLL_CTL_ADD && errno == EEXIST)
        rc = epoll_ctl(l->epoll_fd, EPOLL_CTL_MOD, s, &ev);
    else if (rc != 0 && op == EPOLL_CTL_MOD && errno == ENOENT)
        rc = epoll_ctl(l->epoll_fd, EPOLL_CTL_ADD, s, &ev);
    /* Any other failure is the kernel out of memory. Returning -1 would make
     * curl 7.88 mark the whole multi handle dead, so leave it: the transfer
     * ends at its timeout. */
    (void)rc;
    if (is_watched)
        *is_watched = true;
    return 0;
}

/* curl's timer callback: when curl next wants a timeout action. Only
 * records it: curl forbids calling back into the multi handle from here. */
static int on_timer(CURLM *multi, long timeout_ms, void *userp)
{
    struct lane *l = userp;
    (void)multi;
    l->timer_at_ns = timeout_ms < 0 ? -1 : mono_ns() + (int64_t)timeout_ms * 1000000;
    return 0;
}

/* Gives curl its timeout action when the timer is due. */
static void act_on_timer(struct lane *l)
{
    if (l->timer_at_ns < 0 || l->timer_at_ns > mono_ns())
        return;
    /* Cleared first: curl sets it again, from inside the action, if needed. */
    l->timer_at_ns = -1;
    int n_running = 0;
    curl_multi_socket_action(l->multi, CURL_SOCKET_TIMEOUT, 0, &n_running);
}

/* How long the thread may sleep: until curl's timer, at most TRANSPORT_POLL_MS. */
static int wait_ms(const struct lane *l)
{
    if (l->timer_at_ns < 0)
        return TRANSPORT_POLL_MS;
    int64_t left_ns = l->timer_at_ns - mono_ns();
    if (left_ns <= 0)
        return 0;
    /* Rounded up: waking before the timer is due would waste a turn. */
    int64_t ms = (left_ns + 999999) / 1000000;
    return ms < TRANSPORT_POLL_MS ? (int)ms : TRANSPORT_POLL_MS;
}

static void *run(void *arg)
{
    struct lane *l = arg;
    /* Named for operators (top -H, /proc/PID/task/TID/comm), with the lane's
     * index, so that a lane left idle or overloaded shows; at most
     * "tm-upstream-7", within the 15 characters a name may have. */
    char name[16];
    snprintf(name, sizeof(name), "tm-upstream-%d", (int)(l - l->t->lanes));
    pthread_setname_np(pthread_self(), name);
    struct epoll_event events[TRANSPORT_EVENTS_MAX];
    for (;;) {
        pthread_mutex_lock(&l->lock);
        l->is_asleep = false;
        l->is_woken = false;
        bool is_stopping = l->is_stopping;
        pthread_mutex_unlock(&l->lock);

        if (is_stopping) {
            cancel_all(l);
            break;
        }
        end_cancelled(l);
        start_queued(l);
        /* Adding a transfer sets the timer to now: start it at once. */
        act_on_timer(l);
        drain_done(l);

        /* Sleep only with nothing to do; from here on, work that arrives
         * wakes the thread. The queue may hold what callbacks submitted
         * during this turn. */
        pthread_mutex_lock(&l->lock);
        bool is_busy = l->queue_head || l->has_cancels || l->is_stopping;
        l->is_asleep = !is_busy;
        pthread_mutex_unlock(&l->lock);
        int timeout_ms = is_busy ? 0 : wait_ms(l);
        int n = epoll_wait(l->epoll_fd, events, TRANSPORT_EVENTS_MAX, timeout_ms);
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            if (fd == l->wake_fd) {
                uint64_t count;
                ssize_t len = read(l->wake_fd, &count, sizeof(count));
                (void)len;
                continue;
            }
            if ((size_t)fd < l->n_is_watched && !l->is_watched[fd]) {
                /* Left in the set by on_socket, open and ready: drop it. */
                epoll_ctl(l->epoll_fd, EPOLL_CTL_DEL, fd, NULL);
                continue;
            }
            uint32_t e = events[i].events;
            int mask = ((e & (EPOLLIN | EPOLLHUP | EPOLLERR)) ? CURL_CSELECT_IN : 0) |
                       ((e & EPOLLOUT) ? CURL_CSELECT_OUT : 0) |
                       ((e & EPOLLERR) ? CURL_CSELECT_ERR : 0);
            int n_running = 0;
            curl_multi_socket_action(l->multi, fd, mask, &n_running);
        }
        if (n == 0 && timeout_ms == TRANSPORT_POLL_MS && l->timer_at_ns < 0) {
            /* The safety net of TRANSPORT_POLL_MS. */
            int n_running = 0;
            curl_multi_socket_action(l->multi, CURL_SOCKET_TIMEOUT, 0, &n_running);
        }
        act_on_timer(l);
        drain_done(l);
    }
    return NULL;
}

/* Frees what lane_init built; the lane's thread is joined (or never ran).
 * Before the share goes: the multi handle may hold connections using it. */
static void lane_free(struct lane *l)
{
    if (l->multi)
        curl_multi_cleanup(l->multi);
    /* After the multi handle, whose cleanup may still report sockets. */
    if (l->epoll_fd >= 0)
        close(l->epoll_fd);
    if (l->wake_fd >= 0)
        close(l->wake_fd);
    free(l->is_watched);
    if (l->has_lock)
        pthread_mutex_destroy(&l->lock);
}

/* Frees what start built; every thread is joined (or was never started). */
static void transport_free(struct turso_transport *t)
{
    if (!t)
        return;
    /* The idle handles use the share: they go first. */
    for (int i = 0; i < t->n_idle; i++) {
        curl_easy_cleanup(t->idle[i].easy);
        buf_cleanup(&t->idle[i].resp);
    }
    t->n_idle = 0;
    if (t->has_idle_lock)
        pthread_mutex_destroy(&t->idle_lock);
    for (int i = 0; i < t->n_lanes; i++)
        lane_free(&t->lanes[i]);
    /* Easy handles and multi handles are gone by now, so the share is no
     * longer in use. */
    if (t->share)
        curl_share_cleanup(t->share);
    for (int i = 0; i < t->n_share_locks; i++)
        pthread_mutex_destroy(&t->share_locks[i]);
    if (t->has_cancel_lock)
        pthread_mutex_destroy(&t->cancel_lock);
    if (t->has_cb_lock) {
        pthread_mutex_destroy(&t->cb_lock);
        pthread_cond_destroy(&t->cb_wake);
    }
    free(t->user_agent);
    free(t);
}

/* Sets up lane `l` of `t`, short of its thread; lane_free undoes it, even
 * half done. */
static enum tm_err lane_init(struct turso_transport *t, struct lane *l)
{
    l->t = t;
    l->epoll_fd = -1;
    l->wake_fd = -1;
    l->timer_at_ns = -1;
    atomic_init(&l->n_busy, 0);
    if (pthread_mutex_init(&l->lock, NULL) != 0)
        return TM_ERR_INTERNAL;
    l->has_lock = true;
    l->multi = curl_multi_init();
    if (!l->multi)
        return TM_ERR_NOMEM;
    l->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    if (l->epoll_fd < 0)
        return TM_ERR_INTERNAL;
    l->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (l->wake_fd < 0)
        return TM_ERR_INTERNAL;
    struct epoll_event ev;
    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN;
    ev.data.fd = l->wake_fd;
    if (epoll_ctl(l->epoll_fd, EPOLL_CTL_ADD, l->wake_fd, &ev) != 0)
        return TM_ERR_INTERNAL;
    CURLMcode mc = CURLM_OK;
    mc |= curl_multi_setopt(l->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    mc |= curl_multi_setopt(l->multi, CURLMOPT_SOCKETDATA, l);
    mc |= curl_multi_setopt(l->multi, CURLMOPT_TIMERFUNCTION, on_timer);
    mc |= curl_multi_setopt(l->multi, CURLMOPT_TIMERDATA, l);
    return mc == CURLM_OK ? TM_OK : TM_ERR_INTERNAL;
}

/* How many lanes: as asked, else one per online CPU; within 1..LANES_MAX. */
static int lane_count(const struct turso_transport_opts *opts)
{
    long n = opts && opts->n_threads > 0 ? opts->n_threads : 0;
    if (n == 0) {
        n = sysconf(_SC_NPROCESSORS_ONLN);
        if (n > TRANSPORT_LANES_DEFAULT)
            n = TRANSPORT_LANES_DEFAULT;
    }
    if (n < 1)
        n = 1;
    return n > TRANSPORT_LANES_MAX ? TRANSPORT_LANES_MAX : (int)n;
}

/* Tells every lane thread to stop, then waits for each. */
static void lanes_stop(struct turso_transport *t)
{
    for (int i = 0; i < t->n_lanes; i++) {
        struct lane *l = &t->lanes[i];
        pthread_mutex_lock(&l->lock);
        l->is_stopping = true;
        if (l->has_thread)
            wake(l);
        pthread_mutex_unlock(&l->lock);
    }
    for (int i = 0; i < t->n_lanes; i++) {
        if (t->lanes[i].has_thread)
            pthread_join(t->lanes[i].thread, NULL);
        t->lanes[i].has_thread = false;
    }
}

enum tm_err turso_transport_start(const struct turso_transport_opts *opts,
                                  struct turso_transport **out)
{
    enum tm_err err = TM_ERR_NOMEM;
    struct turso_transport *t = NULL;

    if (!out)
        return TM_ERR_INVALID;
    if (opts && (opts->connect_timeout_ms < 0 || opts->total_timeout_ms < 0 || opts->n_threads < 0))
        return TM_ERR_INVALID;
    t = calloc(1, sizeof(*t));
    if (!t)
        goto out;
    t->connect_timeout_ms = opts && opts->connect_timeout_ms > 0 ? opts->connect_timeout_ms
                                                                 : TRANSPORT_CONNECT_TIMEOUT_MS;
    t->total_timeout_ms =
        opts && opts->total_timeout_ms > 0 ? opts->total_timeout_ms : TRANSPORT_TOTAL_TIMEOUT_MS;
    t->max_response_len =
        opts && opts->max_response_len > 0 ? opts->max_response_len : TRANSPORT_MAX_RESPONSE_LEN;
    t->user_agent = strdup(opts && opts->user_agent ? opts->user_agent : TRANSPORT_USER_AGENT);
    if (!t->user_agent)
        goto out;

    err = TM_ERR_INTERNAL;
    if (pthread_mutex_init(&t->cancel_lock, NULL) != 0)
        goto out;
    t->has_cancel_lock = true;
    if (pthread_mutex_init(&t->idle_lock, NULL) != 0)
        goto out;
    t->has_idle_lock = true;
    for (; t->n_share_locks < CURL_LOCK_DATA_LAST; t->n_share_locks++) {
        if (pthread_mutex_init(&t->share_locks[t->n_share_locks], NULL) != 0)
            goto out;
    }

    err = TM_ERR_NOMEM;
    t->share = curl_share_init();
    if (!t->share)
        goto out;
    /* DNS answers and TLS sessions are shared by every lane. Connections
     * are not: curl does not support one connection cache used by several
     * threads at once, so each lane's multi handle keeps its own. */
    CURLSHcode sc = CURLSHE_OK;
    sc |= curl_share_setopt(t->share, CURLSHOPT_LOCKFUNC, share_lock);
    sc |= curl_share_setopt(t->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
    sc |= curl_share_setopt(t->share, CURLSHOPT_USERDATA, t);
    sc |= curl_share_setopt(t->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    sc |= curl_share_setopt(t->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    if (sc != CURLSHE_OK) {
        err = TM_ERR_INTERNAL;
        goto out;
    }
    for (int want = lane_count(opts); t->n_lanes < want;) {
        /* Counted before it is set up, so that transport_free undoes a half. */
        struct lane *l = &t->lanes[t->n_lanes++];
        err = lane_init(t, l);
        if (err != TM_OK)
            goto out;
    }
    err = TM_ERR_INTERNAL;
    for (int i = 0; i < t->n_lanes; i++) {
        struct lane *l = &t->lanes[i];
        if (pthread_create(&l->thread, NULL, run, l) != 0) {
            lanes_stop(t);
            goto out;
        }
        l->has_thread = true;
    }
    /* Workers for callbacks; with none (a failed start), callbacks run on the lane threads. */
    if (pthread_mutex_init(&t->cb_lock, NULL) == 0 && pthread_cond_init(&t->cb_wake, NULL) == 0) {
        t->has_cb_lock = true;
        int want = opts && opts->n_callback_threads > 0 ? opts->n_callback_threads : 2;
        if (want > TRANSPORT_WORKERS_MAX)
            want = TRANSPORT_WORKERS_MAX;
        while (t->n_workers < want &&
               pthread_create(&t->workers[t->n_workers], NULL, callback_worker, t) == 0)
            t->n_workers++;
    }
    *out = t;
    t = NULL;
    err = TM_OK;
out:
    transport_free(t);
    return err;
}

void turso_transport_stop(struct turso_transport **tp)
{
    if (!tp || !*tp)
        return;
    struct turso_transport *t = *tp;
    *tp = NULL;
    lanes_stop(t);
    /* The lane threads have ended every transfer; the workers run what is queued, then stop. */
    if (t->n_workers > 0) {
        pthread_mutex_lock(&t->cb_lock);
        t->cb_is_stopping = true;
        pthread_cond_broadcast(&t->cb_wake);
        pthread_mutex_unlock(&t->cb_lock);
        for (int i = 0; i < t->n_workers; i++)
            pthread_join(t->workers[i], NULL);
    }
    transport_free(t);
}

enum tm_err turso_transport_submit(struct turso_transport *t, const struct turso_request *req,
                                   turso_reply_fn fn, void *ctx)
{
    struct xfer *x = NULL;
    if (!t || !req || !fn)
        return TM_ERR_INVALID;
    enum tm_err err = xfer_create(t, req, &x);
    if (err != TM_OK)
        return err;
    x->fn = fn;
    x->ctx = ctx;
    err = enqueue(t, x);
    if (err != TM_OK)
        xfer_destroy(x);
    return err;
}

enum tm_err turso_transport_call(struct turso_transport *t, const struct turso_request *req,
                                 struct turso_reply *out)
{
    struct xfer *x = NULL;
    struct sync_wait w;
    enum tm_err err;

    if (!out)
        return TM_ERR_INVALID;
    memset(out, 0, sizeof(*out));
    if (!t || !req) {
        err = TM_ERR_INVALID;
        goto fail;
    }
    /* Called from a callback run on a lane thread (see callbacks_never_block),
     * this would wait for a transfer that the thread itself must drive, or
     * stall the other transfers of its lane while another lane drives it. */
    for (int i = 0; i < t->n_lanes; i++) {
        if (pthread_equal(pthread_self(), t->lanes[i].thread)) {
            err = TM_ERR_INTERNAL;
            goto fail;
        }
    }
    err = xfer_create(t, req, &x);
    if (err != TM_OK)
        goto fail;

    memset(&w, 0, sizeof(w));
    if (pthread_mutex_init(&w.lock, NULL) != 0) {
        xfer_destroy(x);
        err = TM_ERR_INTERNAL;
        goto fail;
    }
    if (pthread_cond_init(&w.cond, NULL) != 0) {
        pthread_mutex_destroy(&w.lock);
        xfer_destroy(x);
        err = TM_ERR_INTERNAL;
        goto fail;
    }
    x->waiter = &w;
    err = enqueue(t, x);
    if (err != TM_OK) {
        xfer_destroy(x);
    } else {
        /* No deadline here: the transfer's own timeouts, or stop, end it. */
        pthread_mutex_lock(&w.lock);
        while (!w.is_done)
            pthread_cond_wait(&w.cond, &w.lock);
        pthread_mutex_unlock(&w.lock);
        *out = w.reply;
    }
    pthread_cond_destroy(&w.cond);
    pthread_mutex_destroy(&w.lock);
    if (err == TM_OK)
        return out->err;
fail:
    out->err = err;
    snprintf(out->message, sizeof(out->message), "%s", tm_err_message(err));
    return err;
}

void turso_transport_set_group(const struct turso_call_group *g)
{
    if (g) {
        current_group = *g;
    } else {
        memset(&current_group, 0, sizeof(current_group));
    }
}

struct turso_call_group turso_transport_get_group(void)
{
    return current_group;
}

uint64_t turso_transport_new_group_id(void)
{
    uint64_t id;
    do {
        id = (uint64_t)atomic_fetch_add(&last_group_id, 1) + 1;
    } while (id == 0);
    return id;
}

void turso_transport_cancel_group(struct turso_transport *t, uint64_t group_id)
{
    if (!t || group_id == 0)
        return;
    /* Remembered once, so that repeating a cancel pushes out no other id;
     * and before the lanes are walked (see enqueue). */
    pthread_mutex_lock(&t->cancel_lock);
    if (!is_group_cancelled(t, group_id))
        remember_cancelled(t, group_id);
    pthread_mutex_unlock(&t->cancel_lock);
    /* Queued transfers are ended by start_queued, running ones by
     * end_cancelled; both on the lane's thread, never inside this call. */
    for (int i = 0; i < t->n_lanes; i++) {
        struct lane *l = &t->lanes[i];
        bool is_marked = false;
        pthread_mutex_lock(&l->lock);
        for (struct xfer *x = l->queue_head; x; x = x->next) {
            if (x->group.id == group_id && !x->is_cancelled) {
                x->is_cancelled = true;
                is_marked = true;
            }
        }
        for (struct xfer *x = l->active; x; x = x->next) {
            if (x->group.id == group_id && !x->is_cancelled) {
                x->is_cancelled = true;
                l->has_cancels = true;
                is_marked = true;
            }
        }
        /* Under the lock, as in enqueue: stop cannot close wake_fd yet. */
        if (is_marked)
            wake(l);
        pthread_mutex_unlock(&l->lock);
    }
}

void turso_reply_cleanup(struct turso_reply *r)
{
    if (!r)
        return;
    if (r->body)
        sodium_memzero(r->body, r->body_len); /* as the transport does with its own copies */
    free(r->body);
    r->body = NULL;
    r->body_len = 0;
}
