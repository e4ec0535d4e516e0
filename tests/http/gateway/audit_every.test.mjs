// Every request that reaches the gateway (/mcp, /agents/{slug}/mcp) has
// exactly one audit row, committed before its reply leaves — found by the
// reply's X-Request-Id:
// - requests the web layer used to refuse before the gateway's handler ran:
//   a body over GATEHOUSE_HTTP_MAX_BODY (read and dropped, declared far over
//   it, or chunked), a method the endpoint does not serve (PUT, PATCH, HEAD,
//   OPTIONS, a CORS preflight). They pass the gateway's own checks first
//   (Host/Origin, the credential: refusals before authentication have their
//   rows, budgeted per IP), then get 413 / 405 with a row naming the member;
// - every JSON-RPC shape: malformed, not an object, a batch of mixed members
//   (a row per member; a member refused as it would be alone), an unknown method, a notification, a response, too
//   deep, a duplicated key, 415, 406, a wrong protocol version, an unknown
//   session, and invalid params of logging/setLevel and subscriptions/listen
//   (denied, not "allow");
// - the fields: the connector and the tool's full name ("<connector>__<upstream
//   name>") for a tool whose name clients see shortened; the client of an
//   OAuth token (id and name) and of a PAT (its name, no id).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startServer, startFixture, gatehouse } from '../../harness/index.mjs';
import { signedIn, fullFlow } from '../oauth/lib.mjs';
import { member, addConnector, post, rawSession, modern, auditRows, LEGACY, ACCEPT_BOTH } from './lib.mjs';

const MAX_BODY = 64 * 1024;
const LONG = `create_or_update_a_file_in_a_repository_with_a_name_much_longer_than_sixty_four_${'x'.repeat(20)}`;
let srv, fx, user, other;

before(async () => {
  [fx, srv] = await Promise.all([
    startFixture({ name: 'fx', tools: ['echo', { name: LONG, description: 'long', inputSchema: { type: 'object', properties: {} } }] }),
    startServer({ name: 'gw-audit-every', env: { GATEHOUSE_HTTP_MAX_BODY: String(MAX_BODY) } }),
  ]);
  addConnector(srv, { name: 'gh', url: fx.url });
  assert.equal(gatehouse(srv, ['agent', 'add', '--slug', 'other', '--name', 'Other']).code, 0);
  user = member(srv);
  other = member(srv, { agent: 'other', name: 'other laptop' });
});

after(async () => {
  await fx?.stop();
  if (srv) assert.equal(await srv.stop(), 0);
});

/* The rows of one request, by the request id its reply carries. */
const rowsOf = (s, rid) => auditRows(s, `request_id = '${rid}'`).map((r) => r.raw).sort((a, b) => a.id - b.id);
const ridOf = (res) => (typeof res.headers.get === 'function' ? res.headers.get('x-request-id') : res.headers['x-request-id']);

function oneRow(s, res, want, what) {
  const rid = ridOf(res);
  assert.ok(rid, `${what}: X-Request-Id`);
  const rows = rowsOf(s, rid);
  assert.equal(rows.length, 1, `${what}: ${rows.length} rows for one request: ${JSON.stringify(rows)}`);
  for (const [k, v] of Object.entries(want)) assert.equal(rows[0][k], v, `${what}: ${k} of ${JSON.stringify(rows[0])}`);
  return rows[0];
}

/* A request through node:http: the body is written in `chunks` (chunked
 * when no Content-Length is given), or not at all with `declare` (only the
 * headers, claiming that length). Resolves { status, headers, text } or
 * { status: 'reset' } when the server closed the connection first. */
function raw(s, { method = 'POST', path = '/mcp', headers = {}, body, declare, chunks } = {}) {
  return new Promise((resolve, reject) => {
    const h = { Host: `127.0.0.1:${s.port}`, ...headers };
    if (declare !== undefined) h['Content-Length'] = String(declare);
    else if (body !== undefined) h['Content-Length'] = String(Buffer.byteLength(body));
    const req = http.request({ host: '127.0.0.1', port: s.port, path, method, headers: h }, (res) => {
      const parts = [];
      res.on('data', (c) => parts.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, text: Buffer.concat(parts).toString() }));
    });
    req.on('error', (e) => (['ECONNRESET', 'EPIPE'].includes(e.code) ? resolve({ status: 'reset' }) : reject(e)));
    if (declare !== undefined) {
      req.flushHeaders();
      return;
    }
    if (chunks) for (const c of chunks) req.write(c);
    else if (body !== undefined) req.write(body);
    req.end();
  });
}

const mcpHeaders = (token, more = {}) => ({ 'Content-Type': 'application/json', Accept: ACCEPT_BOTH,
  ...(token ? { Authorization: `Bearer ${token}` } : {}), ...more });

test('a body over the limit and a method the endpoint does not serve: the member\'s row, then 413 / 405', async () => {
  const s = await rawSession(srv, user.pat);
  const sess = { 'Mcp-Session-Id': s.session, 'MCP-Protocol-Version': LEGACY };
  const big = JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'tools/call',
    params: { name: 'gh__echo', arguments: { message: 'y'.repeat(4 * MAX_BODY) } } });
  const member = { user_email: user.email, credential_kind: 'pat', agent_slug: 'default', decision: 'deny', tool: null };
  await fx.resetLog();

  const read = await raw(srv, { headers: mcpHeaders(user.pat, sess), body: big });
  assert.equal(read.status, 413, read.text);
  assert.equal(JSON.parse(read.text).error?.code, -32600, `a JSON-RPC error: ${read.text}`);
  oneRow(srv, read, { ...member, method: 'POST', message: 'request body too large' }, 'read and dropped');

  const declared = await raw(srv, { headers: mcpHeaders(user.pat, sess), declare: 64 * MAX_BODY });
  assert.equal(declared.status, 413);
  oneRow(srv, declared, { ...member, method: 'POST', message: 'request body too large' }, 'declared far over the limit');

  const chunked = await raw(srv, { headers: mcpHeaders(user.pat, { ...sess, 'Transfer-Encoding': 'chunked' }),
    chunks: [big.slice(0, MAX_BODY), big.slice(MAX_BODY)] });
  assert.equal(chunked.status, 413);
  oneRow(srv, chunked, { ...member, method: 'POST', message: 'request body too large' }, 'chunked');
  assert.deepEqual((await fx.log()).filter((e) => e.method === 'tools/call'), [], 'the upstream saw nothing');

  for (const method of ['PUT', 'PATCH', 'HEAD', 'OPTIONS']) {
    const r = await raw(srv, { method, headers: mcpHeaders(user.pat, sess), body: method === 'HEAD' ? undefined : '{}' });
    assert.equal(r.status, 405, `${method}: ${r.status}`);
    assert.match(r.headers.allow || '', /POST/, method);
    oneRow(srv, r, { ...member, method, message: 'method not allowed' }, method);
  }
  // at another agent's endpoint, under that agent
  const o = await raw(srv, { method: 'PUT', path: '/agents/other/mcp', headers: mcpHeaders(other.pat), body: '{}' });
  assert.equal(o.status, 405);
  oneRow(srv, o, { agent_slug: 'other', user_email: other.email, method: 'PUT', decision: 'deny' }, 'PUT at /agents/other/mcp');
  // the session goes on
  const ok = await s.call('ping', {});
  assert.equal(ok.status, 200, ok.text);
});

test('the same without a credential: the refusal before authentication, with its row; a CORS preflight too', async () => {
  const big = 'z'.repeat(4 * MAX_BODY);
  for (const [what, req] of [
    ['oversized, read', () => raw(srv, { headers: mcpHeaders(null), body: big })],
    ['oversized, declared', () => raw(srv, { headers: mcpHeaders(null), declare: 64 * MAX_BODY })],
    ['PUT', () => raw(srv, { method: 'PUT', headers: mcpHeaders(null), body: '{}' })],
    ['HEAD', () => raw(srv, { method: 'HEAD', headers: mcpHeaders(null) })],
  ]) {
    const r = await req();
    assert.equal(r.status, 401, `${what}: ${r.status}`);
    assert.match(r.headers['www-authenticate'] || '', /resource_metadata=/, what);
    oneRow(srv, r, { agent_slug: 'default', decision: 'deny', message: 'Authentication required.', user_email: null }, what);
  }
  // a browser's preflight from another site: the Origin refusal, with its row
  const pre = await raw(srv, { method: 'OPTIONS', headers: { Origin: 'https://app.example',
    'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'authorization, content-type' } });
  assert.equal(pre.status, 403);
  assert.equal(pre.headers['access-control-allow-origin'], undefined);
  oneRow(srv, pre, { agent_slug: 'default', method: 'OPTIONS', decision: 'deny', message: 'Origin not allowed.' }, 'preflight');
  // an unknown agent stays a 404 without a row
  const before = Number(srv.cluster.sql('SELECT count(*) FROM audit_events'));
  const nf = await raw(srv, { method: 'PUT', path: '/agents/no-such/mcp', headers: mcpHeaders(user.pat), body: '{}' });
  assert.equal(nf.status, 404);
  const nfBig = await raw(srv, { path: '/agents/no-such/mcp', headers: mcpHeaders(user.pat), declare: 64 * MAX_BODY });
  assert.equal(nfBig.status, 404);
  assert.equal(Number(srv.cluster.sql('SELECT count(*) FROM audit_events')), before);
});

test('those refusals share the per-IP budget of refusals before authentication', async () => {
  const lim = await startServer({ name: 'gw-audit-every-rate', env: { GATEHOUSE_RATE_MCP_REFUSED_PER_MIN: '2',
    GATEHOUSE_HTTP_MAX_BODY: String(MAX_BODY) } });
  try {
    const u = member(lim);
    const count = () => Number(lim.cluster.sql("SELECT count(*) FROM audit_events WHERE decision = 'deny'"));
    assert.equal((await raw(lim, { method: 'PUT', headers: mcpHeaders(null), body: '{}' })).status, 401);
    assert.equal((await raw(lim, { headers: mcpHeaders(null), declare: 64 * MAX_BODY })).status, 401);
    assert.equal(count(), 2);
    const past = [await raw(lim, { method: 'PATCH', headers: mcpHeaders(null), body: '{}' }),
      await raw(lim, { headers: mcpHeaders(null), declare: 64 * MAX_BODY })];
    assert.deepEqual(past.map((r) => r.status), [429, 429]);
    assert.equal(count(), 2, 'no row past the budget');
    // a member's own refusals are not budgeted
    const mine = await raw(lim, { method: 'PUT', headers: mcpHeaders(u.pat), body: '{}' });
    assert.equal(mine.status, 405);
    oneRow(lim, mine, { user_email: u.email, method: 'PUT', message: 'method not allowed' }, 'member past the budget');
  } finally {
    assert.equal(await lim.stop(), 0);
  }
});

test('every JSON-RPC shape has exactly one row (a batch: one per member)', async () => {
  const s = await rawSession(srv, user.pat);
  const old = await rawSession(srv, user.pat, { version: '2025-03-26' });
  const send = (rawBody, o = {}) => post(srv, undefined, { token: user.pat, session: s.session, version: LEGACY, raw: rawBody, ...o });
  const deny = (method, message) => ({ method, message, decision: 'deny', user_email: user.email });
  const cases = [
    ['malformed JSON', () => send('{"jsonrpc": "2.0", "id": 1, "method": '), 400, deny('(invalid)', 'parse error')],
    ['not an object', () => send('42'), 400, deny('(invalid)', 'invalid request')],
    ['too deep', () => send(`${'['.repeat(5000)}${']'.repeat(5000)}`), 400, deny('(invalid)', 'parse error')],
    ['a duplicated key', () => send('{"jsonrpc":"2.0","id":1,"id":2,"method":"ping"}'), 400, deny('(invalid)', 'parse error')],
    ['an unknown method', () => send('{"jsonrpc":"2.0","id":3,"method":"no/such"}'), 200, deny('no/such', 'method not found')],
    ['a notification', () => send('{"jsonrpc":"2.0","method":"notifications/roots/list_changed"}'), 202,
      { method: 'notifications/roots/list_changed', decision: 'allow' }],
    ['a response', () => send('{"jsonrpc":"2.0","id":"nobody-asked","result":{}}'), 202, { method: '(response)', decision: 'allow' }],
    ['null id', () => send('{"jsonrpc":"2.0","id":null,"method":"ping"}'), 400, deny('ping', 'null id')],
    ['initialize as a notification', () => send('{"jsonrpc":"2.0","method":"initialize","params":{}}', { session: undefined }), 400,
      deny('initialize', 'initialize without an id')],
    ['text/plain', () => send('{"jsonrpc":"2.0","id":4,"method":"ping"}', { headers: { 'Content-Type': 'text/plain' } }), 415,
      deny('(invalid)', 'unsupported content type')],
    ['Accept without SSE', () => send('{"jsonrpc":"2.0","id":5,"method":"ping"}', { accept: 'application/json' }), 406,
      deny('(invalid)', 'not acceptable')],
    ['a wrong MCP-Protocol-Version', () => send('{"jsonrpc":"2.0","id":6,"method":"ping"}', { version: '1999-01-01' }), 400,
      deny('ping', 'unsupported protocol version')],
    ['an unknown session', () => send('{"jsonrpc":"2.0","id":7,"method":"ping"}', { session: 'no-such-session-0123456789' }), 404,
      deny('ping', 'unknown session')],
    ['logging/setLevel without a level', () => send('{"jsonrpc":"2.0","id":8,"method":"logging/setLevel","params":{}}'), 200,
      deny('logging/setLevel', 'invalid params')],
    ['subscriptions/listen with a bad filter', () => modern(srv, user.pat, 9, 'subscriptions/listen', { notifications: 5 }), 200,
      deny('subscriptions/listen', 'invalid params')],
  ];
  for (const [what, req, status, want] of cases) {
    const r = await req();
    assert.equal(r.status, status, `${what}: ${r.text}`);
    oneRow(srv, r, want, what);
  }
  // a 2025-03-26 batch of valid and invalid members: one row each
  const batch = [{ jsonrpc: '2.0', id: 1, method: 'ping' }, {}, 5, { jsonrpc: '2.0', method: 'notifications/progress', params: {} },
    { jsonrpc: '2.0', id: 'x', result: {} }, { jsonrpc: '2.0', id: 2, method: 'tools/list' },
    { jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: 'gh__echo', arguments: { message: 'in a batch' } } },
    { jsonrpc: '2.0', id: 1, method: 'ping' },
    // what a message alone would be refused for is refused in a batch too: no "allowed response" of it
    { jsonrpc: '2.0', id: 'gh-r-0' }, { jsonrpc: '1.0', id: 10, method: 'ping' }, { jsonrpc: '2.0', id: 11, method: 7 },
    { id: 12, result: {} }];
  const b = await post(srv, batch, { token: user.pat, session: old.session, version: '2025-03-26' });
  assert.equal(b.status, 200, b.text);
  const rows = rowsOf(srv, b.headers.get('x-request-id'));
  assert.deepEqual(rows.map((r) => `${r.method}|${r.decision}`), ['ping|allow', '(invalid)|deny', '(invalid)|deny',
    'notifications/progress|allow', '(response)|allow', 'tools/list|allow', 'tools/call|deny', 'ping|allow',
    '(invalid)|deny', 'ping|deny', '(invalid)|deny', '(invalid)|deny']);
  const answers = b.body;
  assert.equal(answers.filter((m) => m.error?.code === -32600 && m.id === null).length, 6, b.text);
});

test("the row's fields: the full name of a shortened tool and its connector; the client of an OAuth token and of a PAT", async () => {
  const s = await rawSession(srv, user.pat);
  const list = await s.call('tools/list', {});
  const shown = list.body.result.tools.map((t) => t.name).find((n) => n !== 'gh__echo');
  assert.ok(shown && shown.length <= 64 && shown !== `gh__${LONG}`, `shortened: ${shown}`);
  const r = await s.call('tools/call', { name: shown, arguments: {} });
  assert.equal(r.status, 200, r.text);
  assert.equal(JSON.parse(r.body.result.content[0].text).tool, LONG, r.text);
  oneRow(srv, r, { method: 'tools/call', connector: 'gh', tool: `gh__${LONG}`, decision: 'allow', upstream_status: 200 },
    'a shortened tool');
  const plain = await s.call('tools/call', { name: 'gh__echo', arguments: { message: 'hi' } });
  oneRow(srv, plain, { tool: 'gh__echo', connector: 'gh', credential_kind: 'pat', client_id: null, client_name: 'gw-test' },
    'a PAT');
  const suffix = srv.cluster.sql(`SELECT right(id::text, 6) FROM pats WHERE name = 'gw-test' AND user_id =
    (SELECT id FROM users WHERE email = '${user.email}')`);
  assert.equal(rowsOf(srv, plain.headers.get('x-request-id'))[0].key_suffix, suffix);

  const c = await signedIn(srv, user);
  const d = await fullFlow(srv, c, { meta: { client_name: 'Audit Client' } });
  const o = await modern(srv, d.tokens.access_token, 1, 'tools/call', { name: 'gh__echo', arguments: { message: 'oauth' } });
  assert.equal(o.status, 200, o.text);
  oneRow(srv, o, { credential_kind: 'oauth', client_id: d.client.client_id, client_name: 'Audit Client', tool: 'gh__echo',
    connector: 'gh', session_id: null, user_email: user.email }, 'an OAuth token');
});
