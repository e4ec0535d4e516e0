// `gatehouse cedar check` and `gatehouse cedar authorize`: output and exit
// codes (0 decision/ok, 1 error, 2 usage).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const bin = process.env.GATEHOUSE_BIN || path.resolve(import.meta.dirname, '../../build/gatehouse');
let dir;
const file = (name, text) => { const p = path.join(dir, name); fs.writeFileSync(p, text); return p; };
const run = (args, input) => {
  const r = spawnSync(bin, ['cedar', ...args], { input, encoding: 'utf8' });
  return { code: r.status, out: r.stdout, err: r.stderr };
};

before(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cedar-cli-')); });
after(() => fs.rmSync(dir, { recursive: true, force: true }));

test('check: a valid file exits 0 and counts its policies', () => {
  const p = file('ok.cedar', 'permit(principal, action, resource);\nforbid(principal, action, resource) when { context.x };\n');
  const r = run(['check', p]);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /ok, 2 policies/);
});

test('check: a syntax error exits 1 with file:line:col and what was expected', () => {
  const p = file('bad.cedar', 'permit(principal, action, resource);\n\nforbid(principal, action, resource)\n  when { context.x < };\n');
  const r = run(['check', p]);
  assert.equal(r.code, 1);
  assert.equal(r.err.trim(), `${p}:4:22: expected expression, found \`}\``);
});

test('check: a missing file exits 1, bad usage exits 2', () => {
  assert.equal(run(['check', path.join(dir, 'nope.cedar')]).code, 1);
  assert.equal(run(['check']).code, 2);
  assert.equal(run([]).code, 2);
  assert.equal(run(['frobnicate']).code, 2);
  assert.equal(run(['authorize', '--policies']).code, 2);
});

const policies = `
@id("eng-tools")
permit(principal in Team::"eng", action == Action::"call_tool", resource)
when { context.args.repo like "acme/*" };
forbid(principal, action, resource) when { context.args.count * 4611686018427387904 > 0 };
`;
const entities = JSON.stringify([
  { uid: { type: 'User', id: 'alice' }, attrs: {}, parents: [{ type: 'Team', id: 'eng' }] },
  { uid: { type: 'Team', id: 'eng' }, attrs: {}, parents: [] },
]);
const req = (repo, count) => JSON.stringify({
  principal: { type: 'User', id: 'alice' }, action: { type: 'Action', id: 'call_tool' },
  resource: { type: 'Tool', id: 'github__create_issue' }, context: { args: { repo, count } },
});

test('authorize: allow and deny print decision, reasons and errors as JSON, exit 0', () => {
  const p = file('p.cedar', policies), e = file('e.json', entities);
  let r = run(['authorize', '--policies', p, '--entities', e, '--request', file('r1.json', req('acme/x', 0))]);
  assert.equal(r.code, 0, r.err);
  assert.deepEqual(JSON.parse(r.out), { decision: 'allow', reasons: ['policy0'], errors: [] });
  r = run(['authorize', '--policies', p, '--entities', e, '--request', file('r2.json', req('other/x', 0))]);
  assert.equal(r.code, 0);
  assert.deepEqual(JSON.parse(r.out), { decision: 'deny', reasons: [], errors: [] });
  // 2 * 2^62 overflows: the forbid errors (and so does not apply), the permit holds.
  r = run(['authorize', '--policies', p, '--entities', e, '--request', file('r3.json', req('acme/x', 2))]);
  const j = JSON.parse(r.out);
  assert.equal(j.decision, 'allow');
  assert.deepEqual(j.errors.map((x) => x.policy), ['policy1']);
  assert.match(j.errors[0].message, /overflow/);
});

test('authorize: bad policies, entities or request exit 1 with a message', () => {
  const p = file('p.cedar', policies), e = file('e.json', entities), rq = file('r.json', req('acme/x', 0));
  let r = run(['authorize', '--policies', file('bad.cedar', 'permit(principal, action);'), '--entities', e, '--request', rq]);
  assert.equal(r.code, 1);
  assert.match(r.err, /:1:25: expected `,`/);
  r = run(['authorize', '--policies', p, '--entities', file('bad.json', '[{"uid": 1, "attrs": {}, "parents": []}]'), '--request', rq]);
  assert.equal(r.code, 1);
  assert.match(r.err, /entity reference/);
  r = run(['authorize', '--policies', p, '--entities', file('bad2.json', '[{"uid": {"type": "User", "id": "a"}}]'), '--request', rq]);
  assert.equal(r.code, 1);
  assert.match(r.err, /needs "attrs" \(an object\) and "parents"/);
  r = run(['authorize', '--policies', p, '--entities', e, '--request', file('badr.json', '{"principal": 1}')]);
  assert.equal(r.code, 1);
  assert.match(r.err, /principal/);
});

test('authorize --batch: one answer per JSON line, errors per line', () => {
  const ok = { policies: 'permit(principal, action, resource) when { context.n == 9007199254740993 - 1 };',
    entities: [], request: { principal: { type: 'U', id: 'a' }, action: { type: 'A', id: 'b' }, resource: { type: 'R', id: 'c' },
      context: { n: 9007199254740992 } } };
  const bad = { ...ok, policies: 'permit(' };
  const r = run(['authorize', '--batch', '-'], [ok, bad, ok].map((c) => JSON.stringify(c)).join('\n') + '\nnot json\n');
  assert.equal(r.code, 0, r.err);
  const lines = r.out.trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(lines.length, 4);
  assert.deepEqual(lines[0], { decision: 'allow', reasons: ['policy0'], errors: [] });
  assert.equal(lines[1].stage, 'policies');
  assert.match(lines[1].error, /^1:8: /);
  assert.deepEqual(lines[2], lines[0]);
  assert.equal(lines[3].stage, 'case');
});
