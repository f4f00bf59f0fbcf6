// The signup page and a URL's dashboard in a real headless Chromium (Debian's
// `chromium`, driven over the DevTools protocol by ./browser.mjs): paste a
// database URL and token, submit, read the URL off the page and use it with
// the official MCP client; a bad key shows its error on the page; every
// request the page makes goes to our server only; the dashboard shows what
// the URL reaches and its activity; rotate and revoke take effect at once;
// CSRF-less POSTs are refused.

import assert from 'node:assert/strict';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { launchBrowser } from './browser.mjs';
import {
  closeClient,
  connectClient,
  freePort,
  listUsers,
  makeTempDir,
  missingPrerequisite,
  rawInitialize,
  rawPost,
  startEmulator,
  startServer,
  stopAll,
  stopProcess,
} from './harness.mjs';

const GOOD = 'web-signup-database-token-3c9e1f07a2';
const BAD = 'never-accepted-signup-token-77d2a9';
const URL_RE = /^http:\/\/127\.0\.0\.1:(\d+)\/u\/([A-Za-z0-9_-]{43})\/mcp$/;

function sqlRows(result) {
  assert.notEqual(result.isError, true, `tool failed: ${JSON.stringify(result.content)}`);
  return result.structuredContent.rows;
}

describe('signup page and dashboard in a real browser', () => {
  let dir;
  let dataDir;
  let emu;
  let server;
  let base;
  let activityBeforeRotation = 0;
  let browser;
  let page;
  const clients = [];
  let signedUp; // {url, token}
  let rotated; // {url, token}

  async function client(url) {
    const c = await connectClient(url);
    clients.push(c);
    return c;
  }

  // Every request the page made went to our server (the URL token sits in
  // the dashboard's own path, so it only ever reaches us), no typed secret
  // travelled in a URL or header, the typed token only in the POST body to
  // /signup, and no Referer carried a /u/ path anywhere.
  function assertOnlyOurServer(typedSecrets) {
    assert.ok(page.requests.length > 0, 'the page made requests');
    for (const r of page.requests) {
      const ok = r.url.startsWith(`${base}/`) || r.url === 'about:blank';
      assert.ok(ok, `the page sent a request elsewhere: ${r.method} ${r.url}`);
      for (const s of typedSecrets) {
        assert.ok(!r.url.includes(s), `a secret travelled in a URL: ${r.method} ${r.url.replace(s, '***')}`);
        assert.ok(!JSON.stringify(r.headers ?? {}).includes(s), `a secret travelled in a header of ${r.url}`);
        if (r.postData.includes(s)) assert.equal(new URL(r.url).pathname, '/signup', `a secret was posted to ${r.url}`);
      }
      const referer = Object.entries(r.headers ?? {}).find(([k]) => k.toLowerCase() === 'referer')?.[1];
      assert.ok(!referer, `a Referer was sent to ${r.url}: ${referer}`);
    }
  }

  before(async () => {
    const missing = missingPrerequisite({ tursodb: false });
    if (missing) throw new Error(missing);
    dir = await makeTempDir('tm-web-');
    dataDir = path.join(dir, 'data');
    await fsp.mkdir(dataDir, { mode: 0o700 });
    emu = await startEmulator({ dbFile: path.join(dir, 'emu.db'), rw: [GOOD] });
    server = await startServer({ dataDir, extraArgs: ['--signup-allowed-db-hosts', '127.0.0.1'] });
    base = server.base;
    browser = await launchBrowser();
    page = await browser.newPage();
  });

  after(async () => {
    for (const c of clients) await closeClient(c);
    if (browser) await browser.close();
    await stopProcess(server?.proc);
    await stopProcess(emu?.proc);
    await stopAll();
    if (dir) await fsp.rm(dir, { recursive: true, force: true });
  });

  test('the signup page is served with strict security headers and a SameSite=Strict CSRF cookie', async () => {
    const r = await fetch(`${base}/`, { signal: AbortSignal.timeout(5000) });
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type'), /^text\/html/);
    const csp = r.headers.get('content-security-policy');
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /script-src 'self'/);
    assert.match(csp, /frame-ancestors 'none'/);
    assert.doesNotMatch(csp, /unsafe-inline/);
    assert.equal(r.headers.get('x-frame-options'), 'DENY');
    assert.equal(r.headers.get('referrer-policy'), 'no-referrer');
    assert.equal(r.headers.get('cache-control'), 'no-store');
    const cookie = r.headers.get('set-cookie');
    assert.match(cookie, /^tm_csrf=[A-Za-z0-9_-]{22};/);
    assert.match(cookie, /HttpOnly/);
    assert.match(cookie, /SameSite=Strict/);
    const html = await r.text();
    assert.match(html, /name="csrf" value="[A-Za-z0-9_-]{43}"/);
    assert.doesNotMatch(html, /<script>/, 'no inline script');
    const js = await fetch(`${base}/assets/app.js`, { signal: AbortSignal.timeout(5000) });
    assert.equal(js.status, 200);
    assert.match(js.headers.get('content-type'), /javascript/);
  });

  test('sign up in Chromium: paste, submit, read the URL off the page, use it with the MCP client', async () => {
    page.requests.length = 0;
    await page.goto(`${base}/`);
    await page.type('db_url', emu.url);
    await page.type('db_token', GOOD);
    await page.type('label', 'browser-signup');
    await page.type('default_db', 'main-db');
    await page.clickAndWaitForLoad('submit');

    assert.equal(await page.text('error'), null, `the page shows an error: ${await page.text('error')}`);
    const url = (await page.text('mcp-url'))?.trim();
    const m = URL_RE.exec(url ?? '');
    assert.ok(m, `the page shows the URL: ${url}`);
    assert.equal(Number(m[1]), server.port, 'the URL points at the server the page came from');
    signedUp = { url, token: m[2] };

    // Ready-to-paste setup for each client carries the same URL.
    const claude = JSON.parse(await page.text('snip-claude-desktop'));
    assert.deepEqual(claude.mcpServers.turso.args, ['-y', 'mcp-remote', url]);
    const cursor = JSON.parse(await page.text('snip-cursor'));
    assert.equal(cursor.mcpServers.turso.url, url);
    assert.equal((await page.text('snip-connector')).trim(), url);
    const curl = await page.text('snip-curl');
    assert.match(curl, /^curl /);
    assert.ok(curl.includes(url));
    assert.equal(await page.eval('document.querySelectorAll("button.copy").length'), 5);

    // The official MCP client, with the URL as read off the page.
    const c = await client(url);
    const tools = await c.listTools();
    assert.ok(tools.tools.some((t) => t.name === 'turso_query'));
    const rows = sqlRows(await c.callTool({ name: 'turso_query', arguments: { sql: 'SELECT 1 AS one' } }));
    assert.deepEqual(rows, [[1]]);

    // The curl line works as printed (its initialize, sent the same way).
    const init = await rawInitialize(url);
    assert.ok(init.version);

    assertOnlyOurServer([GOOD]);
    const posts = page.requests.filter((r) => r.method === 'POST');
    assert.equal(posts.length, 1);
    assert.ok(posts[0].postData.includes('csrf='), 'the form carries its CSRF token');

    const list = await listUsers(dataDir);
    assert.ok(list.users.some((u) => u.line.includes('browser-signup')), list.stdout);
  });

  test('a bad key shows the error on the page, keeps what is not secret, and stores nothing', async () => {
    const before = (await listUsers(dataDir)).users.length;
    page.requests.length = 0;
    await page.goto(`${base}/`);
    await page.type('db_url', emu.url);
    await page.type('db_token', BAD);
    await page.type('label', 'browser-bad-key');
    await page.clickAndWaitForLoad('submit');

    const error = await page.text('error');
    assert.ok(error, 'an error is shown');
    assert.match(error, /did not accept|rejected|401/i, error);
    assert.equal(await page.text('mcp-url'), null, 'no URL is shown');
    assert.equal(await page.eval('document.getElementById("db_token").value'), '', 'the token is not echoed');
    assert.equal(await page.eval('document.getElementById("label").value'), 'browser-bad-key');
    assert.equal(await page.eval('document.getElementById("db_url").value'), emu.url);
    assert.ok(!(await page.html()).includes(BAD), 'the bad token appears nowhere in the page');
    assertOnlyOurServer([BAD]);
    assert.equal((await listUsers(dataDir)).users.length, before);
  });

  test('Turso unreachable and a host the server does not serve get their own errors', async () => {
    const closed = await freePort();
    await page.goto(`${base}/`);
    await page.type('db_url', `http://127.0.0.1:${closed}`);
    await page.type('db_token', GOOD);
    await page.type('label', 'browser-unreachable');
    await page.clickAndWaitForLoad('submit');
    assert.match(await page.text('error'), /could not be reached/i);

    await page.goto(`${base}/`);
    await page.type('db_url', 'https://db.example.com');
    await page.type('db_token', GOOD);
    await page.type('label', 'browser-elsewhere');
    await page.clickAndWaitForLoad('submit');
    assert.match(await page.text('error'), /does not connect to databases on that host/i);

    await page.goto(`${base}/`);
    await page.type('label', 'browser-nothing');
    await page.clickAndWaitForLoad('submit');
    assert.match(await page.text('error'), /database URL and its token, or a Platform API token/i);
  });

  test('the server log never holds the typed token or the URL token', async () => {
    const log = server.proc.stderr + server.proc.stdout;
    for (const s of [GOOD, BAD, signedUp.token]) assert.ok(!log.includes(s), 'a secret reached the log');
    assert.match(log, /"event":"signup_added"/);
  });

  test('CSRF: POSTs without the form token, or without the cookie, are 403 and change nothing', async () => {
    const form = (fields) => new URLSearchParams(fields).toString();
    const fields = { label: 'csrf-less', db_url: emu.url, db_token: GOOD };
    const headers = { 'content-type': 'application/x-www-form-urlencoded' };

    let r = await fetch(`${base}/signup`, { method: 'POST', headers, body: form(fields), signal: AbortSignal.timeout(5000) });
    assert.equal(r.status, 403);
    assert.ok(!(await r.text()).includes(GOOD));

    // A real token, without the cookie it belongs to.
    const get = await fetch(`${base}/`, { signal: AbortSignal.timeout(5000) });
    const csrf = /name="csrf" value="([^"]+)"/.exec(await get.text())[1];
    r = await fetch(`${base}/signup`, { method: 'POST', headers, body: form({ ...fields, csrf }), signal: AbortSignal.timeout(5000) });
    assert.equal(r.status, 403);
    // With the cookie but another token.
    const cookie = get.headers.get('set-cookie').split(';')[0];
    r = await fetch(`${base}/signup`, {
      method: 'POST',
      headers: { ...headers, cookie },
      body: form({ ...fields, csrf: 'A'.repeat(43) }),
      signal: AbortSignal.timeout(5000),
    });
    assert.equal(r.status, 403);
    // With both, but from another site's page.
    r = await fetch(`${base}/signup`, {
      method: 'POST',
      headers: { ...headers, cookie, 'sec-fetch-site': 'cross-site' },
      body: form({ ...fields, csrf }),
      signal: AbortSignal.timeout(5000),
    });
    assert.equal(r.status, 403);
    // A foreign Origin is refused before any of that.
    r = await fetch(`${base}/signup`, {
      method: 'POST',
      headers: { ...headers, cookie, origin: 'https://evil.example' },
      body: form({ ...fields, csrf }),
      signal: AbortSignal.timeout(5000),
    });
    assert.equal(r.status, 403);
    // JSON bodies are not taken at all.
    r = await fetch(`${base}/signup`, { method: 'POST', headers: { 'content-type': 'application/json', cookie }, body: JSON.stringify({ ...fields, csrf }), signal: AbortSignal.timeout(5000) });
    assert.equal(r.status, 415);

    // The dashboard's buttons: no token, no rotation.
    r = await fetch(`${base}/u/${signedUp.token}/rotate`, { method: 'POST', headers: { ...headers, cookie }, body: '', signal: AbortSignal.timeout(5000) });
    assert.equal(r.status, 403);
    r = await fetch(`${base}/u/${signedUp.token}/revoke`, { method: 'POST', headers: { ...headers, cookie }, body: form({ csrf: 'x' }), signal: AbortSignal.timeout(5000) });
    assert.equal(r.status, 403);
    assert.ok(!(await listUsers(dataDir)).users.some((u) => u.line.includes('csrf-less')));
    const init = await rawInitialize(signedUp.url);
    assert.ok(init.version, 'the URL still works');
  });

  test('the dashboard shows what the URL reaches and its activity, never a token or SQL', async () => {
    const dash = `${base}/u/${signedUp.token}/`;
    const r = await fetch(dash, { signal: AbortSignal.timeout(5000) });
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('referrer-policy'), 'no-referrer');
    assert.equal(r.headers.get('x-frame-options'), 'DENY');
    assert.match(r.headers.get('content-security-policy'), /frame-ancestors 'none'/);

    page.requests.length = 0;
    await page.goto(dash);
    let html = await page.html();
    assert.match(html, /browser-signup/);
    assert.ok(html.includes(`127.0.0.1:${emu.port}`), 'the database host is shown');
    assert.match(html, /main-db/);
    assert.match(html, /read-write/);
    assert.ok(!html.includes(GOOD), 'no database token on the dashboard');
    const id = /<th scope="row">Id<\/th><td>([0-9a-f]{16})<\/td>/.exec(html)?.[1];
    assert.ok(id, 'the public id is shown');

    // Activity as the tool-call hook records it: the newest first, names and outcomes only.
    const c = await client(signedUp.url);
    assert.deepEqual(sqlRows(await c.callTool({ name: 'turso_query', arguments: { sql: 'SELECT 1' } })), [[1]]);
    const failed = await c.callTool({ name: 'turso_query', arguments: { sql: 'SELEC broken' } });
    assert.equal(failed.isError, true);
    await page.goto(dash);
    const rows = await page.eval('[...document.querySelectorAll("#activity tbody tr")].map(tr => [...tr.cells].map(td => td.textContent))');
    assert.ok(rows.length >= 2, `activity rows: ${rows.length}`);
    assert.deepEqual(rows[0].slice(1), ['turso_query', 'main-db', 'error']);
    assert.deepEqual(rows[1].slice(1), ['turso_query', 'main-db', 'ok']);
    activityBeforeRotation = rows.length;
    assert.match(rows[0][0], /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$/);
    html = await page.html();
    assert.ok(!html.includes('SELECT 1'), 'no SQL on the dashboard');
    assertOnlyOurServer([GOOD]);
  });

  test('rotate in the browser gives a new working URL, and the old one is 404 at once', async () => {
    const old = signedUp;
    const oldClient = await client(old.url);
    await page.goto(`${base}/u/${old.token}/`);
    await page.clickAndWaitForLoad('rotate');
    assert.ok(await page.text('rotated'), 'the page says it rotated');
    const url = (await page.text('mcp-url'))?.trim();
    const m = URL_RE.exec(url ?? '');
    assert.ok(m, `the page shows the new URL: ${url}`);
    assert.notEqual(m[2], old.token);
    rotated = { url, token: m[2] };

    // Old URL: the MCP endpoint and the dashboard are gone, even for a connected client.
    const r = await rawPost(old.url, { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 't', version: '0' } } });
    assert.equal(r.status, 404);
    assert.equal((await fetch(`${base}/u/${old.token}/`, { signal: AbortSignal.timeout(5000) })).status, 404);
    await assert.rejects(oldClient.callTool({ name: 'turso_query', arguments: { sql: 'SELECT 1' } }));

    // New URL: same credentials, same label and activity.
    const c = await client(rotated.url);
    assert.deepEqual(sqlRows(await c.callTool({ name: 'turso_query', arguments: { sql: 'SELECT 2' } })), [[2]]);
    await page.goto(`${base}/u/${rotated.token}/`);
    assert.match(await page.html(), /browser-signup/);
    // The history carries over to the new URL (plus the call just made with it).
    assert.equal(await page.eval('document.querySelectorAll("#activity tbody tr").length'), activityBeforeRotation + 1);
    assertOnlyOurServer([GOOD]);
  });

  test('revoke in the browser: the URL is gone at once', async () => {
    const before = (await listUsers(dataDir)).users.length;
    await page.goto(`${base}/u/${rotated.token}/`);
    await page.clickAndWaitForLoad('revoke');
    assert.ok(await page.text('revoked'), 'the page says it revoked');
    const r = await rawPost(rotated.url, { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 't', version: '0' } } });
    assert.equal(r.status, 404);
    assert.equal((await fetch(`${base}/u/${rotated.token}/`, { signal: AbortSignal.timeout(5000) })).status, 404);
    assert.equal((await listUsers(dataDir)).users.length, before - 1);
  });
});

describe('signup turned off', () => {
  let dir;
  let server;

  before(async () => {
    const missing = missingPrerequisite({ tursodb: false });
    if (missing) throw new Error(missing);
    dir = await makeTempDir('tm-web-off-');
    const dataDir = path.join(dir, 'data');
    await fsp.mkdir(dataDir, { mode: 0o700 });
    server = await startServer({ dataDir, extraArgs: ['--signup-enabled', 'false'] });
  });

  after(async () => {
    await stopProcess(server?.proc);
    if (dir) await fsp.rm(dir, { recursive: true, force: true });
  });

  test('GET / and POST /signup are 404; the MCP endpoint is unaffected', async () => {
    assert.equal((await fetch(`${server.base}/`, { signal: AbortSignal.timeout(5000) })).status, 404);
    const r = await fetch(`${server.base}/signup`, { method: 'POST', body: 'a=b', headers: { 'content-type': 'application/x-www-form-urlencoded' }, signal: AbortSignal.timeout(5000) });
    assert.equal(r.status, 404);
    assert.equal((await fetch(`${server.base}/healthz`, { signal: AbortSignal.timeout(5000) })).status, 200);
  });
});

describe('a full store', () => {
  let dir;
  let dataDir;
  let emu;
  let server;

  before(async () => {
    const missing = missingPrerequisite({ tursodb: false });
    if (missing) throw new Error(missing);
    dir = await makeTempDir('tm-web-full-');
    dataDir = path.join(dir, 'data');
    await fsp.mkdir(dataDir, { mode: 0o700 });
    emu = await startEmulator({ dbFile: path.join(dir, 'emu.db'), rw: [GOOD] });
    server = await startServer({ dataDir, extraArgs: ['--signup-allowed-db-hosts', '127.0.0.1', '--max-users', '1'] });
  });

  after(async () => {
    await stopProcess(server?.proc);
    await stopProcess(emu?.proc);
    if (dir) await fsp.rm(dir, { recursive: true, force: true });
  });

  test('the signup page says the store is full, and nothing more is stored', async () => {
    const signup = async (label) => {
      const get = await fetch(`${server.base}/`, { signal: AbortSignal.timeout(5000) });
      const csrf = /name="csrf" value="([^"]+)"/.exec(await get.text())[1];
      const cookie = get.headers.get('set-cookie').split(';')[0];
      const r = await fetch(`${server.base}/signup`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', cookie, 'sec-fetch-site': 'same-origin' },
        body: new URLSearchParams({ csrf, label, db_url: emu.url, db_token: GOOD }).toString(),
        signal: AbortSignal.timeout(15000),
      });
      return { status: r.status, html: await r.text() };
    };
    const first = await signup('first');
    assert.equal(first.status, 200);
    assert.match(first.html, /id="mcp-url">http:\/\/127\.0\.0\.1:\d+\/u\/[A-Za-z0-9_-]{43}\/mcp</);
    const second = await signup('second');
    assert.equal(second.status, 503);
    assert.match(second.html, /store is full/);
    assert.doesNotMatch(second.html, /mcp-url/);
    assert.equal((await listUsers(dataDir)).users.length, 1);
  });
});
