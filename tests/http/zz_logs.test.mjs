// Runs last (ctest DEPENDS on every other case): no secret recorded by any
// test of this run appears in any log of the run, and no sanitizer spoke.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { logDir } from '../harness/index.mjs';

function logs() {
  if (!fs.existsSync(logDir)) return [];
  return fs.readdirSync(logDir).filter((f) => f.endsWith('.log')).map((f) => path.join(logDir, f));
}

test('no recorded secret appears in any log of the test run', () => {
  const file = path.join(logDir, 'secrets.txt');
  const secrets = fs.existsSync(file)
    ? [...new Set(fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l)))]
    : [];
  const files = logs();
  assert.ok(files.length > 0, 'the run produced logs');
  assert.ok(secrets.length > 0, 'the run recorded secrets');
  const leaks = [];
  for (const f of files) {
    const text = fs.readFileSync(f, 'utf8');
    for (const s of secrets) if (text.includes(s)) leaks.push(`${path.basename(f)}: ${s.slice(0, 4)}…`);
  }
  console.log(`checked ${secrets.length} secrets against ${files.length} log files`);
  assert.deepEqual(leaks, []);
});

test('no sanitizer report in any log of the test run', () => {
  const bad = [];
  for (const f of logs()) {
    const text = fs.readFileSync(f, 'utf8');
    const m = text.match(/ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:/);
    if (m) bad.push(`${path.basename(f)}: ${m[0]}`);
  }
  assert.deepEqual(bad, []);
});
