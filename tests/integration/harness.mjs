// Helpers for the end-to-end tests: start and stop the real processes
// (our server, `tursodb --sync-server`, the Hrana emulator, the Platform API
// emulator) on 127.0.0.1, drive the admin CLI, and connect the official MCP
// client.
//
// Every process started here is remembered and stopped by PID
// (SIGTERM, then SIGKILL after a bound); every wait is bounded.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

// (a) repository layout, found from this file's location
export const testsDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const repoRoot = path.resolve(testsDir, '..');
export const emulatorScript = path.join(testsDir, 'emulator', 'hrana-emulator.mjs');

export function serverBin() {
  return process.env.TM_BIN ? path.resolve(process.env.TM_BIN) : path.join(repoRoot, 'build', 'turso-mcp');
}

export function tursodbBin() {
  return path.join(testsDir, 'node_modules', '@tursodatabase', 'cli-linux-x64-gnu', 'tursodb');
}

// Returns a reason to skip when something the suite needs is not there.
export function missingPrerequisite({ server = true, tursodb = true } = {}) {
  if (tursodb && !fs.existsSync(tursodbBin())) return `tursodb not found at ${tursodbBin()} (run npm ci in tests/)`;
  if (server && !fs.existsSync(serverBin())) return `server binary not found at ${serverBin()} (build it, or set TM_BIN)`;
  return null;
}

export async function makeTempDir(prefix = 'tm-test-') {
  return fsp.mkdtemp(path.join(os.tmpdir(), prefix));
}

export function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

// A port that was free a moment ago: bind port 0, read it back, close.
export async function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

// ---------------------------------------------------------------- processes

const running = new Set();
const OUTPUT_CAP = 4 * 1024 * 1024;

// Starts a process; collects its stdout/stderr (capped) and offers a bounded
// wait for a line on stdout.
// `detached` puts it in a process group of its own, as a shell puts a job,
// so that a test can signal the group the way Ctrl-C does.
export function startProcess(cmd, args, { env, cwd, stdin = 'ignore', name, detached = false } = {}) {
  const child = spawn(cmd, args, {
    cwd: cwd ?? repoRoot,
    env: { ...process.env, ...env },
    stdio: [stdin, 'pipe', 'pipe'],
    detached,
  });
  const proc = {
    name: name ?? path.basename(cmd),
    child,
    pid: child.pid,
    stdout: '',
    stderr: '',
    exitCode: undefined,
    signal: undefined,
    lineWaiters: [],
  };
  proc.exited = new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      proc.exitCode = code;
      proc.signal = signal;
      running.delete(proc);
      for (const w of proc.lineWaiters) w.fail(new Error(`${proc.name} exited (code ${code}, signal ${signal}) before printing the expected line; stderr:\n${proc.stderr.slice(-4000)}`));
      proc.lineWaiters = [];
      resolve({ code, signal });
    });
  });
  child.on('error', (e) => {
    proc.stderr += `spawn error: ${e.message}\n`;
  });
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stdout.on('data', (d) => {
    if (proc.stdout.length < OUTPUT_CAP) proc.stdout += d;
    for (const w of [...proc.lineWaiters]) w.check();
  });
  child.stderr.on('data', (d) => {
    if (proc.stderr.length < OUTPUT_CAP) proc.stderr += d;
  });
  if (child.pid !== undefined) running.add(proc);
  return proc;
}

// Waits (bounded) until stdout has a line matching `re`; returns the match.
export function waitForLine(proc, re, timeoutMs = 10000) {
  return new Promise((resolve, reject) => {
    const w = {};
    const timer = setTimeout(() => {
      proc.lineWaiters = proc.lineWaiters.filter((x) => x !== w);
      reject(new Error(`timed out after ${timeoutMs} ms waiting for ${re} from ${proc.name}; stdout:\n${proc.stdout.slice(-2000)}\nstderr:\n${proc.stderr.slice(-4000)}`));
    }, timeoutMs);
    w.check = () => {
      for (const line of proc.stdout.split('\n')) {
        const m = re.exec(line);
        if (m) {
          clearTimeout(timer);
          proc.lineWaiters = proc.lineWaiters.filter((x) => x !== w);
          resolve(m);
          return;
        }
      }
    };
    w.fail = (e) => {
      clearTimeout(timer);
      reject(e);
    };
    proc.lineWaiters.push(w);
    if (proc.exitCode !== undefined) w.fail(new Error(`${proc.name} already exited (code ${proc.exitCode}); stderr:\n${proc.stderr.slice(-4000)}`));
    else w.check();
  });
}

async function waitExit(proc, ms) {
  if (proc.exitCode !== undefined) return true;
  let timer;
  const done = await Promise.race([
    proc.exited.then(() => true),
    new Promise((r) => {
      timer = setTimeout(() => r(false), ms);
    }),
  ]);
  clearTimeout(timer);
  return done;
}

// (g) SIGTERM by PID; SIGKILL if it has not exited after `graceMs`.
export async function stopProcess(proc, graceMs = 5000) {
  if (!proc || proc.pid === undefined || proc.exitCode !== undefined) return proc?.exited;
  try {
    process.kill(proc.pid, 'SIGTERM');
  } catch {
    /* already gone */
  }
  if (!(await waitExit(proc, graceMs))) {
    try {
      process.kill(proc.pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
    await waitExit(proc, 5000);
  }
  return proc.exited;
}

export async function stopAll() {
  await Promise.all([...running].map((p) => stopProcess(p)));
}

// Last resort if a test file dies without running its `after` hooks.
process.on('exit', () => {
  for (const p of running) {
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
});

// Runs a command to completion (bounded) and returns {code, stdout, stderr}.
export async function runCommand(cmd, args, { input, timeoutMs = 20000, env } = {}) {
  const proc = startProcess(cmd, args, { env, stdin: input === undefined ? 'ignore' : 'pipe' });
  if (input !== undefined) {
    proc.child.stdin.on('error', () => {});
    proc.child.stdin.end(input);
  }
  if (!(await waitExit(proc, timeoutMs))) {
    await stopProcess(proc, 1000);
    throw new Error(`${cmd} ${args.join(' ')} did not finish within ${timeoutMs} ms; stderr:\n${proc.stderr}`);
  }
  const { code, signal } = await proc.exited;
  return { code, signal, stdout: proc.stdout, stderr: proc.stderr };
}

// ---------------------------------------------------------------- upstreams

async function pipelineAnswers(url, timeoutMs = 1000) {
  try {
    const r = await fetch(`${url}/v2/pipeline`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"requests":[]}',
      signal: AbortSignal.timeout(timeoutMs),
    });
    await r.arrayBuffer();
    return r.status === 200;
  } catch {
    return false;
  }
}

// (b) `tursodb FILE --sync-server 127.0.0.1:PORT`, ready when
// POST /v2/pipeline {"requests":[]} answers 200.
export async function startTursodb(dbFile, { timeoutMs = 15000 } = {}) {
  let lastErr;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const proc = startProcess(tursodbBin(), [dbFile, '--sync-server', `127.0.0.1:${port}`], { name: 'tursodb' });
    const url = `http://127.0.0.1:${port}`;
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline && proc.exitCode === undefined) {
      if (await pipelineAnswers(url)) return { proc, port, url };
      await sleep(100);
    }
    lastErr = new Error(`tursodb did not become ready on ${url}; stderr:\n${proc.stderr.slice(-2000)}`);
    await stopProcess(proc);
  }
  throw lastErr;
}

// (c) the Hrana emulator (Node 22, node:sqlite).
// `stallMs`: how long the `stall` fail mode holds a request before dropping it.
export async function startEmulator({ dbFile, rw = [], ro = [], expiryMs, failMode, stallMs, admin = true, timeoutMs = 15000 } = {}) {
  const args = ['--experimental-sqlite', emulatorScript, '--port', '0', '--db', dbFile];
  for (const t of rw) args.push('--token-rw', t);
  for (const t of ro) args.push('--token-ro', t);
  if (expiryMs !== undefined) args.push('--stream-expiry-ms', String(expiryMs));
  if (failMode !== undefined) args.push('--fail-mode', failMode);
  if (stallMs !== undefined) args.push('--stall-ms', String(stallMs));
  if (admin) args.push('--admin');
  const proc = startProcess(process.execPath, args, { name: 'hrana-emulator' });
  const m = await waitForLine(proc, /^hrana-emulator listening on (http:\/\/127\.0\.0\.1:(\d+))$/, timeoutMs);
  const url = m[1];
  const adminPost = async (p, body) => {
    const r = await fetch(`${url}${p}`, { method: 'POST', body: JSON.stringify(body), signal: AbortSignal.timeout(5000) });
    if (r.status !== 200) throw new Error(`emulator admin ${p}: HTTP ${r.status} ${await r.text()}`);
    return r.json();
  };
  return {
    proc,
    url,
    port: Number(m[2]),
    setTokens: (tokens) => adminPost('/__emulator/tokens', tokens),
    setFail: (mode, count) => adminPost('/__emulator/fail', count === undefined ? { mode } : { mode, count }),
    state: async () => (await fetch(`${url}/__emulator/state`, { signal: AbortSignal.timeout(5000) })).json(),
  };
}

// (c') the Platform API emulator (api.turso.tech stand-in; every database is
// a real SQLite file served over Hrana on its own 127.0.0.1 port, reached
// with `--db-scheme http`). Returns its URL and its admin hooks.
export const platformEmulatorScript = path.join(testsDir, 'emulator', 'platform-emulator.mjs');

export async function startPlatformEmulator({ dataDir, org = 'acme', tokens = [], readOnlyTokens = [], databases = [], stallMs, organizationsShape, timeoutMs = 15000 } = {}) {
  const args = ['--experimental-sqlite', platformEmulatorScript, '--port', '0', '--data-dir', dataDir, '--org', org];
  for (const t of tokens) args.push('--token', t);
  for (const t of readOnlyTokens) args.push('--read-only-token', t);
  for (const d of databases) args.push('--database', d);
  if (stallMs !== undefined) args.push('--stall-ms', String(stallMs));
  if (organizationsShape !== undefined) args.push('--organizations-shape', organizationsShape);
  const proc = startProcess(process.execPath, args, { name: 'platform-emulator' });
  const m = await waitForLine(proc, /^platform-emulator listening on (http:\/\/127\.0\.0\.1:(\d+))$/, timeoutMs);
  const url = m[1];
  const admin = async (method, p, body) => {
    const r = await fetch(`${url}/__emulator/${p}`, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(5000),
    });
    const text = await r.text();
    if (r.status !== 200) throw new Error(`platform emulator ${method} ${p}: HTTP ${r.status} ${text}`);
    return JSON.parse(text);
  };
  return {
    proc,
    url,
    port: Number(m[2]),
    state: () => admin('GET', 'state'),
    calls: async () => (await admin('GET', 'calls')).calls,
    clearCalls: () => admin('DELETE', 'calls'),
    // mode: none|500|503|429|401|garbage|stall|close; count absent = until changed
    setFail: (mode, { count, path: p } = {}) => admin('POST', 'fail', { mode, ...(count === undefined ? {} : { count }), ...(p === undefined ? {} : { path: p }) }),
    setConfig: (cfg) => admin('POST', 'config', cfg),
    setDbFail: (name, mode, count) => admin('POST', `databases/${encodeURIComponent(name)}/fail`, count === undefined ? { mode } : { mode, count }),
    mint: (spec) => admin('POST', 'mint', spec),
  };
}

// ---------------------------------------------------------------- our server

// (d) `turso-mcp serve --data-dir DIR --listen 127.0.0.1:0 [extra...]`;
// ready when it prints `turso-mcp listening on http://127.0.0.1:PORT`.
export async function startServer({ dataDir, extraArgs = [], env, timeoutMs = 15000 } = {}) {
  const args = ['serve', '--data-dir', dataDir, '--listen', '127.0.0.1:0', ...extraArgs];
  const proc = startProcess(serverBin(), args, { name: 'turso-mcp', env });
  const m = await waitForLine(proc, /turso-mcp listening on (http:\/\/127\.0\.0\.1:(\d+))/, timeoutMs);
  return { proc, base: m[1], port: Number(m[2]) };
}

// The settings `serve` knows, read once from `turso-mcp --help` (the
// `--name` words of its settings list), so a test can pass an optional one
// only to a server that has it.
let helpText;
export async function serverHasOption(name) {
  if (helpText === undefined) {
    const r = await runCommand(serverBin(), ['--help'], { timeoutMs: 10000 });
    helpText = r.stdout;
  }
  const flag = name.startsWith('--') ? name : `--${name}`;
  return helpText.split('\n').some((line) => line.trim().split(/[\s=]/)[0] === flag);
}

// Extra `serve` arguments that turn off per-URL request limits, for tests of
// transports and capacity that send many requests on one URL; empty for a
// server without such limits.
export async function noRateLimitArgs() {
  const args = [];
  if (await serverHasOption('--rate-limit-rps')) args.push('--rate-limit-rps', '0');
  if (await serverHasOption('--max-concurrent-calls')) args.push('--max-concurrent-calls', '0');
  return args;
}

export const URL_TOKEN_RE = /\/u\/([A-Za-z0-9_-]{43})\/mcp\b/;

// (e) `user add`; the database token goes through a private temporary file,
// or through stdin (`--db-token-file -`) with `viaStdin`.
// Returns {code, stdout, stderr, token?, printedUrl?, url?}; url uses the
// server's real port when `port` is given.
export async function addUser({ dataDir, label, dbUrl, dbToken, readOnly = false, port, viaStdin = false, extraArgs = [] }) {
  const dir = await makeTempDir('tm-token-');
  const tokenFile = path.join(dir, 'db-token');
  try {
    if (!viaStdin) await fsp.writeFile(tokenFile, dbToken, { mode: 0o600 });
    const args = ['user', 'add', '--data-dir', dataDir, '--label', label, '--db-url', dbUrl, '--db-token-file', viaStdin ? '-' : tokenFile, ...extraArgs];
    if (readOnly) args.push('--read-only');
    const r = await runCommand(serverBin(), args, viaStdin ? { input: `${dbToken}\n` } : {});
    const m = URL_TOKEN_RE.exec(r.stdout);
    if (m) {
      r.token = m[1];
      r.printedUrl = r.stdout.split('\n').find((l) => URL_TOKEN_RE.test(l))?.trim();
      if (port !== undefined) r.url = `http://127.0.0.1:${port}/u/${m[1]}/mcp`;
    }
    return r;
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
}

// (e') `user add` with a Platform API token (through a private temporary
// file) and its organization, optionally beside a database URL and token.
// Returns what addUser returns.
export async function addPlatformUser({ dataDir, label, platformToken, org, defaultDb, readOnly = false, apiUrl, dbScheme = 'http', dbUrl, dbToken, port, extraArgs = [] }) {
  const dir = await makeTempDir('tm-token-');
  try {
    const ptFile = path.join(dir, 'platform-token');
    await fsp.writeFile(ptFile, platformToken, { mode: 0o600 });
    const args = ['user', 'add', '--data-dir', dataDir, '--label', label, '--platform-token-file', ptFile, '--org', org];
    if (defaultDb !== undefined) args.push('--default-db', defaultDb);
    if (apiUrl !== undefined) args.push('--api-url', apiUrl);
    if (dbScheme !== undefined) args.push('--db-scheme', dbScheme);
    if (dbUrl !== undefined) {
      const dbFile = path.join(dir, 'db-token');
      await fsp.writeFile(dbFile, dbToken ?? '', { mode: 0o600 });
      args.push('--db-url', dbUrl, '--db-token-file', dbFile);
    }
    if (readOnly) args.push('--read-only');
    args.push(...extraArgs);
    const r = await runCommand(serverBin(), args);
    const m = URL_TOKEN_RE.exec(r.stdout);
    if (m) {
      r.token = m[1];
      if (port !== undefined) r.url = `http://127.0.0.1:${port}/u/${m[1]}/mcp`;
    }
    return r;
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
}

// (f) `user list`: a header line, then one user a line, id (16 hex) first.
export async function listUsers(dataDir) {
  const r = await runCommand(serverBin(), ['user', 'list', '--data-dir', dataDir]);
  if (r.code !== 0) throw new Error(`user list failed (${r.code}): ${r.stderr}`);
  const users = [];
  for (const line of r.stdout.split('\n')) {
    const m = /^\s*([0-9a-f]{16})\b\s*(.*)$/.exec(line);
    if (m) users.push({ id: m[1], rest: m[2], line });
  }
  return { ...r, users };
}

export async function revokeUser(dataDir, id) {
  return runCommand(serverBin(), ['user', 'revoke', '--data-dir', dataDir, id]);
}

// ---------------------------------------------------------------- MCP client

// (h) the official client over Streamable HTTP.
export async function connectClient(url, { headers, name = 'turso-mcp-tests' } = {}) {
  const { Client } = await import('@modelcontextprotocol/sdk/client/index.js');
  const { StreamableHTTPClientTransport } = await import('@modelcontextprotocol/sdk/client/streamableHttp.js');
  const client = new Client({ name, version: '0.0.0' });
  const transport = new StreamableHTTPClientTransport(new URL(url), headers ? { requestInit: { headers } } : undefined);
  await client.connect(transport);
  return client;
}

export async function closeClient(client) {
  if (!client) return;
  try {
    await client.close();
  } catch {
    /* closing is best effort */
  }
}

// Raw MCP over fetch, for the transport checks the SDK hides.
export const MCP_ACCEPT = 'application/json, text/event-stream';
export const PROTOCOL_VERSION = '2025-06-18';

export async function rawPost(url, body, { headers = {}, timeoutMs = 10000 } = {}) {
  const r = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: MCP_ACCEPT, ...headers },
    body: typeof body === 'string' || body instanceof Uint8Array ? body : JSON.stringify(body),
    signal: AbortSignal.timeout(timeoutMs),
  });
  const text = await r.text();
  return { status: r.status, headers: r.headers, text, json: parseMcpBody(r.headers.get('content-type'), text) };
}

// A JSON body, or the last JSON-RPC message of an SSE body; null otherwise.
export function parseMcpBody(contentType, text) {
  if (!text) return null;
  if ((contentType || '').includes('text/event-stream')) {
    let last = null;
    for (const block of text.split(/\r?\n\r?\n/)) {
      const data = block
        .split(/\r?\n/)
        .filter((l) => l.startsWith('data:'))
        .map((l) => l.slice(5).replace(/^ /, ''))
        .join('\n');
      if (data.trim()) {
        try {
          last = JSON.parse(data);
        } catch {
          /* not JSON */
        }
      }
    }
    return last;
  }
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

// initialize + notifications/initialized over raw HTTP; returns the session
// id (or null when the server is stateless) and the negotiated version.
export async function rawInitialize(url, { headers = {} } = {}) {
  const init = await rawPost(
    url,
    {
      jsonrpc: '2.0',
      id: 0,
      method: 'initialize',
      params: { protocolVersion: PROTOCOL_VERSION, capabilities: {}, clientInfo: { name: 'raw-test', version: '0' } },
    },
    { headers },
  );
  if (init.status !== 200) throw new Error(`initialize: HTTP ${init.status} ${init.text}`);
  const sessionId = init.headers.get('mcp-session-id');
  const version = init.json?.result?.protocolVersion;
  const h = { ...headers, 'mcp-protocol-version': version ?? PROTOCOL_VERSION };
  if (sessionId) h['mcp-session-id'] = sessionId;
  const note = await rawPost(url, { jsonrpc: '2.0', method: 'notifications/initialized' }, { headers: h });
  if (note.status !== 202) throw new Error(`notifications/initialized: HTTP ${note.status} ${note.text}`);
  return { sessionId, version, headers: h, init };
}
