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
import { member, addConnector, toolText, listAll, AuditLog } from './lib.mjs';

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
      if (kind === 'modern') {
        // it really spoke the stateless era: the gateway got server/discover, not a session
        const rows = srv.cluster.sql("SELECT count(*) FROM audit_events WHERE method = 'server/discover'");
        assert.ok(Number(rows) >= 1, `server/discover reached the gateway (${rows})`);
      }
    } finally {
      await b.client.close();
    }
  });
}

test('every call of this file has its audit row', async () => {
  audit.check(srv);
});
