// Agents and members (authz/members.c, invite.c, agent_pages.c): invites
// (single-use, bound to one email, 7 days, revocable, mailed), every state
// transition, what membership gates (PATs, consent, the MCP endpoint), the
// revocation of a rejected or removed member's credentials on this process
// and on a second one sharing the database, the kill switch, the CLI, and
// the migration that admits the holders of existing credentials.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { startServer, startCluster, startSmtpSink, createUser, gatehouse, secret, sleep, Client, inputValue }
  from '../harness/index.mjs';
import { fullFlow, signedIn, consent, register, pkce } from './oauth/lib.mjs';

let srv, other, sink;

before(async () => {
  sink = await startSmtpSink();
  srv = await startServer({ name: 'members', env: { GATEHOUSE_SMTP_URL: sink.url } });
  other = await startServer({ name: 'members-b', cluster: srv.cluster });
});
after(async () => {
  assert.equal(await other.stop(), 0);
  assert.equal(await srv.stop(), 0);
  await sink.stop();
});

/* The CLI without mail: it runs synchronously, so the sink in this very
   process could not answer it (mail is tested through the page). */
function cli(args, code = 0) {
  const r = gatehouse(srv, args, { env: { GATEHOUSE_SMTP_URL: '' } });
  assert.equal(r.code, code, `gatehouse ${args.join(' ')}: ${r.stderr}`);
  return r;
}

function addAgent(slug, more = []) { cli(['agent', 'add', '--slug', slug, '--name', `Agent ${slug}`, ...more]); }

function invite(agent, email, more = []) {
  const r = cli(['member', 'invite', '--agent', agent, '--email', email, ...more]);
  const link = secret(r.stdout.trim());
  secret(new URL(link).searchParams.get('token'));
  assert.match(r.stdout, /^http:\/\/127\.0\.0\.1:\d+\/invite\?token=[0-9a-f]{64}\n$/, 'the link alone on stdout');
  return link;
}

function states(agent) {
  const out = {};
  for (const line of cli(['member', 'list', '--agent', agent]).stdout.trim().split('\n').filter(Boolean)) {
    const [email, state, role] = line.split('\t');
    out[email] = `${state}/${role}`;
  }
  return out;
}

const pathOf = (link) => { const u = new URL(link); return u.pathname + u.search; };
const tokenOf = (link) => new URL(link).searchParams.get('token');

async function accept(c, link) {
  const page = await c.get(pathOf(link));
  const html = await page.text();
  const res = await c.post('/invite', { csrf: c.csrf, token: tokenOf(link) });
  return { page, html, res, text: await res.text() };
}

async function call(s, path, tok) {
  const res = await fetch(`${s.url}${path}`, {
    method: 'POST', headers: { 'Content-Type': 'application/json', Accept: 'application/json, text/event-stream',
      Authorization: `Bearer ${tok}` },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize',
      params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'members-test', version: '1' } } }),
  });
  return { status: res.status, text: await res.text() };
}

/* Polls until fn() holds (another process learns through NOTIFY). */
async function eventually(fn, what, ms = 8000) {
  const end = Date.now() + ms;
  for (;;) {
    if (await fn()) return;
    if (Date.now() > end) assert.fail(`not within ${ms} ms: ${what}`);
    await sleep(100);
  }
}

function pat(email, agent) {
  return secret(cli(['pat', 'create', '--email', email, '--agent', agent, '--name', `p${Date.now()}`]).stdout.trim());
}

function linkIn(html) {
  const link = secret(html.match(/id="invite-link">([^<]+)</)[1].replace(/&amp;/g, '&'));
  secret(new URL(link).searchParams.get('token'));
  return link;
}

test('invite → pending → approved; the link is shown once and mailed; a pending member gets no PAT', async () => {
  addAgent('crm');
  const admin = await signedIn(srv, createUser(srv, { admin: true, agents: [] }));
  const u = createUser(srv, { agents: [] });
  const sent = await admin.post('/agents/crm/members', { csrf: admin.csrf, action: 'invite', email: u.email });
  assert.equal(sent.status, 201);
  const shown = await sent.text();
  assert.match(shown, /it was also mailed/);
  const link = linkIn(shown);
  assert.match(link, /^http:\/\/127\.0\.0\.1:\d+\/invite\?token=[0-9a-f]{64}$/);
  const mail = await sink.waitFor(u.email);
  assert.ok(mail.text.includes(link), 'the mail carries the link');
  assert.match(mail.subject, /Agent crm/);
  assert.doesNotMatch(await (await admin.get('/agents/crm/members')).text(), /invite\?token=/, 'shown only once');
  assert.equal(states('crm')[u.email], 'invited/member');

  const c = await signedIn(srv, u);
  const a = await accept(c, link);
  assert.equal(a.page.status, 200);
  assert.match(a.html, /You are invited to the agent <strong>Agent crm<\/strong>/);
  assert.equal(a.res.status, 200);
  assert.match(a.text, /waits for an owner&#39;s approval|waits for an owner's approval/);
  assert.equal(states('crm')[u.email], 'pending/member');

  // pending: not offered the agent, and refused when naming it
  let page = await (await c.get('/profile/tokens')).text();
  assert.doesNotMatch(page, /value="crm"/);
  let res = await c.post('/profile/tokens', { csrf: c.csrf, name: 'x', agent: 'crm', expires_days: '' });
  assert.equal(res.status, 400);
  assert.match(await res.text(), /not a member of this agent/);

  cli(['member', 'approve', '--agent', 'crm', '--email', u.email]);
  assert.equal(states('crm')[u.email], 'approved/member');
  page = await (await c.get('/profile/tokens')).text();
  assert.match(page, /value="crm"/);
  res = await c.post('/profile/tokens', { csrf: c.csrf, name: 'mine', agent: 'crm', expires_days: '' });
  assert.equal(res.status, 201);
  const t = secret((await res.text()).match(/id="new-token">([^<]+)</)[1]);
  assert.notEqual((await call(srv, '/agents/crm/mcp', t)).status, 401);
});

test('refused invites: forged, malformed, reused, revoked, expired, for another email; bad CLI input', async () => {
  addAgent('inv');
  const u = createUser(srv, { agents: [] });
  const someone = createUser(srv, { agents: [] });
  const c = await signedIn(srv, u);

  for (const p of [`/invite?token=${crypto.randomBytes(32).toString('hex')}`, '/invite?token=nothex', '/invite']) {
    const r = await c.get(p);
    assert.equal(r.status, 404, p);
    assert.match(await r.text(), /This invite link is not valid/);
  }
  const forged = await c.post('/invite', { csrf: c.csrf, token: crypto.randomBytes(32).toString('hex') });
  assert.equal(forged.status, 404);

  // for another email: the page names it, accepting changes nothing
  const theirs = invite('inv', someone.email);
  const wrong = await accept(c, theirs);
  assert.equal(wrong.page.status, 403);
  assert.match(wrong.html, new RegExp(`is for <strong id="invite-email">${someone.email}</strong>`));
  assert.equal(wrong.res.status, 403);
  assert.equal(states('inv')[someone.email], 'invited/member');

  // revoked before use
  cli(['member', 'revoke', '--agent', 'inv', '--email', someone.email]);
  const revoked = await accept(await signedIn(srv, someone), theirs);
  assert.equal(revoked.page.status, 410);
  assert.match(revoked.html, /withdrawn/);
  assert.equal(revoked.res.status, 410);
  assert.equal(states('inv')[someone.email], 'removed/member');
  // an owner may still admit them directly: the row then names their account
  cli(['member', 'approve', '--agent', 'inv', '--email', someone.email]);
  assert.equal(states('inv')[someone.email], 'approved/member');
  assert.equal((await call(srv, '/agents/inv/mcp', pat(someone.email, 'inv'))).status, 200);

  // expired
  const mine = invite('inv', u.email);
  srv.cluster.sql(`UPDATE agent_members SET invite_expires_at = now() - interval '1 second' WHERE lower(email) = lower('${u.email}')`);
  const expired = await accept(c, mine);
  assert.equal(expired.page.status, 410);
  assert.match(expired.html, /expired/);
  assert.equal(states('inv')[u.email], 'invited/member');

  // reused: a new invite replaces the old link; used once, then refused
  const again = invite('inv', u.email);
  assert.equal((await c.get(pathOf(mine))).status, 404, 'the replaced link is gone');
  assert.equal((await accept(c, again)).res.status, 200);
  const reused = await accept(c, again);
  assert.equal(reused.page.status, 410);
  assert.match(reused.html, /already been used/);
  assert.equal(states('inv')[u.email], 'pending/member');

  // CLI: malformed email, unknown agent, malformed slug, someone already pending
  for (const [args, code] of [
    [['member', 'invite', '--agent', 'inv', '--email', 'not-an-email'], 1],
    [['member', 'invite', '--agent', 'nope', '--email', 'a@example.test'], 1],
    [['member', 'invite', '--agent', 'Bad Slug', '--email', 'a@example.test'], 1],
    [['member', 'invite', '--agent', 'inv', '--email', u.email], 1],
    [['member', 'invite', '--agent', 'inv'], 2],
    [['member', 'approve', '--agent', 'inv', '--email', 'nobody@example.test'], 1],
  ]) cli(args, code);
  assert.equal(states('inv')[u.email], 'pending/member');
});

test('an invite with no account behind it creates the account; approve on accept', async () => {
  addAgent('fresh');
  const email = `new-${process.pid}@example.test`;
  const link = invite('fresh', email, ['--approve-on-accept']);
  const c = new Client(srv.url);
  const page = await c.get(pathOf(link));
  assert.equal(page.status, 200);
  assert.match(await page.text(), /choose a password/);
  const password = secret(`pw-${crypto.randomBytes(8).toString('hex')}`);
  const res = await c.post('/invite', { csrf: c.csrf, token: tokenOf(link), password });
  assert.equal(res.status, 200);
  assert.match(await res.text(), /You are now a member of the agent/);
  assert.equal(states('fresh')[email], 'approved/member');
  const agents = await (await c.get('/agents')).text();
  assert.match(agents, /id="agent-fresh"/);
  // and the account signs in with that password
  assert.equal((await new Client(srv.url).login(email, password)).status, 303);
});

test('reject, remove, owners, leave: every transition; owner actions by a non-owner are 403', async () => {
  addAgent('team');
  const owner = createUser(srv, { agents: [] });
  const m1 = createUser(srv, { agents: [] });
  const m2 = createUser(srv, { agents: [] });
  cli(['member', 'approve', '--agent', 'team', '--email', owner.email]);
  cli(['member', 'owner', '--agent', 'team', '--email', owner.email, 'on']);
  assert.equal(states('team')[owner.email], 'approved/owner');

  const oc = await signedIn(srv, owner);
  let res = await oc.post('/agents/team/members', { csrf: oc.csrf, action: 'invite', email: m1.email });
  assert.equal(res.status, 201);
  const link = linkIn(await res.text());
  const c1 = await signedIn(srv, m1);
  assert.equal((await accept(c1, link)).res.status, 200);
  res = await oc.post('/agents/team/members', { csrf: oc.csrf, action: 'reject', email: m1.email });
  assert.equal(res.status, 303);
  assert.equal(states('team')[m1.email], 'rejected/member');
  // a rejected member cannot act as one, nor as an owner
  res = await c1.post('/agents/team/members', { csrf: c1.csrf, action: 'approve', email: m1.email });
  assert.equal(res.status, 403);
  assert.equal(states('team')[m1.email], 'rejected/member');

  // approve (from rejected), make owner, unmake, remove
  for (const [action, want] of [['approve', 'approved/member'], ['owner', 'approved/owner'],
    ['unowner', 'approved/member'], ['remove', 'removed/member'], ['approve', 'approved/member']]) {
    res = await oc.post('/agents/team/members', { csrf: oc.csrf, action, email: m1.email });
    assert.equal(res.status, 303, action);
    assert.equal(states('team')[m1.email], want, action);
  }
  // an owner (not an admin) runs the agent's settings and kill switch, not the admin pages
  assert.equal((await oc.get('/agents/team/settings')).status, 200);
  res = await oc.post('/agents/team/settings', { csrf: oc.csrf, action: 'disable' });
  assert.equal(res.status, 303);
  assert.match(cli(['agent', 'list']).stdout, /^team\t.*\tdisabled$/m);
  res = await oc.post('/agents/team/settings', { csrf: oc.csrf, action: 'enable' });
  assert.equal(res.status, 303);
  assert.match(cli(['agent', 'list']).stdout, /^team\t.*\tenabled$/m);
  assert.equal((await oc.get('/admin/agents')).status, 403);
  res = await oc.post('/admin/agents', { csrf: oc.csrf, slug: 'mine', name: 'Mine', trust: 'trusted', timezone: 'UTC' });
  assert.equal(res.status, 403);
  assert.doesNotMatch(cli(['agent', 'list']).stdout, /^mine\t/m);

  // a plain member: their own row and Leave, no owner actions
  const mine = await (await c1.get('/agents/team/members')).text();
  assert.match(mine, /value="leave"/);
  assert.doesNotMatch(mine, /value="invite"/);
  assert.doesNotMatch(mine, new RegExp(owner.email));
  res = await c1.post('/agents/team/members', { csrf: c1.csrf, action: 'invite', email: m2.email });
  assert.equal(res.status, 403);
  assert.equal(states('team')[m2.email], undefined);
  res = await c1.post('/agents/team/members', { csrf: c1.csrf, action: 'remove', email: owner.email });
  assert.equal(res.status, 403);
  assert.equal((await c1.get('/agents/team/settings')).status, 403);
  res = await c1.post('/agents/team/settings', { csrf: c1.csrf, action: 'disable' });
  assert.equal(res.status, 403);
  assert.match(cli(['agent', 'list']).stdout, /^team\t.*\tenabled$/m);
  // a stranger sees nothing
  const c2 = await signedIn(srv, m2);
  assert.equal((await c2.get('/agents/team/members')).status, 403);
  assert.equal((await c2.get('/agents/nope/members')).status, 404);

  // the last owner cannot go, by any door
  res = await oc.post('/agents/team/members', { csrf: oc.csrf, action: 'leave' });
  assert.equal(res.status, 409);
  assert.match(await res.text(), /last owner/);
  cli(['member', 'owner', '--agent', 'team', '--email', owner.email, 'off'], 1);
  cli(['member', 'remove', '--agent', 'team', '--email', owner.email], 1);
  assert.equal(states('team')[owner.email], 'approved/owner');
  // with a second owner the first may leave; a member may leave
  cli(['member', 'owner', '--agent', 'team', '--email', m1.email, 'on']);
  res = await oc.post('/agents/team/members', { csrf: oc.csrf, action: 'leave' });
  assert.equal(res.status, 303);
  assert.equal(states('team')[owner.email], 'removed/member');
  cli(['member', 'approve', '--agent', 'team', '--email', m2.email]);
  res = await c2.post('/agents/team/members', { csrf: c2.csrf, action: 'leave' });
  assert.equal(res.status, 303);
  assert.equal(states('team')[m2.email], 'removed/member');
});

test('removing a member revokes their PAT and OAuth token at the next call, here and on another process', async () => {
  addAgent('ops');
  const owner = createUser(srv, { agents: [] });
  const u = createUser(srv, { agents: ['ops'] });
  cli(['member', 'approve', '--agent', 'ops', '--email', owner.email]);
  cli(['member', 'owner', '--agent', 'ops', '--email', owner.email, 'on']);
  const p = pat(u.email, 'ops');
  const c = await signedIn(srv, u);
  const { tokens } = await fullFlow(srv, c, { resource: `${srv.url}/agents/ops/mcp` });
  for (const s of [srv, other])
    for (const t of [p, tokens.access_token])
      assert.notEqual((await call(s, '/agents/ops/mcp', t)).status, 401, 'works before');

  const oc = await signedIn(srv, owner);
  const res = await oc.post('/agents/ops/members', { csrf: oc.csrf, action: 'remove', email: u.email });
  assert.equal(res.status, 303);
  for (const t of [p, tokens.access_token]) {
    const r = await call(srv, '/agents/ops/mcp', t);
    assert.equal(r.status, 401, 'refused on this process at once');
  }
  for (const t of [p, tokens.access_token])
    await eventually(async () => (await call(other, '/agents/ops/mcp', t)).status === 401, 'refused on the other process');
  // revoked, not merely hidden: approving again does not bring them back
  cli(['member', 'approve', '--agent', 'ops', '--email', u.email]);
  for (const t of [p, tokens.access_token])
    assert.equal((await call(srv, '/agents/ops/mcp', t)).status, 401);

  // rejecting through the CLI: the other process learns of it by NOTIFY
  const v = createUser(srv, { agents: ['ops'] });
  const q = pat(v.email, 'ops');
  assert.notEqual((await call(other, '/agents/ops/mcp', q)).status, 401);
  cli(['member', 'remove', '--agent', 'ops', '--email', v.email]);
  await eventually(async () => (await call(other, '/agents/ops/mcp', q)).status === 401, 'removed by the CLI');
  assert.equal((await call(srv, '/agents/ops/mcp', q)).status, 401);
  const rows = srv.cluster.sql(`SELECT count(*) FROM pats p JOIN users u ON u.id = p.user_id
                                 WHERE lower(u.email) = lower('${v.email}') AND p.revoked_at IS NULL`);
  assert.equal(rows, '0');
});

test('a non-member is refused at consent (access_denied) and at PAT creation', async () => {
  const u = createUser(srv, { agents: [] });
  const c = await signedIn(srv, u);
  const reg = await register(srv);
  const p = pkce();
  const params = { response_type: 'code', client_id: reg.body.client_id, redirect_uri: 'http://127.0.0.1:9999/callback',
    code_challenge: p.challenge, code_challenge_method: 'S256', state: 'st1' };
  const page = await c.get(`/oauth/authorize?${new URLSearchParams(params)}`);
  const html = await page.text();
  assert.equal(page.status, 403);
  assert.match(html, /You are not a member of Default agent/);
  assert.match(html, /ask an owner of the agent or an administrator to invite you/);
  const back = new URL(html.match(/id="back" href="([^"]+)"/)[1].replace(/&amp;/g, '&'));
  assert.equal(back.searchParams.get('error'), 'access_denied');
  assert.equal(back.searchParams.get('state'), 'st1');
  // approving anyway (a forged form) gets access_denied and no grant
  const res = await c.post('/oauth/authorize', { csrf: c.csrf, decision: 'approve', ...params });
  assert.equal(res.status, 302);
  assert.equal(new URL(res.headers.get('location')).searchParams.get('error'), 'access_denied');
  assert.equal(srv.cluster.sql(`SELECT count(*) FROM oauth_grants g JOIN users u ON u.id = g.user_id
                                WHERE lower(u.email) = lower('${u.email}')`), '0');

  // once admitted, the consent screen is there, naming the agent and its trust mode
  cli(['member', 'approve', '--agent', 'default', '--email', u.email]);
  const now = await c.get(`/oauth/authorize?${new URLSearchParams({ ...params, state: 'st2' })}`);
  assert.equal(now.status, 200);
  assert.match(await now.text(), /on the agent <strong>Default agent<\/strong> \(trusted\)/);
  cli(['member', 'remove', '--agent', 'default', '--email', u.email]);

  const tokensPage = await (await c.get('/profile/tokens')).text();
  assert.doesNotMatch(tokensPage, /<option value="default"/);
  const made = await c.post('/profile/tokens', { csrf: c.csrf, name: 'x', agent: 'default', expires_days: '' });
  assert.equal(made.status, 400);
  assert.equal(srv.cluster.sql(`SELECT count(*) FROM pats p JOIN users u ON u.id = p.user_id
                                WHERE lower(u.email) = lower('${u.email}')`), '0');
  // the CLI refuses someone an owner removed (it admits only people with no membership)
  addAgent('gone');
  cli(['member', 'approve', '--agent', 'gone', '--email', u.email]);
  cli(['member', 'remove', '--agent', 'gone', '--email', u.email]);
  cli(['pat', 'create', '--email', u.email, '--agent', 'gone', '--name', 'x'], 1);
});

test('kill switch: refused with its message and audited, credentials kept, back on; seen by the other process', async () => {
  addAgent('kill');
  const u = createUser(srv, { agents: ['kill'] });
  const p = pat(u.email, 'kill');
  for (const s of [srv, other]) assert.equal((await call(s, '/agents/kill/mcp', p)).status, 200);

  cli(['agent', 'disable', '--slug', 'kill']);
  for (const s of [srv, other]) {
    let r;
    await eventually(async () => (r = await call(s, '/agents/kill/mcp', p)).status === 403, `disabled on ${s.url}`);
    assert.match(r.text, /This agent was disabled by its owner/);
  }
  const rows = JSON.parse(srv.cluster.sql(`SELECT coalesce(json_agg(a), '[]') FROM audit_events a
    WHERE agent_slug = 'kill' AND message = 'This agent was disabled by its owner.'`));
  assert.ok(rows.length >= 2, 'one audit row per refused request');
  assert.equal(rows[0].user_email, u.email);
  assert.equal(rows[0].decision, 'deny');
  assert.match(cli(['agent', 'list']).stdout, /^kill\t.*\tdisabled$/m);

  cli(['agent', 'enable', '--slug', 'kill']);
  for (const s of [srv, other])
    await eventually(async () => (await call(s, '/agents/kill/mcp', p)).status === 200, `enabled on ${s.url}`);
});

test('agent set, list, delete; bad input changes nothing', async () => {
  cli(['agent', 'add', '--slug', 'cfg', '--name', 'Config', '--untrusted', '--timezone', 'Europe/Paris']);
  assert.match(cli(['agent', 'list']).stdout, /^cfg\tConfig\tuntrusted\t\S+\/agents\/cfg\/mcp\tEurope\/Paris\tenabled$/m);
  cli(['agent', 'set', '--slug', 'cfg', '--name', 'Configured', '--timezone', 'America/New_York']);
  assert.match(cli(['agent', 'list']).stdout, /^cfg\tConfigured\tuntrusted\t\S+\tAmerica\/New_York\tenabled$/m);
  cli(['agent', 'set', '--slug', 'cfg', '--timezone', 'Mars/Olympus'], 1);
  cli(['agent', 'set', '--slug', 'cfg', '--timezone', "UTC'; --"], 1);
  cli(['agent', 'set', '--slug', 'nope', '--name', 'x'], 1);
  cli(['agent', 'set'], 2);
  cli(['agent', 'delete', '--slug', 'default'], 1);
  assert.match(cli(['agent', 'list']).stdout, /^cfg\tConfigured\tuntrusted\t\S+\tAmerica\/New_York\tenabled$/m);

  const u = createUser(srv, { agents: ['cfg'] });
  const p = pat(u.email, 'cfg');
  assert.equal((await call(srv, '/agents/cfg/mcp', p)).status, 200);
  cli(['agent', 'delete', '--slug', 'cfg']);
  assert.doesNotMatch(cli(['agent', 'list']).stdout, /^cfg\t/m);
  assert.equal(srv.cluster.sql(`SELECT count(*) FROM pats WHERE name LIKE 'p%' AND agent_id NOT IN (SELECT id FROM agents)`), '0');
  // the CLI is another process: both servers learn of it by NOTIFY
  for (const s of [srv, other])
    await eventually(async () => (await call(s, '/agents/cfg/mcp', p)).status === 404, `deleted on ${s.url}`);
});

test('migration 040 makes every holder of a live PAT or grant an approved member', async () => {
  const cluster = await startCluster();
  try {
    const s = { env: { ...srv.env, GATEHOUSE_DATABASE_URL: cluster.url, GATEHOUSE_SERVER_KEY: cluster.serverKey } };
    assert.equal(gatehouse(s, ['migrate']).code, 0);
    // the database as it was before 040 (CASCADE: later migrations' foreign keys to it)
    cluster.sql(`DROP TABLE agent_members CASCADE;
      ALTER TABLE agents DROP COLUMN timezone, DROP COLUMN disabled, DROP COLUMN disabled_by, DROP COLUMN disabled_at;
      DELETE FROM schema_migrations WHERE version = 40`);
    cluster.sql(`INSERT INTO agents (slug, name) VALUES ('side', 'Side');
      INSERT INTO users (email) VALUES ('pat@example.test'), ('grant@example.test'), ('old@example.test'), ('none@example.test');
      INSERT INTO oauth_clients (client_id, kind, metadata, auth_method) VALUES ('c1', 'dcr', '{}', 'none');
      INSERT INTO pats (user_id, agent_id, name, prefix, token_hash)
        SELECT u.id, a.id, 'p', 'gth_pat_x', md5(random()::text) FROM users u, agents a
         WHERE u.email = 'pat@example.test' AND a.slug = 'default';
      INSERT INTO pats (user_id, agent_id, name, prefix, token_hash, revoked_at)
        SELECT u.id, a.id, 'p', 'gth_pat_x', md5(random()::text), now() FROM users u, agents a
         WHERE u.email = 'old@example.test' AND a.slug = 'default';
      INSERT INTO oauth_grants (user_id, client_id, agent_id, scope)
        SELECT u.id, 'c1', a.id, 'mcp' FROM users u, agents a WHERE u.email = 'grant@example.test' AND a.slug = 'side'`);
    assert.equal(gatehouse(s, ['migrate']).code, 0);
    const got = cluster.sql(`SELECT string_agg(a.slug || ':' || m.email || ':' || m.state, ',' ORDER BY m.email)
      FROM agent_members m JOIN agents a ON a.id = m.agent_id`);
    assert.equal(got, 'side:grant@example.test:approved,default:pat@example.test:approved');
  } finally {
    await cluster.stop();
  }
});

test('two owners leaving at the same moment: one of them stays the last owner', async () => {
  const a = createUser(srv, { agents: [] });
  const b = createUser(srv, { agents: [] });
  const ca = await signedIn(srv, a), cb = await signedIn(srv, b);
  for (let i = 0; i < 6; i++) {
    const slug = `race-${i}`;
    addAgent(slug);
    for (const u of [a, b]) {
      cli(['member', 'approve', '--agent', slug, '--email', u.email]);
      cli(['member', 'owner', '--agent', slug, '--email', u.email, 'on']);
    }
    const got = await Promise.all([ca, cb].map((c) =>
      c.post(`/agents/${slug}/members`, { csrf: c.csrf, action: 'leave' }).then((r) => r.status)));
    assert.deepEqual(got.sort(), [303, 409], `round ${i}`);
    const owners = Object.values(states(slug)).filter((v) => v === 'approved/owner');
    assert.equal(owners.length, 1, `round ${i}`);
  }
});
