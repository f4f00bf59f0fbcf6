/*
 * The HTTP front: the libmicrohttpd daemon, the route table, body limits,
 * and authentication of the URL token (or Bearer header) against the store.
 * MCP semantics are mcp.c's; this file only moves bytes and decides who
 * is asking. Runs on libmicrohttpd's thread pool; a request waiting on
 * Turso is suspended, never holding a thread.
 */
#ifndef TM_HTTP_H
#define TM_HTTP_H

#include <stddef.h>

#include "config.h"
#include "mcp.h"
#include "store.h"
#include "tm_err.h"

struct http_server;

/* Binds and starts serving. `cfg`, `store` and `mcp` are borrowed and must outlive the server. */
enum tm_err http_server_start(const struct config *cfg, struct store *store, struct mcp_server *mcp,
                              struct http_server **out);

/* The port actually bound (useful with port 0). */
int http_server_port(const struct http_server *h);

/* Stops accepting new connections; requests in flight go on. */
void http_server_quiesce(struct http_server *h);

/* Ends every SSE stream once what it holds is written (before stopping). */
void http_server_end_streams(struct http_server *h);

/* SSE streams open now. */
size_t http_server_open_streams(struct http_server *h);

/* Stops the daemon and frees everything; clears *h; accepts NULL. */
void http_server_stop(struct http_server **h);

#endif
