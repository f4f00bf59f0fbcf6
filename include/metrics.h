/*
 * Process-wide counters and histograms, rendered in the Prometheus text
 * format at /metrics. Recording is lock-free (atomics) from any thread;
 * label sets are small and fixed (JSON-RPC methods, tool names, outcomes),
 * so each is a slot found by name in a short table.
 */
#ifndef TM_METRICS_H
#define TM_METRICS_H

#include <stdbool.h>
#include <stddef.h>

/* A JSON-RPC message handled, by method (unknown methods count as "other"). */
void metrics_rpc(const char *method);

/* An HTTP request answered, by status class. */
void metrics_http(int status);

/* A tool call finished: outcome "ok", "error" or "cancelled", and how long it took. */
void metrics_tool(const char *tool, const char *outcome, double ms);

/* A request to Turso ended: `is_error` when no 2xx answer came; how long it took. */
void metrics_upstream(bool is_error, double ms);

/* A request refused by a rate limit. */
void metrics_rate_limited(void);

/* Gauges read when rendering. */
struct metrics_gauges {
    size_t sessions;
    size_t streams;
    size_t calls_in_flight;
    long long store_bytes; /* -1 if unknown */
};

/* The exposition text (malloc'd, caller frees), or NULL on OOM. */
char *metrics_render(const struct metrics_gauges *g);

#endif
