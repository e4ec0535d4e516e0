// The HTTP core: probes, metrics, error formats, limits, security headers.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
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

test('an oversized header block is refused with 431', async () => {
  const res = await fetch(`${srv.url}/healthz`, { headers: { 'X-Big': 'y'.repeat(64 * 1024) } }).catch((e) => e);
  if (res instanceof Error) assert.fail(`connection failed instead of 431: ${res.message}`);
  assert.equal(res.status, 431);
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
