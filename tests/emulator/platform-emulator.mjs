#!/usr/bin/env node
// Turso Platform API emulator (api.turso.tech, v1, one organisation) for the
// tests: the management calls of turso-api.md section 3, with every created
// database a REAL database: its own SQLite file served over Hrana by an
// in-process createHranaServer() on its own 127.0.0.1 port. Test tool only.
//
// Usage:
//   node platform-emulator.mjs --data-dir DIR --org SLUG --token T [--token T]...
//        [--port 0] [--read-only-token T]... [--database NAME]...
//        [--stream-expiry-ms N] [--organizations-shape auto|array|wrapped]
//
// On start it prints exactly one line to stdout:
//   platform-emulator listening on http://127.0.0.1:PORT
// and stops cleanly (servers closed, files kept) on SIGTERM / SIGINT.
// Clients use http://127.0.0.1:PORT/v1/ as the API base (the official
// @tursodatabase/api needs the trailing slash in its baseUrl).
//
// State at start: organisation SLUG; group `default` in `aws-us-east-1`; one
// database per --database NAME (in group default). Nothing is persisted
// across runs: DIR only holds the SQLite files (named NAME-DBID.db).
//
// Platform tokens: `Authorization: Bearer T` with T one of --token (all
// scopes) or --read-only-token (scope `read`: every non-GET call -> 403
// {"error": "..."}). Missing header -> 401 {"error":"missing authorization
// header"}; anything else (including a database token) -> 401
// {"error":"could not parse jwt id"} as in the fixture.
//
// Endpoints (all answer JSON; errors are {"error": "<text>"}):
//   GET    /v1/auth/validate                         {"exp": -1}
//   GET    /v1/locations                             {"locations": {code: description}}
//   GET    /v1/organizations                         see "Organisation list shape"
//   GET    /v2/organizations                         {"organizations": [Org]}
//   GET    /v1/organizations/{org}                   {"organization": Org}; 404 organization not found
//   PATCH  /v1/organizations/{org}                   {overages, require_mfa} -> {"organization": Org}
//   GET    /v1/organizations/{org}/usage             current calendar month (UTC)
//   GET    /v1/organizations/{org}/databases         ?group= filter; {"databases": [Database]}
//   POST   /v1/organizations/{org}/databases         {name, group, size_limit?, seed?} ->
//                                                    {"database": {DbId, Hostname, Name}}
//   GET    .../databases/{db}                        {"database": Database}
//   DELETE .../databases/{db}                        {"database": name}; 400 while delete_protection
//   GET    .../databases/{db}/configuration          {size_limit (string), allow_attach,
//   PATCH  .../databases/{db}/configuration           block_reads, block_writes, delete_protection,
//                                                     allowed_ips, allowed_aws_vpc_ids}
//   GET    .../databases/{db}/instances[/{location}] {"instances": [...]} / {"instance": {...}}
//   POST   .../databases/{db}/auth/tokens?expiration=&authorization=   {"jwt": "..."}
//   POST   .../databases/{db}/auth/rotate            200, empty body
//   GET    .../databases/{db}/usage?from=&to=        {"database": {uuid, instances, usage}}
//   GET    .../databases/{db}/stats                  {"top_queries": [...] | null}
//   GET    .../groups                                {"groups": [Group]}
//   POST   .../groups                                {name, location} -> {"group": Group}; 409
//   GET    .../groups/{g}                            {"group": Group}; 404 group not found
//   DELETE .../groups/{g}                            {"group": Group} (its databases are deleted)
//   GET    .../groups/{g}/configuration              {"delete_protection": bool}
//   PATCH  .../groups/{g}/configuration
//   POST   .../groups/{g}/locations/{loc}            {"group": Group}; 400 invalid location: X
//   DELETE .../groups/{g}/locations/{loc}
//   POST   .../groups/{g}/auth/tokens?expiration=&authorization=      {"jwt": "..."} (claim gid)
//   POST   .../groups/{g}/auth/rotate                200, empty body
//   GET    /                                         {"server","client"} (region.turso.io stand-in, no token)
//
// Organisation list shape: the OpenAPI document has GET /v1/organizations
// answer a bare array; @tursodatabase/api 2.0.5 reads `.organizations` of the
// answer (and so lists nothing from a bare array). `auto` (the default)
// answers the bare array to everyone except a caller whose User-Agent starts
// with `@tursodatabase/api` (the official client sends exactly that), which
// gets {"organizations": [...]}; `array` / `wrapped` force one shape for
// every caller (so the gateway's tests can check it accepts both).
//
// Database tokens: JWTs `base64url(header).base64url(claims).base64url(sig)`,
// header {"alg":"EdDSA","typ":"JWT"}, signed with an Ed25519 key the emulator
// generates at start; claims {a: "rw"|"ro", iat, exp (absent for `never`),
// id: DbId | gid: group uuid, rid, p? (read_attach)}. `rid` is the database's
// (or group's) current credential generation: auth/rotate replaces it, so
// every token minted before is refused. A database host accepts a token when
// the signature verifies, the token is for that database (id) or its group
// (gid), its rid is current, and it has not expired; else 401 `The JWT is
// invalid` / `The JWT has expired`. `a: "ro"` -> writes get 403.
// Group rotate also rotates every database of the group.
// Expiration: `never` (default) or number+unit groups with units w d h m s
// (e.g. 30m, 12h, 2w1d30m); anything else -> 400 Invalid expiration format.
//
// Configuration: block_reads / block_writes are enforced by the database
// host (in-band error code BLOCKED; block_reads blocks every statement but
// COMMIT/ROLLBACK/END/RELEASE/SAVEPOINT); size_limit ("256mb", "1gb", bytes;
// binary units) becomes PRAGMA max_page_count on connections opened after the
// change (writes past it fail with SQLITE_FULL); "0" = no limit.
// Usage: real counters reported by the database hosts (rows read = rows
// returned, rows written = rows changed, as the Hrana results say), kept
// with 1-second resolution so that from/to windows work; storage_bytes = the
// SQLite file's size after a passive WAL checkpoint. Stats: every statement
// text that ran successfully with its summed rows read/written, sorted by
// rows read then rows written (all of them; null when there are none).
// Seed {type: "database", name (or `value` as the CLI sends), timestamp?}
// copies the source's current state (timestamp: RFC 3339 with a zone, not
// in the future); {type: "database_upload"} creates an empty database.
//
// Test hooks (no token needed), on the same port:
//   GET    /__emulator/state               org, groups, databases (name, id, group,
//                                          hostname, url, file, hrana state), counters
//   GET    /__emulator/calls               {"calls": [{at, method, path, query, status,
//                                          auth, user_agent, body}]} (last 1000 API calls)
//   DELETE /__emulator/calls              clear the log
//   POST   /__emulator/fail                {"mode": none|500|503|429|401|garbage|stall|close,
//                                          "count": N?, "path": "substring"?} for API calls
//                                          (count absent = until changed; stall holds the
//                                          request --stall-ms (default 60000) then drops it)
//   POST   /__emulator/config              {"organizations_shape": "auto"|"array"|"wrapped"}
//   POST   /__emulator/clock               {"offset_seconds": N} shifts the emulator's clock
//                                          (token iat/exp checks, usage windows)
//   POST   /__emulator/mint                {"database": NAME | "group": NAME, "a": "rw"|"ro",
//                                          "exp": unix|null, "iat": unix?} -> {"jwt"} signed
//                                          with the emulator's key (e.g. an expired token)
//   POST   /__emulator/databases/{name}/fail   {"mode","count"?}: that database host's
//                                          fail modes (hrana-emulator --fail-mode values)
//   GET    /__emulator/databases/{name}/state  that host's counters
//
// As a module:
//   import { createPlatformEmulator } from './platform-emulator.mjs';
//   const emu = createPlatformEmulator({ org, tokens: [...], readOnlyTokens: [...],
//                                        dataDir, databases: [...] });
//   await emu.listen(0);  emu.url  ...  await emu.close();

import http from 'node:http';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createHranaServer } from './hrana-emulator.mjs';

// ---------------------------------------------------------------- constants

export const LOCATIONS = {
  'aws-us-east-1': 'AWS US East (Virginia)',
  'aws-us-east-2': 'AWS US East (Ohio)',
  'aws-us-west-2': 'AWS US West (Oregon)',
  'aws-eu-west-1': 'AWS EU West (Ireland)',
  'aws-ap-northeast-1': 'AWS AP NorthEast (Tokyo)',
  'aws-ap-south-1': 'AWS AP South (Mumbai)',
  // three-letter codes of older (Fly-era) groups, as in the fixtures
  ams: 'Amsterdam, Netherlands',
  iad: 'Ashburn, Virginia (US)',
  lhr: 'London, United Kingdom',
  fra: 'Frankfurt, Germany',
  nrt: 'Tokyo, Japan',
};
export const DEFAULT_GROUP = 'default';
export const DEFAULT_LOCATION = 'aws-us-east-1';
const SERVER_VERSION = '0.24.32';
const NAME_RE = /^[a-z0-9-]{1,64}$/;
const NAME_RULE = 'names may contain only lowercase letters, numbers and dashes, and be at most 64 characters long';
export const PLATFORM_FAIL_MODES = new Set(['none', '500', '503', '429', '401', 'garbage', 'stall', 'close']);
const HRANA_FAIL_MODES = new Set(['none', '500', '503', '401', 'garbage', 'stall', 'close']);
const CALL_LOG_CAP = 1000;
const QUERY_CAP = 10000;

class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// ---------------------------------------------------------------- helpers

function sendJson(res, status, obj, extraHeaders = {}) {
  const buf = Buffer.from(JSON.stringify(obj));
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': buf.length, ...extraHeaders });
  res.end(buf);
}

function sendEmpty(res, status) {
  res.writeHead(status, { 'content-length': 0 });
  res.end();
}

function readBody(req, limit = 1 << 20) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size > limit) {
        req.removeAllListeners('data');
        req.resume();
        reject(new HttpError(413, 'request body too large'));
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function parseJsonBody(text, { required }) {
  if (text.trim() === '') {
    if (required) throw new HttpError(400, 'invalid request body: empty');
    return {};
  }
  let v;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new HttpError(400, `invalid request body: ${e.message}`);
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new HttpError(400, 'invalid request body: expected a JSON object');
  return v;
}

const b64json = (obj) => Buffer.from(JSON.stringify(obj)).toString('base64url');

// "256mb" / "1gb" / "1048576" / 1048576 -> bytes (binary units, as the
// fixture's 256mb = 268435456); null when invalid.
export function parseSize(v) {
  if (typeof v === 'number') return Number.isSafeInteger(v) && v >= 0 ? v : null;
  if (typeof v !== 'string') return null;
  const m = /^\s*(\d+)\s*(b|kb|mb|gb|tb)?\s*$/i.exec(v);
  if (!m) return null;
  const mult = { b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3, tb: 1024 ** 4 }[(m[2] || 'b').toLowerCase()];
  const n = Number(m[1]) * mult;
  return Number.isSafeInteger(n) ? n : null;
}

// Token expiration -> seconds; null for `never`; undefined when invalid.
export function parseExpiration(v) {
  if (v === undefined || v === null || v === '' || v === 'never') return null;
  if (!/^(\d+[wdhms])+$/.test(v)) return undefined;
  const unit = { w: 604800, d: 86400, h: 3600, m: 60, s: 1 };
  let total = 0;
  for (const [, n, u] of v.matchAll(/(\d+)([wdhms])/g)) total += Number(n) * unit[u];
  return Number.isSafeInteger(total) ? total : undefined;
}

// RFC 3339 with a zone -> epoch ms; null when invalid.
export function parseRfc3339(s) {
  if (typeof s !== 'string') return null;
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})$/.exec(s);
  if (!m) return null;
  const [y, mo, d, h, mi, se] = m.slice(1, 7).map(Number);
  if (mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || se > 59) return null;
  const dim = new Date(Date.UTC(y, mo, 0)).getUTCDate();
  if (d > dim) return null;
  if (m[8] !== 'Z') {
    const [zh, zm] = m[8].slice(1).split(':').map(Number);
    if (zh > 23 || zm > 59) return null;
  }
  const t = Date.parse(s);
  return Number.isFinite(t) ? t : null;
}

// ---------------------------------------------------------------- emulator

/**
 * options: org (slug, required), tokens (platform tokens with every scope,
 * at least one), readOnlyTokens, dataDir (required), databases (names to
 * create at listen()), streamExpiryMs (database hosts), stallMs,
 * organizationsShape ('auto' | 'array' | 'wrapped').
 */
export function createPlatformEmulator(options = {}) {
  const org = options.org;
  if (typeof org !== 'string' || !NAME_RE.test(org)) throw new Error(`createPlatformEmulator: org must match ${NAME_RE}`);
  if (!options.dataDir) throw new Error('createPlatformEmulator: dataDir is required');
  const fullTokens = new Set(options.tokens ?? []);
  const readTokens = new Set(options.readOnlyTokens ?? []);
  if (fullTokens.size === 0 && readTokens.size === 0) throw new Error('createPlatformEmulator: at least one platform token is required');
  const dataDir = path.resolve(options.dataDir);
  fs.mkdirSync(dataDir, { recursive: true });
  const streamExpiryMs = options.streamExpiryMs;
  const stallMs = options.stallMs ?? 60000;
  let organizationsShape = options.organizationsShape ?? 'auto';
  if (!['auto', 'array', 'wrapped'].includes(organizationsShape)) throw new Error(`unknown organizations shape ${organizationsShape}`);

  const keys = crypto.generateKeyPairSync('ed25519');
  let clockOffsetMs = 0;
  const nowMs = () => Date.now() + clockOffsetMs;
  const nowS = () => Math.floor(nowMs() / 1000);

  const orgInfo = {
    uuid: crypto.randomUUID(),
    name: org,
    slug: org,
    type: 'personal',
    overages: false,
    require_mfa: false,
    blocked_reads: false,
    blocked_writes: false,
    plan_id: 'developer',
    plan_timeline: 'monthly',
    platform: '',
  };

  const groups = new Map(); // name -> group
  const dbs = new Map(); // name -> database record (pending ones too)
  const calls = [];
  const counters = { api_calls: 0, tokens_minted: 0 };
  let fail = { mode: 'none', count: -1, path: null };
  const stalled = new Set();
  const openSockets = new Set();
  let closed = false;

  function addGroup(name, location) {
    const g = {
      name,
      uuid: crypto.randomUUID(),
      locations: [location],
      primary: location,
      archived: false,
      delete_protection: false,
      version: `v${SERVER_VERSION}`,
      rid: crypto.randomUUID(),
    };
    groups.set(name, g);
    return g;
  }
  addGroup(DEFAULT_GROUP, DEFAULT_LOCATION);

  const groupJson = (g) => ({
    name: g.name,
    version: g.version,
    uuid: g.uuid,
    locations: [...g.locations],
    primary: g.primary,
    archived: g.archived,
    delete_protection: g.delete_protection,
  });

  // ------------------------------------------------------------ tokens

  function signJwt(claims) {
    const signing = `${b64json({ alg: 'EdDSA', typ: 'JWT' })}.${b64json(claims)}`;
    const sig = crypto.sign(null, Buffer.from(signing), keys.privateKey).toString('base64url');
    return `${signing}.${sig}`;
  }

  // claims when the signature is ours and the header is right, else null
  function verifyJwt(token) {
    if (typeof token !== 'string') return null;
    const parts = token.split('.');
    if (parts.length !== 3 || parts.some((p) => !/^[A-Za-z0-9_-]+$/.test(p))) return null;
    try {
      const header = JSON.parse(Buffer.from(parts[0], 'base64url').toString('utf8'));
      if (header?.alg !== 'EdDSA') return null;
      const ok = crypto.verify(null, Buffer.from(`${parts[0]}.${parts[1]}`), keys.publicKey, Buffer.from(parts[2], 'base64url'));
      if (!ok) return null;
      const claims = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
      return claims && typeof claims === 'object' ? claims : null;
    } catch {
      return null;
    }
  }

  function mintToken({ db, group, a, expSeconds, iat, exp, attach }) {
    const claims = { a, iat: iat ?? nowS() };
    if (exp !== undefined && exp !== null) claims.exp = exp;
    else if (expSeconds !== null && expSeconds !== undefined) claims.exp = claims.iat + expSeconds;
    if (db) {
      claims.id = db.id;
      claims.rid = db.rid;
    } else {
      claims.gid = group.uuid;
      claims.rid = group.rid;
    }
    if (attach && attach.length > 0) claims.p = { roa: { ns: [...attach] } };
    counters.tokens_minted++;
    return signJwt(claims);
  }

  // the database host's authorize(): 'rw' | 'ro' | null | {error}
  function authorizeDbToken(db, token) {
    if (token === '') return { error: 'Unauthorized: `unauthorized access attempt on database: empty JWT token`' };
    const claims = verifyJwt(token);
    if (!claims || dbs.get(db.name) !== db) return null;
    const group = groups.get(db.group);
    const forDb = claims.id !== undefined && claims.id === db.id && claims.rid === db.rid;
    const forGroup = claims.gid !== undefined && group && claims.gid === group.uuid && claims.rid === group.rid;
    if (!forDb && !forGroup) return null;
    if (typeof claims.exp === 'number' && nowS() >= claims.exp) return { error: 'Unauthorized: `The JWT has expired`' };
    return claims.a === 'ro' ? 'ro' : 'rw';
  }

  // ------------------------------------------------------------ databases

  const dbJson = (db) => {
    const g = groups.get(db.group);
    return {
      Name: db.name,
      DbId: db.id,
      Hostname: db.hostname,
      block_reads: db.config.block_reads,
      block_writes: db.config.block_writes,
      allow_attach: db.config.allow_attach,
      regions: g ? [...g.locations] : [],
      primaryRegion: g ? g.primary : DEFAULT_LOCATION,
      database_type: 'libsql',
      version: SERVER_VERSION,
      group: db.group,
      is_schema: false,
      schema: '',
      sleeping: false,
      archived: false,
      delete_protection: db.config.delete_protection,
      parent: db.parent,
    };
  };

  const configJson = (db) => ({
    size_limit: String(db.config.size_limit),
    allow_attach: db.config.allow_attach,
    block_reads: db.config.block_reads,
    block_writes: db.config.block_writes,
    delete_protection: db.config.delete_protection,
    allowed_ips: [...db.config.allowed_ips],
    allowed_aws_vpc_ids: [...db.config.allowed_aws_vpc_ids],
  });

  function instanceJson(db, loc) {
    const g = groups.get(db.group);
    if (!db.instanceIds.has(loc)) db.instanceIds.set(loc, crypto.randomUUID());
    return {
      uuid: db.instanceIds.get(loc),
      name: loc,
      type: g && loc === g.primary ? 'primary' : 'replica',
      region: loc,
      hostname: db.hostname,
    };
  }

  function recordStatement(db, { sql, rowsRead, rowsWritten }) {
    const sec = Math.floor(nowMs() / 1000);
    const b = db.usage.get(sec);
    if (b) {
      b[0] += rowsRead;
      b[1] += rowsWritten;
    } else db.usage.set(sec, [rowsRead, rowsWritten]);
    let q = db.queries.get(sql);
    if (!q) {
      if (db.queries.size >= QUERY_CAP) return;
      q = { query: sql, rows_read: 0, rows_written: 0, count: 0 };
      db.queries.set(sql, q);
    }
    q.rows_read += rowsRead;
    q.rows_written += rowsWritten;
    q.count++;
  }

  function usageOf(db, fromMs, toMs) {
    let r = 0;
    let w = 0;
    const lo = Math.floor(fromMs / 1000);
    const hi = Math.floor(toMs / 1000);
    for (const [sec, [br, bw]] of db.usage) {
      if (sec >= lo && sec <= hi) {
        r += br;
        w += bw;
      }
    }
    const storage = db.hrana ? db.hrana.storageBytes() : 0;
    return { rows_read: r, rows_written: w, storage_bytes: storage, bytes_synced: 0 };
  }

  function dbUsageJson(db, fromMs, toMs) {
    const u = usageOf(db, fromMs, toMs);
    const g = groups.get(db.group);
    return {
      uuid: db.id,
      instances: [{ uuid: instanceJson(db, g ? g.primary : DEFAULT_LOCATION).uuid, usage: { ...u } }],
      usage: u,
    };
  }

  function monthWindow() {
    const d = new Date(nowMs());
    return [Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1), Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1) - 1];
  }

  function applySizeLimit(db, conn) {
    const limit = Number(db.config.size_limit);
    if (!limit) return;
    const pageSize = Number(conn.prepare('PRAGMA page_size').get().page_size) || 4096;
    conn.exec(`PRAGMA max_page_count = ${Math.max(1, Math.floor(limit / pageSize))}`);
  }

  async function startDatabase({ name, group, sizeLimit = 0, seedFrom = null, parent = null }) {
    const id = crypto.randomUUID();
    const db = {
      name,
      id,
      group,
      file: path.join(dataDir, `${name}-${id}.db`),
      rid: crypto.randomUUID(),
      config: {
        size_limit: sizeLimit,
        allow_attach: false,
        block_reads: false,
        block_writes: false,
        delete_protection: false,
        allowed_ips: [],
        allowed_aws_vpc_ids: [],
      },
      parent,
      instanceIds: new Map(),
      usage: new Map(),
      queries: new Map(),
      hrana: null,
      hostname: null,
      pending: true,
      createdAt: nowMs(),
    };
    dbs.set(name, db); // reserve the name while the host starts
    try {
      if (seedFrom) seedFrom.hrana.copyTo(db.file);
      const hrana = createHranaServer({
        dbPath: db.file,
        authorize: (token) => authorizeDbToken(db, token),
        streamExpiryMs,
        namespace: name,
        blocked: () => ({ reads: db.config.block_reads, writes: db.config.block_writes }),
        onStatement: (e) => recordStatement(db, e),
        onConnection: (conn) => applySizeLimit(db, conn),
        logPrefix: `platform-emulator[${name}]`,
      });
      db.hrana = hrana;
      const port = await hrana.listen(0, '127.0.0.1');
      db.hostname = `127.0.0.1:${port}`;
      db.pending = false;
      if (closed) {
        await hrana.close();
        throw new Error('emulator closed');
      }
      return db;
    } catch (e) {
      if (dbs.get(name) === db) dbs.delete(name);
      if (db.hrana) await db.hrana.close();
      removeFiles(db.file);
      throw e;
    }
  }

  function removeFiles(file) {
    for (const f of [file, `${file}-wal`, `${file}-shm`, `${file}-journal`]) {
      try {
        fs.rmSync(f, { force: true });
      } catch {
        /* ignore */
      }
    }
  }

  async function stopDatabase(db) {
    if (dbs.get(db.name) === db) dbs.delete(db.name);
    if (db.hrana) await db.hrana.close();
    removeFiles(db.file);
  }

  function getDb(name) {
    const db = dbs.get(name);
    if (!db || db.pending) throw new HttpError(404, `could not find database with name ${name}: record not found`);
    return db;
  }

  function getGroup(name) {
    const g = groups.get(name);
    if (!g) throw new HttpError(404, 'group not found');
    return g;
  }

  // ------------------------------------------------------------ handlers

  function tokenOptions(query) {
    const exp = parseExpiration(query.get('expiration') ?? undefined);
    if (exp === undefined) throw new HttpError(400, 'Invalid expiration format');
    const auth = query.get('authorization') ?? 'full-access';
    if (auth !== 'full-access' && auth !== 'read-only') {
      throw new HttpError(400, `invalid authorization: ${auth} (expected full-access or read-only)`);
    }
    return { expSeconds: exp, a: auth === 'read-only' ? 'ro' : 'rw' };
  }

  function attachDatabases(body) {
    const list = body?.permissions?.read_attach?.databases;
    if (list === undefined || list === null) return [];
    if (!Array.isArray(list) || list.some((x) => typeof x !== 'string')) {
      throw new HttpError(400, 'invalid permissions: read_attach.databases must be a list of database names');
    }
    return list;
  }

  async function createDatabaseFromBody(body) {
    const name = body.name;
    if (typeof name !== 'string' || !NAME_RE.test(name)) {
      throw new HttpError(400, `invalid database name ${JSON.stringify(name ?? '')}: ${NAME_RULE}`);
    }
    if (dbs.has(name)) throw new HttpError(409, `database with name ${name} already exists`);
    if (body.group === undefined || body.group === null || body.group === '') {
      throw new HttpError(400, 'group not found: the group field is required');
    }
    if (typeof body.group !== 'string' || !groups.has(body.group)) throw new HttpError(400, 'group not found');
    let sizeLimit = 0;
    if (body.size_limit !== undefined && body.size_limit !== null && body.size_limit !== '') {
      sizeLimit = parseSize(body.size_limit);
      if (sizeLimit === null) throw new HttpError(400, `invalid size_limit: ${JSON.stringify(body.size_limit)}`);
    }
    let seedFrom = null;
    let parent = null;
    if (body.seed !== undefined && body.seed !== null) {
      const seed = body.seed;
      if (typeof seed !== 'object' || Array.isArray(seed)) throw new HttpError(400, 'invalid seed: expected an object');
      if (seed.type === 'database') {
        const src = seed.name ?? seed.value;
        if (typeof src !== 'string' || src === '') throw new HttpError(400, 'invalid seed: name of the source database is required');
        const s = dbs.get(src);
        if (!s || s.pending) throw new HttpError(400, `invalid seed: could not find database with name ${src}: record not found`);
        if (seed.timestamp !== undefined && seed.timestamp !== null) {
          const t = parseRfc3339(seed.timestamp);
          if (t === null) throw new HttpError(400, `invalid seed timestamp ${JSON.stringify(seed.timestamp)}: expected RFC 3339 with a time zone`);
          if (t > nowMs() + 1000) throw new HttpError(400, `invalid seed timestamp ${seed.timestamp}: it is in the future`);
        }
        seedFrom = s;
        parent = { id: s.id, name: s.name, branched_at: new Date(nowMs()).toISOString() };
      } else if (seed.type !== 'database_upload') {
        throw new HttpError(400, `invalid seed type: ${JSON.stringify(seed.type ?? null)} (expected database or database_upload)`);
      }
    }
    const db = await startDatabase({ name, group: body.group, sizeLimit, seedFrom, parent });
    return db;
  }

  function patchConfig(db, body) {
    const next = { ...db.config };
    for (const k of ['allow_attach', 'block_reads', 'block_writes', 'delete_protection']) {
      if (body[k] === undefined) continue;
      if (typeof body[k] !== 'boolean') throw new HttpError(400, `invalid ${k}: expected a boolean`);
      next[k] = body[k];
    }
    if (body.size_limit !== undefined) {
      const n = body.size_limit === null || body.size_limit === '' ? 0 : parseSize(body.size_limit);
      if (n === null) throw new HttpError(400, `invalid size_limit: ${JSON.stringify(body.size_limit)}`);
      next.size_limit = n;
    }
    for (const k of ['allowed_ips', 'allowed_aws_vpc_ids']) {
      if (body[k] === undefined) continue;
      if (body[k] === null) next[k] = [];
      else if (Array.isArray(body[k]) && body[k].every((x) => typeof x === 'string')) next[k] = [...body[k]];
      else throw new HttpError(400, `invalid ${k}: expected a list of strings`);
    }
    db.config = next;
  }

  function organizationsBody(req) {
    const { uuid, ...o } = orgInfo;
    const list = [o];
    const ua = String(req.headers['user-agent'] ?? '');
    const wrapped = organizationsShape === 'wrapped' || (organizationsShape === 'auto' && ua.startsWith('@tursodatabase/api'));
    return wrapped ? { organizations: list } : list;
  }

  function orgUsageJson() {
    const [from, to] = monthWindow();
    const list = [...dbs.values()].filter((d) => !d.pending).map((d) => dbUsageJson(d, from, to));
    const sum = (k) => list.reduce((a, d) => a + d.usage[k], 0);
    const locs = new Set();
    for (const g of groups.values()) for (const l of g.locations) locs.add(l);
    return {
      organization: {
        uuid: orgInfo.uuid,
        usage: {
          rows_read: sum('rows_read'),
          rows_written: sum('rows_written'),
          databases: list.length,
          locations: locs.size,
          storage_bytes: sum('storage_bytes'),
          groups: groups.size,
          bytes_synced: 0,
        },
        databases: list,
      },
    };
  }

  // Routes one authenticated API call. `seg` = decoded path segments.
  async function route(req, res, seg, query, auth, bodyText) {
    const m = req.method;
    const body = (required) => parseJsonBody(bodyText, { required });
    const mutate = () => {
      if (auth === 'read') throw new HttpError(403, 'forbidden: this API token has only the read scope');
    };
    const only = (...methods) => {
      if (!methods.includes(m)) throw new HttpError(405, `method ${m} not allowed`);
    };
    const n = seg.length;
    const v1 = seg[0] === 'v1';

    if (v1 && n === 3 && seg[1] === 'auth' && seg[2] === 'validate') {
      only('GET');
      return sendJson(res, 200, { exp: -1 });
    }
    if (v1 && n === 2 && seg[1] === 'locations') {
      only('GET');
      return sendJson(res, 200, { locations: { ...LOCATIONS } });
    }
    if (seg[0] === 'v2' && n === 2 && seg[1] === 'organizations') {
      only('GET');
      const { uuid, ...o } = orgInfo;
      return sendJson(res, 200, { organizations: [o] });
    }
    if (!v1 || seg[1] !== 'organizations') throw new HttpError(404, 'not found');
    if (n === 2) {
      only('GET');
      return sendJson(res, 200, organizationsBody(req));
    }
    if (seg[2] !== org) throw new HttpError(404, 'organization not found');
    if (n === 3) {
      only('GET', 'PATCH');
      if (m === 'PATCH') {
        mutate();
        const b = body(true);
        for (const k of ['overages', 'require_mfa']) {
          if (b[k] === undefined) continue;
          if (typeof b[k] !== 'boolean') throw new HttpError(400, `invalid ${k}: expected a boolean`);
          orgInfo[k] = b[k];
        }
      }
      const { uuid, ...o } = orgInfo;
      return sendJson(res, 200, { organization: o });
    }
    const kind = seg[3];
    if (kind === 'usage' && n === 4) {
      only('GET');
      return sendJson(res, 200, orgUsageJson());
    }

    if (kind === 'databases') {
      if (n === 4) {
        only('GET', 'POST');
        if (m === 'GET') {
          const gf = query.get('group');
          const pf = query.get('parent');
          const list = [...dbs.values()]
            .filter((d) => !d.pending)
            .filter((d) => !gf || d.group === gf)
            .filter((d) => !pf || (d.parent && (d.parent.name === pf || d.parent.id === pf)));
          return sendJson(res, 200, { databases: list.map(dbJson) });
        }
        mutate();
        const db = await createDatabaseFromBody(body(true));
        return sendJson(res, 200, { database: { DbId: db.id, Hostname: db.hostname, Name: db.name } });
      }
      const db = getDb(seg[4]);
      if (n === 5) {
        only('GET', 'DELETE');
        if (m === 'GET') return sendJson(res, 200, { database: dbJson(db) });
        mutate();
        if (db.config.delete_protection) {
          throw new HttpError(400, `cannot delete database ${db.name}: delete protection is enabled; disable it in the database configuration first`);
        }
        await stopDatabase(db);
        return sendJson(res, 200, { database: db.name });
      }
      const sub = seg[5];
      if (sub === 'configuration' && n === 6) {
        only('GET', 'PATCH');
        if (m === 'PATCH') {
          mutate();
          patchConfig(db, body(false));
        }
        return sendJson(res, 200, configJson(db));
      }
      if (sub === 'instances' && (n === 6 || n === 7)) {
        only('GET');
        const g = groups.get(db.group);
        const locs = g ? g.locations : [DEFAULT_LOCATION];
        if (n === 6) return sendJson(res, 200, { instances: locs.map((l) => instanceJson(db, l)) });
        if (!locs.includes(seg[6])) throw new HttpError(404, `instance ${seg[6]} not found`);
        return sendJson(res, 200, { instance: instanceJson(db, seg[6]) });
      }
      if (sub === 'auth' && n === 7 && (seg[6] === 'tokens' || seg[6] === 'rotate')) {
        only('POST');
        mutate();
        if (seg[6] === 'rotate') {
          db.rid = crypto.randomUUID();
          return sendEmpty(res, 200);
        }
        const opts = tokenOptions(query);
        const attach = attachDatabases(body(false));
        return sendJson(res, 200, { jwt: mintToken({ db, a: opts.a, expSeconds: opts.expSeconds, attach }) });
      }
      if (sub === 'usage' && n === 6) {
        only('GET');
        let [from, to] = monthWindow();
        for (const k of ['from', 'to']) {
          const v = query.get(k);
          if (v === null) continue;
          const t = parseRfc3339(v);
          if (t === null) {
            throw new HttpError(400, `invalid ${k} parameter: parsing time ${JSON.stringify(v)} as RFC 3339: a date, a time and a time zone (Z or +hh:mm) are required`);
          }
          if (k === 'from') from = t;
          else to = t;
        }
        if (from > to) throw new HttpError(400, 'invalid time range: from is after to');
        return sendJson(res, 200, { database: dbUsageJson(db, from, to) });
      }
      if (sub === 'stats' && n === 6) {
        only('GET');
        const top = [...db.queries.values()]
          .sort((a, b) => b.rows_read - a.rows_read || b.rows_written - a.rows_written || (a.query < b.query ? -1 : 1))
          .map((q) => ({ query: q.query, rows_read: q.rows_read, rows_written: q.rows_written }));
        return sendJson(res, 200, { top_queries: top.length ? top : null });
      }
      throw new HttpError(404, 'not found');
    }

    if (kind === 'groups') {
      if (n === 4) {
        only('GET', 'POST');
        if (m === 'GET') return sendJson(res, 200, { groups: [...groups.values()].map(groupJson) });
        mutate();
        const b = body(true);
        if (typeof b.name !== 'string' || !NAME_RE.test(b.name)) {
          throw new HttpError(400, `invalid group name ${JSON.stringify(b.name ?? '')}: ${NAME_RULE}`);
        }
        if (groups.has(b.name)) throw new HttpError(409, 'group already exists');
        if (typeof b.location !== 'string' || !(b.location in LOCATIONS)) {
          throw new HttpError(400, `invalid location: ${b.location ?? ''}`);
        }
        return sendJson(res, 200, { group: groupJson(addGroup(b.name, b.location)) });
      }
      const g = getGroup(seg[4]);
      if (n === 5) {
        only('GET', 'DELETE');
        if (m === 'GET') return sendJson(res, 200, { group: groupJson(g) });
        mutate();
        if (g.delete_protection) throw new HttpError(400, `cannot delete group ${g.name}: delete protection is enabled`);
        const members = [...dbs.values()].filter((d) => d.group === g.name);
        const prot = members.find((d) => d.config.delete_protection);
        if (prot) throw new HttpError(400, `cannot delete group ${g.name}: database ${prot.name} has delete protection enabled`);
        groups.delete(g.name);
        for (const d of members) await stopDatabase(d);
        return sendJson(res, 200, { group: groupJson(g) });
      }
      const sub = seg[5];
      if (sub === 'configuration' && n === 6) {
        only('GET', 'PATCH');
        if (m === 'PATCH') {
          mutate();
          const b = body(false);
          if (b.delete_protection !== undefined) {
            if (typeof b.delete_protection !== 'boolean') throw new HttpError(400, 'invalid delete_protection: expected a boolean');
            g.delete_protection = b.delete_protection;
          }
        }
        return sendJson(res, 200, { delete_protection: g.delete_protection });
      }
      if (sub === 'locations' && n === 7) {
        only('POST', 'DELETE');
        mutate();
        const loc = seg[6];
        if (!(loc in LOCATIONS)) throw new HttpError(400, `invalid location: ${loc}`);
        if (m === 'POST') {
          if (!g.locations.includes(loc)) g.locations.push(loc);
        } else {
          if (loc === g.primary) throw new HttpError(400, `cannot remove the primary location ${loc} of group ${g.name}`);
          g.locations = g.locations.filter((l) => l !== loc);
        }
        return sendJson(res, 200, { group: groupJson(g) });
      }
      if (sub === 'auth' && n === 7 && (seg[6] === 'tokens' || seg[6] === 'rotate')) {
        only('POST');
        mutate();
        if (seg[6] === 'rotate') {
          g.rid = crypto.randomUUID();
          for (const d of dbs.values()) if (d.group === g.name) d.rid = crypto.randomUUID();
          return sendEmpty(res, 200);
        }
        const opts = tokenOptions(query);
        const attach = attachDatabases(body(false));
        return sendJson(res, 200, { jwt: mintToken({ group: g, a: opts.a, expSeconds: opts.expSeconds, attach }) });
      }
      throw new HttpError(404, 'not found');
    }
    throw new HttpError(404, 'not found');
  }

  // ------------------------------------------------------------ fail modes

  function failApplies(pathname) {
    if (fail.mode === 'none' || fail.count === 0) return null;
    if (fail.path && !pathname.includes(fail.path)) return null;
    const mode = fail.mode;
    if (fail.count > 0 && --fail.count === 0) fail = { mode: 'none', count: -1, path: null };
    return mode;
  }

  function doFail(mode, req, res) {
    switch (mode) {
      case '500':
        return sendJson(res, 500, { error: 'internal error: injected by platform-emulator' });
      case '503':
        return sendJson(res, 503, { error: 'service unavailable: injected by platform-emulator' });
      case '429':
        return sendJson(res, 429, { error: 'too many requests: injected by platform-emulator' }, { 'retry-after': '1' });
      case '401':
        return sendJson(res, 401, { error: 'could not parse jwt id' });
      case 'garbage': {
        const buf = Buffer.from('<html><body>502 Bad Gateway</body></html>\n{not json');
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': buf.length });
        return res.end(buf);
      }
      case 'close':
        return req.socket.destroy();
      case 'stall': {
        const t = setTimeout(() => {
          stalled.delete(t);
          req.socket.destroy();
        }, stallMs);
        stalled.add(t);
        return undefined;
      }
      default:
        return undefined;
    }
  }

  function setFail(mode, count, pathFilter) {
    const m = String(mode ?? 'none');
    if (!PLATFORM_FAIL_MODES.has(m)) throw new HttpError(400, `unknown mode ${m}`);
    fail = {
      mode: m,
      count: Number.isInteger(count) && count > 0 ? count : -1,
      path: typeof pathFilter === 'string' && pathFilter !== '' ? pathFilter : null,
    };
    return { fail_mode: fail.mode, count: fail.count, path: fail.path };
  }

  // ------------------------------------------------------------ test hooks

  function state() {
    return {
      org: orgInfo.slug,
      organizations_shape: organizationsShape,
      clock_offset_seconds: clockOffsetMs / 1000,
      fail_mode: fail.mode,
      ...counters,
      groups: [...groups.values()].map(groupJson),
      databases: [...dbs.values()]
        .filter((d) => !d.pending)
        .map((d) => ({
          name: d.name,
          id: d.id,
          group: d.group,
          hostname: d.hostname,
          url: `http://${d.hostname}`,
          file: d.file,
          config: configJson(d),
          hrana: d.hrana.state(),
        })),
    };
  }

  function adminMint(b) {
    const a = b.a ?? 'rw';
    if (a !== 'rw' && a !== 'ro') throw new HttpError(400, 'a must be rw or ro');
    const num = (x, k) => {
      if (x === undefined || x === null) return x;
      if (!Number.isInteger(x)) throw new HttpError(400, `${k} must be an integer (unix seconds)`);
      return x;
    };
    const exp = num(b.exp, 'exp');
    const iat = num(b.iat, 'iat');
    if (typeof b.database === 'string') return mintToken({ db: getDb(b.database), a, exp, iat });
    if (typeof b.group === 'string') return mintToken({ group: getGroup(b.group), a, exp, iat });
    throw new HttpError(400, 'give "database" or "group"');
  }

  async function handleAdmin(req, res, seg) {
    const m = req.method;
    const key = seg.slice(1).join('/');
    if (key === 'state' && m === 'GET') return sendJson(res, 200, state());
    if (key === 'calls' && m === 'GET') return sendJson(res, 200, { calls });
    if (key === 'calls' && m === 'DELETE') {
      calls.length = 0;
      return sendJson(res, 200, { calls: [] });
    }
    if (seg[1] === 'databases' && seg.length === 4) {
      const db = getDb(seg[2]);
      if (seg[3] === 'state' && m === 'GET') return sendJson(res, 200, { ...db.hrana.state(), hostname: db.hostname });
      if (seg[3] === 'fail' && m === 'POST') {
        const b = parseJsonBody(await readBody(req), { required: true });
        const mode = String(b.mode ?? 'none');
        if (!HRANA_FAIL_MODES.has(mode)) throw new HttpError(400, `unknown mode ${mode}`);
        return sendJson(res, 200, db.hrana.setFail(mode, b.count));
      }
      throw new HttpError(404, 'not found');
    }
    if (m !== 'POST') throw new HttpError(404, 'not found');
    const b = parseJsonBody(await readBody(req), { required: true });
    if (key === 'fail') return sendJson(res, 200, setFail(b.mode, b.count, b.path));
    if (key === 'config') {
      if (b.organizations_shape !== undefined) {
        if (!['auto', 'array', 'wrapped'].includes(b.organizations_shape)) throw new HttpError(400, 'organizations_shape must be auto, array or wrapped');
        organizationsShape = b.organizations_shape;
      }
      return sendJson(res, 200, { organizations_shape: organizationsShape });
    }
    if (key === 'clock') {
      if (!Number.isFinite(b.offset_seconds)) throw new HttpError(400, 'offset_seconds must be a number');
      clockOffsetMs = Math.round(b.offset_seconds * 1000);
      return sendJson(res, 200, { offset_seconds: clockOffsetMs / 1000, now: nowS() });
    }
    if (key === 'mint') return sendJson(res, 200, { jwt: adminMint(b) });
    throw new HttpError(404, 'not found');
  }

  // ------------------------------------------------------------ HTTP

  function authOf(req) {
    const h = req.headers.authorization;
    if (h === undefined || h.trim() === '') return { kind: 'none' };
    const sp = h.indexOf(' ');
    const scheme = sp < 0 ? h : h.slice(0, sp);
    const token = sp < 0 ? '' : h.slice(sp + 1).trim();
    if (scheme.toLowerCase() !== 'bearer' || token === '') return { kind: 'none' };
    if (fullTokens.has(token)) return { kind: 'full' };
    if (readTokens.has(token)) return { kind: 'read' };
    return { kind: 'invalid' };
  }

  async function handle(req, res) {
    const url = new URL(req.url, 'http://127.0.0.1');
    let seg;
    try {
      seg = url.pathname.split('/').slice(1).map(decodeURIComponent);
    } catch {
      return sendJson(res, 400, { error: 'invalid path encoding' });
    }
    if (seg[0] === '__emulator') {
      try {
        return await handleAdmin(req, res, seg);
      } catch (e) {
        if (e instanceof HttpError) return sendJson(res, e.status, { error: e.message });
        throw e;
      }
    }
    if (url.pathname === '/' && req.method === 'GET') {
      req.resume();
      return sendJson(res, 200, { server: DEFAULT_LOCATION, client: DEFAULT_LOCATION });
    }

    counters.api_calls++;
    const auth = authOf(req);
    const entry = {
      at: new Date(nowMs()).toISOString(),
      method: req.method,
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      status: null,
      auth: auth.kind,
      user_agent: req.headers['user-agent'] ?? null,
      body: null,
    };
    calls.push(entry);
    if (calls.length > CALL_LOG_CAP) calls.splice(0, calls.length - CALL_LOG_CAP);
    res.on('finish', () => {
      entry.status = res.statusCode;
    });

    const mode = failApplies(url.pathname);
    if (mode) {
      req.resume();
      return doFail(mode, req, res);
    }
    let bodyText = '';
    try {
      bodyText = await readBody(req);
    } catch (e) {
      if (e instanceof HttpError) return sendJson(res, e.status, { error: e.message });
      return undefined;
    }
    if (bodyText !== '') {
      try {
        entry.body = JSON.parse(bodyText);
      } catch {
        entry.body = bodyText.slice(0, 4096);
      }
    }
    if (closed) return req.socket.destroy();
    if (auth.kind === 'none') return sendJson(res, 401, { error: 'missing authorization header' });
    if (auth.kind === 'invalid') return sendJson(res, 401, { error: 'could not parse jwt id' });
    try {
      return await route(req, res, seg, url.searchParams, auth.kind, bodyText);
    } catch (e) {
      if (e instanceof HttpError) return sendJson(res, e.status, { error: e.message });
      throw e;
    }
  }

  const server = http.createServer((req, res) => {
    handle(req, res).catch((e) => {
      process.stderr.write(`platform-emulator: ${e.stack || e}\n`);
      if (!res.headersSent) sendJson(res, 500, { error: `internal error: ${e.message}` });
    });
  });
  server.on('connection', (sock) => {
    openSockets.add(sock);
    sock.on('close', () => openSockets.delete(sock));
  });
  server.keepAliveTimeout = 5000;
  let boundPort = null;

  async function listen(port = 0, host = '127.0.0.1') {
    for (const name of options.databases ?? []) {
      if (!NAME_RE.test(name)) throw new Error(`invalid database name ${name}: ${NAME_RULE}`);
      if (dbs.has(name)) throw new Error(`database ${name} given twice`);
      await startDatabase({ name, group: DEFAULT_GROUP });
    }
    await new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    boundPort = server.address().port;
    return boundPort;
  }

  async function close() {
    if (closed) return;
    closed = true;
    const done = new Promise((resolve) => {
      if (!server.listening) return resolve();
      server.close(() => resolve());
    });
    for (const t of stalled) clearTimeout(t);
    stalled.clear();
    for (const sock of openSockets) sock.destroy();
    await Promise.all([...dbs.values()].map((d) => (d.hrana ? d.hrana.close() : undefined)));
    await done;
  }

  return {
    listen,
    close,
    get port() {
      return boundPort;
    },
    get url() {
      return boundPort === null ? null : `http://127.0.0.1:${boundPort}`;
    },
    get baseUrl() {
      return boundPort === null ? null : `http://127.0.0.1:${boundPort}/v1/`;
    },
    state,
    calls: () => calls.slice(),
    clearCalls: () => {
      calls.length = 0;
    },
    setFail: (mode, count, pathFilter) => setFail(mode, count, pathFilter),
    setOrganizationsShape: (shape) => {
      if (!['auto', 'array', 'wrapped'].includes(shape)) throw new Error(`unknown organizations shape ${shape}`);
      organizationsShape = shape;
    },
    setClockOffset: (seconds) => {
      clockOffsetMs = Math.round(seconds * 1000);
    },
    mint: (spec) => adminMint(spec),
    database: (name) => {
      const d = dbs.get(name);
      return d && !d.pending ? { name: d.name, id: d.id, hostname: d.hostname, url: `http://${d.hostname}`, file: d.file, hrana: d.hrana } : null;
    },
    verifyJwt,
    publicKey: keys.publicKey,
    server,
  };
}

// ---------------------------------------------------------------- CLI

function usage(msg) {
  if (msg) process.stderr.write(`platform-emulator: ${msg}\n`);
  process.stderr.write(
    'usage: platform-emulator.mjs --data-dir DIR --org SLUG --token T [--token T]... [--port N] ' +
      '[--read-only-token T]... [--database NAME]... [--stream-expiry-ms N] [--stall-ms N] ' +
      '[--organizations-shape auto|array|wrapped]\n',
  );
  process.exit(2);
}

function parseArgs(argv) {
  const o = { port: 0, dataDir: null, org: null, tokens: [], readOnlyTokens: [], databases: [], streamExpiryMs: undefined, stallMs: 60000, organizationsShape: 'auto' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) usage(`${a} needs a value`);
      return argv[++i];
    };
    const num = () => {
      const v = val();
      if (!/^\d+$/.test(v)) usage(`${a} needs a non-negative integer`);
      return Number(v);
    };
    switch (a) {
      case '--port': o.port = num(); break;
      case '--data-dir': o.dataDir = val(); break;
      case '--org': o.org = val(); break;
      case '--token': o.tokens.push(val()); break;
      case '--read-only-token': o.readOnlyTokens.push(val()); break;
      case '--database': o.databases.push(val()); break;
      case '--stream-expiry-ms': o.streamExpiryMs = num(); break;
      case '--stall-ms': o.stallMs = num(); break;
      case '--organizations-shape':
        o.organizationsShape = val();
        if (!['auto', 'array', 'wrapped'].includes(o.organizationsShape)) usage(`unknown organizations shape ${o.organizationsShape}`);
        break;
      case '-h': case '--help': usage(); break;
      default: usage(`unknown argument ${a}`);
    }
  }
  if (!o.dataDir) usage('--data-dir is required');
  if (!o.org) usage('--org is required');
  if (!NAME_RE.test(o.org)) usage('--org must be lowercase letters, digits and dashes');
  if (o.tokens.length === 0) usage('at least one --token is required');
  if (o.port > 65535) usage('--port out of range');
  return o;
}

async function main() {
  process.removeAllListeners('warning');
  process.on('warning', (w) => {
    if (w.name !== 'ExperimentalWarning') process.stderr.write(`${w.stack || w}\n`);
  });
  const o = parseArgs(process.argv.slice(2));
  let emu;
  try {
    emu = createPlatformEmulator(o);
  } catch (e) {
    process.stderr.write(`platform-emulator: ${e.message}\n`);
    process.exit(2);
  }
  let stopping = false;
  const shutdown = () => {
    if (stopping) return;
    stopping = true;
    const t = setTimeout(() => process.exit(0), 3000);
    emu.close().finally(() => {
      clearTimeout(t);
      process.exit(0);
    });
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
  let port;
  try {
    port = await emu.listen(o.port, '127.0.0.1');
  } catch (e) {
    process.stderr.write(`platform-emulator: ${e.message}\n`);
    await emu.close().catch(() => {});
    process.exit(1);
  }
  emu.server.on('error', (e) => {
    process.stderr.write(`platform-emulator: ${e.message}\n`);
    process.exit(1);
  });
  process.stdout.write(`platform-emulator listening on http://127.0.0.1:${port}\n`);
}

function isMainModule() {
  if (!process.argv[1]) return false;
  try {
    return fs.realpathSync(process.argv[1]) === fs.realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isMainModule()) await main();
