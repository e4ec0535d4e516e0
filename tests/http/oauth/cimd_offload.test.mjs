// A client_id whose metadata document never arrives does not stall the
// server: with one HTTP server thread (GATEHOUSE_HTTP_THREADS=1) and a
// document server that accepts connections and never answers, other
// requests are answered while the authorize request waits for its document;
// that one ends in the authorize error page once the 5 s budget is spent.
// Requests naming the same document share one fetch, and a failed fetch is
// remembered: asking again within the minute does not contact the document
// server again.  (Loopback documents need the development setting.)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { startServer } from '../../harness/index.mjs';
import { register, token } from './lib.mjs';

const CB = 'http://127.0.0.1:43998/callback';
let srv, docs;
const held = [];
let connections = 0;

before(async () => {
  // accepts, reads, never answers
  docs = net.createServer((sock) => {
    connections++;
    sock.on('error', () => {});
    held.push(sock);
  });
  await new Promise((resolve) => docs.listen(0, '127.0.0.1', resolve));
  srv = await startServer({ name: 'oauth-cimd-offload',
    env: { GATEHOUSE_HTTP_THREADS: '1', GATEHOUSE_DEV_ALLOW_PRIVATE_CIMD: 'true' } });
});

after(async () => {
  for (const s of held) s.destroy();
  await new Promise((resolve) => docs.close(resolve));
  if (srv) assert.equal(await srv.stop(), 0);
});

async function authorize(clientId) {
  const q = new URLSearchParams({ response_type: 'code', client_id: clientId, redirect_uri: CB,
    code_challenge: 'a'.repeat(43), code_challenge_method: 'S256' });
  const res = await fetch(`${srv.url}/oauth/authorize?${q}`, { redirect: 'manual' });
  return { status: res.status, type: res.headers.get('content-type'), location: res.headers.get('location'),
    body: await res.text() };
}

async function until(pred, what) {
  for (let i = 0; i < 600; i++) {
    if (pred()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`timed out waiting for ${what}`);
}

test('a metadata document that never arrives stalls nothing else (one server thread), and its failure is remembered', async () => {
  const reg = await register(srv, { redirect_uris: [CB] });
  assert.equal(reg.status, 201);
  const stuck = `http://127.0.0.1:${docs.address().port}/client.json`;

  const t0 = Date.now();
  let firstDone = false;
  const first = authorize(stuck).then((r) => { firstDone = true; return { ...r, took: Date.now() - t0 }; });
  await until(() => connections === 1, 'the fetch to reach the document server');

  // meanwhile, on the only server thread: a second request for the same
  // document (it waits for the same fetch), discovery, and another client
  let secondDone = false;
  const second = authorize(stuck).then((r) => { secondDone = true; return r; });
  const meta = await fetch(`${srv.url}/.well-known/oauth-authorization-server`);
  assert.equal(meta.status, 200);
  assert.equal((await meta.json()).issuer, srv.url);
  const other = await authorize(reg.body.client_id);
  assert.equal(other.status, 303, 'a registered client goes on to sign-in');
  assert.match(other.location, /^\/login\?next=/);
  assert.equal(firstDone, false, 'the first authorize still waits for its document');
  assert.equal(secondDone, false, 'and so does the second');

  const r1 = await first;
  assert.equal(r1.status, 400);
  assert.equal(r1.location, null, 'an unknown client is never redirected to');
  assert.match(r1.type, /^text\/html/);
  assert.match(r1.body, /This application is not registered: The client metadata document could not be fetched\./);
  assert.ok(r1.took >= 4500 && r1.took < 30000, `gave up after ${r1.took} ms`);
  const r2 = await second;
  assert.equal(r2.status, 400);
  assert.match(r2.body, /could not be fetched/);
  assert.equal(connections, 1, 'both requests shared one fetch');

  // within the minute: refused from memory, the document server not contacted again
  const r3 = await authorize(stuck);
  assert.equal(r3.status, 400);
  assert.match(r3.body, /could not be fetched/);
  const t = await token(srv, { grant_type: 'authorization_code', code: 'x', code_verifier: 'a'.repeat(43), client_id: stuck });
  assert.equal(t.status, 401);
  assert.equal(t.body.error, 'invalid_client');
  assert.equal(connections, 1, 'the failed document was not fetched again');
});

test('fresh metadata documents from one address are rate limited before they can start fetches (429, Retry-After)', async () => {
  const lim = await startServer({ name: 'oauth-cimd-rate',
    env: { GATEHOUSE_DEV_ALLOW_PRIVATE_CIMD: 'true', GATEHOUSE_RATE_CIMD_PER_MIN: '3' } });
  try {
    const before = connections;
    const asked = async (i) => {
      const q = new URLSearchParams({ response_type: 'code', client_id: `http://127.0.0.1:${docs.address().port}/c${i}.json?n=${i}`,
        redirect_uri: CB, code_challenge: 'a'.repeat(43), code_challenge_method: 'S256' });
      const res = await fetch(`${lim.url}/oauth/authorize?${q}`, { redirect: 'manual', signal: AbortSignal.timeout(500) }).catch(() => null);
      if (res) await res.text();
      return res;
    };
    // three fresh URLs are taken (their fetches hang: the requests are left waiting)
    for (let i = 0; i < 3; i++) assert.equal(await asked(i), null, `request ${i} waits for its document`);
    await until(() => connections === before + 3, 'three fetches');
    // the fourth is refused at once and starts no fetch
    const q = new URLSearchParams({ response_type: 'code', client_id: `http://127.0.0.1:${docs.address().port}/c9.json`,
      redirect_uri: CB, code_challenge: 'a'.repeat(43), code_challenge_method: 'S256' });
    const res = await fetch(`${lim.url}/oauth/authorize?${q}`, { redirect: 'manual' });
    assert.equal(res.status, 429, await res.text());
    assert.ok(Number(res.headers.get('retry-after')) > 0, 'Retry-After');
    assert.equal(res.headers.get('location'), null, 'never a redirect');
    const t = await token(lim, { grant_type: 'authorization_code', code: 'x', code_verifier: 'a'.repeat(43),
      client_id: `http://127.0.0.1:${docs.address().port}/c10.json` });
    assert.equal(t.status, 429, JSON.stringify(t.body));
    assert.equal(t.body.error, 'slow_down');
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(connections, before + 3, 'no fetch started for the refused ones');
  } finally {
    assert.equal(await lim.stop(), 0);
  }
});
