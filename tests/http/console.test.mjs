// The console: `/` as its front door, one navigation whose admin items only
// admins get, and /admin/users (list, disable/enable, make/remove admin,
// never the last active admin).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, Client, createUser, gatehouse } from '../harness/index.mjs';

const MEMBER_NAV = ['/agents', '/profile/tokens', '/profile/connections', '/profile/activity', '/profile/security'];
const ADMIN_NAV = ['/admin/agents', '/admin/users', '/admin/connectors', '/admin/connections', '/admin/audit', '/admin/sso'];

let srv;
before(async () => { srv = await startServer({ name: 'console' }); });
after(async () => { assert.equal(await srv.stop(), 0); });

async function signedIn(user) {
  const c = new Client(srv.url);
  const res = await c.login(user.email, user.password);
  assert.equal(res.status, 303);
  return c;
}

function navOf(html) {
  const nav = html.match(/<nav aria-label="Console">(.*?)<\/nav>/s);
  assert.ok(nav, 'the page has the console navigation');
  return [...nav[1].matchAll(/<a href="([^"]+)"/g)].map((m) => m[1]);
}

const userId = (email) => srv.cluster.sql(`SELECT id FROM users WHERE email = '${email}'`);
const row = (email) => srv.cluster.sql(`SELECT role || ' ' || CASE WHEN disabled THEN 't' ELSE 'f' END FROM users WHERE email = '${email}'`);

async function act(c, action, user, status = 303) {
  const res = await c.form('/admin/users', `/admin/users/${action}`, { user });
  const body = await res.text();
  assert.equal(res.status, status, body);
  return { res, body };
}

test('/ sends a signed-in person to /agents and everyone else to /login', async () => {
  const anon = await new Client(srv.url).get('/');
  assert.equal(anon.status, 303);
  assert.equal(anon.headers.get('location'), '/login');
  const c = await signedIn(createUser(srv));
  const res = await c.get('/');
  assert.equal(res.status, 303);
  assert.equal(res.headers.get('location'), '/agents');
});

test('every page has the same navigation: admin items for admins only', async () => {
  const member = await signedIn(createUser(srv));
  const admin = await signedIn(createUser(srv, { admin: true }));
  for (const path of ['/agents', '/profile', '/profile/tokens', '/profile/connections', '/profile/activity']) {
    const m = await member.get(path);
    assert.equal(m.status, 200, path);
    assert.deepEqual(navOf(await m.text()), MEMBER_NAV, `member nav on ${path}`);
    const a = await admin.get(path);
    assert.deepEqual(navOf(await a.text()), [...MEMBER_NAV, ...ADMIN_NAV], `admin nav on ${path}`);
  }
  for (const path of ['/admin/agents', '/admin/users', '/admin/connectors', '/admin/connections', '/admin/audit', '/admin/sso']) {
    const a = await admin.get(path);
    assert.equal(a.status, 200, path);
    const html = await a.text();
    assert.deepEqual(navOf(html), [...MEMBER_NAV, ...ADMIN_NAV], `admin nav on ${path}`);
    assert.match(html, new RegExp(`<a href="${path}" aria-current="page">`), `${path} is marked current`);
    const m = await member.get(path);
    assert.equal(m.status, 403, `${path} refuses a member`);
  }
});

test('an owner of an agent who is not an admin gets no admin item', async () => {
  const owner = createUser(srv);
  assert.equal(gatehouse(srv, ['member', 'owner', '--agent', 'default', '--email', owner.email, 'on']).code, 0);
  const c = await signedIn(owner);
  for (const path of ['/agents', '/agents/default/members', '/profile/tokens']) {
    const res = await c.get(path);
    assert.equal(res.status, 200, path);
    assert.deepEqual(navOf(await res.text()), MEMBER_NAV, `owner nav on ${path}`);
  }
  const below = await (await c.get('/agents/default/settings')).text();
  assert.match(below, /<a href="\/agents" aria-current="page">Agents<\/a>/, 'an agent\'s page marks Agents');
  assert.equal((await c.get('/admin/agents')).status, 403);
});

test('/admin/users lists accounts; a member gets 403 and changes nothing', async () => {
  const admin = await signedIn(createUser(srv, { admin: true }));
  const u = createUser(srv);
  const page = await admin.get('/admin/users');
  const html = await page.text();
  assert.match(html, new RegExp(`<tr data-user="${u.email}"><td>${u.email}</td><td>user</td><td>active</td>`));

  const member = await signedIn(createUser(srv));
  assert.equal((await member.get('/admin/users')).status, 403);
  const post = await member.form('/profile', '/admin/users/make-admin', { user: userId(u.email) });
  assert.equal(post.status, 403);
  assert.equal(row(u.email), 'user f');
  assert.equal((await new Client(srv.url).get('/admin/users')).headers.get('location'), '/login?next=%2Fadmin%2Fusers');
});

test('disable signs the user out and refuses sign-in; enable lets them back', async () => {
  const admin = await signedIn(createUser(srv, { admin: true }));
  const u = createUser(srv);
  const victim = await signedIn(u);
  assert.equal((await victim.get('/profile')).status, 200);

  const { res } = await act(admin, 'disable', userId(u.email));
  assert.equal(res.headers.get('location'), `/admin/users?done=disable&user=${userId(u.email)}`);
  const after = await admin.get(res.headers.get('location'));
  const html = await after.text();
  assert.match(html, new RegExp(`<p class="notice" role="status">${u.email} is disabled and signed out everywhere.</p>`));
  assert.match(html, new RegExp(`data-user="${u.email}"><td>${u.email}</td><td>user</td><td>disabled</td>`));
  assert.equal(row(u.email), 'user t');
  assert.equal((await victim.get('/profile')).status, 303, 'the open session is gone');
  assert.equal((await new Client(srv.url).login(u.email, u.password)).status, 401);

  await act(admin, 'enable', userId(u.email));
  assert.equal(row(u.email), 'user f');
  assert.equal((await new Client(srv.url).login(u.email, u.password)).status, 303);
  assert.match(gatehouse(srv, ['user', 'list']).stdout, new RegExp(`${u.email}\\s+user\\s+active`));
});

test('make admin gives the admin pages; remove admin takes them away', async () => {
  const admin = await signedIn(createUser(srv, { admin: true }));
  const u = createUser(srv);
  const c = await signedIn(u);
  assert.equal((await c.get('/admin/users')).status, 403);
  await act(admin, 'make-admin', userId(u.email));
  assert.equal(row(u.email), 'admin f');
  const now = await c.get('/admin/users');
  assert.equal(now.status, 200);
  assert.deepEqual(navOf(await now.text()), [...MEMBER_NAV, ...ADMIN_NAV]);
  await act(admin, 'remove-admin', userId(u.email));
  assert.equal(row(u.email), 'user f');
  assert.equal((await c.get('/admin/users')).status, 403);
  assert.deepEqual(navOf(await (await c.get('/profile')).text()), MEMBER_NAV);
});

test('the last active admin can be neither disabled nor demoted', async () => {
  // a server of its own: the other tests' admins would stand in
  const own = await startServer({ name: 'console-last-admin' });
  try {
    const a = createUser(own, { admin: true });
    const c = new Client(own.url);
    assert.equal((await c.login(a.email, a.password)).status, 303);
    const id = own.cluster.sql(`SELECT id FROM users WHERE email = '${a.email}'`);
    const state = () => own.cluster.sql(`SELECT role || ' ' || CASE WHEN disabled THEN 't' ELSE 'f' END FROM users WHERE id = '${id}'`);
    for (const action of ['disable', 'remove-admin']) {
      const res = await c.form('/admin/users', `/admin/users/${action}`, { user: id });
      assert.equal(res.status, 409, action);
      assert.match(await res.text(), new RegExp(`<p class="error" role="alert">${a.email} is the last active administrator: make another user an administrator first.</p>`));
      assert.equal(state(), 'admin f', `${action} changed nothing`);
    }
    // a disabled admin does not count: demoting one is allowed, the active one still is not
    const b = createUser(own, { admin: true });
    const bid = own.cluster.sql(`SELECT id FROM users WHERE email = '${b.email}'`);
    assert.equal((await c.form('/admin/users', '/admin/users/disable', { user: bid })).status, 303);
    assert.equal((await c.form('/admin/users', '/admin/users/disable', { user: id })).status, 409);
    assert.equal((await c.form('/admin/users', '/admin/users/remove-admin', { user: bid })).status, 303);
    assert.equal(state(), 'admin f');
    // with a second active admin, an admin may step down; they land where they still may go
    assert.equal((await c.form('/admin/users', '/admin/users/make-admin', { user: bid })).status, 303);
    assert.equal((await c.form('/admin/users', '/admin/users/enable', { user: bid })).status, 303);
    const down = await c.form('/admin/users', '/admin/users/remove-admin', { user: id });
    assert.equal(down.status, 303);
    assert.equal(down.headers.get('location'), '/');
    assert.equal(state(), 'user f');
  } finally {
    assert.equal(await own.stop(), 0);
  }
});

test('two admins removing each other at once: one of them stays', async () => {
  const own = await startServer({ name: 'console-race' });
  try {
    const users = [createUser(own, { admin: true }), createUser(own, { admin: true })];
    const clients = await Promise.all(users.map(async (u) => {
      const c = new Client(own.url);
      assert.equal((await c.login(u.email, u.password)).status, 303);
      await (await c.get('/admin/users')).arrayBuffer();
      return c;
    }));
    const ids = users.map((u) => own.cluster.sql(`SELECT id FROM users WHERE email = '${u.email}'`));
    for (const action of ['disable', 'remove-admin']) {
      const res = await Promise.all([
        clients[0].post(`/admin/users/${action}`, { user: ids[1], csrf: clients[0].csrf }),
        clients[1].post(`/admin/users/${action}`, { user: ids[0], csrf: clients[1].csrf }),
      ]);
      // one succeeds; the other is refused as the last admin, or (disable) finds itself signed out
      const done = res.map((r) => (r.headers.get('location') ?? '').startsWith('/admin/users?done='));
      assert.deepEqual(done.filter(Boolean).length, 1, `${action}: ${res.map((r) => r.status)}`);
      assert.equal(own.cluster.sql("SELECT count(*) FROM users WHERE role = 'admin' AND NOT disabled"), '1');
      // clients[i] acted on user 1-i: the winner puts the other back
      const winner = done[0] ? 0 : 1, loser = 1 - winner;
      const back = action === 'disable' ? 'enable' : 'make-admin';
      assert.equal((await clients[winner].form('/admin/users', `/admin/users/${back}`, { user: ids[loser] })).status, 303);
      const c = new Client(own.url);
      assert.equal((await c.login(users[loser].email, users[loser].password)).status, 303);
      await (await c.get('/admin/users')).arrayBuffer();
      clients[loser] = c;
    }
  } finally {
    assert.equal(await own.stop(), 0);
  }
});

test('bad requests: no CSRF, an unknown or malformed user, an unknown action', async () => {
  const admin = await signedIn(createUser(srv, { admin: true }));
  const u = createUser(srv);
  await (await admin.get('/admin/users')).arrayBuffer();
  const nocsrf = await admin.post('/admin/users/make-admin', { user: userId(u.email) });
  assert.equal(nocsrf.status, 403);
  assert.equal(row(u.email), 'user f');
  const unknown = await act(admin, 'disable', '00000000-0000-4000-8000-000000000000', 404);
  assert.match(unknown.body, /<p class="error" role="alert">There is no such user.<\/p>/);
  assert.match(unknown.body, /<nav aria-label="Console">/, 'the refusal is a page of the console');
  const malformed = await act(admin, 'disable', "x' OR 1=1 --", 400);
  assert.match(malformed.body, /There is no such user\./);
  const cut = await act(admin, 'disable', `${userId(u.email)}\0tail`, 400);
  assert.match(cut.body, /There is no such user\./);
  const missing = await admin.post('/admin/users/disable', { csrf: admin.csrf });
  assert.equal(missing.status, 400);
  for (const bad of ['%00', '%FF%FE', '%0A'].map((q) => `/admin/users?email=${q}`)) {
    const res = await admin.get(bad);
    assert.equal(res.status, 400, bad);
    assert.match(await res.text(), /<p class="error" role="alert">Filter by text: the email filter held characters no email has.<\/p>/);
  }
  const action = await admin.post('/admin/users/delete', { user: userId(u.email), csrf: admin.csrf });
  assert.equal(action.status, 404);
  assert.equal(row(u.email), 'user f');
  assert.equal(srv.cluster.sql("SELECT count(*) FROM users WHERE disabled"), '0');
});
