// Shared helpers of the OAuth tests: registration, PKCE, the browser part of
// the authorization code flow (login + consent with the harness Client).
import crypto from 'node:crypto';
import assert from 'node:assert/strict';
import { Client, inputValue, secret } from '../../harness/index.mjs';

export function pkce() {
  const verifier = secret(crypto.randomBytes(32).toString('base64url'));
  const challenge = crypto.createHash('sha256').update(verifier).digest('base64url');
  return { verifier, challenge };
}

export async function register(srv, meta = {}) {
  const res = await fetch(`${srv.url}/oauth/register`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ redirect_uris: ['http://127.0.0.1:9999/callback'], token_endpoint_auth_method: 'none',
      grant_types: ['authorization_code', 'refresh_token'], client_name: 'Test App', ...meta }),
  });
  const body = await res.json();
  if (body.client_secret) secret(body.client_secret);
  if (body.registration_access_token) secret(body.registration_access_token);
  return { status: res.status, body, headers: res.headers };
}

export async function signedIn(srv, user) {
  const c = new Client(srv.url);
  const res = await c.login(user.email, user.password);
  assert.equal(res.status, 303, 'login');
  return c;
}

export function authorizeUrl(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined) q.append(k, v);
  return `/oauth/authorize?${q}`;
}

/* GET the authorize URL as the signed-in browser, then post the consent
 * form with the decision; returns the Location the server redirected to. */
export async function consent(c, params, decision = 'approve') {
  const page = await c.get(authorizeUrl(params));
  const html = await page.text();
  if (page.status !== 200) return { page, html, location: page.headers.get('location') };
  const fields = { csrf: c.csrf, decision };
  for (const name of ['client_id', 'redirect_uri', 'response_type', 'state', 'scope', 'code_challenge',
    'code_challenge_method', 'resource']) {
    const v = inputValue(html, name);
    if (v !== undefined) fields[name] = v;
  }
  const res = await c.post('/oauth/authorize', fields);
  await res.arrayBuffer();
  const location = res.headers.get('location');
  const code = location && new URL(location).searchParams.get('code');
  if (code) secret(code);
  return { page, html, res, location };
}

export async function token(srv, form, headers = {}) {
  const res = await fetch(`${srv.url}/oauth/token`, {
    method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams(form).toString(),
  });
  const body = await res.json();
  if (body.access_token) secret(body.access_token);
  if (body.refresh_token) secret(body.refresh_token);
  return { status: res.status, body, headers: res.headers };
}

/* Registration + consent + code exchange: returns { client, tokens }. */
export async function fullFlow(srv, c, { meta = {}, resource, scope = 'mcp', redirect = 'http://127.0.0.1:9999/callback' } = {}) {
  const reg = await register(srv, { redirect_uris: [redirect], ...meta });
  assert.equal(reg.status, 201);
  const p = pkce();
  const state = crypto.randomBytes(8).toString('hex');
  const { location } = await consent(c, { response_type: 'code', client_id: reg.body.client_id, redirect_uri: redirect,
    code_challenge: p.challenge, code_challenge_method: 'S256', state, scope, resource });
  assert.ok(location, 'consent redirected');
  const u = new URL(location);
  assert.equal(u.searchParams.get('state'), state);
  const code = u.searchParams.get('code');
  assert.ok(code, `code in ${location}`);
  const form = { grant_type: 'authorization_code', code, redirect_uri: redirect, code_verifier: p.verifier, client_id: reg.body.client_id };
  if (resource) form.resource = resource;
  const t = await token(srv, form);
  assert.equal(t.status, 200, JSON.stringify(t.body));
  return { client: reg.body, tokens: t.body, code, verifier: p.verifier, redirect };
}

export async function mcp(srv, path, tok) {
  const res = await fetch(`${srv.url}${path}`, {
    method: 'POST', headers: { 'Content-Type': 'application/json', Accept: 'application/json, text/event-stream',
      ...(tok ? { Authorization: `Bearer ${tok}` } : {}) },
    // initialize: the one request the MCP endpoint answers 200 without a session
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize',
      params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'oauth-test', version: '1' } } }),
  });
  await res.arrayBuffer();
  return res;
}
