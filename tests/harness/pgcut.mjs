// tests/fixtures/pgcut.mjs in front of a cluster's unix socket, as a child
// process (see the fixture's header for what it does when told).
//   const p = await startPgCut(cluster);
//   p.url       a GATEHOUSE_DATABASE_URL through the proxy
//   p.arm(), p.armSend()      lose one audit INSERT's answer / cut as it is sent
//   p.cuts      how many connections it cut so far
//   await p.freezeListen()    silence the LISTEN connections open now; resolves with their number
//   await p.stall(), p.unstall()   leave every connection opened from now on unanswered / stop that
//   p.stop()
import { spawn } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';
import { sourceDir } from './env.mjs';

export async function startPgCut(cluster) {
  const proc = spawn(process.execPath, [path.join(sourceDir, 'tests/fixtures/pgcut.mjs'), path.join(cluster.dir, '.s.PGSQL.5432')],
    { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = readline.createInterface({ input: proc.stdout });
  const port = await new Promise((resolve, reject) => {
    lines.once('line', (l) => resolve(JSON.parse(l).port));
    proc.once('exit', (c) => reject(new Error(`pgcut exited ${c}`)));
  });
  const frozen = [], stalled = [];
  const p = {
    port, proc, cuts: 0,
    url: `postgresql://gatehouse@127.0.0.1:${port}/gatehouse?sslmode=disable`,
    arm: () => proc.stdin.write('arm\n'),
    armSend: () => proc.stdin.write('arm-send\n'),
    freezeListen: () => new Promise((resolve) => { frozen.push(resolve); proc.stdin.write('freeze-listen\n'); }),
    stall: () => new Promise((resolve) => { stalled.push(resolve); proc.stdin.write('stall\n'); }),
    unstall: () => proc.stdin.write('unstall\n'),
    stop: () => proc.stdin.end(),
  };
  lines.on('line', (l) => {
    if (l === 'cut') p.cuts++;
    if (l === 'stalled') stalled.shift()?.();
    const m = l.match(/^frozen (\d+)$/);
    if (m) frozen.shift()?.(Number(m[1]));
  });
  return p;
}
