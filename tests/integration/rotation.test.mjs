// The URL's life from the admin command line, against a running server:
// `user rotate` (the current URL on stdin) gives a new URL and kills the old
// one at once; `user revoke` likewise; `keys rotate` adds a master key
// version while the server runs, every user keeps working, and `keys status`
// counts records still on the old version going down as their owners call;
// `store check` passes on the healthy store and fails on a tampered one.

import assert from 'node:assert/strict';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  addUser,
  closeClient,
  connectClient,
  listUsers,
  makeTempDir,
  missingPrerequisite,
  rawPost,
  revokeUser,
  runCommand,
  serverBin,
  sleep,
  startEmulator,
  startServer,
  stopAll,
  stopProcess,
  URL_TOKEN_RE,
} from './harness.mjs';

const RW = 'rotation-database-token-5b0e7c1a94';
const INIT = { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 't', version: '0' } } };

async function selectOne(url) {
  const c = await connectClient(url);
  try {
    const r = await c.callTool({ name: 'turso_query', arguments: { sql: 'SELECT 1' } });
    assert.notEqual(r.isError, true, JSON.stringify(r.content));
    assert.deepEqual(r.structuredContent.rows, [[1]]);
  } finally {
    await closeClient(c);
  }
}

describe('rotation and revocation from the command line', () => {
  let dir;
  let dataDir;
  let emu;
  let server;
  const users = [];

  const cli = (args, opts) => runCommand(serverBin(), [...args, '--data-dir', dataDir], opts);

  // VERSION RECORDS STATE lines of `keys status`, as {version: records}.
  async function keyStatus() {
    const r = await cli(['keys', 'status']);
    assert.equal(r.code, 0, r.stderr);
    const counts = {};
    for (const m of r.stdout.matchAll(/^v(\d+)\s+(\d+)\s+/gm)) counts[m[1]] = Number(m[2]);
    return { counts, text: r.stdout };
  }

  before(async () => {
    const missing = missingPrerequisite({ tursodb: false });
    if (missing) throw new Error(missing);
    dir = await makeTempDir('tm-rotation-');
    dataDir = path.join(dir, 'data');
    await fsp.mkdir(dataDir, { mode: 0o700 });
    emu = await startEmulator({ dbFile: path.join(dir, 'emu.db'), rw: [RW] });
    server = await startServer({ dataDir });
    for (let i = 0; i < 3; i++) {
      const r = await addUser({ dataDir, port: server.port, label: `rot-${i}`, dbUrl: emu.url, dbToken: RW });
      assert.equal(r.code, 0, r.stderr);
      users.push(r);
    }
  });

  after(async () => {
    await stopProcess(server?.proc);
    await stopProcess(emu?.proc);
    await stopAll();
    if (dir) await fsp.rm(dir, { recursive: true, force: true });
  });

  test('user list prints one user a line, id first', async () => {
    const list = await listUsers(dataDir);
    assert.equal(list.users.length, 3);
    for (const u of list.users) assert.match(u.line, /^[0-9a-f]{16}\s/);
  });

  test('user rotate reads the URL on stdin, prints the new one, and the old one is 404 at once', async () => {
    const old = users[0];
    await selectOne(old.url);
    const before = await listUsers(dataDir);
    const r = await cli(['user', 'rotate'], { input: `${old.printedUrl}\n` });
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.split('\n').filter(Boolean);
    assert.equal(lines.length, 1, 'the new URL alone on stdout');
    const m = URL_TOKEN_RE.exec(lines[0]);
    assert.ok(m, lines[0]);
    assert.notEqual(m[1], old.token);
    assert.ok(!r.stderr.includes(m[1]) && !r.stderr.includes(old.token), 'no token on stderr');

    assert.equal((await rawPost(old.url, INIT)).status, 404);
    const fresh = `http://127.0.0.1:${server.port}/u/${m[1]}/mcp`;
    await selectOne(fresh);
    // Same user: the id and label stay.
    const after = await listUsers(dataDir);
    assert.deepEqual(after.users.map((u) => u.id), before.users.map((u) => u.id));
    users[0] = { ...old, token: m[1], url: fresh, printedUrl: lines[0] };

    // The bare token works on stdin too; a dead URL is refused.
    const again = await cli(['user', 'rotate'], { input: old.token });
    assert.equal(again.code, 1);
    assert.match(again.stderr, /no user has this URL/);
    const nothing = await cli(['user', 'rotate'], { input: 'not a url\n' });
    assert.equal(nothing.code, 2);
  });

  test('keys rotate while the server runs: everyone keeps working and moves to the new version', async () => {
    let status = await keyStatus();
    assert.deepEqual(status.counts, { 1: 3 });
    const r = await cli(['keys', 'rotate']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /version 2 is now current/);
    const key = await fsp.readFile(path.join(dataDir, 'master.key'), 'utf8');
    assert.match(key, /^v1:[0-9a-f]{64}\nv2:[0-9a-f]{64}\n$/);
    assert.equal((await fsp.stat(path.join(dataDir, 'master.key'))).mode & 0o777, 0o600);

    status = await keyStatus();
    assert.deepEqual(status.counts, { 1: 3, 2: 0 });
    assert.match(status.text, /3 of 3 records on older versions/);

    // The running server notices the new key file within a few seconds; each
    // user's next call opens their v1 record and re-seals it under v2.
    await sleep(2500);
    for (let i = 0; i < users.length; i++) {
      await selectOne(users[i].url);
      status = await keyStatus();
      assert.equal(status.counts[1], users.length - 1 - i, status.text);
      assert.equal(status.counts[2], i + 1, status.text);
    }
    assert.match(status.text, /0 of 3 records on older versions/);

    // A user added now (by the CLI, on v2) works on the running server.
    const late = await addUser({ dataDir, port: server.port, label: 'rot-late', dbUrl: emu.url, dbToken: RW });
    assert.equal(late.code, 0, late.stderr);
    await selectOne(late.url);
    users.push(late);

    // And after a restart, everything still opens.
    await stopProcess(server.proc);
    server = await startServer({ dataDir });
    for (const u of users) await selectOne(u.url.replace(/:\d+\//, `:${server.port}/`));
    for (const u of users) u.url = u.url.replace(/:\d+\//, `:${server.port}/`);
  });

  test('user revoke stops a URL at once on the running server', async () => {
    const victim = users.pop();
    const list = await listUsers(dataDir);
    const id = list.users.find((u) => u.line.includes('rot-late'))?.id;
    assert.ok(id);
    const r = await revokeUser(dataDir, id);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await rawPost(victim.url, INIT)).status, 404);
    await selectOne(users[1].url);
  });

  // Listing tools, ping and notifications need no credentials, so the server
  // does not open them for those; the URL check they get must still see a
  // revocation or rotation made by another process on the very next request.
  test('a session sees a revoke or rotate by the CLI on its very next request, even tools/list', async () => {
    async function openSession(url) {
      const init = await rawPost(url, INIT);
      assert.equal(init.status, 200);
      const sid = init.headers.get('mcp-session-id');
      assert.ok(sid);
      const headers = { 'mcp-session-id': sid, 'mcp-protocol-version': '2025-06-18' };
      assert.equal((await rawPost(url, { jsonrpc: '2.0', method: 'notifications/initialized' }, { headers })).status, 202);
      return headers;
    }
    const list = { jsonrpc: '2.0', id: 2, method: 'tools/list' };
    const ping = { jsonrpc: '2.0', id: 3, method: 'ping' };
    const a = await addUser({ dataDir, port: server.port, label: 'rot-next-a', dbUrl: emu.url, dbToken: RW });
    const b = await addUser({ dataDir, port: server.port, label: 'rot-next-b', dbUrl: emu.url, dbToken: RW });
    assert.equal(a.code, 0, a.stderr);
    assert.equal(b.code, 0, b.stderr);
    const ha = await openSession(a.url);
    const hb = await openSession(b.url);
    for (let i = 0; i < 3; i++) {
      assert.equal((await rawPost(a.url, list, { headers: ha })).status, 200);
      assert.equal((await rawPost(b.url, ping, { headers: hb })).status, 200);
    }

    const id = (await listUsers(dataDir)).users.find((u) => u.line.includes('rot-next-a'))?.id;
    assert.ok(id);
    assert.equal((await revokeUser(dataDir, id)).code, 0);
    for (const body of [list, ping, { jsonrpc: '2.0', method: 'notifications/initialized' }]) {
      const r = await rawPost(a.url, body, { headers: ha });
      assert.equal(r.status, 404, JSON.stringify(body));
      assert.equal(r.text, 'Not Found');
    }

    const r = await cli(['user', 'rotate'], { input: `${b.printedUrl}\n` });
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await rawPost(b.url, list, { headers: hb })).status, 404);
    assert.equal((await rawPost(b.url, ping, { headers: hb })).status, 404);
    const fresh = `http://127.0.0.1:${server.port}/u/${URL_TOKEN_RE.exec(r.stdout)[1]}/mcp`;
    const hf = await openSession(fresh);
    const listed = await rawPost(fresh, list, { headers: hf });
    assert.equal(listed.status, 200);
    assert.ok(listed.json.result.tools.some((t) => t.name === 'turso_query'));
    await selectOne(fresh);
  });

  test('store check passes on the healthy store and reports a tampered one', async () => {
    let r = await cli(['store', 'check']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /store check: ok/);

    const { DatabaseSync } = await import('node:sqlite');
    const db = new DatabaseSync(path.join(dataDir, 'store.db'));
    try {
      db.exec("UPDATE users SET sealed = x'00' WHERE label = 'rot-1'");
      r = await cli(['store', 'check']);
      assert.equal(r.code, 1);
      assert.match(r.stdout, /problem: user [0-9a-f]{16}: sealed credentials shorter/);
      assert.match(r.stdout, /store check: 1 problem/);
    } finally {
      db.close();
    }
  });

  // The URL check alone does not open the record; whatever needs the
  // credentials does, and a record that does not open is a missing page and
  // no use of the URL. A request that never opens it (ping) counts as a use
  // at the URL check.
  test('a tampered record: initialize and tool calls are 404 and not a use', async () => {
    const { DatabaseSync } = await import('node:sqlite');
    const db = new DatabaseSync(path.join(dataDir, 'store.db'));
    const lastUsed = () => db.prepare("SELECT last_used_at FROM users WHERE label = 'rot-1'").get().last_used_at;
    try {
      // Tampered here too, so that this test does not lean on the one before.
      db.exec("UPDATE users SET sealed = x'00', last_used_at = 0 WHERE label = 'rot-1'");
      const tampered = users[1];
      const headers = { 'mcp-session-id': 'f'.repeat(32) };
      assert.equal((await rawPost(tampered.url, INIT)).status, 404);
      const call = { jsonrpc: '2.0', id: 4, method: 'tools/call', params: { name: 'turso_query', arguments: { sql: 'SELECT 1' } } };
      const r = await rawPost(tampered.url, call, { headers });
      assert.equal(r.status, 404);
      assert.equal(r.text, 'Not Found');
      assert.equal(lastUsed(), 0);

      const ping = await rawPost(tampered.url, { jsonrpc: '2.0', id: 5, method: 'ping' }, { headers });
      assert.equal(ping.json?.error?.code, -32001, ping.text); // the URL is known, the session is not
      assert.ok(lastUsed() > 0);
    } finally {
      db.close();
    }
  });
});
