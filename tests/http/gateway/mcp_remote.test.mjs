// mcp-remote (npm) as a stdio bridge with `--header "Authorization: Bearer <PAT>"`,
// driven by the SDK's StdioClientTransport: it lists and calls tools through
// the gateway, in its default (2025-11-25 session) mode and with
// `--protocol auto`, where it speaks the stateless 2026-07-28 era to us.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client as McpClient } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { startServer, startFixture, nodeModules } from '../../harness/index.mjs';
import { member, addConnector, toolText, listAll, auditRows, AuditLog } from './lib.mjs';

let srv, alpha, user, configDir;
const audit = new AuditLog();

before(async () => {
  [alpha, srv] = await Promise.all([
    startFixture({ name: 'alpha', tools: ['echo', 'whoami', 'stream', 'headers'] }),
    startServer({ name: 'gw-mcp-remote' }),
  ]);
  addConnector(srv, { name: 'alpha', url: alpha.url });
  user = member(srv);
  configDir = fs.mkdtempSync(path.join(os.tmpdir(), 'gh-mcp-remote-'));
});

after(async () => {
  await alpha?.stop();
  if (srv) assert.equal(await srv.stop(), 0);
  fs.rmSync(configDir, { recursive: true, force: true });
});

async function bridge(extra = []) {
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [path.join(nodeModules, 'mcp-remote/dist/proxy.js'), `${srv.url}/mcp`, '--header', `Authorization: Bearer ${user.pat}`,
      '--transport', 'http-only', ...extra],
    env: { ...process.env, MCP_REMOTE_CONFIG_DIR: configDir },
    stderr: 'pipe',
  });
  let stderr = '';
  transport.stderr?.on('data', (d) => { stderr += d; });
  const client = new McpClient({ name: 'mcp-remote-test', version: '1.0.0' });
  try {
    await client.connect(transport);
  } catch (e) {
    throw new Error(`mcp-remote did not connect: ${e.message}\n${stderr}`);
  }
  return { client, transport, stderr: () => stderr };
}

for (const [label, extra, kind] of [['default mode (2025-11-25 session)', [], 'legacy'], ['--protocol auto (2026-07-28, stateless)', ['--protocol', 'auto'], 'modern']]) {
  test(`mcp-remote ${label} lists and calls tools through the gateway`, async () => {
    await alpha.resetLog();
    const firstId = Number(srv.cluster.sql('SELECT coalesce(max(id), 0) FROM audit_events'));
    const b = await bridge(extra);
    try {
      if (kind === 'legacy') audit.expect({ method: 'initialize' });
      const { items } = await listAll(b.client, 'tools');
      audit.expect({ method: 'tools/list' });
      const names = items.map((t) => t.name);
      assert.deepEqual(names.filter((n) => n.startsWith('alpha__')).sort(), ['alpha__echo', 'alpha__headers', 'alpha__stream', 'alpha__whoami']);
      const r = await b.client.callTool({ name: 'alpha__echo', arguments: { message: `via mcp-remote ${kind}` } });
      audit.tool('alpha__echo', 'alpha');
      assert.equal(toolText(r), `alpha: via mcp-remote ${kind}`);
      const progress = [];
      const s = await b.client.callTool({ name: 'alpha__stream', arguments: { steps: 2, delayMs: 20 } }, undefined,
        { onprogress: (p) => progress.push(p.progress) });
      audit.tool('alpha__stream', 'alpha');
      assert.equal(toolText(s), 'streamed 2 steps');
      assert.deepEqual(progress, [1, 2]);
      const h = await b.client.callTool({ name: 'alpha__headers', arguments: {} });
      audit.tool('alpha__headers', 'alpha');
      assert.ok(!JSON.stringify(h.structuredContent.headers).includes(user.pat), 'the PAT stays at the gateway');
      // this run's rows (committed before each response left)
      const rows = auditRows(srv, `id > ${firstId} AND user_email = '${user.email}'`).sort((x, y) => x.raw.id - y.raw.id);
      const methods = rows.map((r) => r.method);
      const calls = rows.filter((r) => r.method === 'tools/call');
      assert.equal(calls.length, 3, `three tools/call rows: ${JSON.stringify(methods)}`);
      if (kind === 'modern') {
        // it really spoke the stateless era: server/discover, no initialize, no session on any row
        assert.ok(methods.includes('server/discover'), `server/discover reached the gateway: ${JSON.stringify(methods)}`);
        assert.ok(!methods.includes('initialize'), `no initialize in the stateless run: ${JSON.stringify(methods)}`);
        assert.deepEqual(rows.filter((r) => r.session !== null).map((r) => r.raw), [], 'no row of the stateless run has a session id');
      } else {
        // session rows are consistent: every allowed row carries a session id
        // (its SHA-256), each session's first row is its initialize, and the
        // list and the calls share one such session (mcp-remote may open a
        // probe session first and sends GETs without a session, refused: 400)
        const js = JSON.stringify(rows.map((r) => [r.method, r.session, r.decision, r.message]));
        for (const r of rows) {
          if (r.decision === 'allow') assert.match(String(r.session), /^[0-9a-f]{64}$/, `an allowed row has its session: ${js}`);
          else assert.deepEqual([r.method, r.session, r.message], ['GET', null, 'missing session'], `only sessionless GETs refused: ${js}`);
        }
        const sessions = [...new Set(rows.filter((r) => r.session).map((r) => r.session))];
        for (const sid of sessions) {
          const own = rows.filter((r) => r.session === sid).map((r) => r.method);
          assert.deepEqual(own.slice(0, 2), ['initialize', 'notifications/initialized'], `session ${sid.slice(0, 8)} starts with its handshake: ${js}`);
          assert.equal(own.filter((m) => m === 'initialize').length, 1, `one initialize per session: ${js}`);
        }
        const used = new Set(rows.filter((r) => ['tools/list', 'tools/call'].includes(r.method)).map((r) => r.session));
        assert.equal(used.size, 1, `the list and the calls in one session: ${js}`);
      }
    } finally {
      await b.client.close();
    }
  });
}

test('every call of this file has its audit row', async () => {
  audit.check(srv);
});
