// The CLI never echoes what may be a secret in a usage error: a value given
// with an unknown option (`--password=…`) or the words of an unquoted header
// value end up in terminals, CI logs and shell histories' neighbours.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { gatehouseBin } from '../harness/index.mjs';

const env = { ...process.env, GATEHOUSE_DATABASE_URL: 'postgresql:///x?host=/nonexistent&connect_timeout=2' };
const run = (args) => spawnSync(gatehouseBin, args, { env, encoding: 'utf8', timeout: 20000 });

test('usage errors name the bad option but never show a value that may be a secret', () => {
  const v = `s3cr3t-${process.pid}-${Date.now()}`;
  const cases = [
    [['user', 'add', '--email', 'a@example.test', `--password=${v}`], /invalid option '--password'/],
    [['--password', `--token=${v}`, 'user', 'list'], /unknown|invalid option/],
    [['--token=' + v, 'user', 'list'], /invalid option '--token'/],
    [['pat', 'create', '--email', 'a@example.test', '--agent', 'default', '--name', 'n', `--token=${v}`], /invalid option '--token'/],
    // an unquoted header value: its words become stray arguments
    [['connector', 'add', '--agent', 'default', '--name', 'x', '--url', 'https://mcp.example.test/x',
      '--header', 'Authorization:', 'Bearer', v], /unexpected argument/],
    [['agent', 'add', '--slug', 'a', '--name', 'A', v], /unexpected argument/],
  ];
  for (const [args, re] of cases) {
    const r = run(args);
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.ok(!r.stderr.includes(v) && !r.stdout.includes(v), `the value is echoed: ${r.stderr.split('\n')[0]}`);
    assert.match(r.stderr, re, args.join(' '));
  }
});
