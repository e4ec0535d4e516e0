// Cedar authorization benchmark: Gatehouse's engine (bench_cedar, C) and
// @cedar-policy/cedar-wasm (policy set preparsed once) on the same policy
// sets of 1, 10, 100 and 1,000 policies and the same MCP tool-call
// requests, in one run; with --validate, also schema validation of the
// 1,000-policy set (bench_validate, C) against cedar-wasm's validate().
// Usage (run.sh builds bench_cedar and bench_validate first):
//   node bench/cedar/bench.mjs BENCH_CEDAR_BINARY [--validate BENCH_VALIDATE] [--out RESULTS.md]
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const here = import.meta.dirname;
const nodeModules = process.env.GH_NODE_MODULES || path.resolve(here, '../../node_modules');
const require = createRequire(path.join(nodeModules, 'x.js'));
const cedar = require('@cedar-policy/cedar-wasm/nodejs');
const benchBin = process.argv[2];
const outIdx = process.argv.indexOf('--out');
const outFile = outIdx > 0 ? process.argv[outIdx + 1] : null;
const valIdx = process.argv.indexOf('--validate');
const validateBin = valIdx > 0 ? process.argv[valIdx + 1] : null;
const SIZES = (process.env.CEDAR_BENCH_SIZES || '1,10,100,1000').split(',').map(Number);

// ---- workload -----------------------------------------------------------
const TOOLS = ['github__create_issue', 'github__list_issues', 'github__merge_pr', 'slack__post_message',
  'jira__create_ticket', 'fs__read_file', 'fs__write_file', 'db__query'];
const server = (t) => t.split('__')[0];

// Policy i of a set; the first one is what lets the sample requests through.
function policy(i) {
  if (i === 0) {
    return `@id("eng-create-issues")
permit(principal in Team::"eng", action == Action::"call_tool", resource == Tool::"github__create_issue")
when { context.args.repo like "acme/*" && context.args has title && context.args.labels.containsAny(["bug", "feature"]) };`;
  }
  switch (i % 5) {
    case 0: return `permit(principal == User::"user${i}", action == Action::"call_tool", resource == Tool::"${TOOLS[i % TOOLS.length]}")
when { context.args has repo && context.args.repo like "org${i}/*" };`;
    case 1: return `permit(principal in Team::"team${i % 40}", action == Action::"call_tool", resource in Server::"${server(TOOLS[i % TOOLS.length])}")
when { principal.level >= ${i % 5} && context.tool != "fs__write_file" };`;
    case 2: return `forbid(principal, action == Action::"call_tool", resource == Tool::"${TOOLS[i % TOOLS.length]}")
when { context.args has force && context.args.force == true && !(principal in Team::"admins${i}") };`;
    case 3: return `forbid(principal is User, action == Action::"call_tool", resource)
when { principal.suspended || context.args.title like "*DROP TABLE*${i}*" };`;
    default: return `permit(principal == User::"user${i}", action in [Action::"call_tool", Action::"list_tools"], resource in Server::"s${i % 17}")
unless { context.hour < 8 || context.hour > ${18 + (i % 5)} };`;
  }
}

function cases() {
  const out = [];
  for (let k = 0; k < 64; k++) {
    const user = k % 4 === 0 ? 'alice' : `user${k * 5}`;
    const team = k % 4 === 0 ? 'eng' : `team${k % 40}`;
    const tool = k % 2 === 0 ? 'github__create_issue' : TOOLS[k % TOOLS.length];
    const entities = [
      { uid: { type: 'User', id: user }, attrs: { level: k % 6, suspended: false, email: `${user}@acme.test` },
        parents: [{ type: 'Team', id: team }] },
      { uid: { type: 'Team', id: team }, attrs: {}, parents: [{ type: 'Org', id: 'acme' }] },
      { uid: { type: 'Tool', id: tool }, attrs: { server: server(tool) }, parents: [{ type: 'Server', id: server(tool) }] },
      { uid: { type: 'Server', id: server(tool) }, attrs: {}, parents: [] },
    ];
    const request = {
      principal: { type: 'User', id: user },
      action: { type: 'Action', id: 'call_tool' },
      resource: { type: 'Tool', id: tool },
      context: {
        tool, server: server(tool), hour: 9 + (k % 10),
        args: { repo: k % 3 ? 'acme/widgets' : 'other/thing', title: `Crash when saving file #${k}`,
          body: 'Steps to reproduce: open the editor, type, press save. Expected: saved. Actual: crash.',
          labels: k % 2 ? ['bug', 'p1'] : ['question'], assignees: ['bob', 'carol'], draft: false },
      },
    };
    out.push({ entities, request });
  }
  return out;
}

// The schema the workload's policies are written against.
const SCHEMA = `entity Org;
entity Team in [Org];
entity User in [Team] = { level: Long, suspended: Bool, email: String };
entity Server;
entity Tool in [Server] = { server: String };
action call_tool, list_tools appliesTo {
  principal: [User],
  resource: [Tool, Server],
  context: {
    tool: String, server: String, hour: Long,
    args: { repo: String, title: String, labels: Set<String>, body?: String,
            assignees?: Set<String>, draft?: Bool, force?: Bool },
  },
};
`;

// ---- cedar-wasm -----------------------------------------------------------
function wasmRun(size, cs, iters) {
  const text = Array.from({ length: size }, (_, i) => policy(i)).join('\n');
  const id = `bench${size}`;
  const t0 = process.hrtime.bigint();
  const pre = cedar.preparsePolicySet(id, { staticPolicies: text });
  const parseMs = Number(process.hrtime.bigint() - t0) / 1e6;
  if (pre.type !== 'success') throw new Error(JSON.stringify(pre));
  const call = (c) => cedar.statefulIsAuthorized({ ...c.request, preparsedPolicySetId: id, entities: c.entities });
  for (let i = 0; i < iters / 10 + 1; i++) call(cs[i % cs.length]);
  const lat = new Float64Array(iters);
  let allows = 0;
  const start = process.hrtime.bigint();
  for (let i = 0; i < iters; i++) {
    const s = process.hrtime.bigint();
    const a = call(cs[i % cs.length]);
    if (a.type !== 'success') throw new Error(JSON.stringify(a));
    if (a.response.decision === 'allow') allows++;
    lat[i] = Number(process.hrtime.bigint() - s);
  }
  const total = Number(process.hrtime.bigint() - start);
  lat.sort();
  return { policies: size, requests: iters, allows, rps: Math.round(iters / (total / 1e9)),
    median_us: lat[iters >> 1] / 1e3, p99_us: lat[Math.floor(iters * 0.99)] / 1e3, parse_ms: parseMs };
}

const f = (x, d = 2) => Number(x).toFixed(d);
const fmt = (n) => Math.round(n).toLocaleString('en-US');

// ---- run --------------------------------------------------------------------
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cedar-bench-'));
const cs = cases();
const casesFile = path.join(dir, 'cases.jsonl');
fs.writeFileSync(casesFile, cs.map((c) => `${JSON.stringify(c.entities)}\n${JSON.stringify(c.request)}`).join('\n') + '\n');
const rows = [];
for (const size of SIZES) {
  const pf = path.join(dir, `p${size}.cedar`);
  fs.writeFileSync(pf, Array.from({ length: size }, (_, i) => policy(i)).join('\n') + '\n');
  const gIters = 200000;
  const wIters = size >= 1000 ? 5000 : 20000;
  const g = (mode) => {
    const r = spawnSync(benchBin, [pf, casesFile, String(gIters), ...(mode ? [mode] : [])], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`bench_cedar failed: ${r.stderr}`);
    return JSON.parse(r.stdout);
  };
  const ours = g(null), oursApi = g('api'), oursPre = g('prebuilt');
  const w = wasmRun(size, cs, wIters);
  if (ours.allows / ours.requests !== w.allows / w.requests && Math.abs(ours.allows / ours.requests - w.allows / w.requests) > 0.01) {
    throw new Error(`decisions differ: gatehouse ${ours.allows}/${ours.requests}, cedar-wasm ${w.allows}/${w.requests}`);
  }
  rows.push({ size, ours, oursApi, oursPre, w });
  console.log(JSON.stringify({ size, gatehouse_json: ours, gatehouse_api: oursApi, gatehouse_prebuilt: oursPre, cedar_wasm: w }));
}
// ---- validation of the 1,000-policy set ----------------------------------------
let vmd = '';
if (validateBin) {
  const size = 1000, iters = Number(process.env.CEDAR_BENCH_VALIDATE_ITERS || 50);
  const text = Array.from({ length: size }, (_, i) => policy(i)).join('\n') + '\n';
  const pf = path.join(dir, 'v.cedar'), sf = path.join(dir, 'v.cedarschema');
  fs.writeFileSync(pf, text);
  fs.writeFileSync(sf, SCHEMA);
  const r = spawnSync(validateBin, [sf, pf, String(iters)], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`bench_validate failed: ${r.stderr}`);
  const g = JSON.parse(r.stdout);
  const call = () => cedar.validate({ schema: SCHEMA, policies: { staticPolicies: text }, validationSettings: { mode: 'strict' } });
  call();
  const lat = [];
  let ans;
  for (let i = 0; i < Math.max(5, iters / 5); i++) {
    const t = process.hrtime.bigint();
    ans = call();
    lat.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  if (ans.type !== 'success') throw new Error(JSON.stringify(ans.errors));
  lat.sort((a, b) => a - b);
  const w = { errors: ans.validationErrors.length, warnings: ans.validationWarnings.length, median_ms: lat[lat.length >> 1], calls: lat.length };
  if (w.errors !== g.errors) throw new Error(`verdicts differ: gatehouse ${g.errors} errors, cedar-wasm ${w.errors}`);
  console.log(JSON.stringify({ validate: { gatehouse: g, cedar_wasm: w } }));
  vmd = `\n| policies | errors | cedar-wasm validate() median ms | gatehouse parse + validate median ms | vs wasm | gatehouse cedar_validate only median ms | vs wasm |\n`;
  vmd += `|---:|---:|---:|---:|---:|---:|---:|\n`;
  vmd += `| ${fmt(size)} | ${g.errors} | ${f(w.median_ms)} | ${f(g.full_median_ms)} | ${f(w.median_ms / g.full_median_ms, 1)}x | ${f(g.validate_median_ms)} | ${f(w.median_ms / g.validate_median_ms, 1)}x |\n`;
}

if (process.env.CEDAR_BENCH_KEEP) console.log(`inputs kept in ${dir}`);
else fs.rmSync(dir, { recursive: true, force: true });

let md = `| policies | cedar-wasm req/s | median µs | p99 µs | gatehouse JSON in: req/s | median µs | p99 µs | vs wasm | gatehouse C API: req/s | median µs | p99 µs | vs wasm | authorize only: req/s | median µs |\n`;
md += `|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n`;
for (const { size, ours, oursApi, oursPre, w } of rows) {
  md += `| ${fmt(size)} | ${fmt(w.rps)} | ${f(w.median_us)} | ${f(w.p99_us)} | ${fmt(ours.rps)} | ${f(ours.median_us)} | ${f(ours.p99_us)} | ${f(ours.rps / w.rps, 1)}x | ${fmt(oursApi.rps)} | ${f(oursApi.median_us)} | ${f(oursApi.p99_us)} | ${f(oursApi.rps / w.rps, 1)}x | ${fmt(oursPre.rps)} | ${f(oursPre.median_us)} |\n`;
}
console.log('\n' + md + vmd);
if (outFile) fs.writeFileSync(outFile, md + vmd);
