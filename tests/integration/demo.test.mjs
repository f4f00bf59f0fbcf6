// `./run.sh --demo` as a newcomer runs it: the script installs the Turso
// engine from npm (demo/, pinned), loads the sample database, starts
// `tursodb --sync-server` and turso-mcp on 127.0.0.1, registers a demo user
// and prints its URL. The official MCP client then lists the tools and
// queries the sample data; Ctrl-C (SIGINT to the script's process group, as
// a terminal sends it) or SIGTERM to the script alone stops both servers.
// TM_BIN makes the script use the binary under test instead of building.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  closeClient,
  connectClient,
  freePort,
  makeTempDir,
  missingPrerequisite,
  repoRoot,
  serverBin,
  startProcess,
  stopAll,
  URL_TOKEN_RE,
  waitForLine,
} from './harness.mjs';

// The first run may download the engine from the npm registry.
const START_LIMIT_MS = 150000;
const STOP_LIMIT_MS = 30000;

function isAlive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return e.code === 'EPERM';
  }
}

async function waitGone(proc, pids, ms) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (proc.exitCode !== undefined && pids.every((p) => !isAlive(p))) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

async function startDemo(demoDir) {
  const dbPort = await freePort();
  const proc = startProcess('bash', [path.join(repoRoot, 'run.sh'), '--demo', '--listen', '127.0.0.1:0'], {
    name: 'run.sh --demo',
    detached: true,
    env: { TM_BIN: serverBin(), TM_DEMO_DIR: demoDir, TM_DEMO_DB_PORT: String(dbPort) },
  });
  const m = await waitForLine(proc, /^Demo running: tursodb pid (\d+), turso-mcp pid (\d+)\./, START_LIMIT_MS);
  const url = proc.stdout.split('\n').map((l) => l.trim()).find((l) => /^http:\/\/127\.0\.0\.1:\d+\/u\/[A-Za-z0-9_-]{43}\/mcp$/.test(l));
  assert.ok(url, `a URL on a line of its own:\n${proc.stdout}`);
  return { proc, url, dbPort, pids: [Number(m[1]), Number(m[2])] };
}

describe('./run.sh --demo', () => {
  let dir;
  const demos = [];

  before(async () => {
    assert.equal(missingPrerequisite({ tursodb: false }), null);
    dir = await makeTempDir('tm-demo-');
  });

  after(async () => {
    for (const d of demos) {
      for (const pid of d.pids) if (isAlive(pid)) process.kill(pid, 'SIGKILL');
    }
    await stopAll();
    if (dir) await fsp.rm(dir, { recursive: true, force: true });
  });

  test('serves the sample database to the official client; Ctrl-C stops both servers', async () => {
    const demoDir = path.join(dir, 'demo-data');
    const demo = await startDemo(demoDir);
    demos.push(demo);
    const out = demo.proc.stdout;

    // Snippets to paste, all with the same URL.
    assert.match(out, /claude_desktop_config\.json/);
    assert.ok(out.includes(`"args": ["-y", "mcp-remote", "${demo.url}"]`), out);
    assert.match(out, /Connectors/);
    assert.ok(out.includes(`{ "mcpServers": { "turso-demo": { "url": "${demo.url}" } } }`), out);
    assert.ok(out.includes(`curl -sS -X POST '${demo.url}'`), out);
    assert.equal(URL_TOKEN_RE.exec(demo.url) !== null, true);

    // The curl line works as printed (its JSON body, sent the same way).
    const curlLine = out.split('\n').find((l) => l.trim().startsWith('curl -sS '));
    const body = /-d '([^']+)'/.exec(curlLine)[1];
    const init = await fetch(demo.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body,
      signal: AbortSignal.timeout(10000),
    });
    assert.equal(init.status, 200);
    assert.equal((await init.json()).result.serverInfo.name, 'turso-mcp');

    const client = await connectClient(demo.url);
    try {
      const { tools } = await client.listTools();
      assert.ok(tools.some((t) => t.name === 'turso_query'), JSON.stringify(tools.map((t) => t.name)));

      const top = await client.callTool({
        name: 'turso_query',
        arguments: { sql: 'SELECT customer, spent FROM customer_spend ORDER BY spent DESC LIMIT 1' },
      });
      assert.notEqual(top.isError, true, JSON.stringify(top.content));
      assert.deepEqual(top.structuredContent.rows, [['Ada Lovelace', { type: 'float', value: 249.98 }]]);

      const schema = await client.callTool({
        name: 'turso_query',
        arguments: { sql: "SELECT type, name FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name" },
      });
      assert.deepEqual(schema.structuredContent.rows, [
        ['index', 'books_by_genre'],
        ['index', 'orders_by_customer'],
        ['table', 'books'],
        ['table', 'customers'],
        ['table', 'orders'],
        ['view', 'customer_spend'],
      ]);
      const counts = await client.callTool({
        name: 'turso_query',
        arguments: { sql: 'SELECT (SELECT COUNT(*) FROM customers), (SELECT COUNT(*) FROM books), (SELECT COUNT(*) FROM orders)' },
      });
      assert.deepEqual(counts.structuredContent.rows, [[6, 7, 12]]);
    } finally {
      await closeClient(client);
    }

    // The data stays in the demo directory; the store is sealed, the token file private.
    assert.ok(fs.existsSync(path.join(demoDir, 'sample.db')));
    assert.ok(fs.existsSync(path.join(demoDir, 'store', 'store.db')));
    assert.equal(fs.statSync(path.join(demoDir, 'db-token')).mode & 0o077, 0);

    // Ctrl-C: SIGINT to the whole process group, as a terminal sends it.
    process.kill(-demo.proc.pid, 'SIGINT');
    assert.ok(await waitGone(demo.proc, demo.pids, STOP_LIMIT_MS), `still running: ${demo.pids.filter(isAlive)}`);
    assert.equal(demo.proc.exitCode, 0, demo.proc.stderr);
    assert.match(demo.proc.stdout, /Demo stopped\./);
  });

  test('SIGTERM to the script alone stops both too; a second run starts fresh', async () => {
    const demoDir = path.join(dir, 'demo-data');
    const demo = await startDemo(demoDir);
    demos.push(demo);
    const client = await connectClient(demo.url);
    try {
      const r = await client.callTool({ name: 'turso_query', arguments: { sql: 'SELECT COUNT(*) FROM orders' } });
      assert.deepEqual(r.structuredContent.rows, [[12]]);
    } finally {
      await closeClient(client);
    }
    assert.equal(demos[0].url === demo.url, false, 'a new URL each run');
    process.kill(demo.proc.pid, 'SIGTERM');
    assert.ok(await waitGone(demo.proc, demo.pids, STOP_LIMIT_MS), `still running: ${demo.pids.filter(isAlive)}`);
    assert.equal(demo.proc.exitCode, 0, demo.proc.stderr);
  });

  test('a taken engine port is reported, and nothing is left running', async () => {
    const net = await import('node:net');
    const blocker = net.createServer();
    await new Promise((r) => blocker.listen(0, '127.0.0.1', r));
    const port = blocker.address().port;
    try {
      const proc = startProcess('bash', [path.join(repoRoot, 'run.sh'), '--demo', '--listen', '127.0.0.1:0'], {
        name: 'run.sh --demo',
        detached: true,
        env: { TM_BIN: serverBin(), TM_DEMO_DIR: path.join(dir, 'taken'), TM_DEMO_DB_PORT: String(port) },
      });
      let timer;
      const done = await Promise.race([proc.exited, new Promise((r) => (timer = setTimeout(() => r(null), START_LIMIT_MS)))]);
      clearTimeout(timer);
      assert.notEqual(done, null, 'the script gave up within its bound');
      assert.equal(proc.exitCode, 1);
      assert.equal(fs.existsSync(path.join(dir, 'taken', 'tursodb.log')), false, 'no engine was started');
      assert.match(proc.stderr, new RegExp(`demo: port ${port} on 127\\.0\\.0\\.1 is taken; set TM_DEMO_DB_PORT`));
    } finally {
      await new Promise((r) => blocker.close(r));
    }
  });
});
