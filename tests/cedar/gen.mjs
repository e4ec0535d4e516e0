// Seeded random Cedar cases (policies, entities, request) for the
// differential test and the benchmark. Deterministic for a given seed.
// Integers in JSON stay within ±2^53 (what JavaScript carries exactly);
// larger ones appear only in policy text.

export function rng(seed) {
  let s = seed >>> 0;
  const next = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const r = {
    next,
    int: (n) => Math.floor(next() * n),
    pick: (arr) => arr[Math.floor(next() * arr.length)],
    chance: (p) => next() < p,
  };
  return r;
}

const TYPES = {
  User: ['alice', 'bob', 'carol'],
  Group: ['admins', 'staff'],
  Doc: ['d1', 'd2', 'd3'],
  'App::Res': ['x', 'y'],
  Action: ['view', 'edit', 'all'],
};
const PRINCIPAL_TYPES = ['User', 'Group'];
const RESOURCE_TYPES = ['Doc', 'App::Res'];
const ATTRS = ['n', 's', 'b', 'ss', 'ns', 'e', 'r', 'd', 'ip', 'dt', 'du'];
const STRINGS = ['', 'a', 'abc', 'a*c', 'héllo', 'x\u0000y', 'tab\there', 'ab', 'ba', '😀'];
const DECIMALS = ['1.0', '-2.5', '0.0001', '922337203685477.5807', '-922337203685477.5808', '3.14',
  '1.23456', 'abc', '0.1'];
const IPS = ['127.0.0.1', '10.0.0.0/8', '10.1.2.3', '::1', 'ffee::/64', '192.168.1.300', '224.0.0.1',
  '::ffff:1.2.3.4', '0.0.0.0/0', 'ff02::1', '127.0.0.1/33', '10.0.0.1/24'];
const DATETIMES = ['2024-01-01', '2024-01-01T12:00:00Z', '2024-01-01T12:00:00.123Z',
  '2024-01-01T12:00:00+0130', '2024-13-01', '1969-12-31T23:59:59-2359', '2024-02-29', '2023-02-29',
  '1970-01-01T00:00:00Z'];
const DURATIONS = ['1d', '2h30m', '-1d12h', '1ms', '1d2h3m4s5ms', '0s', '1h1d', '9223372036854775807ms',
  '-9223372036854775808ms', '36h', '2562047788015d'];
const BIGINTS = ['9223372036854775807', '4611686018427387904', '9007199254740993', '3037000500',
  '9223372036854775806'];
const PATTERNS = ['*', 'a*', '*c', 'a*c', '\\*', '', '**', 'a\\*c', 'h*o', '*b*'];

function jsonInt(r) {
  if (r.chance(0.8)) return r.int(21) - 10;
  const big = Math.floor(r.next() * 2 ** 53);
  return r.chance(0.5) ? big : -big;
}

function ext(fn, arg) { return { __extn: { fn, arg } }; }

function uid(type, id) { return { type, id }; }
function randUid(r, types) {
  const t = r.pick(types || Object.keys(TYPES));
  return uid(t, r.pick(TYPES[t]));
}

function jsonValue(r, attr, depth = 0) {
  switch (attr) {
    case 'n': return jsonInt(r);
    case 's': return r.pick(STRINGS);
    case 'b': return r.chance(0.5);
    case 'ss': return Array.from({ length: r.int(4) }, () => r.pick(STRINGS));
    case 'ns': return Array.from({ length: r.int(4) }, () => jsonInt(r));
    case 'e': return { __entity: randUid(r) };
    case 'r': {
      const o = { x: jsonInt(r), y: r.pick(STRINGS) };
      if (depth < 1 && r.chance(0.5)) o.z = { w: r.chance(0.5), r: jsonValue(r, 'r', depth + 1) };
      if (r.chance(0.3)) delete o.x;
      return o;
    }
    case 'd': return ext('decimal', r.pick(DECIMALS.slice(0, 6)));
    case 'ip': return ext('ip', r.pick(IPS.filter((s) => !s.includes('300') && !s.includes('/33') && !s.includes('::ffff'))));
    case 'dt': return ext('datetime', r.pick(['2024-01-01', '2024-01-01T12:00:00Z', '1970-01-01T00:00:00Z']));
    case 'du': return ext('duration', r.pick(['1d', '2h30m', '-1d12h', '1ms', '0s']));
    default: throw new Error(attr);
  }
}

function attrsRecord(r, p = 0.6) {
  const o = {};
  for (const a of ATTRS) if (r.chance(p)) o[a] = jsonValue(r, a);
  return o;
}

export function genEntities(r) {
  const all = [];
  for (const [t, ids] of Object.entries(TYPES)) for (const id of ids) all.push(uid(t, id));
  const ents = [];
  all.forEach((u, i) => {
    if (r.chance(0.15)) return; // some entities are missing from the store
    const parents = [];
    // parents among earlier entities, so the hierarchy is acyclic
    for (let k = 0; k < 2; k++) {
      if (i > 0 && r.chance(0.4)) {
        const p = all[r.int(i)];
        // an action's parents must be actions (rarely broken on purpose)
        if (u.type === 'Action' && p.type !== 'Action' && !r.chance(0.02)) continue;
        if (!parents.some((q) => q.type === p.type && q.id === p.id)) parents.push(p);
      }
    }
    const e = { uid: u, attrs: u.type === 'Action' ? {} : attrsRecord(r), parents };
    if (r.chance(0.4)) {
      e.tags = {};
      for (const k of ['k1', 'k2', 'n', 's']) if (r.chance(0.5)) e.tags[k] = r.chance(0.5) ? jsonInt(r) : r.pick(STRINGS);
    }
    ents.push(e);
  });
  return ents;
}

export function genRequest(r) {
  return {
    principal: randUid(r, PRINCIPAL_TYPES),
    action: randUid(r, ['Action']),
    resource: randUid(r, RESOURCE_TYPES),
    context: attrsRecord(r, 0.5),
  };
}

// ---- policy text -------------------------------------------------------

const q = (s) => JSON.stringify(s).replace(/\\u0000/g, '\\0');
const ent = (u) => `${u.type}::${q(u.id)}`;

const VALUE_TYPES = ['bool', 'long', 'string', 'entity', 'set', 'record', 'decimal', 'ip', 'datetime', 'duration'];
const ATTR_TYPE = { n: 'long', s: 'string', b: 'bool', ss: 'set', ns: 'set', e: 'entity', r: 'record',
  d: 'decimal', ip: 'ip', dt: 'datetime', du: 'duration' };

function attrOf(r, t) {
  const cands = Object.keys(ATTR_TYPE).filter((a) => ATTR_TYPE[a] === t);
  return cands.length ? r.pick(cands) : r.pick(ATTRS);
}

function obj(r, d) {
  return r.pick(['principal', 'resource', 'context', 'context', 'principal.e', 'resource.e',
    ent(randUid(r)), `(if ${gen(r, 'bool', d - 1)} then principal else resource)`]);
}

// `if` is not a primary: it always needs parentheses as an operand.
function wrap(r, s) { return r.chance(0.75) || s.startsWith('if ') ? `(${s})` : s; }

function leaf(r, t) {
  switch (t) {
    case 'bool': return r.pick(['true', 'false', `${obj(r, 0)} has ${r.pick(ATTRS)}`, `context has ${r.pick(ATTRS)}`]);
    case 'long': return r.chance(0.15) ? (r.chance(0.5) ? '-' : '') + r.pick(BIGINTS)
      : r.chance(0.5) ? String(r.int(11) - 5) : `${obj(r, 0)}.n`;
    case 'string': return r.chance(0.5) ? q(r.pick(STRINGS)) : `${obj(r, 0)}.s`;
    case 'entity': return r.pick(['principal', 'resource', 'action', ent(randUid(r)), `${obj(r, 0)}.e`]);
    case 'set': return r.pick(['[]', `${obj(r, 0)}.ss`, `${obj(r, 0)}.ns`, `[1, 2, 3]`, `["a", "abc"]`]);
    case 'record': return r.pick(['context', `${obj(r, 0)}.r`, '{}', '{x: 1, y: "a"}']);
    case 'decimal': return r.chance(0.5) ? `decimal(${q(r.pick(DECIMALS))})` : `${obj(r, 0)}.d`;
    case 'ip': return r.chance(0.5) ? `ip(${q(r.pick(IPS))})` : `${obj(r, 0)}.ip`;
    case 'datetime': return r.chance(0.5) ? `datetime(${q(r.pick(DATETIMES))})` : `${obj(r, 0)}.dt`;
    case 'duration': return r.chance(0.5) ? `duration(${q(r.pick(DURATIONS))})` : `${obj(r, 0)}.du`;
  }
  throw new Error(t);
}

export function gen(r, t, d) {
  if (r.chance(0.04)) t = r.pick(VALUE_TYPES); // ill-typed on purpose
  if (d <= 0 || r.chance(0.25)) return leaf(r, t);
  const g = (tt) => gen(r, tt, d - 1);
  const W = (s) => wrap(r, s);
  switch (t) {
    case 'bool': {
      const k = r.int(24);
      switch (k) {
        case 0: return W(`!${g('bool')}`);
        case 1: return W(`${g('bool')} && ${g('bool')}`);
        case 2: return W(`${g('bool')} || ${g('bool')}`);
        case 3: { const tt = r.pick(VALUE_TYPES); return W(`${g(tt)} == ${g(tt)}`); }
        case 4: { const tt = r.pick(VALUE_TYPES); return W(`${g(tt)} != ${g(tt)}`); }
        case 5: { const tt = r.pick(['long', 'long', 'datetime', 'duration']); return W(`${g(tt)} ${r.pick(['<', '<=', '>', '>='])} ${g(tt)}`); }
        case 6: return W(`${g('entity')} in ${g('entity')}`);
        case 7: return W(`${g('entity')} in [${g('entity')}, ${g('entity')}]`);
        case 8: return W(`${g('entity')} is ${r.pick(Object.keys(TYPES))}`);
        case 9: return W(`${g('entity')} is ${r.pick(Object.keys(TYPES))} in ${g('entity')}`);
        case 10: return W(`${g('string')} like ${q(r.pick(PATTERNS)).replace(/\\\\\*/g, '\\*')}`);
        case 11: return W(`${g('set')}.contains(${g(r.pick(['long', 'string', 'entity']))})`);
        case 12: return W(`${g('set')}.${r.pick(['containsAll', 'containsAny'])}(${g('set')})`);
        case 13: return W(`${g('set')}.isEmpty()`);
        case 14: return W(`${g('entity')}.hasTag(${q(r.pick(['k1', 'k2', 'n', 's', 'zz']))})`);
        case 15: return W(`${g('record')} has ${r.pick(['x', 'y', 'z', 'z.w', 'z.r.x', 'n', 'r.x', 'r.z.w'])}`);
        case 16: return W(`if ${g('bool')} then ${g('bool')} else ${g('bool')}`);
        case 17: return W(`${g('decimal')}.${r.pick(['lessThan', 'lessThanOrEqual', 'greaterThan', 'greaterThanOrEqual'])}(${g('decimal')})`);
        case 18: return W(`${g('ip')}.${r.pick(['isIpv4', 'isIpv6', 'isLoopback', 'isMulticast'])}()`);
        case 19: return W(`${g('ip')}.isInRange(${g('ip')})`);
        case 20: return W(`${obj(r, d)} has ${r.pick(['r.x', 'r.z.w', 'e', 'n'])}`);
        case 21: return W(`${g('entity')} is ${r.pick(Object.keys(TYPES))} && ${g('bool')}`);
        case 22: return W(`${g('set')} == ${g('set')}`);
        default: return W(`${g('long')} ${r.pick(['<', '>'])} ${g('long')} ${r.pick(['&&', '||'])} ${g('bool')}`);
      }
    }
    case 'long': {
      const k = r.int(8);
      switch (k) {
        case 0: return W(`${g('long')} + ${g('long')}`);
        case 1: return W(`${g('long')} - ${g('long')}`);
        case 2: return W(`${g('long')} * ${g('long')}`);
        case 3: return W(`-${g('long')}`);
        case 4: return W(`if ${g('bool')} then ${g('long')} else ${g('long')}`);
        case 5: return W(`${g('entity')}.getTag(${q(r.pick(['k1', 'k2', 'n', 'zz']))})`);
        case 6: return W(`${g('duration')}.${r.pick(['toMilliseconds', 'toSeconds', 'toMinutes', 'toHours', 'toDays'])}()`);
        default: return W(`${g('record')}.${r.pick(['x', 'n'])}`);
      }
    }
    case 'string': {
      const k = r.int(3);
      if (k === 0) return W(`${g('entity')}.getTag(${q(r.pick(['s', 'k1', 'zz']))})`);
      if (k === 1) return W(`if ${g('bool')} then ${g('string')} else ${g('string')}`);
      return W(`${g('record')}[${q(r.pick(['y', 's', 'a b']))}]`);
    }
    case 'entity': return r.chance(0.5) ? W(`if ${g('bool')} then ${g('entity')} else ${g('entity')}`) : W(`${g('record')}.e`);
    case 'set': {
      const n = r.int(4);
      const tt = r.pick(['long', 'string', 'entity', 'bool', 'record', 'decimal']);
      return `[${Array.from({ length: n }, () => g(r.chance(0.8) ? tt : r.pick(VALUE_TYPES))).join(', ')}]`;
    }
    case 'record': {
      const keys = ['x', 'y', 'z', '"a b"', 'e', 'n'];
      const n = r.int(4);
      const used = new Set();
      const parts = [];
      for (let i = 0; i < n; i++) {
        const k = r.pick(keys);
        if (used.has(k)) continue;
        used.add(k);
        const tt = k === 'x' || k === 'n' ? 'long' : k === 'y' ? 'string' : k === 'e' ? 'entity' : r.pick(VALUE_TYPES);
        parts.push(`${k}: ${g(tt)}`);
      }
      return `{${parts.join(', ')}}`;
    }
    case 'decimal': return W(`if ${g('bool')} then ${g('decimal')} else ${g('decimal')}`);
    case 'ip': return leaf(r, 'ip');
    case 'datetime': return r.chance(0.6) ? W(`${g('datetime')}.offset(${g('duration')})`) : W(`${g('datetime')}.toDate()`);
    case 'duration': return r.chance(0.5) ? W(`${g('datetime')}.durationSince(${g('datetime')})`) : W(`${g('datetime')}.toTime()`);
  }
  throw new Error(t);
}

function scope(r, v) {
  const types = v === 'principal' ? PRINCIPAL_TYPES : RESOURCE_TYPES;
  switch (r.int(6)) {
    case 0: case 1: return v;
    case 2: return `${v} == ${ent(randUid(r, types))}`;
    case 3: return `${v} in ${ent(randUid(r, [...types, 'Group']))}`;
    case 4: return `${v} is ${r.pick(types)}`;
    default: return `${v} is ${r.pick(types)} in ${ent(randUid(r, [...types, 'Group']))}`;
  }
}

function actionScope(r) {
  const a = () => ent(randUid(r, ['Action']));
  switch (r.int(5)) {
    case 0: case 1: return 'action';
    case 2: return `action == ${a()}`;
    case 3: return `action in ${a()}`;
    default: return `action in [${a()}, ${a()}]`;
  }
}

export function genPolicy(r, depth = 3) {
  let s = '';
  if (r.chance(0.2)) s += `@advice(${q(r.pick(STRINGS))})\n`;
  s += `${r.chance(0.65) ? 'permit' : 'forbid'}(${scope(r, 'principal')}, ${actionScope(r)}, ${scope(r, 'resource')})`;
  const nc = r.int(3);
  for (let i = 0; i < nc; i++) s += `\n  ${r.chance(0.7) ? 'when' : 'unless'} { ${gen(r, 'bool', depth)} }`;
  return s + ';';
}

function genTemplate(r) {
  const p = r.pick(['principal == ?principal', 'principal in ?principal', 'principal is User in ?principal', 'principal']);
  const res = r.pick(['resource == ?resource', 'resource in ?resource', 'resource is Doc in ?resource',
    p === 'principal' ? 'resource in ?resource' : 'resource']);
  let s = `${r.chance(0.7) ? 'permit' : 'forbid'}(${p}, ${actionScope(r)}, ${res})`;
  if (r.chance(0.6)) s += ` when { ${gen(r, 'bool', 2)} }`;
  return s + ';';
}

export function genCase(seed) {
  const r = rng(seed);
  const np = 1 + r.int(4);
  const policies = Array.from({ length: np }, () => genPolicy(r)).join('\n');
  const c = { policies, entities: genEntities(r), request: genRequest(r) };
  if (r.chance(0.2)) {
    c.templates = {};
    c.links = [];
    const nt = 1 + r.int(2);
    for (let t = 0; t < nt; t++) {
      const text = genTemplate(r);
      c.templates[`t${t}`] = text;
      for (let l = r.int(3); l > 0; l--) {
        const values = {};
        if (text.includes('?principal')) values['?principal'] = randUid(r, [...PRINCIPAL_TYPES, 'Group']);
        if (text.includes('?resource')) values['?resource'] = randUid(r, [...RESOURCE_TYPES, 'Group']);
        c.links.push({ templateId: `t${t}`, newId: `link${c.links.length}`, values });
      }
    }
  }
  return c;
}
