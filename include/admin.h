/*
 * The admin command line: `user add|list|revoke`. Runs in the foreground
 * on the caller's thread; secrets come from files or stdin, never argv.
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

#endif
