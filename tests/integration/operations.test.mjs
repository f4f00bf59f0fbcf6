// Operations: /healthz, /readyz, /metrics in the Prometheus text format,
// per-URL rate limits (429 with Retry-After and a JSON-RPC error saying
// when to retry), and logs as one JSON object a line without secrets.
import assert from 'node:assert/strict';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  addUser,
  makeTempDir,
  missingPrerequisite,
  rawInitialize,
  rawPost,
  sleep,
  startEmulator,
  startServer,
  stopAll,
  stopProcess,
} from './harness.mjs';

const EMU_TOKEN = 'operations-emulator-token-61b0c2d9e4';

// Parses Prometheus text exposition; throws on a malformed line.
function parsePrometheus(text) {
  const samples = new Map();
  const types = new Map();
  assert.ok(text.endsWith('\n'), 'exposition ends with a newline');
  for (const line of text.split('\n')) {
    if (line === '') continue;
    if (line.startsWith('#')) {
      const m = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.+)$/.exec(line);
      assert.ok(m, `malformed comment line: ${line}`);
      if (m[1] === 'TYPE') {
        assert.match(m[3], /^(counter|gauge|histogram|summary|untyped)$/);
        types.set(m[2], m[3]);
      }
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})? (-?[0-9.eE+-]+|\+Inf|NaN)$/.exec(line);
    assert.ok(m, `malformed sample line: ${line}`);
    if (m[3]) {
      for (const pair of m[3].split(/,(?=[a-zA-Z_])/)) {
        assert.match(pair, /^[a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*"$/, `bad label in: ${line}`);
      }
    }
    assert.ok(!Number.isNaN(Number(m[4])) || m[4] === 'NaN', `bad value in: ${line}`);
    samples.set(`${m[1]}${m[2] ?? ''}`, Number(m[4]));
  }
  return { samples, types };
}

async function metrics(base) {
  const r = await fetch(`${base}/metrics`, { signal: AbortSignal.timeout(5000) });
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type') ?? '', /^text\/plain/);
  return parsePrometheus(await r.text());
}

async function callQuery(url, headers, id, sql = 'SELECT 1') {
  return rawPost(url, { jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'turso_query', arguments: { sql } } }, { headers });
}

describe('operations', () => {
  let dir, emu, server, limited, user, limitedUser;

  before(async () => {
    const missing = missingPrerequisite({ tursodb: false });
    if (missing) throw new Error(missing);
    dir = await makeTempDir('tm-ops-');
    const dataDir = path.join(dir, 'data');
    const limitedDir = path.join(dir, 'limited');
    emu = await startEmulator({ dbFile: path.join(dir, 'emu.db'), rw: [EMU_TOKEN] });
    server = await startServer({ dataDir });
    limited = await startServer({
      dataDir: limitedDir,
      extraArgs: ['--rate-limit-rps', '1', '--rate-limit-burst', '3', '--max-concurrent-calls', '0'],
    });
    user = await addUser({ dataDir, label: 'ops', dbUrl: emu.url, dbToken: EMU_TOKEN, port: server.port });
    limitedUser = await addUser({ dataDir: limitedDir, label: 'limited', dbUrl: emu.url, dbToken: EMU_TOKEN, port: limited.port });
    assert.equal(user.code, 0, user.stderr);
    assert.equal(limitedUser.code, 0, limitedUser.stderr);
  });

  after(async () => {
    await stopProcess(server?.proc);
    await stopProcess(limited?.proc);
    await stopProcess(emu?.proc);
    await stopAll();
    if (dir) await fsp.rm(dir, { recursive: true, force: true });
  });

  test('/healthz and /readyz answer 200 while serving', async () => {
    for (const p of ['/healthz', '/readyz']) {
      const r = await fetch(`${server.base}${p}`, { signal: AbortSignal.timeout(5000) });
      assert.equal(r.status, 200, p);
      await r.text();
    }
  });

  test('/metrics parses as Prometheus text and counts tool calls, sessions and upstream requests', async () => {
    const before = await metrics(server.base);
    assert.equal(before.types.get('turso_mcp_tool_calls_total'), 'counter');
    assert.equal(before.types.get('turso_mcp_tool_call_duration_seconds'), 'histogram');
    assert.equal(before.types.get('turso_mcp_sessions'), 'gauge');
    const key = 'turso_mcp_tool_calls_total{tool="turso_query",outcome="ok"}';
    const errKey = 'turso_mcp_tool_calls_total{tool="turso_query",outcome="error"}';
    const s = await rawInitialize(user.url);
    const ok = await callQuery(user.url, s.headers, 1);
    assert.equal(ok.json.result.isError, undefined);
    const bad = await callQuery(user.url, s.headers, 2, 'SELEC nonsense');
    assert.equal(bad.json.result.isError, true);
    const now = await metrics(server.base);
    assert.equal(now.samples.get(key), (before.samples.get(key) ?? 0) + 1);
    assert.equal(now.samples.get(errKey), (before.samples.get(errKey) ?? 0) + 1);
    assert.ok(now.samples.get('turso_mcp_sessions') >= 1);
    assert.ok(now.samples.get('turso_mcp_upstream_requests_total{result="ok"}') >= 2);
    const count = now.samples.get('turso_mcp_tool_call_duration_seconds_count{tool="turso_query"}');
    const inf = now.samples.get('turso_mcp_tool_call_duration_seconds_bucket{tool="turso_query",le="+Inf"}');
    assert.equal(count, inf);
    assert.ok(now.samples.get('turso_mcp_store_bytes') > 0);
  });

  test('over the rate limit: HTTP 429, Retry-After, and a JSON-RPC error saying when to retry', async () => {
    const s = await rawInitialize(limitedUser.url); // one of the three allowed at once
    const answers = [];
    for (let i = 0; i < 6; i++) answers.push(await callQuery(limitedUser.url, s.headers, 10 + i));
    const refused = answers.filter((a) => a.status === 429);
    assert.ok(refused.length >= 1, `statuses: ${answers.map((a) => a.status).join(',')}`);
    const r = refused[0];
    const retry = Number(r.headers.get('retry-after'));
    assert.ok(Number.isInteger(retry) && retry >= 1, `Retry-After: ${r.headers.get('retry-after')}`);
    assert.equal(r.json.jsonrpc, '2.0');
    assert.match(r.json.error.message, /retry after \d+ s/i);
    assert.equal(r.json.error.data.retryAfterSeconds, retry);
    // Other URLs are not affected by this one's limit.
    const other = await rawInitialize(user.url);
    assert.equal((await callQuery(user.url, other.headers, 99)).status, 200);
    // After waiting as told, the URL works again.
    await sleep(retry * 1000 + 100);
    const again = await callQuery(limitedUser.url, s.headers, 50);
    assert.equal(again.status, 200);
    const m = await metrics(limited.base);
    assert.ok(m.samples.get('turso_mcp_rate_limited_total') >= 1);
  });

  test('logs are one JSON object a line and never hold a URL token or database token', async () => {
    // Something was logged by the tests above; read what the server wrote.
    const lines = server.proc.stderr.split('\n').filter((l) => l.length > 0);
    assert.ok(lines.length > 0);
    for (const line of lines) {
      let obj;
      assert.doesNotThrow(() => {
        obj = JSON.parse(line);
      }, `not JSON: ${line}`);
      assert.equal(typeof obj.ts, 'string');
      assert.match(obj.level, /^(debug|info|warn|error)$/);
    }
    const all = server.proc.stderr;
    assert.ok(!all.includes(user.token), 'the URL token is not logged');
    assert.ok(!all.includes(EMU_TOKEN), 'the database token is not logged');
    assert.ok(lines.some((l) => JSON.parse(l).event === 'tool_call'), 'tool calls are logged');
  });
});
