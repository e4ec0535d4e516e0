// Hand-picked edge cases of the Cedar language (lexing, precedence,
// reserved words, escapes, extension-type parsing, overflow, scopes,
// templates), each authorized by `gatehouse cedar authorize --batch` and by
// @cedar-policy/cedar-wasm; parse success, decision, reasons and errored
// policies must agree.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';

const nodeModules = process.env.GH_NODE_MODULES || path.resolve(import.meta.dirname, '../../node_modules');
const require = createRequire(path.join(nodeModules, 'x.js'));
const cedar = require('@cedar-policy/cedar-wasm/nodejs');
const bin = process.env.GATEHOUSE_BIN || path.resolve(import.meta.dirname, '../../build/gatehouse');

const conds = [
 '!!!!!true', '!!!!true', '- - 1 == 1', '-9223372036854775808 < 0', '- 9223372036854775808 < 0', '-(9223372036854775808) < 0',
 '--9223372036854775808 == 1', '-9223372036854775808.foo', 'principal has "a b"', 'context["a"] == 1', 'context has a.b.c',
 'context has "a".b', 'context has a["b"]', 'if true then 1 else 2 == 1', '1 == if true then 1 else 2', 'true && if true then true else false',
 '[1,2,] == [1,2]', '{a:1,} == {a:1}', '{} has a', 'principal is User::Sub', 'principal is User in [Group::"a"]', 'User::"a" is User',
 'principal.contains(1)', 'context.isEmpty', 'ip("1.2.3.4").isIpv4', 'decimal("1.0")', 'decimal("1.0", "2")', 'ip()', 'foo::bar("x")',
 '__cedar::decimal("1.0") == decimal("1.0")', 'principal == __cedar::User::"a"', 'true && true || false', 'context.if', 'context.then == 1', 'context.in', '{if: 1}.if == 1',
 '{principal: 1}.principal == 1', 'principal.principal', 'context has if', 'context has true', '"\\u{1F600}" == "😀"', '"\\u{D800}" == ""', '"\\x7F" == ""', '"\\x80" == ""',
 '"a\\\nb" == "ab"', '"a" like "a\\\\"', '"a" like "\\u{2a}"', '"*" like "\\*"', '1 + 2 * 3 == 7', '-1.foo', '- context.x', '!context', 'context.x.y.z',
 'User::"a" in User::"a"', 'action in [Action::"view"]', 'Action::"view".foo', 'principal.getTag("a")', '[1] in [1]', 'datetime("2024-01-01").toTime() == duration("0ms")',
 'duration("1d") == duration("24h")', 'decimal("1.00") == decimal("1.0")', 'ip("10.0.0.1/8") == ip("10.0.0.0/8")', 'ip("::ffff:1.2.3.4").isIpv4()', 'ip("1.2.3.4/0").isInRange(ip("0.0.0.0/0"))',
 'ip("01.2.3.4").isIpv4()', 'ip("1.2.3.4%eth0").isIpv4()', 'ip("::").isLoopback()', 'ip("127.0.0.1/24").isLoopback()', 'ip("::1/128").isLoopback()', 'ip("224.0.0.0/3").isMulticast()',
 'datetime("2024-01-01T00:00:00.1Z") == datetime("2024-01-01")', 'datetime("2024-01-01T24:00:00Z") == datetime("2024-01-02")', 'datetime("2024-01-01T23:59:60Z") == datetime("2024-01-02")', 'datetime("+2024-01-01") == datetime("2024-01-01")',
 'datetime("2024-1-01") == datetime("2024-01-01")', 'datetime("2024-01-01T00:00:00+2400") == datetime("2024-01-01")', 'datetime("2024-01-01T00:00:00+1260") == datetime("2024-01-01")', 'datetime("2024-01-01T00:00Z") == datetime("2024-01-01")',
 'duration("1d1d") == duration("2d")', 'duration("") == duration("0ms")', 'duration("-") == duration("0ms")', 'duration("1.5h") == duration("90m")', 'duration("1H") == duration("1h")', 'duration("-0ms") == duration("0ms")',
 'decimal("-0.0") == decimal("0.0")', 'decimal("1.") == decimal("1.0")', 'decimal(".1") == decimal("0.1")', 'decimal("+1.0") == decimal("1.0")', 'decimal("1.0").lessThan(1)',
 'datetime("2024-01-01") < datetime("2024-01-02")', 'duration("1d") <= duration("2d")', 'datetime("2024-01-01") < duration("1d")', 'decimal("1.0") < decimal("2.0")',
 'datetime("2024-01-01").offset(duration("9223372036854775807ms")) == datetime("2024-01-01")', 'datetime("2024-01-01").durationSince(datetime("1970-01-01")).toDays() == 19723',
 'datetime("1969-12-31T23:59:59.999Z").toDate() == datetime("1969-12-31")', 'datetime("1969-12-31T23:59:59.999Z").toTime() == duration("86399999ms")', 'duration("-1ms").toSeconds() == 0',
 'principal in principal', '9223372036854775807 + 1 == 0', '-9223372036854775807 - 2 == 0', '9223372036854775807 * -1 == -9223372036854775807', '(-9223372036854775807 - 1) * -1 == 0',
 'context has a.b && context.a.b', '[principal] == [principal, principal]', '{a: 1} == {a: 1, b: 2}', '[1, "a"] == ["a", 1]', 'principal == "User::\\"a\\""',
 'principal is __cedar', 'context.x is Foo', 'principal in []', 'principal in [1]', '[].contains(1)', '[1].containsAll(1)', '"ab" like "a*b*"', '"" like ""', '"abc" like "*b"',
];

const full = [
  'permit(principal, action, resource);',
  'permit (\n principal // who\n , action , resource ) ;',
  'permit(principal == User :: "a", action, resource);',
  'permit(principal == User::"a", action == Action::"view", resource == Doc::"d");',
  'permit(principal in User::"a", action in [], resource);',
  'permit(principal in User::"a", action in [Action::"view",], resource);',
  'permit(principal is User, action, resource is Doc);',
  'permit(principal is User in Group::"g", action, resource);',
  'permit(principal is User in User::"a", action, resource is Doc in Doc::"d");',
  'permit(principal, action == Action::"view", resource) when { true } unless { false } when { 1 == 1 };',
  'forbid(principal, action, resource) unless { principal == User::"b" };',
  '@id("x") @advice("a\\nb") @flag permit(principal, action, resource);',
  '@id("x") @id("y") permit(principal, action, resource);',
  'permit(action, principal, resource);',
  'permit(principal, action, resource) when { true }',
  'permit(principal, action, resource);;',
  'permit(principal, action, resource) when { true };\nforbid(principal, action, resource) when { context.x == 1 };',
  'permit(principal, action, resource) when { principal.missing };\npermit(principal, action, resource);',
  'forbid(principal, action, resource) when { principal.missing };\npermit(principal, action, resource);',
  'permit(principal == ?principal, action, resource);',
  'permit(principal, action == Action::"view", resource in ?resource);',
  'permit(principal, action is Action, resource);',
  'permit(principal, action in Action::"view", resource) when { action in Action::"all" };',
  'permit(principal, action, resource) when { context.x == 1 && resource is Doc };',
  'permit(principal, action, resource) when { context == {x: 1, a: {b: true}} };',
  'permit(principal, action, resource) when { context.a has b && context.a.b };',
  'permit(principal, action, resource) when { User::"a".hasTag("t") };',
  'permit(principal, action, resource) when { principal.hasTag("t") && principal.getTag("t") == 5 };',
  'permit(principal, action, resource) when { principal.getTag("nope") == 5 };',
  'permit(principal, action, resource) when { Group::"g".getTag("t") == 5 };',
  'permit(principal, action, resource) when { principal in Group::"top" };',
  'permit(principal, action, resource) when { principal in [Group::"x", Group::"top"] };',
  'permit(principal in Group::"top", action, resource);',
  'permit(principal, action, resource in Group::"top");',
  'permit(principal, action, resource) when { principal.friend.name == "bob" };',
  'permit(principal, action, resource) when { principal.friend has name };',
  'permit(principal, action, resource) when { Doc::"d" has owner };',
];

const entities = [
  { uid: { type: 'User', id: 'a' }, attrs: { friend: { __entity: { type: 'User', id: 'b' } } },
    parents: [{ type: 'Group', id: 'g' }], tags: { t: 5 } },
  { uid: { type: 'User', id: 'b' }, attrs: { name: 'bob' }, parents: [] },
  { uid: { type: 'Group', id: 'g' }, attrs: {}, parents: [{ type: 'Group', id: 'top' }] },
  { uid: { type: 'Action', id: 'view' }, attrs: {}, parents: [{ type: 'Action', id: 'all' }] },
];
const request = { principal: { type: 'User', id: 'a' }, action: { type: 'Action', id: 'view' },
  resource: { type: 'Doc', id: 'd' }, context: { x: 1, a: { b: true } } };

const cases = [
  ...conds.map((c) => ({ policies: `permit(principal, action, resource) when { ${c} };`, entities, request })),
  ...full.map((p) => ({ policies: p, entities, request })),
  { policies: '', templates: { t: 'permit(principal == ?principal, action, resource in ?resource);' },
    links: [{ templateId: 't', newId: 'l1', values: { '?principal': { type: 'User', id: 'a' }, '?resource': { type: 'Group', id: 'top' } } }],
    entities: [...entities, { uid: { type: 'Doc', id: 'd' }, attrs: {}, parents: [{ type: 'Group', id: 'top' }] }], request },
  { policies: '', templates: { t: 'forbid(principal in ?principal, action, resource) when { context.x == 1 };' },
    links: [{ templateId: 't', newId: 'l1', values: { '?principal': { type: 'Group', id: 'top' } } },
      { templateId: 't', newId: 'l2', values: { '?principal': { type: 'User', id: 'zz' } } }], entities, request },
];

// More operators on a second store: tags, records, method calls on the wrong
// type, literals, annotations, comments; and template slots and links.
const U = (type, id) => ({ type, id });
const ents2 = [{ uid: U('User', 'a'), attrs: { s: 'x', r: { a: 1 }, n: 3 }, parents: [U('G', 'g')], tags: { t: 1 } },
  { uid: U('G', 'g'), attrs: {}, parents: [] }, { uid: U('Doc', 'd'), attrs: {}, parents: [U('F', 'f')] }];
const req2 = { principal: U('User', 'a'), action: U('Action', 'view'), resource: U('Doc', 'd'), context: { x: 1 } };
const conds2 = ['principal in [principal]', 'action in action', 'principal.r.getTag("a") == 1', 'principal.r.isEmpty()',
  'principal.n like "3"', 'principal.s.contains("x")', '-(1) == -1', '- -1 == 1', '!(true)', '(principal).s == "x"',
  'principal["s"]["x"]', 'principal has s.x', 'principal.r has a.b', 'context.x.y', '{a: 1}["a"] == 1', '[1,2].contains(1,)',
  'true || 1', 'false && 1', 'true && 1', 'if 1 then true else false', 'if true then 1 else 2',
  'principal.hasTag("t") && principal.getTag("t") == 1', 'G::"g".hasTag("t")', 'Nope::"x".hasTag("t")', 'Nope::"x".getTag("t")',
  'principal is G', 'principal is User in G::"g"', 'principal in G::"g" && G::"g" in G::"g"', 'User::"a" != User::"b"', '"a" < "b"',
  'decimal("1.0") == decimal("1.0000")', 'ip("1.2.3.4") == ip("1.2.3.4/32")', '"\\\'" == "\'"', '"\\u{0}" == "\\0"', '1--1 == 2',
  'principal.n * principal.n == 9', '[] == []', '{} == {}', '[[1]].contains([1])', '[{a:1}].contains({a:1})', '"" like "*"'];
const full2 = ['@if("x") permit(principal, action, resource);', '@a("") @b("") permit(principal, action, resource);',
  '@__cedar("x") permit(principal, action, resource);', 'permit(principal, action in [Action::"view"], resource in [Doc::"d"]);',
  'permit(principal, action, resource) when { true }; // trailing comment', '/* block */ permit(principal, action, resource);',
  'PERMIT(principal, action, resource);', 'permit(principal,action,resource)when{true};'];
const T = (t, links) => ({ policies: '', templates: { t }, links, entities: ents2, request: req2 });
const L = (values) => [{ templateId: 't', newId: 'l', values }];
cases.push(
  ...conds2.map((c) => ({ policies: `permit(principal, action, resource) when { ${c} };`, entities: ents2, request: req2 })),
  ...full2.map((p) => ({ policies: p, entities: ents2, request: req2 })),
  T('permit(principal is User in ?principal, action, resource);', L({ '?principal': U('G', 'g') })),
  T('permit(principal, action, resource is Doc in ?resource);', L({ '?resource': U('F', 'f') })),
  T('permit(principal == ?principal, action, resource);', L({ '?principal': U('User', 'a'), '?resource': U('Doc', 'd') })),
  T('permit(principal == ?principal, action, resource);', L({})),
  T('permit(principal == ?resource, action, resource);', L({ '?resource': U('User', 'a') })),
  T('permit(principal == ?foo, action, resource);', L({})),
  T('permit(principal in ?principal, action, resource) when { principal in ?principal };', L({ '?principal': U('G', 'g') })),
  T('permit(principal in ?principal, action, resource);', [{ templateId: 't', newId: 't', values: { '?principal': U('G', 'g') } }]),
  T('permit(principal in ?principal, action, resource);', [{ templateId: 'nope', newId: 'l', values: { '?principal': U('G', 'g') } }]),
  T('permit(principal in ?principal, action, resource);', L({ '?principal': U('if', 'g') })),
);

test(`${cases.length} edge cases agree with cedar-wasm`, () => {
  const r = spawnSync(bin, ['cedar', 'authorize', '--batch', '-'], { input: cases.map((c) => JSON.stringify(c)).join('\n') + '\n' });
  assert.equal(r.status, 0, r.stderr.toString());
  const mine = r.stdout.toString().trim().split('\n').map((l) => JSON.parse(l));
  const diffs = [];
  cases.forEach((c, i) => {
    let a;
    try {
      a = cedar.isAuthorized({ ...request, ...c.request, entities: c.entities,
        policies: { staticPolicies: c.policies, templates: c.templates, templateLinks: c.links } });
    } catch (e) {
      a = { type: 'failure', errors: [{ message: String(e.message) }] };
    }
    const ref = a.type !== 'success' ? { error: a.errors[0].message }
      : { decision: a.response.decision, reasons: [...a.response.diagnostics.reason].sort(),
        errors: a.response.diagnostics.errors.map((e) => e.policyId).sort() };
    const m = mine[i].error ? { error: mine[i].error }
      : { decision: mine[i].decision, reasons: [...mine[i].reasons].sort(), errors: mine[i].errors.map((e) => e.policy).sort() };
    const same = ref.error || m.error ? !!ref.error === !!m.error : JSON.stringify(ref) === JSON.stringify(m);
    if (!same) diffs.push(`${c.policies || JSON.stringify(c.templates)}\n  cedar-wasm: ${JSON.stringify(ref)}\n  gatehouse:  ${JSON.stringify(m)}`);
  });
  assert.equal(diffs.length, 0, diffs.join('\n'));
});
