// Requests an upstream sends the client in the middle of a forwarded call
// (sampling/createMessage, elicitation/create, roots/list, ping) reach the
// client on the call's stream under the gateway's own id, and the client's
// answer goes back to the upstream that asked: with the real
// server-everything and the MCP TypeScript SDK client, and with the fixture
// upstream's `ask` tool. A client without the capability is never asked; a
// forged, repeated or late answer is dropped; every call has its audit row
// and a relayed answer adds none beyond the one every POST writes.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { Client as McpClient } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { CreateMessageRequestSchema, ElicitRequestSchema, ListRootsRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import { startServer, startCluster, startFixture, startEverything, secret, sleep } from '../../harness/index.mjs';
import { member, addConnector, sdkClient, listAll, post, modern, toolText, serverKey, AuditLog, LEGACY, eventually } from './lib.mjs';

const CAPS = { sampling: {}, elicitation: {}, roots: { listChanged: true } };
const ROOTS = [{ uri: 'file:///srv/relay-root', name: 'relay root' }];
let cluster, srv, srv2, alpha, everything, user, other, capable;
const asked = []; // what the capable SDK client was asked: { method, id }
const audit = new AuditLog();

const sha256 = (s) => crypto.createHash('sha256').update(s).digest('hex');

before(async () => {
  cluster = await startCluster();
  const key = serverKey();
  [alpha, everything] = await Promise.all([startFixture({ name: 'alpha', tools: ['ask', 'echo'] }), startEverything()]);
  [srv, srv2] = await Promise.all([
    startServer({ cluster, name: 'gw-relay', env: { GATEHOUSE_SERVER_KEY: key } }),
    // a second process on the same database: it serves the same sessions
    startServer({ cluster, name: 'gw-relay-2', env: { GATEHOUSE_SERVER_KEY: key } }),
  ]);
  addConnector(srv, { name: 'alpha', url: alpha.url });
  addConnector(srv, { name: 'everything', url: everything.url });
  user = member(srv);
  other = member(srv, { name: 'gw-relay-other' });
  capable = await capableClient(srv);
});

after(async () => {
  await capable?.client.close().catch(() => {});
  await Promise.all([alpha?.stop(), everything?.stop()]);
  for (const s of [srv, srv2]) if (s) assert.equal(await s.stop(), 0);
  await cluster?.stop();
});

/* The SDK client with sampling, elicitation and roots handlers. */
async function capableClient(server) {
  const transport = new StreamableHTTPClientTransport(new URL(`${server.url}/mcp`), {
    requestInit: { headers: { Authorization: `Bearer ${user.pat}` } },
  });
  const client = new McpClient({ name: 'gw-relay-capable', version: '1.0.0' }, { capabilities: CAPS });
  client.setRequestHandler(CreateMessageRequestSchema, async (req, extra) => {
    asked.push({ method: req.method, id: extra.requestId });
    const said = req.params.messages.map((m) => m.content.text).join(' ');
    return { role: 'assistant', model: 'relay-test-model', content: { type: 'text', text: `sampled answer to <${said}>` } };
  });
  client.setRequestHandler(ElicitRequestSchema, async (req, extra) => {
    asked.push({ method: req.method, id: extra.requestId });
    return { action: 'accept', content: { name: 'Ada Lovelace', check: true, email: 'ada@example.com', integer: 7 } };
  });
  client.setRequestHandler(ListRootsRequestSchema, async (req, extra) => {
    asked.push({ method: req.method, id: extra.requestId });
    return { roots: ROOTS };
  });
  await client.connect(transport);
  secret(transport.sessionId);
  audit.expect({ method: 'initialize' });
  return { client, transport };
}

/* A raw 2025-11-25 session declaring caps: { session, call(msg, opts), answer(id, body) }. */
async function rawSession(server, token, caps) {
  const init = await post(server, { jsonrpc: '2.0', id: 1, method: 'initialize',
    params: { protocolVersion: LEGACY, capabilities: caps, clientInfo: { name: 'raw-relay', version: '1.0.0' } } }, { token });
  assert.equal(init.status, 200, init.text);
  const session = secret(init.headers.get('mcp-session-id'));
  audit.expect({ method: 'initialize' });
  const note = await post(server, { jsonrpc: '2.0', method: 'notifications/initialized' }, { token, session, version: LEGACY });
  assert.equal(note.status, 202);
  audit.expect({ method: 'notifications/initialized' });
  let id = 10;
  return {
    session,
    /* tools/call with the reply as a stream: { status, sse, res } */
    callStream: (name, args, o = {}) => post(server, { jsonrpc: '2.0', id: ++id, method: 'tools/call', params: { name, arguments: args } },
      { token, session, version: LEGACY, stream: true, ...o }),
    answer: (msg) => post(server, { jsonrpc: '2.0', ...msg }, { token, session, version: LEGACY }),
  };
}

/* Lists tools until name is there: server-everything registers its
 * capability-dependent tools once the gateway's upstream session is initialized. */
async function waitForTool(client, name) {
  return eventually(async () => {
    const { items } = await listAll(client, 'tools');
    audit.expect({ method: 'tools/list' });
    return items.some((t) => t.name === name);
  }, { what: `${name} listed` });
}

async function pendingGauge(server) {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  const m = /^gatehouse_mcp_relays_pending (\d+)$/m.exec(text);
  assert.ok(m, 'the gauge is on /metrics');
  return Number(m[1]);
}

test('sampling: server-everything samples through the gateway; the tool result carries the client\'s answer', async () => {
  await waitForTool(capable.client, 'everything__trigger-sampling-request');
  const r = await capable.client.callTool({ name: 'everything__trigger-sampling-request', arguments: { prompt: 'two plus two', maxTokens: 20 } });
  audit.tool('everything__trigger-sampling-request', 'everything');
  assert.match(toolText(r), /sampled answer to <.*two plus two>/);
  assert.match(toolText(r), /relay-test-model/);
  const q = asked.filter((a) => a.method === 'sampling/createMessage');
  assert.equal(q.length, 1);
  assert.match(String(q[0].id), /^gh-r-[0-9a-f]{8}-\d+$/, 'the client sees the gateway\'s own id');
  audit.expect({ method: '(response)' });
});

test('elicitation: server-everything elicits through the gateway; the accepted content is in the result', async () => {
  await waitForTool(capable.client, 'everything__trigger-elicitation-request');
  const r = await capable.client.callTool({ name: 'everything__trigger-elicitation-request', arguments: {} });
  audit.tool('everything__trigger-elicitation-request', 'everything');
  const t = toolText(r);
  assert.match(t, /User provided the requested information/);
  assert.match(t, /Name: Ada Lovelace/);
  assert.match(t, /Email: ada@example.com/);
  assert.equal(asked.filter((a) => a.method === 'elicitation/create').length, 1);
  audit.expect({ method: '(response)' });
});

test('roots/list and ping: the answer reaches the upstream on its own session, under its own id', async () => {
  await alpha.resetLog();
  const r = await capable.client.callTool({ name: 'alpha__ask', arguments: { method: 'roots/list' } });
  audit.tool('alpha__ask', 'alpha');
  audit.expect({ method: '(response)' });
  assert.equal(r.isError, undefined, toolText(r));
  assert.deepEqual(r.structuredContent.result.roots, ROOTS);
  const log = await alpha.log();
  const call = log.find((e) => e.kind === 'rpc' && e.method === 'tools/call');
  const answer = log.find((e) => e.kind === 'rpc' && e.method === undefined && e.result?.roots);
  assert.ok(answer, `the upstream received the answer: ${JSON.stringify(log)}`);
  assert.deepEqual(answer.result.roots, ROOTS);
  assert.equal(typeof answer.id, 'number', 'the upstream\'s own (SDK, numeric) id restored');
  assert.ok(!String(answer.id).startsWith('gh-r-'));
  assert.equal(answer.session, call.session, 'on the upstream session of the call');
  assert.equal(answer.headers['mcp-protocol-version'], call.headers['mcp-protocol-version']);
  assert.equal(answer.headers.authorization, undefined, 'no client credential upstream');
  const q = asked.filter((a) => a.method === 'roots/list');
  assert.equal(q.length, 1);

  const p = await capable.client.callTool({ name: 'alpha__ask', arguments: { method: 'ping' } });
  audit.tool('alpha__ask', 'alpha');
  audit.expect({ method: '(response)' });
  assert.deepEqual(p.structuredContent, { result: {} }, toolText(p));
});

test('the upstream learns what the client declared: without sampling, server-everything has no sampling tool', async () => {
  const plain = await sdkClient(srv, user.pat);
  audit.expect({ method: 'initialize' });
  try {
    // the upstream session of this client is made at its first list
    const { items } = await listAll(plain.client, 'tools');
    audit.expect({ method: 'tools/list' });
    await sleep(500); // server-everything registers its conditional tools just after initialized
    const again = (await listAll(plain.client, 'tools')).items.map((t) => t.name);
    audit.expect({ method: 'tools/list' });
    for (const names of [items.map((t) => t.name), again]) {
      assert.ok(names.includes('everything__get-sum'), 'server-everything is listed');
      assert.ok(!names.includes('everything__trigger-sampling-request'), 'no sampling tool without the capability');
      assert.ok(!names.includes('everything__trigger-elicitation-request'), 'no elicitation tool without the capability');
    }
  } finally {
    await plain.client.close();
  }
});

test('a client without the capability is never asked: the upstream gets an error at once and handles it', async () => {
  const plain = await sdkClient(srv, user.pat, { name: 'gw-relay-plain' });
  audit.expect({ method: 'initialize' });
  let sawRequest = false;
  plain.client.fallbackRequestHandler = async () => { sawRequest = true; return {}; };
  try {
    for (const [method, params, cap] of [
      ['sampling/createMessage', { messages: [{ role: 'user', content: { type: 'text', text: 'hi' } }], maxTokens: 5 }, 'sampling'],
      ['elicitation/create', { message: 'name?', requestedSchema: { type: 'object', properties: { n: { type: 'string' } } } }, 'elicitation'],
      ['roots/list', {}, 'roots'],
    ]) {
      await alpha.resetLog();
      const started = Date.now();
      const r = await plain.client.callTool({ name: 'alpha__ask', arguments: { method, params } });
      audit.tool('alpha__ask', 'alpha');
      assert.equal(r.isError, true, `${method}: the upstream reports the refusal (${toolText(r)})`);
      assert.equal(r.structuredContent.error.code, -32601, method);
      assert.match(r.structuredContent.error.message, new RegExp(`did not declare the ${cap} capability`), method);
      assert.ok(Date.now() - started < 10000, 'refused at once, not after a timeout');
      const refusal = (await alpha.log()).find((e) => e.kind === 'rpc' && e.method === undefined && e.error);
      assert.ok(refusal, 'the upstream received a JSON-RPC error');
      assert.equal(refusal.error.code, -32601);
    }
    assert.equal(sawRequest, false, 'nothing reached the client');
  } finally {
    await plain.client.close();
  }
});

test('a forged answer from another session is dropped (202, nothing forwarded); the real one goes through once', async () => {
  const a = await rawSession(srv, user.pat, { sampling: {} });
  const b = await rawSession(srv, other.pat, { sampling: {} });
  const mine = await rawSession(srv, user.pat, {}); // the same user, another session
  await alpha.resetLog();
  const call = await a.callStream('alpha__ask', { method: 'sampling/createMessage',
    params: { messages: [{ role: 'user', content: { type: 'text', text: 'forge me' } }], maxTokens: 5 } });
  assert.equal(call.status, 200);
  assert.match(call.headers.get('content-type'), /text\/event-stream/);
  const [req] = await call.sse.until((m) => m.method === 'sampling/createMessage', 'the relayed request');
  assert.match(req.id, /^gh-r-/);
  assert.equal(req.params.messages[0].content.text, 'forge me');
  const upReq = await alpha.waitFor((e) => e.kind === 'event' && e.event === 'ask');
  assert.ok(upReq);

  const forged = { id: req.id, result: { role: 'assistant', model: 'forger', content: { type: 'text', text: 'FORGED' } } };
  for (const s of [b, mine]) {
    const r = await s.answer(forged);
    assert.equal(r.status, 202, r.text);
    audit.expect({ method: '(response)' });
  }
  const unknown = await a.answer({ id: 'gh-r-00000000-999999', result: {} });
  assert.equal(unknown.status, 202);
  audit.expect({ method: '(response)' });
  await sleep(300);
  const log = await alpha.log();
  assert.deepEqual(log.filter((e) => e.kind === 'rpc' && e.method === undefined), [], 'nothing forwarded to the upstream');
  assert.ok(!log.some((e) => e.event === 'ask-answered' || e.event === 'ask-failed'), 'the call is still pending');

  const real = { id: req.id, result: { role: 'assistant', model: 'real-model', content: { type: 'text', text: 'the real answer' } } };
  const ok = await a.answer(real);
  assert.equal(ok.status, 202);
  audit.expect({ method: '(response)' });
  const [final] = await call.sse.until((m) => m.id !== undefined && (m.result || m.error), 'the call\'s result');
  assert.equal(final.result.isError, undefined, JSON.stringify(final));
  assert.equal(final.result.structuredContent.result.content.text, 'the real answer');
  audit.tool('alpha__ask', 'alpha');

  // answered already: dropped too
  const again = await a.answer({ ...real, result: { ...real.result, model: 'again' } });
  assert.equal(again.status, 202);
  audit.expect({ method: '(response)' });
  await sleep(300);
  const answers = (await alpha.log()).filter((e) => e.kind === 'rpc' && e.method === undefined);
  assert.equal(answers.length, 1, JSON.stringify(answers));
  assert.equal(answers[0].result.model, 'real-model');

  // one row per POST: the relayed answer is a "(response)" row like any other, the call one row
  const rows = srv.cluster.sql(`SELECT method || ':' || count(*) FROM audit_events WHERE session_id = '${sha256(a.session)}' GROUP BY method ORDER BY method`);
  assert.deepEqual(rows.split('\n').filter(Boolean), ['(response):3', 'initialize:1', 'notifications/initialized:1', 'tools/call:1']);
});

test('an answer after the call ended (the client left) is dropped', async () => {
  const a = await rawSession(srv, user.pat, { roots: {} });
  await alpha.resetLog();
  const ac = new AbortController();
  const call = await a.callStream('alpha__ask', { method: 'roots/list' }, { signal: ac.signal });
  const [req] = await call.sse.until((m) => m.method === 'roots/list', 'the relayed request');
  ac.abort();
  audit.tool('alpha__ask', 'alpha', 'pat', { upstream: false });
  // the gateway tells the upstream the call is cancelled
  await alpha.waitFor((e) => e.kind === 'rpc' && e.method === 'notifications/cancelled', { what: 'notifications/cancelled' });
  const late = await a.answer({ id: req.id, result: { roots: ROOTS } });
  assert.equal(late.status, 202);
  audit.expect({ method: '(response)' });
  await sleep(300);
  const answers = (await alpha.log()).filter((e) => e.kind === 'rpc' && e.method === undefined);
  assert.deepEqual(answers, [], 'the late answer was not forwarded');
});

test('pending relays are bounded per session: past 16 the upstream is refused at once', async () => {
  const a = await rawSession(srv, user.pat, { roots: {} });
  const calls = [];
  for (let i = 0; i < 17; i++) {
    const c = await a.callStream('alpha__ask', { method: 'roots/list' });
    assert.equal(c.status, 200);
    // the first message of each call: the relayed request, or (the 17th) the refusal's result
    const [m] = await c.sse.until((x) => x.method === 'roots/list' || x.id !== undefined, `call ${i}'s first message`);
    calls.push({ c, m });
    audit.tool('alpha__ask', 'alpha');
  }
  const relayed = calls.filter((x) => x.m.method === 'roots/list');
  assert.equal(relayed.length, 16);
  assert.equal(new Set(relayed.map((x) => x.m.id)).size, 16, 'every relay has its own id');
  assert.equal(await pendingGauge(srv), 16, 'gatehouse_mcp_relays_pending');
  const refused = calls[16].m;
  assert.equal(refused.result.isError, true);
  assert.match(refused.result.structuredContent.error.message, /Too many requests to the client are pending/);
  // the others still complete once answered
  for (const { c, m } of relayed) {
    assert.equal((await a.answer({ id: m.id, result: { roots: ROOTS } })).status, 202);
    audit.expect({ method: '(response)' });
    const [final] = await c.sse.until((x) => x.id !== undefined && (x.result || x.error), 'the result');
    assert.deepEqual(final.result.structuredContent.result.roots, ROOTS);
  }  assert.equal(await pendingGauge(srv), 0, 'nothing left pending');
});

test('invalid answers: a bad error object is passed on as an internal error; bad shapes are 400', async () => {
  const a = await rawSession(srv, user.pat, { elicitation: {} });
  await alpha.resetLog();
  const call = await a.callStream('alpha__ask', { method: 'elicitation/create',
    params: { message: 'name?', requestedSchema: { type: 'object', properties: { n: { type: 'string' } } } } });
  const [req] = await call.sse.until((m) => m.method === 'elicitation/create', 'the relayed request');
  const bad = await post(srv, { jsonrpc: '2.0', id: req.id }, { token: user.pat, session: a.session, version: LEGACY });
  assert.equal(bad.status, 400, 'neither result nor error');
  assert.equal(bad.body.error.code, -32600);
  audit.expect({ method: '(invalid)', decision: 'deny', message: 'invalid request' });
  const r = await a.answer({ id: req.id, error: { code: 'x', message: 42 } });
  assert.equal(r.status, 202);
  audit.expect({ method: '(response)' });
  const [final] = await call.sse.until((m) => m.id !== undefined && (m.result || m.error), 'the call\'s result');
  audit.tool('alpha__ask', 'alpha');
  assert.equal(final.result.isError, true);
  assert.equal(final.result.structuredContent.error.code, -32603);
  const answers = (await alpha.log()).filter((e) => e.kind === 'rpc' && e.method === undefined);
  assert.equal(answers.length, 1);
  assert.deepEqual(answers[0].error, { code: -32603, message: 'The client answered with an invalid error.' });
});

test('the declared capabilities belong to the session: a second process serving it relays too', async () => {
  const a = await rawSession(srv, user.pat, { roots: {} });
  await alpha.resetLog();
  const post2 = (msg, o = {}) => post(srv2, msg, { token: user.pat, session: a.session, version: LEGACY, ...o });
  const call = await post2({ jsonrpc: '2.0', id: 77, method: 'tools/call', params: { name: 'alpha__ask', arguments: { method: 'roots/list' } } }, { stream: true });
  assert.equal(call.status, 200);
  const [req] = await call.sse.until((m) => m.method === 'roots/list', 'the relayed request');
  const ans = await post2({ jsonrpc: '2.0', id: req.id, result: { roots: ROOTS } });
  assert.equal(ans.status, 202);
  audit.expect({ method: '(response)' });
  const [final] = await call.sse.until((m) => m.id === 77, 'the call\'s result');
  audit.tool('alpha__ask', 'alpha');
  assert.deepEqual(final.result.structuredContent.result.roots, ROOTS);
});

test('a stateless (2026-07-28) caller is asked in an input-required result; undeclared or ping: -32601 as before', async () => {
  await alpha.resetLog();
  const meta = { 'io.modelcontextprotocol/clientCapabilities': { roots: {} } };
  const r = await modern(srv, user.pat, 5, 'tools/call', { name: 'alpha__ask', arguments: { method: 'roots/list' } }, { meta });
  audit.tool('alpha__ask', 'alpha');
  assert.equal(r.status, 200, r.text);
  assert.ok(!r.messages.some((m) => m.method === 'roots/list'), 'no request on the stream');
  assert.equal(r.body.result.resultType, 'input_required');
  const [[key, q]] = Object.entries(r.body.result.inputRequests);
  assert.equal(q.method, 'roots/list');
  const r2 = await modern(srv, user.pat, 6, 'tools/call', { name: 'alpha__ask', arguments: { method: 'roots/list' },
    inputResponses: { [key]: { roots: ROOTS } }, requestState: r.body.result.requestState }, { meta });
  assert.equal(r2.status, 200, r2.text);
  assert.deepEqual(r2.body.result.structuredContent.result.roots, ROOTS);
  for (const [id, args, caps] of [[7, { method: 'roots/list' }, {}], [8, { method: 'ping' }, { roots: {} }]]) {
    const n = await modern(srv, user.pat, id, 'tools/call', { name: 'alpha__ask', arguments: args },
      { meta: { 'io.modelcontextprotocol/clientCapabilities': caps } });
    audit.tool('alpha__ask', 'alpha');
    assert.equal(n.status, 200, n.text);
    assert.equal(n.body.result.isError, true);
    assert.equal(n.body.result.structuredContent.error.code, -32601);
  }
});

test('every call has its audit row', async () => {
  await sleep(200);
  audit.check(srv);
});
