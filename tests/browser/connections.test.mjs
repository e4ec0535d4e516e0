// Members' own upstream accounts in Chromium (gateway/connect.c): an
// oauth-app connector whose provider is oidc-provider (npm), run here; a
// member connects at /agents/default/connections (authorization code +
// PKCE S256, state bound to the session, single use, ten minutes), the
// tokens are sealed to the member's vault key, and every bad callback is
// refused with a sentence and changes nothing.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import crypto from 'node:crypto';
import Provider from 'oidc-provider';
import { startServer, createUser, launchBrowser, screenshot, secret, freePort, gatehouse } from '../harness/index.mjs';

const CLIENT_SECRET = secret(`app-secret-${crypto.randomBytes(12).toString('hex')}`);
const accounts = { alice: { email: 'alice@upstream.example', email_verified: true } };

let srv, browser, idp, issuer, member;
let tamper = null;          // (body) => body, applied to the next token response
const issued = [];          // every token the provider handed out
const tokenCalls = [];      // the forms Gatehouse posted to /token

before(async () => {
  const port = await freePort();
  issuer = `http://127.0.0.1:${port}`;
  srv = await startServer({ name: 'browser-connections' });
  const provider = new Provider(issuer, {
    clients: [{ client_id: 'gatehouse-app', client_secret: CLIENT_SECRET, redirect_uris: [`${srv.url}/connect/callback`],
      grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_post' }],
    findAccount: async (ctx, id) => accounts[id] && { accountId: id, claims: async () => ({ sub: id, ...accounts[id] }) },
    claims: { openid: ['sub'], email: ['email', 'email_verified'] },
    pkce: { required: () => true },
    features: { devInteractions: { enabled: true } },
  });
  provider.use(async (ctx, next) => {
    await next();
    if (ctx.path === '/token') {
      tokenCalls.push(ctx.oidc?.body ?? {});
      for (const k of ['access_token', 'refresh_token', 'id_token']) if (ctx.body?.[k]) issued.push(secret(ctx.body[k]));
      if (tamper) {
        const t = tamper;
        tamper = null;
        ctx.body = t(ctx.body);
      }
    }
  });
  idp = http.createServer(provider.callback());
  await new Promise((r) => idp.listen(port, '127.0.0.1', r));
  const add = gatehouse(srv, ['connector', 'add', '--agent', 'default', '--name', 'idp', '--url', `${issuer}/mcp`,
    '--auth', 'oauth-app', '--client-id', 'gatehouse-app', '--client-secret-stdin', '--authorize-url', `${issuer}/auth`,
    '--token-url', `${issuer}/token`, '--userinfo-url', `${issuer}/me`, '--scopes', 'openid email'], { input: `${CLIENT_SECRET}\n` });
  assert.equal(add.code, 0, add.stderr);
  member = createUser(srv, {});
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  idp?.close();
  assert.equal(await srv.stop(), 0);
});

async function signedInPage() {
  const ctx = await browser.newContext();
  await ctx.route(/fonts\.googleapis\.com/, (r) => r.abort());   // the provider's page style; no internet
  const page = await ctx.newPage();
  await page.goto(`${srv.url}/login`);
  await page.fill('input[name=email]', member.email);
  await page.fill('input[name=password]', member.password);
  await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
  return page;
}

/* Clicks Connect and goes through the provider's sign-in and consent; the callback's response. */
async function connect(page, button = 'button[data-action=connect][data-connector=idp]') {
  const callback = page.waitForResponse((r) => r.url().startsWith(`${srv.url}/connect/callback`));
  await page.click(button);
  for (;;) {
    const what = await Promise.race([
      callback.then(() => 'done'),
      page.waitForSelector('input[name=login]', { timeout: 15000 }).then(() => 'login', () => 'stuck'),
      page.waitForSelector('button:has-text("Continue")', { timeout: 15000 }).then(() => 'consent', () => 'stuck'),
    ]);
    if (what === 'done') break;
    if (what === 'stuck') throw new Error(`connect stuck at ${page.url()}`);
    if (what === 'login') {
      await page.fill('input[name=login]', 'alice');
      await page.fill('input[name=password]', 'any-password');
      await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
    } else {
      await Promise.all([page.waitForNavigation().catch(() => {}), page.click('button:has-text("Continue")')]);
    }
  }
  const res = await callback;
  secret(new URL(res.url()).searchParams.get('code') ?? '');
  await page.waitForLoadState('domcontentloaded');
  return res;
}

/* The authorization request Connect sends, stopped before the provider: its state. */
async function startOnly(page) {
  const req = page.waitForRequest((r) => r.url().startsWith(`${issuer}/auth`));
  await page.click('button[data-action=connect][data-connector=idp]');
  const u = new URL((await req).url());
  await page.waitForLoadState('domcontentloaded');
  return u;
}

const rows = () => srv.cluster.sql(`SELECT count(*) FROM vault_connections`);

test('connect, status, disconnect; the tokens sealed to the member\'s key', async () => {
  const page = await signedInPage();
  await page.goto(`${srv.url}/agents/default/connections`);
  assert.match(await page.textContent('.notice'), /Create a personal access token/);
  // without a key, Connect says why and starts nothing
  const [nokey] = await Promise.all([page.waitForNavigation(), page.click('button[data-action=connect][data-connector=idp]')]);
  assert.equal(nokey.status(), 409);
  // a PAT makes the member's key
  await page.goto(`${srv.url}/profile/tokens`);
  await page.fill('#name', 'laptop');
  await Promise.all([page.waitForNavigation(), page.click('form[action="/profile/tokens"] button')]);
  secret(await page.textContent('#new-token'));

  await page.goto(`${srv.url}/agents/default/connections`);
  await screenshot(page, 'connections-before');
  const authz = await startOnly(page);
  assert.equal(authz.searchParams.get('code_challenge_method'), 'S256');
  assert.equal(authz.searchParams.get('redirect_uri'), `${srv.url}/connect/callback`);
  assert.equal(authz.searchParams.get('client_id'), 'gatehouse-app');
  assert.equal(authz.searchParams.get('scope'), 'openid email');
  assert.match(authz.searchParams.get('state'), /^[0-9a-f]{64}$/);

  await page.goto(`${srv.url}/agents/default/connections`);
  const res = await connect(page);
  assert.equal(res.status(), 303);
  assert.match(page.url(), /\/agents\/default\/connections\?connected=idp$/);
  const row = await page.textContent('tr[data-connector=idp]');
  assert.match(row, /Connected as alice@upstream\.example/);
  assert.match(row, /never/);
  await screenshot(page, 'connections-connected');
  // the code went back with the verifier and the secret in the body
  const form = tokenCalls.at(-1);
  assert.equal(form.grant_type, 'authorization_code');
  assert.match(form.code_verifier, /^[0-9a-f]{64}$/);
  assert.equal(form.client_secret, CLIENT_SECRET);

  // sealed: no token issued in the database, not even with the server key's seals
  const dump = srv.cluster.sql(`SELECT string_agg(row_to_json(v)::text, ' ') FROM vault_connections v`);
  assert.ok(issued.length >= 1);
  for (const t of issued) assert.ok(!dump.includes(t), 'no token in the clear');

  // the callback again: its state was used
  const replay = await page.goto(res.url());
  assert.equal(replay.status(), 400);
  assert.match(await page.textContent('.error'), /expired or was already used/);

  // disconnect
  await page.goto(`${srv.url}/agents/default/connections`);
  await Promise.all([page.waitForNavigation(), page.click('button[data-action=disconnect][data-connector=idp]')]);
  assert.match(await page.textContent('.notice'), /Disconnected idp/);
  assert.match(await page.textContent('tr[data-connector=idp]'), /Not connected/);
  assert.equal(rows(), '0');
  await screenshot(page, 'connections-disconnected');
});

test('bad callbacks: forged, expired, another session\'s state, provider error, no access token', async () => {
  const page = await signedInPage();
  await page.goto(`${srv.url}/agents/default/connections`);
  const forged = await page.goto(`${srv.url}/connect/callback?state=${'ab'.repeat(32)}&code=x`);
  assert.equal(forged.status(), 400);
  assert.match(await page.textContent('.error'), /expired or was already used/);
  await screenshot(page, 'connections-bad-state');

  // the provider's error
  await page.goto(`${srv.url}/agents/default/connections`);
  let u = await startOnly(page);
  const denied = await page.goto(`${srv.url}/connect/callback?state=${u.searchParams.get('state')}&error=access_denied`);
  assert.equal(denied.status(), 400);
  assert.match(await page.textContent('.error'), /did not connect your account \(access_denied\)/);

  // expired
  await page.goto(`${srv.url}/agents/default/connections`);
  u = await startOnly(page);
  srv.cluster.sql(`UPDATE connect_states SET created_at = now() - interval '11 minutes'`);
  const expired = await page.goto(`${srv.url}/connect/callback?state=${u.searchParams.get('state')}&code=x`);
  assert.equal(expired.status(), 400);
  assert.match(await page.textContent('.error'), /expired/);

  // started in this session, finished in another one (a planted callback)
  await page.goto(`${srv.url}/agents/default/connections`);
  u = await startOnly(page);
  const other = await signedInPage();
  const planted = await other.goto(`${srv.url}/connect/callback?state=${u.searchParams.get('state')}&code=x`);
  assert.equal(planted.status(), 400);
  assert.match(await other.textContent('.error'), /another browser session/);

  // a token response without an access token
  await page.goto(`${srv.url}/agents/default/connections`);
  tamper = (body) => ({ token_type: 'Bearer', expires_in: 3600 });
  const noat = await connect(page);
  assert.equal(noat.status(), 502);
  assert.match(await page.textContent('.error'), /no access token/);
  await screenshot(page, 'connections-no-access-token');
  assert.equal(rows(), '0', 'nothing stored');

  // not a member: no page
  const outsider = createUser(srv, { agents: [] });
  const ctx = await browser.newContext();
  const op = await ctx.newPage();
  await op.goto(`${srv.url}/login`);
  await op.fill('input[name=email]', outsider.email);
  await op.fill('input[name=password]', outsider.password);
  await Promise.all([op.waitForNavigation(), op.click('button[type=submit]')]);
  const no = await op.goto(`${srv.url}/agents/default/connections`);
  assert.equal(no.status(), 403);
});
