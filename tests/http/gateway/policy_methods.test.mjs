// Policies decide every method, not only tools/call (docs/POLICIES.md,
// "Which requests"): a forbid on prompts/get and resources/read is a
// JSON-RPC error with its @message (the MCP TypeScript SDK client reading
// it), lists leave out what no call of it could use and keep what depends
// on the arguments, a policy change sends list_changed to the sessions and
// listens of every process, every decided row names its policies with
// versions, and the audit pages filter by policy id and show ids only to
// those who may see them.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startCluster, startServer, startFixture, createUser, gatehouse, secret, Client } from '../../harness/index.mjs';
import {
  addConnector, sdkClient, toolText, auditRows, serverKey, rawSession, post, modern, modernMsg, modernHeaders, LEGACY,
  undecided,
} from './lib.mjs';

const TOOLS = [
  { name: 'read_file', inputSchema: { type: 'object' }, annotations: { readOnlyHint: true } },
  { name: 'delete_repo', inputSchema: { type: 'object' }, annotations: { destructiveHint: true } },
  { name: 'post_message', inputSchema: { type: 'object' }, annotations: { destructiveHint: false } },
  { name: 'get_repo', inputSchema: { type: 'object' }, annotations: { readOnlyHint: true } },
  { name: 'plain', inputSchema: { type: 'object' } },
];

let cluster, srv, srv2, up;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gh-policy-methods-'));
const clients = [];
const ctls = [];

before(async () => {
  cluster = await startCluster();
  const key = serverKey();
  up = await startFixture({ name: 'gh', tools: TOOLS });
  [srv, srv2] = await Promise.all([
    startServer({ cluster, name: 'gw-pmeth', env: { GATEHOUSE_SERVER_KEY: key } }),
    startServer({ cluster, name: 'gw-pmeth-2', env: { GATEHOUSE_SERVER_KEY: key } }),
  ]);
});

after(async () => {
  for (const c of ctls) c.abort();
  for (const c of clients) await c.client.close().catch(() => {});
  await up?.stop();
  if (srv2) assert.equal(await srv2.stop(), 0);
  if (srv) assert.equal(await srv.stop(), 0);
  await cluster?.stop();
  fs.rmSync(tmp, { recursive: true, force: true });
});

function cli(args) {
  const r = gatehouse(srv, args);
  assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
  return r;
}

/* A fresh agent with the fixture as connector `gh`; a trusted one keeps
 * its permit-all and has its baseline disabled. */
function agent(slug, more = []) {
  cli(['agent', 'add', '--slug', slug, '--name', `Agent ${slug}`, ...more]);
  addConnector(srv, { agent: slug, name: 'gh', url: up.url });
  if (!more.includes('--untrusted')) cli(['policy', 'disable', '--agent', slug, '--name', 'baseline-gh']);
  return slug;
}

function member(slug) {
  const u = createUser(srv, { agents: [slug] });
  const r = cli(['pat', 'create', '--email', u.email, '--agent', slug, '--name', 'policy-methods']);
  u.pat = secret(r.stdout.trim());
  return u;
}

async function connect(s, slug, u) {
  const c = await sdkClient(s, u.pat, { path: `/agents/${slug}/mcp` });
  clients.push(c);
  return c;
}

/* policy add|set; returns the policy id. */
function policy(sub, slug, name, text, more = []) {
  const f = path.join(tmp, `${name}-${Math.random().toString(36).slice(2)}.cedar`);
  fs.writeFileSync(f, text);
  const r = cli(['policy', sub, '--agent', slug, '--name', name, '--file', f, ...more]);
  return r.stdout.match(/[0-9a-f-]{36}/)[0];
}

function policyId(slug, name) {
  const line = cli(['policy', 'list', '--agent', slug]).stdout.split('\n').find((l) => l.split(/\s+/)[1] === name);
  assert.ok(line, `policy ${name} listed`);
  return line.split(/\s+/)[0];
}

const refusal = (p) => p.then(() => null, (e) => e);

test('a forbid on prompts/get and resources/read is a JSON-RPC error with its @message; the lists follow', async () => {
  const slug = agent('pm-get');
  const id = policy('add', slug, 'private', [
    '@message("No greetings on this agent.")',
    'forbid (principal, action == Action::"prompts/get", resource is Prompt) when { resource.name == "greet" };',
    '@message("The readme is private.")',
    'forbid (principal, action == Action::"resources/read", resource in Connector::"gh")',
    '  when { resource.uri like "*/readme" };',
    '@message("No completions of prompts.")',
    'forbid (principal, action == Action::"completion/complete", resource is Prompt);', ''].join('\n'));
  const u = member(slug);
  const c = await connect(srv, slug, u);

  const e1 = await refusal(c.client.getPrompt({ name: 'gh__greet', arguments: { who: 'x' } }));
  assert.ok(e1, 'prompts/get refused');
  assert.equal(e1.code, -32003);
  assert.match(e1.message, /No greetings on this agent\./);
  assert.ok((await c.client.getPrompt({ name: 'gh__plain' })).messages.length > 0, 'another prompt is allowed');
  const e2 = await refusal(c.client.readResource({ uri: 'fixture://gh/readme' }));
  assert.equal(e2?.code, -32003);
  assert.match(e2.message, /The readme is private\./);
  assert.equal((await c.client.readResource({ uri: 'fixture://gh/notes' })).contents[0].text, 'a\nb\nc');
  // the stateless 2026-07-28 revision: the same JSON-RPC error
  const st = await modern(srv, u.pat, 9, 'prompts/get', { name: 'gh__greet', arguments: { who: 'x' } },
    { path: `/agents/${slug}/mcp` });
  assert.deepEqual([st.body?.error?.code, st.body?.error?.message], [-32003, 'No greetings on this agent.'], st.text);
  const e3 = await refusal(c.client.complete({ ref: { type: 'ref/prompt', name: 'gh__plain' }, argument: { name: 'who', value: 'a' } }));
  assert.equal(e3?.code, -32003);
  assert.match(e3.message, /No completions of prompts\./);

  const prompts = (await c.client.listPrompts()).prompts.map((p) => p.name);
  assert.ok(!prompts.includes('gh__greet') && prompts.includes('gh__plain'), `prompts: ${prompts}`);
  const uris = (await c.client.listResources()).resources.map((r) => r.uri);
  assert.ok(!uris.includes('fixture://gh/readme') && uris.includes('fixture://gh/notes'), `resources: ${uris}`);
  const names = (await c.client.listTools()).tools.map((t) => t.name);
  assert.equal(names.length, TOOLS.length, 'no tool is forbidden here');
  assert.deepEqual((await up.log()).filter((e) => e.method === 'prompts/get' && e.params?.name === 'greet'), [],
    'the denied prompts/get never reached the upstream');

  const rows = auditRows(srv, `agent_slug = '${slug}' AND decision = 'deny'`).sort((x, y) => Number(x.raw.id) - Number(y.raw.id));
  assert.deepEqual(rows.map((r) => [r.method, r.message, r.raw.policy_ids, r.raw.policy_versions, r.connector]), [
    ['prompts/get', 'No greetings on this agent.', id, '1', 'gh'],
    ['resources/read', 'The readme is private.', id, '1', 'gh'],
    ['prompts/get', 'No greetings on this agent.', id, '1', 'gh'],
    ['completion/complete', 'No completions of prompts.', id, '1', 'gh'],
  ]);
});

test('tools/list hides a tool no call can use and keeps one whose policy reads the arguments', async () => {
  const slug = agent('pm-list');
  policy('add', slug, 'rules', [
    '@message("No deletes.")',
    'forbid (principal, action == Action::"tools/call", resource is Tool) when { resource.name == "delete_repo" };',
    '@message("Only #general.")',
    'forbid (principal, action == Action::"tools/call", resource is Tool) when { resource.name == "post_message" }',
    '  unless { ["general"].contains(context.args.channel) };',
    // not scoped to a method: it reads `name`, which every resource has, so the lists still work
    '@message("No repositories.")',
    'forbid (principal, action, resource) when { resource.name == "get_repo" };', ''].join('\n'));
  // a stricter list rule tried in shadow first
  const sid = policy('add', slug, 'lists-off', '@message("Lists are off.")\nforbid (principal, action == Action::"tools/list", resource);\n');
  cli(['policy', 'mode', '--agent', slug, '--name', 'lists-off', '--mode', 'shadow']);
  const u = member(slug);
  const c = await connect(srv, slug, u);

  const names = (await c.client.listTools()).tools.map((t) => t.name).sort();
  assert.deepEqual(names, ['gh__plain', 'gh__post_message', 'gh__read_file']);
  const allowed = await c.client.callTool({ name: 'gh__post_message', arguments: { channel: 'general' } });
  assert.notEqual(allowed.isError, true);
  const denied = await c.client.callTool({ name: 'gh__post_message', arguments: { channel: 'random' } });
  assert.deepEqual([denied.isError, toolText(denied)], [true, 'Only #general.'], 'a denied tools/call stays a tool error');

  // a batch's tools/list is filtered the same way (2025-03-26 batches)
  const s = await rawSession(srv, u.pat, { path: `/agents/${slug}/mcp`, version: '2025-03-26' });
  const b = await post(srv, [{ jsonrpc: '2.0', id: 7, method: 'tools/list' }],
    { token: u.pat, path: `/agents/${slug}/mcp`, session: s.session, version: '2025-03-26' });
  assert.deepEqual(b.body[0].result.tools.map((t) => t.name).sort(), names);

  const lrow = auditRows(srv, `agent_slug = '${slug}' AND method = 'tools/list'`)[0];
  assert.equal(lrow.decision, 'allow');
  assert.equal(lrow.raw.policy_ids, policyId(slug, 'permit-all'));
  assert.equal(lrow.raw.policy_shadow, `deny ${sid}@1`, 'the shadow outcome is recorded beside the decision');

  cli(['policy', 'mode', '--agent', slug, '--name', 'lists-off', '--mode', 'enforce']);
  const e = await refusal(c.client.listTools());
  assert.equal(e?.code, -32003);
  assert.match(e.message, /Lists are off\./);
});

test('on an untrusted agent the member\'s own policies decide the lists; without one, the list is refused', async () => {
  const slug = agent('pu-lists', ['--untrusted']);
  const [u, v] = [member(slug), member(slug)];
  policy('add', slug, 'mine', [
    'permit (principal, action in [Action::"tools/list", Action::"tools/call"], resource)',
    '  when { resource is Agent || (resource is Tool && resource.name == "read_file") };', ''].join('\n'),
  ['--member', u.email]);
  const cu = await connect(srv, slug, u);
  assert.deepEqual((await cu.client.listTools()).tools.map((t) => t.name), ['gh__read_file']);
  const cv = await connect(srv, slug, v);
  const e = await refusal(cv.client.listTools());
  assert.equal(e?.code, -32003);
  assert.match(e.message, /untrusted and no policy of yours allows anything/);
});

/* A legacy session's GET stream on s, at the agent's endpoint. */
async function getStreamAt(s, slug, u, session) {
  const ctl = new AbortController();
  ctls.push(ctl);
  const g = await post(s, undefined, { method: 'GET', token: u.pat, session, version: LEGACY, path: `/agents/${slug}/mcp`,
    accept: 'text/event-stream', stream: true, signal: ctl.signal });
  assert.equal(g.status, 200);
  return g.sse;
}

/* A 2026-07-28 subscriptions/listen for tools/list_changed on s. */
async function listenAt(s, slug, u) {
  const ctl = new AbortController();
  ctls.push(ctl);
  const msg = modernMsg(1, 'subscriptions/listen', { notifications: { toolsListChanged: true } });
  const l = await post(s, msg, { token: u.pat, path: `/agents/${slug}/mcp`, headers: modernHeaders(msg), stream: true,
    signal: ctl.signal });
  assert.equal(l.status, 200);
  assert.equal((await l.sse.next()).method, 'notifications/subscriptions/acknowledged');
  return l.sse;
}

const changed = (sse, what) => sse.until((m) => m.method === 'notifications/tools/list_changed', what);

test('policy set and disable send list_changed to open sessions and listens on both processes', async () => {
  const slug = agent('pm-changed');
  policy('add', slug, 'guard', '@message("no")\nforbid (principal, action == Action::"tools/call", resource) when { resource.name == "delete_repo" };\n');
  const u = member(slug);
  const [s1, s2] = [await rawSession(srv, u.pat, { path: `/agents/${slug}/mcp` }),
    await rawSession(srv2, u.pat, { path: `/agents/${slug}/mcp` })];
  const list = async (s) => (await s.call('tools/list', {})).body.result.tools.map((t) => t.name);
  assert.ok(!(await list(s2)).includes('gh__delete_repo'));
  const streams = [await getStreamAt(srv, slug, u, s1.session), await getStreamAt(srv2, slug, u, s2.session),
    await listenAt(srv2, slug, u)];

  policy('set', slug, 'guard', '@message("no")\nforbid (principal, action == Action::"tools/call", resource) when { resource.name == "get_repo" };\n');
  for (const [i, sse] of streams.entries()) await changed(sse, `list_changed after policy set (stream ${i})`);
  const after = await list(s2);
  assert.ok(after.includes('gh__delete_repo') && !after.includes('gh__get_repo'), `after set: ${after}`);

  cli(['policy', 'disable', '--agent', slug, '--name', 'guard']);
  for (const [i, sse] of streams.entries()) await changed(sse, `list_changed after policy disable (stream ${i})`);
  assert.equal((await list(s1)).length, TOOLS.length);
});

test('every decided row of the run names its policies with versions, a message and a decision', () => {
  const rows = auditRows(srv, "agent_slug LIKE 'pm-%'");
  const decided = rows.filter((r) => !undecided(r.method));
  assert.ok(decided.length >= 15, `decided rows: ${decided.length}`);
  for (const r of decided) {
    const ids = String(r.raw.policy_ids ?? '').split(',').filter(Boolean);
    const vers = String(r.raw.policy_versions ?? '').split(',').filter(Boolean);
    assert.ok(ids.length > 0 && ids.length === vers.length && r.message && ['allow', 'deny'].includes(r.decision),
      `row ${JSON.stringify(r.raw)}`);
  }
  for (const m of ['tools/list', 'tools/call', 'prompts/list', 'prompts/get', 'resources/list', 'resources/read',
    'completion/complete', 'subscriptions/listen'])
    assert.ok(decided.some((r) => r.method === m), `a decided ${m} row`);
  for (const r of rows.filter((x) => undecided(x.method) && x.decision === 'allow'))
    assert.equal(r.message, 'allow (not decided by policy)', `undecided ${r.method}`);
});

const dataIds = (html) => [...html.matchAll(/<tr class="audit-row" data-id="(\d+)"/g)].map((m) => m[1]).sort();

async function page(c, p, status = 200) {
  const res = await c.get(p);
  const html = await res.text();
  assert.equal(res.status, status, `${p}: ${html.slice(0, 300)}`);
  return html;
}

test('the audit pages filter by policy id; members never see the ids of a trusted agent\'s policies', async () => {
  const slug = 'pm-list';
  const rules = policyId(slug, 'rules');
  const want = auditRows(srv, `string_to_array(policy_ids, ',') @> ARRAY['${rules}']`).map((r) => String(r.raw.id)).sort();
  assert.ok(want.length >= 1, 'rows decided by the rules');

  const admin = createUser(srv, { admin: true, agents: [] });
  const ca = new Client(srv.url);
  await ca.login(admin.email, admin.password);
  const html = await page(ca, `/admin/audit?policy=${rules}`);
  assert.deepEqual(dataIds(html), want);
  assert.ok(dataIds(await page(ca, `/admin/audit?agent=${slug}`)).length > want.length, 'the filter leaves rows out');
  assert.match(html, new RegExp(`title="${rules}" href="/admin/audit\\?policy=${rules}">${rules.slice(0, 8)}@1</a>`));
  assert.deepEqual(dataIds(await page(ca, '/admin/audit?policy=00000000-0000-0000-0000-000000000000')), []);

  // an owner: the agent's own page, with ids and the same filter
  const owner = member(slug);
  cli(['member', 'owner', '--agent', slug, '--email', owner.email, 'on']);
  const co = new Client(srv.url);
  await co.login(owner.email, owner.password);
  const oh = await page(co, `/agents/${slug}/audit?policy=${rules}`);
  assert.deepEqual(dataIds(oh), want);
  assert.match(oh, new RegExp(`title="${rules}" href="/agents/${slug}/audit\\?policy=${rules}">${rules.slice(0, 8)}@1<`));

  // a member of the trusted agent: their own rows, without policy ids, and no agent page
  const m = member(slug);
  const c = await connect(srv, slug, m);
  assert.notEqual((await c.client.callTool({ name: 'gh__read_file', arguments: {} })).isError, true);
  assert.equal((await c.client.callTool({ name: 'gh__delete_repo', arguments: {} })).isError, true);
  const cm = new Client(srv.url);
  await cm.login(m.email, m.password);
  const mh = await page(cm, '/profile/activity');
  assert.ok(dataIds(mh).length >= 2, 'the member sees their rows');
  assert.match(mh, /No deletes\./, 'and the message');
  assert.doesNotMatch(mh, new RegExp(`${rules}|${policyId(slug, 'permit-all')}|policy=`), 'but no policy id');
  await page(cm, `/agents/${slug}/audit`, 403);
  await page(cm, '/agents/no-such-agent/audit', 404);

  // the owner's own activity shows the ids of the agent they own
  await (await connect(srv, slug, owner)).client.callTool({ name: 'gh__read_file', arguments: {} });
  assert.match(await page(co, '/profile/activity'),
    new RegExp(`<span class="policy" title="${policyId(slug, 'permit-all')}">${policyId(slug, 'permit-all').slice(0, 8)}@1<`));
});
