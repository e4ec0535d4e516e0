// The peer: oidc-provider (npm) configured to do the same work as Gatehouse
// (public client, PKCE S256, rotating refresh tokens), with its tokens kept
// durably in the same PostgreSQL through a small adapter.
//   node oidc-peer.mjs PORT DATABASE_URL
// Prints "@@ready" on stdout (its own notices share stdout), then serves.  On stdin, a JSON line
// {"codes":N,"refresh":M} asks for N fresh codes and M refresh tokens made
// through the provider's own models (the interactive login is not what is
// being measured); it answers with one line, @@ and JSON.
import crypto from 'node:crypto';
import readline from 'node:readline';
import Provider from 'oidc-provider';
import pg from 'pg';

const [port, dbUrl] = process.argv.slice(2);
const pool = new pg.Pool({ connectionString: dbUrl, max: 16 });
await pool.query(`CREATE TABLE IF NOT EXISTS oidc_payloads (
  id text NOT NULL, type text NOT NULL, payload jsonb NOT NULL, grant_id text, uid text, user_code text,
  expires_at timestamptz, consumed_at timestamptz, PRIMARY KEY (id, type))`);
await pool.query('CREATE INDEX IF NOT EXISTS oidc_payloads_grant ON oidc_payloads (grant_id)');

class PgAdapter {
  constructor(name) { this.name = name; }
  async upsert(id, payload, expiresIn) {
    await pool.query(`INSERT INTO oidc_payloads (id, type, payload, grant_id, uid, user_code, expires_at)
      VALUES ($1, $2, $3, $4, $5, $6, now() + make_interval(secs => $7))
      ON CONFLICT (id, type) DO UPDATE SET payload = EXCLUDED.payload, expires_at = EXCLUDED.expires_at`,
    [id, this.name, payload, payload.grantId ?? null, payload.uid ?? null, payload.userCode ?? null, expiresIn ?? 3600 * 24 * 365]);
  }
  async find(id) {
    const r = await pool.query(`SELECT payload, consumed_at FROM oidc_payloads
      WHERE id = $1 AND type = $2 AND (expires_at IS NULL OR expires_at > now())`, [id, this.name]);
    if (!r.rows.length) return undefined;
    return { ...r.rows[0].payload, ...(r.rows[0].consumed_at ? { consumed: Math.floor(r.rows[0].consumed_at / 1000) } : {}) };
  }
  async findByUid(uid) {
    const r = await pool.query('SELECT id FROM oidc_payloads WHERE uid = $1 AND type = $2', [uid, this.name]);
    return r.rows.length ? this.find(r.rows[0].id) : undefined;
  }
  async findByUserCode(code) {
    const r = await pool.query('SELECT id FROM oidc_payloads WHERE user_code = $1 AND type = $2', [code, this.name]);
    return r.rows.length ? this.find(r.rows[0].id) : undefined;
  }
  async consume(id) {
    await pool.query('UPDATE oidc_payloads SET consumed_at = now() WHERE id = $1 AND type = $2', [id, this.name]);
  }
  async destroy(id) {
    await pool.query('DELETE FROM oidc_payloads WHERE id = $1 AND type = $2', [id, this.name]);
  }
  async revokeByGrantId(grantId) {
    await pool.query('DELETE FROM oidc_payloads WHERE grant_id = $1', [grantId]);
  }
}

const REDIRECT = 'http://127.0.0.1:9/callback';
const provider = new Provider(`http://127.0.0.1:${port}`, {
  adapter: PgAdapter,
  clients: [{
    client_id: 'bench', token_endpoint_auth_method: 'none', redirect_uris: [REDIRECT],
    grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'],
  }],
  scopes: ['openid', 'offline_access', 'mcp'],
  pkce: { required: () => true },
  rotateRefreshToken: () => true,
  issueRefreshToken: async () => true,
  features: { devInteractions: { enabled: false } },
  findAccount: async (ctx, sub) => ({ accountId: sub, claims: async () => ({ sub }) }),
  ttl: { IdToken: 3600, AccessToken: 3600, AuthorizationCode: 600, RefreshToken: 86400 * 30, Grant: 86400 * 30 },
});
provider.proxy = false;

async function makeCode(client) {
  const verifier = crypto.randomBytes(32).toString('base64url');
  const challenge = crypto.createHash('sha256').update(verifier).digest('base64url');
  const grant = new provider.Grant({ accountId: 'bench-user', clientId: 'bench' });
  grant.addOIDCScope('offline_access');   // no openid: no ID token to sign, like Gatehouse
  const grantId = await grant.save();
  const code = new provider.AuthorizationCode({
    accountId: 'bench-user', client, grantId, scope: 'offline_access', redirectUri: REDIRECT,
    codeChallenge: challenge, codeChallengeMethod: 'S256',
  });
  return { code: await code.save(), verifier };
}

async function exchange(code, verifier) {
  const res = await fetch(`http://127.0.0.1:${port}/token`, {
    method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'authorization_code', client_id: 'bench', code, code_verifier: verifier, redirect_uri: REDIRECT }),
  });
  const j = await res.json();
  if (!j.refresh_token) throw new Error(`oidc-provider gave no refresh token: ${JSON.stringify(j)}`);
  return j.refresh_token;
}

provider.listen(Number(port), '127.0.0.1', () => process.stdout.write('@@ready\n'));
const rl = readline.createInterface({ input: process.stdin });
rl.on('line', async (line) => {
  const want = JSON.parse(line);
  const client = await provider.Client.find('bench');
  const codes = [];
  for (let i = 0; i < (want.codes ?? 0); i++) codes.push(await makeCode(client));
  const refresh = [];
  for (let i = 0; i < (want.refresh ?? 0); i++) {
    const c = await makeCode(client);
    refresh.push(await exchange(c.code, c.verifier));
  }
  process.stdout.write('@@' + JSON.stringify({ codes, refresh, redirect_uri: REDIRECT, client_id: 'bench' }) + '\n');
});
