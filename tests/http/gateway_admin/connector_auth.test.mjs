// Connector authentication modes (gateway/connector_auth.c): none, static,
// oauth-app with presets or hand-entered endpoints, through
// `gatehouse connector add|set` and /admin/connectors/auth; the client
// secret write-only (sealed, never shown, kept when left empty); saving
// says what is wrong and changes nothing.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { startServer, createUser, gatehouse, secret, Client, inputValue } from '../../harness/index.mjs';

let srv, admin, c;
const AGENT = 'auth-modes';

const row = (name) => srv.cluster.sql(`SELECT auth_mode, coalesce(oauth_preset, ''), coalesce(oauth_client_id, ''),
  coalesce(oauth_authorize_url, ''), coalesce(oauth_token_url, ''), coalesce(oauth_userinfo_url, ''),
  coalesce(oauth_scopes, ''), coalesce(oauth_secret_sealed, '')
  FROM connectors c JOIN agents a ON a.id = c.agent_id WHERE a.slug = '${AGENT}' AND c.name = '${name}'`).split('|');
const log = () => fs.readFileSync(srv.logFile, 'utf8');

before(async () => {
  srv = await startServer({ name: 'gw-connector-auth' });
  assert.equal(gatehouse(srv, ['agent', 'add', '--slug', AGENT, '--name', 'Auth modes']).code, 0);
  admin = createUser(srv, { admin: true });
  c = new Client(srv.url);
  assert.equal((await c.login(admin.email, admin.password)).status, 303);
});
after(async () => { assert.equal(await srv.stop(), 0); });

test('connector add with a preset: endpoints and scopes filled, secret sealed from stdin, callback URL printed', () => {
  const s = secret(`gh-secret-${Date.now()}`);
  const r = gatehouse(srv, ['connector', 'add', '--agent', AGENT, '--name', 'github', '--url', 'https://mcp.example.test/gh',
    '--auth', 'oauth-app', '--preset', 'github', '--client-id', 'Iv1.abc123', '--client-secret-stdin'], { input: `${s}\n` });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`callback URL ${srv.url.replace(/[.]/g, '\\.')}/connect/callback`));
  const [mode, preset, id, authz, tok, ui, scopes, sealed] = row('github');
  assert.deepEqual([mode, preset, id, authz, tok, ui, scopes], ['oauth-app', 'github', 'Iv1.abc123',
    'https://github.com/login/oauth/authorize', 'https://github.com/login/oauth/access_token',
    'https://api.github.com/user', 'repo read:user']);
  assert.match(sealed, /^[A-Za-z0-9_-]{40,}$/);
  assert.ok(!srv.cluster.sql('SELECT row_to_json(c)::text FROM connectors c').includes(s));
  assert.ok(!r.stdout.includes(s) && !r.stderr.includes(s) && !log().includes(s));
});

test('connector set: modes, hand-entered endpoints, the stored secret kept; bad input refused, nothing changed', () => {
  assert.equal(gatehouse(srv, ['connector', 'add', '--agent', AGENT, '--name', 'tracker', '--url', 'https://mcp.example.test/t']).code, 0);
  assert.equal(row('tracker')[0], 'none', 'a connector without headers starts as none');
  // oauth-app needs a secret the first time
  const nosecret = gatehouse(srv, ['connector', 'set', '--agent', AGENT, '--name', 'tracker', '--auth', 'oauth-app',
    '--client-id', 'abc', '--authorize-url', 'https://id.example.test/authorize', '--token-url', 'https://id.example.test/token']);
  assert.equal(nosecret.code, 1);
  assert.match(nosecret.stderr, /client secret/);
  const s = secret(`tr-secret-${Date.now()}`);
  const hand = gatehouse(srv, ['connector', 'set', '--agent', AGENT, '--name', 'tracker', '--auth', 'oauth-app',
    '--client-id', 'abc', '--client-secret-stdin', '--authorize-url', 'https://id.example.test/authorize',
    '--token-url', 'https://id.example.test/token', '--scopes', 'read write'], { input: `${s}\n` });
  assert.equal(hand.code, 0, hand.stderr);
  const before = row('tracker');
  assert.deepEqual(before.slice(0, 7), ['oauth-app', '', 'abc', 'https://id.example.test/authorize',
    'https://id.example.test/token', '', 'read write']);
  const refused = [
    [['--auth', 'bogus'], /none, static, oauth-app or oauth-discovery/],
    [['--auth', 'oauth-app', '--preset', 'myspace', '--client-id', 'x'], /Unknown preset/],
    [['--auth', 'oauth-app', '--client-id', 'x y', '--authorize-url', 'https://a.test/a', '--token-url', 'https://a.test/t'], /client ID/],
    [['--auth', 'oauth-app', '--client-id', 'x', '--authorize-url', 'http://id.example.test/a', '--token-url', 'https://a.test/t'], /authorization endpoint must use https/],
    [['--auth', 'oauth-app', '--client-id', 'x', '--authorize-url', 'https://a.test/a', '--token-url', 'ftp://a.test/t'], /token endpoint must be an https URL/],
    [['--auth', 'oauth-app', '--client-id', 'x'], /authorization and token endpoints/],
    [['--auth', 'oauth-app', '--client-id', 'x', '--preset', 'linear', '--scopes', 'a  b'], /Scopes/],
    [['--auth', 'oauth-app', '--client-id', 'x', '--preset', 'linear', '--userinfo-url', 'https://u:p@a.test/'], /user info endpoint/],
  ];
  for (const [args, msg] of refused) {
    const r = gatehouse(srv, ['connector', 'set', '--agent', AGENT, '--name', 'tracker', ...args]);
    assert.equal(r.code, 1, `${args}: ${r.stderr}`);
    assert.match(r.stderr, msg);
    assert.deepEqual(row('tracker'), before, `${args} changed nothing`);
  }
  assert.equal(gatehouse(srv, ['connector', 'set', '--agent', AGENT, '--name', 'tracker']).code, 2);
  assert.equal(gatehouse(srv, ['connector', 'set', '--agent', AGENT, '--name', 'nope', '--auth', 'none']).code, 1);
  assert.equal(gatehouse(srv, ['connector', 'enable', '--agent', AGENT, '--name', 'tracker', '--auth', 'none']).code, 2);
  // without --client-secret-stdin the stored secret stays (re-bound to a new token URL)
  const keep = gatehouse(srv, ['connector', 'set', '--agent', AGENT, '--name', 'tracker', '--auth', 'oauth-app',
    '--client-id', 'abc2', '--preset', 'linear']);
  assert.equal(keep.code, 0, keep.stderr);
  const after = row('tracker');
  assert.equal(after[4], 'https://api.linear.app/oauth/token');
  assert.notEqual(after[7], before[7], 'sealed again for the new token endpoint');
  // none and static keep the app's settings for later
  assert.equal(gatehouse(srv, ['connector', 'set', '--agent', AGENT, '--name', 'tracker', '--auth', 'none']).code, 0);
  assert.deepEqual(row('tracker').slice(1), after.slice(1));
  assert.equal(row('tracker')[0], 'none');
});

test('the settings page: callback URL, presets, write-only secret, errors in the console', async () => {
  const page = await c.get(`/admin/connectors/auth?agent=${AGENT}&name=github`);
  const html = await page.text();
  assert.equal(page.status, 200);
  assert.match(html, new RegExp(`<code id="callback-url">${srv.url.replace(/[.]/g, '\\.')}/connect/callback</code>`));
  assert.match(html, /<option value="oauth-app" selected>/);
  assert.match(html, /<option value="github" selected>GitHub<\/option>/);
  assert.equal(inputValue(html, 'client_id'), 'Iv1.abc123');
  assert.equal(inputValue(html, 'client_secret'), '');
  assert.match(html, /placeholder="stored: leave empty to keep"/);
  const list = await (await c.get('/admin/connectors')).text();
  assert.match(list, /href="\/admin\/connectors\/auth\?agent=auth-modes&amp;name=github"/);

  // a refusal re-renders the typed fields, never the secret, with a sentence
  const typed = secret(`typed-${Date.now()}`);
  const bad = await c.post('/admin/connectors/auth', { csrf: c.csrf, agent: AGENT, name: 'github', mode: 'oauth-app',
    preset: '', client_id: 'Iv1.new', client_secret: typed, authorize_url: 'http://evil.example.test/a', token_url: 'https://x.test/t' });
  const badHtml = await bad.text();
  assert.equal(bad.status, 400);
  assert.match(badHtml, /role="alert">The authorization endpoint must use https/);
  assert.ok(!badHtml.includes(typed));
  assert.equal(row('github')[2], 'Iv1.abc123', 'nothing saved');

  // saved with the secret left empty: kept
  const sealed = row('github')[7];
  const ok = await c.post('/admin/connectors/auth', { csrf: c.csrf, agent: AGENT, name: 'github', mode: 'oauth-app',
    preset: 'google', client_id: 'goog-1', client_secret: '' });
  assert.equal(ok.status, 303);
  const [mode, preset, id, authz, , , scopes, sealed2] = row('github');
  assert.deepEqual([mode, preset, id, authz, scopes], ['oauth-app', 'google', 'goog-1',
    'https://accounts.google.com/o/oauth2/v2/auth', 'openid email profile'], 'the preset fills what is left empty');
  assert.ok(sealed2 && sealed2 !== sealed);
  // no CSRF: refused; an unknown connector: a page, not a raw 404
  const nocsrf = await c.post('/admin/connectors/auth', { agent: AGENT, name: 'github', mode: 'none' });
  assert.equal(nocsrf.status, 403);
  assert.equal(row('github')[0], 'oauth-app');
  const unknown = await c.get(`/admin/connectors/auth?agent=${AGENT}&name=nope`);
  assert.equal(unknown.status, 404);
  assert.match(await unknown.text(), /No such connector/);
  // members who are neither admins nor owners do not get the page; an owner does
  const m = createUser(srv, { agents: [AGENT] });
  const mc = new Client(srv.url);
  await mc.login(m.email, m.password);
  assert.equal((await mc.get(`/admin/connectors/auth?agent=${AGENT}&name=github`)).status, 403);
  const refusedPost = await mc.post('/admin/connectors/auth', { csrf: mc.csrf, agent: AGENT, name: 'github', mode: 'none' });
  assert.equal(refusedPost.status, 403);
  assert.equal(row('github')[0], 'oauth-app');
  assert.equal(gatehouse(srv, ['member', 'owner', '--agent', AGENT, '--email', m.email, 'on']).code, 0);
  const owned = await mc.get(`/admin/connectors/auth?agent=${AGENT}&name=github`);
  assert.equal(owned.status, 200);
  assert.match(await owned.text(), /callback-url/);
  assert.ok(!log().includes(typed));
});
