// `gatehouse cedar validate`: policies against a schema (human-readable and
// JSON), FILE:line:col errors with what was expected, warnings, and the
// optional checks of entities and a request against the schema.
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
    `${p}:6:21: policy2: expected Long operands, found __cedar::Long and __cedar::String`,
    `${p}:7:1: policy3: unknown entity Gh::Action::"tools/cal"`,
  ]);
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
