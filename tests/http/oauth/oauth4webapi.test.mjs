// oauth4webapi (npm) as a strict OAuth 2 client: RFC 8414 and OpenID
// discovery, authorization code + PKCE with RFC 9207 iss validation, refresh,
// RFC 7009 revocation, and RFC 7662 introspection by a confidential client
// registered for it.  Every response goes through the library's own checks.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as oauth from 'oauth4webapi';
import { startServer, createUser, secret } from '../../harness/index.mjs';
import { register, signedIn, consent, mcp } from './lib.mjs';

const CB = 'http://127.0.0.1:47821/callback';
const insecure = { [oauth.allowInsecureRequests]: true };   // the test server is plain http on loopback
let srv, issuer, as, browser;

before(async () => {
  srv = await startServer({ name: 'oauth-oauth4webapi' });
  browser = await signedIn(srv, createUser(srv, {}));
  issuer = new URL(srv.url);
  as = await oauth.processDiscoveryResponse(issuer,
    await oauth.discoveryRequest(issuer, { algorithm: 'oauth2', ...insecure }));
});
after(async () => { assert.equal(await srv.stop(), 0); });

const keep = (t) => { secret(t.access_token); if (t.refresh_token) secret(t.refresh_token); return t; };

/* Authorize as the signed-in browser; returns the callback URL. */
async function authorize(client, { state, challenge, scope = 'mcp offline_access' }) {
  const params = { response_type: 'code', client_id: client.client_id, redirect_uri: CB, state, scope,
    code_challenge: challenge, code_challenge_method: 'S256', resource: `${srv.url}/mcp` };
  const u = new URL(as.authorization_endpoint);
  for (const [k, v] of Object.entries(params)) u.searchParams.set(k, v);
  const { location } = await consent(browser, Object.fromEntries(u.searchParams));
  assert.ok(location?.startsWith(CB), `redirect ${location}`);
  return new URL(location);
}

async function codeFlow(client, auth) {
  const verifier = secret(oauth.generateRandomCodeVerifier());
  const challenge = await oauth.calculatePKCECodeChallenge(verifier);
  const state = oauth.generateRandomState();
  const callback = await authorize(client, { state, challenge });
  const params = oauth.validateAuthResponse(as, client, callback, state);
  const res = await oauth.authorizationCodeGrantRequest(as, client, auth, params, CB, verifier,
    { ...insecure, additionalParameters: { resource: `${srv.url}/mcp` } });
  return keep(await oauth.processAuthorizationCodeResponse(as, client, res));
}

test('discovery: RFC 8414 and OpenID documents pass the library validation and agree', async () => {
  assert.equal(as.issuer, srv.url);
  const oidc = await oauth.processDiscoveryResponse(issuer,
    await oauth.discoveryRequest(issuer, { algorithm: 'oidc', ...insecure }));
  for (const k of ['authorization_endpoint', 'token_endpoint', 'revocation_endpoint', 'introspection_endpoint',
    'registration_endpoint'])
    assert.equal(oidc[k], as[k], k);
  assert.equal(as.authorization_response_iss_parameter_supported, true);
  assert.deepEqual(as.code_challenge_methods_supported, ['S256']);
  // a document whose issuer differs from the one asked for is refused by the library
  await assert.rejects(async () => oauth.processDiscoveryResponse(new URL(`${srv.url}/other`),
    await oauth.discoveryRequest(issuer, { algorithm: 'oauth2', ...insecure })));
});

test('authorization code with iss validation, refresh, revocation (public client)', async () => {
  const client = (await register(srv, { client_name: 'oauth4webapi public', redirect_uris: [CB],
    token_endpoint_auth_method: 'none', grant_types: ['authorization_code', 'refresh_token'] })).body;
  const t = await codeFlow(client, oauth.None());
  assert.equal(t.token_type, 'bearer');                   // the library lower-cases it
  assert.equal(t.scope, 'mcp offline_access');
  assert.ok(t.expires_in > 0);
  assert.notEqual((await mcp(srv, '/mcp', t.access_token)).status, 401);

  // iss validation: a response carrying another issuer, or none, is refused
  const state = oauth.generateRandomState();
  const good = await authorize(client, { state, challenge: await oauth.calculatePKCECodeChallenge(oauth.generateRandomCodeVerifier()) });
  assert.equal(good.searchParams.get('iss'), srv.url);
  const forged = new URL(good);
  forged.searchParams.set('iss', 'https://attacker.example');
  assert.throws(() => oauth.validateAuthResponse(as, client, forged, state));
  const stripped = new URL(good);
  stripped.searchParams.delete('iss');
  assert.throws(() => oauth.validateAuthResponse(as, client, stripped, state));
  assert.throws(() => oauth.validateAuthResponse(as, client, good, 'another-state'));
  // an error response is still a valid RFC 9207 response (iss present), surfaced as an error
  const denied = await consent(browser, { response_type: 'code', client_id: client.client_id, redirect_uri: CB, state,
    code_challenge_method: 'plain', code_challenge: 'x'.repeat(43) });
  assert.ok(denied.location, 'redirected with an error');
  assert.throws(() => oauth.validateAuthResponse(as, client, new URL(denied.location), state),
    (e) => e instanceof oauth.AuthorizationResponseError && e.error === 'invalid_request');

  const r = keep(await oauth.processRefreshTokenResponse(as, client,
    await oauth.refreshTokenGrantRequest(as, client, oauth.None(), t.refresh_token, insecure)));
  assert.notEqual(r.refresh_token, t.refresh_token);
  assert.notEqual((await mcp(srv, '/mcp', r.access_token)).status, 401);

  await oauth.processRevocationResponse(
    await oauth.revocationRequest(as, client, oauth.None(), r.refresh_token, insecure));
  assert.equal((await mcp(srv, '/mcp', r.access_token)).status, 401, 'revoking the refresh token took its chain');
  await assert.rejects(async () => oauth.processRefreshTokenResponse(as, client,
    await oauth.refreshTokenGrantRequest(as, client, oauth.None(), r.refresh_token, insecure)),
  (e) => e instanceof oauth.ResponseBodyError && e.error === 'invalid_grant');
});

test('introspection by a confidential client registered for it (basic and post)', async () => {
  for (const method of ['client_secret_basic', 'client_secret_post']) {
    const reg = (await register(srv, { client_name: `oauth4webapi ${method}`, redirect_uris: [CB],
      token_endpoint_auth_method: method, grant_types: ['authorization_code', 'refresh_token'] })).body;
    const auth = method === 'client_secret_basic' ? oauth.ClientSecretBasic(reg.client_secret)
      : oauth.ClientSecretPost(reg.client_secret);
    const t = await codeFlow(reg, auth);
    const info = await oauth.processIntrospectionResponse(as, reg,
      await oauth.introspectionRequest(as, reg, auth, t.access_token, insecure));
    assert.equal(info.active, true);
    assert.equal(info.client_id, reg.client_id);
    assert.equal(info.scope, 'mcp offline_access');
    assert.equal(info.aud, `${srv.url}/mcp`);
    assert.equal(info.iss, srv.url);
    assert.ok(info.exp > info.iat);

    const r = keep(await oauth.processRefreshTokenResponse(as, reg,
      await oauth.refreshTokenGrantRequest(as, reg, auth, t.refresh_token, insecure)));
    const old = await oauth.processIntrospectionResponse(as, reg,
      await oauth.introspectionRequest(as, reg, auth, t.refresh_token, insecure));
    assert.equal(old.active, false, 'a rotated refresh token is no longer active');
    await oauth.processRevocationResponse(await oauth.revocationRequest(as, reg, auth, r.access_token, insecure));
    const gone = await oauth.processIntrospectionResponse(as, reg,
      await oauth.introspectionRequest(as, reg, auth, r.access_token, insecure));
    assert.equal(gone.active, false);

    // a wrong secret is refused: 401 invalid_client (with a Basic challenge when Basic was used)
    const bad = method === 'client_secret_basic' ? oauth.ClientSecretBasic('gth_cs_wrong-secret')
      : oauth.ClientSecretPost('gth_cs_wrong-secret');
    await assert.rejects(async () => oauth.processIntrospectionResponse(as, reg,
      await oauth.introspectionRequest(as, reg, bad, r.refresh_token, insecure)),
    (e) => method === 'client_secret_basic'
      ? e instanceof oauth.WWWAuthenticateChallengeError && e.status === 401 && e.cause[0].scheme === 'basic'
      : e instanceof oauth.ResponseBodyError && e.status === 401 && e.error === 'invalid_client');
  }
});
