// End-to-end: turso_batch_execute and turso_schema_inspector (and the
// read-only check they share with turso_query) through the official MCP
// client, against the real `tursodb --sync-server` and the Hrana emulator.
// Run: node --test tests/integration (Node 22).

import assert from 'node:assert/strict';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  addUser,
  closeClient,
  connectClient,
  makeTempDir,
  missingPrerequisite,
  startEmulator,
  startServer,
  startTursodb,
  stopAll,
  stopProcess,
} from './harness.mjs';

const LOCAL_TOKEN = 'local-tursodb-ignores-this-token-61c0';
const EMU_RW = 'sqltools-rw-database-token-2b9d41e7a0';
const EMU_RO = 'sqltools-ro-database-token-8e13c6f5d2';
const FLAKY_RW = 'sqltools-flaky-database-token-5a0c93';

function texts(result) {
  return result.content.filter((c) => c.type === 'text').map((c) => c.text).join('\n');
}

function errorText(result) {
  assert.equal(result.isError, true, `expected isError, got ${JSON.stringify(result).slice(0, 2000)}`);
  const t = texts(result);
  assert.ok(t.length > 0, 'an error result explains itself in a text block');
  return t;
}

// The text block holds a summary, then, fenced, the structuredContent itself as JSON.
function assertTextCarries(result) {
  const t = texts(result);
  const fenced = /<untrusted-database-content>\n([\s\S]*)\n<\/untrusted-database-content>$/.exec(t);
  assert.ok(fenced, `the data is fenced: ${t.slice(0, 2000)}`);
  assert.deepEqual(JSON.parse(fenced[1]), result.structuredContent, 'the text carries the structured data');
}

function ok(result) {
  assert.notEqual(result.isError, true, `tool failed: ${texts(result).slice(0, 2000)}`);
  assert.equal(typeof result.structuredContent, 'object');
  assertTextCarries(result);
  return result.structuredContent;
}

// The structured detail that comes with a failed batch, checked against its text.
function failedBatch(result) {
  const t = errorText(result);
  const sc = result.structuredContent;
  assert.equal(typeof sc, 'object', `a failed batch still reports each statement: ${t}`);
  assertTextCarries(result);
  return { text: t, sc };
}

const batch = (c, statements, extra = {}) => c.callTool({ name: 'turso_batch_execute', arguments: { statements, ...extra } });
const inspect = (c, args = {}) => c.callTool({ name: 'turso_schema_inspector', arguments: args });
const query = (c, sql, args) => c.callTool({ name: 'turso_query', arguments: args === undefined ? { sql } : { sql, args } });

async function count(c, table, where = '') {
  const sc = ok(await query(c, `SELECT count(*) FROM ${table} ${where}`));
  return sc.rows[0][0];
}

const WEIRD = 'we"ird t'; // a double quote and a space

// The schema every backend gets, statement by statement.
const SCHEMA = [
  "CREATE TABLE parent (id INTEGER PRIMARY KEY, name TEXT NOT NULL DEFAULT 'x', UNIQUE (name))",
  'CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER NOT NULL REFERENCES parent(id) ON DELETE CASCADE, note TEXT)',
  'CREATE INDEX child_by_parent ON child (parent_id, note)',
  'CREATE VIEW parent_names AS SELECT id, name FROM parent',
  "CREATE TRIGGER child_added AFTER INSERT ON child BEGIN UPDATE parent SET name = name || '+' WHERE id = new.parent_id; END",
  `CREATE TABLE "we""ird t" (a INTEGER PRIMARY KEY, b TEXT UNIQUE)`,
];

describe('SQL tools: turso_batch_execute and turso_schema_inspector', () => {
  let dir;
  let dataDir;
  let tursodb;
  let emu;
  let flaky;
  let server;
  const users = {};
  const clients = [];

  async function client(name) {
    const c = await connectClient(users[name].url);
    await c.listTools(); // lets the SDK check structuredContent against each outputSchema
    clients.push(c);
    return c;
  }

  async function add(name, opts) {
    const r = await addUser({ dataDir, port: server.port, label: `sql-${name}`, ...opts });
    assert.equal(r.code, 0, `user add ${name} failed: ${r.stderr}`);
    users[name] = r;
  }

  before(async () => {
    const missing = missingPrerequisite();
    if (missing) throw new Error(missing);
    dir = await makeTempDir('tm-sqltools-');
    dataDir = path.join(dir, 'data');
    await fsp.mkdir(dataDir, { mode: 0o700 });
    [tursodb, emu, flaky] = await Promise.all([
      startTursodb(path.join(dir, 'local.db')),
      startEmulator({ dbFile: path.join(dir, 'emu.db'), rw: [EMU_RW], ro: [EMU_RO] }),
      startEmulator({ dbFile: path.join(dir, 'flaky.db'), rw: [FLAKY_RW] }),
    ]);
    server = await startServer({ dataDir, extraArgs: ['--max-rows', '50'] });
    await add('local', { dbUrl: tursodb.url, dbToken: LOCAL_TOKEN });
    await add('local-ro', { dbUrl: tursodb.url, dbToken: LOCAL_TOKEN, readOnly: true });
    await add('emu', { dbUrl: emu.url, dbToken: EMU_RW });
    await add('emu-ro', { dbUrl: emu.url, dbToken: EMU_RO, readOnly: true });
    await add('flaky', { dbUrl: flaky.url, dbToken: FLAKY_RW });
  });

  after(async () => {
    for (const c of clients) await closeClient(c);
    await stopProcess(server?.proc);
    await stopProcess(tursodb?.proc);
    await stopProcess(emu?.proc);
    await stopProcess(flaky?.proc);
    await stopAll();
    if (dir) await fsp.rm(dir, { recursive: true, force: true });
  });

  test('tools/list offers both tools with truthful annotations and object schemas', async () => {
    const c = await client('local');
    const { tools } = await c.listTools();
    const byName = Object.fromEntries(tools.map((t) => [t.name, t]));
    const b = byName.turso_batch_execute;
    const s = byName.turso_schema_inspector;
    assert.ok(b && s, `listed: ${Object.keys(byName).join(', ')}`);
    assert.deepEqual(
      { r: b.annotations.readOnlyHint, d: b.annotations.destructiveHint, i: b.annotations.idempotentHint, o: b.annotations.openWorldHint },
      { r: false, d: true, i: false, o: false },
    );
    assert.equal(s.annotations.readOnlyHint, true);
    assert.equal(s.annotations.idempotentHint, true);
    assert.equal(s.annotations.openWorldHint, false);
    for (const t of [b, s]) {
      assert.equal(t.inputSchema.type, 'object');
      assert.equal(t.outputSchema.type, 'object');
      assert.equal(t.inputSchema.$schema, undefined);
      assert.equal(t.outputSchema.$schema, undefined);
      assert.match(t.description, /turso_query/, `${t.name} says when to use turso_query instead`);
    }
  });

  for (const backend of ['local', 'emu']) {
    describe(backend === 'local' ? 'local tursodb' : 'Hrana emulator', () => {
      let c;
      before(async () => {
        c = await client(backend);
      });

      test('a successful batch creates the schema and returns every outcome', async () => {
        const sc = ok(await batch(c, SCHEMA.map((sql) => ({ sql }))));
        assert.equal(sc.status, 'committed');
        assert.equal(sc.committed, true);
        assert.equal(sc.transaction, true);
        assert.equal(sc.mode, 'write');
        assert.equal(sc.statement_count, SCHEMA.length);
        assert.equal(sc.succeeded, SCHEMA.length);
        assert.deepEqual(sc.statements.map((s) => [s.index, s.status]), SCHEMA.map((_, i) => [i, 'ok']));

        const res = await batch(c, [
          { sql: 'INSERT INTO parent (id, name) VALUES (?, ?)', args: [1, 'ann'] },
          { sql: 'INSERT INTO parent (id, name) VALUES (?, ?)', args: [2, 'bob'] },
          { sql: 'INSERT INTO child (parent_id, note) VALUES (?, ?)', args: [1, 'first'] },
          { sql: `INSERT INTO "we""ird t" (a, b) VALUES (1, 'one'), (2, 'two')` },
          { sql: 'SELECT id, name FROM parent ORDER BY id' },
        ]);
        const s2 = ok(res);
        assert.equal(s2.status, 'committed');
        assert.deepEqual(s2.statements[4].rows, [
          [1, 'ann+'],
          [2, 'bob'],
        ]);
        assert.deepEqual(s2.statements[4].columns.map((x) => x.name), ['id', 'name']);
        assert.match(texts(res), /^Committed: all 5 statements succeeded in one transaction\./);
        assert.match(texts(res), /<untrusted-database-content>/, 'rows are fenced as database content');
      });

      test('a batch whose third statement fails leaves nothing behind and says which failed', async () => {
        const before = await count(c, 'parent');
        const res = await batch(c, [
          { sql: 'INSERT INTO parent (id, name) VALUES (?, ?)', args: [10, 'p10'] },
          { sql: 'INSERT INTO child (parent_id, note) VALUES (?, ?)', args: [10, 'c10'] },
          { sql: 'INSERT INTO parent (id, name) VALUES (?, ?)', args: [1, 'duplicate id'] },
          { sql: 'INSERT INTO parent (id, name) VALUES (?, ?)', args: [11, 'p11'] },
          { sql: 'SELECT count(*) FROM parent' },
        ]);
        const { text, sc } = failedBatch(res);
        assert.match(text, /Statement 3 of 5 \(index 2\) failed: .*UNIQUE constraint failed: parent\.id/);
        assert.match(text, /Nothing was committed: the transaction was rolled back\./);
        assert.match(text, /Statements 1-2 ran but were undone\. Statements 4-5 did not run\./);
        assert.equal(sc.status, 'rolled_back');
        assert.equal(sc.committed, false);
        assert.equal(sc.rollback, 'ran');
        assert.equal(sc.failed_statement.index, 2);
        assert.equal(sc.failed_statement.statement, 'statement 3 of 5');
        assert.match(sc.failed_statement.message, /UNIQUE constraint failed: parent\.id/);
        assert.deepEqual(sc.statements.map((s) => s.status), ['rolled_back', 'rolled_back', 'error', 'skipped', 'skipped']);
        assert.equal(await count(c, 'parent'), before, 'no parent row was committed');
        assert.equal(await count(c, 'parent', 'WHERE id IN (10, 11)'), 0);
        assert.equal(await count(c, 'child', "WHERE note = 'c10'"), 0);
        // No transaction was left open (the local server shares one connection):
        // a new transaction can begin at once.
        const again = ok(await batch(c, [{ sql: 'SELECT count(*) FROM parent' }]));
        assert.equal(again.status, 'committed');
      });

      test('bad SQL inside a batch gives Turso\'s message', async () => {
        const { text, sc } = failedBatch(await batch(c, [{ sql: 'SELECT 1' }, { sql: 'SELECT * FROM no_such_table_xyz' }]));
        assert.match(sc.failed_statement.message, /no such table: no_such_table_xyz/);
        if (backend === 'emu') assert.match(text, /SQL input error: no such table: no_such_table_xyz.*\(SQL_INPUT_ERROR\)/);
        assert.equal(sc.failed_statement.index, 1);
        assert.match(text, /Nothing was committed/);
      });

      test('transaction: false runs what it can and reports each statement', async () => {
        const res = await batch(
          c,
          [
            { sql: 'INSERT INTO parent (id, name) VALUES (?, ?)', args: [20, 'p20'] },
            { sql: 'INSERT INTO parent (id, name) VALUES (?, ?)', args: [1, 'duplicate id'] },
            { sql: 'INSERT INTO parent (id, name) VALUES (?, ?)', args: [21, 'p21'] },
          ],
          { transaction: false },
        );
        const { text, sc } = failedBatch(res);
        assert.equal(sc.status, 'completed_with_errors');
        assert.equal(sc.transaction, false);
        assert.equal(sc.committed, undefined);
        assert.deepEqual(sc.statements.map((s) => s.status), ['ok', 'error', 'ok']);
        assert.match(sc.statements[1].error.message, /UNIQUE constraint failed: parent\.id/);
        assert.match(text, /2 succeeded and took effect, 1 failed/);
        assert.match(text, /statement 2 of 3 \(index 1\)/);
        assert.equal(await count(c, 'parent', 'WHERE id IN (20, 21)'), 2, 'the statements that succeeded took effect');

        const all = ok(await batch(c, [{ sql: 'DELETE FROM parent WHERE id IN (20, 21)' }, { sql: 'SELECT count(*) FROM parent WHERE id >= 20' }], { transaction: false }));
        assert.equal(all.status, 'completed');
        assert.deepEqual(all.statements[1].rows, [[0]]);
      });

      test('several statements in one sql are refused before anything runs', async () => {
        const before = await count(c, 'parent');
        const msg = errorText(
          await batch(c, [{ sql: "INSERT INTO parent (id, name) VALUES (30, 'p30')" }, { sql: "INSERT INTO parent (id, name) VALUES (31, 'p31'); DELETE FROM parent" }]),
        );
        assert.match(msg, /statements\[1\] \(statement 2 of 2\) holds 2 statements/);
        assert.match(msg, /its own entry/);
        assert.equal(await count(c, 'parent'), before);
      });

      test('mode "read" refuses a write and runs reads', async () => {
        const msg = errorText(await batch(c, [{ sql: 'SELECT 1' }, { sql: "UPDATE parent SET name = 'z'" }], { mode: 'read' }));
        assert.match(msg, /mode "read".*statement 2 of 2 \(index 1\) may write \(UPDATE\)/);
        const sc = ok(await batch(c, [{ sql: 'SELECT count(*) FROM parent' }, { sql: 'SELECT name FROM parent WHERE id = ?', args: [2] }], { mode: 'read' }));
        assert.equal(sc.mode, 'read');
        assert.deepEqual(sc.statements[1].rows, [['bob']]);
        const d = ok(await batch(c, [{ sql: "UPDATE parent SET name = 'bob' WHERE id = 2" }], { mode: 'deferred' }));
        assert.equal(d.mode, 'deferred');
      });

      test('the schema inspector lists what was created, exactly', async () => {
        const res = await inspect(c);
        const sc = ok(res);
        assert.equal(sc.truncated, false);
        assert.deepEqual(sc.tables.map((t) => t.name).sort(), ['child', 'parent', WEIRD].sort());
        assert.deepEqual(sc.views.map((v) => v.name), ['parent_names']);
        assert.deepEqual(sc.triggers.map((t) => [t.name, t.table]), [['child_added', 'child']]);
        assert.match(sc.triggers[0].sql, /AFTER INSERT ON child BEGIN UPDATE parent SET name = name \|\| '\+' WHERE id = new\.parent_id; END/);
        assert.deepEqual(sc.indexes.map((i) => [i.name, i.table, i.columns, i.unique]), [['child_by_parent', 'child', ['parent_id', 'note'], false]]);
        const parent = sc.tables.find((t) => t.name === 'parent');
        assert.deepEqual(parent.columns, [
          { name: 'id', type: 'INTEGER', not_null: false, default: null, primary_key: 1 },
          { name: 'name', type: 'TEXT', not_null: true, default: "'x'", primary_key: 0 },
        ]);
        assert.match(parent.sql, /^CREATE TABLE parent/);
        const child = sc.tables.find((t) => t.name === 'child');
        assert.deepEqual(child.columns.map((x) => [x.name, x.type, x.not_null, x.primary_key]), [
          ['id', 'INTEGER', false, 1],
          ['parent_id', 'INTEGER', true, 0],
          ['note', 'TEXT', false, 0],
        ]);
        assert.deepEqual(child.foreign_keys, [
          { columns: ['parent_id'], references_table: 'parent', references_columns: ['id'], on_update: 'NO ACTION', on_delete: 'CASCADE', match: 'NONE' },
        ]);
        assert.deepEqual(sc.views[0].columns.map((x) => x.name), ['id', 'name']);
        const all = JSON.stringify(sc);
        assert.doesNotMatch(all, /sqlite_|libsql_|_litestream_/, 'internal objects are left out');
        assert.match(texts(res), /^Schema: 3 tables, 1 view, 1 index, 1 trigger\./);
        assert.match(texts(res), /<untrusted-database-content>[\s\S]*CREATE TABLE[\s\S]*<\/untrusted-database-content>/, 'schema text is fenced');
      });

      test('the schema inspector describes one table with an exact row count', async () => {
        const sc = ok(await inspect(c, { table: 'child' })).table;
        assert.equal(sc.name, 'child');
        assert.equal(sc.type, 'table');
        assert.equal(sc.row_count, 1);
        assert.deepEqual(sc.indexes.map((i) => [i.name, i.columns, i.unique, i.origin]), [['child_by_parent', ['parent_id', 'note'], false, 'create_index']]);
        assert.deepEqual(sc.triggers.map((t) => t.name), ['child_added']);
        assert.equal(sc.foreign_keys.length, 1);

        const p = ok(await inspect(c, { table: 'PARENT' })).table;
        assert.equal(p.name, 'parent', 'names resolve as SQLite resolves them');
        assert.equal(p.row_count, 2);
        assert.deepEqual(p.indexes.map((i) => [i.columns, i.unique, i.origin]), [[['name'], true, 'unique_constraint']]);

        const v = ok(await inspect(c, { table: 'parent_names' })).table;
        assert.equal(v.type, 'view');
        assert.equal(v.row_count, 2);
      });

      test('a table name with a double quote and a space works', async () => {
        const res = await inspect(c, { table: WEIRD });
        const t = ok(res).table;
        assert.equal(t.name, WEIRD);
        assert.equal(t.row_count, 2);
        assert.deepEqual(t.columns.map((x) => [x.name, x.type, x.primary_key]), [
          ['a', 'INTEGER', 1],
          ['b', 'TEXT', 0],
        ]);
        assert.deepEqual(t.indexes.map((i) => [i.columns, i.unique]), [[['b'], true]]);
        assert.match(texts(res), /^Table "we"ird t": 2 columns, 1 index, 0 foreign keys, 0 triggers, 2 rows\./);
      });

      test('an unknown table is an error that names the tables that exist', async () => {
        const msg = errorText(await inspect(c, { table: 'no_such_table' }));
        assert.match(msg, /no table or view named "no_such_table"/);
        assert.match(msg, /Tables: .*"child".*"parent"/);
        assert.match(msg, /Views: "parent_names"/);
      });
    });
  }

  test('the emulator answers the inspector and a batch in one pipeline request each', async () => {
    const c = await client('emu');
    const n0 = (await emu.state()).pipeline_requests;
    ok(await inspect(c));
    const n1 = (await emu.state()).pipeline_requests;
    assert.equal(n1 - n0, 1, 'the whole schema in one round trip');
    ok(await inspect(c, { table: WEIRD }));
    const n2 = (await emu.state()).pipeline_requests;
    assert.equal(n2 - n1, 1, 'one table, with its count, in one round trip');
    ok(await batch(c, [{ sql: 'SELECT 1' }, { sql: 'SELECT 2' }, { sql: 'SELECT 3' }]));
    assert.equal((await emu.state()).pipeline_requests - n2, 1, 'a batch is one request');
  });

  describe('read-only URLs', () => {
    test('local tursodb: a write is refused; what cannot be proven read-only is refused conservatively', async () => {
      const c = await client('local-ro');
      const rw = await client('local');
      const before = await count(rw, 'parent');
      const m1 = errorText(await batch(c, [{ sql: 'SELECT 1' }, { sql: "INSERT INTO parent (id, name) VALUES (40, 'p40')" }]));
      assert.match(m1, /This URL is read-only, and statement 2 of 2 \(index 1\) may write \(INSERT\)\. Nothing was run\./);
      // replace() is also a write keyword, so the scan cannot prove this a read;
      // the local server has no `describe`, so the answer is no.
      const m2 = errorText(await batch(c, [{ sql: "SELECT replace(name, 'a', 'b') FROM parent" }]));
      assert.match(m2, /could not be shown to only read/);
      assert.match(m2, /does not support Hrana `describe`/);
      const m3 = errorText(await query(c, "SELECT replace(name, 'a', 'b') FROM parent"));
      assert.match(m3, /This URL is read-only, and the statement could not be shown to only read/);
      assert.equal(await count(rw, 'parent'), before);

      const sc = ok(await batch(c, [{ sql: 'SELECT count(*) FROM parent' }, { sql: 'SELECT name FROM parent ORDER BY id' }]));
      assert.equal(sc.mode, 'read', 'a read-only URL defaults to mode read');
      assert.deepEqual(sc.statements[0].rows, [[before]]);
      const schema = ok(await inspect(c));
      assert.ok(schema.tables.some((t) => t.name === 'parent'));
      ok(await inspect(c, { table: 'parent' }));
    });

    test('emulator: describe tells writes from reads that the scan cannot settle', async () => {
      const c = await client('emu-ro');
      const rw = await client('emu');
      const before = await count(rw, 'parent');
      const forbidden0 = (await emu.state()).forbidden;
      const m1 = errorText(await batch(c, [{ sql: 'SELECT 1' }, { sql: 'WITH doomed AS (SELECT 1) DELETE FROM parent' }]));
      assert.match(m1, /This URL is read-only, and Turso reports that statement 2 of 2 \(index 1\) writes \(it starts with WITH\)\. Nothing was run\./);
      assert.equal((await emu.state()).forbidden, forbidden0, 'refused here, before Turso saw a write');
      const m2 = errorText(await batch(c, [{ sql: "INSERT INTO parent (id, name) VALUES (41, 'p41')" }]));
      assert.match(m2, /may write \(INSERT\)/);

      const sc = ok(await batch(c, [{ sql: "SELECT replace(name, 'b', 'B') FROM parent WHERE id = 2" }, { sql: 'PRAGMA table_info(parent)' }]));
      assert.deepEqual(sc.statements[0].rows, [['BoB']]);
      assert.deepEqual(sc.statements[1].rows.map((r) => r[1]), ['id', 'name']);
      const q = ok(await query(c, "SELECT replace(name, 'a', 'A') FROM parent WHERE id = 1"));
      assert.deepEqual(q.rows, [['Ann+']]);
      assert.equal(await count(rw, 'parent'), before);
      const schema = ok(await inspect(c));
      assert.ok(schema.tables.some((t) => t.name === 'child'));
      assert.equal(ok(await inspect(c, { table: 'child' })).table.row_count, 1);
    });
  });

  describe('Turso failing', () => {
    const secrets = () => [FLAKY_RW, users.flaky.token];
    const noSecret = (msg) => {
      for (const s of secrets()) assert.ok(!msg.includes(s), 'the message holds no token');
    };

    test('HTTP 500 and a garbage answer are clear errors', async () => {
      const c = await client('flaky');
      ok(await batch(c, [{ sql: 'CREATE TABLE t (x)' }]));
      await flaky.setFail('500', 1);
      const m1 = errorText(await batch(c, [{ sql: 'INSERT INTO t VALUES (1)' }]));
      assert.match(m1, /^The batch failed \(HTTP 500\): /);
      assert.match(m1, /check with turso_query before running the batch again/);
      noSecret(m1);
      await flaky.setFail('garbage', 1);
      const m2 = errorText(await batch(c, [{ sql: 'INSERT INTO t VALUES (2)' }]));
      assert.match(m2, /not valid JSON/);
      noSecret(m2);
      await flaky.setFail('500', 1);
      const m3 = errorText(await inspect(c));
      assert.match(m3, /could not be asked for the schema \(HTTP 500\)/);
      noSecret(m3);
      await flaky.setFail('garbage', 1);
      noSecret(errorText(await inspect(c, { table: 't' })));
      await flaky.setFail('401', 1);
      const m4 = errorText(await batch(c, [{ sql: 'INSERT INTO t VALUES (3)' }]));
      assert.match(m4, /rejected the database token.*Nothing was run\./);
      noSecret(m4);
      // and it works again afterwards
      const after = ok(await batch(c, [{ sql: 'SELECT count(*) FROM t' }]));
      assert.deepEqual(after.statements[0].rows, [[0]], 'none of the failed requests inserted anything');
    });

    test('Turso down: clear errors, and the server keeps serving', async () => {
      const c = await client('flaky');
      await stopProcess(flaky.proc);
      const m1 = errorText(await batch(c, [{ sql: 'INSERT INTO t VALUES (4)' }]));
      assert.match(m1, /could not be reached/);
      noSecret(m1);
      const m2 = errorText(await inspect(c));
      assert.match(m2, /could not be reached/);
      noSecret(m2);
      const m3 = errorText(await inspect(c, { table: 't' }));
      noSecret(m3);
      assert.equal(server.proc.exitCode, undefined, 'the server is still running');
      const local = await client('local');
      ok(await inspect(local, { table: 'parent' }));
    });
  });
});
