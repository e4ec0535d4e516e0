// Upstream MCP servers for the gateway tests, each a child process on a free
// loopback port, killed when the test process exits:
//   startFixture(config)  tests/fixtures/upstream.mjs (see its header for config)
//   startInterop(config)  tests/fixtures/interop.mjs: both generations on one
//                         endpoint, the conformance suite's catalog
//   startEverything()     @modelcontextprotocol/server-everything in Streamable
//                         HTTP mode, bound to 127.0.0.1 by tests/fixtures/loopback.mjs
//                         (its express app.listen(PORT) would bind every interface)
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { logDir, nodeModules, sourceDir } from './env.mjs';

const live = new Set();
process.on('exit', () => { for (const p of live) try { p.kill('SIGKILL'); } catch { /* gone */ } });

let serial = 0;
function logFileFor(name) {
  fs.mkdirSync(logDir, { recursive: true });
  return path.join(logDir, `upstream-${name}-${process.pid}-${++serial}.log`);
}

/* Spawns argv with node, appends its output to a log file, and resolves
 * with what ready(line) returns for the first line it accepts. */
function spawnNode(args, { name, env = {}, ready, timeoutMs = 30000, stream = 'stdout' }) {
  const logFile = logFileFor(name);
  const proc = spawn(process.execPath, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(proc);
  const exited = new Promise((resolve) => proc.on('exit', (code, sig) => { live.delete(proc); resolve(code ?? sig); }));
  let buf = '';
  const info = new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${name} not ready after ${timeoutMs} ms: ${tail(logFile)}`)), timeoutMs);
    proc[stream].on('data', (d) => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        const v = ready(line);
        if (v) { clearTimeout(t); resolve(v); }
      }
    });
    exited.then((code) => { clearTimeout(t); reject(new Error(`${name} exited (${code}) before ready: ${tail(logFile)}`)); });
  });
  for (const s of ['stdout', 'stderr']) proc[s].on('data', (d) => fs.appendFileSync(logFile, d));
  return { proc, exited, info, logFile };
}

function tail(file) {
  try { return fs.readFileSync(file, 'utf8').split('\n').slice(-20).join('\n'); } catch { return ''; }
}

function controls(p, base, name) {
  const up = {
    name, proc: p.proc, logFile: p.logFile, base,
    async kill(signal = 'SIGKILL') {
      if (p.proc.exitCode !== null || p.proc.signalCode) return p.proc.exitCode ?? p.proc.signalCode;
      p.proc.kill(signal);
      return p.exited;
    },
    stop() { return up.kill('SIGTERM'); },
  };
  return up;
}

/* The fixture upstream: resolves with { url, port, log(), resetLog(),
 * listChanged(), setTools({add, remove}), dropSessions(), endStreams(), release(), waitFor(pred), kill(), stop() }. */
export async function startFixture(config = {}) {
  const name = config.name || 'fx';
  const p = spawnNode([path.join(sourceDir, 'tests/fixtures/upstream.mjs'), JSON.stringify(config)], {
    name, ready: (line) => { try { return JSON.parse(line).port; } catch { return null; } },
  });
  const port = await p.info;
  const base = `http://127.0.0.1:${port}`;
  const up = controls(p, base, name);
  const post = async (pathname, body) => {
    const r = await fetch(base + pathname, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body ?? {}) });
    return r.json();
  };
  Object.assign(up, {
    port, url: `${base}/mcp`,
    async log() { return (await fetch(`${base}/__log`)).json(); },
    resetLog: () => post('/__log/reset'),
    listChanged: (session) => post('/__list_changed', session ? { session } : {}),
    setTools: (change) => post('/__tools', change),
    dropSessions: () => post('/__drop_sessions'),
    failNext: (method, status) => post('/__fail_next', { method, status }),
    endStreams: () => post('/__end_streams'),
    release: () => post('/__release'),
    /* Polls the log until pred(entry) holds for one entry; resolves with it. */
    async waitFor(pred, { timeoutMs = 30000, what = 'log entry' } = {}) {
      const until = Date.now() + timeoutMs;
      for (;;) {
        const hit = (await up.log()).find(pred);
        if (hit) return hit;
        if (Date.now() > until) throw new Error(`${name}: no ${what} after ${timeoutMs} ms`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
  });
  return up;
}

/* The two-generation fixture: resolves with { url, port, log(), resetLog(),
 * updated(uri), kill(), stop() }. */
export async function startInterop(config = {}) {
  const name = config.name || 'interop';
  const p = spawnNode([path.join(sourceDir, 'tests/fixtures/interop.mjs'), JSON.stringify(config)], {
    name, ready: (line) => { try { return JSON.parse(line).port; } catch { return null; } },
  });
  const port = await p.info;
  const base = `http://127.0.0.1:${port}`;
  const up = controls(p, base, name);
  const post = async (pathname, body) => (await fetch(base + pathname, { method: 'POST',
    headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body ?? {}) })).json();
  Object.assign(up, {
    port, url: `${base}/mcp`,
    async log() { return (await fetch(`${base}/__log`)).json(); },
    resetLog: () => post('/__log/reset'),
    updated: (uri) => post('/__updated', { uri }),
  });
  return up;
}

/* server-everything in Streamable HTTP mode on 127.0.0.1: resolves with
 * { url, port, address, kill(), stop() }. */
export async function startEverything() {
  const main = path.join(nodeModules, '@modelcontextprotocol/server-everything/dist/index.js');
  const preload = path.join(sourceDir, 'tests/fixtures/loopback.mjs');
  const p = spawnNode(['--import', preload, main, 'streamableHttp'], {
    name: 'everything', env: { PORT: '0' }, stream: 'stderr',
    ready: (line) => { const m = /^LOOPBACK_LISTEN (.*)$/.exec(line); return m ? JSON.parse(m[1]) : null; },
  });
  const { address, port } = await p.info;
  const up = controls(p, `http://127.0.0.1:${port}`, 'everything');
  Object.assign(up, { port, address, url: `http://127.0.0.1:${port}/mcp` });
  return up;
}
