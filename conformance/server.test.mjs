// `@modelcontextprotocol/conformance server` (Node 22) run in the same test
// against server-everything directly and against the gateway in front of it:
// every scenario that passes directly must pass through the gateway too.
// The suite cannot send headers, so that gateway runs with the test-only
// GATEHOUSE_TEST_UNAUTHENTICATED_MCP=true; a second test proves the setting
// is off by default.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startServer, startEverything, gatehouse, node22, nodeModules } from '../tests/harness/index.mjs';

const CLI = path.join(nodeModules, '@modelcontextprotocol/conformance/dist/index.js');
let everything, srv;

before(async () => {
  [everything, srv] = await Promise.all([
    startEverything(),
    startServer({ name: 'gw-conformance', env: { GATEHOUSE_TEST_UNAUTHENTICATED_MCP: 'true' } }),
  ]);
  const r = gatehouse(srv, ['connector', 'add', '--agent', 'default', '--name', 'everything', '--url', everything.url]);
  assert.equal(r.code, 0, r.stderr);
});

after(async () => {
  await everything?.stop();
  if (srv) assert.equal(await srv.stop(), 0);
});

/* Runs the suite against url; resolves with { scenario: { passed, failed, checks } }. */
function runSuite(url, label, extra = []) {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), `gh-conf-${label}-`));
  return new Promise((resolve, reject) => {
    const p = spawn(node22, [CLI, 'server', '--url', url, '-o', out, ...extra], { stdio: ['ignore', 'pipe', 'pipe'], cwd: out });
    let text = '';
    p.stdout.on('data', (d) => { text += d; });
    p.stderr.on('data', (d) => { text += d; });
    const t = setTimeout(() => p.kill('SIGKILL'), 600000);
    p.on('error', reject);
    p.on('exit', () => {
      clearTimeout(t);
      const results = {};
      for (const dir of fs.readdirSync(out)) {
        const m = /^server-(.+)-\d{4}-\d\d-\d\dT[\d-]+Z$/.exec(dir);
        if (!m) continue;
        const checks = JSON.parse(fs.readFileSync(path.join(out, dir, 'checks.json'), 'utf8'));
        results[m[1]] = {
          checks,
          failed: checks.filter((c) => c.status === 'FAILURE').map((c) => `${c.id}: ${c.errorMessage ?? ''}`),
          passed: checks.filter((c) => c.status === 'SUCCESS').length,
        };
      }
      fs.rmSync(out, { recursive: true, force: true });
      if (!Object.keys(results).length) reject(new Error(`conformance ran no scenario against ${label}:\n${text}`));
      else resolve(results);
    });
  });
}

function tally(label, results) {
  const names = Object.keys(results).sort();
  const ok = names.filter((n) => results[n].failed.length === 0);
  console.log(`# ${label}: ${ok.length} of ${names.length} scenarios pass`);
  for (const n of names) console.log(`#   ${results[n].failed.length ? 'FAIL' : 'pass'} ${n}${results[n].failed.length ? ` — ${results[n].failed.join('; ')}` : ''}`);
  return ok;
}

async function compare(label, extra, minDirect) {
  const directRes = await runSuite(everything.url, 'direct', extra);
  const gatewayRes = await runSuite(`${srv.url}/mcp`, 'gateway', extra);
  const direct = tally(`${label}: server-everything directly`, directRes);
  const through = tally(`${label}: through the gateway`, gatewayRes);
  assert.ok(direct.length >= minDirect, `the suite really ran against server-everything (${direct.length} passed)`);
  const lost = direct.filter((n) => !through.includes(n));
  assert.deepEqual(lost, [], `${label}: scenarios that pass directly but fail through the gateway:\n` +
    lost.map((n) => `${n}: ${gatewayRes[n]?.failed.join('; ') ?? 'not run'}`).join('\n'));
}

test('conformance server (active suite): every scenario passing against server-everything also passes through the gateway', async () => {
  await compare('active suite', [], 5);
});

test('conformance server --spec-version 2026-07-28: the same rule (server-everything speaks only the session era)', async () => {
  await compare('2026-07-28', ['--spec-version', '2026-07-28'], 0);
});

test('GATEHOUSE_TEST_UNAUTHENTICATED_MCP is off by default: no credential → 401', async () => {
  const plain = await startServer({ name: 'gw-conformance-default', cluster: srv.cluster,
    env: { GATEHOUSE_TEST_UNAUTHENTICATED_MCP: undefined } });
  try {
    const r = await fetch(`${plain.url}/mcp`, {
      method: 'POST', headers: { 'Content-Type': 'application/json', Accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize',
        params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'c', version: '1' } } }),
    });
    assert.equal(r.status, 401);
    assert.match(r.headers.get('www-authenticate') || '', /^Bearer /);
    assert.equal(r.headers.get('mcp-session-id'), null);
    const cfg = gatehouse(plain, ['config-doc']);
    assert.match(cfg.stdout, /GATEHOUSE_TEST_UNAUTHENTICATED_MCP[\s\S]*?false/, 'documented default false');
  } finally {
    assert.equal(await plain.stop(), 0);
  }
});
