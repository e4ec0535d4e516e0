// A member rejected or removed loses their open MCP streams too (issue 14):
// the gateway's GET stream of a session and a 2026-07-28 listen stream end
// on every process sharing the database, as for any fallen credential; a
// member who stays keeps theirs.  Their MCP sessions end with them: admitted
// again with a new PAT, the old session ids answer 404 on every process.  The kill switch ends every stream of the
// agent, and the same credentials open new ones once it is back on.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startCluster, startServer, startFixture, gatehouse, secret } from '../harness/index.mjs';
import { member, addConnector, post, rawSession, getStream, listenStream, streamEnds, carryListChanged,
  eventually, LEGACY }
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

const listen = (srv, token, sub) => listenStream(srv, token, sub, streams);

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

const ping = (srv, token, session) =>
  post(srv, { jsonrpc: '2.0', id: 7, method: 'ping' }, { token, session, version: LEGACY });

test('a removed member\'s MCP sessions end on every process: readmitted, the old ids answer 404', async () => {
  const gone = member(srvA, { name: 'gone-sessions' });
  const stays = member(srvA, { name: 'stays-sessions' });
  const mine = [(await rawSession(srvA, gone.pat)).session, (await rawSession(srvB, gone.pat)).session];
  const kept = (await rawSession(srvB, stays.pat)).session;
  // sessions live in the database: each is served by either process
  for (const srv of [srvA, srvB]) for (const s of [...mine, kept])
    assert.equal((await ping(srv, s === kept ? stays.pat : gone.pat, s)).status, 200);
  let r = gatehouse(srvA, ['member', 'remove', '--agent', 'default', '--email', gone.email]);
  assert.equal(r.code, 0, r.stderr);
  // admitted again with a new PAT: the person is the same, the sessions are not
  r = gatehouse(srvA, ['member', 'approve', '--agent', 'default', '--email', gone.email]);
  assert.equal(r.code, 0, r.stderr);
  r = gatehouse(srvA, ['pat', 'create', '--email', gone.email, '--agent', 'default', '--name', 'again']);
  assert.equal(r.code, 0, r.stderr);
  const pat = secret(r.stdout.trim());
  for (const srv of [srvA, srvB]) for (const s of mine) {
    const last = await eventually(async () => { const x = await ping(srv, pat, s); return x.status === 404 && x; },
      { timeoutMs: 5000, what: `a removed member's session to answer 404 on ${srv === srvA ? 'this' : 'the other'} process` });
    assert.match(last.text, /Session not found/);
  }
  assert.equal((await ping(srvA, pat, (await rawSession(srvA, pat)).session)).status, 200, 'a new session works');
  for (const srv of [srvA, srvB]) assert.equal((await ping(srv, stays.pat, kept)).status, 200, 'a kept member keeps theirs');
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
