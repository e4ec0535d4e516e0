// The gateway's admin pages in Chromium: add a connector with a header on
// /admin/connectors (the value never comes back), set its tool prefix,
// disable and enable it;
// filter /admin/audit and follow its CSV link.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, createUser, gatehouse, secret, launchBrowser, screenshot } from '../harness/index.mjs';

let srv, browser, admin;

async function signIn(page, user, path) {
  await page.goto(`${srv.url}${path}`);
  await page.fill('input[name=email]', user.email);
  await page.fill('input[name=password]', user.password);
  await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
  assert.equal(new URL(page.url()).pathname, path);
}

before(async () => {
  srv = await startServer({ name: 'browser-gateway' });
  browser = await launchBrowser();
  admin = createUser(srv, { admin: true });
  assert.equal(gatehouse(srv, ['agent', 'add', '--slug', 'browser-agent', '--name', 'Browser agent']).code, 0);
});
after(async () => {
  await browser?.close();
  assert.equal(await srv.stop(), 0);
});

test('an admin adds a connector with a header, sees it without the value, disables and enables it', async () => {
  const value = secret(`Bearer browser-${Math.random().toString(36).slice(2)}-value`);
  const page = await browser.newPage();
  await signIn(page, admin, '/admin/connectors');
  assert.match(await page.textContent('body'), /No connectors yet/);
  await screenshot(page, 'gateway-connectors-empty');

  await page.selectOption('#agent', 'browser-agent');
  await page.fill('#name', 'notion');
  await page.fill('#url', 'https://mcp.notion.example.test/mcp');
  await page.fill('#headers', `Authorization: ${value}\nX-Workspace: team-42`);
  await screenshot(page, 'gateway-connectors-form');
  const [added] = await Promise.all([page.waitForNavigation(), page.click('form[action="/admin/connectors"] button[type=submit]')]);
  assert.equal(added.status(), 200);
  assert.equal(new URL(page.url()).search, '?added=notion');
  const row = page.locator('tr[data-connector="browser-agent/notion"]');
  assert.match(await row.textContent(), /notion.*https:\/\/mcp\.notion\.example\.test\/mcp.*enabled.*Authorization.*X-Workspace/);
  assert.ok(!(await page.content()).includes(value), 'the value is not on the page');
  assert.ok(!(await page.content()).includes('team-42'));
  assert.equal(await page.inputValue('#headers'), '', 'the form does not keep values');
  await screenshot(page, 'gateway-connectors-added');

  // the same name again: refused, the form keeps name and URL but not the value
  await page.selectOption('#agent', 'browser-agent');
  await page.fill('#name', 'notion');
  await page.fill('#url', 'https://mcp.notion.example.test/other');
  await page.fill('#headers', `Authorization: ${value}`);
  const [dup] = await Promise.all([page.waitForNavigation(), page.click('form[action="/admin/connectors"] button[type=submit]')]);
  assert.equal(dup.status(), 409);
  assert.match(await page.textContent('.error'), /already exists/);
  assert.equal(await page.inputValue('#url'), 'https://mcp.notion.example.test/other');
  assert.equal(await page.inputValue('#headers'), '');
  assert.ok(!(await page.content()).includes(value));
  await screenshot(page, 'gateway-connectors-duplicate');

  await Promise.all([page.waitForNavigation(), page.click('button[data-connector="browser-agent/notion"]')]);
  assert.match(await row.textContent(), /disabled/);
  assert.equal(await row.locator('button[data-connector]').textContent(), 'Enable');
  assert.match(gatehouse(srv, ['connector', 'list', '--agent', 'browser-agent']).stdout, /notion\s+disabled/);
  await screenshot(page, 'gateway-connectors-disabled');
  await Promise.all([page.waitForNavigation(), page.click('button[data-connector="browser-agent/notion"]')]);
  assert.match(await row.textContent(), /enabled/);
  assert.equal(await row.locator('button[data-connector]').textContent(), 'Disable');

  // the tool prefix: the name by default; emptied, the upstream's own names
  const prefix = row.locator('input[name=prefix]');
  assert.equal(await prefix.inputValue(), 'notion');
  await prefix.fill('');
  await Promise.all([page.waitForNavigation(), row.locator('form[action="/admin/connectors/prefix"] button').click()]);
  assert.equal(new URL(page.url()).search, '?changed=notion');
  assert.equal(await page.locator('tr[data-connector="browser-agent/notion"] input[name=prefix]').inputValue(), '');
  assert.equal(srv.cluster.sql("SELECT tool_prefix FROM connectors WHERE name = 'notion'"), '');
  await screenshot(page, 'gateway-connectors-no-prefix');
  // a bad one: a sentence in the page, nothing changed
  await page.locator('tr[data-connector="browser-agent/notion"] input[name=prefix]').evaluate((el) => el.removeAttribute('pattern'));
  await page.locator('tr[data-connector="browser-agent/notion"] input[name=prefix]').fill('no spaces');
  const [bad] = await Promise.all([page.waitForNavigation(),
    page.locator('tr[data-connector="browser-agent/notion"] form[action="/admin/connectors/prefix"] button').click()]);
  assert.equal(bad.status(), 400);
  assert.match(await page.textContent('.error'), /tool prefix must be at most 32 characters/);
  assert.equal(srv.cluster.sql("SELECT tool_prefix FROM connectors WHERE name = 'notion'"), '');
  await screenshot(page, 'gateway-connectors-bad-prefix');
  await page.close();
});

test('an admin filters /admin/audit and downloads the CSV of the same rows', async () => {
  const uid = srv.cluster.sql(`SELECT id FROM users WHERE email = '${admin.email}'`);
  srv.cluster.sql(`INSERT INTO audit_events (at, agent_slug, user_id, user_email, credential_kind, key_suffix,
      client_name, method, tool, connector, decision, message, upstream_status, duration_us)
    SELECT now() - i * interval '1 minute', 'browser-agent', '${uid}', '${admin.email}', 'oauth', 'f00d01',
           'Claude', 'tools/call', CASE WHEN i % 2 = 0 THEN 'notion__search' ELSE 'notion__create_page' END,
           'notion', CASE WHEN i % 3 = 0 THEN 'deny' ELSE 'allow' END,
           CASE WHEN i % 3 = 0 THEN 'no page creation' ELSE 'allow (no policy engine)' END, 200, 2500
      FROM generate_series(1, 60) i`);
  const page = await browser.newPage();
  await signIn(page, admin, '/admin/audit');
  assert.equal(await page.locator('tr.audit-row').count(), 50);
  assert.equal(await page.locator('a[rel=next]').count(), 1);
  await screenshot(page, 'gateway-audit');

  await page.selectOption('select[name=decision]', 'deny');
  await page.fill('input[name=tool]', 'notion__search');
  await Promise.all([page.waitForNavigation(), page.click('form.filters button[type=submit]')]);
  const want = Number(srv.cluster.sql(`SELECT count(*) FROM audit_events WHERE decision = 'deny' AND tool = 'notion__search'`));
  assert.equal(await page.locator('tr.audit-row').count(), want);
  for (const text of await page.locator('tr.audit-row').allTextContents()) {
    assert.match(text, /notion__search.*deny.*no page creation/);
  }
  await screenshot(page, 'gateway-audit-filtered');

  const href = await page.getAttribute('a#csv', 'href');
  assert.match(href, /^\/admin\/audit\.csv\?/);
  assert.match(href, /decision=deny/);
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('a#csv')]);
  assert.equal(download.suggestedFilename(), 'gatehouse-audit.csv');
  const csv = await (await download.createReadStream()).toArray();
  const lines = Buffer.concat(csv).toString('utf8').trim().split('\r\n');
  assert.equal(lines.length, want + 1);
  assert.ok(lines.slice(1).every((l) => l.includes(',notion__search,notion,deny,')));
  await page.close();
});

test('a row\'s policy links filter /admin/audit by that policy; an owner has the agent\'s own audit page', async () => {
  const [p1, p2] = ['11111111-1111-4111-8111-111111111111', '22222222-2222-4222-8222-222222222222'];
  const agentId = srv.cluster.sql("SELECT id FROM agents WHERE slug = 'browser-agent'");
  srv.cluster.sql(`INSERT INTO audit_events (at, agent_id, agent_slug, user_email, credential_kind, method, tool,
      connector, decision, policy_ids, policy_versions, message, upstream_status, duration_us)
    SELECT now() + i * interval '1 second', '${agentId}', 'browser-agent', 'policy-rows@example.test', 'pat',
           'tools/call', 'notion__search', 'notion', CASE WHEN i % 2 = 0 THEN 'deny' ELSE 'allow' END,
           CASE WHEN i % 2 = 0 THEN '${p1}' ELSE '${p2}' END, CASE WHEN i % 2 = 0 THEN '3' ELSE '1' END,
           CASE WHEN i % 2 = 0 THEN 'no searching' ELSE 'allowed by policy' END, 200, 1500
      FROM generate_series(1, 6) i`);
  const page = await browser.newPage();
  await signIn(page, admin, '/admin/audit');
  const link = page.locator(`tr.audit-row a.policy[title="${p1}"]`).first();
  assert.equal(await link.textContent(), '11111111@3');
  await Promise.all([page.waitForNavigation(), link.click()]);
  assert.equal(new URL(page.url()).search, `?policy=${p1}`);
  assert.equal(await page.inputValue('#policy'), p1);
  assert.equal(await page.locator('tr.audit-row').count(), 3);
  for (const text of await page.locator('tr.audit-row').allTextContents()) assert.match(text, /deny.*no searching/);
  await screenshot(page, 'gateway-audit-by-policy');
  await page.close();

  const owner = createUser(srv, { agents: ['browser-agent'] });
  assert.equal(gatehouse(srv, ['member', 'owner', '--agent', 'browser-agent', '--email', owner.email, 'on']).code, 0);
  const op = await browser.newPage();
  await signIn(op, owner, '/agents');
  await Promise.all([op.waitForNavigation(), op.click('a[href="/agents/browser-agent/audit"]')]);
  assert.match(await op.textContent('h1'), /Audit log of Browser agent/);
  assert.equal(await op.locator('select#agent').count(), 0, 'one agent: no agent filter');
  await op.fill('#policy', p2);
  await Promise.all([op.waitForNavigation(), op.click('form.filters button[type=submit]')]);
  assert.equal(await op.locator('tr.audit-row').count(), 3);
  for (const text of await op.locator('tr.audit-row').allTextContents()) assert.match(text, /allow.*22222222@1/);
  await screenshot(op, 'gateway-agent-audit');
  await op.close();
});
