/*
 * Per-URL rate limits: a token bucket of requests per second with a burst,
 * and a cap on calls running at once. Keyed by the user's public id.
 * Thread-safe (one mutex; the table is small and each check is O(1)).
 */
#ifndef TM_RATELIMIT_H
#define TM_RATELIMIT_H

#include <stdbool.h>

#include "tm_err.h"

struct ratelimit;

/* rps <= 0 or max_concurrent <= 0 turns that limit off. */
enum tm_err ratelimit_create(double rps, double burst, long max_concurrent, struct ratelimit **out);
void ratelimit_destroy(struct ratelimit **rl);

/*
 * Admits one request of `user_id`: true, and it counts as running until
 * ratelimit_leave; false with *retry_after_s set (whole seconds, >= 1).
 */
bool ratelimit_enter(struct ratelimit *rl, const char *user_id, int *retry_after_s);

/* The request admitted by ratelimit_enter has finished. */
void ratelimit_leave(struct ratelimit *rl, const char *user_id);

#endif
