// What an outside review found at the MCP endpoint: a message carrying both
// result and error is invalid (-32600); a repeated Authorization,
// Mcp-Session-Id or MCP-Protocol-Version is 400 invalid_request, so a proxy
// that reads the last field line and the gateway cannot act for different
// callers or sessions; a database outage is answered as a JSON-RPC error with
// Retry-After, and a request caught in it is told it may retry.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, startFixture, sleep } from '../../harness/index.mjs';
import { member, addConnector, post, rawRequest, rawSession, ACCEPT_BOTH, LEGACY } from './lib.mjs';

let srv, alpha, user, other;

before(async () => {
  alpha = await startFixture({ name: 'alpha', tools: ['echo'] });
  srv = await startServer({ name: 'gw-hardening' });
  addConnector(srv, { name: 'alpha', url: alpha.url });
  user = member(srv);
  other = member(srv, { name: 'other' });
});

after(async () => {
  await alpha?.stop();
  if (srv) assert.equal(await srv.stop(), 0);
});

test('a response carrying both result and error is -32600, not accepted', async () => {
  const s = await rawSession(srv, user.pat);
  const r = await post(srv, { jsonrpc: '2.0', id: 'gh-r-1', result: {}, error: { code: 1, message: 'x' } },
    { token: user.pat, session: s.session, version: LEGACY });
  assert.equal(r.status, 400, r.text);
  assert.equal(r.body?.error?.code, -32600, r.text);
  // each alone is still a response we take
  const ok = await post(srv, { jsonrpc: '2.0', id: 'gh-r-2', result: {} }, { token: user.pat, session: s.session, version: LEGACY });
  assert.equal(ok.status, 202, ok.text);
  // and in a 2025-03-26 batch the message is refused on its own
  const b = await rawSession(srv, user.pat, { version: '2025-03-26' });
  const batch = await post(srv, [{ jsonrpc: '2.0', id: 'gh-r-3', result: {}, error: { code: 1, message: 'x' } },
    { jsonrpc: '2.0', id: 5, method: 'ping' }], { token: user.pat, session: b.session, version: '2025-03-26' });
  assert.equal(batch.status, 200, batch.text);
  assert.ok(batch.body.some((m) => m.error?.code === -32600), batch.text);
});

/* node:http sends an array as one field line per element; a stream opened
 * by mistake is cut after 5 s and reads as status 0 */
const raw = (headers, body, method = 'POST') => Promise.race([
  rawRequest(srv, '/mcp', {
    method,
    headers: { 'Content-Type': 'application/json', Accept: ACCEPT_BOTH, ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  }),
  sleep(5000).then(() => ({ status: 0, text: '(no answer within 5 s)', body: null, headers: {} })),
]);

test('two Authorization headers: 400 invalid_request (RFC 6750 §3.1), whichever comes first', async () => {
  const list = { jsonrpc: '2.0', id: 1, method: 'tools/list', params: { _meta: { 'io.modelcontextprotocol/protocolVersion': '2026-07-28' } } };
  for (const pair of [[user.pat, other.pat], [user.pat, 'gth_pat_nonsense'], [user.pat, user.pat]]) {
    const r = await raw({ Authorization: pair.map((t) => `Bearer ${t}`), 'MCP-Protocol-Version': '2026-07-28', 'Mcp-Method': 'tools/list' }, list);
    assert.equal(r.status, 400, r.text);
    assert.equal(r.body?.error, 'invalid_request', r.text);
    assert.match(r.headers['www-authenticate'] ?? '', /error="invalid_request"/);
  }
  // the refusal is audited as any other
  const rows = srv.cluster.sql("SELECT count(*) FROM audit_events WHERE message LIKE '%Authorization header may be sent once%'");
  assert.ok(Number(rows) >= 3, rows);
});

test('a repeated Mcp-Session-Id or (session-era) MCP-Protocol-Version: 400 -32600, nothing done', async () => {
  const a = await rawSession(srv, user.pat);
  const b = await rawSession(srv, user.pat);
  const call = { jsonrpc: '2.0', id: 9, method: 'tools/call', params: { name: 'alpha__echo', arguments: { message: 'twice' } } };
  await alpha.resetLog();
  const cases = [
    ['POST, two sessions', { 'Mcp-Session-Id': [a.session, b.session], 'MCP-Protocol-Version': LEGACY }, call, 'POST'],
    ['POST, one session twice', { 'Mcp-Session-Id': [a.session, a.session], 'MCP-Protocol-Version': LEGACY }, call, 'POST'],
    ['POST, two versions', { 'Mcp-Session-Id': a.session, 'MCP-Protocol-Version': [LEGACY, '2025-06-18'] }, call, 'POST'],
    ['GET, two sessions', { 'Mcp-Session-Id': [a.session, b.session], Accept: 'text/event-stream' }, undefined, 'GET'],
    ['GET, two versions', { 'Mcp-Session-Id': a.session, 'MCP-Protocol-Version': [LEGACY, '2026-07-28'], Accept: 'text/event-stream' }, undefined, 'GET'],
    ['DELETE, two sessions', { 'Mcp-Session-Id': [a.session, b.session] }, undefined, 'DELETE'],
    ['DELETE, two versions', { 'Mcp-Session-Id': b.session, 'MCP-Protocol-Version': [LEGACY, LEGACY] }, undefined, 'DELETE'],
  ];
  const wrong = [];
  for (const [what, headers, body, method] of cases) {
    const r = await raw({ Authorization: `Bearer ${user.pat}`, ...headers }, body, method);
    if (r.status !== 400 || r.body?.error?.code !== -32600) wrong.push(`${what}: ${r.status} ${r.text}`);
  }
  assert.deepEqual(wrong, []);
  assert.equal((await alpha.log()).filter((e) => e.method === 'tools/call').length, 0, 'nothing forwarded');
  // neither session was ended by the refused DELETEs
  for (const s of [a, b]) assert.equal((await s.call('ping', {})).status, 200);
});

test('the database down: a JSON-RPC error with Retry-After, then service again', async () => {
  const s = await rawSession(srv, user.pat);
  srv.cluster.stopServer('fast');
  try {
    const fresh = await post(srv, { jsonrpc: '2.0', id: 1, method: 'tools/list', params: {} },
      { token: other.pat, session: s.session, version: LEGACY, signal: AbortSignal.timeout(30000) });
    assert.equal(fresh.status, 503, fresh.text);
    assert.ok(Number(fresh.headers.get('retry-after')) > 0, 'Retry-After');
    assert.equal(fresh.body?.jsonrpc, '2.0', `a JSON-RPC body: ${fresh.text}`);
    assert.equal(fresh.body?.error?.code, -32603, fresh.text);
    assert.equal(fresh.body?.error_description, undefined, 'not an OAuth-style body');
    // a member whose credential is cached: the session or the list needs the database
    const cached = await s.call('tools/list', {}, { signal: AbortSignal.timeout(30000) });
    assert.equal(cached.status, 503, cached.text);
    assert.ok(Number(cached.headers.get('retry-after')) > 0, 'Retry-After');
    assert.equal(cached.body?.error?.code, -32603, cached.text);
    assert.equal(cached.body?.error?.data?.retryable, true, `a retry hint: ${cached.text}`);
  } finally {
    srv.cluster.start();
  }
  const until = Date.now() + 30000;
  let r;
  while ((r = await s.call('tools/list', {})).status !== 200 && Date.now() < until) await sleep(300);
  assert.equal(r.status, 200, r.text);
});
