/**
 * HashCash puzzles (Back 2002), as Dziedzic et al. 2022 use them to price queries: a stamp
 * `1:bits:yymmdd:resource:ext:salt:` plus a counter is valid when SHA-1(stamp‖counter) has at least
 * `bits` leading zero bits. Solving takes 2^bits hashes on average; verifying takes one.
 */
import { createHash, randomBytes } from 'node:crypto';

export interface Challenge {
  /** `1:bits:yymmdd:resource::salt:` (HashCash v1 without the counter) */
  stamp: string;
  bits: number;
  /** ms since the epoch after which the challenge is refused */
  expires: number;
}

/** Leading zero bits of a digest. */
export function leadingZeroBits(digest: Uint8Array): number {
  let n = 0;
  for (const byte of digest) {
    if (byte === 0) {
      n += 8;
      continue;
    }
    return n + Math.clz32(byte) - 24;
  }
  return n;
}

export function issueChallenge(
  bits: number,
  resource: string,
  opts: { ttlMs?: number; now?: number; salt?: string } = {},
): Challenge {
  if (!Number.isInteger(bits) || bits < 0 || bits > 64)
    throw new RangeError(`hashcash bits must be an integer in [0, 64], got ${bits}`);
  const now = opts.now ?? Date.now();
  const d = new Date(now);
  const date = `${String(d.getUTCFullYear() % 100).padStart(2, '0')}${String(d.getUTCMonth() + 1).padStart(2, '0')}${String(d.getUTCDate()).padStart(2, '0')}`;
  const salt = opts.salt ?? randomBytes(12).toString('base64url');
  return {
    stamp: `1:${bits}:${date}:${resource.replace(/:/g, '_')}::${salt}:`,
    bits,
    expires: now + (opts.ttlMs ?? 5 * 60_000),
  };
}

function digest(stamp: string, counter: string): Buffer {
  return createHash('sha1').update(stamp).update(counter).digest();
}

/** Search counters until the stamp is valid; returns the counter and the hashes it took. */
export function solve(ch: Pick<Challenge, 'stamp' | 'bits'>, start = 0): { counter: string; hashes: number } {
  for (let i = start; ; i++) {
    const counter = i.toString(36);
    if (leadingZeroBits(digest(ch.stamp, counter)) >= ch.bits) return { counter, hashes: i - start + 1 };
  }
}

export type VerifyResult = { ok: true } | { ok: false; why: 'malformed' | 'insufficient' | 'expired' };

/** One hash: does `counter` solve `ch` before it expires? (Replay protection is the issuer's: remember used stamps.) */
export function verify(ch: Challenge, counter: string, now = Date.now()): VerifyResult {
  if (!/^[0-9a-z]{1,16}$/.test(counter)) return { ok: false, why: 'malformed' };
  if (now > ch.expires) return { ok: false, why: 'expired' };
  return leadingZeroBits(digest(ch.stamp, counter)) >= ch.bits ? { ok: true } : { ok: false, why: 'insufficient' };
}

/** SHA-1 stamps per second on this machine, measured over about `ms` milliseconds. */
export function measureHashRate(ms = 200): number {
  const t0 = performance.now();
  let n = 0;
  const h = 'hashrate-probe';
  while (performance.now() - t0 < ms) {
    for (let i = 0; i < 1000; i++) digest(h, (n + i).toString(36));
    n += 1000;
  }
  return n / ((performance.now() - t0) / 1000);
}
