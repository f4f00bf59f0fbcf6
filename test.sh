#!/usr/bin/env bash
# Runs the whole test suite: installs what it needs (compilers, libraries,
# Node.js and the pinned npm packages: the Turso engine and the official MCP
# clients), builds with warnings as errors under gcc and clang, runs the unit
# tests under AddressSanitizer + UndefinedBehaviorSanitizer and under
# valgrind, then the integration tests against real servers on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")"
root=$(pwd)
jobs=$(nproc)

step() { printf '\n== %s\n' "$*"; }

step "dependencies"
scripts/install-deps.sh --with-test-tools

step "format"
git ls-files '*.c' '*.h' | xargs clang-format --dry-run -Werror

step "clang build, warnings as errors"
cmake -S . -B build-clang -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build-clang -j"$jobs" >/dev/null

step "release build"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$jobs" >/dev/null

step "AddressSanitizer + UndefinedBehaviorSanitizer build"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DTM_ASAN=ON -DTM_UBSAN=ON >/dev/null
cmake --build build-asan -j"$jobs" >/dev/null

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
san_logs="$work/sanitizers"
mkdir "$san_logs"
export ASAN_OPTIONS="detect_leaks=1:log_path=$san_logs/asan"
export UBSAN_OPTIONS="print_stacktrace=1:log_path=$san_logs/ubsan"

step "unit tests (ASan + UBSan)"
ctest --test-dir build-asan -L unit --output-on-failure -j"$jobs" | tee "$work/ctest.out"
unit_passed=$(sed -n 's/.*tests passed, 0 tests failed out of \([0-9]*\).*/\1/p' "$work/ctest.out")

step "unit tests (valgrind)"
for t in build/test_*; do
    valgrind -q --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite \
        --suppressions="$root/tests/valgrind.supp" "$t" >/dev/null
    echo "valgrind clean: $(basename "$t")"
done

step "integration tests (server under ASan + UBSan)"
TM_BIN="$root/build-asan/turso-mcp" tests/run-integration.sh | tee "$work/node.out"
node_passed=$(sed -n 's/^# pass \([0-9]*\)$/\1/p' "$work/node.out")

if compgen -G "$san_logs/*" >/dev/null; then
    echo "sanitizer reports:" >&2
    cat "$san_logs"/* >&2
    exit 1
fi
echo "all suites passed"
echo "$((unit_passed + node_passed)) passed, 0 failed"
