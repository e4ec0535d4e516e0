// Cedar's JSON formats for entities and context, held against
// @cedar-policy/cedar-wasm: the __entity and __extn escapes (and what the
// reference does with objects that only look like them), the refused
// __expr escape, required entity fields, entity type names, null, floats.
// Each case runs through `gatehouse cedar authorize --batch`; whether it is
// refused, and otherwise decision, reasons and errored policies must agree.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';

const nodeModules = process.env.GH_NODE_MODULES || path.resolve(import.meta.dirname, '../../node_modules');
const require = createRequire(path.join(nodeModules, 'x.js'));
const cedar = require('@cedar-policy/cedar-wasm/nodejs');
const bin = process.env.GATEHOUSE_BIN || path.resolve(import.meta.dirname, '../../build/gatehouse');

const U = (type, id) => ({ type, id });
const request = { principal: U('User', 'a'), action: U('Action', 'view'), resource: U('Doc', 'd'), context: {} };
// Which policies are satisfied or error tells how `principal.x` was read.
const policies = [
  'permit(principal, action, resource) when { principal has x };',
  'permit(principal, action, resource) when { principal.x is User };',
  'permit(principal, action, resource) when { principal.x has __entity };',
  'permit(principal, action, resource) when { principal.x has __extn };',
  'permit(principal, action, resource) when { principal.x has __expr };',
  'permit(principal, action, resource) when { principal.x has y };',
  'permit(principal, action, resource) when { principal.x == decimal("1.0") };',
  'permit(principal, action, resource) when { principal.x == datetime("2024-01-02") };',
  'permit(principal, action, resource) when { principal.__entity.type == "User" };',
  'permit(principal, action, resource) when { principal.getTag("__entity").type == "User" };',
  'permit(principal, action, resource) when { context has x };',
].join('\n');

const dt = (s) => ({ __extn: { fn: 'datetime', arg: s } });
const withX = (x) => [{ uid: U('User', 'a'), attrs: { x }, parents: [] }];
const entityCases = {
  'uid as __entity': [{ uid: { __entity: U('User', 'a') }, attrs: { x: 1 }, parents: [] }],
  'uid __entity with an extra key': [{ uid: { __entity: U('User', 'a'), x: 1 }, attrs: { x: 1 }, parents: [] }],
  'uid with an extra key': [{ uid: { type: 'User', id: 'a', z: 1 }, attrs: { x: 1 }, parents: [] }],
  'parents as __entity': [{ uid: U('User', 'a'), attrs: { x: 1 }, parents: [{ __entity: U('G', 'g') }] }],
  'extra entity key': [{ uid: U('User', 'a'), attrs: { x: 1 }, parents: [], foo: 1 }],
  'entity escape': withX({ __entity: U('User', 'b') }),
  'entity escape, extra inner key': withX({ __entity: { type: 'User', id: 'b', z: 1 } }),
  'entity escape beside another key': withX({ __entity: U('User', 'b'), y: 1 }),
  'entity escape, not an object': withX({ __entity: 5 }),
  'entity escape, no id': withX({ __entity: { type: 'User' } }),
  'entity escape, numeric type': withX({ __entity: { type: 1, id: 'a' } }),
  'entity escape, empty': withX({ __entity: {} }),
  'entity escape, bad type name': withX({ __entity: U('1x', 'b') }),
  'extn escape': withX({ __extn: { fn: 'decimal', arg: '1.0' } }),
  'extn escape, ip': withX({ __extn: { fn: 'ip', arg: '10.0.0.1/8' } }),
  'extn escape, ipaddr is no function': withX({ __extn: { fn: 'ipaddr', arg: '1.2.3.4' } }),
  'extn escape, args': withX({ __extn: { fn: 'offset', args: [dt('2024-01-01'), { __extn: { fn: 'duration', arg: '1d' } }] } }),
  'extn escape, one of args': withX({ __extn: { fn: 'decimal', args: ['1.0'] } }),
  'extn escape, no args': withX({ __extn: { fn: 'decimal', args: [] } }),
  'extn escape, arg and args': withX({ __extn: { fn: 'decimal', arg: '1.0', args: ['2.0'] } }),
  'extn escape, method': withX({ __extn: { fn: 'lessThan', args: [{ __extn: { fn: 'decimal', arg: '1.0' } }, { __extn: { fn: 'decimal', arg: '2.0' } }] } }),
  'extn escape, extra inner key': withX({ __extn: { fn: 'decimal', arg: '1.0', z: 1 } }),
  'extn escape beside another key': withX({ __extn: { fn: 'decimal', arg: '1.0' }, y: 1 }),
  'extn escape, not an object': withX({ __extn: 5 }),
  'extn escape, no arg': withX({ __extn: { fn: 'decimal' } }),
  'extn escape, no fn': withX({ __extn: { arg: '1.0' } }),
  'extn escape, numeric arg': withX({ __extn: { fn: 'decimal', arg: 1 } }),
  'extn escape, unknown fn': withX({ __extn: { fn: 'nope', arg: '1' } }),
  'extn escape, bad decimal': withX({ __extn: { fn: 'decimal', arg: '1.23456' } }),
  'expr escape is refused': withX({ __expr: '1' }),
  'expr escape, not a string': withX({ __expr: 5 }),
  'expr escape beside another key': withX({ __expr: '1', y: 1 }),
  'attrs keys are never escapes': [{ uid: U('User', 'a'), attrs: { __entity: U('User', 'b') }, parents: [] }],
  'attrs key __extn': [{ uid: U('User', 'a'), attrs: { __extn: { fn: 'decimal', arg: '1.0' } }, parents: [] }],
  'tags keys are never escapes': [{ uid: U('User', 'a'), attrs: {}, tags: { __entity: U('User', 'b') }, parents: [] }],
  'no attrs and no parents': [{ uid: U('User', 'a') }],
  'no parents': [{ uid: U('User', 'a'), attrs: { x: 1 } }],
  'no attrs': [{ uid: U('User', 'a'), parents: [] }],
  'attrs null': [{ uid: U('User', 'a'), attrs: null, parents: [] }],
  'parents null': [{ uid: U('User', 'a'), attrs: {}, parents: null }],
  'tags null': [{ uid: U('User', 'a'), attrs: { x: 1 }, parents: [], tags: null }],
  'tags array': [{ uid: U('User', 'a'), attrs: { x: 1 }, parents: [], tags: [] }],
  'uid as a string': [{ uid: 'User::"a"', attrs: { x: 1 }, parents: [] }],
  'parent as a string': [{ uid: U('User', 'a'), attrs: { x: 1 }, parents: ['G::"g"'] }],
  'parent with a bad type name': [{ uid: U('User', 'a'), attrs: { x: 1 }, parents: [U('1', 'x')] }],
  'duplicate entity': [{ uid: U('User', 'a'), attrs: { x: 1 }, parents: [] }, { uid: U('User', 'a'), attrs: {}, parents: [] }],
  'action with a non-action parent': [{ uid: U('Action', 'a'), attrs: {}, parents: [U('User', 'x')] }],
  'namespaced action, action parent': [{ uid: U('NS::Action', 'a'), attrs: {}, parents: [U('Action', 'x')] }],
  'float': withX(1.5),
  'null': withX(null),
  'null in a set': withX([null]),
  'duplicates in a set': withX([1, 1]),
};
for (const t of ['principal', 'context', 'Action', 'permit', 'when', '_', '__cedarX', 'a_b::C1', 'A::B::C',
  'not a name', 'A::', 'A :: B', ' A', 'A ', 'é', '1x', '__cedar', '__cedar::A', 'A::__cedar', 'if', 'then',
  'like', 'has', 'in', 'is', 'true', 'A::in', '']) {
  entityCases[`type name ${JSON.stringify(t)}`] = [{ uid: U(t, 'a'), attrs: {}, parents: [] }];
}

const contextCases = {
  'context with an entity': { x: { __entity: U('User', 'b') } },
  'context array': [],
  'context entity escape': { __entity: U('User', 'a') },
  'context extn escape': { __extn: { fn: 'decimal', arg: '1.0' } },
  'context expr escape': { x: { __expr: '1' } },
  'context null': null,
  'context string': 'x',
  'context float': { x: 0.5 },
};
const requestCases = {
  'principal as __entity': { ...request, principal: { __entity: U('User', 'a') } },
  'principal with a bad type name': { ...request, principal: U('not a', 'a') },
  'resource with a reserved type name': { ...request, resource: U('if', 'a') },
};

const cases = [
  ...Object.entries(entityCases).map(([name, entities]) => ({ name, c: { policies, entities, request } })),
  ...Object.entries(contextCases).map(([name, context]) => ({ name, c: { policies, entities: withX(1), request: { ...request, context } } })),
  ...Object.entries(requestCases).map(([name, r]) => ({ name, c: { policies, entities: withX(1), request: r } })),
];

function reference(c) {
  let a;
  try {
    a = cedar.isAuthorized({ ...c.request, entities: c.entities, policies: { staticPolicies: c.policies } });
  } catch (e) {
    return { refused: String(e.message) };
  }
  if (a.type !== 'success') return { refused: a.errors.map((e) => e.message).join('; ') };
  return { decision: a.response.decision, reasons: [...a.response.diagnostics.reason].sort(),
    errors: a.response.diagnostics.errors.map((e) => e.policyId).sort() };
}

test(`entities and context JSON: ${cases.length} forms read as cedar-wasm reads them`, () => {
  const r = spawnSync(bin, ['cedar', 'authorize', '--batch', '-'], { input: cases.map((x) => JSON.stringify(x.c)).join('\n') + '\n' });
  assert.equal(r.status, 0, r.stderr.toString());
  const mine = r.stdout.toString().trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(mine.length, cases.length);
  const diffs = [];
  let refused = 0;
  cases.forEach(({ name, c }, i) => {
    const ref = reference(c);
    const m = mine[i].error ? { refused: mine[i].error }
      : { decision: mine[i].decision, reasons: [...mine[i].reasons].sort(), errors: mine[i].errors.map((e) => e.policy).sort() };
    if (ref.refused) refused++;
    const same = ref.refused || m.refused ? !!ref.refused === !!m.refused : JSON.stringify(ref) === JSON.stringify(m);
    if (!same) diffs.push(`${name}\n  cedar-wasm: ${JSON.stringify(ref)}\n  gatehouse:  ${JSON.stringify(m)}`);
  });
  console.log(`${cases.length} JSON forms, ${refused} refused by both, ${diffs.length} disagreements`);
  // Both kinds must be present, or agreement proves little.
  assert.ok(refused > 10 && cases.length - refused > 10);
  assert.equal(diffs.length, 0, diffs.join('\n'));
});
