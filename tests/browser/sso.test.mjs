// Single sign-on in Chromium against oidc-provider (npm) as the identity
// provider, run in this process with keys the test holds: an admin sets the
// provider at /admin/sso, users sign in with it (RS256, then ES256), and
// every bad ID token, state and email is refused.  The bad ID tokens are
// the provider's own answers re-signed or altered by the test on their way
// out of its token endpoint.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import crypto from 'node:crypto';
import Provider from 'oidc-provider';
import * as jose from 'jose';
import { startServer, createUser, launchBrowser, screenshot, secret, freePort, Client } from '../harness/index.mjs';

const CLIENT_SECRET = secret(`sso-client-secret-${crypto.randomBytes(12).toString('hex')}`);
const accounts = {
  alice: { email: 'alice@corp.example', email_verified: true },
  newbie: { email: 'newbie@corp.example', email_verified: true },
  mallory: { email: 'mallory@other.example', email_verified: true },
  unverified: { email: 'unverified@corp.example', email_verified: false },
};

let srv, browser, idp, issuer, rsaKey, ecKey;
let tamper = null;          // (claims, header) => id_token, applied to the next token response
let jwksFetches = 0;
let lastAlg = null;         // alg of the last ID token the provider issued

async function privateJwk(alg, kid) {
  const { privateKey } = await jose.generateKeyPair(alg, { extractable: true });
  return { ...(await jose.exportJWK(privateKey)), kid, alg, use: 'sig' };
}

async function sign(claims, { jwk = rsaKey, header = {} } = {}) {
  const key = await jose.importJWK(jwk, jwk.alg);
  return new jose.SignJWT(claims).setProtectedHeader({ alg: jwk.alg, kid: jwk.kid, ...header }).sign(key);
}

before(async () => {
  const port = await freePort();
  issuer = `http://127.0.0.1:${port}`;
  srv = await startServer({ name: 'browser-sso' });
  rsaKey = await privateJwk('RS256', 'rsa-1');
  ecKey = await privateJwk('ES256', 'ec-1');
  const client = (id, alg) => ({
    client_id: id, client_secret: CLIENT_SECRET, redirect_uris: [`${srv.url}/login/sso/callback`],
    grant_types: ['authorization_code'], response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic', id_token_signed_response_alg: alg,
  });
  const provider = new Provider(issuer, {
    clients: [client('gatehouse', 'RS256'), client('gatehouse-es', 'ES256')],
    jwks: { keys: [rsaKey, ecKey] },
    findAccount: async (ctx, id) => accounts[id] && {
      accountId: id,
      claims: async () => ({ sub: id, ...accounts[id] }),
    },
    claims: { openid: ['sub'], email: ['email', 'email_verified'] },
    conformIdTokenClaims: false,
    features: { devInteractions: { enabled: true } },
  });
  provider.use(async (ctx, next) => {
    if (ctx.path === '/jwks') jwksFetches++;
    await next();
    if (ctx.path === '/token' && ctx.body?.id_token) {
      secret(ctx.body.id_token);
      lastAlg = JSON.parse(Buffer.from(ctx.body.id_token.split('.')[0], 'base64url')).alg;
      if (tamper) {
        const [h, p] = ctx.body.id_token.split('.').slice(0, 2).map((s) => JSON.parse(Buffer.from(s, 'base64url')));
        const t = tamper;
        tamper = null;
        ctx.body = { ...ctx.body, id_token: secret(await t(p, h)) };
      }
    }
  });
  idp = http.createServer(provider.callback());
  await new Promise((r) => idp.listen(port, '127.0.0.1', r));
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  idp?.close();
  assert.equal(await srv.stop(), 0);
});

async function newPage() {
  const ctx = await browser.newContext();
  await ctx.route(/fonts\.googleapis\.com/, (r) => r.abort());   // the provider's page style; no internet
  return ctx.newPage();
}

/* From the login page through the provider (its sign-in and consent the
 * first time in this browser) back to Gatehouse: the callback's response. */
async function ssoSignIn(page, login, { button = false } = {}) {
  const isCallback = (r) => r.url().startsWith(`${srv.url}/login/sso/callback`);
  const callback = page.waitForResponse(isCallback);
  if (button) {
    await page.goto(`${srv.url}/login?next=%2Fprofile%2Ftokens`);
    await page.click('#sso');
  } else {
    // (a signed-in browser is sent past the login page)
    await page.goto('about:blank');
    page.goto(`${srv.url}/login/sso?next=%2Fprofile%2Ftokens`).catch(() => {});
  }
  for (;;) {
    const what = await Promise.race([
      callback.then(() => 'done'),
      page.waitForSelector('input[name=login]', { timeout: 15000 }).then(() => 'login', () => 'stuck'),
      page.waitForSelector('button:has-text("Continue")', { timeout: 15000 }).then(() => 'consent', () => 'stuck'),
    ]);
    if (what === 'done') break;
    if (what === 'stuck') throw new Error(`sign-in stuck at ${page.url()}`);
    if (what === 'login') {
      await page.fill('input[name=login]', login);
      await page.fill('input[name=password]', 'any-password');
      await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
    } else {
      await Promise.all([page.waitForNavigation().catch(() => {}), page.click('button:has-text("Continue")')]);
    }
  }
  const res = await callback;
  secret(new URL(res.url()).searchParams.get('code') ?? '');
  await page.waitForURL((u) => u.href.startsWith(srv.url) && u.pathname !== '/login', { waitUntil: 'domcontentloaded' });
  return res;
}

async function configure(page, { clientId = 'gatehouse', domains = 'corp.example', create = false, passwordOff = false, withSecret = true } = {}) {
  await page.goto(`${srv.url}/admin/sso`);
  await page.fill('#name', 'Corp ID');
  await page.fill('#issuer', issuer);
  await page.fill('#client_id', clientId);
  if (withSecret) await page.fill('#client_secret', CLIENT_SECRET);
  await page.fill('#domains', domains);
  await page.setChecked('input[name=create_accounts]', create);
  await page.setChecked('input[name=password_off]', passwordOff);
  const [res] = await Promise.all([page.waitForNavigation(), page.click('form[action="/admin/sso"] button')]);
  return res;
}

test('an admin sets the provider; users sign in with it; bad tokens, states and emails are refused', async () => {
  const admin = createUser(srv, { admin: true });
  const alice = createUser(srv, { email: accounts.alice.email });
  const adminPage = await newPage();
  await adminPage.goto(`${srv.url}/login`);
  assert.equal(await adminPage.locator('#sso').count(), 0, 'no button before it is set');
  await adminPage.fill('input[name=email]', admin.email);
  await adminPage.fill('input[name=password]', admin.password);
  await Promise.all([adminPage.waitForNavigation(), adminPage.click('button[type=submit]')]);

  // bad settings are refused and change nothing
  await adminPage.goto(`${srv.url}/admin/sso`);
  await adminPage.fill('#name', 'Corp ID');
  await adminPage.fill('#issuer', 'http://idp.example.com');
  await adminPage.fill('#client_id', 'gatehouse');
  await adminPage.fill('#client_secret', CLIENT_SECRET);
  const [bad] = await Promise.all([adminPage.waitForNavigation(), adminPage.click('form[action="/admin/sso"] button')]);
  assert.equal(bad.status(), 400);
  assert.match(await adminPage.textContent('.error'), /https URL/);

  const saved = await configure(adminPage);
  assert.equal(saved.status(), 200);
  const html = await adminPage.content();
  assert.ok(!html.includes(CLIENT_SECRET), 'the secret is write-only');
  assert.equal(await adminPage.inputValue('#client_secret'), '');
  await screenshot(adminPage, 'sso-admin');

  // end to end: alice (existing account) through the provider's pages
  const page = await newPage();
  await page.goto(`${srv.url}/login`);
  assert.match(await page.textContent('#sso'), /Sign in with Corp ID/);
  await screenshot(page, 'sso-login-button');
  const ok = await ssoSignIn(page, 'alice', { button: true });
  assert.equal(ok.status(), 303);
  assert.equal(lastAlg, 'RS256');
  assert.equal(new URL(page.url()).pathname, '/profile/tokens');
  await page.goto(`${srv.url}/profile`);
  assert.match(await page.textContent('body'), /alice@corp\.example/);
  await screenshot(page, 'sso-signed-in');
  assert.equal(jwksFetches, 1);
  const firstSession = (await page.context().cookies()).find((c) => c.name === 'gh_session').value;
  assert.ok((await page.context().cookies()).find((c) => c.name === 'gh_device'), 'a device of the account');

  // the callback replayed: its state was used
  const replay = await page.goto(ok.url());
  assert.equal(replay.status(), 400);
  assert.match(await page.textContent('.error'), /expired or was already used/);
  // a made-up state
  const forged = await page.goto(`${srv.url}/login/sso/callback?state=${'ab'.repeat(32)}&code=x`);
  assert.equal(forged.status(), 400);

  // a second sign-in: keys from the cache, a new session id
  assert.equal((await ssoSignIn(page, 'alice')).status(), 303);
  assert.equal(jwksFetches, 1, 'keys cached');
  const secondSession = (await page.context().cookies()).find((c) => c.name === 'gh_session').value;
  assert.notEqual(secondSession, firstSession);

  // a state started in another browser (login CSRF): browser A starts, the
  // authorization request is finished by this browser, whose provider
  // session answers at once, so the callback with A's state lands here
  const other = await newPage();
  const authorize = other.waitForRequest((r) => r.url().startsWith(issuer));
  other.goto(`${srv.url}/login/sso?next=%2Fprofile`).catch(() => {});
  const cross = await page.goto((await authorize).url());
  assert.equal(cross.status(), 400);
  assert.equal(new URL(page.url()).pathname, '/login/sso/callback');
  assert.match(await page.textContent('.error'), /started in another browser/);
  secret(new URL(page.url()).searchParams.get('code'));

  // each bad ID token, from the provider's token endpoint, is refused
  const now = () => Math.floor(Date.now() / 1000);
  const cases = {
    'bad signature': async (p) => sign(p, { jwk: { ...(await privateJwk('RS256', 'rsa-1')) } }),
    'bad ES256 signature': async (p) => sign(p, { jwk: await privateJwk('ES256', 'ec-1') }),
    'wrong audience': (p) => sign({ ...p, aud: 'someone-else' }),
    'another audience beside ours without azp': (p) => sign({ ...p, aud: [p.aud, 'someone-else'] }),
    'wrong azp': (p) => sign({ ...p, azp: 'someone-else' }),
    'wrong issuer': (p) => sign({ ...p, iss: 'http://127.0.0.1:1' }),
    'wrong nonce': (p) => sign({ ...p, nonce: 'not-the-nonce' }),
    'expired': (p) => sign({ ...p, iat: now() - 300, exp: now() - 120 }),
    'alg none': (p) => `${Buffer.from(JSON.stringify({ alg: 'none' })).toString('base64url')}.${Buffer.from(JSON.stringify(p)).toString('base64url')}.`,
    'HS256 keyed with the client secret': (p) => new jose.SignJWT(p).setProtectedHeader({ alg: 'HS256', kid: 'rsa-1' })
      .sign(new TextEncoder().encode(CLIENT_SECRET)),
    'unverified email': (p) => sign({ ...p, email_verified: false }),
    'unknown key': async (p) => sign(p, { jwk: await privateJwk('RS256', 'rsa-rotated') }),
  };
  for (const [name, fn] of Object.entries(cases)) {
    tamper = fn;
    const res = await ssoSignIn(page, 'alice');
    assert.ok(res.status() === 401 || res.status() === 403, `${name}: ${res.status()}`);
    assert.equal(new URL(page.url()).pathname, '/login/sso/callback', name);
    assert.match(await page.textContent('.error'), /could not be verified|not verified/, name);
    if (name === 'wrong nonce') await screenshot(page, 'sso-refused');
  }
  assert.equal(jwksFetches, 2, 'an unknown kid refetched the keys, once');
  const still = await page.context().cookies();
  assert.equal(still.find((c) => c.name === 'gh_session').value, secondSession, 'no refusal signed in anew');

  // the provider's own unverified email; a domain not allowed; no account
  const u = await newPage();
  assert.equal((await ssoSignIn(u, 'unverified')).status(), 403);
  assert.match(await u.textContent('.error'), /not verified/);
  const m = await newPage();
  assert.equal((await ssoSignIn(m, 'mallory')).status(), 403);
  assert.match(await m.textContent('.error'), /email domain/);
  const n = await newPage();
  assert.equal((await ssoSignIn(n, 'newbie')).status(), 403);
  assert.match(await n.textContent('.error'), /no active account/);

  // create on first sign-in, ES256 from the provider, password sign-in off
  await configure(adminPage, { clientId: 'gatehouse-es', create: true, passwordOff: true, withSecret: false });
  const n2 = await n.context().newPage();
  assert.equal((await ssoSignIn(n2, 'newbie')).status(), 303);
  assert.equal(lastAlg, 'ES256');
  await n2.goto(`${srv.url}/profile`);
  assert.match(await n2.textContent('body'), /newbie@corp\.example/);
  const pw = new Client(srv.url);
  assert.equal((await pw.login(alice.email, alice.password)).status, 403, 'alice signs in with SSO only now');
  await configure(adminPage, { clientId: 'gatehouse-es', create: true, passwordOff: false, withSecret: false });
  assert.equal((await pw.login(alice.email, alice.password)).status, 303);
});

test('the provider settings are for admins, and bad ones change nothing', async () => {
  const user = createUser(srv, {});
  const c = new Client(srv.url);
  await c.login(user.email, user.password);
  assert.equal((await c.get('/admin/sso')).status, 403);
  const admin = createUser(srv, { admin: true });
  const a = new Client(srv.url);
  await a.login(admin.email, admin.password);
  const before = await (await a.get('/admin/sso')).text();
  for (const [fields, why] of [
    [{ issuer: 'https://idp.example/', client_id: 'x' }, /https URL/],
    [{ issuer: 'http://127.0.0.1.evil.example', client_id: 'x' }, /https URL/],
    [{ issuer: 'https://idp.example', client_id: '' }, /client ID/],
    [{ issuer: 'https://idp.example', client_id: 'x', domains: 'a b' }, /domains/],
  ]) {
    const r = await a.post('/admin/sso', { name: 'X', client_secret: 'some-secret-value', domains: '', ...fields, csrf: a.csrf });
    assert.equal(r.status, 400, JSON.stringify(fields));
    assert.match(await r.text(), why);
  }
  const after = await (await a.get('/admin/sso')).text();
  assert.equal(after.match(/id="issuer"[^>]*value="([^"]*)"/)[1], before.match(/id="issuer"[^>]*value="([^"]*)"/)[1]);
  const off = await a.post('/admin/sso/remove', { csrf: a.csrf });
  assert.equal(off.status, 200);
  assert.doesNotMatch(await (await new Client(srv.url).get('/login')).text(), /Sign in with/);
  const gone = await new Client(srv.url).get('/login/sso');
  assert.equal(gone.status, 404);
  // each start stores a row: starts share the sign-in budget of the IP
  let limited = null;
  for (let i = 0; i < 80 && !limited; i++) {
    const r = await new Client(srv.url).get('/login/sso');
    await r.arrayBuffer();
    if (r.status === 429) limited = r;
  }
  assert.ok(limited, 'refused past the per-IP sign-in budget');
  assert.ok(Number(limited.headers.get('retry-after')) > 0);
});
