// Authentication at the MCP endpoints: every credential that must not get in
// gets 401 with WWW-Authenticate: Bearer error="invalid_token" naming the
// agent's resource metadata, and refusing it changes nothing.  Asserts on
// authentication only (401 or not), never on what the endpoint answers.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, createUser, gatehouse, secret, sleep } from '../../harness/index.mjs';
import { fullFlow, signedIn, mcp } from './lib.mjs';

let srv, user, c;
before(async () => {
  srv = await startServer({ name: 'oauth-mcpauth', env: { GATEHOUSE_ACCESS_TOKEN_TTL: '2' } });
  gatehouse(srv, ['agent', 'add', '--slug', 'other', '--name', 'Other agent']);
  user = createUser(srv, { agents: ['default', 'other'] });
  c = await signedIn(srv, user);
});
after(async () => { assert.equal(await srv.stop(), 0); });

async function refused(path, tok, why) {
  const res = await mcp(srv, path, tok);
  assert.equal(res.status, 401, why);
  const slug = path === '/mcp' ? null : path.split('/')[2];
  const md = slug ? `${srv.url}/.well-known/oauth-protected-resource/agents/${slug}/mcp`
    : `${srv.url}/.well-known/oauth-protected-resource/mcp`;
  assert.equal(res.headers.get('www-authenticate'),
    `Bearer error="invalid_token", resource_metadata="${md}", scope="mcp"`, why);
}
async function admitted(path, tok, why) {
  assert.notEqual((await mcp(srv, path, tok)).status, 401, why);
}
const pat = (args) => {
  const r = gatehouse(srv, ['pat', 'create', '--email', user.email, ...args]);
  assert.equal(r.code, 0, r.stderr);
  return secret(r.stdout.trim());
};

test('no credential: 401 challenge without an error code; malformed schemes are not credentials', async () => {
  for (const path of ['/mcp', '/agents/default/mcp', '/agents/other/mcp']) {
    const res = await mcp(srv, path);
    assert.equal(res.status, 401);
    assert.doesNotMatch(res.headers.get('www-authenticate'), /error=/);
  }
  const basic = await fetch(`${srv.url}/mcp`, { method: 'POST', headers: { Authorization: 'Basic Zm9vOmJhcg==',
    'Content-Type': 'application/json' }, body: '{}' });
  assert.equal(basic.status, 401);
});

test('made-up, truncated and refresh tokens are invalid_token', async () => {
  const d = await fullFlow(srv, c, {});
  await refused('/mcp', 'gth_oat_00000000000000000000000000000000', 'unknown access token');
  await refused('/mcp', d.tokens.access_token.slice(0, -1), 'truncated');
  await refused('/mcp', `${d.tokens.access_token}x`, 'extended');
  await refused('/mcp', d.tokens.refresh_token, 'a refresh token is not an access token');
  await refused('/mcp', 'gth_pat_00000000000000000000000000000000_000000', 'PAT with a bad checksum');
  await admitted('/mcp', d.tokens.access_token, 'the real one still works');
});

test("another agent's token (OAuth and PAT) is invalid_token", async () => {
  const d = await fullFlow(srv, c, {});
  await refused('/agents/other/mcp', d.tokens.access_token, 'default-agent token at other');
  const o = await fullFlow(srv, c, { resource: `${srv.url}/agents/other/mcp` });
  await refused('/mcp', o.tokens.access_token, 'other-agent token at /mcp');
  await refused('/agents/default/mcp', o.tokens.access_token, 'other-agent token at default');
  await admitted('/agents/other/mcp', o.tokens.access_token, 'at its own agent');
  const p = pat(['--agent', 'other', '--name', 'other-pat']);
  await refused('/mcp', p, 'other-agent PAT');
  await admitted('/agents/other/mcp', p, 'PAT at its own agent');
});

test('an expired access token and an expired PAT are invalid_token', async () => {
  const d = await fullFlow(srv, c, {});
  await admitted('/mcp', d.tokens.access_token, 'fresh');
  await sleep(2500);
  await refused('/mcp', d.tokens.access_token, 'expired access token');
  const p = pat(['--agent', 'default', '--name', 'short-lived', '--expires-days', '1']);
  await admitted('/mcp', p, 'PAT before expiry');
  srv.cluster.sql(`UPDATE pats SET expires_at = now() - interval '1 second' WHERE name = 'short-lived'`);
  // a change made by another process reaches the credential cache through
  // NOTIFY, asynchronously: allow it a moment, then the refusal must be exact
  for (let i = 0; i < 50 && (await mcp(srv, '/mcp', p)).status !== 401; i++) await sleep(100);
  await refused('/mcp', p, 'expired PAT');
});

test('a revoked token, a disconnected grant and a revoked PAT are invalid_token', async () => {
  // RFC 7009 revocation of the access token alone
  const a = await fullFlow(srv, c, {});
  const rv = await fetch(`${srv.url}/oauth/revoke`, { method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ token: a.tokens.access_token, client_id: a.client.client_id }) });
  assert.equal(rv.status, 200);
  await refused('/mcp', a.tokens.access_token, 'revoked access token');

  // the grant disconnected at /profile/connections
  const g = await fullFlow(srv, c, { meta: { client_name: 'To Disconnect' } });
  const page = await (await c.get('/profile/connections')).text();
  const grant = page.match(/<tr><td>To Disconnect<\/td>.*?name="grant" value="([0-9a-f-]{36})"/)[1];
  assert.equal((await c.form('/profile/connections', '/profile/connections/revoke', { grant })).status, 303);
  await refused('/mcp', g.tokens.access_token, 'disconnected grant');

  // the PAT revoked at /profile/tokens
  const p = pat(['--agent', 'default', '--name', 'to-revoke']);
  await admitted('/mcp', p, 'PAT before revocation');
  const list = await (await c.get('/profile/tokens')).text();
  const id = list.match(/<td>to-revoke<\/td>.*?name="id" value="([0-9a-f-]{36})"/)[1];
  assert.equal((await c.form('/profile/tokens', '/profile/tokens/revoke', { id })).status, 303);
  await refused('/mcp', p, 'revoked PAT');
});

test("a disabled user's tokens are invalid_token", async () => {
  const u = createUser(srv, {});
  const uc = await signedIn(srv, u);
  const d = await fullFlow(srv, uc, {});
  const r = gatehouse(srv, ['pat', 'create', '--email', u.email, '--agent', 'default', '--name', 'x']);
  const p = secret(r.stdout.trim());
  await admitted('/mcp', d.tokens.access_token, 'before');
  assert.equal(gatehouse(srv, ['user', 'disable', '--email', u.email]).code, 0);
  // the CLI is another process: its change arrives through NOTIFY
  for (let i = 0; i < 50 && (await mcp(srv, '/mcp', p)).status !== 401; i++) await sleep(100);
  await refused('/mcp', d.tokens.access_token, 'disabled user, OAuth');
  await refused('/mcp', p, 'disabled user, PAT');
});
