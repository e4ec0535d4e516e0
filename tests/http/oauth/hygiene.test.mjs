// Housekeeping that real deployments depend on: the token endpoint's rate
// limit, RFC 7592 edge cases, registered clients reaped when nobody uses
// them, and last-used times written in coalesced batches (never one write
// per request), flushed at shutdown too.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, startCluster, createUser, gatehouse, secret, sleep } from '../../harness/index.mjs';
import { fullFlow, register, signedIn, mcp, token } from './lib.mjs';

let cluster;
before(async () => { cluster = await startCluster(); });
after(async () => { await cluster.stop(); });

test('/oauth/token: 429 with Retry-After past the per-IP limit, in the OAuth error format', async () => {
  const srv = await startServer({ cluster, name: 'oauth-token-rate', env: { GATEHOUSE_RATE_TOKEN_PER_MIN: '5' } });
  try {
    let limited;
    // a window boundary may reset the count once: two windows' worth at most
    for (let i = 0; i < 12 && !limited; i++) {
      const r = await token(srv, { grant_type: 'refresh_token', refresh_token: 'gth_ort_x', client_id: 'nope' });
      if (r.status === 429) limited = r;
      else assert.equal(r.status, 401);
    }
    assert.ok(limited, 'no 429');
    const ra = Number(limited.headers.get('retry-after'));
    assert.ok(ra >= 1 && ra <= 60, `Retry-After ${ra}`);
    assert.equal(typeof limited.body.error, 'string');
    assert.equal(limited.headers.get('cache-control'), 'no-store');
    // other endpoints have their own budget
    assert.notEqual((await register(srv, {})).status, 429);
  } finally { assert.equal(await srv.stop(), 0); }
});

test('RFC 7592: a bad update changes nothing; each read and update rotates the registration access token; after DELETE the client and its tokens are gone', async () => {
  const srv = await startServer({ cluster, name: 'oauth-7592' });
  try {
    const c = await signedIn(srv, createUser(srv, {}));
    const d = await fullFlow(srv, c, { meta: { client_name: 'Managed' } });
    const uri = d.client.registration_client_uri;
    let auth = { Authorization: `Bearer ${d.client.registration_access_token}`, 'Content-Type': 'application/json' };
    for (const body of [{ client_id: 'someone-else', redirect_uris: ['https://x.example/cb'] },
      { client_id: d.client.client_id, redirect_uris: ['javascript:alert(1)'] },
      { client_id: d.client.client_id, redirect_uris: ['https://x.example/cb'], token_endpoint_auth_method: 'private_key_jwt' }]) {
      const res = await fetch(uri, { method: 'PUT', headers: auth, body: JSON.stringify(body) });
      assert.equal(res.status, 400, JSON.stringify(body));
      await res.arrayBuffer();
    }
    // the failed updates did not rotate the token: it still reads the client
    const read = await fetch(uri, { headers: auth });
    assert.equal(read.status, 200);
    const got = await read.json();
    assert.equal(got.client_name, 'Managed');
    assert.deepEqual(got.redirect_uris, [d.redirect]);
    // RFC 7592 3: every client information response carries a registration
    // access token; only its hash is stored, so each read issues a new one
    assert.equal(got.registration_client_uri, uri);
    assert.match(secret(got.registration_access_token), /^gth_rat_[0-9a-f]{64}$/);
    assert.notEqual(got.registration_access_token, d.client.registration_access_token);
    assert.equal(read.headers.get('cache-control'), 'no-store');
    const stale = await fetch(uri, { headers: auth });
    assert.equal(stale.status, 401, 'the presented token stopped working');
    assert.equal((await stale.json()).error, 'invalid_token');
    assert.match(stale.headers.get('www-authenticate'), /invalid_token/);
    auth = { ...auth, Authorization: `Bearer ${got.registration_access_token}` };
    // an update rotates it as well
    const put = await fetch(uri, { method: 'PUT', headers: auth,
      body: JSON.stringify({ client_id: d.client.client_id, redirect_uris: [d.redirect], client_name: 'Managed 2',
        grant_types: ['authorization_code', 'refresh_token'], token_endpoint_auth_method: 'none' }) });
    assert.equal(put.status, 200);
    const updated = await put.json();
    assert.equal(updated.client_name, 'Managed 2');
    assert.equal(updated.registration_client_uri, uri);
    assert.match(secret(updated.registration_access_token), /^gth_rat_[0-9a-f]{64}$/);
    const stalePut = await fetch(uri, { method: 'PUT', headers: auth,
      body: JSON.stringify({ client_id: d.client.client_id, redirect_uris: [d.redirect], client_name: 'Hijacked' }) });
    assert.equal(stalePut.status, 401);
    assert.equal((await stalePut.json()).error, 'invalid_token');
    auth = { ...auth, Authorization: `Bearer ${updated.registration_access_token}` };
    const again = await fetch(uri, { headers: auth });
    assert.equal(again.status, 200, 'the token from the update works');
    const latest = await again.json();
    assert.equal(latest.client_name, 'Managed 2');
    auth = { ...auth, Authorization: `Bearer ${secret(latest.registration_access_token)}` };
    // another client's registration token does not open this one
    const other = (await register(srv, {})).body;
    assert.equal((await fetch(uri, { headers: { Authorization: `Bearer ${other.registration_access_token}` } })).status, 401);
    assert.notEqual((await mcp(srv, '/mcp', d.tokens.access_token)).status, 401);
    assert.equal((await fetch(uri, { method: 'DELETE', headers: auth })).status, 204);
    assert.equal((await mcp(srv, '/mcp', d.tokens.access_token)).status, 401);
    const r = await token(srv, { grant_type: 'refresh_token', refresh_token: d.tokens.refresh_token, client_id: d.client.client_id });
    assert.equal(r.status, 401);
    assert.equal(r.body.error, 'invalid_client');
  } finally { assert.equal(await srv.stop(), 0); }
});

test('registered clients without a live token are reaped after the TTL; used ones and resource servers stay', async () => {
  const srv = await startServer({ cluster, name: 'oauth-reap', env: { GATEHOUSE_OAUTH_CLIENT_UNUSED_TTL: '60' } });
  try {
    const c = await signedIn(srv, createUser(srv, {}));
    const unused = (await register(srv, { client_name: 'Unused' })).body.client_id;
    const live = await fullFlow(srv, c, { meta: { client_name: 'Live' } });
    const dead = await fullFlow(srv, c, { meta: { client_name: 'Revoked' } });
    await fetch(`${srv.url}/oauth/revoke`, { method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token: dead.tokens.refresh_token, client_id: dead.client.client_id }) });
    await fetch(`${srv.url}/oauth/revoke`, { method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token: dead.tokens.access_token, client_id: dead.client.client_id }) });
    const fresh = (await register(srv, { client_name: 'Fresh' })).body.client_id;
    // a resource server only introspects: it holds no token of its own
    const rs = (await register(srv, { client_name: 'Resource Server', token_endpoint_auth_method: 'client_secret_basic',
      redirect_uris: ['https://rs.example/cb'] })).body.client_id;
    assert.equal(gatehouse(srv, ['client', 'introspection', '--client-id', rs, 'on']).code, 0);
    const ids = [unused, live.client.client_id, dead.client.client_id, rs];
    cluster.sql(`UPDATE oauth_clients SET created_at = now() - interval '2 minutes' WHERE client_id IN (${ids.map((i) => `'${i}'`).join(',')})`);
    await srv.restart();                                  // the reaper runs at start, then every 10 minutes
    const exists = (id) => cluster.sql(`SELECT count(*) FROM oauth_clients WHERE client_id = '${id}'`) === '1';
    for (let i = 0; i < 40 && (exists(unused) || exists(dead.client.client_id)); i++) await sleep(100);
    assert.ok(!exists(unused), 'unused client reaped');
    assert.ok(!exists(dead.client.client_id), 'client whose tokens are all revoked reaped');
    assert.ok(exists(live.client.client_id), 'client with a live token kept');
    assert.ok(exists(fresh), 'client younger than the TTL kept');
    assert.ok(exists(rs), 'designated resource server kept');
    assert.notEqual((await mcp(srv, '/mcp', live.tokens.access_token)).status, 401);
  } finally { assert.equal(await srv.stop(), 0); }
});

test('last-used times: one batched write for many requests, and a flush at shutdown', async () => {
  const srv = await startServer({ cluster, name: 'oauth-last-used' });
  try {
    const u = createUser(srv, {});
    const c = await signedIn(srv, u);
    const d = await fullFlow(srv, c, { meta: { client_name: 'Busy' } });
    const p = secret(gatehouse(srv, ['pat', 'create', '--email', u.email, '--agent', 'default', '--name', 'busy']).stdout.trim());
    // count every write of a last-used column (test-side instrumentation of the database)
    cluster.sql(`CREATE TABLE IF NOT EXISTS touch_log (tbl text, at timestamptz DEFAULT now());
      CREATE OR REPLACE FUNCTION touch_log_fn() RETURNS trigger LANGUAGE plpgsql AS
        $$ BEGIN INSERT INTO touch_log (tbl) VALUES (TG_TABLE_NAME); RETURN NEW; END $$;
      DROP TRIGGER IF EXISTS touch_g ON oauth_grants;
      DROP TRIGGER IF EXISTS touch_p ON pats;
      CREATE TRIGGER touch_g AFTER UPDATE OF last_used_at ON oauth_grants FOR EACH ROW EXECUTE FUNCTION touch_log_fn();
      CREATE TRIGGER touch_p AFTER UPDATE OF last_used_at ON pats FOR EACH ROW EXECUTE FUNCTION touch_log_fn();`);
    const writes = (tbl) => Number(cluster.sql(`SELECT count(*) FROM touch_log WHERE tbl = '${tbl}'`));
    const grantUsed = () => cluster.sql(`SELECT last_used_at IS NOT NULL FROM oauth_grants WHERE client_id = '${d.client.client_id}'`) === 't';
    const patUsed = () => cluster.sql(`SELECT last_used_at IS NOT NULL FROM pats WHERE name = 'busy'`) === 't';
    // the code exchange itself counts as a use; wait for that flush, then start counting
    for (let i = 0; i < 40 && !grantUsed(); i++) await sleep(100);
    await sleep(2200);
    cluster.sql('TRUNCATE touch_log');

    await Promise.all(Array.from({ length: 40 }, (_, i) => mcp(srv, '/mcp', i % 2 ? d.tokens.access_token : p)));
    assert.equal(writes('oauth_grants') + writes('pats'), 0, 'nothing written on the request path');
    for (let i = 0; i < 40 && !patUsed(); i++) await sleep(100);
    assert.ok(patUsed(), 'the PAT last-used time was flushed');
    assert.ok(writes('oauth_grants') <= 1 && writes('pats') <= 1,
      `40 requests -> ${writes('oauth_grants')} grant and ${writes('pats')} PAT writes`);
    const fresh = cluster.sql(`SELECT last_used_at > now() - interval '1 minute' FROM pats WHERE name = 'busy'`);
    assert.equal(fresh, 't');

    // pending times are not lost at shutdown
    cluster.sql(`UPDATE pats SET last_used_at = NULL WHERE name = 'busy'`);
    assert.notEqual((await mcp(srv, '/mcp', p)).status, 401);
    assert.equal(await srv.stopProcess(), 0);
    assert.ok(patUsed(), 'flushed at shutdown');
  } finally { assert.equal(await srv.stop(), 0); }
});
