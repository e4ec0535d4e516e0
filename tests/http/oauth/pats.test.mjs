// Personal access tokens (CLI and /profile/tokens), connections pages, admin revocation.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, createUser, gatehouse, secret, Client } from '../../harness/index.mjs';
import { fullFlow, signedIn, mcp, token } from './lib.mjs';

let srv;
before(async () => { srv = await startServer({ name: 'oauth-pats' }); });
after(async () => { assert.equal(await srv.stop(), 0); });

// CRC32 + base62, as a secret scanner would check offline
const B62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
function crc32(s) {
  let c = ~0;
  for (const b of Buffer.from(s)) { c ^= b; for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1)); }
  return (~c) >>> 0;
}
function checksumOk(t) {
  const m = /^(gth_pat_[0-9A-Za-z]{32})_([0-9A-Za-z]{6})$/.exec(t);
  if (!m) return false;
  let c = crc32(m[1]), s = '';
  for (let i = 0; i < 6; i++) { s = B62[c % 62] + s; c = Math.floor(c / 62); }
  return s === m[2];
}

test('gatehouse pat create prints only a checksummed token that works at its agent only', async () => {
  const u = createUser(srv, {});
  gatehouse(srv, ['agent', 'add', '--slug', 'pat-agent', '--name', 'PAT agent']);
  const r = gatehouse(srv, ['pat', 'create', '--email', u.email, '--agent', 'default', '--name', 'laptop', '--expires-days', '30']);
  assert.equal(r.code, 0, r.stderr);
  const t = secret(r.stdout.trim());
  assert.equal(r.stdout, `${t}\n`);
  assert.ok(checksumOk(t), t.slice(0, 12));
  assert.equal((await mcp(srv, '/mcp', t)).status, 200);
  assert.equal((await mcp(srv, '/agents/default/mcp', t)).status, 200);
  assert.equal((await mcp(srv, '/agents/pat-agent/mcp', t)).status, 401);
  // one changed character: the checksum fails, and the server refuses it
  const typo = t.slice(0, 10) + (t[10] === 'a' ? 'b' : 'a') + t.slice(11);
  assert.ok(!checksumOk(typo));
  assert.equal((await mcp(srv, '/mcp', typo)).status, 401);
  const none = gatehouse(srv, ['pat', 'create', '--email', 'nobody@example.test', '--name', 'x']);
  assert.notEqual(none.code, 0);
  assert.equal(none.stdout, '');
});

test('/profile/tokens: create (shown once), list with prefix and last use, revoke', async () => {
  const u = createUser(srv, {});
  const c = await signedIn(srv, u);
  const res = await c.form('/profile/tokens', '/profile/tokens', { name: 'ci-runner', agent: 'default', expires_days: '7' });
  assert.equal(res.status, 201);
  const html = await res.text();
  const t = secret(html.match(/id="new-token">([^<]+)</)[1]);
  assert.ok(checksumOk(t));
  assert.equal((await mcp(srv, '/mcp', t)).status, 200);
  const list = await (await c.get('/profile/tokens')).text();
  assert.match(list, /ci-runner/);
  assert.ok(list.includes(t.slice(0, 12)), 'prefix shown');
  assert.ok(!list.includes(t), 'the token is not shown again');
  assert.match(list, /<th>Last used<\/th>/);
  const id = list.match(/name="id" value="([0-9a-f-]{36})"/)[1];
  // another user cannot revoke it
  const other = await signedIn(srv, createUser(srv, {}));
  await other.form('/profile/tokens', '/profile/tokens/revoke', { id });
  assert.equal((await mcp(srv, '/mcp', t)).status, 200);
  const rv = await c.form('/profile/tokens', '/profile/tokens/revoke', { id });
  assert.equal(rv.status, 303);
  assert.equal((await mcp(srv, '/mcp', t)).status, 401);
  const csrfless = await c.post('/profile/tokens', { name: 'x' });
  assert.equal(csrfless.status, 403);
});

test('/profile/connections: one row per grant; Disconnect revokes its tokens, PATs stay', async () => {
  const u = createUser(srv, {});
  const c = await signedIn(srv, u);
  const pat = secret(gatehouse(srv, ['pat', 'create', '--email', u.email, '--name', 'keep']).stdout.trim());
  const d = await fullFlow(srv, c, { meta: { client_name: 'Connected App' } });
  const page = await (await c.get('/profile/connections')).text();
  assert.match(page, /Connected App/);
  assert.match(page, /Default agent/);
  const grant = page.match(/name="grant" value="([0-9a-f-]{36})"/)[1];
  const res = await c.form('/profile/connections', '/profile/connections/revoke', { grant });
  assert.equal(res.status, 303);
  assert.equal((await mcp(srv, '/mcp', d.tokens.access_token)).status, 401);
  const r = await token(srv, { grant_type: 'refresh_token', refresh_token: d.tokens.refresh_token, client_id: d.client.client_id });
  assert.equal(r.body.error, 'invalid_grant');
  assert.equal((await mcp(srv, '/mcp', pat)).status, 200);
  assert.doesNotMatch(await (await c.get('/profile/connections')).text(), /Connected App/);
});

test('/admin/connections: admins only; filter; revoke by grant, by client, everything of a user', async () => {
  const admin = createUser(srv, { admin: true });
  const a = await signedIn(srv, admin);
  const u1 = createUser(srv, {}), u2 = createUser(srv, {});
  const c1 = await signedIn(srv, u1), c2 = await signedIn(srv, u2);
  assert.equal((await c1.get('/admin/connections')).status, 403);
  assert.equal((await new Client(srv.url).get('/admin/connections')).status, 303);
  const d1 = await fullFlow(srv, c1, { meta: { client_name: 'Shared Client' } });
  // the same client for u2: consent with the existing registration
  const { pkce, consent } = await import('./lib.mjs');
  const p = pkce();
  const { location } = await consent(c2, { response_type: 'code', client_id: d1.client.client_id, redirect_uri: d1.redirect,
    code_challenge: p.challenge, code_challenge_method: 'S256' });
  const t2 = (await token(srv, { grant_type: 'authorization_code', code: new URL(location).searchParams.get('code'),
    redirect_uri: d1.redirect, code_verifier: p.verifier, client_id: d1.client.client_id })).body;
  const other = await fullFlow(srv, c2, { meta: { client_name: 'Other Client' } });
  const pat2 = secret(gatehouse(srv, ['pat', 'create', '--email', u2.email, '--name', 'k']).stdout.trim());

  const filtered = await (await a.get(`/admin/connections?user=${encodeURIComponent(u1.email)}`)).text();
  assert.ok(filtered.includes(u1.email));
  assert.ok(!filtered.includes(u2.email));
  const byClient = await (await a.get(`/admin/connections?client=${d1.client.client_id}`)).text();
  assert.ok(byClient.includes(u1.email) && byClient.includes(u2.email));
  assert.ok(!byClient.includes('Other Client'));

  const res = await a.form('/admin/connections', '/admin/connections/revoke-client', { client_id: d1.client.client_id });
  assert.equal(res.status, 303);
  assert.equal((await mcp(srv, '/mcp', d1.tokens.access_token)).status, 401);
  assert.equal((await mcp(srv, '/mcp', t2.access_token)).status, 401);
  assert.equal((await mcp(srv, '/mcp', other.tokens.access_token)).status, 200);
  const uid = (await (await a.get(`/admin/connections?user=${encodeURIComponent(u2.email)}`)).text()).match(/name="user_id" value="([0-9a-f-]{36})"/)[1];
  const csrfless = await a.post('/admin/connections/revoke-user', { user_id: uid });
  assert.equal(csrfless.status, 403);
  const nonAdmin = await c1.form('/profile', '/admin/connections/revoke-user', { user_id: uid });
  assert.equal(nonAdmin.status, 403);
  assert.equal((await mcp(srv, '/mcp', pat2)).status, 200);
  await a.form('/admin/connections', '/admin/connections/revoke-user', { user_id: uid });
  assert.equal((await mcp(srv, '/mcp', other.tokens.access_token)).status, 401);
  assert.equal((await mcp(srv, '/mcp', pat2)).status, 401);
  // one grant
  const d3 = await fullFlow(srv, c1, { meta: { client_name: 'Single' } });
  const grant = (await (await a.get(`/admin/connections?client=${d3.client.client_id}`)).text()).match(/name="grant" value="([0-9a-f-]{36})"/)[1];
  await a.form('/admin/connections', '/admin/connections/revoke', { grant });
  assert.equal((await mcp(srv, '/mcp', d3.tokens.access_token)).status, 401);
});

test('sign-in is rate limited per IP with 429 and Retry-After', async () => {
  const s2 = await startServer({ name: 'oauth-login-rate', env: { GATEHOUSE_RATE_LOGIN_PER_MIN: '3' } });
  try {
    const c = new Client(s2.url);
    let last;
    for (let i = 0; i < 5; i++) last = await c.login('x@example.test', 'wrong-password-123');
    assert.equal(last.status, 429);
    assert.ok(Number(last.headers.get('retry-after')) > 0);
  } finally { assert.equal(await s2.stop(), 0); }
});
