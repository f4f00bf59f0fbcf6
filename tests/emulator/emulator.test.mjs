// Checks the Hrana emulator with the official @libsql/client and with raw
// HTTP, so that the integration tests can rely on it behaving like sqld.
// Run: node --test tests/emulator (Node 22).

import assert from 'node:assert/strict';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createClient } from '@libsql/client';
import { makeTempDir, sleep, startEmulator, stopProcess } from '../integration/harness.mjs';

const RW = 'rw-token-for-emulator-tests';
const RO = 'ro-token-for-emulator-tests';

async function pipeline(url, body, token = RW) {
  const headers = { 'content-type': 'application/json' };
  if (token !== null) headers.authorization = `Bearer ${token}`;
  const r = await fetch(`${url}/v2/pipeline`, {
    method: 'POST',
    headers,
    body: typeof body === 'string' ? body : JSON.stringify(body),
    signal: AbortSignal.timeout(10000),
  });
  const text = await r.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {
    /* text body */
  }
  return { status: r.status, text, json, type: r.headers.get('content-type') };
}

const exec = (sql, args, extra = {}) => ({ type: 'execute', stmt: { sql, ...(args ? { args } : {}), ...extra } });
const int = (v) => ({ type: 'integer', value: String(v) });
const text = (v) => ({ type: 'text', value: v });

describe('hrana emulator', () => {
  let dir;
  let emu;
  let quick; // second emulator with a short stream expiry
  const clients = [];

  function client(authToken = RW, opts = {}) {
    const c = createClient({ url: emu.url, authToken, ...opts });
    clients.push(c);
    return c;
  }

  before(async () => {
    dir = await makeTempDir('tm-emu-');
    emu = await startEmulator({ dbFile: path.join(dir, 'main.db'), rw: [RW], ro: [RO] });
    quick = await startEmulator({ dbFile: path.join(dir, 'quick.db'), rw: [RW], expiryMs: 300 });
    const c = client();
    await c.execute('CREATE TABLE notes (id INTEGER PRIMARY KEY, title TEXT UNIQUE, score REAL, data BLOB, big INTEGER)');
  });

  after(async () => {
    for (const c of clients) c.close();
    await stopProcess(emu?.proc);
    await stopProcess(quick?.proc);
    if (dir) await fsp.rm(dir, { recursive: true, force: true });
  });

  test('prints the listening line and answers the readiness probe', async () => {
    assert.match(emu.proc.stdout, /^hrana-emulator listening on http:\/\/127\.0\.0\.1:\d+\n$/);
    const r = await pipeline(emu.url, { requests: [] });
    assert.equal(r.status, 200);
    assert.equal(r.json.base_url, null);
    assert.deepEqual(r.json.results, []);
  });

  test('execute with positional and named arguments', async () => {
    const c = client();
    const ins = await c.execute({ sql: 'INSERT INTO notes (title, score) VALUES (?, ?)', args: ['positional', 2.5] });
    assert.equal(ins.rowsAffected, 1);
    assert.equal(typeof ins.lastInsertRowid, 'bigint');
    const named = await c.execute({ sql: 'INSERT INTO notes (title, score) VALUES (:title, $score)', args: { title: 'named', score: 7.25 } });
    assert.equal(named.rowsAffected, 1);
    assert.equal(named.lastInsertRowid, ins.lastInsertRowid + 1n);
    const sel = await c.execute({ sql: 'SELECT title, score FROM notes WHERE title IN (?, ?) ORDER BY id', args: ['positional', 'named'] });
    assert.deepEqual(sel.columns, ['title', 'score']);
    assert.deepEqual(
      sel.rows.map((r) => [r.title, r.score]),
      [
        ['positional', 2.5],
        ['named', 7.25],
      ],
    );
    // prefixed names are accepted too
    const pref = await c.execute({ sql: 'SELECT @x AS x', args: { '@x': 'prefixed' } });
    assert.equal(pref.rows[0].x, 'prefixed');
  });

  test('batch in write mode is atomic: a failing statement rolls back the others', async () => {
    const c = client();
    await assert.rejects(
      c.batch(
        [
          { sql: 'INSERT INTO notes (title) VALUES (?)', args: ['batch-1'] },
          { sql: 'INSERT INTO notes (title) VALUES (?)', args: ['batch-2'] },
          { sql: 'INSERT INTO notes (title) VALUES (?)', args: ['batch-1'] }, // UNIQUE violation
        ],
        'write',
      ),
      /UNIQUE constraint failed/,
    );
    const after1 = await c.execute("SELECT count(*) AS n FROM notes WHERE title LIKE 'batch-%'");
    assert.equal(after1.rows[0].n, 0);

    const ok = await c.batch(
      [
        { sql: 'INSERT INTO notes (title) VALUES (?)', args: ['batch-ok-1'] },
        { sql: 'INSERT INTO notes (title) VALUES (?)', args: ['batch-ok-2'] },
        "SELECT count(*) AS n FROM notes WHERE title LIKE 'batch-ok-%'",
      ],
      'write',
    );
    assert.equal(ok.length, 3);
    assert.equal(ok[2].rows[0].n, 2);
  });

  test('interactive transaction across requests (batons): commit and rollback', async () => {
    const c = client();
    const other = client();
    const tx = await c.transaction('write');
    await tx.execute({ sql: 'INSERT INTO notes (title) VALUES (?)', args: ['tx-commit'] });
    const inside = await tx.execute("SELECT count(*) AS n FROM notes WHERE title = 'tx-commit'");
    assert.equal(inside.rows[0].n, 1);
    // another stream is another connection: it must not see uncommitted data
    const outside = await other.execute("SELECT count(*) AS n FROM notes WHERE title = 'tx-commit'");
    assert.equal(outside.rows[0].n, 0);
    await tx.commit();
    const committed = await other.execute("SELECT count(*) AS n FROM notes WHERE title = 'tx-commit'");
    assert.equal(committed.rows[0].n, 1);

    const tx2 = await c.transaction('write');
    await tx2.execute({ sql: 'INSERT INTO notes (title) VALUES (?)', args: ['tx-rollback'] });
    await tx2.rollback();
    const rolled = await other.execute("SELECT count(*) AS n FROM notes WHERE title = 'tx-rollback'");
    assert.equal(rolled.rows[0].n, 0);
  });

  test('bigint, blob and float round trips (intMode bigint)', async () => {
    const c = client(RW, { intMode: 'bigint' });
    const max = 9223372036854775807n;
    const min = -9223372036854775808n;
    const blob = new Uint8Array([0xde, 0xad, 0xbe, 0xef, 0x00, 0xff]);
    await c.execute({ sql: 'INSERT INTO notes (title, big, score, data) VALUES (?, ?, ?, ?)', args: ['rt-max', max, 1.0, blob] });
    await c.execute({ sql: 'INSERT INTO notes (title, big, score) VALUES (?, ?, ?)', args: ['rt-min', min, -0.1] });
    const r = await c.execute(
      "SELECT big, typeof(big) AS tb, score, typeof(score) AS ts, data FROM notes WHERE title IN ('rt-max', 'rt-min') ORDER BY title",
    );
    const [rmax, rmin] = r.rows;
    assert.equal(rmax.big, max);
    assert.equal(typeof rmax.big, 'bigint');
    assert.equal(rmax.tb, 'integer');
    assert.equal(rmax.score, 1);
    assert.equal(rmax.ts, 'real'); // a JS number travels as a Hrana float, even 1.0
    assert.deepEqual(new Uint8Array(rmax.data), blob);
    assert.equal(rmin.big, min);
    assert.equal(rmin.score, -0.1);
  });

  test('a wrong token is refused with 401', async () => {
    const c = client('not-a-valid-token');
    await assert.rejects(c.execute('SELECT 1'), (e) => {
      assert.match(String(e.message), /401|JWT is invalid/);
      return true;
    });
    const raw = await pipeline(emu.url, { requests: [exec('SELECT 1')] }, 'garbage');
    assert.equal(raw.status, 401);
    assert.deepEqual(raw.json, { error: 'Unauthorized: `The JWT is invalid`' });
    const none = await pipeline(emu.url, { requests: [exec('SELECT 1')] }, null);
    assert.equal(none.status, 401);
    assert.deepEqual(none.json, { error: 'Unauthorized: `Expected authorization header but none given`' });
  });

  test('a read-only token reads but cannot write (403)', async () => {
    const ro = client(RO);
    const r = await ro.execute("SELECT count(*) AS n FROM notes WHERE title = 'positional'");
    assert.equal(r.rows[0].n, 1);
    await assert.rejects(ro.execute({ sql: 'INSERT INTO notes (title) VALUES (?)', args: ['ro-write'] }), /403|Write permission/);
    const raw = await pipeline(emu.url, { requests: [exec('DELETE FROM notes'), { type: 'close' }] }, RO);
    assert.equal(raw.status, 403);
    assert.deepEqual(raw.json, {
      error: "Authorization forbidden: Current session doesn't not have Write permission to namespace default",
    });
    const count = await client().execute('SELECT count(*) AS n FROM notes');
    assert.ok(count.rows[0].n > 0, 'the refused DELETE must not have run');
    // transaction control and reads inside a transaction are allowed
    const tx = await pipeline(emu.url, { requests: [exec('BEGIN'), exec('SELECT 1'), exec('COMMIT'), { type: 'close' }] }, RO);
    assert.equal(tx.status, 200);
    assert.deepEqual(tx.json.results.map((x) => x.type), ['ok', 'ok', 'ok', 'ok']);
  });

  test('batons are single-use; unknown batons are invalid', async () => {
    const first = await pipeline(emu.url, { requests: [exec('SELECT 1')] });
    assert.equal(first.status, 200);
    const baton = first.json.baton;
    assert.equal(typeof baton, 'string');
    const second = await pipeline(emu.url, { baton, requests: [exec('SELECT 2')] });
    assert.equal(second.status, 200);
    assert.notEqual(second.json.baton, baton);
    const reused = await pipeline(emu.url, { baton, requests: [exec('SELECT 3')] });
    assert.equal(reused.status, 400);
    assert.equal(reused.text, 'Received a baton that has already been used');
    const bogus = await pipeline(emu.url, { baton: 'x' + baton.slice(1), requests: [] });
    assert.equal(bogus.status, 400);
    assert.equal(bogus.text, 'Received an invalid baton');
    const close = await pipeline(emu.url, { baton: second.json.baton, requests: [{ type: 'close' }] });
    assert.equal(close.status, 200);
    assert.equal(close.json.baton, null);
  });

  test('an idle stream expires (400 STREAM_EXPIRED) and its transaction is lost', async () => {
    const first = await pipeline(quick.url, {
      requests: [exec('CREATE TABLE IF NOT EXISTS t (x)'), exec('BEGIN'), exec('INSERT INTO t VALUES (1)')],
    });
    assert.equal(first.status, 200);
    assert.deepEqual(first.json.results.map((x) => x.type), ['ok', 'ok', 'ok']);
    await sleep(900);
    const late = await pipeline(quick.url, { baton: first.json.baton, requests: [exec('COMMIT')] });
    assert.equal(late.status, 400);
    assert.deepEqual(late.json, { message: 'The stream has expired due to inactivity', code: 'STREAM_EXPIRED' });
    const count = await pipeline(quick.url, { requests: [exec('SELECT count(*) FROM t'), { type: 'close' }] });
    assert.deepEqual(count.json.results[0].response.result.rows, [[int(0)]]);
  });

  test('a request after close in the same pipeline fails the whole request', async () => {
    const r = await pipeline(emu.url, { requests: [{ type: 'close' }, exec('SELECT 1')] });
    assert.equal(r.status, 400);
    assert.equal(r.text, 'Stream for this baton was closed');
  });

  test('values: integers are strings both ways; a JSON number for an integer is refused', async () => {
    const r = await pipeline(emu.url, {
      requests: [
        exec('SELECT ? AS i, ? AS f, ? AS t, ? AS b, ? AS n', [
          int('-9223372036854775808'),
          { type: 'float', value: 1 },
          text('héllo ✓'),
          { type: 'blob', base64: '3q2+7w==' },
          { type: 'null' },
        ]),
        { type: 'close' },
      ],
    });
    assert.equal(r.status, 200);
    const res = r.json.results[0].response.result;
    assert.deepEqual(res.rows[0], [
      int('-9223372036854775808'),
      { type: 'float', value: 1 },
      text('héllo ✓'),
      { type: 'blob', base64: '3q2+7w' },
      { type: 'null' },
    ]);
    assert.deepEqual(res.cols, [
      { name: 'i', decltype: null },
      { name: 'f', decltype: null },
      { name: 't', decltype: null },
      { name: 'b', decltype: null },
      { name: 'n', decltype: null },
    ]);
    const bad = await pipeline(emu.url, { requests: [exec('SELECT ?', [{ type: 'integer', value: 5 }])] });
    assert.equal(bad.status, 400);
    const big = await pipeline(emu.url, { requests: [exec('SELECT ?', [int('9223372036854775808')])] });
    assert.equal(big.status, 400);
    const urlsafe = await pipeline(emu.url, { requests: [exec('SELECT ?', [{ type: 'blob', base64: '3q2-7w' }])] });
    assert.equal(urlsafe.status, 400);
  });

  test('result fields: affected_row_count, last_insert_rowid, rows_read/rows_written, decltype', async () => {
    const r = await pipeline(emu.url, {
      requests: [
        exec('INSERT INTO notes (title, score) VALUES (?, ?) RETURNING id', [text('fields'), { type: 'float', value: 0.5 }]),
        exec('SELECT id, title, score FROM notes WHERE title = ?', [text('fields')]),
        exec('UPDATE notes SET score = score + 1 WHERE title LIKE ?', [text('batch-ok-%')]),
        { type: 'close' },
      ],
    });
    assert.equal(r.status, 200);
    const [ins, sel, upd] = r.json.results.map((x) => x.response.result);
    assert.equal(ins.affected_row_count, 1);
    assert.equal(typeof ins.last_insert_rowid, 'string');
    assert.deepEqual(ins.rows, [[int(ins.last_insert_rowid)]]);
    assert.equal(ins.rows_written, 1);
    assert.deepEqual(sel.cols, [
      { name: 'id', decltype: 'INTEGER' },
      { name: 'title', decltype: 'TEXT' },
      { name: 'score', decltype: 'REAL' },
    ]);
    assert.equal(sel.affected_row_count, 0);
    assert.equal(sel.rows_read, 1);
    assert.equal(upd.affected_row_count, 2);
  });

  test('binding rules and statement errors follow sqld', async () => {
    const r = await pipeline(emu.url, {
      requests: [
        exec('SELECT ? AS a', []),
        exec('SELECT ? AS a', [int(1), int(2)]),
        { type: 'execute', stmt: { sql: 'SELECT :a', named_args: [{ name: 'b', value: int(1) }] } },
        { type: 'execute', stmt: { sql: 'SELECT :a, ?', args: [int(1)], named_args: [{ name: 'a', value: int(1) }] } },
        { type: 'execute', stmt: { sql: 'SELECT $a AS a, :b AS b', named_args: [{ name: '$a', value: int(1) }, { name: 'b', value: int(2) }] } },
        exec('SELECT ?2 AS two, ?1 AS one', [int(1), int(2)]),
        exec('SELECT 1; SELECT 2'),
        exec('  -- only a comment'),
        exec('SELEC 1'),
        exec('SELECT * FROM no_such_table'),
        exec('INSERT INTO notes (id, title) VALUES (1, ?)', [text('dup-id')]),
        { type: 'close' },
      ],
    });
    assert.equal(r.status, 200);
    const res = r.json.results;
    const codes = res.map((x) => (x.type === 'error' ? x.error.code : 'ok'));
    assert.deepEqual(codes, [
      'ARGS_INVALID',
      'ARGS_INVALID',
      'ARGS_INVALID',
      'ARGS_BOTH_POSITIONAL_AND_NAMED',
      'ok',
      'ok',
      'SQL_MANY_STATEMENTS',
      'SQL_NO_STATEMENT',
      'SQL_PARSE_ERROR',
      'SQL_INPUT_ERROR',
      'SQLITE_CONSTRAINT',
      'ok',
    ]);
    assert.equal(res[0].error.message, 'Arguments do not match SQL parameters: value for parameter 1 not found');
    assert.deepEqual(res[4].response.result.rows, [[int(1), int(2)]]);
    assert.deepEqual(res[5].response.result.rows, [[int(2), int(1)]]);
    assert.match(res[9].error.message, /^SQL input error: no such table: no_such_table/);
    assert.match(res[10].error.message, /^SQLite error: UNIQUE constraint failed: notes\.id$/);
  });

  test('batch conditions, and a reference to a later step fails the request', async () => {
    const r = await pipeline(emu.url, {
      requests: [
        {
          type: 'batch',
          batch: {
            steps: [
              { stmt: { sql: 'SELECT 1' } },
              { stmt: { sql: 'SELECT nope FROM nowhere' }, condition: { type: 'ok', step: 0 } },
              { stmt: { sql: 'SELECT 3' }, condition: { type: 'error', step: 1 } },
              { stmt: { sql: 'SELECT 4' }, condition: { type: 'ok', step: 1 } },
              { stmt: { sql: 'SELECT 5' }, condition: { type: 'and', conds: [{ type: 'ok', step: 0 }, { type: 'not', cond: { type: 'ok', step: 3 } }] } },
              { stmt: { sql: 'SELECT 6' }, condition: { type: 'or', conds: [] } },
            ],
          },
        },
        { type: 'close' },
      ],
    });
    assert.equal(r.status, 200);
    const b = r.json.results[0].response.result;
    assert.deepEqual(b.step_results.map((x) => (x ? x.rows[0][0].value : null)), ['1', null, '3', null, '5', null]);
    assert.deepEqual(b.step_errors.map((x) => (x ? x.code : null)), [null, 'SQL_INPUT_ERROR', null, null, null, null]);

    const fwd = await pipeline(emu.url, {
      requests: [{ type: 'batch', batch: { steps: [{ stmt: { sql: 'SELECT 1' }, condition: { type: 'ok', step: 1 } }, { stmt: { sql: 'SELECT 2' } }] } }],
    });
    assert.equal(fwd.status, 400);
    assert.equal(fwd.text, 'Invalid reference to step in a batch condition');
    const v3 = await pipeline(emu.url, { requests: [{ type: 'get_autocommit' }] });
    assert.equal(v3.status, 400);
  });

  test('sequence, describe, store_sql / close_sql', async () => {
    const r = await pipeline(emu.url, {
      requests: [
        { type: 'sequence', sql: 'CREATE TABLE IF NOT EXISTS tags (name TEXT PRIMARY KEY); INSERT INTO tags VALUES (\'a\'); INSERT INTO tags VALUES (\'b\');' },
        { type: 'describe', sql: 'SELECT id, title FROM notes WHERE title = :t AND id > ?' },
        { type: 'describe', sql: 'DELETE FROM tags' },
        { type: 'describe', sql: 'EXPLAIN SELECT 1' },
        { type: 'store_sql', sql_id: 7, sql: 'SELECT count(*) FROM tags WHERE name >= ?' },
        { type: 'execute', stmt: { sql_id: 7, args: [text('a')] } },
        { type: 'execute', stmt: { sql_id: 7, args: [text('b')] } },
        { type: 'close_sql', sql_id: 7 },
        { type: 'close' },
      ],
    });
    assert.equal(r.status, 200);
    const res = r.json.results;
    assert.deepEqual(res[0], { type: 'ok', response: { type: 'sequence' } });
    assert.deepEqual(res[1].response.result, {
      params: [{ name: ':t' }, { name: null }],
      cols: [
        { name: 'id', decltype: 'INTEGER' },
        { name: 'title', decltype: 'TEXT' },
      ],
      is_explain: false,
      is_readonly: true,
    });
    assert.equal(res[2].response.result.is_readonly, false);
    assert.equal(res[3].response.result.is_explain, true);
    assert.deepEqual(res[5].response.result.rows, [[int(2)]]);
    assert.deepEqual(res[6].response.result.rows, [[int(1)]]);
    assert.deepEqual(res[7], { type: 'ok', response: { type: 'close_sql' } });

    const unknown = await pipeline(emu.url, { requests: [{ type: 'execute', stmt: { sql_id: 99 } }] });
    assert.equal(unknown.status, 400);
    const dup = await pipeline(emu.url, {
      requests: [
        { type: 'store_sql', sql_id: 1, sql: 'SELECT 1' },
        { type: 'store_sql', sql_id: 1, sql: 'SELECT 2' },
      ],
    });
    assert.equal(dup.status, 400);
  });

  test('admin hooks: replacing tokens and failure injection', async () => {
    const own = await startEmulator({ dbFile: path.join(dir, 'admin.db'), rw: ['first'] });
    try {
      assert.equal((await pipeline(own.url, { requests: [] }, 'first')).status, 200);
      await own.setTokens({ rw: ['second'] });
      assert.equal((await pipeline(own.url, { requests: [] }, 'first')).status, 401);
      assert.equal((await pipeline(own.url, { requests: [] }, 'second')).status, 200);
      await own.setFail('500', 1);
      assert.equal((await pipeline(own.url, { requests: [] }, 'second')).status, 500);
      assert.equal((await pipeline(own.url, { requests: [] }, 'second')).status, 200);
      await own.setFail('garbage');
      const g = await pipeline(own.url, { requests: [] }, 'second');
      assert.equal(g.status, 200);
      assert.equal(g.json, null);
      await own.setFail('none');
      const st = await own.state();
      assert.ok(st.pipeline_requests >= 6);
      assert.ok(st.auth_failures >= 1);
    } finally {
      await stopProcess(own.proc);
    }
  });
});
