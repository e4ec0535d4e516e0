// Differential test of schema validation: seeded random schemas (human-
// readable and JSON) and policies are validated by `gatehouse cedar
// validate --batch` and by @cedar-policy/cedar-wasm in strict mode; the
// verdicts (valid, invalid, or schema/policy refused) must agree. A
// disagreement is shrunk (fewest policies, conditions and declarations)
// and printed as a minimal reproducer.
// A second test does the same for entities and requests against the schemas.
//   CEDAR_VDIFF_SEED (default 20261207), CEDAR_VDIFF_CASES (default 5000),
//   CEDAR_VDIFF_DATA_CASES (default 1500)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { genSchemaCase, genData, schemaText, schemaJson, policyText } from './gen_schema.mjs';

const nodeModules = process.env.GH_NODE_MODULES || path.resolve(import.meta.dirname, '../../node_modules');
const require = createRequire(path.join(nodeModules, 'x.js'));
const cedar = require('@cedar-policy/cedar-wasm/nodejs');
const bin = process.env.GATEHOUSE_BIN || path.resolve(import.meta.dirname, '../../build/gatehouse');
const SEED = Number(process.env.CEDAR_VDIFF_SEED || 20261207);
const CASES = Number(process.env.CEDAR_VDIFF_CASES || 5000);

const schemaOf = (c) => (c.json ? schemaJson(c) : schemaText(c));

function ours(cases) {
  const input = cases.map((c) => JSON.stringify({ schema: schemaOf(c), policies: policyText(c) })).join('\n') + '\n';
  const r = spawnSync(bin, ['cedar', 'validate', '--batch', '-'], { input, maxBuffer: 1 << 30 });
  assert.equal(r.status, 0, `batch run failed: ${r.stderr}`);
  const lines = r.stdout.toString().split('\n').filter(Boolean);
  assert.equal(lines.length, cases.length, 'one answer per case');
  return lines.map((l) => {
    const j = JSON.parse(l);
    if (j.error) return { verdict: `refused:${j.stage === 'schema' ? 'schema' : 'policies'}`, detail: j.error };
    return { verdict: j.valid ? 'valid' : 'invalid', detail: j.errors.map((e) => `${e.policy}:${e.line}:${e.col}: ${e.message}`).join('; ') };
  });
}

function reference(c) {
  let s = schemaOf(c);
  const pol = policyText(c);
  const parsed = cedar.checkParsePolicySet({ staticPolicies: pol });
  if (parsed.type !== 'success') return { verdict: 'refused:policies', detail: parsed.errors.map((e) => e.message).join('; ') };
  const sc = cedar.checkParseSchema(s);
  if (sc.type !== 'success') return { verdict: 'refused:schema', detail: sc.errors.map((e) => e.message).join('; ') };
  const a = cedar.validate({ schema: s, policies: { staticPolicies: pol }, validationSettings: { mode: 'strict' } });
  if (a.type !== 'success') return { verdict: 'refused:schema', detail: a.errors.map((e) => e.message).join('; ') };
  return { verdict: a.validationErrors.length ? 'invalid' : 'valid',
    detail: a.validationErrors.map((e) => `${e.policyId}: ${e.error.message}`).join('; ') };
}

function candidates(c) {
  const out = [];
  c.policies.forEach((_, i) => { if (c.policies.length > 1) out.push({ ...c, policies: c.policies.filter((__, k) => k !== i) }); });
  c.policies.forEach((p, i) => p.conds.forEach((_, j) => {
    const ps = structuredClone(c.policies);
    ps[i].conds.splice(j, 1);
    out.push({ ...c, policies: ps });
  }));
  c.decls.forEach((_, i) => out.push({ ...c, decls: c.decls.filter((__, k) => k !== i) }));
  c.decls.forEach((d, i) => Object.keys(d.attrs || {}).forEach((a) => {
    const ds = structuredClone(c.decls);
    delete ds[i].attrs[a];
    out.push({ ...c, decls: ds });
  }));
  return out;
}

function shrink(c) {
  for (let round = 0; round < 200; round++) {
    const cands = candidates(c);
    if (!cands.length) break;
    const mine = ours(cands);
    const k = cands.findIndex((cand, i) => mine[i].verdict !== reference(cand).verdict);
    if (k < 0) break;
    c = cands[k];
  }
  return c;
}

test(`validator agrees with cedar-wasm on ${CASES} random schemas and policies (seed ${SEED})`, () => {
  const cases = Array.from({ length: CASES }, (_, i) => genSchemaCase(SEED + i));
  const mine = ours(cases);
  const bad = [];
  const stats = {};
  cases.forEach((c, i) => {
    const ref = reference(c);
    stats[ref.verdict] = (stats[ref.verdict] || 0) + 1;
    if (mine[i].verdict !== ref.verdict) bad.push(i);
  });
  console.log(`cases ${CASES}: ${JSON.stringify(stats)}; disagreements ${bad.length}`);
  for (const i of bad.slice(0, 10)) {
    const m = shrink(cases[i]);
    const [mo] = ours([m]);
    console.log(`--- disagreement, case seed ${SEED + i} (minimal reproducer)\n` +
      `schema${m.json ? ' (JSON)' : ''}:\n${m.json ? JSON.stringify(schemaJson(m)) : schemaText(m)}\npolicies:\n${policyText(m)}\n` +
      `gatehouse: ${JSON.stringify(mo)}\ncedar-wasm: ${JSON.stringify(reference(m))}`);
  }
  // Both verdicts must be common, or agreement means little.
  assert.ok((stats.valid || 0) > CASES / 10 && (stats.invalid || 0) > CASES / 10,
    `case mix too narrow: ${JSON.stringify(stats)}`);
  assert.equal(bad.length, 0, `${bad.length} disagreements (first seeds: ${bad.slice(0, 10).map((i) => SEED + i).join(', ')})`);
});

// Entities and requests against the same random schemas: cedar-wasm
// authorizes with the schema and validateRequest, which refuses entities
// or a request that do not conform; `validate --batch` answers "ok" or why.
const DATA_CASES = Number(process.env.CEDAR_VDIFF_DATA_CASES || 1500);
test(`entity and request checks agree with cedar-wasm on ${DATA_CASES} cases (seed ${SEED})`, () => {
  const cases = [];
  for (let i = 0; cases.length < DATA_CASES && i < DATA_CASES * 4; i++) {
    const c = genSchemaCase(SEED + i);
    if (reference({ ...c, policies: [] }).verdict.startsWith('refused')) continue;
    const d = genData(SEED + i, c);
    if (d.request) cases.push({ c, d, seed: SEED + i });
  }
  const input = cases.map(({ c, d }) => JSON.stringify({ schema: schemaOf(c), policies: '', entities: d.entities, request: d.request })).join('\n') + '\n';
  const r = spawnSync(bin, ['cedar', 'validate', '--batch', '-'], { input, maxBuffer: 1 << 30 });
  assert.equal(r.status, 0, `batch run failed: ${r.stderr}`);
  const mine = r.stdout.toString().split('\n').filter(Boolean).map((l) => JSON.parse(l));
  const stats = { conform: 0, refused: 0 };
  const bad = [];
  cases.forEach(({ c, d }, i) => {
    const a = cedar.isAuthorized({ ...d.request, entities: d.entities, schema: schemaOf(c), validateRequest: true,
      policies: { staticPolicies: 'permit(principal, action, resource);' } });
    const ref = a.type === 'success';
    stats[ref ? 'conform' : 'refused']++;
    if (ref !== (mine[i].data === 'ok')) bad.push({ i, detail: a.type === 'success' ? '' : a.errors.map((e) => e.message).join('; ') });
  });
  console.log(`data cases ${cases.length}: ${JSON.stringify(stats)}; disagreements ${bad.length}`);
  for (const { i, detail } of bad.slice(0, 10)) {
    const { c, d, seed } = cases[i];
    console.log(`--- disagreement, case seed ${seed}\nschema${c.json ? ' (JSON)' : ''}:\n${c.json ? JSON.stringify(schemaJson(c)) : schemaText(c)}\n` +
      `entities: ${JSON.stringify(d.entities)}\nrequest: ${JSON.stringify(d.request)}\ngatehouse: ${mine[i].data}\ncedar-wasm: ${detail || 'ok'}`);
  }
  assert.ok(stats.conform > cases.length / 5 && stats.refused > cases.length / 10, `case mix too narrow: ${JSON.stringify(stats)}`);
  assert.equal(bad.length, 0, `${bad.length} disagreements`);
});
