#!/usr/bin/env bash
# Sets up and runs turso-mcp on this machine: installs what the build needs
# (Debian/Ubuntu packages), builds with CMake, and serves on 127.0.0.1:8787
# with the embedded store in ./data (a master key is generated on first start).
# Extra arguments go to `turso-mcp serve`, e.g. ./run.sh --listen 127.0.0.1:9000
set -euo pipefail
cd "$(dirname "$0")"
scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
exec build/turso-mcp serve --data-dir "${TM_DATA_DIR:-./data}" "$@"
