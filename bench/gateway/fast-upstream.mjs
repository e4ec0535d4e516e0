// bench/gateway/fast-upstream.mjs — the fast upstream of the gateway
// benchmark: a minimal MCP server (Streamable HTTP, plain JSON replies) that
// answers initialize, notifications, tools/list and tools/call at once.
// Prints {"port":N} when it listens on 127.0.0.1 (port 0 = any free port).
import http from 'node:http';
import { randomUUID } from 'node:crypto';

const TOOLS = { tools: [{ name: 'add', description: 'adds a and b', inputSchema: { type: 'object', properties: { a: { type: 'number' }, b: { type: 'number' } } } }] };

function reply(res, obj, extra = {}) {
  const body = JSON.stringify(obj);
  res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body), ...extra });
  res.end(body);
}

const server = http.createServer((req, res) => {
  if (req.method !== 'POST') { res.writeHead(405, { Allow: 'POST' }); res.end(); return; }
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    let m;
    try { m = JSON.parse(Buffer.concat(chunks)); } catch { res.writeHead(400); res.end(); return; }
    if (m.id === undefined) { res.writeHead(202); res.end(); return; }
    switch (m.method) {
      case 'initialize':
        return reply(res, { jsonrpc: '2.0', id: m.id, result: { protocolVersion: m.params?.protocolVersion ?? '2025-11-25',
          capabilities: { tools: {} }, serverInfo: { name: 'fast', version: '1.0.0' } } }, { 'Mcp-Session-Id': randomUUID() });
      case 'tools/list':
        return reply(res, { jsonrpc: '2.0', id: m.id, result: TOOLS });
      case 'tools/call': {
        const a = m.params?.arguments ?? {};
        return reply(res, { jsonrpc: '2.0', id: m.id, result: { content: [{ type: 'text', text: String((a.a ?? 0) + (a.b ?? 0)) }] } });
      }
      case 'ping':
        return reply(res, { jsonrpc: '2.0', id: m.id, result: {} });
      default:
        return reply(res, { jsonrpc: '2.0', id: m.id, error: { code: -32601, message: 'Method not found' } });
    }
  });
});
server.keepAliveTimeout = 120000;
server.listen(Number(process.argv[2] || 0), '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ port: server.address().port }) + '\n');
});
process.on('SIGTERM', () => process.exit(0));
