// Accounts: first-run setup, login, sessions, CSRF, throttling, logout.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { startServer, Client, createUser, gatehouse, secret, inputValue, sleep } from '../harness/index.mjs';

let srv;
before(async () => {
  srv = await startServer({ name: 'accounts', env: { GATEHOUSE_LOGIN_MAX_FAILURES: '5', GATEHOUSE_LOGIN_WINDOW_SECONDS: '60' } });
});
after(async () => { assert.equal(await srv.stop(), 0); });

async function waitFor(pred, ms = 5000) {
  const until = Date.now() + ms;
  while (Date.now() < until) { const v = pred(); if (v) return v; await sleep(20); }
  return pred();
}

test('first start prints a one-time setup link that creates the admin once', async () => {
  const m = await waitFor(() => srv.stdout.match(/(http:\/\/127\.0\.0\.1:\d+\/setup\?token=([0-9a-f]{48}))/));
  assert.ok(m, `no setup link on stdout: ${srv.stdout}`);
  secret(m[2]);
  const c = new Client(srv.url);
  const page = await c.get(`/setup?token=${m[2]}`);
  assert.equal(page.status, 200);
  const html = await page.text();
  assert.equal(inputValue(html, 'token'), m[2]);
  const email = 'admin@example.test', password = secret('admin-password-1234');
  // a NUL byte would have cut the password short unseen (the account got 'admin-password-1234')
  const nul = await c.post('/setup', { token: m[2], email, password: `${password}\0tail`, csrf: c.csrf });
  assert.equal(nul.status, 400);
  assert.match(await nul.text(), /must not contain NUL characters/);
  assert.equal(gatehouse(srv, ['user', 'list']).stdout.includes(email), false, 'no account from the refused form');
  const res = await c.post('/setup', { token: m[2], email, password, csrf: c.csrf });
  assert.equal(res.status, 303);
  assert.equal(res.headers.get('location'), '/profile');
  const profile = await c.get('/profile');
  assert.equal(profile.status, 200);
  assert.match(await profile.text(), /admin@example\.test/);
  // the link is spent
  const again = await new Client(srv.url).get(`/setup?token=${m[2]}`);
  assert.equal(again.status, 410);
  const list = gatehouse(srv, ['user', 'list']);
  assert.equal(list.code, 0);
  assert.match(list.stdout, /admin@example\.test\s+admin/);
});

test('login sets a fresh HttpOnly SameSite=Lax session cookie; a wrong password is refused', async () => {
  const u = createUser(srv, {});
  const c = new Client(srv.url);
  // a session id planted before login is not kept (fixation)
  c.jar.set('gh_session', 'planted-session-value');
  const page = await c.get('/login');
  assert.equal(page.status, 200);
  const html = await page.text();
  assert.ok(inputValue(html, 'csrf'), 'login form carries a csrf field');
  assert.match(html, /name="email"/);
  assert.match(html, /name="password"/);

  const bad = await c.post('/login', { email: u.email, password: 'wrong-password-xyz', csrf: c.csrf });
  assert.equal(bad.status, 401);
  assert.match(await bad.text(), /Invalid email or password/);
  assert.equal((await c.get('/profile')).status, 303);

  const res = await fetch(`${srv.url}/login`, {
    method: 'POST', redirect: 'manual',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded', Origin: srv.url, Cookie: `gh_csrf=${c.csrf}; gh_session=planted-session-value` },
    body: new URLSearchParams({ email: u.email, password: u.password, csrf: c.csrf }).toString(),
  });
  assert.equal(res.status, 303);
  const cookie = res.headers.getSetCookie().find((s) => s.startsWith('gh_session='));
  assert.ok(cookie, 'session cookie set');
  secret(cookie.split(';')[0].slice('gh_session='.length));
  assert.match(cookie, /HttpOnly/i);
  assert.match(cookie, /SameSite=Lax/i);
  assert.doesNotMatch(cookie, /Secure/i, 'not Secure on an http public URL');
  assert.doesNotMatch(cookie, /planted-session-value/);
});

test('a form POST without the CSRF token, or from another origin, is refused and changes nothing', async () => {
  const u = createUser(srv, {});
  const c = new Client(srv.url);
  await c.get('/login');
  const noToken = await c.post('/login', { email: u.email, password: u.password });
  assert.equal(noToken.status, 403);
  assert.equal(noToken.headers.getSetCookie().some((s) => s.startsWith('gh_session=') && !/gh_session=;/.test(s)), false);
  const wrongToken = await c.post('/login', { email: u.email, password: u.password, csrf: 'f'.repeat(43) });
  assert.equal(wrongToken.status, 403);
  const foreign = await c.post('/login', { email: u.email, password: u.password, csrf: c.csrf },
    { headers: { Origin: 'https://evil.example' } });
  assert.equal(foreign.status, 403);
  const hidden = await c.post('/login', { email: u.email, password: u.password, csrf: c.csrf },
    { headers: { Origin: 'null', 'Sec-Fetch-Site': 'cross-site' } });
  assert.equal(hidden.status, 403, 'a hidden origin from another site is refused');
  assert.equal((await c.get('/profile')).status, 303, 'still signed out');
  assert.equal((await c.login(u.email, u.password)).status, 303);
  assert.equal((await c.get('/profile')).status, 200);
});

test('login returns to the page that asked for it, never to another site', async () => {
  const u = createUser(srv, {});
  const c = new Client(srv.url);
  const gate = await c.get('/profile');
  assert.equal(gate.status, 303);
  assert.equal(gate.headers.get('location'), '/login?next=%2Fprofile');
  const res = await c.login(u.email, u.password, '/profile');
  assert.equal(res.headers.get('location'), '/profile');
  for (const next of ['https://evil.example/', '//evil.example/x', '/\\evil.example']) {
    const c2 = new Client(srv.url);
    const r = await c2.login(u.email, u.password, next);
    assert.equal(r.status, 303);
    assert.ok(r.headers.get('location').startsWith('/') && !r.headers.get('location').startsWith('//') &&
      !r.headers.get('location').startsWith('/\\'), `open redirect via next=${next}: ${r.headers.get('location')}`);
  }
});

test('a signed-in user is never sent to another site by next= (tab, backslash, space, control bytes)', async () => {
  const u = createUser(srv, {});
  const c = new Client(srv.url);
  assert.equal((await c.login(u.email, u.password)).status, 303);
  // a local path still works, query string included
  const ok = await c.get('/login?next=%2Fprofile%3Fx%3D1');
  assert.equal(ok.status, 303);
  assert.equal(ok.headers.get('location'), '/profile?x=1');
  // browsers drop tabs and newlines inside a URL and read "\" as "/": each of these is "//evil.example"
  const raw = ['/%09/evil.example', '/%5C/evil.example', '/%5Cevil.example', '/%20//evil.example', '%20//evil.example',
    '/%0B/evil.example', '/%7F/evil.example', '/%C2%A0/evil.example', '/x/%5C%5Cevil.example', '/%09%09/evil.example'];
  for (const next of raw) {
    const r = await c.get(`/login?next=${next}`);
    assert.equal(r.status, 200, `next=${next} redirected a signed-in user to ${r.headers.get('location')}`);
    assert.equal(r.headers.get('location'), null);
    const html = await r.text();
    assert.equal(inputValue(html, 'next'), '/profile', `next=${next} kept in the form`);
  }
  // and at sign-in: back to /profile, not to the given next
  for (const next of raw.map(decodeURIComponent)) {
    const r = await new Client(srv.url).login(u.email, u.password, next);
    assert.equal(r.status, 303);
    assert.equal(r.headers.get('location'), '/profile', `open redirect via next=${JSON.stringify(next)}`);
  }
});

test('an email that is not text is a 400 on the login form, not a server error', async () => {
  const c = new Client(srv.url);
  await (await c.get('/login')).arrayBuffer();
  for (const email of ['%FF%40example.test', 'a%00b%40example.test', 'a%0Ab%40example.test', '%C0%AF']) {
    const res = await c.post('/login', `email=${email}&password=whatever-123&csrf=${c.csrf}`,
      { headers: { 'Content-Type': 'application/x-www-form-urlencoded' } });
    const html = await res.text();
    assert.equal(res.status, 400, `${email}: ${html}`);
    assert.match(html, /Enter a valid email address/);
  }
});

test('logout ends the session on the server', async () => {
  const u = createUser(srv, {});
  const c = new Client(srv.url);
  await c.login(u.email, u.password);
  const session = c.jar.get('gh_session');
  assert.ok(session);
  const out = await c.form('/profile', '/logout', {});
  assert.equal(out.status, 303);
  const replay = await fetch(`${srv.url}/profile`, { redirect: 'manual', headers: { Cookie: `gh_session=${session}` } });
  assert.equal(replay.status, 303, 'the old session cookie no longer works');
});

test('repeated failures throttle the account with 429 and Retry-After, and a disabled user cannot sign in', async () => {
  const u = createUser(srv, {});
  const c = new Client(srv.url);
  for (let i = 0; i < 5; i++) {
    const r = await c.login(u.email, `wrong-${i}-password`);
    assert.equal(r.status, 401);
  }
  const blocked = await c.form('/login', '/login', { email: u.email, password: u.password });
  assert.equal(blocked.status, 429);
  assert.ok(Number(blocked.headers.get('retry-after')) > 0);
  assert.match(await blocked.text(), /Too many failed sign-in attempts\. Try again in \d+ (seconds|minutes)\./);

  const v = createUser(srv, {});
  assert.equal(gatehouse(srv, ['user', 'disable', '--email', v.email]).code, 0);
  const r = await new Client(srv.url).login(v.email, v.password);
  assert.equal(r.status, 401);
});

test('a legacy scrypt hash signs in and is re-hashed to argon2id', async () => {
  const u = createUser(srv, {});
  const legacy = secret(`legacy-${Date.now()}-pw`);
  // libscrypt's MCF: $s1$<log2 N><r><p in hex>$<b64 salt>$<b64 64-byte hash>
  const salt = crypto.randomBytes(16);
  const hash = crypto.scryptSync(legacy, salt, 64, { N: 16384, r: 8, p: 1 });
  const mcf = `$s1$0e0801$${salt.toString('base64')}$${hash.toString('base64')}`;
  srv.cluster.sql(`UPDATE users SET password_hash = '${mcf}' WHERE email = '${u.email}'`);
  const c = new Client(srv.url);
  assert.equal((await c.login(u.email, 'not-it-at-all')).status, 401);
  assert.equal((await c.login(u.email, legacy)).status, 303);
  const stored = srv.cluster.sql(`SELECT password_hash FROM users WHERE email = '${u.email}'`);
  assert.match(stored, /^\$argon2id\$/);
  assert.equal((await new Client(srv.url).login(u.email, legacy)).status, 303, 'the new hash verifies');
});

test('over https the CSRF cookie is __Host-gh_csrf (Secure, Path=/, no Domain); a plain gh_csrf cookie is not taken', async () => {
  const pub = 'https://gatehouse.test';
  const s2 = await startServer({ cluster: srv.cluster, name: 'accounts-https', env: { GATEHOUSE_PUBLIC_URL: pub } });
  try {
    const res = await fetch(`${s2.url}/login`);
    await res.arrayBuffer();
    const set = res.headers.getSetCookie().find((c) => c.includes('csrf'));
    assert.match(set ?? '', /^__Host-gh_csrf=[0-9a-f]{64}; Path=\/;.*; Secure/);
    assert.doesNotMatch(set, /Domain=/i);
    const tok = secret(set.split(';')[0].split('=')[1]);
    const u = createUser(s2, {});
    const login = (cookie) => fetch(`${s2.url}/login`, {
      method: 'POST', redirect: 'manual',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded', Origin: pub, Cookie: `${cookie}=${tok}` },
      body: new URLSearchParams({ email: u.email, password: u.password, csrf: tok }),
    });
    const plain = await login('gh_csrf');
    await plain.arrayBuffer();
    assert.equal(plain.status, 403, 'a cookie without the prefix (which a sibling host could plant) is not the token');
    const ok = await login('__Host-gh_csrf');
    await ok.arrayBuffer();
    assert.equal(ok.status, 303);
    for (const c of ok.headers.getSetCookie()) {     // the session and the device cookie
      const v = c.split(';')[0].split('=')[1];
      if (v) secret(v);
    }
  } finally {
    assert.equal(await s2.stop(), 0);
  }
});

test('a guesser cannot lock the owner out: failures without the account\'s device cookie lock only browsers without one; the per-IP limit stays', async () => {
  // a server and database of its own: the per-IP count is shared by every test of this file
  const own = await startServer({ name: 'accounts-lockout', env: { GATEHOUSE_LOGIN_MAX_FAILURES: '3', GATEHOUSE_LOGIN_WINDOW_SECONDS: '600' } });
  try {
    const u = createUser(own, {});
    const owner = new Client(own.url);
    assert.equal((await owner.login(u.email, u.password)).status, 303);
    assert.ok(owner.jar.get('gh_device'), 'a device cookie after signing in');
    assert.equal((await owner.form('/profile', '/logout', {})).status, 303);

    const guesser = new Client(own.url);
    for (let i = 0; i < 3; i++) assert.equal((await guesser.login(u.email, `guess-${i}-password`)).status, 401);
    const locked = await guesser.form('/login', '/login', { email: u.email, password: u.password });
    assert.equal(locked.status, 429, 'the right password from an unknown browser waits');
    const wait = Number(locked.headers.get('retry-after'));
    assert.ok(wait > 500 && wait <= 600, `Retry-After ${wait}`);
    assert.match(await locked.text(), /Try again in 10 minutes\./, 'the page says how long');
    // a device cookie of another account, or a made-up one, is no key
    const forged = new Client(own.url);
    forged.jar.set('gh_device', 'ab'.repeat(32));
    assert.equal((await forged.login(u.email, u.password)).status, 429);

    // the owner's browser signs in all the same, and that does not reset the guesser's count
    assert.equal((await owner.login(u.email, u.password)).status, 303, 'the owner is not locked out');
    assert.equal((await guesser.login(u.email, u.password)).status, 429);

    // the owner's own browser is locked by its own failures only
    await owner.form('/profile', '/logout', {});
    for (let i = 0; i < 3; i++) assert.equal((await owner.login(u.email, `typo-${i}-password`)).status, 401);
    assert.equal((await owner.login(u.email, u.password)).status, 429);

    // the per-IP limit (4 x 3 failures from one address, any account) still holds for everyone there
    for (let i = 0; i < 6; i++) assert.equal((await guesser.login(`nobody-${i}@example.test`, 'wrong-password-x')).status, 401);
    const other = createUser(own, {});
    const ip = await new Client(own.url).form('/login', '/login', { email: other.email, password: other.password });
    assert.equal(ip.status, 429);
    assert.match(await ip.text(), /Try again in \d+ minutes/);
    assert.equal(own.cluster.sql("SELECT count(*) FROM login_devices WHERE token_hash ~ '^[0-9a-f]{64}$'"), '1', 'one device, stored as a hash');
  } finally {
    assert.equal(await own.stop(), 0);
  }
});
