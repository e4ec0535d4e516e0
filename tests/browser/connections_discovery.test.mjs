// The oauth-discovery connector mode in Chromium (gateway/discovery.c):
// Gatehouse B, with an agent in front of server-everything, is the upstream
// and does MCP authorization itself; Gatehouse A has a connector pointing at
// B's agent endpoint.  Saving it discovers B (RFC 9728 -> RFC 8414) and
// registers A there (DCR); a member of A connects: signs in at B, approves
// B's consent page, the callback lands at A; their calls through A reach
// server-everything through B with their own B token (B's audit names them).
// Bad input (a resource that is not the upstream, an authorization server
// on a loopback address without the development setting, a token response
// without an access token, a provider error at the callback) is refused
// with a sentence and changes nothing.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import fs from 'node:fs';
import { spawn } from 'node:child_process';
import { startServer, createUser, launchBrowser, screenshot, secret, freePort, gatehouse, startEverything,
  node22, sourceDir }
  from '../harness/index.mjs';
import { sdkClient } from '../http/gateway/lib.mjs';

let srvA, srvB, bUrl, everything, browser, fake, fakeBase, admin, member, bUser;

before(async () => {
  everything = await startEverything();
  // B answers as "localhost", A as 127.0.0.1: the browser keeps their session cookies apart
  const portB = await freePort();
  bUrl = `http://localhost:${portB}`;
  srvB = await startServer({ name: 'disc-b', env: { GATEHOUSE_LISTEN: `127.0.0.1:${portB}`, GATEHOUSE_PUBLIC_URL: bUrl } });
  assert.equal(gatehouse(srvB, ['agent', 'add', '--slug', 'up', '--name', 'Upstream desk']).code, 0);
  const add = gatehouse(srvB, ['connector', 'add', '--agent', 'up', '--name', 'everything', '--url', everything.url]);
  assert.equal(add.code, 0, add.stderr);
  bUser = createUser(srvB, { agents: ['up'] });
  srvA = await startServer({ name: 'disc-a', env: { GATEHOUSE_DEV_ALLOW_PRIVATE_DISCOVERY: 'true' } });
  admin = createUser(srvA, { admin: true });
  member = createUser(srvA, {});
  fake = await startFake();
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  fake?.close();
  const codes = [await srvA?.stop(), await srvB?.stop()];
  await everything?.stop();
  assert.deepEqual(codes, [0, 0]);
});

/* tests/fixtures/discovery_as.mjs in its own process (the CLI runs
   synchronously and would stall a server in this one). */
async function startFake() {
  const p = spawn(node22, [path.join(sourceDir, 'tests/fixtures/discovery_as.mjs')], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise((resolve, reject) => {
    let out = '';
    p.stdout.on('data', (d) => { out += d; const m = /DISCOVERY_AS_LISTEN (\d+)/.exec(out); if (m) resolve(Number(m[1])); });
    p.on('exit', (c) => reject(new Error(`discovery_as exited ${c}`)));
  });
  fakeBase = `http://127.0.0.1:${port}`;
  return { close: () => p.kill('SIGTERM') };
}
const setMismatch = (on) => fetch(`${fakeBase}/__mismatch`, { method: 'POST', body: on ? '1' : '0' });
const fakeSeen = async () => (await fetch(`${fakeBase}/__seen`)).json();

const modeOf = (name) => srvA.cluster.sql(`SELECT auth_mode || '/' || coalesce(disc_client_id, '-') FROM connectors WHERE name = '${name}'`);

async function signedIn(srv, who, url = srv.url) {
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  await page.goto(`${url}/login`);
  await page.fill('input[name=email]', who.email);
  await page.fill('input[name=password]', who.password);
  await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
  return page;
}

test('saving refuses a resource that is not the upstream and a loopback authorization server; nothing changes', async () => {
  assert.equal(gatehouse(srvA, ['connector', 'add', '--agent', 'default', '--name', 'fake', '--url', `${fakeBase}/mcp`]).code, 0);
  const before = modeOf('fake');
  // the protected resource metadata names B's agent, not this upstream
  await setMismatch(true);
  let r = gatehouse(srvA, ['connector', 'set', '--agent', 'default', '--name', 'fake', '--auth', 'oauth-discovery']);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /protected resource metadata is for https:\/\/elsewhere\.example\/mcp, not for the connector's URL/);
  assert.equal(modeOf('fake'), before);
  // an add in this mode that fails discovery leaves no connector behind
  r = gatehouse(srvA, ['connector', 'add', '--agent', 'default', '--name', 'fake2', '--url', `${fakeBase}/mcp`,
    '--auth', 'oauth-discovery']);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /not for the connector's URL/);
  assert.equal(srvA.cluster.sql(`SELECT count(*) FROM connectors WHERE name = 'fake2'`), '0');
  // the same on the settings page: a sentence in the console, the form kept
  const page = await signedIn(srvA, admin);
  await page.goto(`${srvA.url}/admin/connectors/auth?agent=default&name=fake`);
  await page.selectOption('#mode', 'oauth-discovery');
  const [resp] = await Promise.all([page.waitForNavigation(), page.click('form[action="/admin/connectors/auth"] button[type=submit]')]);
  assert.equal(resp.status(), 400);
  assert.match(await page.textContent('.error'), /not for the connector's URL: refused/);
  await screenshot(page, 'discovery-resource-mismatch');
  assert.equal(modeOf('fake'), before);
  await setMismatch(false);

  // an authorization server on 127.0.0.1, without the development setting
  r = gatehouse(srvA, ['connector', 'set', '--agent', 'default', '--name', 'fake', '--auth', 'oauth-discovery'],
    { env: { GATEHOUSE_DEV_ALLOW_PRIVATE_DISCOVERY: 'false' } });
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /private or loopback address/);
  assert.equal(modeOf('fake'), before);
  assert.ok(!(await fakeSeen()).includes('POST /register'), 'no registration there');
  await page.context().close();
});

test('a token response without an access token is refused at the callback and stores nothing', async () => {
  const r = gatehouse(srvA, ['connector', 'set', '--agent', 'default', '--name', 'fake', '--auth', 'oauth-discovery']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(modeOf('fake'), 'oauth-discovery/fake-client');
  const page = await signedIn(srvA, member);
  await webPat(page);
  await page.goto(`${srvA.url}/agents/default/connections`);
  const cb = page.waitForResponse((x) => x.url().startsWith(`${srvA.url}/connect/callback`));
  await page.click('button[data-action=connect][data-connector=fake]');
  const res = await cb;
  await page.waitForLoadState('domcontentloaded');
  assert.equal(res.status(), 502);
  assert.match(await page.textContent('.error'), /no access token/);
  await screenshot(page, 'discovery-no-access-token');
  assert.equal(srvA.cluster.sql(`SELECT count(*) FROM vault_connections`), '0');
  assert.ok((await fakeSeen()).includes('POST /token'));
  // the member's connection page still offers Connect
  await page.goto(`${srvA.url}/agents/default/connections`);
  assert.match(await page.textContent('tr[data-connector=fake]'), /Not connected/);
  await page.context().close();
  assert.equal(gatehouse(srvA, ['connector', 'disable', '--agent', 'default', '--name', 'fake']).code, 0);
});

async function webPat(page) {
  await page.goto(`${srvA.url}/profile/tokens`);
  await page.fill('#name', `pat-${Date.now()}`);
  await Promise.all([page.waitForNavigation(), page.click('form[action="/profile/tokens"] button')]);
  return secret(await page.textContent('#new-token'));
}

/* Connect at A, sign in at B, answer B's consent; the callback's response at A. */
async function connectThroughB(page, decision) {
  const callback = page.waitForResponse((x) => x.url().startsWith(`${srvA.url}/connect/callback`));
  await page.click('button[data-action=connect][data-connector=remote]');
  await page.waitForURL((u) => u.href.startsWith(`${bUrl}/`));
  if (await page.isVisible('input[name=email]')) {
    await page.fill('input[name=email]', bUser.email);
    await page.fill('input[name=password]', bUser.password);
    await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
  }
  await page.waitForSelector(`button[name=decision][value=${decision}]`);
  await screenshot(page, `discovery-b-consent-${decision}`);
  await page.click(`button[name=decision][value=${decision}]`);
  const res = await callback;
  secret(new URL(res.url()).searchParams.get('code') ?? '');
  await page.waitForLoadState('domcontentloaded');
  return res;
}

test('A registers at B by discovery; a member connects at B\'s consent page and calls server-everything through B', async () => {
  const url = `${bUrl}/agents/up/mcp`;
  assert.equal(gatehouse(srvA, ['connector', 'add', '--agent', 'default', '--name', 'remote', '--url', url]).code, 0);
  // the owner's page: choose the mode, save; discovery runs and says what it found
  const adminPage = await signedIn(srvA, admin);
  await adminPage.goto(`${srvA.url}/admin/connectors/auth?agent=default&name=remote`);
  await adminPage.selectOption('#mode', 'oauth-discovery');
  await Promise.all([adminPage.waitForNavigation(), adminPage.click('form[action="/admin/connectors/auth"] button[type=submit]')]);
  assert.match(await adminPage.textContent('.notice'), /Saved/);
  const found = await adminPage.textContent('#discovery');
  assert.match(found, new RegExp(`Authorization server ${bUrl}`));
  assert.match(found, /dynamic registration/);
  await screenshot(adminPage, 'discovery-saved');
  await adminPage.context().close();
  const clientId = srvA.cluster.sql(`SELECT disc_client_id FROM connectors WHERE name = 'remote'`);
  assert.equal(srvB.cluster.sql(`SELECT count(*) FROM oauth_clients WHERE client_id = '${clientId}'`), '1', 'registered at B');
  assert.equal(srvB.cluster.sql(`SELECT metadata::text FROM oauth_clients WHERE client_id = '${clientId}'`).includes(`${srvA.url}/connect/callback`), true);

  const page = await signedIn(srvA, member);
  const pat = await webPat(page);
  // refusing at B's consent page: the provider's error, nothing stored
  await page.goto(`${srvA.url}/agents/default/connections`);
  const denied = await connectThroughB(page, 'deny');
  assert.equal(denied.status(), 400);
  assert.match(await page.textContent('.error'), /did not connect your account \(access_denied\)/);
  await screenshot(page, 'discovery-denied');
  assert.equal(srvA.cluster.sql(`SELECT count(*) FROM vault_connections`), '0');
  // B remembers a denial for a short while (its code TTL): the member changed their mind sooner
  srvB.cluster.sql(`DELETE FROM oauth_denials WHERE client_id = '${clientId}'`);

  await page.goto(`${srvA.url}/agents/default/connections`);
  const ok = await connectThroughB(page, 'approve');
  assert.equal(ok.status(), 303);
  assert.match(page.url(), /\/agents\/default\/connections\?connected=remote$/);
  assert.match(await page.textContent('tr[data-connector=remote]'), /Connected/);
  await screenshot(page, 'discovery-connected');
  // B issued its token for its agent's resource, to A's registration
  assert.equal(srvB.cluster.sql(`SELECT count(*) FROM oauth_grants WHERE client_id = '${clientId}'`), '1');

  const { client } = await sdkClient(srvA, pat);
  const tools = (await client.listTools()).tools.map((t) => t.name);
  assert.ok(tools.includes('remote__everything__echo'), tools.join(','));
  const r = await client.callTool({ name: 'remote__everything__echo', arguments: { message: 'through B' } });
  assert.equal(r.content[0].text, 'Echo: through B');
  // due for refresh: A refreshes at B (the registration's sealed secret, resource = B's agent) in flight
  assert.equal(srvA.cluster.sql(`SELECT disc_secret_sealed IS NOT NULL FROM connectors WHERE name = 'remote'`), 't');
  const sealedBefore = srvA.cluster.sql(`SELECT sealed FROM vault_connections`);
  srvA.cluster.sql(`UPDATE vault_connections SET expires_at = now() - interval '1 second'`);
  const r2 = await client.callTool({ name: 'remote__everything__echo', arguments: { message: 'refreshed' } });
  assert.equal(r2.content[0].text, 'Echo: refreshed');
  assert.notEqual(srvA.cluster.sql(`SELECT sealed FROM vault_connections`), sealedBefore, 'new tokens stored');
  assert.match(fs.readFileSync(srvA.logFile, 'utf8'), /"connection_refreshed"/);
  await client.close();
  // B saw the call as its own user, through A's registration
  const row = srvB.cluster.sql(`SELECT user_email || ' ' || client_id FROM audit_events WHERE tool = 'everything__echo'` +
    ` AND decision = 'allow' ORDER BY id DESC LIMIT 1`);
  assert.equal(row, `${bUser.email} ${clientId}`);

  // disconnect: the next call names the page to connect at
  await page.goto(`${srvA.url}/agents/default/connections`);
  await Promise.all([page.waitForNavigation(), page.click('button[data-action=disconnect][data-connector=remote]')]);
  const { client: again } = await sdkClient(srvA, pat);
  const nc = await again.callTool({ name: 'remote__everything__echo', arguments: { message: 'x' } });
  assert.equal(nc.isError, true);
  assert.match(nc.content[0].text, /\/agents\/default\/connections/);
  await again.close();
  await page.context().close();
});

test('the client metadata document this server would register with', async () => {
  const r = await fetch(`${srvA.url}/connect/client-metadata.json`);
  assert.equal(r.status, 200);
  const doc = await r.json();
  assert.equal(doc.client_id, `${srvA.url}/connect/client-metadata.json`);
  assert.deepEqual(doc.redirect_uris, [`${srvA.url}/connect/callback`]);
  assert.equal(doc.token_endpoint_auth_method, 'none');
});
