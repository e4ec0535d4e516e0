// `@modelcontextprotocol/conformance server` (Node 22) run in the same test
// against an upstream directly and against the gateway in front of it: every
// scenario that passes directly must pass through the gateway too.  Two
// upstreams: server-everything (session-based only), and our own
// tests/fixtures/interop.mjs, which speaks both generations with the suite's
// whole catalog (sampling, elicitation, logging, progress, subscriptions,
// images, audio, embedded resources, prompts, completion, input-required
// results), behind its own agent with an empty tool prefix so the suite
// finds its tools under their own names.
// The suite cannot send headers, so that gateway runs with the test-only
// GATEHOUSE_TEST_UNAUTHENTICATED_MCP=true; a second test proves the setting
// is off by default.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startServer, startEverything, startInterop, gatehouse, node22, nodeModules } from '../tests/harness/index.mjs';

const CLI = path.join(nodeModules, '@modelcontextprotocol/conformance/dist/index.js');
let everything, interop, srv;

before(async () => {
  [everything, interop, srv] = await Promise.all([
    startEverything(),
    startInterop({ name: 'interop' }),
    startServer({ name: 'gw-conformance', env: { GATEHOUSE_TEST_UNAUTHENTICATED_MCP: 'true' } }),
  ]);
  for (const args of [
    ['connector', 'add', '--agent', 'default', '--name', 'everything', '--url', everything.url],
    ['agent', 'add', '--slug', 'interop', '--name', 'Interop'],
    ['connector', 'add', '--agent', 'interop', '--name', 'interop', '--url', interop.url, '--no-prefix'],
  ]) {
    const r = gatehouse(srv, args);
    assert.equal(r.code, 0, r.stderr);
  }
});

after(async () => {
  await Promise.all([everything?.stop(), interop?.stop()]);
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

async function compare(label, extra, minDirect, { up = everything, upName = 'server-everything', path: mcp = '/mcp' } = {}) {
  const directRes = await runSuite(up.url, 'direct', extra);
  const gatewayRes = await runSuite(`${srv.url}${mcp}`, 'gateway', extra);
  const direct = tally(`${label}: ${upName} directly`, directRes);
  const through = tally(`${label}: through the gateway`, gatewayRes);
  assert.ok(direct.length >= minDirect, `the suite really ran against ${upName} (${direct.length} passed)`);
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

/* The fixture behind its own agent, without prefix; every scenario it passes
 * directly (all of them at the time of writing) must pass through. */
const viaInterop = { upName: 'interop fixture', path: '/agents/interop/mcp' };
for (const [label, extra, min] of [
  ['interop --spec-version 2025-11-25', ['--spec-version', '2025-11-25'], 31],
  ['interop --spec-version 2026-07-28', ['--spec-version', '2026-07-28'], 20],
  ['interop --requirements 2026-07-28', ['--requirements', '2026-07-28'], 37],
]) {
  test(`conformance server ${label.slice(8)}: our two-generation fixture, directly and through the gateway`, async () => {
    await compare(label, extra, min, { ...viaInterop, up: interop });
  });
}

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
