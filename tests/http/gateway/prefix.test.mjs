// Tool prefixes (issue 19, item 1): a connector's tools and prompts are shown
// as <prefix>__<name>, the prefix being its name unless an owner set another
// or none (`connector add|set --prefix P | --no-prefix`, the connectors page).
// A prefix change sends list_changed; names stay collision-free; policies
// still name Tool::"<connector>/<tool>" and the audit row the full
// <connector>__<tool>.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ToolListChangedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import { startServer, startFixture, createUser, gatehouse, Client } from '../../harness/index.mjs';
import { member, addConnector, connectorCmd, sdkClient, listAll, modern, toolText, AuditLog } from './lib.mjs';

let srv, alpha, beta, user, sdk;
const audit = new AuditLog();
const changes = [];
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gh-prefix-'));

before(async () => {
  [alpha, beta, srv] = await Promise.all([
    startFixture({ name: 'alpha', tools: ['echo', 'whoami'] }),
    startFixture({ name: 'beta', tools: ['echo'] }),
    startServer({ name: 'gw-prefix' }),
  ]);
  const r = gatehouse(srv, ['connector', 'add', '--agent', 'default', '--name', 'alpha', '--url', alpha.url, '--no-prefix']);
  assert.equal(r.code, 0, r.stderr);
  addConnector(srv, { name: 'beta', url: beta.url });
  user = member(srv);
  sdk = await sdkClient(srv, user.pat);
  sdk.client.setNotificationHandler(ToolListChangedNotificationSchema, () => { changes.push(Date.now()); });
  audit.expect({ method: 'initialize' });
});

after(async () => {
  await sdk?.client.close().catch(() => {});
  await Promise.all([alpha?.stop(), beta?.stop()]);
  if (srv) assert.equal(await srv.stop(), 0);
  fs.rmSync(tmp, { recursive: true, force: true });
});

async function names() {
  const { items } = await listAll(sdk.client, 'tools');
  audit.expect({ method: 'tools/list' });
  return items.map((t) => t.name).sort();
}

async function call(name, connector, message = 'hi') {
  const r = await sdk.client.callTool({ name, arguments: { message } });
  audit.tool(`${connector}__echo`, connector);
  return toolText(r);
}

/* Waits until list_changed arrived after n earlier ones. */
async function changedAfter(n) {
  const until = Date.now() + 15000;
  while (changes.length <= n) {
    assert.ok(Date.now() < until, 'tools/list_changed after the prefix change');
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('--no-prefix shows the upstream\'s own names; the default prefix is the connector name', async () => {
  assert.deepEqual(await names(), ['beta__echo', 'echo', 'whoami']);
  assert.equal(await call('echo', 'alpha', 'own name'), 'alpha: own name');
  assert.equal(await call('beta__echo', 'beta', 'prefixed'), 'beta: prefixed');
  const list = gatehouse(srv, ['connector', 'list', '--agent', 'default']).stdout;
  assert.match(list, /^default\s+alpha\s+enabled\s+.*\s\(none\)$/m);
  assert.match(list, /^default\s+beta\s+enabled\s+.*\sbeta$/m);
});

test('a prefix change sends list_changed; two connectors without prefix stay collision-free', async () => {
  let n = changes.length;
  const r = connectorCmd(srv, 'set', '--agent', 'default', '--name', 'beta', '--prefix', '');
  assert.match(r.stdout, /tools shown under their own names/);
  await changedAfter(n);
  const both = await names();
  assert.equal(both.length, 3);
  assert.ok(both.includes('echo') && both.includes('whoami'));
  const hashed = both.find((x) => /^echo_[0-9a-f]{8}$/.test(x));
  assert.ok(hashed, `beta's echo told apart: ${both}`);
  assert.deepEqual(await names(), both, 'the same names on every list');
  assert.equal(await call('echo', 'alpha'), 'alpha: hi', 'alpha listed first (by name) keeps "echo"');
  assert.equal(await call(hashed, 'beta'), 'beta: hi');

  n = changes.length;
  connectorCmd(srv, 'set', '--agent', 'default', '--name', 'alpha', '--prefix', 'gh.v1');
  await changedAfter(n);
  assert.deepEqual(await names(), ['echo', 'gh.v1__echo', 'gh.v1__whoami']);
  assert.equal(await call('echo', 'beta'), 'beta: hi');
  assert.equal(await call('gh.v1__echo', 'alpha'), 'alpha: hi');
  // the old name is gone: an unknown tool, as the upstream itself answers
  const old = await sdk.client.callTool({ name: hashed, arguments: { message: 'x' } });
  audit.expect({ method: 'tools/call', tool: hashed, decision: 'deny', message: `Unknown tool: ${hashed}` });
  assert.equal(old.isError, true);

  n = changes.length;
  connectorCmd(srv, 'set', '--agent', 'default', '--name', 'beta', '--default-prefix');
  await changedAfter(n);
  assert.deepEqual(await names(), ['beta__echo', 'gh.v1__echo', 'gh.v1__whoami']);
  assert.equal(srv.cluster.sql("SELECT coalesce(tool_prefix, 'NULL') FROM connectors WHERE name = 'beta'"), 'NULL');
});

test('policies name Tool::"<connector>/<tool>" and audit rows <connector>__<tool>, whatever the prefix', async () => {
  const f = path.join(tmp, 'no-alpha-echo.cedar');
  fs.writeFileSync(f, '@message("alpha echo is off")\nforbid (principal, action == Action::"tools/call", resource == Tool::"alpha/echo");\n');
  const p = gatehouse(srv, ['policy', 'add', '--agent', 'default', '--name', 'no-alpha-echo', '--file', f]);
  assert.equal(p.code, 0, p.stderr);
  const r = await sdk.client.callTool({ name: 'gh.v1__echo', arguments: { message: 'x' } });
  audit.expect({ method: 'tools/call', tool: 'alpha__echo', connector: 'alpha', decision: 'deny', message: 'alpha echo is off' });
  assert.equal(r.isError, true);
  assert.match(toolText(r), /alpha echo is off/);
  assert.equal(await call('beta__echo', 'beta'), 'beta: hi', 'beta\'s echo is not alpha\'s');
  // a stateless 2026-07-28 client sees the same names
  const m = await modern(srv, user.pat, 'm-1', 'tools/call', { name: 'beta__echo', arguments: { message: 'modern' } });
  audit.tool('beta__echo', 'beta');
  assert.equal(toolText(m.body.result), 'beta: modern');
  assert.equal(gatehouse(srv, ['policy', 'disable', '--agent', 'default', '--name', 'no-alpha-echo']).code, 0);
});

test('bad prefixes are refused by the CLI and the page, and change nothing', async () => {
  for (const args of [['--prefix', 'has space'], ['--prefix', 'x'.repeat(33)], ['--prefix', 'a/b'], ['--prefix', 'é']]) {
    const r = gatehouse(srv, ['connector', 'set', '--agent', 'default', '--name', 'beta', ...args]);
    assert.equal(r.code, 2, args.join(' '));
    assert.match(r.stderr, /tool prefix must be at most 32 characters/);
  }
  for (const [args, msg] of [
    [[], /set needs --prefix PREFIX, --no-prefix or --default-prefix/],
    [['--prefix', 'a', '--default-prefix'], /give one of/],
  ]) {
    const r = gatehouse(srv, ['connector', 'set', '--agent', 'default', '--name', 'beta', ...args]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, msg);
  }
  const unknown = gatehouse(srv, ['connector', 'set', '--agent', 'default', '--name', 'nope', '--prefix', 'x']);
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /no connector with this name/);
  const bad = gatehouse(srv, ['connector', 'add', '--agent', 'default', '--name', 'gamma', '--url', beta.url, '--prefix', 'a b']);
  assert.equal(bad.code, 2);
  assert.equal(srv.cluster.sql("SELECT count(*) FROM connectors WHERE name = 'gamma'"), '0');
  assert.equal(srv.cluster.sql("SELECT coalesce(tool_prefix, 'NULL') FROM connectors WHERE name = 'beta'"), 'NULL');

  const admin = createUser(srv, { admin: true });
  const c = new Client(srv.url);
  assert.equal((await c.login(admin.email, admin.password)).status, 303);
  const html = await (await c.get('/admin/connectors')).text();
  assert.match(html, /data-prefix="default\/alpha"/);
  assert.match(html, /name="prefix" value="gh.v1"/);
  const refused = await c.form('/admin/connectors', '/admin/connectors/prefix', { agent: 'default', name: 'beta', prefix: '<b>' });
  assert.equal(refused.status, 400);
  const body = await refused.text();
  assert.match(body, /tool prefix must be at most 32 characters/);
  assert.ok(!body.includes('<b>'), 'escaped');
  assert.equal(srv.cluster.sql("SELECT coalesce(tool_prefix, 'NULL') FROM connectors WHERE name = 'beta'"), 'NULL');
  const missing = await c.form('/admin/connectors', '/admin/connectors/prefix', { agent: 'default', name: 'nope', prefix: 'x' });
  assert.equal(missing.status, 404);

  // the page sets one (empty: none) and adds a connector with one
  const n = changes.length;
  const set = await c.form('/admin/connectors', '/admin/connectors/prefix', { agent: 'default', name: 'beta', prefix: 'b2' });
  assert.equal(set.status, 303);
  await changedAfter(n);
  assert.deepEqual(await names(), ['b2__echo', 'gh.v1__echo', 'gh.v1__whoami']);
  const add = await c.form('/admin/connectors', '/admin/connectors', { agent: 'default', name: 'gamma', url: beta.url, no_prefix: '1' });
  assert.equal(add.status, 303);
  assert.equal(srv.cluster.sql("SELECT tool_prefix FROM connectors WHERE name = 'gamma'"), '');
  const csrfless = await c.post('/admin/connectors/prefix', { agent: 'default', name: 'beta', prefix: 'zz' });
  assert.equal(csrfless.status, 403);
  assert.equal(srv.cluster.sql("SELECT tool_prefix FROM connectors WHERE name = 'beta'"), 'b2');
});

test('every call above has its audit row, under the full name', () => {
  audit.check(srv, "agent_slug = 'default' AND method IN ('initialize', 'tools/list', 'tools/call')");
});
