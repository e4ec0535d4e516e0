// docs/gatehouse.cedarschema and docs/POLICIES.md stay true: every worked
// example parses, and every example that does not read the tool's own
// arguments (declared empty there) validates against the schema with `gatehouse cedar validate`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gatehouse, sourceDir } from '../../harness/index.mjs';

const schema = path.join(sourceDir, 'docs/gatehouse.cedarschema');
const examples = [...fs.readFileSync(path.join(sourceDir, 'docs/POLICIES.md'), 'utf8')
  .matchAll(/```cedar\n([^]*?)```/g)].map((m) => m[1].replace(/^  /gm, ''));

test('the worked examples parse, and validate against the schema', () => {
  assert.ok(examples.length >= 5, 'one example per case');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gh-policy-docs-'));
  try {
    examples.forEach((text, i) => {
      const f = path.join(dir, `example${i}.cedar`);
      fs.writeFileSync(f, text);
      let r = gatehouse(process.env, ['cedar', 'check', f]);
      assert.equal(r.code, 0, `example ${i}: ${r.stdout}${r.stderr}`);
      // args are declared empty (each tool has its own): those examples only parse
      if (text.includes('context.args')) return;
      r = gatehouse(process.env, ['cedar', 'validate', '--schema', schema, '--policies', f]);
      assert.equal(r.code, 0, `example ${i}: ${r.stderr}`);
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('the schema itself parses, and a policy using an undeclared attribute does not validate', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gh-policy-docs-'));
  try {
    const f = path.join(dir, 'bad.cedar');
    fs.writeFileSync(f, 'permit (principal, action, resource) when { principal.department == "x" };\n');
    const r = gatehouse(process.env, ['cedar', 'validate', '--schema', schema, '--policies', f]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /department/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
