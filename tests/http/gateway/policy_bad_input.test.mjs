// Bad policy input gets a clear 4xx (the page) or a message and a non-zero
// exit (the CLI), and changes nothing: a text over 65,536 bytes, one that
// does not parse (line:col), one that does not validate against the schema,
// a member of another agent, test-bench arguments that are not a JSON
// object, a time that is not one; owners only, on every policy page.  The
// CLI and the pages share one check, so the same texts are refused by both.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startServer, createUser, gatehouse, Client, sourceDir } from '../../harness/index.mjs';

let srv, owner, member, stranger;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gh-policy-bad-'));

before(async () => {
  // a form big enough to carry an over-long policy to the policy check itself
  srv = await startServer({ name: 'policy-bad-input', env: { GATEHOUSE_HTTP_MAX_FORM: '1048576' } });
  cli(['agent', 'add', '--slug', 'open', '--name', 'Open']);
  cli(['agent', 'add', '--slug', 'closed', '--name', 'Closed', '--untrusted']);
  cli(['agent', 'add', '--slug', 'other', '--name', 'Other', '--untrusted']);
  cli(['agent', 'add', '--slug', 'examples', '--name', 'Examples']);
  owner = createUser(srv, { agents: ['open', 'closed'] });
  member = createUser(srv, { agents: ['open', 'closed'] });
  stranger = createUser(srv, { agents: ['other'] });   // a member of another agent only
  for (const slug of ['open', 'closed']) cli(['member', 'owner', '--agent', slug, '--email', owner.email, 'on']);
});

after(async () => {
  if (srv) assert.equal(await srv.stop(), 0);
  fs.rmSync(tmp, { recursive: true, force: true });
});

function cli(args, { code = 0 } = {}) {
  const r = gatehouse(srv, args);
  assert.equal(r.code, code, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
  return r;
}

function file(name, text) {
  const f = path.join(tmp, name);
  fs.writeFileSync(f, text);
  return f;
}

async function signedIn(u) {
  const c = new Client(srv.url);
  assert.equal((await c.login(u.email, u.password)).status, 303);
  return c;
}

const GOOD = 'permit (principal, action == Action::"tools/call", resource) when { context.args has channel && context.args.channel == "ops" };\n';
const UNPARSABLE = 'permit (principal, action, resource)\n  when { principal.email == };\n';
const SCHEMA = 'forbid (principal, action, resource is Tool)\n  when { resource.colour == "red" || context.weather == "rain" };\n';
const LONG = `// ${'x'.repeat(65536)}\n${GOOD}`;

const policies = (slug) => cli(['policy', 'list', '--agent', slug]).stdout;

test('the CLI refuses what the pages refuse, with the same sentences, and saves nothing', () => {
  let r = cli(['policy', 'add', '--agent', 'open', '--name', 'long', '--file', file('long.cedar', LONG)], { code: 1 });
  assert.match(r.stderr, /The policy text is over 65536 bytes\./);
  r = cli(['policy', 'add', '--agent', 'open', '--name', 'broken', '--file', file('broken.cedar', UNPARSABLE)], { code: 1 });
  assert.match(r.stderr, /^gatehouse: 2:\d+: expected expression/m);
  r = cli(['policy', 'add', '--agent', 'open', '--name', 'schema', '--file', file('schema.cedar', SCHEMA)], { code: 1 });
  assert.match(r.stderr, /2:\d+: no attribute `colour` on Tool; 2:\d+: .*weather/);
  r = cli(['policy', 'add', '--agent', 'closed', '--member', stranger.email, '--name', 'theirs',
           '--file', file('good.cedar', GOOD)], { code: 1 });
  assert.match(r.stderr, /No such member of this agent/);
  assert.doesNotMatch(policies('open'), /long|broken|schema/);
  assert.doesNotMatch(policies('closed'), /theirs/);

  // context.args is any JSON object: reading an argument validates
  cli(['policy', 'add', '--agent', 'open', '--name', 'ops-only', '--file', file('good.cedar', GOOD)]);
  // an edit is checked the same way, and leaves the version as it was
  r = cli(['policy', 'set', '--agent', 'open', '--name', 'ops-only', '--file', file('schema.cedar', SCHEMA)], { code: 1 });
  assert.match(r.stderr, /colour/);
  assert.match(policies('open'), /ops-only\s+enforce\s+enabled\s+1 /);

  // every worked example of docs/POLICIES.md, those reading context.args included, is accepted
  const examples = [...fs.readFileSync(path.join(sourceDir, 'docs/POLICIES.md'), 'utf8')
    .matchAll(/```cedar\n([^]*?)```/g)].map((m) => m[1]);
  assert.ok(examples.filter((t) => t.includes('context.args')).length >= 2);
  examples.forEach((text, i) =>
    cli(['policy', 'add', '--agent', 'examples', '--name', `example-${i}`, '--file', file(`example${i}.cedar`, text)]));

  // the test bench: arguments that are not a JSON object are a usage error
  r = cli(['policy', 'test', '--agent', 'open', '--email', member.email, '--tool', 'gh/x', '--args', '[1, 2]'], { code: 2 });
  assert.match(r.stderr, /--args is not a JSON object/);
  r = cli(['policy', 'test', '--agent', 'open', '--email', member.email, '--tool', 'gh/x', '--args', '{"channel": "ops"}',
           '--at', 'not a time'], { code: 1 });
  assert.match(r.stderr, /The time is not a timestamp/);
  r = cli(['policy', 'test', '--agent', 'open', '--email', member.email, '--tool', 'gh/x', '--args', '{"channel": "ops"}']);
  assert.match(r.stdout, /^decision: allow$/m);
});

test('the editor: 400 with the problems at line:col, the text kept, nothing saved', async () => {
  const c = await signedIn(owner);
  const post = (fields) => c.form('/agents/open/policies/new', '/agents/open/policies/new', fields);

  let res = await post({ name: 'long', text: LONG });
  let html = await res.text();
  assert.equal(res.status, 400);
  assert.match(html, /The policy text is over 65536 bytes\./);

  res = await post({ name: 'broken', text: UNPARSABLE });
  html = await res.text();
  assert.equal(res.status, 400);
  assert.match(html, /<li data-line="2" data-col="\d+"><code>2:\d+<\/code> /);
  assert.ok(html.includes('when { principal.email == };'), 'the text is kept in the form');

  res = await post({ name: 'schema', text: SCHEMA });
  html = await res.text();
  assert.equal(res.status, 400);
  assert.match(html, /no attribute `colour` on Tool/);
  assert.match(html, /weather/);
  assert.match(html, /class="error"/);
  assert.ok(html.includes('resource.colour == &quot;red&quot;'), 'the text is kept, escaped');

  // a member of another agent, sent by hand (the form offers only this agent's)
  const cc = await signedIn(owner);
  res = await cc.form('/agents/closed/policies/new', '/agents/closed/policies/new',
                      { name: 'theirs', member: stranger.email, text: GOOD });
  html = await res.text();
  assert.equal(res.status, 404);
  assert.match(html, /No such member of this agent/);
  assert.doesNotMatch(policies('open'), /long|broken|schema/);
  assert.doesNotMatch(policies('closed'), /theirs/);

  // a NUL byte would cut the text short: refused, not saved truncated
  res = await c.post('/agents/open/policies/new',
                     `csrf=${c.csrf}&name=nul&text=${encodeURIComponent(GOOD)}%00${encodeURIComponent('forbid (principal, action, resource);')}`,
                     { headers: { 'Content-Type': 'application/x-www-form-urlencoded' } });
  assert.equal(res.status, 400);
  assert.match(await res.text(), /The policy text holds a NUL byte/);
  assert.doesNotMatch(policies('open'), /nul/);

  // an untrusted agent: a policy for one of its members is saved and listed with the member
  res = await cc.form('/agents/closed/policies/new', '/agents/closed/policies/new',
                      { name: 'mine', member: member.email, text: GOOD });
  assert.equal(res.status, 303);
  await res.arrayBuffer();
  html = await (await cc.get('/agents/closed/policies')).text();
  assert.ok(html.includes(`<td class="member">${member.email}</td>`), 'the member column');
  assert.match(policies('closed'), new RegExp(`mine\\s+enforce\\s+enabled\\s+1\\s+${member.email.replace(/[.+]/g, '\\$&')}`));

  // an edit refused keeps the current version
  const id = policies('open').split('\n').find((l) => /ops-only/.test(l)).split(/\s+/)[0];
  res = await c.form(`/agents/open/policies/${id}`, `/agents/open/policies/${id}`, { text: UNPARSABLE });
  assert.equal(res.status, 400);
  await res.arrayBuffer();
  assert.match(policies('open'), /ops-only\s+enforce\s+enabled\s+1 /);

  // versions that do not exist cannot be compared: a sentence, 400
  for (const q of ['from=1&to=9', 'from=x&to=1', 'from=1']) {
    res = await c.get(`/agents/open/policies/${id}/history?${q}`);
    assert.equal(res.status, 400, q);
    assert.match(await res.text(), /Choose two versions of this policy to compare\./);
  }

  // no such policy, or another agent's: the console's 404 sentence
  for (const p of ['/agents/open/policies/not-a-uuid', '/agents/closed/policies/' + id, '/agents/open/policies/00000000-0000-4000-8000-000000000000/history']) {
    res = await c.get(p);
    assert.equal(res.status, 404, p);
    assert.match(await res.text(), /This agent has no policy at this address/);
  }
});

test('the test bench page: arguments that are not a JSON object, a bad time, an unknown member', async () => {
  const c = await signedIn(owner);
  const post = (fields) => c.form('/agents/open/policies/test', '/agents/open/policies/test',
                                  { email: member.email, tool: 'gh/x', ...fields });
  for (const [args, why] of [['[1, 2]', /The arguments must be a JSON object\./],
                             ['{"a": ', /The arguments must be a JSON object: /],
                             ['"text"', /The arguments must be a JSON object\./]]) {
    const res = await post({ args });
    assert.equal(res.status, 400, args);
    assert.match(await res.text(), why);
  }
  let res = await post({ args: '{}', at: 'yesterday-ish' });
  assert.equal(res.status, 400);
  assert.match(await res.text(), /The time is not a timestamp/);
  res = await post({ args: '{}', tool: 'no-slash' });
  assert.equal(res.status, 400);
  assert.match(await res.text(), /The tool is CONNECTOR\/TOOL\./);
  res = await post({ args: '{}', email: stranger.email });
  assert.equal(res.status, 404);
  assert.match(await res.text(), /No approved member of this agent with that email\./);
  res = await post({ args: '{"channel": "ops"}' });
  assert.equal(res.status, 200);
  assert.match(await res.text(), /<span id="decision">allow<\/span>/);
});

test('owners only: a member gets the 403 sentence on every page and every form, and changes nothing', async () => {
  const c = await signedIn(member);
  const id = policies('open').split('\n').find((l) => /permit-all/.test(l)).split(/\s+/)[0];
  for (const p of ['/agents/open/policies', '/agents/open/policies/new', '/agents/open/policies/test',
                   `/agents/open/policies/${id}`, `/agents/open/policies/${id}/history`]) {
    const res = await c.get(p);
    assert.equal(res.status, 403, p);
    assert.match(await res.text(), /Only the owners of this agent and admins manage its policies\./);
  }
  let res = await c.form('/agents', '/agents/open/policies', { id, action: 'disable' });
  assert.equal(res.status, 403);
  await res.arrayBuffer();
  res = await c.form('/agents', `/agents/open/policies/${id}`, { text: GOOD });
  assert.equal(res.status, 403);
  await res.arrayBuffer();
  assert.match(policies('open'), /permit-all\s+enforce\s+enabled\s+1 /);
  // without the CSRF token even an owner's form is refused
  const o = await signedIn(owner);
  res = await o.post('/agents/open/policies', { id, action: 'disable' });
  assert.equal(res.status, 403);
  await res.arrayBuffer();
  assert.match(policies('open'), /permit-all\s+enforce\s+enabled\s+1 /);
  // an unknown action is a sentence, not a change
  res = await o.form('/agents/open/policies', '/agents/open/policies', { id, action: 'explode' });
  assert.equal(res.status, 400);
  assert.match(await res.text(), /Choose an action\./);
});
