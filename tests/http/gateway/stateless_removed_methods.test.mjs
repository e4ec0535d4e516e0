// Methods 2026-07-28 removed (Key Changes: ping, logging/setLevel,
// resources/subscribe and resources/unsubscribe, the last two replaced by
// subscriptions/listen) are not served in that revision: "If the server does
// not implement the requested RPC method, it MUST respond with 404 Not Found
// and a JSON-RPC error with code -32601" — nothing reaches an upstream, no
// state is left on the member's shared upstream sessions.  server/discover
// does not claim resources.subscribe, which its subscriptions/listen does not
// honour (resourceSubscriptions is left out of the acknowledgment).  A session
// client keeps all four methods.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, startFixture } from '../../harness/index.mjs';
import { member, addConnector, modern, rawSession } from './lib.mjs';

let srv, alpha, user;

before(async () => {
  alpha = await startFixture({ name: 'alpha', tools: ['echo'] });
  srv = await startServer({ name: 'gw-stateless-removed' });
  addConnector(srv, { name: 'alpha', url: alpha.url });
  user = member(srv);
});

after(async () => {
  await alpha?.stop();
  if (srv) assert.equal(await srv.stop(), 0);
});

const uri = 'fixture://alpha/readme';
const REMOVED = [
  ['ping', {}],
  ['logging/setLevel', { level: 'debug' }],
  ['resources/subscribe', { uri }],
  ['resources/unsubscribe', { uri }],
];

test('ping, logging/setLevel, resources/subscribe and /unsubscribe: 404 -32601 in the stateless revision', async () => {
  await alpha.resetLog();
  const wrong = [];
  for (const [method, params] of REMOVED) {
    const r = await modern(srv, user.pat, `rm-${method}`, method, params);
    if (r.status !== 404 || r.body?.error?.code !== -32601 || r.body?.id !== `rm-${method}`)
      wrong.push(`${method}: ${r.status} ${r.text}`);
  }
  assert.deepEqual(wrong, [], 'each removed method is not found');
  const reached = (await alpha.log()).filter((e) => ['logging/setLevel', 'resources/subscribe', 'resources/unsubscribe'].includes(e.method));
  assert.deepEqual(reached.map((e) => e.method), [], 'nothing reached the upstream');
});

test('server/discover does not claim resources.subscribe', async () => {
  const r = await modern(srv, user.pat, 'disc', 'server/discover', {});
  assert.equal(r.status, 200, r.text);
  assert.ok(r.body.result.capabilities.resources, r.text);
  assert.notEqual(r.body.result.capabilities.resources.subscribe, true, r.text);
});

test('a session client keeps ping and logging/setLevel', async () => {
  const s = await rawSession(srv, user.pat);
  for (const [method, params] of REMOVED.slice(0, 2)) {
    const r = await s.call(method, params);
    assert.equal(r.status, 200, `${method}: ${r.text}`);
    assert.ok(r.body?.result, `${method}: ${r.text}`);
  }
});
