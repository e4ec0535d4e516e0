// The session-based Streamable HTTP transport with raw HTTP: status codes
// where the spec (and the SDK's server) say so, sessions bound to their
// owner, DELETE, Host/Origin validation against DNS rebinding, the request
// size limit, malformed JSON-RPC; the server never falls over.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startServer, startFixture, freePort } from '../../harness/index.mjs';
import { member, addConnector, post, rawSession, rawRequest, toolText, AuditLog, LEGACY, ACCEPT_BOTH } from './lib.mjs';

let srv, alpha, user, other;
const audit = new AuditLog();

before(async () => {
  const port = await freePort();
  [alpha, srv] = await Promise.all([
    startFixture({ name: 'alpha', tools: ['echo', 'whoami'] }),
    startServer({ name: 'gw-protocol', env: { GATEHOUSE_LISTEN: `127.0.0.1:${port}`,
      GATEHOUSE_ALLOWED_HOSTS: `127.0.0.1:${port},mcp.example.test` } }),
  ]);
  addConnector(srv, { name: 'alpha', url: alpha.url });
  user = member(srv);
  other = member(srv);
});

after(async () => {
  await alpha?.stop();
  if (srv) assert.equal(await srv.stop(), 0);
});

/* node:http, for the headers fetch will not let us set (Host). */
const rawHttp = (path, opts) => rawRequest(srv, path, opts);

const initMsg = { jsonrpc: '2.0', id: 1, method: 'initialize',
  params: { protocolVersion: LEGACY, capabilities: {}, clientInfo: { name: 'raw', version: '1' } } };

test('initialize → 200 with Mcp-Session-Id; the session serves calls; notifications → 202', async () => {
  const s = await rawSession(srv, user.pat);
  audit.expect({ method: 'initialize' });
  assert.equal(s.init.result.protocolVersion, LEGACY);
  assert.ok(s.init.result.capabilities.tools);
  assert.ok(s.init.result.serverInfo?.name);
  const r = await s.call('tools/call', { name: 'alpha__echo', arguments: { message: 'raw' } });
  audit.tool('alpha__echo', 'alpha');
  assert.equal(r.status, 200, r.text);
  assert.equal(toolText(r.body.result), 'alpha: raw');
  const p = await s.call('ping', {});
  audit.expect({ method: 'ping' });
  assert.deepEqual(p.body.result, {});
});

test('no credential → 401 with WWW-Authenticate pointing at the resource metadata', async () => {
  const r = await post(srv, initMsg, {});
  assert.equal(r.status, 401);
  assert.match(r.headers.get('www-authenticate') || '', /^Bearer .*resource_metadata="[^"]+"/);
  const bad = await post(srv, initMsg, { token: 'gth_pat_notarealtoken_000000' });
  assert.equal(bad.status, 401);
});

test('a request without a session id (other than initialize) → 400; an unknown session id → 404', async () => {
  const r = await post(srv, { jsonrpc: '2.0', id: 2, method: 'tools/list' }, { token: user.pat, version: LEGACY });
  assert.equal(r.status, 400, r.text);
  assert.ok(r.body?.error, `JSON-RPC error body: ${r.text}`);
  const u = await post(srv, { jsonrpc: '2.0', id: 3, method: 'tools/list' }, { token: user.pat, version: LEGACY, session: 'no-such-session-0123456789abcdef' });
  assert.equal(u.status, 404, u.text);
  const g = await post(srv, undefined, { method: 'GET', token: user.pat, session: 'no-such-session-0123456789abcdef', accept: 'text/event-stream' });
  assert.equal(g.status, 404, g.text);
});

test("another user's token with a session id → refused, and the owner's session goes on", async () => {
  const s = await rawSession(srv, user.pat);
  audit.expect({ method: 'initialize' });
  const r = await post(srv, { jsonrpc: '2.0', id: 5, method: 'tools/call', params: { name: 'alpha__whoami', arguments: {} } },
    { token: other.pat, session: s.session, version: LEGACY });
  assert.ok([403, 404].includes(r.status), `another user's token: ${r.status} ${r.text}`);
  assert.equal(r.body?.result, undefined);
  const g = await post(srv, undefined, { method: 'GET', token: other.pat, session: s.session, accept: 'text/event-stream' });
  assert.ok([403, 404].includes(g.status), `GET stream with another user's token: ${g.status}`);
  const d = await post(srv, undefined, { method: 'DELETE', token: other.pat, session: s.session });
  assert.ok([403, 404].includes(d.status), `DELETE with another user's token: ${d.status}`);
  const mine = await s.call('tools/call', { name: 'alpha__whoami', arguments: {} });
  audit.tool('alpha__whoami', 'alpha');
  assert.equal(mine.status, 200, mine.text);
  assert.deepEqual(mine.body.result.structuredContent, { upstream: 'alpha' });
});

test('DELETE ends the session: later requests → 404', async () => {
  const s = await rawSession(srv, user.pat);
  audit.expect({ method: 'initialize' });
  const d = await post(srv, undefined, { method: 'DELETE', token: user.pat, session: s.session, version: LEGACY });
  assert.ok([200, 204].includes(d.status), `DELETE: ${d.status} ${d.text}`);
  const r = await s.call('tools/list', {});
  assert.equal(r.status, 404, r.text);
  const again = await post(srv, undefined, { method: 'DELETE', token: user.pat, session: s.session, version: LEGACY });
  assert.equal(again.status, 404);
});

test('405 for other methods, 406 for an Accept without both types, 415 for a non-JSON body', async () => {
  const s = await rawSession(srv, user.pat);
  audit.expect({ method: 'initialize' });
  for (const method of ['PUT', 'PATCH']) {
    const r = await post(srv, { jsonrpc: '2.0', id: 1, method: 'ping' }, { method, token: user.pat, session: s.session });
    assert.equal(r.status, 405, `${method}: ${r.status}`);
    assert.match(r.headers.get('allow') || '', /POST/);
  }
  const a = await s.call('ping', {}, { accept: 'application/json' });
  assert.equal(a.status, 406, `POST Accept: application/json only → ${a.status}`);
  const b = await s.call('ping', {}, { accept: 'text/html' });
  assert.equal(b.status, 406);
  const g = await post(srv, undefined, { method: 'GET', token: user.pat, session: s.session, version: LEGACY, accept: 'application/json' });
  assert.equal(g.status, 406, `GET without text/event-stream → ${g.status}`);
  const c = await post(srv, undefined, { token: user.pat, session: s.session, version: LEGACY,
    headers: { 'Content-Type': 'text/plain' }, raw: JSON.stringify({ jsonrpc: '2.0', id: 9, method: 'ping' }) });
  assert.equal(c.status, 415, `text/plain body → ${c.status}`);
  const v = await s.call('ping', {}, { version: '1999-01-01' });
  assert.equal(v.status, 400, `unsupported MCP-Protocol-Version → ${v.status}`);
});

test('bad JSON → 400 Parse error (-32700); not JSON-RPC → -32600; unknown method → -32601', async () => {
  const s = await rawSession(srv, user.pat);
  audit.expect({ method: 'initialize' });
  const p = await post(srv, undefined, { token: user.pat, session: s.session, version: LEGACY, raw: '{"jsonrpc": "2.0", "id": 1, "method": ' });
  assert.equal(p.status, 400, p.text);
  assert.equal(p.body?.error?.code, -32700, p.text);
  assert.equal(p.body.id, null);
  const wrong = [];
  for (const raw of ['[]', '42', '"ping"', '{"id": 1, "method": "ping"}', '{"jsonrpc": "2.0", "id": 1, "method": 7}', '{"jsonrpc": "1.0", "id": 1, "method": "ping"}']) {
    const r = await post(srv, undefined, { token: user.pat, session: s.session, version: LEGACY, raw });
    if (r.status !== 400 || r.body?.error?.code !== -32600) wrong.push(`${raw} → ${r.status} ${r.text}`);
  }
  assert.deepEqual(wrong, [], 'valid JSON that is not a JSON-RPC request → 400 Invalid Request (-32600)');
  // an empty batch, like every request that reaches the gateway, has its row
  const empty = await post(srv, undefined, { token: user.pat, session: s.session, version: LEGACY, raw: '[]' });
  assert.equal(srv.cluster.sql(`SELECT method || '|' || decision || '|' || message FROM audit_events
    WHERE request_id = '${empty.headers.get('x-request-id')}'`), '(batch)|deny|empty batch');
  const m = await s.call('no/such-method', {});
  assert.ok(m.body?.error, m.text);
  assert.equal(m.body.error.code, -32601);
  const t = await s.call('tools/call', { name: 'alpha__no_such_tool', arguments: {} });
  assert.ok(t.body?.error || t.body?.result?.isError, `unknown tool: ${t.text}`);
  if (t.body.error) assert.equal(t.body.error.code, -32602);
  const c = await s.call('tools/list', { cursor: 'not-a-cursor-we-made' });
  assert.equal(c.body?.error?.code, -32602, `invalid cursor: ${c.text}`);
  // the session is fine afterwards
  const ok = await s.call('tools/call', { name: 'alpha__echo', arguments: { message: 'still here' } });
  audit.tool('alpha__echo', 'alpha');
  assert.equal(toolText(ok.body.result), 'alpha: still here');
});

test('request size limit: an oversized body → 413, the upstream sees nothing', async () => {
  const s = await rawSession(srv, user.pat);
  audit.expect({ method: 'initialize' });
  const big = 'x'.repeat(2 * 1024 * 1024);
  const r = await s.call('tools/call', { name: 'alpha__echo', arguments: { message: big } });
  assert.equal(r.status, 413, `${r.status}`);
  // chunked, without a declared length
  const chunked = await new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: srv.port, path: '/mcp', method: 'POST', headers: {
      Authorization: `Bearer ${user.pat}`, 'Content-Type': 'application/json', Accept: ACCEPT_BOTH,
      'Mcp-Session-Id': s.session, 'MCP-Protocol-Version': LEGACY, 'Transfer-Encoding': 'chunked' } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.on('error', (e) => (e.code === 'ECONNRESET' || e.code === 'EPIPE' ? resolve('reset') : reject(e)));
    const part = `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"alpha__echo","arguments":{"message":"${'y'.repeat(64 * 1024)}`;
    req.write(part);
    for (let i = 0; i < 40; i++) req.write('y'.repeat(64 * 1024));
    req.end('"}}}');
  });
  assert.ok(chunked === 413 || chunked === 'reset', `chunked oversized body → ${chunked}`);
  const seen = (await alpha.log()).filter((e) => e.method === 'tools/call' && String(e.params?.arguments?.message).length > 100000);
  assert.equal(seen.length, 0);
  const ok = await s.call('ping', {});
  audit.expect({ method: 'ping' });
  assert.equal(ok.status, 200);
});

test('Host and Origin validation against DNS rebinding', async () => {
  const base = { 'Content-Type': 'application/json', Accept: ACCEPT_BOTH, Authorization: `Bearer ${user.pat}` };
  const body = JSON.stringify(initMsg);
  const evilHost = await rawHttp('/mcp', { headers: { ...base, Host: 'evil.example.com' }, body });
  // 403 Forbidden or 421 Misdirected Request: either refuses a name we do not serve
  assert.ok([403, 421].includes(evilHost.status), `Host evil.example.com → ${evilHost.status}`);
  assert.equal(evilHost.headers['mcp-session-id'], undefined);
  const evilOrigin = await rawHttp('/mcp', { headers: { ...base, Host: `127.0.0.1:${srv.port}`, Origin: 'http://evil.example.com' }, body });
  assert.equal(evilOrigin.status, 403, `Origin evil → ${evilOrigin.status}`);
  const nullOrigin = await rawHttp('/mcp', { headers: { ...base, Origin: 'null' }, body });
  assert.equal(nullOrigin.status, 403, `Origin null → ${nullOrigin.status}`);
  // the configured allowed hosts pass (with their own origin)
  for (const [host, origin] of [[`127.0.0.1:${srv.port}`, srv.url], ['mcp.example.test', undefined], ['mcp.example.test', 'https://mcp.example.test']]) {
    const r = await rawHttp('/mcp', { headers: { ...base, Host: host, ...(origin ? { Origin: origin } : {}) }, body });
    audit.expect({ method: 'initialize' });
    assert.equal(r.status, 200, `Host ${host}: ${r.status} ${r.text}`);
  }
  // and the rebinding refusal comes before anything else: also without a token
  const anon = await rawHttp('/mcp', { headers: { 'Content-Type': 'application/json', Accept: ACCEPT_BOTH, Host: 'evil.example.com' }, body });
  assert.ok([403, 421].includes(anon.status), `no token, evil Host → ${anon.status}`);
  const anonOrigin = await rawHttp('/mcp', { headers: { 'Content-Type': 'application/json', Accept: ACCEPT_BOTH, Origin: 'http://evil.example.com' }, body });
  assert.equal(anonOrigin.status, 403, `no token, evil Origin → ${anonOrigin.status}`);
});

test('a burst of malformed requests: the server stays up and serves', async () => {
  const junk = ['', '{', 'null', '"str"', '{"jsonrpc":"2.0"}', '{"jsonrpc":"2.0","id":{},"method":"ping"}',
    '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":"x"}', '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":7}}',
    '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":7}}', '\u0000\u0001', '{"a":'.repeat(5000)];
  const s = await rawSession(srv, user.pat);
  audit.expect({ method: 'initialize' });
  for (const raw of junk) {
    for (const session of [undefined, s.session]) {
      const r = await post(srv, undefined, { token: user.pat, session, version: LEGACY, raw });
      assert.ok(r.status >= 400 && r.status < 500 || (r.status === 200 && r.body?.error), `${JSON.stringify(raw.slice(0, 40))}: ${r.status} ${r.text.slice(0, 200)}`);
    }
  }
  assert.equal((await fetch(`${srv.url}/readyz`)).status, 200);
  const fresh = await rawSession(srv, user.pat);
  audit.expect({ method: 'initialize' });
  const r = await fresh.call('tools/call', { name: 'alpha__whoami', arguments: {} });
  audit.tool('alpha__whoami', 'alpha');
  assert.equal(r.status, 200);
});

test('every call of this file has its audit row', async () => {
  audit.check(srv);
});
