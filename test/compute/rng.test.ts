import { describe, expect, it } from 'vitest';
import { Rng } from '../../src/compute/rng.js';

describe('Rng (xoshiro128** seeded by splitmix32)', () => {
  it('matches an independent reference implementation (Python, written for this test)', () => {
    const a = new Rng(42);
    expect(Array.from({ length: 5 }, () => a.nextUint32())).toEqual([
      2837322924, 544945897, 479756282, 3500138142, 339756180,
    ]);
    const b = new Rng(0);
    expect(Array.from({ length: 3 }, () => b.nextUint32())).toEqual([3809008728, 1133695204, 53579671]);
  });

  it('same seed, same stream; different seed, different stream', () => {
    const xs = (s: number) =>
      Array.from(
        { length: 20 },
        (() => {
          const r = new Rng(s);
          return () => r.next();
        })(),
      );
    expect(xs(7)).toEqual(xs(7));
    expect(xs(7)).not.toEqual(xs(8));
  });

  it('uniform, int and normal have the right ranges and moments', () => {
    const r = new Rng(1);
    let sum = 0;
    let sq = 0;
    const n = 20000;
    for (let i = 0; i < n; i++) {
      const u = r.next();
      expect(u).toBeGreaterThanOrEqual(0);
      expect(u).toBeLessThan(1);
      const k = r.int(7);
      expect(Number.isInteger(k) && k >= 0 && k < 7).toBe(true);
      const z = r.normal();
      sum += z;
      sq += z * z;
    }
    expect(Math.abs(sum / n)).toBeLessThan(0.03);
    expect(Math.abs(sq / n - 1)).toBeLessThan(0.05);
  });

  it('permutation is a permutation', () => {
    const p = Array.from(new Rng(5).permutation(100)).sort((a, b) => a - b);
    expect(p).toEqual(Array.from({ length: 100 }, (_, i) => i));
  });
});
