// The Docker files, checked without a Docker engine so that they cannot drift
// from what CI proves: the image's build stage runs scripts/install-deps.sh
// and the very CMake commands of run.sh (which test.sh runs too), the runtime
// stage installs a package for every library the binary links, runs as a
// user other than root with a health check, and compose.yaml wires the
// master key secret, the store volume and Caddy as the README describes.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { repoRoot, runCommand, serverBin } from './harness.mjs';

const read = (p) => fs.readFileSync(path.join(repoRoot, p), 'utf8');

// Dockerfile instructions as {op, args, stage}, continuation lines joined, comments dropped.
function dockerfile(text) {
  const out = [];
  let stage = -1;
  let pending = '';
  for (const raw of text.split('\n')) {
    if (/^\s*#/.test(raw)) continue;
    const line = raw.replace(/\s+$/, '');
    if (line.endsWith('\\')) {
      pending += `${line.slice(0, -1)} `;
      continue;
    }
    const full = (pending + line).trim();
    pending = '';
    if (!full) continue;
    const m = /^([A-Za-z]+)\s+(.*)$/.exec(full);
    assert.ok(m, `not an instruction: ${full}`);
    const op = m[1].toUpperCase();
    if (op === 'FROM') stage++;
    out.push({ op, args: m[2].replace(/\s+/g, ' '), stage });
  }
  return out;
}

// The shell commands of a RUN, split at &&.
const commands = (run) => run.split('&&').map((c) => c.trim());

// A script's commands that start with `word`, without output redirections.
function scriptCommands(file, word) {
  return read(file)
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.startsWith(`${word} `) || l === word)
    .map((l) => l.replace(/\s*>\/dev\/null\s*$/, '').replace(/\s+/g, ' '));
}

// The lines of a top-level (indent 0) or service (indent 2) YAML block.
function block(text, key, indent = 0) {
  const lines = text.split('\n');
  const pad = ' '.repeat(indent);
  const start = lines.findIndex((l) => l === `${pad}${key}:`);
  assert.ok(start >= 0, `no block ${key}`);
  const out = [];
  for (const l of lines.slice(start + 1)) {
    if (l.trim() && !l.startsWith(`${pad} `) && !l.trimStart().startsWith('#')) break;
    out.push(l);
  }
  return out.join('\n');
}

describe('docker/', () => {
  const instr = dockerfile(read('docker/Dockerfile'));
  const froms = instr.filter((i) => i.op === 'FROM');
  const build = instr.filter((i) => i.stage === 0);
  const runtime = instr.filter((i) => i.stage === froms.length - 1);

  test('two stages on Debian 12 slim', () => {
    assert.equal(froms.length, 2);
    assert.match(froms[0].args, /^debian:12-slim AS build$/i);
    assert.equal(froms[1].args, 'debian:12-slim');
  });

  test('the build stage runs install-deps.sh and the CMake commands of run.sh, which test.sh runs too', () => {
    const runs = build.filter((i) => i.op === 'RUN').flatMap((i) => commands(i.args));
    const deps = scriptCommands('run.sh', 'scripts/install-deps.sh');
    assert.deepEqual(deps, ['scripts/install-deps.sh']);
    assert.ok(runs.includes(deps[0]), `RUN ${deps[0]} in ${JSON.stringify(runs)}`);
    // The script is copied before it runs; the rest of the tree before the build.
    const copyScript = build.findIndex((i) => i.op === 'COPY' && i.args.includes('scripts/install-deps.sh'));
    const runDeps = build.findIndex((i) => i.op === 'RUN' && commands(i.args).includes(deps[0]));
    assert.ok(copyScript >= 0 && copyScript < runDeps);

    const cmake = scriptCommands('run.sh', 'cmake');
    assert.deepEqual(cmake, ['cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo', 'cmake --build build -j"$(nproc)"']);
    const at = cmake.map((c) => runs.indexOf(c));
    assert.ok(at.every((i) => i >= 0), `the Dockerfile runs ${JSON.stringify(cmake)}; it runs ${JSON.stringify(runs)}`);
    assert.ok(at[0] < at[1]);
    assert.ok(runs.indexOf(deps[0]) < at[0]);

    // CI (./test.sh, through .ci/run) installs with the same script and builds the same way.
    const ci = read('.ci/run');
    assert.match(ci, /exec \.\/test\.sh/);
    const testDeps = scriptCommands('test.sh', 'scripts/install-deps.sh');
    assert.deepEqual(testDeps, ['scripts/install-deps.sh --with-test-tools']);
    const testCmake = scriptCommands('test.sh', 'cmake');
    assert.ok(testCmake.includes(cmake[0]), `test.sh configures with ${cmake[0]}`);
    assert.ok(testCmake.includes('cmake --build build -j"$jobs"'));
    assert.match(read('test.sh'), /^jobs=\$\(nproc\)$/m);
  });

  test('the runtime stage: the binary, its libraries, a user other than root, a health check', () => {
    const copy = runtime.find((i) => i.op === 'COPY' && i.args.startsWith('--from=build'));
    assert.equal(copy?.args, '--from=build /src/build/turso-mcp /usr/local/bin/turso-mcp');
    const user = runtime.filter((i) => i.op === 'USER').at(-1);
    assert.ok(user, 'a USER');
    const [uid, gid] = user.args.split(':');
    assert.ok(!['root', '0'].includes(uid) && !['root', '0'].includes(gid ?? uid), `USER ${user.args}`);
    // The user exists with that uid, and owns the data directory.
    const setup = runtime.filter((i) => i.op === 'RUN').map((i) => i.args).join(' && ');
    assert.match(setup, new RegExp(`useradd .*--uid ${uid}\\b`));
    assert.match(setup, new RegExp(`install -d -m 0700 -o ${uid} -g ${gid ?? uid} /data`));

    const health = runtime.find((i) => i.op === 'HEALTHCHECK');
    assert.ok(health, 'a HEALTHCHECK');
    assert.match(health.args, /CMD \["turso-mcp", "healthcheck"\]$/);
    assert.deepEqual(
      runtime.filter((i) => ['EXPOSE', 'VOLUME', 'ENTRYPOINT', 'CMD'].includes(i.op)).map((i) => `${i.op} ${i.args}`),
      ['VOLUME /data', 'EXPOSE 8787', 'ENTRYPOINT ["turso-mcp"]', 'CMD ["serve"]'],
    );
    const env = runtime.find((i) => i.op === 'ENV')?.args ?? '';
    assert.match(env, /TURSO_MCP_LISTEN=0\.0\.0\.0:8787/);
    assert.match(env, /TURSO_MCP_DATA_DIR=\/data/);
  });

  test('the runtime stage installs a package for every library the binary links', () => {
    const release = path.join(repoRoot, 'build', 'turso-mcp');
    const bin = fs.existsSync(release) ? release : serverBin();
    const needed = execFileSync('readelf', ['-d', bin], { encoding: 'utf8' })
      .split('\n')
      .map((l) => /\(NEEDED\).*\[(.+)\]/.exec(l)?.[1])
      .filter(Boolean);
    assert.ok(needed.length > 0);
    const packages = new Set();
    for (const lib of needed) {
      // The owner of the copy for this machine's architecture: with multilib
      // installed, lib32 copies (libc6-i386) match the same name.
      const arch = execFileSync('gcc', ['-dumpmachine'], { encoding: 'utf8' }).trim();
      const lines = execFileSync('dpkg', ['-S', `*/${lib}`], { encoding: 'utf8' }).split('\n').filter(Boolean);
      const owner = lines.find((l) => l.includes(`/${arch}/`)) ?? lines[0];
      packages.add(owner.split(':')[0]);
    }
    // In every Debian image already, or only in sanitizer builds.
    const base = new Set(['libc6', 'libgcc-s1', 'libasan8', 'libubsan1', 'libtsan2']);
    const apt = runtime.filter((i) => i.op === 'RUN' && i.args.includes('apt-get install')).map((i) => i.args).join(' ');
    const installed = new Set(apt.split(' '));
    for (const p of packages) if (!base.has(p)) assert.ok(installed.has(p), `the runtime stage lacks ${p} (for ${[...needed].join(', ')})`);
    assert.ok(installed.has('ca-certificates'), 'ca-certificates, for HTTPS to Turso');
    assert.match(apt, /--no-install-recommends/);
    assert.match(apt, /rm -rf \/var\/lib\/apt\/lists\/\*/);
  });

  test('compose.yaml: the server with the secret and the volume, Caddy under the tls profile', () => {
    const compose = read('docker/compose.yaml');
    const services = block(compose, 'services');
    const server = block(services, 'turso-mcp', 2);
    assert.match(server, /dockerfile: docker\/Dockerfile/);
    assert.match(server, /context: \.\.\n/);
    assert.match(server, /secrets:\n\s+- turso_mcp_master_key\n/);
    assert.match(server, /TURSO_MCP_MASTER_KEY_FILE: \/run\/secrets\/turso_mcp_master_key\n/);
    assert.match(server, /volumes:\n\s+- turso-mcp-data:\/data\n/);
    assert.match(server, /- "127\.0\.0\.1:8787:8787"/);

    assert.match(block(compose, 'secrets'), /^ {2}turso_mcp_master_key:\n(?:\s*#.*\n)*\s+file: \.\/secrets\/turso_mcp_master_key$/m);
    assert.match(block(compose, 'volumes'), /^ {2}turso-mcp-data:$/m);

    const caddy = block(services, 'caddy', 2);
    assert.match(caddy, /profiles: \[tls\]/);
    assert.match(caddy, /- \.\/Caddyfile:\/etc\/caddy\/Caddyfile:ro/);
    assert.match(caddy, /condition: service_healthy/);
    const caddyfile = read('docker/Caddyfile');
    assert.match(caddyfile, /^\{\$TURSO_MCP_DOMAIN\} \{$/m);
    assert.match(caddyfile, /reverse_proxy turso-mcp:8787 \{[^}]*flush_interval -1[^}]*\}/);

    // The secret stays out of git and out of the image's build context.
    assert.match(read('.gitignore'), /^\/docker\/secrets\/$/m);
    const ignore = read('.dockerignore').split('\n');
    for (const p of ['docker/secrets/', 'data/', 'demo-data/', '.git', 'build/', '**/node_modules/']) assert.ok(ignore.includes(p), `.dockerignore has ${p}`);
  });

  test('every TURSO_MCP_ variable in docker/ is a setting the server knows', async () => {
    const text = read('docker/Dockerfile') + read('docker/compose.yaml');
    const names = [...new Set([...text.matchAll(/\b(TURSO_MCP_[A-Z_]+)\b/g)].map((m) => m[1]))];
    assert.ok(names.includes('TURSO_MCP_MASTER_KEY_FILE'));
    const notSettings = new Set(['TURSO_MCP_DOMAIN']); // Caddy's, not the server's
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('TURSO_MCP_')));
    for (const n of names) if (!notSettings.has(n)) env[n] = n === 'TURSO_MCP_LISTEN' ? '0.0.0.0:8787' : n === 'TURSO_MCP_LOG_LEVEL' ? 'info' : '/x';
    const r = await runCommand(serverBin(), ['serve', '--print-config'], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /config_unknown_env/);
    assert.match(r.stdout, /^listen = 0\.0\.0\.0:8787$/m);
    assert.match(r.stdout, /^master_key_file = \/x$/m);
  });
});
