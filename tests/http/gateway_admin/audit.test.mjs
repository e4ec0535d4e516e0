// The audit pages: /admin/audit (filters, keyset paging both ways), the CSV
// export, /profile/activity (a member's own rows only), admins only where
// it says so.  Rows are seeded with SQL: the endpoint that writes them
// through gw_audit_write is tested with it (and group commit in
// tests/unit/gateway/audit.c).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, createUser, gatehouse, Client } from '../../harness/index.mjs';

let srv, admin, alice, bob, ac, aliceC, bobC;
const BASE = '2026-01-10 00:00:00+00';

async function signedIn(user) {
  const c = new Client(srv.url);
  const res = await c.login(user.email, user.password);
  assert.equal(res.status, 303, 'login');
  return c;
}

function ids(sqlWhere) {
  const out = srv.cluster.sql(`SELECT id FROM audit_events WHERE ${sqlWhere} ORDER BY at DESC, id DESC`);
  return out ? out.split('\n').map(Number) : [];
}

function rowIds(html) {
  return [...html.matchAll(/<tr class="audit-row" data-id="(\d+)">/g)].map((m) => Number(m[1]));
}

function link(html, rel) {
  const m = html.match(new RegExp(`<a rel="${rel}" href="([^"]+)"`));
  return m ? m[1].replace(/&amp;/g, '&') : null;
}

/* Follows "Older" links from path; returns every page's ids and the pages. */
async function walk(c, path) {
  const pages = [];
  for (let p = path, i = 0; p && i < 100; i++) {
    const res = await c.get(p);
    assert.equal(res.status, 200, p);
    const html = await res.text();
    pages.push({ path: p, html, ids: rowIds(html) });
    p = link(html, 'next');
  }
  return pages;
}

/* RFC 4180: quoted fields with doubled quotes, CRLF records. */
function parseCsv(text) {
  const rows = [];
  let row = [], cell = '', q = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (q) {
      if (ch === '"' && text[i + 1] === '"') { cell += '"'; i++; } else if (ch === '"') q = false; else cell += ch;
    } else if (ch === '"') q = true;
    else if (ch === ',') { row.push(cell); cell = ''; }
    else if (ch === '\r' && text[i + 1] === '\n') { row.push(cell); rows.push(row); row = []; cell = ''; i++; }
    else cell += ch;
  }
  assert.equal(cell, '', 'CSV ends with CRLF');
  return rows;
}

before(async () => {
  srv = await startServer({ name: 'gw-audit' });
  assert.equal(gatehouse(srv, ['agent', 'add', '--slug', 'gw-audit', '--name', 'Audit tests']).code, 0);
  admin = createUser(srv, { admin: true });
  alice = createUser(srv, { email: `alice-${process.pid}@example.test` });
  bob = createUser(srv, { email: `bob-${process.pid}@example.test` });
  const uid = (u) => srv.cluster.sql(`SELECT id FROM users WHERE email = '${u.email}'`);
  const agent = (s) => srv.cluster.sql(`SELECT id FROM agents WHERE slug = '${s}'`);
  // alice: 130 rows over two agents, two tools, two clients; every 4th denied
  srv.cluster.sql(`INSERT INTO audit_events (at, agent_id, agent_slug, user_id, user_email, credential_kind,
      key_suffix, client_id, client_name, session_id, request_id, method, tool, connector, decision,
      policy_ids, policy_versions, message, upstream_status, duration_us)
    SELECT timestamptz '${BASE}' + i * interval '1 minute',
           CASE WHEN i % 2 = 0 THEN '${agent('default')}'::uuid ELSE '${agent('gw-audit')}'::uuid END,
           CASE WHEN i % 2 = 0 THEN 'default' ELSE 'gw-audit' END,
           '${uid(alice)}', '${alice.email}',
           CASE WHEN i % 3 = 0 THEN 'pat' ELSE 'oauth' END, 'ab12cd',
           CASE WHEN i % 3 = 0 THEN NULL ELSE 'client-' || (i % 3) END,
           CASE WHEN i % 3 = 0 THEN 'laptop PAT' ELSE 'Cursor ' || (i % 3) END,
           'sess-a', 'rid-' || i, 'tools/call',
           CASE WHEN i % 5 = 0 THEN 'fx__add' ELSE 'fx__echo' END, 'fx',
           CASE WHEN i % 4 = 0 THEN 'deny' ELSE 'allow' END,
           CASE WHEN i % 4 = 0 THEN 'p-weekend' END, CASE WHEN i % 4 = 0 THEN '3' END,
           CASE WHEN i % 4 = 0 THEN 'no writes on weekends' ELSE 'allow (no policy engine)' END,
           200, 1000 + i
      FROM generate_series(1, 130) i`);
  // bob: 12 rows, the same minute as some of alice's (ties broken by id)
  srv.cluster.sql(`INSERT INTO audit_events (at, agent_slug, user_id, user_email, credential_kind, method, tool,
      decision, message)
    SELECT timestamptz '${BASE}' + (i * 10) * interval '1 minute', 'default', '${uid(bob)}', '${bob.email}',
           'oauth', 'tools/call', 'fx__echo', 'allow', 'bob row ' || i
      FROM generate_series(1, 12) i`);
  // odd content: CSV quoting, formula injection, HTML escaping
  srv.cluster.sql(`INSERT INTO audit_events (at, agent_slug, user_id, user_email, method, tool, decision, message)
    VALUES (timestamptz '${BASE}' - interval '1 day', 'default', '${uid(bob)}', '${bob.email}', 'tools/call',
            '<img src=x onerror=alert(1)>', 'deny', E'=HYPERLINK("x"), with "quotes"\nand a line')`);
  ac = await signedIn(admin);
  aliceC = await signedIn(alice);
  bobC = await signedIn(bob);
});
after(async () => { assert.equal(await srv.stop(), 0); });

test('/admin/audit pages through every row newest first, and back again', async () => {
  const all = ids('true');
  assert.equal(all.length, 143);
  const pages = await walk(ac, '/admin/audit');
  assert.deepEqual(pages.map((p) => p.ids.length), [50, 50, 43]);
  assert.deepEqual(pages.flatMap((p) => p.ids), all, 'every row once, in order');
  assert.equal(link(pages[0].html, 'prev'), null, 'nothing newer than the first page');
  assert.equal(link(pages[2].html, 'next'), null, 'nothing older than the last page');
  // back from the last page: the same pages in reverse
  let p = link(pages[2].html, 'prev');
  for (const want of [pages[1], pages[0]]) {
    const html = await (await ac.get(p)).text();
    assert.deepEqual(rowIds(html), want.ids);
    p = link(html, 'prev');
  }
  assert.equal(p, null);
  const first = pages[0].html;
  assert.match(first, /<th>User<\/th>/);
  assert.match(first, new RegExp(alice.email.replace(/[.]/g, '\\.')));
  assert.match(first, /oauth …ab12cd/);
});

test('/admin/audit filters: agent, user, client, tool, decision, time range, combined', async () => {
  const cases = [
    ['agent=gw-audit', "agent_slug = 'gw-audit'"],
    [`user=${encodeURIComponent('bob-')}`, "user_email LIKE 'bob-%'"],
    ['client=client-1', "client_id = 'client-1'"],
    ['client=laptop', "client_name ILIKE '%laptop%'"],
    ['tool=fx__add', "tool = 'fx__add'"],
    ['decision=deny', "decision = 'deny'"],
    ['from=2026-01-10T01:00&to=2026-01-10T01:30', `at >= '2026-01-10 01:00+00' AND at < '2026-01-10 01:30+00'`],
    ['from=2026-01-10', `at >= '2026-01-10 00:00+00'`],
    ['agent=default&decision=deny&tool=fx__add', "agent_slug = 'default' AND decision = 'deny' AND tool = 'fx__add'"],
    ['tool=nothing-matches', 'false'],
  ];
  for (const [q, where] of cases) {
    const want = ids(where);
    const pages = await walk(ac, `/admin/audit?${q}`);
    assert.deepEqual(pages.flatMap((p) => p.ids), want, q);
    if (want.length > 50) {
      const next = link(pages[0].html, 'next');
      for (const part of q.split('&')) assert.ok(next.includes(part.replace('@', '%40')), `${next} keeps ${part}`);
    }
    if (!want.length) assert.match(pages[0].html, /No matching requests/);
  }
  // the form shows the filters it applied
  const html = await (await ac.get('/admin/audit?decision=deny&tool=fx__add&agent=gw-audit')).text();
  assert.match(html, /<option value="deny" selected>/);
  assert.match(html, /name="tool" value="fx__add"/);
  assert.match(html, /<option value="gw-audit" selected>/);
  assert.match(html, /href="\/admin\/audit\.csv\?agent=gw-audit&amp;tool=fx__add&amp;decision=deny"/);
});

test('bad filters and page links are a 400, not an error or a full listing', async () => {
  for (const q of ['from=yesterday', 'to=2026-01-10T25:99', 'from=2026-02-30T10:00', 'from=2026-01-10T10:00:00Z',
    'before=99999999999999999999999999.1']) {
    const res = await ac.get(`/admin/audit?${q}`);
    assert.equal(res.status, 400, q);
    const body = await res.text();
    assert.doesNotMatch(body, /audit-row/);
  }
  // a malformed cursor is ignored: the first page
  const html = await (await ac.get('/admin/audit?before=abc')).text();
  assert.deepEqual(rowIds(html), ids('true').slice(0, 50));
});

test('content is escaped', async () => {
  const html = await (await ac.get('/admin/audit?decision=deny&user=bob')).text();
  assert.ok(!html.includes('<img src=x'), 'no markup from the log');
  assert.match(html, /&lt;img src=x onerror=alert\(1\)&gt;/);
});

test('/admin/audit.csv: the filtered rows, quoted, as an attachment', async () => {
  const res = await ac.get('/admin/audit.csv?decision=deny');
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /^text\/csv/);
  assert.match(res.headers.get('content-disposition'), /^attachment; filename="gatehouse-audit\.csv"$/);
  const rows = parseCsv(await res.text());
  assert.deepEqual(rows[0], ['id', 'time_utc', 'agent', 'user', 'credential_kind', 'key_suffix', 'client_id',
    'client_name', 'session_id', 'request_id', 'method', 'tool', 'connector', 'decision', 'policy_ids',
    'policy_versions', 'message', 'upstream_status', 'duration_us']);
  assert.ok(rows.slice(1).every((r) => r.length === 19));
  assert.deepEqual(rows.slice(1).map((r) => Number(r[0])), ids("decision = 'deny'"));
  const odd = rows.find((r) => r[11] === '<img src=x onerror=alert(1)>');
  assert.ok(odd);
  // a formula-looking cell is defused with a leading apostrophe; quotes, comma, newline survive
  assert.equal(odd[16], `'=HYPERLINK("x"), with "quotes"\nand a line`);
  const deny = rows.find((r) => r[9] === 'rid-4');
  assert.deepEqual([deny[2], deny[3], deny[4], deny[5], deny[13], deny[14], deny[15], deny[16], deny[17], deny[18]],
    ['default', alice.email, 'oauth', 'ab12cd', 'deny', 'p-weekend', '3', 'no writes on weekends', '200', '1004']);
  assert.equal(deny[1], '2026-01-10 00:04:00');
  // every row, unfiltered
  const everything = parseCsv(await (await ac.get('/admin/audit.csv')).text());
  assert.equal(everything.length - 1, 143);
  const ranged = parseCsv(await (await ac.get('/admin/audit.csv?from=2026-01-10T01:00&to=2026-01-10T01:30&agent=gw-audit')).text());
  assert.deepEqual(ranged.slice(1).map((r) => Number(r[0])),
    ids(`agent_slug = 'gw-audit' AND at >= '2026-01-10 01:00+00' AND at < '2026-01-10 01:30+00'`));
});

test('/profile/activity shows a member only their own rows, with the same paging', async () => {
  const mine = ids(`user_email = '${alice.email}'`);
  assert.equal(mine.length, 130);
  const pages = await walk(aliceC, '/profile/activity');
  assert.deepEqual(pages.map((p) => p.ids.length), [50, 50, 30]);
  assert.deepEqual(pages.flatMap((p) => p.ids), mine);
  assert.doesNotMatch(pages[0].html, /<th>User<\/th>/);
  assert.ok(!pages.some((p) => p.html.includes(bob.email)));
  assert.doesNotMatch(pages[0].html, /Export CSV/);
  // a user filter in the URL does not widen it
  const sneaky = await walk(aliceC, `/profile/activity?user=${encodeURIComponent(bob.email)}`);
  assert.deepEqual(sneaky.flatMap((p) => p.ids), mine);
  // filters narrow it
  const denied = await walk(aliceC, '/profile/activity?decision=deny&agent=gw-audit');
  assert.deepEqual(denied.flatMap((p) => p.ids),
    ids(`user_email = '${alice.email}' AND decision = 'deny' AND agent_slug = 'gw-audit'`));
  const bobs = await walk(bobC, '/profile/activity');
  assert.deepEqual(bobs.flatMap((p) => p.ids), ids(`user_email = '${bob.email}'`));
  assert.ok(!bobs.some((p) => p.html.includes(alice.email)));
  // a member with no activity
  const carol = await signedIn(createUser(srv, {}));
  const empty = await (await carol.get('/profile/activity')).text();
  assert.match(empty, /No matching requests/);
});

test('admin pages: 403 for members, sign-in for strangers', async () => {
  for (const p of ['/admin/audit', '/admin/audit.csv', '/admin/audit?decision=deny']) {
    const res = await aliceC.get(p);
    assert.equal(res.status, 403, p);
    const body = await res.text();
    assert.doesNotMatch(body, /audit-row|no writes on weekends/);
  }
  for (const p of ['/admin/audit', '/admin/audit.csv', '/profile/activity']) {
    const res = await new Client(srv.url).get(p);
    assert.equal(res.status, 303, p);
    assert.match(res.headers.get('location'), /^\/login\?next=/);
  }
});

test('/metrics carries the audit writer counters', async () => {
  const text = await (await fetch(`${srv.url}/metrics`)).text();
  assert.match(text, /^gatehouse_audit_batches_total \d+$/m);
  assert.match(text, /^gatehouse_audit_rows_total \d+$/m);
});
