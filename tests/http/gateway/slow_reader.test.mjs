// A client that stops reading a forwarded call's stream: the gateway queues
// at most 64 MiB for it and drops what comes past that — whole events only.
// The upstream sends 96 progress notifications of 1 MiB each while the
// client reads nothing (a paused raw socket); once the gateway has had the
// whole answer, the client reads: every event it gets is a
// complete JSON-RPC message (before, the event that crossed the limit went
// out cut: its "data:" line without the message), and some were dropped.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { startServer, startFixture } from '../../harness/index.mjs';
import { member, addConnector, rawSession, eventually, ACCEPT_BOTH, LEGACY } from './lib.mjs';

const STEPS = 96;
const PAD = 1 << 20;
let srv, alpha, user;

before(async () => {
  alpha = await startFixture({ name: 'alpha', tools: ['stream'] });
  srv = await startServer({ name: 'gw-slow-reader' });
  addConnector(srv, { name: 'alpha', url: alpha.url });
  user = member(srv);
});

after(async () => {
  await alpha?.stop();
  if (srv) assert.equal(await srv.stop(), 0);
});

test('a stream its client stopped reading is cut at whole events', async () => {
  const s = await rawSession(srv, user.pat);
  // a raw socket, paused: nothing is read from the kernel until resumed
  // (node:http and fetch would keep reading into memory)
  const body = JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'alpha__stream',
    arguments: { steps: STEPS, delayMs: 0, pad: PAD }, _meta: { progressToken: 'big' } } });
  const u = new URL(srv.url);
  const sock = net.connect(Number(u.port), u.hostname);
  await new Promise((resolve, reject) => { sock.once('connect', resolve); sock.once('error', reject); });
  sock.pause();
  sock.write(`POST /mcp HTTP/1.1\r\nHost: ${u.host}\r\nContent-Type: application/json\r\nAccept: ${ACCEPT_BOTH}\r\n` +
    `Authorization: Bearer ${user.pat}\r\nMcp-Session-Id: ${s.session}\r\nMCP-Protocol-Version: ${LEGACY}\r\n` +
    `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
  // the client reads nothing until the gateway has had the upstream's whole
  // answer: the call's audit row (written ahead) gets its outcome once the
  // answer is complete
  await alpha.waitFor((e) => e.event === 'stream-done', { timeoutMs: 120000, what: 'the upstream done' });
  await eventually(() => srv.cluster.sql("SELECT count(*) FROM audit_events WHERE tool = 'alpha__stream' AND outcome_at IS NOT NULL") === '1',
    { timeoutMs: 120000, what: "the call's audit outcome" });
  const chunks = [];
  sock.on('data', (c) => chunks.push(c));
  await new Promise((resolve, reject) => { sock.on('end', resolve); sock.on('error', reject); sock.resume(); });
  const raw = Buffer.concat(chunks);
  const head = raw.subarray(0, raw.indexOf('\r\n\r\n')).toString();
  assert.match(head, /^HTTP\/1\.1 200/);
  assert.match(head, /content-type: text\/event-stream/i);
  assert.match(head, /transfer-encoding: chunked/i);
  const parts = [];    // the chunked body, decoded
  for (let at = raw.indexOf('\r\n\r\n') + 4; ;) {
    const eol = raw.indexOf('\r\n', at);
    const size = parseInt(raw.subarray(at, eol).toString(), 16);
    if (!size) break;
    parts.push(raw.subarray(eol + 2, eol + 2 + size));
    at = eol + 2 + size + 2;
  }
  const text = Buffer.concat(parts).toString('utf8');
  const events = text.split('\n\n').filter((e) => e.split('\n').some((l) => l.startsWith('data:')));
  const bad = [];
  let progress = 0;
  for (const e of events) {
    const data = e.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).replace(/^ /, '')).join('\n');
    let m;
    try { m = JSON.parse(data); } catch { bad.push(e.slice(0, 80)); continue; }
    if (m.method === 'notifications/progress') progress++;
  }
  assert.deepEqual(bad, [], 'every event carries a whole message');
  assert.ok(progress > 0 && progress < STEPS, `some progress got through, the rest was dropped (${progress} of ${STEPS})`);
});
