// Connectors: `gatehouse connector add|list|enable|disable`, the admin page,
// refusals that write nothing, and header values that never come back out
// (not in list output, pages, logs, nor in plaintext in the database).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import pg from 'pg';
import { startServer, createUser, gatehouse, secret, Client } from '../../harness/index.mjs';

let srv, admin, adminClient;
const AGENT = 'gw-admin';

async function signedIn(user) {
  const c = new Client(srv.url);
  const res = await c.login(user.email, user.password);
  assert.equal(res.status, 303, 'login');
  return c;
}

function connectorCount() {
  return Number(srv.cluster.sql('SELECT count(*) FROM connectors'));
}

function serverLog() {
  return fs.readFileSync(srv.logFile, 'utf8');
}

before(async () => {
  srv = await startServer({ name: 'gw-connectors' });
  assert.equal(gatehouse(srv, ['agent', 'add', '--slug', AGENT, '--name', 'Gateway admin tests']).code, 0);
  admin = createUser(srv, { admin: true });
  adminClient = await signedIn(admin);
});
after(async () => { assert.equal(await srv.stop(), 0); });

test('connector add stores header values sealed; list shows names, URL, status and header names only', async () => {
  const token = secret(`Bearer upstream-${Math.random().toString(36).slice(2)}-token`);
  const apiKey = secret(`key-${Math.random().toString(36).slice(2)}-abcdef`);
  const r = gatehouse(srv, ['connector', 'add', '--agent', AGENT, '--name', 'github', '--url',
    'https://mcp.example.test/github/mcp', '--header', `Authorization: ${token}`, '--header', `X-Api-Key:${apiKey}`]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /added connector github to agent gw-admin/);
  for (const out of [r.stdout, r.stderr]) {
    assert.ok(!out.includes(token) && !out.includes(apiKey), 'values not echoed');
  }

  const l = gatehouse(srv, ['connector', 'list', '--agent', AGENT]);
  assert.equal(l.code, 0, l.stderr);
  const line = l.stdout.split('\n').find((s) => /\bgithub\b/.test(s));
  assert.ok(line, l.stdout);
  assert.match(line, /^gw-admin\s+github\s+enabled\s+https:\/\/mcp\.example\.test\/github\/mcp\s+Authorization,X-Api-Key\s+github$/);
  assert.ok(!l.stdout.includes(token) && !l.stdout.includes(apiKey) && !l.stdout.includes('upstream-'));

  // in the database: one sealed blob, no plaintext, not even base64 of it
  const row = srv.cluster.sql(`SELECT headers_sealed, array_to_string(header_names, ',')
    FROM connectors c JOIN agents a ON a.id = c.agent_id WHERE a.slug = '${AGENT}' AND c.name = 'github'`);
  const [sealed, names] = row.split('|');
  assert.equal(names, 'Authorization,X-Api-Key');
  assert.match(sealed, /^[A-Za-z0-9_-]{40,}$/);
  const dump = srv.cluster.sql('SELECT row_to_json(c)::text FROM connectors c');
  for (const v of [token, apiKey, 'upstream-', Buffer.from(apiKey).toString('base64').slice(0, 12),
    Buffer.from(apiKey).toString('base64url').slice(0, 12)]) {
    assert.ok(!dump.includes(v), 'no plaintext header value in the table');
  }
  // the same value sealed twice gives different blobs (random IV)
  assert.equal(gatehouse(srv, ['connector', 'add', '--agent', AGENT, '--name', 'github2', '--url',
    'https://mcp.example.test/x', '--header', `Authorization: ${token}`]).code, 0);
  const two = srv.cluster.sql(`SELECT headers_sealed FROM connectors WHERE name IN ('github', 'github2') ORDER BY name`).split('\n');
  assert.notEqual(two[0], two[1]);

  // the pages do not show them either
  const html = await (await adminClient.get('/admin/connectors')).text();
  assert.match(html, /github/);
  assert.match(html, /<code>Authorization<\/code> <code>X-Api-Key<\/code>/);
  assert.ok(!html.includes(token) && !html.includes(apiKey) && !html.includes('upstream-'));
  assert.ok(!serverLog().includes(apiKey) && !serverLog().includes(token));
});

test('connector add --headers-stdin: credentials from standard input, not the command line other users can read', () => {
  const token = secret(`Bearer stdin-${Math.random().toString(36).slice(2)}-token`);
  const apiKey = secret(`stdinkey-${Math.random().toString(36).slice(2)}-abcdef`);
  const before = connectorCount();
  const r = gatehouse(srv, ['connector', 'add', '--agent', AGENT, '--name', 'fromstdin', '--url',
    'https://mcp.example.test/stdin', '--header', 'X-Plain: 1', '--headers-stdin'],
  { input: `Authorization: ${token}\r\n\nX-Api-Key:${apiKey}\n` });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /added connector fromstdin to agent gw-admin \(3 header\(s\)/);
  assert.ok(!r.stdout.includes(token) && !r.stderr.includes(apiKey));
  const names = srv.cluster.sql(`SELECT array_to_string(header_names, ',') FROM connectors WHERE name = 'fromstdin'`);
  assert.equal(names, 'X-Plain,Authorization,X-Api-Key');
  // a bad line is refused before anything is written, without echoing it
  const bad = gatehouse(srv, ['connector', 'add', '--agent', AGENT, '--name', 'badstdin', '--url',
    'https://mcp.example.test/stdin', '--headers-stdin'], { input: `Authorization ${token}\n` });
  assert.equal(bad.code, 2, bad.stderr);
  assert.match(bad.stderr, /Name: value/);
  assert.ok(!bad.stderr.includes(token));
  const dup = gatehouse(srv, ['connector', 'add', '--agent', AGENT, '--name', 'badstdin', '--url',
    'https://mcp.example.test/stdin', '--header', `authorization: ${token}`, '--headers-stdin'], { input: `Authorization: ${token}\n` });
  assert.equal(dup.code, 2, dup.stderr);
  assert.equal(connectorCount(), before + 1);
  assert.equal(gatehouse(srv, ['connector', 'list', '--headers-stdin']).code, 2);
});

test('connector list without --agent lists every agent; a connector without headers shows "-"; query values are masked', () => {
  assert.equal(gatehouse(srv, ['connector', 'add', '--agent', 'default', '--name', 'plain', '--url',
    'http://127.0.0.1:9/mcp']).code, 0);
  const key = secret(`query-key-${Math.random().toString(36).slice(2)}`);
  assert.equal(gatehouse(srv, ['connector', 'add', '--agent', 'default', '--name', 'keyed', '--url',
    `http://127.0.0.1:9/mcp?profile=p1&api_key=${key}`]).code, 0);
  const l = gatehouse(srv, ['connector', 'list']);
  assert.equal(l.code, 0, l.stderr);
  assert.match(l.stdout, /^AGENT\s+NAME\s+STATUS\s+URL\s+HEADERS\s+PREFIX$/m);
  assert.match(l.stdout, /^default\s+plain\s+enabled\s+http:\/\/127\.0\.0\.1:9\/mcp\s+-\s+plain$/m);
  assert.match(l.stdout, /^default\s+keyed\s+enabled\s+http:\/\/127\.0\.0\.1:9\/mcp\?profile=\*\*\*&api_key=\*\*\*\s+-\s+keyed$/m);
  assert.ok(!l.stdout.includes(key));
  assert.match(l.stdout, /^gw-admin\s+github\s+/m);
  const unknown = gatehouse(srv, ['connector', 'list', '--agent', 'no-such-agent']);
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /^gatehouse: No such agent\.$/m);
});

test('enable and disable change the row and raise the NOTIFY the endpoint listens to', async () => {
  const db = new pg.Client({ connectionString: srv.cluster.url });
  await db.connect();
  const got = [];
  db.on('notification', (n) => got.push(n));
  await db.query('LISTEN gw_connectors');
  const agentId = srv.cluster.sql(`SELECT id FROM agents WHERE slug = '${AGENT}'`);
  try {
    const d = gatehouse(srv, ['connector', 'disable', '--agent', AGENT, '--name', 'github']);
    assert.equal(d.code, 0, d.stderr);
    assert.match(d.stdout, /disabled connector github of agent gw-admin/);
    assert.match(gatehouse(srv, ['connector', 'list', '--agent', AGENT]).stdout, /^gw-admin\s+github\s+disabled\s/m);
    const e = gatehouse(srv, ['connector', 'enable', '--agent', AGENT, '--name', 'github']);
    assert.equal(e.code, 0, e.stderr);
    assert.match(gatehouse(srv, ['connector', 'list', '--agent', AGENT]).stdout, /^gw-admin\s+github\s+enabled\s/m);
    for (let i = 0; i < 50 && got.length < 2; i++) await new Promise((r) => setTimeout(r, 100));
    assert.ok(got.length >= 2, `notifications: ${got.length}`);
    assert.ok(got.every((n) => n.channel === 'gw_connectors' && n.payload === agentId));

    const missing = gatehouse(srv, ['connector', 'disable', '--agent', AGENT, '--name', 'nope']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /no connector with this name/);
  } finally {
    await db.end();
  }
});

test('bad input: a clear one-line reason, exit 2 (usage) or 1 (failure), and nothing written', () => {
  const creds = secret('Bearer sekrit-never-stored-0123');
  const before = connectorCount();
  const add = (name, url, ...headers) => ['connector', 'add', '--agent', AGENT, '--name', name, '--url', url,
    ...headers.flatMap((h) => ['--header', h])];
  const cases = [
    [add('bad-url', 'ftp://files.example.test/mcp'), 2, /http or https URL/],
    [add('bad-url', 'not a url'), 2, /URL must not contain spaces/],
    [add('bad-url', 'http://'), 2, /http or https URL with a host/],
    [add('bad-url', '/relative/mcp'), 2, /http or https URL/],
    [add('bad-url', 'https://user:pass@mcp.example.test/'), 2, /must not carry credentials/],
    [add('Bad', 'https://mcp.example.test/'), 2, /connector name must/],
    [add('-dash', 'https://mcp.example.test/'), 2, /connector name must/],
    [add('a'.repeat(33), 'https://mcp.example.test/'), 2, /1 to 32 characters/],
    [add('my__tools', 'https://mcp.example.test/'), 2, /must not contain "__"/],
    [add('github', 'https://mcp.example.test/again'), 1, /already exists/],
    [add('crlf', 'https://mcp.example.test/', `X-Key: ${creds}\r\nX-Injected: 1`), 2, /line breaks/],
    [add('crlf', 'https://mcp.example.test/', `X-Key: ${creds}\n`), 2, /line breaks/],
    [add('nocolon', 'https://mcp.example.test/', 'X-Key sekrit'), 2, /'Name: value'/],
    [add('badname', 'https://mcp.example.test/', `Bad Name: ${creds}`), 2, /HTTP token/],
    [add('reserved', 'https://mcp.example.test/', 'Host: evil.example.test'), 2, /sets this header itself/],
    [add('dup', 'https://mcp.example.test/', `X-A: ${creds}`, `x-a: ${creds}`), 2, /same header is given twice/],
    [['connector', 'add', '--agent', 'no-such-agent', '--name', 'x', '--url', 'https://mcp.example.test/'], 1, /No such agent/],
    [['connector', 'add', '--agent', AGENT, '--name', 'x'], 2, /--url is required/],
    [['connector', 'add', '--name', 'x', '--url', 'https://mcp.example.test/'], 2, /--agent and --name are required/],
    [['connector', 'enable', '--agent', AGENT], 2, /--agent and --name are required/],
    [['connector', 'frobnicate'], 2, /unknown connector command/],
    [['connector'], 2, /Usage: gatehouse connector/],
    [['connector', 'list', '--bogus'], 2, /invalid option/],
  ];
  for (const [args, code, msg] of cases) {
    const r = gatehouse(srv, args);
    assert.equal(r.code, code, `${args.join(' ')}: ${r.stderr}`);
    // stderr also carries the log lines (JSON) and PostgreSQL notices
    const reason = r.stderr.split('\n').find((l) => /^(gatehouse: |Usage: gatehouse)/.test(l));
    assert.match(reason ?? '', msg, `${args.join(' ')}: ${r.stderr}`);
    assert.ok(!r.stderr.includes(creds.slice(7)) && !r.stdout.includes(creds.slice(7)), 'value not echoed');
    assert.equal(r.stdout, '', args.join(' '));
  }
  assert.equal(connectorCount(), before, 'nothing written');
  assert.ok(!serverLog().includes(creds.slice(7)));
});

test('/admin/connectors: admins only; add with headers (write-only), refusals re-render without values; enable/disable', async () => {
  const user = createUser(srv, {});
  const member = await signedIn(user);
  assert.equal((await member.get('/admin/connectors')).status, 403);
  assert.equal((await member.form('/profile', '/admin/connectors', { agent: AGENT, name: 'sneaky', url: 'https://x.example.test/' })).status, 403);
  const anon = await new Client(srv.url).get('/admin/connectors');
  assert.equal(anon.status, 303);
  assert.match(anon.headers.get('location'), /^\/login\?next=/);

  const value = secret(`page-secret-${Math.random().toString(36).slice(2)}`);
  const c = adminClient;
  let res = await c.form('/admin/connectors', '/admin/connectors', {
    agent: AGENT, name: 'linear', url: 'https://mcp.linear.example.test/mcp',
    headers: `Authorization: Bearer ${value}\r\nX-Team: core-team-1\r\n\r\n`,
  });
  assert.equal(res.status, 303);
  assert.equal(res.headers.get('location'), '/admin/connectors?added=linear');
  let html = await (await c.get('/admin/connectors?added=linear')).text();
  assert.match(html, /Connector linear added\./);
  assert.match(html, /data-connector="gw-admin\/linear"><td>gw-admin<\/td><td><code>linear<\/code><form [^<]*action="\/admin\/connectors\/prefix"[^]*?<\/form><\/td><td>https:\/\/mcp\.linear\.example\.test\/mcp<\/td><td>enabled<\/td><td><code>Authorization<\/code> <code>X-Team<\/code><\/td>/);
  assert.ok(!html.includes(value) && !html.includes('core-team-1'));
  // a query value (where an upstream may take an API key) is masked here as in `connector list`
  assert.match(html, /<td>http:\/\/127\.0\.0\.1:9\/mcp\?profile=\*\*\*&amp;api_key=\*\*\*<\/td>/);
  assert.ok(!html.includes('query-key-'));

  // a refusal keeps agent, name and URL but never the header values
  res = await c.form('/admin/connectors', '/admin/connectors', {
    agent: AGENT, name: 'linear', url: 'https://mcp.linear.example.test/other', headers: `Authorization: Bearer ${value}`,
  });
  assert.equal(res.status, 409);
  html = await res.text();
  assert.match(html, /already exists/);
  assert.match(html, /value="https:\/\/mcp\.linear\.example\.test\/other"/);
  assert.ok(!html.includes(value));
  for (const [fields, status, msg] of [
    [{ agent: AGENT, name: 'a__b', url: 'https://x.example.test/' }, 400, /must not contain &quot;__&quot;/],
    [{ agent: AGENT, name: 'ok', url: 'javascript:alert(1)' }, 400, /http or https URL/],
    [{ agent: AGENT, name: 'ok', url: 'https://x.example.test/', headers: `X-Key ${value}` }, 400, /Name: value/],
    [{ agent: 'nope', name: 'ok', url: 'https://x.example.test/' }, 404, /No such agent/],
    [{ agent: AGENT, name: '<script>', url: 'https://x.example.test/' }, 400, /connector name must/],
  ]) {
    const before = connectorCount();
    const r = await c.form('/admin/connectors', '/admin/connectors', fields);
    assert.equal(r.status, status, JSON.stringify(fields));
    const body = await r.text();
    assert.match(body, msg);
    assert.ok(!body.includes(value) && !body.includes('<script>'), 'escaped, and no values');
    assert.equal(connectorCount(), before);
  }
  // without the CSRF token nothing happens
  const csrfless = await c.post('/admin/connectors', { agent: AGENT, name: 'nocsrf', url: 'https://x.example.test/' });
  assert.equal(csrfless.status, 403);
  assert.equal(srv.cluster.sql("SELECT count(*) FROM connectors WHERE name = 'nocsrf'"), '0');

  res = await c.form('/admin/connectors', '/admin/connectors/disable', { agent: AGENT, name: 'linear' });
  assert.equal(res.status, 303);
  assert.equal(srv.cluster.sql("SELECT enabled FROM connectors WHERE name = 'linear'"), 'f');
  html = await (await c.get('/admin/connectors')).text();
  assert.match(html, /data-connector="gw-admin\/linear">.*?<span class="muted">disabled<\/span>.*?>Enable<\/button>/s);
  res = await c.form('/admin/connectors', '/admin/connectors/enable', { agent: AGENT, name: 'linear' });
  assert.equal(res.status, 303);
  assert.equal(srv.cluster.sql("SELECT enabled FROM connectors WHERE name = 'linear'"), 't');
  assert.equal((await member.form('/profile', '/admin/connectors/disable', { agent: AGENT, name: 'linear' })).status, 403);
  assert.equal(srv.cluster.sql("SELECT enabled FROM connectors WHERE name = 'linear'"), 't');
  const gone = await c.form('/admin/connectors', '/admin/connectors/disable', { agent: AGENT, name: 'nope' });
  assert.equal(gone.status, 404);

  // the CLI sees what the page added, still without values
  const l = gatehouse(srv, ['connector', 'list', '--agent', AGENT]);
  assert.match(l.stdout, /^gw-admin\s+linear\s+enabled\s+\S+\s+Authorization,X-Team\s+linear$/m);
  assert.ok(!l.stdout.includes(value));
  assert.ok(!serverLog().includes(value));
});

test('/admin/connectors: a NUL byte (%00) in any field is refused, not cut short into another value', async () => {
  const c = adminClient;
  const value = secret(`nul-secret-${Math.random().toString(36).slice(2)}`);
  for (const fields of [
    // the header value would have been stored as "Bearer nul-secret-…" and the next line dropped
    { agent: AGENT, name: 'nulhdr', url: 'https://x.example.test/', headers: `Authorization: Bearer ${value}\0\r\nX-Team: t1` },
    { agent: AGENT, name: 'nulname\0evil', url: 'https://x.example.test/' },
    { agent: AGENT, name: 'nulurl', url: 'https://x.example.test/\0.evil.example.test' },
    { agent: `${AGENT}\0x`, name: 'nulagent', url: 'https://x.example.test/' },
  ]) {
    const before = connectorCount();
    const r = await c.form('/admin/connectors', '/admin/connectors', fields);
    assert.equal(r.status, 400, JSON.stringify(fields));
    const body = await r.text();
    assert.match(body, /must not contain NUL characters/);
    assert.ok(!body.includes(value), 'no header value in the page');
    assert.equal(connectorCount(), before, JSON.stringify(fields));
  }
  assert.equal(srv.cluster.sql("SELECT count(*) FROM connectors WHERE name LIKE 'nul%'"), '0');

  // enable/disable: "linear\0x" is not "linear"
  assert.equal(srv.cluster.sql("SELECT enabled FROM connectors WHERE name = 'linear'"), 't');
  const r = await c.form('/admin/connectors', '/admin/connectors/disable', { agent: AGENT, name: 'linear\0x' });
  assert.equal(r.status, 400);
  assert.match(await r.text(), /must not contain NUL characters/);
  assert.equal(srv.cluster.sql("SELECT enabled FROM connectors WHERE name = 'linear'"), 't');
  assert.ok(!serverLog().includes(value));
});

test('/admin/connectors: a header value that is not UTF-8 is refused, not left out of the sealed headers while listed', async () => {
  const c = adminClient;
  const before = connectorCount();
  // %E9 alone is Latin-1 "é", not UTF-8: the value could not go into the sealed JSON
  const page = await c.get('/admin/connectors');
  await page.arrayBuffer();
  const body = `csrf=${c.csrf}&agent=${AGENT}&name=latin1&url=${encodeURIComponent('https://x.example.test/')}` +
    `&headers=${encodeURIComponent('Authorization: Bearer caf')}%E9${encodeURIComponent('\r\nX-Team: t1')}`;
  const r = await c.post('/admin/connectors', body, { headers: { 'Content-Type': 'application/x-www-form-urlencoded' } });
  assert.equal(r.status, 400);
  assert.match(await r.text(), /header value must be UTF-8 text/);
  assert.equal(connectorCount(), before);
  assert.equal(srv.cluster.sql("SELECT count(*) FROM connectors WHERE name = 'latin1'"), '0');
  // the same value in UTF-8 is taken
  const ok = await c.form('/admin/connectors', '/admin/connectors', {
    agent: AGENT, name: 'utf8', url: 'https://x.example.test/', headers: 'Authorization: Bearer caf\u00e9\r\nX-Team: t1' });
  assert.equal(ok.status, 303);
});
