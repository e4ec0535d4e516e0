// Process lifecycle: migrations, a PostgreSQL restart, SIGTERM draining,
// the embedded cluster, configuration errors and CLI exit codes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { startCluster, startServer, gatehouse, gatehouseBin, Client, createUser, sleep } from '../harness/index.mjs';

test('migrations are idempotent: a second run applies nothing and keeps the data', async () => {
  const cluster = await startCluster();
  try {
    const env = { ...process.env, GATEHOUSE_DATABASE_URL: cluster.url, GATEHOUSE_DATA_DIR: fs.mkdtempSync(path.join(os.tmpdir(), 'gh-m-')) };
    const first = gatehouse(env, ['migrate']);
    assert.equal(first.code, 0, first.stderr);
    const n = Number(first.stdout.match(/(\d+) migration\(s\) applied/)[1]);
    assert.ok(n >= 1);
    const u = createUser({ env }, {});
    const second = gatehouse(env, ['migrate']);
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stdout, /^0 migration\(s\) applied/);
    // two concurrent runs do not trip over each other (advisory lock)
    const both = await Promise.all([1, 2].map(() => new Promise((resolve) => {
      const r = spawnSync(gatehouseBin, ['migrate'], { env, encoding: 'utf8' });
      resolve(r.status);
    })));
    assert.deepEqual(both, [0, 0]);
    const list = gatehouse(env, ['user', 'list']);
    assert.match(list.stdout, new RegExp(u.email.replace(/[.]/g, '\\.')));
  } finally {
    await cluster.stop();
  }
});

test('a PostgreSQL restart is survived without restarting Gatehouse (503 + Retry-After meanwhile)', async () => {
  const cluster = await startCluster();
  const srv = await startServer({ cluster, name: 'pg-restart' });
  try {
    const u = createUser(srv, {});
    const c = new Client(srv.url);
    assert.equal((await c.login(u.email, u.password)).status, 303);
    cluster.stopServer('fast');
    const down = await fetch(`${srv.url}/readyz`);
    assert.equal(down.status, 503);
    assert.ok(Number(down.headers.get('retry-after')) > 0);
    const page = await c.get('/profile');
    assert.equal(page.status, 503);
    assert.ok(Number(page.headers.get('retry-after')) > 0);
    assert.equal((await fetch(`${srv.url}/healthz`)).status, 200, 'the process itself is up');
    cluster.start();
    assert.equal((await fetch(`${srv.url}/readyz`)).status, 200);
    assert.equal((await c.get('/profile')).status, 200, 'the same session works after the restart');
    assert.equal(srv.proc.exitCode, null, 'never restarted');
  } finally {
    assert.equal(await srv.stop(), 0);
    await cluster.stop();
  }
});

test('SIGTERM lets in-flight requests finish, then exits 0', async () => {
  const srv = await startServer({ name: 'drain' });
  const u = createUser(srv, {});
  const c = new Client(srv.url);
  await c.get('/login');
  // argon2 verification keeps each of these busy for a while
  const inflight = Array.from({ length: 6 }, () =>
    c.post('/login', { email: u.email, password: u.password, csrf: c.csrf }).then((r) => r.status, (e) => `error: ${e.cause?.code ?? e.message}`));
  await sleep(30);
  const code = await srv.stop('SIGTERM');
  const statuses = await Promise.all(inflight);
  assert.equal(code, 0);
  for (const s of statuses) assert.ok(s === 303 || s === 429, `in-flight request got ${s}`);
  assert.ok(statuses.includes(303));
  assert.match(fs.readFileSync(srv.logFile, 'utf8'), /"event":"shutdown"/);
});

test('the embedded default runs its own cluster as an unprivileged user and stops it on SIGTERM', async () => {
  const data = fs.mkdtempSync(path.join(os.tmpdir(), 'gh-embedded-'));
  const env = { GATEHOUSE_DATABASE_URL: '', GATEHOUSE_DATA_DIR: data };
  const cluster = { url: '', stop: async () => {} };
  const srv = await startServer({ cluster, env, name: 'embedded' });
  try {
    const pid = fs.readFileSync(path.join(data, 'pg', 'postmaster.pid'), 'utf8').split('\n')[0];
    assert.match(pid, /^\d+$/);
    const owner = fs.statSync(path.join(data, 'pg')).uid;
    if (process.getuid() === 0) assert.notEqual(owner, 0, 'the cluster does not run as root');
    const sock = fs.readdirSync(path.join(data, 'run')).find((f) => f.startsWith('.s.PGSQL'));
    assert.ok(sock, 'listens on a unix socket inside the data folder');
    assert.match(srv.stdout, /\/setup\?token=[0-9a-f]{48}/);
    const conf = fs.readFileSync(path.join(data, 'pg', 'postgresql.auto.conf'), 'utf8') +
      fs.readFileSync(path.join(data, 'pg', 'postmaster.opts'), 'utf8');
    assert.match(conf, /"listen_addresses="/);
    assert.equal(await srv.stopProcess('SIGTERM'), 0);
    assert.equal(fs.existsSync(path.join(data, 'pg', 'postmaster.pid')), false, 'the cluster stopped');
    let alive = true;
    try { process.kill(Number(pid), 0); } catch { alive = false; }
    let state = 'gone';   // a zombie awaiting a reaper counts as stopped
    try { if (alive) state = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(' ')[2]; } catch { /* reaped */ }
    assert.ok(state === 'gone' || state === 'Z', `postgres still running (${state})`);
  } finally {
    await srv.stop();
    fs.rmSync(data, { recursive: true, force: true });
  }
});

test('a bad setting stops the start with a message naming the key', () => {
  const base = { ...process.env, GATEHOUSE_DATABASE_URL: 'postgresql:///x?host=/nonexistent' };
  const cases = [
    [{ GATEHOUSE_LISTEN: 'nowhere' }, 'GATEHOUSE_LISTEN'],
    [{ GATEHOUSE_PUBLIC_URL: 'ftp://x' }, 'GATEHOUSE_PUBLIC_URL'],
    [{ GATEHOUSE_LOG_LEVEL: 'loud' }, 'GATEHOUSE_LOG_LEVEL'],
    [{ GATEHOUSE_DB_POOL_SIZE: '-3' }, 'GATEHOUSE_DB_POOL_SIZE'],
  ];
  for (const [env, key] of cases) {
    const r = spawnSync(gatehouseBin, ['serve'], { env: { ...base, ...env }, encoding: 'utf8', timeout: 10000 });
    assert.equal(r.status, 1, `${key}: ${r.stderr}`);
    assert.match(r.stderr, new RegExp(key));
    assert.equal(r.stderr.trim().split('\n').length, 1, 'one line');
  }
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'gh-cfg-')), 'gatehouse.conf');
  fs.writeFileSync(file, 'listen = 127.0.0.1:0\nlog_level = shouting\n');
  const r = spawnSync(gatehouseBin, ['--config', file, 'serve'], { env: base, encoding: 'utf8', timeout: 10000 });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /gatehouse.conf:2: log_level/);
});

test('CLI: --help everywhere, exit 2 on usage errors, 1 with one line on failure', () => {
  const run = (args, input) => spawnSync(gatehouseBin, args, { encoding: 'utf8', input, env: { ...process.env, GATEHOUSE_DATABASE_URL: 'postgresql:///x?host=/nonexistent&connect_timeout=2' } });
  for (const args of [['--help'], ['serve', '--help'], ['migrate', '--help'], ['user', '--help'], ['user', 'add', '--help']]) {
    const r = run(args);
    assert.equal(r.status, 0, args.join(' '));
    assert.match(r.stdout, /Usage: gatehouse/);
  }
  assert.match(run(['--help']).stdout, /GATEHOUSE_LISTEN/);
  assert.equal(run(['frobnicate']).status, 2);
  assert.equal(run([]).status, 2);
  assert.equal(run(['user', 'add']).status, 2, 'missing --email');
  assert.equal(run(['user', 'add', '--email']).status, 2);
  const fail = run(['user', 'list']);
  assert.equal(fail.status, 1);
  assert.equal(fail.stderr.trim().split('\n').filter((l) => !l.startsWith('{')).length, 1);
});
