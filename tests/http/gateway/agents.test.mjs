// The per-agent endpoints /agents/{slug}/mcp with connectors: agents `alpha`
// and `beta`, each with a connector of its own and one of the same name
// (`common`) in front of a different upstream, one member with a PAT for
// each agent.  Each endpoint lists and calls only its agent's connectors; a
// session belongs to the agent it was made at (404 elsewhere, DELETE
// included); a PAT or OAuth token works at its own agent only (401
// invalid_token elsewhere) and an access token without the `mcp` scope is
// 403 insufficient_scope; a connector change reaches the GET streams of its
// agent's sessions only; every row is audited under the right agent.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { startServer, startFixture, gatehouse, secret } from '../../harness/index.mjs';
import { signedIn, fullFlow, token as oauthToken } from '../oauth/lib.mjs';
import {
  member, addConnector, connectorCmd, sdkClient, listAll, post, rawSession, modern, modernMsg, modernHeaders,
  toolText, auditRows, AuditLog, LEGACY, rejects,
} from './lib.mjs';

let srv, upA, upB, user, pats;
const auditAlpha = new AuditLog();
const auditBeta = new AuditLog();
const auditDefault = new AuditLog();
const path = (slug) => (slug === 'default' ? '/mcp' : `/agents/${slug}/mcp`);
const sha256 = (s) => crypto.createHash('sha256').update(s).digest('hex');

const ALPHA_TOOLS = ['common__echo', 'common__whoami', 'ua__echo', 'ua__whoami'];
const BETA_TOOLS = ['common__echo', 'common__whoami', 'ub__echo', 'ub__whoami'];

before(async () => {
  [upA, upB, srv] = await Promise.all([
    startFixture({ name: 'upa', tools: ['echo', 'whoami'] }),
    startFixture({ name: 'upb', json: true, tools: ['echo', 'whoami'] }),
    startServer({ name: 'gw-agents' }),
  ]);
  for (const [slug, name] of [['alpha', 'Alpha agent'], ['beta', 'Beta agent']]) {
    const r = gatehouse(srv, ['agent', 'add', '--slug', slug, '--name', name]);
    assert.equal(r.code, 0, `agent add ${slug}: ${r.stderr}`);
  }
  addConnector(srv, { agent: 'alpha', name: 'ua', url: upA.url });
  addConnector(srv, { agent: 'alpha', name: 'common', url: upA.url });
  addConnector(srv, { agent: 'beta', name: 'ub', url: upB.url });
  addConnector(srv, { agent: 'beta', name: 'common', url: upB.url });
  // one member, a PAT for each agent (the default agent has no connector)
  user = member(srv, { agent: 'alpha', name: 'alpha-pat' });
  pats = { alpha: user.pat };
  for (const slug of ['beta', 'default']) {
    const r = gatehouse(srv, ['pat', 'create', '--email', user.email, '--agent', slug, '--name', `${slug}-pat`]);
    assert.equal(r.code, 0, `pat create ${slug}: ${r.stderr}`);
    pats[slug] = secret(r.stdout.trim());
  }
});

after(async () => {
  await Promise.all([upA?.stop(), upB?.stop()]);
  if (srv) assert.equal(await srv.stop(), 0);
});


/* Resolves with the message p resolves with, or null if none came within ms. */
async function within(p, ms) {
  let timer;
  const none = new Promise((resolve) => { timer = setTimeout(() => resolve(null), ms); });
  try {
    return await Promise.race([p, none]);
  } finally {
    clearTimeout(timer);
  }
}

test("each agent's endpoint lists only its own connectors' tools and calls its own upstreams", async () => {
  for (const [slug, want, up, audit] of [['alpha', ALPHA_TOOLS, 'upa', auditAlpha], ['beta', BETA_TOOLS, 'upb', auditBeta]]) {
    const { client } = await sdkClient(srv, pats[slug], { path: path(slug) });
    audit.expect({ method: 'initialize' });
    const { items } = await listAll(client, 'tools');
    audit.expect({ method: 'tools/list' });
    assert.deepEqual(items.map((t) => t.name), want, `tools at ${path(slug)}`);
    // `common` is a connector of both agents: each agent's routes to its own upstream
    const who = await client.callTool({ name: 'common__whoami', arguments: {} });
    audit.tool('common__whoami', 'common');
    assert.deepEqual(who.structuredContent, { upstream: up }, `common__whoami at ${slug}`);
    const own = await client.callTool({ name: `u${slug[0]}__echo`, arguments: { message: `to ${slug}` } });
    audit.tool(`u${slug[0]}__echo`, `u${slug[0]}`);
    assert.equal(toolText(own), `${up}: to ${slug}`);
    await client.close();

    // the stateless era sees the same per-agent list
    const m = await modern(srv, pats[slug], `list-${slug}`, 'tools/list', {}, { path: path(slug) });
    audit.expect({ method: 'tools/list' });
    assert.equal(m.status, 200, m.text);
    assert.deepEqual(m.body.result.tools.map((t) => t.name), want, `stateless tools at ${path(slug)}`);
  }
  // the default agent has none of them
  const d = await modern(srv, pats.default, 'list-default', 'tools/list', {});
  auditDefault.expect({ method: 'tools/list' });
  assert.equal(d.status, 200, d.text);
  assert.deepEqual(d.body.result.tools, []);
});

test("a tool of another agent's connector is an unknown tool; that upstream is not called", async () => {
  await upB.resetLog();
  const s = await rawSession(srv, pats.alpha, { path: path('alpha') });
  auditAlpha.expect({ method: 'initialize' });
  for (const name of ['ub__echo', 'ub__whoami']) {
    const r = await s.call('tools/call', { name, arguments: { message: 'wrong agent' } });
    auditAlpha.expect({ method: 'tools/call', tool: name, decision: 'deny', message: `Unknown tool: ${name}` });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.result?.isError, true, r.text);
    assert.equal(toolText(r.body.result), `Unknown tool: ${name}`);
  }
  // stateless too
  const m = await modern(srv, pats.alpha, 'wrong-agent', 'tools/call', { name: 'ub__echo', arguments: { message: 'x' } }, { path: path('alpha') });
  auditAlpha.expect({ method: 'tools/call', tool: 'ub__echo', decision: 'deny', message: 'Unknown tool: ub__echo' });
  assert.equal(m.body.result?.isError, true, m.text);
  assert.equal(toolText(m.body.result), 'Unknown tool: ub__echo');
  assert.deepEqual((await upB.log()).filter((e) => e.method === 'tools/call'), [], "beta's upstream got no call");
});

test('a session made at /agents/alpha/mcp is 404 at /agents/beta/mcp and at /mcp (POST, GET, DELETE), and goes on at alpha', async () => {
  const s = await rawSession(srv, pats.alpha, { path: path('alpha') });
  auditAlpha.expect({ method: 'initialize' });
  const ok = await s.call('tools/call', { name: 'ua__echo', arguments: { message: 'at home' } });
  auditAlpha.tool('ua__echo', 'ua');
  assert.equal(toolText(ok.body.result), 'upa: at home');

  for (const [slug, audit] of [['beta', auditBeta], ['default', auditDefault]]) {
    const opts = { token: pats[slug], path: path(slug), session: s.session, version: LEGACY };
    const list = await post(srv, { jsonrpc: '2.0', id: 7, method: 'tools/list', params: {} }, opts);
    audit.expect({ method: 'tools/list', decision: 'deny', message: 'unknown session' });
    assert.equal(list.status, 404, `tools/list at ${path(slug)}: ${list.text}`);
    assert.equal(list.body?.error?.code, -32600, list.text);
    const call = await post(srv, { jsonrpc: '2.0', id: 8, method: 'tools/call', params: { name: 'ua__echo', arguments: { message: 'x' } } }, opts);
    audit.expect({ method: 'tools/call', decision: 'deny', message: 'unknown session' });
    assert.equal(call.status, 404, `tools/call at ${path(slug)}: ${call.text}`);
    const ctl = new AbortController();
    const get = await post(srv, undefined, { ...opts, method: 'GET', accept: 'text/event-stream', stream: true, signal: ctl.signal });
    audit.expect({ method: 'GET', decision: 'deny', message: 'unknown session' });
    if (get.status !== 404) ctl.abort(); // a stream that would never end
    assert.equal(get.status, 404, `GET at ${path(slug)}`);
    await get.sse.next(); // its JSON body
    const del = await post(srv, undefined, { ...opts, method: 'DELETE' });
    assert.equal(del.status, 404, `DELETE at ${path(slug)}: ${del.text}`);
  }
  // nothing of that ended or changed the session at its own agent
  const again = await s.call('tools/call', { name: 'common__whoami', arguments: {} });
  auditAlpha.tool('common__whoami', 'common');
  assert.equal(again.status, 200, again.text);
  assert.deepEqual(again.body.result.structuredContent, { upstream: 'upa' });
  // its rows carry the session (its SHA-256) and alpha
  const rows = auditRows(srv, `session_id = '${sha256(s.session)}'`);
  assert.ok(rows.length >= 4, `the session's rows: ${rows.length}`);
  assert.deepEqual([...new Set(rows.map((r) => r.raw.agent_slug))], ['alpha']);
});

test("a PAT is invalid_token at another agent's endpoint", async () => {
  for (const [tokenOf, at] of [['alpha', 'beta'], ['alpha', 'default'], ['beta', 'alpha'], ['default', 'alpha']]) {
    const r = await post(srv, { jsonrpc: '2.0', id: 1, method: 'initialize',
      params: { protocolVersion: LEGACY, capabilities: {}, clientInfo: { name: 'agents-test', version: '1' } } },
    { token: pats[tokenOf], path: path(at) });
    assert.equal(r.status, 401, `${tokenOf}'s PAT at ${path(at)}: ${r.text}`);
    const md = `${srv.url}/.well-known/oauth-protected-resource${path(at)}`;
    assert.equal(r.headers.get('www-authenticate'), `Bearer error="invalid_token", resource_metadata="${md}", scope="mcp"`);
    // stateless too
    const m = await modern(srv, pats[tokenOf], 'x', 'tools/list', {}, { path: path(at) });
    assert.equal(m.status, 401, `${tokenOf}'s PAT at ${path(at)} (stateless): ${m.text}`);
    assert.match(m.headers.get('www-authenticate'), /error="invalid_token"/);
  }
});

test("OAuth at an agent: its token works there only; a token refreshed down to offline_access (no mcp) is 403 insufficient_scope", async () => {
  const c = await signedIn(srv, user);
  const d = await fullFlow(srv, c, { resource: `${srv.url}${path('alpha')}`, scope: 'mcp offline_access' });
  assert.equal(d.tokens.scope, 'mcp offline_access');
  const { client } = await sdkClient(srv, d.tokens.access_token, { path: path('alpha') });
  auditAlpha.expect({ method: 'initialize', kind: 'oauth' });
  const { items } = await listAll(client, 'tools');
  auditAlpha.expect({ method: 'tools/list', kind: 'oauth' });
  assert.deepEqual(items.map((t) => t.name), ALPHA_TOOLS);
  const r = await client.callTool({ name: 'ua__whoami', arguments: {} });
  auditAlpha.tool('ua__whoami', 'ua', 'oauth');
  assert.deepEqual(r.structuredContent, { upstream: 'upa' });
  await client.close();
  const elsewhere = await modern(srv, d.tokens.access_token, 'o1', 'tools/list', {}, { path: path('beta') });
  assert.equal(elsewhere.status, 401, elsewhere.text);
  assert.match(elsewhere.headers.get('www-authenticate'), /error="invalid_token"/);
  // refused before authentication, and still audited: under the agent asked, naming the member
  const INVALID = 'The access token is invalid, expired or revoked.';
  auditBeta.expect({ method: 'POST', kind: 'oauth', decision: 'deny', message: INVALID });

  // narrowing the scope at refresh is allowed, and then the token lacks mcp
  const narrow = await oauthToken(srv, { grant_type: 'refresh_token', refresh_token: d.tokens.refresh_token,
    client_id: d.client.client_id, scope: 'offline_access' });
  assert.equal(narrow.status, 200, JSON.stringify(narrow.body));
  assert.equal(narrow.body.scope, 'offline_access');
  for (const req of [
    () => post(srv, { jsonrpc: '2.0', id: 1, method: 'initialize',
      params: { protocolVersion: LEGACY, capabilities: {}, clientInfo: { name: 'agents-test', version: '1' } } },
    { token: narrow.body.access_token, path: path('alpha') }),
    () => modern(srv, narrow.body.access_token, 'o2', 'tools/list', {}, { path: path('alpha') }),
  ]) {
    const res = await req();
    assert.equal(res.status, 403, res.text);
    assert.equal(res.headers.get('www-authenticate'), 'Bearer error="insufficient_scope", scope="mcp"');
    assert.equal(res.body?.error, 'insufficient_scope', res.text);
    auditAlpha.expect({ method: 'POST', kind: 'oauth', decision: 'deny', message: 'The token lacks the mcp scope.' });
  }
  // the same token at another agent is not its agent's at all
  const other = await modern(srv, narrow.body.access_token, 'o3', 'tools/list', {}, { path: path('beta') });
  assert.equal(other.status, 401, other.text);
  auditBeta.expect({ method: 'POST', kind: 'oauth', decision: 'deny', message: INVALID });
  const refused = auditRows(srv, "decision = 'deny' AND message = 'The token lacks the mcp scope.'").map((r) => r.raw);
  assert.equal(refused.length, 2);
  for (const r of refused) {
    assert.equal(r.user_email, user.email);
    assert.equal(r.agent_slug, 'alpha');
    assert.match(r.key_suffix ?? '', /^[0-9a-f]{6}$/);
  }
});

test("enabling/disabling beta's connector notifies beta's sessions only: alpha's GET stream and listen stay quiet", async () => {
  const open = async (slug) => {
    const s = await rawSession(srv, pats[slug], { path: path(slug) });
    const ctl = new AbortController();
    const g = await post(srv, undefined, { method: 'GET', token: pats[slug], path: path(slug), session: s.session, version: LEGACY,
      accept: 'text/event-stream', stream: true, signal: ctl.signal });
    assert.equal(g.status, 200, `GET at ${path(slug)}`);
    assert.match(g.headers.get('content-type'), /^text\/event-stream/);
    return { s, g, ctl };
  };
  const a = await open('alpha');
  auditAlpha.expect({ method: 'initialize' });
  const b = await open('beta');
  auditBeta.expect({ method: 'initialize' });
  // a stateless listen at alpha, too
  const lctl = new AbortController();
  const lmsg = modernMsg('sub-alpha', 'subscriptions/listen', { notifications: { toolsListChanged: true } });
  const listen = await post(srv, lmsg, { token: pats.alpha, path: path('alpha'), headers: modernHeaders(lmsg), stream: true, signal: lctl.signal });
  auditAlpha.expect({ method: 'subscriptions/listen' });
  assert.equal(listen.status, 200);
  assert.equal((await listen.sse.next()).method, 'notifications/subscriptions/acknowledged');
  // lists cached in both sessions
  for (const [x, want, audit] of [[a, ALPHA_TOOLS, auditAlpha], [b, BETA_TOOLS, auditBeta]]) {
    const l = await x.s.call('tools/list', {});
    audit.expect({ method: 'tools/list' });
    assert.deepEqual(l.body.result.tools.map((t) => t.name), want);
  }

  // whatever alpha's streams receive from now on: nothing is expected
  const alphaNext = a.g.sse.next();
  const listenNext = listen.sse.next();
  const MARGIN_MS = 1500;

  connectorCmd(srv, 'disable', '--agent', 'beta', '--name', 'ub');
  await b.g.sse.until((m) => m.method === 'notifications/tools/list_changed', "beta's list_changed after disable");
  const without = await b.s.call('tools/list', {});
  auditBeta.expect({ method: 'tools/list' });
  assert.deepEqual(without.body.result.tools.map((t) => t.name), ['common__echo', 'common__whoami']);

  connectorCmd(srv, 'enable', '--agent', 'beta', '--name', 'ub');
  await b.g.sse.until((m) => m.method === 'notifications/tools/list_changed', "beta's list_changed after enable");
  const back = await b.s.call('tools/list', {});
  auditBeta.expect({ method: 'tools/list' });
  assert.deepEqual(back.body.result.tools.map((t) => t.name), BETA_TOOLS);

  // beta's notifications came; alpha's streams got nothing within a margin after them
  assert.equal(await within(alphaNext, MARGIN_MS), null, "alpha's GET stream got no message");
  assert.equal(await within(listenNext, 10), null, "alpha's listen stream got no message");
  const same = await a.s.call('tools/list', {});
  auditAlpha.expect({ method: 'tools/list' });
  assert.deepEqual(same.body.result.tools.map((t) => t.name), ALPHA_TOOLS);

  // the control: alpha's streams were live all along, a change of alpha's own reaches them
  connectorCmd(srv, 'disable', '--agent', 'alpha', '--name', 'ua');
  const seen = await within(alphaNext, 30000);
  assert.equal(seen?.method, 'notifications/tools/list_changed', `alpha's GET stream: ${JSON.stringify(seen)}`);
  const heard = await within(listenNext, 30000);
  assert.equal(heard?.method, 'notifications/tools/list_changed', `alpha's listen stream: ${JSON.stringify(heard)}`);
  assert.equal(heard.params._meta['io.modelcontextprotocol/subscriptionId'], 'sub-alpha');
  connectorCmd(srv, 'enable', '--agent', 'alpha', '--name', 'ua');
  await a.g.sse.until((m) => m.method === 'notifications/tools/list_changed', "alpha's list_changed after enable");

  for (const x of [a, b]) {
    x.ctl.abort();
    await x.g.sse.cancel();
  }
  lctl.abort();
  await listen.sse.cancel();
});

test('every call of this file has its audit row, under its own agent', async () => {
  auditAlpha.check(srv, "agent_slug = 'alpha'");
  auditBeta.check(srv, "agent_slug = 'beta'");
  auditDefault.check(srv, "agent_slug = 'default'");
  // the slug and the id always name the same agent, and no row is without one
  const bad = srv.cluster.sql(`SELECT count(*) FROM audit_events a LEFT JOIN agents g ON g.id = a.agent_id
    WHERE g.id IS NULL OR a.agent_slug IS DISTINCT FROM g.slug`);
  assert.equal(bad.trim(), '0');
  // the tools of one agent appear only in its rows
  const tools = (slug) => new Set(auditRows(srv, `agent_slug = '${slug}' AND method = 'tools/call' AND decision = 'allow'`).map((r) => r.tool));
  assert.deepEqual([...tools('alpha')].sort(), ['common__whoami', 'ua__echo', 'ua__whoami']);
  assert.deepEqual([...tools('beta')].sort(), ['common__whoami', 'ub__echo']);
  assert.deepEqual([...tools('default')], []);
});
