// An upstream that floods a forwarded call with requests to the client and
// never takes the answers (tests/fixtures/relay_flood.mjs): the gateway
// refuses each (the session's client declared no capability for foo/bar)
// but keeps at most GW_RELAY_REFUSALS_PER_CONNECTOR (16) of one connector's
// refusals in flight, GW_RELAY_REFUSALS_MAX (64) in all; the rest go
// unanswered. So the flood holds no transfer (and no memory) per request —
// it held 2,000 transfers for the call timeout before — the call itself
// still gets its result, other connectors keep working, and another
// upstream's requests are still refused (answered) during the flood.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { startServer, startFixture, sourceDir, sleep } from '../../harness/index.mjs';
import { member, addConnector, rawSession, eventually } from './lib.mjs';

const PER_CONNECTOR = 16;
const N = 2000;
let srv, alpha, flood, other, user;

async function startFlood(n) {
  const proc = spawn(process.execPath, [path.join(sourceDir, 'tests/fixtures/relay_flood.mjs'), JSON.stringify({ n })],
    { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise((resolve, reject) => {
    readline.createInterface({ input: proc.stdout }).once('line', (l) => resolve(JSON.parse(l).port));
    proc.once('exit', (c) => reject(new Error(`relay_flood exited ${c}`)));
  });
  const base = `http://127.0.0.1:${port}`;
  return { proc, url: `${base}/mcp`, stats: async () => (await fetch(`${base}/__stats`)).json() };
}

const inflight = async () => Number((await (await fetch(`${srv.url}/metrics`)).text())
  .match(/^gatehouse_mcp_upstream_inflight (\d+)$/m)[1]);

before(async () => {
  [alpha, flood, other] = await Promise.all([startFixture({ name: 'alpha', tools: ['echo'] }), startFlood(N), startFlood(10)]);
  srv = await startServer({ name: 'gw-relay-flood' });
  addConnector(srv, { name: 'alpha', url: alpha.url });
  addConnector(srv, { name: 'flood', url: flood.url });
  addConnector(srv, { name: 'other', url: other.url });
  user = member(srv);
});

after(async () => {
  await alpha?.stop();
  flood?.proc.kill();
  other?.proc.kill();
  if (srv) assert.equal(await srv.stop(), 0);
});

test('a flood of upstream requests holds at most 16 refusals in flight; another upstream is still answered', async () => {
  const s = await rawSession(srv, user.pat);
  const r = await s.call('tools/call', { name: 'flood__flood', arguments: {} });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body?.result?.content?.[0]?.text, 'flooded', r.text);

  // the refusals that were sent reach the upstream, which holds them open
  await eventually(async () => (await flood.stats()).answers > 0, { what: 'refusals posted back' });
  await sleep(1000);
  const st = await flood.stats();
  assert.ok(st.answers <= PER_CONNECTOR, `${st.answers} of ${N} requests answered (at most ${PER_CONNECTOR} at a time)`);
  assert.ok(await inflight() <= PER_CONNECTOR + 1, `upstream transfers in flight: ${await inflight()}`);
  assert.match(fs.readFileSync(srv.logFile, 'utf8'), /connector flood: too many refusals in flight \(16 of its own, 64 in all at most\)/);

  // while the flood holds its refusals, another upstream's requests are still refused, each of them
  const r2 = await s.call('tools/call', { name: 'other__flood', arguments: {} });
  assert.equal(r2.status, 200, r2.text);
  await eventually(async () => (await other.stats()).answers === 10, { what: "the other upstream's 10 requests answered" });
  assert.ok((await flood.stats()).answers <= PER_CONNECTOR);

  // the gateway goes on: another connector's tool
  const echo = await s.call('tools/call', { name: 'alpha__echo', arguments: { message: 'still here' } });
  assert.equal(echo.status, 200, echo.text);
  assert.match(echo.text, /still here/);
});
