// The gateway's case files: each tests/http/gateway/cases/*.json is one
// node:test test with a server of its own, the fixture upstreams it names
// (tests/fixtures/upstream.mjs) and the steps it lists; the format is in
// tests/http/gateway/cases/README.md.  Most new gateway tests need only a
// case file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { startServer, startCluster, startFixture, gatehouse, gatehouseBin, freePort, secret, sleep } from '../../harness/index.mjs';
import { signedIn, fullFlow } from '../oauth/lib.mjs';
import { member, addConnector, rawSession, modernMsg, modernHeaders, serverKey, ACCEPT_BOTH } from './lib.mjs';

const dir = path.join(path.dirname(fileURLToPath(import.meta.url)), 'cases');
const files = fs.readdirSync(dir).filter((f) => f.endsWith('.json')).sort();
let checks = 0;

/* ---- values: "{{a.b}}" names a variable ("x {{a}} y" is text); objects
 * with one "$" key build a value. */
function lookup(vars, name) {
  const v = name.split('.').reduce((o, k) => (o == null ? undefined : o[k]), vars);
  assert.notEqual(v, undefined, `case variable ${name}`);
  return v;
}

function value(v, vars) {
  if (typeof v === 'string') {
    const whole = /^\{\{([\w.]+)\}\}$/.exec(v);
    if (whole) return lookup(vars, whole[1]);
    return v.replace(/\{\{([\w.]+)\}\}/g, (_, n) => String(lookup(vars, n)));
  }
  if (Array.isArray(v)) return v.map((x) => value(x, vars));
  if (v && typeof v === 'object') {
    if ('$repeat' in v) return value(v.$repeat[0], vars).repeat(value(v.$repeat[1], vars));
    if ('$json' in v) return JSON.stringify(value(v.$json, vars));
    if ('$sql' in v) return vars.srv.cluster.sql(value(v.$sql, vars));
    if ('$add' in v) return value(v.$add, vars).reduce((a, b) => Number(a) + Number(b), 0);
    if ('$pings' in v) {
      const [n, from] = value(v.$pings, vars);
      return Array.from({ length: n }, (_, i) => ({ jsonrpc: '2.0', id: from + i, method: 'ping' }));
    }
    if ('$range' in v) {
      const [n, from] = value(v.$range, vars);
      return Array.from({ length: n }, (_, i) => from + i);
    }
    if ('$sealLegacy' in v) return sealLegacy(value(v.$sealLegacy, vars));
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, value(x, vars)]));
  }
  return v;
}

/* A connector header blob as builds before the v2 binding sealed it:
 * AES-256-GCM under the server key, associated data "gw_connector:<id>",
 * base64url of iv | tag | ciphertext. */
function sealLegacy({ key, aad, plain }) {
  const iv = crypto.randomBytes(12);
  const c = crypto.createCipheriv('aes-256-gcm', Buffer.from(key, 'hex'), iv);
  c.setAAD(Buffer.from(aad));
  const ct = Buffer.concat([c.update(plain), c.final()]);
  return Buffer.concat([iv, c.getAuthTag(), ct]).toString('base64url');
}

/* ---- matching: failures are collected as "path: why" lines.  A matcher
 * is a value (equal), an object (each key it names; {"$absent": true} for
 * a key that must be missing), an array (same length, element by element)
 * or an object with a "$" key (below). */
function match(actual, want, vars, at, out) {
  checks++;
  const fail = (why) => out.push(`${at || '.'}: ${why}; got ${JSON.stringify(actual)?.slice(0, 400)}`);
  if (want === null || typeof want !== 'object') {
    const w = value(want, vars);
    if (actual !== w) fail(`want ${JSON.stringify(w)}`);
    return;
  }
  if (Array.isArray(want)) {
    if (!Array.isArray(actual) || actual.length !== want.length) return fail(`want ${want.length} entries`);
    want.forEach((w, i) => match(actual[i], w, vars, `${at}[${i}]`, out));
    return;
  }
  if ('$match' in want) {
    if (typeof actual !== 'string' || !new RegExp(value(want.$match, vars), want.flags).test(actual)) fail(`want /${want.$match}/`);
  } else if ('$lacks' in want) {
    const text = typeof actual === 'string' ? actual : JSON.stringify(actual) ?? '';
    for (const x of [value(want.$lacks, vars)].flat()) if (text.includes(String(x))) fail('holds what it must not');
  } else if ('$num' in want) {
    if (Number(actual) !== Number(value(want.$num, vars))) fail(`want ${value(want.$num, vars)}`);
  } else if ('$lte' in want) {
    if (!(Number(actual) <= Number(value(want.$lte, vars)))) fail(`want at most ${value(want.$lte, vars)}`);
  } else if ('$len' in want) {
    if (!Array.isArray(actual) || actual.length !== want.$len) fail(`want ${want.$len} entries`);
  } else if ('$all' in want) {
    want.$all.forEach((w, i) => match(actual, w, vars, `${at}(${i})`, out));
  } else if ('$pluck' in want) {
    if (!Array.isArray(actual)) return fail('want an array');
    const got = actual.map((x) => x?.[want.$pluck]);
    if (want.sort) got.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    match(got, value(want.is, vars), vars, `${at}.*.${want.$pluck}`, out);
  } else if ('$not' in want) {
    if (JSON.stringify(actual) === JSON.stringify(value(want.$not, vars))) fail('want another value');
  } else if ('$json' in want) {
    let parsed;
    try { parsed = JSON.parse(actual); } catch { return fail('want JSON text'); }
    match(parsed, want.$json, vars, `${at}(json)`, out);
  } else if ('$sql' in want) {
    match(actual, value(want, vars), vars, at, out);
  } else if ('$contains' in want) {
    if (!Array.isArray(actual) || !actual.some((x) => ok(x, want.$contains, vars))) fail(`want an entry like ${JSON.stringify(want.$contains)}`);
  } else if ('$count' in want) {
    const n = Array.isArray(actual) ? actual.filter((x) => ok(x, want.$count, vars)).length : -1;
    if (n !== want.equals) fail(`want ${want.equals} entries like ${JSON.stringify(want.$count)}, ${n} are`);
  } else if ('$every' in want) {
    if (!Array.isArray(actual) || !actual.every((x) => ok(x, want.$every, vars))) fail(`want every entry like ${JSON.stringify(want.$every)}`);
  } else if ('$sorted' in want) {
    const key = (x) => JSON.stringify(x);
    match(Array.isArray(actual) ? [...actual].sort((a, b) => (key(a) < key(b) ? -1 : 1)) : actual, want.$sorted, vars, `${at}(sorted)`, out);
  } else if ('$absent' in want) {
    if (actual !== undefined) fail('want no value');
  } else {
    if (actual === null || typeof actual !== 'object') return fail(`want an object like ${JSON.stringify(want)}`);
    for (const [k, w] of Object.entries(want)) {
      if (w && typeof w === 'object' && w.$absent) {
        checks++;
        if (k in actual) out.push(`${at}.${k}: want no value; got ${JSON.stringify(actual[k])}`);
      } else {
        match(actual[k], w, vars, `${at}.${k}`, out);
      }
    }
  }
}

function ok(actual, want, vars) {
  const out = [];
  const before = checks;
  match(actual, want, vars, '', out);
  checks = before;
  return out.length === 0;
}

/* ---- requests: all through node:http, which sends what a case says
 * byte for byte (a header given as a list: one field line per value; only
 * the headers with "declare"; the body in chunks). */
function send(port, { method, path: p, headers, body, declare, chunkAt }) {
  return new Promise((resolve, reject) => {
    const h = { Host: `127.0.0.1:${port}`, ...headers };
    if (declare !== undefined) h['Content-Length'] = String(declare);
    else if (body !== undefined && chunkAt === undefined) h['Content-Length'] = String(Buffer.byteLength(body));
    for (const k of Object.keys(h)) if (h[k] === undefined || h[k] === null) delete h[k];
    const req = http.request({ host: '127.0.0.1', port, path: p, method, headers: h }, (res) => {
      const parts = [];
      res.on('data', (c) => parts.push(c));
      res.on('end', () => resolve(reply(res.statusCode, res.headers, Buffer.concat(parts).toString())));
    });
    req.on('error', (e) => (['ECONNRESET', 'EPIPE'].includes(e.code) ? resolve({ status: 'reset', headers: {} }) : reject(e)));
    if (declare !== undefined) return req.flushHeaders();
    if (chunkAt !== undefined) {
      let from = 0;
      for (const to of [...chunkAt, body.length]) { req.write(body.slice(from, to)); from = to; }
    } else if (body !== undefined) {
      req.write(body);
    }
    return req.end();
  });
}

/* { status, headers, text, body }: body is the JSON reply, or of an SSE
 * reply the response message (every message in messages). */
function reply(status, headers, text) {
  const out = { status, headers, text, body: null, messages: [] };
  if ((headers['content-type'] || '').startsWith('text/event-stream')) {
    for (const ev of text.split(/\r?\n\r?\n/)) {
      const data = ev.split(/\r?\n/).filter((l) => l.startsWith('data:')).map((l) => l.slice(5).replace(/^ /, ''));
      if (data.length) out.messages.push(JSON.parse(data.join('\n')));
    }
    out.body = out.messages.find((m) => m.id !== undefined && (m.result !== undefined || m.error !== undefined)) ?? null;
  } else {
    try { out.body = JSON.parse(text); } catch { /* not JSON */ }
  }
  return out;
}

/* A case's request: "as" a member (its PAT) or "token"; "session" a saved
 * session (its id and protocol version); "modern" builds the 2026-07-28
 * message (_meta, mirrored headers) from body {id, method, params, meta}. */
function buildRequest(rq, vars) {
  const r = value(rq, vars);
  const s = r.session ? vars[r.session] : null;
  let body = r.raw;
  const headers = { 'Content-Type': 'application/json', Accept: ACCEPT_BOTH };
  const token = r.token ?? (r.as ? vars[r.as].pat : undefined);
  if (token) headers.Authorization = `Bearer ${token}`;
  if (s) Object.assign(headers, { 'Mcp-Session-Id': s.session, 'MCP-Protocol-Version': s.version });
  if (r.modern) {
    const msg = modernMsg(r.body.id, r.body.method, r.body.params, r.body.meta);
    Object.assign(headers, modernHeaders(msg));
    body = JSON.stringify(msg);
  } else if (r.body !== undefined) {
    body = JSON.stringify(r.body);
  }
  if (r.bare) for (const k of Object.keys(headers)) delete headers[k];
  Object.assign(headers, r.headers ?? {});
  return { method: r.method ?? 'POST', path: r.path ?? '/mcp', headers, body, declare: r.declare, chunkAt: r.chunkAt };
}

function rowsOf(srv, rid) {
  const out = srv.cluster.sql(`SELECT coalesce(json_agg(row_to_json(a) ORDER BY id), '[]') FROM audit_events a
    WHERE request_id = '${String(rid).replace(/'/g, "''")}'`);
  return JSON.parse(out || '[]');
}

const auditCount = (srv) => Number(srv.cluster.sql('SELECT count(*) FROM audit_events'));
const sha256 = (x) => crypto.createHash('sha256').update(x).digest('hex');

/* The server a step names ("server"), the file's first by default. */
const srvOf = (st, vars) => vars.servers[st.server ?? vars.first];

/* Steps other than a request; true when st was one of them. */
async function other(st, vars, out) {
  const srv = srvOf(st, vars);
  if (st.session) {
    const o = value(st.session, vars);
    const s = await rawSession(srv, vars[o.as].pat, { version: o.version, path: o.path });
    vars[o.save] = { session: s.session, version: o.version ?? '2025-11-25', sessionHash: sha256(s.session) };
  } else if (st.oauth) {
    const o = value(st.oauth, vars);
    const c = await signedIn(srv, vars[o.as]);
    const d = await fullFlow(srv, c, { meta: o.meta ?? {} });
    vars[o.save] = { token: d.tokens.access_token, clientId: d.client.client_id };
  } else if (st.resetUpstream) {
    await vars.up[st.resetUpstream].resetLog();
  } else if (st.set) {
    for (const [k, v] of Object.entries(st.set)) vars[k] = st.secret ? secret(value(v, vars)) : value(v, vars);
  } else if (st.sql) {
    const got = srv.cluster.sql(value(st.sql, vars));
    if (st.secret) secret(got);
    if (st.save) vars[st.save] = got;
    if ('equals' in st) match(got, st.equals, vars, 'sql', out);
  } else if (st.cli) {
    const r = gatehouse(srv, value(st.cli, vars), { env: value(st.env ?? {}, vars) });
    match(r, st.expect ?? { code: 0 }, vars, 'cli', out);
  } else if (st.serve) {
    // a second `gatehouse serve` on the server's settings, which must not start
    const port = await freePort();
    const r = spawnSync(gatehouseBin, ['serve'], { encoding: 'utf8', timeout: 60000, env: { ...srv.env,
      GATEHOUSE_LISTEN: `127.0.0.1:${port}`, GATEHOUSE_PUBLIC_URL: `http://127.0.0.1:${port}`, ...value(st.serve, vars) } });
    match({ status: r.status, stderr: r.stderr }, st.expect, vars, 'serve', out);
  } else if (st.tmpdir) {
    vars[st.tmpdir] = fs.mkdtempSync(path.join(os.tmpdir(), 'gh-case-'));
    vars.cleanup.push(() => fs.rmSync(vars[st.tmpdir], { recursive: true, force: true }));
  } else if (st.file) {
    checks++;
    if (fs.existsSync(value(st.file, vars)) !== st.exists) out.push(`${value(st.file, vars)}: exists ${!st.exists}`);
  } else if (st.log) {
    match(fs.readFileSync(srv.logFile, 'utf8'), st.log, vars, 'server log', out);
  } else if (st.metric) {
    const text = await (await fetch(`${srv.url}/metrics`)).text();
    const v = Number(new RegExp(`^${st.metric} (\\d+)$`, 'm').exec(text)?.[1]);
    if (st.save) vars[st.save] = v;
    if ('is' in st) match(v, st.is, vars, st.metric, out);
  } else if (st.restart) {
    await srv.restart();
  } else if (st.upstreamFind) {
    const hit = (await vars.up[st.upstreamFind].log()).find((e) => ok(e, st.where, vars));
    checks++;
    if (hit === undefined) out.push(`no entry like ${JSON.stringify(st.where)} in ${st.upstreamFind}'s log`);
    else vars[st.save] = hit[st.field];
  } else if (st.upstreamWait) {
    const fx = vars.up[st.upstreamWait];
    await fx.waitFor((e) => ok(e, st.where, vars), { timeoutMs: st.timeoutMs ?? 30000, what: JSON.stringify(st.where) });
  } else if (st.retry) {
    // the steps again (a new try after delayMs) until they all pass
    for (let i = 1; ; i++) {
      try {
        for (const inner of st.retry) await step(inner, vars);
        break;
      } catch (e) {
        if (i >= (st.tries ?? 20)) throw e;
        await sleep(st.delayMs ?? 100);
      }
    }
  } else {
    return false;
  }
  return true;
}

async function step(st, vars) {
  const srv = srvOf(st, vars);
  const what = st.what ?? JSON.stringify(st).slice(0, 80);
  const out = [];
  if (await other(st, vars, out)) {
    assert.deepEqual(out, [], what);
    return;
  }
  const before = st.noNewRows ? auditCount(srv) : 0;
  const r = await send(srv.port, buildRequest(st.request, vars));
  const e = st.expect ?? {};
  if ('status' in e) match(r.status, e.status, vars, 'status', out);
  if (e.headers) match(r.headers, e.headers, vars, 'headers', out);
  if ('body' in e) match(r.body, e.body, vars, 'body', out);
  if (st.audit) {
    const rid = r.headers['x-request-id'];
    checks++;
    if (!rid) out.push('X-Request-Id: missing');
    else match(rowsOf(srv, rid), st.audit, vars, 'audit', out);
  }
  if (st.noNewRows) match(auditCount(srv), before, vars, 'rows added', out);
  for (const [name, want] of Object.entries(st.upstream ?? {})) match(await vars.up[name].log(), want, vars, `upstream ${name}`, out);
  if (st.save) vars[st.save] = r;
  assert.deepEqual(out, [], `${what}: ${r.status} ${String(r.text).slice(0, 300)}`);
}

/* The servers of a case ({name: {env}}; "shared": one cluster for all of
 * them), its fixture upstreams, connectors, agents and members. */
async function setUp(c, file, vars) {
  const base = file.replace(/\.json$/, '');
  for (const [k, v] of Object.entries(c.secrets ?? {})) {
    vars[k] = v.serverKey ? serverKey() : secret(`${v.prefix ?? ''}${crypto.randomBytes(v.bytes ?? 12).toString('hex')}`);
  }
  const servers = c.servers ?? { main: { env: c.env ?? {} } };
  const cluster = c.shared ? await startCluster() : undefined;
  if (cluster) vars.cleanup.push(() => cluster.stop());
  const ups = Object.entries(c.upstreams ?? {});
  const started = await Promise.all([
    ...Object.entries(servers).map(([name, o]) => startServer({ cluster, name: `gw-case-${base}-${name}`, env: o.env ?? {} })),
    ...ups.map(([name, cfg]) => startFixture({ name, ...value(cfg, vars) })),
  ]);
  Object.keys(servers).forEach((name, i) => { vars.servers[name] = started[i]; });
  ups.forEach(([name], i) => { vars.up[name] = started[Object.keys(servers).length + i]; });
  vars.first = Object.keys(servers)[0];
  vars.srv = vars.servers[vars.first];
  vars.port = vars.srv.port;
  if (cluster) vars.clusterKey = cluster.serverKey;
  for (const a of c.agents ?? []) assert.equal(gatehouse(vars.srv, ['agent', 'add', '--slug', a.slug, '--name', a.name]).code, 0);
  for (const k of c.connectors ?? ups.map(([name]) => ({ name, upstream: name }))) {
    addConnector(vars.srv, { agent: k.agent, name: k.name, url: vars.up[k.upstream].url, headers: value(k.headers ?? [], vars) });
  }
  for (const [name, m] of Object.entries(c.members ?? {})) vars[name] = member(vars.servers[m.server ?? vars.first], m);
}

for (const file of files) {
  test(file.replace(/\.json$/, ''), async (t) => {
    const c = JSON.parse(fs.readFileSync(path.join(dir, file), 'utf8'));
    const vars = { servers: {}, up: {}, cleanup: [], ...(c.vars ?? {}) };
    try {
      await setUp(c, file, vars);
      const from = checks;
      for (const st of c.steps) await step(st, vars);
      t.diagnostic(`${c.steps.length} steps, ${checks - from} checks`);
    } finally {
      await Promise.all(Object.values(vars.up).map((f) => f.stop()));
      for (const s of Object.values(vars.servers).reverse()) assert.equal(await s.stop(), 0);
      for (const f of vars.cleanup.reverse()) await f();
    }
  });
}
