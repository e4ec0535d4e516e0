// `gatehouse cedar validate`: policies against a schema (human-readable and
// JSON), FILE:line:col errors with what was expected (every error of a
// policy, in its scope too, each where it is), warnings, and the optional
// checks of entities and a request against the schema.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const bin = process.env.GATEHOUSE_BIN || path.resolve(import.meta.dirname, '../../build/gatehouse');
const nodeModules = process.env.GH_NODE_MODULES || path.resolve(import.meta.dirname, '../../node_modules');
const cedar = createRequire(path.join(nodeModules, 'x.js'))('@cedar-policy/cedar-wasm/nodejs');
let dir;
const file = (name, text) => { const p = path.join(dir, name); fs.writeFileSync(p, text); return p; };
const run = (args, input) => {
  const r = spawnSync(bin, ['cedar', 'validate', ...args], { input, encoding: 'utf8' });
  return { code: r.status, out: r.stdout, err: r.stderr };
};

const schema = `namespace Gh {
  type Args = { repo?: String, count: Long };
  entity User = { email: String, admin?: Bool };
  entity Connector;
  entity Tool in [Connector] = { readOnly: Bool, destructive: Bool } tags String;
  action "tools/call" appliesTo {
    principal: [User], resource: [Tool],
    context: { args: Args, hour: Long, ip?: ipaddr }
  };
  action "tools/list" appliesTo { principal: [User], resource: [Connector] };
}
`;
const schemaJson = {
  Gh: {
    commonTypes: { Args: { type: 'Record', attributes: { repo: { type: 'String', required: false }, count: { type: 'Long' } } } },
    entityTypes: {
      User: { shape: { type: 'Record', attributes: { email: { type: 'String' }, admin: { type: 'Boolean', required: false } } } },
      Connector: {},
      Tool: { memberOfTypes: ['Connector'], tags: { type: 'String' },
        shape: { type: 'Record', attributes: { readOnly: { type: 'Boolean' }, destructive: { type: 'Boolean' } } } },
    },
    actions: {
      'tools/call': { appliesTo: { principalTypes: ['User'], resourceTypes: ['Tool'], context: { type: 'Record', attributes: {
        args: { type: 'Args' }, hour: { type: 'Long' }, ip: { type: 'Extension', name: 'ipaddr', required: false } } } } },
      'tools/list': { appliesTo: { principalTypes: ['User'], resourceTypes: ['Connector'] } },
    },
  },
};
const good = `@message("no destructive tools")
forbid(principal, action == Gh::Action::"tools/call", resource in Gh::Connector::"github")
when { resource.destructive && !(principal has admin && principal.admin) };
permit(principal is Gh::User, action, resource is Gh::Tool)
when { context.args has repo && context.args.repo like "acme/*" && context.hour + 1 < 18 };
permit(principal, action, resource) when { context has ip && context.ip.isInRange(ip("10.0.0.0/8")) };
permit(principal, action, resource is Gh::Tool) when { resource.hasTag("team") && resource.getTag("team") == "eng" };
`;

before(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cedar-validate-')); });
after(() => fs.rmSync(dir, { recursive: true, force: true }));

test('policies that use the schema correctly validate, in both schema formats', () => {
  const p = file('good.cedar', good);
  for (const s of [file('s.cedarschema', schema), file('s.json', JSON.stringify(schemaJson))]) {
    const r = run(['--schema', s, '--policies', p]);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /ok, 4 policies validate/);
    assert.equal(r.err, '');
  }
});

test('a misspelt attribute, an unguarded optional one and a type error are FILE:line:col errors', () => {
  const s = file('s.cedarschema', schema);
  const p = file('bad.cedar', 'forbid(principal, action, resource is Gh::Tool)\nwhen { resource.destructve };\n' +
    'permit(principal, action == Gh::Action::"tools/call", resource)\nwhen { context.args.repo == "x" };\n' +
    'permit(principal, action, resource)\nwhen { context.hour + "1" > 2 };\n' +
    'permit(principal, action == Gh::Action::"tools/cal", resource);\n');
  const r = run(['--schema', s, '--policies', p]);
  assert.equal(r.code, 1);
  assert.deepEqual(r.err.trim().split('\n'), [
    `${p}:2:17: policy0: no attribute \`destructve\` on Gh::Tool`,
    `${p}:4:21: policy1: attribute \`repo\` of {count: __cedar::Long, repo?: __cedar::String} is optional: test it with \`has\` first`,
    // tools/list has no context attributes: a second error in that environment
    `${p}:6:16: policy2: no attribute \`hour\` on {}`,
    `${p}:6:23: policy2: expected Long, found __cedar::String`,
    `${p}:7:29: policy3: unknown entity Gh::Action::"tools/cal"`,
  ]);
});

// Every error of a policy is reported, as Cedar reports them: an expression
// in error still has its type where that does not depend on the error, so
// what encloses it is checked too.  Errors in the scope point at the part
// of the scope in error, not at the policy's start.
const several = `permit(
  principal is Gh::Usr,
  action in [Gh::Action::"tools/call", Gh::Action::"nope"],
  resource is Gh::Tol in Gh::Connector::"x"
);
forbid(principal == Gh::User::"a", action == Gh::Action::"tools/cal", resource in Gh::Conn::"x");
permit(principal, action, resource)
when { (1 + "a") + true && principal.zz }
unless { principal.admin == 1 || [principal.a, resource.b].isEmpty() };
permit(principal, action, resource) when { principal.email.lessThan(1) && ip("1.2.3.4").isInRange(decimal("1.0")) };
`;

test('a policy with several errors reports each at its line:col, in the scope too', () => {
  const p = file('several.cedar', several);
  for (const s of [file('s.cedarschema', schema), file('s.json', JSON.stringify(schemaJson))]) {
    const r = run(['--schema', s, '--policies', p]);
    assert.equal(r.code, 1);
    assert.deepEqual(r.err.trim().split('\n'), [
      `${p}:2:16: policy0: unknown entity type \`Gh::Usr\``,
      `${p}:3:40: policy0: unknown entity Gh::Action::"nope"`,
      `${p}:4:15: policy0: unknown entity type \`Gh::Tol\``,
      `${p}:6:46: policy1: unknown entity Gh::Action::"tools/cal"`,
      `${p}:6:83: policy1: unknown entity Gh::Conn::"x"`,
      `${p}:8:13: policy2: expected Long, found __cedar::String`,
      `${p}:8:18: policy2: expected a boolean, found __cedar::Long`,
      `${p}:8:20: policy2: expected Long, found __cedar::Bool (true)`,
      `${p}:8:38: policy2: no attribute \`zz\` on Gh::User`,
      `${p}:9:20: policy2: attribute \`admin\` of Gh::User is optional: test it with \`has\` first`,
      `${p}:9:26: policy2: cannot compare __cedar::Bool with __cedar::Long`,
      `${p}:9:45: policy2: no attribute \`a\` on Gh::User`,
      `${p}:9:57: policy2: no attribute \`b\` on Gh::Tool`,
      `${p}:9:57: policy2: no attribute \`b\` on Gh::Connector`,
      `${p}:10:54: policy3: expected decimal, found __cedar::String`,
      `${p}:10:69: policy3: expected decimal, found __cedar::Long`,
      `${p}:10:99: policy3: expected ipaddr, found decimal`,
    ]);
  }
  // as many per policy as the reference implementation finds
  const counts = (errs, key) => errs.reduce((m, e) => ({ ...m, [key(e)]: (m[key(e)] || 0) + 1 }), {});
  const ref = cedar.validate({ schema, policies: { staticPolicies: several }, validationSettings: { mode: 'strict' } });
  assert.equal(ref.type, 'success');
  const [ours] = run(['--batch', '-'], JSON.stringify({ schema, policies: several }) + '\n').out.trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(counts(ours.errors, (e) => e.policy), counts(ref.validationErrors, (e) => e.policyId));
});

test('a policy with very many errors lists 64 and says there were more', () => {
  const conds = Array.from({ length: 100 }, (_, i) => `principal.nope${i}`).join(' && ');
  const r = run(['--schema', file('s.cedarschema', schema), '--policies', file('many.cedar', `permit(principal, action, resource) when { ${conds} };\n`)]);
  assert.equal(r.code, 1);
  const lines = r.err.trim().split('\n');
  assert.equal(lines.length, 65);
  assert.match(lines[0], /many\.cedar:1:54: policy0: no attribute `nope0` on Gh::User/);
  assert.match(lines[64], /many\.cedar:1:1: policy0: more errors than the 64 shown/);
});

test('errors on one side of && and || and in both branches of a failed `if` are all reported', () => {
  const s = file('s.cedarschema', schema);
  const cases = [
    ['principal.foo && resource.bar', ['1:54', '1:70', '1:70']],
    ['principal.foo || context.bar', ['1:54', '1:69', '1:69']],
    ['if principal.a then resource.b else context.c', ['1:57', '1:73', '1:73', '1:88', '1:88']],
    ['-"x" < true', ['1:45', '1:51']],
    ['"a" like "b" && 1 like "x" && principal.email.isEmpty()', ['1:60', '1:84']],
    ['[1, "a"].contains(2) && [1].containsAll(2)', ['1:48', '1:84']],
    ['resource.getTag("x") == "y" && resource.hasTag(1)', ['1:53', '1:53', '1:91']],
    ['false && principal.zz', []],
  ];
  for (const [cond, at] of cases) {
    const policy = `permit(principal, action, resource) when { ${cond} };\n`;
    const r = run(['--schema', s, '--policies', file('c.cedar', policy)]);
    assert.equal(r.code, at.length ? 1 : 0, `${cond}: ${r.err}`);
    const got = r.err.trim().split('\n').filter((l) => l && !/ warning: /.test(l)).map((l) => l.match(/c\.cedar:(\d+:\d+):/)[1]);
    assert.deepEqual(got, at, `${cond}:\n${r.err}`);
    const ref = cedar.validate({ schema, policies: { staticPolicies: policy }, validationSettings: { mode: 'strict' } });
    assert.equal(ref.validationErrors.length, at.length, `${cond}: the reference finds ${ref.validationErrors.length}`);
  }
});

test('a scope no action applies to, and an always-false policy, are warnings', () => {
  const s = file('s.cedarschema', schema);
  const p = file('w.cedar', 'permit(principal, action == Gh::Action::"tools/list", resource is Gh::Tool);\n' +
    'permit(principal, action, resource) when { 1 == 2 };\n');
  const r = run(['--schema', s, '--policies', p]);
  assert.equal(r.code, 0, r.err);
  assert.match(r.err, /w\.cedar:1:1: warning: policy0: no action in the schema applies/);
  assert.match(r.err, /w\.cedar:2:1: warning: policy1: policy is impossible/);
});

test('schema errors name the schema file, line and column', () => {
  const p = file('good.cedar', good);
  let r = run(['--schema', file('e1.cedarschema', 'entity User = { name: String\n  email: String };\n'), '--policies', p]);
  assert.equal(r.code, 1);
  assert.match(r.err, /e1\.cedarschema:2:3: expected `\}` or `,`, found `email`/);
  r = run(['--schema', file('e2.cedarschema', 'entity User in [Group];\n'), '--policies', p]);
  assert.equal(r.code, 1);
  assert.match(r.err, /e2\.cedarschema:1:17: undeclared entity type `Group`/);
  r = run(['--schema', file('e3.json', '{"": {"entityTypes": {"A": {"shape": {"type": "Record", "attributes": {"x": {"type": "Nope"}}}}}}}'), '--policies', p]);
  assert.equal(r.code, 1);
  assert.match(r.err, /undeclared type `Nope`/);
});

test('entities and a request are checked against the schema', () => {
  const s = file('s.cedarschema', schema), p = file('good.cedar', good);
  const ents = (attrs, parents = [{ type: 'Gh::Connector', id: 'github' }]) => file('e.json', JSON.stringify([
    { uid: { type: 'Gh::User', id: 'alice' }, attrs: { email: 'a@x' }, parents: [] },
    { uid: { type: 'Gh::Connector', id: 'github' }, attrs: {}, parents: [] },
    { uid: { type: 'Gh::Tool', id: 'github/create' }, attrs, parents, tags: { team: 'eng' } },
  ]));
  const req = (principal, context) => file('r.json', JSON.stringify({ principal, action: { type: 'Gh::Action', id: 'tools/call' },
    resource: { type: 'Gh::Tool', id: 'github/create' }, context }));
  const alice = { type: 'Gh::User', id: 'alice' };
  const ctx = { args: { count: 1 }, hour: 9 };
  let r = run(['--schema', s, '--policies', p, '--entities', ents({ readOnly: true, destructive: false }), '--request', req(alice, ctx)]);
  assert.equal(r.code, 0, r.err);
  r = run(['--schema', s, '--policies', p, '--entities', ents({ readOnly: true, destructve: false })]);
  assert.equal(r.code, 1);
  assert.match(r.err, /entity Gh::Tool::"github\/create": required attribute `destructive` is missing/);
  r = run(['--schema', s, '--policies', p, '--entities', ents({ readOnly: 1, destructive: false })]);
  assert.match(r.err, /attribute `readOnly`: expected __cedar::Bool/);
  r = run(['--schema', s, '--policies', p, '--entities', ents({ readOnly: true, destructive: false }, [{ type: 'Gh::User', id: 'alice' }])]);
  assert.match(r.err, /a parent of type `Gh::User` is not allowed/);
  r = run(['--schema', s, '--policies', p, '--entities', file('cyc.json', JSON.stringify([
    { uid: { type: 'Gh::Connector', id: 'a' }, attrs: {}, parents: [] },
    { uid: { type: 'Gh::Tool', id: 't' }, attrs: { readOnly: true, destructive: false }, parents: [{ type: 'Gh::Connector', id: 'a' }] },
    { uid: { type: 'Gh::Tool', id: 'u' }, attrs: { readOnly: true, destructive: false }, parents: [{ type: 'Gh::Tool', id: 'u' }] }]))]);
  assert.equal(r.code, 1);
  assert.match(r.err, /a parent of type `Gh::Tool` is not allowed|the entity hierarchy has a cycle/);
  r = run(['--schema', file('loop.cedarschema', 'entity G in [G];\naction a appliesTo { principal: G, resource: G };\n'),
    '--policies', file('any.cedar', 'permit(principal, action, resource);\n'),
    '--entities', file('loop.json', JSON.stringify([
      { uid: { type: 'G', id: 'x' }, attrs: {}, parents: [{ type: 'G', id: 'y' }] },
      { uid: { type: 'G', id: 'y' }, attrs: {}, parents: [{ type: 'G', id: 'x' }] }]))]);
  assert.equal(r.code, 1);
  assert.match(r.err, /entity G::"[xy]": the entity hierarchy has a cycle through it/);
  r = run(['--schema', s, '--policies', p, '--request', req({ type: 'Gh::Connector', id: 'github' }, ctx)]);
  assert.equal(r.code, 1);
  assert.match(r.err, /action `tools\/call` does not apply to this principal type/);
  r = run(['--schema', s, '--policies', p, '--request', req(alice, { args: { count: 'x' }, hour: 9 })]);
  assert.match(r.err, /context: attribute `args`: attribute `count`: expected __cedar::Long/);
  r = run(['--schema', s, '--policies', p, '--request', req(alice, { ...ctx, extra: true })]);
  assert.match(r.err, /context: attribute `extra` is not declared/);
});

test('--batch answers one JSON line per case; bad usage exits 2', () => {
  const input = [
    { schema, policies: good },
    { schema: schemaJson, policies: 'permit(principal, action, resource) when { principal.nope };' },
    { schema: 'entity A = {', policies: 'permit(principal, action, resource);' },
    { schema, policies: 'permit(principal, action, resource' },
  ].map((c) => JSON.stringify(c)).join('\n') + '\n';
  const r = run(['--batch', '-'], input);
  assert.equal(r.code, 0, r.err);
  const out = r.out.trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(out[0].valid, true);
  assert.equal(out[1].valid, false);
  assert.match(out[1].errors[0].message, /no attribute `nope` on Gh::User/);
  assert.equal(out[2].stage, 'schema');
  assert.equal(out[3].stage, 'policies');
  assert.equal(run([]).code, 2);
  assert.equal(run(['--schema', 'x']).code, 2);
  assert.equal(run(['--batch', '-', '--schema', 'x']).code, 2);
});

test('a very deep expression is refused with a message, not a crash; duplicates are schema errors', () => {
  const s = file('s.cedarschema', schema);
  const deep = file('deep.cedar', `permit(principal, action, resource) when { ${Array(300000).fill('true').join(' && ')} };\n`);
  let r = run(['--schema', s, '--policies', deep]);
  assert.equal(r.code, 1);
  assert.match(r.err, /policy0: expression nested too deeply to validate/);
  r = run(['--schema', file('dup.cedarschema', 'entity B;\nentity A;\nentity B = { x: Long };\n'), '--policies', file('p.cedar', 'permit(principal, action, resource);\n')]);
  assert.equal(r.code, 1);
  assert.match(r.err, /dup\.cedarschema:3:8: entity type `B` declared twice/);
  const acts = 'entity U;\naction "a" in ["b"];\naction "b" in ["c"];\naction "c" in ["X"] appliesTo { principal: U, resource: U };\n';
  const pa = file('pa.cedar', 'permit(principal, action in Action::"a", resource);\npermit(principal, action in Action::"b", resource);\n');
  r = run(['--schema', file('cyc.cedarschema', acts.replace('"X"', '"a"')), '--policies', pa]);
  assert.equal(r.code, 1);
  assert.match(r.err, /cyc\.cedarschema:2:8: action `a` is its own ancestor/);
  r = run(['--schema', file('chain.cedarschema', acts.replace(' in ["X"]', '').replace('action "a" in ["b"]', 'action "a"')), '--policies', pa]);
  assert.equal(r.code, 0, r.err);
});

test('names resolve as Cedar resolves them: declarations over builtins, no shadowing of the empty namespace', () => {
  const p = (cond) => file('n.cedar', `permit(principal, action, resource) when { ${cond} };\n`);
  const v = (s, cond) => run(['--schema', file('n.cedarschema', s), '--policies', p(cond)]);
  const tail = 'action a appliesTo { principal: U, resource: U };';
  assert.equal(v(`type ipaddr = Long; entity U = { x: ipaddr }; ${tail}`, 'principal.x > 1').code, 0);
  assert.equal(v(`entity U = { x: ipaddr }; ${tail}`, 'principal.x.isLoopback()').code, 0);
  assert.equal(v(`entity U = { x: ipaddr }; ${tail}`, 'principal.x > 1').code, 1);
  assert.equal(v(`namespace N { type T = String; entity U = { x: T }; ${tail} }`, 'principal.x like "a*"').code, 0);
  const r = v(`type T = Long; namespace N { type T = String; entity U = { x: T }; ${tail} }`, 'true');
  assert.equal(r.code, 1);
  assert.match(r.err, /n\.cedarschema:1:35: `N::T` shadows `T` of the empty namespace/);
});
