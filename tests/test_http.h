/*
 * An in-process libmicrohttpd server for the unit tests, on 127.0.0.1 with
 * an ephemeral port read back. It collects each request's upload (capped)
 * and frees it when the request completes; the test's answer callback does
 * the routing. A thread per connection, so a stalled answer blocks only its own.
 */
#ifndef TM_TEST_HTTP_H
#define TM_TEST_HTTP_H

#include <arpa/inet.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <unistd.h>

#include "test.h"

/*
 * Answers one request once its upload is in. `body` is never NULL: it holds
 * `body_len` bytes and a NUL after them ("" when nothing was uploaded); it is
 * freed when the request completes. Returns what an MHD access handler does.
 * Runs on the connection's thread, at the same time as other requests.
 */
typedef enum MHD_Result (*test_http_answer_fn)(void *state, const char *method, const char *url,
                                               const char *body, size_t body_len,
                                               struct MHD_Connection *conn);

/* Embedded by the test; fill the settings before test_http_start. */
struct test_http {
    test_http_answer_fn answer; /* required */
    void *state;                /* handed to answer and on_connection */
    size_t max_body_len;        /* 0: no cap */
    /* Over the cap: true closes the connection at once, false drains the
     * upload and answers 413 "too big" without calling answer. */
    bool is_closing_when_too_big;
    MHD_NotifyConnectionCallback on_connection; /* optional; its cls is state */
    struct MHD_Daemon *d;                       /* set by test_http_start */
};

/* Per-request state: the upload collected so far. */
struct test_http_req {
    char *buf; /* NUL-terminated, or NULL before the first byte */
    size_t len;
    bool is_too_big;
};

/* Queues `len` bytes of `body` (copied) with `ctype` unless NULL or "". */
static inline enum MHD_Result test_http_respond(struct MHD_Connection *conn, unsigned status,
                                                const char *ctype, const char *body, size_t len)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    if (ctype && ctype[0])
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    enum MHD_Result ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

/* Queues `j` as compact application/json; takes the reference, even if NULL. */
static inline enum MHD_Result test_http_respond_json(struct MHD_Connection *conn, unsigned status,
                                                     json_t *j)
{
    char *text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (!text)
        return MHD_NO;
    enum MHD_Result ret = test_http_respond(conn, status, "application/json", text, strlen(text));
    free(text);
    return ret;
}

static inline enum MHD_Result test_http_handler(void *cls, struct MHD_Connection *conn,
                                                const char *url, const char *method,
                                                const char *version, const char *upload_data,
                                                size_t *upload_data_size, void **con_cls)
{
    struct test_http *h = cls;
    struct test_http_req *rq = *con_cls;
    if (!rq) {
        rq = calloc(1, sizeof(*rq));
        if (!rq)
            return MHD_NO;
        *con_cls = rq;
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (h->max_body_len > 0 && rq->len + n > h->max_body_len) {
            if (h->is_closing_when_too_big)
                return MHD_NO;
            rq->is_too_big = true;
            return MHD_YES;
        }
        char *grown = realloc(rq->buf, rq->len + n + 1);
        if (!grown)
            return MHD_NO;
        rq->buf = grown;
        memcpy(rq->buf + rq->len, upload_data, n);
        rq->len += n;
        rq->buf[rq->len] = '\0';
        return MHD_YES;
    }
    if (rq->is_too_big)
        return test_http_respond(conn, 413, "text/plain", "too big", 7);
    return h->answer(h->state, method, url, rq->buf ? rq->buf : "", rq->len, conn);
}

static inline void test_http_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                                       enum MHD_RequestTerminationCode toe)
{
    struct test_http_req *rq = *con_cls;
    if (rq) {
        free(rq->buf);
        free(rq);
        *con_cls = NULL;
    }
}

/*
 * Starts the daemon on 127.0.0.1, port 0; fails the test if it cannot.
 * Writes "http://127.0.0.1:PORT" to `base` and returns the port bound.
 */
static inline unsigned test_http_start(struct test_http *h, char *base, size_t base_len)
{
    ASSERT_NOT_NULL(h->answer);
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_port = 0;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    h->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0,
                            NULL, NULL, test_http_handler, h, MHD_OPTION_SOCK_ADDR, &addr,
                            MHD_OPTION_NOTIFY_COMPLETED, test_http_completed, h,
                            MHD_OPTION_NOTIFY_CONNECTION, h->on_connection, h->state,
                            MHD_OPTION_CONNECTION_TIMEOUT, 30u, MHD_OPTION_END);
    ASSERT_NOT_NULL(h->d);
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    ASSERT_NOT_NULL(info);
    unsigned port = info->port;
    snprintf(base, base_len, "http://127.0.0.1:%u", port);
    return port;
}

/* Stops the daemon; answers still running are waited for. Accepts a stopped one. */
static inline void test_http_stop(struct test_http *h)
{
    if (h->d)
        MHD_stop_daemon(h->d);
    h->d = NULL;
}

/* A port on 127.0.0.1 that nothing listens on (bound, then closed). */
static inline unsigned test_http_closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ASSERT(fd >= 0);
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT(bind(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0);
    socklen_t len = sizeof(addr);
    ASSERT(getsockname(fd, (struct sockaddr *)&addr, &len) == 0);
    close(fd);
    return ntohs(addr.sin_port);
}

#endif
