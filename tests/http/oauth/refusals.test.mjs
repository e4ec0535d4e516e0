// The authorization endpoint refuses what it must: PKCE plain/missing, wrong
// verifier, code replay, redirect_uri mismatch and open redirects, CSRF-less
// consent, framing; errors after the redirect URI is trusted carry state + iss,
// and go back to it only for a client the signed-in user has approved: else
// anyone who registers a client would have an open redirector here.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { startServer, createUser, Client, gatehouse } from '../../harness/index.mjs';
import { register, signedIn, consent, pkce, token, mcp, authorizeUrl } from './lib.mjs';

const CB = 'http://127.0.0.1:9999/callback';
let srv, c, client, user;
before(async () => {
  srv = await startServer({ name: 'oauth-refusals' });
  user = createUser(srv, {});
  c = await signedIn(srv, user);
  client = (await register(srv, { redirect_uris: [CB] })).body;
  // errors go back only to a client this user has approved before (RFC 9700 §4.11.2)
  const first = await consent(c, base().params);
  assert.ok(new URL(first.location).searchParams.get('code'), 'approved once');
});
after(async () => { assert.equal(await srv.stop(), 0); });

function base(extra = {}) {
  const p = pkce();
  return { p, params: { response_type: 'code', client_id: client.client_id, redirect_uri: CB, code_challenge: p.challenge,
    code_challenge_method: 'S256', state: 'st-1', ...extra } };
}

async function redirectError(params) {
  const res = await c.get(authorizeUrl(params));
  await res.arrayBuffer();
  assert.equal(res.status, 302, JSON.stringify(params));
  const u = new URL(res.headers.get('location'));
  assert.equal(`${u.origin}${u.pathname}`, CB);
  assert.equal(u.searchParams.get('iss'), srv.url);
  return u.searchParams;
}

test('PKCE plain or missing is refused with a redirect carrying error, state and iss', async () => {
  const { params } = base();
  let q = await redirectError({ ...params, code_challenge_method: 'plain' });
  assert.equal(q.get('error'), 'invalid_request');
  assert.equal(q.get('state'), 'st-1');
  q = await redirectError({ ...params, code_challenge: undefined, code_challenge_method: undefined });
  assert.equal(q.get('error'), 'invalid_request');
  q = await redirectError({ ...params, code_challenge_method: undefined });
  assert.equal(q.get('error'), 'invalid_request');
  q = await redirectError({ ...params, response_type: 'token' });
  assert.equal(q.get('error'), 'unsupported_response_type');
  q = await redirectError({ ...params, scope: 'admin' });
  assert.equal(q.get('error'), 'invalid_scope');
  q = await redirectError({ ...params, resource: 'https://elsewhere.example/mcp' });
  assert.equal(q.get('error'), 'invalid_target');
  q = await redirectError({ ...params, resource: `${srv.url}/agents/missing/mcp` });
  assert.equal(q.get('error'), 'invalid_target');
});

test('resource: case and trailing slash tolerated, missing defaults to the canonical one', async () => {
  for (const resource of [`${srv.url}/MCP/`, `${srv.url}/agents/default/mcp/`, undefined]) {
    const { p, params } = base({ resource });
    const { location } = await consent(c, params);
    const code = new URL(location).searchParams.get('code');
    assert.ok(code, `${resource}: ${location}`);
    const t = await token(srv, { grant_type: 'authorization_code', code, redirect_uri: CB, code_verifier: p.verifier, client_id: client.client_id });
    assert.equal(t.status, 200);
    assert.equal((await mcp(srv, '/mcp', t.body.access_token)).status, 200);
  }
});

test('unknown client or unregistered redirect_uri: an HTML page, never a redirect', async () => {
  const attempts = [
    { client_id: 'nope', redirect_uri: CB },
    { client_id: client.client_id, redirect_uri: 'https://evil.example/callback' },
    { client_id: client.client_id, redirect_uri: 'http://127.0.0.1:9999/callback/../../evil' },
    { client_id: client.client_id, redirect_uri: 'http://127.0.0.1:9999/callbackx' },
    { client_id: client.client_id, redirect_uri: 'http://127.0.0.1.evil.example:9999/callback' },
    { client_id: client.client_id, redirect_uri: 'http://evil.example@127.0.0.1:9999/callback' },
    { client_id: client.client_id, redirect_uri: 'javascript:alert(document.domain)//' },
    { client_id: client.client_id, redirect_uri: 'data:text/html,<script>alert(1)</script>' },
    { client_id: client.client_id, redirect_uri: '//evil.example/callback' },
  ];
  for (const a of attempts) {
    const res = await c.get(authorizeUrl({ response_type: 'code', code_challenge: 'x'.repeat(43), code_challenge_method: 'S256', ...a }));
    assert.equal(res.status, 400, JSON.stringify(a));
    assert.equal(res.headers.get('location'), null);
    assert.match(res.headers.get('content-type'), /text\/html/);
    await res.arrayBuffer();
  }
});

test('token endpoint: wrong verifier, redirect mismatch, other client, replay (which revokes)', async () => {
  const { p, params } = base();
  const { location } = await consent(c, params);
  const code = new URL(location).searchParams.get('code');
  const other = (await register(srv, { redirect_uris: [CB] })).body;
  const form = { grant_type: 'authorization_code', code, redirect_uri: CB, code_verifier: p.verifier, client_id: client.client_id };
  let t = await token(srv, { ...form, code_verifier: pkce().verifier });
  assert.equal(t.status, 400);
  assert.equal(t.body.error, 'invalid_grant');
  assert.equal(t.headers.get('cache-control'), 'no-store');
  t = await token(srv, { ...form, redirect_uri: 'http://127.0.0.1:9999/other' });
  assert.equal(t.body.error, 'invalid_grant');
  t = await token(srv, { ...form, client_id: other.client_id });
  assert.equal(t.body.error, 'invalid_grant');
  t = await token(srv, { ...form, code_verifier: undefined });
  assert.equal(t.status, 400);
  t = await token(srv, form);
  assert.equal(t.status, 200);
  const first = t.body;
  assert.equal((await mcp(srv, '/mcp', first.access_token)).status, 200);
  const replay = await token(srv, form);
  assert.equal(replay.status, 400);
  assert.equal(replay.body.error, 'invalid_grant');
  // what the code issued is revoked
  assert.equal((await mcp(srv, '/mcp', first.access_token)).status, 401);
  const r = await token(srv, { grant_type: 'refresh_token', refresh_token: first.refresh_token, client_id: client.client_id });
  assert.equal(r.body.error, 'invalid_grant');
  const bad = await token(srv, { grant_type: 'password', client_id: client.client_id });
  assert.equal(bad.body.error, 'unsupported_grant_type');
  const unknown = await token(srv, { grant_type: 'authorization_code', code: 'x', client_id: 'nope' });
  assert.equal(unknown.status, 401);
  assert.equal(unknown.body.error, 'invalid_client');
});

test('token endpoint: a resource other than the one authorized is invalid_target (code and refresh), and nothing is spent', async () => {
  assert.equal(gatehouse(srv, ['agent', 'add', '--slug', 'other', '--name', 'Other agent']).code, 0);
  const mine = `${srv.url}/mcp`, theirs = `${srv.url}/agents/other/mcp`;
  const { p, params } = base({ resource: mine });
  const { location } = await consent(c, params);
  const code = new URL(location).searchParams.get('code');
  assert.ok(code, location);
  const hash = crypto.createHash('sha256').update(code).digest('hex');
  // unused, and the number of tokens of its grant (earlier tests issued some under the same grant)
  const codeState = () => srv.cluster.sql(`SELECT (k.used_at IS NULL)::text || ' ' || (SELECT count(*) FROM oauth_tokens t
    WHERE t.grant_id = k.grant_id) FROM oauth_codes k WHERE k.code_hash = '${hash}'`).trim();
  const unspent = codeState();
  assert.match(unspent, /^true \d+$/);
  const form = { grant_type: 'authorization_code', code, redirect_uri: CB, code_verifier: p.verifier, client_id: client.client_id };
  for (const resource of [theirs, `${srv.url}/agents/other/mcp/`, `${srv.url}/AGENTS/OTHER/MCP`]) {
    const t = await token(srv, { ...form, resource });
    assert.equal(t.status, 400, `${resource}: ${JSON.stringify(t.body)}`);
    assert.equal(t.body.error, 'invalid_target');
    assert.equal(t.body.access_token, undefined);
  }
  assert.equal(codeState(), unspent, 'the code is unused and no token was issued');
  // the code was not consumed (a second use would be a replay): it still works for its own resource
  const good = await token(srv, { ...form, resource: mine });
  assert.equal(good.status, 200, JSON.stringify(good.body));
  assert.equal((await mcp(srv, '/mcp', good.body.access_token)).status, 200);
  assert.equal((await mcp(srv, '/agents/other/mcp', good.body.access_token)).status, 401);

  // refresh: the grant's resource or none, never another agent's
  const rt = good.body.refresh_token;
  const refresh = (resource) => token(srv, { grant_type: 'refresh_token', refresh_token: rt, client_id: client.client_id, resource });
  const other = await refresh(theirs);
  assert.equal(other.status, 400, JSON.stringify(other.body));
  assert.equal(other.body.error, 'invalid_target');
  assert.equal(other.body.access_token, undefined);
  // not rotated: the same refresh token still rotates once, for its own resource
  const same = await refresh(mine);
  assert.equal(same.status, 200, JSON.stringify(same.body));
  assert.notEqual(same.body.refresh_token, rt);
  assert.equal((await mcp(srv, '/agents/other/mcp', same.body.access_token)).status, 401);
});

test('consent: POST without CSRF is refused; the page cannot be framed; not signed in goes to login first', async () => {
  const { params } = base();
  const page = await c.get(authorizeUrl(params));
  assert.equal(page.status, 200);
  const html = await page.text();
  assert.match(page.headers.get('content-security-policy'), /frame-ancestors 'none'/);
  assert.equal(page.headers.get('x-frame-options'), 'DENY');
  assert.equal(page.headers.get('access-control-allow-origin'), null);
  assert.match(html, /name="decision" value="approve"/);
  assert.match(html, /name="decision" value="deny"/);
  assert.match(html, /Test App/);
  assert.match(html, /registered dynamically/);
  assert.match(html, /127\.0\.0\.1:9999/);
  assert.match(html, /Default agent/);
  const nocsrf = await c.post('/oauth/authorize', { ...params, decision: 'approve' });
  assert.equal(nocsrf.status, 403);
  assert.equal(nocsrf.headers.get('location'), null);
  const wrong = await c.post('/oauth/authorize', { ...params, decision: 'approve', csrf: 'f'.repeat(64) });
  assert.equal(wrong.status, 403);

  const anon = new Client(srv.url);
  const url = authorizeUrl(params);
  const res = await anon.get(url);
  assert.equal(res.status, 303);
  const login = res.headers.get('location');
  assert.match(login, /^\/login\?next=/);
  const back = decodeURIComponent(login.split('next=')[1]);
  assert.equal(back.split('?')[0], '/oauth/authorize');
  const signin = await anon.login(user.email, user.password, back);
  assert.equal(signin.headers.get('location'), back);
  const again = await anon.get(back);
  assert.equal(again.status, 200);
  assert.match(await again.text(), /name="decision"/);
});

test('deny redirects with access_denied and is sticky for that client and user', async () => {
  const own = (await register(srv, { redirect_uris: [CB] })).body;
  const { params } = base({ client_id: own.client_id });
  const { location } = await consent(c, params, 'deny');
  const q = new URL(location).searchParams;
  assert.equal(q.get('error'), 'access_denied');
  assert.equal(q.get('state'), 'st-1');
  assert.equal(q.get('iss'), srv.url);
  const again = await c.get(authorizeUrl(params));
  await again.arrayBuffer();
  assert.equal(again.status, 302);
  assert.equal(new URL(again.headers.get('location')).searchParams.get('error'), 'access_denied');
  // another user is not affected
  const c2 = await signedIn(srv, createUser(srv, {}));
  const page = await c2.get(authorizeUrl(params));
  assert.equal(page.status, 200);
  await page.arrayBuffer();
});

test('an error for a client this user never approved is a page here, not a redirect to the registrant (RFC 9700 §4.11.2)', async () => {
  const evil = (await register(srv, { redirect_uris: ['https://attacker.example/land'] })).body;
  const url = authorizeUrl({ client_id: evil.client_id, response_type: 'x' });
  const wrong = [];
  for (const [who, get] of [['anonymous', (u) => fetch(`${srv.url}${u}`, { redirect: 'manual' })], ['signed in', (u) => c.get(u)]]) {
    for (const u of [url, authorizeUrl({ ...base().params, client_id: evil.client_id, redirect_uri: 'https://attacker.example/land', scope: 'admin' })]) {
      const res = await get(u);
      const html = await res.text();
      if (res.status !== 400 || res.headers.get('location') !== null || !/text\/html/.test(res.headers.get('content-type')))
        wrong.push(`${who} ${u}: ${res.status} ${res.headers.get('location')}`);
      else assert.match(html, /unsupported_response_type|invalid_scope/);
    }
  }
  assert.deepEqual(wrong, []);
  // once this user has approved it, its errors go back to it as before
  const { location } = await consent(c, { ...base().params, client_id: evil.client_id, redirect_uri: 'https://attacker.example/land' });
  assert.ok(location.startsWith('https://attacker.example/land?code='), location);
  const res = await c.get(url);
  await res.arrayBuffer();
  assert.equal(res.status, 302);
  assert.equal(new URL(res.headers.get('location')).searchParams.get('error'), 'unsupported_response_type');
});

test('the consent page lets its form go on only to the client: CSP form-action names its origin', async () => {
  const page = await c.get(authorizeUrl(base().params));
  await page.arrayBuffer();
  assert.equal(page.status, 200);
  assert.match(page.headers.get('content-security-policy'), /form-action 'self' http:\/\/127\.0\.0\.1:9999(;|$)/);
  const login = await fetch(`${srv.url}/login`);
  assert.match(login.headers.get('content-security-policy'), /form-action 'self'$/);
});
