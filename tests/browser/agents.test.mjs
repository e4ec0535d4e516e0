// The agents console in Chromium: /admin/agents, /agents/{slug}/members,
// the invite flow end to end with two browser contexts (owner and
// invitee), /agents with its copy buttons, /agents/{slug}/settings with
// the kill switch and deletion.  Screenshots land in build/screenshots/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, createUser, launchBrowser, screenshot, secret } from '../harness/index.mjs';

let srv, browser;
before(async () => {
  srv = await startServer({ name: 'browser-agents' });
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  assert.equal(await srv.stop(), 0);
});

async function signIn(page, u) {
  await page.goto(`${srv.url}/login`);
  await page.fill('input[name=email]', u.email);
  await page.fill('input[name=password]', u.password);
  await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
}

async function submit(page, selector) {
  const [res] = await Promise.all([page.waitForNavigation(), page.click(selector)]);
  return res;
}

test('admin creates an agent, invites; the invitee signs in and accepts; the owner approves; /agents shows how to connect', async () => {
  const admin = createUser(srv, { admin: true, agents: [] });
  const invitee = createUser(srv, { agents: [] });
  const stranger = createUser(srv, { agents: [] });
  const owner = await browser.newContext();
  const op = await owner.newPage();
  await signIn(op, admin);

  await op.goto(`${srv.url}/admin/agents`);
  await op.fill('#slug', 'support');
  await op.fill('#name', 'Support desk');
  await op.selectOption('#trust', 'untrusted');
  await op.fill('#timezone', 'Europe/Berlin');
  await submit(op, 'form[action="/admin/agents"] button[type=submit]');
  const row = op.locator('tr[data-slug="support"]');
  assert.match(await row.textContent(), /Support desk.*untrusted.*Europe\/Berlin.*enabled/);
  await screenshot(op, 'admin-agents');

  // a bad slug is a sentence, not a raw error
  await op.fill('#slug', 'Bad Slug');
  await op.evaluate(() => document.querySelector('#slug').removeAttribute('pattern'));
  await op.fill('#name', 'x');
  const bad = await submit(op, 'form[action="/admin/agents"] button[type=submit]');
  assert.equal(bad.status(), 400);
  assert.match(await op.textContent('.error'), /The slug must be/);

  await op.goto(`${srv.url}/agents/support/members`);
  await op.fill('#email', invitee.email);
  const sent = await submit(op, 'form[action="/agents/support/members"] button[type=submit]:has-text("Invite")');
  assert.equal(sent.status(), 201);
  const link = secret(await op.textContent('#invite-link'));
  secret(new URL(link).searchParams.get('token'));
  assert.match(link, /\/invite\?token=[0-9a-f]{64}$/);
  assert.match(await op.textContent('tr[data-email="' + invitee.email + '"]'), /invited/);
  await screenshot(op, 'members-invited');

  // someone else following the link reads whom it is for
  const wrong = await browser.newContext();
  const wp = await wrong.newPage();
  await signIn(wp, stranger);
  const refused = await wp.goto(link);
  assert.equal(refused.status(), 403);
  assert.equal(await wp.textContent('#invite-email'), invitee.email);
  await screenshot(wp, 'invite-other-email');
  await wrong.close();

  // the invitee: the link, sign in, back to the invite, accept
  const guest = await browser.newContext();
  const gp = await guest.newPage();
  await gp.goto(link);
  assert.match(await gp.textContent('main'), /Sign in with that email to accept/);
  await screenshot(gp, 'invite-landing');
  await submit(gp, '#signin');
  await gp.fill('input[name=email]', invitee.email);
  await gp.fill('input[name=password]', invitee.password);
  await submit(gp, 'button[type=submit]');
  assert.match(gp.url(), /\/invite\?token=/);
  await submit(gp, 'button:has-text("Accept the invite")');
  assert.match(await gp.textContent('#invite-result'), /waits for an owner's approval/);
  await screenshot(gp, 'invite-accepted');

  // the owner approves
  await op.goto(`${srv.url}/agents/support/members`);
  const pending = `tr[data-email="${invitee.email}"]`;
  assert.match(await op.textContent(pending), /pending/);
  await submit(op, `${pending} button[value=approve]`);
  assert.match(await op.textContent(`${pending} .state`), /approved/);
  await screenshot(op, 'members-approved');

  // the member's agents page: the MCP URL and each client's instructions
  await guest.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: srv.url });
  await gp.goto(`${srv.url}/agents`);
  const card = gp.locator('#agent-support');
  assert.match(await card.textContent(), new RegExp(`MCP URL: ${srv.url}/agents/support/mcp`));
  assert.match(await card.textContent(), /untrusted/);
  await card.locator('summary').click();
  for (const id of ['url', 'cursor', 'vscode', 'claude-code', 'mcp-remote', 'curl'])
    assert.ok(await gp.isVisible(`#${id}-support`), id);
  assert.equal(await gp.textContent('#claude-code-support'),
               `claude mcp add --transport http support ${srv.url}/agents/support/mcp`);
  await gp.click('button[data-copy="claude-code-support"]');
  await gp.waitForFunction(() => document.querySelector('button[data-copy="claude-code-support"]').textContent === 'Copied');
  assert.equal(await gp.evaluate(() => navigator.clipboard.readText()),
               `claude mcp add --transport http support ${srv.url}/agents/support/mcp`);
  await screenshot(gp, 'agents');

  // a member sees their own row and Leave
  await gp.goto(`${srv.url}/agents/support/members`);
  assert.equal(await gp.locator('tbody tr').count(), 1);
  await screenshot(gp, 'members-self');
  await submit(gp, 'button[value=leave]');
  assert.equal(new URL(gp.url()).pathname, '/agents');
  assert.equal(await gp.locator('#agent-support').count(), 0);
  await guest.close();
  await owner.close();
});

test('settings: rename, time zone, kill switch off and on, delete after confirmation', async () => {
  const admin = createUser(srv, { admin: true, agents: [] });
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  await signIn(page, admin);
  await page.goto(`${srv.url}/admin/agents`);
  await page.fill('#slug', 'billing');
  await page.fill('#name', 'Billing');
  await submit(page, 'form[action="/admin/agents"] button[type=submit]');

  await page.goto(`${srv.url}/agents/billing/settings`);
  assert.equal(await page.textContent('#trust'), 'trusted');
  await page.fill('#name', 'Billing bot');
  await page.fill('#timezone', 'Not/AZone');
  const bad = await submit(page, 'button[value=save]');
  assert.equal(bad.status(), 400);
  assert.match(await page.textContent('.error'), /IANA time zone/);
  await page.fill('#name', 'Billing bot');
  await page.fill('#timezone', 'Asia/Tokyo');
  await submit(page, 'button[value=save]');
  assert.equal(await page.inputValue('#name'), 'Billing bot');
  assert.equal(await page.inputValue('#timezone'), 'Asia/Tokyo');

  await submit(page, 'button[value=disable]');
  assert.match(await page.textContent('#kill-state'), /disabled/);
  await screenshot(page, 'settings-disabled');
  await page.goto(`${srv.url}/admin/agents`);
  assert.match(await page.textContent('tr[data-slug="billing"] .state'), /disabled/);
  await page.goto(`${srv.url}/agents/billing/settings`);
  await submit(page, 'button[value=enable]');
  assert.match(await page.textContent('#kill-state'), /enabled/);

  const refused = await submit(page, 'button[value=delete]');
  assert.equal(refused.status(), 400);
  assert.match(await page.textContent('.error'), /Type the agent's slug/);
  await page.fill('#confirm', 'billing');
  await submit(page, 'button[value=delete]');
  assert.equal(new URL(page.url()).pathname, '/admin/agents');
  assert.equal(await page.locator('tr[data-slug="billing"]').count(), 0);
  await screenshot(page, 'admin-agents-deleted');
  await ctx.close();
});

test('an invite with no account: the invitee sets a password and is in', async () => {
  const admin = createUser(srv, { admin: true, agents: [] });
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  await signIn(page, admin);
  const email = `browser-new-${process.pid}@example.test`;
  await page.goto(`${srv.url}/agents/default/members`);
  await page.fill('#email', email);
  await page.check('input[name=approve_on_accept]');
  await submit(page, 'button:has-text("Invite")');
  const link = secret(await page.textContent('#invite-link'));
  secret(new URL(link).searchParams.get('token'));
  await ctx.close();

  const guest = await browser.newContext();
  const gp = await guest.newPage();
  await gp.goto(link);
  await gp.fill('#password', secret(`pw-${Date.now()}-browser`));
  await screenshot(gp, 'invite-new-account');
  await submit(gp, 'button[type=submit]');
  assert.match(await gp.textContent('#invite-result'), /You are now a member of the agent/);
  await gp.goto(`${srv.url}/agents`);
  assert.equal(await gp.locator('#agent-default').count(), 1);
  await guest.close();
});

test('consent by a non-member: a page naming the agent, and the way back takes access_denied to the app', async () => {
  const u = createUser(srv, { agents: [] });
  const reg = await (await fetch(`${srv.url}/oauth/register`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ redirect_uris: ['http://127.0.0.1:9999/callback'], token_endpoint_auth_method: 'none',
      client_name: 'Browser App' }),
  })).json();
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  let landed;
  await page.route('http://127.0.0.1:9999/**', (route) => { landed = route.request().url(); route.fulfill({ body: 'app' }); });
  await signIn(page, u);
  const q = new URLSearchParams({ response_type: 'code', client_id: reg.client_id, redirect_uri: 'http://127.0.0.1:9999/callback',
    code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256', state: 'b1' });
  const res = await page.goto(`${srv.url}/oauth/authorize?${q}`);
  assert.equal(res.status(), 403);
  assert.match(await page.textContent('h1'), /You are not a member of Default agent/);
  await screenshot(page, 'consent-not-member');
  await page.click('#back');
  await page.waitForURL(/127\.0\.0\.1:9999\/callback/);
  const back = new URL(landed);
  assert.equal(back.searchParams.get('error'), 'access_denied');
  assert.equal(back.searchParams.get('state'), 'b1');
  await ctx.close();
});
