// Bounded load on 127.0.0.1 (the whole file runs in well under 60 s):
//  - 1,000 open GET SSE streams (fewer if the open-file limit is lower; the
//    number used is printed) while 64 concurrent clients make tool calls;
//  - one user's Turso stalls while other users' calls keep answering fast;
//  - clients that leave in the middle of a call leave a healthy server;
//  - at the end SIGTERM stops the server promptly with exit code 0 (under
//    AddressSanitizer a leak would turn that into a non-zero code).
// Limits are not raised: the test uses what its own process is given.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  addUser,
  makeTempDir,
  missingPrerequisite,
  rawPost,
  startEmulator,
  startServer,
  startTursodb,
  stopAll,
  stopProcess,
} from './harness.mjs';
import { httpRequest, initSession, mcpHeaders, noRateLimitArgs, openEventStream, toolCall, waitUntil } from './http-helpers.mjs';

const WANTED_STREAMS = 1000;
const CLIENTS = 64;
const LOAD_MS = 4000;
const KEEPALIVE_SECONDS = 1;
const UPSTREAM_TIMEOUT_MS = 4000; // bounds the calls to the stalled upstream
const STALLED_CALLS = 16;
const P99_LIMIT_MS = 500;

// Both this process and the server (which inherits the limit) hold one
// descriptor per stream, plus a few hundred for everything else.
function openFileLimit() {
  try {
    const m = /^Max open files\s+(\d+|unlimited)/m.exec(fs.readFileSync('/proc/self/limits', 'utf8'));
    return m && m[1] !== 'unlimited' ? Number(m[1]) : Infinity;
  } catch {
    return 1024;
  }
}
const STREAMS = Math.max(50, Math.min(WANTED_STREAMS, openFileLimit() - 400));

// Runs fn over items with at most `limit` at once; returns the results in order.
async function pool(items, limit, fn) {
  const out = new Array(items.length);
  let next = 0;
  async function worker() {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i], i);
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

function within(promise, ms) {
  let timer;
  const timeout = new Promise((r) => {
    timer = setTimeout(() => r(null), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

describe('turso-mcp under load', () => {
  let dir;
  let dataDir;
  let tursodb;
  let fastEmu;
  let stallEmu;
  let server;
  const users = {};
  let streams = [];
  let lastAbortAt = 0;

  // One tools/call over fetch (pooled keep-alive connections); returns what the user sees.
  async function call(session, url, id, n) {
    const t0 = performance.now();
    const r = await rawPost(url, toolCall(id, 'SELECT ? AS n', { args: [n] }), { headers: session.headers, timeoutMs: 15000 });
    const ms = performance.now() - t0;
    const ok =
      r.status === 200 &&
      r.json?.id === id &&
      r.json?.result?.isError !== true &&
      JSON.stringify(r.json?.result?.structuredContent?.rows) === JSON.stringify([[n]]);
    return { ok, ms, status: r.status, text: ok ? '' : r.text.slice(0, 500) };
  }

  before(async () => {
    const missing = missingPrerequisite();
    if (missing) throw new Error(missing);
    dir = await makeTempDir('tm-stress-');
    dataDir = path.join(dir, 'data');
    await fsp.mkdir(dataDir, { mode: 0o700 });
    [tursodb, fastEmu, stallEmu] = await Promise.all([
      startTursodb(path.join(dir, 'local.db')),
      startEmulator({ dbFile: path.join(dir, 'fast.db') }),
      startEmulator({ dbFile: path.join(dir, 'stall.db'), stallMs: 30000 }),
    ]);
    server = await startServer({
      dataDir,
      extraArgs: [
        '--sse-keepalive-seconds',
        String(KEEPALIVE_SECONDS),
        '--upstream-timeout-ms',
        String(UPSTREAM_TIMEOUT_MS),
        '--log-level',
        'warn',
        ...(await noRateLimitArgs()),
      ],
    });
    for (const [name, dbUrl] of [
      ['local', tursodb.url],
      ['fast', fastEmu.url],
      ['stall', stallEmu.url],
    ]) {
      const r = await addUser({ dataDir, port: server.port, label: `stress-${name}`, dbUrl, dbToken: 'any-token' });
      assert.equal(r.code, 0, `user add ${name}: ${r.stderr}`);
      users[name] = r;
    }
  });

  after(async () => {
    for (const s of streams) s.close();
    await stopProcess(server?.proc);
    await stopProcess(tursodb?.proc);
    await stopProcess(fastEmu?.proc);
    await stopProcess(stallEmu?.proc);
    await stopAll();
    if (dir) await fsp.rm(dir, { recursive: true, force: true });
  });

  test(`${STREAMS} GET streams stay open while ${CLIENTS} clients make tool calls`, async (t) => {
    if (STREAMS < WANTED_STREAMS) t.diagnostic(`open-file limit ${openFileLimit()}: ${STREAMS} streams instead of ${WANTED_STREAMS}`);
    const url = users.local.url;
    const t0 = Date.now();
    const sessions = await pool(Array.from({ length: STREAMS }), 32, () => initSession(url, '2025-06-18'));
    streams = await pool(sessions, 100, (s) => openEventStream(url, { headers: { accept: 'text/event-stream', ...s.headers }, timeoutMs: 15000 }));
    const opened = Date.now() - t0;
    t.diagnostic(`${STREAMS} sessions and streams opened in ${opened} ms`);
    const bad = streams.filter((s) => s.status !== 200 || !/^text\/event-stream/.test(s.headers['content-type'] ?? ''));
    assert.equal(bad.length, 0, `streams refused: ${bad.slice(0, 3).map((s) => s.status)}`);

    // the load: CLIENTS clients, each with its own session, calling for LOAD_MS
    const clientUsers = Array.from({ length: CLIENTS }, (_, i) => (i % 2 === 0 ? users.local : users.fast));
    const clientSessions = await Promise.all(clientUsers.map((u) => initSession(u.url, '2025-06-18')));
    const stopAt = Date.now() + LOAD_MS;
    const results = [];
    await Promise.all(
      clientSessions.map(async (s, c) => {
        for (let i = 1; Date.now() < stopAt; i++) results.push(await call(s, clientUsers[c].url, i, c * 100000 + i));
      }),
    );
    const loadEnd = Date.now();
    const failed = results.filter((r) => !r.ok);
    const ms = results.map((r) => r.ms).sort((a, b) => a - b);
    t.diagnostic(`${results.length} calls in ${LOAD_MS} ms; p50 ${percentile(ms, 50).toFixed(1)} ms, p99 ${percentile(ms, 99).toFixed(1)} ms`);
    assert.equal(failed.length, 0, `${failed.length} of ${results.length} calls failed, e.g. ${JSON.stringify(failed.slice(0, 3))}`);
    assert.ok(results.length >= CLIENTS, `only ${results.length} calls were made`);

    // every stream is still open and still gets keep-alives after the load
    const ended = streams.filter((s) => s.isEnded());
    assert.equal(ended.length, 0, `${ended.length} streams ended during the load`);
    await waitUntil(() => streams.every((s) => s.events.some((e) => e.comments.length > 0 && e.at > loadEnd)), {
      timeoutMs: KEEPALIVE_SECONDS * 1000 + 5000,
      intervalMs: 100,
      what: `a keep-alive on every stream after the load (${streams.filter((s) => !s.events.some((e) => e.comments.length > 0 && e.at > loadEnd)).length} without)`,
    });
    assert.equal(streams.filter((s) => s.isEnded()).length, 0);
  });

  test("one user's stalled Turso does not slow other users' calls", async (t) => {
    await stallEmu.setFail('stall');
    try {
      const stallSession = await initSession(users.stall.url, '2025-06-18');
      const before = (await stallEmu.state()).pipeline_requests;
      const started = Date.now();
      const stalled = Array.from({ length: STALLED_CALLS }, (_, i) =>
        httpRequest(users.stall.url, { method: 'POST', headers: mcpHeaders(stallSession), body: toolCall(1000 + i, 'SELECT 1'), timeoutMs: UPSTREAM_TIMEOUT_MS + 10000 }).then(
          (r) => ({ r, ms: Date.now() - started }),
          (e) => ({ e, ms: Date.now() - started }),
        ),
      );
      await waitUntil(async () => (await stallEmu.state()).pipeline_requests >= before + STALLED_CALLS, {
        timeoutMs: 5000,
        what: `all ${STALLED_CALLS} stalled calls to reach their upstream`,
      });

      const healthy = [users.local, users.fast, users.local, users.fast, users.local, users.fast, users.local, users.fast];
      const sessions = await Promise.all(healthy.map((u) => initSession(u.url, '2025-06-18')));
      const results = [];
      await Promise.all(
        sessions.map(async (s, c) => {
          for (let i = 1; i <= 25; i++) results.push(await call(s, healthy[c].url, i, c * 1000 + i));
        }),
      );
      const healthyDone = Date.now();
      const failed = results.filter((r) => !r.ok);
      assert.equal(failed.length, 0, `healthy calls failed: ${JSON.stringify(failed.slice(0, 3))}`);
      const ms = results.map((r) => r.ms).sort((a, b) => a - b);
      const p99 = percentile(ms, 99);
      t.diagnostic(`${results.length} healthy calls while ${STALLED_CALLS} calls stall: p50 ${percentile(ms, 50).toFixed(1)} ms, p99 ${p99.toFixed(1)} ms`);
      assert.ok(p99 < P99_LIMIT_MS, `p99 ${p99.toFixed(1)} ms >= ${P99_LIMIT_MS} ms`);
      assert.ok(healthyDone - started < UPSTREAM_TIMEOUT_MS, 'the healthy calls were measured while the others stalled');

      // the stalled calls end with the upstream timeout, as a tool error
      const outcomes = await Promise.all(stalled);
      for (const o of outcomes) {
        assert.ok(o.r, `a stalled call failed at the HTTP level: ${o.e?.code} ${o.e?.message}`);
        assert.equal(o.r.status, 200);
        assert.equal(o.r.json?.result?.isError, true, o.r.text);
        assert.match(o.r.json.result.content.map((c) => c.text).join('\n'), /did not answer|time/i);
        assert.ok(o.ms >= UPSTREAM_TIMEOUT_MS - 500 && o.ms < UPSTREAM_TIMEOUT_MS + 5000, `a stalled call ended after ${o.ms} ms`);
      }
    } finally {
      await stallEmu.setFail('none');
    }
  });

  test('clients that leave mid-call (JSON and SSE) leave the server healthy', async () => {
    await stallEmu.setFail('stall');
    try {
      const s = await initSession(users.stall.url, '2025-06-18');
      const before = (await stallEmu.state()).pipeline_requests;
      // a JSON-mode call whose client gives up
      const ac = new AbortController();
      const gone = fetch(users.stall.url, { method: 'POST', headers: mcpHeaders(s), body: JSON.stringify(toolCall(1, 'SELECT 1')), signal: ac.signal }).then(
        (r) => r.text(),
        (e) => e,
      );
      // an SSE-mode call whose client closes the stream
      const stream = await openEventStream(users.stall.url, { method: 'POST', headers: mcpHeaders(s), body: toolCall(2, 'SELECT 1', { progressToken: 2 }) });
      assert.equal(stream.status, 200);
      await waitUntil(async () => (await stallEmu.state()).pipeline_requests >= before + 2, { timeoutMs: 5000, what: 'both calls to reach the stalled upstream' });
      ac.abort();
      stream.close();
      lastAbortAt = Date.now();
      const e = await within(gone, 5000);
      assert.ok(e instanceof Error && e.name === 'AbortError', `the aborted fetch ended on the client side: ${e}`);

      // the server answers at once, for this user and for others
      const t0 = Date.now();
      const ping = await rawPost(users.stall.url, { jsonrpc: '2.0', id: 3, method: 'ping' }, { headers: s.headers });
      assert.deepEqual(ping.json, { jsonrpc: '2.0', id: 3, result: {} });
      const other = await initSession(users.local.url, '2025-06-18');
      const r = await call(other, users.local.url, 4, 4);
      assert.ok(r.ok, r.text);
      assert.ok(Date.now() - t0 < 1000, 'answers came promptly');
    } finally {
      await stallEmu.setFail('none');
    }
    // the calls whose clients left run into the upstream timeout and are cleaned up
    const fresh = await initSession(users.stall.url, '2025-06-18');
    const r = await call(fresh, users.stall.url, 5, 5);
    assert.ok(r.ok, `the stalled user's upstream answers again: ${r.text}`);
  });

  test('SIGTERM: the server stops promptly (no call left in flight), ends every stream and exits 0', async () => {
    // let the abandoned calls of the previous test reach their upstream timeout
    const wait = lastAbortAt + UPSTREAM_TIMEOUT_MS + 500 - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const t0 = Date.now();
    process.kill(server.proc.pid, 'SIGTERM');
    const exited = await within(server.proc.exited, 15000);
    const took = Date.now() - t0;
    assert.ok(exited, 'the server exited after SIGTERM');
    assert.equal(exited.code, 0, `exit code ${exited.code} (signal ${exited.signal}); stderr:\n${server.proc.stderr.slice(-4000)}`);
    assert.ok(took < 5000, `the server took ${took} ms to stop: a call was still counted in flight`);
    await waitUntil(() => streams.every((s) => s.isEnded()), { timeoutMs: 5000, what: `every stream to end (${streams.filter((s) => !s.isEnded()).length} open)` });
  });
});
