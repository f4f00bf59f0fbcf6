// Checks the Platform API emulator (platform-emulator.mjs) with the OFFICIAL
// client @tursodatabase/api 2.0.5, and the databases it creates with
// @libsql/client, so that the gateway's end-to-end tests can rely on it
// behaving like api.turso.tech as turso-api.md section 3 describes it.
// Run: node --test tests/emulator (Node 22).
//
// Where @tursodatabase/api 2.0.5 disagrees with section 3 the emulator follows
// section 3 and the test says so (look for "CLIENT DISAGREES"):
//  - GET /v1/organizations: the OpenAPI answer is a bare array, the client
//    reads `.organizations` (the emulator answers the wrapped shape only to
//    that client's User-Agent, in its default `auto` shape);
//  - POST .../auth/rotate answers 200 with an empty body; the client parses
//    the body as JSON and rejects with a SyntaxError after the rotation has
//    happened;
//  - the client validates platform tokens at /v1/auth/api-tokens/validate
//    (reported 404); the documented path is /v1/auth/validate.
//  - the client's formatResponse() drops delete_protection and parent from a
//    Database; raw requests check those fields.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createClient as createTursoApi } from '@tursodatabase/api';
import { createClient as createLibsql } from '@libsql/client';
import { createPlatformEmulator } from './platform-emulator.mjs';
import { makeTempDir, startProcess, stopProcess, waitForLine, runCommand } from '../integration/harness.mjs';

const ORG = 'acme';
const PT = 'platform-token-full-for-tests';
const RPT = 'platform-token-read-only-for-tests';
const emulatorScript = path.join(path.dirname(fileURLToPath(import.meta.url)), 'platform-emulator.mjs');

function decodeJwt(jwt) {
  const parts = jwt.split('.');
  assert.equal(parts.length, 3, 'a JWT has three segments');
  for (const p of parts) assert.match(p, /^[A-Za-z0-9_-]+$/, 'base64url without padding');
  const dec = (s) => JSON.parse(Buffer.from(s, 'base64url').toString('utf8'));
  return { header: dec(parts[0]), claims: dec(parts[1]), parts };
}

// TursoClientError carries the API's `error` text as message and .status
function apiError(status, re) {
  return (e) => {
    assert.equal(e.name, 'TursoClientError', `expected a TursoClientError, got ${e.name}: ${e.message}`);
    assert.equal(e.status, status, `status of "${e.message}"`);
    if (re) assert.match(e.message, re);
    return true;
  };
}

// @libsql/client reports a non-2xx pipeline answer as SERVER_ERROR with the
// status in the message (cause.status on newer versions)
function httpStatus(status) {
  return (e) => {
    assert.match(String(e.message), new RegExp(`HTTP status ${status}\\b`), e.message);
    return true;
  };
}

describe('platform emulator with @tursodatabase/api', () => {
  let dir;
  let emu;
  let api; // official client, full-access platform token
  const sqlClients = [];

  function sql(hostname, authToken) {
    const c = createLibsql({ url: `http://${hostname}`, authToken });
    sqlClients.push(c);
    return c;
  }

  async function raw(method, p, { token = PT, body, headers = {} } = {}) {
    const h = { ...headers };
    if (token !== null) h.authorization = `Bearer ${token}`;
    if (body !== undefined) h['content-type'] = 'application/json';
    const r = await fetch(`${emu.url}${p}`, {
      method,
      headers: h,
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
      signal: AbortSignal.timeout(10000),
    });
    const text = await r.text();
    let json = null;
    try {
      json = JSON.parse(text);
    } catch {
      /* not JSON */
    }
    return { status: r.status, text, json, headers: r.headers };
  }

  const orgPath = (rest = '') => `/v1/organizations/${ORG}${rest}`;

  before(async () => {
    dir = await makeTempDir('tm-platform-');
    emu = createPlatformEmulator({ org: ORG, tokens: [PT], readOnlyTokens: [RPT], dataDir: dir, databases: ['pre'] });
    await emu.listen(0, '127.0.0.1');
    api = createTursoApi({ org: ORG, token: PT, baseUrl: emu.baseUrl });
  });

  after(async () => {
    for (const c of sqlClients) c.close();
    if (emu) await emu.close();
    if (dir) await fsp.rm(dir, { recursive: true, force: true });
  });

  test('organizations: list (both shapes), get, usage; unknown org is 404', async () => {
    const orgs = await api.organizations.list();
    assert.equal(orgs.length, 1);
    assert.equal(orgs[0].slug, ORG);
    for (const k of ['name', 'type', 'overages', 'require_mfa', 'blocked_reads', 'blocked_writes', 'plan_id', 'plan_timeline', 'platform']) {
      assert.ok(k in orgs[0], `Org has ${k}`);
    }
    // Any other caller gets the OpenAPI shape: a bare array.
    const bare = await raw('GET', '/v1/organizations');
    assert.equal(bare.status, 200);
    assert.ok(Array.isArray(bare.json));
    assert.equal(bare.json[0].slug, ORG);
    // CLIENT DISAGREES: with the bare array forced, the official client lists nothing.
    emu.setOrganizationsShape('array');
    try {
      assert.deepEqual(await api.organizations.list(), []);
    } finally {
      emu.setOrganizationsShape('auto');
    }
    emu.setOrganizationsShape('wrapped');
    try {
      assert.equal((await raw('GET', '/v1/organizations')).json.organizations[0].slug, ORG);
    } finally {
      emu.setOrganizationsShape('auto');
    }
    const v2 = await raw('GET', '/v2/organizations');
    assert.equal(v2.json.organizations[0].slug, ORG);

    const one = await raw('GET', orgPath());
    assert.equal(one.status, 200);
    assert.equal(one.json.organization.slug, ORG);
    const other = await raw('GET', '/v1/organizations/someone-else');
    assert.equal(other.status, 404);
    assert.deepEqual(other.json, { error: 'organization not found' });
    await assert.rejects(
      createTursoApi({ org: 'someone-else', token: PT, baseUrl: emu.baseUrl }).databases.list(),
      apiError(404, /organization not found/),
    );

    const usage = await raw('GET', orgPath('/usage'));
    assert.equal(usage.status, 200);
    const u = usage.json.organization;
    assert.equal(typeof u.uuid, 'string');
    for (const k of ['rows_read', 'rows_written', 'storage_bytes', 'bytes_synced', 'databases', 'locations', 'groups']) {
      assert.equal(typeof u.usage[k], 'number', `usage.${k}`);
    }
    assert.equal(u.usage.databases, u.databases.length);
    assert.ok(u.usage.databases >= 1);
  });

  test('platform tokens: missing or wrong -> 401 {"error"}, read scope -> 403 on mutations', async () => {
    const none = await raw('GET', orgPath('/databases'), { token: null });
    assert.equal(none.status, 401);
    assert.equal(typeof none.json.error, 'string');
    const wrong = await raw('GET', orgPath('/databases'), { token: 'not-a-platform-token' });
    assert.equal(wrong.status, 401);
    assert.deepEqual(wrong.json, { error: 'could not parse jwt id' });
    await assert.rejects(
      createTursoApi({ org: ORG, token: 'wrong', baseUrl: emu.baseUrl }).databases.list(),
      apiError(401, /could not parse jwt id/),
    );
    // a database token is not a platform credential
    const dbJwt = (await api.databases.createToken('pre')).jwt;
    assert.equal((await raw('GET', orgPath('/databases'), { token: dbJwt })).status, 401);

    const ro = createTursoApi({ org: ORG, token: RPT, baseUrl: emu.baseUrl });
    assert.ok((await ro.databases.list()).some((d) => d.name === 'pre'));
    await assert.rejects(ro.databases.create('ro-made', { group: 'default' }), apiError(403));
    await assert.rejects(ro.databases.createToken('pre'), apiError(403));
    await assert.rejects(ro.groups.create('ro-group', 'aws-us-east-1'), apiError(403));
    assert.equal((await raw('PATCH', orgPath('/databases/pre/configuration'), { token: RPT, body: { block_writes: true } })).status, 403);
    assert.equal((await api.databases.get('pre')).block_writes, false);

    // section 3.6: GET /v1/auth/validate -> {"exp": -1} for a token without expiry
    const v = await raw('GET', '/v1/auth/validate');
    assert.equal(v.status, 200);
    assert.deepEqual(v.json, { exp: -1 });
    assert.equal((await raw('GET', '/v1/auth/validate', { token: 'nope' })).status, 401);
    // CLIENT DISAGREES: apiTokens.validate() calls /v1/auth/api-tokens/validate,
    // which is not the documented path (a user reported 404 there).
    await assert.rejects(api.apiTokens.validate(PT), apiError(404));
  });

  test('databases: create, list, get, 409 on clash, 404 unknown, name and group rules, delete', async () => {
    const created = await api.databases.create('notes', { group: 'default', size_limit: '256mb' });
    assert.equal(created.name, 'notes');
    assert.match(created.id, /^[0-9a-f-]{36}$/);
    assert.match(created.hostname, /^127\.0\.0\.1:\d+$/);

    const rawCreate = await raw('POST', orgPath('/databases'), { body: { name: 'notes-raw', group: 'default' } });
    assert.equal(rawCreate.status, 200);
    assert.deepEqual(Object.keys(rawCreate.json.database).sort(), ['DbId', 'Hostname', 'Name']);

    const list = await api.databases.list();
    assert.ok(list.some((d) => d.name === 'notes' && d.id === created.id && d.hostname === created.hostname));
    assert.ok((await api.databases.list({ group: 'default' })).some((d) => d.name === 'notes'));
    assert.equal((await api.databases.list({ group: 'no-such-group' })).length, 0);

    const got = await api.databases.get('notes');
    assert.equal(got.id, created.id);
    assert.equal(got.group, 'default');
    assert.equal(got.primaryRegion, 'aws-us-east-1');
    assert.deepEqual(got.regions, ['aws-us-east-1']);
    // capitalised fields on the wire, as in the fixture
    const wire = (await raw('GET', orgPath('/databases/notes'))).json.database;
    for (const k of ['Name', 'DbId', 'Hostname', 'group', 'primaryRegion', 'regions', 'block_reads', 'block_writes', 'allow_attach', 'delete_protection', 'sleeping', 'archived', 'is_schema', 'schema', 'version', 'database_type', 'parent']) {
      assert.ok(k in wire, `Database has ${k}`);
    }
    assert.equal(wire.Name, 'notes');
    assert.equal(wire.parent, null);

    await assert.rejects(api.databases.create('notes', { group: 'default' }), apiError(409, /^database with name notes already exists$/));
    await assert.rejects(api.databases.get('nope'), apiError(404, /^could not find database with name nope: record not found$/));
    const nf = await raw('GET', orgPath('/databases/nope'));
    assert.deepEqual(nf.json, { error: 'could not find database with name nope: record not found' });
    await assert.rejects(api.databases.delete('nope'), apiError(404));

    for (const bad of ['Upper', 'under_score', 'dot.name', 'a'.repeat(65), '']) {
      const r = await raw('POST', orgPath('/databases'), { body: { name: bad, group: 'default' } });
      assert.equal(r.status, 400, `name ${JSON.stringify(bad)}`);
      assert.equal(typeof r.json.error, 'string');
    }
    assert.equal((await raw('POST', orgPath('/databases'), { body: { name: 'a'.repeat(64), group: 'default' } })).status, 200);
    await assert.rejects(api.databases.create('no-group'), apiError(400, /group not found/));
    await assert.rejects(api.databases.create('bad-group', { group: 'nope' }), apiError(400, /^group not found$/));
    assert.equal((await raw('POST', orgPath('/databases'), { body: '{not json' })).status, 400);
    assert.equal((await raw('POST', orgPath('/databases'), { body: { name: 'bad-size', group: 'default', size_limit: 'lots' } })).status, 400);

    const file = emu.database('notes').file;
    assert.ok(fs.existsSync(file));
    assert.deepEqual(await api.databases.delete('notes'), { database: 'notes' });
    await assert.rejects(api.databases.get('notes'), apiError(404));
    assert.ok(!fs.existsSync(file), 'the SQLite file is removed');
    // the name is free again, with a new id
    const again = await api.databases.create('notes', { group: 'default' });
    assert.notEqual(again.id, created.id);
  });

  test('database tokens: JWT shape, full-access and read-only with @libsql/client, expiry, foreign and forged tokens', async () => {
    const a = await api.databases.create('tok-a', { group: 'default' });
    const b = await api.databases.create('tok-b', { group: 'default' });

    const full = await api.databases.createToken('tok-a', { authorization: 'full-access' });
    const { header, claims } = decodeJwt(full.jwt);
    assert.deepEqual(header, { alg: 'EdDSA', typ: 'JWT' });
    assert.equal(claims.a, 'rw');
    assert.equal(claims.id, a.id);
    assert.equal(typeof claims.iat, 'number');
    assert.ok(!('exp' in claims), 'expiration never -> no exp');
    assert.ok(Math.abs(claims.iat - Date.now() / 1000) < 60);

    const rw = sql(a.hostname, full.jwt);
    await rw.execute('CREATE TABLE notes (id INTEGER PRIMARY KEY, title TEXT)');
    const ins = await rw.execute({ sql: 'INSERT INTO notes (title) VALUES (?)', args: ['hello'] });
    assert.equal(ins.rowsAffected, 1);
    await rw.batch([{ sql: 'INSERT INTO notes (title) VALUES (?)', args: ['two'] }, 'SELECT 1'], 'write');
    assert.equal((await rw.execute('SELECT count(*) AS n FROM notes')).rows[0].n, 2);

    const roTok = await api.databases.createToken('tok-a', { authorization: 'read-only', expiration: '2w1d30m' });
    const roClaims = decodeJwt(roTok.jwt).claims;
    assert.equal(roClaims.a, 'ro');
    assert.equal(roClaims.exp - roClaims.iat, 14 * 86400 + 86400 + 1800);
    const ro = sql(a.hostname, roTok.jwt);
    assert.equal((await ro.execute('SELECT title FROM notes ORDER BY id')).rows[0].title, 'hello');
    await assert.rejects(ro.execute("INSERT INTO notes (title) VALUES ('nope')"), httpStatus(403));
    const forbidden = await fetch(`http://${a.hostname}/v2/pipeline`, {
      method: 'POST',
      headers: { authorization: `Bearer ${roTok.jwt}`, 'content-type': 'application/json' },
      body: JSON.stringify({ requests: [{ type: 'execute', stmt: { sql: 'DELETE FROM notes' } }, { type: 'close' }] }),
    });
    assert.equal(forbidden.status, 403);
    assert.deepEqual(await forbidden.json(), {
      error: "Authorization forbidden: Current session doesn't not have Write permission to namespace tok-a",
    });
    assert.equal((await rw.execute('SELECT count(*) AS n FROM notes')).rows[0].n, 2);

    // a token of another database is refused, and so is no token at all
    await assert.rejects(sql(b.hostname, full.jwt).execute('SELECT 1'), httpStatus(401));
    const noAuth = await fetch(`http://${a.hostname}/v2/pipeline`, { method: 'POST', body: '{"requests":[]}' });
    assert.equal(noAuth.status, 401);
    assert.deepEqual(await noAuth.json(), { error: 'Unauthorized: `Expected authorization header but none given`' });

    // forged: read-only claims upgraded to rw with the old signature
    const { parts } = decodeJwt(roTok.jwt);
    const forgedClaims = Buffer.from(JSON.stringify({ ...roClaims, a: 'rw' })).toString('base64url');
    const forged = `${parts[0]}.${forgedClaims}.${parts[2]}`;
    const rf = await fetch(`http://${a.hostname}/v2/pipeline`, {
      method: 'POST',
      headers: { authorization: `Bearer ${forged}` },
      body: '{"requests":[]}',
    });
    assert.equal(rf.status, 401);
    assert.deepEqual(await rf.json(), { error: 'Unauthorized: `The JWT is invalid`' });
    // unsigned "alg: none" style token and garbage
    await assert.rejects(sql(a.hostname, `${parts[0]}.${parts[1]}.`).execute('SELECT 1'), httpStatus(401));
    await assert.rejects(sql(a.hostname, 'garbage').execute('SELECT 1'), httpStatus(401));

    // expiry: a 1h token is refused once the emulator's clock is past exp
    const short = await api.databases.createToken('tok-a', { expiration: '1h' });
    const sc = sql(a.hostname, short.jwt);
    assert.equal((await sc.execute('SELECT 1 AS one')).rows[0].one, 1);
    emu.setClockOffset(3601);
    try {
      const r = await fetch(`http://${a.hostname}/v2/pipeline`, {
        method: 'POST',
        headers: { authorization: `Bearer ${short.jwt}` },
        body: '{"requests":[]}',
      });
      assert.equal(r.status, 401);
      assert.deepEqual(await r.json(), { error: 'Unauthorized: `The JWT has expired`' });
      // a never-expiring token is still fine
      assert.equal((await rw.execute('SELECT 1 AS one')).rows[0].one, 1);
    } finally {
      emu.setClockOffset(0);
    }
    // an already expired token minted through the test hook
    const expired = emu.mint({ database: 'tok-a', exp: Math.floor(Date.now() / 1000) - 10 });
    await assert.rejects(sql(a.hostname, expired).execute('SELECT 1'), httpStatus(401));

    // option validation: query-string options, as section 3.3 says
    await assert.rejects(api.databases.createToken('tok-a', { expiration: '2 weeks' }), apiError(400, /^Invalid expiration format$/));
    await assert.rejects(api.databases.createToken('tok-a', { expiration: '10y' }), apiError(400, /^Invalid expiration format$/));
    await assert.rejects(api.databases.createToken('tok-a', { authorization: 'admin' }), apiError(400));
    await assert.rejects(api.databases.createToken('nope'), apiError(404));
    const viaQuery = await raw('POST', orgPath('/databases/tok-a/auth/tokens?expiration=30m&authorization=read-only'));
    assert.equal(viaQuery.status, 200);
    const vq = decodeJwt(viaQuery.json.jwt).claims;
    assert.equal(vq.a, 'ro');
    assert.equal(vq.exp - vq.iat, 1800);
  });

  test('rotate invalidates every token of the database minted before', async () => {
    const db = await api.databases.create('rot', { group: 'default' });
    const other = await api.databases.create('rot-other', { group: 'default' });
    const t1 = (await api.databases.createToken('rot')).jwt;
    const t2 = (await api.databases.createToken('rot', { authorization: 'read-only' })).jwt;
    const keep = (await api.databases.createToken('rot-other')).jwt;
    const c1 = sql(db.hostname, t1);
    await c1.execute('CREATE TABLE t (x)');
    assert.equal((await sql(db.hostname, t2).execute('SELECT count(*) AS n FROM t')).rows[0].n, 0);

    // CLIENT DISAGREES: section 3.3 says 200 with an empty body; the client
    // parses it as JSON and rejects, after the server has rotated.
    await assert.rejects(api.databases.rotateTokens('rot'), SyntaxError);
    await assert.rejects(c1.execute('SELECT 1'), httpStatus(401));
    await assert.rejects(sql(db.hostname, t2).execute('SELECT 1'), httpStatus(401));
    // other databases are not affected; new tokens work
    assert.equal((await sql(other.hostname, keep).execute('SELECT 1 AS one')).rows[0].one, 1);
    const t3 = (await api.databases.createToken('rot')).jwt;
    assert.equal((await sql(db.hostname, t3).execute('SELECT count(*) AS n FROM t')).rows[0].n, 0);

    const r = await raw('POST', orgPath('/databases/rot/auth/rotate'));
    assert.equal(r.status, 200);
    assert.equal(r.text, '');
    await assert.rejects(sql(db.hostname, t3).execute('SELECT 1'), httpStatus(401));
    assert.equal((await raw('POST', orgPath('/databases/nope/auth/rotate'))).status, 404);

    // a deleted database's tokens do not work for a new database of that name
    const t4 = (await api.databases.createToken('rot')).jwt;
    await api.databases.delete('rot');
    const reborn = await api.databases.create('rot', { group: 'default' });
    await assert.rejects(sql(reborn.hostname, t4).execute('SELECT 1'), httpStatus(401));
  });

  test('groups and locations: list, create (409), get, add/remove location, group tokens and rotate, delete', async () => {
    const groups = await api.groups.list();
    const def = groups.find((g) => g.name === 'default');
    assert.ok(def);
    assert.deepEqual(def.locations, ['aws-us-east-1']);
    assert.equal(def.primary, 'aws-us-east-1');
    assert.match(def.uuid, /^[0-9a-f-]{36}$/);

    const locs = await api.locations.list();
    assert.ok(locs.some((l) => l.code === 'aws-us-east-1' && typeof l.description === 'string'));
    const rawLocs = await raw('GET', '/v1/locations');
    assert.equal(typeof rawLocs.json.locations, 'object');
    assert.ok(!Array.isArray(rawLocs.json.locations), 'locations is an object, not an array');

    const eu = await api.groups.create('eu', 'aws-eu-west-1');
    assert.equal(eu.name, 'eu');
    assert.deepEqual(eu.locations, ['aws-eu-west-1']);
    assert.equal(eu.primary, 'aws-eu-west-1');
    await assert.rejects(api.groups.create('eu', 'aws-eu-west-1'), apiError(409, /^group already exists$/));
    await assert.rejects(api.groups.create('mars', 'mars-north-1'), apiError(400, /^invalid location: mars-north-1$/));
    assert.equal((await api.groups.get('eu')).uuid, eu.uuid);
    await assert.rejects(api.groups.get('nope'), apiError(404, /^group not found$/));

    const added = await api.groups.addLocation('eu', 'aws-us-east-1');
    assert.deepEqual(added.locations, ['aws-eu-west-1', 'aws-us-east-1']);
    await assert.rejects(api.groups.addLocation('eu', 'lhrr'), apiError(400, /^invalid location: lhrr$/));
    await assert.rejects(api.groups.addLocation('nope', 'aws-us-east-1'), apiError(404, /group not found/));

    const db = await api.databases.create('eu-db', { group: 'eu' });
    const got = await api.databases.get('eu-db');
    assert.equal(got.primaryRegion, 'aws-eu-west-1');
    const instances = await api.databases.listInstances('eu-db');
    assert.deepEqual(instances.map((i) => [i.name, i.type, i.region]), [
      ['aws-eu-west-1', 'primary', 'aws-eu-west-1'],
      ['aws-us-east-1', 'replica', 'aws-us-east-1'],
    ]);
    for (const i of instances) assert.equal(i.hostname, db.hostname);
    const inst = await api.databases.getInstance('eu-db', 'aws-eu-west-1');
    assert.equal(inst.type, 'primary');
    assert.equal((await raw('GET', orgPath('/databases/eu-db/instances/aws-ap-south-1'))).status, 404);

    const removed = await api.groups.removeLocation('eu', 'aws-us-east-1');
    assert.deepEqual(removed.locations, ['aws-eu-west-1']);
    assert.equal((await api.databases.listInstances('eu-db')).length, 1);

    // group token: claim gid, valid on every database of the group only
    const gt = await api.groups.createToken('eu', { authorization: 'full-access', expiration: '1d' });
    const gc = decodeJwt(gt.jwt).claims;
    assert.equal(gc.gid, eu.uuid);
    assert.ok(!('id' in gc));
    assert.equal(gc.exp - gc.iat, 86400);
    const eu2 = await api.databases.create('eu-db2', { group: 'eu' });
    await sql(db.hostname, gt.jwt).execute('CREATE TABLE g (x)');
    await sql(eu2.hostname, gt.jwt).execute('CREATE TABLE g (x)');
    const pre = await api.databases.get('pre');
    await assert.rejects(sql(pre.hostname, gt.jwt).execute('SELECT 1'), httpStatus(401));
    const gro = await api.groups.createToken('eu', { authorization: 'read-only' });
    await assert.rejects(sql(db.hostname, gro.jwt).execute('INSERT INTO g VALUES (1)'), httpStatus(403));

    // group rotate: group tokens and the databases' own tokens stop working
    const dbTok = (await api.databases.createToken('eu-db')).jwt;
    const preTok = (await api.databases.createToken('pre')).jwt;
    await assert.rejects(api.groups.rotateTokens('eu'), SyntaxError); // CLIENT DISAGREES: empty 200 body
    await assert.rejects(sql(db.hostname, gt.jwt).execute('SELECT 1'), httpStatus(401));
    await assert.rejects(sql(db.hostname, dbTok).execute('SELECT 1'), httpStatus(401));
    assert.equal((await sql(pre.hostname, preTok).execute('SELECT 1 AS one')).rows[0].one, 1);
    const gt2 = await api.groups.createToken('eu');
    assert.equal((await sql(eu2.hostname, gt2.jwt).execute('SELECT count(*) AS n FROM g')).rows[0].n, 0);

    // deleting a group deletes its databases
    const deleted = await api.groups.delete('eu');
    assert.equal(deleted.name, 'eu');
    await assert.rejects(api.databases.get('eu-db'), apiError(404));
    await assert.rejects(api.groups.get('eu'), apiError(404));
  });

  test('usage and stats reflect the queries run on the database', async () => {
    const db = await api.databases.create('metrics', { group: 'default' });
    const fresh = await raw('GET', orgPath('/databases/metrics/stats'));
    assert.deepEqual(fresh.json, { top_queries: null });
    const zero = await api.databases.usage('metrics');
    assert.equal(zero.usage.rows_read, 0);
    assert.equal(zero.usage.rows_written, 0);

    const c = sql(db.hostname, (await api.databases.createToken('metrics')).jwt);
    await c.execute('CREATE TABLE m (id INTEGER PRIMARY KEY, v TEXT)');
    for (let i = 0; i < 5; i++) await c.execute({ sql: 'INSERT INTO m (v) VALUES (?)', args: [`v${i}`] });
    await c.execute('UPDATE m SET v = v || ? WHERE id <= 2', ['!']);
    for (let i = 0; i < 3; i++) await c.execute('SELECT * FROM m');

    const usage = await api.databases.usage('metrics');
    assert.equal(usage.uuid, db.id);
    assert.equal(usage.usage.rows_written, 5 + 2);
    assert.equal(usage.usage.rows_read, 3 * 5);
    assert.equal(usage.usage.storage_bytes, fs.statSync(emu.database('metrics').file).size);
    assert.ok(usage.usage.storage_bytes > 0);
    assert.equal(usage.instances.length, 1);
    assert.deepEqual(usage.instances[0].usage, usage.usage);

    // an explicit window: now -> counted; long ago -> nothing (storage still reported)
    const now = Date.now();
    const inWindow = await api.databases.usage('metrics', { from: new Date(now - 3600e3), to: new Date(now + 3600e3) });
    assert.equal(inWindow.usage.rows_read, 15);
    const past = await api.databases.usage('metrics', { from: '2020-01-01T00:00:00Z', to: '2020-02-01T00:00:00+01:00' });
    assert.equal(past.usage.rows_read, 0);
    assert.equal(past.usage.rows_written, 0);
    for (const bad of ['from=2025-11-01T00:00:00', 'to=2025-11-01', 'from=yesterday', 'from=2025-13-01T00:00:00Z']) {
      const r = await raw('GET', orgPath(`/databases/metrics/usage?${bad}`));
      assert.equal(r.status, 400, bad);
      assert.match(r.json.error, /^invalid (from|to) parameter/);
    }

    const stats = await raw('GET', orgPath('/databases/metrics/stats'));
    assert.equal(stats.status, 200);
    const top = stats.json.top_queries;
    assert.deepEqual(top[0], { query: 'SELECT * FROM m', rows_read: 15, rows_written: 0 });
    assert.deepEqual(top.find((q) => q.query.startsWith('INSERT')), { query: 'INSERT INTO m (v) VALUES (?)', rows_read: 0, rows_written: 5 });
    assert.deepEqual(top.find((q) => q.query.startsWith('UPDATE')), { query: 'UPDATE m SET v = v || ? WHERE id <= 2', rows_read: 0, rows_written: 2 });
    assert.equal((await raw('GET', orgPath('/databases/nope/stats'))).status, 404);

    const org = (await raw('GET', orgPath('/usage'))).json.organization;
    const mine = org.databases.find((d) => d.uuid === db.id);
    assert.equal(mine.usage.rows_read, 15);
    assert.ok(org.usage.rows_read >= 15);
    assert.ok(org.usage.rows_written >= 7);
  });

  test('configuration: GET/PATCH, block_writes and block_reads enforced on the database host, delete_protection', async () => {
    const db = await api.databases.create('conf', { group: 'default', size_limit: '1gb' });
    const c = sql(db.hostname, (await api.databases.createToken('conf')).jwt);
    await c.execute('CREATE TABLE t (x)');

    const cfg = await raw('GET', orgPath('/databases/conf/configuration'));
    assert.deepEqual(cfg.json, {
      size_limit: String(1024 ** 3),
      allow_attach: false,
      block_reads: false,
      block_writes: false,
      delete_protection: false,
      allowed_ips: [],
      allowed_aws_vpc_ids: [],
    });

    const patched = await raw('PATCH', orgPath('/databases/conf/configuration'), { body: { block_writes: true, size_limit: '256mb', allowed_ips: ['10.0.0.1'] } });
    assert.equal(patched.status, 200);
    assert.equal(patched.json.block_writes, true);
    assert.equal(patched.json.size_limit, '268435456');
    assert.deepEqual(patched.json.allowed_ips, ['10.0.0.1']);
    assert.equal((await api.databases.get('conf')).block_writes, true);

    await assert.rejects(c.execute('INSERT INTO t VALUES (1)'), (e) => {
      assert.equal(e.code, 'BLOCKED');
      assert.match(e.message, /Operation was blocked/);
      return true;
    });
    await assert.rejects(c.batch(['INSERT INTO t VALUES (1)'], 'write'), (e) => e.code === 'BLOCKED');
    assert.equal((await c.execute('SELECT count(*) AS n FROM t')).rows[0].n, 0);

    await raw('PATCH', orgPath('/databases/conf/configuration'), { body: { block_writes: false, block_reads: true } });
    await assert.rejects(c.execute('SELECT count(*) FROM t'), (e) => e.code === 'BLOCKED');
    const unblocked = await raw('PATCH', orgPath('/databases/conf/configuration'), { body: { block_reads: false, allowed_ips: [] } });
    assert.deepEqual(unblocked.json.allowed_ips, []);
    await c.execute('INSERT INTO t VALUES (1)');
    assert.equal((await c.execute('SELECT count(*) AS n FROM t')).rows[0].n, 1);

    for (const bad of [{ block_writes: 'yes' }, { size_limit: 'big' }, { allowed_ips: 'x' }]) {
      assert.equal((await raw('PATCH', orgPath('/databases/conf/configuration'), { body: bad })).status, 400, JSON.stringify(bad));
    }
    assert.equal((await raw('PATCH', orgPath('/databases/nope/configuration'), { body: {} })).status, 404);

    await raw('PATCH', orgPath('/databases/conf/configuration'), { body: { delete_protection: true } });
    assert.equal((await raw('GET', orgPath('/databases/conf'))).json.database.delete_protection, true);
    await assert.rejects(api.databases.delete('conf'), apiError(400, /delete protection/));
    assert.equal((await api.databases.get('conf')).name, 'conf');
    await raw('PATCH', orgPath('/databases/conf/configuration'), { body: { delete_protection: false } });
    assert.deepEqual(await api.databases.delete('conf'), { database: 'conf' });
  });

  test('size_limit is enforced: writes past it fail with SQLITE_FULL', async () => {
    const db = await api.databases.create('tiny', { group: 'default', size_limit: '64kb' });
    const c = sql(db.hostname, (await api.databases.createToken('tiny')).jwt);
    await c.execute('CREATE TABLE big (b BLOB)');
    await assert.rejects(
      (async () => {
        for (let i = 0; i < 64; i++) await c.execute({ sql: 'INSERT INTO big VALUES (zeroblob(4000))' });
      })(),
      (e) => e.code === 'SQLITE_FULL',
    );
  });

  test('seed: a new database copied from another one (current state; timestamp checked)', async () => {
    const src = await api.databases.create('seed-src', { group: 'default' });
    const sc = sql(src.hostname, (await api.databases.createToken('seed-src')).jwt);
    await sc.execute('CREATE TABLE s (v TEXT)');
    await sc.execute("INSERT INTO s VALUES ('one'), ('two')");

    const copy = await api.databases.create('seed-copy', { group: 'default', seed: { type: 'database', name: 'seed-src' } });
    assert.notEqual(copy.hostname, src.hostname);
    const cc = sql(copy.hostname, (await api.databases.createToken('seed-copy')).jwt);
    assert.deepEqual((await cc.execute('SELECT v FROM s ORDER BY v')).rows.map((r) => r.v), ['one', 'two']);
    await cc.execute("INSERT INTO s VALUES ('copy-only')");
    assert.equal((await sc.execute('SELECT count(*) AS n FROM s')).rows[0].n, 2);
    const wire = (await raw('GET', orgPath('/databases/seed-copy'))).json.database;
    assert.equal(wire.parent.name, 'seed-src');
    assert.equal(wire.parent.id, src.id);
    // the source's tokens are not the copy's
    await assert.rejects(sql(copy.hostname, (await api.databases.createToken('seed-src')).jwt).execute('SELECT 1'), httpStatus(401));

    const ts = new Date(Date.now() - 60e3);
    const pitr = await api.databases.create('seed-pitr', { group: 'default', seed: { type: 'database', name: 'seed-src', timestamp: ts } });
    const pc = sql(pitr.hostname, (await api.databases.createToken('seed-pitr')).jwt);
    assert.equal((await pc.execute('SELECT count(*) AS n FROM s')).rows[0].n, 2);

    const future = new Date(Date.now() + 3600e3).toISOString();
    await assert.rejects(
      api.databases.create('seed-future', { group: 'default', seed: { type: 'database', name: 'seed-src', timestamp: future } }),
      apiError(400, /timestamp/),
    );
    await assert.rejects(
      api.databases.create('seed-badts', { group: 'default', seed: { type: 'database', name: 'seed-src', timestamp: '2025-11-30 08:15' } }),
      apiError(400, /timestamp/),
    );
    await assert.rejects(api.databases.create('seed-nosrc', { group: 'default', seed: { type: 'database', name: 'nope' } }), apiError(400));
    await assert.rejects(api.databases.create('seed-badtype', { group: 'default', seed: { type: 'floppy' } }), apiError(400));
    await assert.rejects(api.databases.get('seed-future'), apiError(404));
    const upload = await api.databases.create('seed-upload', { group: 'default', seed: { type: 'database_upload' } });
    assert.match(upload.hostname, /^127\.0\.0\.1:\d+$/);
  });

  test('test hooks: injected API failures, calls log, database host failures, mint', async () => {
    emu.clearCalls();
    emu.setFail('500', 1);
    await assert.rejects(api.databases.list(), apiError(500));
    assert.ok(Array.isArray(await api.databases.list()), 'count 1: the next call succeeds');

    const fail = await fetch(`${emu.url}/__emulator/fail`, { method: 'POST', body: JSON.stringify({ mode: 'garbage', count: 1 }) });
    assert.equal(fail.status, 200);
    await assert.rejects(api.databases.list(), SyntaxError);
    // path filter: only matching calls fail
    emu.setFail('429', 1, '/groups');
    assert.ok(Array.isArray(await api.databases.list()));
    await assert.rejects(api.groups.list(), apiError(429));

    const calls = await (await fetch(`${emu.url}/__emulator/calls`)).json();
    const statuses = calls.calls.map((c) => [c.method, c.path, c.status]);
    assert.deepEqual(statuses, [
      ['GET', `/v1/organizations/${ORG}/databases`, 500],
      ['GET', `/v1/organizations/${ORG}/databases`, 200],
      ['GET', `/v1/organizations/${ORG}/databases`, 200],
      ['GET', `/v1/organizations/${ORG}/databases`, 200],
      ['GET', `/v1/organizations/${ORG}/groups`, 429],
    ]);
    assert.equal(calls.calls[0].user_agent, '@tursodatabase/api');
    assert.equal(calls.calls[0].auth, 'full');

    await api.databases.createToken('pre', { expiration: '12h', authorization: 'read-only' });
    const last = emu.calls().at(-1);
    assert.deepEqual(last.query, { expiration: '12h', authorization: 'read-only' });
    assert.deepEqual(last.body, { permissions: { read_attach: { databases: [] } } });

    // the database host's own fail modes, through the platform port
    const pre = await api.databases.get('pre');
    const pc = sql(pre.hostname, (await api.databases.createToken('pre')).jwt);
    const hf = await fetch(`${emu.url}/__emulator/databases/pre/fail`, { method: 'POST', body: JSON.stringify({ mode: '503', count: 1 }) });
    assert.equal(hf.status, 200);
    await assert.rejects(pc.execute('SELECT 1'), httpStatus(503));
    assert.equal((await pc.execute('SELECT 1 AS one')).rows[0].one, 1);
    const hs = await (await fetch(`${emu.url}/__emulator/databases/pre/state`)).json();
    assert.ok(hs.pipeline_requests >= 2);

    // mint through HTTP: a read-only token with an explicit exp
    const exp = Math.floor(Date.now() / 1000) + 600;
    const minted = await (await fetch(`${emu.url}/__emulator/mint`, { method: 'POST', body: JSON.stringify({ database: 'pre', a: 'ro', exp }) })).json();
    assert.equal(decodeJwt(minted.jwt).claims.exp, exp);
    await assert.rejects(sql(pre.hostname, minted.jwt).execute('CREATE TABLE x (y)'), httpStatus(403));

    const st = await (await fetch(`${emu.url}/__emulator/state`)).json();
    assert.equal(st.org, ORG);
    assert.ok(st.databases.some((d) => d.name === 'pre' && d.url === `http://${pre.hostname}`));
    assert.equal((await fetch(`${emu.url}/__emulator/nope`)).status, 404);
  });
});

describe('platform emulator CLI', () => {
  test('prints one line, pre-creates --database, serves the API and stops on SIGTERM', async () => {
    const dir = await makeTempDir('tm-platform-cli-');
    let proc;
    try {
      proc = startProcess(
        process.execPath,
        [emulatorScript, '--port', '0', '--data-dir', path.join(dir, 'data'), '--org', 'cli-org', '--token', 'tok-1', '--token', 'tok-2',
          '--read-only-token', 'tok-ro', '--database', 'first', '--database', 'second'],
        { name: 'platform-emulator' },
      );
      const m = await waitForLine(proc, /^platform-emulator listening on (http:\/\/127\.0\.0\.1:(\d+))$/, 15000);
      const url = m[1];
      assert.match(proc.stdout, /^platform-emulator listening on http:\/\/127\.0\.0\.1:\d+\n$/);
      const client = createTursoApi({ org: 'cli-org', token: 'tok-2', baseUrl: `${url}/v1/` });
      const names = (await client.databases.list()).map((d) => d.name).sort();
      assert.deepEqual(names, ['first', 'second']);
      const first = await client.databases.get('first');
      const jwt = (await client.databases.createToken('first')).jwt;
      const c = createLibsql({ url: `http://${first.hostname}`, authToken: jwt });
      try {
        await c.execute('CREATE TABLE t (x)');
        assert.equal((await c.execute('SELECT count(*) AS n FROM t')).rows[0].n, 0);
      } finally {
        c.close();
      }
      const ro = createTursoApi({ org: 'cli-org', token: 'tok-ro', baseUrl: `${url}/v1/` });
      await assert.rejects(ro.databases.delete('first'), apiError(403));
      assert.equal((await fetch(`${url}/v1/organizations/cli-org/databases`)).status, 401);
      const t0 = Date.now();
      const { code, signal } = await stopProcess(proc);
      assert.equal(code, 0, `exit code (signal ${signal}); stderr:\n${proc.stderr}`);
      assert.ok(Date.now() - t0 < 3000, 'stops promptly');
      assert.equal(proc.stderr, '', 'nothing on stderr');
    } finally {
      await stopProcess(proc);
      await fsp.rm(dir, { recursive: true, force: true });
    }
  });

  test('bad arguments exit 2 with a usage line', async () => {
    const r = await runCommand(process.execPath, [emulatorScript, '--port', '0', '--org', 'x', '--token', 't'], { timeoutMs: 15000 });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--data-dir is required/);
    const r2 = await runCommand(process.execPath, [emulatorScript, '--data-dir', 'unused', '--org', 'x'], { timeoutMs: 15000 });
    assert.equal(r2.code, 2);
    assert.match(r2.stderr, /--token/);
  });
});
