// The gateway's case files: each tests/http/gateway/cases/*.json is one
// node:test test with a server of its own, the fixture upstreams it names
// (tests/fixtures/upstream.mjs) and the steps it lists; the format is in
// tests/http/gateway/cases/README.md.  Most new gateway tests need only a
// case file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer, startFixture, gatehouse } from '../../harness/index.mjs';
import { signedIn, fullFlow } from '../oauth/lib.mjs';
import { member, addConnector, rawSession, modernMsg, modernHeaders, ACCEPT_BOTH } from './lib.mjs';

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
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, value(x, vars)]));
  }
  return v;
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
    if (typeof actual !== 'string' || !new RegExp(value(want.$match, vars)).test(actual)) fail(`want /${want.$match}/`);
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

async function step(st, vars, fx) {
  const { srv } = vars;
  const what = st.what ?? JSON.stringify(st).slice(0, 80);
  const out = [];
  if (st.session) {
    const o = value(st.session, vars);
    const s = await rawSession(srv, vars[o.as].pat, { version: o.version, path: o.path });
    vars[o.save] = { session: s.session, version: o.version ?? '2025-11-25' };
    return;
  }
  if (st.oauth) {
    const o = value(st.oauth, vars);
    const c = await signedIn(srv, vars[o.as]);
    const d = await fullFlow(srv, c, { meta: o.meta ?? {} });
    vars[o.save] = { token: d.tokens.access_token, clientId: d.client.client_id };
    return;
  }
  if (st.resetUpstream) {
    await fx[st.resetUpstream].resetLog();
    return;
  }
  if (st.sql) {
    match(srv.cluster.sql(value(st.sql, vars)), st.equals, vars, `${what} (sql)`, out);
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
  for (const [name, want] of Object.entries(st.upstream ?? {})) match(await fx[name].log(), want, vars, `upstream ${name}`, out);
  if (st.save) vars[st.save] = r;
  assert.deepEqual(out, [], `${what}: ${r.status} ${String(r.text).slice(0, 300)}`);
}

for (const file of files) {
  test(file.replace(/\.json$/, ''), async (t) => {
    const c = JSON.parse(fs.readFileSync(path.join(dir, file), 'utf8'));
    const fx = {};
    let srv;
    try {
      const ups = Object.entries(c.upstreams ?? {});
      const started = await Promise.all([
        startServer({ name: `gw-case-${file.replace(/\.json$/, '')}`, env: c.env ?? {} }),
        ...ups.map(([name, cfg]) => startFixture({ name, ...cfg })),
      ]);
      srv = started[0];
      ups.forEach(([name], i) => { fx[name] = started[i + 1]; });
      for (const a of c.agents ?? []) assert.equal(gatehouse(srv, ['agent', 'add', '--slug', a.slug, '--name', a.name]).code, 0);
      for (const k of c.connectors ?? ups.map(([name]) => ({ name, upstream: name }))) {
        addConnector(srv, { agent: k.agent, name: k.name, url: fx[k.upstream].url });
      }
      const vars = { srv, port: srv.port, ...(c.vars ?? {}) };
      for (const [name, m] of Object.entries(c.members ?? {})) vars[name] = member(srv, m);
      const from = checks;
      for (const st of c.steps) await step(st, vars, fx);
      t.diagnostic(`${c.steps.length} steps, ${checks - from} checks`);
    } finally {
      await Promise.all(Object.values(fx).map((f) => f.stop()));
      if (srv) assert.equal(await srv.stop(), 0);
    }
  });
}
