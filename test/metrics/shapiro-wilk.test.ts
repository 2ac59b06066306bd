/**
 * Shapiro–Wilk (Royston 1995, AS R94) against scipy.stats.shapiro (scipy 1.17.1). The samples come from a
 * tiny 32-bit LCG replicated in python; the reference W and p were produced once with:
 *
 *   def lcg(seed):
 *       s = seed & 0xffffffff
 *       def nxt():
 *           nonlocal s
 *           s = (1664525 * s + 1013904223) & 0xffffffff
 *           return (s + 0.5) / 4294967296
 *       return nxt
 *   normal = lambda u: math.sqrt(-2 * math.log(u())) * math.cos(2 * math.pi * u())
 *   # uniform u(), exponential -log(u()), cauchy tan(pi*(u()-0.5)), bimodal normal(u) + (-3 if u() < 0.5 else 3),
 *   # offset 1e6 + normal(u), ties floor(normal(u)*2 + 0.5)/2
 *   u = lcg(seed); x = [gen(u) for _ in range(n)]; r = scipy.stats.shapiro(x)
 */
import { describe, expect, it } from 'vitest';
import { shapiroWilk } from '../../src/metrics/shapiro-wilk.js';

type Kind = 'normal' | 'uniform' | 'exponential' | 'cauchy' | 'bimodal' | 'offset' | 'ties';

/** Uniform draws in (0, 1) from the Numerical Recipes LCG, exactly as in the python script above. */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(1664525, s) + 1013904223) >>> 0;
    return (s + 0.5) / 4294967296;
  };
}

function normal(u: () => number): number {
  const r = Math.sqrt(-2 * Math.log(u()));
  return r * Math.cos(2 * Math.PI * u());
}

const draw: Record<Kind, (u: () => number) => number> = {
  normal,
  uniform: (u) => u(),
  exponential: (u) => -Math.log(u()),
  cauchy: (u) => Math.tan(Math.PI * (u() - 0.5)),
  bimodal: (u) => {
    const z = normal(u);
    return z + (u() < 0.5 ? -3 : 3);
  },
  offset: (u) => 1e6 + normal(u),
  ties: (u) => Math.floor(normal(u) * 2 + 0.5) / 2,
};

function sample(kind: Kind, n: number, seed: number): number[] {
  const u = lcg(seed);
  return Array.from({ length: n }, () => draw[kind](u));
}

/** [kind, n, seed, W from scipy, p from scipy]. */
const cases: [Kind, number, number, number, number][] = [
  ['normal', 3, 1, 0.981433956574093, 0.7389557347669395],
  ['exponential', 3, 2, 0.9252943329312957, 0.4712625626344402],
  ['uniform', 4, 3, 0.9394705278788998, 0.651100626577217],
  ['exponential', 5, 4, 0.843800293787856, 0.1757036948918343],
  ['normal', 6, 5, 0.9426270221221036, 0.6804299816074921],
  ['cauchy', 7, 6, 0.9352649522806529, 0.5965095567782155],
  ['normal', 8, 7, 0.952864306330806, 0.7400447250275854],
  ['bimodal', 10, 8, 0.8914447597832286, 0.17603983889441632],
  ['cauchy', 11, 9, 0.39672233621207176, 8.981981904755485e-8],
  ['exponential', 11, 10, 0.9187744987281755, 0.308564943898057],
  ['bimodal', 12, 11, 0.8317076442908564, 0.021984987686313944],
  ['normal', 20, 12, 0.9676026032753747, 0.7036644142928331],
  ['uniform', 20, 13, 0.9506405082065074, 0.3769170516461694],
  ['exponential', 50, 14, 0.8636379843287934, 3.69862184677202e-5],
  ['ties', 50, 15, 0.949849065826173, 0.0336314389087505],
  ['normal', 100, 16, 0.9906662700460699, 0.7183640451602533],
  ['uniform', 100, 17, 0.9471179820669822, 0.0005384597121486485],
  ['cauchy', 100, 18, 0.8249315116679999, 1.5589727511186113e-9],
  ['bimodal', 100, 19, 0.9028139444840544, 1.922016941618439e-6],
  ['exponential', 500, 20, 0.8443916663755635, 9.166258584736786e-22],
  ['normal', 500, 21, 0.996696412489145, 0.3998717059869083],
  ['cauchy', 2000, 22, 0.008461796487321926, 1.299626040096792e-72],
  ['normal', 2000, 23, 0.9989190375310958, 0.26370871063762646],
  ['uniform', 2000, 24, 0.9503142100542088, 1.7126525015290434e-25],
  ['bimodal', 5000, 25, 0.8811448102953412, 3.6755299574059406e-52],
  ['normal', 5000, 26, 0.9995742344992409, 0.35384199168638963],
  ['offset', 200, 27, 0.9964055328822745, 0.9241876853292235],
  ['exponential', 4, 28, 0.8279115237024041, 0.16242128763494834],
  ['uniform', 5, 29, 0.8581620373773338, 0.22172425317270839],
];

/** |p − p_scipy| < 1e-5, and within 1e-4 relative when p_scipy is small. */
function expectP(p: number, ref: number): void {
  expect(Math.abs(p - ref)).toBeLessThan(1e-5);
  if (ref < 1e-2) expect(Math.abs(p - ref)).toBeLessThanOrEqual(1e-4 * ref);
}

describe('shapiroWilk', () => {
  it('draws the same samples as the python reference script', () => {
    // First draws of lcg(1) normal and lcg(3) uniform, as printed by python.
    const x = sample('normal', 3, 1);
    expect(x[0]).toBeCloseTo(-1.1568343541568942, 14);
    expect(x[1]).toBeCloseTo(-0.3273030939168647, 14);
    expect(x[2]).toBeCloseTo(-1.667173256882052, 14);
    expect(sample('uniform', 4, 3)).toEqual([
      0.23723063024226576, 0.5506782041629776, 0.8736585770966485, 0.7789159956155345,
    ]);
  });

  it.each(cases)('matches scipy on %s n=%i (seed %i)', (kind, n, seed, wRef, pRef) => {
    const { w, p } = shapiroWilk(sample(kind, n, seed));
    expect(Math.abs(w - wRef)).toBeLessThan(1e-6);
    expectP(p, pRef);
  });

  it.each([
    [[0, 0, 0, 1], 0.629776264554299, 0.0012407259151036264],
    [[1, 1, 1, 1, 2], 0.552181683501241, 0.00013097817774592973],
    [[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], 0.34499120525171123, 2.2434019096637374e-8],
    [[0, 1, 2], 1, 1],
    // W = 3/4 is the n = 3 minimum, where the exact p-value is 0 (scipy: 0.75 + 2e-16, p = 8e-16).
    [[0, 0, 1], 0.75, 0],
  ])('matches scipy on the hand-made sample %j', (x, wRef, pRef) => {
    const { w, p } = shapiroWilk(x);
    expect(Math.abs(w - wRef)).toBeLessThan(1e-6);
    expect(Math.abs(p - pRef)).toBeLessThan(1e-5);
  });

  it('does not depend on the order of the sample or mutate it', () => {
    const x = sample('exponential', 50, 14);
    const copy = x.slice();
    const f = Float64Array.from(x).reverse();
    const fCopy = f.slice();
    const a = shapiroWilk(x);
    const b = shapiroWilk(f);
    expect(x).toEqual(copy);
    expect(f).toEqual(fCopy);
    expect(b.w).toBeCloseTo(a.w, 12);
    expect(b.p).toBeCloseTo(a.p, 12);
  });

  it('is invariant under positive affine maps, including near the overflow limit', () => {
    const x = sample('bimodal', 100, 19);
    const ref = shapiroWilk(x);
    for (const [scale, shift] of [
      [1e-200, 0],
      [3, -7],
      [1e300, 0],
      [1e307, 0],
    ]) {
      const { w, p } = shapiroWilk(x.map((v) => v * scale + shift));
      expect(Math.abs(w - ref.w)).toBeLessThan(1e-12);
      expect(Math.abs(p - ref.p)).toBeLessThan(1e-12);
    }
  });

  it('returns W = 1, p = 1 for a constant sample (W undefined; PRADA must not alarm)', () => {
    expect(shapiroWilk([2.5, 2.5, 2.5])).toEqual({ w: 1, p: 1 });
    expect(shapiroWilk(new Float64Array(100))).toEqual({ w: 1, p: 1 });
  });

  it('throws RangeError outside 3 ≤ n ≤ 5000 and on non-finite values', () => {
    expect(() => shapiroWilk([1, 2])).toThrow(RangeError);
    expect(() => shapiroWilk([])).toThrow(RangeError);
    expect(() => shapiroWilk(new Float64Array(5001).map((_, i) => i))).toThrow(RangeError);
    expect(() => shapiroWilk([1, 2, NaN, 4])).toThrow(RangeError);
    expect(() => shapiroWilk([1, 2, Infinity, 4])).toThrow(RangeError);
    expect(() => shapiroWilk([1, 2, -Infinity, 4])).toThrow(RangeError);
    expect(() => shapiroWilk(new Float64Array(5000).map((_, i) => Math.sin(i)))).not.toThrow();
  });

  it('accepts normal-looking data and rejects strongly exponential data', () => {
    const nrm = shapiroWilk(sample('normal', 500, 21));
    expect(nrm.w).toBeGreaterThan(0.99);
    expect(nrm.p).toBeGreaterThan(0.05);
    const exp = shapiroWilk(sample('exponential', 200, 31));
    expect(exp.w).toBeLessThan(0.95);
    expect(exp.p).toBeLessThan(0.01);
  });

  it('keeps 0 < W ≤ 1 and 0 ≤ p ≤ 1 across sizes and shapes', () => {
    const kinds: Kind[] = ['normal', 'uniform', 'exponential', 'cauchy', 'bimodal', 'ties'];
    for (let n = 3; n <= 60; n++) {
      for (const kind of kinds) {
        const { w, p } = shapiroWilk(sample(kind, n, 1000 + n));
        expect(w).toBeGreaterThan(0);
        expect(w).toBeLessThanOrEqual(1);
        expect(p).toBeGreaterThanOrEqual(0);
        expect(p).toBeLessThanOrEqual(1);
      }
    }
  });
});
