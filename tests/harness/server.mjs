// `gatehouse serve` on a free loopback port against a throwaway cluster.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { startCluster } from './cluster.mjs';
import { gatehouseBin, logDir, sleep } from './env.mjs';

const live = new Set();
process.on('exit', () => { for (const p of live) try { p.kill('SIGKILL'); } catch { /* gone */ } });

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

let serial = 0;
function logFileFor(name) {
  fs.mkdirSync(logDir, { recursive: true });
  return path.join(logDir, `${name || 'server'}-${process.pid}-${++serial}.log`);
}

async function waitReady(srv, timeoutMs) {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (srv.proc.exitCode !== null || srv.proc.signalCode)
      throw new Error(`gatehouse exited (${srv.proc.exitCode ?? srv.proc.signalCode}) before ready:\n${tail(srv.logFile)}`);
    try {
      const r = await fetch(`${srv.url}/readyz`);
      if (r.status === 200) return;
    } catch { /* not listening yet */ }
    await sleep(50);
  }
  throw new Error(`gatehouse not ready after ${timeoutMs} ms:\n${tail(srv.logFile)}`);
}

function tail(file) {
  try { return fs.readFileSync(file, 'utf8').split('\n').slice(-30).join('\n'); } catch { return ''; }
}

/* Starts gatehouse serve.  Options: cluster (else one is started and owned),
 * env (extra GATEHOUSE_* settings), name (log file prefix), args, wrap (a
 * command that execs the binary, e.g. ['prlimit', '--nofile=1024:4096', '--']).  The server
 * key is the cluster's (cluster.serverKey), so several processes and CLI runs
 * on one database agree; env.GATEHOUSE_SERVER_KEY overrides it ('' = the
 * key file in the data folder). */
export async function startServer({ cluster, env = {}, name = 'server', args = [], wrap = [], readyTimeoutMs = 60000 } = {}) {
  const ownCluster = !cluster;
  if (ownCluster) cluster = await startCluster();
  const port = env.GATEHOUSE_LISTEN ? Number(env.GATEHOUSE_LISTEN.split(':').pop()) : await freePort();
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'gh-data-'));
  const url = `http://127.0.0.1:${port}`;
  const srv = {
    port, url, cluster, dataDir, stdout: '', proc: null, logFile: null,
    env: {
      ...process.env,
      GATEHOUSE_DATABASE_URL: cluster.url,
      GATEHOUSE_LISTEN: `127.0.0.1:${port}`,
      GATEHOUSE_PUBLIC_URL: url,
      GATEHOUSE_DATA_DIR: dataDir,
      GATEHOUSE_LOG_LEVEL: 'debug',
      ...(cluster.serverKey ? { GATEHOUSE_SERVER_KEY: cluster.serverKey } : {}),
      ...env,
    },
    async start() {
      srv.logFile = logFileFor(name);
      const out = fs.openSync(srv.logFile, 'a');
      srv.stdout = '';
      const argv = [...wrap, gatehouseBin, 'serve', ...args];
      srv.proc = spawn(argv[0], argv.slice(1), { env: srv.env, stdio: ['ignore', 'pipe', out] });
      fs.closeSync(out);
      live.add(srv.proc);
      srv.exited = new Promise((resolve) => srv.proc.on('exit', (code, sig) => { live.delete(srv.proc); resolve(code ?? sig); }));
      // stdout is the operator's channel (the one-time setup link), kept
      // apart from the log that the no-secrets test reads
      srv.proc.stdout.on('data', (d) => { srv.stdout += d; fs.appendFileSync(`${srv.logFile}.stdout`, d); });
      await waitReady(srv, readyTimeoutMs);
      return srv;
    },
    /* Sends the signal and resolves with the exit code (or the signal name). */
    async stopProcess(signal = 'SIGTERM') {
      if (!srv.proc || srv.proc.exitCode !== null || srv.proc.signalCode) return srv.proc?.exitCode;
      srv.proc.kill(signal);
      const t = setTimeout(() => srv.proc.kill('SIGKILL'), 30000);
      const code = await srv.exited;
      clearTimeout(t);
      return code;
    },
    async restart() {
      await srv.stopProcess();
      return srv.start();
    },
    async stop(signal = 'SIGTERM') {
      const code = await srv.stopProcess(signal);
      if (ownCluster) await cluster.stop();
      fs.rmSync(dataDir, { recursive: true, force: true });
      return code;
    },
  };
  await srv.start();
  return srv;
}

/* Runs the gatehouse CLI with the server's settings. */
export function gatehouse(srvOrEnv, args, { input, env = {} } = {}) {
  const base = srvOrEnv?.env ?? srvOrEnv ?? process.env;
  const r = spawnSync(gatehouseBin, args, { env: { ...base, ...env }, input, encoding: 'utf8', timeout: 60000 });
  if (r.stderr) {
    fs.mkdirSync(logDir, { recursive: true });
    fs.appendFileSync(path.join(logDir, `cli-${process.pid}.log`), r.stderr);
  }
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}
