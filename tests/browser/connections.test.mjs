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
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import Provider from 'oidc-provider';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { startServer, createUser, launchBrowser, screenshot, secret, freePort, gatehouse } from '../harness/index.mjs';
import { sdkClient } from '../http/gateway/lib.mjs';
import { signedIn, fullFlow, token } from '../http/oauth/lib.mjs';

const CLIENT_SECRET = secret(`app-secret-${crypto.randomBytes(12).toString('hex')}`);
const RS_SECRET = secret(`rs-secret-${crypto.randomBytes(12).toString('hex')}`);
const accounts = { alice: { email: 'alice@upstream.example', email_verified: true },
  bob: { email: 'bob@upstream.example', email_verified: true },
  dave: { email: 'dave@upstream.example', email_verified: true },
  erin: { email: 'erin@sso.example', email_verified: true } };

let srv, srv2, browser, idp, issuer, member, upstream, upstreamServer;
let rotate = true;          // whether the provider rotates refresh tokens
const refreshes = [];       // refresh_token grants the provider answered
const refreshTokens = [];   // the refresh tokens it issued, newest last
const accessTokens = [];
let refuseToken = null;     // an access token the upstream refuses though the provider says active
const upstreamSeen = [];    // what the upstream's introspection said of each request
let tamper = null;          // (body) => body, applied to the next token response
let holdRefresh = null;     // a promise the next refresh's answer waits for (the refresh done, not yet sent)
let refreshHeld = null;     // called when that refresh arrived
const issued = [];          // every token the provider handed out
const tokenCalls = [];      // the forms Gatehouse posted to /token

before(async () => {
  const port = await freePort();
  issuer = `http://127.0.0.1:${port}`;
  srv = await startServer({ name: 'browser-connections' });
  const provider = new Provider(issuer, {
    clients: [{ client_id: 'gatehouse-app', client_secret: CLIENT_SECRET, redirect_uris: [`${srv.url}/connect/callback`],
      grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_post' },
    // Gatehouse's single sign-on, for the member who signs in only that way
    { client_id: 'gatehouse-sso', client_secret: CLIENT_SECRET, redirect_uris: [`${srv.url}/login/sso/callback`],
      grant_types: ['authorization_code'], response_types: ['code'], token_endpoint_auth_method: 'client_secret_basic' },
    // the upstream MCP server, a resource server that introspects
    { client_id: 'upstream-rs', client_secret: RS_SECRET, redirect_uris: [], grant_types: [], response_types: [],
      token_endpoint_auth_method: 'client_secret_basic' }],
    issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
    rotateRefreshToken: () => rotate,
    // refresh tokens outlive the provider's browser session (as GitHub's and Slack's do)
    expiresWithSession: async () => false,
    findAccount: async (ctx, id) => accounts[id] && { accountId: id, claims: async () => ({ sub: id, ...accounts[id] }) },
    claims: { openid: ['sub'], email: ['email', 'email_verified'] },
    conformIdTokenClaims: false,      // the email in the ID token, as Gatehouse's SSO reads it
    pkce: { required: () => true },
    features: { devInteractions: { enabled: true }, revocation: { enabled: true },
      introspection: { enabled: true, allowedPolicy: async () => true } },
  });
  provider.use(async (ctx, next) => {
    await next();
    if (ctx.path === '/token' && holdRefresh && ctx.oidc?.body?.grant_type === 'refresh_token') {
      const h = holdRefresh;
      holdRefresh = null;
      refreshHeld?.();
      await h;
    }
    if (ctx.path === '/token') {
      tokenCalls.push(ctx.oidc?.body ?? {});
      if (ctx.oidc?.body?.grant_type === 'refresh_token') refreshes.push(ctx.status);
      for (const k of ['access_token', 'refresh_token', 'id_token']) if (ctx.body?.[k]) issued.push(secret(ctx.body[k]));
      if (ctx.body?.refresh_token) refreshTokens.push(ctx.body.refresh_token);
      if (ctx.body?.access_token) accessTokens.push(ctx.body.access_token);
      if (tamper) {
        const t = tamper;
        tamper = null;
        ctx.body = t(ctx.body);
      }
    }
  });
  idp = http.createServer(provider.callback());
  await new Promise((r) => idp.listen(port, '127.0.0.1', r));
  upstream = await startUpstream();
  // a second process with a small pool: calls waiting for a refresh's lock fill it
  srv2 = await startServer({ name: 'browser-connections-b', cluster: srv.cluster, env: { GATEHOUSE_DB_POOL_SIZE: '3' } });
  const add = gatehouse(srv, ['connector', 'add', '--agent', 'default', '--name', 'idp', '--url', upstream,
    '--auth', 'oauth-app', '--client-id', 'gatehouse-app', '--client-secret-stdin', '--authorize-url', `${issuer}/auth`,
    '--token-url', `${issuer}/token`, '--userinfo-url', `${issuer}/me`, '--scopes', 'openid email'], { input: `${CLIENT_SECRET}\n` });
  assert.equal(add.code, 0, add.stderr);
  member = createUser(srv, {});
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  idp?.close();
  upstreamServer?.close();
  // both stopped whatever the first says, so a failure cannot leave one running
  const codes = [await srv2?.stop(), await srv?.stop()];
  assert.deepEqual(codes, [0, 0]);
});

/* An upstream MCP server (the SDK's) that serves only tokens the provider
   says are active (RFC 7662 introspection); its one tool names the account. */
async function startUpstream() {
  const server = http.createServer(async (req, res) => {
    const auth = req.headers.authorization ?? '';
    const tok = auth.startsWith('Bearer ') ? auth.slice(7) : '';
    const r = await fetch(`${issuer}/token/introspection`, { method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded',
        Authorization: `Basic ${Buffer.from(`upstream-rs:${RS_SECRET}`).toString('base64')}` },
      body: new URLSearchParams({ token: tok }) });
    const intro = await r.json();
    if (tok === refuseToken) intro.active = false;    // this server dropped it early
    upstreamSeen.push(intro.active ? intro.sub : 'inactive');
    if (!intro.active) {
      res.writeHead(401, { 'WWW-Authenticate': 'Bearer error="invalid_token"' });
      return res.end();
    }
    const mcp = new McpServer({ name: 'accounts', version: '1.0.0' });
    mcp.registerTool('whoami', { description: 'Names the account the token belongs to' },
      async () => ({ content: [{ type: 'text', text: `account ${intro.sub}` }] }));
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
    res.on('close', () => { transport.close(); mcp.close(); });
    await mcp.connect(transport);
    let body = '';
    for await (const c of req) body += c;
    await transport.handleRequest(req, res, body ? JSON.parse(body) : undefined);
  });
  const port = await freePort();
  await new Promise((r) => server.listen(port, '127.0.0.1', r));
  upstreamServer = server;
  return `http://127.0.0.1:${port}/mcp`;
}

async function signedInPage(who = member) {
  const ctx = await browser.newContext();
  await ctx.route(/fonts\.googleapis\.com/, (r) => r.abort());   // the provider's page style; no internet
  const page = await ctx.newPage();
  await page.goto(`${srv.url}/login`);
  await page.fill('input[name=email]', who.email);
  await page.fill('input[name=password]', who.password);
  await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
  return page;
}

/* Clicks Connect and goes through the provider's sign-in and consent; the callback's response. */
async function connect(page, login = 'alice', button = 'button[data-action=connect][data-connector=idp]') {
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
      await page.fill('input[name=login]', login);
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

async function webPat(page, name = `pat-${Date.now()}`) {
  await page.goto(`${srv.url}/profile/tokens`);
  await page.fill('#name', name);
  await Promise.all([page.waitForNavigation(), page.click('form[action="/profile/tokens"] button')]);
  return secret(await page.textContent('#new-token'));
}

const callText = (r) => r.content.map((c) => c.text).join(' ');

test('calls go out with each member\'s own token; refreshed once under 16 calls on two processes; revoked = reconnect', async () => {
  const page = await signedInPage();
  const pat = await webPat(page);
  await page.goto(`${srv.url}/agents/default/connections`);
  assert.equal((await connect(page)).status(), 303);

  // a second member, connected as another account
  const bobUser = createUser(srv, {});
  const bobPage = await signedInPage(bobUser);
  const bobPat = await webPat(bobPage);
  // a third, not connected
  const carolUser = createUser(srv, {});
  const carolPat = await webPat(await signedInPage(carolUser));

  const alice = (await sdkClient(srv, pat)).client;
  const names = (await alice.listTools()).tools.map((t) => t.name);
  assert.ok(names.includes('idp__whoami'), names.join(','));
  assert.equal(callText(await alice.callTool({ name: 'idp__whoami', arguments: {} })), 'account alice');

  // not connected: not listed; a call names the connector and the page
  const carol = (await sdkClient(srv, carolPat)).client;
  assert.ok(!(await carol.listTools()).tools.some((t) => t.name === 'idp__whoami'));
  const nc = await carol.callTool({ name: 'idp__whoami', arguments: {} });
  assert.equal(nc.isError, true);
  assert.match(callText(nc), new RegExp(`'idp'.*${srv.url.replace(/[.]/g, '\\.')}/agents/default/connections`));

  // bob connects (list_changed reaches his open session) and is bob upstream
  const bob = (await sdkClient(srv, bobPat)).client;
  assert.ok(!(await bob.listTools()).tools.some((t) => t.name === 'idp__whoami'));
  let changed = 0;
  const { ToolListChangedNotificationSchema } = await import('@modelcontextprotocol/sdk/types.js');
  bob.setNotificationHandler(ToolListChangedNotificationSchema, () => { changed++; });
  await bobPage.goto(`${srv.url}/agents/default/connections`);
  assert.equal((await connect(bobPage, 'bob')).status(), 303);
  assert.equal(callText(await bob.callTool({ name: 'idp__whoami', arguments: {} })), 'account bob');
  assert.equal(callText(await alice.callTool({ name: 'idp__whoami', arguments: {} })), 'account alice');

  // a call says when the connection was last used, written at most once a minute
  const bobUsed = () => srv.cluster.sql(`SELECT coalesce(last_used_at::text, '') FROM vault_connections v
    JOIN users u ON u.id = v.user_id WHERE u.email = '${bobUser.email}'`);
  const used = bobUsed();
  assert.notEqual(used, '', 'a call records its use');
  assert.equal(callText(await bob.callTool({ name: 'idp__whoami', arguments: {} })), 'account bob');
  assert.equal(bobUsed(), used, 'not written again within the minute');
  srv.cluster.sql(`UPDATE vault_connections v SET last_used_at = now() - interval '2 minutes'
    FROM users u WHERE u.id = v.user_id AND u.email = '${bobUser.email}'`);
  const aged = bobUsed();
  assert.equal(callText(await bob.callTool({ name: 'idp__whoami', arguments: {} })), 'account bob');
  assert.ok(bobUsed() > aged, 'written again after a minute');

  // due for refresh: 16 calls at once, half through another process: one refresh
  const refreshedBefore = refreshes.length;
  const alice2 = (await sdkClient(srv2, pat)).client;
  srv.cluster.sql(`UPDATE vault_connections SET expires_at = now() + interval '10 seconds'
    WHERE user_id = (SELECT id FROM users WHERE email = '${member.email}')`);
  // the provider holds its answer to the refresh of a call on the second
  // process (pool of 3) until calls wait on the lock, each holding a pool
  // connection: the lock's holder must then finish on its own connection,
  // or it fails after the provider rotated the refresh token and the next
  // call presents a spent one ("the provider refused to refresh it")
  let release;
  holdRefresh = new Promise((r) => { release = r; });
  const held = new Promise((r) => { refreshHeld = r; });
  const calls = [alice2.callTool({ name: 'idp__whoami', arguments: {} })];
  await held;
  for (let i = 1; i < 16; i++) calls.push((i % 2 ? alice2 : alice).callTool({ name: 'idp__whoami', arguments: {} }));
  const waiting = () => Number(srv.cluster.sql(`SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted`));
  let most = 0;
  for (const until = Date.now() + 2000; Date.now() < until && most < 6; await new Promise((r) => setTimeout(r, 25))) most = Math.max(most, waiting());
  release();
  assert.ok(most >= 2, `calls waited on the lock (${most})`);
  for (const r of await Promise.all(calls)) assert.equal(callText(r), 'account alice');
  assert.equal(refreshes.length - refreshedBefore, 1, 'exactly one refresh at the provider');
  assert.equal(refreshes.at(-1), 200);

  // the upstream refuses the access token (401): refreshed once, the call goes through
  refuseToken = accessTokens.at(-1);
  const rejectedBefore = upstreamSeen.filter((x) => x === 'inactive').length;
  assert.equal(callText(await alice2.callTool({ name: 'idp__whoami', arguments: {} })), 'account alice');
  assert.equal(upstreamSeen.filter((x) => x === 'inactive').length, rejectedBefore + 1, 'the upstream refused the old token once');
  assert.equal(refreshes.length - refreshedBefore, 2, 'the 401 refreshed once');

  // a provider that does not rotate: the refresh token kept, calls go on
  rotate = false;
  srv.cluster.sql(`UPDATE vault_connections SET expires_at = now() WHERE user_id = (SELECT id FROM users WHERE email = '${member.email}')`);
  assert.equal(callText(await alice.callTool({ name: 'idp__whoami', arguments: {} })), 'account alice');
  srv.cluster.sql(`UPDATE vault_connections SET expires_at = now() WHERE user_id = (SELECT id FROM users WHERE email = '${member.email}')`);
  assert.equal(callText(await alice.callTool({ name: 'idp__whoami', arguments: {} })), 'account alice');
  assert.equal(refreshes.length - refreshedBefore, 4);
  rotate = true;

  // the provider revoked the grant: needs reconnect, a clear tool error, the page says so
  const rt = refreshTokens.at(-1);
  const rv = await fetch(`${issuer}/token/revocation`, { method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ token: rt, token_type_hint: 'refresh_token', client_id: 'gatehouse-app', client_secret: CLIENT_SECRET }) });
  assert.equal(rv.status, 200);
  srv.cluster.sql(`UPDATE vault_connections SET expires_at = now() WHERE user_id = (SELECT id FROM users WHERE email = '${member.email}')`);
  const gone = await alice.callTool({ name: 'idp__whoami', arguments: {} });
  assert.equal(gone.isError, true);
  assert.match(callText(gone), /must be renewed/);
  await page.goto(`${srv.url}/agents/default/connections`);
  assert.match(await page.textContent('tr[data-connector=idp]'), /Needs reconnect/);
  await screenshot(page, 'connections-needs-reconnect');
  // reconnect mends it
  assert.equal((await connect(page, 'alice', 'button[data-action=connect][data-connector=idp]')).status(), 303);
  assert.equal(callText(await alice.callTool({ name: 'idp__whoami', arguments: {} })), 'account alice');

  // disconnect: bob's session hears list_changed... alice's tools lose idp
  await page.goto(`${srv.url}/agents/default/connections`);
  await Promise.all([page.waitForNavigation(), page.click('button[data-action=disconnect][data-connector=idp]')]);
  assert.ok(!(await alice.listTools()).tools.some((t) => t.name === 'idp__whoami'));
  assert.ok(changed >= 1, 'bob heard list_changed when he connected');

  // pg_dump of the whole database holds none of the upstream tokens; what
  // is sealed there does not open with the server key (AES-256-GCM, the
  // layout of gh_seal: iv | tag | ciphertext, every associated data tried)
  const pd = spawnSync(path.join(srv.cluster.bin, 'pg_dump'), ['-h', srv.cluster.dir, '-U', 'gatehouse', 'gatehouse'], { encoding: 'utf8', maxBuffer: 1 << 28 });
  assert.equal(pd.status, 0, pd.stderr);
  assert.ok(pd.stdout.includes('vault_connections'));
  for (const t of issued) assert.ok(!pd.stdout.includes(t), 'no upstream token in pg_dump');
  const key = Buffer.from(srv.cluster.serverKey, 'hex');
  const sealedBob = srv.cluster.sql(`SELECT v.sealed || '|' || v.agent_id || '|' || v.user_id || '|' || v.connector_id
    FROM vault_connections v JOIN users u ON u.id = v.user_id WHERE u.email = '${bobUser.email}'`).split('|');
  const raw = Buffer.from(sealedBob[0], 'base64url');
  const aads = [null, `gw_connection:v1:${sealedBob[1]}:${sealedBob[2]}:${sealedBob[3]}`];
  for (const off of [0, 1, 33]) for (const aad of aads) {
    const d = crypto.createDecipheriv('aes-256-gcm', key, raw.subarray(off, off + 12));
    if (aad) d.setAAD(Buffer.from(aad));
    d.setAuthTag(raw.subarray(off + 12, off + 28));
    assert.throws(() => Buffer.concat([d.update(raw.subarray(off + 28)), d.final()]), 'the server key opens nothing');
  }
  assert.ok(upstreamSeen.includes('alice') && upstreamSeen.includes('bob'));

  // Reset lost key: bob's key and connection go; his PAT opens nothing now
  await bobPage.goto(`${srv.url}/agents/default/connections`);
  await Promise.all([bobPage.waitForNavigation(), bobPage.click('button[data-action=reset]')]);
  assert.match(await bobPage.textContent('.notice'), /deleted/);
  await screenshot(bobPage, 'connections-reset');
  assert.equal(srv.cluster.sql(`SELECT count(*) FROM vault_keys k JOIN users u ON u.id = k.user_id WHERE u.email = '${bobUser.email}'`), '0');
  const after = await bob.callTool({ name: 'idp__whoami', arguments: {} });
  assert.equal(after.isError, true);
  assert.match(callText(after), /needs your own account/);
});

const sha256 = (s) => crypto.createHash('sha256').update(s).digest('hex');
const wraps = (kind, s) => srv.cluster.sql(`SELECT count(*) FROM vault_wraps WHERE kind = '${kind}' AND cred_hash = '${sha256(s)}'`);
const whoami = async (client) => callText(await client.callTool({ name: 'idp__whoami', arguments: {} }));

test('the member\'s credentials change: a new PAT and each OAuth refresh still reach the upstream account; a revoked PAT opens nothing', async () => {
  const dave = createUser(srv, {});
  const page = await signedInPage(dave);
  const p1 = await webPat(page, 'dave-first');
  await page.goto(`${srv.url}/agents/default/connections`);
  assert.equal((await connect(page, 'dave')).status(), 303);
  assert.equal(await whoami((await sdkClient(srv, p1)).client), 'account dave');

  // a new PAT, made in a browser signed in with the password: wrapped at once
  const p2 = await webPat(page, 'dave-second');
  assert.equal(await page.locator('#vault-locked').count(), 0);
  assert.equal(await whoami((await sdkClient(srv, p2)).client), 'account dave');

  // the first revoked in the console: the gateway refuses it and its wrap is gone,
  // so the old token and a copy of the database together open nothing
  assert.equal(wraps('pat', p1), '1');
  await page.goto(`${srv.url}/profile/tokens`);
  await Promise.all([page.waitForNavigation(), page.click('tr:has-text("dave-first") button:has-text("Revoke")')]);
  assert.equal(wraps('pat', p1), '0', 'the revoked PAT\'s wrap is deleted');
  assert.equal(wraps('pat', p2), '1');
  await assert.rejects(sdkClient(srv, p1), /401|Unauthorized|invalid_token/i);
  assert.equal(await whoami((await sdkClient(srv, p2)).client), 'account dave');

  // an OAuth client of Gatehouse (consent in another password browser): the
  // access token, then each refreshed one, opens the same upstream connection
  const hc = await signedIn(srv, dave);
  const d = await fullFlow(srv, hc, { scope: 'mcp offline_access' });
  assert.equal(await whoami((await sdkClient(srv, d.tokens.access_token)).client), 'account dave');
  let rt = d.tokens.refresh_token;
  for (let i = 0; i < 2; i++) {
    const r = await token(srv, { grant_type: 'refresh_token', refresh_token: rt, client_id: d.client.client_id });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(wraps('refresh', rt), '0', 'the rotated refresh token\'s wrap is gone');
    rt = r.body.refresh_token;
    assert.equal(await whoami((await sdkClient(srv, r.body.access_token)).client), 'account dave', `after refresh ${i + 1}`);
  }
  assert.equal(wraps('refresh', rt), '1');
});

/* Gatehouse's single sign-on, set at /admin/sso to the same provider (accounts made on first sign-in). */
async function ssoSetup() {
  const admin = createUser(srv, { admin: true });
  const ap = await signedInPage(admin);
  await ap.goto(`${srv.url}/admin/sso`);
  await ap.fill('#name', 'Corp ID');
  await ap.fill('#issuer', issuer);
  await ap.fill('#client_id', 'gatehouse-sso');
  await ap.fill('#client_secret', CLIENT_SECRET);
  await ap.fill('#domains', 'sso.example');
  await ap.setChecked('input[name=create_accounts]', true);
  const [res] = await Promise.all([ap.waitForNavigation(), ap.click('form[action="/admin/sso"] button')]);
  assert.equal(res.status(), 200);
}

async function ssoPage(login) {
  const ctx = await browser.newContext();
  await ctx.route(/fonts\.googleapis\.com/, (r) => r.abort());
  const page = await ctx.newPage();
  await page.goto(`${srv.url}/login`);
  const callback = page.waitForResponse((r) => r.url().startsWith(`${srv.url}/login/sso/callback`));
  await page.click('#sso');
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
  assert.equal(res.status(), 303);
  await page.waitForLoadState('domcontentloaded');
  return page;
}

test('a member who signs in only by SSO: the first PAT makes the key, a later one says it cannot open it, Reset lost key mends it', async () => {
  await ssoSetup();
  const page = await ssoPage('erin');
  const erinId = srv.cluster.sql(`SELECT id FROM users WHERE email = 'erin@sso.example'`);
  assert.ok(erinId, 'the account was made by the SSO sign-in');
  assert.equal(srv.cluster.sql(`SELECT password_hash IS NULL FROM users WHERE id = '${erinId}'`), 't', 'no password');
  assert.ok(!(await page.context().cookies()).some((c) => c.name === 'gh_vault'), 'no password key in this browser');
  const m = gatehouse(srv, ['member', 'approve', '--agent', 'default', '--email', 'erin@sso.example']);
  assert.equal(m.code, 0, m.stderr);

  // no key yet: the page says to make a token first; the first PAT makes the key under itself
  await page.goto(`${srv.url}/agents/default/connections`);
  assert.match(await page.textContent('.notice'), /Create a personal access token/);
  const e1 = await webPat(page, 'erin-first');
  assert.equal(await page.locator('#vault-locked').count(), 0);
  await page.goto(`${srv.url}/agents/default/connections`);
  assert.equal((await connect(page, 'erin')).status(), 303);
  assert.equal(await whoami((await sdkClient(srv, e1)).client), 'account erin');

  // the key exists and nothing in this browser opens it: a new PAT works at
  // the gateway but cannot open the connection, and both the page and the call say so
  const e2 = await webPat(page, 'erin-second');
  assert.match(await page.textContent('#vault-locked'), /cannot open your own upstream accounts.*Reset lost key/s);
  await screenshot(page, 'connections-sso-locked-pat');
  assert.equal(wraps('pat', e2), '0');
  const locked = await (await sdkClient(srv, e2)).client.callTool({ name: 'idp__whoami', arguments: {} });
  assert.equal(locked.isError, true);
  assert.match(callText(locked), /this token cannot open your connections.*Reset lost key/);
  assert.equal(await whoami((await sdkClient(srv, e1)).client), 'account erin', 'the first PAT still opens it');

  // Reset lost key from the SSO browser: the connection goes, the next PAT
  // makes a new key, and connecting again works end to end
  await page.goto(`${srv.url}/agents/default/connections`);
  await Promise.all([page.waitForNavigation(), page.click('button[data-action=reset]')]);
  assert.match(await page.textContent('.notice'), /deleted/);
  assert.equal(srv.cluster.sql(`SELECT count(*) FROM vault_connections WHERE user_id = '${erinId}'`), '0');
  const e3 = await webPat(page, 'erin-third');
  assert.equal(await page.locator('#vault-locked').count(), 0);
  await page.goto(`${srv.url}/agents/default/connections`);
  assert.equal((await connect(page, 'erin')).status(), 303);
  assert.equal(await whoami((await sdkClient(srv, e3)).client), 'account erin');
  await screenshot(page, 'connections-sso-reconnected');
});
