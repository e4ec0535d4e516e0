// Differential test: seeded random policies, entities and requests are
// authorized by `gatehouse cedar authorize --batch` and by the reference
// implementation (@cedar-policy/cedar-wasm); decision, determining policies
// and errored policies must agree. A disagreement is shrunk to a minimal
// reproducer (fewest policies, entities, attributes) and printed.
//   CEDAR_DIFF_SEED (default 20261122), CEDAR_DIFF_CASES (default 10000)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { genCase } from './gen.mjs';

const nodeModules = process.env.GH_NODE_MODULES || path.resolve(import.meta.dirname, '../../node_modules');
const require = createRequire(path.join(nodeModules, 'x.js'));
const cedar = require('@cedar-policy/cedar-wasm/nodejs');
const bin = process.env.GATEHOUSE_BIN || path.resolve(import.meta.dirname, '../../build/gatehouse');
const SEED = Number(process.env.CEDAR_DIFF_SEED || 20261122);
const CASES = Number(process.env.CEDAR_DIFF_CASES || 10000);

function ours(cases) {
  const input = cases.map((c) => JSON.stringify(c)).join('\n') + '\n';
  const r = spawnSync(bin, ['cedar', 'authorize', '--batch', '-'], { input, maxBuffer: 1 << 30 });
  assert.equal(r.status, 0, `batch run failed: ${r.stderr}`);
  const lines = r.stdout.toString().split('\n').filter(Boolean);
  assert.equal(lines.length, cases.length, 'one answer per case');
  return lines.map((l) => {
    const j = JSON.parse(l);
    if (j.error) return { error: true, detail: `${j.stage}: ${j.error}` };
    return { decision: j.decision, reasons: [...j.reasons].sort(), errors: j.errors.map((e) => e.policy).sort() };
  });
}

function reference(c) {
  const a = cedar.isAuthorized({
    principal: c.request.principal, action: c.request.action, resource: c.request.resource,
    context: c.request.context, entities: c.entities,
    policies: { staticPolicies: c.policies, templates: c.templates, templateLinks: c.links },
  });
  if (a.type !== 'success') return { error: true, detail: a.errors.map((e) => e.message).join('; ') };
  const d = a.response.diagnostics;
  return { decision: a.response.decision, reasons: [...d.reason].sort(), errors: d.errors.map((e) => e.policyId).sort(),
    messages: d.errors.map((e) => `${e.policyId}: ${e.error.message}`) };
}

function agree(x, y) {
  if (x.error || y.error) return !!x.error === !!y.error;
  return x.decision === y.decision && JSON.stringify(x.reasons) === JSON.stringify(y.reasons) &&
    JSON.stringify(x.errors) === JSON.stringify(y.errors);
}

// Policy texts are split at the generator's policy boundaries (each ends with
// ";" at the end of a line) so that the shrinker can drop whole policies.
function splitPolicies(text) { return text.split(/;\n/).map((p, i, a) => (i < a.length - 1 ? p + ';' : p)); }

function candidates(c) {
  const out = [];
  const pols = splitPolicies(c.policies);
  if (pols.length > 1) pols.forEach((_, i) => out.push({ ...c, policies: pols.filter((__, k) => k !== i).join('\n') }));
  c.entities.forEach((_, i) => out.push({ ...c, entities: c.entities.filter((__, k) => k !== i) }));
  c.entities.forEach((e, i) => {
    for (const key of ['attrs', 'tags']) {
      for (const a of Object.keys(e[key] || {})) {
        const ne = structuredClone(c.entities);
        delete ne[i][key][a];
        out.push({ ...c, entities: ne });
      }
    }
    if (e.parents.length) {
      const ne = structuredClone(c.entities);
      ne[i].parents = [];
      out.push({ ...c, entities: ne });
    }
  });
  for (const a of Object.keys(c.request.context)) {
    const ctx = { ...c.request.context };
    delete ctx[a];
    out.push({ ...c, request: { ...c.request, context: ctx } });
  }
  return out;
}

function shrink(c) {
  for (let round = 0; round < 200; round++) {
    const cands = candidates(c);
    if (!cands.length) break;
    const mine = ours(cands);
    const k = cands.findIndex((cand, i) => !agree(mine[i], reference(cand)));
    if (k < 0) break;
    c = cands[k];
  }
  return c;
}

test(`cedar engine agrees with cedar-wasm on ${CASES} random cases (seed ${SEED})`, () => {
  const cases = Array.from({ length: CASES }, (_, i) => genCase(SEED + i));
  const mine = ours(cases);
  const bad = [];
  const stats = { allow: 0, deny: 0, withErrors: 0, parseErrors: 0 };
  cases.forEach((c, i) => {
    const ref = reference(c);
    if (ref.error) stats.parseErrors++;
    else {
      stats[ref.decision]++;
      if (ref.errors.length) stats.withErrors++;
    }
    if (!agree(mine[i], ref)) bad.push(i);
  });
  console.log(`cases ${CASES}: ${JSON.stringify(stats)}; disagreements ${bad.length}`);
  for (const i of bad.slice(0, 10)) {
    const m = shrink(cases[i]);
    const [mo] = ours([m]);
    console.log(`--- disagreement, case seed ${SEED + i} (minimal reproducer)\n` +
      `policies:\n${m.policies}\nentities: ${JSON.stringify(m.entities)}\nrequest: ${JSON.stringify(m.request)}\n` +
      `gatehouse: ${JSON.stringify(mo)}\ncedar-wasm: ${JSON.stringify(reference(m))}`);
  }
  // The generator must exercise every outcome, or agreement means little.
  assert.ok(stats.allow > CASES / 20 && stats.deny > CASES / 20 && stats.withErrors > CASES / 20,
    `case mix too narrow: ${JSON.stringify(stats)}`);
  assert.equal(bad.length, 0, `${bad.length} disagreements (first seeds: ${bad.slice(0, 10).map((i) => SEED + i).join(', ')})`);
});
