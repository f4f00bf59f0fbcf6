#!/usr/bin/env node
// Hrana-over-HTTP v2 emulator: the parts of a Turso Cloud (sqld) database host
// that the local `tursodb --sync-server` does not implement. Test tool only.
//
// Usage:
//   node hrana-emulator.mjs --db FILE [--port 0] [--host 127.0.0.1]
//        [--token-rw TOKEN]... [--token-ro TOKEN]...
//        [--stream-expiry-ms 10000] [--fail-mode MODE] [--stall-ms 60000] [--admin]
//
// On start it prints exactly one line to stdout:
//   hrana-emulator listening on http://127.0.0.1:PORT
// and stops cleanly on SIGTERM / SIGINT.
//
// Wire contract (POST /v2/pipeline) as sqld behaves:
//  - Auth: `Authorization: Bearer <token>` (scheme case-insensitive). With no
//    token configured at all the emulator accepts anything, like the local
//    tursodb. Missing header -> 401 {"error":"Unauthorized: `Expected
//    authorization header but none given`"}; unknown or garbage -> 401
//    {"error":"Unauthorized: `The JWT is invalid`"}. A read-only token running
//    a write fails the whole request with 403 and the stream is dropped.
//  - Streams: one SQLite connection per stream; single-use batons
//    (`<id>.<seq>.<hmac>`); idle expiry; `close`; protocol errors are 400
//    text/plain and drop the stream.
//  - Requests: execute, batch (ok/error/not/and/or conditions), sequence,
//    describe, store_sql, close_sql, close. get_autocommit and is_autocommit
//    are v3-only and rejected as sqld does on v2.
//  - Values (turso-api.md 2.4), Stmt binding rules (2.5) and StmtResult (2.6).
//
// Classifying "write" for read-only tokens (node:sqlite has no
// sqlite3_stmt_readonly): the statement is prepared and its program is read
// with `EXPLAIN`; it writes when it contains an `OP_Transaction` with P2 != 0
// (a write transaction) or `Checkpoint`, `Vacuum` or `JournalMode` -- the
// same rule SQLite uses to compute sqlite3_stmt_readonly(). This is also what
// `describe` reports as is_readonly. For authorization, transaction-control
// statements (BEGIN [IMMEDIATE|EXCLUSIVE|DEFERRED], COMMIT, END, ROLLBACK,
// SAVEPOINT, RELEASE) are allowed like sqld allows them, `EXPLAIN ...` is a
// read, ATTACH/DETACH are writes, and a statement that cannot be prepared
// (e.g. its table does not exist yet) is classified by its first keyword
// (INSERT/UPDATE/DELETE/REPLACE/CREATE/DROP/ALTER/... are writes).
//
// Known differences from sqld: node:sqlite cuts TEXT values at an embedded
// NUL (both ways); SQLITE_BUSY is reported at once (no busy wait, since the
// emulator is single-threaded); replication_index is always null; rows_read /
// rows_written are approximations (rows returned / rows changed).
//
// Test hooks:
//  --fail-mode MODE   answer every pipeline request with MODE:
//                     none | 500 | 503 | 401 | garbage (200 with a non-JSON
//                     body) | stall (hold the request for --stall-ms, then
//                     drop the connection) | close (drop the connection)
//  --admin            enable, on the same port:
//                     POST /__emulator/fail   {"mode":"500","count":N?}
//                          (count: how many pipeline requests fail; absent =
//                          until changed)
//                     POST /__emulator/tokens {"rw":[...],"ro":[...]}
//                          (replace the accepted tokens)
//                     GET  /__emulator/state  {"pipeline_requests":N,
//                          "streams_open":N,"auth_failures":N,"forbidden":N}
//
// As a module (used by platform-emulator.mjs, one server per database):
//   import { createHranaServer } from './hrana-emulator.mjs';
//   const db = createHranaServer({ dbPath, authorize: (token) => 'rw' | 'ro' | null,
//                                  streamExpiryMs, namespace, blocked, onStatement });
//   const port = await db.listen(0, '127.0.0.1');  ...  await db.close();
// See createHranaServer below for every option. The script's behaviour above
// is the module's with `tokens: {rw, ro}` instead of `authorize`.

import http from 'node:http';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

// node:sqlite prints an ExperimentalWarning when it is loaded; swallow that
// one warning (and only while loading it) so stderr keeps real problems only,
// whether this file runs as a script or is imported.
let DatabaseSync = null;
let sqliteLoadError = null;
{
  const emitWarning = process.emitWarning;
  process.emitWarning = function filtered(w, ...rest) {
    const type = typeof rest[0] === 'string' ? rest[0] : rest[0]?.type;
    const name = type ?? w?.name;
    if (name === 'ExperimentalWarning' && /SQLite/i.test(String(w?.message ?? w))) return undefined;
    return emitWarning.call(this, w, ...rest);
  };
  try {
    ({ DatabaseSync } = await import('node:sqlite'));
  } catch (e) {
    sqliteLoadError = e;
  } finally {
    process.emitWarning = emitWarning;
  }
}

function sqliteMissingMessage() {
  return (
    `node:sqlite is not available in Node ${process.version} ` +
    `(needs Node >= 22.5, with --experimental-sqlite before 22.13): ${sqliteLoadError?.message}`
  );
}

// ---------------------------------------------------------------- errors

// Fails the whole HTTP request with 400 text/plain (sqld "protocol error").
class ProtocolError extends Error {}
// 400 JSON {"message","code"} (stream expired).
class StreamExpiredError extends Error {}
// 403 JSON: a read-only token tried to write.
class ForbiddenError extends Error {}
// In-band Hrana error {"message","code"}.
class StmtError extends Error {
  constructor(message, code) {
    super(message);
    this.code = code;
  }
}

const SQLITE_CODE_NAMES = {
  1: 'SQLITE_UNKNOWN', // generic error: sqld maps SQLITE_ERROR at run time to SQLITE_UNKNOWN
  2: 'SQLITE_INTERNAL',
  3: 'SQLITE_PERM',
  4: 'SQLITE_ABORT',
  5: 'SQLITE_BUSY',
  6: 'SQLITE_LOCKED',
  7: 'SQLITE_NOMEM',
  8: 'SQLITE_READONLY',
  9: 'SQLITE_INTERRUPT',
  10: 'SQLITE_IOERR',
  11: 'SQLITE_CORRUPT',
  12: 'SQLITE_NOTFOUND',
  13: 'SQLITE_FULL',
  14: 'SQLITE_CANTOPEN',
  15: 'SQLITE_PROTOCOL',
  17: 'SQLITE_SCHEMA',
  18: 'SQLITE_TOOBIG',
  19: 'SQLITE_CONSTRAINT',
  20: 'SQLITE_MISMATCH',
  21: 'SQLITE_MISUSE',
  22: 'SQLITE_NOLFS',
  23: 'SQLITE_AUTH',
  25: 'SQLITE_RANGE',
  26: 'SQLITE_NOTADB',
};

function sqliteErrorCode(e) {
  const primary = typeof e.errcode === 'number' ? e.errcode & 0xff : 1;
  return SQLITE_CODE_NAMES[primary] || 'SQLITE_UNKNOWN';
}

// Error raised while preparing: syntax errors -> SQL_PARSE_ERROR, other
// SQLITE_ERROR -> SQL_INPUT_ERROR ("... (at offset N)" when the offending name
// can be located), anything else -> SQLITE_<NAME>.
function prepareError(e, sql) {
  if (e.code !== 'ERR_SQLITE_ERROR') return new StmtError(`SQLite error: ${e.message}`, 'SQLITE_UNKNOWN');
  const primary = e.errcode & 0xff;
  if (primary !== 1) return new StmtError(`SQLite error: ${e.message}`, sqliteErrorCode(e));
  if (/syntax error|incomplete input|unrecognized token/.test(e.message)) {
    return new StmtError(`SQL string could not be parsed: ${e.message}`, 'SQL_PARSE_ERROR');
  }
  let msg = `SQL input error: ${e.message}`;
  const m = /^no such (?:table|column|function|collation sequence|index|view): (.+)$/.exec(e.message);
  if (m) {
    const name = m[1].includes('.') ? m[1].split('.').pop() : m[1];
    const at = sql.toLowerCase().indexOf(name.toLowerCase());
    if (at >= 0) msg += ` (at offset ${at})`;
  }
  return new StmtError(msg, 'SQL_INPUT_ERROR');
}

function runtimeError(e) {
  if (e instanceof StmtError) return e;
  if (e.code === 'ERR_SQLITE_ERROR') return new StmtError(`SQLite error: ${e.message}`, sqliteErrorCode(e));
  return new StmtError(`SQLite error: ${e.message}`, 'SQLITE_UNKNOWN');
}

// ---------------------------------------------------------------- SQL scanner
//
// A small tokenizer following SQLite's tokenize.c for the parts that matter
// here: whitespace, comments, string literals, quoted identifiers, words and
// parameters. Used to find blank SQL, the first keyword, and the parameter
// slots (node:sqlite does not expose sqlite3_bind_parameter_count/_name).

function isIdChar(c) {
  return (
    (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) ||
    c === 0x5f || c === 0x24 || c >= 0x80
  );
}
function isSpace(c) {
  return c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0c || c === 0x0d;
}

// Yields {kind, start, end} with kind in ws|comment|semi|string|ident|word|param|other.
function* tokens(sql) {
  const n = sql.length;
  let i = 0;
  while (i < n) {
    const start = i;
    const c = sql.charCodeAt(i);
    if (isSpace(c)) {
      while (i < n && isSpace(sql.charCodeAt(i))) i++;
      yield { kind: 'ws', start, end: i };
    } else if (c === 0x2d && sql.charCodeAt(i + 1) === 0x2d) {
      while (i < n && sql.charCodeAt(i) !== 0x0a) i++;
      yield { kind: 'comment', start, end: i };
    } else if (c === 0x2f && sql.charCodeAt(i + 1) === 0x2a) {
      const e = sql.indexOf('*/', i + 2);
      i = e < 0 ? n : e + 2;
      yield { kind: 'comment', start, end: i };
    } else if (c === 0x3b) {
      i++;
      yield { kind: 'semi', start, end: i };
    } else if (c === 0x27 || c === 0x22 || c === 0x60) {
      // '...' string, "..." or `...` identifier; doubled quote escapes
      i++;
      while (i < n) {
        if (sql.charCodeAt(i) === c) {
          if (sql.charCodeAt(i + 1) === c) i += 2;
          else { i++; break; }
        } else i++;
      }
      yield { kind: c === 0x27 ? 'string' : 'ident', start, end: i };
    } else if (c === 0x5b) {
      const e = sql.indexOf(']', i + 1);
      i = e < 0 ? n : e + 1;
      yield { kind: 'ident', start, end: i };
    } else if (c === 0x3f) {
      i++;
      while (i < n && sql.charCodeAt(i) >= 0x30 && sql.charCodeAt(i) <= 0x39) i++;
      yield { kind: 'param', start, end: i };
    } else if (c === 0x3a || c === 0x40 || c === 0x24) {
      // :name @name $name, with TCL-style "::" and "(...)" suffixes
      let k = 0;
      i++;
      while (i < n) {
        const d = sql.charCodeAt(i);
        if (isIdChar(d)) { k++; i++; }
        else if (d === 0x28 && k > 0) {
          while (i < n && !isSpace(sql.charCodeAt(i)) && sql.charCodeAt(i) !== 0x29) i++;
          if (sql.charCodeAt(i) === 0x29) i++;
          break;
        } else if (d === 0x3a && sql.charCodeAt(i + 1) === 0x3a) i += 2;
        else break;
      }
      yield { kind: k > 0 ? 'param' : 'other', start, end: i };
    } else if (isIdChar(c)) {
      while (i < n && isIdChar(sql.charCodeAt(i))) i++;
      yield { kind: 'word', start, end: i };
    } else {
      i++;
      yield { kind: 'other', start, end: i };
    }
  }
}

// Index of the first character that is not whitespace, a comment or ';'.
function skipBlank(sql) {
  for (const t of tokens(sql)) {
    if (t.kind !== 'ws' && t.kind !== 'comment' && t.kind !== 'semi') return t.start;
  }
  return sql.length;
}

function isBlank(sql) {
  return skipBlank(sql) === sql.length;
}

function firstKeyword(sql) {
  for (const t of tokens(sql)) {
    if (t.kind === 'ws' || t.kind === 'comment' || t.kind === 'semi') continue;
    return t.kind === 'word' ? sql.slice(t.start, t.end).toUpperCase() : '';
  }
  return '';
}

// Parameter slots of one statement, numbered as sqlite3ExprAssignVarNumber
// does: returns an array `names` where names[i] is the name of parameter i+1
// (null for anonymous "?" and for gaps left by "?NNN").
function paramSlots(sql) {
  const names = [];
  const byName = new Map();
  let nVar = 0;
  for (const t of tokens(sql)) {
    if (t.kind !== 'param') continue;
    const text = sql.slice(t.start, t.end);
    if (text === '?') {
      nVar++;
      names[nVar - 1] = names[nVar - 1] ?? null;
    } else if (text[0] === '?') {
      const x = Number(text.slice(1));
      if (!Number.isSafeInteger(x) || x < 1) continue; // SQLite refuses it at prepare time
      if (x > nVar) nVar = x;
      if (names[x - 1] == null) names[x - 1] = text;
    } else {
      let x = byName.get(text);
      if (x === undefined) {
        x = ++nVar;
        byName.set(text, x);
        names[x - 1] = text;
      }
    }
  }
  const out = [];
  for (let i = 0; i < nVar; i++) out.push(names[i] ?? null);
  return out;
}

// ---------------------------------------------------------------- values

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

function protoTypeName(v) {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a sequence';
  if (typeof v === 'number') return Number.isInteger(v) ? `integer \`${v}\`` : `floating point \`${v}\``;
  if (typeof v === 'string') return `string ${JSON.stringify(v)}`;
  if (typeof v === 'boolean') return `boolean \`${v}\``;
  return 'a map';
}

function decodeValue(v, where) {
  const bad = (m) => new ProtocolError(`Cannot deserialize client message from JSON: ${m} (in ${where})`);
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw bad(`invalid type: ${protoTypeName(v)}, expected a Hrana value`);
  switch (v.type) {
    case 'null':
      return null;
    case 'integer': {
      if (typeof v.value !== 'string') throw bad(`invalid type: ${protoTypeName(v.value)}, expected a string holding an integer`);
      if (!/^[+-]?[0-9]+$/.test(v.value)) throw bad(`invalid digit found in string (${JSON.stringify(v.value)})`);
      const b = BigInt(v.value);
      if (b < INT64_MIN || b > INT64_MAX) throw bad(`number too large to fit in target type (${JSON.stringify(v.value)})`);
      return b;
    }
    case 'float':
      if (typeof v.value !== 'number') throw bad(`invalid type: ${protoTypeName(v.value)}, expected f64`);
      return v.value;
    case 'text':
      if (typeof v.value !== 'string') throw bad(`invalid type: ${protoTypeName(v.value)}, expected a string`);
      return v.value;
    case 'blob': {
      if (typeof v.base64 !== 'string') throw bad('missing field `base64`');
      const s = v.base64.replace(/=+$/, '');
      if (!/^[A-Za-z0-9+/]*$/.test(s) || s.length % 4 === 1) throw bad('Invalid base64 in blob value');
      return new Uint8Array(Buffer.from(s, 'base64'));
    }
    default:
      throw bad(`unknown variant \`${v.type}\`, expected one of \`null\`, \`integer\`, \`float\`, \`text\`, \`blob\``);
  }
}

function encodeValue(x) {
  if (x === null || x === undefined) return { type: 'null' };
  if (typeof x === 'bigint') return { type: 'integer', value: x.toString() };
  if (typeof x === 'number') return { type: 'float', value: Number.isFinite(x) ? x : null };
  if (typeof x === 'string') return { type: 'text', value: x };
  if (x instanceof Uint8Array) return { type: 'blob', base64: Buffer.from(x).toString('base64').replace(/=+$/, '') };
  return { type: 'text', value: String(x) };
}

// ---------------------------------------------------------------- request parsing

function deser(m) {
  return new ProtocolError(`Cannot deserialize client message from JSON: ${m}`);
}

function parseSqlRef(obj, where) {
  const hasSql = obj.sql !== undefined && obj.sql !== null;
  const hasId = obj.sql_id !== undefined && obj.sql_id !== null;
  if (hasSql && typeof obj.sql !== 'string') throw deser(`invalid type: ${protoTypeName(obj.sql)}, expected a string (${where}.sql)`);
  if (hasId && !isInt32(obj.sql_id)) throw deser(`invalid type: ${protoTypeName(obj.sql_id)}, expected i32 (${where}.sql_id)`);
  if (hasSql === hasId) throw new ProtocolError('Invalid request: exactly one of `sql` and `sql_id` must be given');
  return hasSql ? { sql: obj.sql } : { sqlId: obj.sql_id };
}

function isInt32(x) {
  return typeof x === 'number' && Number.isInteger(x) && x >= -(2 ** 31) && x < 2 ** 31;
}

function parseStmt(s, where) {
  if (s === null || typeof s !== 'object' || Array.isArray(s)) throw deser(`invalid type: ${protoTypeName(s)}, expected struct Stmt (${where})`);
  const ref = parseSqlRef(s, where);
  const args = s.args ?? [];
  const named = s.named_args ?? [];
  if (!Array.isArray(args)) throw deser(`invalid type: ${protoTypeName(args)}, expected a sequence (${where}.args)`);
  if (!Array.isArray(named)) throw deser(`invalid type: ${protoTypeName(named)}, expected a sequence (${where}.named_args)`);
  if (s.want_rows !== undefined && s.want_rows !== null && typeof s.want_rows !== 'boolean') {
    throw deser(`invalid type: ${protoTypeName(s.want_rows)}, expected a boolean (${where}.want_rows)`);
  }
  return {
    ...ref,
    args: args.map((a, i) => decodeValue(a, `${where}.args[${i}]`)),
    named: named.map((na, i) => {
      if (na === null || typeof na !== 'object' || typeof na.name !== 'string') throw deser(`expected {"name","value"} (${where}.named_args[${i}])`);
      return { name: na.name, value: decodeValue(na.value, `${where}.named_args[${i}].value`) };
    }),
  };
}

function parseCond(c, where) {
  if (c === null || typeof c !== 'object' || Array.isArray(c)) throw deser(`invalid type: ${protoTypeName(c)}, expected a batch condition (${where})`);
  switch (c.type) {
    case 'ok':
    case 'error':
      if (typeof c.step !== 'number' || !Number.isInteger(c.step) || c.step < 0) throw deser(`invalid step in condition (${where})`);
      return { type: c.type, step: c.step };
    case 'not':
      return { type: 'not', cond: parseCond(c.cond, `${where}.cond`) };
    case 'and':
    case 'or':
      if (!Array.isArray(c.conds)) throw deser(`missing field \`conds\` (${where})`);
      return { type: c.type, conds: c.conds.map((x, i) => parseCond(x, `${where}.conds[${i}]`)) };
    case 'is_autocommit':
      throw new ProtocolError('The `is_autocommit` condition is only supported in protocol version hrana3 and higher');
    default:
      throw deser(`unknown variant \`${c.type}\`, expected one of \`ok\`, \`error\`, \`not\`, \`and\`, \`or\` (${where})`);
  }
}

function parseRequest(r, idx) {
  const where = `requests[${idx}]`;
  if (r === null || typeof r !== 'object' || Array.isArray(r)) throw deser(`invalid type: ${protoTypeName(r)}, expected a stream request (${where})`);
  switch (r.type) {
    case 'execute':
      return { type: 'execute', stmt: parseStmt(r.stmt, `${where}.stmt`) };
    case 'batch': {
      const b = r.batch;
      if (b === null || typeof b !== 'object' || !Array.isArray(b.steps)) throw deser(`missing field \`steps\` (${where}.batch)`);
      const steps = b.steps.map((st, i) => {
        const w = `${where}.batch.steps[${i}]`;
        if (st === null || typeof st !== 'object') throw deser(`invalid batch step (${w})`);
        return {
          cond: st.condition === undefined || st.condition === null ? null : parseCond(st.condition, `${w}.condition`),
          stmt: parseStmt(st.stmt, `${w}.stmt`),
        };
      });
      return { type: 'batch', steps };
    }
    case 'sequence':
    case 'describe':
      return { type: r.type, ...parseSqlRef(r, where) };
    case 'store_sql':
      if (!isInt32(r.sql_id)) throw deser(`invalid type: ${protoTypeName(r.sql_id)}, expected i32 (${where}.sql_id)`);
      if (typeof r.sql !== 'string') throw deser(`invalid type: ${protoTypeName(r.sql)}, expected a string (${where}.sql)`);
      return { type: 'store_sql', sqlId: r.sql_id, sql: r.sql };
    case 'close_sql':
      if (!isInt32(r.sql_id)) throw deser(`invalid type: ${protoTypeName(r.sql_id)}, expected i32 (${where}.sql_id)`);
      return { type: 'close_sql', sqlId: r.sql_id };
    case 'close':
      return { type: 'close' };
    case 'get_autocommit':
      throw new ProtocolError('The `get_autocommit` request is only supported in protocol version hrana3 and higher');
    default:
      throw deser(
        `unknown variant \`${r.type}\`, expected one of \`close\`, \`execute\`, \`batch\`, \`sequence\`, ` +
          `\`describe\`, \`store_sql\`, \`close_sql\` (${where})`,
      );
  }
}

function parsePipeline(body) {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw deser(`invalid type: ${protoTypeName(body)}, expected struct PipelineRequestBody`);
  const baton = body.baton ?? null;
  if (baton !== null && typeof baton !== 'string') throw deser(`invalid type: ${protoTypeName(baton)}, expected a string (baton)`);
  if (!Array.isArray(body.requests)) throw deser('missing field `requests`');
  return { baton, requests: body.requests.map(parseRequest) };
}


// ---------------------------------------------------------------- statements

const TXN_CONTROL = new Set(['BEGIN', 'COMMIT', 'END', 'ROLLBACK', 'SAVEPOINT', 'RELEASE']);
const WRITE_VERBS = new Set([
  'INSERT', 'UPDATE', 'DELETE', 'REPLACE', 'CREATE', 'DROP', 'ALTER', 'ATTACH', 'DETACH',
  'VACUUM', 'REINDEX', 'ANALYZE', 'UPSERT',
]);

// sqlite3_stmt_readonly() computed from the EXPLAIN listing of `text` (one
// statement that prepared successfully on `conn`).
function programIsReadonly(conn, text) {
  if (firstKeyword(text) === 'EXPLAIN') return true;
  const ex = conn.prepare(`EXPLAIN ${text}`);
  for (const op of ex.all()) {
    if (op.opcode === 'Transaction' && op.p2 !== 0) return false;
    if (op.opcode === 'Checkpoint' || op.opcode === 'Vacuum' || op.opcode === 'JournalMode') return false;
  }
  return true;
}

// Authorization view of "is this a write" (see the header comment).
function needsWrite(conn, text, readonly /* null when it could not be prepared */) {
  const verb = firstKeyword(text);
  if (TXN_CONTROL.has(verb) || verb === 'EXPLAIN') return false;
  if (verb === 'ATTACH' || verb === 'DETACH') return true;
  if (readonly === null) return WRITE_VERBS.has(verb);
  return !readonly;
}

// Prepares the single statement in `sql`. Throws StmtError for empty SQL,
// several statements and prepare failures.
function prepareSingle(conn, sql) {
  const from = skipBlank(sql);
  if (from === sql.length) throw new StmtError('SQL string does not contain any statement', 'SQL_NO_STATEMENT');
  const text = sql.slice(from);
  let st;
  try {
    st = conn.prepare(text);
  } catch (e) {
    throw prepareError(e, sql);
  }
  const consumed = st.sourceSQL;
  const tail = text.startsWith(consumed) ? text.slice(consumed.length) : '';
  if (!isBlank(tail)) throw new StmtError('SQL string contains more than one statement', 'SQL_MANY_STATEMENTS');
  return { st, text };
}

// Returns [namedObject, anonValues] for node:sqlite, following sqld's rules.
function bindArgs(slots, args, named) {
  if (args.length > 0 && named.length > 0) {
    throw new StmtError('Arguments must not contain both positional and named values', 'ARGS_BOTH_POSITIONAL_AND_NAMED');
  }
  const given = args.length > 0 ? args.length : named.length;
  if (given > slots.length) {
    throw new StmtError(
      `Arguments do not match SQL parameters: too many parameters, expected ${slots.length} found ${given}`,
      'ARGS_INVALID',
    );
  }
  const byName = new Map();
  for (const na of named) if (!byName.has(na.name)) byName.set(na.name, na.value);
  const namedObj = {};
  const anon = [];
  for (let i = 0; i < slots.length; i++) {
    const name = slots[i];
    let has;
    let value;
    if (name === null || name[0] === '?') {
      has = i < args.length;
      value = args[i];
    } else if (byName.has(name)) {
      has = true;
      value = byName.get(name);
    } else if (byName.has(name.slice(1))) {
      has = true;
      value = byName.get(name.slice(1));
    } else has = false;
    if (!has) {
      throw new StmtError(`Arguments do not match SQL parameters: value for parameter ${name ?? i + 1} not found`, 'ARGS_INVALID');
    }
    if (name === null) anon.push(value);
    else namedObj[name] = value;
  }
  return [namedObj, anon];
}


// ---------------------------------------------------------------- HTTP helpers

function send(res, status, body, type) {
  const buf = Buffer.from(body);
  res.writeHead(status, { 'content-type': type, 'content-length': buf.length });
  res.end(buf);
}
function sendJson(res, status, obj) {
  send(res, status, JSON.stringify(obj), 'application/json');
}
function sendText(res, status, text) {
  send(res, status, text, 'text/plain; charset=utf-8');
}

function readBody(req, limit) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size > limit) {
        // discard the rest without keeping it; the caller answers 413
        req.removeAllListeners('data');
        req.resume();
        reject(Object.assign(new Error('body too large'), { tooLarge: true }));
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

// ---------------------------------------------------------------- server

export const FAIL_MODES = new Set(['none', '500', '503', '401', 'garbage', 'stall', 'close']);

function forbiddenMessage(namespace) {
  return `Authorization forbidden: Current session doesn't not have Write permission to namespace ${namespace}`;
}

const TXN_END = new Set(['COMMIT', 'END', 'ROLLBACK', 'SAVEPOINT', 'RELEASE']);

/**
 * Creates one Hrana-over-HTTP v2 database host (not yet listening).
 *
 * options:
 *   dbPath          SQLite file (or ':memory:'); required
 *   authorize       (bearerToken) => 'rw' | 'ro' | null | {error: '<401 message>'}.
 *                   null -> 401 `The JWT is invalid`; 'ro' -> writes get 403.
 *                   A missing Authorization header is answered 401 before
 *                   authorize is called. When omitted, `tokens` is used.
 *   tokens          {rw: [...], ro: [...]} fixed token lists (used without
 *                   `authorize`; both empty = no authentication at all)
 *   streamExpiryMs  idle stream expiry (default 10000)
 *   failMode        initial fail mode (default 'none'); stallMs (default 60000)
 *   admin           serve /__emulator/{fail,tokens,state} on the same port
 *   namespace       name used in the 403 message (default 'default')
 *   blocked         () => ({reads, writes}) consulted for every statement:
 *                   blocked -> in-band error code BLOCKED
 *   onStatement     ({sql, rowsRead, rowsWritten}) => void after every
 *                   statement that ran successfully (execute, batch step,
 *                   sequence statement)
 *   onConnection    (conn) => void for every new stream connection
 *   logPrefix       prefix for stderr messages (default 'hrana-emulator')
 *
 * Returns {listen(port, host) -> Promise<port>, close() -> Promise, port, url,
 *          setFail(mode, count), setTokens({rw, ro}), state(),
 *          storageBytes(), copyTo(file), server}.
 */
export function createHranaServer(options = {}) {
  if (!DatabaseSync) throw new Error(sqliteMissingMessage());
  if (!options.dbPath) throw new Error('createHranaServer: dbPath is required');
  const dbPath = options.dbPath === ':memory:' ? ':memory:' : path.resolve(options.dbPath);
  const expiryMs = options.streamExpiryMs ?? 10000;
  const stallMs = options.stallMs ?? 60000;
  const admin = !!options.admin;
  const namespace = options.namespace ?? 'default';
  const logPrefix = options.logPrefix ?? 'hrana-emulator';
  const customAuthorize = typeof options.authorize === 'function' ? options.authorize : null;
  const blocked = typeof options.blocked === 'function' ? options.blocked : null;
  const onStatement = typeof options.onStatement === 'function' ? options.onStatement : null;
  const onConnection = typeof options.onConnection === 'function' ? options.onConnection : null;
  let tokenSets = {
    rw: new Set(options.tokens?.rw ?? []),
    ro: new Set(options.tokens?.ro ?? []),
  };
  if (options.failMode !== undefined && !FAIL_MODES.has(options.failMode)) throw new Error(`unknown fail mode ${options.failMode}`);

  // ------------------------------------------------------------ database

  function openConnection() {
    const conn = new DatabaseSync(dbPath, {
      enableForeignKeyConstraints: false, // SQLite's (and sqld's) default
      enableDoubleQuotedStringLiterals: true,
      timeout: 0,
    });
    return conn;
  }

  // One connection kept for the lifetime of the server: sets WAL once and
  // keeps the file's WAL state stable.
  const mainConn = openConnection();
  if (dbPath !== ':memory:') mainConn.exec('PRAGMA journal_mode=WAL');

  // ------------------------------------------------------------ streams

  const batonKey = crypto.randomBytes(32);
  const streams = new Map(); // id -> stream
  let nextStreamId = 1;
  const stats = { pipeline_requests: 0, auth_failures: 0, forbidden: 0 };

  function mac(s) {
    return crypto.createHmac('sha256', batonKey).update(s).digest('base64url').slice(0, 22);
  }

  function makeBaton(stream) {
    const body = `${stream.id.toString(36)}.${stream.seq.toString(36)}`;
    return `${body}.${mac(body)}`;
  }

  function newStream() {
    const s = {
      id: nextStreamId++,
      seq: 0,
      state: 'open',
      conn: openConnection(),
      sqls: new Map(),
      timer: null,
      endedAt: 0,
      meta: null,
    };
    if (onConnection) onConnection(s.conn);
    s.meta = s.conn.prepare('SELECT total_changes(), changes(), last_insert_rowid()');
    s.meta.setReturnArrays(true);
    s.meta.setReadBigInts(true);
    streams.set(s.id, s);
    return s;
  }

  function endStream(s, state) {
    if (s.state !== 'open') return;
    clearTimeout(s.timer);
    s.timer = null;
    s.state = state;
    s.endedAt = Date.now();
    s.sqls.clear();
    try {
      s.conn.close(); // an open transaction is rolled back
    } catch {
      /* already closed */
    }
    s.conn = null;
    s.meta = null;
  }

  function armExpiry(s) {
    clearTimeout(s.timer);
    s.timer = setTimeout(() => endStream(s, 'expired'), expiryMs);
  }

  function streamFromBaton(baton) {
    const parts = baton.split('.');
    if (parts.length !== 3) throw new ProtocolError('Received an invalid baton');
    const want = Buffer.from(mac(`${parts[0]}.${parts[1]}`));
    const got = Buffer.from(parts[2]);
    if (want.length !== got.length || !crypto.timingSafeEqual(want, got)) throw new ProtocolError('Received an invalid baton');
    const id = parseInt(parts[0], 36);
    const seq = parseInt(parts[1], 36);
    const s = streams.get(id);
    if (!s) throw new ProtocolError('Received an invalid baton');
    if (s.state === 'expired') throw new StreamExpiredError('The stream has expired due to inactivity');
    if (s.state === 'closed' || seq !== s.seq) throw new ProtocolError('Received a baton that has already been used');
    return s;
  }

  // Ended streams are remembered for a while so that late batons get the
  // right answer (expired / already used) instead of "invalid".
  const sweeper = setInterval(() => {
    const cutoff = Date.now() - 10 * 60 * 1000;
    for (const [id, s] of streams) if (s.state !== 'open' && s.endedAt < cutoff) streams.delete(id);
  }, 30 * 1000);
  sweeper.unref();

  // ------------------------------------------------------------ execution

  function lookupSql(stream, ref) {
    if (ref.sql !== undefined) return ref.sql;
    if (!stream.sqls.has(ref.sqlId)) throw new ProtocolError(`SQL text ${ref.sqlId} not found`);
    return stream.sqls.get(ref.sqlId);
  }

  // Throws ForbiddenError when a read-only session would write with `sql`.
  function checkWrite(ctx, stream, sql) {
    if (!ctx.readOnly) return;
    let readonly = null;
    let text = sql.slice(skipBlank(sql));
    try {
      const p = prepareSingle(stream.conn, sql);
      text = p.text;
      readonly = programIsReadonly(stream.conn, p.text);
    } catch {
      readonly = null;
    }
    if (needsWrite(stream.conn, text, readonly)) throw new ForbiddenError(forbiddenMessage(namespace));
  }

  // In-band BLOCKED error when the database configuration blocks `text`:
  // block_reads blocks every statement except those ending a transaction,
  // block_writes blocks the statements that write.
  function checkBlocked(conn, text, readonly) {
    if (!blocked) return;
    const b = blocked() || {};
    if (!b.reads && !b.writes) return;
    if (TXN_END.has(firstKeyword(text))) return;
    if (b.reads) throw new StmtError('Operation was blocked: reads are blocked for this database', 'BLOCKED');
    if (needsWrite(conn, text, readonly)) throw new StmtError('Operation was blocked: writes are blocked for this database', 'BLOCKED');
  }

  function record(text, rowsRead, rowsWritten) {
    if (!onStatement) return;
    try {
      onStatement({ sql: text.trim(), rowsRead, rowsWritten });
    } catch (e) {
      process.stderr.write(`${logPrefix}: onStatement: ${e.stack || e}\n`);
    }
  }

  function executeStmt(ctx, stream, stmt) {
    const sql = lookupSql(stream, stmt);
    const conn = stream.conn;
    let prepared;
    try {
      prepared = prepareSingle(conn, sql);
    } catch (e) {
      // sqld decides permissions from the parsed statement, before SQLite sees
      // it: a read-only token writing to a missing table still gets 403.
      if (ctx.readOnly && e instanceof StmtError && e.code === 'SQL_INPUT_ERROR') checkWrite(ctx, stream, sql);
      throw e;
    }
    const { st, text } = prepared;
    const readonly = programIsReadonly(conn, text);
    if (ctx.readOnly && needsWrite(conn, text, readonly)) throw new ForbiddenError(forbiddenMessage(namespace));
    checkBlocked(conn, text, readonly);
    const [namedObj, anon] = bindArgs(paramSlots(text), stmt.args, stmt.named);
    const started = process.hrtime.bigint();
    const [before] = stream.meta.get();
    let rows;
    let cols;
    try {
      st.setReturnArrays(true);
      st.setReadBigInts(true);
      cols = st.columns();
      rows = st.all(namedObj, ...anon);
    } catch (e) {
      throw runtimeError(e);
    }
    const [after, changes, rowid] = stream.meta.get();
    const affected = !readonly && after !== before ? Number(changes) : 0;
    record(text, rows.length, affected);
    return {
      cols: cols.map((c) => ({ name: c.name ?? null, decltype: c.type ?? null })),
      rows: rows.map((r) => r.map(encodeValue)),
      affected_row_count: affected,
      last_insert_rowid: rowid === 0n ? null : rowid.toString(),
      replication_index: null,
      rows_read: rows.length,
      rows_written: affected,
      query_duration_ms: Number(process.hrtime.bigint() - started) / 1e6,
    };
  }

  function evalCond(c, outcome) {
    switch (c.type) {
      case 'ok': return outcome[c.step] === 'ok';
      case 'error': return outcome[c.step] === 'error';
      case 'not': return !evalCond(c.cond, outcome);
      case 'and': return c.conds.every((x) => evalCond(x, outcome));
      case 'or': return c.conds.some((x) => evalCond(x, outcome));
      default: return false;
    }
  }

  function condRefsOk(c, idx) {
    switch (c.type) {
      case 'ok':
      case 'error': return c.step < idx;
      case 'not': return condRefsOk(c.cond, idx);
      default: return c.conds.every((x) => condRefsOk(x, idx));
    }
  }

  function runBatch(ctx, stream, steps) {
    steps.forEach((st, i) => {
      if (st.cond && !condRefsOk(st.cond, i)) throw new ProtocolError('Invalid reference to step in a batch condition');
    });
    // sqld checks the permissions of the whole program before running it.
    for (const st of steps) checkWrite(ctx, stream, lookupSql(stream, st.stmt));
    const outcome = [];
    const stepResults = [];
    const stepErrors = [];
    steps.forEach((st, i) => {
      if (st.cond && !evalCond(st.cond, outcome)) {
        outcome[i] = 'skipped';
        stepResults.push(null);
        stepErrors.push(null);
        return;
      }
      try {
        stepResults.push(executeStmt(ctx, stream, st.stmt));
        stepErrors.push(null);
        outcome[i] = 'ok';
      } catch (e) {
        if (!(e instanceof StmtError)) throw e;
        stepResults.push(null);
        stepErrors.push({ message: e.message, code: e.code });
        outcome[i] = 'error';
      }
    });
    return { step_results: stepResults, step_errors: stepErrors, replication_index: null };
  }

  function runSequence(ctx, stream, sql) {
    const conn = stream.conn;
    let rest = sql;
    for (let guard = 0; guard < 100000; guard++) {
      rest = rest.slice(skipBlank(rest));
      if (rest === '') return;
      let st;
      try {
        st = conn.prepare(rest);
      } catch (e) {
        throw prepareError(e, rest);
      }
      const text = st.sourceSQL;
      const readonly = programIsReadonly(conn, text);
      if (ctx.readOnly && needsWrite(conn, text, readonly)) throw new ForbiddenError(forbiddenMessage(namespace));
      checkBlocked(conn, text, readonly);
      const [before] = stream.meta.get();
      let info;
      try {
        info = st.run();
      } catch (e) {
        throw runtimeError(e);
      }
      const [after] = stream.meta.get();
      record(text, 0, !readonly && after !== before ? Number(info.changes) : 0);
      if (!rest.startsWith(text) || text.length === 0) return;
      rest = rest.slice(text.length);
    }
  }

  function describe(stream, sql) {
    const { st, text } = prepareSingle(stream.conn, sql);
    return {
      params: paramSlots(text).map((name) => ({ name })),
      cols: st.columns().map((c) => ({ name: c.name ?? null, decltype: c.type ?? null })),
      is_explain: firstKeyword(text) === 'EXPLAIN',
      is_readonly: programIsReadonly(stream.conn, text),
    };
  }

  // Runs one pipeline; returns the response body. Throws ProtocolError,
  // StreamExpiredError or ForbiddenError for whole-request failures.
  function runPipeline(ctx, parsed) {
    const stream = parsed.baton === null ? newStream() : streamFromBaton(parsed.baton);
    clearTimeout(stream.timer);
    stream.seq++; // the baton that brought us here is now used
    const results = [];
    try {
      for (const req of parsed.requests) {
        if (stream.state !== 'open') throw new ProtocolError('Stream for this baton was closed');
        const ok = (response) => results.push({ type: 'ok', response });
        try {
          switch (req.type) {
            case 'execute':
              ok({ type: 'execute', result: executeStmt(ctx, stream, req.stmt) });
              break;
            case 'batch':
              ok({ type: 'batch', result: runBatch(ctx, stream, req.steps) });
              break;
            case 'sequence':
              runSequence(ctx, stream, lookupSql(stream, req));
              ok({ type: 'sequence' });
              break;
            case 'describe':
              ok({ type: 'describe', result: describe(stream, lookupSql(stream, req)) });
              break;
            case 'store_sql':
              if (stream.sqls.has(req.sqlId)) throw new ProtocolError(`SQL text ${req.sqlId} already exists`);
              if (stream.sqls.size >= 50) throw new StmtError('Too many stored SQL texts (at most 50 per stream)', 'SQL_STORE_TOO_MANY');
              if (Buffer.byteLength(req.sql) > 5000) throw new StmtError('SQL text is too large (at most 5 kB)', 'SQL_STORE_TOO_LARGE');
              stream.sqls.set(req.sqlId, req.sql);
              ok({ type: 'store_sql' });
              break;
            case 'close_sql':
              stream.sqls.delete(req.sqlId);
              ok({ type: 'close_sql' });
              break;
            case 'close':
              endStream(stream, 'closed');
              ok({ type: 'close' });
              break;
            default:
              throw new ProtocolError(`unknown request ${req.type}`);
          }
        } catch (e) {
          if (!(e instanceof StmtError)) throw e;
          results.push({ type: 'error', error: { message: e.message, code: e.code } });
        }
      }
    } catch (e) {
      endStream(stream, 'closed'); // any non-2xx drops the stream (and its transaction)
      throw e;
    }
    let baton = null;
    if (stream.state === 'open') {
      baton = makeBaton(stream);
      armExpiry(stream);
    }
    return { baton, base_url: null, results };
  }

  // ------------------------------------------------------------ HTTP

  let failMode = options.failMode ?? 'none';
  let failCount = -1; // -1: until changed
  const openSockets = new Set();
  const stalled = new Set();

  function authorize(req) {
    if (!customAuthorize && tokenSets.rw.size === 0 && tokenSets.ro.size === 0) return { ok: true, readOnly: false };
    const h = req.headers.authorization;
    if (h === undefined) return { ok: false, message: 'Unauthorized: `Expected authorization header but none given`' };
    const sp = h.indexOf(' ');
    const scheme = sp < 0 ? h : h.slice(0, sp);
    const token = sp < 0 ? '' : h.slice(sp + 1).trim();
    if (scheme.toLowerCase() === 'bearer') {
      if (customAuthorize) {
        let verdict = null;
        try {
          verdict = customAuthorize(token);
        } catch (e) {
          process.stderr.write(`${logPrefix}: authorize: ${e.stack || e}\n`);
          verdict = null;
        }
        if (verdict === 'rw') return { ok: true, readOnly: false };
        if (verdict === 'ro') return { ok: true, readOnly: true };
        if (verdict && typeof verdict === 'object' && typeof verdict.error === 'string') return { ok: false, message: verdict.error };
      } else {
        if (tokenSets.rw.has(token)) return { ok: true, readOnly: false };
        if (tokenSets.ro.has(token)) return { ok: true, readOnly: true };
      }
    }
    return { ok: false, message: 'Unauthorized: `The JWT is invalid`' };
  }

  function setFail(mode, count) {
    const m = String(mode ?? 'none');
    if (!FAIL_MODES.has(m)) throw new Error(`unknown mode ${m}`);
    failMode = m;
    failCount = Number.isInteger(count) && count > 0 ? count : -1;
    return { fail_mode: failMode, count: failCount };
  }

  function setTokens(tokens = {}) {
    const list = (x) => (Array.isArray(x) ? x.filter((t) => typeof t === 'string') : []);
    tokenSets = { rw: new Set(list(tokens.rw)), ro: new Set(list(tokens.ro)) };
    return { rw: tokenSets.rw.size, ro: tokenSets.ro.size };
  }

  function state() {
    let open = 0;
    for (const s of streams.values()) if (s.state === 'open') open++;
    return { ...stats, streams_open: open, fail_mode: failMode };
  }

  // Returns true when the request was consumed by the fail mode.
  function applyFailMode(req, res) {
    if (failMode === 'none' || failCount === 0) return false;
    if (failCount > 0 && --failCount === 0) {
      // this one still fails; the next one does not
      const mode = failMode;
      failMode = 'none';
      failCount = -1;
      return doFail(mode, req, res);
    }
    return doFail(failMode, req, res);
  }

  function doFail(mode, req, res) {
    switch (mode) {
      case '500':
        sendJson(res, 500, { error: 'Internal error: injected by hrana-emulator' });
        return true;
      case '503':
        sendJson(res, 503, { error: 'Service unavailable: injected by hrana-emulator' });
        return true;
      case '401':
        sendJson(res, 401, { error: 'Unauthorized: `The JWT is invalid`' });
        return true;
      case 'garbage':
        send(res, 200, '<html><body>502 Bad Gateway</body></html>\n{not json', 'application/json');
        return true;
      case 'close':
        req.socket.destroy();
        return true;
      case 'stall': {
        const t = setTimeout(() => {
          stalled.delete(t);
          req.socket.destroy();
        }, stallMs);
        stalled.add(t);
        return true;
      }
      default:
        return false;
    }
  }

  async function handleAdmin(req, res, url) {
    if (req.method === 'GET' && url === '/__emulator/state') {
      sendJson(res, 200, state());
      return;
    }
    if (req.method !== 'POST') return sendText(res, 405, 'Method Not Allowed');
    let body;
    try {
      body = JSON.parse((await readBody(req, 1 << 20)).toString('utf8'));
    } catch {
      return sendText(res, 400, 'bad JSON');
    }
    if (url === '/__emulator/fail') {
      const mode = String(body.mode ?? 'none');
      if (!FAIL_MODES.has(mode)) return sendText(res, 400, `unknown mode ${mode}`);
      return sendJson(res, 200, setFail(mode, body.count));
    }
    if (url === '/__emulator/tokens') return sendJson(res, 200, setTokens(body));
    sendText(res, 404, 'Not Found');
  }

  async function handle(req, res) {
    const url = req.url;
    if (admin && url.startsWith('/__emulator/')) return handleAdmin(req, res, url);
    if (url === '/v2/pipeline') {
      if (req.method !== 'POST') return send(res, 405, '', 'text/plain');
      stats.pipeline_requests++;
      if (applyFailMode(req, res)) return;
      const auth = authorize(req);
      if (!auth.ok) {
        stats.auth_failures++;
        req.resume();
        return sendJson(res, 401, { error: auth.message });
      }
      let raw;
      try {
        raw = await readBody(req, 32 * 1024 * 1024);
      } catch (e) {
        if (e.tooLarge) return sendText(res, 413, 'Request body too large');
        return;
      }
      if (closed) return req.socket.destroy();
      let parsed;
      try {
        let json;
        try {
          json = JSON.parse(raw.toString('utf8'));
        } catch (e) {
          throw deser(e.message);
        }
        parsed = parsePipeline(json);
        return sendJson(res, 200, runPipeline({ readOnly: auth.readOnly }, parsed));
      } catch (e) {
        if (e instanceof ProtocolError) return sendText(res, 400, e.message);
        if (e instanceof StreamExpiredError) return sendJson(res, 400, { message: e.message, code: 'STREAM_EXPIRED' });
        if (e instanceof ForbiddenError) {
          stats.forbidden++;
          return sendJson(res, 403, { error: e.message });
        }
        process.stderr.write(`${logPrefix}: internal error: ${e.stack || e}\n`);
        return sendJson(res, 500, { error: `Internal error: ${e.message}` });
      }
    }
    if (req.method === 'GET' && url === '/v2') return sendText(res, 200, 'Hello, this is HTTP API v2 (Hrana over HTTP)');
    if (req.method === 'GET' && url === '/health') return send(res, 200, '', 'text/plain');
    req.resume();
    send(res, 404, '', 'text/plain');
  }

  const server = http.createServer((req, res) => {
    handle(req, res).catch((e) => {
      process.stderr.write(`${logPrefix}: ${e.stack || e}\n`);
      if (!res.headersSent) sendJson(res, 500, { error: 'Internal error' });
    });
  });
  server.on('connection', (sock) => {
    openSockets.add(sock);
    sock.on('close', () => openSockets.delete(sock));
  });
  server.keepAliveTimeout = 5000;

  let boundPort = null;
  let boundHost = '127.0.0.1';
  let closed = false;

  function listen(port = 0, host = '127.0.0.1') {
    return new Promise((resolve, reject) => {
      const onError = (e) => reject(e);
      server.once('error', onError);
      server.listen(port, host, () => {
        server.off('error', onError);
        boundPort = server.address().port;
        boundHost = host;
        resolve(boundPort);
      });
    });
  }

  // Stops listening, drops every connection and stream, closes the database.
  function close() {
    if (closed) return Promise.resolve();
    closed = true;
    const done = new Promise((resolve) => {
      if (!server.listening) return resolve();
      server.close(() => resolve());
    });
    clearInterval(sweeper);
    for (const t of stalled) clearTimeout(t);
    stalled.clear();
    for (const sock of openSockets) sock.destroy();
    for (const s of streams.values()) endStream(s, 'closed');
    try {
      mainConn.close();
    } catch {
      /* ignore */
    }
    return done;
  }

  // storage: the file's size after a passive checkpoint (WAL content that
  // could be copied back counts once it is in the main file).
  function storageBytes() {
    if (closed || dbPath === ':memory:') return 0;
    try {
      mainConn.exec('PRAGMA wal_checkpoint(PASSIVE)');
    } catch {
      /* busy: measure what is there */
    }
    let size = 0;
    try {
      size = fs.statSync(dbPath).size;
    } catch {
      size = 0;
    }
    return size;
  }

  // A consistent copy of the committed state into a new file.
  function copyTo(file) {
    if (closed) throw new Error('database is closed');
    mainConn.exec(`VACUUM INTO '${String(file).replace(/'/g, "''")}'`);
  }

  return {
    listen,
    close,
    get port() {
      return boundPort;
    },
    get url() {
      if (boundPort === null) return null;
      return `http://${boundHost.includes(':') ? `[${boundHost}]` : boundHost}:${boundPort}`;
    },
    setFail,
    setTokens,
    state,
    storageBytes,
    copyTo,
    server,
    dbPath,
  };
}

// ---------------------------------------------------------------- CLI

function usage(msg) {
  if (msg) process.stderr.write(`hrana-emulator: ${msg}\n`);
  process.stderr.write(
    'usage: hrana-emulator.mjs --db FILE [--port N] [--host ADDR] [--token-rw T]... ' +
      '[--token-ro T]... [--stream-expiry-ms N] [--fail-mode MODE] [--stall-ms N] [--admin]\n',
  );
  process.exit(2);
}

function parseArgs(argv) {
  const o = {
    port: 0,
    host: '127.0.0.1',
    db: null,
    rw: [],
    ro: [],
    expiryMs: 10000,
    failMode: 'none',
    stallMs: 60000,
    admin: false,
  };
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
      case '--host': o.host = val(); break;
      case '--db': o.db = val(); break;
      case '--token-rw': o.rw.push(val()); break;
      case '--token-ro': o.ro.push(val()); break;
      case '--stream-expiry-ms': o.expiryMs = num(); break;
      case '--stall-ms': o.stallMs = num(); break;
      case '--fail-mode':
        o.failMode = val();
        if (!FAIL_MODES.has(o.failMode)) usage(`unknown fail mode ${o.failMode}`);
        break;
      case '--admin': o.admin = true; break;
      case '-h': case '--help': usage(); break;
      default: usage(`unknown argument ${a}`);
    }
  }
  if (!o.db) usage('--db is required');
  if (o.port > 65535) usage('--port out of range');
  return o;
}

async function main() {
  // keep stderr for real problems only
  process.removeAllListeners('warning');
  process.on('warning', (w) => {
    if (w.name !== 'ExperimentalWarning') process.stderr.write(`${w.stack || w}\n`);
  });
  if (!DatabaseSync) {
    process.stderr.write(`hrana-emulator: ${sqliteMissingMessage()}\n`);
    process.exit(2);
  }
  const opts = parseArgs(process.argv.slice(2));
  const emu = createHranaServer({
    dbPath: opts.db,
    tokens: { rw: opts.rw, ro: opts.ro },
    streamExpiryMs: opts.expiryMs,
    failMode: opts.failMode,
    stallMs: opts.stallMs,
    admin: opts.admin,
  });
  const shutdown = () => {
    emu.close();
    process.exit(0);
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
  let port;
  try {
    port = await emu.listen(opts.port, opts.host);
  } catch (e) {
    process.stderr.write(`hrana-emulator: ${e.message}\n`);
    process.exit(1);
  }
  emu.server.on('error', (e) => {
    process.stderr.write(`hrana-emulator: ${e.message}\n`);
    process.exit(1);
  });
  const host = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
  process.stdout.write(`hrana-emulator listening on http://${host}:${port}\n`);
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
