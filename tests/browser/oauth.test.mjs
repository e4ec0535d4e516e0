// The OAuth pages in a real browser (Debian chromium through playwright-core):
// consent approve and deny, the consent page refusing to be framed,
// Disconnect at /profile/connections, create and revoke at /profile/tokens,
// revoke by client at /admin/connections (and 403 for a non-admin).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import http from 'node:http';
import { startServer, createUser, launchBrowser, screenshot, secret } from '../harness/index.mjs';
import { register, pkce, token, mcp } from '../http/oauth/lib.mjs';

let srv, browser, app;

/* The client application's side: an http server on another origin that
 * receives the redirect after consent (and can host a framing page). */
function startApp() {
  const hits = [];
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, `http://${req.headers.host}`);
    if (url.pathname === '/frame') {
      res.writeHead(200, { 'Content-Type': 'text/html' });
      res.end(`<!doctype html><title>framer</title><iframe id="f" src="${url.searchParams.get('src')}" width="600" height="400"></iframe>`);
      return;
    }
    hits.push(url);
    res.writeHead(200, { 'Content-Type': 'text/html' });
    res.end('<!doctype html><title>app</title><p>back at the app</p>');
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => {
    const base = `http://127.0.0.1:${server.address().port}`;
    resolve({ server, hits, base, callback: `${base}/callback` });
  }));
}

before(async () => {
  srv = await startServer({ name: 'browser-oauth' });
  browser = await launchBrowser();
  app = await startApp();
});
after(async () => {
  await browser?.close();
  app?.server.close();
  assert.equal(await srv.stop(), 0);
});

/* Records the context's cookies (the session among them) as secrets, then closes it. */
async function done(ctx) {
  for (const ck of await ctx.cookies()) secret(ck.value);
  await ctx.close();
}

async function signIn(page, user) {
  await page.goto(`${srv.url}/login`);
  await page.fill('input[name=email]', user.email);
  await page.fill('input[name=password]', user.password);
  await Promise.all([page.waitForNavigation(), page.click('form[action="/login"] button[type=submit]')]);
}

async function newClient(name) {
  const reg = await register(srv, { client_name: name, redirect_uris: [app.callback], token_endpoint_auth_method: 'none',
    grant_types: ['authorization_code', 'refresh_token'] });
  assert.equal(reg.status, 201);
  return reg.body;
}

function authorizeUrl(client, p, state) {
  const q = new URLSearchParams({ response_type: 'code', client_id: client.client_id, redirect_uri: app.callback,
    code_challenge: p.challenge, code_challenge_method: 'S256', state, scope: 'mcp offline_access' });
  return `${srv.url}/oauth/authorize?${q}`;
}

/* Runs the whole dance in the browser and exchanges the code; returns tokens. */
async function approveIn(page, client, shot) {
  const p = pkce();
  const state = crypto.randomBytes(8).toString('hex');
  await page.goto(authorizeUrl(client, p, state));
  if (shot) await screenshot(page, shot);
  await Promise.all([page.waitForURL((u) => u.href.startsWith(app.callback)), page.click('button[name=decision][value=approve]')]);
  const back = new URL(page.url());
  assert.equal(back.searchParams.get('state'), state);
  assert.equal(back.searchParams.get('iss'), srv.url);
  const code = secret(back.searchParams.get('code'));
  assert.ok(code);
  const t = await token(srv, { grant_type: 'authorization_code', code, redirect_uri: app.callback, code_verifier: p.verifier,
    client_id: client.client_id });
  assert.equal(t.status, 200, JSON.stringify(t.body));
  return t.body;
}

test('consent: not signed in -> login -> consent page -> Approve -> back at the app with a working code', async () => {
  const user = createUser(srv, {});
  const client = await newClient('Browser App');
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  const p = pkce();
  await page.goto(authorizeUrl(client, p, 'st-approve'));
  assert.equal(new URL(page.url()).pathname, '/login', 'sent to sign in first');
  await page.fill('input[name=email]', user.email);
  await page.fill('input[name=password]', user.password);
  await Promise.all([page.waitForNavigation(), page.click('form[action="/login"] button[type=submit]')]);
  assert.equal(new URL(page.url()).pathname, '/oauth/authorize', 'back to the same request');
  const text = await page.textContent('body');
  assert.match(text, /Browser App/);
  assert.match(text, /registered dynamically/);
  assert.match(text, /127\.0\.0\.1/);
  assert.match(text, /Default agent/);
  assert.ok(await page.isVisible('button[name=decision][value=approve]'));
  assert.ok(await page.isVisible('button[name=decision][value=deny]'));
  await screenshot(page, 'oauth-consent');
  await Promise.all([page.waitForURL((u) => u.href.startsWith(app.callback)), page.click('button[name=decision][value=approve]')]);
  const back = new URL(page.url());
  assert.equal(back.searchParams.get('state'), 'st-approve');
  assert.equal(back.searchParams.get('iss'), srv.url);
  const code = secret(back.searchParams.get('code'));
  const t = await token(srv, { grant_type: 'authorization_code', code, redirect_uri: app.callback, code_verifier: p.verifier,
    client_id: client.client_id });
  assert.equal(t.status, 200);
  assert.notEqual((await mcp(srv, '/mcp', t.body.access_token)).status, 401);
  await done(ctx);
});

test('consent: Deny -> access_denied at the app, and the next request is refused without asking', async () => {
  const user = createUser(srv, {});
  const client = await newClient('Denied App');
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  await signIn(page, user);
  const p = pkce();
  await page.goto(authorizeUrl(client, p, 'st-deny'));
  await Promise.all([page.waitForURL((u) => u.href.startsWith(app.callback)), page.click('button[name=decision][value=deny]')]);
  let back = new URL(page.url());
  assert.equal(back.searchParams.get('error'), 'access_denied');
  assert.equal(back.searchParams.get('state'), 'st-deny');
  assert.equal(back.searchParams.get('iss'), srv.url);
  assert.equal(back.searchParams.get('code'), null);
  await screenshot(page, 'oauth-denied');
  // sticky: straight back to the app with the same error, no consent page
  await page.goto(authorizeUrl(client, p, 'st-deny-2'));
  back = new URL(page.url());
  assert.ok(back.href.startsWith(app.callback));
  assert.equal(back.searchParams.get('error'), 'access_denied');
  assert.equal(back.searchParams.get('state'), 'st-deny-2');
  await done(ctx);
});

test('the consent page cannot be framed by another origin', async () => {
  const user = createUser(srv, {});
  const client = await newClient('Framed App');
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  await signIn(page, user);
  const consentUrl = authorizeUrl(client, pkce(), 'st-frame');
  const direct = await page.goto(consentUrl);
  assert.equal(direct.status(), 200);
  assert.ok(await page.isVisible('button[name=decision][value=approve]'), 'the page itself renders');
  await page.goto(`${app.base}/frame?src=${encodeURIComponent(consentUrl)}`);
  await page.waitForTimeout(500);
  const frame = page.frames().find((f) => f !== page.mainFrame());
  assert.ok(frame, 'the iframe exists');
  const buttons = await frame.$$('button[name=decision]').catch(() => []);
  assert.equal(buttons.length, 0, 'the consent form did not render inside the frame');
  await screenshot(page, 'oauth-consent-framed');
  await done(ctx);
});

test('/profile/connections: Disconnect revokes the grant', async () => {
  const user = createUser(srv, {});
  const client = await newClient('Disconnect Me');
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  await signIn(page, user);
  const t = await approveIn(page, client);
  assert.notEqual((await mcp(srv, '/mcp', t.access_token)).status, 401);
  await page.goto(`${srv.url}/profile/connections`);
  const row = page.locator('tr', { hasText: 'Disconnect Me' });
  assert.equal(await row.count(), 1);
  assert.match(await row.textContent(), /Default agent/);
  assert.match(await row.textContent(), /never|\d{4}-\d\d-\d\d/);
  await screenshot(page, 'oauth-profile-connections');
  await Promise.all([page.waitForNavigation(), row.locator('button', { hasText: 'Disconnect' }).click()]);
  assert.equal(new URL(page.url()).pathname, '/profile/connections');
  assert.equal(await page.locator('tr', { hasText: 'Disconnect Me' }).count(), 0);
  const res = await mcp(srv, '/mcp', t.access_token);
  assert.equal(res.status, 401);
  assert.match(res.headers.get('www-authenticate'), /invalid_token/);
  const r = await token(srv, { grant_type: 'refresh_token', refresh_token: t.refresh_token, client_id: client.client_id });
  assert.equal(r.body.error, 'invalid_grant');
  await screenshot(page, 'oauth-profile-connections-after');
  await done(ctx);
});

test('/profile/tokens: create (shown once) and revoke', async () => {
  const user = createUser(srv, {});
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  await signIn(page, user);
  await page.goto(`${srv.url}/profile/tokens`);
  await page.fill('input[name=name]', 'browser-laptop');
  await page.selectOption('select[name=agent]', 'default');
  await page.fill('input[name=expires_days]', '30');
  await Promise.all([page.waitForNavigation(), page.click('form[action="/profile/tokens"] button[type=submit]')]);
  const pat = secret((await page.textContent('#new-token')).trim());
  assert.match(pat, /^gth_pat_[0-9A-Za-z]{32}_[0-9A-Za-z]{6}$/);
  await screenshot(page, 'oauth-profile-token-created');
  assert.notEqual((await mcp(srv, '/mcp', pat)).status, 401);
  await page.goto(`${srv.url}/profile/tokens`);
  assert.equal(await page.locator('#new-token').count(), 0, 'shown once');
  assert.ok(!(await page.content()).includes(pat));
  const row = page.locator('tr', { hasText: 'browser-laptop' });
  assert.equal(await row.count(), 1);
  assert.ok((await row.textContent()).includes(pat.slice(0, 12)), 'prefix listed');
  await Promise.all([page.waitForNavigation(), row.locator('button', { hasText: 'Revoke' }).click()]);
  assert.equal(await page.locator('tr', { hasText: 'browser-laptop' }).count(), 0);
  await screenshot(page, 'oauth-profile-token-revoked');
  const res = await mcp(srv, '/mcp', pat);
  assert.equal(res.status, 401);
  assert.match(res.headers.get('www-authenticate'), /invalid_token/);
  await done(ctx);
});

test('/admin/connections: revoke every grant of one client; 403 for a non-admin', async () => {
  const admin = createUser(srv, { admin: true });
  const u1 = createUser(srv, {}), u2 = createUser(srv, {});
  const shared = await newClient('Shared Browser Client');
  const other = await newClient('Untouched Browser Client');
  const grants = [];
  for (const u of [u1, u2]) {
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    await signIn(page, u);
    grants.push(await approveIn(page, shared));
    if (u === u2) grants.push(await approveIn(page, other));
    // a member is refused the admin page
    if (u === u1) {
      const res = await page.goto(`${srv.url}/admin/connections`);
      assert.equal(res.status(), 403);
      await screenshot(page, 'oauth-admin-connections-403');
    }
    await done(ctx);
  }
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  await signIn(page, admin);
  await page.goto(`${srv.url}/admin/connections`);
  await page.fill('input[name=client]', shared.client_id);
  await Promise.all([page.waitForNavigation(), page.click('form.filters button[type=submit]')]);
  const rows = page.locator('tbody tr');
  assert.equal(await rows.count(), 2, 'both users of the shared client');
  const text = await page.textContent('tbody');
  assert.ok(text.includes(u1.email) && text.includes(u2.email));
  assert.ok(!text.includes('Untouched Browser Client'));
  await screenshot(page, 'oauth-admin-connections');
  await Promise.all([page.waitForNavigation(), rows.first().locator('button', { hasText: 'Revoke every grant of this client' }).click()]);
  assert.equal(new URL(page.url()).pathname, '/admin/connections');
  assert.equal(await page.locator('tr', { hasText: 'Shared Browser Client' }).count(), 0);
  assert.equal(await page.locator('tr', { hasText: 'Untouched Browser Client' }).count(), 1);
  await screenshot(page, 'oauth-admin-connections-after');
  assert.equal((await mcp(srv, '/mcp', grants[0].access_token)).status, 401);
  assert.equal((await mcp(srv, '/mcp', grants[1].access_token)).status, 401);
  assert.notEqual((await mcp(srv, '/mcp', grants[2].access_token)).status, 401, 'the other client keeps its grant');
  await done(ctx);
});
