// 2026-07-28 Server Validation: the mirrored headers must say what the body
// says, read the way an intermediary reads them.  A repeated Mcp-Name or
// Mcp-Method (an intermediary may take the last line, or all of them
// joined), a Base64 Mcp-Name whose decoded value holds more than the body's
// name (a NUL byte, data after the padding), or a header value holding bytes
// no header value may: each is 400 with a HeaderMismatch (-32020) JSON-RPC
// error, and nothing reaches the upstream.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, startFixture } from '../../harness/index.mjs';
import { member, addConnector, post, rawRequest, modernMsg, modernHeaders, toolText, ACCEPT_BOTH } from './lib.mjs';

let srv, alpha, user;

before(async () => {
  alpha = await startFixture({ name: 'alpha', tools: ['echo'] });
  srv = await startServer({ name: 'gw-stateless-headers' });
  addConnector(srv, { name: 'alpha', url: alpha.url });
  addConnector(srv, { name: 'beta', url: alpha.url });
  user = member(srv);
});

after(async () => {
  await alpha?.stop();
  if (srv) assert.equal(await srv.stop(), 0);
});

const b64 = (s) => `=?base64?${Buffer.from(s).toString('base64')}?=`;

/* node:http sends an array as one field line per element. */
function raw(msg, headers) {
  return rawRequest(srv, '/mcp', {
    headers: {
      Authorization: `Bearer ${user.pat}`, 'Content-Type': 'application/json', Accept: ACCEPT_BOTH,
      ...modernHeaders(msg), ...headers,
    },
    body: JSON.stringify(msg),
  });
}

const forwarded = async (message) =>
  (await alpha.log()).filter((e) => e.method === 'tools/call' && e.params?.arguments?.message === message).length;

test('Mcp-Name / Mcp-Method that an intermediary would read otherwise → 400 HeaderMismatch, nothing forwarded', async () => {
  const call = modernMsg(1, 'tools/call', { name: 'alpha__echo', arguments: { message: 'smuggled' } });
  const cases = [
    ['Base64 Mcp-Name with a NUL byte and more after the name', { 'Mcp-Name': b64('alpha__echo\0beta__echo') }],
    ['Base64 Mcp-Name with data after the padding', { 'Mcp-Name': `${b64('alpha__echo')}`.replace('?=', 'YmV0YV9fZWNobw==?=') }],
    ['Base64 Mcp-Name with an invalid character', { 'Mcp-Name': b64('alpha__echo').replace('YWxw', 'YW*xw') }],
    ['Mcp-Name repeated', { 'Mcp-Name': ['alpha__echo', 'beta__echo'] }],
    ['Mcp-Method repeated', { 'Mcp-Method': ['tools/call', 'tools/list'] }],
    ['MCP-Protocol-Version repeated', { 'MCP-Protocol-Version': ['2026-07-28', '2025-11-25'] }],
  ];
  const wrong = [];
  for (const [what, headers] of cases) {
    const r = await raw(call, headers);
    if (r.status !== 400 || r.body?.error?.code !== -32020 || r.body?.id !== 1) wrong.push(`${what}: ${r.status} ${r.text}`);
  }
  assert.deepEqual(wrong, [], 'every case refused with HeaderMismatch');
  assert.equal(await forwarded('smuggled'), 0, 'no refused request reached the upstream');
});

test('a header value with bytes outside visible ASCII is refused even when its bytes equal the body', async () => {
  // the body's method, sent as raw UTF-8 in the header instead of refused
  const msg = modernMsg(2, 'tools/lis\u00e9', {});
  const r = await raw(msg, { 'Mcp-Method': Buffer.from('tools/lis\u00e9').toString('latin1') });
  assert.equal(r.status, 400, r.text);
  assert.equal(r.body?.error?.code, -32020, r.text);
});

test('well-formed Base64 Mcp-Name values (padded, unpadded) are still accepted', async () => {
  for (const [i, enc] of [b64('alpha__echo'), b64('alpha__echo').replace(/=+\?=$/, '?=')].entries()) {
    const call = modernMsg(10 + i, 'tools/call', { name: 'alpha__echo', arguments: { message: `fine-${i}` } });
    const r = await post(srv, call, { token: user.pat, headers: { ...modernHeaders(call), 'Mcp-Name': enc } });
    assert.equal(r.status, 200, `${enc}: ${r.text}`);
    assert.equal(toolText(r.body.result), `alpha: fine-${i}`);
  }
});
