// Signing in with a real browser (Debian chromium through playwright-core).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, createUser, launchBrowser, screenshot } from '../harness/index.mjs';

let srv, browser;
before(async () => {
  srv = await startServer({ name: 'browser-login' });
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  assert.equal(await srv.stop(), 0);
});

test('a wrong password is refused and the right one signs in, back to the page asked for', async () => {
  const u = createUser(srv, {});
  const page = await browser.newPage();
  await page.goto(`${srv.url}/profile`);
  assert.match(page.url(), /\/login\?next=%2Fprofile$/);
  await screenshot(page, 'login');

  await page.fill('input[name=email]', u.email);
  await page.fill('input[name=password]', 'not-the-password');
  const [bad] = await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
  assert.equal(bad.status(), 401);
  assert.match(await page.content(), /Invalid email or password/);
  await screenshot(page, 'login-refused');

  await page.fill('input[name=email]', u.email);
  await page.fill('input[name=password]', u.password);
  await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
  assert.equal(new URL(page.url()).pathname, '/profile');
  assert.match(await page.textContent('body'), new RegExp(u.email.replace(/[.]/g, '\\.')));
  await screenshot(page, 'profile');

  const cookies = await page.context().cookies();
  const session = cookies.find((c) => c.name === 'gh_session');
  assert.ok(session?.httpOnly, 'session cookie is HttpOnly');
  assert.equal(session.sameSite, 'Lax');
  assert.equal(await page.evaluate(() => document.cookie.includes('gh_session')), false, 'scripts cannot read it');

  await Promise.all([page.waitForNavigation(), page.click('form[action="/logout"] button')]);
  assert.equal(new URL(page.url()).pathname, '/login');
  await page.goto(`${srv.url}/profile`);
  assert.match(page.url(), /\/login/);
  await page.close();
});

test('a login form replayed without its CSRF token is refused', async () => {
  const u = createUser(srv, {});
  const page = await browser.newPage();
  await page.goto(`${srv.url}/login`);
  await page.evaluate(() => document.querySelector('input[name=csrf]').remove());
  await page.fill('input[name=email]', u.email);
  await page.fill('input[name=password]', u.password);
  const [res] = await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
  assert.equal(res.status(), 403);
  await screenshot(page, 'login-csrf-refused');
  await page.goto(`${srv.url}/profile`);
  assert.match(page.url(), /\/login/, 'not signed in');
  await page.close();
});
