// Redirect URIs at authorize and at the token endpoint: a registered
// loopback URI matches on any port (RFC 8252), but the port must be digits
// (strtol alone took "+80", " 80" and a line break before it); a code from an
// authorization request that named no redirect_uri (the client's only
// registered URI was used) is exchanged without one or with that URI
// (RFC 6749 4.1.3; SDKs that always send it got invalid_grant).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, createUser } from '../../harness/index.mjs';
import { register, signedIn, consent, pkce, token } from './lib.mjs';

let srv;
before(async () => { srv = await startServer({ name: 'oauth-redirects' }); });
after(async () => { if (srv) assert.equal(await srv.stop(), 0); });

test('a loopback redirect URI matches on any port, but a port is digits only', async () => {
  const u = createUser(srv, {});
  const c = await signedIn(srv, u);
  const reg = await register(srv, { redirect_uris: ['http://localhost/cb'] });
  assert.equal(reg.status, 201);
  const p = pkce();
  const get = (redirect) => c.get(`/oauth/authorize?response_type=code&client_id=${encodeURIComponent(reg.body.client_id)}` +
    `&code_challenge=${p.challenge}&code_challenge_method=S256&state=s&redirect_uri=${redirect}`);
  const ok = await get(encodeURIComponent('http://localhost:8123/cb'));
  await ok.arrayBuffer();
  assert.equal(ok.status, 200, 'any port of the registered loopback URI: the consent page');
  // a sign, white space or a line break where the port goes: not the registered URI
  for (const port of ['%2B80', '%2080', '%0980', '%0A80', '%0D%0A80', '80%20', '']) {
    const r = await get(`http%3A%2F%2Flocalhost%3A${port}%2Fcb`);
    await r.arrayBuffer();
    assert.equal(r.status, 400, `port "${decodeURIComponent(port)}": ${r.status}`);
    assert.equal(r.headers.get('location'), null, `port "${decodeURIComponent(port)}" is never redirected to`);
  }
});

test('a code from an authorization request without redirect_uri: exchanged without it or with the one registered URI', async () => {
  const u = createUser(srv, {});
  const c = await signedIn(srv, u);
  const registered = 'https://single.example/cb';
  const reg = await register(srv, { redirect_uris: [registered] });
  assert.equal(reg.status, 201);
  const exchange = async (redirect) => {
    const p = pkce();
    const { location } = await consent(c, { response_type: 'code', client_id: reg.body.client_id,
      code_challenge: p.challenge, code_challenge_method: 'S256', state: 's' });
    assert.ok(location?.startsWith(`${registered}?`), `redirected to the registered URI: ${location}`);
    const code = new URL(location).searchParams.get('code');
    return token(srv, { grant_type: 'authorization_code', code, code_verifier: p.verifier, client_id: reg.body.client_id,
      ...(redirect === undefined ? {} : { redirect_uri: redirect }) });
  };
  assert.equal((await exchange(undefined)).status, 200, 'without redirect_uri');
  const same = await exchange(registered);
  assert.equal(same.status, 200, `with the registered URI: ${JSON.stringify(same.body)}`);
  const other = await exchange('https://single.example/other');
  assert.equal(other.status, 400);
  assert.equal(other.body.error, 'invalid_grant');
});
