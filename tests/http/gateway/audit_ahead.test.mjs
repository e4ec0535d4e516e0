// Write-ahead audit: the row of a forwarded call — who called what, with
// which decision — is committed before the call goes upstream, and the
// call's outcome (upstream status, duration, error) completes that row
// afterwards. Killed with SIGKILL while calls are in flight upstream, the
// server leaves a row for every call the upstream saw: complete for the
// calls that ended, without an outcome for those cut short; the next
// process neither loses nor invents one.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, startFixture } from '../../harness/index.mjs';
import { member, addConnector, rawSession, eventually } from './lib.mjs';

let srv, alpha, user;
const IN_FLIGHT = 4;

before(async () => {
  [alpha, srv] = await Promise.all([
    startFixture({ name: 'alpha', tools: ['echo', 'gate', 'error'] }),
    startServer({ name: 'gw-audit-ahead' }),
  ]);
  addConnector(srv, { name: 'alpha', url: alpha.url });
  user = member(srv);
});

after(async () => {
  await alpha?.stop();
  if (srv) assert.equal(await srv.stop(), 0);
});

const rowOf = (rid) => {
  const out = srv.cluster.sql(`SELECT coalesce(json_agg(row_to_json(a)), '[]') FROM audit_events a WHERE request_id = '${rid}'`);
  return JSON.parse(out);
};
const upstreamCalls = async () => (await alpha.log()).filter((e) => e.kind === 'rpc' && e.method === 'tools/call');

test('a kill -9 with calls in flight: every call the upstream saw has its row; the outcome is missing only for those cut short', async () => {
  const s = await rawSession(srv, user.pat);
  await alpha.resetLog();

  // calls that end: one row each, written ahead and completed
  const ended = [];
  for (const message of ['one', 'two']) {
    const r = await s.call('tools/call', { name: 'alpha__echo', arguments: { message } });
    assert.equal(r.status, 200, r.text);
    ended.push(r.headers.get('x-request-id'));
  }
  const err = await s.call('tools/call', { name: 'alpha__error', arguments: {} });
  assert.equal(err.body?.error?.code, -32602, err.text);

  // calls held open upstream (each sends a progress notification, so its
  // reply's headers, with the request id, are out while it waits)
  const ctls = [];
  const open = await Promise.all(Array.from({ length: IN_FLIGHT }, (_, i) => {
    const ctl = new AbortController();
    ctls.push(ctl);
    return s.call('tools/call', { name: 'alpha__gate', arguments: {}, _meta: { progressToken: `p-${i}` } },
      { stream: true, signal: ctl.signal });
  }));
  const cut = open.map((r) => r.headers.get('x-request-id'));
  await eventually(async () => (await alpha.log()).filter((e) => e.event === 'gate-waiting').length === IN_FLIGHT,
    { what: 'every gate call upstream' });
  // the rows of the calls in flight are there already, before any outcome
  for (const rid of cut) {
    const rows = rowOf(rid);
    assert.equal(rows.length, 1, `in flight ${rid}: ${JSON.stringify(rows)}`);
    assert.equal(rows[0].outcome_at, null);
  }

  assert.equal(await srv.stopProcess('SIGKILL'), 'SIGKILL');
  for (const c of ctls) c.abort();

  // every call the upstream saw, and only those, has exactly one row
  const seen = await upstreamCalls();
  assert.equal(seen.length, 2 + 1 + IN_FLIGHT, JSON.stringify(seen.map((e) => e.params?.name)));
  const who = { user_email: user.email, credential_kind: 'pat', agent_slug: 'default', method: 'tools/call',
    connector: 'alpha', decision: 'allow', message: 'allowed by policy' };
  for (const rid of ended) {
    const [row, ...more] = rowOf(rid);
    assert.equal(more.length, 0, rid);
    assert.deepEqual({ ...row, ...who, tool: 'alpha__echo' }, row, `the decision: ${JSON.stringify(row)}`);
    assert.match(row.call_id, /^[0-9a-f]{32}$/);
    assert.ok(row.outcome_at && row.upstream_status === 200 && row.duration_us > 0 && row.upstream_error === null,
      `complete: ${JSON.stringify(row)}`);
  }
  const [e] = rowOf(err.headers.get('x-request-id'));
  assert.ok(e.outcome_at && e.upstream_status === 200, JSON.stringify(e));
  assert.match(e.upstream_error, /alpha refuses/, 'the upstream\'s error is the outcome');
  for (const rid of cut) {
    const [row, ...more] = rowOf(rid);
    assert.equal(more.length, 0, rid);
    assert.deepEqual({ ...row, ...who, tool: 'alpha__gate' }, row, `the decision: ${JSON.stringify(row)}`);
    assert.match(row.call_id, /^[0-9a-f]{32}$/);
    assert.deepEqual([row.outcome_at, row.upstream_status, row.duration_us, row.upstream_error], [null, null, null, null],
      `cut short: no outcome: ${JSON.stringify(row)}`);
  }
  const total = Number(srv.cluster.sql("SELECT count(*) FROM audit_events WHERE method = 'tools/call'"));
  assert.equal(total, seen.length, 'no row of a call the upstream did not see');

  // the next process: the cut-short rows stay as they are; calls are audited as before
  await srv.start();
  const s2 = await rawSession(srv, user.pat);
  const r = await s2.call('tools/call', { name: 'alpha__echo', arguments: { message: 'after' } });
  assert.equal(r.status, 200, r.text);
  const [after] = rowOf(r.headers.get('x-request-id'));
  assert.ok(after.call_id && after.outcome_at && after.upstream_status === 200, JSON.stringify(after));
  assert.equal(srv.cluster.sql(`SELECT count(*) FROM audit_events WHERE request_id IN (${cut.map((x) => `'${x}'`).join()})
    AND outcome_at IS NULL`), String(IN_FLIGHT));
});

test('refusals and local answers stay one row written whole, before their reply', async () => {
  const s = await rawSession(srv, user.pat);
  const ping = await s.call('ping', {});
  assert.equal(ping.status, 200, ping.text);
  const unknown = await s.call('tools/call', { name: 'alpha__nothing', arguments: {} });
  assert.ok(unknown.body?.error || unknown.body?.result?.isError, unknown.text);
  for (const res of [ping, unknown]) {
    const rows = rowOf(res.headers.get('x-request-id'));
    assert.equal(rows.length, 1, JSON.stringify(rows));
    assert.deepEqual([rows[0].call_id, rows[0].outcome_at], [null, null], JSON.stringify(rows[0]));
  }
  assert.ok(!(await upstreamCalls()).some((e) => e.params?.name === 'nothing'), 'the refused call went nowhere');
});
