// Sign-in codes by mail, against a local SMTP sink: a six-digit code that
// signs in once, refused when wrong, used or expired, limited per account
// and per IP, never telling whether an account exists.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, startSmtpSink, Client, createUser, sleep } from '../harness/index.mjs';
import { totp, enrol } from './totp.mjs';

let srv, sink;
before(async () => {
  sink = await startSmtpSink();
  srv = await startServer({
    name: 'signin-code',
    env: { GATEHOUSE_SMTP_URL: sink.url, GATEHOUSE_LOGIN_MAX_FAILURES: '5', GATEHOUSE_SIGNIN_CODE_TTL: '8' },
  });
});
after(async () => {
  assert.equal(await srv.stop(), 0);
  await sink.stop();
});

/* Asks for a code; resolves with the code page's response. */
async function ask(c, email) {
  const res = await c.form('/login/code', '/login/code', { email, next: '/profile/tokens' });
  return res;
}

async function mailedCode(email, after) {
  const m = await sink.waitFor(email, { after });
  assert.equal(m.subject, 'Your Gatehouse sign-in code');
  return m.text.match(/sign-in code is (\d{6})/)[1];
}

function verify(c, email, code) {
  return c.post('/login/code/verify', { email, code, next: '/profile/tokens', csrf: c.csrf });
}

test('the login page offers a code by mail; a code signs in once', async () => {
  const u = createUser(srv, {});
  const c = new Client(srv.url);
  const login = await (await c.get('/login')).text();
  assert.match(login, /Email me a sign-in code/);
  const n = sink.messages.length;
  const page = await ask(c, u.email);
  assert.equal(page.status, 200);
  assert.match(await page.text(), /a sign-in code is on its way/);
  const code = await mailedCode(u.email, n);

  const wrong = await verify(c, u.email, code === '000000' ? '000001' : '000000');
  assert.equal(wrong.status, 401);
  assert.match(await wrong.text(), /not right, has expired or has been used/);
  const bad = await verify(c, u.email, '12ab56');
  assert.equal(bad.status, 400);

  const ok = await verify(c, u.email, code);
  assert.equal(ok.status, 303);
  assert.equal(ok.headers.get('location'), '/profile/tokens');
  assert.ok(c.jar.get('gh_device'), 'the browser becomes a device of the account');
  assert.equal((await c.get('/profile/tokens')).status, 200);

  const again = new Client(srv.url);
  await again.get('/login/code').then((r) => r.arrayBuffer());
  const reused = await verify(again, u.email, code);
  assert.equal(reused.status, 401, 'a code works once');
});

test('an unknown email gets the same answer and no mail; a newer code retires the older', async () => {
  const c = new Client(srv.url);
  const n = sink.messages.length;
  const res = await ask(c, 'nobody-here@example.test');
  assert.equal(res.status, 200);
  assert.match(await res.text(), /If there is an account for/);
  await sleep(500);
  assert.equal(sink.messages.slice(n).filter((m) => m.to.includes('nobody-here@example.test')).length, 0);

  const u = createUser(srv, {});
  const m1 = sink.messages.length;
  await ask(c, u.email);
  const first = await mailedCode(u.email, m1);
  const m2 = sink.messages.length;
  await ask(c, u.email);
  const second = await mailedCode(u.email, m2);
  if (first !== second) assert.equal((await verify(c, u.email, first)).status, 401, 'the older code is retired');
  assert.equal((await verify(c, u.email, second)).status, 303);
});

test('codes expire (signin_code_ttl)', async () => {
  const u = createUser(srv, {});
  const c = new Client(srv.url);
  const n = sink.messages.length;
  await ask(c, u.email);
  const code = await mailedCode(u.email, n);
  await sleep(8500);
  assert.equal((await verify(c, u.email, code)).status, 401);
});

test('sending is limited per account; wrong codes are throttled like passwords', async () => {
  const u = createUser(srv, {});
  const c = new Client(srv.url);
  const n = sink.messages.length;
  for (let i = 0; i < 4; i++) assert.equal((await ask(c, u.email)).status, 200);
  await sink.waitFor(u.email, { after: n });
  await sleep(800);
  assert.equal(sink.messages.slice(n).filter((m) => m.to.includes(u.email)).length, 3, 'three codes in ten minutes');

  const v = createUser(srv, {});
  const d = new Client(srv.url);
  const m = sink.messages.length;
  await ask(d, v.email);
  const code = await mailedCode(v.email, m);
  for (let i = 0; i < 5; i++) {
    const wrong = String((Number(code) + 1 + i) % 1000000).padStart(6, '0');
    assert.equal((await verify(d, v.email, wrong)).status, 401);
  }
  const locked = await verify(d, v.email, code);
  assert.equal(locked.status, 429);
  assert.ok(Number(locked.headers.get('retry-after')) > 0);
});

test('sending is limited per IP', async () => {
  const c = new Client(srv.url);
  let limited = null;
  for (let i = 0; i < 15 && !limited; i++) {
    const r = await ask(c, `ip-limit-${i}@example.test`);
    if (r.status === 429) limited = r;
  }
  assert.ok(limited, 'refused past the per-IP budget');
  assert.ok(Number(limited.headers.get('retry-after')) > 0);
});

test('a code is the first factor only: the second factor follows', async () => {
  const u = createUser(srv, {});
  const c = new Client(srv.url);
  await c.login(u.email, u.password);
  const { key } = await enrol(c);
  const d = new Client(srv.url);
  await sleep(60000 / 10 + 100);     // the per-IP send budget of the test above refills
  const n = sink.messages.length;
  await ask(d, u.email);
  const code = await mailedCode(u.email, n);
  const res = await verify(d, u.email, code);
  assert.equal(res.status, 303);
  assert.match(res.headers.get('location'), /^\/login\/mfa\?next=/);
  assert.equal((await d.get('/profile')).status, 303, 'not signed in yet');
  await d.get('/login/mfa').then((r) => r.arrayBuffer());
  const ok = await d.post('/login/mfa', { code: totp(key, { offset: 1 }), next: '/profile', csrf: d.csrf });
  assert.equal(ok.status, 303);
  assert.equal((await d.get('/profile')).status, 200);
});

test('without GATEHOUSE_SMTP_URL there are no codes', async () => {
  const plain = await startServer({ name: 'signin-code-off' });
  try {
    const c = new Client(plain.url);
    assert.doesNotMatch(await (await c.get('/login')).text(), /sign-in code/);
    assert.equal((await c.get('/login/code')).status, 404);
  } finally {
    assert.equal(await plain.stop(), 0);
  }
});
