/*
 * Metrics in the Prometheus text format. Every counter is an atomic in a
 * fixed table, so recording from the HTTP and transport threads takes no
 * lock; rendering reads the atomics without stopping anyone.
 */
#include "metrics.h"

#include "buf.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const rpc_methods[] = {"initialize",
                                          "ping",
                                          "tools/list",
                                          "tools/call",
                                          "logging/setLevel",
                                          "notifications/initialized",
                                          "notifications/cancelled",
                                          "other"};
#define N_RPC (sizeof(rpc_methods) / sizeof(rpc_methods[0]))
static atomic_ullong rpc_count[N_RPC];

static atomic_ullong http_count[6]; /* by status class: 1xx..5xx; [0] other */

/* Latency buckets in milliseconds, shared by tool calls and upstream requests. */
static const double buckets_ms[] = {1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000};
#define N_BUCKETS (sizeof(buckets_ms) / sizeof(buckets_ms[0]))

struct histogram {
    atomic_ullong le[N_BUCKETS]; /* cumulative when rendered, per-bucket here */
    atomic_ullong count;
    atomic_ullong sum_us;
};

static const char *const tool_names[] = {"turso_query",
                                         "turso_batch_execute",
                                         "turso_schema_inspector",
                                         "turso_database_manager",
                                         "turso_analytics",
                                         "other"};
#define N_TOOLS (sizeof(tool_names) / sizeof(tool_names[0]))
static const char *const outcomes[] = {"ok", "error", "cancelled"};
#define N_OUTCOMES (sizeof(outcomes) / sizeof(outcomes[0]))
static atomic_ullong tool_count[N_TOOLS][N_OUTCOMES];
static struct histogram tool_latency[N_TOOLS];

static atomic_ullong upstream_count[2]; /* [0] ok, [1] error */
static struct histogram upstream_latency;
static atomic_ullong rate_limited;

static size_t index_of(const char *const *names, size_t n, const char *name)
{
    for (size_t i = 0; name && i + 1 < n; i++)
        if (strcmp(names[i], name) == 0)
            return i;
    return n - 1;
}

static void observe(struct histogram *h, double ms)
{
    for (size_t i = 0; i < N_BUCKETS; i++) {
        if (ms <= buckets_ms[i]) {
            atomic_fetch_add(&h->le[i], 1);
            break;
        }
    }
    atomic_fetch_add(&h->count, 1);
    atomic_fetch_add(&h->sum_us, (unsigned long long)(ms * 1000.0));
}

void metrics_rpc(const char *method)
{
    atomic_fetch_add(&rpc_count[index_of(rpc_methods, N_RPC, method)], 1);
}

void metrics_http(int status)
{
    int cls = status / 100;
    atomic_fetch_add(&http_count[cls >= 1 && cls <= 5 ? cls : 0], 1);
}

void metrics_tool(const char *tool, const char *outcome, double ms)
{
    size_t t = index_of(tool_names, N_TOOLS, tool);
    size_t o = 0;
    while (o < N_OUTCOMES && strcmp(outcomes[o], outcome) != 0)
        o++;
    if (o == N_OUTCOMES)
        o = 1;
    atomic_fetch_add(&tool_count[t][o], 1);
    observe(&tool_latency[t], ms);
}

void metrics_upstream(bool is_error, double ms)
{
    atomic_fetch_add(&upstream_count[is_error ? 1 : 0], 1);
    observe(&upstream_latency, ms);
}

void metrics_rate_limited(void)
{
    atomic_fetch_add(&rate_limited, 1);
}

static void put_histogram(struct buf *b, const char *name, const char *labels, struct histogram *h)
{
    unsigned long long cumulative = 0;
    for (size_t i = 0; i < N_BUCKETS; i++) {
        cumulative += atomic_load(&h->le[i]);
        buf_addf(b, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, *labels ? "," : "",
                 buckets_ms[i] / 1000.0, cumulative);
    }
    unsigned long long count = atomic_load(&h->count);
    buf_addf(b, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, *labels ? "," : "", count);
    const char *open = *labels ? "{" : "", *close = *labels ? "}" : "";
    buf_addf(b, "%s_sum%s%s%s %.6f\n", name, open, labels, close,
             (double)atomic_load(&h->sum_us) / 1e6);
    buf_addf(b, "%s_count%s%s%s %llu\n", name, open, labels, close, count);
}

char *metrics_render(const struct metrics_gauges *g)
{
    struct buf b = {0};
    buf_addf(&b, "# HELP turso_mcp_rpc_messages_total JSON-RPC messages handled, by method.\n"
                 "# TYPE turso_mcp_rpc_messages_total counter\n");
    for (size_t i = 0; i < N_RPC; i++)
        buf_addf(&b, "turso_mcp_rpc_messages_total{method=\"%s\"} %llu\n", rpc_methods[i],
                 atomic_load(&rpc_count[i]));
    buf_addf(&b, "# HELP turso_mcp_http_responses_total HTTP responses, by status class.\n"
                 "# TYPE turso_mcp_http_responses_total counter\n");
    static const char *const classes[] = {"other", "1xx", "2xx", "3xx", "4xx", "5xx"};
    for (size_t i = 0; i < 6; i++)
        buf_addf(&b, "turso_mcp_http_responses_total{code=\"%s\"} %llu\n", classes[i],
                 atomic_load(&http_count[i]));
    buf_addf(&b, "# HELP turso_mcp_tool_calls_total Tool calls, by tool and outcome.\n"
                 "# TYPE turso_mcp_tool_calls_total counter\n");
    for (size_t t = 0; t < N_TOOLS; t++)
        for (size_t o = 0; o < N_OUTCOMES; o++)
            buf_addf(&b, "turso_mcp_tool_calls_total{tool=\"%s\",outcome=\"%s\"} %llu\n",
                     tool_names[t], outcomes[o], atomic_load(&tool_count[t][o]));
    buf_addf(&b, "# HELP turso_mcp_tool_call_duration_seconds Tool call latency.\n"
                 "# TYPE turso_mcp_tool_call_duration_seconds histogram\n");
    for (size_t t = 0; t < N_TOOLS; t++) {
        char labels[64];
        snprintf(labels, sizeof(labels), "tool=\"%s\"", tool_names[t]);
        put_histogram(&b, "turso_mcp_tool_call_duration_seconds", labels, &tool_latency[t]);
    }
    buf_addf(&b,
             "# HELP turso_mcp_upstream_requests_total Requests to Turso, by result.\n"
             "# TYPE turso_mcp_upstream_requests_total counter\n"
             "turso_mcp_upstream_requests_total{result=\"ok\"} %llu\n"
             "turso_mcp_upstream_requests_total{result=\"error\"} %llu\n",
             atomic_load(&upstream_count[0]), atomic_load(&upstream_count[1]));
    buf_addf(&b, "# HELP turso_mcp_upstream_duration_seconds Latency of requests to Turso.\n"
                 "# TYPE turso_mcp_upstream_duration_seconds histogram\n");
    put_histogram(&b, "turso_mcp_upstream_duration_seconds", "", &upstream_latency);
    buf_addf(&b,
             "# HELP turso_mcp_rate_limited_total Requests refused by a per-URL rate limit.\n"
             "# TYPE turso_mcp_rate_limited_total counter\n"
             "turso_mcp_rate_limited_total %llu\n",
             atomic_load(&rate_limited));
    buf_addf(&b,
             "# HELP turso_mcp_sessions Open MCP sessions.\n# TYPE turso_mcp_sessions gauge\n"
             "turso_mcp_sessions %zu\n",
             g->sessions);
    buf_addf(&b,
             "# HELP turso_mcp_sse_streams Open SSE streams.\n# TYPE turso_mcp_sse_streams gauge\n"
             "turso_mcp_sse_streams %zu\n",
             g->streams);
    buf_addf(&b,
             "# HELP turso_mcp_tool_calls_in_flight Tool calls running.\n"
             "# TYPE turso_mcp_tool_calls_in_flight gauge\n"
             "turso_mcp_tool_calls_in_flight %zu\n",
             g->calls_in_flight);
    if (g->store_bytes >= 0)
        buf_addf(&b,
                 "# HELP turso_mcp_store_bytes Size of the user store on disk.\n"
                 "# TYPE turso_mcp_store_bytes gauge\n"
                 "turso_mcp_store_bytes %lld\n",
                 g->store_bytes);
    return buf_take(&b, NULL); /* NULL if memory ran out on the way */
}
