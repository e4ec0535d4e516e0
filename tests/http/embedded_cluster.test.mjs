// The embedded cluster beside crashes and other processes: a `serve` killed
// with SIGKILL leaves its postmaster running (it is detached on purpose);
// the next `serve` on that data folder must take it over and stop it, a
// second `serve` on a data folder in use must refuse, and the CLI must use
// a running server's cluster without stopping it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { startServer, gatehouse, gatehouseBin, freePort, Client, createUser, sleep } from '../harness/index.mjs';

const noCluster = { url: '', stop: async () => {} };

function postmasterPid(data) {
  try {
    return Number(fs.readFileSync(path.join(data, 'pg', 'postmaster.pid'), 'utf8').split('\n')[0]);
  } catch {
    return null;
  }
}

function running(pid) {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {   // a zombie awaiting a reaper counts as stopped
    return fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(' ')[2] !== 'Z';
  } catch {
    return false;
  }
}

/* Whatever the binary under test left running is stopped (fast shutdown). */
async function cleanup(data) {
  const pid = postmasterPid(data);
  if (pid && running(pid)) {
    process.kill(pid, 'SIGINT');
    for (let i = 0; i < 100 && running(pid); i++) await sleep(100);
  }
  fs.rmSync(data, { recursive: true, force: true });
}

test('a serve killed with SIGKILL: the next serve adopts the orphan cluster and stops it on SIGTERM', async () => {
  const data = fs.mkdtempSync(path.join(os.tmpdir(), 'gh-orphan-'));
  const env = { GATEHOUSE_DATABASE_URL: '', GATEHOUSE_DATA_DIR: data };
  const srv = await startServer({ cluster: noCluster, env, name: 'orphan' });
  try {
    const pid = postmasterPid(data);
    assert.ok(pid > 0);
    // the CLI beside a running server uses its cluster and leaves it running
    const u = createUser(srv, {});
    assert.equal(postmasterPid(data), pid, 'the CLI did not restart the cluster');
    assert.ok(running(pid), 'the CLI did not stop the server\'s cluster');
    assert.equal((await fetch(`${srv.url}/readyz`)).status, 200);

    assert.equal(await srv.stopProcess('SIGKILL'), 'SIGKILL');
    assert.ok(running(pid), 'the postmaster outlives a killed serve');

    await srv.start();
    const c = new Client(srv.url);
    assert.equal((await c.login(u.email, u.password)).status, 303, 'the data survived');
    assert.equal(await srv.stopProcess('SIGTERM'), 0);
    for (let i = 0; i < 50 && running(pid); i++) await sleep(100);
    assert.equal(running(pid), false, 'the adopted cluster was stopped with the server');
    assert.equal(postmasterPid(data), null, 'no postmaster.pid left behind');

    // with no server, the CLI starts the cluster and stops it again
    const list = gatehouse(srv, ['user', 'list']);
    assert.equal(list.code, 0, list.stderr);
    assert.ok(list.stdout.includes(u.email));
    assert.equal(postmasterPid(data), null, 'the CLI left nothing running');
  } finally {
    await srv.stop();
    await cleanup(data);
  }
});

test('a second serve on a data folder in use refuses with one line; the first keeps its cluster', async () => {
  const data = fs.mkdtempSync(path.join(os.tmpdir(), 'gh-twice-'));
  const env = { GATEHOUSE_DATABASE_URL: '', GATEHOUSE_DATA_DIR: data };
  const srv = await startServer({ cluster: noCluster, env, name: 'twice' });
  try {
    const pid = postmasterPid(data);
    const port = await freePort();
    const second = spawnSync(gatehouseBin, ['serve'], {
      env: { ...srv.env, GATEHOUSE_LISTEN: `127.0.0.1:${port}`, GATEHOUSE_PUBLIC_URL: `http://127.0.0.1:${port}` },
      encoding: 'utf8', timeout: 30000, killSignal: 'SIGTERM',
    });
    assert.equal(second.status, 1, `the second serve: ${second.status ?? second.signal}\n${second.stderr}`);
    const lines = second.stderr.trim().split('\n').filter((l) => !l.startsWith('{'));
    assert.equal(lines.length, 1, second.stderr);
    assert.match(lines[0], /in use by another gatehouse process \(pid \d+\)/);
    assert.ok(lines[0].includes(data), 'names the data folder');
    assert.equal(postmasterPid(data), pid);
    assert.ok(running(pid));
    assert.equal((await fetch(`${srv.url}/readyz`)).status, 200);
    assert.equal(await srv.stopProcess('SIGTERM'), 0);
    for (let i = 0; i < 50 && running(pid); i++) await sleep(100);
    assert.equal(running(pid), false, 'the first serve stopped its cluster');
  } finally {
    await srv.stop();
    await cleanup(data);
  }
});

test('a data folder initialised by another PostgreSQL major version: one line naming the fix, exit 1, nothing running', async () => {
  const data = fs.mkdtempSync(path.join(os.tmpdir(), 'gh-pgver-'));
  const port = await freePort();
  const env = {
    ...process.env, GATEHOUSE_DATABASE_URL: '', GATEHOUSE_DATA_DIR: data,
    GATEHOUSE_LISTEN: `127.0.0.1:${port}`, GATEHOUSE_PUBLIC_URL: `http://127.0.0.1:${port}`,
  };
  try {
    const init = gatehouse(env, ['user', 'list']);   // initdb, start, stop
    assert.equal(init.code, 0, init.stderr);
    assert.equal(postmasterPid(data), null);
    const mine = fs.readFileSync(path.join(data, 'pg', 'PG_VERSION'), 'utf8').trim();
    const other = String(Number(mine) - 1);
    fs.writeFileSync(path.join(data, 'pg', 'PG_VERSION'), `${other}\n`);
    const r = spawnSync(gatehouseBin, ['serve'], { env, encoding: 'utf8', timeout: 60000 });
    assert.equal(r.status, 1, r.stderr);
    const lines = r.stderr.trim().split('\n').filter((l) => !l.startsWith('{'));
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0], new RegExp(`created by PostgreSQL ${other}\\b.*GATEHOUSE_PG_BIN_DIR`));
    assert.equal(postmasterPid(data), null, 'nothing left running');
  } finally {
    await cleanup(data);
  }
});
