// Policies decide every tools/call (docs/POLICIES.md): the cases of the
// product through the gateway with a real upstream and the MCP SDK client
// reading the forbid's @message, an edit applying on the next call on a
// second process, untrusted agents failing closed, the circuit breaker
// surviving a restart, and the audit rows naming policy ids and versions.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startCluster, startServer, startFixture, createUser, gatehouse, secret } from '../../harness/index.mjs';
import { Client as McpClient } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { addConnector, sdkClient, toolText, auditRows, serverKey } from './lib.mjs';

const TOOLS = [
  { name: 'read_file', inputSchema: { type: 'object' }, annotations: { readOnlyHint: true } },
  { name: 'delete_repo', inputSchema: { type: 'object' }, annotations: { destructiveHint: true } },
  { name: 'post_message', inputSchema: { type: 'object' }, annotations: { destructiveHint: false } },
  { name: 'get_repo', inputSchema: { type: 'object' }, annotations: { readOnlyHint: true } },
  { name: 'plain', inputSchema: { type: 'object' } },   // no annotations: MCP defaults (destructive)
];

let cluster, srv, srv2, up;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gh-policy-'));
const clients = [];

before(async () => {
  cluster = await startCluster();
  const key = serverKey();
  up = await startFixture({ name: 'gh', tools: TOOLS });
  [srv, srv2] = await Promise.all([
    startServer({ cluster, name: 'gw-policy', env: { GATEHOUSE_SERVER_KEY: key } }),
    startServer({ cluster, name: 'gw-policy-2', env: { GATEHOUSE_SERVER_KEY: key } }),
  ]);
});

after(async () => {
  for (const c of clients) await c.client.close().catch(() => {});
  await up?.stop();
  if (srv2) assert.equal(await srv2.stop(), 0);
  if (srv) assert.equal(await srv.stop(), 0);
  await cluster?.stop();
  fs.rmSync(tmp, { recursive: true, force: true });
});

function cli(args, { ok = true } = {}) {
  const r = gatehouse(srv, args);
  if (ok) assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
  return r;
}

/* A fresh agent with the fixture as connector `gh`, its seeded baseline
 * disabled unless baseline (the cases below bring their own forbids). */
function agent(slug, more = [], { baseline = false } = {}) {
  cli(['agent', 'add', '--slug', slug, '--name', `Agent ${slug}`, ...more]);
  addConnector(srv, { agent: slug, name: 'gh', url: up.url });
  if (!baseline && !more.includes('--untrusted')) cli(['policy', 'disable', '--agent', slug, '--name', 'baseline-gh']);
  return slug;
}

/* An approved member of slug with a PAT. */
function member(slug) {
  const u = createUser(srv, { agents: [slug] });
  const r = cli(['pat', 'create', '--email', u.email, '--agent', slug, '--name', 'policy-test']);
  u.pat = secret(r.stdout.trim());
  return u;
}

async function connect(s, slug, u) {
  const c = await sdkClient(s, u.pat, { path: `/agents/${slug}/mcp` });
  clients.push(c);
  return c;
}

/* A second client on server s joining the MCP session of client c. */
async function sameSession(s, slug, u, c) {
  const transport = new StreamableHTTPClientTransport(new URL(`${s.url}/agents/${slug}/mcp`), {
    sessionId: c.transport.sessionId,
    requestInit: { headers: { Authorization: `Bearer ${u.pat}` } },
  });
  const client = new McpClient({ name: 'gw-test-second', version: '1.0.0' });
  await client.connect(transport);
  const r = { client, transport };
  clients.push(r);
  return r;
}

function policyFile(name, text) {
  const f = path.join(tmp, `${name}-${Math.random().toString(36).slice(2)}.cedar`);
  fs.writeFileSync(f, text);
  return f;
}

/* policy add|set; returns the policy id. */
function policy(sub, slug, name, text, more = []) {
  const r = cli(['policy', sub, '--agent', slug, '--name', name, '--file', policyFile(name, text), ...more]);
  return r.stdout.match(/[0-9a-f-]{36}/)[0];
}

function policyId(slug, name) {
  const line = cli(['policy', 'list', '--agent', slug]).stdout.split('\n').find((l) => l.split(/\s+/)[1] === name);
  assert.ok(line, `policy ${name} listed`);
  return line.split(/\s+/)[0];
}

async function call(c, tool, args = {}) {
  const r = await c.client.callTool({ name: `gh__${tool}`, arguments: args });
  return { denied: r.isError === true, text: toolText(r) };
}

const rows = (slug, tool) => auditRows(srv, `agent_slug = '${slug}' AND tool = 'gh__${tool}'`)
  .sort((x, y) => Number(x.raw.id) - Number(y.raw.id));

test('a new trusted agent starts with a visible permit-all, and its calls name it in the audit row', async () => {
  const slug = agent('pol-base');
  const list = cli(['policy', 'list', '--agent', slug]).stdout;
  assert.match(list, /permit-all\s+enforce\s+enabled\s+1/);
  const hist = cli(['policy', 'history', '--agent', slug, '--name', 'permit-all']).stdout;
  assert.match(hist, /version 1 by gatehouse/);
  assert.match(hist, /permit \(principal, action, resource\);/);
  const c = await connect(srv, slug, member(slug));
  assert.deepEqual(await call(c, 'plain', { a: 1 }), { denied: false, text: JSON.stringify({ tool: 'plain', upstream: 'gh', args: { a: 1 } }) });
  const [row] = rows(slug, 'plain');
  assert.deepEqual([row.decision, row.message], ['allow', 'allowed by policy']);
  assert.equal(row.raw.policy_ids, policyId(slug, 'permit-all'));
  assert.equal(row.raw.policy_versions, '1');
});

test('adding a connector seeds a visible baseline: tools that say destructive are refused', async () => {
  const slug = agent('pol-seed', [], { baseline: true });
  const id = policyId(slug, 'baseline-gh');
  assert.match(cli(['policy', 'list', '--agent', slug]).stdout, /baseline-gh\s+enforce\s+enabled\s+1/);
  assert.match(cli(['policy', 'history', '--agent', slug, '--name', 'baseline-gh']).stdout, /resource in Connector::"gh"/);
  const c = await connect(srv, slug, member(slug));
  const msg = 'Tools of gh that are marked destructive are not allowed on this agent.';
  assert.deepEqual(await call(c, 'delete_repo'), { denied: true, text: msg });
  assert.equal((await call(c, 'plain')).denied, false, 'no annotations: nothing stated, not refused by the baseline');
  assert.equal((await call(c, 'read_file')).denied, false);
  assert.equal(rows(slug, 'delete_repo')[0].raw.policy_ids, id);
  cli(['policy', 'disable', '--agent', slug, '--name', 'baseline-gh']);
  assert.equal((await call(c, 'delete_repo')).denied, false, 'editable: disabled, it no longer refuses');
  // an untrusted agent's connector seeds nothing: its members' sets start empty
  const u = agent('pol-seed-u', ['--untrusted']);
  assert.equal(cli(['policy', 'list', '--agent', u]).stdout.trim().split('\n').length, 1);
});

test('forbid destructive tools for everyone with a custom message', async () => {
  const slug = agent('pol-destr');
  const id = policy('add', slug, 'no-destructive',
    '@message("Destructive tools are switched off on this agent.")\n' +
    'forbid (principal, action == Action::"tools/call", resource is Tool)\n' +
    '  when { resource.destructive && !resource.readOnly };\n');
  const c = await connect(srv, slug, member(slug));
  assert.deepEqual(await call(c, 'delete_repo', { repo: 'x' }), { denied: true, text: 'Destructive tools are switched off on this agent.' });
  assert.equal((await call(c, 'plain')).denied, true, 'no annotations: destructive by the MCP default');
  assert.equal((await call(c, 'read_file')).denied, false);
  assert.equal((await call(c, 'post_message', { channel: 'x' })).denied, false);
  const [row] = rows(slug, 'delete_repo');
  assert.deepEqual([row.decision, row.message, row.raw.policy_ids, row.raw.policy_versions],
    ['deny', 'Destructive tools are switched off on this agent.', id, '1']);
});

test('an edit applies on the next call on a second process, and the audit row names the new version', async () => {
  const slug = agent('pol-edit');
  const id = policy('add', slug, 'guard', '@message("first")\nforbid (principal, action, resource) when { resource.name == "get_repo" };\n');
  const u = member(slug);
  const [c1, c2] = [await connect(srv, slug, u), await connect(srv2, slug, u)];
  assert.deepEqual(await call(c2, 'get_repo'), { denied: true, text: 'first' });   // cached on srv2 now
  assert.deepEqual(await call(c1, 'get_repo'), { denied: true, text: 'first' });
  policy('set', slug, 'guard', '@message("second")\nforbid (principal, action, resource) when { resource.name == "get_repo" };\n');
  assert.deepEqual(await call(c2, 'get_repo'), { denied: true, text: 'second' });
  assert.deepEqual(await call(c1, 'get_repo'), { denied: true, text: 'second' });
  cli(['policy', 'disable', '--agent', slug, '--name', 'guard']);
  assert.equal((await call(c2, 'get_repo')).denied, false);
  const got = rows(slug, 'get_repo').map((r) => [r.decision, r.raw.policy_versions]);
  assert.deepEqual(got.slice(0, 4), [['deny', '1'], ['deny', '1'], ['deny', '2'], ['deny', '2']]);
  assert.deepEqual(got[4], ['allow', '1'], 'the permit-all decided once the guard was disabled');
  assert.equal(rows(slug, 'get_repo')[2].raw.policy_ids, id);
  const hist = cli(['policy', 'history', '--agent', slug, '--name', 'guard']).stdout;
  assert.match(hist, /version 1 by cli[^]*"first"[^]*version 2 by cli[^]*"second"/);
});

test('posting only to three named channels (an argument constraint; a missing argument fails closed)', async () => {
  const slug = agent('pol-chan');
  policy('add', slug, 'channels',
    '@message("Posting is allowed only in #general, #random and #ops.")\n' +
    'forbid (principal, action == Action::"tools/call", resource)\n' +
    '  when { resource.name == "post_message" }\n' +
    '  unless { ["general", "random", "ops"].contains(context.args.channel) };\n');
  const c = await connect(srv, slug, member(slug));
  assert.equal((await call(c, 'post_message', { channel: 'ops', text: 'hi' })).denied, false);
  assert.deepEqual(await call(c, 'post_message', { channel: 'finance', text: 'hi' }),
    { denied: true, text: 'Posting is allowed only in #general, #random and #ops.' });
  // no channel: the forbid errors, and an erroring forbid denies
  assert.equal((await call(c, 'post_message', { text: 'hi' })).denied, true);
  // arguments are data: an entity escape is a record, not an entity
  assert.equal((await call(c, 'post_message', { channel: { __entity: { type: 'X', id: 'ops' } } })).denied, true);
});

test('only public, non-archived repositories', async () => {
  const slug = agent('pol-repo');
  policy('add', slug, 'public-repos',
    '@message("Only public, non-archived repositories.")\n' +
    'forbid (principal, action, resource) when { resource.name == "get_repo" }\n' +
    '  unless { context.args has visibility && context.args.visibility == "public" &&\n' +
    '           context.args has archived && context.args.archived == false };\n');
  const c = await connect(srv, slug, member(slug));
  assert.equal((await call(c, 'get_repo', { repo: 'a', visibility: 'public', archived: false })).denied, false);
  assert.deepEqual(await call(c, 'get_repo', { repo: 'b', visibility: 'private', archived: false }),
    { denied: true, text: 'Only public, non-archived repositories.' });
  assert.equal((await call(c, 'get_repo', { repo: 'c', visibility: 'public', archived: true })).denied, true);
});

test('after three denials in a session everything is denied, also after a restart mid-session', async () => {
  const slug = agent('pol-breaker');
  policy('add', slug, 'no-delete', '@message("no deleting")\nforbid (principal, action, resource) when { resource.name == "delete_repo" };\n');
  policy('add', slug, 'breaker', '@message("Too many denied calls in this session.")\n' +
    'forbid (principal, action, resource) when { context.session.denials >= 3 };\n');
  const u = member(slug);
  const c = await connect(srv, slug, u);
  const other = await connect(srv, slug, u);
  // the same session on a second process, which counts it in memory from its first call
  const c2 = await sameSession(srv2, slug, u, c);
  assert.equal((await call(c, 'read_file')).denied, false);
  assert.equal((await call(c2, 'read_file')).denied, false);
  for (let i = 0; i < 3; i++) assert.deepEqual(await call(c, 'delete_repo'), { denied: true, text: 'no deleting' });
  assert.deepEqual(await call(c, 'read_file'), { denied: true, text: 'Too many denied calls in this session.' });
  assert.deepEqual(await call(c2, 'read_file'), { denied: true, text: 'Too many denied calls in this session.' },
    'the denials of the first process count on the second at once');
  assert.equal((await call(other, 'read_file')).denied, false, 'another session has its own count');
  await srv.restart();
  assert.deepEqual(await call(c, 'read_file'), { denied: true, text: 'Too many denied calls in this session.' });
  assert.equal((await call(other, 'read_file')).denied, false);
});

test('an untrusted agent fails closed: a member without a policy is denied, with a message saying so', async () => {
  const slug = agent('pol-untrusted', ['--untrusted']);
  assert.equal(cli(['policy', 'list', '--agent', slug]).stdout.trim().split('\n').length, 1, 'no seeded policy');
  const [u, v] = [member(slug), member(slug)];
  const c = await connect(srv, slug, u);
  const d = await call(c, 'read_file');
  assert.equal(d.denied, true);
  assert.match(d.text, /untrusted and no policy of yours allows anything/);
  // agent-wide policies do not exist there; a member of another agent is refused
  let r = cli(['policy', 'add', '--agent', slug, '--name', 'p', '--file', policyFile('p', 'permit (principal, action, resource);')], { ok: false });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /untrusted: a policy belongs to one member/);
  const stranger = createUser(srv, {});
  r = cli(['policy', 'add', '--agent', slug, '--member', stranger.email, '--name', 'p',
    '--file', policyFile('p', 'permit (principal, action, resource);')], { ok: false });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /No such member of this agent/);
  policy('add', slug, 'reads', 'permit (principal, action == Action::"tools/call", resource) when { resource.readOnly };\n', ['--member', u.email]);
  assert.equal((await call(c, 'read_file')).denied, false);
  assert.equal((await call(c, 'post_message', { channel: 'x' })).denied, true, 'only what the permit allows');
  const cv = await connect(srv2, slug, v);
  assert.match((await call(cv, 'read_file')).text, /no policy of yours/, "u's policy is not v's");
});

test('a shadow policy is evaluated and never decides', async () => {
  const slug = agent('pol-shadow');
  policy('add', slug, 'strict', '@message("strict")\nforbid (principal, action, resource) when { resource.name == "read_file" };\n');
  cli(['policy', 'mode', '--agent', slug, '--name', 'strict', '--mode', 'shadow']);
  assert.match(cli(['policy', 'list', '--agent', slug]).stdout, /strict\s+shadow/);
  const c = await connect(srv, slug, member(slug));
  assert.equal((await call(c, 'read_file')).denied, false);
  const [row] = rows(slug, 'read_file');
  assert.equal(row.decision, 'allow');
  assert.equal(row.raw.policy_ids, policyId(slug, 'permit-all'), 'the shadow policy determined nothing');
  assert.equal(row.raw.policy_shadow, `deny ${policyId(slug, 'strict')}@1`, 'what it would have decided');
  assert.equal((await call(c, 'get_repo')).denied, false);
  assert.equal(rows(slug, 'get_repo')[0].raw.policy_shadow, `allow ${policyId(slug, 'permit-all')}@1`);
  cli(['policy', 'mode', '--agent', slug, '--name', 'strict', '--mode', 'enforce']);
  assert.deepEqual(await call(c, 'read_file'), { denied: true, text: 'strict' });
  assert.equal(rows(slug, 'read_file')[1].raw.policy_shadow, null, 'no shadow policy left');
});

test('bad policy text is refused with line:col and changes nothing', () => {
  const slug = agent('pol-bad');
  let r = cli(['policy', 'add', '--agent', slug, '--name', 'broken', '--file', policyFile('b', 'permit (principal,\n  action resource);')], { ok: false });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /gatehouse: 2:10: /);
  r = cli(['policy', 'add', '--agent', slug, '--name', 'big', '--file', policyFile('big', `// ${'x'.repeat(70000)}\npermit (principal, action, resource);`)], { ok: false });
  assert.match(r.stderr, /over 65536 bytes/);
  r = cli(['policy', 'set', '--agent', slug, '--name', 'permit-all', '--file', policyFile('b', 'forbid (')], { ok: false });
  assert.match(r.stderr, /1:9: /);
  r = cli(['policy', 'add', '--agent', slug, '--name', 'permit-all', '--file', policyFile('d', 'permit (principal, action, resource);')], { ok: false });
  assert.match(r.stderr, /A policy of that name exists/);
  r = cli(['policy', 'add', '--agent', slug, '--name', 'no spaces', '--file', policyFile('d', 'permit (principal, action, resource);')], { ok: false });
  assert.match(r.stderr, /A policy name is 1 to 64 letters/);
  r = cli(['policy', 'set', '--agent', slug, '--name', 'nothing-here', '--file', policyFile('d', 'permit (principal, action, resource);')], { ok: false });
  assert.match(r.stderr, /No policy of that name/);
  r = cli(['policy', 'mode', '--agent', slug, '--name', 'permit-all', '--mode', 'loud'], { ok: false });
  assert.match(r.stderr, /enforce or shadow/);
  const list = cli(['policy', 'list', '--agent', slug]).stdout.trim().split('\n');
  assert.equal(list.length, 3);
  assert.match(list[1], /permit-all\s+enforce\s+enabled\s+1/);
  assert.match(list[2], /baseline-gh\s+enforce\s+disabled\s+1/);
});

test('policy test: writes only Monday to Friday, 09:00 to 17:00 in the agent\'s time zone', () => {
  const slug = agent('pol-hours', ['--timezone', 'America/New_York']);
  cli(['policy', 'disable', '--agent', slug, '--name', 'permit-all']);
  policy('add', slug, 'reads', 'permit (principal, action == Action::"tools/call", resource) when { resource.readOnly };\n');
  policy('add', slug, 'office-writes',
    'permit (principal, action == Action::"tools/call", resource)\n' +
    '  when { !resource.readOnly && context.now.weekday <= 5 && context.now.hour >= 9 && context.now.hour < 17 };\n');
  const u = member(slug);
  const bench = (tool, at, more = []) => {
    const r = cli(['policy', 'test', '--agent', slug, '--email', u.email, '--tool', `gh/${tool}`, '--at', at, ...more]);
    return Object.fromEntries(r.stdout.trim().split('\n').map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 2)]));
  };
  // Wednesday 2026-12-09 15:00 UTC is 10:00 in New York; 23:00 UTC is 18:00
  assert.equal(bench('post_message', '2026-12-09T15:00:00Z', ['--annotations', '{"destructiveHint":false}']).decision, 'allow');
  assert.equal(bench('post_message', '2026-12-09T23:00:00Z', ['--annotations', '{"destructiveHint":false}']).decision, 'deny');
  // Saturday 2026-12-12 15:00 UTC
  const sat = bench('post_message', '2026-12-12T15:00:00Z');
  assert.equal(sat.decision, 'deny');
  assert.equal(sat.message, 'denied by policy');
  assert.match(sat.request, /"weekday": 6/);
  assert.match(sat.request, /"hour": 10/);
  assert.match(sat.request, /"date": "2026-12-12"/);
  const rd = bench('read_file', '2026-12-12T15:00:00Z', ['--annotations', '{"readOnlyHint":true}']);
  assert.equal(rd.decision, 'allow');
  assert.equal(rd.policies, policyId(slug, 'reads'));
  const bad = cli(['policy', 'test', '--agent', slug, '--email', u.email, '--tool', 'gh/x', '--args', '[1]'], { ok: false });
  assert.match(bad.stderr, /--args is not a JSON object/);
});

test("context.now without --at: the agent's zone's UTC offset (asked once a minute) gives the local time", () => {
  // +05:30 and -03:30: half-hour offsets show the minutes are shifted too
  for (const zone of ['Asia/Kolkata', 'America/St_Johns', 'UTC']) {
    const slug = agent(`pol-now-${zone.replace(/[^A-Za-z]/g, '').toLowerCase()}`, ['--timezone', zone]);
    const u = member(slug);
    const local = (d) => {
      const p = Object.fromEntries(new Intl.DateTimeFormat('en-CA', {
        timeZone: zone, year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit',
        weekday: 'short', hourCycle: 'h23',
      }).formatToParts(d).map((x) => [x.type, x.value]));
      const wd = ['Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun'].indexOf(p.weekday) + 1;
      return `${p.year}-${p.month}-${p.day} ${Number(p.hour)}:${Number(p.minute)} ${wd}`;
    };
    for (let i = 0; i < 2; i++) {
      const before = new Date();
      const r = cli(['policy', 'test', '--agent', slug, '--email', u.email, '--tool', 'gh/read_file']).stdout;
      const after = new Date();
      const req = r.split('\n').find((l) => l.startsWith('request: '));
      const num = (k) => Number(req.match(new RegExp(`"${k}": (\\d+)`))[1]);
      const got = `${req.match(/"date": "([^"]+)"/)[1]} ${num('hour')}:${num('minute')} ${num('weekday')}`;
      assert.ok([local(before), local(after)].includes(got), `${zone}: ${got} is neither ${local(before)} nor ${local(after)}`);
      const utc = Number(req.match(/datetime\((-?\d+)ms\)/)[1]);
      assert.ok(utc >= Math.floor(before / 1000) * 1000 && utc <= after.getTime(), `${zone}: datetime is now in UTC`);
    }
  }
});
