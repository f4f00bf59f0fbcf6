/*
 * SSE streams. Locking: each stream's `lock` guards its buffer and flags;
 * the hub's `lock` guards the list of streams. Never take a stream lock and
 * then the hub lock (the keep-alive walk takes hub then stream).
 * MHD_suspend_connection is called only from the reader (the connection's
 * own thread); MHD_resume_connection from any thread, always with the
 * stream lock held and only while the connection is known to be suspended.
 */
#include "sse.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/*
 * How much libmicrohttpd asks the reader for at once. It keeps a buffer of
 * this size per open stream, and most events are a few hundred bytes, so a
 * small block keeps 10,000 idle streams cheap; big results take more calls.
 */
#define SSE_BLOCK_SIZE 1024

struct sse_stream {
    atomic_int refs; /* the response's, the hub list's (while listed) and callers' */
    struct sse_hub *hub;
    pthread_mutex_t lock; /* guards the fields below */
    struct MHD_Connection *conn;
    char *buf; /* bytes not yet handed to libmicrohttpd */
    size_t len, cap;
    bool is_suspended;
    bool is_ending; /* finish once buf is drained */
    bool is_gone;   /* the response was freed: nothing more can be written */
    uint64_t next_seq;
    char prefix[40];
    char last_id[64];
    sse_gone_fn on_gone;
    void *on_gone_ctx;
    struct sse_stream *prev, *next; /* in the hub's list; guarded by the hub's lock */
    bool is_listed;
};

struct sse_hub {
    pthread_mutex_t lock; /* guards the list, the count and `is_stopping` */
    pthread_cond_t wake;
    pthread_t thread;
    struct sse_stream *head;
    size_t n_streams;
    long keepalive_ms;
    size_t max_buffer;
    bool is_stopping;
};

static void stream_free(struct sse_stream *s)
{
    pthread_mutex_destroy(&s->lock);
    free(s->buf);
    free(s);
}

void sse_stream_release(struct sse_stream **sp)
{
    if (!sp || !*sp)
        return;
    if (atomic_fetch_sub(&(*sp)->refs, 1) == 1)
        stream_free(*sp);
    *sp = NULL;
}

static void hub_unlist(struct sse_hub *h, struct sse_stream *s)
{
    pthread_mutex_lock(&h->lock);
    bool was_listed = s->is_listed;
    if (was_listed) {
        if (s->prev)
            s->prev->next = s->next;
        else
            h->head = s->next;
        if (s->next)
            s->next->prev = s->prev;
        s->is_listed = false;
        h->n_streams--;
    }
    pthread_mutex_unlock(&h->lock);
    if (was_listed)
        sse_stream_release(&s);
}

/* Appends under the lock and wakes the connection; the caller holds s->lock. */
static bool append_locked(struct sse_stream *s, const char *const *parts, const size_t *lens,
                          size_t n_parts)
{
    if (s->is_gone || s->is_ending)
        return false;
    size_t add = 0;
    for (size_t i = 0; i < n_parts; i++)
        add += lens[i];
    /* A client that stops reading must not make the server hold its events forever. */
    if (s->len + add > s->hub->max_buffer) {
        s->is_ending = true;
        s->len = 0;
    } else {
        if (s->len + add > s->cap) {
            size_t cap = s->cap ? s->cap : 256;
            while (cap < s->len + add)
                cap *= 2;
            char *grown = realloc(s->buf, cap);
            if (!grown)
                return false;
            s->buf = grown;
            s->cap = cap;
        }
        for (size_t i = 0; i < n_parts; i++) {
            memcpy(s->buf + s->len, parts[i], lens[i]);
            s->len += lens[i];
        }
    }
    if (s->is_suspended) {
        s->is_suspended = false;
        MHD_resume_connection(s->conn);
    }
    return !s->is_ending;
}

static ssize_t read_stream(void *cls, uint64_t pos, char *out, size_t max)
{
    struct sse_stream *s = cls;
    ssize_t ret;
    pthread_mutex_lock(&s->lock);
    if (s->len > 0) {
        size_t n = s->len < max ? s->len : max;
        memcpy(out, s->buf, n);
        memmove(s->buf, s->buf + n, s->len - n);
        s->len -= n;
        ret = (ssize_t)n;
    } else if (s->is_ending) {
        ret = MHD_CONTENT_READER_END_OF_STREAM;
    } else {
        /* Nothing to write: park the connection until an append resumes it. */
        MHD_suspend_connection(s->conn);
        s->is_suspended = true;
        ret = 0;
    }
    pthread_mutex_unlock(&s->lock);
    return ret;
}

static void free_stream_response(void *cls)
{
    struct sse_stream *s = cls;
    pthread_mutex_lock(&s->lock);
    s->is_gone = true;
    s->conn = NULL;
    sse_gone_fn fn = s->on_gone;
    void *ctx = s->on_gone_ctx;
    s->on_gone = NULL;
    pthread_mutex_unlock(&s->lock);
    if (fn)
        fn(ctx);
    hub_unlist(s->hub, s);
    sse_stream_release(&s);
}

enum tm_err sse_stream_create(struct sse_hub *hub, struct MHD_Connection *conn,
                              const char *id_prefix, struct sse_stream **out,
                              struct MHD_Response **resp)
{
    struct sse_stream *s = calloc(1, sizeof(*s));
    if (!s)
        return TM_ERR_NOMEM;
    s->hub = hub;
    s->conn = conn;
    s->next_seq = 1;
    snprintf(s->prefix, sizeof(s->prefix), "%s", id_prefix ? id_prefix : "s");
    pthread_mutex_init(&s->lock, NULL);
    /* One reference for the response, one for the hub list, one for the caller. */
    atomic_init(&s->refs, out ? 3 : 2);
    *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, SSE_BLOCK_SIZE, read_stream, s,
                                              free_stream_response);
    if (!*resp) {
        stream_free(s);
        return TM_ERR_NOMEM;
    }
    MHD_add_response_header(*resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
    MHD_add_response_header(*resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache, no-transform");
    MHD_add_response_header(*resp, "X-Accel-Buffering", "no");
    pthread_mutex_lock(&hub->lock);
    s->next = hub->head;
    if (hub->head)
        hub->head->prev = s;
    hub->head = s;
    s->is_listed = true;
    hub->n_streams++;
    pthread_mutex_unlock(&hub->lock);
    if (out)
        *out = s;
    return TM_OK;
}

void sse_stream_on_gone(struct sse_stream *s, sse_gone_fn fn, void *ctx)
{
    pthread_mutex_lock(&s->lock);
    s->on_gone = fn;
    s->on_gone_ctx = ctx;
    pthread_mutex_unlock(&s->lock);
}

bool sse_stream_send(struct sse_stream *s, const char *event, bool with_id, const char *data,
                     size_t len)
{
    char head[160];
    pthread_mutex_lock(&s->lock);
    int n = 0;
    if (event)
        n += snprintf(head + n, sizeof(head) - (size_t)n, "event: %s\n", event);
    if (with_id) {
        snprintf(s->last_id, sizeof(s->last_id), "%s_%llu", s->prefix,
                 (unsigned long long)s->next_seq++);
        n += snprintf(head + n, sizeof(head) - (size_t)n, "id: %s\n", s->last_id);
    }
    n += snprintf(head + n, sizeof(head) - (size_t)n, "data: ");
    const char *parts[] = {head, data, "\n\n"};
    const size_t lens[] = {(size_t)n, len, 2};
    bool ok = append_locked(s, parts, lens, 3);
    pthread_mutex_unlock(&s->lock);
    return ok;
}

bool sse_stream_send_raw(struct sse_stream *s, const char *text, size_t len)
{
    pthread_mutex_lock(&s->lock);
    const char *parts[] = {text};
    const size_t lens[] = {len};
    bool ok = append_locked(s, parts, lens, 1);
    pthread_mutex_unlock(&s->lock);
    return ok;
}

void sse_stream_end(struct sse_stream *s)
{
    pthread_mutex_lock(&s->lock);
    if (!s->is_gone) {
        s->is_ending = true;
        if (s->is_suspended) {
            s->is_suspended = false;
            MHD_resume_connection(s->conn);
        }
    }
    pthread_mutex_unlock(&s->lock);
}

void sse_stream_last_id(struct sse_stream *s, char *out, size_t out_len)
{
    pthread_mutex_lock(&s->lock);
    snprintf(out, out_len, "%s", s->last_id);
    pthread_mutex_unlock(&s->lock);
}

bool sse_stream_is_gone(struct sse_stream *s)
{
    pthread_mutex_lock(&s->lock);
    bool gone = s->is_gone;
    pthread_mutex_unlock(&s->lock);
    return gone;
}

static void *keepalive_loop(void *arg)
{
    struct sse_hub *h = arg;
    static const char comment[] = ": keepalive\n\n";
    pthread_mutex_lock(&h->lock);
    while (!h->is_stopping) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += h->keepalive_ms / 1000;
        until.tv_nsec += (h->keepalive_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&h->wake, &h->lock, &until);
        if (h->is_stopping)
            break;
        /* A write to a stream whose client left lets libmicrohttpd notice and free it. */
        for (struct sse_stream *s = h->head; s; s = s->next)
            sse_stream_send_raw(s, comment, sizeof(comment) - 1);
    }
    pthread_mutex_unlock(&h->lock);
    return NULL;
}

enum tm_err sse_hub_start(long keepalive_ms, size_t max_buffer, struct sse_hub **out)
{
    struct sse_hub *h = calloc(1, sizeof(*h));
    if (!h)
        return TM_ERR_NOMEM;
    h->keepalive_ms = keepalive_ms > 0 ? keepalive_ms : 15000;
    h->max_buffer = max_buffer ? max_buffer : (8u << 20);
    pthread_mutex_init(&h->lock, NULL);
    pthread_cond_init(&h->wake, NULL);
    if (pthread_create(&h->thread, NULL, keepalive_loop, h) != 0) {
        pthread_cond_destroy(&h->wake);
        pthread_mutex_destroy(&h->lock);
        free(h);
        return TM_ERR_INTERNAL;
    }
    *out = h;
    return TM_OK;
}

size_t sse_hub_count(struct sse_hub *h)
{
    pthread_mutex_lock(&h->lock);
    size_t n = h->n_streams;
    pthread_mutex_unlock(&h->lock);
    return n;
}

void sse_hub_end_all(struct sse_hub *h)
{
    if (!h)
        return;
    pthread_mutex_lock(&h->lock);
    bool was_running = !h->is_stopping;
    h->is_stopping = true;
    pthread_cond_signal(&h->wake);
    for (struct sse_stream *s = h->head; s; s = s->next)
        sse_stream_end(s);
    pthread_mutex_unlock(&h->lock);
    if (was_running)
        pthread_join(h->thread, NULL);
}

void sse_hub_destroy(struct sse_hub **hp)
{
    if (!hp || !*hp)
        return;
    struct sse_hub *h = *hp;
    sse_hub_end_all(h);
    /* The daemon has stopped: every response was freed and unlisted itself. */
    pthread_mutex_lock(&h->lock);
    struct sse_stream *s = h->head;
    h->head = NULL;
    pthread_mutex_unlock(&h->lock);
    while (s) {
        struct sse_stream *next = s->next;
        sse_stream_release(&s);
        s = next;
    }
    pthread_cond_destroy(&h->wake);
    pthread_mutex_destroy(&h->lock);
    free(h);
    *hp = NULL;
}
