// bench/oauth/run.mjs — refresh_token rotation and code exchange at 1, 8
// and 64 concurrent clients: Gatehouse and oidc-provider side by side, same
// load generator, same durable PostgreSQL cluster (fsync on), same run.
//   node bench/oauth/run.mjs [--seconds 8] [--codes 2000]
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { startCluster, startServer, createUser, Client, freePort, node22 } from '../../tests/harness/index.mjs';
import { consent } from '../../tests/http/oauth/lib.mjs';

const args = Object.fromEntries(process.argv.slice(2).join(' ').split('--').filter(Boolean).map((a) => a.trim().split(/\s+/)));
const SECONDS = Number(args.seconds ?? 8);
const CODES = Number(args.codes ?? 2000);
const LEVELS = (args.levels ?? '1,8,64').split(',').map(Number);
const here = path.dirname(fileURLToPath(import.meta.url));
const REDIRECT = 'http://127.0.0.1:9/callback';

function pct(sorted, p) { return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]; }
function summary(lat, ms) {
  lat.sort((a, b) => a - b);
  return { n: lat.length, rps: lat.length / (ms / 1000), p50: pct(lat, 0.5), p99: pct(lat, 0.99) };
}

async function form(url, body) {
  const t0 = performance.now();
  const res = await fetch(url, { method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(body) });
  const j = await res.json();
  const dt = performance.now() - t0;
  if (res.status !== 200) throw new Error(`${url}: ${res.status} ${JSON.stringify(j)}`);
  return { j, dt };
}

// Each worker owns one refresh chain and rotates it as fast as it can.
async function refreshLoad(tokenUrl, clientId, chains) {
  const lat = [];
  const until = performance.now() + SECONDS * 1000;
  const t0 = performance.now();
  await Promise.all(chains.map(async (rt) => {
    while (performance.now() < until) {
      const { j, dt } = await form(tokenUrl, { grant_type: 'refresh_token', refresh_token: rt, client_id: clientId });
      rt = j.refresh_token;
      lat.push(dt);
    }
  }));
  return summary(lat, performance.now() - t0);
}

async function codeLoad(tokenUrl, clientId, codes, workers) {
  const lat = [];
  let next = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: workers }, async () => {
    while (next < codes.length) {
      const { code, verifier } = codes[next++];
      const { dt } = await form(tokenUrl, { grant_type: 'authorization_code', code, code_verifier: verifier, redirect_uri: REDIRECT, client_id: clientId });
      lat.push(dt);
    }
  }));
  return summary(lat, performance.now() - t0);
}

// ---- Gatehouse: codes through the real authorize + consent flow
async function gatehouseSetup(srv) {
  const u = createUser(srv, {});
  const reg = await fetch(`${srv.url}/oauth/register`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ client_name: 'bench', redirect_uris: [REDIRECT], token_endpoint_auth_method: 'none',
      grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'] }),
  });
  const client = await reg.json();
  if (reg.status !== 201) throw new Error(`register: ${reg.status} ${JSON.stringify(client)}`);
  const browser = new Client(srv.url);
  if ((await browser.login(u.email, u.password)).status !== 303) throw new Error('login failed');
  async function code() {
    const verifier = crypto.randomBytes(32).toString('base64url');
    const q = new URLSearchParams({
      response_type: 'code', client_id: client.client_id, redirect_uri: REDIRECT, state: crypto.randomUUID(),
      code_challenge: crypto.createHash('sha256').update(verifier).digest('base64url'), code_challenge_method: 'S256',
      scope: 'mcp offline_access', resource: `${srv.url}/mcp`,
    });
    const { location } = await consent(browser, Object.fromEntries(q));
    const c = location && new URL(location).searchParams.get('code');
    if (!c) throw new Error(`no code: ${location}`);
    return { code: c, verifier };
  }
  return {
    tokenUrl: `${srv.url}/oauth/token`, clientId: client.client_id,
    async make({ codes = 0, refresh = 0 }) {
      const out = { codes: [], refresh: [] };
      for (let i = 0; i < codes; i++) out.codes.push(await code());
      for (let i = 0; i < refresh; i++) {
        const c = await code();
        const { j } = await form(`${srv.url}/oauth/token`, { grant_type: 'authorization_code', code: c.code, code_verifier: c.verifier, redirect_uri: REDIRECT, client_id: client.client_id });
        out.refresh.push(j.refresh_token);
      }
      return out;
    },
  };
}

// ---- oidc-provider in its own process (like Gatehouse), same cluster
async function oidcSetup(cluster) {
  cluster.createdb('oidc');
  const port = await freePort();
  const proc = spawn(node22, [path.join(here, 'oidc-peer.mjs'), String(port), cluster.urlFor('oidc')], { stdio: ['pipe', 'pipe', 'inherit'] });
  const it = readline.createInterface({ input: proc.stdout })[Symbol.asyncIterator]();
  const next = async () => { for (;;) { const { value, done } = await it.next(); if (done) throw new Error('oidc-provider exited'); if (value.startsWith('@@')) return value.slice(2); } };
  if (await next() !== 'ready') throw new Error('oidc-provider did not start');
  return {
    proc, tokenUrl: `http://127.0.0.1:${port}/token`, clientId: 'bench',
    async make(want) {
      proc.stdin.write(JSON.stringify(want) + '\n');
      return JSON.parse(await next());
    },
  };
}

const cluster = await startCluster({ durable: true });
const srv = await startServer({ cluster, name: 'bench-oauth', env: {
  GATEHOUSE_LOG_LEVEL: 'warn', GATEHOUSE_RATE_TOKEN_PER_MIN: '100000', GATEHOUSE_RATE_REGISTER_PER_MIN: '100000',
  GATEHOUSE_RATE_LOGIN_PER_MIN: '100000' } });
const peers = { gatehouse: await gatehouseSetup(srv), 'oidc-provider': await oidcSetup(cluster) };
const rows = [];
try {
  for (const c of LEVELS) {
    for (const [name, p] of Object.entries(peers)) {
      const { refresh } = await p.make({ refresh: c });
      rows.push({ peer: name, work: 'refresh_token', clients: c, ...await refreshLoad(p.tokenUrl, p.clientId, refresh) });
      const { codes } = await p.make({ codes: CODES });
      rows.push({ peer: name, work: 'authorization_code', clients: c, ...await codeLoad(p.tokenUrl, p.clientId, codes, c) });
    }
  }
} finally {
  peers['oidc-provider'].proc.kill();
  await srv.stop();
  await cluster.stop();
}
console.log('| work | clients | peer | requests | req/s | p50 ms | p99 ms |');
console.log('|---|---|---|---|---|---|---|');
for (const r of rows.sort((a, b) => a.work.localeCompare(b.work) || a.clients - b.clients || a.peer.localeCompare(b.peer)))
  console.log(`| ${r.work} | ${r.clients} | ${r.peer} | ${r.n} | ${r.rps.toFixed(0)} | ${r.p50.toFixed(2)} | ${r.p99.toFixed(2)} |`);
