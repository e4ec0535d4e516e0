// A session's GET stream ends with the session: a DELETE (here or on another
// instance), the per-member limit ending the least recently seen session,
// or the idle sweep. Before, the stream went on carrying the agent's
// list_changed for a session that answered 404 to everything else.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startCluster, startServer, startFixture } from '../../harness/index.mjs';
import { member, addConnector, connectorCmd, post, rawSession, LEGACY } from './lib.mjs';

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

async function getStream(srv, token, session) {
  const ctl = new AbortController();
  streams.push(ctl);
  const g = await post(srv, undefined, { method: 'GET', token, session, version: LEGACY,
    accept: 'text/event-stream', stream: true, signal: ctl.signal });
  assert.equal(g.status, 200);
  return g.sse;
}

async function ends(sse, ms, what) {
  const timeout = new Promise((r) => setTimeout(() => r('open'), ms));
  const drained = (async () => { while (await sse.next() !== null); return 'ended'; })();
  assert.equal(await Promise.race([drained, timeout]), 'ended', what);
}

/* Every given stream still carries the agent's list_changed. */
async function carry(...sses) {
  connectorCmd(srvA, 'disable', '--agent', 'default', '--name', 'alpha');
  connectorCmd(srvA, 'enable', '--agent', 'default', '--name', 'alpha');
  for (const sse of sses) await sse.until((m) => m.method === 'notifications/tools/list_changed', 'list_changed on a kept stream');
}

test('DELETE of a session ends its GET streams on this instance and on another; other sessions keep theirs', async () => {
  const u = member(srvA);
  const s1 = await rawSession(srvA, u.pat);
  const s2 = await rawSession(srvA, u.pat);
  const here = await getStream(srvA, u.pat, s1.session);
  const there = await getStream(srvB, u.pat, s2.session);
  const other = member(srvA);
  const kept = await getStream(srvA, other.pat, (await rawSession(srvA, other.pat)).session);
  await carry(here, there, kept);

  assert.equal((await post(srvA, undefined, { method: 'DELETE', token: u.pat, session: s1.session, version: LEGACY })).status, 200);
  await ends(here, 3000, 'the GET stream of the deleted session is still open on the same instance');
  const del = await post(srvA, undefined, { method: 'DELETE', token: u.pat, session: s2.session, version: LEGACY });
  assert.equal(del.status, 200);
  await ends(there, 5000, 'the GET stream of a session deleted on another instance is still open');
  await carry(kept);
});

test('a session ended by the per-member limit loses its GET stream', async () => {
  const u = member(srvA);
  const first = await rawSession(srvA, u.pat);
  const g = await getStream(srvB, u.pat, first.session);
  await rawSession(srvA, u.pat);
  await carry(g);
  await rawSession(srvA, u.pat);    // a third: the least recently seen goes
  await ends(g, 5000, 'the GET stream of a session ended for the limit is still open');
  assert.equal((await first.call('tools/list', {})).status, 404);
});

test('a session swept for idleness loses its GET stream', async () => {
  const u = member(srvA);
  const s = await rawSession(srvA, u.pat);
  const g = await getStream(srvA, u.pat, s.session);
  await carry(g);
  cluster.sql("UPDATE mcp_sessions SET last_seen_at = now() - interval '2 days'");
  // a process sweeps at its first new session, then once a minute
  const sweeper = await startServer({ cluster, name: 'gw-session-streams-c' });
  try {
    await rawSession(sweeper, member(sweeper).pat);
    await ends(g, 5000, 'the GET stream of a swept session is still open');
  } finally {
    assert.equal(await sweeper.stop(), 0);
  }
});
