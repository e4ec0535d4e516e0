// The stateless 2026-07-28 wire format with raw HTTP (the installed SDK
// speaks only the session-based revisions): server/discover, the per-request
// _meta protocol version, Mcp-Method/Mcp-Name headers and their validation,
// streamed results, subscriptions/listen; bridged to session-based upstreams.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, startFixture } from '../../harness/index.mjs';
import {
  member, addConnector, connectorCmd, sdkClient, listAll, modern, modernMsg, modernHeaders, post, toolText,
  AuditLog, MODERN, LEGACY,
} from './lib.mjs';

let srv, alpha, beta, user;
const audit = new AuditLog();

before(async () => {
  [alpha, beta, srv] = await Promise.all([
    startFixture({ name: 'alpha', tools: ['echo', 'whoami', 'stream', 'slow', 'gate'] }),
    startFixture({ name: 'beta', json: true, pageSize: 1, tools: ['echo', 'whoami'] }),
    startServer({ name: 'gw-stateless', env: { GATEHOUSE_MCP_PAGE_SIZE: '3' } }),
  ]);
  addConnector(srv, { name: 'alpha', url: alpha.url });
  addConnector(srv, { name: 'beta', url: beta.url });
  user = member(srv);
});

after(async () => {
  await Promise.all([alpha?.stop(), beta?.stop()]);
  if (srv) assert.equal(await srv.stop(), 0);
});

/* Every page of a stateless tools/list. */
async function modernTools(idBase) {
  const out = [];
  let cursor;
  let n = 0;
  do {
    const res = ok(await modern(srv, user.pat, `${idBase}-${++n}`, 'tools/list', cursor ? { cursor } : {}), 'tools/list');
    audit.expect({ method: 'tools/list' });
    out.push(...res.tools);
    cursor = res.nextCursor;
  } while (cursor && n < 50);
  return out;
}

const ok = (r, what) => {
  assert.equal(r.status, 200, `${what}: ${r.status} ${r.text}`);
  assert.ok(r.body?.result, `${what}: a result (${r.text})`);
  assert.equal(r.headers.get('mcp-session-id'), null, `${what}: no session id in the stateless era`);
  return r.body.result;
};

test('server/discover: versions of both eras, capabilities, server identity; no session', async () => {
  const r = await modern(srv, user.pat, 'd-1', 'server/discover', {});
  audit.expect({ method: 'server/discover' });
  const res = ok(r, 'server/discover');
  assert.equal(r.body.id, 'd-1');
  assert.equal(res.resultType, 'complete');
  assert.ok(res.supportedVersions.includes(MODERN), `supportedVersions ${res.supportedVersions}`);
  assert.ok(res.supportedVersions.includes(LEGACY), 'the session-based revisions too');
  assert.ok(res.capabilities?.tools, 'tools capability');
  assert.ok(res._meta?.['io.modelcontextprotocol/serverInfo']?.name, 'serverInfo in _meta');
});

test('tools/list and tools/call with the per-request _meta: the same tools as a session sees', async () => {
  const sess = await sdkClient(srv, user.pat);
  audit.expect({ method: 'initialize' });
  const legacyNames = (await listAll(sess.client, 'tools')).items.map((t) => t.name);
  audit.expect({ method: 'tools/list' });
  await sess.client.close();

  const names = [];
  const pages = [];
  let cursor;
  let id = 0;
  do {
    const res = ok(await modern(srv, user.pat, ++id, 'tools/list', cursor ? { cursor } : {}), 'tools/list');
    audit.expect({ method: 'tools/list' });
    assert.equal(res.resultType, 'complete');
    pages.push(res);
    names.push(...res.tools.map((t) => t.name));
    cursor = res.nextCursor;
  } while (cursor && id < 50);
  assert.deepEqual(names, legacyNames);
  assert.ok(names.includes('beta__whoami'), 'beta (one tool per upstream page) is complete');

  const c = ok(await modern(srv, user.pat, 'c-1', 'tools/call', { name: 'beta__whoami', arguments: {} }), 'tools/call');
  audit.tool('beta__whoami', 'beta');
  assert.deepEqual(c.structuredContent, { upstream: 'beta' });
  assert.equal(c.resultType, 'complete');
  const e = ok(await modern(srv, user.pat, 'c-2', 'tools/call', { name: 'alpha__echo', arguments: { message: 'stateless' } }), 'tools/call');
  audit.tool('alpha__echo', 'alpha');
  assert.equal(toolText(e), 'alpha: stateless');
  // 2026-07-28 list results are cacheable results
  for (const res of pages) {
    assert.equal(typeof res.ttlMs, 'number', 'cacheable result: ttlMs');
    assert.ok(['public', 'private'].includes(res.cacheScope), 'cacheable result: cacheScope');
  }
});

test('a streamed tools/call: progress (and log messages asked for with logLevel) before the result', async () => {
  const r = await modern(srv, user.pat, 's-1', 'tools/call', { name: 'alpha__stream', arguments: { steps: 3, delayMs: 50 } },
    { meta: { progressToken: 'p-1', 'io.modelcontextprotocol/logLevel': 'info' } });
  audit.tool('alpha__stream', 'alpha');
  assert.equal(r.status, 200, r.text);
  assert.match(r.headers.get('content-type'), /^text\/event-stream/);
  const kinds = r.messages.map((m) => m.method ?? (m.result ? 'result' : 'error'));
  assert.equal(kinds.at(-1), 'result', `the result comes last: ${kinds}`);
  const progress = r.messages.filter((m) => m.method === 'notifications/progress');
  assert.deepEqual(progress.map((m) => [m.params.progressToken, m.params.progress]), [['p-1', 1], ['p-1', 2], ['p-1', 3]]);
  assert.equal(r.messages.filter((m) => m.method === 'notifications/message').length, 3, 'log messages relayed');
  assert.equal(toolText(r.body.result), 'streamed 3 steps');

  // without logLevel in _meta no notifications/message may be sent (2026-07-28)
  const q = await modern(srv, user.pat, 's-2', 'tools/call', { name: 'alpha__stream', arguments: { steps: 2, delayMs: 10 } },
    { meta: { progressToken: 'p-2' } });
  audit.tool('alpha__stream', 'alpha');
  assert.equal(q.status, 200, q.text);
  assert.equal(q.messages.filter((m) => m.method === 'notifications/message').length, 0, 'no log messages unasked');
  assert.equal(q.messages.filter((m) => m.method === 'notifications/progress').length, 2);
});

test('a streamed tools/call is relayed as it arrives, not buffered', async () => {
  const s = await modern(srv, user.pat, 'g-1', 'tools/call', { name: 'alpha__gate', arguments: {} },
    { meta: { progressToken: 'g' }, stream: true });
  audit.tool('alpha__gate', 'alpha');
  assert.equal(s.status, 200);
  // the upstream is still holding its result: the progress must already be here
  let timer;
  const first = await Promise.race([s.sse.next(), new Promise((r) => { timer = setTimeout(() => r('nothing within 30 s'), 30000); })]);
  clearTimeout(timer);
  assert.equal(first?.method, 'notifications/progress', JSON.stringify(first));
  assert.equal(first.params.progressToken, 'g');
  assert.equal((await alpha.release()).released, 1);
  const [res] = await s.sse.until((m) => m.id === 'g-1', 'the result');
  assert.equal(toolText(res.result), 'released');
});

test('header validation: missing or mismatched Mcp-Method / Mcp-Name / MCP-Protocol-Version → 400 HeaderMismatch (-32020)', async () => {
  const call = modernMsg(7, 'tools/call', { name: 'alpha__echo', arguments: { message: 'x' } });
  const cases = [
    ['Mcp-Name differs from params.name', { ...modernHeaders(call), 'Mcp-Name': 'beta__echo' }],
    ['Mcp-Name missing', { ...modernHeaders(call), 'Mcp-Name': undefined }],
    ['Mcp-Method differs from method', { ...modernHeaders(call), 'Mcp-Method': 'tools/list' }],
    ['Mcp-Method missing', { ...modernHeaders(call), 'Mcp-Method': undefined }],
  ];
  for (const [what, headers] of cases) {
    const r = await post(srv, call, { token: user.pat, headers });
    assert.equal(r.status, 400, `${what}: ${r.status} ${r.text}`);
    assert.equal(r.body?.error?.code, -32020, `${what}: ${r.text}`);
  }
  // the header's version differs from _meta's
  const v = await post(srv, call, { token: user.pat, headers: { ...modernHeaders(call), 'MCP-Protocol-Version': LEGACY } });
  assert.equal(v.status, 400, v.text);
  assert.equal(v.body?.error?.code, -32020, v.text);
  // the Base64 sentinel form of Mcp-Name is decoded before the comparison
  const enc = `=?base64?${Buffer.from('alpha__echo').toString('base64')}?=`;
  const b = await post(srv, call, { token: user.pat, headers: { ...modernHeaders(call), 'Mcp-Name': enc } });
  audit.tool('alpha__echo', 'alpha');
  assert.equal(b.status, 200, b.text);
  assert.equal(toolText(b.body.result), 'alpha: x');
  // nothing reached the upstream for the refused requests
  const calls = (await alpha.log()).filter((e) => e.method === 'tools/call' && e.params?.arguments?.message === 'x');
  assert.equal(calls.length, 1, 'only the valid request was forwarded');
});

test('an unsupported protocol version → 400 UnsupportedProtocolVersion (-32022) listing the supported ones', async () => {
  const msg = modernMsg(9, 'tools/list', {}, { 'io.modelcontextprotocol/protocolVersion': '1900-01-01' });
  const r = await post(srv, msg, { token: user.pat, headers: { ...modernHeaders(msg), 'MCP-Protocol-Version': '1900-01-01' } });
  assert.equal(r.status, 400, r.text);
  assert.equal(r.body?.error?.code, -32022, r.text);
  assert.ok(r.body.error.data?.supported?.includes(MODERN), r.text);
  assert.equal(r.body.error.data?.requested, '1900-01-01');
});

test('an unknown method → 404 with a JSON-RPC -32601 body', async () => {
  const r = await modern(srv, user.pat, 10, 'no/such-method', {});
  assert.equal(r.status, 404, r.text);
  assert.equal(r.body?.error?.code, -32601, r.text);
  assert.equal(r.body.id, 10);
});

test('subscriptions/listen: acknowledged first, then list_changed for a connector change and for an upstream change', async () => {
  const ctl = new AbortController();
  const msg = modernMsg('sub-1', 'subscriptions/listen', { notifications: { toolsListChanged: true, promptsListChanged: true } });
  const s = await post(srv, msg, { token: user.pat, headers: modernHeaders(msg), stream: true, signal: ctl.signal });
  audit.expect({ method: 'subscriptions/listen' });
  assert.equal(s.status, 200);
  assert.match(s.headers.get('content-type'), /^text\/event-stream/);
  const ack = await s.sse.next();
  assert.equal(ack.method, 'notifications/subscriptions/acknowledged', JSON.stringify(ack));
  assert.equal(ack.params._meta['io.modelcontextprotocol/subscriptionId'], 'sub-1');
  assert.equal(ack.params.notifications.toolsListChanged, true);

  connectorCmd(srv, 'disable', '--agent', 'default', '--name', 'beta');
  const [n1] = await s.sse.until((m) => m.method === 'notifications/tools/list_changed', 'tools/list_changed after disable');
  assert.equal(n1.params._meta['io.modelcontextprotocol/subscriptionId'], 'sub-1');
  const after1 = await modernTools('l1');
  assert.ok(!after1.some((t) => t.name.startsWith('beta__')), 'beta gone');

  connectorCmd(srv, 'enable', '--agent', 'default', '--name', 'beta');
  await s.sse.until((m) => m.method === 'notifications/tools/list_changed', 'tools/list_changed after enable');
  // the lists are cached again before the upstream changes its own
  const logBefore = (await alpha.log()).length;
  const cached = (await modernTools('l2')).map((t) => t.name);
  assert.ok(cached.includes('beta__whoami') && !cached.includes('alpha__added_later'), `listed: ${cached}`);
  // the upstream session the caller's (implicit) session holds with alpha, and its GET stream
  const fetched = (await alpha.log()).slice(logBefore).find((e) => e.method === 'tools/list' && e.session);
  assert.ok(fetched, 'alpha listed its tools again after the enable');
  await alpha.waitFor((e) => e.kind === 'get' && e.session === fetched.session, { what: "the gateway's GET stream to alpha" });

  // the upstream's own list_changed
  await Promise.all([alpha.resetLog(), beta.resetLog()]);
  await alpha.setTools({ add: [{ name: 'added_later', description: 'new', inputSchema: { type: 'object' } }] });
  await s.sse.until((m) => m.method === 'notifications/tools/list_changed', 'tools/list_changed from the upstream');
  const names = (await modernTools('l3')).map((t) => t.name);
  assert.ok(names.includes('alpha__added_later') && names.includes('beta__whoami'), `alpha__added_later and beta__whoami listed: ${names}`);
  // only alpha's cached list was dropped: alpha was asked again, beta was not
  assert.ok((await alpha.log()).some((e) => e.method === 'tools/list' && e.session === fetched.session), "alpha's tools fetched again");
  assert.deepEqual((await beta.log()).filter((e) => e.method === 'tools/list'), [], "beta's tools came from the cache");
  // progress and log messages never travel on the listen stream: nothing but list_changed arrived
  ctl.abort();
  await s.sse.cancel();
});

test('every call of this file has its audit row, without a session id', async () => {
  const rows = audit.check(srv);
  const calls = rows.filter((r) => r.method === 'tools/call' && r.tool === 'beta__whoami');
  assert.ok(calls.length >= 1);
  assert.ok(calls.every((r) => !r.session), 'stateless calls carry no session');
});
