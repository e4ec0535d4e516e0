// Seeded random schemas and policies for the validation differential test
// and the benchmark. A case is structured ({ns, decls, policies}) so the
// shrinker can drop declarations, policies and conditions; schemaText /
// schemaJson / policyText render it. Expressions are generated with the
// schema's types in mind, then perturbed (typos, wrong operand types,
// missing `has` guards, unknown entities) so both verdicts are common.
import { rng } from './gen.mjs';

const ETYPES = ['User', 'Group', 'Doc', 'Folder', 'Tool'];
const ANAMES = ['n', 's', 'b', 'owner', 'tags', 'ip', 'amount', 'when', 'meta', 'level'];
const ACTIONS = ['view', 'edit', 'delete', 'tools/call'];

function shuffle(r, a) {
  const b = [...a];
  for (let i = b.length - 1; i > 0; i--) { const j = r.int(i + 1); [b[i], b[j]] = [b[j], b[i]]; }
  return b;
}

function genType(r, ets, depth, common) {
  const k = r.int(depth > 1 ? 6 : 9);
  if (k === 0) return { k: 'Long' };
  if (k === 1) return { k: 'String' };
  if (k === 2) return { k: 'Bool' };
  if (k === 3) return { k: 'Ent', name: r.pick(ets) };
  if (k === 4) return { k: 'Ext', name: r.pick(['ipaddr', 'decimal', 'datetime', 'duration']) };
  if (k === 5) return common && r.chance(0.5) ? { k: 'Common', name: common } : { k: 'String' };
  if (k === 6) return { k: 'Set', e: genType(r, ets, depth + 1, common) };
  return { k: 'Rec', attrs: genAttrs(r, ets, depth + 1, 1 + r.int(2), common) };
}

function genAttrs(r, ets, depth, n, common) {
  const attrs = {};
  for (const a of shuffle(r, ANAMES).slice(0, n)) attrs[a] = { t: genType(r, ets, depth, common), req: r.chance(0.7) };
  return attrs;
}

export function genSchemaCase(seed) {
  const r = rng(seed);
  const ns = r.chance(0.25) ? r.pick(['Acme', 'App::Core']) : '';
  const ets = shuffle(r, ETYPES).slice(0, 2 + r.int(3));
  const decls = [];
  const common = r.chance(0.3) ? 'Meta' : null;
  if (common) decls.push({ kind: 'type', name: common, t: { k: 'Rec', attrs: genAttrs(r, ets, 2, 1 + r.int(2), null) } });
  for (const name of ets) {
    const parents = ets.filter((p) => p !== name && r.chance(0.3));
    decls.push({ kind: 'entity', name, parents, attrs: genAttrs(r, ets, 0, r.int(4), common),
      tags: r.chance(0.2) ? genType(r, ets, 2, null) : null });
  }
  if (r.chance(0.3)) decls.push({ kind: 'entity', name: 'Color', enumIds: ['red', 'blue'], parents: [] });
  const acts = shuffle(r, ACTIONS).slice(0, 1 + r.int(3));
  const group = r.chance(0.3) ? 'read' : null;
  if (group) decls.push({ kind: 'action', name: group, parents: [], applies: null });
  for (const a of acts) {
    const pick = () => ets.filter(() => r.chance(0.5)).concat(r.chance(0.9) ? [r.pick(ets)] : []);
    decls.push({ kind: 'action', name: a, parents: group && r.chance(0.6) ? [group] : [],
      applies: { p: [...new Set(pick())], r: [...new Set(pick())],
        ctx: { k: 'Rec', attrs: genAttrs(r, ets, 1, r.int(4), common) } } });
  }
  const c = { ns, decls, json: r.chance(0.3), policies: [] };
  const n = 1 + r.int(3);
  for (let i = 0; i < n; i++) c.policies.push(genPolicy(r, c));
  return c;
}

// ---- rendering ---------------------------------------------------------------

const q = (s) => JSON.stringify(s);
function typeText(t) {
  switch (t.k) {
    case 'Set': return `Set<${typeText(t.e)}>`;
    case 'Rec': return `{ ${Object.entries(t.attrs).map(([a, x]) => `${a}${x.req ? '' : '?'}: ${typeText(x.t)}`).join(', ')} }`;
    case 'Ent': case 'Common': case 'Ext': return t.name;
    default: return t.k;
  }
}

function typeJson(t) {
  switch (t.k) {
    case 'Set': return { type: 'Set', element: typeJson(t.e) };
    case 'Rec': return { type: 'Record', attributes: Object.fromEntries(Object.entries(t.attrs).map(([a, x]) => [a, { ...typeJson(x.t), required: x.req }])) };
    case 'Ent': return { type: 'Entity', name: t.name };
    case 'Ext': return { type: 'Extension', name: t.name };
    case 'Common': return { type: t.name };
    case 'Bool': return { type: 'Boolean' };
    default: return { type: t.k };
  }
}

function declText(d) {
  if (d.kind === 'type') return `type ${d.name} = ${typeText(d.t)};`;
  if (d.kind === 'entity') {
    const inP = d.parents.length ? ` in [${d.parents.join(', ')}]` : '';
    if (d.enumIds) return `entity ${d.name}${inP} enum [${d.enumIds.map(q).join(', ')}];`;
    return `entity ${d.name}${inP} ${typeText({ k: 'Rec', attrs: d.attrs })}${d.tags ? ` tags ${typeText(d.tags)}` : ''};`;
  }
  const inP = d.parents.length ? ` in [${d.parents.map(q).join(', ')}]` : '';
  const ap = d.applies ? ` appliesTo { principal: [${d.applies.p.join(', ')}], resource: [${d.applies.r.join(', ')}], context: ${typeText(d.applies.ctx)} }` : '';
  return `action ${q(d.name)}${inP}${ap};`;
}

export function schemaText(c) {
  const body = c.decls.map(declText);
  return c.ns ? `namespace ${c.ns} {\n${body.map((l) => `  ${l}`).join('\n')}\n}\n` : `${body.join('\n')}\n`;
}

export function schemaJson(c) {
  const nsd = { entityTypes: {}, actions: {} };
  for (const d of c.decls) {
    if (d.kind === 'type') (nsd.commonTypes ||= {})[d.name] = typeJson(d.t);
    else if (d.kind === 'entity') {
      const e = { memberOfTypes: d.parents };
      if (d.enumIds) e.enum = d.enumIds;
      else e.shape = typeJson({ k: 'Rec', attrs: d.attrs });
      if (d.tags) e.tags = typeJson(d.tags);
      nsd.entityTypes[d.name] = e;
    } else {
      const a = { memberOf: d.parents.map((id) => ({ id })) };
      if (d.applies) a.appliesTo = { principalTypes: d.applies.p, resourceTypes: d.applies.r, context: typeJson(d.applies.ctx) };
      nsd.actions[d.name] = a;
    }
  }
  return { [c.ns]: nsd };
}

export const policyText = (c) => c.policies.map((p) => `${p.head}\n${p.conds.map((x) => `  ${x}`).join('\n')};`).join('\n');

// ---- policies ------------------------------------------------------------------

function qual(c, n) { return c.ns ? `${c.ns}::${n}` : n; }

function entityLit(r, c) {
  const ents = c.decls.filter((d) => d.kind === 'entity');
  if (r.chance(0.05) || !ents.length) return `${qual(c, 'Nope')}::"x"`;
  const e = r.pick(ents);
  return `${qual(c, e.name)}::${q(e.enumIds ? r.pick([...e.enumIds, 'green']) : r.pick(['a', 'b']))}`;
}

function actionLit(r, c) {
  const acts = c.decls.filter((d) => d.kind === 'action').map((d) => d.name);
  return `${qual(c, 'Action')}::${q(r.chance(0.05) ? 'nope' : r.pick(acts))}`;
}

function scope(r, c, v) {
  const ents = c.decls.filter((d) => d.kind === 'entity').map((d) => d.name);
  switch (r.int(v === 'action' ? 3 : 5)) {
    case 0: return v;
    case 1: return v === 'action' ? `action == ${actionLit(r, c)}` : `${v} == ${entityLit(r, c)}`;
    case 2: return v === 'action' ? `action in [${actionLit(r, c)}, ${actionLit(r, c)}]` : `${v} in ${entityLit(r, c)}`;
    case 3: return `${v} is ${qual(c, r.pick(ents))}`;
    default: return `${v} is ${qual(c, r.pick(ents))} in ${entityLit(r, c)}`;
  }
}

function genPolicy(r, c) {
  const head = `${r.pick(['permit', 'forbid'])}(${scope(r, c, 'principal')}, ${scope(r, c, 'action')}, ${scope(r, c, 'resource')})`;
  const conds = [];
  for (let i = r.int(3); i > 0; i--) conds.push(`${r.chance(0.8) ? 'when' : 'unless'} { ${expr(r, c, 'Bool', 0)} }`);
  return { head, conds };
}

// Paths to attributes of some declared type: principal.x, resource.x,
// context.x, and one level into records.
function paths(c) {
  const out = [];
  const walk = (base, attrs, d) => {
    for (const [a, x] of Object.entries(attrs || {})) {
      out.push({ text: `${base}.${a}`, base, a, t: x.t, req: x.req });
      if (x.t.k === 'Rec' && d < 1) walk(`${base}.${a}`, x.t.attrs, d + 1);
    }
  };
  for (const d of c.decls) {
    if (d.kind === 'entity' && !d.enumIds) { walk('principal', d.attrs, 0); walk('resource', d.attrs, 0); }
    if (d.kind === 'action' && d.applies) walk('context', d.applies.ctx.attrs, 0);
  }
  return out;
}

function pathOf(r, c, kind) {
  const ps = paths(c).filter((p) => p.t.k === kind);
  if (!ps.length) return null;
  const p = r.pick(ps);
  if (!p.req && r.chance(0.7)) return { guard: `${p.base} has ${p.a}`, text: p.text };
  return { text: p.text };
}

const LITS = {
  Long: (r) => String(r.int(100) - 10),
  String: (r) => q(r.pick(['', 'a', 'abc'])),
};

function expr(r, c, want, d) {
  const deep = d > 2;
  if (r.chance(0.05)) return r.pick(['1 + "a"', 'principal.nosuch', '[]', 'if true then 1 else "a"', '{a: 1} == {a: "x"}',
    'context.destructve', 'resource.owner.nope', '"a" < "b"', '[1, "a"]', 'ip(context.s)', 'decimal("x.y")']);
  if (want === 'Long') {
    const p = !deep && r.chance(0.4) && pathOf(r, c, 'Long');
    if (p) return p.guard ? `(if ${p.guard} then ${p.text} else 0)` : p.text;
    if (!deep && r.chance(0.3)) return `${expr(r, c, 'Long', d + 1)} ${r.pick(['+', '-', '*'])} ${expr(r, c, 'Long', d + 1)}`;
    if (!deep && r.chance(0.1)) return `duration(${q(r.pick(['1h', '2d3m', 'x']))}).${r.pick(['toHours', 'toMinutes'])}()`;
    return LITS.Long(r);
  }
  if (want === 'String') {
    const p = !deep && r.chance(0.5) && pathOf(r, c, 'String');
    if (p) return p.guard ? `(if ${p.guard} then ${p.text} else "")` : p.text;
    return LITS.String(r);
  }
  if (deep) return r.pick(['true', 'false', `${LITS.Long(r)} < ${LITS.Long(r)}`]);
  switch (r.int(18)) {
    case 0: return `${expr(r, c, 'Bool', d + 1)} && ${expr(r, c, 'Bool', d + 1)}`;
    case 1: return `(${expr(r, c, 'Bool', d + 1)} || ${expr(r, c, 'Bool', d + 1)})`;
    case 2: return `!(${expr(r, c, 'Bool', d + 1)})`;
    case 3: return `if ${expr(r, c, 'Bool', d + 1)} then ${expr(r, c, 'Bool', d + 1)} else ${expr(r, c, 'Bool', d + 1)}`;
    case 4: return `${expr(r, c, 'Long', d + 1)} ${r.pick(['<', '<=', '>', '>=', '==', '!='])} ${expr(r, c, r.chance(0.9) ? 'Long' : 'String', d + 1)}`;
    case 5: return `${expr(r, c, 'String', d + 1)} ${r.chance(0.5) ? 'like "a*"' : `== ${expr(r, c, 'String', d + 1)}`}`;
    case 6: {
      const p = pathOf(r, c, 'Bool');
      return p ? (p.guard ? `(${p.guard} && ${p.text})` : p.text) : 'true';
    }
    case 7: return `${r.pick(['principal', 'resource'])} in ${r.chance(0.5) ? entityLit(r, c) : `[${entityLit(r, c)}, ${entityLit(r, c)}]`}`;
    case 8: return `${r.pick(['principal', 'resource', 'context'])} has ${r.pick([...ANAMES, 'destructve'])}`;
    case 9: return `${r.pick(['principal', 'resource'])} is ${qual(c, r.pick(ETYPES))}`;
    case 10: return `${r.pick(['principal', 'resource'])} == ${entityLit(r, c)}`;
    case 11: return `action ${r.chance(0.5) ? '==' : 'in'} ${actionLit(r, c)}`;
    case 12: {
      const p = pathOf(r, c, 'Set');
      return p ? `${p.guard ? `${p.guard} && ` : ''}${p.text}.${r.pick(['contains(1)', 'contains("a")', 'isEmpty()', 'containsAny([1])', 'containsAll(["a"])'])}`
        : `[1, 2].contains(${expr(r, c, 'Long', d + 1)})`;
    }
    case 13: {
      const p = pathOf(r, c, 'Ext');
      const m = { ipaddr: 'isLoopback()', decimal: 'lessThan(decimal("1.5"))', datetime: 'toDate() == datetime("2024-01-01")', duration: 'toDays() > 1' };
      if (!p) return `ip(${q(r.pick(['127.0.0.1', '10.0.0.0/8', 'nope']))}).isInRange(ip("10.0.0.0/8"))`;
      const t = paths(c).find((x) => x.text === p.text).t.name;
      return `${p.guard ? `${p.guard} && ` : ''}${p.text}.${r.chance(0.85) ? m[t] : r.pick(Object.values(m))}`;
    }
    case 14: {
      const v = r.pick(['principal', 'resource']);
      return r.chance(0.6) ? `${v}.hasTag("k") && ${v}.getTag("k") == ${expr(r, c, r.pick(['String', 'Long']), d + 1)}` : `${v}.getTag("k") == "v"`;
    }
    case 15: {
      const p = pathOf(r, c, 'Ent');
      return p ? `${p.guard ? `${p.guard} && ` : ''}${p.text} ${r.pick(['==', 'in'])} ${r.pick(['principal', 'resource', entityLit(r, c)])}` : 'false';
    }
    case 16: return r.pick(['action has n', 'action is Action', `action in ${actionLit(r, c)}`, '[principal, resource].contains(principal)',
      '{a: 1} == {a: 1, b: 2}', '(if context has n then {a: 1} else {a: 2}).a > 0', '(if true then principal else resource) == principal',
      `${actionLit(r, c)} in [${actionLit(r, c)}]`, 'principal in [resource]', '[1, 2] == [3]', `${entityLit(r, c)}.n > 1`]);
    default: return r.pick(['true', 'false', 'context == {}', `datetime("2024-01-01") < datetime(${q(r.pick(['2025-01-01', 'bad']))})`]);
  }
}

// ---- entities and a request for a schema -----------------------------------------
// Values are written in Cedar's explicit JSON forms (__entity, __extn), so
// they read the same with and without a schema; a few are perturbed
// (missing or extra attribute, wrong type, wrong parent, unknown type or
// enum id, tags where none are declared, request of the wrong types).

const EXT = { ipaddr: ['ip', '10.0.0.1'], decimal: ['decimal', '1.25'], datetime: ['datetime', '2024-01-01'],
  duration: ['duration', '1h30m'] };

function value(r, c, t, bad) {
  if (bad && r.chance(0.15)) return r.pick([1, 'x', true, [], {}]);
  const ents = c.decls.filter((d) => d.kind === 'entity');
  switch (t.k) {
    case 'Long': return r.int(50);
    case 'String': return r.pick(['', 'a', 'acme/x']);
    case 'Bool': return r.chance(0.5);
    case 'Set': return Array.from({ length: r.int(3) }, () => value(r, c, t.e, bad));
    case 'Rec': return record(r, c, t.attrs, bad);
    case 'Common': return value(r, c, c.decls.find((d) => d.kind === 'type').t, bad);
    case 'Ext': return { __extn: { fn: EXT[t.name][0], arg: EXT[t.name][1] } };
    default: {
      const d = ents.find((e) => e.name === t.name);
      const name = bad && r.chance(0.1) ? r.pick(ents).name : t.name;
      return { __entity: { type: qual(c, name), id: d && d.enumIds ? r.pick(d.enumIds) : 'a' } };
    }
  }
}

function record(r, c, attrs, bad) {
  const out = {};
  for (const [a, x] of Object.entries(attrs || {})) {
    if (!x.req && r.chance(0.5)) continue;
    if (bad && x.req && r.chance(0.05)) continue;
    out[a] = value(r, c, x.t, bad);
  }
  if (bad && r.chance(0.05)) out.zz = 1;
  return out;
}

export function genData(seed, c) {
  const r = rng(seed ^ 0x5eed);
  const bad = r.chance(0.5);
  const ents = c.decls.filter((d) => d.kind === 'entity');
  const entities = [];
  for (const d of ents) {
    for (let k = r.int(2); k >= 0; k--) {
      const id = d.enumIds ? (bad && r.chance(0.1) ? 'green' : d.enumIds[k % d.enumIds.length]) : `${'abc'[k]}`;
      if (entities.some((e) => e.uid.type === qual(c, d.name) && e.uid.id === id)) continue;
      const parents = (d.parents || []).filter(() => r.chance(0.5)).map((p) => ({ type: qual(c, p), id: 'a' }));
      if (bad && r.chance(0.1)) parents.push({ type: qual(c, r.pick(ents).name), id: 'b' });
      const e = { uid: { type: qual(c, bad && r.chance(0.03) ? 'Nope' : d.name), id }, attrs: d.enumIds ? {} : record(r, c, d.attrs, bad), parents };
      if (d.tags) e.tags = { k: value(r, c, d.tags, bad) };
      else if (bad && r.chance(0.05)) e.tags = { k: 'v' };
      entities.push(e);
    }
  }
  const acts = c.decls.filter((d) => d.kind === 'action' && d.applies && d.applies.p.length && d.applies.r.length);
  if (!acts.length) return { entities };
  const a = r.pick(acts);
  const ty = (list) => (bad && r.chance(0.1) ? r.pick(ents).name : r.pick(list));
  const uid = (name) => {
    const d = ents.find((e) => e.name === name);
    return { type: qual(c, name), id: d && d.enumIds ? d.enumIds[0] : 'a' };
  };
  const request = { principal: uid(ty(a.applies.p)), action: { type: qual(c, 'Action'), id: a.name },
    resource: uid(ty(a.applies.r)), context: record(r, c, a.applies.ctx.attrs, bad) };
  return { entities, request };
}
