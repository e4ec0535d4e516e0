// A throwaway PostgreSQL cluster: initdb in a temp folder, unix socket only,
// stopped (and deleted) by stop().  PostgreSQL refuses to run as root, so as
// root the cluster runs as the `postgres` system user.
import { execFileSync, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { secret } from './secrets.mjs';

function pgBinDir() {
  const root = '/usr/lib/postgresql';
  const versions = fs.readdirSync(root).filter((v) => /^\d+$/.test(v)).sort((a, b) => b - a);
  if (!versions.length) throw new Error('no PostgreSQL under /usr/lib/postgresql');
  return path.join(root, versions[0], 'bin');
}

const asRoot = process.getuid() === 0;

function run(bin, args) {
  const cmd = asRoot ? 'runuser' : bin;
  const argv = asRoot ? ['-u', 'postgres', '--', bin, ...args] : args;
  const r = spawnSync(cmd, argv, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${path.basename(bin)} failed: ${r.stderr || r.stdout}`);
  return r.stdout;
}

/* durable: keep fsync and synchronous_commit on (benchmarks); tests turn them off. */
export async function startCluster({ durable = false } = {}) {
  const bin = pgBinDir();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gh-pg-'));
  fs.chmodSync(dir, 0o755);
  if (asRoot) execFileSync('chown', ['postgres:postgres', dir]);
  const data = path.join(dir, 'data');
  const log = path.join(dir, 'postgres.log');
  run(path.join(bin, 'initdb'), ['-D', data, '-U', 'pgadmin', '--auth=trust', '-E', 'UTF8', '--no-sync']);
  const opts = `-c listen_addresses='' -c unix_socket_directories='${dir}' -c max_connections=200` +
    (durable ? '' : ' -c fsync=off -c synchronous_commit=off -c full_page_writes=off');
  const cluster = {
    dir,
    bin,
    url: `postgresql://gatehouse@/gatehouse?host=${encodeURIComponent(dir)}`,
    // the server key of every process on this cluster (startServer's default):
    // the database keeps a check of the first key used and refuses others
    serverKey: secret(crypto.randomBytes(32).toString('hex')),
    start() {
      run(path.join(bin, 'pg_ctl'), ['-D', data, '-l', log, '-o', opts, '-w', 'start']);
    },
    stopServer(mode = 'fast') {
      run(path.join(bin, 'pg_ctl'), ['-D', data, '-m', mode, '-w', 'stop']);
    },
    /* Runs SQL through psql as Gatehouse's own role (for setting up legacy
       data; what it creates belongs to that role); returns stdout. */
    sql(text, { user = 'gatehouse', db = 'gatehouse' } = {}) {
      const r = spawnSync(path.join(bin, 'psql'), ['-X', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-h', dir, '-U', user, '-d', db, '-c', text], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`psql: ${r.stderr}`);
      return r.stdout.trim();
    },
    async stop() {
      try { cluster.stopServer('immediate'); } catch { /* already stopped */ }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  cluster.start();
  // Gatehouse connects as an ordinary role, as on a managed or hardened
  // database: no superuser, the owner of its database, no TEMP privilege.
  cluster.sql('CREATE ROLE gatehouse LOGIN', { user: 'pgadmin', db: 'postgres' });
  cluster.createdb = (name) => {
    run(path.join(bin, 'createdb'), ['-h', dir, '-U', 'pgadmin', '-O', 'gatehouse', name]);
    cluster.sql(`REVOKE TEMP ON DATABASE "${name}" FROM PUBLIC, gatehouse`, { user: 'pgadmin', db: 'postgres' });
  };
  cluster.createdb('gatehouse');
  cluster.urlFor = (name) => `postgresql://gatehouse@/${name}?host=${encodeURIComponent(dir)}`;
  return cluster;
}
