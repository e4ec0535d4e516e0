// Upkeep of the upstream side of a session: the gateway's own stream to an
// upstream (the GET stream of a legacy upstream session, subscriptions/listen
// to a 2026-07-28 upstream) is reopened after the upstream ends it, so the
// upstream's list_changed still reaches the client; not for a disabled
// connector nor an ended session. Two Gatehouse processes on one database:
// a handshake that replaces another process's upstream session ends the old
// one upstream (DELETE), and the process whose upstream session was ended
// adopts the newer one instead of replacing it in turn. Every call audited.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, startCluster, startFixture, sleep } from '../../harness/index.mjs';
import { member, addConnector, connectorCmd, post, rawSession, toolText, serverKey, AuditLog, LEGACY, eventually } from './lib.mjs';

let cluster, srvA, srvB, alpha, neo, gamma, user;
const audit = new AuditLog();

before(async () => {
  cluster = await startCluster();
  const key = serverKey();
  [alpha, neo, gamma] = await Promise.all([
    startFixture({ name: 'alpha', tools: ['echo', 'whoami'] }),
    startFixture({ name: 'neo', modern: true, tools: ['echo'] }),
    startFixture({ name: 'gamma', tools: ['echo'] }),
  ]);
  srvA = await startServer({ cluster, name: 'gw-upkeep-a', env: { GATEHOUSE_SERVER_KEY: key } });
  srvB = await startServer({ cluster, name: 'gw-upkeep-b', env: { GATEHOUSE_SERVER_KEY: key } });
  for (const up of [alpha, neo, gamma]) addConnector(srvA, { name: up.name, url: up.url });
  user = member(srvA);
});

after(async () => {
  await Promise.all([alpha?.stop(), neo?.stop(), gamma?.stop()]);
  for (const s of [srvB, srvA]) if (s) assert.equal(await s.stop(), 0);
  await cluster?.stop();
});

/* The client's GET stream of a session. */
async function getStream(srv, s) {
  const ctl = new AbortController();
  const g = await post(srv, undefined, { method: 'GET', token: user.pat, session: s.session, version: LEGACY,
    accept: 'text/event-stream', stream: true, signal: ctl.signal });
  assert.equal(g.status, 200);
  audit.expect({ method: 'GET' });
  return { ...g, close: async () => { ctl.abort(); await g.sse.cancel(); } };
}

const gets = async (up, session) => (await up.log()).filter((e) => e.kind === 'get' && (!session || e.session === session));

/* The upstream session id the gateway uses with a fixture: the session of
 * its last tools/call carrying this message. */
async function upstreamSession(up, message) {
  const call = (await up.log()).filter((e) => e.method === 'tools/call' && e.params?.arguments?.message === message).pop();
  assert.ok(call?.session, `the upstream saw the call "${message}" in a session`);
  return call.session;
}

test("a legacy upstream ends the gateway's GET stream: it is reopened, and the upstream's list_changed reaches the client", async () => {
  const s = await rawSession(srvA, user.pat);
  audit.expect({ method: 'initialize' });
  const r = await s.call('tools/call', { name: 'alpha__echo', arguments: { message: 'hello' } });
  audit.tool('alpha__echo', 'alpha');
  assert.equal(toolText(r.body.result), 'alpha: hello');
  const upSid = await upstreamSession(alpha, 'hello');
  await eventually(async () => (await gets(alpha, upSid)).length === 1, { what: "the gateway's GET stream to alpha" });
  const g = await getStream(srvA, s);

  // ended three times: reopened each time (the backoff grows, bounded)
  for (let round = 1; round <= 3; round++) {
    const ended = await alpha.endStreams();
    assert.ok(ended.ended >= 1, 'the fixture ended a stream');
    await eventually(async () => (await gets(alpha, upSid)).length === round + 1,
      { timeoutMs: 15000, what: `the GET stream reopened (round ${round})` });
  }
  // the reopened stream carries the upstream's own list_changed to the client
  await sleep(200); // the SDK registers the stream once the response started
  await alpha.setTools({ add: [{ name: 'after_drop', description: 'added after the stream dropped', inputSchema: { type: 'object' } }] });
  await g.sse.until((m) => m.method === 'notifications/tools/list_changed', 'list_changed from alpha after the reopen');
  const l = await s.call('tools/list', {});
  audit.expect({ method: 'tools/list' });
  assert.ok(l.body.result.tools.some((t) => t.name === 'alpha__after_drop'), 'the changed list is fetched again');
  await g.close();
});

test('a 2026-07-28 upstream ends the subscriptions/listen stream: it is reopened, and list_changed still arrives', async () => {
  const s = await rawSession(srvA, user.pat);
  audit.expect({ method: 'initialize' });
  const r = await s.call('tools/call', { name: 'neo__echo', arguments: { message: 'modern' } });
  audit.tool('neo__echo', 'neo');
  assert.equal(toolText(r.body.result), 'neo: modern');
  const listens = async () => (await neo.log()).filter((e) => e.method === 'subscriptions/listen').length;
  await eventually(async () => (await listens()) >= 1, { what: 'the gateway listening to neo' });
  const before = await listens();
  const g = await getStream(srvA, s);
  await neo.endStreams();
  await eventually(async () => (await listens()) > before, { timeoutMs: 15000, what: 'subscriptions/listen sent again' });
  await sleep(200);
  await neo.setTools({ add: [{ name: 'late', description: 'late', inputSchema: { type: 'object' } }] });
  await g.sse.until((m) => m.method === 'notifications/tools/list_changed', 'list_changed from neo after the reopen');
  await g.close();
});

test('not reopened for a connector disabled meanwhile, nor for a session that ended', async () => {
  const s = await rawSession(srvA, user.pat);
  audit.expect({ method: 'initialize' });
  const r = await s.call('tools/call', { name: 'gamma__echo', arguments: { message: 'g1' } });
  audit.tool('gamma__echo', 'gamma');
  assert.equal(r.status, 200, r.text);
  const upSid = await upstreamSession(gamma, 'g1');
  await eventually(async () => (await gets(gamma, upSid)).length === 1, { what: "the gateway's GET stream to gamma" });
  const g = await getStream(srvA, s);
  connectorCmd(srvA, 'disable', '--agent', 'default', '--name', 'gamma');
  await g.sse.until((m) => m.method === 'notifications/tools/list_changed', 'list_changed after the disable (the gateway knows)');
  await gamma.endStreams();
  await sleep(2500); // ten times the first backoff
  assert.equal((await gets(gamma, upSid)).length, 1, 'no GET to a disabled connector');
  connectorCmd(srvA, 'enable', '--agent', 'default', '--name', 'gamma');
  await g.close();

  // a session that ends: its upstream stream is not reopened either
  const s2 = await rawSession(srvA, user.pat);
  audit.expect({ method: 'initialize' });
  const r2 = await s2.call('tools/call', { name: 'alpha__echo', arguments: { message: 'ending' } });
  audit.tool('alpha__echo', 'alpha');
  assert.equal(r2.status, 200, r2.text);
  const upSid2 = await upstreamSession(alpha, 'ending');
  await eventually(async () => (await gets(alpha, upSid2)).length === 1, { what: "the gateway's GET stream for the second session" });
  const d = await post(srvA, undefined, { method: 'DELETE', token: user.pat, session: s2.session, version: LEGACY });
  audit.expect({ method: 'DELETE' });
  assert.ok([200, 204].includes(d.status), `DELETE: ${d.status}`);
  await alpha.waitFor((e) => e.kind === 'delete' && e.session === upSid2, { what: 'the upstream session ended with ours' });
  await alpha.endStreams();
  await sleep(2500);
  assert.equal((await gets(alpha, upSid2)).length, 1, 'no GET for an ended session');
});

test("two processes, one session: a handshake that replaces the other process's upstream session DELETEs the old one", async () => {
  await alpha.resetLog();
  const s = await rawSession(srvA, user.pat);
  audit.expect({ method: 'initialize' });
  // process B holds the session before A has any upstream session in it
  const ping = await post(srvB, { jsonrpc: '2.0', id: 7, method: 'ping' }, { token: user.pat, session: s.session, version: LEGACY });
  audit.expect({ method: 'ping' });
  assert.equal(ping.status, 200, ping.text);

  const onA = await s.call('tools/call', { name: 'alpha__echo', arguments: { message: 'on A' } });
  audit.tool('alpha__echo', 'alpha');
  assert.equal(toolText(onA.body.result), 'alpha: on A');
  const sidA = await upstreamSession(alpha, 'on A');

  const onB = await post(srvB, { jsonrpc: '2.0', id: 8, method: 'tools/call', params: { name: 'alpha__echo', arguments: { message: 'on B' } } },
    { token: user.pat, session: s.session, version: LEGACY });
  audit.tool('alpha__echo', 'alpha');
  assert.equal(toolText(onB.body.result), 'alpha: on B', onB.text);
  const sidB = await upstreamSession(alpha, 'on B');
  assert.notEqual(sidB, sidA, 'B ran its own handshake (it held the session from before A had one)');

  const del = await alpha.waitFor((e) => e.kind === 'delete' && e.session === sidA, { timeoutMs: 10000, what: 'DELETE of the replaced upstream session' });
  assert.equal(del.headers['mcp-protocol-version'], LEGACY);

  // A's upstream session is gone (404): A takes up B's instead of a third handshake
  const inits = (await alpha.log()).filter((e) => e.method === 'initialize').length;
  const again = await s.call('tools/call', { name: 'alpha__echo', arguments: { message: 'on A again' } });
  audit.tool('alpha__echo', 'alpha');
  assert.equal(toolText(again.body.result), 'alpha: on A again', again.text);
  assert.equal(await upstreamSession(alpha, 'on A again'), sidB, "A adopted B's upstream session");
  const log = await alpha.log();
  assert.equal(log.filter((e) => e.method === 'initialize').length, inits, 'no further handshake');
  assert.ok(!log.some((e) => e.kind === 'delete' && e.session === sidB), "B's upstream session lives on");

  const onB2 = await post(srvB, { jsonrpc: '2.0', id: 9, method: 'tools/call', params: { name: 'alpha__echo', arguments: { message: 'on B again' } } },
    { token: user.pat, session: s.session, version: LEGACY });
  audit.tool('alpha__echo', 'alpha');
  assert.equal(toolText(onB2.body.result), 'alpha: on B again', onB2.text);
  assert.equal(await upstreamSession(alpha, 'on B again'), sidB);
});

test('every call of this file has its audit row (both processes share the table)', async () => {
  audit.check(srvA);
});
