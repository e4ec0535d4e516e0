// Descriptors: a server started with a soft limit of 1,024 open files under a
// higher hard limit (systemd's default is 1024:524288) takes the hard limit,
// so more than a thousand connections are served at once.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import { startServer } from '../harness/index.mjs';

const HARD = 4096;
const IDLE = 1100;
let srv;
before(async () => {
  srv = await startServer({ name: 'open-files', wrap: ['prlimit', `--nofile=1024:${HARD}`, '--'] });
});
after(async () => { assert.equal(await srv.stop(), 0); });

function softLimit(pid) {
  const line = fs.readFileSync(`/proc/${pid}/limits`, 'utf8').split('\n').find((l) => l.startsWith('Max open files'));
  return Number(line.split(/\s{2,}/)[1]);
}

test('serve raises its soft open-files limit to the hard one and logs it', () => {
  assert.equal(softLimit(srv.proc.pid), HARD);
  assert.match(fs.readFileSync(srv.logFile, 'utf8'), new RegExp(`soft limit raised from 1024 to ${HARD}`));
});

test(`${IDLE} open connections, more than a soft limit of 1,024 allows, and a request is still served`, async () => {
  const u = new URL(srv.url);
  const socks = [];
  try {
    await Promise.all(Array.from({ length: IDLE }, () => new Promise((resolve, reject) => {
      const s = net.connect(Number(u.port), u.hostname, () => {
        // a request line and one header, then nothing: a client still sending
        s.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n');
        resolve();
      });
      s.on('error', reject);
      socks.push(s);
    })));
    // the server has accepted them all (a connection past its limit is closed)
    await new Promise((r) => setTimeout(r, 1000));
    const r = await fetch(`${srv.url}/healthz`, { signal: AbortSignal.timeout(5000) });
    assert.equal(r.status, 200);
    assert.equal(socks.filter((s) => s.destroyed || s.readyState !== 'open').length, 0);
    // and every one of them is answered once it finishes its request
    const answered = await Promise.all(socks.map((s) => new Promise((resolve) => {
      const t = setTimeout(() => resolve(false), 10000);
      s.once('data', (d) => { clearTimeout(t); resolve(String(d).startsWith('HTTP/1.1 200')); });
      s.write('\r\n');
    })));
    assert.equal(answered.filter((ok) => !ok).length, 0, 'connections left unanswered');
  } finally {
    for (const s of socks) s.destroy();
  }
});

/* A raw connection that has sent a request line and one header. */
function slowClient(u, socks) {
  return new Promise((resolve, reject) => {
    const s = net.connect(Number(u.port), u.hostname, () => { s.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n'); resolve(s); });
    s.on('error', reject);
    socks.push(s);
  });
}

test('GATEHOUSE_HTTP_MAX_CONNECTIONS caps the connections served at once; the next waits until one ends', async () => {
  const small = await startServer({ name: 'open-files-cap', env: { GATEHOUSE_HTTP_MAX_CONNECTIONS: '16', GATEHOUSE_HTTP_THREADS: '4' } });
  const u = new URL(small.url);
  const socks = [];
  try {
    assert.match(fs.readFileSync(small.logFile, 'utf8'), /at most 16 connections/);
    const held = await Promise.all(Array.from({ length: 16 }, () => slowClient(u, socks)));
    await new Promise((r) => setTimeout(r, 500));
    const probe = await slowClient(u, socks);
    const answer = new Promise((resolve) => probe.once('data', (d) => resolve(String(d))));
    probe.write('\r\n');
    const first = await Promise.race([answer.then(() => 'answered'), new Promise((r) => setTimeout(() => r('waiting'), 1500))]);
    assert.equal(first, 'waiting');
    // the 16 finish their requests and close: the one waiting is served
    for (const s of held) s.end('Connection: close\r\n\r\n');
    const reply = await Promise.race([answer, new Promise((r) => setTimeout(() => r('no answer'), 10000))]);
    assert.match(reply, /^HTTP\/1\.1 200/);
  } finally {
    for (const s of socks) s.destroy();
    assert.equal(await small.stop(), 0);
  }
});
