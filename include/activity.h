/*
 * The per-URL activity log, buffered: tool calls finish on the transport
 * thread, which must never wait on a disk write, so entries are queued in
 * memory and written to the store in batches (one transaction each) by a
 * thread of this module, at least once a second. Readers call
 * activity_flush() first so that what a page shows is current.
 */
#ifndef TM_ACTIVITY_H
#define TM_ACTIVITY_H

#include "store.h"
#include "tm_err.h"

/* Starts the writer for `store` (borrowed; outlives activity_stop). */
enum tm_err activity_start(struct store *store);

/* Writes what is queued and stops the writer. Accepts being called when not started. */
void activity_stop(void);

/*
 * Queues an entry (names and outcome only; never SQL, arguments or
 * secrets). Any thread; O(1); drops the entry when the queue is full or
 * the writer is not running.
 */
void activity_note(const char *user_id, const char *tool, const char *database,
                   const char *outcome);

/* Writes what is queued now, on the caller's thread. */
void activity_flush(void);

#endif
