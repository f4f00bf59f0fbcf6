/*
 * Server-sent event streams on libmicrohttpd: a stream is an MHD response
 * read from a buffer that any thread may append to. When the buffer is
 * empty the connection is suspended (no thread waits, no busy loop) and an
 * append resumes it. A hub keeps every open stream alive with comment
 * lines, which is also how a client that went away is noticed.
 */
#ifndef TM_SSE_H
#define TM_SSE_H

#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>

#include "tm_err.h"

struct sse_hub;
struct sse_stream;

/* Runs when the stream's connection is gone (client left, or the stream ended). Any thread. */
typedef void (*sse_gone_fn)(void *ctx);

/* Starts the keep-alive thread; a comment line goes to every stream each keepalive_ms. */
enum tm_err sse_hub_start(long keepalive_ms, size_t max_buffer, struct sse_hub **out);

/*
 * Ends every stream (each finishes once drained) and stops the keep-alive
 * thread. Call before stopping the HTTP daemon, so no connection stays
 * suspended.
 */
void sse_hub_end_all(struct sse_hub *h);

/* Frees the hub once the HTTP daemon has stopped; clears *h; accepts NULL. */
void sse_hub_destroy(struct sse_hub **h);

/* Streams open now. */
size_t sse_hub_count(struct sse_hub *h);

/*
 * Creates a stream and the response that reads it. The caller adds its
 * headers, queues *resp on `conn` and destroys its reference as usual; the
 * stream then lives until the connection ends. *out is a reference for the
 * caller (release it with sse_stream_release), or pass NULL for none.
 * `id_prefix` names the stream in event ids (`<prefix>_<n>`); may be NULL.
 */
enum tm_err sse_stream_create(struct sse_hub *hub, struct MHD_Connection *conn,
                              const char *id_prefix, struct sse_stream **out,
                              struct MHD_Response **resp);

/* Calls fn(ctx) once when the connection is gone; set it before queueing. */
void sse_stream_on_gone(struct sse_stream *s, sse_gone_fn fn, void *ctx);

/*
 * Appends one event: `event:` line when `event` is not NULL, an `id:` line
 * when `with_id`, and `data` (one line, no newline inside) as its data.
 * Returns false if the stream is gone or its client is too far behind (then
 * the stream is ended).
 */
bool sse_stream_send(struct sse_stream *s, const char *event, bool with_id, const char *data,
                     size_t len);

/* Appends raw text (comments, `retry:` lines, priming events). Same return as sse_stream_send. */
bool sse_stream_send_raw(struct sse_stream *s, const char *text, size_t len);

/* Ends the stream once what was sent has been written. */
void sse_stream_end(struct sse_stream *s);

/* The id of the last event sent with an id ("" if none); copied into out. */
void sse_stream_last_id(struct sse_stream *s, char *out, size_t out_len);

bool sse_stream_is_gone(struct sse_stream *s);

/* Drops the caller's reference; clears *s; accepts NULL. */
void sse_stream_release(struct sse_stream **s);

#endif
