// bench/gateway/run.mjs — tools/call throughput and latency, one run, same
// load generator (wrk + call.lua), same fast upstream (fast-upstream.mjs):
//   (a) directly against the upstream,
//   (b) through nginx as a plain reverse proxy (its own config in a temp dir),
//   (c) through Gatehouse with a PAT, a session, and the audit log, on a
//       durable PostgreSQL cluster (fsync on);
//   (d) the same with a second Gatehouse on a cluster with fsync and
//       synchronous_commit off — not a target, it shows what the durable audit
//       commit costs;
//   (e) gatehouse-100pol: (c) on an agent of its own whose calls a set of 100
//       policies decides (permits and forbids of the kind bench/cedar uses,
//       loaded with `gatehouse policy add`) instead of the one permit-all:
//       issue 15 asks for its throughput within 5% of (c)'s in the same run;
// then, on the durable cluster with no proxy at all, what one durable commit
// of a row costs at each level (pgbench, one INSERT per transaction) and what
// the disk takes per flush (pg_test_fsync): the floor under (c);
// at a few concurrency levels; then Gatehouse's resident memory with N open
// MCP sessions.
//   node bench/gateway/run.mjs [--seconds 10] [--levels 1,8,64] [--rounds 1] [--sessions 10000]
//                              [--targets direct,nginx,gatehouse,gatehouse-nofsync,gatehouse-100pol]
// With --rounds N the targets take turns N times at each level and each
// figure is the median round's (a shared machine's load moves between runs).
// GATEHOUSE_BIN picks the binary (default build/gatehouse).
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startCluster, startServer, createUser, gatehouse, freePort, gatehouseBin } from '../../tests/harness/index.mjs';

const args = Object.fromEntries(process.argv.slice(2).join(' ').split('--').filter(Boolean).map((a) => a.trim().split(/\s+/)));
const SECONDS = Number(args.seconds ?? 10);
const LEVELS = (args.levels ?? '1,8,64').split(',').map(Number);
const SESSIONS = Number(args.sessions ?? 10000);
const ROUNDS = Math.max(1, Number(args.rounds ?? 1));
const ALL = ['direct', 'nginx', 'gatehouse', 'gatehouse-nofsync', 'gatehouse-100pol'];
// a subset for quick A/B runs; the tables compare what was run
const TARGETS = (args.targets ?? ALL.join(',')).split(',').filter((t) => ALL.includes(t));
const here = path.dirname(fileURLToPath(import.meta.url));
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gh-bench-gw-'));
const children = [];
// SIGTERM, not SIGKILL: nginx's master then stops its workers too (a killed master orphans them)
process.on('exit', () => { for (const c of children) try { c.kill('SIGTERM'); } catch { /* gone */ } });

function startFast() {
  const p = spawn(process.execPath, [path.join(here, 'fast-upstream.mjs'), '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(p);
  return new Promise((resolve, reject) => {
    p.stdout.once('data', (d) => resolve({ port: JSON.parse(String(d)).port, pid: p.pid }));
    p.once('exit', (c) => reject(new Error(`fast upstream exited ${c}`)));
  });
}

async function startNginx(upPort) {
  const port = await freePort();
  const dir = path.join(tmp, 'nginx');
  fs.mkdirSync(path.join(dir, 'logs'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'nginx.conf'), `
worker_processes auto;
error_log ${dir}/logs/error.log warn;
pid ${dir}/nginx.pid;
events { worker_connections 4096; }
http {
  access_log ${dir}/logs/access.log;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  upstream fast { server 127.0.0.1:${upPort}; keepalive 256; }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://fast;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`);
  const p = spawn('nginx', ['-p', dir, '-c', path.join(dir, 'nginx.conf'), '-g', 'daemon off;'], { stdio: 'inherit' });
  children.push(p);
  for (let i = 0; i < 100; i++) {
    try { await fetch(`http://127.0.0.1:${port}/`, { method: 'POST', body: '{"jsonrpc":"2.0","id":1,"method":"ping"}' }); return { port, pid: p.pid }; } catch { /* not yet */ }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('nginx did not start');
}

// CPU time (user + system, clock ticks) of a process and its children
// (nginx's workers, PostgreSQL's backends), from /proc.
const TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout) || 100;
function statFields(pid) {
  try {
    const t = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return t.slice(t.lastIndexOf(')') + 2).split(' ');   // [0] = state, [1] = ppid, [11] utime, [12] stime
  } catch { return null; }
}
function cpuTicks(root) {
  if (!root) return 0;
  let sum = 0;
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    const f = statFields(d);
    if (f && (Number(d) === root || Number(f[1]) === root)) sum += Number(f[11]) + Number(f[12]);
  }
  return sum;
}

// One wrk run; `procs` maps a name to a root pid whose CPU time (with its
// children's) is measured over the run; wrk's own comes from the shell's
// `times` (its children's user and system time).
function wrk(url, conns, seconds, env, procs = {}) {
  const threads = Math.min(conns, 2);
  const before = Object.fromEntries(Object.entries(procs).map(([k, pid]) => [k, cpuTicks(pid)]));
  const cmd = ['wrk', '-t', String(threads), '-c', String(conns), '-d', `${seconds}s`, '--timeout', '10s', '-s', path.join(here, 'call.lua'), url]
    .map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(' ');
  const r = spawnSync('bash', ['-c', `${cmd}; times`], { env: { ...process.env, ...env }, encoding: 'utf8' });
  const lines = r.stdout.split('\n');
  const line = lines.find((l) => l.startsWith('{'));
  if (!line) throw new Error(`wrk: ${r.stdout}\n${r.stderr}`);
  const j = JSON.parse(line);
  j.rps = j.requests / (j.duration_us / 1e6);
  const secs = (t) => { const m = /(\d+)m([\d.]+)s/.exec(t); return m ? Number(m[1]) * 60 + Number(m[2]) : 0; };
  const times = lines.filter((l) => /^\d+m[\d.]+s \d+m[\d.]+s$/.test(l.trim()));
  const wrkSecs = times.length >= 2 ? times[1].trim().split(' ').map(secs).reduce((a, b) => a + b, 0) : NaN;
  j.cpu_us = { wrk: (wrkSecs * 1e6) / j.requests };
  for (const [k, pid] of Object.entries(procs)) j.cpu_us[k] = ((cpuTicks(pid) - before[k]) / TCK * 1e6) / j.requests;
  return j;
}

async function rpc(url, msg, headers = {}, retry = true) {
  let res;
  try {
    res = await fetch(url, { method: 'POST', headers: { 'Content-Type': 'application/json', Accept: 'application/json, text/event-stream', ...headers }, body: JSON.stringify(msg) });
  } catch (e) {
    // a keep-alive socket the server closed while the timed runs went on
    // (its idle timeout): undici reuses it once and fails; ask again
    if (!retry) throw e;
    return rpc(url, msg, headers, false);
  }
  const text = await res.text();
  return { status: res.status, headers: res.headers, text };
}

async function openSession(url, pat) {
  const init = await rpc(url, { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'bench', version: '1' } } },
    { Authorization: `Bearer ${pat}` });
  if (init.status !== 200) throw new Error(`initialize: ${init.status} ${init.text}`);
  const sid = init.headers.get('mcp-session-id');
  const n = await rpc(url, { jsonrpc: '2.0', method: 'notifications/initialized' }, { Authorization: `Bearer ${pat}`, 'Mcp-Session-Id': sid, 'MCP-Protocol-Version': '2025-11-25' });
  if (n.status !== 202) throw new Error(`initialized: ${n.status}`);
  return sid;
}

/* pgbench on the durable cluster: one INSERT of an audit-sized row per
   transaction, `conns` clients, no proxy.  Returns { tps, lat_ms }. */
function commitFloor(cluster, conns, seconds) {
  const script = path.join(tmp, 'commit.sql');
  fs.writeFileSync(script, "INSERT INTO bench_commit (body) VALUES (repeat('x', 600));\n");
  const r = spawnSync(path.join(cluster.bin, 'pgbench'), ['-n', '-h', cluster.dir, '-U', 'gatehouse', '-c', String(conns),
    '-j', String(Math.min(conns, os.cpus().length)), '-T', String(seconds), '-f', script, 'gatehouse'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`pgbench: ${r.stderr}`);
  return {
    tps: Number((r.stdout.match(/tps = ([\d.]+)/) || [])[1]),
    lat_ms: Number((r.stdout.match(/latency average = ([\d.]+) ms/) || [])[1]),
  };
}

/* pg_test_fsync in the cluster's folder: µs per flush of one 8 kB write, the
   way PostgreSQL flushes its WAL by default on Linux (fdatasync). */
function flushUs(cluster) {
  const r = spawnSync(path.join(cluster.bin, 'pg_test_fsync'), ['-s', '1', '-f', path.join(cluster.dir, 'fsync-probe')], { encoding: 'utf8' });
  const m = r.stdout.match(/one 8kB write[\s\S]*?fdatasync\s+[\d.]+ ops\/sec\s+(\d+) usecs\/op/);
  return m ? Number(m[1]) : NaN;
}

function rssKiB(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m[1]);
}

const fmt = (us) => (us / 1000).toFixed(2);

/* Policy i of the 100: the shapes bench/cedar's set has (argument patterns,
   connector membership, forbids on flags and titles, office hours), written
   against Gatehouse's request (docs/POLICIES.md); policy 0 lets the bench's
   call (fast__add with a and b) through, none of the others decides it. */
const TOOLS = ['create_issue', 'list_issues', 'merge_pr', 'post_message', 'create_ticket', 'read_file', 'write_file', 'query'];
function benchPolicy(i) {
  if (i === 0) {
    return 'permit (principal, action == Action::"tools/call", resource in Connector::"fast")\n' +
      '  when { context.args has a && context.args has b && !resource.destructive || resource.name == "add" };';
  }
  const t = TOOLS[i % TOOLS.length];
  switch (i % 5) {
    case 0: return `permit (principal == User::"user${i}", action == Action::"tools/call", resource == Tool::"github/${t}")\n` +
      `  when { context.args has repo && context.args.repo like "org${i}/*" };`;
    case 1: return `permit (principal, action == Action::"tools/call", resource in Connector::"c${i % 17}")\n` +
      `  when { principal.role == "owner" && resource.name != "write_file" && context.session.denials < ${3 + (i % 4)} };`;
    case 2: return `forbid (principal, action == Action::"tools/call", resource)\n` +
      `  when { resource.name == "${t}" && context.args has force && context.args.force == true && !principal.admin };`;
    case 3: return 'forbid (principal, action, resource)\n' +
      `  when { context.args has title && context.args.title like "*DROP TABLE*${i}*" };`;
    default: return `permit (principal == User::"user${i}", action == Action::"tools/call", resource in Connector::"s${i % 17}")\n` +
      `  unless { context.now.hour < 8 || context.now.hour > ${18 + (i % 5)} };`;
  }
}

/* An agent of its own with the fast upstream, 100 policies instead of the
   permit-all, a member's PAT and an open session. */
async function policyAgent(srv, upPort) {
  const run = (a) => { const r = gatehouse(srv, a); if (r.code !== 0) throw new Error(`${a.join(' ')}: ${r.stderr}`); return r; };
  run(['agent', 'add', '--slug', 'bench100', '--name', 'Bench 100 policies']);
  run(['connector', 'add', '--agent', 'bench100', '--name', 'fast', '--url', `http://127.0.0.1:${upPort}/mcp`]);
  run(['policy', 'disable', '--agent', 'bench100', '--name', 'permit-all']);
  for (let i = 0; i < 100; i++) {
    const f = path.join(tmp, `p${i}.cedar`);
    fs.writeFileSync(f, `${benchPolicy(i)}\n`);
    run(['policy', 'add', '--agent', 'bench100', '--name', `bench-${i}`, '--file', f]);
  }
  const m = createUser(srv, { agents: ['bench100'] });
  const pat = run(['pat', 'create', '--email', m.email, '--agent', 'bench100', '--name', 'bench']).stdout.trim();
  const url = `${srv.url}/agents/bench100/mcp`;
  return { url, pat, sid: await openSession(url, pat) };
}

async function main() {
  const date = new Date().toISOString();
  const cpu = (fs.readFileSync('/proc/cpuinfo', 'utf8').match(/model name\s*:\s*(.*)/) || [])[1];
  console.log(`# ${date}, ${os.cpus().length} cores (${cpu}), ${Math.round(os.totalmem() / 2 ** 30)} GiB; binary ${gatehouseBin}; load average ${os.loadavg().map((v) => v.toFixed(2)).join(' ')}`);
  const { port: upPort, pid: upPid } = await startFast();
  const { port: ngPort, pid: ngPid } = await startNginx(upPort);
  const pgPid = (c) => Number(fs.readFileSync(path.join(c.dir, 'data', 'postmaster.pid'), 'utf8').split('\n')[0]);
  const cluster = await startCluster({ durable: true });
  const srv = await startServer({ cluster, name: 'bench-gateway', env: { GATEHOUSE_LOG_LEVEL: 'info' } });
  const u = createUser(srv, {});
  const pat = gatehouse(srv, ['pat', 'create', '--email', u.email, '--agent', 'default', '--name', 'bench']).stdout.trim();
  const add = gatehouse(srv, ['connector', 'add', '--agent', 'default', '--name', 'fast', '--url', `http://127.0.0.1:${upPort}/mcp`]);
  if (add.code !== 0) throw new Error(add.stderr);
  const ghUrl = `${srv.url}/mcp`;
  const sid = await openSession(ghUrl, pat);
  // (d): fsync off
  const cluster2 = await startCluster({ durable: false });
  const srv2 = await startServer({ cluster: cluster2, name: 'bench-gateway-nofsync', env: { GATEHOUSE_LOG_LEVEL: 'info' } });
  const u2 = createUser(srv2, {});
  const pat2 = gatehouse(srv2, ['pat', 'create', '--email', u2.email, '--agent', 'default', '--name', 'bench']).stdout.trim();
  gatehouse(srv2, ['connector', 'add', '--agent', 'default', '--name', 'fast', '--url', `http://127.0.0.1:${upPort}/mcp`]);
  const sid2 = await openSession(`${srv2.url}/mcp`, pat2);
  const p100 = await policyAgent(srv, upPort);
  const enabled = Number(cluster.sql("SELECT count(*) FROM policies p JOIN agents a ON a.id = p.agent_id WHERE a.slug = 'bench100' AND p.enabled"));

  const targets = [
    ['direct', `http://127.0.0.1:${upPort}/mcp`, { BENCH_TOOL: 'add', BENCH_SESSION: 'bench-session' }, { upstream: upPid }],
    ['nginx', `http://127.0.0.1:${ngPort}/mcp`, { BENCH_TOOL: 'add', BENCH_SESSION: 'bench-session' }, { proxy: ngPid, upstream: upPid }],
    ['gatehouse', ghUrl, { BENCH_TOOL: 'fast__add', BENCH_AUTH: pat, BENCH_SESSION: sid },
      { proxy: srv.proc.pid, postgres: pgPid(cluster), upstream: upPid }],
    ['gatehouse-nofsync', `${srv2.url}/mcp`, { BENCH_TOOL: 'fast__add', BENCH_AUTH: pat2, BENCH_SESSION: sid2 },
      { proxy: srv2.proc.pid, postgres: pgPid(cluster2), upstream: upPid }],
    ['gatehouse-100pol', p100.url, { BENCH_TOOL: 'fast__add', BENCH_AUTH: p100.pat, BENCH_SESSION: p100.sid },
      { proxy: srv.proc.pid, postgres: pgPid(cluster), upstream: upPid }],
  ].filter(([name]) => TARGETS.includes(name));
  // warm-up (connections, caches, the upstream session)
  for (const [, url, env] of targets) wrk(url, 4, 2, env);
  // the floor under (c): durable commits with no proxy, on the same cluster
  cluster.sql('CREATE TABLE bench_commit (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now(), body text)');
  cluster.sql('CHECKPOINT', { user: 'pgadmin' });
  const floors = Object.fromEntries(LEVELS.map((c) => [c, commitFloor(cluster, c, Math.min(SECONDS, 5))]));
  const flush = flushUs(cluster);
  cluster.sql('DROP TABLE bench_commit');

  const rows = [];
  for (const c of LEVELS) {
    const r = {};
    const runs = Object.fromEntries(targets.map(([name]) => [name, []]));
    for (let round = 1; round <= ROUNDS; round++) {
      for (const [name, url, env, procs] of targets) {
        const x = wrk(url, c, SECONDS, env, procs);
        runs[name].push(x);
        console.log(`c=${c} round ${round} ${name}: ${x.rps.toFixed(0)} req/s p50 ${fmt(x.p50_us)} ms p99 ${fmt(x.p99_us)} ms` +
          (x.non2xx || x.errors || x.wrong ? ` (non-2xx ${x.non2xx}, socket errors ${x.errors}, wrong ${x.wrong})` : ''));
      }
    }
    // each target's median round (by req/s), with every round's req/s beside it
    for (const [name, xs] of Object.entries(runs)) {
      const sorted = [...xs].sort((a, b) => a.rps - b.rps);
      r[name] = { ...sorted[Math.floor((sorted.length - 1) / 2)], rounds: xs.map((x) => x.rps) };
    }
    rows.push([c, r]);
  }
  const loadEnd = os.loadavg();
  const auditRows = Number(cluster.sql('SELECT count(*) FROM audit_events'));
  await srv2.stop();
  await cluster2.stop();

  // resident memory with SESSIONS open sessions, spread over members (one
  // member holds at most GATEHOUSE_MCP_SESSIONS_PER_MEMBER, 256 by default)
  const PER_MEMBER = 200;
  const pats = Array.from({ length: Math.ceil(SESSIONS / PER_MEMBER) }, (_, i) => {
    const m = createUser(srv, {});
    return gatehouse(srv, ['pat', 'create', '--email', m.email, '--agent', 'default', '--name', `mem${i}`]).stdout.trim();
  });
  const before = rssKiB(srv.proc.pid);
  let next = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: 16 }, async () => {
    while (next < SESSIONS) { const i = next++; await openSession(ghUrl, pats[Math.floor(i / PER_MEMBER)]); }
  }));
  const openMs = performance.now() - t0;
  const afterOpen = rssKiB(srv.proc.pid);
  const stored = Number(cluster.sql('SELECT count(*) FROM mcp_sessions'));

  console.log(`\n${ROUNDS > 1 ? `median of ${ROUNDS} rounds` : 'one round'} per target and level`);
  console.log('\n| concurrency | target | req/s | p50 ms | p99 ms | added p50 vs direct ms | added p99 vs direct ms | req/s per round |');
  console.log('|---|---|---|---|---|---|---|---|');
  for (const [c, r] of rows) {
    for (const name of TARGETS) {
      const x = r[name];
      const add50 = name === 'direct' || !r.direct ? '' : fmt(x.p50_us - r.direct.p50_us);
      const add99 = name === 'direct' || !r.direct ? '' : fmt(x.p99_us - r.direct.p99_us);
      console.log(`| ${c} | ${name} | ${x.rps.toFixed(0)} | ${fmt(x.p50_us)} | ${fmt(x.p99_us)} | ${add50} | ${add99} | ${x.rounds.map((v) => v.toFixed(0)).join(' / ')} |`);
    }
  }
  // added p50 (vs direct) when both were run; '' otherwise
  const added = (r, name) => (r[name] && r.direct ? r[name].p50_us - r.direct.p50_us : NaN);
  const div = (x, y, d = 2) => (Number.isFinite(x) && Number.isFinite(y) && y > 0 ? (x / y).toFixed(d) : '');
  console.log(`\nThe floor under a durable audit, on the same cluster with no proxy: pgbench, one INSERT of a 600-byte row per transaction (fsync on); the disk's flush (pg_test_fsync, one 8 kB write, fdatasync): ${flush} µs.`);
  console.log('\nTargets (issue 13): at 64 connections Gatehouse req/s >= 0.60 of nginx\'s; Gatehouse CPU per call <= 2.5x nginx\'s at 8 and 64; ' +
    'at 1 connection added p50 <= nginx\'s added p50 + the mean durable commit (pgbench) + 0.25 ms. Issue 15: gatehouse-100pol req/s within 5% of gatehouse\'s.');
  console.log('\n| concurrency | req/s / nginx | CPU per call / nginx | added p50 ms | added p50 allowed ms | fsync off: req/s / nginx | fsync off: CPU / nginx | 100 policies: req/s / 1 policy | commit alone: mean ms | commits/s |');
  console.log('|---|---|---|---|---|---|---|---|---|---|');
  for (const [c, r] of rows) {
    const cpu = (name) => r[name]?.cpu_us.proxy;
    const allow = added(r, 'nginx') + floors[c].lat_ms * 1000 + 250;
    console.log(`| ${c} | ${div(r.gatehouse?.rps, r.nginx?.rps)} | ${div(cpu('gatehouse'), cpu('nginx'), 1)} | ` +
      `${Number.isFinite(added(r, 'gatehouse')) ? fmt(added(r, 'gatehouse')) : ''} | ${Number.isFinite(allow) ? fmt(allow) : ''} | ` +
      `${div(r['gatehouse-nofsync']?.rps, r.nginx?.rps)} | ${div(cpu('gatehouse-nofsync'), cpu('nginx'), 1)} | ` +
      `${div(r['gatehouse-100pol']?.rps, r.gatehouse?.rps)} | ${floors[c].lat_ms.toFixed(3)} | ${floors[c].tps.toFixed(0)} |`);
  }
  const us = (v) => (v === undefined || Number.isNaN(v) ? '' : v.toFixed(1));
  console.log('\nCPU time per call (user + system, µs; from /proc over each run):');
  console.log('\n| concurrency | target | proxy | postgres | upstream | wrk | total |');
  console.log('|---|---|---|---|---|---|---|');
  for (const [c, r] of rows) {
    for (const name of TARGETS) {
      const u = r[name].cpu_us;
      const total = Object.values(u).filter((v) => !Number.isNaN(v)).reduce((a, b) => a + b, 0);
      console.log(`| ${c} | ${name} | ${us(u.proxy)} | ${us(u.postgres)} | ${us(u.upstream)} | ${us(u.wrk)} | ${us(total)} |`);
    }
  }
  console.log(`\naudit rows written during the run: ${auditRows}; policies enabled on the gatehouse-100pol agent: ${enabled}`);
  console.log(`load average at the end of the timed runs: ${loadEnd.map((v) => v.toFixed(2)).join(' ')}`);
  console.log(`\nmemory: RSS ${(before / 1024).toFixed(1)} MiB before, ${(afterOpen / 1024).toFixed(1)} MiB with ${SESSIONS} more open sessions ` +
    `(${stored} rows in mcp_sessions; +${(((afterOpen - before) * 1024) / SESSIONS).toFixed(0)} bytes per session; opened in ${(openMs / 1000).toFixed(1)} s)`);

  await srv.stop();
  await cluster.stop();
  fs.rmSync(tmp, { recursive: true, force: true });
  process.exit(0);
}

main().catch((e) => { console.error(e); process.exit(1); });
