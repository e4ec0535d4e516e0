// An upstream that speaks only the stateless 2026-07-28 revision (the
// fixture's modern mode) behind the gateway, next to a session-based one:
// the gateway probes it with server/discover, sends _meta and the mirrored
// headers on every request, relays its streamed progress, cancels by closing
// the stream, and serves both client generations from it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { ToolListChangedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import { startServer, startFixture } from '../../harness/index.mjs';
import { member, addConnector, sdkClient, listAll, modern, toolText, AuditLog, MODERN } from './lib.mjs';

let srv, neo, old, user, sdk;
const audit = new AuditLog();

before(async () => {
  [neo, old, srv] = await Promise.all([
    startFixture({ name: 'neo', modern: true, pageSize: 2, tools: ['echo', 'whoami', 'stream', 'slow', 'headers'] }),
    startFixture({ name: 'old', tools: ['echo'] }),
    startServer({ name: 'gw-modern-upstream' }),
  ]);
  addConnector(srv, { name: 'neo', url: neo.url });
  addConnector(srv, { name: 'old', url: old.url });
  user = member(srv);
  sdk = await sdkClient(srv, user.pat);
  audit.expect({ method: 'initialize' });
});

after(async () => {
  await sdk?.client.close().catch(() => {});
  await Promise.all([neo?.stop(), old?.stop()]);
  if (srv) assert.equal(await srv.stop(), 0);
});

test('a 2025-11-25 session lists and calls the tools of a 2026-07-28 upstream, progress first', async () => {
  const { items } = await listAll(sdk.client, 'tools');
  audit.expect({ method: 'tools/list' });
  const names = items.map((t) => t.name);
  for (const n of ['neo__echo', 'neo__whoami', 'neo__stream', 'neo__slow', 'neo__headers', 'old__echo']) assert.ok(names.includes(n), `${n} in ${names}`);
  const w = await sdk.client.callTool({ name: 'neo__whoami', arguments: {} });
  audit.tool('neo__whoami', 'neo');
  assert.deepEqual(w.structuredContent, { upstream: 'neo' });
  const order = [];
  const r = await sdk.client.callTool({ name: 'neo__stream', arguments: { steps: 3, delayMs: 20 } }, undefined,
    { onprogress: (p) => order.push(p.progress) });
  audit.tool('neo__stream', 'neo');
  order.push(toolText(r));
  assert.deepEqual(order, [1, 2, 3, 'streamed 3 steps']);
  const o = await sdk.client.callTool({ name: 'old__echo', arguments: { message: 'legacy next door' } });
  audit.tool('old__echo', 'old');
  assert.equal(toolText(o), 'old: legacy next door');
});

test('the gateway speaks the modern era upstream: discover, no initialize, _meta and mirrored headers, no client token', async () => {
  const log = await neo.log();
  const rpc = log.filter((e) => e.kind === 'rpc');
  assert.ok(rpc.some((e) => e.method === 'server/discover'), 'probed with server/discover');
  assert.ok(!rpc.some((e) => e.method === 'initialize'), 'no initialize sent to a modern upstream');
  const calls = rpc.filter((e) => e.method === 'tools/call');
  assert.ok(calls.length >= 2);
  for (const c of calls) {
    assert.equal(c.params._meta['io.modelcontextprotocol/protocolVersion'], MODERN);
    assert.equal(c.headers['mcp-protocol-version'], MODERN);
    assert.equal(c.headers['mcp-method'], 'tools/call');
    assert.equal(c.headers['mcp-name'], c.params.name, 'Mcp-Name mirrors the upstream tool name');
    assert.equal(c.headers['mcp-session-id'], undefined, 'no session upstream');
    assert.equal(c.headers.authorization, undefined, "never the client's token");
  }
  const lists = rpc.filter((e) => e.method === 'tools/list' && e.params?.cursor);
  assert.ok(lists.length >= 2, 'the upstream pages (2 tools each) were followed');
});

test('a stateless client through the gateway to the modern upstream, and a client gone mid-call closes the upstream stream', async () => {
  const r = await modern(srv, user.pat, 'm-1', 'tools/call', { name: 'neo__echo', arguments: { message: 'modern both ways' } });
  audit.tool('neo__echo', 'neo');
  assert.equal(r.status, 200, r.text);
  assert.equal(toolText(r.body.result), 'neo: modern both ways');

  const ctl = new AbortController();
  const started = modern(srv, user.pat, 'm-2', 'tools/call', { name: 'neo__slow', arguments: { ms: 60000 } }, { signal: ctl.signal, stream: true });
  audit.tool('neo__slow', 'neo', 'pat', { upstream: false });
  const call = await neo.waitFor((e) => e.event === 'call' && e.tool === 'slow', { what: 'the slow call upstream' });
  ctl.abort();
  await started.catch(() => {});
  // on the modern wire closing the response stream is the cancellation
  await neo.waitFor((e) => e.event === 'stream-closed' && e.requestId === call.requestId, { what: 'the upstream stream closed' });
  await neo.waitFor((e) => e.event === 'slow-aborted' && e.requestId === call.requestId, { what: 'the upstream stopped work' });
});

test("the modern upstream's list_changed (on the gateway's subscriptions/listen) reaches the client", async () => {
  await neo.waitFor((e) => e.kind === 'rpc' && e.method === 'subscriptions/listen', { what: "the gateway's subscriptions/listen upstream" });
  const changed = new Promise((resolve) => sdk.client.setNotificationHandler(ToolListChangedNotificationSchema, () => resolve(true)));
  await neo.setTools({ add: [{ name: 'fresh', description: 'added later', inputSchema: { type: 'object' } }] });
  assert.equal(await changed, true);
  const { items } = await listAll(sdk.client, 'tools');
  audit.expect({ method: 'tools/list' });
  assert.ok(items.some((t) => t.name === 'neo__fresh'));
});

test('every call of this file has its audit row', async () => {
  audit.check(srv);
});
