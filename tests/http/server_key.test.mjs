// The server key file (<data_dir>/server.key, used when GATEHOUSE_SERVER_KEY
// is not set): processes starting together on a fresh data folder agree on
// one key, never reading a file another is still writing; a key file other
// users may read, or one that is not 64 hex digits, is refused with a line
// naming the file, never the key.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startCluster, gatehouse, gatehouseBin, secret } from '../harness/index.mjs';

let cluster;

function envFor(dataDir) {
  return { ...process.env, GATEHOUSE_DATABASE_URL: cluster.url, GATEHOUSE_DATA_DIR: dataDir, GATEHOUSE_SERVER_KEY: '' };
}

function run(env, args) {
  return new Promise((resolve) => {
    const p = spawn(gatehouseBin, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '', stderr = '';
    p.stdout.on('data', (d) => { stdout += d; });
    p.stderr.on('data', (d) => { stderr += d; });
    p.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

const reason = (r) => r.stderr.split('\n').find((l) => l.startsWith('gatehouse: ')) ?? '';
const addArgs = (name) => ['connector', 'add', '--agent', 'default', '--name', name, '--url', 'https://mcp.example.test/mcp',
  '--header', 'X-Api-Key: key-file-test-value'];

before(async () => {
  cluster = await startCluster();
  const data = fs.mkdtempSync(path.join(os.tmpdir(), 'gh-key-'));
  const m = gatehouse(envFor(data), ['migrate']);
  fs.rmSync(data, { recursive: true, force: true });
  assert.equal(m.code, 0, m.stderr);
});
after(async () => { await cluster?.stop(); });

test('processes starting together on a fresh data folder all start, with one key file written whole (0600)', async () => {
  // the window was between creating the file and writing the key into it:
  // a process that looked then read an empty file ("unreadable") or failed
  // to create it; several rounds make that near certain on the old code
  for (let round = 0; round < 8; round++) {
    cluster.sql('DELETE FROM connectors; DELETE FROM server_key_check');
    const data = fs.mkdtempSync(path.join(os.tmpdir(), 'gh-key-'));
    try {
      const env = envFor(data);
      const results = await Promise.all(Array.from({ length: 8 }, (_, i) => run(env, addArgs(`race${i}`))));
      for (const r of results) assert.equal(r.code, 0, `round ${round}: ${reason(r) || r.stderr}`);
      const key = fs.readFileSync(path.join(data, 'server.key'), 'utf8');
      secret(key);
      assert.match(key, /^[0-9a-f]{64}$/);
      assert.equal(fs.statSync(path.join(data, 'server.key')).mode & 0o777, 0o600);
      assert.deepEqual(fs.readdirSync(data), ['server.key'], 'no temporary file left behind');
      assert.equal(cluster.sql('SELECT count(*) FROM connectors'), '8');
      for (const r of results) assert.ok(!r.stdout.includes(key) && !r.stderr.includes(key), 'the key is never printed');
    } finally {
      fs.rmSync(data, { recursive: true, force: true });
    }
  }
});

test('a key file other users may read, or that is not 64 hex digits, is refused naming the file; nothing is written', () => {
  cluster.sql('DELETE FROM connectors; DELETE FROM server_key_check');
  const data = fs.mkdtempSync(path.join(os.tmpdir(), 'gh-key-'));
  const file = path.join(data, 'server.key');
  const key = secret(crypto.randomBytes(32).toString('hex'));
  const env = envFor(data);
  try {
    const cases = [
      [`${key}\n`, 0o644, /^gatehouse: the server key file .*server\.key is open to other users \(mode 0644\); chmod 600 it$/],
      [`${key}\n`, 0o606, /is open to other users \(mode 0606\)/],
      [`${key}${key}\n`, 0o600, /^gatehouse: the server key file .*server\.key must hold 64 hex digits and nothing else$/],
      [`${key}x\n`, 0o600, /must hold 64 hex digits/],
      [key.slice(0, 63), 0o600, /must hold 64 hex digits/],
      ['', 0o600, /must hold 64 hex digits/],
    ];
    for (const [contents, mode, msg] of cases) {
      fs.rmSync(file, { force: true });
      fs.writeFileSync(file, contents);
      fs.chmodSync(file, mode);
      const r = gatehouse(env, addArgs('refused'));
      assert.equal(r.code, 1, `${mode.toString(8)} ${contents.length}: ${r.stderr}`);
      assert.match(reason(r), msg);
      assert.ok(!r.stderr.includes(key.slice(0, 32)) && !r.stdout.includes(key.slice(0, 32)), 'the key is never printed');
      assert.equal(fs.readFileSync(file, 'utf8'), contents, 'the file is left as it was');
    }
    assert.equal(cluster.sql('SELECT count(*) FROM connectors'), '0');
    assert.equal(cluster.sql('SELECT count(*) FROM server_key_check'), '0');

    // the same key, private, with its trailing line break: accepted
    fs.rmSync(file, { force: true });
    fs.writeFileSync(file, `${key}\n`, { mode: 0o600 });
    const ok = gatehouse(env, addArgs('accepted'));
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(cluster.sql('SELECT count(*) FROM connectors'), '1');
    // and the key check it stored is that key's: the environment variable agrees
    const again = gatehouse({ ...env, GATEHOUSE_SERVER_KEY: key }, addArgs('accepted2'));
    assert.equal(again.code, 0, again.stderr);
  } finally {
    fs.rmSync(data, { recursive: true, force: true });
  }
});
