#!/usr/bin/env bash
# Installs what building (and, with --with-test-tools, testing) turso-mcp
# needs on Debian 12. Idempotent: installs only what is missing, runs
# `apt-get update` only when something is, and prints nothing on success.
#
#   scripts/install-deps.sh                    build dependencies (+ node/npm)
#   scripts/install-deps.sh --with-test-tools  + valgrind, clang, clang-format, chromium, tests/node_modules
set -euo pipefail

with_test_tools=0
for arg in "$@"; do
  case "$arg" in
    --with-test-tools) with_test_tools=1 ;;
    -h | --help)
      sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "install-deps: unknown option $arg" >&2
      exit 2
      ;;
  esac
done

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

sudo_cmd=()
if [[ "$(id -u)" -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then
    sudo_cmd=(sudo)
  else
    echo "install-deps: not root and sudo is not available" >&2
    exit 1
  fi
fi

log="$(mktemp)"
trap 'rm -f "$log"' EXIT

# Runs a command with its output in $log; shows the log if it fails.
quiet() {
  if ! "$@" >>"$log" 2>&1; then
    echo "install-deps: failed: $*" >&2
    cat "$log" >&2
    exit 1
  fi
}

packages=(build-essential cmake pkg-config git ca-certificates libmicrohttpd-dev
  libcurl4-openssl-dev libjansson-dev libsodium-dev libsqlite3-dev libssl-dev)
if ! command -v node >/dev/null 2>&1; then packages+=(nodejs); fi
if ! command -v npm >/dev/null 2>&1; then packages+=(npm); fi
# chromium: the signup page is tested in a real headless browser (over the DevTools protocol).
if ((with_test_tools)); then packages+=(valgrind clang clang-format chromium); fi

missing=()
for p in "${packages[@]}"; do
  status="$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)"
  if [[ "$status" != "install ok installed" ]]; then missing+=("$p"); fi
done

if ((${#missing[@]} > 0)); then
  export DEBIAN_FRONTEND=noninteractive
  quiet "${sudo_cmd[@]}" apt-get update -qq
  quiet "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if ((with_test_tools)); then
  tests="$repo_root/tests"
  # npm records what it installed in node_modules/.package-lock.json; install
  # again only when that is missing or older than the lockfile.
  marker="$tests/node_modules/.package-lock.json"
  if [[ ! -f "$marker" || "$tests/package-lock.json" -nt "$marker" ]]; then
    quiet npm ci --prefix "$tests" --no-audit --no-fund --loglevel=error
    touch "$marker"
  fi
fi
