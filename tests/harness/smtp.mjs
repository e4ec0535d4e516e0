// A local SMTP sink (smtp-server from npm) on a free loopback port: mail
// Gatehouse sends is kept in memory for the test to read; none leaves the
// machine.  sink.url is what GATEHOUSE_SMTP_URL takes.
import { SMTPServer } from 'smtp-server';

export async function startSmtpSink() {
  const messages = [];
  const waiters = [];
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    logger: false,
    onData(stream, session, cb) {
      const chunks = [];
      stream.on('data', (c) => chunks.push(c));
      stream.on('end', () => {
        const raw = Buffer.concat(chunks).toString('utf8');
        const sep = raw.indexOf('\r\n\r\n');
        const head = raw.slice(0, sep);
        const headers = {};
        for (const line of head.split('\r\n')) {
          const i = line.indexOf(':');
          if (i > 0) headers[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim();
        }
        const m = {
          from: session.envelope.mailFrom && session.envelope.mailFrom.address,
          to: session.envelope.rcptTo.map((r) => r.address),
          headers,
          subject: headers.subject,
          text: raw.slice(sep + 4).replace(/\r\n/g, '\n'),
          raw,
        };
        messages.push(m);
        for (const w of waiters.splice(0)) w();
        cb();
      });
    },
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.server.address();
  return {
    url: `smtp://127.0.0.1:${port}`,
    messages,
    /* the first message to `to` (a newer one after `after` messages), waiting up to ms */
    async waitFor(to, { ms = 10000, after = 0 } = {}) {
      const deadline = Date.now() + ms;
      for (;;) {
        const m = messages.slice(after).find((x) => x.to.includes(to));
        if (m) return m;
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`no mail to ${to} within ${ms} ms`);
        await new Promise((r) => { waiters.push(r); setTimeout(r, Math.min(left, 200)); });
      }
    },
    stop: () => new Promise((r) => server.close(r)),
  };
}
