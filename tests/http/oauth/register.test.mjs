// RFC 7591 registration, RFC 7592 management, redirect URI rules, hygiene, rate limit.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, createUser, secret } from '../../harness/index.mjs';
import { register, signedIn, consent, pkce, token, mcp } from './lib.mjs';

let srv;
before(async () => { srv = await startServer({ name: 'oauth-register', env: { GATEHOUSE_RATE_REGISTER_PER_MIN: '60' } }); });
after(async () => { assert.equal(await srv.stop(), 0); });

test('the response echoes every registered field; a secret only for confidential methods', async () => {
  const meta = { redirect_uris: ['https://app.example/cb', 'http://127.0.0.1/cb'], client_name: 'Echo',
    client_uri: 'https://app.example', logo_uri: 'https://app.example/logo.png', scope: 'mcp',
    contacts: ['ops@app.example'], tos_uri: 'https://app.example/tos', policy_uri: 'https://app.example/privacy',
    software_id: 'echo', software_version: '1.2', grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'], token_endpoint_auth_method: 'none' };
  const pub = await register(srv, meta);
  assert.equal(pub.status, 201);
  assert.equal(pub.headers.get('cache-control'), 'no-store');
  for (const [k, v] of Object.entries(meta)) assert.deepEqual(pub.body[k], v, k);
  assert.ok(pub.body.client_id);
  assert.equal(typeof pub.body.client_id_issued_at, 'number');
  assert.equal(pub.body.client_secret, undefined);
  assert.ok(pub.body.registration_access_token);
  assert.equal(pub.body.registration_client_uri, `${srv.url}/oauth/register/${pub.body.client_id}`);

  for (const method of ['client_secret_basic', 'client_secret_post']) {
    const conf = await register(srv, { token_endpoint_auth_method: method });
    assert.equal(conf.status, 201);
    assert.equal(conf.body.token_endpoint_auth_method, method);
    assert.match(conf.body.client_secret, /^gth_cs_[0-9a-f]{64}$/);
    assert.equal(conf.body.client_secret_expires_at, 0);
  }
  // RFC 7591 default method is client_secret_basic
  const dflt = await fetch(`${srv.url}/oauth/register`, { method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ redirect_uris: ['https://app.example/cb'] }) });
  const db = await dflt.json();
  secret(db.client_secret); secret(db.registration_access_token);
  assert.equal(db.token_endpoint_auth_method, 'client_secret_basic');
  assert.ok(db.client_secret);
});

test('RFC 7592: read, update and delete with the registration access token only', async () => {
  const r = await register(srv, { client_name: 'Managed' });
  const uri = r.body.registration_client_uri;
  const auth = { Authorization: `Bearer ${r.body.registration_access_token}` };
  assert.equal((await fetch(uri)).status, 401);
  assert.equal((await fetch(uri, { headers: { Authorization: 'Bearer wrong' } })).status, 401);
  const got = await fetch(uri, { headers: auth });
  assert.equal(got.status, 200);
  const gb = await got.json();
  assert.equal(gb.client_name, 'Managed');
  // each read and update issues a new registration access token (RFC 7592 3)
  const auth2 = { Authorization: `Bearer ${secret(gb.registration_access_token)}` };
  const put = await fetch(uri, { method: 'PUT', headers: { ...auth2, 'Content-Type': 'application/json' },
    body: JSON.stringify({ client_id: r.body.client_id, redirect_uris: ['https://new.example/cb'], client_name: 'Renamed',
      token_endpoint_auth_method: 'none' }) });
  assert.equal(put.status, 200);
  const pb = await put.json();
  assert.equal(pb.client_name, 'Renamed');
  assert.deepEqual(pb.redirect_uris, ['https://new.example/cb']);
  const auth3 = { Authorization: `Bearer ${secret(pb.registration_access_token)}` };
  const del = await fetch(uri, { method: 'DELETE', headers: auth3 });
  assert.equal(del.status, 204);
  assert.equal((await fetch(uri, { headers: auth3 })).status, 401);
});

test('redirect URI rules: https, loopback http, private-use schemes; dangerous ones refused', async () => {
  const good = ['https://claude.ai/api/mcp/auth_callback', 'https://chatgpt.com/connector/oauth/abc123',
    'cursor://anysphere.cursor-mcp/oauth/callback', 'http://127.0.0.1/callback', 'http://localhost:33418/cb',
    'http://[::1]/cb', 'https://vscode.dev/redirect'];
  for (const uri of good) {
    const r = await register(srv, { redirect_uris: [uri] });
    assert.equal(r.status, 201, `${uri}: ${JSON.stringify(r.body)}`);
  }
  const bad = ['javascript:alert(1)', 'JavaScript:alert(1)', 'data:text/html,<script>1</script>', 'file:///etc/passwd',
    'http://evil.example/cb', 'https://app.example/cb#frag', 'https://user@evil.example/cb', 'not a uri', '',
    'vbscript:msgbox', 'https://', 'http://127.0.0.1.evil.example/cb'];
  for (const uri of bad) {
    const r = await register(srv, { redirect_uris: [uri] });
    assert.equal(r.status, 400, uri);
    assert.equal(r.body.error, 'invalid_redirect_uri', uri);
  }
  for (const body of [{}, { redirect_uris: [] }, { redirect_uris: 'https://a.example/cb' }]) {
    const res = await fetch(`${srv.url}/oauth/register`, { method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body) });
    assert.equal(res.status, 400);
    assert.equal((await res.json()).error, 'invalid_redirect_uri');
  }
  const meta = await register(srv, { token_endpoint_auth_method: 'private_key_jwt' });
  assert.equal(meta.status, 400);
  assert.equal(meta.body.error, 'invalid_client_metadata');
  const grants = await register(srv, { grant_types: ['implicit'] });
  assert.equal(grants.body.error, 'invalid_client_metadata');
  const notjson = await fetch(`${srv.url}/oauth/register`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{' });
  assert.equal(notjson.status, 400);
});

test('client_uri, logo_uri, policy_uri, tos_uri: https only (http on loopback); contacts capped', async () => {
  // a process of its own on the same database: these many registrations would spend the others' rate budget
  const own = await startServer({ cluster: srv.cluster, name: 'oauth-register-links', env: { GATEHOUSE_RATE_REGISTER_PER_MIN: '1000' } });
  try { await linksAndContacts(own); } finally { assert.equal(await own.stop(), 0); }
});

async function linksAndContacts(srv) {
  for (const field of ['client_uri', 'logo_uri', 'policy_uri', 'tos_uri']) {
    for (const uri of ['https://app.example/about', 'http://127.0.0.1:8080/logo.png', 'http://localhost/tos']) {
      const r = await register(srv, { [field]: uri });
      assert.equal(r.status, 201, `${field} ${uri}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body[field], uri);
    }
    for (const uri of ['javascript:alert(1)', 'JAVASCRIPT:alert(1)', 'data:text/html,<b>x</b>', 'http://app.example/x',
      'vbscript:x', 'file:///etc/passwd', 'https://user@evil.example/', 'ftp://app.example/x', '//app.example/x', 'https://']) {
      const r = await register(srv, { [field]: uri });
      assert.equal(r.status, 400, `${field} ${uri}`);
      assert.equal(r.body.error, 'invalid_client_metadata', `${field} ${uri}`);
    }
  }
  const ten = Array.from({ length: 10 }, (_, i) => `ops${i}@app.example`);
  assert.equal((await register(srv, { contacts: ten })).status, 201);
  for (const contacts of [Array.from({ length: 50000 }, (_, i) => `c${i}@x.example`), [...ten, 'one@more.example'], [`${'a'.repeat(400)}@x.example`]]) {
    const r = await register(srv, { contacts });
    assert.equal(r.status, 400, `${contacts.length} contacts`);
    assert.equal(r.body.error, 'invalid_client_metadata');
  }
  assert.equal(srv.cluster.sql("SELECT count(*) FROM oauth_clients WHERE metadata::text LIKE '%javascript%' OR metadata::text LIKE '%c49999@%'"), '0');
}

test('real clients register and complete the flow: Claude.ai, ChatGPT, Cursor, VS Code', async () => {
  const u = createUser(srv, {});
  const c = await signedIn(srv, u);
  const cases = [
    ['https://claude.ai/api/mcp/auth_callback', 'https://claude.ai/api/mcp/auth_callback'],
    ['https://chatgpt.com/connector/oauth/Zx81abc', 'https://chatgpt.com/connector/oauth/Zx81abc'],
    ['cursor://anysphere.cursor-mcp/oauth/callback', 'cursor://anysphere.cursor-mcp/oauth/callback'],
    ['http://127.0.0.1/', 'http://127.0.0.1:53121/'],           // VS Code: loopback, any port
    ['https://vscode.dev/redirect', 'https://vscode.dev/redirect'],
  ];
  for (const [registered, used] of cases) {
    const reg = await register(srv, { redirect_uris: [registered] });
    assert.equal(reg.status, 201, registered);
    const p = pkce();
    const { location } = await consent(c, { response_type: 'code', client_id: reg.body.client_id, redirect_uri: used,
      code_challenge: p.challenge, code_challenge_method: 'S256', state: 's1', resource: `${srv.url}/mcp` });
    assert.ok(location && location.startsWith(used), `${used} -> ${location}`);
    const code = new URL(location).searchParams.get('code');
    const t = await token(srv, { grant_type: 'authorization_code', code, redirect_uri: used, code_verifier: p.verifier,
      client_id: reg.body.client_id });
    assert.equal(t.status, 200, JSON.stringify(t.body));
    assert.equal((await mcp(srv, '/mcp', t.body.access_token)).status, 200);
  }
});

test('identical re-registrations do not pile up; 429 with Retry-After past the per-IP limit', async () => {
  const meta = { redirect_uris: ['https://dup.example/cb'], client_name: 'Dup' };
  const ids = [];
  for (let i = 0; i < 8; i++) {
    const r = await register(srv, meta);
    assert.equal(r.status, 201);
    ids.push(r.body.client_id);
  }
  const alive = [];
  for (const id of ids) {
    const res = await fetch(`${srv.url}/oauth/authorize?client_id=${id}&redirect_uri=${encodeURIComponent('https://dup.example/cb')}`, { redirect: 'manual' });
    // a live one is refused for its request (shown here: nobody approved it), a reaped one as unknown
    if (!/not registered/.test(await res.text())) alive.push(id);
  }
  assert.ok(alive.length <= 5, `kept ${alive.length} identical unused registrations`);
  assert.ok(alive.includes(ids[ids.length - 1]), 'the newest one works');
  let limited;
  for (let i = 0; i < 70 && !limited; i++) {
    const r = await register(srv, { client_name: `n${i}` });
    if (r.status === 429) limited = r;
  }
  assert.ok(limited, 'no 429');
  assert.ok(Number(limited.headers.get('retry-after')) > 0);
});
