#!/usr/bin/env bash
# The local demo behind `./run.sh --demo`, for trying turso-mcp without a
# Turso account: installs the Turso engine from npm (pinned in demo/), loads
# demo/sample.sql into a fresh database, serves it with
# `tursodb --sync-server` on 127.0.0.1, starts turso-mcp in front of it,
# registers a demo user and prints the user's URL with snippets for Claude,
# Cursor and curl. Ctrl-C (SIGINT) or SIGTERM stops both servers by PID.
#
#   scripts/demo.sh BINARY [turso-mcp settings...]     (run.sh passes these)
#
# Every run starts from scratch in $TM_DEMO_DIR (default ./demo-data), so the
# URL changes from one run to the next. Environment:
#   TM_DEMO_DIR      where the sample database, the store and the logs go
#   TM_DEMO_DB_PORT  port of tursodb on 127.0.0.1 (default 8788)
# turso-mcp listens where its settings say (default 127.0.0.1:8787); give
# e.g. --listen 127.0.0.1:0 for any free port.
set -euo pipefail

if (($# < 1)); then
  echo "usage: scripts/demo.sh BINARY [turso-mcp settings...]" >&2
  exit 2
fi
bin="$1"
shift
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
demo_src="$repo_root/demo"
demo_dir="${TM_DEMO_DIR:-$repo_root/demo-data}"
db_port="${TM_DEMO_DB_PORT:-8788}"
tursodb="$demo_src/node_modules/@tursodatabase/cli-linux-x64-gnu/tursodb"
# The local engine checks no token, but `user add` wants one to seal.
demo_db_token="local-tursodb-accepts-any-token"
# Seconds each server gets to come up, and to stop before SIGKILL.
start_limit=20
stop_limit=15

say() { printf '%s\n' "$*"; }
fail() {
  printf 'demo: %s\n' "$*" >&2
  exit 1
}

# 1. The engine, from npm: again only when the lockfile is newer than what is installed.
marker="$demo_src/node_modules/.package-lock.json"
if [[ ! -x "$tursodb" || ! -f "$marker" || "$demo_src/package-lock.json" -nt "$marker" ]]; then
  say "Installing the Turso engine (npm package @tursodatabase/cli-linux-x64-gnu)..."
  npm_log="$(mktemp)"
  if ! npm ci --prefix "$demo_src" --no-audit --no-fund --loglevel=error >"$npm_log" 2>&1; then
    cat "$npm_log" >&2
    rm -f "$npm_log"
    fail "npm ci in demo/ failed (the engine is published for Linux x64 with glibc)"
  fi
  rm -f "$npm_log"
  touch "$marker"
fi

# 2. A fresh sample database and store.
rm -rf "$demo_dir"
mkdir -p "$demo_dir"
chmod 0700 "$demo_dir"
demo_dir="$(cd "$demo_dir" && pwd)"
"$tursodb" -q "$demo_dir/sample.db" <"$demo_src/sample.sql" >"$demo_dir/load.log" 2>&1 ||
  fail "loading demo/sample.sql failed: $(cat "$demo_dir/load.log")"
(umask 077 && printf '%s\n' "$demo_db_token" >"$demo_dir/db-token")

db_pid=""
server_pid=""

# Stops one process by PID: SIGTERM, SIGKILL after $stop_limit seconds, then reaps it.
stop_pid() {
  local pid="$1"
  [[ -n "$pid" ]] || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < stop_limit * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

stop_all() {
  trap - INT TERM EXIT
  stop_pid "$server_pid"
  stop_pid "$db_pid"
}
trap 'stop_all; say "Demo stopped."; exit 0' INT TERM
trap 'stop_all' EXIT

# 3. tursodb on loopback; ready when its port takes a connection, so that
# port must not take one before.
if (exec 3<>"/dev/tcp/127.0.0.1/$db_port") 2>/dev/null; then
  fail "port $db_port on 127.0.0.1 is taken; set TM_DEMO_DB_PORT to a free one"
fi
"$tursodb" "$demo_dir/sample.db" --sync-server "127.0.0.1:$db_port" >"$demo_dir/tursodb.log" 2>&1 &
db_pid=$!
for ((i = 0; ; i++)); do
  kill -0 "$db_pid" 2>/dev/null ||
    fail "tursodb stopped (is port $db_port taken? set TM_DEMO_DB_PORT): $(tail -n 5 "$demo_dir/tursodb.log")"
  if (exec 3<>"/dev/tcp/127.0.0.1/$db_port") 2>/dev/null; then break; fi
  ((i < start_limit * 10)) || fail "tursodb did not listen on 127.0.0.1:$db_port within ${start_limit}s"
  sleep 0.1
done

# 4. turso-mcp, with its own store; the demo's settings go first, so the caller's win.
settings=(--data-dir "$demo_dir/store" --master-key-file "")
: >"$demo_dir/server.log" # before the background job opens it, so the loop below can read it
"$bin" serve "${settings[@]}" "$@" >"$demo_dir/server.log" 2>&1 &
server_pid=$!
listen_re='^turso-mcp listening on (http://[^ ]+)$'
base=""
for ((i = 0; ; i++)); do
  while IFS= read -r line; do
    if [[ "$line" =~ $listen_re ]]; then base="${BASH_REMATCH[1]}"; fi
  done <"$demo_dir/server.log"
  [[ -z "$base" ]] || break
  kill -0 "$server_pid" 2>/dev/null ||
    fail "turso-mcp stopped (is its port taken? give --listen 127.0.0.1:PORT): $(tail -n 5 "$demo_dir/server.log")"
  ((i < start_limit * 10)) || fail "turso-mcp did not start within ${start_limit}s"
  sleep 0.1
done

# 5. The demo user. --listen with the real port, so that port 0 gives a working URL too.
url="$("$bin" user add "${settings[@]}" "$@" --listen "${base#http://}" --label demo \
  --db-url "http://127.0.0.1:$db_port" --db-token-file "$demo_dir/db-token" 2>"$demo_dir/user-add.log")" ||
  fail "user add failed: $(cat "$demo_dir/user-add.log")"
url="$(printf '%s\n' "$url" | tail -n 1)"
case "$url" in
  http*/u/*/mcp) ;;
  *) fail "user add printed no URL: $url" ;;
esac

# 6. What to paste where.
cat <<EOF

turso-mcp demo: a sample bookshop database (customers, books, orders and the
view customer_spend) served by the Turso engine on 127.0.0.1:$db_port, and
turso-mcp in front of it. The demo user's URL (treat it like a password):

  $url

Claude Desktop (claude_desktop_config.json; Settings > Developer > Edit Config):
  {
    "mcpServers": {
      "turso-demo": { "command": "npx", "args": ["-y", "mcp-remote", "$url"] }
    }
  }

Claude (claude.ai, Desktop, mobile: Settings > Connectors > Add custom connector)
  connects from Anthropic's servers, so it needs the server on a public HTTPS
  address (see "Self-hosting with Docker" in README.md); on this machine use
  the mcp-remote snippet above.

Cursor (~/.cursor/mcp.json or .cursor/mcp.json in a project):
  { "mcpServers": { "turso-demo": { "url": "$url" } } }

curl (the MCP handshake):
  curl -sS -X POST '$url' -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' -d '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"curl","version":"0"}}}'

Then ask, for example: "Which customer spent the most, and on which books?"
Logs and data: $demo_dir (fresh on every run).
EOF
say "Demo running: tursodb pid $db_pid, turso-mcp pid $server_pid. Press Ctrl-C to stop both."

# 7. Until Ctrl-C, or until one of them stops on its own. A short sleep in
# the foreground rather than `wait`: bash runs the INT/TERM trap as soon as it
# returns, so a stop request is never mistaken for a crash.
while kill -0 "$db_pid" 2>/dev/null && kill -0 "$server_pid" 2>/dev/null; do
  sleep 0.2
done
kill -0 "$db_pid" 2>/dev/null && name=turso-mcp || name=tursodb
printf 'demo: %s stopped on its own (its log is in %s); stopping the other.\n' "$name" "$demo_dir" >&2
exit 1
