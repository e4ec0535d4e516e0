// TOTP codes as an authenticator app computes them (RFC 6238: HMAC-SHA-1,
// 6 digits, 30 s steps), with node's crypto, for the second-factor tests.
import crypto from 'node:crypto';

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
