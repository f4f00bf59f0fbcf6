/*
 * Checking a user's credentials with Turso before they are stored, the same
 * way for `user add` and the signup page: a database URL and token must
 * answer a `SELECT 1` pipeline; a Platform API token must list the
 * organizations (`GET <api_url>/v1/organizations`) and the organization
 * given must be among them. Both are checked when both are given.
 * Asynchronous on the transport, with a blocking form for the command line.
 * It knows nothing of HTTP serving or of the store.
 */
#ifndef TM_CREDCHECK_H
#define TM_CREDCHECK_H

#include "creds.h"
#include "tm_err.h"
#include "turso_transport.h"

enum credcheck_verdict {
    CREDCHECK_OK,          /* Turso accepted every credential given */
    CREDCHECK_REFUSED,     /* Turso refused a token (401/403), or the organization is not its */
    CREDCHECK_UNREACHABLE, /* no answer: network failure or timeout */
    CREDCHECK_FAILED,      /* an answer, but not a good one (bad URL, SELECT 1 failed, 5xx) */
};

struct credcheck_result {
    enum credcheck_verdict verdict;
    const char *what;  /* "database" or "platform": which check decided; static */
    char message[512]; /* for a person; never a secret */
};

/* Runs on a transport callback thread; `r` is valid only during the call. */
typedef void (*credcheck_done_fn)(const struct credcheck_result *r, void *ctx);

/*
 * Starts the checks for `c` (borrowed: it must stay valid until `done`
 * runs). `api_url` is copied. On TM_OK `done` runs exactly once, on the
 * transport callback thread, never inside this call; on any other return it never
 * runs. TM_ERR_INVALID when `c` has neither a database URL nor a Platform
 * token (or a Platform token without an organization).
 * Thread: any.
 */
enum tm_err credcheck_start(struct turso_transport *t, const char *api_url, const struct creds *c,
                            long timeout_ms, credcheck_done_fn done, void *ctx);

/*
 * Blocking form for the command line: fills *out and returns TM_OK when the
 * checks ran (whatever their verdict). Never call it on a transport callback thread.
 */
enum tm_err credcheck_run(struct turso_transport *t, const char *api_url, const struct creds *c,
                          long timeout_ms, struct credcheck_result *out);

#endif
