// bench/gateway/serve.mjs — the benchmark's Gatehouse set-up, kept running
// for profiling: the fast upstream, a durable cluster, Gatehouse with a PAT,
// a connector and an open MCP session.  Prints the wrk command that drives it
// and waits for Ctrl-C.
//   node bench/gateway/serve.mjs [--nofsync]
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startCluster, startServer, createUser, gatehouse } from '../../tests/harness/index.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const up = spawn(process.execPath, [path.join(here, 'fast-upstream.mjs'), '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
const upPort = await new Promise((resolve) => up.stdout.once('data', (d) => resolve(JSON.parse(String(d)).port)));
const cluster = await startCluster({ durable: !process.argv.includes('--nofsync') });
const srv = await startServer({ cluster, name: 'bench-gateway-serve', env: { GATEHOUSE_LOG_LEVEL: 'info' } });
const u = createUser(srv, {});
const pat = gatehouse(srv, ['pat', 'create', '--email', u.email, '--agent', 'default', '--name', 'bench']).stdout.trim();
gatehouse(srv, ['connector', 'add', '--agent', 'default', '--name', 'fast', '--url', `http://127.0.0.1:${upPort}/mcp`]);
const url = `${srv.url}/mcp`;
const post = (msg, h) => fetch(url, { method: 'POST', body: JSON.stringify(msg), headers: { 'Content-Type': 'application/json',
  Accept: 'application/json, text/event-stream', Authorization: `Bearer ${pat}`, ...h } });
const init = await post({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'bench', version: '1' } } });
const sid = init.headers.get('mcp-session-id');
await post({ jsonrpc: '2.0', method: 'notifications/initialized' }, { 'Mcp-Session-Id': sid, 'MCP-Protocol-Version': '2025-11-25' });
console.log(JSON.stringify({ gatehouse_pid: srv.proc.pid, upstream_pid: up.pid, url }));
console.log(`BENCH_TOOL=fast__add BENCH_AUTH=${pat} BENCH_SESSION=${sid} wrk -t2 -c64 -d10s -s ${path.join(here, 'call.lua')} ${url}`);
const stop = async () => { await srv.stop(); await cluster.stop(); up.kill(); process.exit(0); };
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
setInterval(() => {}, 1 << 30);
