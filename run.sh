#!/usr/bin/env bash
# Sets up and runs turso-mcp on this machine: installs what the build needs
# (Debian/Ubuntu packages), builds with CMake, and serves on 127.0.0.1:8787
# with the embedded store in ./data (a master key is generated on first start).
# Extra arguments go to `turso-mcp serve`, e.g. ./run.sh --listen 127.0.0.1:9000
#
#   ./run.sh --demo [settings...]   no Turso account needed: the Turso engine
#                                   from npm serves a sample database on
#                                   127.0.0.1, with a demo user in front of it
#                                   (scripts/demo.sh; Ctrl-C stops it)
#
# Environment: TM_BIN runs that binary instead of building build/turso-mcp;
# TM_DATA_DIR is passed as --data-dir; the server reads TURSO_MCP_* settings.
set -euo pipefail
if [[ -n "${TM_BIN:-}" && "$TM_BIN" != /* ]]; then TM_BIN="$PWD/$TM_BIN"; fi
cd "$(dirname "$0")"

is_demo=0
if [[ "${1:-}" == "--demo" ]]; then
  is_demo=1
  shift
fi

scripts/install-deps.sh
if [[ -n "${TM_BIN:-}" ]]; then
  bin="$TM_BIN"
else
  cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build build -j"$(nproc)" >/dev/null
  bin=build/turso-mcp
fi

if ((is_demo)); then
  exec scripts/demo.sh "$bin" "$@"
fi
echo "No Turso account yet? ./run.sh --demo serves a sample database to try it with." >&2
if [[ -n "${TM_DATA_DIR:-}" ]]; then
  set -- --data-dir "$TM_DATA_DIR" "$@"
fi
exec "$bin" serve "$@"
