// Shared helpers of the gateway tests: a server with a member, a PAT and
// connectors in front of fixture upstreams; the SDK client; raw MCP over
// HTTP (JSON or SSE replies, read incrementally); the audit check.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import http from 'node:http';
import { Client as McpClient } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { createUser, gatehouse, secret, sleep } from '../../harness/index.mjs';

export const LEGACY = '2025-11-25';
export const MODERN = '2026-07-28';
export const ACCEPT_BOTH = 'application/json, text/event-stream';

/* A fresh server key (64 hex), recorded as a secret. */
export function serverKey() { return secret(crypto.randomBytes(32).toString('hex')); }

/* A member of the agent with a PAT: { email, password, pat }. */
export function member(srv, { agent = 'default', name = 'gw-test' } = {}) {
  const u = createUser(srv, {});
  const r = gatehouse(srv, ['pat', 'create', '--email', u.email, '--agent', agent, '--name', name]);
  assert.equal(r.code, 0, `pat create: ${r.stderr}`);
  u.pat = secret(r.stdout.trim());
  return u;
}

/* gatehouse connector add; headers: ['Name: value', ...] (values recorded as secrets). */
export function addConnector(srv, { agent = 'default', name, url, headers = [] }) {
  const args = ['connector', 'add', '--agent', agent, '--name', name, '--url', url];
  for (const h of headers) {
    secret(h.slice(h.indexOf(':') + 1).trim());
    args.push('--header', h);
  }
  const r = gatehouse(srv, args);
  assert.equal(r.code, 0, `connector add ${name}: ${r.stderr}`);
  return r;
}

export function connectorCmd(srv, ...args) {
  const r = gatehouse(srv, ['connector', ...args]);
  assert.equal(r.code, 0, `connector ${args.join(' ')}: ${r.stderr}`);
  return r;
}

/* The MCP TypeScript SDK client through the gateway (a 2025-11-25 session). */
export async function sdkClient(srv, token, { path = '/mcp', name = 'gw-test-client' } = {}) {
  const transport = new StreamableHTTPClientTransport(new URL(`${srv.url}${path}`), {
    requestInit: { headers: token ? { Authorization: `Bearer ${token}` } : {} },
  });
  const client = new McpClient({ name, version: '1.0.0' });
  await client.connect(transport);
  if (transport.sessionId) secret(transport.sessionId); // a bearer secret of its own
  return { client, transport };
}

/* Every page of a list method through the SDK client. */
export async function listAll(client, kind = 'tools') {
  const fn = { tools: 'listTools', resources: 'listResources', prompts: 'listPrompts', resourceTemplates: 'listResourceTemplates' }[kind];
  const out = [];
  let cursor;
  let pages = 0;
  do {
    const r = await client[fn](cursor ? { cursor } : {});
    out.push(...r[kind]);
    cursor = r.nextCursor;
    assert.ok(++pages < 1000, 'pagination ends');
  } while (cursor);
  return { items: out, pages };
}

/* One SSE reader over a fetch Response: next() resolves with the next
 * JSON-RPC message (or null at the end of the stream).  A plain JSON
 * answer (the gateway sends one when the upstream's answer is a single
 * message) reads as a stream of that one message. */
export function sseReader(res) {
  if ((res.headers.get('content-type') || '').startsWith('application/json')) {
    const body = res.json();
    let given = false;
    const reader = {
      async next() { if (given) return null; given = true; return body; },
      async until(pred, what = 'message') {
        const m = await this.next();
        if (m !== null && pred(m)) return [m, []];
        throw new Error(`stream ended before ${what}; saw ${JSON.stringify(m === null ? [] : [m])}`);
      },
      cancel() { return res.body?.cancel().catch(() => {}); },
    };
    return reader;
  }
  const reader = res.body.getReader();
  const dec = new TextDecoder();
  let buf = '';
  let data = [];
  const queue = [];
  return {
    async next() {
      for (;;) {
        if (queue.length) return queue.shift();
        const { value, done } = await reader.read();
        if (done) return null;
        buf += dec.decode(value, { stream: true });
        let i;
        while ((i = buf.search(/\r?\n/)) >= 0) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + (buf[i] === '\r' ? 2 : 1));
          if (line === '') {
            if (data.length) queue.push(JSON.parse(data.join('\n')));
            data = [];
          } else if (line.startsWith('data:')) {
            data.push(line.slice(5).replace(/^ /, ''));
          }
        }
      }
    },
    /* Reads until pred(msg) holds; returns [msg, everything read before it]. */
    async until(pred, what = 'message') {
      const seen = [];
      for (;;) {
        const m = await this.next();
        if (m === null) throw new Error(`stream ended before ${what}; saw ${JSON.stringify(seen)}`);
        if (pred(m)) return [m, seen];
        seen.push(m);
      }
    },
    cancel() { return reader.cancel().catch(() => {}); },
  };
}

/* Raw POST of one JSON-RPC message. opts: token, session, version (the
 * MCP-Protocol-Version header), headers, path, accept, signal, raw (a string
 * body).  Resolves with { status, headers, body (parsed JSON), messages (SSE), text }
 * unless stream: true, then with { status, headers, res, sse }. */
export async function post(srv, msg, opts = {}) {
  const h = { 'Content-Type': 'application/json', Accept: opts.accept ?? ACCEPT_BOTH };
  if (opts.token) h.Authorization = `Bearer ${opts.token}`;
  if (opts.session) h['Mcp-Session-Id'] = opts.session;
  if (opts.version) h['MCP-Protocol-Version'] = opts.version;
  Object.assign(h, opts.headers ?? {});
  for (const k of Object.keys(h)) if (h[k] === undefined) delete h[k];
  const res = await fetch(`${srv.url}${opts.path ?? '/mcp'}`, {
    method: opts.method ?? 'POST', headers: h, signal: opts.signal,
    body: opts.raw !== undefined ? opts.raw : JSON.stringify(msg),
  });
  if (opts.stream) return { status: res.status, headers: res.headers, res, sse: sseReader(res) };
  return readReply(res);
}

/* A request through node:http, which lets a test set Host itself:
 * { status, headers, text, body (parsed JSON or null) }. */
export function rawRequest(srv, path, { method = 'POST', headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: srv.port, path, method, headers }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString();
        let json = null;
        try { json = JSON.parse(text); } catch { /* not JSON */ }
        resolve({ status: res.statusCode, headers: res.headers, text, body: json });
      });
    });
    req.on('error', reject);
    if (body) req.write(body);
    req.end();
  });
}

export async function readReply(res) {
  const text = await res.text();
  const out = { status: res.status, headers: res.headers, text, body: null, messages: [] };
  const ct = res.headers.get('content-type') || '';
  if (ct.startsWith('text/event-stream')) {
    for (const ev of text.split(/\r?\n\r?\n/)) {
      const data = ev.split(/\r?\n/).filter((l) => l.startsWith('data:')).map((l) => l.slice(5).replace(/^ /, ''));
      if (data.length) out.messages.push(JSON.parse(data.join('\n')));
    }
    out.body = out.messages.find((m) => m.id !== undefined && (m.result !== undefined || m.error !== undefined)) ?? null;
  } else if (text) {
    try { out.body = JSON.parse(text); } catch { /* not JSON */ }
  }
  return out;
}

/* A legacy session opened with raw HTTP: initialize + notifications/initialized. */
export async function rawSession(srv, token, { path = '/mcp', version = LEGACY } = {}) {
  const init = await post(srv, { jsonrpc: '2.0', id: 1, method: 'initialize',
    params: { protocolVersion: version, capabilities: {}, clientInfo: { name: 'raw-test', version: '1.0.0' } } }, { token, path });
  assert.equal(init.status, 200, `initialize: ${init.text}`);
  const session = init.headers.get('mcp-session-id');
  assert.ok(session, 'Mcp-Session-Id on the initialize reply');
  secret(session); // a bearer secret of its own
  assert.match(session, /^[\x21-\x7e]+$/, 'session id is visible ASCII');
  const note = await post(srv, { jsonrpc: '2.0', method: 'notifications/initialized' }, { token, path, session, version });
  assert.equal(note.status, 202, `notifications/initialized: ${note.text}`);
  let id = 100;
  return {
    session, init: init.body,
    call: (method, params, o = {}) => post(srv, { jsonrpc: '2.0', id: ++id, method, params }, { token, path, session, version, ...o }),
  };
}

/* The modern (2026-07-28) request shape: _meta in params, headers mirrored. */
export function modernMsg(id, method, params = {}, meta = {}) {
  return { jsonrpc: '2.0', id, method, params: { ...params, _meta: {
    'io.modelcontextprotocol/protocolVersion': MODERN,
    'io.modelcontextprotocol/clientInfo': { name: 'raw-modern-test', version: '1.0.0' },
    'io.modelcontextprotocol/clientCapabilities': {},
    ...meta,
  } } };
}
export function modernHeaders(msg) {
  const h = { 'MCP-Protocol-Version': MODERN, 'Mcp-Method': msg.method };
  const name = msg.params?.name ?? msg.params?.uri;
  if (name !== undefined && ['tools/call', 'prompts/get', 'resources/read'].includes(msg.method)) h['Mcp-Name'] = name;
  return h;
}
export function modern(srv, token, id, method, params, { meta, headers = {}, ...o } = {}) {
  const msg = modernMsg(id, method, params, meta);
  return post(srv, msg, { token, headers: { ...modernHeaders(msg), ...headers }, ...o });
}

/* ---- audit: every call a test makes is expected to have its row. */
function pick(row, ...names) {
  for (const n of names) if (row[n] !== undefined && row[n] !== null) return row[n];
  return null;
}
export function auditRows(srv, where = 'true') {
  const out = srv.cluster.sql(`SELECT coalesce(json_agg(row_to_json(a)), '[]') FROM audit_events a WHERE ${where}`);
  return JSON.parse(out || '[]').map((r) => ({
    raw: r,
    method: pick(r, 'method'),
    tool: pick(r, 'tool', 'tool_name'),
    connector: pick(r, 'connector', 'connector_name'),
    decision: pick(r, 'decision'),
    message: pick(r, 'message', 'reason'),
    kind: pick(r, 'credential_kind', 'cred_kind', 'kind'),
    upstreamStatus: pick(r, 'upstream_status'),
    session: pick(r, 'session_id', 'mcp_session_id', 'session'),
  }));
}

/* The methods no policy decides: their allowed rows say so. */
const UNDECIDED_METHODS = new Set(['initialize', 'ping', 'server/discover', '(response)', '(invalid)', 'GET', 'POST', 'DELETE']);
export function undecided(method) { return UNDECIDED_METHODS.has(method) || method.startsWith('notifications/'); }

/* Collects what a test file did; check() matches each expectation to its
 * own audit row (a multiset match: n calls need n rows). */
export class AuditLog {
  constructor() { this.expected = []; }
  /* e: { method, tool, connector, kind ('pat'|'oauth'), upstream: true if an upstream answered } */
  expect(e) { this.expected.push(e); return e; }
  tool(tool, connector, kind = 'pat', more = {}) { return this.expect({ method: 'tools/call', tool, connector, kind, upstream: true, ...more }); }
  check(srv, where) {
    const rows = auditRows(srv, where);
    const used = new Set();
    const missing = [];
    for (const e of this.expected) {
      const i = rows.findIndex((r, k) => !used.has(k) && r.method === e.method &&
        (e.tool === undefined || r.tool === e.tool) &&
        (e.connector === undefined || r.connector === e.connector) &&
        (e.kind === undefined || String(r.kind).toLowerCase().includes(e.kind)) &&
        (e.decision ?? 'allow') === r.decision &&
        // the policies decide every method but the handshake's (docs/POLICIES.md)
        (r.message === (e.message ?? (undecided(e.method) ? 'allow (not decided by policy)' : 'allowed by policy'))) &&
        (!e.upstream || (Number(r.upstreamStatus) >= 200 && Number(r.upstreamStatus) < 600)));
      if (i < 0) missing.push(e);
      else used.add(i);
    }
    assert.deepEqual(missing, [], `audit rows missing for ${missing.length} of ${this.expected.length} calls; ` +
      `rows: ${JSON.stringify(rows.map((r) => r.raw).slice(0, 40))}`);
    return rows;
  }
}

/* Waits for pred() to become true (polling), for events without a push signal. */
export async function eventually(pred, { timeoutMs = 30000, what = 'condition' } = {}) {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await pred();
    if (v) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

export function toolText(r) { return (r.content ?? []).filter((c) => c.type === 'text').map((c) => c.text).join('\n'); }

/* The outcome of a promise that may reject: { result } or { error }. */
export async function rejects(promise) {
  try {
    return { result: await promise };
  } catch (e) {
    return { error: e };
  }
}

/* A legacy session's GET stream (its reader); ctls collects the abort
 * controllers the test's after() aborts. */
export async function getStream(srv, token, session, ctls) {
  const ctl = new AbortController();
  ctls.push(ctl);
  const g = await post(srv, undefined, { method: 'GET', token, session, version: LEGACY,
    accept: 'text/event-stream', stream: true, signal: ctl.signal });
  assert.equal(g.status, 200);
  return g.sse;
}

/* A 2026-07-28 subscriptions/listen stream for tools/list_changed, past
 * its acknowledgement (its reader); ctls as for getStream. */
export async function listenStream(srv, token, sub, ctls) {
  const ctl = new AbortController();
  ctls.push(ctl);
  const msg = modernMsg(sub, 'subscriptions/listen', { notifications: { toolsListChanged: true } });
  const s = await post(srv, msg, { token, headers: modernHeaders(msg), stream: true, signal: ctl.signal });
  assert.equal(s.status, 200);
  assert.equal((await s.sse.next()).method, 'notifications/subscriptions/acknowledged');
  return s.sse;
}

/* The stream ends (whatever it still carried before) within ms. */
export async function streamEnds(sse, ms, what) {
  const timeout = new Promise((r) => setTimeout(() => r('open'), ms));
  const drained = (async () => { while (await sse.next() !== null); return 'ended'; })();
  assert.equal(await Promise.race([drained, timeout]), 'ended', what);
}

/* Every given stream still carries the agent's list_changed: the connector
 * is disabled and enabled again through srv. */
export async function carryListChanged(srv, connector, ...sses) {
  connectorCmd(srv, 'disable', '--agent', 'default', '--name', connector);
  connectorCmd(srv, 'enable', '--agent', 'default', '--name', connector);
  for (const sse of sses) await sse.until((m) => m.method === 'notifications/tools/list_changed', 'list_changed on a kept stream');
}
