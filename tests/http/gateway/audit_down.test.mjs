// No response before its audit row is committed: when the audit log cannot
// take rows, the requests that would do something (open a stream, end a
// session, pass a cancellation on, call a tool, answer a list, open a
// session) answer 503 or a JSON-RPC error and do nothing — a tools/call
// does not reach the upstream without its write-ahead row; once it takes
// rows again, all works.
// A forwarded call under way upstream when the log went down cannot be
// taken back: its row was written ahead, and its outcome is held and
// written once the log takes rows again; the refusals, which did nothing,
// leave no row. Held outcomes are also in a file in the data folder (0600,
// synced before the error goes out): after a shutdown with the log still
// down, or a crash, the next process that starts on that folder writes them.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { startServer, startFixture, sleep } from '../../harness/index.mjs';
import { member, addConnector, post, rawSession, eventually, LEGACY } from './lib.mjs';

let srv, alpha, beta, user, heldRid, timedOutRid, downUntil;
const FAIL_ON = `CREATE FUNCTION gh_test_audit_down() RETURNS trigger LANGUAGE plpgsql AS
  $$ BEGIN RAISE EXCEPTION 'audit log down (test)'; END $$;
  CREATE TRIGGER gh_test_audit_down BEFORE INSERT OR UPDATE ON audit_events FOR EACH ROW EXECUTE FUNCTION gh_test_audit_down();`;
const FAIL_OFF = 'DROP TRIGGER gh_test_audit_down ON audit_events; DROP FUNCTION gh_test_audit_down();';

before(async () => {
  alpha = await startFixture({ name: 'alpha', tools: ['echo', 'gate'] });
  // plain JSON replies: no status line before the answer (a timed-out call has none)
  beta = await startFixture({ name: 'beta', json: true, tools: ['slow'] });
  srv = await startServer({ name: 'gw-audit-down', env: { GATEHOUSE_UPSTREAM_CALL_TIMEOUT_MS: '1500' } });
  addConnector(srv, { name: 'alpha', url: alpha.url });
  addConnector(srv, { name: 'beta', url: beta.url });
  user = member(srv);
});

after(async () => {
  await alpha?.stop();
  await beta?.stop();
  if (srv) assert.equal(await srv.stop(), 0);
});

/* Starts a call and waits until the upstream has it (its write-ahead row
 * committed): { reply }, the promise of its reply. */
async function underWay(s, fx, name, args, event) {
  const seen = async () => (await fx.log()).filter((e) => e.event === event).length;
  const before = await seen();
  const reply = s.call('tools/call', { name, arguments: args });
  await eventually(async () => (await seen()) > before, { what: `${name} upstream` });
  return { reply };
}

function unavailable(r, what) {
  assert.equal(r.status, 503, `${what}: ${r.status} ${r.text}`);
  assert.equal(r.headers.get('retry-after'), '2', what);
  assert.equal(r.body?.error?.code, -32603, what);
  assert.match(r.body.error.message, /audit log is unavailable/, what);
}

test('the audit log down: GET, DELETE, notifications, tools/call and lists are refused and change nothing', async () => {
  const s = await rawSession(srv, user.pat);
  const warm = await s.call('tools/call', { name: 'alpha__echo', arguments: { message: 'warm' } });
  assert.equal(warm.status, 200, warm.text);
  // two calls under way upstream as the log goes down: one answered later,
  // one that times out before any answer (it may have acted all the same)
  const gate = await underWay(s, alpha, 'alpha__gate', {}, 'gate-waiting');
  const slowCall = await underWay(s, beta, 'beta__slow', { ms: 4000 }, 'slow-start');
  const rows = Number(srv.cluster.sql('SELECT count(*) FROM audit_events'));

  srv.cluster.sql(FAIL_ON);
  try {
    // (a stream opened anyway would never end: bounded, so that fails instead of hanging)
    const g = await post(srv, undefined, { method: 'GET', token: user.pat, session: s.session, version: LEGACY,
      accept: 'text/event-stream', signal: AbortSignal.timeout(15000) });
    unavailable(g, 'GET stream');
    const n = await post(srv, { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 7 } },
      { token: user.pat, session: s.session, version: LEGACY });
    unavailable(n, 'a notification');
    const d = await post(srv, undefined, { method: 'DELETE', token: user.pat, session: s.session, version: LEGACY });
    unavailable(d, 'DELETE');

    const unaudited = await s.call('tools/call', { name: 'alpha__echo', arguments: { message: 'unaudited' } });
    assert.equal(unaudited.body?.error?.code, -32603, unaudited.text);
    assert.match(unaudited.body.error.message, /audit log is unavailable; nothing was done/, 'tools/call without its write-ahead row');
    assert.ok(!(await alpha.log()).some((e) => e.method === 'tools/call' && e.params?.arguments?.message === 'unaudited'),
      'nothing goes upstream without its row');

    await alpha.release();
    const call = await gate.reply;
    assert.ok(call.body?.error, `tools/call answers an error: ${call.text}`);
    assert.doesNotMatch(call.text, /released/, 'the upstream answer does not leave without its outcome');
    heldRid = call.headers.get('x-request-id');
    assert.match(heldRid ?? '', /^[0-9a-f]{16}$/);
    // the call that went out and timed out before any answer: its outcome is held too
    const slow = await slowCall.reply;
    assert.ok(slow.body?.error, `the timed-out call answers an error: ${slow.text}`);
    timedOutRid = slow.headers.get('x-request-id');
    const list = await s.call('tools/list', {});
    assert.ok(list.body?.error, `tools/list answers an error: ${list.text}`);
    assert.equal(list.body?.result, undefined);
    // an initialize without its row: no session is announced, none is kept
    const sessions = srv.cluster.sql('SELECT count(*) FROM mcp_sessions');
    const init = await post(srv, { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: LEGACY,
      capabilities: {}, clientInfo: { name: 'unaudited', version: '1' } } }, { token: user.pat });
    assert.ok(init.body?.error, `initialize answers an error: ${init.text}`);
    assert.equal(init.headers.get('mcp-session-id'), null, 'no session id without the row');
    assert.equal(srv.cluster.sql('SELECT count(*) FROM mcp_sessions'), sessions, 'the session is not kept');
    // still down a while later (the held outcomes are retried every 2 s): nothing written
    await sleep(2500);
    assert.equal(Number(srv.cluster.sql('SELECT count(*) FROM audit_events')), rows, 'no row was written while it was down');
    assert.equal(srv.cluster.sql(`SELECT count(*) FROM audit_events WHERE request_id IN ('${heldRid}', '${timedOutRid}')
      AND call_id IS NOT NULL AND outcome_at IS NULL`), '2', 'the two rows were written ahead, their outcomes not yet');
  } finally {
    downUntil = srv.cluster.sql("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')");
    srv.cluster.sql(FAIL_OFF);
  }
  // the held outcome of the call the upstream had: its row completed, once, with the call's own time
  const held = await eventually(() => {
    const r = srv.cluster.sql(`SELECT method || '|' || tool || '|' || connector || '|' || upstream_status || '|' ||
      (at < '${downUntil}+00'::timestamptz) FROM audit_events WHERE request_id = '${heldRid}' AND outcome_at IS NOT NULL`);
    return r ? r : null;
  }, { what: 'the held audit outcome' });
  assert.equal(held, 'tools/call|alpha__gate|alpha|200|true');
  const timedOut = await eventually(() => srv.cluster.sql(`SELECT method || '|' || tool || '|' || coalesce(upstream_status::text, 'none')
    || '|' || upstream_error FROM audit_events WHERE request_id = '${timedOutRid}' AND outcome_at IS NOT NULL`) || null,
  { what: 'the held outcome of the timed-out call' });
  assert.equal(timedOut, "tools/call|beta__slow|none|Upstream 'beta' timed out.");
  assert.equal(Number(srv.cluster.sql('SELECT count(*) FROM audit_events')), rows,
    'outcomes complete their rows: the refusals did nothing and leave no row');

  // the DELETE did nothing: the session goes on, and everything is audited again
  const again = await s.call('tools/call', { name: 'alpha__echo', arguments: { message: 'back' } });
  assert.equal(again.status, 200, again.text);
  assert.equal(again.body.result.content[0].text, 'alpha: back');
  const g = await post(srv, undefined, { method: 'GET', token: user.pat, session: s.session, version: LEGACY,
    accept: 'text/event-stream', stream: true });
  assert.equal(g.status, 200);
  await g.sse.cancel();
  const d = await post(srv, undefined, { method: 'DELETE', token: user.pat, session: s.session, version: LEGACY });
  assert.ok([200, 204].includes(d.status), `DELETE: ${d.status}`);
  assert.ok(Number(srv.cluster.sql('SELECT count(*) FROM audit_events')) >= rows + 3, 'the call, the GET and the DELETE have their rows');
});

/* The log down, one call's outcome held, the process ended by `signal`;
 * then the log back and the next process on the same data folder
 * completes the row, once. */
async function heldAcrossEnd(signal) {
  const s = await rawSession(srv, user.pat);
  const gate = await underWay(s, alpha, 'alpha__gate', {}, 'gate-waiting');
  srv.cluster.sql(FAIL_ON);
  let rid, spool;
  try {
    await alpha.release();
    const call = await gate.reply;
    assert.ok(call.body?.error, `tools/call answers an error: ${call.text}`);
    rid = call.headers.get('x-request-id');
    // on disk (synced) before the error went out, whatever happens to the process next
    const files = fs.readdirSync(srv.dataDir).filter((f) => /^audit-held-\d+-\d+\.rows$/.test(f));
    assert.equal(files.length, 1, `one spool file: ${files}`);
    spool = path.join(srv.dataDir, files[0]);
    assert.equal(fs.statSync(spool).mode & 0o777, 0o600, 'readable by the server only');
    assert.match(fs.readFileSync(spool, 'utf8'), new RegExp(`\\t${rid}\\ttools/call\\talpha__gate\\t`));
    const code = await srv.stopProcess(signal);
    assert.equal(code, signal === 'SIGKILL' ? 'SIGKILL' : 0);
    assert.ok(fs.existsSync(spool), 'the file outlives the process');
    // a crash can cut the last line short: the complete ones are still taken up
    if (signal === 'SIGKILL') fs.appendFileSync(spool, `2026-01-01 00:00:00+00\t\\N\tcut`);
  } finally {
    srv.cluster.sql(FAIL_OFF);
  }
  assert.equal(srv.cluster.sql(`SELECT count(*) FROM audit_events WHERE request_id = '${rid}' AND outcome_at IS NULL`), '1',
    'the row written ahead, without its outcome');
  // a damaged file beside it is left in place, and does not hold the good one back
  const damaged = path.join(srv.dataDir, 'audit-held-1-0.rows');
  fs.writeFileSync(damaged, 'not\ta\trow\n', { mode: 0o600 });
  await srv.start();
  const row = await eventually(() => srv.cluster.sql(`SELECT tool || '|' || upstream_status FROM audit_events
    WHERE request_id = '${rid}' AND outcome_at IS NOT NULL`) || null, { what: 'the held outcome written by the next start' });
  assert.equal(row, 'alpha__gate|200');
  await eventually(() => !fs.existsSync(spool), { what: 'the spool file removed once written' });
  assert.equal(srv.cluster.sql(`SELECT count(*) FROM audit_events WHERE request_id = '${rid}'`), '1');
  assert.ok(fs.existsSync(damaged), 'the damaged file stays');
  if (signal === 'SIGKILL') assert.match(fs.readFileSync(srv.logFile, 'utf8'), /1 held audit row\(s\) of an earlier process taken up from .*\(an incomplete last line left out\)/);
  assert.match(fs.readFileSync(srv.logFile, 'utf8'), /held audit rows in .*audit-held-1-0\.rows not taken up/);
  fs.rmSync(damaged);
}

test('rows still held at shutdown stay in the data folder and the next start writes them, once', () => heldAcrossEnd('SIGTERM'));
test('so do the rows held by a process that crashed (SIGKILL)', () => heldAcrossEnd('SIGKILL'));
