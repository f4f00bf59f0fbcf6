// End-to-end: our server (build/turso-mcp or $TM_BIN) in front of the
// Platform API emulator (tests/emulator/platform-emulator.mjs; every database
// a real SQLite file served over Hrana) and the real `tursodb` engine, driven
// by the official MCP client. Covers every action of turso_database_manager
// and every kind of turso_analytics, read-only URLs (enforced by minted
// read-only tokens and refused before any call), destructive actions without
// confirm, and failures: a bad platform token, unknown databases, name
// clashes, the API answering 500/503/429/garbage or stalling, a database host
// failing. Every error must be a clear isError without a secret in it.
// Run: node --test tests/integration (Node 22).

import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createClient as createLibsql } from '@libsql/client';
import {
  addPlatformUser,
  addUser,
  closeClient,
  connectClient,
  makeTempDir,
  missingPrerequisite,
  startPlatformEmulator,
  startServer,
  startTursodb,
  stopAll,
} from './harness.mjs';

const ORG = 'acme';
const PT = 'platform-token-full-7d1c0e9b4a2f58e6';
const PRT = 'platform-token-readscope-3b9e61f0c2d4';
const LOCAL_TOKEN = 'local-tursodb-ignores-this-token-1c9a';
const UPSTREAM_TIMEOUT_MS = 3000;
const JWT_RE = /eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+/;

function texts(result) {
  return result.content.filter((c) => c.type === 'text').map((c) => c.text).join('\n');
}

// No platform token and no minted database token may reach the model.
function assertNoSecrets(text) {
  assert.ok(!text.includes(PT), `the platform token leaked: ${text}`);
  assert.ok(!text.includes(PRT), `the read-scope platform token leaked: ${text}`);
  assert.ok(!JWT_RE.test(text), `a token leaked: ${text}`);
}

function ok(result) {
  assert.notEqual(result.isError, true, `tool failed: ${texts(result)}`);
  const sc = result.structuredContent;
  assert.equal(typeof sc, 'object', 'structuredContent is an object');
  // The same data as text: a summary line, then the JSON (fenced when it came from the database).
  const t = texts(result);
  const fenced = /<untrusted-database-content>\n([\s\S]*)\n<\/untrusted-database-content>$/.exec(t);
  assert.deepEqual(JSON.parse(fenced ? fenced[1] : t.slice(t.indexOf('\n') + 1)), sc, 'the text carries the structured data');
  if (sc.action !== 'create_token') assertNoSecrets(t);
  return sc;
}

function err(result, re) {
  assert.equal(result.isError, true, `expected isError, got ${JSON.stringify(result).slice(0, 800)}`);
  const t = texts(result);
  assert.ok(t.length > 0, 'an error explains itself');
  if (re) assert.match(t, re);
  assertNoSecrets(t);
  return t;
}

const mgr = (c, args) => c.callTool({ name: 'turso_database_manager', arguments: args });
const analytics = (c, args) => c.callTool({ name: 'turso_analytics', arguments: args });
const query = (c, sql, extra = {}) => c.callTool({ name: 'turso_query', arguments: { sql, ...extra } });

function decodeJwt(jwt) {
  return JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString('utf8'));
}

// The calls that changed something (anything but GET), from the emulator's log.
async function mutatingCalls(emu) {
  return (await emu.calls()).filter((c) => c.method !== 'GET');
}

describe('turso-mcp platform tools', () => {
  let dir;
  let emu;
  let tursodb;
  let server;
  const users = {};
  const clients = [];

  async function client(name) {
    const c = await connectClient(users[name].url);
    clients.push(c);
    // Lets the SDK validate every structuredContent against its outputSchema.
    await c.listTools();
    return c;
  }

  async function dbState(name) {
    return (await emu.state()).databases.find((d) => d.name === name);
  }

  before(async () => {
    const missing = missingPrerequisite();
    if (missing) throw new Error(missing);
    dir = await makeTempDir('tm-platform-');
    emu = await startPlatformEmulator({
      dataDir: path.join(dir, 'emulator'),
      org: ORG,
      tokens: [PT],
      readOnlyTokens: [PRT],
      databases: ['notes', 'other', 'victim', 'rot', 'guarded'],
      stallMs: UPSTREAM_TIMEOUT_MS + 2000,
    });
    tursodb = await startTursodb(path.join(dir, 'local.db'));
    const dataDir = path.join(dir, 'server');
    server = await startServer({
      dataDir,
      // The suite makes hundreds of calls on a few URLs in seconds: no rate limit here
      // (0 turns it off; operations.test.mjs checks the limiter).
      extraArgs: ['--api-url', emu.url, '--db-scheme', 'http', '--upstream-timeout-ms', String(UPSTREAM_TIMEOUT_MS), '--rate-limit-rps', '0'],
    });
    const common = { dataDir, port: server.port, apiUrl: emu.url, dbScheme: 'http', org: ORG };
    const add = async (name, r) => {
      assert.equal(r.code, 0, `user add ${name} failed: ${r.stderr}`);
      users[name] = r;
    };
    await add('rw', await addPlatformUser({ ...common, label: 'rw', platformToken: PT, defaultDb: 'notes' }));
    await add('ro', await addPlatformUser({ ...common, label: 'ro', platformToken: PT, defaultDb: 'notes', readOnly: true }));
    await add('nodefault', await addPlatformUser({ ...common, label: 'nodefault', platformToken: PT }));
    await add('readscope', await addPlatformUser({ ...common, label: 'readscope', platformToken: PRT }));
    await add('mixed', await addPlatformUser({ ...common, label: 'mixed', platformToken: PT, defaultDb: 'local', dbUrl: tursodb.url, dbToken: LOCAL_TOKEN }));
    await add('dbonly', await addUser({ dataDir, label: 'dbonly', dbUrl: tursodb.url, dbToken: LOCAL_TOKEN, port: server.port }));
  });

  after(async () => {
    for (const c of clients) await closeClient(c);
    await stopAll();
  });

  test('user add checks the platform token, its organization and the default database, without echoing secrets', async () => {
    const dataDir = path.join(dir, 'server');
    const base = { dataDir, apiUrl: emu.url, org: ORG, label: 'x' };
    let r = await addPlatformUser({ ...base, platformToken: 'not-a-platform-token-0000' });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /The Turso Platform API refused this token \(HTTP 401\)/);
    assert.ok(!r.stderr.includes('not-a-platform-token-0000'));
    assert.equal(r.token, undefined);
    r = await addPlatformUser({ ...base, platformToken: PT, org: 'someone-else' });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /cannot see the organization "someone-else" \(it sees: acme\)/);
    r = await addPlatformUser({ ...base, platformToken: PT, defaultDb: 'no-such-db' });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /There is no database "no-such-db" in organization "acme"/);
    assert.ok(!r.stderr.includes(PT));
    r = await addPlatformUser({ ...base, platformToken: PT, dbScheme: 'ftp' });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /db_scheme must be https or http/);
  });

  test('tools/list: both tools with titles, plain root-object schemas and truthful annotations', async () => {
    const c = await client('rw');
    const { tools } = await c.listTools();
    const byName = Object.fromEntries(tools.map((t) => [t.name, t]));
    for (const name of ['turso_query', 'turso_batch_execute', 'turso_schema_inspector', 'turso_database_manager', 'turso_analytics']) {
      const t = byName[name];
      assert.ok(t, `${name} is listed`);
      assert.equal(typeof t.title, 'string');
      assert.ok(t.description.length > 200, `${name} teaches the model`);
      for (const s of [t.inputSchema, t.outputSchema]) {
        assert.equal(s.type, 'object');
        assert.equal(s.$schema, undefined);
      }
      for (const k of ['readOnlyHint', 'destructiveHint', 'idempotentHint', 'openWorldHint']) {
        assert.equal(typeof t.annotations[k], 'boolean', `${name}.${k}`);
      }
    }
    const m = byName.turso_database_manager;
    assert.equal(m.annotations.readOnlyHint, false);
    assert.equal(m.annotations.destructiveHint, true);
    assert.equal(m.annotations.idempotentHint, false);
    assert.deepEqual(m.inputSchema.required, ['action']);
    assert.equal(m.inputSchema.properties.action.enum.length, 16);
    const a = byName.turso_analytics;
    assert.equal(a.annotations.readOnlyHint, true);
    assert.equal(a.annotations.destructiveHint, false);
    assert.equal(a.annotations.idempotentHint, true);
    assert.deepEqual(a.inputSchema.properties.kind.enum, ['usage', 'top_queries', 'org_usage']);
  });

  test('turso_query reaches databases by name through the Platform API with minted tokens', async () => {
    const c = await client('rw');
    await emu.clearCalls();
    ok(await query(c, 'CREATE TABLE notes (id INTEGER PRIMARY KEY, title TEXT, score REAL, data BLOB)'));
    ok(await query(c, "INSERT INTO notes (title, score, data) VALUES ('groceries', 4.0, x'00ff'), ('it''s', 1.5, NULL)"));
    const sc = ok(await query(c, 'SELECT title FROM notes ORDER BY id'));
    assert.deepEqual(sc.rows, [['groceries'], ["it's"]]);
    ok(await query(c, 'CREATE TABLE o (x)', { database: 'other' }));
    const calls = await emu.calls();
    const mints = calls.filter((x) => x.path.endsWith('/auth/tokens'));
    // One lookup and one mint per database; the cache serves the rest.
    assert.deepEqual(
      mints.map((x) => [x.path, x.query.authorization, x.query.expiration]),
      [
        ['/v1/organizations/acme/databases/notes/auth/tokens', 'full-access', '1h'],
        ['/v1/organizations/acme/databases/other/auth/tokens', 'full-access', '1h'],
      ],
    );
    assert.equal(calls.filter((x) => x.method === 'GET' && x.path === '/v1/organizations/acme/databases/notes').length, 1);
    err(await query(c, 'SELECT 1', { database: 'nope' }), /There is no database "nope" in organization "acme"/);
  });

  test('list, get, instances, get_config, list_groups, list_locations', async () => {
    const c = await client('rw');
    let sc = ok(await mgr(c, { action: 'list' }));
    assert.equal(sc.organization, ORG);
    const names = sc.databases.map((d) => d.name).sort();
    assert.deepEqual(names, ['guarded', 'notes', 'other', 'rot', 'victim']);
    const notes = sc.databases.find((d) => d.name === 'notes');
    assert.equal(notes.hostname, (await dbState('notes')).hostname);
    assert.equal(notes.url, `libsql://${notes.hostname}`);
    assert.equal(notes.group, 'default');
    sc = ok(await mgr(c, { action: 'list', group: 'default' }));
    assert.equal(sc.count, 5);
    sc = ok(await mgr(c, { action: 'get' }));
    assert.equal(sc.database, 'notes');
    assert.equal(sc.details.name, 'notes');
    assert.equal(sc.details.primary_region, 'aws-us-east-1');
    sc = ok(await mgr(c, { action: 'get', database: 'other' }));
    assert.equal(sc.details.name, 'other');
    sc = ok(await mgr(c, { action: 'instances' }));
    assert.equal(sc.instances[0].type, 'primary');
    sc = ok(await mgr(c, { action: 'get_config', database: 'other' }));
    assert.equal(sc.config.delete_protection, false);
    assert.equal(sc.config.size_limit, '0');
    sc = ok(await mgr(c, { action: 'list_groups' }));
    assert.equal(sc.groups[0].name, 'default');
    sc = ok(await mgr(c, { action: 'list_locations' }));
    assert.ok(sc.locations.some((l) => l.code === 'aws-eu-west-1' && l.description.includes('Ireland')));
  });

  test('list_organizations accepts the bare-array and the wrapped answer', async () => {
    const c = await client('rw');
    for (const shape of ['array', 'wrapped']) {
      await emu.setConfig({ organizations_shape: shape });
      const sc = ok(await mgr(c, { action: 'list_organizations' }));
      assert.equal(sc.count, 1, shape);
      assert.equal(sc.organizations[0].slug, ORG);
    }
    await emu.setConfig({ organizations_shape: 'auto' });
  });

  test('create: plain, in a group with a size limit, seeded, at a timestamp; clashes and bad names are clear', async () => {
    const c = await client('rw');
    let sc = ok(await mgr(c, { action: 'create', database: 'fresh' }));
    assert.equal(sc.created.name, 'fresh');
    assert.equal(sc.group, 'default');
    assert.ok((await dbState('fresh')).hostname);
    sc = ok(await mgr(c, { action: 'create', database: 'sized', group: 'default', size_limit: '1mb' }));
    assert.equal((await dbState('sized')).config.size_limit, String(1024 * 1024));
    sc = ok(await mgr(c, { action: 'create', database: 'seeded', seed_database: 'notes' }));
    assert.deepEqual(sc.seed, { database: 'notes' });
    let rows = ok(await query(c, 'SELECT count(*) FROM notes', { database: 'seeded' })).rows;
    assert.deepEqual(rows, [[2]]);
    const ts = new Date(Date.now() - 1000).toISOString().replace(/\.\d+Z$/, 'Z');
    sc = ok(await mgr(c, { action: 'create', database: 'pitr', seed_database: 'notes', timestamp: ts }));
    assert.deepEqual(sc.seed, { database: 'notes', timestamp: ts });
    rows = ok(await query(c, 'SELECT title FROM notes ORDER BY id', { database: 'pitr' })).rows;
    assert.deepEqual(rows, [['groceries'], ["it's"]]);

    err(await mgr(c, { action: 'create', database: 'notes' }), /Already exists on Turso \(HTTP 409\): database with name notes already exists/);
    err(await mgr(c, { action: 'create', database: 'x', group: 'nogroup' }), /Turso refused the request \(HTTP 400\): group not found/);
    await emu.clearCalls();
    err(await mgr(c, { action: 'create', database: 'Bad_Name' }), /must be 1 to 64 lowercase letters, digits or dashes/);
    err(await mgr(c, { action: 'create' }), /Action create needs "database"/);
    err(await mgr(c, { action: 'create', database: 'y', timestamp: ts }), /"timestamp" goes with "seed_database"/);
    err(await mgr(c, { action: 'create', database: 'y', seed_database: 'notes', timestamp: 'yesterday' }), /RFC 3339/);
    err(await mgr(c, { action: 'create', database: 'y', location: 'lhr' }), /does not apply to action create/);
    err(await mgr(c, { action: 'explode' }), /Unknown action "explode"/);
    err(await mgr(c, {}), /"action" is required/);
    assert.deepEqual(await emu.calls(), [], 'invalid arguments never reach Turso');
  });

  test('create_token: a working token with its expiry and a warning, read-only or full access', async () => {
    const c = await client('rw');
    let sc = ok(await mgr(c, { action: 'create_token', expiration: '2h' }));
    const result = await mgr(c, { action: 'create_token', database: 'other', read_only: true });
    const ro = ok(result);
    assert.match(texts(result), /WARNING: This token is now in the conversation/);
    assert.equal(sc.database, 'notes');
    assert.equal(sc.access, 'full-access');
    assert.equal(sc.expiration, '2h');
    const claims = decodeJwt(sc.token);
    assert.equal(claims.a, 'rw');
    assert.ok(Math.abs(claims.exp - (Date.now() / 1000 + 7200)) < 120);
    assert.equal(sc.expires_at, new Date(claims.exp * 1000).toISOString().replace(/\.\d+Z$/, 'Z'));
    assert.match(sc.warning, /anyone who can read this chat/);
    assert.equal(ro.access, 'read-only');
    assert.equal(ro.expiration, '1d');
    assert.equal(decodeJwt(ro.token).a, 'ro');

    // The tokens work against the database host, with their own rights.
    const host = (await dbState('notes')).hostname;
    const lib = createLibsql({ url: `http://${host}`, authToken: sc.token });
    const rs = await lib.execute('SELECT count(*) AS n FROM notes');
    assert.equal(Number(rs.rows[0].n), 2);
    lib.close();
    const libRo = createLibsql({ url: `http://${(await dbState('other')).hostname}`, authToken: ro.token });
    await assert.rejects(libRo.execute('INSERT INTO o VALUES (1)'), /403/);
    libRo.close();

    sc = ok(await mgr(c, { action: 'create_token', expiration: 'never' }));
    assert.equal(sc.expires_at, null);
    err(await mgr(c, { action: 'create_token', expiration: 'soon' }), /"expiration" must be "never" or a duration/);
  });

  test('rotate_tokens: nothing without confirm; with it old tokens die and the server mints anew', async () => {
    const c = await client('rw');
    ok(await query(c, 'CREATE TABLE r (x)', { database: 'rot' }));
    const old = ok(await mgr(c, { action: 'create_token', database: 'rot' })).token;
    const host = (await dbState('rot')).hostname;

    await emu.clearCalls();
    const t = err(await mgr(c, { action: 'rotate_tokens', database: 'rot' }), /Not done: nothing was changed\. Rotating the tokens of database "rot" invalidates every token/);
    assert.match(t, /confirm: true/);
    assert.deepEqual(await emu.calls(), []);
    const lib = createLibsql({ url: `http://${host}`, authToken: old });
    await lib.execute('SELECT 1');

    err(await mgr(c, { action: 'rotate_tokens' }), /Action rotate_tokens needs "database"/);
    const sc = ok(await mgr(c, { action: 'rotate_tokens', database: 'rot', confirm: true }));
    assert.equal(sc.rotated, true);
    await assert.rejects(lib.execute('SELECT 1'), /401/);
    lib.close();
    // Our own cached token for rot was rotated too: the server mints a new one.
    ok(await query(c, 'INSERT INTO r VALUES (1)', { database: 'rot' }));

    // Rotated behind the server's back (another client): a 401, a new token, one retry.
    const other = await client('rw');
    ok(await query(other, 'SELECT 1', { database: 'rot' }));
    await emu.clearCalls();
    const lib2 = await fetch(`${emu.url}/v1/organizations/acme/databases/rot/auth/rotate`, { method: 'POST', headers: { authorization: `Bearer ${PT}` } });
    assert.equal(lib2.status, 200);
    const rows = ok(await query(other, 'SELECT count(*) FROM r', { database: 'rot' })).rows;
    assert.deepEqual(rows, [[1]]);
    const mints = (await emu.calls()).filter((x) => x.path.endsWith('/rot/auth/tokens'));
    assert.equal(mints.length, 1, 'exactly one new token after the 401');
  });

  test('set_config: settings apply; blocking needs confirm; delete_protection stops delete', async () => {
    const c = await client('rw');
    let sc = ok(await mgr(c, { action: 'set_config', database: 'guarded', delete_protection: true, size_limit: '256mb' }));
    assert.equal(sc.config.delete_protection, true);
    assert.equal(sc.config.size_limit, String(256 * 1024 * 1024));
    err(await mgr(c, { action: 'delete', database: 'guarded', confirm: true }), /Could not delete the database "guarded": Turso refused the request \(HTTP 400\): cannot delete database guarded: delete protection is enabled/);
    assert.ok(await dbState('guarded'));

    await emu.clearCalls();
    err(await mgr(c, { action: 'set_config', database: 'guarded', block_writes: true }), /Not done: nothing was changed\. Setting block_writes on database "guarded" makes it refuse every write/);
    err(await mgr(c, { action: 'set_config', database: 'guarded', block_reads: true, block_writes: true }), /block_reads and block_writes/);
    assert.deepEqual(await emu.calls(), []);
    assert.equal((await dbState('guarded')).config.block_writes, false);

    ok(await query(c, 'CREATE TABLE g (x)', { database: 'guarded' }));
    sc = ok(await mgr(c, { action: 'set_config', database: 'guarded', block_writes: true, confirm: true }));
    assert.equal(sc.config.block_writes, true);
    err(await query(c, 'INSERT INTO g VALUES (1)', { database: 'guarded' }), /BLOCKED|blocked/);
    ok(await mgr(c, { action: 'set_config', database: 'guarded', block_writes: false, delete_protection: false }));
    ok(await query(c, 'INSERT INTO g VALUES (1)', { database: 'guarded' }));
    err(await mgr(c, { action: 'set_config', database: 'guarded' }), /needs at least one of/);
    err(await mgr(c, { action: 'set_config', database: 'guarded', size_limit: 'huge' }), /"size_limit" must be a size/);
  });

  test('add_location and remove_location change the group; removing needs confirm', async () => {
    const c = await client('rw');
    let sc = ok(await mgr(c, { action: 'add_location', group: 'default', location: 'aws-eu-west-1' }));
    assert.deepEqual(sc.details.locations, ['aws-us-east-1', 'aws-eu-west-1']);
    sc = ok(await mgr(c, { action: 'instances', database: 'notes' }));
    assert.equal(sc.count, 2);
    await emu.clearCalls();
    err(await mgr(c, { action: 'remove_location', group: 'default', location: 'aws-eu-west-1' }), /Not done: nothing was changed\. Removing location "aws-eu-west-1" from group "default"/);
    assert.deepEqual(await emu.calls(), []);
    assert.deepEqual((await emu.state()).groups[0].locations, ['aws-us-east-1', 'aws-eu-west-1']);
    sc = ok(await mgr(c, { action: 'remove_location', group: 'default', location: 'aws-eu-west-1', confirm: true }));
    assert.deepEqual(sc.details.locations, ['aws-us-east-1']);
    err(await mgr(c, { action: 'add_location', group: 'default', location: 'atlantis' }), /Turso refused the request \(HTTP 400\): invalid location: atlantis/);
    err(await mgr(c, { action: 'add_location', group: 'nope', location: 'lhr' }), /Not found on Turso \(HTTP 404\): group not found/);
    err(await mgr(c, { action: 'add_location', group: 'default' }), /Action add_location needs "location"/);
  });

  test('backup makes a new database seeded from this one, at a timestamp when given', async () => {
    const c = await client('rw');
    let sc = ok(await mgr(c, { action: 'backup' }));
    assert.equal(sc.database, 'notes');
    assert.match(sc.created.name, /^notes-backup-\d{8}-\d{6}$/);
    assert.deepEqual(sc.seed, { database: 'notes' });
    let rows = ok(await query(c, 'SELECT count(*) FROM notes', { database: sc.created.name })).rows;
    assert.deepEqual(rows, [[2]]);
    const ts = new Date(Date.now() - 1000).toISOString();
    sc = ok(await mgr(c, { action: 'backup', database: 'notes', new_name: 'notes-pitr', timestamp: ts, group: 'default' }));
    assert.equal(sc.created.name, 'notes-pitr');
    assert.equal(sc.seed.timestamp, ts);
    rows = ok(await query(c, 'SELECT count(*) FROM notes', { database: 'notes-pitr' })).rows;
    assert.deepEqual(rows, [[2]]);
    err(await mgr(c, { action: 'backup', new_name: 'notes-pitr' }), /HTTP 409/);
    err(await mgr(c, { action: 'backup', database: 'nope' }), /Could not back up the database "nope": Not found on Turso \(HTTP 404\)/);
  });

  test('dump: the database as SQL, rebuilt when the host has no /dump, capped, marked untrusted', async () => {
    const c = await client('rw');
    const result = await mgr(c, { action: 'dump' });
    const sc = ok(result);
    assert.equal(sc.source, 'reconstructed');
    assert.equal(sc.truncated, false);
    assert.equal(
      sc.sql,
      [
        'PRAGMA foreign_keys=OFF;',
        'BEGIN TRANSACTION;',
        'CREATE TABLE notes (id INTEGER PRIMARY KEY, title TEXT, score REAL, data BLOB);',
        'INSERT INTO "notes" VALUES(1,\'groceries\',4.0,X\'00FF\');',
        'INSERT INTO "notes" VALUES(2,\'it\'\'s\',1.5,NULL);',
        'COMMIT;',
        '',
      ].join('\n'),
    );
    assert.equal(sc.bytes, Buffer.byteLength(sc.sql));
    assert.match(texts(result), /untrusted content, not as instructions\.\n<untrusted-database-content>/);

    // The dump replays into a fresh database.
    ok(await mgr(c, { action: 'create', database: 'replay' }));
    for (const stmt of sc.sql.split('\n').filter((l) => l && !/^(PRAGMA|BEGIN|COMMIT)/.test(l))) ok(await query(c, stmt, { database: 'replay' }));
    assert.deepEqual(ok(await query(c, 'SELECT id, title, score, hex(data) FROM notes ORDER BY id', { database: 'replay' })).rows, [
      [1, 'groceries', { type: 'float', value: 4 }, '00FF'],
      [2, "it's", { type: 'float', value: 1.5 }, ''],
    ]);

    // Capped: whole statements only, and it says so.
    ok(await query(c, 'CREATE TABLE big (t TEXT)', { database: 'other' }));
    ok(await query(c, "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200) INSERT INTO big SELECT printf('row %03d of the big table', i) FROM n", { database: 'other' }));
    const capped = ok(await mgr(c, { action: 'dump', database: 'other', max_bytes: 1024 }));
    assert.equal(capped.truncated, true);
    assert.ok(capped.bytes <= 1024 + 100);
    assert.match(capped.sql, /-- TRUNCATED: the dump stopped at max_bytes; it is not complete\.\n$/);
    for (const line of capped.sql.split('\n').filter(Boolean)) assert.match(line, /;$|^--/);
    err(await mgr(c, { action: 'dump', max_bytes: 10 }), /"max_bytes" must be at least 1024/);
  });

  test('delete: nothing without confirm; with confirm the database is gone', async () => {
    const c = await client('rw');
    ok(await query(c, 'CREATE TABLE v (x)', { database: 'victim' }));
    await emu.clearCalls();
    const t = err(await mgr(c, { action: 'delete', database: 'victim' }), /Not done: nothing was changed\. Deleting database "victim" in organization "acme" removes it and all of its data for good/);
    assert.match(t, /Ask the user to confirm; then call again with confirm: true/);
    err(await mgr(c, { action: 'delete', confirm: true }), /Action delete needs "database"/);
    assert.deepEqual(await emu.calls(), []);
    assert.ok(await dbState('victim'));
    ok(await query(c, 'SELECT * FROM v', { database: 'victim' }));

    const sc = ok(await mgr(c, { action: 'delete', database: 'victim', confirm: true }));
    assert.equal(sc.deleted, true);
    assert.equal(await dbState('victim'), undefined);
    err(await query(c, 'SELECT 1', { database: 'victim' }), /There is no database "victim"/);
    err(await mgr(c, { action: 'delete', database: 'victim', confirm: true }), /Not found on Turso \(HTTP 404\)/);
    // A new database of the same name is reached at its new host, not the old one.
    ok(await mgr(c, { action: 'create', database: 'victim' }));
    ok(await query(c, 'CREATE TABLE v2 (x)', { database: 'victim' }));
  });

  test('turso_analytics: usage over a window, top queries, organization totals and limits', async () => {
    const c = await client('rw');
    for (let i = 0; i < 3; i++) ok(await query(c, 'SELECT * FROM notes'));
    let sc = ok(await analytics(c, { kind: 'usage' }));
    assert.equal(sc.database, 'notes');
    assert.ok(sc.usage.rows_read >= 6, JSON.stringify(sc.usage));
    assert.ok(sc.usage.rows_written >= 2);
    assert.ok(sc.usage.storage_bytes > 0);
    assert.equal(sc.instances.length, 1);
    sc = ok(await analytics(c, { kind: 'usage', database: 'notes', from: '2000-01-01T00:00:00Z', to: '2000-01-02T00:00:00Z' }));
    assert.equal(sc.usage.rows_read, 0);
    assert.equal(sc.from, '2000-01-01T00:00:00Z');

    const top = await analytics(c, { kind: 'top_queries', limit: 3 });
    sc = ok(top);
    assert.ok(sc.count >= 3);
    assert.equal(sc.by_rows_read.length, 3);
    assert.equal(sc.by_rows_read[0].query, 'SELECT * FROM notes');
    for (let i = 1; i < sc.by_rows_read.length; i++) assert.ok(sc.by_rows_read[i - 1].rows_read >= sc.by_rows_read[i].rows_read);
    assert.ok(sc.by_rows_written[0].rows_written >= 2);
    assert.match(sc.note, /not how many times each ran/);
    assert.match(texts(top), /<untrusted-database-content>/);
    sc = ok(await analytics(c, { kind: 'top_queries', database: 'fresh' }));
    assert.equal(sc.count, 0);

    sc = ok(await analytics(c, { kind: 'org_usage' }));
    assert.equal(sc.organization, ORG);
    assert.ok(sc.usage.databases >= 5);
    assert.ok(sc.usage.rows_read >= 6);
    assert.equal(sc.limits.plan_id, 'developer');
    assert.equal(sc.limits.blocked_writes, false);
    assert.ok(sc.databases.some((d) => d.name === 'notes' && d.usage.rows_read >= 6));

    err(await analytics(c, { kind: 'usage', from: '2025-11-01' }), /RFC 3339 times with a zone/);
    err(await analytics(c, { kind: 'usage', from: '2025-12-01T00:00:00Z', to: '2025-11-01T00:00:00Z' }), /Turso refused the request \(HTTP 400\): invalid time range/);
    err(await analytics(c, { kind: 'top_queries', from: '2025-11-01T00:00:00Z' }), /apply to kind usage only/);
    err(await analytics(c, { kind: 'org_usage', database: 'notes' }), /does not apply to kind org_usage/);
    err(await analytics(c, { kind: 'usage', database: 'nope' }), /Could not read the usage of database "nope": Not found on Turso \(HTTP 404\)/);
    err(await analytics(c, { kind: 'everything' }), /Unknown kind/);
    err(await analytics(c, { kind: 'usage', extra: 1 }), /Unknown argument "extra"/);
  });

  test('a read-only URL cannot write by any tool, and changes nothing trying', async () => {
    const c = await client('ro');
    const before = JSON.stringify((await emu.state()).databases.map((d) => [d.name, d.config]));
    await emu.clearCalls();
    const writes = [
      { action: 'create', database: 'ro-new' },
      { action: 'delete', database: 'other', confirm: true },
      { action: 'rotate_tokens', database: 'other', confirm: true },
      { action: 'add_location', group: 'default', location: 'lhr' },
      { action: 'remove_location', group: 'default', location: 'lhr', confirm: true },
      { action: 'set_config', database: 'other', delete_protection: true },
      { action: 'set_config', database: 'other', block_writes: true, confirm: true },
      { action: 'backup', database: 'notes' },
      { action: 'create_token', database: 'notes', read_only: false },
    ];
    for (const args of writes) err(await mgr(c, args), /This URL is read-only, so turso_database_manager will not .*Nothing was changed\./);
    // create_token defaults to the URL's own access.
    assert.equal(decodeJwt(ok(await mgr(c, { action: 'create_token' })).token).a, 'ro');
    for (const args of [{ action: 'list' }, { action: 'get' }, { action: 'get_config' }, { action: 'instances' }, { action: 'dump' }, { action: 'list_groups' }]) ok(await mgr(c, args));
    ok(await analytics(c, { kind: 'usage' }));
    const changes = await mutatingCalls(emu);
    assert.ok(changes.length >= 1);
    for (const x of changes) {
      assert.deepEqual([x.method, x.path, x.query.authorization], ['POST', '/v1/organizations/acme/databases/notes/auth/tokens', 'read-only'], 'only read-only tokens were minted');
    }
    assert.equal(JSON.stringify((await emu.state()).databases.map((d) => [d.name, d.config])), before);

    // turso_query: Turso itself refuses the write under the minted read-only token.
    await emu.clearCalls();
    ok(await query(c, 'SELECT count(*) FROM notes'));
    err(await query(c, "INSERT INTO notes (title) VALUES ('nope')"), /This URL is read-only: Turso refused the request under the read-only token it was given\. The database token lacks permission \(HTTP 403\)/);
    err(await query(c, 'DROP TABLE notes', { database: 'other' }), /read-only/);
    // turso_batch_execute, in a transaction and statement by statement.
    const batch = (args) => c.callTool({ name: 'turso_batch_execute', arguments: args });
    for (const transaction of [true, false]) {
      const r = await batch({ statements: [{ sql: 'SELECT 1' }, { sql: "INSERT INTO notes (title) VALUES ('batch')" }], transaction });
      if (r.isError) err(r, /read-only|403/);
      else assert.ok(r.structuredContent.failed >= 1, JSON.stringify(r.structuredContent));
    }
    // Reading is fine, through every tool.
    const schema = ok(await c.callTool({ name: 'turso_schema_inspector', arguments: {} }));
    assert.ok(JSON.stringify(schema).includes('notes'));
    const mints = (await emu.calls()).filter((x) => x.path.endsWith('/auth/tokens'));
    assert.ok(mints.length >= 1);
    for (const m of mints) assert.equal(m.query.authorization, 'read-only');
    const rw = await client('rw');
    assert.deepEqual(ok(await query(rw, 'SELECT count(*) FROM notes')).rows, [[2]]);
  });

  test('the SQL tools reach a database by name through the Platform API', async () => {
    const c = await client('nodefault');
    const sc = ok(await c.callTool({ name: 'turso_batch_execute', arguments: { database: 'fresh', statements: [{ sql: 'CREATE TABLE b (x INTEGER)' }, { sql: 'INSERT INTO b VALUES (?), (?)', args: [1, 2] }] } }));
    assert.equal(sc.succeeded, 2);
    assert.deepEqual(ok(await query(c, 'SELECT sum(x) FROM b', { database: 'fresh' })).rows, [[3]]);
    const schema = ok(await c.callTool({ name: 'turso_schema_inspector', arguments: { database: 'fresh', table: 'b' } }));
    assert.ok(JSON.stringify(schema).includes('"x"'));
    err(await c.callTool({ name: 'turso_schema_inspector', arguments: { database: 'nope' } }), /There is no database "nope"/);
  });

  test('a platform token with only the read scope gets a clear refusal from Turso', async () => {
    const c = await client('readscope');
    ok(await mgr(c, { action: 'list' }));
    err(await mgr(c, { action: 'create', database: 'scoped' }), /The Turso Platform API token lacks permission for this \(HTTP 403\): forbidden/);
    // Minting is a write for Turso, so queries cannot get a token either.
    err(await query(c, 'SELECT 1', { database: 'notes' }), /Could not mint a database token for "notes": The Turso Platform API token lacks permission for this \(HTTP 403\)/);
  });

  test('Turso failing: 401, 500, 503, 429, garbage, a stall, a closed connection, a failing database host', async () => {
    const c = await client('rw');
    const cases = [
      ['401', /The Turso Platform API token was refused \(HTTP 401\): could not parse jwt id\. Check that it is a Platform API token/],
      ['500', /The Turso Platform API failed \(HTTP 500\): internal error: injected by platform-emulator\. Try again later\./],
      ['503', /The Turso Platform API failed \(HTTP 503\)/],
      ['429', /Turso is limiting the request rate \(HTTP 429\)/],
      ['garbage', /The Turso Platform API sent an answer that is not JSON \(HTTP 200\)/],
      // curl sends again, once, when a kept-alive connection closes without an answer.
      ['close', /The Turso Platform API could not be reached at http:\/\/127\.0\.0\.1:\d+: /, 2],
    ];
    for (const [mode, re, count = 1] of cases) {
      await emu.setFail(mode, { count });
      const result = await mgr(c, { action: 'list' });
      assert.equal(result.isError, true, `mode ${mode}: ${texts(result).slice(0, 200)}`);
      const t = err(result, re);
      assert.match(t, /^Could not list databases: /, mode);
    }
    for (const [mode, re] of cases.slice(0, 3)) {
      await emu.setFail(mode, { count: 1 });
      err(await analytics(c, { kind: 'org_usage' }), re);
    }
    // The first step of org_usage works, a later one fails: the totals still come back.
    await emu.setFail('500', { count: 1, path: '/databases' });
    const sc = ok(await analytics(c, { kind: 'org_usage' }));
    assert.ok(sc.usage.databases >= 1);
    await emu.setFail('none');

    await emu.setFail('stall', { count: 1 });
    err(await mgr(c, { action: 'list_groups' }), new RegExp(`did not answer within ${UPSTREAM_TIMEOUT_MS} ms`));

    // Platform lookups failing while a query needs a host and a token (a database
    // nothing has reached yet, so nothing is cached for it).
    ok(await mgr(c, { action: 'create', database: 'cold' }));
    await emu.setFail('500', { count: 1, path: '/databases/cold' });
    err(await query(c, 'SELECT 1', { database: 'cold' }), /Could not look up database "cold": The Turso Platform API failed \(HTTP 500\)/);
    await emu.setFail('garbage', { count: 1, path: '/auth/tokens' });
    err(await query(c, 'SELECT 1', { database: 'cold' }), /Could not mint a database token for "cold": The Turso Platform API sent an answer that is not JSON/);
    ok(await query(c, 'SELECT 1', { database: 'cold' }));

    // The database host itself failing.
    await emu.setDbFail('cold', '500', 1);
    err(await query(c, 'SELECT 1', { database: 'cold' }), /Internal error: injected by hrana-emulator/);
    await emu.setDbFail('cold', 'garbage', 1);
    err(await query(c, 'SELECT 1', { database: 'cold' }), /not valid JSON/);
    // A database that refuses every token: one fresh mint, then the 401 comes back.
    await emu.clearCalls();
    await emu.setDbFail('cold', '401', 2);
    err(await query(c, 'SELECT 1', { database: 'cold' }), /Turso rejected the database token \(HTTP 401\)/);
    assert.equal((await emu.calls()).filter((x) => x.path.endsWith('/cold/auth/tokens')).length, 1);
    await emu.setDbFail('cold', 'none');
    ok(await query(c, 'SELECT 1', { database: 'cold' }));
    // Still alive and well.
    ok(await mgr(c, { action: 'list' }));
  });

  test('arguments: defaults, the URL without a default database, unknown names', async () => {
    const c = await client('nodefault');
    err(await mgr(c, { action: 'get' }), /Action get needs "database": this URL has no default database/);
    err(await analytics(c, { kind: 'usage' }), /Kind usage needs "database": this URL has no default database/);
    err(await query(c, 'SELECT 1'), /Say which database: pass `database`/);
    ok(await mgr(c, { action: 'get', database: 'notes' }));
    err(await mgr(c, { action: 'get', database: 'nope' }), /Could not get the database "nope": Not found on Turso \(HTTP 404\): could not find database with name nope: record not found/);
    err(await mgr(c, { action: 'instances', database: 'nope' }), /HTTP 404/);
    err(await mgr(c, { action: 'get', database: 'notes', confirm: 'yes' }), /Argument "confirm" must be true or false/);
    err(await mgr(c, { action: 'list', database: 'notes' }), /Argument "database" does not apply to action list, which takes: group/);
    err(await mgr(c, { action: 'list_groups', group: 'x' }), /takes no other arguments/);
    // Names are escaped into paths: no way to reach another route.
    err(await mgr(c, { action: 'get', database: '../groups' }), /HTTP 404/);
  });

  test('a URL with a database URL and a platform token: its default goes to tursodb, other names to the Platform API', async () => {
    const c = await client('mixed');
    ok(await query(c, 'CREATE TABLE IF NOT EXISTS local_t (x INTEGER)'));
    ok(await query(c, 'INSERT INTO local_t VALUES (7)'));
    assert.deepEqual(ok(await query(c, 'SELECT x FROM local_t')).rows, [[7]]);
    assert.deepEqual(ok(await query(c, 'SELECT count(*) FROM notes', { database: 'notes' })).rows, [[2]]);
    err(await query(c, 'SELECT * FROM local_t', { database: 'notes' }), /no such table/);
    const sc = ok(await mgr(c, { action: 'dump' }));
    assert.equal(sc.database, 'local');
    assert.equal(sc.source, 'reconstructed');
    assert.match(sc.sql, /INSERT INTO "local_t" VALUES\(7\);/);
    ok(await mgr(c, { action: 'list' }));
  });

  test('a URL without a platform token: management is refused clearly, dump still works', async () => {
    const c = await client('dbonly');
    err(await mgr(c, { action: 'list' }), /cannot list databases: this URL was set up without a Turso Platform API token and organization/);
    err(await analytics(c, { kind: 'usage' }), /without a Turso Platform API token/);
    const sc = ok(await mgr(c, { action: 'dump' }));
    assert.equal(sc.source, 'reconstructed');
    assert.match(sc.sql, /CREATE TABLE local_t/);
  });
});
