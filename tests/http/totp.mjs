// TOTP codes as an authenticator app computes them (RFC 6238: HMAC-SHA-1,
// 6 digits, 30 s steps), with node's crypto, and enrolment over HTTP, for
// the second-factor tests.
import crypto from 'node:crypto';
import assert from 'node:assert/strict';
import { secret } from '../harness/index.mjs';

export function base32Decode(text) {
  const alpha = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0, value = 0;
  const out = [];
  for (const ch of text.replace(/=+$/, '').toUpperCase()) {
    const i = alpha.indexOf(ch);
    if (i < 0) throw new Error(`not base32: ${ch}`);
    value = (value << 5) | i;
    bits += 5;
    if (bits >= 8) { out.push((value >>> (bits - 8)) & 0xff); bits -= 8; }
  }
  return Buffer.from(out);
}

/* The code of the step `offset` steps from now. */
export function totp(base32Key, { offset = 0, at = Date.now() } = {}) {
  const step = Math.floor(at / 1000 / 30) + offset;
  const msg = Buffer.alloc(8);
  msg.writeBigUInt64BE(BigInt(step));
  const mac = crypto.createHmac('sha1', base32Decode(base32Key)).update(msg).digest();
  const o = mac[mac.length - 1] & 0x0f;
  const n = (mac.readUInt32BE(o) & 0x7fffffff) % 1_000_000;
  return String(n).padStart(6, '0');
}

/* Seconds left in the current step: a test that must stay in one step waits
 * for the next when few are left. */
export function secondsLeftInStep(at = Date.now()) {
  return 30 - Math.floor(at / 1000) % 30;
}

/* Turns on the second factor for a signed-in client: { key, codes, enrolCode }. */
export async function enrol(c) {
  const start = await c.form('/profile/security', '/profile/security/totp', {});
  assert.equal(start.status, 303);
  const page = await (await c.get('/profile/security')).text();
  assert.match(page, /<svg class="qr"/, 'a QR code is shown');
  const key = secret(page.match(/id="totp-key">([A-Z2-7]+)</)[1]);
  assert.equal(key.length, 32, '20-byte key in base32');
  const wrong = await c.post('/profile/security/totp/confirm', { code: totp(key, { offset: 5 }), csrf: c.csrf });
  assert.equal(wrong.status, 400);
  assert.match(await wrong.text(), /That code is not right/);
  const enrolCode = totp(key);
  const ok = await c.post('/profile/security/totp/confirm', { code: enrolCode, csrf: c.csrf });
  assert.equal(ok.status, 200);
  const html = await ok.text();
  const list = html.match(/<ul id="recovery-codes"[^>]*>(.*?)<\/ul>/)[1];
  const codes = [...list.matchAll(/<code>([a-z0-9-]+)<\/code>/g)].map((m) => secret(m[1]));
  assert.equal(codes.length, 10);
  assert.equal(new Set(codes).size, 10);
  return { key, codes, enrolCode };
}

