// bench/oauth/run.mjs — refresh_token rotation and code exchange at 1, 8
// and 64 concurrent clients: Gatehouse and oidc-provider side by side, same
// load generator, same durable PostgreSQL cluster (fsync on), same run.
//   node bench/oauth/run.mjs [--seconds 8] [--code-seconds 3] [--levels 1,8,64] [--rounds 3]
// The peers take turns, round after round; each figure is the median over the
// rounds, so a burst of load from elsewhere on the machine hits both alike.
// Needs wrk (Debian package, installed by scripts/test).
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import crypto from 'node:crypto';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { startCluster, startServer, createUser, Client, freePort, node22 } from '../../tests/harness/index.mjs';
import { consent } from '../../tests/http/oauth/lib.mjs';

const args = Object.fromEntries(process.argv.slice(2).join(' ').split('--').filter(Boolean).map((a) => a.trim().split(/\s+/)));
const SECONDS = Number(args.seconds ?? 8);
const CODE_SECONDS = Number(args['code-seconds'] ?? 3);
const LEVELS = (args.levels ?? '1,8,64').split(',').map(Number);
const ROUNDS = Number(args.rounds ?? 3);
const here = path.dirname(fileURLToPath(import.meta.url));
const REDIRECT = 'http://127.0.0.1:9/callback';

// The load generator is wrk (C, epoll) driven by load.lua, the same for both
// peers: a Node client would spend as much CPU per request as the servers
// being measured, on the same two cores.
function wrk(tokenUrl, clientId, { work, units, clients, seconds }) {
  const file = path.join(os.tmpdir(), `gh-bench-units-${process.pid}.txt`);
  fs.writeFileSync(file, units.join('\n') + '\n', { mode: 0o600 });
  const threads = Math.min(clients, 2);
  const u = new URL(tokenUrl);
  const r = spawnSync('wrk', ['-t', String(threads), '-c', String(clients), '-d', `${seconds}s`, '--timeout', '10s',
    '-s', path.join(here, 'load.lua'), u.origin], {
    encoding: 'utf8', maxBuffer: 1 << 24,
    env: { ...process.env, GH_WORK: work, GH_UNITS: file, GH_THREADS: String(threads), GH_PATH: u.pathname,
      GH_CLIENT: clientId, GH_REDIRECT: REDIRECT },
  });
  fs.rmSync(file, { force: true });
  const line = (r.stdout || '').split('\n').find((l) => l.startsWith('@@'));
  if (r.status !== 0 || !line) throw new Error(`wrk failed (${r.status}): ${r.stderr}${r.stdout}`);
  const j = JSON.parse(line.slice(2));
  if (j.bad || j.socket_errors || j.timeouts || j.exhausted) throw new Error(`${work} at ${clients}: ${line} ${r.stderr}`);
  return { n: j.ok, rps: j.ok / (j.duration_us / 1e6), p50: j.p50_us / 1000, p99: j.p99_us / 1000, exhausted: j.exhausted };
}

// Each connection owns one refresh chain and rotates it as fast as it can.
const refreshLoad = (tokenUrl, clientId, chains, clients) =>
  wrk(tokenUrl, clientId, { work: 'refresh', units: chains, clients, seconds: SECONDS });

// Every code is exchanged once; there are more codes than the run can use.
const codeLoad = (tokenUrl, clientId, codes, clients) =>
  wrk(tokenUrl, clientId, { work: 'code', units: codes.map((c) => `${c.code} ${c.verifier}`), clients, seconds: CODE_SECONDS });

async function form(url, body) {
  const res = await fetch(url, { method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(body) });
  const j = await res.json();
  if (res.status !== 200) throw new Error(`${url}: ${res.status} ${JSON.stringify(j)}`);
  return { j };
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
      // eight browsers at a time (one session, so one user's consent each time)
      while (out.codes.length < codes)
        out.codes.push(...await Promise.all(Array.from({ length: Math.min(8, codes - out.codes.length) }, code)));
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
  // 16 database connections, like the peer's pg pool; as many HTTP threads, as each blocks on its query
  GATEHOUSE_DB_POOL_SIZE: '16', GATEHOUSE_HTTP_THREADS: '16',
  GATEHOUSE_LOG_LEVEL: 'warn', GATEHOUSE_RATE_TOKEN_PER_MIN: '100000', GATEHOUSE_RATE_REGISTER_PER_MIN: '100000',
  GATEHOUSE_RATE_LOGIN_PER_MIN: '100000' } });
const peers = { gatehouse: await gatehouseSetup(srv), 'oidc-provider': await oidcSetup(cluster) };
const rows = [];
// durability: both peers commit to this cluster, which must flush WAL on every commit
const durability = {
  fsync: cluster.sql('SHOW fsync'), synchronous_commit: cluster.sql('SHOW synchronous_commit'),
  wal_sync_method: cluster.sql('SHOW wal_sync_method'),
  overrides: cluster.sql('SELECT count(*) FROM pg_db_role_setting'),
};
if (durability.fsync !== 'on' || durability.synchronous_commit !== 'on' || durability.overrides !== '0')
  throw new Error(`cluster is not durable: ${JSON.stringify(durability)}`);
const rotatedBefore = () => Number(cluster.sql("SELECT count(*) FROM oauth_tokens WHERE kind = 'refresh' AND rotated_at IS NOT NULL"));
let ghRefreshes = 0;
const r0 = rotatedBefore();
try {
  for (let round = 0; round < ROUNDS; round++) for (const c of LEVELS) {
    for (const [name, p] of Object.entries(peers)) {
      if (srv.proc.exitCode !== null || srv.proc.signalCode) throw new Error(`gatehouse died: ${srv.proc.exitCode ?? srv.proc.signalCode}`);
      const { refresh } = await p.make({ refresh: c });
      const rr = refreshLoad(p.tokenUrl, p.clientId, refresh, c);
      if (name === 'gatehouse') ghRefreshes += rr.n;
      rows.push({ peer: name, work: 'refresh_token', clients: c, ...rr });
      // a code exchange costs about what a refresh does: three times that many is plenty
      const { codes } = await p.make({ codes: Math.ceil(rr.rps * CODE_SECONDS * 3) + 500 });
      const cr = codeLoad(p.tokenUrl, p.clientId, codes, c);
      rows.push({ peer: name, work: 'authorization_code', clients: c, ...cr });
    }
  }
  // every answered rotation is a committed row
  const rotated = rotatedBefore() - r0;
  if (rotated < ghRefreshes) throw new Error(`only ${rotated} rotations stored for ${ghRefreshes} answered`);
  console.log(`durability: ${JSON.stringify(durability)}; gatehouse answered ${ghRefreshes} refreshes, ${rotated} rotations stored`);
} finally {
  peers['oidc-provider'].proc.kill();
  const exit = await srv.stop();
  if (exit !== 0) console.log(`gatehouse exited with ${exit} (log: ${srv.logFile})`);
  await cluster.stop();
}
const median = (xs) => { const v = [...xs].sort((a, b) => a - b); return v[Math.floor(v.length / 2)]; };
const groups = new Map();
for (const r of rows) {
  const k = `${r.work}|${r.clients}|${r.peer}`;
  if (!groups.has(k)) groups.set(k, []);
  groups.get(k).push(r);
}
const table = [...groups.values()].map((g) => ({ ...g[0], n: g.reduce((s, r) => s + r.n, 0), rps: median(g.map((r) => r.rps)),
  p50: median(g.map((r) => r.p50)), p99: median(g.map((r) => r.p99)), all: g.map((r) => r.rps.toFixed(0)).join(' / ') }));
console.log(`| work | clients | peer | requests (all rounds) | req/s (median) | p50 ms | p99 ms | req/s per round |`);
console.log('|---|---|---|---|---|---|---|---|');
for (const r of table.sort((a, b) => a.work.localeCompare(b.work) || a.clients - b.clients || a.peer.localeCompare(b.peer)))
  console.log(`| ${r.work} | ${r.clients} | ${r.peer} | ${r.n} | ${r.rps.toFixed(0)} | ${r.p50.toFixed(2)} | ${r.p99.toFixed(2)} | ${r.all} |`);
for (const c of LEVELS) {
  const g = table.find((r) => r.work === 'refresh_token' && r.clients === c && r.peer === 'gatehouse');
  const o = table.find((r) => r.work === 'refresh_token' && r.clients === c && r.peer === 'oidc-provider');
  console.log(`refresh_token at ${c}: gatehouse/oidc-provider = ${(g.rps / o.rps).toFixed(2)}x`);
}
