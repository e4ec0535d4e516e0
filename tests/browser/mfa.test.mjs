// Two-step verification in Chromium: an admin under GATEHOUSE_REQUIRE_MFA=admins
// is sent to enrolment, scans (reads) the key, confirms with a code the test
// computes, keeps the recovery codes, and signs in again with a code and
// with a recovery code.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, createUser, launchBrowser, screenshot, secret } from '../harness/index.mjs';
import { totp } from '../http/totp.mjs';

let srv, browser;
before(async () => {
  srv = await startServer({ name: 'browser-mfa', env: { GATEHOUSE_REQUIRE_MFA: 'admins' } });
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  assert.equal(await srv.stop(), 0);
});

async function submit(page, selector = 'button[type=submit]') {
  const [res] = await Promise.all([page.waitForNavigation(), page.click(selector)]);
  return res;
}

async function signIn(page, u) {
  await page.goto(`${srv.url}/login`);
  await page.fill('input[name=email]', u.email);
  await page.fill('input[name=password]', u.password);
  return submit(page);
}

test('an admin enrols when required, then signs in with a code and with a recovery code', async () => {
  const u = createUser(srv, { admin: true });
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  await signIn(page, u);
  await page.goto(`${srv.url}/admin/connections`);
  assert.equal(new URL(page.url()).pathname, '/profile/security', 'sent to enrolment first');
  assert.match(await page.textContent('body'), /requires two-step verification/);
  await screenshot(page, 'mfa-required');

  await submit(page, 'form[action="/profile/security/totp"] button');
  assert.ok(await page.isVisible('svg.qr'), 'the QR code is shown');
  const box = await page.locator('svg.qr').boundingBox();
  assert.ok(box.width > 100 && box.height > 100, 'the QR code is big enough to scan');
  const key = secret((await page.textContent('#totp-key')).trim());
  await screenshot(page, 'mfa-enrol');

  await page.fill('input[name=code]', totp(key, { offset: 3 }));
  const confirm = 'form[action="/profile/security/totp/confirm"] button';
  const wrong = await submit(page, confirm);
  assert.equal(wrong.status(), 400);
  assert.match(await page.textContent('.error'), /not right/);

  await page.fill('input[name=code]', totp(key));
  assert.equal((await submit(page, confirm)).status(), 200);
  const codes = (await page.locator('#recovery-codes code').allTextContents()).map((c) => secret(c));
  assert.equal(codes.length, 10);
  await screenshot(page, 'mfa-recovery-codes');
  await page.goto(`${srv.url}/admin/connections`);
  assert.equal(new URL(page.url()).pathname, '/admin/connections', 'enrolled: the admin pages open');

  // sign out, sign in: the password, then a code
  await submit(page, 'form[action="/logout"] button');
  await signIn(page, u);
  assert.equal(new URL(page.url()).pathname, '/login/mfa');
  await screenshot(page, 'mfa-code');
  const used = totp(key, { offset: 1 });
  await page.fill('input[name=code]', used);
  await submit(page);
  assert.equal(new URL(page.url()).pathname, '/profile');
  assert.match(await page.textContent('body'), /Signed in as/);

  // the same code once more, from a second browser: refused
  const other = await (await browser.newContext()).newPage();
  await signIn(other, u);
  await other.fill('input[name=code]', used);
  const replay = await submit(other);
  assert.equal(replay.status(), 401);
  assert.match(await other.textContent('.error'), /used already/);
  await screenshot(other, 'mfa-code-replayed');
  // a recovery code instead
  await other.fill('input[name=code]', codes[0]);
  await submit(other);
  assert.equal(new URL(other.url()).pathname, '/profile');

  // both browsers are listed on the security page; this one signs the other out
  await page.goto(`${srv.url}/profile/security`);
  assert.equal(await page.locator('table.sessions tbody tr').count(), 2);
  await screenshot(page, 'security-sessions');
  await submit(page, 'table.sessions tbody tr:not(:has(strong)) button');
  assert.equal(await page.locator('table.sessions tbody tr').count(), 1);
  await other.goto(`${srv.url}/profile`);
  assert.match(other.url(), /\/login\?next=/);
  await ctx.close();
});
