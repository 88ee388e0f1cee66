/**
 * @module portal/totp
 * Time-based one-time passwords (RFC 6238) over HOTP (RFC 4226), for the demo identity
 * provider's second factor: the code an authenticator app shows for a shared secret. Written
 * here because it is twenty lines over node:crypto and the demo needs nothing else of a library.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

const STEP_SECONDS = 30; // RFC 6238 §4.1: X, the time step, 30 seconds by default.
const DIGITS = 6;

/** RFC 4226 §5.3: HMAC-SHA-1 of the counter, dynamically truncated to DIGITS decimal digits. */
function hotp(secret: Buffer, counter: number): string {
  const msg = Buffer.alloc(8);
  msg.writeBigUInt64BE(BigInt(counter));
  const mac = createHmac('sha1', secret).update(msg).digest();
  const offset = mac[mac.length - 1]! & 0x0f;
  const bin = (mac.readUInt32BE(offset) & 0x7fffffff) % 10 ** DIGITS;
  return String(bin).padStart(DIGITS, '0');
}

/** The code for `secret` at `at`. */
export function totp(secret: Buffer, at: Date = new Date()): string {
  return hotp(secret, Math.floor(at.getTime() / 1000 / STEP_SECONDS));
}

/**
 * Whether `code` is the code now or one step either side (RFC 6238 §5.2 allows a window for clock
 * drift and the time a person takes to type it).
 */
export function checkTotp(secret: Buffer, code: string, at: Date = new Date()): boolean {
  if (!/^\d{6}$/.test(code)) return false;
  const step = Math.floor(at.getTime() / 1000 / STEP_SECONDS);
  let ok = false;
  for (const d of [-1, 0, 1]) ok = timingSafeEqual(Buffer.from(hotp(secret, step + d)), Buffer.from(code)) || ok;
  return ok;
}
