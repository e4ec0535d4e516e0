// The HTTP core: probes, metrics, error formats, limits, security headers.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { startServer } from '../harness/index.mjs';

let srv;
before(async () => { srv = await startServer({ name: 'server' }); });
after(async () => { assert.equal(await srv.stop(), 0); });

test('/healthz and /readyz answer 200 while the database is up', async () => {
  const h = await fetch(`${srv.url}/healthz`);
  assert.equal(h.status, 200);
  const r = await fetch(`${srv.url}/readyz`);
  assert.equal(r.status, 200);
});

test('every response carries a request id and the security headers', async () => {
  const res = await fetch(`${srv.url}/login`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('x-request-id') ?? '', /^[0-9a-f-]{8,}$/);
  assert.match(res.headers.get('content-security-policy') ?? '', /frame-ancestors 'none'/);
  assert.match(res.headers.get('content-security-policy') ?? '', /default-src/);
  assert.equal(res.headers.get('x-frame-options'), 'DENY');
  assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
  assert.ok(res.headers.get('referrer-policy'));
  const other = await fetch(`${srv.url}/login`);
  assert.notEqual(other.headers.get('x-request-id'), res.headers.get('x-request-id'));
});

test('unknown paths and methods get JSON errors for APIs and HTML for pages', async () => {
  const nf = await fetch(`${srv.url}/no/such/thing`, { headers: { Accept: 'application/json' } });
  assert.equal(nf.status, 404);
  const body = await nf.json();
  assert.equal(typeof body.error, 'string');
  const m = await fetch(`${srv.url}/healthz`, { method: 'DELETE' });
  assert.equal(m.status, 405);
  assert.ok(m.headers.get('allow')?.includes('GET'));
  const page = await fetch(`${srv.url}/no/such/page`, { headers: { Accept: 'text/html' } });
  assert.equal(page.status, 404);
  assert.match(page.headers.get('content-type'), /text\/html/);
});

/* Resolves with the status of a POST whose body is `size` bytes, sent only
 * once the server has had the chance to answer the headers. */
function postBig(url, size, { chunked = false } = {}) {
  return new Promise((resolve, reject) => {
    const headers = { 'Content-Type': 'application/x-www-form-urlencoded', Origin: url };
    if (!chunked) headers['Content-Length'] = String(size);
    const req = http.request(`${url}/login`, { method: 'POST', headers }, (res) => { res.resume(); resolve(res.statusCode); });
    req.on('error', reject);
    if (chunked) {
      for (let sent = 0; sent < size; sent += 65536) req.write('x'.repeat(65536));
      req.end();
    } else {
      req.flushHeaders();
    }
  });
}

test('an oversized body is refused with 413 and the server stays up', async () => {
  assert.equal(await postBig(srv.url, 8 * 1024 * 1024), 413);
  assert.equal(await postBig(srv.url, 2 * 1024 * 1024, { chunked: true }), 413);
  assert.equal((await fetch(`${srv.url}/healthz`)).status, 200);
});

test('an oversized header block is refused with 431, an oversized target with 414, both in the JSON error format', async () => {
  const res = await fetch(`${srv.url}/healthz`, { headers: { 'X-Big': 'y'.repeat(64 * 1024) } }).catch((e) => e);
  if (res instanceof Error) assert.fail(`connection failed instead of 431: ${res.message}`);
  assert.equal(res.status, 431);
  assert.equal((await res.json()).error, 'invalid_request');
  const long = await fetch(`${srv.url}/healthz?q=${'a'.repeat(20000)}`).catch((e) => e);
  if (long instanceof Error) assert.fail(`connection failed instead of 414: ${long.message}`);
  assert.equal(long.status, 414);
  assert.equal((await long.json()).error, 'invalid_request');
  assert.ok(long.headers.get('x-request-id'), 'our own answer, with its request id');
});

/* Writes raw bytes on one connection; resolves with everything read until
 * the server closes it (closed: true) or 3 s pass (closed: false). */
function exchange(bytes) {
  return new Promise((resolve) => {
    const s = net.connect(srv.port, '127.0.0.1');
    let text = '';
    const done = (closed) => { clearTimeout(t); s.destroy(); resolve({ text, closed, statuses: [...text.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((m) => Number(m[1])) }); };
    const t = setTimeout(() => done(false), 3000);
    s.on('data', (d) => { text += d; });
    s.on('close', () => done(true));
    s.on('error', () => {});
    s.write(bytes.replace(/\n/g, '\r\n'));
  });
}

const HOST = () => `Host: 127.0.0.1:${srv.port}`;
const SMUGGLED = () => `GET /smuggled HTTP/1.1\n${HOST()}\n\n`;

test('request smuggling (RFC 9112 §6.1, §6.3, §3.2): one refusal, the connection closed, nothing after it answered', async () => {
  const form = 'Content-Type: application/x-www-form-urlencoded';
  const cases = [
    ['Content-Length with Transfer-Encoding', `POST /oauth/revoke HTTP/1.1\n${HOST()}\n${form}\nContent-Length: 54\nTransfer-Encoding: chunked\n\n0\n\n${SMUGGLED()}`, 400],
    ['two Content-Lengths', `POST /oauth/revoke HTTP/1.1\n${HOST()}\n${form}\nContent-Length: 5\nContent-Length: 60\n\ntoken${SMUGGLED()}`, 400],
    ['a Content-Length list', `POST /oauth/revoke HTTP/1.1\n${HOST()}\n${form}\nContent-Length: 5, 5\n\ntoken${SMUGGLED()}`, 400],
    ['Transfer-Encoding: xchunked', `POST /oauth/revoke HTTP/1.1\n${HOST()}\n${form}\nTransfer-Encoding: xchunked\n\n0\n\n${SMUGGLED()}`, 501],
    ['Transfer-Encoding: chunked, identity', `POST /oauth/revoke HTTP/1.1\n${HOST()}\n${form}\nTransfer-Encoding: chunked, identity\n\n0\n\n${SMUGGLED()}`, 501],
    ['Transfer-Encoding twice', `POST /oauth/revoke HTTP/1.1\n${HOST()}\n${form}\nTransfer-Encoding: chunked\nTransfer-Encoding: chunked\n\n0\n\n${SMUGGLED()}`, 501],
    ['Transfer-Encoding in HTTP/1.0', `POST /oauth/revoke HTTP/1.0\n${HOST()}\n${form}\nTransfer-Encoding: chunked\n\n0\n\n${SMUGGLED()}`, 400],
    ['a blank before the colon', `POST /oauth/revoke HTTP/1.1\n${HOST()}\n${form}\nContent-Length: 5\nTransfer-Encoding : chunked\n\n0\n\n${SMUGGLED()}`, 400],
    ['two Host fields', `GET /healthz HTTP/1.1\n${HOST()}\nHost: evil.example\n\n${SMUGGLED()}`, 400],
    ['Host with userinfo', `GET /healthz HTTP/1.1\nHost: 127.0.0.1:${srv.port}@evil\n\n${SMUGGLED()}`, 400],
    ['Host with a path', `GET /healthz HTTP/1.1\nHost: 127.0.0.1/x\n\n${SMUGGLED()}`, 400],
    ['no Host in HTTP/1.1', `GET /healthz HTTP/1.1\n\n${SMUGGLED()}`, 400],
  ];
  const wrong = [];
  for (const [what, bytes, status] of cases) {
    const r = await exchange(bytes);
    // (libmicrohttpd's own 400s, a Content-Length it cannot parse and a
    // missing Host, repeat their status line: one answer all the same)
    if (r.statuses.length < 1 || r.statuses.some((x) => x !== status) || !r.closed || /smuggled|not_found/.test(r.text))
      wrong.push(`${what}: statuses ${r.statuses} closed ${r.closed}`);
  }
  assert.deepEqual(wrong, []);
  assert.equal((await fetch(`${srv.url}/healthz`)).status, 200, 'still serving');
});

test('well-framed requests pass: chunked alone, one Content-Length, an IPv6 or named Host, pipelined keep-alive', async () => {
  const form = 'Content-Type: application/x-www-form-urlencoded';
  const chunked = await exchange(`POST /oauth/revoke HTTP/1.1\n${HOST()}\n${form}\nTransfer-Encoding: chunked\nConnection: close\n\n5\ntoken\n0\n\n`);
  assert.deepEqual(chunked.statuses, [401], chunked.text);   // no client: refused for that, not for framing
  const two = await exchange(`GET /healthz HTTP/1.1\nHost: [::1]:${srv.port}\n\nGET /healthz HTTP/1.1\nHost: gatehouse.example\nConnection: close\n\n`);
  assert.deepEqual(two.statuses, [200, 200], two.text);
});

test('/metrics speaks the Prometheus text format with route, status and pool figures', async () => {
  await fetch(`${srv.url}/login`);
  const res = await fetch(`${srv.url}/metrics`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /text\/plain/);
  const text = await res.text();
  assert.match(text, /# TYPE gatehouse_http_requests_total counter/);
  assert.match(text, /gatehouse_http_requests_total\{[^}]*route="\/login"[^}]*status="200"[^}]*\} [1-9]/);
  assert.match(text, /# TYPE gatehouse_http_request_duration_seconds histogram/);
  assert.match(text, /gatehouse_http_request_duration_seconds_bucket\{[^}]*le="\+Inf"[^}]*\} [1-9]/);
  assert.match(text, /gatehouse_db_pool_connections [0-9]+/);
  assert.match(text, /gatehouse_db_pool_in_use [0-9]+/);
});
