// A member rejected or removed loses their open MCP streams too (issue 14):
// the gateway's GET stream of a session and a 2026-07-28 listen stream end
// on every process sharing the database, as for any fallen credential; a
// member who stays keeps theirs.  The kill switch ends every stream of the
// agent, and the same credentials open new ones once it is back on.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startCluster, startServer, startFixture, gatehouse } from '../harness/index.mjs';
import { member, addConnector, post, rawSession, getStream, streamEnds, carryListChanged, modernMsg, modernHeaders }
  from './gateway/lib.mjs';

let cluster, srvA, srvB, alpha;
const streams = [];

before(async () => {
  cluster = await startCluster();
  alpha = await startFixture({ name: 'alpha', tools: ['echo'] });
  [srvA, srvB] = await Promise.all([
    startServer({ cluster, name: 'members-streams-a' }),
    startServer({ cluster, name: 'members-streams-b' }),
  ]);
  addConnector(srvA, { name: 'alpha', url: alpha.url });
});

after(async () => {
  for (const c of streams) c.abort();
  await alpha?.stop();
  for (const s of [srvA, srvB]) if (s) assert.equal(await s.stop(), 0);
  await cluster?.stop();
});

async function listen(srv, token, sub) {
  const ctl = new AbortController();
  streams.push(ctl);
  const msg = modernMsg(sub, 'subscriptions/listen', { notifications: { toolsListChanged: true } });
  const s = await post(srv, msg, { token, headers: modernHeaders(msg), stream: true, signal: ctl.signal });
  assert.equal(s.status, 200);
  assert.equal((await s.sse.next()).method, 'notifications/subscriptions/acknowledged');
  return s.sse;
}

test('a member removed with the CLI: their streams end in every process; another member keeps theirs', async () => {
  const gone = member(srvA, { name: 'gone' });
  const stays = member(srvA, { name: 'stays' });
  const a = await getStream(srvA, gone.pat, (await rawSession(srvA, gone.pat)).session, streams);
  const b = await listen(srvB, gone.pat, 'removed-member');
  const kept = await listen(srvB, stays.pat, 'kept-member');
  await carryListChanged(srvA, 'alpha', a, b, kept);
  const r = gatehouse(srvA, ['member', 'remove', '--agent', 'default', '--email', gone.email]);
  assert.equal(r.code, 0, r.stderr);
  await streamEnds(a, 5000, 'a removed member\'s GET stream is still open');
  await streamEnds(b, 5000, 'a removed member\'s listen stream is still open on the other instance');
  await carryListChanged(srvA, 'alpha', kept);
});

test('the kill switch ends the agent\'s streams in every process; back on, the same PAT listens again', async () => {
  const u = member(srvA, { name: 'killed' });
  const a = await getStream(srvA, u.pat, (await rawSession(srvA, u.pat)).session, streams);
  const b = await listen(srvB, u.pat, 'killed-listen');
  await carryListChanged(srvA, 'alpha', a, b);
  let r = gatehouse(srvA, ['agent', 'disable', '--slug', 'default']);
  assert.equal(r.code, 0, r.stderr);
  await streamEnds(a, 5000, 'a GET stream of a disabled agent is still open');
  await streamEnds(b, 5000, 'a listen stream of a disabled agent is still open on the other instance');
  r = gatehouse(srvA, ['agent', 'enable', '--slug', 'default']);
  assert.equal(r.code, 0, r.stderr);
  let again;
  for (const end = Date.now() + 5000; ;) {
    try { again = await listen(srvB, u.pat, 'back-on'); break; } catch (e) { if (Date.now() > end) throw e; }
  }
  await carryListChanged(srvA, 'alpha', again);
});
