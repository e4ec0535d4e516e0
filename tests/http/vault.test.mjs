// The sealed vault's wraps (authz/vault.c, docs/VAULT.md), made where a
// member's secrets are: a password sign-in gives the browser the
// password-derived key; PATs made in the console and OAuth codes are
// wrapped under it; the code exchange and each refresh move the wrap to
// the new tokens.  Each wrap is opened here with Node's own crypto and the
// credential, and must hold the private key of the stored public key.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { startServer, createUser, secret, gatehouse } from '../harness/index.mjs';
import { fullFlow, signedIn, token } from './oauth/lib.mjs';

let srv, user, c, agentId, userId;
before(async () => {
  srv = await startServer({ name: 'vault' });
  user = createUser(srv, {});
  c = await signedIn(srv, user);
  agentId = srv.cluster.sql(`SELECT id FROM agents WHERE slug = 'default'`);
  userId = srv.cluster.sql(`SELECT id FROM users WHERE email = '${user.email}'`);
});
after(async () => { assert.equal(await srv.stop(), 0); });

const sha = (s) => crypto.createHash('sha256').update(s).digest('hex');
const X25519_PKCS8 = Buffer.from('302e020100300506032b656e04220420', 'hex');

/* Opens the wrap of (kind, secret) with the secret, as vault.c derives it;
   returns the public key (hex) of the unwrapped private key, or null. */
function openWrap(kind, secretValue, hash = sha(secretValue)) {
  const row = srv.cluster.sql(`SELECT w.wrapped, encode(w.salt, 'hex'), encode(k.public_key, 'hex')
    FROM vault_wraps w JOIN vault_keys k USING (agent_id, user_id)
    WHERE w.kind = '${kind}' AND w.cred_hash = '${hash}'`);
  if (!row) return null;
  const [wrapped, salt, pub] = row.split('|');
  const label = `gatehouse vault wrap v1|${kind}|${agentId}|${userId}`;
  const key = Buffer.from(crypto.hkdfSync('sha256', Buffer.from(secretValue), Buffer.from(salt, 'hex'), label, 32));
  const raw = Buffer.from(wrapped, 'base64url');
  const d = crypto.createDecipheriv('aes-256-gcm', key, raw.subarray(0, 12));
  d.setAAD(Buffer.from(label));
  d.setAuthTag(raw.subarray(12, 28));
  let priv;
  try { priv = Buffer.concat([d.update(raw.subarray(28)), d.final()]); } catch { return null; }
  const pk = crypto.createPrivateKey({ key: Buffer.concat([X25519_PKCS8, priv]), format: 'der', type: 'pkcs8' });
  const x = Buffer.from(crypto.createPublicKey(pk).export({ format: 'jwk' }).x, 'base64url').toString('hex');
  assert.equal(x, pub, 'the wrap holds the private key of the stored public key');
  return x;
}

async function webPat(client, name) {
  const res = await client.form('/profile/tokens', '/profile/tokens', { name, agent: 'default', expires_days: '30' });
  const html = await res.text();
  assert.equal(res.status, 201, html);
  return secret(html.match(/id="new-token">([^<]+)</)[1]);
}

test('a password sign-in gives the browser the vault key, never in the clear', async () => {
  assert.ok(c.jar.has('gh_vault'), 'the vault cookie is set at sign-in');
  const v = c.jar.get('gh_vault');
  assert.equal(srv.cluster.sql(`SELECT count(*) FROM vault_browsers WHERE id_hash = '${sha(v)}'`), '1');
  assert.equal(srv.cluster.sql(`SELECT count(*) FROM vault_users WHERE user_id = '${userId}'`), '1');
});

test('console PATs are wrapped: the first makes the key, the next is unlocked through the password', async () => {
  assert.equal(srv.cluster.sql(`SELECT count(*) FROM vault_keys WHERE user_id = '${userId}'`), '0');
  const p1 = await webPat(c, 'first');
  const pub = openWrap('pat', p1);
  assert.ok(pub);
  assert.equal(srv.cluster.sql(`SELECT count(*) FROM vault_wraps WHERE kind = 'password' AND user_id = '${userId}'`), '1');
  const p2 = await webPat(c, 'second');
  assert.equal(openWrap('pat', p2), pub, 'the same key pair');
  assert.equal(openWrap('pat', p2, sha(p1)), null, 'one PAT does not open another one\'s wrap');
  // a new sign-in (another browser) unlocks it again through the password
  const c2 = await signedIn(srv, user);
  assert.equal(openWrap('pat', await webPat(c2, 'third')), pub);
});

test('a CLI PAT of a member whose key exists has no wrap (nothing unlocked it)', async () => {
  const r = gatehouse(srv, ['pat', 'create', '--email', user.email, '--agent', 'default', '--name', 'cli']);
  assert.equal(r.code, 0, r.stderr);
  const t = secret(r.stdout.match(/gth_pat_\S+/)[0]);
  assert.equal(openWrap('pat', t), null);
});

test('the OAuth code, then each pair: the wrap moves with rotation', async () => {
  const pub = srv.cluster.sql(`SELECT encode(public_key, 'hex') FROM vault_keys WHERE user_id = '${userId}'`);
  const d = await fullFlow(srv, c, { scope: 'mcp offline_access' });
  assert.equal(openWrap('code', d.code), null, 'the code\'s wrap is gone after the exchange');
  assert.equal(openWrap('access', d.tokens.access_token), pub);
  assert.equal(openWrap('refresh', d.tokens.refresh_token), pub);
  const r = await token(srv, { grant_type: 'refresh_token', refresh_token: d.tokens.refresh_token, client_id: d.client.client_id });
  assert.equal(r.status, 200);
  assert.equal(openWrap('access', r.body.access_token), pub);
  assert.equal(openWrap('refresh', r.body.refresh_token), pub);
  assert.equal(openWrap('refresh', d.tokens.refresh_token), null, 'the rotated refresh token\'s wrap is gone');
  // the slow path (a narrowed scope) moves it too
  const n = await token(srv, { grant_type: 'refresh_token', refresh_token: r.body.refresh_token, client_id: d.client.client_id, scope: 'mcp' });
  assert.equal(n.status, 200);
  assert.equal(openWrap('access', n.body.access_token), pub);
  assert.equal(openWrap('refresh', n.body.refresh_token), pub);
});

test('sign-out drops the browser\'s key; removal drops the member\'s', async () => {
  const v = c.jar.get('gh_vault');
  const res = await c.form('/profile', '/logout', {});
  await res.arrayBuffer();
  assert.equal(srv.cluster.sql(`SELECT count(*) FROM vault_browsers WHERE id_hash = '${sha(v)}'`), '0');
  const m = gatehouse(srv, ['member', 'remove', '--agent', 'default', '--email', user.email]);
  assert.equal(m.code, 0, m.stderr);
  assert.equal(srv.cluster.sql(`SELECT count(*) FROM vault_keys WHERE user_id = '${userId}'`), '0');
  assert.equal(srv.cluster.sql(`SELECT count(*) FROM vault_wraps WHERE user_id = '${userId}'`), '0');
});
