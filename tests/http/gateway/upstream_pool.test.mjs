// The gateway keeps its upstream connections: clients calling tools in a
// loop (as a load generator does) are carried on the connections opened for
// the calls in flight, not on new ones all along (libcurl's default
// connection cache holds only 4x the transfers in progress when a connection
// comes back, so every dip in load closed connections that were opened again
// a moment later: 86-88 for this test's 960 calls before the fix).  Every
// call audited.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, startFixture } from '../../harness/index.mjs';
import { member, addConnector, sdkClient, toolText, AuditLog } from './lib.mjs';

let srv, up, user, sdk;
const audit = new AuditLog();
const WORKERS = 32, CALLS = 30;

before(async () => {
  [up, srv] = await Promise.all([startFixture({ name: 'pool', json: true, tools: ['echo'] }), startServer({ name: 'gw-pool' })]);
  addConnector(srv, { name: 'pool', url: up.url });
  user = member(srv);
  sdk = await sdkClient(srv, user.pat);
  audit.expect({ method: 'initialize' });
});

after(async () => {
  await sdk?.client.close().catch(() => {});
  await up?.stop();
  if (srv) assert.equal(await srv.stop(), 0);
});

async function accepted() {
  const r = await fetch(`${up.base}/__connections`);
  assert.equal(r.status, 200);
  return (await r.json()).accepted;
}

test(`${WORKERS} clients calling in a loop reuse the upstream connections they opened`, async () => {
  const { client } = sdk;
  const first = await client.callTool({ name: 'pool__echo', arguments: { message: 'warm' } });
  audit.tool('pool__echo', 'pool');
  assert.match(toolText(first), /warm/);
  const before = await accepted();
  // like a load generator: each worker sends its next call when its last is
  // answered, so the number in flight moves between 0 and WORKERS
  await Promise.all(Array.from({ length: WORKERS }, async (_, w) => {
    for (let i = 0; i < CALLS; i++) {
      const r = await client.callTool({ name: 'pool__echo', arguments: { message: `w${w}-${i}` } });
      assert.equal(toolText(r), `pool: w${w}-${i}`);
      audit.tool('pool__echo', 'pool');
    }
  }));
  const opened = (await accepted()) - before;
  console.log(`# ${opened} upstream connections opened for ${WORKERS * CALLS} calls`);
  // at most one connection per call in flight (without the kept cache the
  // gateway closed idle connections and opened new ones all along)
  assert.ok(opened <= WORKERS + 2, `${opened} upstream connections opened for ${WORKERS * CALLS} calls from ${WORKERS} clients`);
});

test('every call has its audit row', () => { audit.check(srv); });
