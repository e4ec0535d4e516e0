// Discovery documents, the 401 challenge at every agent's MCP URL, agents CLI, CORS.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, gatehouse, createUser } from '../../harness/index.mjs';
import { fullFlow, signedIn, mcp } from './lib.mjs';

let srv;
before(async () => { srv = await startServer({ name: 'oauth-metadata' }); });
after(async () => { assert.equal(await srv.stop(), 0); });

test('RFC 8414 and OpenID discovery advertise the same endpoints and capabilities', async () => {
  const as = await (await fetch(`${srv.url}/.well-known/oauth-authorization-server`)).json();
  const oidc = await (await fetch(`${srv.url}/.well-known/openid-configuration`)).json();
  assert.equal(as.issuer, srv.url);                       // byte-identical, no trailing slash
  assert.ok(!as.issuer.endsWith('/'));
  for (const k of ['issuer', 'authorization_endpoint', 'token_endpoint', 'registration_endpoint',
    'revocation_endpoint', 'introspection_endpoint'])
    assert.equal(oidc[k], as[k], k);
  assert.equal(as.authorization_endpoint, `${srv.url}/oauth/authorize`);
  assert.equal(as.token_endpoint, `${srv.url}/oauth/token`);
  assert.equal(as.registration_endpoint, `${srv.url}/oauth/register`);
  assert.equal(as.revocation_endpoint, `${srv.url}/oauth/revoke`);
  assert.equal(as.introspection_endpoint, `${srv.url}/oauth/introspect`);
  assert.deepEqual(as.response_types_supported, ['code']);
  assert.deepEqual(as.grant_types_supported, ['authorization_code', 'refresh_token']);
  assert.deepEqual(as.code_challenge_methods_supported, ['S256']);
  assert.deepEqual(as.token_endpoint_auth_methods_supported, ['none', 'client_secret_basic', 'client_secret_post']);
  assert.deepEqual(as.scopes_supported, ['mcp', 'offline_access']);
  assert.equal(as.authorization_response_iss_parameter_supported, true);
  assert.equal(as.client_id_metadata_document_supported, true);
});

test('protected resource metadata: path-suffixed per agent, root form for the default agent', async () => {
  const root = await (await fetch(`${srv.url}/.well-known/oauth-protected-resource`)).json();
  assert.equal(root.resource, `${srv.url}/mcp`);
  assert.deepEqual(root.authorization_servers, [srv.url]);
  assert.deepEqual(root.scopes_supported, ['mcp']);
  const mcpForm = await (await fetch(`${srv.url}/.well-known/oauth-protected-resource/mcp`)).json();
  assert.equal(mcpForm.resource, `${srv.url}/mcp`);
  const def = await (await fetch(`${srv.url}/.well-known/oauth-protected-resource/agents/default/mcp`)).json();
  assert.equal(def.resource, `${srv.url}/agents/default/mcp`);
  assert.ok(!def.scopes_supported.includes('offline_access'));
  assert.equal((await fetch(`${srv.url}/.well-known/oauth-protected-resource/agents/nope/mcp`)).status, 404);
});

test('agent add/list; each agent has its MCP URL with a 401 challenge naming its metadata', async () => {
  const add = gatehouse(srv, ['agent', 'add', '--slug', 'sales', '--name', 'Sales bot', '--untrusted']);
  assert.equal(add.code, 0, add.stderr);
  const dup = gatehouse(srv, ['agent', 'add', '--slug', 'sales', '--name', 'Again']);
  assert.notEqual(dup.code, 0);
  const bad = gatehouse(srv, ['agent', 'add', '--slug', 'Bad Slug!', '--name', 'x']);
  assert.notEqual(bad.code, 0);
  const list = gatehouse(srv, ['agent', 'list']);
  assert.equal(list.code, 0);
  assert.match(list.stdout, /^default\t/m);
  assert.match(list.stdout, /^sales\tSales bot\tuntrusted\t/m);

  const prm = await (await fetch(`${srv.url}/.well-known/oauth-protected-resource/agents/sales/mcp`)).json();
  assert.equal(prm.resource, `${srv.url}/agents/sales/mcp`);
  // RFC 9728: the challenge names the metadata whose `resource` is the URL the client used, so
  // /mcp names the path-suffixed form of /mcp and /agents/{slug}/mcp its own (even for the
  // default agent, reachable at both)
  const forms = [['/mcp', '/.well-known/oauth-protected-resource/mcp'],
    ['/agents/default/mcp', '/.well-known/oauth-protected-resource/agents/default/mcp'],
    ['/agents/sales/mcp', '/.well-known/oauth-protected-resource/agents/sales/mcp']];
  for (const [path, md] of forms) {
    const res = await mcp(srv, path);
    assert.equal(res.status, 401, path);
    assert.equal(res.headers.get('www-authenticate'), `Bearer resource_metadata="${srv.url}${md}", scope="mcp"`, path);
    const bad = await mcp(srv, path, 'gth_oat_00000000000000000000000000000000');
    assert.equal(bad.status, 401, path);
    assert.equal(bad.headers.get('www-authenticate'),
      `Bearer error="invalid_token", resource_metadata="${srv.url}${md}", scope="mcp"`, path);
    const doc = await (await fetch(`${srv.url}${md}`)).json();
    assert.equal(doc.resource, `${srv.url}${path}`, `${md} names the URL used`);
  }
  const unknown = await mcp(srv, '/agents/nope/mcp');
  assert.equal(unknown.status, 404);
});

test('a token works at its own agent only; /mcp and /agents/default/mcp are the same agent', async () => {
  gatehouse(srv, ['agent', 'add', '--slug', 'ops', '--name', 'Ops']);
  const u = createUser(srv, { agents: ['default', 'ops'] });
  const c = await signedIn(srv, u);
  const d = await fullFlow(srv, c, {});
  assert.equal((await mcp(srv, '/mcp', d.tokens.access_token)).status, 200);
  assert.equal((await mcp(srv, '/agents/default/mcp', d.tokens.access_token)).status, 200);
  const other = await mcp(srv, '/agents/ops/mcp', d.tokens.access_token);
  assert.equal(other.status, 401);
  assert.match(other.headers.get('www-authenticate'), /error="invalid_token"/);
  const o = await fullFlow(srv, c, { resource: `${srv.url}/agents/ops/mcp` });
  assert.equal((await mcp(srv, '/agents/ops/mcp', o.tokens.access_token)).status, 200);
  assert.equal((await mcp(srv, '/mcp', o.tokens.access_token)).status, 401);
  const junk = await mcp(srv, '/mcp', 'gth_oat_00000000000000000000000000000000');
  assert.equal(junk.status, 401);
  assert.match(junk.headers.get('www-authenticate'), /error="invalid_token"/);
});

test('CORS: * without credentials on metadata, register, token, revoke; never on authorize', async () => {
  for (const p of ['/.well-known/oauth-authorization-server', '/.well-known/openid-configuration',
    '/.well-known/oauth-protected-resource', '/.well-known/oauth-protected-resource/agents/default/mcp']) {
    const res = await fetch(`${srv.url}${p}`, { headers: { Origin: 'https://app.example' } });
    assert.equal(res.headers.get('access-control-allow-origin'), '*', p);
    assert.equal(res.headers.get('access-control-allow-credentials'), null, p);
  }
  for (const p of ['/oauth/register', '/oauth/token', '/oauth/revoke']) {
    const pre = await fetch(`${srv.url}${p}`, { method: 'OPTIONS', headers: { Origin: 'https://app.example',
      'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'content-type' } });
    assert.equal(pre.status, 204, p);
    assert.equal(pre.headers.get('access-control-allow-origin'), '*', p);
    assert.equal(pre.headers.get('access-control-allow-credentials'), null, p);
    const post = await fetch(`${srv.url}${p}`, { method: 'POST', headers: { Origin: 'https://app.example',
      'Content-Type': 'application/x-www-form-urlencoded' }, body: '' });
    assert.equal(post.headers.get('access-control-allow-origin'), '*', p);
  }
  const az = await fetch(`${srv.url}/oauth/authorize?client_id=x`, { headers: { Origin: 'https://app.example' } });
  assert.equal(az.headers.get('access-control-allow-origin'), null);
  const pre = await fetch(`${srv.url}/oauth/authorize`, { method: 'OPTIONS', headers: { Origin: 'https://app.example' } });
  assert.equal(pre.headers.get('access-control-allow-origin'), null);
});
