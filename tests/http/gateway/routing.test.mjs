// Requests the gateway routes to one upstream by what they name rather than
// by a tool: completion/complete (ref/prompt by the aggregated prompt name,
// ref/resource by the template URI clients see, wrapped or not) against the
// real @modelcontextprotocol/server-everything with the SDK client; and a
// session client's own notifications/cancelled for a call in flight (SDK
// AbortSignal and raw HTTP): the upstream is told under the gateway's id,
// the client's stream ends without a response; resources/read of a URI two
// connectors both list, plain and wrapped (gh://<connector>/<uri>), each from
// its own upstream (session and stateless); every call audited.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { startServer, startFixture, startEverything } from '../../harness/index.mjs';
import { member, addConnector, sdkClient, listAll, rawSession, modern, toolText, AuditLog, rejects } from './lib.mjs';

let srv, alpha, left, right, everything, user, sdk;
const audit = new AuditLog();

before(async () => {
  [alpha, left, right, everything, srv] = await Promise.all([
    startFixture({ name: 'alpha', tools: ['echo', 'slow'] }),
    // two upstreams listing the same resource URIs (fixture://shared/...), each with its own contents
    startFixture({ name: 'left', resourceHost: 'shared', tools: ['echo'] }),
    startFixture({ name: 'right', json: true, resourceHost: 'shared', tools: ['echo'] }),
    startEverything(),
    startServer({ name: 'gw-routing' }),
  ]);
  addConnector(srv, { name: 'alpha', url: alpha.url });
  // the same upstream twice: its templates collide, so the second connector's
  // are shown wrapped (gh://everything2/...) and must route back unwrapped
  addConnector(srv, { name: 'everything', url: everything.url });
  addConnector(srv, { name: 'everything2', url: everything.url });
  addConnector(srv, { name: 'left', url: left.url });
  addConnector(srv, { name: 'right', url: right.url });
  user = member(srv);
  sdk = await sdkClient(srv, user.pat);
  audit.expect({ method: 'initialize' });
});

after(async () => {
  await sdk?.client.close().catch(() => {});
  await Promise.all([alpha?.stop(), left?.stop(), right?.stop(), everything?.stop()]);
  if (srv) assert.equal(await srv.stop(), 0);
});


test('completion/complete with ref/prompt: the aggregated prompt name reaches server-everything, its values come back', async () => {
  const { client } = sdk;
  const { items } = await listAll(client, 'prompts');
  audit.expect({ method: 'prompts/list' });
  const names = items.map((p) => p.name);
  assert.ok(names.includes('everything__completable-prompt'), `listed: ${names.join(', ')}`);
  assert.ok(names.includes('everything2__completable-prompt'), `listed: ${names.join(', ')}`);

  const dep = await client.complete({ ref: { type: 'ref/prompt', name: 'everything__completable-prompt' },
    argument: { name: 'department', value: 'E' } });
  audit.expect({ method: 'completion/complete', connector: 'everything', upstream: true });
  assert.deepEqual(dep.completion.values, ['Engineering']);

  // the context (earlier arguments) goes along: the second argument depends on it
  const lead = await client.complete({ ref: { type: 'ref/prompt', name: 'everything2__completable-prompt' },
    argument: { name: 'name', value: '' }, context: { arguments: { department: 'Sales' } } });
  audit.expect({ method: 'completion/complete', connector: 'everything2', upstream: true });
  assert.deepEqual(lead.completion.values, ['David', 'Eve', 'Frank']);
});

test('completion/complete with ref/resource: the template URI as listed, plain and wrapped, routes to its connector', async () => {
  const { client } = sdk;
  const { items } = await listAll(client, 'resourceTemplates');
  audit.expect({ method: 'resources/templates/list' });
  const plain = items.find((t) => t.uriTemplate === 'demo://resource/dynamic/text/{resourceId}');
  const wrapped = items.find((t) => t.uriTemplate === 'gh://everything2/demo://resource/dynamic/text/{resourceId}');
  assert.ok(plain, `plain template listed: ${JSON.stringify(items.map((t) => t.uriTemplate))}`);
  assert.ok(wrapped, `wrapped template listed: ${JSON.stringify(items.map((t) => t.uriTemplate))}`);

  const a = await client.complete({ ref: { type: 'ref/resource', uri: plain.uriTemplate }, argument: { name: 'resourceId', value: '42' } });
  audit.expect({ method: 'completion/complete', connector: 'everything', upstream: true });
  assert.deepEqual(a.completion.values, ['42']);
  const b = await client.complete({ ref: { type: 'ref/resource', uri: wrapped.uriTemplate }, argument: { name: 'resourceId', value: '7' } });
  audit.expect({ method: 'completion/complete', connector: 'everything2', upstream: true });
  assert.deepEqual(b.completion.values, ['7']);
  // the upstream's own rule still applies: not a positive integer, nothing to offer
  const c = await client.complete({ ref: { type: 'ref/resource', uri: wrapped.uriTemplate }, argument: { name: 'resourceId', value: 'x' } });
  audit.expect({ method: 'completion/complete', connector: 'everything2', upstream: true });
  assert.deepEqual(c.completion.values, []);
});

test('completion/complete with an unknown ref: a JSON-RPC error, audited as a deny; the session goes on', async () => {
  const { client } = sdk;
  const prompt = await rejects(client.complete({ ref: { type: 'ref/prompt', name: 'everything__no-such-prompt' }, argument: { name: 'x', value: '' } }));
  audit.expect({ method: 'completion/complete', decision: 'deny', message: 'unknown prompt' });
  assert.ok(prompt.error instanceof McpError, `an McpError, got ${JSON.stringify(prompt.result)}`);
  assert.equal(prompt.error.code, -32602);

  const resource = await rejects(client.complete({ ref: { type: 'ref/resource', uri: 'nowhere://x/{y}' }, argument: { name: 'y', value: '' } }));
  audit.expect({ method: 'completion/complete', decision: 'deny', message: 'unknown resource' });
  assert.ok(resource.error instanceof McpError, `an McpError, got ${JSON.stringify(resource.result)}`);
  assert.equal(resource.error.code, -32002);

  const wrappedUnknown = await rejects(client.complete({ ref: { type: 'ref/resource', uri: 'gh://nobody/demo://resource/dynamic/text/{resourceId}' },
    argument: { name: 'resourceId', value: '1' } }));
  audit.expect({ method: 'completion/complete', decision: 'deny', message: 'unknown resource' });
  assert.equal(wrappedUnknown.error?.code, -32002, `an McpError -32002, got ${wrappedUnknown.error ?? JSON.stringify(wrappedUnknown.result)}`);

  // a ref of no known type, through raw HTTP (the SDK client validates its own)
  const s = await rawSession(srv, user.pat);
  audit.expect({ method: 'initialize' });
  const bad = await s.call('completion/complete', { ref: { type: 'ref/tool', name: 'alpha__echo' }, argument: { name: 'message', value: '' } });
  audit.expect({ method: 'completion/complete', decision: 'deny', message: 'invalid ref' });
  assert.equal(bad.status, 200, bad.text);
  assert.equal(bad.body.error?.code, -32602, bad.text);

  const ok = await client.callTool({ name: 'alpha__echo', arguments: { message: 'still here' } });
  audit.tool('alpha__echo', 'alpha');
  assert.equal(toolText(ok), 'alpha: still here');
});

test("the client's own notifications/cancelled (SDK AbortSignal): the upstream is told under the gateway's id and stops", async () => {
  await alpha.resetLog();
  const { client } = sdk;
  const ctl = new AbortController();
  const call = rejects(client.callTool({ name: 'alpha__slow', arguments: { ms: 60000 } }, undefined, { signal: ctl.signal, timeout: 120000 }));
  audit.tool('alpha__slow', 'alpha', 'pat', { upstream: false });
  const started = await alpha.waitFor((e) => e.event === 'slow-start', { what: 'the slow call upstream' });
  ctl.abort('changed my mind');
  const { error } = await call;
  assert.ok(error, 'the aborted call rejects on the client');
  audit.expect({ method: 'notifications/cancelled' });

  const cancel = await alpha.waitFor((e) => e.method === 'notifications/cancelled', { what: 'notifications/cancelled upstream' });
  assert.equal(cancel.params.requestId, started.requestId, "the upstream hears of its own request id (the gateway's), not the client's");
  assert.match(String(cancel.params.requestId), /^gh-/);
  await alpha.waitFor((e) => e.event === 'slow-aborted' && e.requestId === started.requestId, { what: 'the upstream stopped work' });
  const log = await alpha.log();
  assert.ok(!log.some((e) => e.event === 'slow-done'), 'the slow call did not run to its end');

  const ok = await client.callTool({ name: 'alpha__echo', arguments: { message: 'after the cancel' } });
  audit.tool('alpha__echo', 'alpha');
  assert.equal(toolText(ok), 'alpha: after the cancel');
});

test("the client's own notifications/cancelled (raw HTTP): 202, and the call's stream ends without a response", async () => {
  await alpha.resetLog();
  const s = await rawSession(srv, user.pat);
  audit.expect({ method: 'initialize' });
  const callId = 'call-to-cancel';
  const r = await s.call('tools/call', { name: 'alpha__slow', arguments: { ms: 60000 } }, { stream: true });
  audit.tool('alpha__slow', 'alpha', 'pat', { upstream: false });
  assert.equal(r.status, 200);
  const started = await alpha.waitFor((e) => e.event === 'slow-start', { what: 'the slow call upstream' });
  const rpc = (await alpha.log()).find((e) => e.method === 'tools/call' && e.id === started.requestId);
  assert.ok(rpc, 'the upstream request carries the id the tool saw');

  // the request id the client used is the one rawSession.call assigned: the
  // first call of the session is 101
  const note = await s.call(undefined, undefined, { raw: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/cancelled',
    params: { requestId: 101, reason: 'no longer needed' } }) });
  audit.expect({ method: 'notifications/cancelled' });
  assert.equal(note.status, 202, note.text);

  const seen = [];
  for (;;) {
    const m = await r.sse.next();
    if (m === null) break;
    seen.push(m);
  }
  assert.ok(!seen.some((m) => m.id !== undefined && (m.result !== undefined || m.error !== undefined)),
    `no response on the cancelled call's stream: ${JSON.stringify(seen)}`);
  const cancel = await alpha.waitFor((e) => e.method === 'notifications/cancelled', { what: 'notifications/cancelled upstream' });
  assert.equal(cancel.params.requestId, started.requestId);
  assert.equal(cancel.params.reason, 'no longer needed');
  await alpha.waitFor((e) => e.event === 'slow-aborted' && e.requestId === started.requestId, { what: 'the upstream stopped work' });

  // a cancel for an id with nothing in flight changes nothing
  const stray = await s.call(undefined, undefined, { raw: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/cancelled',
    params: { requestId: callId } }) });
  audit.expect({ method: 'notifications/cancelled' });
  assert.equal(stray.status, 202, stray.text);
  const ok = await s.call('tools/call', { name: 'alpha__echo', arguments: { message: 'next' } });
  audit.tool('alpha__echo', 'alpha');
  assert.equal(toolText(ok.body.result), 'alpha: next');
});

test('resources/read of a URI two connectors list: the plain URI reads from the first, gh://<connector>/<uri> from the other', async () => {
  const { client } = sdk;
  const { items } = await listAll(client, 'resources');
  audit.expect({ method: 'resources/list' });
  const uris = items.map((r) => r.uri);
  const SHARED = 'fixture://shared/readme';
  const WRAPPED = `gh://right/${SHARED}`;
  // connectors in name order: left keeps the plain URI, right's is wrapped
  assert.equal(uris.filter((u) => u === SHARED).length, 1, `${SHARED} listed once: ${JSON.stringify(uris)}`);
  assert.equal(uris.filter((u) => u === WRAPPED).length, 1, `${WRAPPED} listed once: ${JSON.stringify(uris)}`);
  assert.equal(items.find((r) => r.uri === SHARED).title, 'left readme', 'the plain one is left\'s');
  assert.equal(items.find((r) => r.uri === WRAPPED).title, 'right readme', 'the wrapped one is right\'s');

  await Promise.all([left.resetLog(), right.resetLog()]);
  const plain = await client.readResource({ uri: SHARED });
  audit.expect({ method: 'resources/read', connector: 'left', upstream: true });
  assert.equal(plain.contents[0].text, 'readme of left');
  const wrapped = await client.readResource({ uri: WRAPPED });
  audit.expect({ method: 'resources/read', connector: 'right', upstream: true });
  assert.equal(wrapped.contents[0].text, 'readme of right');
  // each upstream was asked for the URI it listed (unwrapped), once
  const reads = async (up) => (await up.log()).filter((e) => e.method === 'resources/read').map((e) => e.params.uri);
  assert.deepEqual(await reads(left), [SHARED]);
  assert.deepEqual(await reads(right), [SHARED]);

  // the wrapped URI routes without state: a stateless request reads it too
  const r = await modern(srv, user.pat, 'read-wrapped', 'resources/read', { uri: WRAPPED });
  audit.expect({ method: 'resources/read', connector: 'right', upstream: true });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.result?.contents?.[0]?.text, 'readme of right', r.text);
  const p = await modern(srv, user.pat, 'read-plain', 'resources/read', { uri: SHARED });
  audit.expect({ method: 'resources/read', connector: 'left', upstream: true });
  assert.equal(p.body.result?.contents?.[0]?.text, 'readme of left', p.text);

  // a wrapped URI naming no connector is not found
  const none = await rejects(client.readResource({ uri: `gh://nobody/${SHARED}` }));
  audit.expect({ method: 'resources/read', decision: 'deny', message: 'unknown resource' });
  assert.equal(none.error?.code, -32002, `an McpError -32002, got ${none.error ?? JSON.stringify(none.result)}`);
});

test('every call of this file has its audit row', async () => {
  audit.check(srv);
});
