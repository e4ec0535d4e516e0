// RFC 7662 for resource servers: a confidential client an administrator
// designated (`gatehouse client introspection --client-id ID on`) introspects
// every access token and PAT of the server; undesignated, a client sees only
// its own tokens; a public client is refused; registration cannot grant it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, createUser, gatehouse, secret } from '../../harness/index.mjs';
import { fullFlow, register, signedIn } from './lib.mjs';

let srv, u, c, rs;
before(async () => {
  srv = await startServer({ name: 'oauth-introspect' });
  u = createUser(srv, {});
  c = await signedIn(srv, u);
  // the resource server: a confidential client that never asks for a token itself
  rs = (await register(srv, { client_name: 'Resource Server', token_endpoint_auth_method: 'client_secret_basic',
    redirect_uris: ['https://rs.example/cb'] })).body;
  assert.ok(rs.client_secret);
});
after(async () => { assert.equal(await srv.stop(), 0); });

const basic = (id, s) => ({ Authorization: `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(s)}`).toString('base64')}` });

async function introspect(tok, auth = basic(rs.client_id, rs.client_secret), form = {}) {
  const res = await fetch(`${srv.url}/oauth/introspect`, { method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded', ...auth },
    body: new URLSearchParams({ token: tok, ...form }) });
  return { status: res.status, body: await res.json(), headers: res.headers };
}

const designate = (id, state) => gatehouse(srv, ['client', 'introspection', '--client-id', id, state]);

function pat(name, args = []) {
  const r = gatehouse(srv, ['pat', 'create', '--email', u.email, '--name', name, ...args]);
  assert.equal(r.code, 0, r.stderr);
  return secret(r.stdout.trim());
}

async function revokePat(name) {
  const list = await (await c.get('/profile/tokens')).text();
  const row = list.split('<tr').find((tr) => tr.includes(`>${name}<`));
  const id = row.match(/name="id" value="([0-9a-f-]{36})"/)[1];
  assert.equal((await c.form('/profile/tokens', '/profile/tokens/revoke', { id })).status, 303);
}

test('undesignated, a confidential client gets active:false for other clients\' tokens and for PATs', async () => {
  const d = await fullFlow(srv, c, { meta: { client_name: 'Claude' } });
  const p = pat('undesignated');
  for (const tok of [d.tokens.access_token, d.tokens.refresh_token, p]) {
    const r = await introspect(tok);
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, { active: false });
    assert.equal(r.headers.get('cache-control'), 'no-store');
  }
});

test('designated via the CLI, it introspects another client\'s access token and PATs; revoked ones are inactive', async () => {
  const sql = (q) => srv.cluster.sql(q).trim();
  const userId = sql(`SELECT id FROM users WHERE email = '${u.email}'`);
  const d = await fullFlow(srv, c, { meta: { client_name: 'ChatGPT' } });
  const p = pat('laptop', ['--expires-days', '30']);
  gatehouse(srv, ['agent', 'add', '--slug', 'intro-agent', '--name', 'Introspected']);
  const p2 = pat('agent-pat', ['--agent', 'intro-agent']);

  const on = designate(rs.client_id, 'on');
  assert.equal(on.code, 0, on.stderr);
  assert.equal(on.stdout.trim().split('\n').length, 1, 'a one-line confirmation');
  assert.match(on.stdout, new RegExp(`${rs.client_id}.*every access token`));

  const a = (await introspect(d.tokens.access_token)).body;
  assert.equal(a.active, true);
  assert.equal(a.client_id, d.client.client_id, 'the client the token was issued to, not the caller');
  assert.equal(a.sub, userId);
  assert.equal(a.username, u.email);
  assert.equal(a.scope, 'mcp');
  assert.equal(a.aud, `${srv.url}/mcp`);
  assert.equal(a.token_type, 'Bearer');
  assert.ok(a.iat > 0 && a.exp - a.iat === 3600, `iat ${a.iat} exp ${a.exp}`);
  // refresh tokens stay with the client that holds them
  assert.deepEqual((await introspect(d.tokens.refresh_token)).body, { active: false });

  const t = (await introspect(p)).body;
  assert.equal(t.active, true);
  assert.equal(t.sub, userId);
  assert.equal(t.username, u.email);
  assert.equal(t.scope, 'mcp');
  assert.equal(t.aud, `${srv.url}/mcp`);
  assert.equal(t.token_type, 'Bearer');
  assert.equal(t.client_id, undefined, 'a PAT was issued to no client');
  // 30 days by the calendar: an hour either way where the database's time zone has DST
  assert.ok(Math.abs(t.exp - t.iat - 30 * 86400) <= 3600, `iat ${t.iat} exp ${t.exp}`);
  const t2 = (await introspect(p2)).body;
  assert.equal(t2.active, true);
  assert.equal(t2.aud, `${srv.url}/agents/intro-agent/mcp`);
  assert.equal(t2.exp, undefined, 'a PAT without expiry has no exp');
  // a PAT with a broken checksum is not even looked up
  const typo = p.slice(0, 10) + (p[10] === 'a' ? 'b' : 'a') + p.slice(11);
  assert.deepEqual((await introspect(typo)).body, { active: false });

  // revoked: active:false and nothing else
  const rv = await fetch(`${srv.url}/oauth/revoke`, { method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ token: d.tokens.access_token, client_id: d.client.client_id }) });
  assert.equal(rv.status, 200);
  assert.deepEqual((await introspect(d.tokens.access_token)).body, { active: false });
  await revokePat('laptop');
  assert.deepEqual((await introspect(p)).body, { active: false });
  assert.deepEqual((await introspect('gth_oat_00000000000000000000000000000000')).body, { active: false });

  // off again: back to its own tokens only
  const off = designate(rs.client_id, 'off');
  assert.equal(off.code, 0, off.stderr);
  assert.match(off.stdout, /only its own tokens/);
  const d2 = await fullFlow(srv, c, { meta: { client_name: 'Cursor' } });
  assert.deepEqual((await introspect(d2.tokens.access_token)).body, { active: false });
  assert.deepEqual((await introspect(p2)).body, { active: false });
});

test('a public client is refused, designated or not; only a confidential registered client can be designated', async () => {
  const d = await fullFlow(srv, c, { meta: { client_name: 'Public' } });
  const pub = { client_id: d.client.client_id };
  const before = await introspect(d.tokens.access_token, {}, pub);
  assert.equal(before.status, 401);
  assert.equal(before.body.error, 'invalid_client');
  const refused = designate(d.client.client_id, 'on');
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /confidential/);
  assert.equal(refused.stdout, '');
  // even if the column were set behind the CLI's back, a public client stays refused
  srv.cluster.sql(`UPDATE oauth_clients SET resource_server = true WHERE client_id = '${d.client.client_id}'`);
  const after = await introspect(d.tokens.access_token, {}, pub);
  assert.equal(after.status, 401);
  assert.equal(after.body.error, 'invalid_client');

  const unknown = designate('gh_client_nosuchclient', 'on');
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /No registered client/);
  for (const args of [['client', 'introspection', '--client-id', rs.client_id],
    ['client', 'introspection', '--client-id', rs.client_id, 'maybe'],
    ['client', 'introspection', 'on'],
    ['client', 'frobnicate', '--client-id', rs.client_id, 'on']]) {
    const r = gatehouse(srv, args);
    assert.equal(r.code, 2, args.join(' '));
    assert.equal(r.stdout, '');
  }
  // asking for it at registration does nothing
  const sneaky = (await register(srv, { client_name: 'Sneaky', token_endpoint_auth_method: 'client_secret_post',
    redirect_uris: ['https://sneaky.example/cb'], resource_server: true, introspection: true })).body;
  const other = await fullFlow(srv, c, { meta: { client_name: 'Victim' } });
  const r = await introspect(other.tokens.access_token, {}, { client_id: sneaky.client_id, client_secret: sneaky.client_secret });
  assert.equal(r.status, 200);
  assert.deepEqual(r.body, { active: false });
});
