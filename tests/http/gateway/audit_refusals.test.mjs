// Requests refused before authentication reach the gateway too, and each
// has its audit row, committed before the refusal leaves: no token, an
// unknown or malformed one, a live token of another agent (the row names
// its member and key suffix, under the agent asked), Host and Origin
// refusals. The method is the HTTP one (an unauthenticated body is not
// read); no token ever reaches a row; an unknown agent writes none. Those
// rows are budgeted per IP (GATEHOUSE_RATE_MCP_REFUSED_PER_MIN): past it a
// 429 and no row, while authenticated calls go on.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, gatehouse, secret } from '../../harness/index.mjs';
import { member, post, rawRequest, auditRows, LEGACY, ACCEPT_BOTH } from './lib.mjs';

let srv, user, other;
const init = { jsonrpc: '2.0', id: 1, method: 'initialize',
  params: { protocolVersion: LEGACY, capabilities: {}, clientInfo: { name: 'refusals', version: '1' } } };
const INVALID = 'The access token is invalid, expired or revoked.';

before(async () => {
  srv = await startServer({ name: 'gw-audit-refusals' });
  assert.equal(gatehouse(srv, ['agent', 'add', '--slug', 'other', '--name', 'Other']).code, 0);
  user = member(srv, { agent: 'default' });
  other = member(srv, { agent: 'other', name: 'other-pat' });
});

after(async () => {
  if (srv) assert.equal(await srv.stop(), 0);
});

const count = (s, where = 'true') => Number(s.cluster.sql(`SELECT count(*) FROM audit_events WHERE ${where}`));
const newRows = (s, after) => auditRows(s, `id > ${after}`).map((r) => r.raw).sort((x, y) => x.id - y.id);
const maxId = (s) => Number(s.cluster.sql('SELECT coalesce(max(id), 0) FROM audit_events'));

test('each refusal before authentication has its row, committed before the reply', async () => {
  const bogusPat = secret(`gth_pat_${'A'.repeat(32)}_nochecksum`);
  const bogusOat = secret(`gth_oat_${'b'.repeat(43)}`);
  const cases = [
    { what: 'no token', req: () => post(srv, init), status: 401, row: { agent_slug: 'default', method: 'POST',
      message: 'Authentication required.', credential_kind: null, user_email: null } },
    { what: 'a PAT that is not one', req: () => post(srv, init, { token: bogusPat }), status: 401,
      row: { agent_slug: 'default', method: 'POST', message: INVALID, credential_kind: 'pat', user_email: null, key_suffix: null } },
    { what: 'an unknown access token', req: () => post(srv, init, { token: bogusOat }), status: 401,
      row: { agent_slug: 'default', method: 'POST', message: INVALID, credential_kind: 'oauth', user_email: null } },
    { what: 'not a Gatehouse token', req: () => post(srv, init, { headers: { Authorization: 'Bearer not-ours' } }), status: 401,
      row: { agent_slug: 'default', method: 'POST', message: INVALID, credential_kind: null } },
    { what: "another agent's live PAT", req: () => post(srv, init, { token: other.pat }), status: 401,
      row: { agent_slug: 'default', method: 'POST', message: INVALID, credential_kind: 'pat', user_email: other.email } },
    { what: 'a GET stream without a token', req: () => post(srv, null, { method: 'GET', raw: null, path: '/agents/other/mcp',
      accept: 'text/event-stream' }), status: 401,
      row: { agent_slug: 'other', method: 'GET', message: 'Authentication required.', user_email: null } },
    { what: 'a foreign Host (with a valid token)', req: () => rawRequest(srv, '/mcp', { body: JSON.stringify(init),
      headers: { 'Content-Type': 'application/json', Accept: ACCEPT_BOTH, Authorization: `Bearer ${user.pat}`, Host: 'evil.example.com' } }),
      status: 421, row: { agent_slug: 'default', method: 'POST', message: 'Host not allowed.', user_email: null, credential_kind: null } },
    { what: 'a foreign Origin', req: () => rawRequest(srv, '/agents/other/mcp', { method: 'DELETE',
      headers: { Origin: 'http://evil.example.com', Host: `127.0.0.1:${srv.port}` } }),
      status: 403, row: { agent_slug: 'other', method: 'DELETE', message: 'Origin not allowed.' } },
  ];
  for (const c of cases) {
    const before = maxId(srv);
    const res = await c.req();
    assert.equal(res.status, c.status, `${c.what}: ${res.text}`);
    // read at once, no waiting: the row was committed before the reply left
    const rows = newRows(srv, before);
    assert.equal(rows.length, 1, `${c.what}: ${JSON.stringify(rows)}`);
    const [row] = rows;
    assert.equal(row.decision, 'deny', c.what);
    for (const [k, v] of Object.entries(c.row)) assert.equal(row[k], v, `${c.what}: ${k} of ${JSON.stringify(row)}`);
    assert.equal(row.agent_id, srv.cluster.sql(`SELECT id FROM agents WHERE slug = '${c.row.agent_slug}'`).trim(), c.what);
    assert.equal(row.tool, null);
    assert.equal(row.upstream_status, null);
  }
  // the live PAT's row names its key by the suffix of its row id, never the token
  const [row] = auditRows(srv, `user_email = '${other.email}' AND decision = 'deny'`).map((r) => r.raw);
  assert.match(row.key_suffix, /^[0-9a-f-]{6}$/);
  const all = JSON.stringify(auditRows(srv).map((r) => r.raw));
  for (const t of [bogusPat, bogusOat, other.pat, user.pat]) assert.ok(!all.includes(t), 'no token in any row');
});

test('an unknown agent is a 404 and writes no row; an authenticated call still has its own', async () => {
  const before = count(srv);
  const res = await post(srv, init, { path: '/agents/no-such-agent/mcp' });
  assert.equal(res.status, 404);
  assert.equal(count(srv), before);
  const ok = await post(srv, init, { token: user.pat });
  assert.equal(ok.status, 200, ok.text);
  assert.equal(count(srv, "decision = 'allow' AND method = 'initialize'"), 1);
});

test('refusal rows are budgeted per IP: past it 429 and no row, authenticated calls unaffected', async () => {
  const lim = await startServer({ name: 'gw-audit-refusals-rate', env: { GATEHOUSE_RATE_MCP_REFUSED_PER_MIN: '3' } });
  try {
    const u = member(lim, { agent: 'default' });
    for (let i = 0; i < 3; i++) assert.equal((await post(lim, init)).status, 401, `refusal ${i}`);
    assert.equal(count(lim, "decision = 'deny'"), 3);
    const past = await post(lim, init, { token: secret(`gth_oat_${'c'.repeat(43)}`) });
    assert.equal(past.status, 429, past.text);
    assert.equal(past.body.error, 'slow_down');
    assert.ok(Number(past.headers.get('retry-after')) > 0, 'Retry-After');
    const host = await rawRequest(lim, '/mcp', { body: JSON.stringify(init),
      headers: { 'Content-Type': 'application/json', Accept: ACCEPT_BOTH, Host: 'evil.example.com' } });
    assert.equal(host.status, 429);
    assert.equal(count(lim, "decision = 'deny'"), 3, 'no row past the budget');
    const ok = await post(lim, init, { token: u.pat });
    assert.equal(ok.status, 200, ok.text);
    assert.equal(count(lim, "decision = 'allow'"), 1);
  } finally {
    assert.equal(await lim.stop(), 0);
  }
});
