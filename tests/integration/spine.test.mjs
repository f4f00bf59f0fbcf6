// End-to-end: our server (build/turso-mcp or $TM_BIN) in front of the local
// `tursodb --sync-server` and the Hrana emulator, driven by the official MCP
// client and by raw HTTP. Expected transport behaviour: mcp-notes §2, §8, §15.
// Run: node --test tests/integration (Node 22).

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
  PROTOCOL_VERSION,
  rawInitialize,
  rawPost,
  revokeUser,
  startEmulator,
  startServer,
  startTursodb,
  stopAll,
  stopProcess,
} from './harness.mjs';

const MAX_ROWS = 5;
const LOCAL_TOKEN = 'local-tursodb-ignores-this-token-4b1d';
const EMU_RW = 'emulator-rw-database-token-7f3a9c2e51';
const EMU_RO = 'emulator-ro-database-token-0c88d1e4b7';
const ROT_RW = 'rotating-rw-database-token-93e0a6f1d2';
const REFUSED = 'never-accepted-database-token-5e2b77';

// The tool's structured result, checked for shape on every success.
function structured(result) {
  assert.notEqual(result.isError, true, `tool failed: ${JSON.stringify(result.content)}`);
  const sc = result.structuredContent;
  assert.equal(typeof sc, 'object', 'structuredContent must be an object');
  assert.ok(Array.isArray(sc.columns), 'columns is an array');
  assert.ok(Array.isArray(sc.rows), 'rows is an array');
  assert.equal(sc.row_count, sc.rows.length);
  assert.equal(typeof sc.truncated, 'boolean');
  return sc;
}

function errorText(result) {
  assert.equal(result.isError, true, `expected isError, got ${JSON.stringify(result)}`);
  const texts = result.content.filter((c) => c.type === 'text').map((c) => c.text);
  assert.ok(texts.length > 0, 'an error result explains itself in a text block');
  return texts.join('\n');
}

function query(client, sql, args, extra = {}) {
  const a = { sql, ...extra };
  if (args !== undefined) a.args = args;
  return client.callTool({ name: 'turso_query', arguments: a });
}

const b64 = (bytes) => Buffer.from(bytes).toString('base64');
const blobBytes = (cell) => {
  assert.equal(cell?.type, 'blob', `expected a blob cell, got ${JSON.stringify(cell)}`);
  return [...Buffer.from(cell.base64, 'base64')];
};

describe('turso-mcp spine', () => {
  let dir;
  let dataDir;
  let tursodb;
  let emu;
  let rot; // an emulator whose tokens are rotated during the run
  let server;
  const users = {}; // name -> addUser() result
  const clients = [];

  async function client(url, opts) {
    const c = await connectClient(url, opts);
    clients.push(c);
    return c;
  }

  async function add(name, opts) {
    const r = await addUser({ dataDir, port: server.port, label: `spine-${name}`, ...opts });
    assert.equal(r.code, 0, `user add ${name} failed: ${r.stderr}`);
    assert.ok(r.token, `user add ${name} printed no URL: ${r.stdout}`);
    users[name] = r;
    return r;
  }

  before(async () => {
    const missing = missingPrerequisite();
    if (missing) throw new Error(missing);
    dir = await makeTempDir('tm-spine-');
    dataDir = path.join(dir, 'data');
    await fsp.mkdir(dataDir, { mode: 0o700 });
    [tursodb, emu, rot] = await Promise.all([
      startTursodb(path.join(dir, 'local.db')),
      startEmulator({ dbFile: path.join(dir, 'emu.db'), rw: [EMU_RW], ro: [EMU_RO] }),
      startEmulator({ dbFile: path.join(dir, 'rot.db'), rw: [ROT_RW] }),
    ]);
    server = await startServer({ dataDir, extraArgs: ['--max-rows', String(MAX_ROWS)] });
    await add('local', { dbUrl: tursodb.url, dbToken: LOCAL_TOKEN });
    await add('emu', { dbUrl: emu.url, dbToken: EMU_RW });
    await add('emu-ro', { dbUrl: emu.url, dbToken: EMU_RO, readOnly: true });
    await add('rot', { dbUrl: rot.url, dbToken: ROT_RW });
  });

  after(async () => {
    for (const c of clients) await closeClient(c);
    await stopProcess(server?.proc);
    await stopProcess(tursodb?.proc);
    await stopProcess(emu?.proc);
    await stopProcess(rot?.proc);
    await stopAll();
    if (dir) await fsp.rm(dir, { recursive: true, force: true });
  });

  // ------------------------------------------------------------ admin CLI

  test('user add prints one secret URL; user list shows the users', async () => {
    const r = users.local;
    assert.match(r.printedUrl, /^(?:.*\s)?https?:\/\/[^/\s]+\/u\/[A-Za-z0-9_-]{43}\/mcp$/);
    assert.equal(r.stdout.match(/\/u\/[A-Za-z0-9_-]{43}\/mcp/g).length, 1, 'the URL is printed once');
    assert.notEqual(users.local.token, users.emu.token, 'every user gets a fresh token');
    assert.equal(Buffer.from(r.token, 'base64url').length, 32, 'the token is 32 random bytes');
    assert.ok(!r.stdout.includes(LOCAL_TOKEN) && !r.stderr.includes(LOCAL_TOKEN), 'the database token is not echoed');

    const list = await listUsers(dataDir);
    const lines = list.stdout.split('\n').filter((l) => l.trim());
    assert.ok(lines.length >= 5, `header + 4 users expected:\n${list.stdout}`);
    assert.doesNotMatch(lines[0], /^\s*[0-9a-f]{16}\b/, 'the first line is a header');
    for (const name of ['local', 'emu', 'emu-ro', 'rot']) {
      assert.ok(list.users.some((u) => u.line.includes(`spine-${name}`)), `user list shows spine-${name}:\n${list.stdout}`);
    }
    for (const secret of [LOCAL_TOKEN, EMU_RW, EMU_RO, ROT_RW, users.local.token, users.emu.token]) {
      assert.ok(!list.stdout.includes(secret), 'user list shows no secret');
    }
  });

  test('user add fails with a clear message when Turso refuses the database token', async () => {
    const r = await addUser({ dataDir, port: server.port, label: 'spine-refused', dbUrl: emu.url, dbToken: REFUSED });
    assert.notEqual(r.code, 0, 'user add must fail');
    assert.equal(r.token, undefined, `no URL may be printed:\n${r.stdout}`);
    assert.match(r.stderr, /refus|reject|invalid|unauthori[sz]ed|401|denied/i, `stderr: ${r.stderr}`);
    assert.ok(!r.stderr.includes(REFUSED) && !r.stdout.includes(REFUSED), 'the token is not echoed');
    const list = await listUsers(dataDir);
    assert.ok(!list.stdout.includes('spine-refused'), 'no user was stored');
  });

  // ------------------------------------------------------------ tools

  test('tools/list offers turso_query with schemas and annotations', async () => {
    const c = await client(users.local.url);
    const { tools } = await c.listTools();
    const t = tools.find((x) => x.name === 'turso_query');
    assert.ok(t, `turso_query listed among ${tools.map((x) => x.name).join(', ')}`);
    assert.equal(typeof t.description, 'string');
    assert.ok(t.description.length > 0);
    assert.equal(t.inputSchema?.type, 'object');
    assert.equal(t.outputSchema?.type, 'object');
    assert.equal(typeof t.annotations, 'object');
    assert.ok(t.annotations !== null);
    for (const tool of tools) assert.match(tool.name, /^[A-Za-z0-9_.-]{1,128}$/);
  });

  test('local tursodb: create, insert with positional args of every type, select back', async () => {
    const c = await client(users.local.url);
    await c.listTools(); // lets the SDK validate structuredContent against outputSchema
    structured(await query(c, 'CREATE TABLE items (id INTEGER PRIMARY KEY, i INTEGER, r REAL, t TEXT, b BLOB, n TEXT, yes INTEGER, no INTEGER)'));
    const blob = [0xde, 0xad, 0xbe, 0xef, 0x00, 0x7f];
    structured(
      await query(c, 'INSERT INTO items (id, i, r, t, b, n, yes, no) VALUES (?, ?, ?, ?, ?, ?, ?, ?)', [
        1,
        -42,
        2.5,
        'héllo ✓',
        { base64: b64(blob) },
        null,
        true,
        false,
      ]),
    );
    const sc = structured(
      await query(c, 'SELECT i, typeof(i), r, typeof(r), t, b, typeof(b), n, yes, no FROM items WHERE id = ?', [1]),
    );
    assert.equal(sc.row_count, 1);
    assert.equal(sc.truncated, false);
    assert.deepEqual(
      sc.columns.map((x) => x.name),
      ['i', 'typeof(i)', 'r', 'typeof(r)', 't', 'b', 'typeof(b)', 'n', 'yes', 'no'],
    );
    assert.deepEqual(
      sc.columns.map((x) => x.type),
      ['INTEGER', null, 'REAL', null, 'TEXT', 'BLOB', null, 'TEXT', 'INTEGER', 'INTEGER'],
    );
    const [i, ti, r, tr, t, bcell, tb, n, yes, no] = sc.rows[0];
    assert.equal(i, -42);
    assert.equal(ti, 'integer');
    assert.deepEqual(r, { type: 'float', value: 2.5 });
    assert.equal(tr, 'real');
    assert.equal(t, 'héllo ✓');
    assert.deepEqual(blobBytes(bcell), blob);
    assert.equal(tb, 'blob');
    assert.equal(n, null);
    assert.equal(yes, 1);
    assert.equal(no, 0);
  });

  test('a success result carries the same JSON in a text block', async () => {
    const c = await client(users.local.url);
    const res = await query(c, 'SELECT i, t FROM items WHERE id = ?', [1]);
    const sc = structured(res);
    const text = res.content.find((x) => x.type === 'text');
    assert.ok(text, 'a text block is present for clients without structuredContent');
    // The JSON may be wrapped in a summary line or a fence; the JSON object
    // itself must be there, whole and equal to structuredContent.
    const from = text.text.indexOf('{');
    const to = text.text.lastIndexOf('}');
    assert.ok(from >= 0 && to > from, `no JSON object in the text block: ${text.text}`);
    assert.deepEqual(JSON.parse(text.text.slice(from, to + 1)), sc);
  });

  test('emulator: insert with named args, then read it back', async () => {
    const c = await client(users.emu.url);
    await c.listTools();
    structured(await query(c, 'CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT, age INTEGER, score REAL)'));
    const ins = structured(
      await query(c, 'INSERT INTO people (name, age, score) VALUES (:name, @age, $score)', { name: 'Ada', age: 36, score: 9.5 }),
    );
    assert.equal(ins.affected_row_count, 1);
    assert.equal(typeof ins.last_insert_rowid, 'string');
    const prefixed = structured(await query(c, 'INSERT INTO people (name, age) VALUES (:name, :age)', { ':name': 'Grace', ':age': 85 }));
    assert.equal(prefixed.affected_row_count, 1);
    assert.equal(BigInt(prefixed.last_insert_rowid), BigInt(ins.last_insert_rowid) + 1n);
    const sel = structured(await query(c, 'SELECT name, age, score FROM people ORDER BY id'));
    assert.deepEqual(sel.rows, [
      ['Ada', 36, { type: 'float', value: 9.5 }],
      ['Grace', 85, null],
    ]);
  });

  test('reals read as written: the fewest digits that give the same number, in every tool', async () => {
    const c = await client(users.local.url);
    const sql = 'SELECT 0.1 AS a, 0.1 + 0.2 AS b, 2500.26 AS c, 1.0 / 3 AS d, 1e21 AS e';
    const viaQuery = await query(c, sql);
    const viaBatch = await c.callTool({ name: 'turso_batch_execute', arguments: { statements: [{ sql }] } });
    for (const res of [viaQuery, viaBatch]) {
      const text = res.content.find((x) => x.type === 'text').text;
      for (const v of ['0.1', '0.30000000000000004', '2500.26', '0.3333333333333333', '1e21'])
        assert.ok(text.includes(`"value":${v}}`), `${v} not written as such in: ${text}`);
      assert.ok(!text.includes('0.10000000000000001'), text);
    }
    assert.deepEqual(structured(viaQuery).rows[0].map((x) => x.value), [0.1, 0.1 + 0.2, 2500.26, 1 / 3, 1e21]);
  });

  test('cell encoding: big integers exact, 1.0 is not 1, blobs round-trip', async () => {
    const c = await client(users.emu.url);
    await c.listTools();
    const sc = structured(
      await query(
        c,
        "SELECT 9223372036854775807 AS max, -9223372036854775808 AS min, 9007199254740991 AS safe, 9007199254740992 AS unsafe, 1.0 AS real_one, 1 AS int_one, x'deadbeef00' AS blob, NULL AS nul, 'text' AS txt",
      ),
    );
    const [max, min, safe, unsafe, realOne, intOne, blob, nothing, txt] = sc.rows[0];
    assert.deepEqual(max, { type: 'integer', value: '9223372036854775807' });
    assert.deepEqual(min, { type: 'integer', value: '-9223372036854775808' });
    assert.equal(safe, 9007199254740991);
    assert.deepEqual(unsafe, { type: 'integer', value: '9007199254740992' });
    assert.deepEqual(realOne, { type: 'float', value: 1 });
    assert.equal(intOne, 1);
    assert.notDeepEqual(realOne, intOne);
    assert.deepEqual(blobBytes(blob), [0xde, 0xad, 0xbe, 0xef, 0x00]);
    assert.equal(nothing, null);
    assert.equal(txt, 'text');

    // and back in as arguments
    structured(await query(c, 'CREATE TABLE vals (k TEXT PRIMARY KEY, v)'));
    const bytes = [...Buffer.from('any bytes \u0000 \u00ff', 'latin1')];
    structured(
      await query(c, 'INSERT INTO vals VALUES (?, ?), (?, ?), (?, ?), (?, ?)', [
        'big',
        { type: 'integer', value: '9223372036854775807' },
        'blob',
        { base64: b64(bytes) },
        'real',
        0.25,
        'bool',
        true,
      ]),
    );
    const back = structured(await query(c, 'SELECT k, v, typeof(v) FROM vals ORDER BY k'));
    const byKey = Object.fromEntries(back.rows.map(([k, v, t]) => [k, { v, t }]));
    assert.deepEqual(byKey.big, { v: { type: 'integer', value: '9223372036854775807' }, t: 'integer' });
    assert.deepEqual(blobBytes(byKey.blob.v), bytes);
    assert.equal(byKey.blob.t, 'blob');
    assert.deepEqual(byKey.real, { v: { type: 'float', value: 0.25 }, t: 'real' });
    assert.deepEqual(byKey.bool, { v: 1, t: 'integer' });
  });

  test("bad SQL gives isError with Turso's message", async () => {
    const emuClient = await client(users.emu.url);
    const e1 = errorText(await query(emuClient, 'SELECT * FROM no_such_table_xyz'));
    assert.match(e1, /SQL input error: no such table: no_such_table_xyz/);
    const e2 = errorText(await query(emuClient, 'INSERT INTO people (id, name) VALUES (1, ?)', ['dup']));
    assert.match(e2, /UNIQUE constraint failed: people\.id/);

    const localClient = await client(users.local.url);
    const e3 = errorText(await query(localClient, 'SELECT * FROM no_such_table_xyz'));
    assert.match(e3, /no_such_table_xyz/);
  });

  test('a read-only URL cannot write but can read', async () => {
    const c = await client(users['emu-ro'].url);
    const sel = structured(await query(c, 'SELECT count(*) FROM people'));
    assert.deepEqual(sel.rows, [[2]]);
    const msg = errorText(await query(c, 'DELETE FROM people'));
    assert.match(msg, /read[- ]only|permission|forbidden|not allowed/i);
    const still = structured(await query(await client(users.emu.url), 'SELECT count(*) FROM people'));
    assert.deepEqual(still.rows, [[2]], 'nothing was deleted');
  });

  test('result caps: server max rows and the max_rows argument', async () => {
    const c = await client(users.emu.url);
    const gen = (n) => `WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ${n}) SELECT x FROM c`;
    const big = structured(await query(c, gen(20)));
    assert.equal(big.truncated, true);
    assert.equal(big.row_count, MAX_ROWS);
    assert.deepEqual(big.rows, [[1], [2], [3], [4], [5]]);
    const two = structured(await query(c, gen(20), undefined, { max_rows: 2 }));
    assert.equal(two.truncated, true);
    assert.deepEqual(two.rows, [[1], [2]]);
    const above = structured(await query(c, gen(20), undefined, { max_rows: 50 }));
    assert.equal(above.row_count, MAX_ROWS, 'the server cap still applies');
    const small = structured(await query(c, gen(3)));
    assert.equal(small.truncated, false);
    assert.deepEqual(small.rows, [[1], [2], [3]]);
  });

  test('Authorization: Bearer on /mcp works like the secret URL', async () => {
    const viaHeader = await client(`${server.base}/mcp`, { headers: { Authorization: `Bearer ${users.emu.token}` } });
    const viaUrl = await client(users.emu.url);
    const sql = 'SELECT name, age FROM people ORDER BY id';
    const a = structured(await query(viaHeader, sql));
    const b = structured(await query(viaUrl, sql));
    assert.deepEqual(a, b);
    assert.deepEqual(a.rows, [
      ['Ada', 36],
      ['Grace', 85],
    ]);
    const wrong = await rawPost(`${server.base}/mcp`, { jsonrpc: '2.0', id: 0, method: 'ping' }, {
      headers: { authorization: `Bearer ${'A'.repeat(43)}` },
    });
    assert.equal(wrong.status, 404);
    assert.equal(wrong.headers.get('www-authenticate'), null);
  });

  test('a database token refused later gives isError with a clear message and no secret', async () => {
    const c = await client(users.rot.url);
    structured(await query(c, 'SELECT 1'));
    await rot.setTokens({ rw: ['rotated-token-nobody-has'] });
    const msg = errorText(await query(c, 'SELECT 1'));
    assert.match(msg, /token|unauthori[sz]ed|401|credential|rejected|refused|invalid|expired/i, msg);
    for (const secret of [ROT_RW, users.rot.token, 'rotated-token-nobody-has']) {
      assert.ok(!msg.includes(secret), 'the message contains no token');
    }
  });

  // ------------------------------------------------------------ URL secrecy

  test('a wrong token in the URL is a bare 404, and there is no OAuth metadata', async () => {
    const fake = `${server.base}/u/${'B'.repeat(43)}/mcp`;
    const init = { jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: PROTOCOL_VERSION, capabilities: {}, clientInfo: { name: 't', version: '0' } } };
    const r = await rawPost(fake, init);
    assert.equal(r.status, 404);
    assert.equal(r.headers.get('www-authenticate'), null);
    assert.ok(!r.text.includes('B'.repeat(43)), 'the body does not echo the token');
    assert.doesNotMatch(r.text, /token|user|revok|unknown|secret|auth/i, `404 body reveals something: ${r.text}`);
    // a malformed token looks the same as a well-formed unknown one
    const short = await rawPost(`${server.base}/u/short/mcp`, init);
    assert.equal(short.status, 404);
    assert.equal(short.text, r.text);
    for (const p of [
      '/.well-known/oauth-protected-resource',
      '/.well-known/oauth-authorization-server',
      `/.well-known/oauth-protected-resource/u/${users.emu.token}/mcp`,
      `/.well-known/oauth-authorization-server/u/${users.emu.token}/mcp`,
      '/.well-known/openid-configuration',
    ]) {
      const g = await fetch(`${server.base}${p}`, { signal: AbortSignal.timeout(5000) });
      await g.arrayBuffer();
      assert.equal(g.status, 404, `GET ${p}`);
      assert.equal(g.headers.get('www-authenticate'), null);
    }
  });

  test('a revoked URL stops working (404)', async () => {
    const u = await add('revoke-me', { dbUrl: emu.url, dbToken: EMU_RW, viaStdin: true });
    const c = await client(u.url);
    structured(await query(c, 'SELECT 1'));
    const list = await listUsers(dataDir);
    const entry = list.users.find((x) => x.line.includes('spine-revoke-me'));
    assert.ok(entry, `user list shows the user:\n${list.stdout}`);
    const rv = await revokeUser(dataDir, entry.id);
    assert.equal(rv.code, 0, `revoke failed: ${rv.stderr}`);
    const after1 = await listUsers(dataDir);
    assert.ok(!after1.users.some((x) => x.id === entry.id), 'the revoked user is no longer listed');
    const init = { jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: PROTOCOL_VERSION, capabilities: {}, clientInfo: { name: 't', version: '0' } } };
    const r = await rawPost(u.url, init);
    assert.equal(r.status, 404);
    assert.equal(r.headers.get('www-authenticate'), null);
    const never = await rawPost(`${server.base}/u/${'C'.repeat(43)}/mcp`, init);
    assert.equal(r.text, never.text, 'a revoked URL looks exactly like one that never existed');
    // the session opened before the revocation stops working too: the call
    // is refused (HTTP 404 -> the client throws) or fails as a tool error
    let late;
    try {
      late = await query(c, 'SELECT 1');
    } catch {
      late = null;
    }
    if (late !== null) assert.equal(late.isError, true, `a revoked user's session still runs queries: ${JSON.stringify(late)}`);
  });

  // ------------------------------------------------------------ raw HTTP (§2, §8, §15)

  describe('raw HTTP', () => {
    let url;
    before(() => {
      url = users.local.url;
    });

    test('initialize: id 0 echoed, exact members, session id, capabilities objects', async () => {
      const s = await rawInitialize(url);
      const msg = s.init.json;
      assert.deepEqual(Object.keys(msg).sort(), ['id', 'jsonrpc', 'result']);
      assert.equal(msg.id, 0);
      assert.equal(msg.result.protocolVersion, PROTOCOL_VERSION);
      assert.equal(typeof msg.result.capabilities.tools, 'object');
      assert.equal(typeof msg.result.serverInfo.name, 'string');
      assert.equal(typeof msg.result.serverInfo.version, 'string');
      assert.match(s.sessionId ?? '', /^[\x21-\x7e]{16,}$/, 'a session id of visible ASCII is assigned');
    });

    test('an unknown protocol version is answered with a supported one', async () => {
      const r = await rawPost(url, { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2099-01-01', capabilities: {}, clientInfo: { name: 't', version: '0' } } });
      assert.equal(r.status, 200);
      assert.ok(['2025-11-25', '2025-06-18', '2025-03-26', '2024-11-05'].includes(r.json.result.protocolVersion));
    });

    test('POST of non-JSON is 400 with -32700', async () => {
      const r = await rawPost(url, '{this is not json');
      assert.equal(r.status, 400);
      assert.equal(r.json?.error?.code, -32700);
    });

    test('a JSON body that is not JSON-RPC is 400 with -32600', async () => {
      const r = await rawPost(url, { hello: 'world' });
      assert.equal(r.status, 400);
      assert.equal(r.json?.error?.code, -32600);
    });

    test('a non-JSON Content-Type is 415', async () => {
      const r = await rawPost(url, '{"jsonrpc":"2.0","id":1,"method":"ping"}', { headers: { 'content-type': 'text/plain' } });
      assert.equal(r.status, 415);
    });

    test('a notification gets 202 with an empty body', async () => {
      const s = await rawInitialize(url);
      const r = await rawPost(url, { jsonrpc: '2.0', method: 'notifications/initialized' }, { headers: s.headers });
      assert.equal(r.status, 202);
      assert.equal(r.text, '');
    });

    test('unknown method is 200 with -32601; unknown tool is -32602; ids keep their type', async () => {
      const s = await rawInitialize(url);
      const m = await rawPost(url, { jsonrpc: '2.0', id: 'abc', method: 'no/such/method' }, { headers: s.headers });
      assert.equal(m.status, 200);
      assert.equal(m.json.id, 'abc');
      assert.equal(m.json.error.code, -32601);
      assert.deepEqual(Object.keys(m.json).sort(), ['error', 'id', 'jsonrpc']);
      const t = await rawPost(url, { jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'no_such_tool', arguments: {} } }, { headers: s.headers });
      assert.equal(t.status, 200);
      assert.equal(t.json.id, 7);
      assert.equal(t.json.error.code, -32602);
      const p = await rawPost(url, { jsonrpc: '2.0', id: 8, method: 'ping' }, { headers: s.headers });
      assert.deepEqual(p.json, { jsonrpc: '2.0', id: 8, result: {} });
    });

    test('GET opens the session stream as text/event-stream; a session-less GET is 400, never 401', async () => {
      const s = await rawInitialize(url);
      const ac = new AbortController();
      const timer = setTimeout(() => ac.abort(), 5000);
      try {
        const g = await fetch(url, { headers: { accept: 'text/event-stream', ...s.headers }, signal: ac.signal });
        assert.equal(g.status, 200);
        assert.match(g.headers.get('content-type') ?? '', /^text\/event-stream/);
      } finally {
        clearTimeout(timer);
        ac.abort();
      }
      const probe = await fetch(url, { headers: { accept: 'application/json, text/event-stream' }, signal: AbortSignal.timeout(5000) });
      await probe.arrayBuffer();
      assert.ok([400, 405].includes(probe.status), `session-less GET probe: ${probe.status}`);
    });

    test('a request without Mcp-Session-Id after initialize is 400', async () => {
      await rawInitialize(url);
      const r = await rawPost(url, { jsonrpc: '2.0', id: 1, method: 'tools/list' }, { headers: { 'mcp-protocol-version': PROTOCOL_VERSION } });
      assert.equal(r.status, 400);
    });

    test('an unknown session id is 404', async () => {
      const r = await rawPost(url, { jsonrpc: '2.0', id: 1, method: 'tools/list' }, {
        headers: { 'mcp-session-id': 'no-such-session-0123456789abcdef', 'mcp-protocol-version': PROTOCOL_VERSION },
      });
      assert.equal(r.status, 404);
    });

    test('DELETE ends a session; the id is 404 afterwards', async () => {
      const s = await rawInitialize(url);
      const ok = await rawPost(url, { jsonrpc: '2.0', id: 1, method: 'tools/list' }, { headers: s.headers });
      assert.equal(ok.status, 200);
      const d = await fetch(url, { method: 'DELETE', headers: s.headers, signal: AbortSignal.timeout(5000) });
      await d.arrayBuffer();
      assert.ok([200, 204].includes(d.status), `DELETE: ${d.status}`);
      const gone = await rawPost(url, { jsonrpc: '2.0', id: 2, method: 'tools/list' }, { headers: s.headers });
      assert.equal(gone.status, 404);
    });

    test('a second initialize on a session is 400 with -32600', async () => {
      const s = await rawInitialize(url);
      const r = await rawPost(url, { jsonrpc: '2.0', id: 5, method: 'initialize', params: { protocolVersion: PROTOCOL_VERSION, capabilities: {}, clientInfo: { name: 't', version: '0' } } }, { headers: s.headers });
      assert.equal(r.status, 400);
      assert.equal(r.json?.error?.code, -32600);
    });

    test('an unsupported MCP-Protocol-Version is 400', async () => {
      const s = await rawInitialize(url);
      const r = await rawPost(url, { jsonrpc: '2.0', id: 1, method: 'tools/list' }, { headers: { ...s.headers, 'mcp-protocol-version': '1999-01-01' } });
      assert.equal(r.status, 400);
      const older = await rawPost(url, { jsonrpc: '2.0', id: 2, method: 'tools/list' }, { headers: { ...s.headers, 'mcp-protocol-version': '2025-03-26' } });
      assert.equal(older.status, 200, 'a different but supported version is accepted');
    });

    test('a body over the cap is 413', async () => {
      const s = await rawInitialize(url);
      const filler = 'x'.repeat(5 * 1024 * 1024);
      const r = await rawPost(url, `{"jsonrpc":"2.0","id":1,"method":"ping","params":{"pad":"${filler}"}}`, { headers: s.headers, timeoutMs: 30000 });
      assert.equal(r.status, 413);
    });

    test('a foreign Origin is 403 (requests without Origin work, as every other test shows)', async () => {
      const r = await rawPost(url, { jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: PROTOCOL_VERSION, capabilities: {}, clientInfo: { name: 't', version: '0' } } }, { headers: { origin: 'https://evil.example' } });
      assert.equal(r.status, 403);
    });

    test('the endpoint also answers with a trailing slash, without redirect', async () => {
      const r = await fetch(`${url}/`, {
        method: 'POST',
        redirect: 'manual',
        headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: PROTOCOL_VERSION, capabilities: {}, clientInfo: { name: 't', version: '0' } } }),
        signal: AbortSignal.timeout(5000),
      });
      await r.arrayBuffer();
      assert.equal(r.status, 200);
    });
  });

  // ------------------------------------------------------------ at rest

  test('the data directory holds no Turso token and no URL token', async () => {
    const files = [];
    async function walk(d) {
      for (const e of await fsp.readdir(d, { withFileTypes: true })) {
        const p = path.join(d, e.name);
        if (e.isDirectory()) await walk(p);
        else if (e.isFile()) files.push(p);
      }
    }
    await walk(dataDir);
    const names = files.map((f) => path.relative(dataDir, f));
    assert.ok(names.includes('store.db'), `store.db exists in the data dir (found ${names.join(', ')})`);
    const secrets = [LOCAL_TOKEN, EMU_RW, EMU_RO, ROT_RW];
    for (const u of Object.values(users)) secrets.push(u.token);
    const needles = [];
    for (const s of secrets) {
      needles.push(Buffer.from(s, 'utf8'));
      needles.push(Buffer.from(s, 'utf16le'));
    }
    for (const u of Object.values(users)) needles.push(Buffer.from(u.token, 'base64url')); // the raw 32 bytes
    for (const f of files) {
      const bytes = await fsp.readFile(f);
      for (const n of needles) assert.equal(bytes.indexOf(n), -1, `${path.relative(dataDir, f)} contains a secret`);
    }
  });
});
