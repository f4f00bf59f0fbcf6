/*
 * The admin command line: `user add|list|revoke|rotate`, `keys
 * rotate|status`, `store check`. Runs in the foreground on the caller's
 * thread; secrets come from files or stdin, never argv.
 */
#ifndef TM_ADMIN_H
#define TM_ADMIN_H

#include "config.h"

/*
 * Runs `user <sub> ...`; argv[0] is the subcommand. Flags the config table
 * knows (e.g. --data-dir) are already applied to `cfg` and removed.
 * Returns the process exit code: 0 done, 1 failed, 2 usage error.
 */
int admin_user(const struct config *cfg, int argc, char **argv);

/* Runs `keys rotate|status`; the same conventions. status exits 1 if records cannot be opened. */
int admin_keys(const struct config *cfg, int argc, char **argv);

/* Runs `store check`; exits 1 when it finds a problem. */
int admin_store(const struct config *cfg, int argc, char **argv);

#endif
