// The console in Chromium: every existing signed-in page has the same
// header and navigation (admin items only for admins, the current page
// marked), `/` leads a signed-in person on and others to sign-in, and an
// admin disables, enables, promotes and demotes a user on /admin/users.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { startServer, createUser, gatehouse, launchBrowser, screenshot, secret } from '../harness/index.mjs';
import { register, pkce } from '../http/oauth/lib.mjs';

const MEMBER_NAV = [
  ['/agents', 'Agents'], ['/profile/tokens', 'Tokens'], ['/profile/connections', 'Apps'],
  ['/profile/activity', 'Activity'], ['/profile/security', 'Security'],
];
const ADMIN_NAV = [
  ['/admin/agents', 'Agents'], ['/admin/users', 'Users'], ['/admin/connectors', 'Connectors'],
  ['/admin/connections', 'Apps'], ['/admin/audit', 'Audit'], ['/admin/sso', 'SSO'],
];
// Every signed-in page there is.
const MEMBER_PAGES = ['/agents', '/agents/default/members', '/profile', '/profile/tokens', '/profile/connections',
  '/profile/activity', '/profile/security'];
const ADMIN_PAGES = ['/admin/agents', '/admin/users', '/admin/connectors', '/admin/connections', '/admin/audit',
  '/admin/sso', '/agents/default/settings'];
// the nav item a page belongs to: its own, or the one its path is below
const itemOf = (path) => [...MEMBER_NAV, ...ADMIN_NAV].map(([h]) => h)
  .filter((h) => path === h || path.startsWith(`${h}/`));

let srv, browser, admin, member;

before(async () => {
  srv = await startServer({ name: 'browser-console' });
  browser = await launchBrowser();
  admin = createUser(srv, { admin: true });
  member = createUser(srv);
});
after(async () => {
  await browser?.close();
  assert.equal(await srv.stop(), 0);
});

/* A fresh context signed in as user; its cookies are recorded as secrets when closed. */
async function session(user) {
  const ctx = await browser.newContext({ viewport: { width: 1180, height: 760 } });
  const page = await ctx.newPage();
  await page.goto(`${srv.url}/login`);
  await page.fill('input[name=email]', user.email);
  await page.fill('input[name=password]', user.password);
  await Promise.all([page.waitForNavigation(), page.click('form[action="/login"] button[type=submit]')]);
  return { ctx, page };
}
async function close(ctx) {
  for (const ck of await ctx.cookies()) secret(ck.value);
  await ctx.close();
}

/* What the header shows: the nav's links, the one marked current, who is signed in. */
async function header(page) {
  return {
    nav: await page.$$eval('header nav[aria-label=Console] a', (as) => as.map((a) => [a.getAttribute('href'), a.textContent])),
    current: await page.$$eval('header nav a[aria-current=page]', (as) => as.map((a) => a.getAttribute('href'))),
    who: await page.textContent('header form[action="/logout"] a[href="/profile"]'),
    brand: await page.getAttribute('header a.brand', 'href'),
  };
}

async function visit(page, path, shot) {
  const res = await page.goto(`${srv.url}${path}`);
  assert.equal(res.status(), 200, path);
  await screenshot(page, shot);
  return header(page);
}

test('a member sees the same navigation on every page, without admin items', async () => {
  const { ctx, page } = await session(member);
  for (const path of MEMBER_PAGES) {
    const h = await visit(page, path, `console-member${path.replaceAll('/', '-')}`);
    assert.deepEqual(h.nav, MEMBER_NAV, `nav on ${path}`);
    assert.deepEqual(h.current, itemOf(path), `current item on ${path}`);
    assert.equal(h.who, member.email);
    assert.equal(h.brand, '/');
  }
  for (const path of ADMIN_PAGES.filter((p) => p.startsWith('/admin/'))) {
    assert.equal((await page.goto(`${srv.url}${path}`)).status(), 403, `${path} refuses a member`);
    assert.equal(await page.textContent('.error'), 'This page is for administrators.');
    assert.deepEqual((await header(page)).nav, MEMBER_NAV, `the refusal of ${path} is a console page`);
  }
  await screenshot(page, 'console-member-refused');
  // the navigation is links, not decoration: following one lands on its page
  await page.goto(`${srv.url}/profile`);
  await Promise.all([page.waitForNavigation(), page.click('header nav a[href="/profile/tokens"]')]);
  assert.equal(new URL(page.url()).pathname, '/profile/tokens');
  assert.deepEqual((await header(page)).current, ['/profile/tokens']);
  await close(ctx);
});

test('an admin sees the same navigation on every page, admin items included', async () => {
  const { ctx, page } = await session(admin);
  for (const path of [...MEMBER_PAGES, ...ADMIN_PAGES]) {
    const h = await visit(page, path, `console-admin${path.replaceAll('/', '-')}`);
    assert.deepEqual(h.nav, [...MEMBER_NAV, ...ADMIN_NAV], `nav on ${path}`);
    assert.deepEqual(h.current, itemOf(path), `current item on ${path}`);
    assert.equal(h.who, admin.email);
  }
  assert.equal(await page.textContent('header nav .group'), 'Admin');
  await Promise.all([page.waitForNavigation(), page.click('header nav a[href="/admin/audit"]')]);
  assert.equal(new URL(page.url()).pathname, '/admin/audit');
  await close(ctx);
});

test('the consent page carries the same header', async () => {
  const reg = await register(srv, { client_name: 'Console App', redirect_uris: ['http://127.0.0.1:9/callback'],
    token_endpoint_auth_method: 'none' });
  assert.equal(reg.status, 201);
  const p = pkce();
  const q = new URLSearchParams({ response_type: 'code', client_id: reg.body.client_id, redirect_uri: 'http://127.0.0.1:9/callback',
    code_challenge: p.challenge, code_challenge_method: 'S256', state: crypto.randomBytes(8).toString('hex'), scope: 'mcp' });
  const { ctx, page } = await session(member);
  const h = await visit(page, `/oauth/authorize?${q}`, 'console-member-consent');
  assert.deepEqual(h.nav, MEMBER_NAV);
  assert.match(await page.textContent('main'), /Console App/);
  await close(ctx);
});

test('/ leads a signed-in person to /agents and anyone else to sign in', async () => {
  const anon = await browser.newContext();
  const p = await anon.newPage();
  await p.goto(`${srv.url}/`);
  assert.equal(new URL(p.url()).pathname, '/login');
  await screenshot(p, 'console-root-signed-out');
  await close(anon);
  const { ctx, page } = await session(member);
  await page.goto(`${srv.url}/`);
  assert.equal(new URL(page.url()).pathname, '/agents');
  await close(ctx);
});

test('an admin manages a user on /admin/users; the user sees the change', async () => {
  const u = createUser(srv);
  const { ctx, page } = await session(admin);
  await page.goto(`${srv.url}/admin/users`);
  const row = page.locator(`tr[data-user="${u.email}"]`);
  assert.match(await row.textContent(), /user\s*active/);
  await screenshot(page, 'console-admin-users');

  await Promise.all([page.waitForNavigation(), row.locator('button', { hasText: 'Make admin' }).click()]);
  assert.match(await page.textContent('.notice'), new RegExp(`${u.email} is an administrator\\.`));
  assert.match(await row.textContent(), /admin\s*active/);
  const them = await session(u);
  assert.deepEqual((await header(them.page)).nav, [...MEMBER_NAV, ...ADMIN_NAV], 'the new admin has the admin items');

  await Promise.all([page.waitForNavigation(), row.locator('button', { hasText: 'Remove admin' }).click()]);
  await Promise.all([page.waitForNavigation(), row.locator('button', { hasText: 'Disable' }).click()]);
  assert.match(await page.textContent('.notice'), /is disabled and signed out everywhere\./);
  assert.match(await row.textContent(), /user\s*disabled/);
  await screenshot(page, 'console-admin-users-disabled');
  await them.page.goto(`${srv.url}/profile`);
  assert.equal(new URL(them.page.url()).pathname, '/login', 'the disabled user was signed out');
  assert.match(gatehouse(srv, ['user', 'list']).stdout, new RegExp(`${u.email}\\s+user\\s+disabled`));

  await Promise.all([page.waitForNavigation(), row.locator('button', { hasText: 'Enable' }).click()]);
  assert.match(await row.textContent(), /user\s*active/);
  await close(them.ctx);
  await close(ctx);
});

test('the last active admin is kept: a sentence, not a change', async () => {
  const own = await startServer({ name: 'browser-console-last' });
  try {
    const only = createUser(own, { admin: true });
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    await page.goto(`${own.url}/login`);
    await page.fill('input[name=email]', only.email);
    await page.fill('input[name=password]', only.password);
    await Promise.all([page.waitForNavigation(), page.click('form[action="/login"] button[type=submit]')]);
    await page.goto(`${own.url}/admin/users`);
    const row = page.locator(`tr[data-user="${only.email}"]`);
    const [res] = await Promise.all([page.waitForNavigation(), row.locator('button', { hasText: 'Disable' }).click()]);
    assert.equal(res.status(), 409);
    assert.equal(await page.textContent('.error'),
      `${only.email} is the last active administrator: make another user an administrator first.`);
    assert.match(await row.textContent(), /admin\s*active/);
    assert.deepEqual((await page.$$eval('header nav a', (as) => as.length)), MEMBER_NAV.length + ADMIN_NAV.length);
    await screenshot(page, 'console-admin-users-last-admin');
    await close(ctx);
  } finally {
    assert.equal(await own.stop(), 0);
  }
});
