// An upstream's own list_changed after a restart: the session's upstream
// sessions come back from the database without a handshake, and the new
// process must open its own stream to each upstream again, or the member's
// client would never hear of the upstream's list changes (and the cached
// lists would stay stale) for the rest of the session.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, startCluster, startFixture } from '../../harness/index.mjs';
import { member, addConnector, post, rawSession, serverKey, LEGACY, eventually } from './lib.mjs';

let cluster, srv, alpha, user;

before(async () => {
  cluster = await startCluster();
  alpha = await startFixture({ name: 'alpha', tools: ['echo'] });
  srv = await startServer({ cluster, name: 'gw-restart-listen', env: { GATEHOUSE_SERVER_KEY: serverKey() } });
  addConnector(srv, { name: 'alpha', url: alpha.url });
  user = member(srv);
});

after(async () => {
  await alpha?.stop();
  if (srv) assert.equal(await srv.stop(), 0);
  await cluster?.stop();
});

test('after a restart the gateway listens to the upstream again: its list_changed reaches the client', async () => {
  const s = await rawSession(srv, user.pat);
  const before = await s.call('tools/list', {});
  assert.equal(before.status, 200, before.text);
  await alpha.waitFor((e) => e.kind === 'get', { what: "the gateway's GET stream to the upstream" });
  const handshakes = (await alpha.log()).filter((e) => e.method === 'initialize').length;

  await srv.restart();
  await alpha.resetLog();
  const ctl = new AbortController();
  const g = await post(srv, undefined, { method: 'GET', token: user.pat, session: s.session, version: LEGACY,
    accept: 'text/event-stream', stream: true, signal: ctl.signal });
  assert.equal(g.status, 200);
  // the first request after the restart that needs the upstream reopens the stream to it
  const again = await s.call('tools/list', {});
  assert.equal(again.status, 200, again.text);
  assert.ok(!again.body.result.tools.some((t) => t.name === 'alpha__late_tool'));
  await alpha.waitFor((e) => e.kind === 'get', { what: 'a GET stream to the upstream from the restarted process' });
  assert.equal((await alpha.log()).filter((e) => e.method === 'initialize').length, 0,
    `the upstream session came from the database, no new handshake (${handshakes} before the restart)`);

  await alpha.setTools({ add: [{ name: 'late_tool', description: 'added after the restart', inputSchema: { type: 'object' } }] });
  await g.sse.until((m) => m.method === 'notifications/tools/list_changed', 'list_changed from the upstream after the restart');
  await eventually(async () => {
    const now = await s.call('tools/list', {});
    return now.status === 200 && now.body.result.tools.some((t) => t.name === 'alpha__late_tool');
  }, { what: 'alpha__late_tool listed after the restart' });
  ctl.abort();
  await g.sse.cancel();
});
