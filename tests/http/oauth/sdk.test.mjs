// The MCP TypeScript SDK as the client: discovery -> registration (DCR or a
// Client ID Metadata Document) -> authorize -> login -> consent -> token ->
// authenticated request; then, after the access token expired, refresh.
// An authenticated client gets through to the MCP gateway.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { Client as McpClient } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { startServer, startCluster, createUser, secret, sleep, Client } from '../../harness/index.mjs';
import { signedIn, mcp } from './lib.mjs';

const CB = 'http://127.0.0.1:43117/callback';
let cluster;
before(async () => { cluster = await startCluster(); });
after(async () => { await cluster.stop(); });

class Provider {
  constructor(clientInfo) { this.client = clientInfo; this.saved = []; }
  get redirectUrl() { return CB; }
  get clientMetadata() {
    return { client_name: 'SDK Test Client', redirect_uris: [CB], grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'], token_endpoint_auth_method: 'none' };
  }
  state() { return 'sdk-state-1'; }
  clientInformation() { return this.client; }
  saveClientInformation(info) { this.client = info; }
  tokens() { return this.tok; }
  saveTokens(t) {
    secret(t.access_token);
    if (t.refresh_token) secret(t.refresh_token);
    this.tok = t;
    this.saved.push(t);
  }
  redirectToAuthorization(url) { this.authUrl = url; }
  saveCodeVerifier(v) { this.verifier = secret(v); }
  codeVerifier() { return this.verifier; }
}

/* Connects with the SDK transport; returns null, or the error. */
async function connect(srv, provider, path = '/mcp') {
  const transport = new StreamableHTTPClientTransport(new URL(`${srv.url}${path}`), { authProvider: provider });
  const client = new McpClient({ name: 'gatehouse-test', version: '1.0.0' });
  try {
    await client.connect(transport);
    return null;
  } catch (e) {
    return { e, transport };
  } finally {
    await transport.close().catch(() => {});
  }
}

/* The browser part: the signed-in user approves; returns the code. */
async function browser(srv, browserClient, provider) {
  assert.ok(provider.authUrl, 'the SDK asked to open the authorize URL');
  const u = new URL(provider.authUrl);
  assert.equal(u.origin, srv.url);
  assert.equal(u.searchParams.get('code_challenge_method'), 'S256');
  assert.ok(u.searchParams.get('resource'), 'resource indicator sent');
  const page = await browserClient.get(`${u.pathname}${u.search}`);
  assert.equal(page.status, 200);
  const html = await page.text();
  assert.match(html, /name="decision" value="approve"/);
  const fields = { csrf: browserClient.csrf, decision: 'approve' };
  for (const [k, v] of u.searchParams) fields[k] = v;
  const res = await browserClient.post('/oauth/authorize', fields);
  assert.equal(res.status, 303);
  const back = new URL(res.headers.get('location'));
  assert.equal(`${back.origin}${back.pathname}`, CB);
  assert.equal(back.searchParams.get('state'), 'sdk-state-1');
  assert.equal(back.searchParams.get('iss'), srv.url);
  return { code: secret(back.searchParams.get('code')), html };
}

async function fullSdkRun(srv, provider, user) {
  const first = await connect(srv, provider);
  assert.ok(first && first.e instanceof UnauthorizedError, `expected UnauthorizedError, got ${first?.e}`);
  const bc = await signedIn(srv, user);
  const { code, html } = await browser(srv, bc, provider);
  await first.transport.finishAuth(code);
  assert.ok(provider.tok?.access_token);
  assert.ok(provider.tok?.refresh_token);
  // authenticated: the gateway's initialize succeeds
  const second = await connect(srv, provider);
  assert.equal(second, null, String(second?.e));
  assert.equal((await mcp(srv, '/mcp', provider.tok.access_token)).status, 200);
  // the access token expires; the SDK refreshes on the 401 and gets in again
  const old = provider.tok;
  await sleep(2600);
  assert.equal((await mcp(srv, '/mcp', old.access_token)).status, 401);
  const third = await connect(srv, provider);
  assert.equal(third, null, String(third?.e));
  assert.notEqual(provider.tok.access_token, old.access_token);
  assert.notEqual(provider.tok.refresh_token, old.refresh_token);
  assert.equal((await mcp(srv, '/mcp', provider.tok.access_token)).status, 200);
  return html;
}

test('SDK: dynamic client registration, consent, token, authenticated request, refresh', async () => {
  const srv = await startServer({ cluster, name: 'oauth-sdk-dcr', env: { GATEHOUSE_ACCESS_TOKEN_TTL: '2' } });
  try {
    const user = createUser(srv, {});
    const provider = new Provider(undefined);
    const html = await fullSdkRun(srv, provider, user);
    assert.match(provider.client.client_id, /^gh_client_/);
    assert.match(html, /SDK Test Client/);
    assert.match(html, /registered dynamically/);
  } finally { assert.equal(await srv.stop(), 0); }
});

function docServer(docFor) {
  const hits = [];
  const server = http.createServer((req, res) => {
    hits.push(req.url);
    const url = `http://127.0.0.1:${server.address().port}${req.url}`;
    const doc = docFor(url, req.url);
    if (!doc) { res.writeHead(404); res.end(); return; }
    res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'max-age=600' });
    res.end(typeof doc === 'string' ? doc : JSON.stringify(doc));
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, hits,
    url: (p) => `http://127.0.0.1:${server.address().port}${p}` })));
}

const goodDoc = (url) => ({ client_id: url, client_name: 'CIMD Test Client', redirect_uris: [CB],
  grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'], token_endpoint_auth_method: 'none' });

test('SDK with a Client ID Metadata Document served over http://127.0.0.1 (development setting on)', async () => {
  const docs = await docServer((url, path) => {
    if (path === '/client.json') return goodDoc(url);
    if (path === '/wrong-id.json') return { ...goodDoc(url), client_id: 'https://elsewhere.example/client.json' };
    if (path === '/no-redirects.json') return { client_id: url, client_name: 'x' };
    if (path === '/huge.json') return { ...goodDoc(url), padding: 'x'.repeat(6000) };
    return null;
  });
  const srv = await startServer({ cluster, name: 'oauth-sdk-cimd',
    env: { GATEHOUSE_ACCESS_TOKEN_TTL: '2', GATEHOUSE_DEV_ALLOW_PRIVATE_CIMD: 'true' } });
  try {
    const user = createUser(srv, {});
    // the SDK itself only sends https metadata URLs; the client id is supplied as stored client information
    const provider = new Provider({ client_id: docs.url('/client.json') });
    const html = await fullSdkRun(srv, provider, user);
    assert.equal(provider.client.client_id, docs.url('/client.json'));
    assert.match(html, /CIMD Test Client/);
    assert.match(html, /client metadata document at <strong>127\.0\.0\.1<\/strong>/);
    assert.ok(docs.hits.includes('/client.json'));
    // cached: the consent and token requests did not fetch it again each time
    assert.ok(docs.hits.filter((h) => h === '/client.json').length <= 2, String(docs.hits));

    const bc = await signedIn(srv, user);
    for (const bad of ['/wrong-id.json', '/no-redirects.json', '/huge.json', '/missing.json']) {
      const res = await bc.get(`/oauth/authorize?response_type=code&client_id=${encodeURIComponent(docs.url(bad))}` +
        `&redirect_uri=${encodeURIComponent(CB)}&code_challenge=${'a'.repeat(43)}&code_challenge_method=S256`);
      assert.equal(res.status, 400, bad);
      assert.equal(res.headers.get('location'), null);
      await res.arrayBuffer();
    }
  } finally {
    assert.equal(await srv.stop(), 0);
    docs.server.close();
  }
});

/* Listens on loopback and counts TCP connections: an address refused before
 * connect leaves it at zero.  null where the host has no such loopback. */
async function tcpCounter(host) {
  const c = { n: 0 };
  c.server = net.createServer((s) => { c.n++; s.destroy(); });
  try {
    await new Promise((resolve, reject) => { c.server.once('error', reject); c.server.listen(0, host, resolve); });
  } catch { return null; }
  c.port = c.server.address().port;
  return c;
}

test('private and loopback metadata documents are refused before connect by default (development setting off)', async () => {
  const v4 = await tcpCounter('127.0.0.1');
  const v6 = await tcpCounter('::1');
  const srv = await startServer({ cluster, name: 'oauth-sdk-cimd-off' });
  try {
    const user = createUser(srv, {});
    const bc = await signedIn(srv, user);
    const authorize = async (id) => {
      const t0 = Date.now();
      const res = await bc.get(`/oauth/authorize?response_type=code&client_id=${encodeURIComponent(id)}` +
        `&redirect_uri=${encodeURIComponent(CB)}&code_challenge=${'a'.repeat(43)}&code_challenge_method=S256`);
      return { status: res.status, location: res.headers.get('location'), body: await res.text(), ms: Date.now() - t0 };
    };
    // without the setting http is not a metadata document at all
    const plain = await authorize(`http://127.0.0.1:${v4.port}/client.json`);
    assert.equal(plain.status, 400);
    assert.match(plain.body, /not a valid https URL/);
    // each names a loopback, private or link-local address: refused by the
    // address rule itself, before any connection is attempted (so at once,
    // and not with the timeout's or TLS's "could not be fetched")
    for (const id of [
      `https://127.0.0.1:${v4.port}/client.json`, `https://localhost:${v4.port}/client.json`,
      `https://[::1]:${(v6 ?? v4).port}/client.json`, 'https://10.1.2.3/client.json',
      'https://172.16.5.4/client.json', 'https://192.168.1.1/client.json', 'https://100.64.0.1/client.json',
      'https://169.254.169.254/latest/meta-data', 'https://[fe80::1]/client.json', 'https://[fd00::1]/client.json',
      'https://[::ffff:10.0.0.1]/client.json', 'https://[::a00:1]/client.json', 'https://[64:ff9b::a00:1]/client.json',
      'https://[64:ff9b:1::1]/client.json', 'https://[2002:a00:1::1]/client.json', 'https://[fec0::1]/client.json',
      'https://198.18.0.1/client.json']) {
      const r = await authorize(id);
      assert.equal(r.status, 400, id);
      assert.equal(r.location, null, id);
      assert.match(r.body, /The client metadata document must be on a public address\./, id);
      assert.ok(r.ms < 4500, `${id}: refused after ${r.ms} ms, not before connecting`);
    }
    const t = await fetch(`${srv.url}/oauth/token`, { method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'authorization_code', code: 'x', code_verifier: 'a'.repeat(43),
        client_id: `https://127.0.0.1:${v4.port}/other.json` }) });
    assert.equal(t.status, 401);
    await t.arrayBuffer();
    assert.equal(v4.n, 0, 'nothing connected to 127.0.0.1');
    if (v6) assert.equal(v6.n, 0, 'nothing connected to ::1');
  } finally {
    assert.equal(await srv.stop(), 0);
    v4.server.close();
    v6?.server.close();
  }
});
