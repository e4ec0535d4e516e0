// Sessions and upstreams under stress: a restart mid-session, a second
// process on the same database, an upstream killed mid-call or too slow, a
// client that goes away mid-stream, an upstream that drops its session,
// list_changed on the GET stream, idle expiry; every call audited.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { startServer, startCluster, startFixture, sleep } from '../../harness/index.mjs';
import {
  member, addConnector, connectorCmd, sdkClient, listAll, post, rawSession, modern, toolText, serverKey,
  AuditLog, LEGACY, eventually, rejects,
} from './lib.mjs';

const IDLE_SECONDS = 60; // the setting's minimum
let cluster, srv, srv2, srvIdle, alpha, beta, victim, user, idleUser, idleSession, idleStart;
const audit = new AuditLog();
const audit2 = audit; // one table, one check

before(async () => {
  cluster = await startCluster();
  cluster.createdb('idle');
  const key = serverKey();
  [alpha, beta, victim] = await Promise.all([
    startFixture({ name: 'alpha', tools: ['echo', 'whoami', 'slow', 'stream'] }),
    startFixture({ name: 'beta', json: true, tools: ['echo', 'whoami'] }),
    startFixture({ name: 'victim', tools: ['echo', 'slow'] }),
  ]);
  srv = await startServer({ cluster, name: 'gw-resilience', env: { GATEHOUSE_SERVER_KEY: key } });
  [srv2, srvIdle] = await Promise.all([
    // a second process on the same database and key, with a short upstream call timeout
    startServer({ cluster, name: 'gw-resilience-2', env: { GATEHOUSE_SERVER_KEY: key, GATEHOUSE_UPSTREAM_CALL_TIMEOUT_MS: '1500' } }),
    // its own database, sessions idle after a minute
    startServer({ cluster, name: 'gw-resilience-idle', env: { GATEHOUSE_DATABASE_URL: cluster.urlFor('idle'),
      GATEHOUSE_MCP_SESSION_IDLE_SECONDS: String(IDLE_SECONDS) } }),
  ]);
  for (const up of [alpha, beta, victim]) addConnector(srv, { name: up.name, url: up.url });
  addConnector(srvIdle, { name: 'alpha', url: alpha.url });
  user = member(srv);
  idleUser = member(srvIdle);
  // the idle session: used once now, checked at the end of the file
  idleStart = Date.now();
  idleSession = await rawSession(srvIdle, idleUser.pat);
  const r = await idleSession.call('tools/call', { name: 'alpha__whoami', arguments: {} });
  assert.equal(r.status, 200, r.text);
});

after(async () => {
  await Promise.all([alpha?.stop(), beta?.stop(), victim?.stop()]);
  for (const s of [srv2, srvIdle, srv]) if (s) assert.equal(await s.stop(), 0);
  await cluster?.stop();
});


test('Gatehouse restarted mid-session: the same session goes on', async () => {
  const { client, transport } = await sdkClient(srv, user.pat);
  audit.expect({ method: 'initialize' });
  const sid = transport.sessionId;
  const a = await client.callTool({ name: 'alpha__echo', arguments: { message: 'before' } });
  audit.tool('alpha__echo', 'alpha');
  assert.equal(toolText(a), 'alpha: before');
  await srv.restart();
  const b = await client.callTool({ name: 'alpha__echo', arguments: { message: 'after' } });
  audit.tool('alpha__echo', 'alpha');
  assert.equal(toolText(b), 'alpha: after');
  assert.equal(transport.sessionId, sid, 'no new session was needed');
  const c = await client.callTool({ name: 'beta__whoami', arguments: {} });
  audit.tool('beta__whoami', 'beta');
  assert.deepEqual(c.structuredContent, { upstream: 'beta' });
  await client.close();
});

test('a second Gatehouse process on the same database serves the same session', async () => {
  const s = await rawSession(srv, user.pat);
  audit.expect({ method: 'initialize' });
  const r1 = await s.call('tools/call', { name: 'alpha__whoami', arguments: {} });
  audit.tool('alpha__whoami', 'alpha');
  assert.equal(r1.status, 200);
  const r2 = await post(srv2, { jsonrpc: '2.0', id: 50, method: 'tools/call', params: { name: 'beta__echo', arguments: { message: 'on the other process' } } },
    { token: user.pat, session: s.session, version: LEGACY });
  audit2.tool('beta__echo', 'beta');
  assert.equal(r2.status, 200, r2.text);
  assert.equal(toolText(r2.body.result), 'beta: on the other process');
  // ended on the second process: gone on the first too
  const d = await post(srv2, undefined, { method: 'DELETE', token: user.pat, session: s.session, version: LEGACY });
  assert.ok([200, 204].includes(d.status), `DELETE: ${d.status}`);
  // the first process learns it through the database (NOTIFY): soon, not necessarily at once
  await eventually(async () => (await s.call('tools/list', {})).status === 404,
    { timeoutMs: 10000, what: 'the session ended on the first process too (404)' });
});

test('an upstream killed mid-call: a clean JSON-RPC error naming the connector; other connectors unaffected', async () => {
  const { client } = await sdkClient(srv, user.pat);
  audit.expect({ method: 'initialize' });
  const call = rejects(client.callTool({ name: 'victim__slow', arguments: { ms: 60000 } }, undefined, { timeout: 120000 }));
  audit.tool('victim__slow', 'victim', 'pat', { upstream: false });
  await victim.waitFor((e) => e.event === 'slow-start', { what: 'the slow call upstream' });
  await victim.kill('SIGKILL');
  const { error, result } = await call;
  assert.ok(error instanceof McpError || result?.isError, `an error, got ${JSON.stringify(result)}`);
  // a JSON-RPC error (-32000) in the gateway's words, naming the connector
  // (an "Unknown tool: victim__slow" would name it too, so the wording counts)
  assert.ok(error instanceof McpError, `a JSON-RPC error, got ${JSON.stringify(result)}`);
  assert.equal(error.code, -32000, error.message);
  assert.match(error.message, /Upstream 'victim' (is unavailable|ended without an answer)\.$/, `the error names the connector: ${error.message}`);
  assert.ok(!/\n\s+at /.test(error.message), 'no stack trace');

  const ok = await client.callTool({ name: 'alpha__echo', arguments: { message: 'still fine' } });
  audit.tool('alpha__echo', 'alpha');
  assert.equal(toolText(ok), 'alpha: still fine');
  const { items } = await listAll(client, 'tools');
  audit.expect({ method: 'tools/list' });
  assert.ok(items.some((t) => t.name === 'alpha__echo') && items.some((t) => t.name === 'beta__echo'), 'the others are listed');
  // the dead upstream's tools fail alone, quickly and cleanly
  const again = await rejects(client.callTool({ name: 'victim__echo', arguments: { message: 'x' } }));
  audit.tool('victim__echo', 'victim', 'pat', { upstream: false });
  assert.ok(again.error instanceof McpError, `a JSON-RPC error, got ${JSON.stringify(again.result)}`);
  assert.equal(again.error.code, -32000, again.error.message);
  assert.match(again.error.message, /Upstream 'victim' is unavailable\.$/, `the error names the connector: ${again.error.message}`);
  // and the other connectors' tools still work in the same session afterwards
  const after = await client.callTool({ name: 'beta__echo', arguments: { message: 'after the dead one' } });
  audit.tool('beta__echo', 'beta');
  assert.equal(toolText(after), 'beta: after the dead one');
  await client.close();
});

test('an upstream slower than GATEHOUSE_UPSTREAM_CALL_TIMEOUT_MS: an error naming the connector', async () => {
  const s = await rawSession(srv2, user.pat);
  audit2.expect({ method: 'initialize' });
  const r = await s.call('tools/call', { name: 'alpha__slow', arguments: { ms: 30000 } });
  audit2.tool('alpha__slow', 'alpha', 'pat', { upstream: false });
  assert.equal(r.status, 200, r.text);
  const err = r.body.error;
  const text = err ? err.message : toolText(r.body.result);
  assert.ok(err || r.body.result?.isError, `an error: ${r.text}`);
  assert.match(text, /alpha/);
  assert.match(text, /time/i, `says it timed out: ${text}`);
  // the upstream was told to stop
  const call = await alpha.waitFor((e) => e.event === 'call' && e.tool === 'slow');
  await alpha.waitFor((e) => e.method === 'notifications/cancelled' && e.params?.requestId === call.requestId,
    { what: 'notifications/cancelled after the timeout' });
  const quick = await s.call('tools/call', { name: 'alpha__echo', arguments: { message: 'quick' } });
  audit2.tool('alpha__echo', 'alpha');
  assert.equal(toolText(quick.body.result), 'alpha: quick');
});

for (const era of ['session', 'stateless']) {
  test(`the client goes away mid-stream (${era}): the upstream receives notifications/cancelled`, async () => {
    await alpha.resetLog();
    const ctl = new AbortController();
    let started;
    if (era === 'session') {
      const s = await rawSession(srv, user.pat);
      audit.expect({ method: 'initialize' });
      started = s.call('tools/call', { name: 'alpha__slow', arguments: { ms: 60000 }, _meta: { progressToken: 1 } }, { signal: ctl.signal, stream: true });
    } else {
      started = modern(srv, user.pat, 'gone-1', 'tools/call', { name: 'alpha__slow', arguments: { ms: 60000 } }, { signal: ctl.signal, stream: true });
    }
    audit.tool('alpha__slow', 'alpha', 'pat', { upstream: false });
    const call = await alpha.waitFor((e) => e.event === 'call' && e.tool === 'slow', { what: 'the call upstream' });
    ctl.abort();
    await started.catch(() => {});
    const cancel = await alpha.waitFor((e) => e.method === 'notifications/cancelled' && e.params?.requestId === call.requestId,
      { what: 'notifications/cancelled upstream' });
    assert.equal(cancel.params.requestId, call.requestId);
    await alpha.waitFor((e) => e.event === 'slow-aborted' && e.requestId === call.requestId, { what: 'the upstream stopped work' });
  });
}

test('an upstream that drops its session (404) is re-established transparently', async () => {
  const s = await rawSession(srv, user.pat);
  audit.expect({ method: 'initialize' });
  const r1 = await s.call('tools/call', { name: 'alpha__echo', arguments: { message: 'one' } });
  audit.tool('alpha__echo', 'alpha');
  assert.equal(toolText(r1.body.result), 'alpha: one');
  await alpha.resetLog();
  const dropped = await alpha.dropSessions();
  assert.ok(dropped.dropped >= 1);
  for (const m of ['two', 'three']) {
    const r = await s.call('tools/call', { name: 'alpha__echo', arguments: { message: m } });
    audit.tool('alpha__echo', 'alpha');
    assert.equal(r.status, 200, r.text);
    assert.equal(toolText(r.body.result), `alpha: ${m}`, r.text);
  }
  const log = await alpha.log();
  assert.ok(log.some((e) => e.method === 'initialize'), 'the gateway ran the upstream handshake again');
  assert.equal(log.filter((e) => e.method === 'tools/call' && e.params?.arguments?.message === 'three').length, 1, 'once the new session existed, no more retries');
});

test('connector disable/enable and an upstream list_changed reach the GET stream as notifications/tools/list_changed', async () => {
  await alpha.resetLog();
  const s = await rawSession(srv, user.pat);
  audit.expect({ method: 'initialize' });
  const l = await s.call('tools/list', {});
  audit.expect({ method: 'tools/list' });
  assert.equal(l.status, 200);
  // alpha's session for this downstream session (the log was emptied first)
  const upSession = (await alpha.waitFor((e) => e.method === 'tools/list' && e.session, { what: 'tools/list upstream' })).session;
  const ctl = new AbortController();
  const g = await post(srv, undefined, { method: 'GET', token: user.pat, session: s.session, version: LEGACY,
    accept: 'text/event-stream', stream: true, signal: ctl.signal });
  assert.equal(g.status, 200);
  assert.match(g.headers.get('content-type'), /^text\/event-stream/);

  connectorCmd(srv, 'disable', '--agent', 'default', '--name', 'beta');
  await g.sse.until((m) => m.method === 'notifications/tools/list_changed', 'list_changed after disable');
  const without = await s.call('tools/list', {});
  audit.expect({ method: 'tools/list' });
  assert.ok(!without.body.result.tools.some((t) => t.name.startsWith('beta__')));
  const refused = await s.call('tools/call', { name: 'beta__echo', arguments: { message: 'x' } });
  assert.ok(refused.body.error || refused.body.result?.isError, 'a disabled connector is not called');

  connectorCmd(srv, 'enable', '--agent', 'default', '--name', 'beta');
  await g.sse.until((m) => m.method === 'notifications/tools/list_changed', 'list_changed after enable');
  // the lists are cached again before the upstream changes its own
  const cached = await s.call('tools/list', {});
  audit.expect({ method: 'tools/list' });
  const before = cached.body.result.tools.map((t) => t.name);
  assert.ok(before.includes('beta__echo') && !before.includes('alpha__late_tool'), `listed: ${before}`);

  // the upstream's own list_changed: wait until the gateway listens to alpha
  // on this session's upstream session, then change alpha's tools
  await alpha.waitFor((e) => e.kind === 'get' && e.session === upSession, { what: "the gateway's GET stream to the upstream" });
  await Promise.all([alpha.resetLog(), beta.resetLog()]);
  await alpha.setTools({ add: [{ name: 'late_tool', description: 'added later', inputSchema: { type: 'object' } }] });
  await g.sse.until((m) => m.method === 'notifications/tools/list_changed', 'list_changed from the upstream');
  const now = await s.call('tools/list', {});
  audit.expect({ method: 'tools/list' });
  const names = now.body.result.tools.map((t) => t.name);
  assert.ok(names.includes('alpha__late_tool') && names.includes('beta__echo'), `alpha__late_tool and beta__echo listed: ${names}`);
  // only alpha's cached list was dropped: alpha was asked again, beta was not
  assert.ok((await alpha.log()).some((e) => e.method === 'tools/list' && e.session === upSession), "alpha's tools fetched again");
  assert.deepEqual((await beta.log()).filter((e) => e.method === 'tools/list'), [], "beta's tools came from the cache");
  ctl.abort();
  await g.sse.cancel();
});

test('every call of this file has its audit row (both processes share the table)', async () => {
  audit.check(srv);
});

test(`an MCP session idle for more than GATEHOUSE_MCP_SESSION_IDLE_SECONDS (${IDLE_SECONDS}) expires`, async () => {
  // untouched since before(): wait out the idle time, then it is gone
  const wait = idleStart + (IDLE_SECONDS + 3) * 1000 - Date.now();
  if (wait > 0) await sleep(wait);
  const r = await idleSession.call('tools/list', {});
  assert.equal(r.status, 404, `${r.status} ${r.text}`);
  // a new session works
  const fresh = await rawSession(srvIdle, idleUser.pat);
  const ok = await fresh.call('tools/call', { name: 'alpha__whoami', arguments: {} });
  assert.equal(ok.status, 200);
});
