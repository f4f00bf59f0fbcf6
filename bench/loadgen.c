/*
 * loadgen: the benchmark's own HTTP/1.1 load generator (127.0.0.1 only).
 *
 *   loadgen run --url URL -c CONNS -d SECS [-w WARMUP_SECS] [-H 'Name: value']...
 *               [--body-file FILE] [--rand LO:HI] [--check jsonrpc|hrana|none]
 *               [--expect TEXT] [--pid NAME=PID]... [--timeout-ms MS] [--label TEXT]
 *   loadgen startup --runs N [--settle-ms MS] -- COMMAND ARGS...   ({{PORT}} in ARGS)
 *   loadgen sse --url URL -n STREAMS --hold SECS --init-body-file FILE
 *               --ready-file FILE [-H 'Name: value']...
 *   loadgen sse --plain 1 --url URL -n CONNS --hold SECS --ready-file FILE
 *               the same with N idle keep-alive connections that each made
 *               one plain GET of URL (e.g. /healthz): the cost of a connection
 *   loadgen freeport        prints a free TCP port on 127.0.0.1
 *
 * run: CONNS closed-loop clients, each sending its next request as soon as
 * the previous answer is complete, for WARMUP+SECS seconds; only answers
 * completed in the last SECS seconds count; then no new request is sent and
 * the answers in flight are awaited (uncounted, up to the timeout) so that
 * the server is idle when the next run starts. Keep-alive is used unless the
 * server answers `Connection: close` (then the next request reconnects, and
 * the connect is part of its latency). In the body, {{SEQ}} becomes a number
 * unique to the request (JSON-RPC ids must be unique within an MCP session)
 * and {{RAND}} a uniform random integer in LO..HI. Every answer is checked:
 * non-2xx, a JSON-RPC error (a top-level "error" member), a tool error
 * (result.isError true), a Hrana error (results[0].type "error"), a missing
 * "result" / "ok", or a body without the --expect text all count as errors.
 * For each --pid the CPU time (utime+stime) over the measured window and the
 * peak RSS in it (VmHWM, reset through clear_refs at the window start) are
 * reported, and so is the busy time of the whole machine. Prints one JSON
 * object.
 *
 * startup: starts COMMAND (stdout/stderr to /dev/null) with a free port in
 * place of {{PORT}}, polls GET /healthz on it every 0.25 ms, reports the time
 * from fork to the first 200 and VmRSS after --settle-ms, stops the process
 * (SIGTERM, then SIGKILL after 5 s) and repeats. Prints one JSON object.
 *
 * sse: probes one session (initialize, notifications/initialized, GET with
 * Accept: text/event-stream); if the GET is not a 200 event stream, reports
 * that and stops. Otherwise opens STREAMS such streams, one session each,
 * writes a JSON line to the ready file, holds them for SECS seconds (or until
 * SIGTERM/SIGINT), closes them all and prints one JSON object.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_HEADERS 16
#define MAX_PIDS    4

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

__attribute__((format(printf, 1, 2), noreturn)) static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "loadgen: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(2);
}

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n);
    if (!q)
        die("%s", "out of memory");
    return q;
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        die("cannot read %s", path);
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 8192;
            buf = xrealloc(buf, cap);
        }
        size_t n = fread(buf + len, 1, cap - len - 1, f);
        if (n == 0)
            break;
        len += n;
    }
    fclose(f);
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
        len--;
    buf[len] = '\0';
    return buf;
}

/* ---- options ---- */

enum check { CHECK_NONE, CHECK_JSONRPC, CHECK_HRANA };

struct pidwatch {
    char name[32];
    int pid;
    unsigned long long ticks0;
    bool is_hwm_reset;
};

struct opts {
    char host[64];
    int port;
    char path[512];
    int conns;
    double duration, warmup;
    const char *headers[MAX_HEADERS];
    int n_headers;
    char *body;
    long rand_lo, rand_hi;
    enum check check;
    const char *expect;
    struct pidwatch pids[MAX_PIDS];
    int n_pids;
    long timeout_ms;
    const char *label;
    /* sse */
    int streams;
    double hold;
    char *init_body;
    const char *ready_file;
    bool is_plain; /* sse --plain 1: idle keep-alive GETs of the URL instead of MCP streams */
};

static void parse_url(struct opts *o, const char *url)
{
    if (strncmp(url, "http://", 7) != 0)
        die("only http:// URLs: %s", url);
    const char *h = url + 7;
    const char *colon = strchr(h, ':');
    const char *slash = strchr(h, '/');
    if (!colon || (slash && slash < colon))
        die("the URL needs an explicit port: %s", url);
    size_t hl = (size_t)(colon - h);
    if (hl >= sizeof(o->host))
        die("host too long: %s", url);
    memcpy(o->host, h, hl);
    o->host[hl] = '\0';
    if (strcmp(o->host, "127.0.0.1") != 0)
        die("this benchmark only talks to 127.0.0.1, not %s", o->host);
    o->port = atoi(colon + 1);
    snprintf(o->path, sizeof(o->path), "%s", slash ? slash : "/");
}

/* ---- HTTP connection state ---- */

enum stage { ST_IDLE, ST_CONNECTING, ST_WRITING, ST_READING, ST_HELD };

struct conn {
    int fd;
    enum stage stage;
    int step; /* sse: 0 initialize, 1 initialized, 2 GET */
    bool is_reused;
    char *wbuf;
    size_t wlen, woff, wcap;
    char *rbuf;
    size_t rlen, rcap;
    size_t hdr_end; /* offset of the body; 0 while headers are incomplete */
    int status;
    long content_length; /* -1 unknown */
    bool is_chunked, is_closing;
    size_t cpos; /* chunked: offset of the next chunk-size line */
    double t_start;
    double t_done; /* run: when the answer's last byte was read */
    char session[128];
};

static int epfd;

static void set_events(struct conn *c, uint32_t ev, bool add)
{
    struct epoll_event e = {.events = ev, .data.ptr = c};
    if (epoll_ctl(epfd, add ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, c->fd, &e) != 0)
        die("epoll_ctl: %s", strerror(errno));
}

static void conn_close(struct conn *c)
{
    if (c->fd >= 0) {
        epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
    }
    c->fd = -1;
    c->stage = ST_IDLE;
}

static int conn_open(struct conn *c, const struct opts *o)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)o->port)};
    inet_pton(AF_INET, o->host, &sa.sin_addr);
    int rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
    if (rc != 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    c->fd = fd;
    c->is_reused = false;
    c->stage = ST_CONNECTING;
    set_events(c, EPOLLOUT, true);
    return 0;
}

static void wbuf_put(struct conn *c, const char *s, size_t n)
{
    if (c->wlen + n + 1 > c->wcap) {
        c->wcap = (c->wlen + n + 1) * 2;
        c->wbuf = xrealloc(c->wbuf, c->wcap);
    }
    memcpy(c->wbuf + c->wlen, s, n);
    c->wlen += n;
}

static void wbuf_str(struct conn *c, const char *s)
{
    wbuf_put(c, s, strlen(s));
}

static unsigned long long seq_counter;
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* Fills c->wbuf with one request; body may be NULL (GET). */
static void build_request(struct conn *c, const struct opts *o, const char *method,
                          const char *body_tmpl, const char *extra1, const char *extra2)
{
    char *body = NULL;
    size_t blen = 0, bcap = 0;
    if (body_tmpl) {
        bcap = strlen(body_tmpl) + 64;
        body = xrealloc(NULL, bcap);
        for (const char *p = body_tmpl; *p;) {
            char num[32];
            const char *rep = NULL;
            size_t skip = 0;
            if (strncmp(p, "{{SEQ}}", 7) == 0) {
                snprintf(num, sizeof(num), "%llu", ++seq_counter);
                rep = num;
                skip = 7;
            } else if (strncmp(p, "{{RAND}}", 8) == 0) {
                long span = o->rand_hi - o->rand_lo + 1;
                snprintf(num, sizeof(num), "%ld",
                         o->rand_lo + (span > 0 ? (long)(rng() % (uint64_t)span) : 0));
                rep = num;
                skip = 8;
            }
            size_t add = rep ? strlen(rep) : 1;
            if (blen + add + 1 > bcap) {
                bcap = (blen + add + 1) * 2;
                body = xrealloc(body, bcap);
            }
            if (rep) {
                memcpy(body + blen, rep, add);
                p += skip;
            } else {
                body[blen] = *p++;
            }
            blen += add;
        }
    }
    char line[1024];
    c->wlen = c->woff = 0;
    snprintf(line, sizeof(line), "%s %s HTTP/1.1\r\nHost: %s:%d\r\n", method, o->path, o->host,
             o->port);
    wbuf_str(c, line);
    for (int i = 0; i < o->n_headers; i++) {
        wbuf_str(c, o->headers[i]);
        wbuf_str(c, "\r\n");
    }
    if (extra1) {
        wbuf_str(c, extra1);
        wbuf_str(c, "\r\n");
    }
    if (extra2) {
        wbuf_str(c, extra2);
        wbuf_str(c, "\r\n");
    }
    if (body) {
        snprintf(line, sizeof(line), "Content-Length: %zu\r\n", blen);
        wbuf_str(c, line);
    }
    wbuf_str(c, "\r\n");
    if (body)
        wbuf_put(c, body, blen);
    free(body);
    c->rlen = 0;
    c->hdr_end = 0;
    c->status = 0;
    c->content_length = -1;
    c->is_chunked = false;
    c->is_closing = false;
    c->cpos = 0;
}

/* Writes what it can; returns 1 when all is written, 0 to wait, -1 on error. */
static int conn_write(struct conn *c)
{
    while (c->woff < c->wlen) {
        ssize_t n = send(c->fd, c->wbuf + c->woff, c->wlen - c->woff, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            return -1;
        }
        c->woff += (size_t)n;
    }
    return 1;
}

static const char *find_header(const char *hdrs, size_t len, const char *name, size_t *vlen)
{
    size_t nl = strlen(name);
    const char *p = hdrs, *end = hdrs + len;
    while (p < end) {
        const char *eol = memmem(p, (size_t)(end - p), "\r\n", 2);
        if (!eol)
            eol = end;
        if ((size_t)(eol - p) > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (v < eol && (*v == ' ' || *v == '\t'))
                v++;
            *vlen = (size_t)(eol - v);
            return v;
        }
        p = eol + 2;
    }
    return NULL;
}

/*
 * Parses what has arrived. Returns 1 when the response is complete, 0 when
 * more is needed, -1 if it is malformed. `eof` says the peer closed.
 */
static int parse_response(struct conn *c, bool eof, bool headers_only)
{
    if (!c->hdr_end) {
        char *e = memmem(c->rbuf, c->rlen, "\r\n\r\n", 4);
        if (!e)
            return eof ? -1 : 0;
        c->hdr_end = (size_t)(e - c->rbuf) + 4;
        if (c->rlen < 12 || strncmp(c->rbuf, "HTTP/1.", 7) != 0)
            return -1;
        c->status = atoi(c->rbuf + 9);
        size_t vl;
        const char *v = find_header(c->rbuf, c->hdr_end, "Content-Length", &vl);
        if (v)
            c->content_length = strtol(v, NULL, 10);
        v = find_header(c->rbuf, c->hdr_end, "Transfer-Encoding", &vl);
        if (v && vl >= 7 && strncasecmp(v, "chunked", 7) == 0)
            c->is_chunked = true;
        v = find_header(c->rbuf, c->hdr_end, "Connection", &vl);
        if (v && vl >= 5 && strncasecmp(v, "close", 5) == 0)
            c->is_closing = true;
        if (strncmp(c->rbuf, "HTTP/1.0", 8) == 0 && !v)
            c->is_closing = true;
        v = find_header(c->rbuf, c->hdr_end, "Mcp-Session-Id", &vl);
        if (v && vl < sizeof(c->session)) {
            memcpy(c->session, v, vl);
            c->session[vl] = '\0';
        }
        c->cpos = c->hdr_end;
    }
    if (headers_only)
        return 1;
    if (c->status == 204 || c->status == 304 || (c->status >= 100 && c->status < 200))
        return 1;
    if (c->is_chunked) {
        for (;;) {
            char *eol = memmem(c->rbuf + c->cpos, c->rlen - c->cpos, "\r\n", 2);
            if (!eol)
                return eof ? -1 : 0;
            unsigned long size = strtoul(c->rbuf + c->cpos, NULL, 16);
            size_t data = (size_t)(eol - c->rbuf) + 2;
            if (size == 0) {
                /* no trailers expected: the final CRLF follows */
                if (c->rlen >= data + 2)
                    return 1;
                return eof ? -1 : 0;
            }
            if (c->rlen < data + size + 2)
                return eof ? -1 : 0;
            c->cpos = data + size + 2;
        }
    }
    if (c->content_length >= 0) {
        if (c->rlen - c->hdr_end >= (size_t)c->content_length)
            return 1;
        return eof ? -1 : 0;
    }
    /* no length: the body ends when the server closes */
    c->is_closing = true;
    return eof ? 1 : 0;
}

/* The body as one piece (chunked bodies are decoded into *tmp). */
static const char *response_body(struct conn *c, size_t *len, char **tmp)
{
    *tmp = NULL;
    if (!c->is_chunked) {
        *len = c->content_length >= 0 ? (size_t)c->content_length : c->rlen - c->hdr_end;
        return c->rbuf + c->hdr_end;
    }
    char *out = xrealloc(NULL, c->rlen + 1);
    size_t olen = 0, pos = c->hdr_end;
    for (;;) {
        char *eol = memmem(c->rbuf + pos, c->rlen - pos, "\r\n", 2);
        if (!eol)
            break;
        unsigned long size = strtoul(c->rbuf + pos, NULL, 16);
        size_t data = (size_t)(eol - c->rbuf) + 2;
        if (size == 0 || data + size > c->rlen)
            break;
        memcpy(out + olen, c->rbuf + data, size);
        olen += size;
        pos = data + size + 2;
    }
    out[olen] = '\0';
    *tmp = out;
    *len = olen;
    return out;
}

/* Reads what is there. Returns 1 complete, 0 wait, -1 error/EOF before completion. */
static int conn_read(struct conn *c, bool headers_only)
{
    for (;;) {
        if (c->rlen + 65536 + 1 > c->rcap) {
            c->rcap = c->rcap ? c->rcap * 2 : 65536 * 2;
            c->rbuf = xrealloc(c->rbuf, c->rcap);
        }
        ssize_t n = recv(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen - 1, 0);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return parse_response(c, false, headers_only);
            return -1;
        }
        if (n == 0)
            return parse_response(c, true, headers_only) == 1 ? 1 : -1;
        c->rlen += (size_t)n;
        c->rbuf[c->rlen] = '\0';
        int r = parse_response(c, false, headers_only);
        if (r != 0)
            return r;
    }
}

/* ---- /proc ---- */

static unsigned long long proc_ticks(int pid)
{
    char path[64], buf[2048];
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    if (!p)
        return 0;
    /* after ") ": state(3) ppid(4) ... utime(14) stime(15) */
    unsigned long long ut = 0, st = 0;
    int field = 2;
    for (char *tok = strtok(p + 1, " "); tok; tok = strtok(NULL, " ")) {
        field++;
        if (field == 14)
            ut = strtoull(tok, NULL, 10);
        if (field == 15) {
            st = strtoull(tok, NULL, 10);
            break;
        }
    }
    return ut + st;
}

static long proc_status_kb(int pid, const char *key)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long v = -1;
    size_t kl = strlen(key);
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, key, kl) == 0 && line[kl] == ':') {
            v = strtol(line + kl + 1, NULL, 10);
            break;
        }
    fclose(f);
    return v;
}

/* Busy time of the whole machine (all CPUs) outside interrupts, in clock ticks, from /proc/stat. */
static unsigned long long machine_busy_ticks(void)
{
    FILE *f = fopen("/proc/stat", "r");
    if (!f)
        return 0;
    unsigned long long v[8] = {0};
    int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
                   &v[4], &v[5], &v[6], &v[7]);
    fclose(f);
    if (n < 8)
        return 0;
    /*
     * user nice system idle iowait irq softirq steal: user, nice, system and
     * steal. Interrupt time is left out: on loopback it is mostly the
     * benchmark's own TCP traffic, and it is not charged to any process.
     */
    return v[0] + v[1] + v[2] + v[7];
}

static bool reset_hwm(int pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/clear_refs", pid);
    int fd = open(path, O_WRONLY);
    if (fd < 0)
        return false;
    bool ok = write(fd, "5", 1) == 1;
    close(fd);
    return ok;
}

static void json_escape(FILE *out, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\')
            fprintf(out, "\\%c", ch);
        else if (ch < 0x20 || ch >= 0x7f)
            fprintf(out, "\\u%04x", ch);
        else
            fputc(ch, out);
    }
}

/* A number with `decimals` decimals for JSON: null when it is not finite. */
static const char *jnum(char *buf, size_t n, int decimals, double v)
{
    if (!isfinite(v))
        return "null";
    snprintf(buf, n, "%.*f", decimals, v);
    return buf;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double percentile(const double *sorted, size_t n, double p)
{
    if (n == 0)
        return NAN;
    double rank = p * (double)(n - 1);
    size_t lo = (size_t)rank;
    size_t hi = lo + 1 < n ? lo + 1 : lo;
    return sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - (double)lo);
}

/* ---- run ---- */

struct stats {
    unsigned long long ok, err_http, err_rpc, err_tool, err_body, err_io, err_timeout;
    unsigned long long bytes;
    double *lat;
    size_t n_lat, cap_lat;
    char first_error[400];
    bool has_first_error;
};

static void note_error(struct stats *s, const char *kind, int status, const char *body, size_t n)
{
    if (s->has_first_error)
        return;
    s->has_first_error = true;
    int k = snprintf(s->first_error, sizeof(s->first_error), "%s status=%d body=", kind, status);
    size_t room = sizeof(s->first_error) - (size_t)k - 1;
    size_t m = n < room ? n : room;
    if (body && m)
        memcpy(s->first_error + k, body, m);
    s->first_error[(size_t)k + (body ? m : 0)] = '\0';
}

/* ---- a minimal JSON walker: enough to read top-level members without a parser ---- */

static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

/* Skips the string whose opening quote is at p; returns the byte after its closing quote, or NULL.
 */
static const char *skip_string(const char *p, const char *end)
{
    const char *from = p + 1;
    for (;;) {
        /* memchr, not a byte loop: answers are mostly long strings (a tool
         * result's text), and the load generator must stay cheap next to the
         * servers it measures. */
        const char *q = memchr(from, '"', (size_t)(end - from));
        if (!q)
            return NULL;
        size_t n_backslashes = 0;
        for (const char *r = q; r > p + 1 && r[-1] == '\\'; r--)
            n_backslashes++;
        if (n_backslashes % 2 == 0)
            return q + 1;
        from = q + 1;
    }
}

/* Bytes that matter while skipping a container: quotes and brackets. */
static bool is_structural[256];

static void init_structural(void)
{
    is_structural['"'] = is_structural['{'] = is_structural['['] = true;
    is_structural['}'] = is_structural[']'] = true;
}

/* Skips the JSON value at p; returns the first byte after it, or NULL if it is cut short. */
static const char *skip_value(const char *p, const char *end)
{
    p = skip_ws(p, end);
    if (p >= end)
        return NULL;
    if (*p == '"')
        return skip_string(p, end);
    if (*p == '{' || *p == '[') {
        int depth = 0;
        while (p < end) {
            unsigned char ch = (unsigned char)*p;
            if (!is_structural[ch]) {
                p++;
            } else if (ch == '"') {
                p = skip_string(p, end);
                if (!p)
                    return NULL;
            } else if (ch == '{' || ch == '[') {
                depth++;
                p++;
            } else {
                if (--depth == 0)
                    return p + 1;
                p++;
            }
        }
        return NULL;
    }
    while (p < end && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\n')
        p++;
    return p;
}

/*
 * Walks the object at p to its end; *found is the value of its member `name`
 * (NULL when absent). Returns the byte after the object, or NULL if it is cut
 * short or not an object; with `is_first_enough`, returns that value as
 * soon as it is found instead.
 */
static const char *walk_object(const char *p, const char *end, const char *name, const char **found,
                               bool is_first_enough)
{
    size_t nl = strlen(name);
    *found = NULL;
    p = skip_ws(p, end);
    if (p >= end || *p != '{')
        return NULL;
    p = skip_ws(p + 1, end);
    if (p < end && *p == '}')
        return p + 1;
    for (;;) {
        p = skip_ws(p, end);
        if (p >= end || *p != '"')
            return NULL;
        const char *key = p + 1;
        p = skip_string(p, end);
        if (!p)
            return NULL;
        bool is_match = (size_t)(p - 1 - key) == nl && memcmp(key, name, nl) == 0;
        p = skip_ws(p, end);
        if (p >= end || *p != ':')
            return NULL;
        const char *v = skip_ws(p + 1, end);
        if (is_match) {
            *found = v;
            if (is_first_enough)
                return v;
        }
        p = skip_value(v, end);
        if (!p)
            return NULL;
        p = skip_ws(p, end);
        if (p < end && *p == '}')
            return p + 1;
        if (p >= end || *p != ',')
            return NULL;
        p++;
    }
}

/* The value of member `name` of the object at p, or NULL; stops at it. */
static const char *member(const char *p, const char *end, const char *name)
{
    const char *v = NULL;
    walk_object(p, end, name, &v, true);
    return v;
}

/*
 * A JSON-RPC answer's top-level "error" and "result" and the result's
 * "isError" (NULL where absent), in one walk of the message: the answers
 * measured here run to megabytes.
 */
static void jsonrpc_members(const char *p, const char *end, const char **error, const char **result,
                            const char **is_error)
{
    *error = *result = *is_error = NULL;
    p = skip_ws(p, end);
    if (p >= end || *p != '{')
        return;
    p++;
    for (;;) {
        p = skip_ws(p, end);
        if (p >= end || *p != '"')
            return;
        const char *key = p + 1;
        p = skip_string(p, end);
        if (!p)
            return;
        size_t kl = (size_t)(p - 1 - key);
        p = skip_ws(p, end);
        if (p >= end || *p != ':')
            return;
        const char *v = skip_ws(p + 1, end);
        if (kl == 5 && memcmp(key, "error", 5) == 0) {
            *error = v;
            p = skip_value(v, end);
        } else if (kl == 6 && memcmp(key, "result", 6) == 0) {
            *result = v;
            p = v < end && *v == '{' ? walk_object(v, end, "isError", is_error, false)
                                     : skip_value(v, end);
        } else {
            p = skip_value(v, end);
        }
        if (!p)
            return;
        p = skip_ws(p, end);
        if (p >= end || *p != ',')
            return;
        p++;
    }
}

/* The JSON message in a body: the body itself, or the last `data:` line of an SSE body. */
static const char *message_start(const char *b, size_t n)
{
    const char *end = b + n, *p = skip_ws(b, end);
    if (p < end && *p == '{')
        return p;
    const char *last = NULL;
    const char *line = b;
    while (line < end) {
        if ((size_t)(end - line) > 5 && memcmp(line, "data:", 5) == 0) {
            const char *data = skip_ws(line + 5, end);
            if (data < end && *data == '{')
                last = data;
        }
        const char *nl = memchr(line, '\n', (size_t)(end - line));
        line = nl ? nl + 1 : end;
    }
    return last ? last : p;
}

static bool starts_with(const char *p, const char *end, const char *lit)
{
    size_t n = strlen(lit);
    return p && (size_t)(end - p) >= n && memcmp(p, lit, n) == 0;
}

/* Classifies one complete response; returns true if it is a success. */
static bool judge(struct stats *s, struct conn *c, const struct opts *o)
{
    char *tmp;
    size_t n;
    const char *b = response_body(c, &n, &tmp);
    const char *end = b + n, *msg = message_start(b, n);
    bool ok = false;
    s->bytes += n;
    /* JSON-RPC: a top-level "error", or result.isError true; Hrana: results[0].type */
    const char *rpc_error = NULL, *result = NULL, *is_error = NULL, *type = NULL;
    if (o->check == CHECK_JSONRPC) {
        jsonrpc_members(msg, end, &rpc_error, &result, &is_error);
    } else if (o->check == CHECK_HRANA) {
        const char *results = member(msg, end, "results");
        const char *first = results ? skip_ws(results + 1, end) : NULL;
        type = first && *results == '[' ? member(first, end, "type") : NULL;
    }
    if (c->status < 200 || c->status > 299) {
        s->err_http++;
        note_error(s, "http", c->status, b, n);
    } else if (rpc_error) {
        s->err_rpc++;
        note_error(s, "jsonrpc-error", c->status, b, n);
    } else if (starts_with(is_error, end, "true")) {
        s->err_tool++;
        note_error(s, "tool-isError", c->status, b, n);
    } else if (starts_with(type, end, "\"error\"")) {
        s->err_rpc++;
        note_error(s, "hrana-error", c->status, b, n);
    } else if ((o->check == CHECK_JSONRPC && !result) ||
               (o->check == CHECK_HRANA && !starts_with(type, end, "\"ok\"")) ||
               (o->expect && !memmem(b, n, o->expect, strlen(o->expect)))) {
        s->err_body++;
        note_error(s, "unexpected-body", c->status, b, n);
    } else {
        ok = true;
    }
    free(tmp);
    return ok;
}

/*
 * Sends the next request on c, connecting first if needed; -1 if the connect
 * failed at once. Its latency starts here, when it is built and about to go
 * out, not when the loop woke: reading and checking the answers handled
 * before it in the same turn are the load generator's time, not the server's.
 */
static int start_request(struct conn *c, const struct opts *o)
{
    build_request(c, o, o->body ? "POST" : "GET", o->body, NULL, NULL);
    c->t_start = now_s();
    if (c->fd < 0) {
        if (conn_open(c, o) != 0) {
            c->stage = ST_IDLE; /* retried by the loop */
            return -1;
        }
        return 0;
    }
    c->is_reused = true;
    c->stage = ST_WRITING;
    int w = conn_write(c);
    if (w == 1) {
        c->stage = ST_READING;
        set_events(c, EPOLLIN, false);
    } else {
        set_events(c, w == 0 ? EPOLLOUT : EPOLLIN, false);
    }
    return 0;
}

static int cmd_run(struct opts *o)
{
    if (o->conns < 1 || o->duration <= 0)
        die("%s", "run needs -c >= 1 and -d > 0");
    epfd = epoll_create1(EPOLL_CLOEXEC);
    struct conn *cs = calloc((size_t)o->conns, sizeof(*cs));
    struct stats s = {0};
    for (int i = 0; i < o->conns; i++)
        cs[i].fd = -1;
    struct epoll_event evs[256];
    double t0 = now_s(), t_warm = t0 + o->warmup, t_end = t_warm + o->duration;
    bool is_measuring = o->warmup <= 0;
    unsigned long long ticks1[MAX_PIDS], machine0 = 0, machine1 = 0;
    long hwm[MAX_PIDS], rss[MAX_PIDS];
    if (is_measuring) {
        for (int i = 0; i < o->n_pids; i++) {
            o->pids[i].is_hwm_reset = reset_hwm(o->pids[i].pid);
            o->pids[i].ticks0 = proc_ticks(o->pids[i].pid);
        }
        machine0 = machine_busy_ticks();
    }
    struct timespec cpu0, cpu1;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu0);
    double io_backoff_until = 0, window = 0;
    bool is_draining = false;
    for (int i = 0; i < o->conns; i++)
        start_request(&cs[i], o);
    for (;;) {
        double t = now_s();
        if (!is_measuring && t >= t_warm) {
            is_measuring = true;
            for (int i = 0; i < o->n_pids; i++) {
                o->pids[i].is_hwm_reset = reset_hwm(o->pids[i].pid);
                o->pids[i].ticks0 = proc_ticks(o->pids[i].pid);
            }
            machine0 = machine_busy_ticks();
            clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu0);
        }
        if (!is_draining && t >= t_end) {
            /* Stop sending; let the answers in flight arrive (uncounted) so
             * that the server is idle when the next measurement starts. */
            is_draining = true;
            window = t - t_warm;
            clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu1);
            machine1 = machine_busy_ticks();
            for (int i = 0; i < o->n_pids; i++) {
                ticks1[i] = proc_ticks(o->pids[i].pid);
                hwm[i] = proc_status_kb(o->pids[i].pid, "VmHWM");
                rss[i] = proc_status_kb(o->pids[i].pid, "VmRSS");
            }
        }
        if (is_draining) {
            int busy = 0;
            for (int i = 0; i < o->conns; i++)
                busy += cs[i].stage != ST_IDLE;
            if (busy == 0 || t - t_end > (double)o->timeout_ms / 1e3)
                break;
        }
        int n = epoll_wait(epfd, evs, 256, 5);
        t = now_s();
        /*
         * First every ready connection is read, each answer's end stamped
         * as its last byte arrives; only then are the complete answers
         * checked and their next requests sent, so no answer's latency
         * holds the checking of others ready at the same time.
         */
        struct conn *done_conns[256];
        int n_done = 0;
        for (int k = 0; k < n; k++) {
            struct conn *c = evs[k].data.ptr;
            bool done = false, failed = false;
            if (c->stage == ST_CONNECTING) {
                int err = 0;
                socklen_t el = sizeof(err);
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
                if (err) {
                    failed = true;
                } else {
                    c->stage = ST_WRITING;
                }
            }
            if (!failed && c->stage == ST_WRITING) {
                int w = conn_write(c);
                if (w < 0)
                    failed = true;
                else if (w == 1) {
                    c->stage = ST_READING;
                    set_events(c, EPOLLIN, false);
                    continue;
                }
            } else if (!failed && c->stage == ST_READING) {
                int r = conn_read(c, false);
                if (r < 0)
                    failed = true;
                else if (r == 1)
                    done = true;
            }
            if (failed) {
                if (is_draining) {
                    conn_close(c);
                    continue;
                }
                if (t >= t_warm) {
                    s.err_io++;
                    note_error(&s, "io", c->status, c->rbuf, c->rlen);
                }
                conn_close(c);
                io_backoff_until = t + 0.001;
                continue;
            }
            if (!done)
                continue;
            if (is_draining) {
                conn_close(c);
                continue;
            }
            c->t_done = now_s(); /* its last byte is read: the latency ends here */
            done_conns[n_done++] = c;
        }
        for (int k = 0; k < n_done; k++) {
            struct conn *c = done_conns[k];
            if (t >= t_warm) {
                if (judge(&s, c, o))
                    s.ok++;
                if (s.n_lat == s.cap_lat) {
                    s.cap_lat = s.cap_lat ? s.cap_lat * 2 : 65536;
                    s.lat = xrealloc(s.lat, s.cap_lat * sizeof(double));
                }
                s.lat[s.n_lat++] = (c->t_done - c->t_start) * 1e3;
            }
            if (c->is_closing)
                conn_close(c);
            start_request(c, o);
        }
        /* reconnect failed connections (after a short pause), and time out stuck requests */
        for (int i = 0; i < o->conns && !is_draining; i++) {
            struct conn *c = &cs[i];
            if (c->stage == ST_IDLE && t >= io_backoff_until) {
                if (start_request(c, o) != 0) {
                    if (t >= t_warm) {
                        s.err_io++;
                        note_error(&s, "connect", 0, strerror(errno), strlen(strerror(errno)));
                    }
                    io_backoff_until = t + 0.001;
                }
            } else if (c->stage != ST_IDLE && (t - c->t_start) * 1e3 > (double)o->timeout_ms) {
                if (t >= t_warm)
                    s.err_timeout++;
                conn_close(c);
            }
        }
    }
    double drain_ms = (now_s() - t_end) * 1e3;
    int abandoned = 0;
    for (int i = 0; i < o->conns; i++) {
        abandoned += cs[i].stage != ST_IDLE;
        conn_close(&cs[i]);
    }

    qsort(s.lat, s.n_lat, sizeof(double), cmp_double);
    unsigned long long errors =
        s.err_http + s.err_rpc + s.err_tool + s.err_body + s.err_io + s.err_timeout;
    double hz = (double)sysconf(_SC_CLK_TCK);
    char b50[32], b99[32], bmax[32];
    printf(
        "{\"label\":\"%s\",\"conns\":%d,\"window_s\":%.3f,\"requests\":%zu,\"ok\":%llu,"
        "\"rps\":%.1f,\"p50_ms\":%s,\"p99_ms\":%s,\"max_ms\":%s,\"errors\":%llu,"
        "\"err_http\":%llu,\"err_rpc\":%llu,\"err_tool\":%llu,\"err_body\":%llu,"
        "\"err_io\":%llu,\"err_timeout\":%llu,\"avg_body_bytes\":%.0f,"
        "\"loadgen_cpu_ms\":%.1f,\"drain_ms\":%.0f,\"abandoned\":%d,\"machine_busy_ms\":%.0f,"
        "\"procs\":{",
        o->label ? o->label : "", o->conns, window, s.n_lat, s.ok, (double)s.n_lat / window,
        jnum(b50, sizeof(b50), 3, percentile(s.lat, s.n_lat, 0.50)),
        jnum(b99, sizeof(b99), 3, percentile(s.lat, s.n_lat, 0.99)),
        jnum(bmax, sizeof(bmax), 3, s.n_lat ? s.lat[s.n_lat - 1] : NAN), errors, s.err_http,
        s.err_rpc, s.err_tool, s.err_body, s.err_io, s.err_timeout,
        s.n_lat ? (double)s.bytes / (double)s.n_lat : 0.0,
        ((double)(cpu1.tv_sec - cpu0.tv_sec) * 1e3 + (double)(cpu1.tv_nsec - cpu0.tv_nsec) / 1e6),
        drain_ms, abandoned, (double)(machine1 - machine0) * 1e3 / hz);
    for (int i = 0; i < o->n_pids; i++) {
        double cpu_ms = (double)(ticks1[i] - o->pids[i].ticks0) * 1e3 / hz;
        char bcpu[32];
        printf("%s\"%s\":{\"pid\":%d,\"cpu_ms\":%.0f,\"cpu_us_per_req\":%s,\"hwm_kb\":%ld,"
               "\"hwm_is_window_peak\":%s,\"rss_kb\":%ld}",
               i ? "," : "", o->pids[i].name, o->pids[i].pid, cpu_ms,
               jnum(bcpu, sizeof(bcpu), 1, s.n_lat ? cpu_ms * 1e3 / (double)s.n_lat : NAN), hwm[i],
               o->pids[i].is_hwm_reset ? "true" : "false", rss[i]);
    }
    printf("},\"first_error\":\"");
    if (s.has_first_error)
        json_escape(stdout, s.first_error, strlen(s.first_error));
    printf("\"}\n");
    free(s.lat);
    for (int i = 0; i < o->conns; i++) {
        free(cs[i].wbuf);
        free(cs[i].rbuf);
    }
    free(cs);
    close(epfd);
    return 0;
}

/* ---- startup ---- */

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    socklen_t sl = sizeof(sa);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &sl) != 0)
        die("%s", "cannot find a free port");
    close(fd);
    return ntohs(sa.sin_port);
}

/* One blocking GET /healthz; true on a 200. */
static bool healthz_ok(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    struct timeval tv = {.tv_sec = 2};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    bool ok = false;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
        char req[128], buf[64];
        int n = snprintf(req, sizeof(req),
                         "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n\r\n",
                         port);
        if (send(fd, req, (size_t)n, MSG_NOSIGNAL) == n) {
            ssize_t r = recv(fd, buf, sizeof(buf) - 1, 0);
            if (r >= 12) {
                buf[r] = '\0';
                ok = strncmp(buf + 9, "200", 3) == 0;
            }
        }
    }
    close(fd);
    return ok;
}

static void stop_child(pid_t pid)
{
    kill(pid, SIGTERM);
    for (int i = 0; i < 500; i++) {
        if (waitpid(pid, NULL, WNOHANG) == pid)
            return;
        usleep(10000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

static int cmd_startup(int runs, long settle_ms, char **argv, int argc)
{
    if (argc < 1 || runs < 1)
        die("%s", "startup needs --runs N -- COMMAND ...");
    double *ms = calloc((size_t)runs, sizeof(double));
    long *rss = calloc((size_t)runs, sizeof(long));
    for (int r = 0; r < runs; r++) {
        int port = free_port();
        char portstr[16];
        snprintf(portstr, sizeof(portstr), "%d", port);
        char **args = calloc((size_t)argc + 1, sizeof(char *));
        for (int i = 0; i < argc; i++) {
            const char *at = strstr(argv[i], "{{PORT}}");
            if (!at) {
                args[i] = argv[i];
                continue;
            }
            size_t len = strlen(argv[i]) + 16;
            args[i] = malloc(len);
            snprintf(args[i], len, "%.*s%s%s", (int)(at - argv[i]), argv[i], portstr, at + 8);
        }
        double t0 = now_s();
        pid_t pid = fork();
        if (pid == 0) {
            int dn = open("/dev/null", O_RDWR);
            dup2(dn, 1);
            dup2(dn, 2);
            execvp(args[0], args);
            _exit(127);
        }
        ms[r] = NAN;
        while (now_s() - t0 < 20) {
            if (healthz_ok(port)) {
                ms[r] = (now_s() - t0) * 1e3;
                break;
            }
            if (waitpid(pid, NULL, WNOHANG) == pid) {
                pid = -1;
                break;
            }
            usleep(250);
        }
        rss[r] = -1;
        if (pid > 0) {
            usleep((useconds_t)settle_ms * 1000);
            rss[r] = proc_status_kb(pid, "VmRSS");
            stop_child(pid);
        }
        for (int i = 0; i < argc; i++)
            if (args[i] != argv[i])
                free(args[i]);
        free(args);
    }
    printf("{\"runs_ms\":[");
    for (int r = 0; r < runs; r++) {
        char b[32];
        printf("%s%s", r ? "," : "", jnum(b, sizeof(b), 2, ms[r]));
    }
    printf("],\"rss_kb\":[");
    for (int r = 0; r < runs; r++)
        printf("%s%ld", r ? "," : "", rss[r]);
    printf("]}\n");
    free(ms);
    free(rss);
    return 0;
}

/* ---- sse ---- */

static volatile sig_atomic_t stop_flag;
static void on_stop(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static const char *sse_init_hdr = "Content-Type: application/json";
static const char *sse_accept_post = "Accept: application/json, text/event-stream";

static void sse_send_step(struct conn *c, const struct opts *o)
{
    char sess[200];
    snprintf(sess, sizeof(sess), "Mcp-Session-Id: %s", c->session);
    struct opts po = *o;
    po.n_headers = 0; /* the step adds its own; the user's -H go on every step below */
    for (int i = 0; i < o->n_headers; i++)
        po.headers[po.n_headers++] = o->headers[i];
    if (c->step == 0) {
        po.headers[po.n_headers++] = sse_init_hdr;
        po.headers[po.n_headers++] = sse_accept_post;
        build_request(c, &po, "POST", o->init_body, NULL, NULL);
    } else if (c->step == 1) {
        po.headers[po.n_headers++] = sse_init_hdr;
        po.headers[po.n_headers++] = sse_accept_post;
        build_request(c, &po, "POST",
                      "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}", sess,
                      "MCP-Protocol-Version: 2025-11-25");
    } else if (o->is_plain) {
        build_request(c, &po, "GET", NULL, NULL, NULL);
    } else {
        po.headers[po.n_headers++] = "Accept: text/event-stream";
        build_request(c, &po, "GET", NULL, sess, "MCP-Protocol-Version: 2025-11-25");
    }
    c->stage = ST_WRITING;
    set_events(c, EPOLLOUT, false);
}

struct sse_tally {
    int held, failed, closed_by_server;
    int get_status[600];
    int other_status;
    char first_error[300];
};

/* Advances one connection; returns 1 when it reached held, -1 when it failed, 0 otherwise. */
static int sse_event(struct conn *c, const struct opts *o, struct sse_tally *t)
{
    if (c->stage == ST_CONNECTING) {
        int err = 0;
        socklen_t el = sizeof(err);
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err) {
            snprintf(t->first_error, sizeof(t->first_error), "connect: %s", strerror(err));
            return -1;
        }
        if (o->is_plain)
            c->step = 2;
        sse_send_step(c, o);
        return 0;
    }
    if (c->stage == ST_WRITING) {
        int w = conn_write(c);
        if (w < 0)
            return -1;
        if (w == 1) {
            c->stage = ST_READING;
            set_events(c, EPOLLIN, false);
        }
        return 0;
    }
    if (c->stage == ST_HELD) {
        char buf[4096];
        for (;;) {
            ssize_t n = recv(c->fd, buf, sizeof(buf), 0);
            if (n > 0)
                continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                return 0;
            t->closed_by_server++;
            t->held--;
            conn_close(c);
            return 0;
        }
    }
    int r = conn_read(c, c->step == 2);
    if (r == 0)
        return 0;
    if (r < 0) {
        if (!t->first_error[0])
            snprintf(t->first_error, sizeof(t->first_error), "step %d: connection closed", c->step);
        return -1;
    }
    if (c->step < 2) {
        bool good =
            c->step == 0 ? c->status == 200 && c->session[0] : c->status >= 200 && c->status < 300;
        if (!good) {
            if (!t->first_error[0])
                snprintf(t->first_error, sizeof(t->first_error), "step %d: status %d", c->step,
                         c->status);
            return -1;
        }
        if (c->is_closing) {
            snprintf(t->first_error, sizeof(t->first_error), "server closed after step %d",
                     c->step);
            return -1;
        }
        c->step++;
        sse_send_step(c, o);
        return 0;
    }
    if (c->status >= 0 && c->status < 600)
        t->get_status[c->status]++;
    size_t vl;
    const char *ct = find_header(c->rbuf, c->hdr_end, "Content-Type", &vl);
    bool is_stream = ct && vl >= 17 && strncasecmp(ct, "text/event-stream", 17) == 0;
    if (c->status != 200 || (!is_stream && !o->is_plain)) {
        if (!t->first_error[0])
            snprintf(t->first_error, sizeof(t->first_error), "GET: status %d, content-type %.*s",
                     c->status, ct ? (int)(vl < 60 ? vl : 60) : 4, ct ? ct : "none");
        return -1;
    }
    c->stage = ST_HELD;
    c->rlen = 0;
    return 1;
}

static int cmd_sse(struct opts *o)
{
    if (o->streams < 1 || (!o->init_body && !o->is_plain) || !o->ready_file)
        die("%s", "sse needs -n, --init-body-file and --ready-file");
    signal(SIGTERM, on_stop);
    signal(SIGINT, on_stop);
    epfd = epoll_create1(EPOLL_CLOEXEC);
    struct sse_tally t = {0};
    int total = o->streams + 1;
    struct conn *cs = calloc((size_t)total, sizeof(*cs));
    for (int i = 0; i < total; i++)
        cs[i].fd = -1;
    struct epoll_event evs[512];

    /* probe: one session */
    double tp = now_s();
    if (conn_open(&cs[0], o) != 0)
        die("%s", "cannot connect");
    int probe = 0;
    while (probe == 0 && now_s() - tp < 10) {
        int n = epoll_wait(epfd, evs, 512, 50);
        for (int k = 0; k < n && probe == 0; k++)
            probe = sse_event(evs[k].data.ptr, o, &t);
    }
    if (probe != 1) {
        int st = cs[0].step == 2 ? cs[0].status : -1;
        printf("{\"supported\":false,\"probe_step\":%d,\"get_status\":%d,\"detail\":\"", cs[0].step,
               st);
        json_escape(stdout, t.first_error, strlen(t.first_error));
        printf("\"}\n");
        FILE *rf = fopen(o->ready_file, "w");
        if (rf) {
            fprintf(rf, "{\"supported\":false,\"get_status\":%d}\n", st);
            fclose(rf);
        }
        return 0;
    }
    conn_close(&cs[0]); /* the probe stream is not one of the N */
    memset(t.get_status, 0, sizeof(t.get_status));

    /* open N, at most 128 in setup at once */
    double t0 = now_s();
    int next = 1, in_setup = 0;
    while ((next < total || in_setup > 0) && now_s() - t0 < 120 && !stop_flag) {
        while (next < total && in_setup < 128) {
            if (conn_open(&cs[next], o) != 0) {
                t.failed++;
                if (!t.first_error[0])
                    snprintf(t.first_error, sizeof(t.first_error), "socket/connect: %s",
                             strerror(errno));
            } else {
                in_setup++;
            }
            next++;
        }
        int n = epoll_wait(epfd, evs, 512, 50);
        for (int k = 0; k < n; k++) {
            struct conn *c = evs[k].data.ptr;
            bool was_held = c->stage == ST_HELD;
            int r = sse_event(c, o, &t);
            if (was_held)
                continue;
            if (r == 1) {
                t.held++;
                in_setup--;
            } else if (r < 0) {
                t.failed++;
                in_setup--;
                conn_close(c);
            }
        }
    }
    double setup_ms = (now_s() - t0) * 1e3;
    FILE *rf = fopen(o->ready_file, "w");
    if (rf) {
        fprintf(rf, "{\"supported\":true,\"held\":%d,\"failed\":%d,\"setup_ms\":%.0f}\n", t.held,
                t.failed, setup_ms);
        fclose(rf);
    }
    /* hold */
    double th = now_s();
    while (!stop_flag && now_s() - th < o->hold) {
        int n = epoll_wait(epfd, evs, 512, 100);
        for (int k = 0; k < n; k++) {
            struct conn *c = evs[k].data.ptr;
            if (c->stage == ST_HELD)
                sse_event(c, o, &t);
        }
    }
    int still_open = 0;
    for (int i = 1; i < total; i++)
        if (cs[i].stage == ST_HELD)
            still_open++;
    double tc = now_s();
    for (int i = 0; i < total; i++) {
        conn_close(&cs[i]);
        free(cs[i].wbuf);
        free(cs[i].rbuf);
    }
    double close_ms = (now_s() - tc) * 1e3;
    printf("{\"supported\":true,\"requested\":%d,\"held\":%d,\"failed\":%d,"
           "\"closed_by_server\":%d,\"still_open_at_end\":%d,\"setup_ms\":%.0f,"
           "\"held_s\":%.1f,\"close_ms\":%.1f,\"first_error\":\"",
           o->streams, t.held + t.closed_by_server, t.failed, t.closed_by_server, still_open,
           setup_ms, now_s() - th, close_ms);
    json_escape(stdout, t.first_error, strlen(t.first_error));
    printf("\"}\n");
    free(cs);
    return 0;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    init_structural();
    if (argc < 2)
        die("%s", "usage: loadgen run|startup|sse ... (see the comment at the top of loadgen.c)");
    struct opts o = {.conns = 1,
                     .duration = 5,
                     .warmup = 1,
                     .timeout_ms = 30000,
                     .check = CHECK_NONE,
                     .rand_lo = 1,
                     .rand_hi = 1};
    const char *cmd = argv[1];
    int runs = 1;
    long settle_ms = 300;
    rng_state ^= (uint64_t)getpid() * 0x2545F4914F6CDD1Dull;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--") == 0) {
            if (strcmp(cmd, "startup") != 0)
                die("%s", "-- is only for startup");
            return cmd_startup(runs, settle_ms, argv + i + 1, argc - i - 1);
        }
        if (!v)
            die("%s needs a value", a);
        i++;
        if (strcmp(a, "--url") == 0)
            parse_url(&o, v);
        else if (strcmp(a, "-c") == 0)
            o.conns = atoi(v);
        else if (strcmp(a, "-d") == 0)
            o.duration = atof(v);
        else if (strcmp(a, "-w") == 0)
            o.warmup = atof(v);
        else if (strcmp(a, "-H") == 0) {
            if (o.n_headers >= MAX_HEADERS - 4)
                die("%s", "too many headers");
            o.headers[o.n_headers++] = v;
        } else if (strcmp(a, "--body-file") == 0)
            o.body = read_file(v);
        else if (strcmp(a, "--init-body-file") == 0)
            o.init_body = read_file(v);
        else if (strcmp(a, "--rand") == 0) {
            if (sscanf(v, "%ld:%ld", &o.rand_lo, &o.rand_hi) != 2)
                die("--rand LO:HI, not %s", v);
        } else if (strcmp(a, "--check") == 0)
            o.check = strcmp(v, "jsonrpc") == 0 ? CHECK_JSONRPC
                      : strcmp(v, "hrana") == 0 ? CHECK_HRANA
                                                : CHECK_NONE;
        else if (strcmp(a, "--expect") == 0)
            o.expect = v;
        else if (strcmp(a, "--pid") == 0) {
            const char *eq = strchr(v, '=');
            if (!eq || o.n_pids >= MAX_PIDS)
                die("--pid NAME=PID, not %s", v);
            struct pidwatch *p = &o.pids[o.n_pids++];
            snprintf(p->name, sizeof(p->name), "%.*s", (int)(eq - v), v);
            p->pid = atoi(eq + 1);
        } else if (strcmp(a, "--timeout-ms") == 0)
            o.timeout_ms = atol(v);
        else if (strcmp(a, "--label") == 0)
            o.label = v;
        else if (strcmp(a, "-n") == 0)
            o.streams = atoi(v);
        else if (strcmp(a, "--hold") == 0)
            o.hold = atof(v);
        else if (strcmp(a, "--plain") == 0)
            o.is_plain = atoi(v) != 0;
        else if (strcmp(a, "--ready-file") == 0)
            o.ready_file = v;
        else if (strcmp(a, "--runs") == 0)
            runs = atoi(v);
        else if (strcmp(a, "--settle-ms") == 0)
            settle_ms = atol(v);
        else
            die("unknown option %s", a);
    }
    if (strcmp(cmd, "freeport") == 0) {
        printf("%d\n", free_port());
        return 0;
    }
    if (strcmp(cmd, "run") == 0)
        return cmd_run(&o);
    if (strcmp(cmd, "sse") == 0)
        return cmd_sse(&o);
    die("unknown command %s", cmd);
    return 2;
}
