// 2026-07-28 resources/read of a resource that does not exist: -32602
// (Resources, Error Handling: "servers MUST return a JSON-RPC error with code
// -32602"), never -32002, which this revision forbids ("Implementations of
// this protocol version MUST NOT emit these codes: -32002"): neither the
// gateway's own refusal (no connector has the URI) nor a session-era
// upstream's -32002 passed on.  A session client keeps -32002.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, startFixture } from '../../harness/index.mjs';
import { member, addConnector, modern, rawSession } from './lib.mjs';

let srv, alpha, user;

before(async () => {
  alpha = await startFixture({ name: 'alpha' });
  srv = await startServer({ name: 'gw-stateless-resource-errors' });
  // two connectors: a URI neither lists is the gateway's own refusal
  addConnector(srv, { name: 'alpha', url: alpha.url });
  addConnector(srv, { name: 'beta', url: alpha.url });
  user = member(srv);
});

after(async () => {
  await alpha?.stop();
  if (srv) assert.equal(await srv.stop(), 0);
});

test('stateless resources/read of an unknown URI: -32602 with the URI, from the gateway and from an upstream', async () => {
  const wrong = [];
  for (const [what, uri] of [['no connector has it', 'nowhere://x/none'], ['the upstream says -32002', 'fixture://alpha/items/']]) {
    const r = await modern(srv, user.pat, what, 'resources/read', { uri });
    if (r.body?.error?.code !== -32602 || r.body?.id !== what) wrong.push(`${what}: ${r.status} ${r.text}`);
  }
  assert.deepEqual(wrong, [], 'resource not found is -32602 in the stateless revision');
});

test('a session client still gets -32002 for an unknown URI', async () => {
  const s = await rawSession(srv, user.pat);
  const r = await s.call('resources/read', { uri: 'nowhere://x/none' });
  assert.equal(r.body?.error?.code, -32002, r.text);
});
