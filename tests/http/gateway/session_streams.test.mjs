// A session's GET stream ends with the session: a DELETE (here or on another
// instance), the per-member limit ending the least recently seen session,
// or the idle sweep. Before, the stream went on carrying the agent's
// list_changed for a session that answered 404 to everything else.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startCluster, startServer, startFixture } from '../../harness/index.mjs';
import { member, addConnector, post, rawSession, getStream, streamEnds, carryListChanged, LEGACY } from './lib.mjs';

let cluster, srvA, srvB, alpha;
const streams = [];

before(async () => {
  cluster = await startCluster();
  alpha = await startFixture({ name: 'alpha', tools: ['echo'] });
  [srvA, srvB] = await Promise.all([
    startServer({ cluster, name: 'gw-session-streams-a', env: { GATEHOUSE_MCP_SESSIONS_PER_MEMBER: '2' } }),
    startServer({ cluster, name: 'gw-session-streams-b', env: { GATEHOUSE_MCP_SESSIONS_PER_MEMBER: '2' } }),
  ]);
  addConnector(srvA, { name: 'alpha', url: alpha.url });
});

after(async () => {
  for (const c of streams) c.abort();
  await alpha?.stop();
  for (const s of [srvA, srvB]) if (s) assert.equal(await s.stop(), 0);
  await cluster?.stop();
});




test('DELETE of a session ends its GET streams on this instance and on another; other sessions keep theirs', async () => {
  const u = member(srvA);
  const s1 = await rawSession(srvA, u.pat);
  const s2 = await rawSession(srvA, u.pat);
  const here = await getStream(srvA, u.pat, s1.session, streams);
  const there = await getStream(srvB, u.pat, s2.session, streams);
  const other = member(srvA);
  const kept = await getStream(srvA, other.pat, (await rawSession(srvA, other.pat)).session, streams);
  await carryListChanged(srvA, 'alpha', here, there, kept);

  assert.equal((await post(srvA, undefined, { method: 'DELETE', token: u.pat, session: s1.session, version: LEGACY })).status, 200);
  await streamEnds(here, 3000, 'the GET stream of the deleted session is still open on the same instance');
  const del = await post(srvA, undefined, { method: 'DELETE', token: u.pat, session: s2.session, version: LEGACY });
  assert.equal(del.status, 200);
  await streamEnds(there, 5000, 'the GET stream of a session deleted on another instance is still open');
  await carryListChanged(srvA, 'alpha', kept);
});

test('a session ended by the per-member limit loses its GET stream', async () => {
  const u = member(srvA);
  const first = await rawSession(srvA, u.pat);
  const g = await getStream(srvB, u.pat, first.session, streams);
  await rawSession(srvA, u.pat);
  await carryListChanged(srvA, 'alpha', g);
  await rawSession(srvA, u.pat);    // a third: the least recently seen goes
  await streamEnds(g, 5000, 'the GET stream of a session ended for the limit is still open');
  assert.equal((await first.call('tools/list', {})).status, 404);
});

test('a session swept for idleness loses its GET stream', async () => {
  const u = member(srvA);
  const s = await rawSession(srvA, u.pat);
  const g = await getStream(srvA, u.pat, s.session, streams);
  await carryListChanged(srvA, 'alpha', g);
  cluster.sql("UPDATE mcp_sessions SET last_seen_at = now() - interval '2 days'");
  // a process sweeps at its first new session, then once a minute
  const sweeper = await startServer({ cluster, name: 'gw-session-streams-c' });
  try {
    await rawSession(sweeper, member(sweeper).pat);
    await streamEnds(g, 5000, 'the GET stream of a swept session is still open');
  } finally {
    assert.equal(await sweeper.stop(), 0);
  }
});
