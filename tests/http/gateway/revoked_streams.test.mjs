// Streams outlive the request that opened them: a legacy session's GET
// stream and a 2026-07-28 subscriptions/listen stay open for hours, with a
// keep-alive every 15 s. When their credential is revoked they end — a PAT
// revoked at /profile/tokens (this process), an OAuth grant disconnected on
// another instance (its NOTIFY), a user disabled with the CLI — while other
// members' streams go on. (Before, they went on for ever, carrying the
// member's list changes and resource updates to whoever held the revoked
// token.)
// The MCP session itself is bound to the member and the agent (DESIGN.md,
// gateway/session.c), not to one token: the revoked token is 401 on it, the
// member's other credential goes on with it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startCluster, startServer, startFixture, createUser, gatehouse, secret } from '../../harness/index.mjs';
import { member, addConnector, post, rawSession, getStream, listenStream, streamEnds, carryListChanged, LEGACY } from './lib.mjs';
import { signedIn, fullFlow } from '../oauth/lib.mjs';

let cluster, srvA, srvB, alpha;
const streams = [];

before(async () => {
  cluster = await startCluster();
  alpha = await startFixture({ name: 'alpha', tools: ['echo'] });
  [srvA, srvB] = await Promise.all([
    startServer({ cluster, name: 'gw-revoked-a' }),
    startServer({ cluster, name: 'gw-revoked-b' }),
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



function tokenIds(html) {
  return [...html.matchAll(/name="id" value="([0-9a-f-]{36})"/g)].map((m) => m[1]);
}

test('a PAT revoked at /profile/tokens ends its GET streams here at once; its session goes on with the member\'s OAuth token', async () => {
  const u = createUser(srvA, {});
  const c = await signedIn(srvA, u);
  const res = await c.form('/profile/tokens', '/profile/tokens', { name: 'streamer', agent: 'default', expires_days: '7' });
  assert.equal(res.status, 201);
  const pat = secret((await res.text()).match(/id="new-token">([^<]+)</)[1]);
  const oauth = (await fullFlow(srvA, c, { meta: { client_name: 'Same Member' } })).tokens.access_token;
  const other = member(srvA);

  const s = await rawSession(srvA, pat);
  const revoked = await getStream(srvA, pat, s.session, streams);
  const sameMember = await listen(srvA, oauth, 'same-member');
  const otherMember = await getStream(srvA, other.pat, (await rawSession(srvA, other.pat)).session, streams);
  await carryListChanged(srvA, 'alpha', revoked, sameMember, otherMember);

  const [id] = tokenIds(await (await c.get('/profile/tokens')).text());
  assert.equal((await c.form('/profile/tokens', '/profile/tokens/revoke', { id })).status, 303);
  await streamEnds(revoked, 3000, 'the GET stream of the revoked PAT is still open');

  assert.equal((await s.call('tools/list', {})).status, 401, 'the revoked PAT on its session');
  const again = await post(srvA, { jsonrpc: '2.0', id: 9, method: 'tools/list', params: {} },
    { token: oauth, session: s.session, version: LEGACY });
  assert.equal(again.status, 200, `the session with the member's other credential: ${again.text}`);
  await carryListChanged(srvA, 'alpha', sameMember, otherMember);
});

test('an OAuth grant disconnected on one instance ends its listen and GET streams on the other', async () => {
  const u = createUser(srvA, {});
  const c = await signedIn(srvA, u);
  const tok = (await fullFlow(srvA, c, { meta: { client_name: 'Streaming App' } })).tokens.access_token;
  const other = member(srvA);

  const l = await listen(srvB, tok, 'revoked-listen');
  const g = await getStream(srvB, tok, (await rawSession(srvB, tok)).session, streams);
  const kept = await listen(srvB, other.pat, 'kept-listen');
  await carryListChanged(srvA, 'alpha', l, g, kept);

  const grant = (await (await c.get('/profile/connections')).text()).match(/name="grant" value="([0-9a-f-]{36})"/)[1];
  assert.equal((await c.form('/profile/connections', '/profile/connections/revoke', { grant })).status, 303);
  await streamEnds(l, 5000, 'the listen stream of the disconnected grant is still open on the other instance');
  await streamEnds(g, 5000, 'the GET stream of the disconnected grant is still open on the other instance');
  await carryListChanged(srvA, 'alpha', kept);
});

test('a user disabled with the CLI: their streams end, in every process', async () => {
  const u = member(srvA);
  const a = await getStream(srvA, u.pat, (await rawSession(srvA, u.pat)).session, streams);
  const b = await listen(srvB, u.pat, 'disabled-user');
  await carryListChanged(srvA, 'alpha', a, b);
  assert.equal(gatehouse(srvA, ['user', 'disable', '--email', u.email]).code, 0);
  await streamEnds(a, 5000, 'a disabled user\'s GET stream is still open');
  await streamEnds(b, 5000, 'a disabled user\'s listen stream is still open on the other instance');
});
