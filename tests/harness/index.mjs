// The integration-test harness: import everything from here.
import { gatehouse } from './server.mjs';
import { secret } from './secrets.mjs';

export * from './env.mjs';
export { startCluster } from './cluster.mjs';
export { startServer, gatehouse, freePort } from './server.mjs';
export { Client, inputValue } from './http.mjs';
export { secret } from './secrets.mjs';
export { launchBrowser, screenshot } from './browser.mjs';
export { startFixture, startEverything, startInterop } from './upstream.mjs';
export { startPgCut } from './pgcut.mjs';
export { startSmtpSink } from './smtp.mjs';

let users = 0;
/* Creates an account through the CLI; the password is recorded as a secret.
   The account is made an approved member of each agent of `agents` (only an
   approved member may use an agent); pass [] for someone who is not one. */
export function createUser(srv, { email, password, admin = false, agents = ['default'] } = {}) {
  email ??= `user${++users}-${process.pid}@example.test`;
  password ??= secret(`pw-${Math.random().toString(36).slice(2)}-${Date.now()}`);
  secret(password);
  const args = ['user', 'add', '--email', email, '--password-stdin'];
  if (admin) args.push('--admin');
  const r = gatehouse(srv, args, { input: password + '\n' });
  if (r.code !== 0) throw new Error(`user add failed (${r.code}): ${r.stderr}`);
  for (const agent of agents) {
    const m = gatehouse(srv, ['member', 'approve', '--agent', agent, '--email', email]);
    if (m.code !== 0) throw new Error(`member approve failed (${m.code}): ${m.stderr}`);
  }
  return { email, password };
}
