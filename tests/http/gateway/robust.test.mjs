// Failures that stay small: a connector whose sealed headers cannot be
// opened fails alone; a process or CLI run with another server key is
// refused before it seals anything; a JSON-RPC batch has a length limit and
// its audit rows go in one group commit; a member's sessions per agent are
// bounded, the least recently seen one ending when a new one starts.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { startServer, startCluster, startFixture, gatehouse, gatehouseBin, freePort, secret } from '../../harness/index.mjs';
import { member, addConnector, post, rawSession, serverKey, toolText, auditRows } from './lib.mjs';

let cluster, srv, srvLimit, alpha, beta, user;
const sha256 = (s) => crypto.createHash('sha256').update(s).digest('hex');

before(async () => {
  cluster = await startCluster();
  const betaKey = secret(`beta-key-${crypto.randomBytes(12).toString('hex')}`);
  [alpha, beta] = await Promise.all([
    startFixture({ name: 'alpha', tools: ['echo', 'whoami'] }),
    startFixture({ name: 'beta', tools: ['echo'], requireHeader: { name: 'X-Api-Key', value: betaKey } }),
  ]);
  [srv, srvLimit] = await Promise.all([
    startServer({ cluster, name: 'gw-robust' }),
    // a second process on the same database (and the cluster's key), with few sessions per member
    startServer({ cluster, name: 'gw-robust-limit', env: { GATEHOUSE_MCP_SESSIONS_PER_MEMBER: '3' } }),
  ]);
  addConnector(srv, { name: 'alpha', url: alpha.url });
  addConnector(srv, { name: 'beta', url: beta.url, headers: [`X-Api-Key: ${betaKey}`] });
  user = member(srv);
});

after(async () => {
  await Promise.all([alpha?.stop(), beta?.stop()]);
  for (const s of [srvLimit, srv]) if (s) assert.equal(await s.stop(), 0);
  await cluster?.stop();
});

test("a connector whose sealed headers cannot be opened fails alone: the agent's other connectors list and call", async () => {
  const before = cluster.sql("SELECT headers_sealed FROM connectors WHERE name = 'beta'");
  secret(before);
  // another byte under the same alphabet: the GCM tag no longer matches
  const damaged = cluster.sql(`UPDATE connectors SET headers_sealed = translate(headers_sealed, 'ABCDEFGHabcdefgh', 'BCDEFGHAbcdefgha')
                               WHERE name = 'beta' RETURNING headers_sealed`);
  secret(damaged);
  assert.notEqual(damaged, before);
  // no process has read the connectors yet; the NOTIFY makes sure of it
  cluster.sql("SELECT pg_notify('gw_connectors', agent_id::text) FROM connectors WHERE name = 'beta'");

  const s = await rawSession(srv, user.pat);
  const list = await s.call('tools/list', {});
  assert.equal(list.status, 200, list.text);
  assert.equal(list.body.error, undefined, list.text);
  const names = list.body.result.tools.map((t) => t.name);
  assert.ok(names.includes('alpha__echo') && names.includes('alpha__whoami'), names.join());
  assert.ok(!names.some((n) => n.startsWith('beta__')), names.join());
  assert.deepEqual(list.body.result._meta['io.gatehouse/unavailableConnectors'], ['beta']);

  const ok = await s.call('tools/call', { name: 'alpha__echo', arguments: { message: 'still here' } });
  assert.equal(ok.status, 200, ok.text);
  assert.equal(toolText(ok.body.result), 'alpha: still here');

  const broken = await s.call('tools/call', { name: 'beta__echo', arguments: { message: 'x' } });
  assert.equal(broken.status, 200, broken.text);
  assert.equal(broken.body.error?.code, -32000, broken.text);
  assert.match(broken.body.error.message, /Connector 'beta' is unavailable/);
  assert.equal(broken.body.error.data?.connector, 'beta');
  assert.ok(!(await beta.log()).some((e) => e.kind === 'rpc'), 'nothing went to the broken connector');

  const rows = auditRows(srv, `session_id = '${sha256(s.session)}' AND method = 'tools/call'`);
  assert.ok(rows.some((r) => r.tool === 'beta__echo' && r.connector === 'beta' && r.decision === 'deny' &&
                             r.message === 'connector unavailable'), JSON.stringify(rows.map((r) => r.raw)));
  assert.ok(rows.some((r) => r.tool === 'alpha__echo' && r.decision === 'allow'));

  const log = fs.readFileSync(srv.logFile, 'utf8');
  assert.match(log, /"level":"warn".*"msg":"connector beta \([0-9a-f-]{36}\) of agent default: its sealed headers cannot be opened/i);
  assert.ok(!log.includes(damaged) && !log.includes(before), 'the blob is never logged');
});

test('a CLI run or a second server with another server key is refused and writes nothing', async () => {
  const other = serverKey();
  const count = () => Number(cluster.sql('SELECT count(*) FROM connectors'));
  const check = cluster.sql('SELECT check_value FROM server_key_check');
  assert.match(check, /^[0-9a-f]{64}$/, 'the first process stored the key check');
  const n = count();

  const value = secret(`gamma-${crypto.randomBytes(12).toString('hex')}`);
  const add = ['connector', 'add', '--agent', 'default', '--name', 'gamma', '--url', alpha.url, '--header', `X-Other: ${value}`];
  const r = gatehouse(srv, add, { env: { GATEHOUSE_SERVER_KEY: other } });
  assert.equal(r.code, 1, r.stderr);
  const line = r.stderr.split('\n').find((l) => l.startsWith('gatehouse: '));
  assert.match(line, /^gatehouse: the server key from GATEHOUSE_SERVER_KEY is not the key this database's secrets are sealed with/);
  assert.ok(!r.stderr.includes(other) && !r.stderr.includes(cluster.serverKey), 'no key in the message');
  assert.equal(count(), n, 'no connector added');
  assert.equal(cluster.sql('SELECT check_value FROM server_key_check'), check);

  // no key configured: the key file generated into a fresh data folder is refused, and not left behind
  const data = fs.mkdtempSync(path.join(os.tmpdir(), 'gh-keycheck-'));
  try {
    const f = gatehouse(srv, add, { env: { GATEHOUSE_SERVER_KEY: '', GATEHOUSE_DATA_DIR: data } });
    assert.equal(f.code, 1, f.stderr);
    assert.match(f.stderr, /^gatehouse: the server key from the key file .*server\.key \(GATEHOUSE_SERVER_KEY is not set\) is not the key/m);
    assert.equal(fs.existsSync(path.join(data, 'server.key')), false, 'the generated key file is removed');
    assert.equal(count(), n);
  } finally {
    fs.rmSync(data, { recursive: true, force: true });
  }

  // a second server with the other key does not start
  const port = await freePort();
  const s = spawnSync(gatehouseBin, ['serve'], {
    env: { ...srv.env, GATEHOUSE_SERVER_KEY: other, GATEHOUSE_LISTEN: `127.0.0.1:${port}`, GATEHOUSE_PUBLIC_URL: `http://127.0.0.1:${port}` },
    encoding: 'utf8', timeout: 60000,
  });
  assert.equal(s.status, 1, s.stderr);
  assert.match(s.stderr, /^gatehouse: the server key from GATEHOUSE_SERVER_KEY is not the key/m);
  assert.ok(!s.stderr.includes(other));

  // the right key still seals
  const good = gatehouse(srv, add);
  assert.equal(good.code, 0, good.stderr);
  assert.equal(count(), n + 1);
  assert.equal(gatehouse(srv, ['connector', 'disable', '--agent', 'default', '--name', 'gamma']).code, 0);
});

test('a 2025-03-26 batch holds at most GATEHOUSE_MCP_BATCH_MAX (64) messages; every answered one has its audit row', async () => {
  const s = await rawSession(srv, user.pat, { version: '2025-03-26' });
  const pings = (n, from = 1) => Array.from({ length: n }, (_, i) => ({ jsonrpc: '2.0', id: from + i, method: 'ping' }));
  const opts = { token: user.pat, session: s.session, version: '2025-03-26' };

  const over = await post(srv, pings(65), opts);
  assert.equal(over.status, 400, over.text);
  assert.equal(over.body.error.code, -32600);
  assert.match(over.body.error.message, /at most 64 messages/);
  assert.equal(over.body.error.data.maxBatchSize, 64);

  const metric = async () => Number((await (await fetch(`${srv.url}/metrics`)).text()).match(/^gatehouse_audit_batches_total (\d+)$/m)[1]);
  const commitsBefore = await metric();
  const ok = await post(srv, pings(64, 1000), opts);
  assert.equal(ok.status, 200, ok.text);
  assert.ok(Array.isArray(ok.body));
  assert.equal(ok.body.length, 64);
  assert.deepEqual(ok.body.map((m) => m.id).sort((a, b) => a - b), pings(64, 1000).map((m) => m.id));
  assert.ok(ok.body.every((m) => m.jsonrpc === '2.0' && m.result && !m.error));
  // queued together, the 64 rows take one group commit (two if the writer was mid-commit)
  assert.ok(await metric() - commitsBefore <= 2, 'one group commit for the batch');

  const rows = auditRows(srv, `session_id = '${sha256(s.session)}'`);
  assert.equal(rows.filter((r) => r.method === 'ping' && r.decision === 'allow' && r.message === 'allow (no policy engine)').length, 64);
  assert.equal(rows.filter((r) => r.method === '(batch)' && r.decision === 'deny' && r.message === 'batch too long').length, 1);

  // a mixed batch: tools/list names the unavailable connector, a forwarded method is refused, each with its row
  const mixed = await post(srv, [
    { jsonrpc: '2.0', id: 'l', method: 'tools/list' },
    { jsonrpc: '2.0', id: 'c', method: 'tools/call', params: { name: 'alpha__echo', arguments: {} } },
    { jsonrpc: '2.0', method: 'notifications/initialized' },
  ], opts);
  assert.equal(mixed.status, 200, mixed.text);
  const byId = Object.fromEntries(mixed.body.map((m) => [m.id, m]));
  assert.deepEqual(byId.l.result._meta['io.gatehouse/unavailableConnectors'], ['beta']);
  assert.equal(byId.c.error.code, -32600);
  const after = auditRows(srv, `session_id = '${sha256(s.session)}'`);
  assert.equal(after.filter((r) => r.method === 'tools/list').length, 1);
  assert.equal(after.filter((r) => r.method === 'tools/call' && r.message === 'not available in a batch').length, 1);
  // notifications and responses inside a batch have their rows too, as when sent alone
  assert.equal(auditRows(srv, `request_id = '${mixed.headers.get('x-request-id')}' AND method = 'notifications/initialized'`).length, 1);
  const quiet = await post(srv, [
    { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 'nothing-running', reason: 'test' } },
    { jsonrpc: '2.0', id: 'gh-r-unknown-1', result: {} },
  ], opts);
  assert.equal(quiet.status, 202, quiet.text);
  const last = auditRows(srv, `request_id = '${quiet.headers.get('x-request-id')}'`);
  assert.deepEqual(last.map((r) => `${r.method}|${r.decision}`).sort(), ['(response)|allow', 'notifications/cancelled|allow']);
});

test('GATEHOUSE_MCP_SESSIONS_PER_MEMBER: an initialize beyond it ends the least recently seen session, like a DELETE', async () => {
  const m = member(srvLimit);
  await alpha.resetLog();
  const s1 = await rawSession(srvLimit, m.pat);
  // s1 talks to an upstream, so ending it must end that upstream session too
  const call = await s1.call('tools/call', { name: 'alpha__echo', arguments: { message: 'one' } });
  assert.equal(call.status, 200, call.text);
  const upSid = (await alpha.log()).find((e) => e.kind === 'rpc' && e.method === 'tools/call')?.session;
  assert.ok(upSid, 'the upstream session of s1');
  const s2 = await rawSession(srvLimit, m.pat);
  const s3 = await rawSession(srvLimit, m.pat);
  for (const s of [s1, s2, s3]) assert.equal((await s.call('ping', {})).status, 200);

  const s4 = await rawSession(srvLimit, m.pat);       // the fourth initialize works
  const gone = await s1.call('ping', {});
  assert.equal(gone.status, 404, gone.text);
  for (const s of [s2, s3, s4]) {
    const r = await s.call('ping', {});
    assert.equal(r.status, 200, r.text);
  }
  // the row is gone for every process (the other one reads it afresh)
  assert.equal((await post(srv, { jsonrpc: '2.0', id: 9, method: 'ping' }, { token: m.pat, session: s1.session })).status, 404);
  const userId = cluster.sql(`SELECT id FROM users WHERE email = '${m.email}'`);
  assert.equal(Number(cluster.sql(`SELECT count(*) FROM mcp_sessions WHERE user_id = '${userId}'`)), 3);
  await alpha.waitFor((e) => e.kind === 'delete' && e.session === upSid, { timeoutMs: 10000, what: "DELETE of s1's upstream session" });

  // another member's sessions are not counted against this one
  const other = member(srvLimit);
  const o = await rawSession(srvLimit, other.pat);
  assert.equal((await o.call('ping', {})).status, 200);
  for (const s of [s2, s3, s4]) assert.equal((await s.call('ping', {})).status, 200);
});

test("a connector's sealed headers open only for its own agent and URL: a URL changed in the database sends them nowhere; an earlier build's blob is sealed again, bound, at start", async () => {
  const gammaKey = secret(`gamma-key-${crypto.randomBytes(12).toString('hex')}`);
  const gamma = await startFixture({ name: 'gamma', tools: ['echo'], requireHeader: { name: 'X-Api-Key', value: gammaKey } });
  const notify = () => cluster.sql("SELECT pg_notify('gw_connectors', agent_id::text) FROM connectors WHERE name = 'gamma-b'");
  // the NOTIFY reaches the server's listener on its own time: a new session until the list shows it
  const sessionWhere = async (hasGamma) => {
    for (let i = 0; ; i++) {
      const s = await rawSession(srv, user.pat);
      const list = await s.call('tools/list', {});
      if (list.body.result.tools.some((t) => t.name.startsWith('gamma-b__')) === hasGamma || i >= 20) return s;
      await fetch(`${srv.url}/mcp`, { method: 'DELETE', headers: { Authorization: `Bearer ${user.pat}`, 'Mcp-Session-Id': s.session, 'MCP-Protocol-Version': '2025-11-25' } });
      await new Promise((res) => setTimeout(res, 100));
    }
  };
  const leaked = async () => (await alpha.log()).some((e) => Object.values(e.headers ?? {}).some((v) => String(v).includes(gammaKey)));
  try {
    addConnector(srv, { name: 'gamma-b', url: gamma.url, headers: [`X-Api-Key: ${gammaKey}`] });
    let s = await rawSession(srv, user.pat);
    let r = await s.call('tools/call', { name: 'gamma-b__echo', arguments: { message: 'hi' } });
    assert.equal(toolText(r.body.result ?? {}), 'gamma: hi', r.text);

    // pointed at another upstream (alpha) in the database alone
    await alpha.resetLog();
    cluster.sql(`UPDATE connectors SET url = '${alpha.url}' WHERE name = 'gamma-b'`);
    notify();
    s = await sessionWhere(false);
    r = await s.call('tools/call', { name: 'gamma-b__echo', arguments: { message: 'x' } });
    assert.equal(await leaked(), false, "gamma's key reached alpha");
    assert.match(r.body.error?.message ?? '', /Connector 'gamma-b' is unavailable/, r.text);

    // back where the admin put it: it works again
    cluster.sql(`UPDATE connectors SET url = '${gamma.url}' WHERE name = 'gamma-b'`);
    notify();
    s = await sessionWhere(true);
    r = await s.call('tools/call', { name: 'gamma-b__echo', arguments: { message: 'back' } });
    assert.equal(toolText(r.body.result ?? {}), 'gamma: back', r.text);

    // a blob as earlier builds sealed it (associated data "gw_connector:<id>")
    const id = cluster.sql("SELECT id FROM connectors WHERE name = 'gamma-b'");
    const iv = crypto.randomBytes(12);
    const c = crypto.createCipheriv('aes-256-gcm', Buffer.from(cluster.serverKey, 'hex'), iv);
    c.setAAD(Buffer.from(`gw_connector:${id}`));
    const ct = Buffer.concat([c.update(JSON.stringify([{ name: 'X-Api-Key', value: gammaKey }])), c.final()]);
    const legacy = secret(Buffer.concat([iv, c.getAuthTag(), ct]).toString('base64url'));
    cluster.sql(`UPDATE connectors SET headers_sealed = '${legacy}' WHERE id = '${id}'`);
    await srv.restart();
    const now = cluster.sql(`SELECT headers_sealed FROM connectors WHERE id = '${id}'`);
    secret(now);
    assert.notEqual(now, legacy, 'sealed again at start');
    assert.match(fs.readFileSync(srv.logFile, 'utf8'), /"msg":"connector gamma-b \([0-9a-f-]{36}\) of agent default: its sealed headers are now bound to its agent and URL"/);
    s = await rawSession(srv, user.pat);
    r = await s.call('tools/call', { name: 'gamma-b__echo', arguments: { message: 'resealed' } });
    assert.equal(toolText(r.body.result ?? {}), 'gamma: resealed', r.text);
    cluster.sql(`UPDATE connectors SET url = '${alpha.url}' WHERE id = '${id}'`);
    await alpha.resetLog();
    notify();
    s = await sessionWhere(false);
    r = await s.call('tools/call', { name: 'gamma-b__echo', arguments: { message: 'x' } });
    assert.equal(await leaked(), false, "gamma's key reached alpha");
    assert.match(r.body.error?.message ?? '', /Connector 'gamma-b' is unavailable/, r.text);
  } finally {
    assert.equal(gatehouse(srv, ['connector', 'disable', '--agent', 'default', '--name', 'gamma-b']).code, 0);
    await gamma.stop();
  }
});
