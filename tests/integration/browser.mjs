// A small driver for Debian's headless Chromium over the DevTools protocol,
// with Node 22's built-in WebSocket (no npm package): start the browser on
// a fresh profile, open a page, type, click, read the DOM, and record every
// network request the page makes. Test tool only; everything is bounded and
// the browser is stopped by its PID (harness.stopProcess).

import fs from 'node:fs';
import fsp from 'node:fs/promises';
import { makeTempDir, startProcess, stopProcess } from './harness.mjs';

const CANDIDATES = ['/usr/bin/chromium', '/usr/bin/chromium-browser'];

export function chromiumBin() {
  if (process.env.TM_CHROMIUM) return process.env.TM_CHROMIUM;
  return CANDIDATES.find((p) => fs.existsSync(p)) ?? null;
}

// Starts Chromium and connects to its browser endpoint.
export async function launchBrowser({ timeoutMs = 30000 } = {}) {
  const bin = chromiumBin();
  if (!bin) throw new Error('chromium not found (scripts/install-deps.sh --with-test-tools installs it)');
  const profile = await makeTempDir('tm-chromium-');
  const args = [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--no-default-browser-check',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--disable-extensions',
    '--disable-dev-shm-usage',
    '--remote-debugging-address=127.0.0.1',
    '--remote-debugging-port=0',
    `--user-data-dir=${profile}`,
    'about:blank',
  ];
  const proc = startProcess(bin, args, { name: 'chromium' });
  const deadline = Date.now() + timeoutMs;
  let endpoint;
  while (!endpoint && Date.now() < deadline && proc.exitCode === undefined) {
    const m = /DevTools listening on (ws:\/\/127\.0\.0\.1:\d+\/devtools\/browser\/[^\s]+)/.exec(proc.stderr);
    if (m) endpoint = m[1];
    else await new Promise((r) => setTimeout(r, 50));
  }
  if (!endpoint) {
    await stopProcess(proc);
    await fsp.rm(profile, { recursive: true, force: true });
    throw new Error(`chromium did not start its DevTools endpoint; stderr:\n${proc.stderr.slice(-3000)}`);
  }
  const conn = await Connection.open(endpoint);
  return new Browser(proc, profile, conn);
}

// One WebSocket to the browser; commands carry ids, events go to listeners.
class Connection {
  static open(url) {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url);
      const timer = setTimeout(() => reject(new Error('DevTools WebSocket did not open')), 10000);
      ws.addEventListener('open', () => {
        clearTimeout(timer);
        resolve(new Connection(ws));
      });
      ws.addEventListener('error', () => {
        clearTimeout(timer);
        reject(new Error('DevTools WebSocket failed'));
      });
    });
  }

  constructor(ws) {
    this.ws = ws;
    this.nextId = 1;
    this.pending = new Map();
    this.listeners = new Set();
    ws.addEventListener('message', (ev) => {
      const msg = JSON.parse(typeof ev.data === 'string' ? ev.data : Buffer.from(ev.data).toString());
      if (msg.id !== undefined) {
        const p = this.pending.get(msg.id);
        if (!p) return;
        this.pending.delete(msg.id);
        clearTimeout(p.timer);
        if (msg.error) p.reject(new Error(`${p.method}: ${msg.error.message}`));
        else p.resolve(msg.result);
      } else {
        for (const l of [...this.listeners]) l(msg);
      }
    });
    ws.addEventListener('close', () => {
      for (const p of this.pending.values()) {
        clearTimeout(p.timer);
        p.reject(new Error(`DevTools connection closed during ${p.method}`));
      }
      this.pending.clear();
    });
  }

  send(method, params = {}, sessionId, timeoutMs = 15000) {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`${method} timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer, method });
      this.ws.send(JSON.stringify(sessionId ? { id, method, params, sessionId } : { id, method, params }));
    });
  }

  // Resolves with the first event `method` (of `sessionId`) that `pred` accepts.
  waitFor(method, sessionId, pred = () => true, timeoutMs = 15000) {
    return new Promise((resolve, reject) => {
      const l = (msg) => {
        if (msg.method === method && msg.sessionId === sessionId && pred(msg.params)) {
          this.listeners.delete(l);
          clearTimeout(timer);
          resolve(msg.params);
        }
      };
      const timer = setTimeout(() => {
        this.listeners.delete(l);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${method}`));
      }, timeoutMs);
      this.listeners.add(l);
    });
  }

  close() {
    try {
      this.ws.close();
    } catch {
      /* already closed */
    }
  }
}

class Browser {
  constructor(proc, profile, conn) {
    this.proc = proc;
    this.profile = profile;
    this.conn = conn;
  }

  async newPage() {
    const { targetId } = await this.conn.send('Target.createTarget', { url: 'about:blank' });
    const { sessionId } = await this.conn.send('Target.attachToTarget', { targetId, flatten: true });
    const page = new Page(this.conn, sessionId);
    await page.init();
    return page;
  }

  async close() {
    try {
      await this.conn.send('Browser.close', {}, undefined, 5000);
    } catch {
      /* it may already be gone */
    }
    this.conn.close();
    await stopProcess(this.proc, 5000);
    // Chromium's helper processes may still be writing the profile for a moment.
    await fsp.rm(this.profile, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
  }
}

class Page {
  constructor(conn, sessionId) {
    this.conn = conn;
    this.sessionId = sessionId;
    // Every request the page made: {url, method, postData, type}.
    this.requests = [];
    conn.listeners.add((msg) => {
      if (msg.sessionId !== sessionId) return;
      if (msg.method === 'Network.requestWillBeSent') {
        const r = msg.params.request;
        this.requests.push({ url: r.url, method: r.method, postData: r.postData ?? '', type: msg.params.type, headers: r.headers });
      }
    });
  }

  send(method, params, timeoutMs) {
    return this.conn.send(method, params, this.sessionId, timeoutMs);
  }

  async init() {
    await this.send('Page.enable');
    await this.send('Runtime.enable');
    await this.send('Network.enable', { maxPostDataSize: 65536 });
  }

  // Loads `url` and waits for its load event.
  async goto(url) {
    const loaded = this.conn.waitFor('Page.loadEventFired', this.sessionId);
    const r = await this.send('Page.navigate', { url });
    if (r.errorText) throw new Error(`navigation to ${url} failed: ${r.errorText}`);
    await loaded;
  }

  // Runs `expression` in the page and returns its value (awaiting promises).
  async eval(expression) {
    const r = await this.send('Runtime.evaluate', { expression, returnByValue: true, awaitPromise: true });
    if (r.exceptionDetails) throw new Error(`page script failed: ${r.exceptionDetails.exception?.description ?? r.exceptionDetails.text}`);
    return r.result.value;
  }

  // Focuses the element with `id` and types `text` into it, as a user would.
  async type(id, text) {
    const ok = await this.eval(`(() => { const el = document.getElementById(${JSON.stringify(id)}); if (!el) return false; el.focus(); el.value = ''; return true; })()`);
    if (!ok) throw new Error(`no element #${id} on the page`);
    await this.send('Input.insertText', { text });
  }

  // Clicks the element with `id` with real mouse events, and waits for the next page load.
  async clickAndWaitForLoad(id, timeoutMs = 30000) {
    const box = await this.eval(`(() => { const el = document.getElementById(${JSON.stringify(id)}); if (!el) return null; el.scrollIntoView(); const r = el.getBoundingClientRect(); return {x: r.x + r.width / 2, y: r.y + r.height / 2}; })()`);
    if (!box) throw new Error(`no element #${id} on the page`);
    const loaded = this.conn.waitFor('Page.loadEventFired', this.sessionId, () => true, timeoutMs);
    for (const type of ['mousePressed', 'mouseReleased'])
      await this.send('Input.dispatchMouseEvent', { type, x: box.x, y: box.y, button: 'left', clickCount: 1 });
    await loaded;
  }

  text(id) {
    return this.eval(`(() => { const el = document.getElementById(${JSON.stringify(id)}); return el ? el.textContent : null; })()`);
  }

  html() {
    return this.eval('document.documentElement.outerHTML');
  }
}
