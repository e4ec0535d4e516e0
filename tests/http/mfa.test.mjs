// The second factor over HTTP: enrolment with a code, sign-in that stays
// pending until a TOTP or recovery code passes, replay and reuse refused,
// failures throttled, the admin reset, GATEHOUSE_REQUIRE_MFA, and the
// signed-in browsers list of /profile/security.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, startCluster, Client, createUser, gatehouse, secret } from '../harness/index.mjs';
import { totp, enrol } from './totp.mjs';

let srv;
before(async () => {
  srv = await startServer({ name: 'mfa', env: { GATEHOUSE_LOGIN_MAX_FAILURES: '5', GATEHOUSE_LOGIN_WINDOW_SECONDS: '60' } });
});
after(async () => { assert.equal(await srv.stop(), 0); });

async function text(res) { return res.text(); }

/* Password step: resolves with the response (303 to /login/mfa when a second factor follows). */
async function password(c, u, next) {
  const res = await c.login(u.email, u.password, next);
  assert.equal(res.status, 303);
  return res;
}

async function code(c, value, next = '/profile') {
  const page = await c.get(`/login/mfa?next=${encodeURIComponent(next)}`);
  await page.arrayBuffer();
  return c.post('/login/mfa', { code: value, next, csrf: c.csrf });
}

test('enrolment, then sign-in is pending until a code passes; codes work once', async () => {
  const u = createUser(srv, {});
  const c = new Client(srv.url);
  await password(c, u);
  const off = await text(await c.get('/profile/security'));
  assert.match(off, /Two-step verification is <strong>off<\/strong>/);
  const { key, codes, enrolCode } = await enrol(c);
  assert.match(await text(await c.get('/profile/security')), /Two-step verification is <strong>on<\/strong>. 10 of/);

  const fresh = new Client(srv.url);
  const res = await password(fresh, u, '/profile/tokens');
  assert.equal(fresh.jar.get('gh_device'), undefined, 'not after the password alone');
  assert.equal(res.headers.get('location'), '/login/mfa?next=%2Fprofile%2Ftokens');
  const pendingCookie = fresh.jar.get('gh_session');
  // the pending session is signed in to nothing
  for (const path of ['/profile', '/profile/tokens', '/profile/security']) {
    const p = await fresh.get(path);
    assert.equal(p.status, 303, path);
    assert.match(p.headers.get('location'), /^\/login\?next=/);
  }
  // the code of enrolment was used: refused
  const replayEnrol = await code(fresh, enrolCode, '/profile/tokens');
  assert.equal(replayEnrol.status, 401);
  assert.match(await text(replayEnrol), /not right, or it has been used already/);

  const good = totp(key, { offset: 1 });
  const ok = await code(fresh, good, '/profile/tokens');
  assert.equal(ok.status, 303);
  assert.equal(ok.headers.get('location'), '/profile/tokens');
  assert.notEqual(fresh.jar.get('gh_session'), pendingCookie, 'a new session id after the second factor');
  assert.ok(fresh.jar.get('gh_device'), 'the browser becomes a device of the account once signed in');
  assert.equal((await fresh.get('/profile/tokens')).status, 200);

  // the same code again, on another sign-in: refused
  const again = new Client(srv.url);
  await password(again, u);
  const replay = await code(again, good);
  assert.equal(replay.status, 401);
  assert.equal((await again.get('/profile')).status, 303, 'still not signed in');

  // a recovery code signs in once, typed in capitals without the dash
  const typed = codes[3].replace('-', '').toUpperCase();
  const rec = await code(again, typed);
  assert.equal(rec.status, 303);
  assert.equal((await again.get('/profile')).status, 200);
  const third = new Client(srv.url);
  await password(third, u);
  const reused = await code(third, codes[3]);
  assert.equal(reused.status, 401);
  assert.match(await text(await fresh.get('/profile/security')), /9 of your recovery codes are unused/);
});

test('bad input at /login/mfa changes nothing', async () => {
  const anon = new Client(srv.url);
  const none = await anon.form('/login', '/login/mfa', { code: '123456', next: '/profile' });
  assert.equal(none.status, 303, 'no pending session: back to the password');
  assert.equal(none.headers.get('location'), '/login');

  const u = createUser(srv, {});
  const c = new Client(srv.url);
  await password(c, u);
  const { key } = await enrol(c);
  const d = new Client(srv.url);
  await password(d, u);
  for (const bad of ['', 'x'.repeat(40), '12345\u0001']) {
    const r = await code(d, bad);
    assert.equal(r.status, 400, JSON.stringify(bad));
    assert.match(await text(r), /Enter the code/);
  }
  // no CSRF token: refused by the page rules
  const noCsrf = await d.post('/login/mfa', { code: totp(key, { offset: 1 }), next: '/profile' });
  assert.equal(noCsrf.status, 403);
  const ok = await code(d, totp(key, { offset: 1 }));
  assert.equal(ok.status, 303, 'the refusals above did not spend the code');
});

test('wrong codes count toward the sign-in throttle of the account', async () => {
  const u = createUser(srv, {});
  const c = new Client(srv.url);
  await password(c, u);
  const { key } = await enrol(c);
  const d = new Client(srv.url);
  await password(d, u);
  for (let i = 0; i < 5; i++) {
    const r = await code(d, String((Number(totp(key)) + 1 + i) % 1000000).padStart(6, '0'));
    assert.equal(r.status, 401);
  }
  const locked = await code(d, totp(key, { offset: 1 }));
  assert.equal(locked.status, 429);
  assert.ok(Number(locked.headers.get('retry-after')) > 0);
  // and the password too, for that account
  const e = new Client(srv.url);
  const pw = await e.login(u.email, u.password);
  assert.equal(pw.status, 429);
});

test('an admin resets another user\'s second factor; a user may not', async () => {
  const admin = createUser(srv, { admin: true });
  const u = createUser(srv, {});
  const c = new Client(srv.url);
  await password(c, u);
  await enrol(c);
  const a = new Client(srv.url);
  await password(a, admin);
  const forbidden = await c.form('/profile/security', '/admin/mfa-reset', { email: admin.email });
  assert.equal(forbidden.status, 403);
  const unknown = await a.form('/profile/security', '/admin/mfa-reset', { email: 'nobody@example.test' });
  assert.equal(unknown.status, 404);
  const reset = await a.form('/profile/security', '/admin/mfa-reset', { email: u.email });
  assert.equal(reset.status, 200);
  assert.match(await text(reset), /second factor of that account is reset/);
  assert.equal((await c.get('/profile')).status, 303, 'the user\'s sessions ended');
  const again = new Client(srv.url);
  const res = await password(again, u);
  assert.equal(res.headers.get('location'), '/profile', 'the password alone signs in again');

  // the command line, for a lost authenticator of the only admin
  const b = new Client(srv.url);
  await password(b, admin);
  await enrol(b);
  const cli = gatehouse(srv, ['user', 'reset-mfa', '--email', admin.email]);
  assert.equal(cli.code, 0, cli.stderr);
  assert.equal((await b.get('/profile')).status, 303, 'its sessions ended');
  assert.equal((await password(new Client(srv.url), admin)).headers.get('location'), '/profile');
  assert.notEqual(gatehouse(srv, ['user', 'reset-mfa', '--email', 'nobody@example.test']).code, 0);
});

test('signed-in browsers are listed and each can be signed out', async () => {
  const u = createUser(srv, {});
  const one = new Client(srv.url), two = new Client(srv.url);
  await one.login(u.email, u.password);
  await two.request('GET', '/login', { headers: { 'User-Agent': 'SecondBrowser/2.0 <b>' } }).then((r) => r.arrayBuffer());
  await two.request('POST', '/login', {
    body: { email: u.email, password: u.password, csrf: two.csrf },
    headers: { 'User-Agent': 'SecondBrowser/2.0 <b>' },
  });
  // a long User-Agent is cut to 200 bytes, not inside a UTF-8 character
  const three = new Client(srv.url);
  const ua = Buffer.from(`${'x'.repeat(199)}éé`, 'utf8').toString('latin1');
  await three.request('GET', '/login', { headers: { 'User-Agent': ua } }).then((r) => r.arrayBuffer());
  await three.request('POST', '/login', {
    body: { email: u.email, password: u.password, csrf: three.csrf }, headers: { 'User-Agent': ua },
  });
  const page = await text(await one.get('/profile/security'));
  assert.match(page, new RegExp(`<td class="ua">${'x'.repeat(199)}</td>`));
  await three.post('/logout', { csrf: three.csrf });
  const rows = [...(await text(await one.get('/profile/security'))).matchAll(/<tr><td>.*?<\/tr>/g)].map((m) => m[0]);
  assert.equal(rows.length, 2);
  assert.match(page, /SecondBrowser\/2\.0 &lt;b&gt;/);
  assert.match(page, /127\.0\.0\.1/);
  const other = rows.find((r) => r.includes('SecondBrowser'));
  assert.doesNotMatch(other, /this browser/);
  const ref = other.match(/name="session" value="([0-9a-f-]{36})"/)[1];

  const bad = await one.post('/profile/security/sessions/end', { session: 'not-a-uuid', csrf: one.csrf });
  assert.equal(bad.status, 400);
  // another user cannot end it
  const v = createUser(srv, {});
  const eve = new Client(srv.url);
  await eve.login(v.email, v.password);
  const foreign = await eve.form('/profile/security', '/profile/security/sessions/end', { session: ref });
  assert.equal(foreign.status, 404);
  assert.equal((await two.get('/profile')).status, 200);

  const end = await one.post('/profile/security/sessions/end', { session: ref, csrf: one.csrf });
  assert.equal(end.status, 200);
  assert.equal((await two.get('/profile')).status, 303, 'that browser is signed out');
  assert.equal((await one.get('/profile')).status, 200, 'this one is not');
  const mine = (await text(await one.get('/profile/security'))).match(/name="session" value="([0-9a-f-]{36})"/)[1];
  const self = await one.post('/profile/security/sessions/end', { session: mine, csrf: one.csrf });
  assert.equal(self.status, 303);
  assert.equal(self.headers.get('location'), '/login');
  assert.equal((await one.get('/profile')).status, 303);
});

test('GATEHOUSE_REQUIRE_MFA sends who must have a second factor to enrolment first', async () => {
  const bad = gatehouse(srv, ['user', 'list'], { env: { GATEHOUSE_REQUIRE_MFA: 'sometimes' } });
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /GATEHOUSE_REQUIRE_MFA/);

  const cluster = await startCluster();
  const s = await startServer({ cluster, name: 'mfa-required', env: { GATEHOUSE_REQUIRE_MFA: 'admins' } });
  try {
    const admin = createUser(s, { admin: true });
    const user = createUser(s, {});
    const a = new Client(s.url);
    await a.login(admin.email, admin.password);
    for (const path of ['/profile', '/profile/tokens', '/admin/connections']) {
      const r = await a.get(path);
      assert.equal(r.status, 303, path);
      assert.equal(r.headers.get('location'), '/profile/security', path);
    }
    const sec = await a.get('/profile/security');
    assert.equal(sec.status, 200);
    assert.match(await sec.text(), /requires two-step verification/);
    await enrol(a);
    assert.equal((await a.get('/profile')).status, 200, 'once enrolled, everything');

    const u = new Client(s.url);
    await u.login(user.email, user.password);
    assert.equal((await u.get('/profile')).status, 200, 'admins only');
  } finally {
    assert.equal(await s.stop(), 0);
    await cluster.stop();
  }

  const owners = await startServer({ name: 'mfa-owners', env: { GATEHOUSE_REQUIRE_MFA: 'owners' } });
  try {
    const owner = createUser(owners, {}), member = createUser(owners, {}), admin = createUser(owners, { admin: true });
    for (const u of [owner, member]) {
      const pat = gatehouse(owners, ['pat', 'create', '--email', u.email, '--agent', 'default', '--name', 'admit']);
      assert.equal(pat.code, 0, pat.stderr);
      secret(pat.stdout.trim());
    }
    const own = gatehouse(owners, ['member', 'owner', '--agent', 'default', '--email', owner.email, 'on']);
    assert.equal(own.code, 0, own.stderr);
    for (const [u, must] of [[owner, true], [admin, true], [member, false]]) {
      const c = new Client(owners.url);
      await c.login(u.email, u.password);
      const r = await c.get('/profile');
      assert.equal(r.status, must ? 303 : 200, u.email);
      if (must) assert.equal(r.headers.get('location'), '/profile/security');
    }
  } finally {
    assert.equal(await owners.stop(), 0);
  }

  const everyone = await startServer({ name: 'mfa-everyone', env: { GATEHOUSE_REQUIRE_MFA: 'everyone' } });
  try {
    const user = createUser(everyone, {});
    const u = new Client(everyone.url);
    await u.login(user.email, user.password);
    const r = await u.get('/profile/connections');
    assert.equal(r.status, 303);
    assert.equal(r.headers.get('location'), '/profile/security');
  } finally {
    assert.equal(await everyone.stop(), 0);
  }
});
