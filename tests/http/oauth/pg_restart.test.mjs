// The token endpoint's hot path runs a prepared statement (authz_rotate).
// After a PostgreSQL restart every pooled session is new: the statement
// must be prepared again before its first use there, not first run and
// found missing (an ERROR in PostgreSQL's log on every restart, and a
// wasted round trip), and the refresh must succeed.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { startServer, createUser, sleep } from '../../harness/index.mjs';
import { fullFlow, signedIn, token } from './lib.mjs';

let srv;
before(async () => {
  // one pooled connection: the refresh after the restart meets the session that was lost
  srv = await startServer({ name: 'oauth-pg-restart', env: { GATEHOUSE_DB_POOL_SIZE: '1' } });
});
after(async () => { assert.equal(await srv.stop(), 0); });

const pgLog = () => fs.readFileSync(path.join(srv.cluster.dir, 'postgres.log'), 'utf8');

test('the first refresh after a PostgreSQL restart succeeds without "prepared statement does not exist"', async () => {
  const c = await signedIn(srv, createUser(srv, {}));
  const { client, tokens } = await fullFlow(srv, c, { meta: { token_endpoint_auth_method: 'none' } });
  let rt = tokens.refresh_token;
  const refresh = async () => {
    const r = await token(srv, { grant_type: 'refresh_token', refresh_token: rt, client_id: client.client_id });
    if (r.status === 200) rt = r.body.refresh_token;
    return r;
  };
  assert.equal((await refresh()).status, 200, 'prepared and run once');
  for (let round = 0; round < 2; round++) {
    srv.cluster.stopServer('fast');
    srv.cluster.start();
    const before = pgLog().length;
    const r = await refresh();
    assert.equal(r.status, 200, `round ${round}: ${JSON.stringify(r.body)}`);
    assert.equal((await refresh()).status, 200);
    await sleep(200);
    assert.doesNotMatch(pgLog().slice(before), /prepared statement "authz_rotate" does not exist/);
  }
  assert.doesNotMatch(fs.readFileSync(srv.logFile, 'utf8'), /does not exist/);
});
