// A database that takes connections and never answers them (a wedged proxy
// or pooler, a partition past the first hop): a request that needs a new
// connection gets 503 with Retry-After once the connect timeout (10 s
// unless the URL sets connect_timeout) is over, instead of holding its
// thread for as long as TCP waits; and the server serves again once the
// database answers.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { startCluster, startServer, startPgCut, sleep } from '../harness/index.mjs';

let cluster, proxy, srv;

before(async () => {
  cluster = await startCluster();
  proxy = await startPgCut(cluster);
  // one pooled connection: the request after the first failure must connect anew
  srv = await startServer({ cluster, name: 'db-stall', env: { GATEHOUSE_DATABASE_URL: proxy.url, GATEHOUSE_DB_POOL_SIZE: '1' } });
});

after(async () => {
  try {
    if (srv) assert.equal(await srv.stop(), 0);
  } finally {
    proxy?.stop();
    await cluster?.stop();
  }
});

/* A request that reads the database: the token endpoint looks the client up. */
function tokenRequest() {
  return fetch(`${srv.url}/oauth/token`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: 'grant_type=refresh_token&refresh_token=not-a-token&client_id=no-such-client',
    signal: AbortSignal.timeout(40000),
  });
}

test('a database that never answers a new connection: 503 after the connect timeout, then service again', async () => {
  assert.equal((await tokenRequest()).status, 401);
  // the client reaper runs once at start on a pooled connection; with one
  // connection in the pool, a reap still under way when the database stalls
  // holds it through its own connect timeouts (the request then gets 503
  // "pool exhausted" after 3 s, not the connect timeout this test is about)
  const reaped = Date.now() + 20000;
  while (!/"event":"client_reap"/.test(fs.readFileSync(srv.logFile, 'utf8')) && Date.now() < reaped) await sleep(100);
  await proxy.stall();
  // every pooled connection (and the listener's) must connect again
  cluster.sql("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename = 'gatehouse' AND pid <> pg_backend_pid()",
    { user: 'pgadmin', db: 'postgres' });
  // the first request meets the killed connection (503 at once, or after
  // the connect timeout when it was idle and is retried on a new one)
  const first = await tokenRequest();
  assert.equal(first.status, 503, await first.text());
  // the next one needs a new connection, which the database never answers
  const t0 = Date.now();
  const r = await tokenRequest();
  const took = Date.now() - t0;
  assert.equal(r.status, 503, await r.text());
  assert.ok(r.headers.get('retry-after'), 'Retry-After on the 503');
  assert.ok(took >= 9000 && took < 30000, `answered after ${took} ms`);
  proxy.unstall();
  // connections opened from now on pass (an attempt begun before may still
  // run out its timeout): service comes back without a restart
  const until = Date.now() + 30000;
  let status;
  while ((status = (await tokenRequest()).status) !== 401 && Date.now() < until) await sleep(500);
  assert.equal(status, 401);
});
