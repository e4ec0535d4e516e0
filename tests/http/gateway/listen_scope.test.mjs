// An upstream's list_changed that arrives through one member's implicit
// stateless state (2026-07-28 callers share one per agent and member) goes
// to that member's subscriptions/listen streams only: not to another
// member's listen, nor to another member's session GET stream.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, startFixture } from '../../harness/index.mjs';
import { member, addConnector, post, rawSession, modernMsg, modernHeaders, LEGACY } from './lib.mjs';

let srv, alpha, ann, bob;
const within = (p, ms) => Promise.race([p, new Promise((r) => setTimeout(() => r(null), ms))]);

before(async () => {
  alpha = await startFixture({ name: 'alpha', tools: ['echo'] });
  srv = await startServer({ name: 'gw-listen-scope' });
  addConnector(srv, { name: 'alpha', url: alpha.url });
  ann = member(srv);
  bob = member(srv);
});

after(async () => {
  await alpha?.stop();
  if (srv) assert.equal(await srv.stop(), 0);
});

async function listen(user, sub, signal) {
  const msg = modernMsg(sub, 'subscriptions/listen', { notifications: { toolsListChanged: true } });
  const s = await post(srv, msg, { token: user.pat, headers: modernHeaders(msg), stream: true, signal });
  assert.equal(s.status, 200);
  assert.equal((await s.sse.next()).method, 'notifications/subscriptions/acknowledged');
  return s;
}

test("an upstream's list_changed through a member's stateless state reaches that member's listens only", async () => {
  const ctl = new AbortController();
  const annListen = await listen(ann, 'sub-ann', ctl.signal);
  const bobListen = await listen(bob, 'sub-bob', ctl.signal);
  // bob also holds a session with a GET stream; it never talked to the upstream
  const bs = await rawSession(srv, bob.pat);
  const bobGet = await post(srv, undefined, { method: 'GET', token: bob.pat, session: bs.session, version: LEGACY,
    accept: 'text/event-stream', stream: true, signal: ctl.signal });
  assert.equal(bobGet.status, 200);

  // ann's stateless call goes upstream on her implicit state's upstream session
  const msg = modernMsg(1, 'tools/call', { name: 'alpha__echo', arguments: { message: 'ann' } });
  const c = await post(srv, msg, { token: ann.pat, headers: modernHeaders(msg) });
  assert.equal(c.status, 200, c.text);
  const annUp = (await alpha.log()).find((e) => e.kind === 'rpc' && e.method === 'tools/call')?.session;
  assert.ok(annUp, "ann's upstream session");
  await alpha.waitFor((e) => e.kind === 'get' && e.session === annUp, { what: "the upstream stream of ann's state" });

  // the upstream changes its list for ann's upstream session only
  const bobNext = bobListen.sse.next();
  const bobGetNext = bobGet.sse.next();
  await alpha.listChanged(annUp);
  const [n] = await annListen.sse.until((m) => m.method === 'notifications/tools/list_changed', "ann's list_changed");
  assert.equal(n.params._meta['io.modelcontextprotocol/subscriptionId'], 'sub-ann');
  assert.equal(await within(bobNext, 1500), null, "bob's listen got nothing");
  assert.equal(await within(bobGetNext, 10), null, "bob's GET stream got nothing");
  ctl.abort();
});

test("a listen that is a member's first request still hears the upstream's list_changed", async () => {
  const cy = member(srv);
  await alpha.resetLog();
  const ctl = new AbortController();
  const s = await listen(cy, 'sub-cy', ctl.signal);
  // the listen itself opened cy's upstream session and its stream
  await alpha.waitFor((e) => e.kind === 'get', { what: "the upstream stream of cy's implicit state" });
  await alpha.listChanged();
  const [n] = await s.sse.until((m) => m.method === 'notifications/tools/list_changed', "cy's list_changed");
  assert.equal(n.params._meta['io.modelcontextprotocol/subscriptionId'], 'sub-cy');
  ctl.abort();
});
