// A session client's answer to what the upstream asked during a call goes
// to the upstream session that asked (issue 13, item 2), even when another
// call of the same session has meanwhile replaced the session's upstream
// session (an upstream 404, a new handshake): gw_relay_response posts it
// with the call's own Mcp-Session-Id, not the session's current one.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ElicitRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import { startServer, startFixture, secret } from '../../harness/index.mjs';
import { member, addConnector, toolText } from './lib.mjs';

let srv, up, user, client;
let asked, answer;

before(async () => {
  [up, srv] = await Promise.all([
    startFixture({ name: 'pin', tools: ['echo', 'ask'] }),
    startServer({ name: 'gw-relay-pinned' }),
  ]);
  addConnector(srv, { name: 'pin', url: up.url });
  user = member(srv);
  client = new Client({ name: 'pin-client', version: '1' }, { capabilities: { elicitation: { form: {} } } });
  asked = new Promise((resolve) => {
    client.setRequestHandler(ElicitRequestSchema, () => new Promise((done) => {
      answer = done;
      resolve();
    }));
  });
  const transport = new StreamableHTTPClientTransport(new URL(`${srv.url}/mcp`), {
    requestInit: { headers: { Authorization: `Bearer ${user.pat}` } } });
  await client.connect(transport);
  secret(transport.sessionId);
});

after(async () => {
  await client?.close().catch(() => {});
  await up?.stop();
  if (srv) assert.equal(await srv.stop(), 0);
});

const rpcs = async (method) => (await up.log()).filter((e) => e.kind === 'rpc' && e.method === method);

test('an answer relayed after the session got a new upstream session goes to the one that asked', async () => {
  // the first call sets up the upstream session; the ask waits at the client
  const pending = client.callTool({ name: 'pin__ask', arguments: { method: 'elicitation/create',
    params: { message: 'who?', requestedSchema: { type: 'object', properties: { name: { type: 'string' } } } }, timeoutMs: 15000 } });
  await asked;
  const [askCall] = await rpcs('tools/call');
  assert.ok(askCall?.session, 'the ask went on an upstream session');
  // another call of the session meets a 404: the gateway makes a new one
  await up.failNext('tools/call', 404);
  const echo = await client.callTool({ name: 'pin__echo', arguments: { message: 'meanwhile' } });
  assert.match(toolText(echo), /meanwhile/);
  assert.equal((await rpcs('initialize')).length, 2, 'the 404 made a second handshake');
  const echoCall = (await rpcs('tools/call')).find((e) => e.params?.name === 'echo');
  assert.ok(echoCall.session && echoCall.session !== askCall.session, 'the session now has another upstream session');
  // the client answers now: the answer reaches the upstream session that asked
  answer({ action: 'accept', content: { name: 'pinned' } });
  const r = await pending;
  assert.ok(!r.isError, `the ask was answered: ${toolText(r)}`);
  assert.match(toolText(r), /pinned/);
  const reply = (await up.log()).find((e) => e.kind === 'rpc' && e.method === undefined && e.result?.content?.name === 'pinned');
  assert.ok(reply, 'the answer reached the upstream');
  assert.equal(reply.session, askCall.session, 'posted on the upstream session that asked');
});
