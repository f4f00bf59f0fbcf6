// The server's settings and self-hosting commands, through the real binary:
// file < environment < flags as `serve --print-config` shows them, errors
// that name their source, `keygen`, a master key from a file outside the
// data directory (as a Docker secret is mounted), and `healthcheck`.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  addUser,
  closeClient,
  connectClient,
  makeTempDir,
  missingPrerequisite,
  runCommand,
  serverBin,
  startServer,
  startTursodb,
  stopAll,
  stopProcess,
} from './harness.mjs';

const KEY_RE = /^v1:[0-9a-f]{64}\n$/;

// The dump as {key: value}.
function settings(stdout) {
  const out = {};
  for (const line of stdout.split('\n')) {
    const m = /^([a-z_]+) = (.*)$/.exec(line);
    if (m) out[m[1]] = m[2];
  }
  return out;
}

// Runs the binary with exactly `env` as TURSO_MCP_* (none inherited).
function run(args, env = {}, opts = {}) {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('TURSO_MCP_')));
  return runCommand(serverBin(), args, { ...opts, env: { ...clean, ...env } });
}

describe('settings, keygen, master key file, healthcheck', () => {
  let dir;

  before(async () => {
    assert.equal(missingPrerequisite(), null);
    dir = await makeTempDir('tm-config-');
  });

  after(async () => {
    await stopAll();
    if (dir) await fsp.rm(dir, { recursive: true, force: true });
  });

  test('file < environment < flags, as --print-config shows', async () => {
    const conf = path.join(dir, 'turso-mcp.conf');
    await fsp.writeFile(conf, 'listen = 127.0.0.1:9101\nmax_rows = 10\nthreads = 3\nlog_level = warn\n');

    let r = await run(['serve', '--print-config', '--config', conf]);
    assert.equal(r.code, 0, r.stderr);
    let s = settings(r.stdout);
    assert.deepEqual([s.listen, s.max_rows, s.threads, s.data_dir], ['127.0.0.1:9101', '10', '3', './data']);

    r = await run(['serve', '--print-config', '--config', conf], { TURSO_MCP_MAX_ROWS: '20', TURSO_MCP_THREADS: '4', TURSO_MCP_DATA_DIR: '/data' });
    assert.equal(r.code, 0, r.stderr);
    s = settings(r.stdout);
    assert.deepEqual([s.listen, s.max_rows, s.threads, s.data_dir], ['127.0.0.1:9101', '20', '4', '/data']);

    r = await run(['serve', '--threads', '5', '--print-config', '--config', conf], { TURSO_MCP_MAX_ROWS: '20', TURSO_MCP_THREADS: '4' });
    assert.equal(r.code, 0, r.stderr);
    s = settings(r.stdout);
    assert.deepEqual([s.max_rows, s.threads, s.log_level], ['20', '5', 'warn']);

    // The file can come from the environment too; --config still wins over it.
    r = await run(['serve', '--print-config'], { TURSO_MCP_CONFIG: conf });
    assert.equal(settings(r.stdout).listen, '127.0.0.1:9101');

    // The dump is itself a config file.
    const dumped = path.join(dir, 'dumped.conf');
    await fsp.writeFile(dumped, r.stdout);
    const again = await run(['serve', '--print-config', '--config', dumped]);
    assert.equal(again.stdout, r.stdout);
  });

  test('a bad setting names where it came from, and stops', async () => {
    let r = await run(['serve', '--print-config'], { TURSO_MCP_MAX_ROWS: 'lots' });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /TURSO_MCP_MAX_ROWS: max_rows must be a whole number from 1 to 100000/);
    assert.doesNotMatch(r.stderr, /lots/);
    assert.equal(r.stdout, '');

    r = await run(['serve', '--print-config', '--max-rows', '0']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--max-rows: max_rows must be/);

    const conf = path.join(dir, 'bad.conf');
    await fsp.writeFile(conf, '# fine\nmax_rows = 5\nlisten = nowhere\n');
    r = await run(['serve', '--print-config', '--config', conf]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /bad\.conf:3: listen must be HOST:PORT/);

    // Not a setting: a warning (Kubernetes sets TURSO_MCP_PORT for a service of that name).
    r = await run(['serve', '--print-config'], { TURSO_MCP_PORT: 'tcp://10.0.0.1:8787', TURSO_MCP_MAX_ROWZ: '5' });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /"event":"config_unknown_env","name":"TURSO_MCP_MAX_ROWZ"/);
    assert.doesNotMatch(r.stderr, /10\.0\.0\.1/);
  });

  test('--help documents the environment and every key', async () => {
    const r = await run(['--help']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /TURSO_MCP_<KEY>/);
    assert.match(r.stdout, /--master-key-file/);
    assert.match(r.stdout, /turso-mcp keygen/);
    assert.match(r.stdout, /turso-mcp healthcheck/);
    const v = await run(['--version']);
    assert.match(v.stdout, /^turso-mcp \d+\.\d+\.\d+\n$/);
  });

  test('keygen prints a fresh key in the key file format, and nothing else', async () => {
    const a = await run(['keygen']);
    const b = await run(['keygen']);
    assert.equal(a.code, 0, a.stderr);
    assert.match(a.stdout, KEY_RE);
    assert.match(b.stdout, KEY_RE);
    assert.notEqual(a.stdout, b.stdout);
    assert.equal(a.stderr, '');
    assert.equal((await run(['keygen', 'extra'])).code, 2);
  });

  test('a master key file outside the data directory, as a Docker secret', async () => {
    const secrets = path.join(dir, 'secrets');
    const dataDir = path.join(dir, 'data-secret');
    await fsp.mkdir(secrets);
    const keyFile = path.join(secrets, 'turso_mcp_master_key');
    const env = { TURSO_MCP_MASTER_KEY_FILE: keyFile, TURSO_MCP_DATA_DIR: dataDir };

    // Not there: a clear message, and nothing is created.
    let r = await run(['user', 'list'], env);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /master key file .*turso_mcp_master_key does not exist/);
    assert.match(r.stderr, /turso-mcp keygen > FILE/);
    assert.equal(fs.existsSync(keyFile), false);

    // 0444, as Docker mounts a secret.
    await fsp.writeFile(keyFile, (await run(['keygen'])).stdout, { mode: 0o444 });
    await fsp.chmod(keyFile, 0o444);
    const tursodb = await startTursodb(path.join(dir, 'secret.db'));
    const server = await startServer({ dataDir, env });
    try {
      assert.doesNotMatch(server.proc.stdout, /Created a new master key/);
      const added = await addUser({ dataDir, label: 'secret', dbUrl: tursodb.url, dbToken: 'any', port: server.port, extraArgs: ['--master-key-file', keyFile] });
      assert.equal(added.code, 0, added.stderr);
      assert.equal(fs.existsSync(path.join(dataDir, 'master.key')), false, 'no key of its own in the data directory');
      const client = await connectClient(added.url);
      const res = await client.callTool({ name: 'turso_query', arguments: { sql: 'SELECT 41 + 1 AS n' } });
      assert.equal(res.structuredContent?.rows?.[0]?.[0], 42, JSON.stringify(res));
      await closeClient(client);

      // healthcheck reads the same settings: it finds the server on its port.
      const ok = await run(['healthcheck', '--listen', `127.0.0.1:${server.port}`], env);
      assert.equal(ok.code, 0, ok.stdout + ok.stderr);
      assert.match(ok.stdout, /healthy: http:\/\/127\.0\.0\.1:\d+\/healthz answered 200/);
      const viaEnv = await run(['healthcheck'], { ...env, TURSO_MCP_LISTEN: `0.0.0.0:${server.port}` });
      assert.equal(viaEnv.code, 0, viaEnv.stdout + viaEnv.stderr);
    } finally {
      await stopProcess(server.proc);
      await stopProcess(tursodb.proc);
    }
    const down = await run(['healthcheck', '--listen', `127.0.0.1:${server.port}`]);
    assert.equal(down.code, 1);
    assert.match(down.stdout, /^unhealthy: /);

    // Writable by others: refused. Without the key file the data directory makes its own
    // key, which is not the store's.
    await fsp.chmod(keyFile, 0o666);
    r = await run(['user', 'list'], env);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /"reason":"permissions","mode":"0666"/);
    await fsp.chmod(keyFile, 0o444);
    r = await run(['user', 'list'], env);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /secret/);
    r = await run(['user', 'list', '--data-dir', dataDir]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /"reason":"mismatch"/);
  });

  test('/healthz answers whatever the Host, as probes name the server by address', async () => {
    const server = await startServer({ dataDir: path.join(dir, 'data-health'), extraArgs: ['--public-url', 'https://mcp.example.com'] });
    const get = (p, host) =>
      new Promise((resolve, reject) => {
        const req = http.request({ host: '127.0.0.1', port: server.port, path: p, headers: { host }, timeout: 5000 }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode));
        });
        req.on('timeout', () => req.destroy(new Error('timeout')));
        req.on('error', reject);
        req.end();
      });
    try {
      assert.equal(await get('/healthz', '10.0.0.7:8787'), 200);
      assert.equal(await get('/healthz', 'mcp.example.com'), 200);
      // Everything else still checks it.
      assert.equal(await get('/mcp', '10.0.0.7:8787'), 421);
    } finally {
      await stopProcess(server.proc);
    }
  });
});
