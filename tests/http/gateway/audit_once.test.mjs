// A held audit row is written once. The batch whose commit "failed" may
// have committed just as its connection broke — the answer lost on the way
// back. A TCP proxy between Gatehouse and PostgreSQL cuts the connection
// the moment PostgreSQL answers the UPDATE that completes a tools/call's
// write-ahead row with its outcome (it has committed by then): the client
// gets the JSON-RPC error, the outcome is held as one of a call the
// upstream had, and the retry finds it in the log already. One row, one
// outcome, not two. Gatehouse's role is an ordinary one without
// the TEMP privilege (the harness's default): the retry needs neither.
// The connection may also break while PostgreSQL is still committing the
// row (a slow fsync, synchronous replication): the retry waits for that
// commit before it looks, and still writes the row once.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { startCluster, startServer, startFixture, startPgCut } from '../../harness/index.mjs';
import { member, addConnector, rawSession, eventually } from './lib.mjs';

let cluster, proxy, srv, alpha, user;

before(async () => {
  cluster = await startCluster();
  proxy = await startPgCut(cluster);
  alpha = await startFixture({ name: 'alpha', tools: ['echo', 'gate'] });
  srv = await startServer({ cluster, name: 'gw-audit-once', env: {
    GATEHOUSE_DATABASE_URL: proxy.url } });
  addConnector(srv, { name: 'alpha', url: alpha.url });
  user = member(srv);
});

after(async () => {
  await alpha?.stop();
  if (srv) assert.equal(await srv.stop(), 0);
  proxy?.stop();
  await cluster?.stop();
});

/* A gate call under way upstream (its write-ahead row committed):
 * { reply }, the promise of its reply, which comes once the fixture
 * releases it (wrapped: an async function's promise would wait for it). */
async function gateCall(s) {
  const waiting = async () => (await alpha.log()).filter((e) => e.event === 'gate-waiting').length;
  const before = await waiting();
  const reply = s.call('tools/call', { name: 'alpha__gate', arguments: {} });
  await eventually(async () => (await waiting()) > before, { what: 'the gate call upstream' });
  return { reply };
}

test('an outcome committed as its connection broke is held, and the retry does not write it twice', async () => {
  assert.equal(cluster.sql("SELECT rolsuper::text || ' ' || has_database_privilege('gatehouse', 'TEMP')::text FROM pg_roles WHERE rolname = current_user"),
    'false false', 'Gatehouse runs as an ordinary role without TEMP');
  const s = await rawSession(srv, user.pat);
  const warm = await s.call('tools/call', { name: 'alpha__echo', arguments: { message: 'warm' } });
  assert.equal(warm.status, 200, warm.text);

  const { reply: pending } = await gateCall(s);
  proxy.arm();
  await new Promise((r) => setTimeout(r, 100));   // the line reaches the proxy
  await alpha.release();
  const call = await pending;
  await eventually(() => proxy.cuts === 1, { what: 'the connection cut after the commit' });
  assert.ok(call.body?.error, `the call answers an error (its row's commit was not confirmed): ${call.text}`);
  const rid = call.headers.get('x-request-id');
  assert.match(rid ?? '', /^[0-9a-f]{16}$/);
  // PostgreSQL did commit it
  assert.equal(cluster.sql(`SELECT count(*) FROM audit_events WHERE request_id = '${rid}' AND outcome_at IS NOT NULL`), '1');

  // the next good batch (or the 2 s timer) retries the held row: it finds it there
  const next = await s.call('tools/call', { name: 'alpha__echo', arguments: { message: 'next' } });
  assert.equal(next.status, 200, next.text);
  const log = () => fs.readFileSync(srv.logFile, 'utf8');
  await eventually(() => /1 held audit row\(s\) written/.test(log()), { what: 'the held row retried' });
  assert.equal(cluster.sql(`SELECT count(*) FROM audit_events WHERE request_id = '${rid}'`), '1', 'written once');
  assert.match(log(), /1 held audit row\(s\) written, 1 of them already in the log/);
  assert.equal(cluster.sql(`SELECT tool || '|' || upstream_status FROM audit_events WHERE request_id = '${rid}'`), 'alpha__gate|200');
});

test('an outcome whose commit is still running when its connection broke is not written a second time by the retry', async () => {
  const s = await rawSession(srv, user.pat);
  const warm = await s.call('tools/call', { name: 'alpha__echo', arguments: { message: 'warm' } });
  assert.equal(warm.status, 200, warm.text);
  const { reply: pending } = await gateCall(s);
  // the next outcome takes 3 s to commit (one only: later ones do not sleep)
  cluster.sql(`CREATE SEQUENCE gh_test_slow_once;
    CREATE FUNCTION gh_test_slow_once() RETURNS trigger LANGUAGE plpgsql AS
      $$ BEGIN IF NEW.tool = 'alpha__gate' AND nextval('gh_test_slow_once') = 1 THEN PERFORM pg_sleep(3); END IF;
         RETURN NEW; END $$;
    CREATE TRIGGER gh_test_slow_once BEFORE UPDATE ON audit_events FOR EACH ROW EXECUTE FUNCTION gh_test_slow_once();`);
  try {
    const log = () => fs.readFileSync(srv.logFile, 'utf8');
    const logFrom = log().length;
    const cutsBefore = proxy.cuts;
    proxy.armSend();
    await new Promise((r) => setTimeout(r, 100));   // the line reaches the proxy
    await alpha.release();
    const call = await pending;
    const cutAt = Date.now();
    await eventually(() => proxy.cuts === cutsBefore + 1, { what: 'the connection cut as the UPDATE went out' });
    assert.ok(call.body?.error, `the call answers an error (its row's commit was not confirmed): ${call.text}`);
    const rid = call.headers.get('x-request-id');
    assert.match(rid ?? '', /^[0-9a-f]{16}$/);
    assert.match(log().slice(logFrom), new RegExp(`audit row of request ${rid} .* held until the log takes rows again`));

    // the log takes rows again at once: the retry runs while the first commit is still under way
    const next = await s.call('tools/call', { name: 'alpha__echo', arguments: { message: 'next' } });
    assert.equal(next.status, 200, next.text);
    await eventually(() => /1 held audit row\(s\) written/.test(log().slice(logFrom)), { what: 'the held row retried' });
    // the orphaned UPDATE has finished (and committed) by now
    await new Promise((r) => setTimeout(r, Math.max(0, cutAt + 4000 - Date.now())));
    assert.equal(cluster.sql(`SELECT count(*) FROM audit_events WHERE request_id = '${rid}'`), '1', 'written once');
    assert.equal(cluster.sql(`SELECT tool || '|' || upstream_status || '|' || (outcome_at IS NOT NULL)
      FROM audit_events WHERE request_id = '${rid}'`), 'alpha__gate|200|true', 'with its outcome');
    assert.match(log().slice(logFrom), /1 held audit row\(s\) written, 1 of them already in the log/);
  } finally {
    cluster.sql('DROP TRIGGER gh_test_slow_once ON audit_events; DROP FUNCTION gh_test_slow_once(); DROP SEQUENCE gh_test_slow_once;');
  }
});
