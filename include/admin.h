/*
 * The admin command line: `user add|list|revoke|rotate`, `keys
 * rotate|status`, `store check`, `keygen`, `healthcheck`, and opening the
 * store as the settings say. Runs in the foreground on the caller's
 * thread; secrets come from files or stdin, never argv.
 */
#ifndef TM_ADMIN_H
#define TM_ADMIN_H

#include <stdbool.h>

#include "config.h"
#include "store.h"
#include "tm_err.h"

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

/*
 * Opens the store of cfg->data_dir with the master key of
 * cfg->master_key_file, or of the data directory when that is unset
 * (see store_open). On failure tells the operator on stderr what to do,
 * and returns store_open's code.
 */
enum tm_err admin_open_store(const struct config *cfg, struct store **out, bool *created_key);

/* `keygen`: prints a new master key in the key file format to stdout. Exit code. */
int admin_keygen(int argc, char **argv);

/*
 * `healthcheck`: GET /healthz on the listen address (a wildcard bind asked
 * on loopback), within a few seconds. Exit code 0 when it answers 200,
 * 1 when not, 2 on a usage error. For Docker's HEALTHCHECK.
 */
int admin_healthcheck(const struct config *cfg, int argc, char **argv);

#endif
