// One upstream handshake per (session, connector) however many calls need
// it at once (issue 13, item 2): a member's first stateless (2026-07-28)
// calls, arriving together at a session-only upstream whose initialize
// takes a while, share one handshake instead of each running its own and
// the last replacing the others' upstream sessions.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, startFixture } from '../../harness/index.mjs';
import { member, addConnector, modern, toolText } from './lib.mjs';

const N = 8;
let srv, up, user;

before(async () => {
  [up, srv] = await Promise.all([
    startFixture({ name: 'slowinit', tools: ['echo'], initDelayMs: 400 }),
    startServer({ name: 'gw-handshake-once' }),
  ]);
  addConnector(srv, { name: 'slowinit', url: up.url });
  user = member(srv);
});

after(async () => {
  await up?.stop();
  if (srv) assert.equal(await srv.stop(), 0);
});

test(`${N} concurrent first calls of one member: one upstream initialize, all answered`, async () => {
  const replies = await Promise.all(Array.from({ length: N }, (_, i) =>
    modern(srv, user.pat, `hs-${i}`, 'tools/call', { name: 'slowinit__echo', arguments: { message: `call ${i}` } })));
  replies.forEach((r, i) => {
    assert.equal(r.status, 200, `call ${i}: ${r.text}`);
    assert.ok(r.body?.result, `call ${i} answered: ${r.text}`);
    assert.match(toolText(r.body.result), new RegExp(`call ${i}`), `call ${i} got its own answer`);
  });
  const log = await up.log();
  const inits = log.filter((e) => e.kind === 'rpc' && e.method === 'initialize');
  assert.equal(inits.length, 1, `one initialize reached the upstream, not ${inits.length}`);
  const calls = log.filter((e) => e.kind === 'rpc' && e.method === 'tools/call');
  assert.equal(calls.length, N, 'every call reached the upstream once');
  const sids = new Set(calls.map((e) => e.session));
  assert.equal(sids.size, 1, `all calls went on one upstream session, not ${[...sids].join(', ')}`);
  assert.ok([...sids][0], 'on an upstream session');
  // nothing was ended: no handshake replaced another's session
  assert.equal(log.filter((e) => e.kind === 'delete').length, 0, 'no upstream session was ended');
  // a later call needs no handshake
  const again = await modern(srv, user.pat, 'hs-again', 'tools/call', { name: 'slowinit__echo', arguments: { message: 'again' } });
  assert.equal(again.status, 200, again.text);
  assert.equal((await up.log()).filter((e) => e.kind === 'rpc' && e.method === 'initialize').length, 1);
});
