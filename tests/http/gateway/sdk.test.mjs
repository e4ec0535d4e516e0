// The MCP TypeScript SDK client through the gateway, in a 2025-11-25 session,
// with a PAT and with an OAuth access token: aggregated tools (names, order,
// metadata), calls routed under the original name, progress and log messages
// before the result, the upstream's view of the headers, resources and
// prompts, pagination on both sides; then every call has its audit row.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Client as McpClient } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { LoggingMessageNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import { startServer, startFixture, startEverything, secret, gatehouse } from '../../harness/index.mjs';
import { signedIn, fullFlow } from '../oauth/lib.mjs';
import { member, addConnector, sdkClient, listAll, toolText, AuditLog, LEGACY } from './lib.mjs';

// Long upstream names: the two differ only past the 64th character of
// `<connector>__<tool>`, and alpha and beta both have them.
const LONG1 = 'summarize_the_quarterly_financial_report_of_the_company_in_great_detail_version_one';
const LONG2 = 'summarize_the_quarterly_financial_report_of_the_company_in_great_detail_version_two';
const EXACT = 'x'.repeat(64 - 'alpha__'.length); // alpha__ + EXACT is exactly 64 characters
const longTool = (name, n) => ({
  name, title: `Long ${n}`, description: `long tool ${n}`,
  inputSchema: { type: 'object', properties: { n: { type: 'integer', minimum: 0, description: 'a number' } }, additionalProperties: false },
  outputSchema: { type: 'object', properties: { ok: { type: 'boolean' } } },
  annotations: { title: `Long ${n}`, readOnlyHint: false, destructiveHint: true, idempotentHint: false, openWorldHint: true },
  _meta: { 'example.com/origin': n },
});

let srv, alpha, beta, everything, user, sdk;
const audit = new AuditLog();
const KEY = secret(`beta-static-key-${process.pid}-${Date.now()}`);

before(async () => {
  [alpha, beta, everything, srv] = await Promise.all([
    startFixture({ name: 'alpha', pageSize: 2,
      tools: ['echo', 'whoami', 'stream', 'gate', 'headers', 'fail', longTool(LONG1, 'a1'), longTool(LONG2, 'a2'), longTool(EXACT, 'exact')] }),
    startFixture({ name: 'beta', json: true, requireHeader: { name: 'X-Api-Key', value: KEY },
      tools: ['echo', 'whoami', 'headers', longTool(LONG1, 'b1'), longTool(LONG2, 'b2')] }),
    startEverything(),
    startServer({ name: 'gw-sdk', env: { GATEHOUSE_MCP_PAGE_SIZE: '5' } }),
  ]);
  addConnector(srv, { name: 'alpha', url: alpha.url });
  addConnector(srv, { name: 'beta', url: beta.url, headers: [`X-Api-Key: ${KEY}`] });
  addConnector(srv, { name: 'everything', url: everything.url });
  // the long tools say destructive: the seeded baselines would refuse them
  for (const c of ['alpha', 'beta']) assert.equal(gatehouse(srv, ['policy', 'disable', '--agent', 'default', '--name', `baseline-${c}`]).code, 0);
  user = member(srv);
  sdk = await sdkClient(srv, user.pat);
});

after(async () => {
  await sdk?.client.close().catch(() => {});
  await Promise.all([alpha?.stop(), beta?.stop(), everything?.stop()]);
  if (srv) assert.equal(await srv.stop(), 0);
});

/* The tools of one upstream, listed directly with the SDK client. */
async function direct(up, headers = {}) {
  const c = new McpClient({ name: 'direct', version: '1.0.0' });
  await c.connect(new StreamableHTTPClientTransport(new URL(up.url), { requestInit: { headers } }));
  const { items } = await listAll(c, 'tools');
  await c.close();
  return items;
}

test('the session is a 2025-11-25 session with the tools capability', async () => {
  assert.equal(sdk.transport.protocolVersion, LEGACY);
  assert.ok(sdk.transport.sessionId, 'Mcp-Session-Id kept by the client');
  const caps = sdk.client.getServerCapabilities();
  assert.ok(caps.tools, 'tools capability');
  assert.ok(caps.resources, 'resources capability');
  assert.ok(caps.prompts, 'prompts capability');
  audit.expect({ method: 'initialize' });
});

test('tools/list: <connector>__<tool>, at most 64 characters, collision-free, deterministic, metadata unchanged', async () => {
  const { items: tools } = await listAll(sdk.client, 'tools');
  audit.expect({ method: 'tools/list' });
  const names = tools.map((t) => t.name);
  assert.equal(new Set(names).size, names.length, `duplicate names: ${names}`);
  for (const n of names) {
    assert.ok(n.length <= 64, `${n} is ${n.length} characters`);
    assert.match(n, /^[A-Za-z0-9_.-]+$/, n);
  }

  const upstreams = { alpha: await direct(alpha), beta: await direct(beta, { 'X-Api-Key': KEY }), everything: await direct(everything) };
  assert.equal(tools.length, Object.values(upstreams).reduce((s, l) => s + l.length, 0), 'every tool of every connector, nothing else');
  for (const [conn, list] of Object.entries(upstreams)) {
    for (const t of list) {
      const full = `${conn}__${t.name}`;
      let g;
      if (full.length <= 64) {
        g = tools.find((x) => x.name === full);
        assert.ok(g, `${full} listed`);
      } else {
        // shortened: it keeps the connector prefix, and its metadata tells it apart
        const cands = tools.filter((x) => x.name.startsWith(`${conn}__`) && x.description === t.description);
        assert.equal(cands.length, 1, `one shortened name for ${full}: ${cands.map((x) => x.name)}`);
        g = cands[0];
        assert.notEqual(g.name, full);
      }
      for (const k of ['title', 'description', 'inputSchema', 'outputSchema', 'annotations'])
        assert.deepEqual(g[k], t[k], `${full}: ${k} passed through unchanged`);
    }
  }
  assert.ok(names.includes(`alpha__${EXACT}`), 'a name of exactly 64 characters is kept as is');

  // the same order and the same names again, and from a second session
  const again = (await listAll(sdk.client, 'tools')).items.map((t) => t.name);
  audit.expect({ method: 'tools/list' });
  assert.deepEqual(again, names);
  const other = await sdkClient(srv, user.pat);
  audit.expect({ method: 'initialize' });
  const third = (await listAll(other.client, 'tools')).items.map((t) => t.name);
  audit.expect({ method: 'tools/list' });
  await other.client.close();
  assert.deepEqual(third, names);
  // connectors in a deterministic (name) order: alpha's block, then beta's, then everything's
  const blocks = names.map((n) => n.split('__')[0]);
  assert.deepEqual(blocks, [...blocks].sort(), 'grouped by connector in name order');
});

test('tools/call reaches the right upstream under the original tool name', async () => {
  const { items: tools } = await listAll(sdk.client, 'tools');
  audit.expect({ method: 'tools/list' });
  const w1 = await sdk.client.callTool({ name: 'alpha__whoami', arguments: {} });
  assert.deepEqual(w1.structuredContent, { upstream: 'alpha' });
  audit.tool('alpha__whoami', 'alpha');
  const w2 = await sdk.client.callTool({ name: 'beta__whoami', arguments: {} });
  assert.deepEqual(w2.structuredContent, { upstream: 'beta' });
  audit.tool('beta__whoami', 'beta');
  const e = await sdk.client.callTool({ name: 'beta__echo', arguments: { message: 'hello through the gateway' } });
  assert.equal(toolText(e), 'beta: hello through the gateway');
  audit.tool('beta__echo', 'beta');

  // the four shortened names each reach their own upstream tool
  for (const [conn, long, n] of [['alpha', LONG1, 'a1'], ['alpha', LONG2, 'a2'], ['beta', LONG1, 'b1'], ['beta', LONG2, 'b2']]) {
    const g = tools.find((x) => x.description === `long tool ${n}`);
    const r = await sdk.client.callTool({ name: g.name, arguments: { n: 7 } });
    assert.deepEqual(JSON.parse(toolText(r)), { tool: long, upstream: conn, args: { n: 7 } }, g.name);
    // its row names the tool in full: the shortened name says which one only while the lists stay as they are
    audit.tool(`${conn}__${long}`, conn);
  }

  // server-everything, a real upstream
  const sum = await sdk.client.callTool({ name: 'everything__get-sum', arguments: { a: 2, b: 40 } });
  assert.match(toolText(sum), /42/);
  audit.tool('everything__get-sum', 'everything');

  // a tool error is the upstream's result, passed through
  const f = await sdk.client.callTool({ name: 'alpha__fail', arguments: {} });
  assert.equal(f.isError, true);
  assert.equal(toolText(f), 'alpha failed on purpose');
  audit.tool('alpha__fail', 'alpha');
});

test('progress notifications and log messages arrive before the result', async () => {
  const order = [];
  sdk.client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => order.push(`log:${n.params.data}`));
  const r = await sdk.client.callTool({ name: 'alpha__stream', arguments: { steps: 4, delayMs: 100 } }, undefined,
    { onprogress: (p) => order.push(`progress:${p.progress}/${p.total}`) });
  order.push(`result:${toolText(r)}`);
  audit.tool('alpha__stream', 'alpha');
  assert.deepEqual(order, [
    'progress:1/4', 'log:step 1 of 4', 'progress:2/4', 'log:step 2 of 4',
    'progress:3/4', 'log:step 3 of 4', 'progress:4/4', 'log:step 4 of 4', 'result:streamed 4 steps']);

  // and from server-everything
  const steps = [];
  const lr = await sdk.client.callTool({ name: 'everything__trigger-long-running-operation', arguments: { duration: 1, steps: 3 } },
    undefined, { onprogress: (p) => steps.push(p.progress) });
  steps.push('result');
  audit.tool('everything__trigger-long-running-operation', 'everything');
  assert.match(toolText(lr), /completed/);
  assert.deepEqual(steps, [1, 2, 3, 'result']);
});

test('the upstream stream is relayed as it arrives: progress reaches the client while the call is still open', async () => {
  // the upstream holds its result until it is released, and it is released only once the
  // client has seen the progress notification: a gateway that buffered would never get there
  let released = null;
  const r = await sdk.client.callTool({ name: 'alpha__gate', arguments: {} }, undefined, {
    timeout: 30000,
    onprogress: () => { released ??= alpha.release(); },
  });
  audit.tool('alpha__gate', 'alpha');
  assert.ok(released, 'progress arrived before the result');
  assert.equal((await released).released, 1);
  assert.equal(toolText(r), 'released');
});

test("the upstream never receives the client's token; it gets the connector's static header", async () => {
  const a = await sdk.client.callTool({ name: 'alpha__headers', arguments: {} });
  audit.tool('alpha__headers', 'alpha');
  const b = await sdk.client.callTool({ name: 'beta__headers', arguments: {} });
  audit.tool('beta__headers', 'beta');
  for (const r of [a, b]) {
    const h = r.structuredContent.headers;
    assert.equal(h.authorization, undefined, 'no Authorization upstream');
    assert.ok(!JSON.stringify(h).includes(user.pat), 'the PAT appears in no upstream header');
    assert.ok(!/gth_/.test(JSON.stringify(h)), 'no Gatehouse credential upstream');
    assert.ok(h['mcp-session-id'], 'the upstream gets its own session id');
    assert.notEqual(h['mcp-session-id'], sdk.transport.sessionId, 'not the downstream session id');
  }
  assert.equal(a.structuredContent.headers['x-api-key'], undefined, "alpha has no static header");
  assert.equal(b.structuredContent.headers['x-api-key'], KEY, "beta's static header is sent");
  // the fixture refuses requests without the header: beta worked, so every request carried it
  assert.equal((await beta.log()).filter((e) => e.kind === 'refused').length, 0);
});

test('resources and prompts are aggregated from every connector', async () => {
  const { items: resources } = await listAll(sdk.client, 'resources');
  audit.expect({ method: 'resources/list' });
  for (const up of ['alpha', 'beta']) {
    for (const leaf of ['readme', 'data.json', 'notes']) {
      const r = resources.filter((x) => x.uri.includes(`fixture://${up}/${leaf}`) || x.name?.includes(up) && x.uri.endsWith(leaf));
      assert.equal(r.length, 1, `${up}/${leaf} listed once: ${JSON.stringify(resources.map((x) => x.uri))}`);
      const read = await sdk.client.readResource({ uri: r[0].uri });
      audit.expect({ method: 'resources/read', connector: up });
      const want = { readme: `readme of ${up}`, 'data.json': JSON.stringify({ upstream: up }), notes: 'a\nb\nc' }[leaf];
      assert.equal(read.contents[0].text, want, `${r[0].uri} read from ${up}`);
    }
  }
  assert.ok(resources.length > 6, 'server-everything resources too');

  const { items: prompts } = await listAll(sdk.client, 'prompts');
  audit.expect({ method: 'prompts/list' });
  const names = prompts.map((p) => p.name);
  for (const n of ['alpha__greet', 'alpha__plain', 'beta__greet', 'beta__plain']) assert.ok(names.includes(n), `${n} in ${names}`);
  const g = prompts.find((p) => p.name === 'beta__greet');
  assert.equal(g.title, 'Greeting');
  assert.equal(g.description, 'A greeting from beta');
  assert.deepEqual(g.arguments.map((a) => a.name), ['who']);
  const got = await sdk.client.getPrompt({ name: 'beta__greet', arguments: { who: 'Ada' } });
  audit.expect({ method: 'prompts/get', connector: 'beta' });
  assert.equal(got.messages[0].content.text, 'beta greets Ada');
  assert.equal(new Set(names).size, names.length);
});

test('pagination: the upstream pages (2 tools each) are followed; the downstream pages (5 each) join up', async () => {
  const { items, pages } = await listAll(sdk.client, 'tools');
  audit.expect({ method: 'tools/list' });
  const alphaTools = items.filter((t) => t.name.startsWith('alpha__'));
  assert.equal(alphaTools.length, 9, 'all 9 alpha tools behind its 5 upstream pages');
  assert.ok(pages >= Math.ceil(items.length / 5), `downstream pages of 5: ${pages} pages for ${items.length} tools`);
  // the upstream really paged: the fixture got tools/list with cursors
  const cursors = (await alpha.log()).filter((e) => e.method === 'tools/list' && e.params?.cursor);
  assert.ok(cursors.length >= 4, 'the gateway followed nextCursor upstream');
});

test('an OAuth access token works like a PAT', async () => {
  const c = await signedIn(srv, user);
  const { tokens } = await fullFlow(srv, c, { meta: { client_name: 'Gateway OAuth Test' } });
  const o = await sdkClient(srv, tokens.access_token);
  audit.expect({ method: 'initialize', kind: 'oauth' });
  const { items } = await listAll(o.client, 'tools');
  audit.expect({ method: 'tools/list', kind: 'oauth' });
  assert.ok(items.some((t) => t.name === 'alpha__echo'));
  const r = await o.client.callTool({ name: 'alpha__echo', arguments: { message: 'via oauth' } });
  audit.tool('alpha__echo', 'alpha', 'oauth');
  assert.equal(toolText(r), 'alpha: via oauth');
  const h = await o.client.callTool({ name: 'alpha__headers', arguments: {} });
  audit.tool('alpha__headers', 'alpha', 'oauth');
  assert.ok(!JSON.stringify(h.structuredContent.headers).includes(tokens.access_token));
  await o.client.close();
});

test('every call of this file has its audit row, tools/call allowed by policy', async () => {
  audit.check(srv);
});
