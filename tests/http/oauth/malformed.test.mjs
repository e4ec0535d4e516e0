// Identifiers that are not text (invalid UTF-8, NUL, control bytes) are
// refused before the database sees them: a 4xx in the endpoint's own error
// format, never a 500 carrying a SQLSTATE, and nothing changes.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, createUser } from '../../harness/index.mjs';
import { register, signedIn, fullFlow } from './lib.mjs';

const CB = 'http://127.0.0.1:9999/callback';
// raw, already percent-encoded: sent as they are
const BAD_IDS = ['%FF', '%00', 'abc%00def', '%C0%AF', 'a%0Ab', '%7F', '%ED%A0%80'];
let srv, c, client, flow;
before(async () => {
  srv = await startServer({ name: 'oauth-malformed' });
  c = await signedIn(srv, createUser(srv, {}));
  client = (await register(srv, { redirect_uris: [CB] })).body;
  flow = await fullFlow(srv, c, {});
});
after(async () => { assert.equal(await srv.stop(), 0); });

const rows = () => srv.cluster.sql('SELECT (SELECT count(*) FROM oauth_tokens) || \'/\' || (SELECT count(*) FROM oauth_clients)'
  + ' || \'/\' || (SELECT count(*) FROM oauth_tokens WHERE revoked_at IS NOT NULL)').trim();

async function postRaw(path, body, headers = {}) {
  const res = await fetch(`${srv.url}${path}`, { method: 'POST', body,
    headers: { 'Content-Type': 'application/x-www-form-urlencoded', ...headers } });
  const text = await res.text();
  let json;
  try { json = JSON.parse(text); } catch { json = undefined; }
  return { status: res.status, json, text, headers: res.headers };
}

function assertOAuthError(r, status, error, what) {
  assert.equal(r.status, status, `${what}: ${r.text}`);
  assert.ok(r.json, `${what}: JSON body, got ${r.text}`);
  assert.equal(r.json.error, error, what);
  assert.equal(typeof r.json.error_description, 'string', what);
}

test('token, revoke and introspect: a client_id that is not text is 400 invalid_client (RFC 6749 JSON)', async () => {
  const before = rows();
  for (const id of BAD_IDS) {
    let r = await postRaw('/oauth/token', `grant_type=authorization_code&code=x&code_verifier=${'a'.repeat(43)}&client_id=${id}`);
    assertOAuthError(r, 400, 'invalid_client', `token code client_id=${id}`);
    assert.equal(r.headers.get('cache-control'), 'no-store');
    // the public-client refresh path puts client_id into its statement first
    r = await postRaw('/oauth/token', `grant_type=refresh_token&refresh_token=${flow.tokens.refresh_token}&client_id=${id}`);
    assertOAuthError(r, 400, 'invalid_client', `token refresh client_id=${id}`);
    r = await postRaw('/oauth/revoke', `token=${flow.tokens.refresh_token}&client_id=${id}`);
    assertOAuthError(r, 400, 'invalid_client', `revoke client_id=${id}`);
    r = await postRaw('/oauth/introspect', `token=${flow.tokens.access_token}&client_id=${id}`);
    assertOAuthError(r, 400, 'invalid_client', `introspect client_id=${id}`);
    // in the Basic header: client authentication failed, 401 with the challenge
    const basic = `Basic ${Buffer.from(`${id}:secret`).toString('base64')}`;
    r = await postRaw('/oauth/token', 'grant_type=authorization_code&code=x', { Authorization: basic });
    assertOAuthError(r, 401, 'invalid_client', `token Basic ${id}`);
    assert.match(r.headers.get('www-authenticate') ?? '', /^Basic/);
  }
  assert.equal(rows(), before, 'nothing changed');
  // the tokens are still good: the rightful client can refresh
  const ok = await postRaw('/oauth/token', `grant_type=refresh_token&refresh_token=${flow.tokens.refresh_token}&client_id=${flow.client.client_id}`);
  assert.equal(ok.status, 200, ok.text);
});

test('other identifiers at the token endpoint: a resource naming no agent, a scope that is not text', async () => {
  const before = rows();
  const id = flow.client.client_id;
  for (const slug of ['%FF', '%00', 'a%0Ab', 'D%C3%A9fault']) {
    const resource = encodeURIComponent(`${srv.url}/agents/`) + slug + encodeURIComponent('/mcp');
    const r = await postRaw('/oauth/token', `grant_type=refresh_token&refresh_token=x&client_id=${id}&resource=${resource}`);
    assertOAuthError(r, 400, 'invalid_target', `resource slug ${slug}`);
  }
  for (const scope of ['mcp%FF', 'mcp%00', `mcp${'+'.repeat(600)}%FF`]) {
    const r = await postRaw('/oauth/token', `grant_type=refresh_token&refresh_token=x&client_id=${id}&scope=${scope}`);
    assertOAuthError(r, 400, 'invalid_scope', `scope ${scope.slice(0, 20)}`);
  }
  assert.equal(rows(), before, 'nothing changed');
});

test('authorize: a client_id that is not text gets the HTML error page, never a redirect', async () => {
  const q = `response_type=code&redirect_uri=${encodeURIComponent(CB)}&code_challenge=${'x'.repeat(43)}&code_challenge_method=S256`;
  for (const id of BAD_IDS) {
    const res = await c.get(`/oauth/authorize?${q}&client_id=${id}`);
    const html = await res.text();
    assert.equal(res.status, 400, `GET client_id=${id}: ${html}`);
    assert.equal(res.headers.get('location'), null);
    assert.match(res.headers.get('content-type'), /text\/html/);
    // the consent form posts back: the same check
    const post = await c.post('/oauth/authorize', `${q}&decision=approve&csrf=${c.csrf}&client_id=${id}`,
      { headers: { 'Content-Type': 'application/x-www-form-urlencoded' } });
    const body = await post.text();
    assert.equal(post.status, 400, `POST client_id=${id}: ${body}`);
    assert.equal(post.headers.get('location'), null);
    assert.match(post.headers.get('content-type'), /text\/html/);
  }
  // the same request with the registered client still reaches the consent page
  const ok = await c.get(`/oauth/authorize?${q}&client_id=${client.client_id}`);
  assert.equal(ok.status, 200, await ok.text());
});

test('RFC 7592 management: a client id in the path that is not text is 401 invalid_token', async () => {
  const auth = { Authorization: `Bearer ${client.registration_access_token}` };
  for (const id of ['%FF', 'abc%FF', 'a%0Ab', '%C0%AF']) {
    for (const method of ['GET', 'DELETE']) {
      const res = await fetch(`${srv.url}/oauth/register/${id}`, { method, headers: auth });
      const body = await res.json();
      assert.equal(res.status, 401, `${method} ${id}: ${JSON.stringify(body)}`);
      assert.equal(body.error, 'invalid_token');
    }
  }
  // a NUL cuts the path short: whatever it names, never a server error
  const nul = await fetch(`${srv.url}/oauth/register/${client.client_id}%00x`, { headers: auth });
  assert.ok(nul.status < 500, `%00: ${nul.status}`);
  // (a read that reached the client rotated its registration access token, RFC 7592 §3)
  const token = nul.status === 200 ? (await nul.json()).registration_access_token : (await nul.arrayBuffer(), client.registration_access_token);
  const got = await fetch(client.registration_client_uri, { headers: { Authorization: `Bearer ${token}` } });
  assert.equal(got.status, 200, 'the client is still there');
  await got.arrayBuffer();
});
