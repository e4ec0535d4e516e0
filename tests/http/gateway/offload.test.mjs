// A request that must first wait for an upstream (a handshake, a list not
// cached yet) does not hold a server thread: with one HTTP server thread
// (GATEHOUSE_HTTP_THREADS=1) and an upstream that accepts connections and
// never answers, other clients' requests are answered while the first one
// is still waiting; the first one then ends with the stuck connector listed
// as unavailable, and both are audited. The same for a tools/list inside a
// 2025-03-26 batch.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { startServer, startFixture } from '../../harness/index.mjs';
import { member, addConnector, rawSession, auditRows, post } from './lib.mjs';

let srv, alpha, stuck, user;
const held = [];
let hang = true;                // false: connections are dropped at once

before(async () => {
  // accepts, reads, never answers: an upstream hung mid-request
  stuck = net.createServer((sock) => {
    sock.on('error', () => {});
    if (!hang) return sock.destroy();
    held.push(sock);
  });
  await new Promise((resolve) => stuck.listen(0, '127.0.0.1', resolve));
  [alpha, srv] = await Promise.all([
    startFixture({ name: 'alpha', tools: ['echo'] }),
    startServer({ name: 'gw-offload', env: { GATEHOUSE_HTTP_THREADS: '1', GATEHOUSE_UPSTREAM_CALL_TIMEOUT_MS: '60000' } }),
  ]);
  addConnector(srv, { name: 'alpha', url: alpha.url });
  addConnector(srv, { name: 'stuck', url: `http://127.0.0.1:${stuck.address().port}/mcp` });
  user = member(srv);
});

after(async () => {
  for (const s of held) s.destroy();
  await new Promise((resolve) => stuck.close(resolve));
  await alpha?.stop();
  if (srv) assert.equal(await srv.stop(), 0);
});

async function until(pred, what) {
  for (let i = 0; i < 600; i++) {
    if (pred()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

test('a request waiting on a hung upstream does not stall the others (one server thread)', async () => {
  const a = await rawSession(srv, user.pat);
  let aDone = false;
  const first = a.call('tools/list', {}).then((r) => { aDone = true; return r; });
  await until(() => held.length > 0, 'the gateway to reach the hung upstream');

  // meanwhile, on the only server thread: a new session, a ping, a list of
  // its own (also waiting on the hung upstream, and also not in the way)
  const b = await rawSession(srv, user.pat);
  const ping = await b.call('ping', {});
  assert.equal(ping.status, 200, ping.text);
  assert.deepEqual(ping.body.result, {});
  let bListDone = false;
  const second = b.call('tools/list', {}).then((r) => { bListDone = true; return r; });
  const c = await rawSession(srv, user.pat);
  const ping2 = await c.call('ping', {});
  assert.equal(ping2.status, 200, ping2.text);
  assert.equal(aDone, false, 'the first tools/list is still waiting on the hung upstream');
  assert.equal(bListDone, false, 'and so is the second');

  // the upstream gives up: both lists end, the stuck connector reported as unavailable
  await until(() => held.length >= 2, 'both handshakes to reach the hung upstream');
  hang = false;
  for (const s of held) s.destroy();
  for (const r of [await first, await second]) {
    assert.equal(r.status, 200, r.text);
    const names = r.body.result.tools.map((t) => t.name);
    assert.ok(names.includes('alpha__echo'), `listed: ${names}`);
    assert.deepEqual(r.body.result._meta['io.gatehouse/unavailableConnectors'], ['stuck']);
  }
  const rows = auditRows(srv, `method IN ('tools/list', 'ping')`);
  assert.equal(rows.filter((x) => x.method === 'tools/list').length, 2);
  assert.equal(rows.filter((x) => x.method === 'ping').length, 2);
});

test('a batch whose tools/list waits on a hung upstream does not stall the others either', async () => {
  held.length = 0;
  hang = true;
  const old = await rawSession(srv, user.pat, { version: '2025-03-26' });
  let done = false;
  const batch = post(srv, [{ jsonrpc: '2.0', id: 1, method: 'ping' }, { jsonrpc: '2.0', id: 2, method: 'tools/list' }],
    { token: user.pat, session: old.session, version: '2025-03-26' }).then((r) => { done = true; return r; });
  await until(() => held.length > 0, 'the batch to reach the hung upstream');

  const other = await rawSession(srv, user.pat);
  const ping = await other.call('ping', {});
  assert.equal(ping.status, 200, ping.text);
  assert.equal(done, false, 'the batch is still waiting on the hung upstream');

  hang = false;
  for (const s of held) s.destroy();
  const r = await batch;
  assert.equal(r.status, 200, r.text);
  const list = r.body.find((x) => x.id === 2);
  assert.ok(list.result.tools.some((t) => t.name === 'alpha__echo'), r.text);
  assert.deepEqual(list.result._meta['io.gatehouse/unavailableConnectors'], ['stuck']);
});
