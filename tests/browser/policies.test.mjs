// An agent's policies in Chromium (/agents/{slug}/policies): an owner adds a
// policy, reads a parse error and a schema error at line:col with the text
// kept, fixes it, edits it, compares versions 1 and 2, switches it to shadow
// and back, tries the test bench (the forbid's @message and the determining
// policy), disables it; a member gets the 403 page.  Screenshots land in
// build/screenshots/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, createUser, gatehouse, launchBrowser, screenshot } from '../harness/index.mjs';

let srv, browser;
before(async () => {
  srv = await startServer({ name: 'browser-policies' });
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  assert.equal(await srv.stop(), 0);
});

function cli(args) {
  const r = gatehouse(srv, args);
  assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

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

const BROKEN = `@message("Destructive tools are off on this agent.")
forbid (principal, action == Action::"tools/call", resource is Tool)
  when { resource.destructive && };
`;
const UNKNOWN = `@message("Destructive tools are off on this agent.")
forbid (principal, action == Action::"tools/call", resource is Tool)
  when { resource.destructiv && context.args has repo };
`;
const V1 = `@message("Destructive tools are off on this agent.")
forbid (principal, action == Action::"tools/call", resource is Tool)
  when { resource.destructive && !resource.readOnly };
`;
const V2 = V1.replace('are off on this agent', 'are switched off: ask #ops');

test('an owner writes, fixes, edits, compares, shadows, tests and disables a policy; a member is refused', async () => {
  cli(['agent', 'add', '--slug', 'pol', '--name', 'Policy desk']);
  const owner = createUser(srv, { agents: ['pol'] });
  const member = createUser(srv, { agents: ['pol'] });
  cli(['member', 'owner', '--agent', 'pol', '--email', owner.email, 'on']);

  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  await signIn(page, owner);

  // from the agent's card to its policies: the seeded permit-all is listed
  await page.goto(`${srv.url}/agents`);
  await submit(page, '#agent-pol a[href="/agents/pol/policies"]');
  assert.match(await page.textContent('tr[data-policy="permit-all"]'), /enforce.*enabled.*1/s);

  // a parse error at line:col, the text kept, nothing saved
  await submit(page, '#new-policy');
  await page.fill('#name', 'no-destructive');
  await page.fill('#text', BROKEN);
  let res = await submit(page, 'button[type=submit]:has-text("Save")');
  assert.equal(res.status(), 400);
  const parse = page.locator('#problems li');
  assert.equal(await parse.count(), 1);
  assert.equal(await parse.getAttribute('data-line'), '3');
  assert.match(await parse.textContent(), /^3:\d+ expected expression/);
  assert.equal(await page.inputValue('#text'), BROKEN);
  assert.equal(await page.inputValue('#name'), 'no-destructive');
  await screenshot(page, 'policy-parse-error');

  // a schema error: an attribute Tool does not have (context.args is open)
  await page.fill('#text', UNKNOWN);
  res = await submit(page, 'button[type=submit]:has-text("Save")');
  assert.equal(res.status(), 400);
  const schema = page.locator('#problems li');
  assert.equal(await schema.count(), 1);
  assert.match(await schema.textContent(), /^3:\d+ .*destructiv/);
  assert.equal(await page.inputValue('#text'), UNKNOWN);
  await screenshot(page, 'policy-schema-error');
  assert.doesNotMatch(cli(['policy', 'list', '--agent', 'pol']), /no-destructive/);

  // fixed: saved and listed at version 1
  await page.fill('#text', V1);
  await submit(page, 'button[type=submit]:has-text("Save")');
  assert.equal(new URL(page.url()).pathname, '/agents/pol/policies');
  const row = 'tr[data-policy="no-destructive"]';
  assert.match(await page.textContent(`${row} .version`), /^1$/);
  assert.match(await page.textContent(row), new RegExp(owner.email.replace(/[.+]/g, '\\$&')));

  // edited: version 2
  await submit(page, `${row} a:has-text("no-destructive")`);
  assert.equal(await page.inputValue('#text'), V1);
  await page.fill('#text', V2);
  await submit(page, 'button[type=submit]:has-text("Save")');
  assert.match(await page.textContent(`${row} .version`), /^2$/);
  await screenshot(page, 'policies-list');

  // versions 1 and 2 compared: the old message removed, the new one added
  await submit(page, `${row} a:has-text("History")`);
  assert.equal(await page.locator('tr[data-version]').count(), 2);
  await page.check('input[name=from][value="1"]');
  await page.check('input[name=to][value="2"]');
  await submit(page, '#compare');
  assert.match(await page.textContent('#diff-title'), /Version 1 → version 2/);
  assert.match(await page.textContent('#diff .del'), /^- @message\("Destructive tools are off on this agent\."\)$/);
  assert.match(await page.textContent('#diff .add'), /^\+ @message\("Destructive tools are switched off: ask #ops\."\)$/);
  await screenshot(page, 'policy-history-diff');
  // and backwards, chosen the other way round
  await page.check('input[name=from][value="2"]');
  await page.check('input[name=to][value="1"]');
  await submit(page, '#compare');
  assert.match(await page.textContent('#diff .add'), /are off on this agent/);

  // shadow: evaluated beside, never deciding (the bench shows both)
  await page.goto(`${srv.url}/agents/pol/policies`);
  await submit(page, `${row} button[value=shadow]`);
  assert.equal(await page.textContent(`${row} .mode`), 'shadow');
  await submit(page, '#test-bench');
  await page.selectOption('#email', member.email);
  await page.fill('#tool', 'github/delete_repo');
  await page.fill('#args', '{"repo": "gatehouse"}');
  await page.fill('#annotations', '{"destructiveHint": true}');
  await submit(page, '#decide');
  assert.equal(await page.textContent('#decision'), 'allow');
  assert.match(await page.textContent('#shadow'), /^deny [0-9a-f-]{36}@2$/);

  // enforced again: the bench shows the forbid's @message and the policy
  await page.goto(`${srv.url}/agents/pol/policies`);
  await submit(page, `${row} button[value=enforce]`);
  assert.equal(await page.textContent(`${row} .mode`), 'enforce');
  await submit(page, '#test-bench');
  await page.selectOption('#email', member.email);
  await page.fill('#tool', 'github/delete_repo');
  await page.fill('#args', '{"repo": "gatehouse"}');
  await page.fill('#annotations', '{"destructiveHint": true}');
  await page.fill('#at', '2026-12-07 10:00 UTC');
  await submit(page, '#decide');
  assert.equal(await page.textContent('#decision'), 'deny');
  assert.equal(await page.textContent('#message'), 'Destructive tools are switched off: ask #ops.');
  assert.equal(await page.textContent('#determining'), 'no-destructive@2');
  const request = await page.textContent('#request');
  assert.match(request, /action: Action::"tools\/call"/);
  assert.match(request, /resource: Tool::"github\/delete_repo"/);
  assert.match(request, /"repo": "gatehouse"/);
  assert.match(request, /"date": "2026-12-07", "datetime": datetime\(1796637600000ms\), "hour": 10, "minute": 0, "weekday": 1/);
  await screenshot(page, 'policy-bench-deny');

  // arguments that are not a JSON object: a sentence, the form kept
  await page.fill('#args', '["not", "an", "object"]');
  res = await submit(page, '#decide');
  assert.equal(res.status(), 400);
  assert.match(await page.textContent('.error'), /The arguments must be a JSON object/);
  assert.equal(await page.inputValue('#args'), '["not", "an", "object"]');
  await screenshot(page, 'policy-bench-bad-args');

  // disabled: the bench allows again through permit-all
  await page.goto(`${srv.url}/agents/pol/policies`);
  await submit(page, `${row} button[value=disable]`);
  assert.equal(await page.textContent(`${row} .state`), 'disabled');
  await submit(page, '#test-bench');
  await page.selectOption('#email', member.email);
  await page.fill('#tool', 'github/delete_repo');
  await page.fill('#annotations', '{"destructiveHint": true}');
  await submit(page, '#decide');
  assert.equal(await page.textContent('#decision'), 'allow');
  assert.match(await page.textContent('#determining'), /^permit-all@1$/);
  await ctx.close();

  // a member: the console's 403 page with a sentence, on every policy page
  const mctx = await browser.newContext();
  const mp = await mctx.newPage();
  await signIn(mp, member);
  for (const path of ['/agents/pol/policies', '/agents/pol/policies/new', '/agents/pol/policies/test']) {
    const r = await mp.goto(`${srv.url}${path}`);
    assert.equal(r.status(), 403, path);
    assert.match(await mp.textContent('#sentence'), /Only the owners of this agent and admins manage its policies/);
    assert.equal(await mp.locator('header nav[aria-label=Console]').count(), 1);
  }
  await mp.goto(`${srv.url}/agents`);
  assert.equal(await mp.locator('#agent-pol a[href="/agents/pol/policies"]').count(), 0);
  await mp.goto(`${srv.url}/agents/pol/policies`);
  await screenshot(mp, 'policies-member-403');
  await mctx.close();
});
