// A held audit row is written once. The batch whose commit "failed" may
// have committed just as its connection broke — the answer lost on the way
// back. A TCP proxy between Gatehouse and PostgreSQL cuts the connection
// the moment PostgreSQL answers a tools/call's audit INSERT (it has
// committed by then): the client gets the JSON-RPC error, the row is held
// as one whose call the upstream had, and the retry finds it in the log
// already. One row, not two. Gatehouse's role is an ordinary one without
// the TEMP privilege (the harness's default): the retry needs neither.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import fs from 'node:fs';
import readline from 'node:readline';
import { startCluster, startServer, startFixture, sourceDir } from '../../harness/index.mjs';
import { member, addConnector, rawSession, eventually } from './lib.mjs';

let cluster, proxy, srv, alpha, user;
let cuts = 0;

/* tests/fixtures/pgcut.mjs in front of the cluster's socket: { port, arm(), proc } */
async function startProxy(socketPath) {
  const proc = spawn(process.execPath, [path.join(sourceDir, 'tests/fixtures/pgcut.mjs'), socketPath],
    { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = readline.createInterface({ input: proc.stdout });
  const port = await new Promise((resolve, reject) => {
    lines.once('line', (l) => resolve(JSON.parse(l).port));
    proc.once('exit', (c) => reject(new Error(`pgcut exited ${c}`)));
  });
  lines.on('line', (l) => { if (l === 'cut') cuts++; });
  return { port, proc, arm: () => proc.stdin.write('arm\n') };
}

before(async () => {
  cluster = await startCluster();
  proxy = await startProxy(path.join(cluster.dir, '.s.PGSQL.5432'));
  alpha = await startFixture({ name: 'alpha', tools: ['echo'] });
  srv = await startServer({ cluster, name: 'gw-audit-once', env: {
    GATEHOUSE_DATABASE_URL: `postgresql://gatehouse@127.0.0.1:${proxy.port}/gatehouse?sslmode=disable` } });
  addConnector(srv, { name: 'alpha', url: alpha.url });
  user = member(srv);
});

after(async () => {
  await alpha?.stop();
  if (srv) assert.equal(await srv.stop(), 0);
  proxy?.proc.stdin.end();
  await cluster?.stop();
});

test('a row committed as its connection broke is held, and the retry does not write it twice', async () => {
  assert.equal(cluster.sql("SELECT rolsuper::text || ' ' || has_database_privilege('gatehouse', 'TEMP')::text FROM pg_roles WHERE rolname = current_user"),
    'false false', 'Gatehouse runs as an ordinary role without TEMP');
  const s = await rawSession(srv, user.pat);
  const warm = await s.call('tools/call', { name: 'alpha__echo', arguments: { message: 'warm' } });
  assert.equal(warm.status, 200, warm.text);

  proxy.arm();
  await new Promise((r) => setTimeout(r, 100));   // the line reaches the proxy
  const call = await s.call('tools/call', { name: 'alpha__echo', arguments: { message: 'cut' } });
  await eventually(() => cuts === 1, { what: 'the connection cut after the commit' });
  assert.ok(call.body?.error, `the call answers an error (its row's commit was not confirmed): ${call.text}`);
  const rid = call.headers.get('x-request-id');
  assert.match(rid ?? '', /^[0-9a-f]{16}$/);
  // PostgreSQL did commit it
  assert.equal(cluster.sql(`SELECT count(*) FROM audit_events WHERE request_id = '${rid}'`), '1');

  // the next good batch (or the 2 s timer) retries the held row: it finds it there
  const next = await s.call('tools/call', { name: 'alpha__echo', arguments: { message: 'next' } });
  assert.equal(next.status, 200, next.text);
  const log = () => fs.readFileSync(srv.logFile, 'utf8');
  await eventually(() => /1 held audit row\(s\) written/.test(log()), { what: 'the held row retried' });
  assert.equal(cluster.sql(`SELECT count(*) FROM audit_events WHERE request_id = '${rid}'`), '1', 'written once');
  assert.match(log(), /1 held audit row\(s\) written, 1 of them already in the log/);
  assert.equal(cluster.sql(`SELECT tool || '|' || upstream_status FROM audit_events WHERE request_id = '${rid}'`), 'alpha__echo|200');
});
