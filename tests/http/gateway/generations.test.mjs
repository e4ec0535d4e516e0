// Both MCP generations on both sides (issue 19, items 4 and 5): sampling and
// elicitation round trips for each pairing of client generation (a
// 2025-11-25 session, a stateless 2026-07-28 caller) and upstream generation
// (session-based only, 2026-07-28 only, both), each with its audit row.
//   - an upstream that speaks both serves a session client in the session
//     revision (its requests relayed as such) and a stateless one statelessly;
//   - a 2026-07-28-only upstream's input-required result reaches a session
//     client as ordinary sampling/elicitation requests, and the call goes
//     upstream again with the answers (one call, one row);
//   - a stateless client gets a 2026-07-28 upstream's input-required
//     results as they are and retries itself; a session-only upstream's
//     requests reach it as input-required results too: the call is held
//     here and the retry (its sealed requestState) continues it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { CreateMessageRequestSchema, ElicitRequestSchema, ListRootsRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import { startServer, startInterop, startFixture, secret, createUser, gatehouse } from '../../harness/index.mjs';
import { member, addConnector, modern, toolText, AuditLog, auditRows, eventually } from './lib.mjs';

let srv, sess, mod, both, user, client;
const audit = new AuditLog();
const asked = [];

before(async () => {
  [sess, mod, both, srv] = await Promise.all([
    startInterop({ name: 'sess', only: 'session' }),
    startInterop({ name: 'mod', only: 'modern' }),
    startInterop({ name: 'both' }),
    startServer({ name: 'gw-generations' }),
  ]);
  for (const [name, up] of [['sess', sess], ['mod', mod], ['both', both]]) addConnector(srv, { name, url: up.url });
  user = member(srv);
  client = new Client({ name: 'gen-client', version: '1' }, { capabilities: { sampling: {}, elicitation: { form: {} }, roots: {} } });
  client.setRequestHandler(CreateMessageRequestSchema, async (req) => {
    asked.push(req.params);
    return { role: 'assistant', model: 'test-model', stopReason: 'endTurn',
      content: { type: 'text', text: `sampled: ${req.params.messages[0].content.text}` } };
  });
  client.setRequestHandler(ElicitRequestSchema, async (req) => {
    asked.push(req.params);
    const p = req.params.requestedSchema.properties;
    const content = {};
    for (const [k, v] of Object.entries(p)) content[k] = v.default ?? (v.type === 'boolean' ? true : v.enum?.[0] ?? `my ${k}`);
    return { action: 'accept', content };
  });
  client.setRequestHandler(ListRootsRequestSchema, async () => ({ roots: [{ uri: 'file:///work', name: 'work' }] }));
  const transport = new StreamableHTTPClientTransport(new URL(`${srv.url}/mcp`), {
    requestInit: { headers: { Authorization: `Bearer ${user.pat}` } } });
  await client.connect(transport);
  secret(transport.sessionId);
  audit.expect({ method: 'initialize' });
});

after(async () => {
  await client?.close().catch(() => {});
  await Promise.all([sess?.stop(), mod?.stop(), both?.stop()]);
  if (srv) assert.equal(await srv.stop(), 0);
});

async function sessionCall(connector, tool, args) {
  const r = await client.callTool({ name: `${connector}__${tool}`, arguments: args });
  audit.tool(`${connector}__${tool}`, connector);
  return r;
}

for (const connector of ['sess', 'mod', 'both']) {
  test(`session client, ${connector} upstream: sampling and elicitation round trips`, async () => {
    const n = asked.length;
    const s = await sessionCall(connector, 'test_sampling', { prompt: `hello from ${connector}` });
    assert.equal(toolText(s), `LLM response: sampled: hello from ${connector}`);
    const e = await sessionCall(connector, 'test_elicitation', { message: 'who are you?' });
    assert.equal(toolText(e), 'User response: action=accept, content={"username":"my username","email":"my email"}');
    const d = await sessionCall(connector, 'test_elicitation_sep1034_defaults', {});
    assert.match(toolText(d), /^Elicitation completed: action=accept, content=\{"name":"John Doe","age":30,"score":95.5,"status":"active","verified":true\}$/);
    assert.equal(asked.length, n + 3, 'the client was asked three times');
    // three rounds of one call: elicitation, then another, then done
    const m = await sessionCall(connector, 'test_input_required_result_multi_round', {});
    assert.equal(toolText(m), 'my name likes my color');
    const all = await sessionCall(connector, 'test_input_required_result_multiple_inputs', {});
    assert.equal(toolText(all), 'all three: my name, sampled: Generate a greeting, 1 root(s)');
  });
}

test('the upstream generation each session call used: session revision where offered, the bridge for a 2026-07-28-only one', async () => {
  const gens = async (up) => new Set((await up.log()).filter((e) => e.method === 'tools/call').map((e) => e.gen));
  assert.deepEqual([...await gens(sess)], ['session']);
  assert.deepEqual([...await gens(both)], ['session'], 'an upstream speaking both serves a session client in its session revision');
  assert.deepEqual([...await gens(mod)], ['modern']);
  // the bridge: the first try asks, the retry carries the answers (and the upstream's state)
  const calls = (await mod.log()).filter((e) => e.method === 'tools/call' && e.params.name === 'test_input_required_result_multi_round');
  assert.equal(calls.length, 3);
  assert.equal(calls[0].params.inputResponses, undefined);
  assert.deepEqual(Object.keys(calls[1].params.inputResponses), ['step1']);
  assert.ok(calls[1].params.requestState, 'requestState passed back');
  assert.deepEqual(Object.keys(calls[2].params.inputResponses), ['step2']);
  assert.notEqual(calls[2].params.requestState, calls[1].params.requestState, 'the newer state');
  // the upstream heard which of them the gateway relays
  assert.deepEqual(calls[0].params._meta['io.modelcontextprotocol/clientCapabilities'], { sampling: {}, elicitation: { form: {} }, roots: {} });
});

for (const connector of ['mod', 'both']) {
  test(`stateless client, ${connector} upstream: input-required results pass as they are, the retry completes`, async () => {
    const name = `${connector}__test_input_required_result_elicitation`;
    const meta = { 'io.modelcontextprotocol/clientCapabilities': { elicitation: {}, sampling: {} } };
    const r1 = await modern(srv, user.pat, `${connector}-1`, 'tools/call', { name, arguments: {} }, { meta });
    audit.tool(name, connector);
    assert.equal(r1.status, 200, r1.text);
    assert.equal(r1.body.result.resultType, 'input_required');
    assert.equal(r1.body.result.inputRequests.user_name.method, 'elicitation/create');
    const r2 = await modern(srv, user.pat, `${connector}-2`, 'tools/call',
      { name, arguments: {}, inputResponses: { user_name: { action: 'accept', content: { name: 'Ada' } } }, requestState: r1.body.result.requestState }, { meta });
    audit.tool(name, connector);
    assert.equal(r2.status, 200, r2.text);
    assert.equal(r2.body.result.resultType, 'complete');
    assert.equal(toolText(r2.body.result), 'Hello, Ada!');
    const s = await modern(srv, user.pat, `${connector}-3`, 'tools/call', { name: `${connector}__test_sampling`, arguments: { prompt: 'p' } }, { meta });
    audit.tool(`${connector}__test_sampling`, connector);
    assert.equal(s.body.result.resultType, 'input_required');
    assert.equal(s.body.result.inputRequests.llm.method, 'sampling/createMessage');
    const modernCalls = (await (connector === 'mod' ? mod : both).log()).filter((e) => e.method === 'tools/call' && e.gen === 'modern');
    assert.ok(modernCalls.length >= 3, 'served in the stateless revision');
  });
}

/* A stateless call to the session-only upstream: each of its requests
 * comes back as an input-required round; answer() makes the answer of one
 * (null: leave it unanswered).  Returns the final response and the rounds. */
async function heldCall(name, args, answer, { meta = META, token = user.pat } = {}) {
  const rounds = [];
  let r = await modern(srv, token, `${name}-0`, 'tools/call', { name, arguments: args }, { meta });
  while (r.status === 200 && r.body.result?.resultType === 'input_required') {
    const { inputRequests, requestState } = r.body.result;
    rounds.push(r.body.result);
    assert.ok(rounds.length <= 8, 'bounded rounds');
    assert.match(requestState, /^gh-held\./);
    const inputResponses = {};
    for (const [k, q] of Object.entries(inputRequests)) inputResponses[k] = answer(q);
    r = await modern(srv, token, `${name}-${rounds.length}`, 'tools/call', { name, arguments: args, inputResponses, requestState }, { meta });
  }
  return { r, rounds };
}
const META = { 'io.modelcontextprotocol/clientCapabilities': { sampling: {}, elicitation: {}, roots: {} } };
const answerAll = (q) => {
  if (q.method === 'sampling/createMessage')
    return { role: 'assistant', model: 'm', stopReason: 'endTurn', content: { type: 'text', text: `sampled: ${q.params.messages[0].content.text}` } };
  if (q.method === 'roots/list') return { roots: [{ uri: 'file:///w', name: 'w' }] };
  const content = {};
  for (const [k, v] of Object.entries(q.params.requestedSchema.properties)) content[k] = v.type === 'boolean' ? true : `my ${k}`;
  return { action: 'accept', content };
};
/* The allowed rows of one tool's stateless calls: one per call, its outcome completed. */
const allowRows = (tool) => auditRows(srv, `agent_slug = 'default' AND tool = '${tool}' AND decision = 'allow' AND session_id IS NULL`);

test('stateless client, session-only upstream: sampling and elicitation round trips, one call and one row each', async () => {
  const s = await heldCall('sess__test_sampling', { prompt: 'hi from stateless' }, answerAll);
  audit.tool('sess__test_sampling', 'sess');
  assert.equal(s.r.status, 200, s.r.text);
  assert.equal(s.rounds.length, 1);
  const [q] = Object.values(s.rounds[0].inputRequests);
  assert.equal(q.method, 'sampling/createMessage');
  assert.equal(q.params.messages[0].content.text, 'hi from stateless');
  assert.equal(s.r.body.result.resultType, 'complete');
  assert.equal(toolText(s.r.body.result), 'LLM response: sampled: hi from stateless');

  const e = await heldCall('sess__test_elicitation', { message: 'who?' }, answerAll);
  audit.tool('sess__test_elicitation', 'sess');
  assert.equal(Object.values(e.rounds[0].inputRequests)[0].method, 'elicitation/create');
  assert.equal(toolText(e.r.body.result), 'User response: action=accept, content={"username":"my username","email":"my email"}');

  // the upstream asks three times in one call (elicitation, sampling, roots): three rounds
  const m = await heldCall('sess__test_input_required_result_multiple_inputs', {}, answerAll);
  audit.tool('sess__test_input_required_result_multiple_inputs', 'sess');
  assert.deepEqual(m.rounds.map((x) => Object.values(x.inputRequests)[0].method), ['elicitation/create', 'sampling/createMessage', 'roots/list']);
  assert.equal(toolText(m.r.body.result), 'all three: my name, sampled: Generate a greeting, 1 root(s)');
  // each state differs, each round the upstream's own session request
  assert.equal(new Set(m.rounds.map((x) => x.requestState)).size, 3);
  const ups = (await sess.log()).filter((x) => x.kind === 'rpc' && x.result && x.gen === 'session');
  assert.ok(ups.some((x) => x.result.content?.text === 'sampled: hi from stateless'), 'the answer went upstream as the response to its request');

  for (const tool of ['sess__test_sampling', 'sess__test_elicitation', 'sess__test_input_required_result_multiple_inputs']) {
    const rows = allowRows(tool);
    assert.equal(rows.length, 1, `one row for ${tool}: ${JSON.stringify(rows.map((r) => r.raw))}`);
    assert.ok(rows[0].raw.outcome_at, 'its outcome completed');
    assert.equal(rows[0].raw.upstream_error, null);
  }
});

test('stateless client, session-only upstream: an undeclared capability is refused to the upstream, and the tool says so', async () => {
  const r = await modern(srv, user.pat, 'sess-nocap', 'tools/call', { name: 'sess__test_sampling', arguments: { prompt: 'p' } },
    { meta: { 'io.modelcontextprotocol/clientCapabilities': { elicitation: {} } } });
  audit.tool('sess__test_sampling', 'sess');
  assert.equal(r.status, 200, r.text);
  const text = r.body.error ? r.body.error.message : toolText(r.body.result);
  assert.match(text, /did not declare the sampling capability/);
  const refused = (await sess.log()).find((e) => e.kind === 'rpc' && e.error && /did not declare the sampling/.test(e.error.message));
  assert.ok(refused, 'the upstream got the refusal (-32601)');
  assert.equal(refused.error.code, -32601);
});

test('a held call\'s requestState: forged, tampered, another tool or member, reused are refused and change nothing', async () => {
  const name = 'sess__test_elicitation';
  const r1 = await modern(srv, user.pat, 'bad-0', 'tools/call', { name, arguments: { message: 'x' } }, { meta: META });
  audit.tool(name, 'sess');
  assert.equal(r1.body.result.resultType, 'input_required', r1.text);
  const { requestState, inputRequests } = r1.body.result;
  const inputResponses = Object.fromEntries(Object.entries(inputRequests).map(([k, q]) => [k, answerAll(q)]));
  const other = member(srv, { name: 'other' });
  const flip = requestState.slice(0, -4) + (requestState.endsWith('AAAA') ? 'BBBB' : 'AAAA');
  const bad = [
    ['forged', user.pat, name, 'gh-held.not-a-sealed-state', /not one this gateway issued/],
    ['tampered', user.pat, name, flip, /not one this gateway issued/],
    ['another tool', user.pat, 'sess__test_sampling', requestState, /another member, agent or tool/],
    ['another member', other.pat, name, requestState, /another member, agent or tool/],
  ];
  for (const [what, token, tool, state, re] of bad) {
    const r = await modern(srv, token, `bad-${what}`, 'tools/call', { name: tool, arguments: { message: 'x' }, inputResponses, requestState: state }, { meta: META });
    assert.equal(r.status, 400, `${what}: ${r.text}`);
    assert.equal(r.body.error.code, -32602, what);
    assert.match(r.body.error.message, re, what);
    audit.expect({ method: 'tools/call', tool, connector: 'sess', decision: 'deny', message: r.body.error.message });
  }
  // the held call is untouched: its own retry completes it
  const r2 = await modern(srv, user.pat, 'bad-ok', 'tools/call', { name, arguments: { message: 'x' }, inputResponses, requestState }, { meta: META });
  assert.equal(r2.status, 200, r2.text);
  assert.equal(r2.body.result.resultType, 'complete');
  assert.match(toolText(r2.body.result), /^User response: action=accept/);
  // single use
  const r3 = await modern(srv, user.pat, 'bad-again', 'tools/call', { name, arguments: { message: 'x' }, inputResponses, requestState }, { meta: META });
  assert.equal(r3.status, 400, r3.text);
  assert.match(r3.body.error.message, /used already|is over/);
  audit.expect({ method: 'tools/call', tool: name, connector: 'sess', decision: 'deny', message: r3.body.error.message });
});

test('a retry that reaches another instance is told to come back to the one holding the call', async () => {
  const twin = await startServer({ cluster: srv.cluster, name: 'gw-generations-twin' });
  try {
    const name = 'sess__test_elicitation';
    const r1 = await modern(srv, user.pat, 'twin-0', 'tools/call', { name, arguments: { message: 'x' } }, { meta: META });
    audit.tool(name, 'sess');
    const { requestState, inputRequests } = r1.body.result;
    const inputResponses = Object.fromEntries(Object.entries(inputRequests).map(([k, q]) => [k, answerAll(q)]));
    const there = await modern(twin, user.pat, 'twin-1', 'tools/call', { name, arguments: { message: 'x' }, inputResponses, requestState }, { meta: META });
    assert.equal(there.status, 400, there.text);
    assert.equal(there.body.error.code, -32602);
    assert.match(there.body.error.message, /held by another Gatehouse instance.*must reach the instance that answered/);
    audit.expect({ method: 'tools/call', tool: name, connector: 'sess', decision: 'deny', message: there.body.error.message });
    const here = await modern(srv, user.pat, 'twin-2', 'tools/call', { name, arguments: { message: 'x' }, inputResponses, requestState }, { meta: META });
    assert.match(toolText(here.body.result), /^User response: action=accept/, here.text);
  } finally {
    assert.equal(await twin.stop(), 0);
  }
});

test('held calls are capped per member (8): the next call is refused, the held ones still complete', async () => {
  const m = member(srv, { name: 'cap' });
  const name = 'sess__test_elicitation';
  const held = await Promise.all(Array.from({ length: 8 }, (_, i) =>
    modern(srv, m.pat, `cap-${i}`, 'tools/call', { name, arguments: { message: `m${i}` } }, { meta: META })));
  for (const r of held) {
    assert.equal(r.body.result?.resultType, 'input_required', r.text);
    audit.tool(name, 'sess');
  }
  const over = await modern(srv, m.pat, 'cap-9', 'tools/call', { name, arguments: { message: 'm9' } }, { meta: META });
  audit.expect({ method: 'tools/call', tool: name, connector: 'sess', kind: 'pat' });
  assert.match(over.body.error?.message ?? '', /Too many calls of this member wait for their retry/, over.text);
  // another member is not held back by this one
  const s = await heldCall('sess__test_sampling', { prompt: 'still me' }, answerAll);
  audit.tool('sess__test_sampling', 'sess');
  assert.equal(toolText(s.r.body.result), 'LLM response: sampled: still me');
  const done = await Promise.all(held.map((r, i) => {
    const { inputRequests, requestState } = r.body.result;
    const inputResponses = Object.fromEntries(Object.entries(inputRequests).map(([k, q]) => [k, answerAll(q)]));
    return modern(srv, m.pat, `cap-r${i}`, 'tools/call', { name, arguments: { message: `m${i}` }, inputResponses, requestState }, { meta: META });
  }));
  for (const r of done) assert.match(toolText(r.body.result), /^User response: action=accept/, r.text);
});

test('a held call whose retry never comes ends with the upstream call timeout; its state has expired', async () => {
  const quick = await startServer({ name: 'gw-held-timeout', env: { GATEHOUSE_UPSTREAM_CALL_TIMEOUT_MS: '1500' } });
  try {
    addConnector(quick, { name: 'sess', url: sess.url });
    const u = member(quick);
    const name = 'sess__test_elicitation';
    const r1 = await modern(quick, u.pat, 'late-0', 'tools/call', { name, arguments: { message: 'late' } }, { meta: META });
    assert.equal(r1.body.result.resultType, 'input_required', r1.text);
    const rows = () => auditRows(quick, `tool = '${name}' AND decision = 'allow'`);
    const done = await eventually(() => rows().find((r) => r.raw.outcome_at), { what: 'the held call\'s outcome' });
    assert.match(done.raw.upstream_error, /did not retry the held call in time|timed out/);
    assert.equal(rows().length, 1);
    const r2 = await modern(quick, u.pat, 'late-1', 'tools/call', { name, arguments: { message: 'late' }, inputResponses: {}, requestState: r1.body.result.requestState }, { meta: META });
    assert.equal(r2.status, 400, r2.text);
    assert.match(r2.body.error.message, /expired/);
  } finally {
    assert.equal(await quick.stop(), 0);
  }
});

test('a session client that did not declare elicitation: a 2026-07-28 upstream is not asked for it, a bridged request is refused', async () => {
  const plain = new Client({ name: 'plain', version: '1' }, { capabilities: {} });
  const transport = new StreamableHTTPClientTransport(new URL(`${srv.url}/mcp`), {
    requestInit: { headers: { Authorization: `Bearer ${user.pat}` } } });
  await plain.connect(transport);
  secret(transport.sessionId);
  audit.expect({ method: 'initialize' });
  try {
    const caps = await plain.callTool({ name: 'mod__test_input_required_result_capabilities', arguments: {} });
    audit.tool('mod__test_input_required_result_capabilities', 'mod');
    assert.equal(toolText(caps), 'nothing to ask: no client capability declared');
    const r = await plain.callTool({ name: 'mod__test_elicitation', arguments: { message: 'x' } });
    audit.tool('mod__test_elicitation', 'mod', 'pat', { upstream: true });
    assert.fail(`expected an error, got ${JSON.stringify(r)}`);
  } catch (e) {
    assert.match(String(e.message), /did not declare the elicitation capability/);
  } finally {
    await plain.close().catch(() => {});
  }
});

test('initialize announces resources.subscribe only where an upstream delivers it to a session', async () => {
  const caps = {};
  for (const [slug, up] of [['modonly', mod], ['bothagent', both]]) {
    assert.equal(gatehouse(srv, ['agent', 'add', '--slug', slug, '--name', slug]).code, 0);
    addConnector(srv, { agent: slug, name: 'up', url: up.url });
    const u = createUser(srv, { agents: [slug] });
    const pat = secret(gatehouse(srv, ['pat', 'create', '--email', u.email, '--agent', slug, '--name', 'caps']).stdout.trim());
    const c = new Client({ name: 'caps', version: '1' }, { capabilities: {} });
    const t = new StreamableHTTPClientTransport(new URL(`${srv.url}/agents/${slug}/mcp`), {
      requestInit: { headers: { Authorization: `Bearer ${pat}` } } });
    await c.connect(t);
    secret(t.sessionId);
    caps[slug] = c.getServerCapabilities();
    if (slug === 'bothagent') {
      // and it is delivered: subscribe goes to the upstream's session
      assert.deepEqual(await c.subscribeResource({ uri: 'test://watched-resource' }), {});
      const sub = (await both.log()).find((e) => e.method === 'resources/subscribe');
      assert.equal(sub?.gen, 'session');
    }
    await c.close();
  }
  assert.equal(caps.modonly.resources.subscribe, undefined, 'a 2026-07-28-only upstream: no subscribe for a session');
  assert.equal(caps.bothagent.resources.subscribe, true);
  assert.deepEqual(caps.bothagent.completions, {});
});

test('completions are announced only while some upstream may serve them, to either generation', async () => {
  const bare = await startFixture({ name: 'bare', modern: true, tools: ['echo'] });
  try {
    assert.equal(gatehouse(srv, ['agent', 'add', '--slug', 'bare', '--name', 'bare']).code, 0);
    addConnector(srv, { agent: 'bare', name: 'bare', url: bare.url });
    const u = createUser(srv, { agents: ['bare'] });
    const pat = secret(gatehouse(srv, ['pat', 'create', '--email', u.email, '--agent', 'bare', '--name', 'caps']).stdout.trim());
    const connect = async () => {
      const c = new Client({ name: 'caps', version: '1' }, { capabilities: {} });
      const t = new StreamableHTTPClientTransport(new URL(`${srv.url}/agents/bare/mcp`), {
        requestInit: { headers: { Authorization: `Bearer ${pat}` } } });
      await c.connect(t);
      secret(t.sessionId);
      return c;
    };
    const first = await connect();
    // not heard from yet: it may serve them
    assert.deepEqual(first.getServerCapabilities().completions, {});
    assert.deepEqual((await first.listTools()).tools.map((t) => t.name), ['bare__echo']);
    await first.close();
    const second = await connect();
    assert.equal(second.getServerCapabilities().completions, undefined, 'its discover said no completions');
    assert.equal(second.getServerCapabilities().resources.subscribe, undefined);
    await second.close();
    const d = await modern(srv, pat, 'd-1', 'server/discover', {}, { path: '/agents/bare/mcp' });
    assert.equal(d.status, 200, d.text);
    assert.equal(d.body.result.capabilities.completions, undefined);
    assert.ok(d.body.result.capabilities.tools);
  } finally {
    await bare.stop();
  }
});

test('every call above has its audit row', () => {
  audit.check(srv, "agent_slug = 'default' AND method IN ('initialize', 'tools/call')");
});
