// The credential cache of the MCP endpoint (authz/credcache.c): a repeated
// call is answered from memory (gatehouse_auth_cache_hits), and every way of
// revoking on this instance — a PAT at /profile/tokens, a grant at
// /profile/connections, an admin revoking a whole client — makes the very
// next call 401; a change made by another process (a user disabled by the
// CLI, a second instance sharing the database) as soon as its NOTIFY arrives.
// The caches lean on the LISTEN connection: one lost silently (no FIN, no
// reset: a NAT or firewall that dropped its state) must not leave a
// process serving a revoked credential from memory for ever; nor one
// killed outright (pg_terminate_backend), whose notifications sent while
// it reconnects are lost.
// /mcp answers whatever the gateway answers behind authentication: the
// tests assert 401 against not-401.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { startServer, startPgCut, createUser, gatehouse, secret, sleep } from '../harness/index.mjs';
import { fullFlow, signedIn, mcp, token } from './oauth/lib.mjs';

const KEY = secret(crypto.randomBytes(32).toString('hex'));
let srv, other, proxy, viaProxy;

before(async () => {
  // no grace window: a rotated refresh token presented again is a replay at once
  srv = await startServer({ name: 'authcache', env: { GATEHOUSE_SERVER_KEY: KEY, GATEHOUSE_REFRESH_GRACE_SECONDS: '0' } });
  // a second instance on the same database and server key; its access
  // tokens live 2 s, to see expiry honoured on cached entries
  other = await startServer({ name: 'authcache-b', cluster: srv.cluster,
    env: { GATEHOUSE_SERVER_KEY: KEY, GATEHOUSE_ACCESS_TOKEN_TTL: '2' } });
  // a third, whose connections to the database pass through a TCP proxy
  proxy = await startPgCut(srv.cluster);
  viaProxy = await startServer({ name: 'authcache-c', cluster: srv.cluster,
    env: { GATEHOUSE_SERVER_KEY: KEY, GATEHOUSE_DATABASE_URL: proxy.url } });
});
after(async () => {
  assert.equal(await viaProxy.stop(), 0);
  proxy.stop();
  assert.equal(await other.stop(), 0);
  assert.equal(await srv.stop(), 0);
});

async function counters(s) {
  const text = await (await fetch(`${s.url}/metrics`)).text();
  const get = (name) => {
    const m = text.match(new RegExp(`^${name} (\\d+)$`, 'm'));
    assert.ok(m, `${name} on /metrics`);
    return Number(m[1]);
  };
  return { hits: get('gatehouse_auth_cache_hits'), misses: get('gatehouse_auth_cache_misses') };
}

async function status(s, tok, path = '/mcp') {
  return (await mcp(s, path, tok)).status;
}

/* A call that the cache answered: the hit counter moves.  The listener of
 * a fresh server may take a moment to LISTEN; until then nothing is cached. */
async function cachedCall(s, tok, path = '/mcp') {
  const until = Date.now() + 5000;
  for (;;) {
    const before = await counters(s);
    const st = await status(s, tok, path);
    assert.notEqual(st, 401, 'the credential works');
    const after = await counters(s);
    if (after.hits > before.hits) return;
    assert.ok(Date.now() < until, 'the credential was never served from the cache');
    await sleep(50);
  }
}

function pat(s, email, agent = 'default') {
  const r = gatehouse(s, ['pat', 'create', '--email', email, '--agent', agent, '--name', `k${Date.now()}`]);
  assert.equal(r.code, 0, r.stderr);
  return secret(r.stdout.trim());
}

test('the second call with the same token is a cache hit, not a database lookup', async () => {
  const u = createUser(srv, {});
  await cachedCall(srv, pat(srv, u.email));          // the listener is up from here on
  const t = pat(srv, u.email);
  const c0 = await counters(srv);
  assert.notEqual(await status(srv, t), 401);
  const c1 = await counters(srv);
  assert.equal(c1.misses, c0.misses + 1, 'first call: a miss');
  assert.equal(c1.hits, c0.hits);
  assert.notEqual(await status(srv, t), 401);
  const c2 = await counters(srv);
  assert.equal(c2.hits, c1.hits + 1, 'second call: a hit');
  assert.equal(c2.misses, c1.misses);
  // unknown tokens are never cached: each one asks again and stays 401
  const bogus = secret(`gth_oat_${crypto.randomBytes(16).toString('hex')}`);
  assert.equal(await status(srv, bogus), 401);
  assert.equal(await status(srv, bogus), 401);
  assert.equal((await counters(srv)).hits, c2.hits);
  // a cached credential is still bound to its own agent
  gatehouse(srv, ['agent', 'add', '--slug', 'cache-other', '--name', 'Other']);
  assert.equal(await status(srv, t, '/agents/cache-other/mcp'), 401);
  assert.notEqual(await status(srv, t, '/agents/default/mcp'), 401);
});

test('a PAT revoked at /profile/tokens is refused by the very next call', async () => {
  const u = createUser(srv, {});
  const c = await signedIn(srv, u);
  const res = await c.form('/profile/tokens', '/profile/tokens', { name: 'cached', agent: 'default', expires_days: '7' });
  assert.equal(res.status, 201);
  const t = secret((await res.text()).match(/id="new-token">([^<]+)</)[1]);
  await cachedCall(srv, t);
  const id = (await (await c.get('/profile/tokens')).text()).match(/name="id" value="([0-9a-f-]{36})"/)[1];
  assert.equal((await c.form('/profile/tokens', '/profile/tokens/revoke', { id })).status, 303);
  assert.equal(await status(srv, t), 401);
});

test('a grant disconnected at /profile/connections is refused by the very next call', async () => {
  const u = createUser(srv, {});
  const c = await signedIn(srv, u);
  const d = await fullFlow(srv, c, { meta: { client_name: 'Cached App' } });
  await cachedCall(srv, d.tokens.access_token);
  const grant = (await (await c.get('/profile/connections')).text()).match(/name="grant" value="([0-9a-f-]{36})"/)[1];
  assert.equal((await c.form('/profile/connections', '/profile/connections/revoke', { grant })).status, 303);
  assert.equal(await status(srv, d.tokens.access_token), 401);
});

test('a user disabled with the CLI (another process) is refused as soon as its NOTIFY arrives', async () => {
  const u = createUser(srv, {});
  const c = await signedIn(srv, u);
  const t = pat(srv, u.email);
  const d = await fullFlow(srv, c, { meta: { client_name: 'Soon Disabled' } });
  await cachedCall(srv, t);
  await cachedCall(srv, d.tokens.access_token);
  const r = gatehouse(srv, ['user', 'disable', '--email', u.email]);
  assert.equal(r.code, 0, r.stderr);
  // another process's change reaches this one through NOTIFY, on the
  // listener thread: on a loaded machine that can lag the next request
  // by a few milliseconds (the same process flushes synchronously, above)
  for (let i = 0; i < 50 && (await status(srv, t)) !== 401; i++) await sleep(100);
  assert.equal(await status(srv, t), 401);
  assert.equal(await status(srv, d.tokens.access_token), 401);
});

test('an admin revoking every grant of a client: the very next call of each is refused', async () => {
  const admin = await signedIn(srv, createUser(srv, { admin: true }));
  const c1 = await signedIn(srv, createUser(srv, {}));
  const d = await fullFlow(srv, c1, { meta: { client_name: 'Revoked Client' } });
  const keep = await fullFlow(srv, c1, { meta: { client_name: 'Kept Client' } });
  await cachedCall(srv, d.tokens.access_token);
  await cachedCall(srv, keep.tokens.access_token);
  const res = await admin.form('/admin/connections', '/admin/connections/revoke-client', { client_id: d.client.client_id });
  assert.equal(res.status, 303);
  assert.equal(await status(srv, d.tokens.access_token), 401);
  // the flush is whole, the other client's token is looked up again and works
  assert.notEqual(await status(srv, keep.tokens.access_token), 401);
});

test('two instances: revoking on one makes the other refuse within 5 s', async () => {
  const u = createUser(srv, {});
  const c = await signedIn(srv, u);
  const t = pat(srv, u.email);
  await cachedCall(other, t);
  const d = await fullFlow(srv, c, { meta: { client_name: 'Two Instances' } });
  // the user's only PAT, cached on B, revoked on A
  const id = (await (await c.get('/profile/tokens')).text()).match(/name="id" value="([0-9a-f-]{36})"/)[1];
  assert.equal((await c.form('/profile/tokens', '/profile/tokens/revoke', { id })).status, 303);
  const until = Date.now() + 5000;
  while (await status(other, t) !== 401) {
    assert.ok(Date.now() < until, 'instance B still accepts the revoked PAT after 5 s');
    await sleep(25);
  }
  // and an OAuth grant disconnected on A
  await cachedCall(other, d.tokens.access_token);
  const grant = (await (await c.get('/profile/connections')).text()).match(/name="grant" value="([0-9a-f-]{36})"/)[1];
  await c.form('/profile/connections', '/profile/connections/revoke', { grant });
  const until2 = Date.now() + 5000;
  while (await status(other, d.tokens.access_token) !== 401) {
    assert.ok(Date.now() < until2, 'instance B still accepts the disconnected grant after 5 s');
    await sleep(25);
  }
});

test('a cached access token stops working when it expires', async () => {
  const u = createUser(other, {});
  const c = await signedIn(other, u);
  const d = await fullFlow(other, c, { meta: { client_name: 'Short Lived' } });
  await cachedCall(other, d.tokens.access_token);
  assert.equal(d.tokens.expires_in, 2);
  await sleep(2100);
  assert.equal(await status(other, d.tokens.access_token), 401);
});

test('replays and RFC 7009 revocation stop cached access tokens at an agent endpoint: at once here, soon on the other instance', async () => {
  assert.equal(gatehouse(srv, ['agent', 'add', '--slug', 'cache-replay', '--name', 'Replay']).code, 0);
  const path = '/agents/cache-replay/mcp', resource = `${srv.url}${path}`;
  const c = await signedIn(srv, createUser(srv, { agents: ['cache-replay'] }));
  const cachedOnBoth = async (tok) => { await cachedCall(srv, tok, path); await cachedCall(other, tok, path); };
  const refusedOnBoth = async (tok, what) => {
    assert.equal(await status(srv, tok, path), 401, `${what}: the very next call here`);
    await refusedWithin(other, tok, 5000, `${what}: still accepted by the other instance after 5 s`, path);
  };

  // a rotated refresh token presented again revokes its chain
  const d = await fullFlow(srv, c, { meta: { client_name: 'Replayed Refresh' }, resource });
  const form = { grant_type: 'refresh_token', refresh_token: d.tokens.refresh_token, client_id: d.client.client_id };
  const r1 = await token(srv, form);
  assert.equal(r1.status, 200, JSON.stringify(r1.body));
  await cachedOnBoth(d.tokens.access_token);
  await cachedOnBoth(r1.body.access_token);
  assert.equal((await token(srv, form)).body.error, 'invalid_grant');
  await refusedOnBoth(d.tokens.access_token, 'refresh replay, the first access token');
  await refusedOnBoth(r1.body.access_token, 'refresh replay, the rotated access token');

  // a code exchanged twice revokes what it issued
  const e = await fullFlow(srv, c, { meta: { client_name: 'Replayed Code' }, resource });
  await cachedOnBoth(e.tokens.access_token);
  const again = await token(srv, { grant_type: 'authorization_code', code: e.code, redirect_uri: e.redirect,
    code_verifier: e.verifier, client_id: e.client.client_id, resource });
  assert.equal(again.body.error, 'invalid_grant');
  await refusedOnBoth(e.tokens.access_token, 'code replay');

  // RFC 7009 of the access token itself
  const f = await fullFlow(srv, c, { meta: { client_name: 'Revoked Access' }, resource });
  await cachedOnBoth(f.tokens.access_token);
  const rv = await fetch(`${srv.url}/oauth/revoke`, { method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ token: f.tokens.access_token, client_id: f.client.client_id }) });
  assert.equal(rv.status, 200);
  await refusedOnBoth(f.tokens.access_token, '/oauth/revoke');
});

/* Revoked by someone else (psql here, as another instance or the CLI would):
 * the row changes and PostgreSQL sends its NOTIFY. */
function revokePats(email) {
  srv.cluster.sql(`UPDATE pats SET revoked_at = now() WHERE revoked_at IS NULL AND user_id = (SELECT id FROM users WHERE email = '${email}')`);
}

async function refusedWithin(s, tok, ms, what, path = '/mcp') {
  const until = Date.now() + ms;
  while (await status(s, tok, path) !== 401) {
    assert.ok(Date.now() < until, what);
    await sleep(100);
  }
}

test('a LISTEN connection lost without a word: within seconds the cache steps aside and a revoked PAT is refused', async () => {
  const u = createUser(srv, {});
  const t = pat(srv, u.email);
  await cachedCall(viaProxy, t);
  assert.ok(await proxy.freezeListen() >= 1, 'the listener connection was frozen');
  revokePats(u.email);      // its NOTIFY never reaches viaProxy
  // the old listener heard nothing and stayed "live" for ever: the PAT
  // (no expiry) was served from memory until the process restarted
  await refusedWithin(viaProxy, t, 20000, 'a revoked PAT still accepted 20 s after its NOTIFY was lost');
  // and the listener came back on a new connection: the cache serves again
  const u2 = createUser(srv, {});
  await cachedCall(viaProxy, pat(srv, u2.email));
});

test("the listener's connection killed (pg_terminate_backend), then a revocation: refused, and the cache serves again", async () => {
  const u = createUser(srv, {});
  const t = pat(srv, u.email);
  await cachedCall(srv, t);
  srv.cluster.sql("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename = 'gatehouse' AND pid <> pg_backend_pid()",
    { user: 'pgadmin' });
  revokePats(u.email);
  // whether its NOTIFY found the listener back or not, the next call knows
  await refusedWithin(srv, t, 5000, 'a revoked PAT still accepted after the listener was killed');
  await cachedCall(srv, pat(srv, createUser(srv, {}).email));
});
