// Behind a reverse proxy every peer is the proxy.  With the proxy listed in
// GATEHOUSE_TRUSTED_PROXIES, the client is the right-most X-Forwarded-For
// hop that is not itself trusted, so callers behind one proxy get their own
// sign-in throttle and token rate-limit buckets (and their own address in
// the access log).  Without the setting the header is ignored: a spoofed
// X-Forwarded-For escapes no limit.  (The addresses in the headers are only
// text: nothing is sent to them.)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { startServer, sleep, Client } from '../harness/index.mjs';

const LIMITS = { GATEHOUSE_LOGIN_MAX_FAILURES: '1', GATEHOUSE_RATE_TOKEN_PER_MIN: '3' };   // 4 failures per IP
let proxied, direct, serial = 0;

before(async () => {
  [proxied, direct] = await Promise.all([
    startServer({ name: 'proxy-trusted', env: { ...LIMITS, GATEHOUSE_TRUSTED_PROXIES: '10.0.0.0/8, 127.0.0.1 ,::1' } }),
    startServer({ name: 'proxy-none', env: LIMITS }),
  ]);
});
after(async () => {
  if (proxied) assert.equal(await proxied.stop(), 0);
  if (direct) assert.equal(await direct.stop(), 0);
});

/* A failed sign-in as a fresh address; xff undefined sends no header. */
async function failLogin(srv, xff) {
  const email = `nobody-${++serial}@example.test`;
  const headers = xff === undefined ? {} : { 'X-Forwarded-For': xff };
  const c = new Client(srv.url);
  await (await c.get('/login', { headers })).arrayBuffer();
  const res = await c.post('/login', { email, password: 'wrong-password-123', csrf: c.csrf }, { headers });
  await res.arrayBuffer();
  return { status: res.status, email };
}

const recordedIp = (srv, email) => srv.cluster.sql(`SELECT ip FROM login_failures WHERE email = '${email}'`);

async function tokenStatus(srv, xff) {
  const res = await fetch(`${srv.url}/oauth/token`, {
    method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded', 'X-Forwarded-For': xff },
    body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: 'gth_ort_x', client_id: 'nope' }).toString(),
  });
  await res.arrayBuffer();
  return res.status;
}

test('from a trusted proxy, the client is the right-most X-Forwarded-For hop not itself trusted', async () => {
  for (const [xff, ip] of [
    ['203.0.113.7', '203.0.113.7'],
    ['198.51.100.1, 203.0.113.8', '203.0.113.8'],            // the left part is the client's own say-so
    ['203.0.113.9, 10.1.2.3,127.0.0.1', '203.0.113.9'],       // trusted hops are skipped
    ['[2001:db8::5]', '2001:db8::5'],
    ['::ffff:203.0.113.10', '203.0.113.10'],
    ['10.9.9.9', '10.9.9.9'],                                 // every hop trusted: the farthest
    ['203.0.113.11, not-an-address', '127.0.0.1'],            // invalid: the peer
    ['203.0.113.12:4711', '127.0.0.1'],
    [undefined, '127.0.0.1'],
  ]) {
    const r = await failLogin(proxied, xff);
    assert.equal(r.status, 401, String(xff));
    assert.equal(recordedIp(proxied, r.email), ip, `X-Forwarded-For: ${xff}`);
  }
  const access = fs.readFileSync(proxied.logFile, 'utf8').split('\n').filter((l) => l.includes('"event":"http"'))
    .map((l) => JSON.parse(l)).filter((l) => l.route === '/login');
  assert.ok(access.some((l) => l.ip === '203.0.113.7'), 'the access log has the client address');
});

test('behind a trusted proxy, two clients have separate sign-in throttle and token rate-limit buckets', async () => {
  const a = '203.0.113.50', b = '203.0.113.51';
  for (let i = 0; i < 4; i++) assert.equal((await failLogin(proxied, a)).status, 401);
  assert.equal((await failLogin(proxied, a)).status, 429, 'the first client is throttled');
  assert.equal((await failLogin(proxied, b)).status, 401, 'the second is not');

  let limited = false;
  for (let i = 0; i < 8 && !limited; i++) limited = (await tokenStatus(proxied, a)) === 429;
  assert.ok(limited, 'the first client reaches the token rate limit');
  assert.equal(await tokenStatus(proxied, b), 401, 'the second has its own budget');
});

test('without GATEHOUSE_TRUSTED_PROXIES, X-Forwarded-For is ignored: a spoofed one escapes no limit', async () => {
  const first = await failLogin(direct, '203.0.113.60');
  assert.equal(recordedIp(direct, first.email), '127.0.0.1');
  for (let i = 0; i < 3; i++) assert.equal((await failLogin(direct, `203.0.113.${61 + i}`)).status, 401);
  assert.equal((await failLogin(direct, '203.0.113.70')).status, 429, 'throttled whatever the header says');

  // the token budget is per minute of the clock: all of this within one
  const s = new Date().getSeconds();
  if (s > 50) await sleep((61 - s) * 1000);
  let limited = false;
  for (let i = 0; i < 8 && !limited; i++) limited = (await tokenStatus(direct, `198.51.100.${i}`)) === 429;
  assert.ok(limited, 'the token rate limit is reached');
  assert.equal(await tokenStatus(direct, '198.51.100.99'), 429, 'another X-Forwarded-For is the same caller');
});

test('a bad GATEHOUSE_TRUSTED_PROXIES entry stops the start with a message naming it', async () => {
  await assert.rejects(
    startServer({ cluster: direct.cluster, name: 'proxy-bad', readyTimeoutMs: 20000,
      env: { GATEHOUSE_TRUSTED_PROXIES: '127.0.0.1, 10.0.0.0/33' } }),
    /GATEHOUSE_TRUSTED_PROXIES: '10\.0\.0\.0\/33' is not an IP address or CIDR/);
});
