// Refresh rotation with a grace window, chain revocation on replay, expiry,
// client authentication methods (a refusal logs why, never the secret; two
// Authorization headers are invalid_request), RFC 7009 revocation, RFC 7662 introspection,
// last-used times without a write per request.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import { startServer, createUser, sleep } from '../../harness/index.mjs';
import { fullFlow, signedIn, token, mcp } from './lib.mjs';

let srv, c;
before(async () => {
  srv = await startServer({ name: 'oauth-tokens', env: { GATEHOUSE_ACCESS_TOKEN_TTL: '3', GATEHOUSE_REFRESH_GRACE_SECONDS: '2' } });
  c = await signedIn(srv, createUser(srv, {}));
});
after(async () => { assert.equal(await srv.stop(), 0); });

const basic = (id, s) => ({ Authorization: `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(s)}`).toString('base64')}` });

test('token response shape; access token expires; refresh rotates and gets in again', async () => {
  const d = await fullFlow(srv, c, { scope: 'mcp offline_access' });
  const t = d.tokens;
  assert.match(t.access_token, /^gth_oat_[0-9a-f]{32}$/);
  assert.match(t.refresh_token, /^gth_ort_[0-9a-f]{64}$/);
  assert.equal(t.token_type, 'Bearer');
  assert.equal(t.expires_in, 3);
  assert.equal(t.scope, 'mcp offline_access');
  assert.equal((await mcp(srv, '/mcp', t.access_token)).status, 200);
  await sleep(3500);
  const expired = await mcp(srv, '/mcp', t.access_token);
  assert.equal(expired.status, 401);
  assert.match(expired.headers.get('www-authenticate'), /invalid_token/);
  const r = await token(srv, { grant_type: 'refresh_token', refresh_token: t.refresh_token, client_id: d.client.client_id });
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('cache-control'), 'no-store');
  assert.notEqual(r.body.refresh_token, t.refresh_token);
  assert.equal(r.body.scope, 'mcp offline_access');
  assert.equal((await mcp(srv, '/mcp', r.body.access_token)).status, 200);
  // narrower scope is fine, wider is not
  const wider = await token(srv, { grant_type: 'refresh_token', refresh_token: r.body.refresh_token, client_id: d.client.client_id, scope: 'mcp admin' });
  assert.equal(wider.body.error, 'invalid_scope');
});

test('16 concurrent refreshes with one token all get the same successor pair', async () => {
  const d = await fullFlow(srv, c, {});
  const form = { grant_type: 'refresh_token', refresh_token: d.tokens.refresh_token, client_id: d.client.client_id };
  const all = await Promise.all(Array.from({ length: 16 }, () => token(srv, form)));
  for (const r of all) assert.equal(r.status, 200, JSON.stringify(r.body));
  const pairs = new Set(all.map((r) => `${r.body.access_token} ${r.body.refresh_token}`));
  assert.equal(pairs.size, 1);
  assert.notEqual(all[0].body.refresh_token, d.tokens.refresh_token);
  // the successor works and is not stored in plaintext
  assert.equal((await mcp(srv, '/mcp', all[0].body.access_token)).status, 200);
  assert.equal(srv.cluster.sql(`SELECT count(*) FROM oauth_tokens WHERE successor LIKE '%gth_%' OR token_hash LIKE 'gth_%'`).trim(), '0');
});

test('refresh replay after the grace window revokes the whole chain', async () => {
  const d = await fullFlow(srv, c, {});
  const id = d.client.client_id;
  const r1 = await token(srv, { grant_type: 'refresh_token', refresh_token: d.tokens.refresh_token, client_id: id });
  assert.equal(r1.status, 200);
  await sleep(2500);
  const replay = await token(srv, { grant_type: 'refresh_token', refresh_token: d.tokens.refresh_token, client_id: id });
  assert.equal(replay.status, 400);
  assert.equal(replay.body.error, 'invalid_grant');
  assert.equal((await mcp(srv, '/mcp', r1.body.access_token)).status, 401);
  const r2 = await token(srv, { grant_type: 'refresh_token', refresh_token: r1.body.refresh_token, client_id: id });
  assert.equal(r2.body.error, 'invalid_grant');
});

test('client_secret_basic and client_secret_post; wrong method or secret is invalid_client', async () => {
  for (const method of ['client_secret_basic', 'client_secret_post']) {
    const d = await fullFlow(srv, c, { meta: { token_endpoint_auth_method: method } }).catch((e) => e);
    assert.ok(d instanceof Error, 'a confidential client cannot exchange without its secret');
  }
  const { register, pkce, consent } = await import('./lib.mjs');
  for (const method of ['client_secret_basic', 'client_secret_post']) {
    const reg = (await register(srv, { token_endpoint_auth_method: method, redirect_uris: ['https://conf.example/cb'] })).body;
    const p = pkce();
    const { location } = await consent(c, { response_type: 'code', client_id: reg.client_id, redirect_uri: 'https://conf.example/cb',
      code_challenge: p.challenge, code_challenge_method: 'S256' });
    const code = new URL(location).searchParams.get('code');
    const form = { grant_type: 'authorization_code', code, redirect_uri: 'https://conf.example/cb', code_verifier: p.verifier };
    const wrong = method === 'client_secret_basic'
      ? await token(srv, form, basic(reg.client_id, 'gth_cs_wrong'))
      : await token(srv, { ...form, client_id: reg.client_id, client_secret: 'gth_cs_wrong' });
    assert.equal(wrong.status, 401);
    assert.equal(wrong.body.error, 'invalid_client');
    const other = method === 'client_secret_basic'
      ? await token(srv, { ...form, client_id: reg.client_id, client_secret: reg.client_secret })
      : await token(srv, form, basic(reg.client_id, reg.client_secret));
    assert.equal(other.status, 401, 'the registered method only');
    const ok = method === 'client_secret_basic'
      ? await token(srv, form, basic(reg.client_id, reg.client_secret))
      : await token(srv, { ...form, client_id: reg.client_id, client_secret: reg.client_secret });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    // refreshing needs the secret too: a client_id alone does not rotate it
    const rt = ok.body.refresh_token;
    const bare = await token(srv, { grant_type: 'refresh_token', refresh_token: rt, client_id: reg.client_id });
    assert.equal(bare.status, 401);
    assert.equal(bare.body.error, 'invalid_client');
    const rf = { grant_type: 'refresh_token', refresh_token: rt };
    const rotated = method === 'client_secret_basic'
      ? await token(srv, rf, basic(reg.client_id, reg.client_secret))
      : await token(srv, { ...rf, client_id: reg.client_id, client_secret: reg.client_secret });
    assert.equal(rotated.status, 200, JSON.stringify(rotated.body));
    assert.notEqual(rotated.body.refresh_token, rt);
  }
});

test('a public client may not rotate another client\'s refresh token, nor one it may not refresh', async () => {
  const { register, pkce, consent } = await import('./lib.mjs');
  const d = await fullFlow(srv, c, {});
  const other = (await register(srv, {})).body;
  const stolen = await token(srv, { grant_type: 'refresh_token', refresh_token: d.tokens.refresh_token, client_id: other.client_id });
  assert.equal(stolen.status, 400);
  assert.equal(stolen.body.error, 'invalid_grant');
  const own = await token(srv, { grant_type: 'refresh_token', refresh_token: d.tokens.refresh_token, client_id: d.client.client_id });
  assert.equal(own.status, 200, 'the rightful client still can');
  const codeOnly = (await register(srv, { grant_types: ['authorization_code'], redirect_uris: ['https://code.example/cb'] })).body;
  const p = pkce();
  const { location } = await consent(c, { response_type: 'code', client_id: codeOnly.client_id, redirect_uri: 'https://code.example/cb',
    code_challenge: p.challenge, code_challenge_method: 'S256' });
  const t = await token(srv, { grant_type: 'authorization_code', code: new URL(location).searchParams.get('code'),
    redirect_uri: 'https://code.example/cb', code_verifier: p.verifier, client_id: codeOnly.client_id });
  assert.equal(t.status, 200);
  assert.equal(t.body.refresh_token, undefined, 'no refresh token for a client not registered for it');
});

/* A POST through node:http, which sends an array as one field line per element. */
function rawPost(path, headers, body, method = 'POST') {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: srv.port, path, method,
      headers: { 'Content-Type': 'application/x-www-form-urlencoded', ...headers } }, (res) => {
      let text = '';
      res.on('data', (d) => { text += d; });
      res.on('end', () => resolve({ status: res.statusCode, body: JSON.parse(text) }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

test('a refused client authentication logs the method the client registered; two Authorization headers are invalid_request', async () => {
  const { register, pkce, consent } = await import('./lib.mjs');
  const reg = (await register(srv, { token_endpoint_auth_method: 'client_secret_basic', redirect_uris: ['https://conf.example/cb'] })).body;
  const p = pkce();
  const { location } = await consent(c, { response_type: 'code', client_id: reg.client_id, redirect_uri: 'https://conf.example/cb',
    code_challenge: p.challenge, code_challenge_method: 'S256' });
  const form = { grant_type: 'authorization_code', code: new URL(location).searchParams.get('code'),
    redirect_uri: 'https://conf.example/cb', code_verifier: p.verifier };
  const post = await token(srv, { ...form, client_id: reg.client_id, client_secret: reg.client_secret });
  assert.equal(post.status, 401);
  assert.equal(post.body.error, 'invalid_client');
  assert.equal(post.body.error_description, 'Client authentication failed.', 'the client is told nothing more');
  const line = fs.readFileSync(srv.logFile, 'utf8').split('\n')
    .find((l) => l.includes(`client ${reg.client_id} registered client_secret_basic, presented client_secret_post`));
  assert.ok(line, 'the log names the expected method');
  assert.ok(!line.includes(reg.client_secret), 'not the secret');
  for (const path of ['/oauth/token', '/oauth/introspect', '/oauth/revoke']) {
    const two = await rawPost(path, { Authorization: [basic(reg.client_id, reg.client_secret).Authorization, basic(reg.client_id, 'gth_cs_other').Authorization] },
      new URLSearchParams(path === '/oauth/token' ? form : { token: 'gth_oat_x' }).toString());
    assert.equal(two.status, 400, `${path}: ${JSON.stringify(two.body)}`);
    assert.equal(two.body.error, 'invalid_request', path);
  }
  // RFC 7592 management with two registration access tokens
  const mgmt = await rawPost(`/oauth/register/${reg.client_id}`, { Authorization: [`Bearer ${reg.registration_access_token}`, 'Bearer other'] }, '', 'GET');
  assert.equal(mgmt.status, 400, JSON.stringify(mgmt.body));
  assert.equal(mgmt.body.error, 'invalid_request');
  // the code is still good: the refusals consumed nothing
  const ok = await token(srv, form, basic(reg.client_id, reg.client_secret));
  assert.equal(ok.status, 200, JSON.stringify(ok.body));
});

test('revocation: a refresh token takes its chain; introspection is for confidential clients', async () => {
  const { register, pkce, consent } = await import('./lib.mjs');
  const d = await fullFlow(srv, c, {});
  const rv = await fetch(`${srv.url}/oauth/revoke`, { method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ token: d.tokens.refresh_token, client_id: d.client.client_id }) });
  assert.equal(rv.status, 200);
  assert.equal((await mcp(srv, '/mcp', d.tokens.access_token)).status, 401);
  const again = await fetch(`${srv.url}/oauth/revoke`, { method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ token: 'gth_ort_unknown', client_id: d.client.client_id }) });
  assert.equal(again.status, 200);
  const pubIntro = await fetch(`${srv.url}/oauth/introspect`, { method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ token: d.tokens.access_token, client_id: d.client.client_id }) });
  assert.equal(pubIntro.status, 401);

  const reg = (await register(srv, { token_endpoint_auth_method: 'client_secret_basic', redirect_uris: ['https://conf.example/cb'],
    grant_types: ['authorization_code', 'refresh_token'] })).body;
  const p = pkce();
  const { location } = await consent(c, { response_type: 'code', client_id: reg.client_id, redirect_uri: 'https://conf.example/cb',
    code_challenge: p.challenge, code_challenge_method: 'S256' });
  const t = await token(srv, { grant_type: 'authorization_code', code: new URL(location).searchParams.get('code'),
    redirect_uri: 'https://conf.example/cb', code_verifier: p.verifier }, basic(reg.client_id, reg.client_secret));
  const intro = async (tok) => (await fetch(`${srv.url}/oauth/introspect`, { method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded', ...basic(reg.client_id, reg.client_secret) },
    body: new URLSearchParams({ token: tok }) })).json();
  const a = await intro(t.body.access_token);
  assert.equal(a.active, true);
  assert.equal(a.client_id, reg.client_id);
  assert.equal(a.scope, 'mcp');
  assert.equal(a.aud, `${srv.url}/mcp`);
  assert.equal(a.token_type, 'Bearer');
  assert.ok(a.exp > a.iat);
  assert.equal((await intro(t.body.refresh_token)).active, true);
  assert.equal((await intro(d.tokens.access_token)).active, false);
  assert.equal((await intro('garbage')).active, false);
});

test('last-used time is recorded without a write per request (flushed in the background)', async () => {
  const d = await fullFlow(srv, c, {});
  const q = () => srv.cluster.sql(`SELECT count(*) FROM oauth_grants WHERE client_id = '${d.client.client_id}' AND last_used_at IS NOT NULL`).trim();
  // the code exchange itself counts as a use: wait for its flush (every 2 s), then clear the
  // column, so what lands next can only come from the MCP requests below
  for (let i = 0; i < 40 && q() === '0'; i++) await sleep(250);
  assert.equal(q(), '1', 'the code exchange was recorded');
  srv.cluster.sql(`UPDATE oauth_grants SET last_used_at = NULL WHERE client_id = '${d.client.client_id}'`);
  assert.equal(q(), '0');
  for (let i = 0; i < 5; i++) assert.equal((await mcp(srv, '/mcp', d.tokens.access_token)).status, 200);
  let n = '0';
  for (let i = 0; i < 40 && n === '0'; i++) {
    await sleep(250);
    n = q();
  }
  assert.equal(n, '1');
});
