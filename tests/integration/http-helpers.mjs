// HTTP helpers for the transport and stress tests: one request on a fresh
// connection (node:http, so that any header can be set and a closed
// connection is seen as such), an SSE reader that keeps every event, comment
// and `retry:` line with its arrival time, raw MCP sessions of a chosen
// protocol version, and an in-process proxy that delays an upstream.
// Every wait here is bounded.

import http from 'node:http';
import { MCP_ACCEPT, rawPost, runCommand, serverBin } from './harness.mjs';

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

// Extra `serve` arguments that turn off the per-URL request limits, for the
// transport and load tests, which send many requests on one URL; empty for a
// server without such limits.
export async function noRateLimitArgs() {
  const args = [];
  if (await serverHasOption('--rate-limit-rps')) args.push('--rate-limit-rps', '0');
  if (await serverHasOption('--max-concurrent-calls')) args.push('--max-concurrent-calls', '0');
  return args;
}

function encodeBody(body) {
  if (body === undefined) return undefined;
  if (typeof body === 'string' || body instanceof Uint8Array) return Buffer.from(body);
  return Buffer.from(JSON.stringify(body));
}

function parseJson(text) {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

// One request on its own connection (no pooling, unless `agent` is given).
// Resolves {status, headers, text, json}; rejects when the connection fails
// or closes before a whole response (err.code is e.g. ECONNRESET), or after
// `timeoutMs` (err.code 'TEST_TIMEOUT'). `signal` aborts it (err.code
// 'ABORT_ERR').
export function httpRequest(url, { method = 'GET', headers = {}, body, timeoutMs = 10000, agent = false, signal } = {}) {
  return new Promise((resolve, reject) => {
    const data = encodeBody(body);
    const h = { ...headers };
    if (data && h['content-length'] === undefined) h['content-length'] = String(data.length);
    const req = http.request(url, { method, headers: h, agent, signal });
    const timer = setTimeout(() => {
      const e = new Error(`${method} ${url}: no complete answer within ${timeoutMs} ms`);
      e.code = 'TEST_TIMEOUT';
      req.destroy(e);
    }, timeoutMs);
    req.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    req.on('response', (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
      res.on('aborted', () => {
        clearTimeout(timer);
        const e = new Error('the response was cut off');
        e.code = 'ECONNRESET';
        reject(e);
      });
      res.on('end', () => {
        clearTimeout(timer);
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({ status: res.statusCode, headers: res.headers, text, json: parseJson(text) });
      });
    });
    req.end(data);
  });
}

// An SSE reader on one request (GET, or a POST answered with a stream).
// Resolves once the response head arrives, with:
//   status, headers, events[] ({id?, event?, data?, hasData, retry?,
//   comments[], at}), text (everything received), ended (a promise of
//   {how: 'end'|'error', error?, at}), isEnded(), waitFor(pred, ms, what),
//   waitEnd(ms), close().
// `at` is Date.now() when the event's closing blank line arrived.
export function openEventStream(url, { method = 'GET', headers = {}, body, timeoutMs = 10000, agent = false } = {}) {
  return new Promise((resolve, reject) => {
    const data = encodeBody(body);
    const h = { ...headers };
    if (data && h['content-length'] === undefined) h['content-length'] = String(data.length);
    const req = http.request(url, { method, headers: h, agent });
    const headTimer = setTimeout(() => {
      const e = new Error(`${method} ${url}: no response head within ${timeoutMs} ms`);
      e.code = 'TEST_TIMEOUT';
      req.destroy(e);
    }, timeoutMs);
    req.on('error', (e) => {
      clearTimeout(headTimer);
      reject(e);
    });
    req.on('response', (res) => {
      clearTimeout(headTimer);
      req.removeAllListeners('error');
      const s = {
        status: res.statusCode,
        headers: res.headers,
        events: [],
        text: '',
        endInfo: null,
        waiters: new Set(),
      };
      let pending = '';
      let resolveEnded;
      s.ended = new Promise((r) => {
        resolveEnded = r;
      });
      const notify = () => {
        for (const w of [...s.waiters]) w();
      };
      const finish = (how, error) => {
        if (s.endInfo) return;
        s.endInfo = { how, error, at: Date.now() };
        resolveEnded(s.endInfo);
        notify();
      };
      const parseBlock = (block) => {
        const ev = { comments: [], hasData: false, at: Date.now() };
        const dataLines = [];
        for (const line of block.split(/\r\n|\r|\n/)) {
          if (line === '') continue;
          if (line.startsWith(':')) {
            ev.comments.push(line.slice(1).trim());
            continue;
          }
          const colon = line.indexOf(':');
          const field = colon < 0 ? line : line.slice(0, colon);
          let value = colon < 0 ? '' : line.slice(colon + 1);
          if (value.startsWith(' ')) value = value.slice(1);
          if (field === 'data') {
            dataLines.push(value);
            ev.hasData = true;
          } else if (field === 'id') ev.id = value;
          else if (field === 'event') ev.event = value;
          else if (field === 'retry') ev.retry = value;
          else ev[`field:${field}`] = value;
        }
        if (ev.hasData) ev.data = dataLines.join('\n');
        return ev;
      };
      res.setEncoding('utf8');
      res.on('data', (chunk) => {
        s.text += chunk;
        pending += chunk;
        for (;;) {
          const m = /\r\n\r\n|\n\n|\r\r/.exec(pending);
          if (!m) break;
          const block = pending.slice(0, m.index);
          pending = pending.slice(m.index + m[0].length);
          s.events.push(parseBlock(block));
        }
        notify();
      });
      res.on('end', () => finish('end'));
      res.on('aborted', () => finish('error', new Error('aborted')));
      res.on('error', (e) => finish('error', e));
      res.on('close', () => finish('error', new Error('closed')));
      s.isEnded = () => s.endInfo !== null;
      // JSON-RPC messages carried by the events so far.
      s.messages = () => s.events.filter((e) => e.hasData && e.data.trim() !== '').map((e) => parseJson(e.data));
      s.waitFor = (pred, ms = 5000, what = 'an event') =>
        new Promise((res2, rej2) => {
          let timer;
          const check = () => {
            const hit = s.events.find(pred);
            if (hit) {
              cleanup();
              res2(hit);
            } else if (s.endInfo) {
              cleanup();
              rej2(new Error(`the stream ended (${s.endInfo.how}) before ${what}; received:\n${s.text.slice(-2000)}`));
            }
          };
          const cleanup = () => {
            clearTimeout(timer);
            s.waiters.delete(check);
          };
          timer = setTimeout(() => {
            cleanup();
            rej2(new Error(`no ${what} within ${ms} ms; received:\n${s.text.slice(-2000)}`));
          }, ms);
          s.waiters.add(check);
          check();
        });
      s.waitEnd = (ms = 5000) =>
        new Promise((res2, rej2) => {
          const timer = setTimeout(() => rej2(new Error(`the stream did not end within ${ms} ms; received:\n${s.text.slice(-2000)}`)), ms);
          s.ended.then((info) => {
            clearTimeout(timer);
            res2(info);
          });
        });
      s.close = () => {
        req.destroy();
        res.destroy();
      };
      resolve(s);
    });
    req.end(data);
  });
}

// initialize (with the given protocol version) + notifications/initialized;
// returns {sessionId, version, headers (for later requests), init}.
export async function initSession(url, version = '2025-06-18', { headers = {}, clientName = 'transport-test' } = {}) {
  const init = await rawPost(
    url,
    { jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: version, capabilities: {}, clientInfo: { name: clientName, version: '0' } } },
    { headers },
  );
  if (init.status !== 200) throw new Error(`initialize: HTTP ${init.status} ${init.text}`);
  const sessionId = init.headers.get('mcp-session-id');
  const negotiated = init.json?.result?.protocolVersion;
  const h = { ...headers, 'mcp-protocol-version': negotiated };
  if (sessionId) h['mcp-session-id'] = sessionId;
  const note = await rawPost(url, { jsonrpc: '2.0', method: 'notifications/initialized' }, { headers: h });
  if (note.status !== 202) throw new Error(`notifications/initialized: HTTP ${note.status} ${note.text}`);
  return { sessionId, version: negotiated, headers: h, init };
}

export function mcpHeaders(session, extra = {}) {
  return { 'content-type': 'application/json', accept: MCP_ACCEPT, ...session.headers, ...extra };
}

export function toolCall(id, sql, { progressToken, args } = {}) {
  const params = { name: 'turso_query', arguments: args === undefined ? { sql } : { sql, args } };
  if (progressToken !== undefined) params._meta = { progressToken };
  return { jsonrpc: '2.0', id, method: 'tools/call', params };
}

// A Hrana upstream that answers late: every request to it waits `delayMs`
// (changeable with setDelay) and is then passed on to `target`. Runs in this
// process; close() ends it and every connection it holds.
export async function startDelayProxy(target, { delayMs = 0 } = {}) {
  const t = new URL(target);
  const sockets = new Set();
  const timers = new Set();
  const state = { delayMs, received: 0, answered: 0 };
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      state.received++;
      const timer = setTimeout(() => {
        timers.delete(timer);
        const headers = { ...req.headers, host: t.host };
        const up = http.request({ hostname: t.hostname, port: t.port, path: req.url, method: req.method, headers, agent: false }, (ur) => {
          const out = [];
          ur.on('data', (c) => out.push(c));
          ur.on('end', () => {
            const h = { ...ur.headers };
            delete h['transfer-encoding'];
            delete h.connection;
            h['content-length'] = String(Buffer.concat(out).length);
            res.writeHead(ur.statusCode, h);
            res.end(Buffer.concat(out));
            state.answered++;
          });
          ur.on('error', () => res.destroy());
        });
        up.on('error', () => res.destroy());
        up.end(Buffer.concat(chunks));
      }, state.delayMs);
      timers.add(timer);
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    state,
    setDelay(ms) {
      state.delayMs = ms;
    },
    async close() {
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(() => r()));
    },
  };
}

// Waits (bounded) until `cond()` (sync or async) is truthy; returns its value.
export async function waitUntil(cond, { timeoutMs = 5000, intervalMs = 25, what = 'the condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
