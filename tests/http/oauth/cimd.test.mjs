// Client ID Metadata Documents: the fetch rules (5 s timeout, no redirects
// followed, JSON only) and the cache (max-age clamped to [60 s, 24 h],
// refetched once stale, bounded in size).  The documents are served by this
// test on loopback, which the development setting allows; that the setting
// is off by default is shown in sdk.test.mjs.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startServer } from '../../harness/index.mjs';

const CB = 'http://127.0.0.1:43999/callback';
let srv, docs;

function docServer() {
  const hits = [];
  const hanging = [];
  const server = http.createServer((req, res) => {
    hits.push(req.url);
    const base = `http://127.0.0.1:${server.address().port}`;
    const url = `${base}${req.url}`;
    const doc = { client_id: url, client_name: `Doc ${req.url}`, redirect_uris: [CB], token_endpoint_auth_method: 'none' };
    if (req.url === '/slow.json') { hanging.push(res); return; }            // never answers
    if (req.url === '/redirect.json') { res.writeHead(302, { Location: `${base}/long.json` }); res.end(); return; }
    if (req.url === '/html.json') { res.writeHead(200, { 'Content-Type': 'text/html' }); res.end('<html>hi</html>'); return; }
    const maxAge = req.url === '/long.json' ? 999999 : req.url === '/short.json' ? 1 : 600;
    res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': `max-age=${maxAge}` });
    res.end(JSON.stringify(doc));
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({
    server, hits, hanging, url: (p) => `http://127.0.0.1:${server.address().port}${p}`,
    count: (p) => hits.filter((h) => h === p).length,
  })));
}

before(async () => {
  docs = await docServer();
  srv = await startServer({ name: 'oauth-cimd', env: { GATEHOUSE_DEV_ALLOW_PRIVATE_CIMD: 'true', GATEHOUSE_OAUTH_CIMD_CACHE_MAX: '3' } });
});
after(async () => {
  assert.equal(await srv.stop(), 0);
  for (const r of docs.hanging) r.destroy();
  docs.server.close();
});

async function authorize(clientId) {
  const q = new URLSearchParams({ response_type: 'code', client_id: clientId, redirect_uri: CB,
    code_challenge: 'a'.repeat(43), code_challenge_method: 'S256' });
  const res = await fetch(`${srv.url}/oauth/authorize?${q}`, { redirect: 'manual' });
  const body = await res.text();
  return { status: res.status, body, location: res.headers.get('location') };
}

const cacheSeconds = (id) => Number(srv.cluster.sql(
  `SELECT round(extract(epoch from cache_expires_at - now())) FROM oauth_clients WHERE client_id = '${id}'`));

test('a good document is fetched once and cached; max-age is clamped to [60 s, 24 h]', async () => {
  const long = docs.url('/long.json'), short = docs.url('/short.json');
  assert.equal((await authorize(long)).status, 303, 'valid client: on to sign-in');
  assert.equal((await authorize(long)).status, 303);
  assert.equal(docs.count('/long.json'), 1, 'served from the cache the second time');
  const l = cacheSeconds(long);
  assert.ok(l <= 86400 && l > 86000, `max-age=999999 cached for ${l} s`);
  assert.equal((await authorize(short)).status, 303);
  const s = cacheSeconds(short);
  assert.ok(s >= 55 && s <= 60, `max-age=1 cached for ${s} s`);
});

test('a stale cache entry is fetched again', async () => {
  const id = docs.url('/long.json');
  const before = docs.count('/long.json');
  srv.cluster.sql(`UPDATE oauth_clients SET cache_expires_at = now() - interval '1 second' WHERE client_id = '${id}'`);
  assert.equal((await authorize(id)).status, 303);
  assert.equal(docs.count('/long.json'), before + 1);
  assert.ok(cacheSeconds(id) > 86000);
});

test('a document that never answers is given up after 5 seconds', async () => {
  const t0 = Date.now();
  const r = await authorize(docs.url('/slow.json'));
  const took = Date.now() - t0;
  assert.equal(r.status, 400);
  assert.equal(r.location, null);
  assert.match(r.body, /could not be fetched/);
  assert.ok(took >= 4500 && took < 20000, `gave up after ${took} ms`);
  assert.equal(docs.count('/slow.json'), 1);
});

test('redirects are not followed; a body that is not JSON is refused', async () => {
  const redirect = await authorize(docs.url('/redirect.json'));
  assert.equal(redirect.status, 400);
  assert.equal(redirect.location, null);
  const before = docs.count('/long.json');
  await authorize(docs.url('/redirect.json'));
  assert.equal(docs.count('/long.json'), before, 'the redirect target was never requested');
  const html = await authorize(docs.url('/html.json'));
  assert.equal(html.status, 400);
  assert.match(html.body, /not a JSON object/);
  // neither was cached as a client
  assert.equal(srv.cluster.sql(`SELECT count(*) FROM oauth_clients WHERE client_id IN ('${docs.url('/redirect.json')}', '${docs.url('/html.json')}')`), '0');
});

test('the cache is bounded: past the limit the least recently fetched unused documents go', async () => {
  const ids = ['/a.json', '/b.json', '/c.json', '/d.json', '/e.json'].map((p) => docs.url(p));
  for (const id of ids) assert.equal((await authorize(id)).status, 303, id);
  const kept = srv.cluster.sql(`SELECT client_id FROM oauth_clients WHERE kind = 'cimd' ORDER BY client_id`).split('\n').filter(Boolean);
  assert.equal(kept.length, 3, kept.join(' '));
  for (const id of ids.slice(-3)) assert.ok(kept.includes(id), `${id} kept`);
  // an evicted one is simply fetched again when used
  const n = docs.count('/a.json');
  assert.equal((await authorize(ids[0])).status, 303);
  assert.equal(docs.count('/a.json'), n + 1);
});
