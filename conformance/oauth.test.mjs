// `@modelcontextprotocol/conformance authorization` (npm, Node 22) against
// Gatehouse as the authorization server: both scenarios
// (authorization-server-metadata-endpoint, authorization-code-grant) must
// pass with no warning.  The suite prints an authorize URL and waits for the
// redirect on 127.0.0.1:PORT/callback, so this test plays the browser: the
// signed-in user approves on the consent page and the redirect is delivered.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { startServer, createUser, freePort, nodeModules, node22 } from '../tests/harness/index.mjs';
import { register, signedIn, consent } from '../tests/http/oauth/lib.mjs';

const BIN = path.join(nodeModules, '@modelcontextprotocol/conformance/dist/index.js');
let srv;
before(async () => { srv = await startServer({ name: 'conformance-oauth' }); });
after(async () => { assert.equal(await srv.stop(), 0); });

function checksFiles(dir) {
  const out = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true, recursive: true }))
    if (e.isFile() && e.name === 'checks.json') out.push(path.join(e.parentPath ?? e.path, e.name));
  return out;
}

test('conformance authorization: both scenarios pass with no warning', async () => {
  const user = createUser(srv, {});
  const browser = await signedIn(srv, user);
  const port = await freePort();
  const callback = `http://127.0.0.1:${port}/callback`;
  const reg = await register(srv, { client_name: 'MCP conformance suite', redirect_uris: [callback],
    token_endpoint_auth_method: 'none' });
  assert.equal(reg.status, 201, JSON.stringify(reg.body));
  const outDir = fs.mkdtempSync(path.join(os.tmpdir(), 'gh-conformance-'));

  const proc = spawn(node22, [BIN, 'authorization', '--url', srv.url, '--client-id', reg.body.client_id,
    '--port', String(port), '--resource', `${srv.url}/mcp`, '-o', outDir],
  { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } });
  let stdout = '', stderr = '';
  proc.stderr.on('data', (d) => { stderr += d; });
  const exited = new Promise((resolve) => proc.on('close', (code) => resolve(code)));
  const killer = setTimeout(() => proc.kill('SIGKILL'), 120000);
  // The suite prints the authorize URL before its callback server has
  // finished binding; "Callback server started" is printed once it listens.
  let authorizeLine, listening;
  const sawAuthorize = new Promise((resolve) => { authorizeLine = resolve; });
  const sawListening = new Promise((resolve) => { listening = resolve; });
  readline.createInterface({ input: proc.stdout }).on('line', (line) => {
    stdout += `${line}\n`;
    if (line.startsWith('Callback server started')) listening(true);
    if (line.startsWith(`${srv.url}/oauth/authorize?`)) authorizeLine(line);
  });
  const gone = exited.then(() => null);

  let played = false;
  try {
    const line = await Promise.race([sawAuthorize, gone]);
    if (line) {
      played = true;
      const asked = new URL(line);
      assert.equal(asked.searchParams.get('redirect_uri'), callback);
      assert.equal(asked.searchParams.get('code_challenge_method'), 'S256');
      // the browser: consent page, Approve, then follow the redirect to the suite
      const { location } = await consent(browser, Object.fromEntries(asked.searchParams));
      assert.ok(location?.startsWith(`${callback}?`), `redirected to ${location}`);
      const back = new URL(location);
      assert.equal(back.searchParams.get('iss'), srv.url);
      assert.ok(await Promise.race([sawListening, gone]), `the suite's callback server never listened\n${stdout}\n${stderr}`);
      const res = await fetch(location);
      assert.equal(res.status, 200);
      await res.arrayBuffer();
    }
  } catch (e) {
    proc.kill('SIGKILL');
    throw e;
  } finally {
    clearTimeout(killer);
  }
  // (the suite's tokens never reach this test: it prints them redacted; the code is recorded by consent())
  const code = await exited;
  const why = `stdout:\n${stdout}\nstderr:\n${stderr}`;
  assert.ok(played, `the suite never printed an authorize URL\n${why}`);
  assert.equal(code, 0, why);

  const checks = checksFiles(outDir).flatMap((f) => JSON.parse(fs.readFileSync(f, 'utf8')));
  fs.rmSync(outDir, { recursive: true, force: true });
  const ids = checks.map((c) => c.id).sort();
  for (const want of ['authorization-server-metadata', 'authorization-server-metadata-cimd', 'authorization-code-grant'])
    assert.ok(ids.includes(want), `check ${want} ran (${ids})`);
  for (const c of checks) assert.equal(c.status, 'SUCCESS', `${c.id}: ${c.status} ${c.errorMessage ?? ''}`);
  assert.doesNotMatch(stdout, /WARNING|FAILURE/, why);
});
