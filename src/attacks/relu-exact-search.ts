/**
 * The search half of exact ReLU extraction (relu-exact.ts): the API as logit differences, critical
 * points on random lines (Carlini, Jagielski, Mironov, CRYPTO 2020, §4.2), and each hidden unit's
 * hyperplane from the Jacobian jump across it (Jagielski et al., USENIX Security 2020, §5.2;
 * Carlini §4.3). Float32 answers set every tolerance: a logit difference G carries about
 * 1e-7·max|G| of noise (measured), so slopes are taken over the longest spans known to be linear,
 * finite-difference steps are powers of two (exact in float32), and each is checked for a kink.
 */
import type { PredictionApi } from '../api/types.js';
import type { Rng } from '../compute/rng.js';
import { queryProbs } from './query.js';
import { topSingular, type FitSample, type Unit } from './relu-exact-fit.js';
import { remaining, type AttackerKnowledge } from './types.js';

const NAME = 'relu-exact';
export const MIN_P = 1e-35; // below it a float32 probability has too few bits for its log
const NOISE = 3e-7; // relative noise of a float32 logit difference (measured: ≤ 1.3e-7 · max|G|)
const TOL = 8; // tolerances in units of that noise
const POLISHED = 0.02; // a unit measured this far (× domain width) from its hyperplane is not measured again

/** The search's share of the budget is spent. */
export class OutOfQueries extends Error {}

/** The API as logit differences G(x) = log p_r(x) − log p_0(x), r = 1..k−1 [n·(k−1)]; NaN rows where unusable. */
export class Oracle {
  used = 0;
  unusable = 0;
  constructor(
    private readonly api: PredictionApi,
    private readonly know: AttackerKnowledge,
    public limit: number,
  ) {}

  async g(x: Float32Array, n: number): Promise<Float64Array> {
    if (this.used + n > this.limit || n > remaining(this.api)) throw new OutOfQueries();
    const p = await queryProbs(NAME, this.api, x, n, this.know);
    this.used += n;
    const k = this.know.numClasses;
    const g = new Float64Array(n * (k - 1));
    for (let i = 0; i < n; i++) {
      const row = p.subarray(i * k, (i + 1) * k);
      if (row.some((v) => !(v > MIN_P))) {
        g.fill(NaN, i * (k - 1), (i + 1) * (k - 1));
        this.unusable++;
        continue;
      }
      for (let r = 1; r < k; r++) g[i * (k - 1) + r - 1] = Math.log(row[r]) - Math.log(row[0]);
    }
    return g;
  }
}

interface Pt {
  t: number;
  g: Float64Array;
}
/** [a, b] on a line with the slope just right of a and just left of b, and the steps that measured them. */
interface Interval {
  a: Pt;
  b: Pt;
  sa: Float64Array;
  sb: Float64Array;
  ha: number;
  hb: number;
}
interface Kink {
  t: number;
  /** no other kink in [lo, hi] */
  lo: number;
  hi: number;
  /** slope after minus slope before */
  dS: Float64Array;
}
/** A unit found, with its Jacobian jump J₊ − J₋ = s·u vᵀ (v = w, oriented along its line). */
export interface Found extends Unit {
  s: number;
  u: Float64Array;
  /** the critical point, and how far from the hyperplane its Jacobians were measured */
  x: Float64Array;
  eps: number;
  /** the two base points and G there: on both sides of the hyperplane, so they join the output layer's fit */
  sides: FitSample[];
  /** times checked at a clean point (2: done) */
  checked: number;
}

const sub = (a: Float64Array, b: Float64Array) => a.map((v, i) => v - b[i]);
const maxAbs = (a: Float64Array) => a.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
const dot = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
};
/** the float32 noise ν of G near values like these */
const noise = (...gs: Float64Array[]) => NOISE * Math.max(1, ...gs.map(maxAbs));
/** G on the line through (a, s) at t */
const along = (a: Pt, s: Float64Array, t: number) => a.g.map((v, i) => v + s[i] * (t - a.t));
/** where the lines (a, sa) and (b, sb) meet, least squares over the outputs */
function meet(a: Pt, sa: Float64Array, b: Pt, sb: Float64Array): number {
  const ds = sub(sa, sb);
  const rhs = a.g.map((v, i) => b.g[i] - sb[i] * b.t - v + sa[i] * a.t);
  return dot(ds, rhs) / Math.max(dot(ds, ds), 1e-300);
}

/** Critical points on random lines (Carlini §4.2) and the units behind them (Jagielski §5.2). */
export class Search {
  readonly units: Found[] = [];
  dropped = 0;
  private lines = 0;
  private readonly lo: number;
  private readonly hi: number;
  private x0: Float64Array = new Float64Array(0);
  private dir: Float64Array = new Float64Array(0);

  constructor(
    private readonly oracle: Oracle,
    know: AttackerKnowledge,
    private readonly d: number,
    private readonly k1: number,
    /** the victim's hidden units: the search keeps no more */
    private readonly h: number,
    private readonly step: number,
    private readonly minLen: number,
    private readonly rng: Rng,
  ) {
    this.lo = know.domain.min;
    this.hi = know.domain.max;
  }

  /**
   * A point of the box: uniform in its middle half, or sparse: a corner (all lo or all hi) with a
   * random fraction of its coordinates uniform. In high dimension w·x concentrates for uniform x (on
   * MNIST's box every unit of a trained MLP is 5σ from 0 there), so lines through the middle miss
   * the hyperplanes that the data, near a corner, makes the units cross.
   */
  private randomPoint(sparse: boolean): Float64Array {
    const { d, lo, hi } = this;
    const w = hi - lo;
    if (!sparse) return Float64Array.from({ length: d }, () => this.rng.uniform(lo + w / 4, hi - w / 4));
    const corner = this.rng.next() < 0.5 ? lo : hi;
    const density = d ** -this.rng.next(); // from one coordinate to all, log-uniform in their number
    return Float64Array.from({ length: d }, () => (this.rng.next() < density ? this.rng.uniform(lo, hi) : corner));
  }

  /**
   * One random line, to the box's faces: every other one through the middle in a random direction,
   * the rest a chord through two sparse points.
   */
  async line(): Promise<void> {
    const w = this.hi - this.lo;
    const sparse = this.lines++ % 2 === 1;
    this.x0 = this.randomPoint(sparse);
    const v = sparse
      ? this.randomPoint(true).map((b, i) => b - this.x0[i])
      : Float64Array.from({ length: this.d }, () => this.rng.normal());
    const n = Math.hypot(...v);
    if (!(n > 0)) return;
    this.dir = v.map((x) => x / n);
    const [t0, t1] = this.reach(this.x0, this.dir);
    if (!(t1 - t0 > 16 * this.step)) return;
    for (const kink of await this.scan(t0 + 1e-6 * w, t1 - 1e-6 * w)) {
      if (this.known(kink)) continue;
      const unit = await this.recover(kink);
      if (!unit) this.dropped++;
      else if (!this.units.some((u) => this.same(u, unit)) && this.units.length < this.h) this.units.push(unit);
    }
  }

  /**
   * Check every unit not yet checked where its hyperplane is far from the others found, on a line
   * along its normal, and measure it again there unless it was measured cleanly and the kink is
   * where it says. A unit first measured close to another kink had small steps (float32 noise), or
   * was two hyperplanes a hair apart taken for one: it is replaced by what is found, or dropped when
   * that is a unit already known or nothing.
   */
  async verify(): Promise<void> {
    for (let j = 0; j < this.units.length;) {
      const unit = this.units[j];
      if (unit.checked >= 2) {
        j++;
        continue;
      }
      unit.checked++;
      const again = await this.check(j);
      if (again === unit) continue;
      if (!again || this.units.some((o, m) => m !== j && this.same(o, again))) {
        this.units.splice(j, 1);
        this.dropped++;
        continue;
      }
      again.checked = this.same(again, unit) ? 2 : unit.checked;
      this.units[j] = again;
    }
  }

  /**
   * Unit j itself when it checks out (or cannot be checked), its measurement again at a clean point,
   * or undefined: no kink there.
   */
  private async check(j: number): Promise<Found | undefined> {
    const w = this.hi - this.lo;
    const unit = this.units[j];
    // units near enough to be this one measured twice do not bound the room: the second look decides
    const near = (o: Unit) => {
      const c = dot(o.w, unit.w);
      return 1 - Math.abs(c) < 1e-3 && Math.abs(o.b - Math.sign(c) * unit.b) < 0.02 * w;
    };
    const others = this.units.filter((o, m) => m !== j && !near(o));
    // a point on its hyperplane with room around it, away from where it was measured (a wrong
    // direction shows there as a kink off 0)
    let best: Float64Array | undefined;
    let room = 0;
    let score = 0;
    for (let c = 0; c < 64; c++) {
      const z = this.randomPoint(c % 2 === 1);
      const off = dot(unit.w, z) + unit.b;
      const x = z.map((v, i) => v - off * unit.w[i]); // onto the hyperplane
      const [t0, t1] = this.reach(x, unit.w);
      let r = Math.min(-t0, t1, 0.25 * w);
      for (const o of others) r = Math.min(r, Math.abs(dot(o.w, x) + o.b));
      const away = Math.hypot(...x.map((v, i) => v - unit.x[i]));
      if (Math.min(r, away / 2) > score) [best, room, score] = [x, r, Math.min(r, away / 2)];
    }
    if (!best || room < 16 * this.step) {
      unit.checked = 2; // nowhere clean to look: kept as measured
      return unit;
    }
    this.x0 = Float64Array.from(best);
    this.dir = Float64Array.from(unit.w);
    const kink = (await this.scan(-0.9 * room, 0.9 * room))
      .filter((k) => Math.abs(k.t) < 0.45 * room)
      .sort((a, b) => Math.abs(a.t) - Math.abs(b.t))[0];
    if (!kink) return undefined;
    const clean =
      others.length === this.units.length - 1 && others.every((o) => Math.abs(dot(o.w, unit.x) + o.b) > 1.5 * unit.eps);
    const expect = unit.u.map((v) => v * unit.s); // the jump along its own normal
    if (
      clean &&
      unit.eps >= POLISHED * w &&
      Math.abs(kink.t) < 1e-4 * w &&
      maxAbs(sub(kink.dS, expect)) <= 0.01 * maxAbs(expect)
    ) {
      unit.checked = 2;
      return unit;
    }
    const again = await this.recover(kink);
    if (!again) unit.checked = 2; // no clean measurement here either: kept as measured
    return again ?? unit;
  }

  /**
   * One hyperplane measured twice: units are measured to about 1e-8 in 1 − cos, and a trained
   * network may hold distinct units 1e-4 apart (seen on blobs: 2 inputs, 16 units)
   */
  private same(u: Unit, v: Unit): boolean {
    const c = dot(u.w, v.w);
    return 1 - Math.abs(c) < 1e-5 && Math.abs(u.b - Math.sign(c) * v.b) < 2e-3 * (this.hi - this.lo);
  }

  /** [t0, t1]: the part of the line x + t·v inside the box */
  private reach(x: Float64Array, v: Float64Array): [number, number] {
    let t0 = -Infinity;
    let t1 = Infinity;
    v.forEach((vi, i) => {
      if (Math.abs(vi) < 1e-12) return;
      const [a, b] = [(this.lo - x[i]) / vi, (this.hi - x[i]) / vi];
      [t0, t1] = [Math.max(t0, Math.min(a, b)), Math.min(t1, Math.max(a, b))];
    });
    return [t0, t1];
  }

  /** the kinks on the current line between t0 and t1 */
  private async scan(t0: number, t1: number): Promise<Kink[]> {
    let h0 = 0;
    let ends: Float64Array[] = [];
    const ok = (g: Float64Array) => Number.isFinite(g[0]);
    // where some probability underflows (a confident victim), pull the ends in towards t = 0
    for (let tries = 0; tries < 6 && !(ends.length && ends.every(ok)); tries++) {
      if (ends.length && !(ok(ends[0]) && ok(ends[1]))) t0 /= 2;
      if (ends.length && !(ok(ends[2]) && ok(ends[3]))) t1 /= 2;
      h0 = Math.min(this.step, (t1 - t0) / 16);
      ends = await this.at([t0, t0 + h0, t1 - h0, t1]);
    }
    const [ga, gap, gbm, gb] = ends;
    if (!ends.every(ok) || !(t1 - t0 > 16 * this.step)) return [];
    return this.kinks({
      a: { t: t0, g: ga },
      b: { t: t1, g: gb },
      sa: sub(gap, ga).map((v) => v / h0),
      sb: sub(gb, gbm).map((v) => v / h0),
      ha: h0,
      hb: h0,
    });
  }

  private point(t: number, out: Float32Array, o: number): void {
    for (let i = 0; i < this.d; i++) {
      out[o + i] = Math.min(this.hi, Math.max(this.lo, this.x0[i] + t * this.dir[i]));
    }
  }

  private async at(ts: number[]): Promise<Float64Array[]> {
    const x = new Float32Array(ts.length * this.d);
    ts.forEach((t, j) => this.point(t, x, j * this.d));
    const g = await this.oracle.g(x, ts.length);
    return ts.map((_, j) => g.slice(j * this.k1, (j + 1) * this.k1));
  }

  /** how far G may be off a line through a point and a slope measured over h, at `dist` (noise ν) */
  private tol(dist: number, h: number, nu: number): number {
    return TOL * nu * (1 + (2 * dist) / h);
  }

  /** every kink on the current line in [I.a, I.b] (Carlini §4.2's search, iterative) */
  private async kinks(first: Interval): Promise<Kink[]> {
    const found: Kink[] = [];
    const stack = [first];
    while (stack.length) {
      const I = stack.pop()!;
      const len = I.b.t - I.a.t;
      if (len < this.minLen) continue;
      // an end slope inherited from a longer interval may have been measured across a kink of this one
      if (Math.max(I.ha, I.hb) > len / 8) {
        const h = len / 16;
        const [ga, gb] = await this.at([I.a.t + h, I.b.t - h]);
        if (![ga, gb].every((g) => Number.isFinite(g[0]))) continue;
        [I.sa, I.sb, I.ha, I.hb] = [sub(ga, I.a.g).map((v) => v / h), sub(I.b.g, gb).map((v) => v / h), h, h];
      }
      const nu = noise(I.a.g, I.b.g);
      const slopeTol = TOL * nu * (2 / I.ha + 2 / I.hb);
      if (maxAbs(sub(I.sb, I.sa)) <= slopeTol && maxAbs(sub(I.b.g, along(I.a, I.sa, I.b.t))) <= this.tol(len, I.ha, nu))
        continue; // one linear piece
      const t = meet(I.a, I.sa, I.b, I.sb);
      if (t > I.a.t + 0.01 * len && t < I.b.t - 0.01 * len) {
        const kink = await this.single(I, t);
        if (kink) {
          found.push(kink);
          continue;
        }
      }
      const m = I.a.t + (0.3 + 0.4 * this.rng.next()) * len;
      const hm = Math.min(this.step, len / 16);
      const [gl, gm, gr] = await this.at([m - hm, m, m + hm]);
      if (![gl, gm, gr].every((g) => Number.isFinite(g[0]))) continue;
      const mid = { t: m, g: gm };
      stack.push({ a: mid, b: I.b, sa: sub(gr, gm).map((v) => v / hm), sb: I.sb, ha: hm, hb: I.hb });
      stack.push({ a: I.a, b: mid, sa: I.sa, sb: sub(gm, gl).map((v) => v / hm), ha: I.ha, hb: hm });
    }
    return found;
  }

  /** Is the one kink of I at t? Test t, refine from the spans [a, (a+t)/2] and [(t+b)/2, b], verify. */
  private async single(I: Interval, t: number): Promise<Kink | undefined> {
    const [g] = await this.at([t]);
    const { a, b } = I;
    const nu = noise(a.g, b.g);
    if (!(maxAbs(sub(g, along(a, I.sa, t))) <= this.tol(t - a.t, I.ha, nu))) return undefined;
    if (!(maxAbs(sub(g, along(b, I.sb, t))) <= this.tol(b.t - t, I.hb, nu))) return undefined;
    const [tl, tr] = [(a.t + t) / 2, (t + b.t) / 2];
    const [gl, gr] = await this.at([tl, tr]);
    const sl = sub(gl, a.g).map((v) => v / (tl - a.t));
    const sr = sub(b.g, gr).map((v) => v / (b.t - tr));
    const t2 = meet(a, sl, b, sr);
    if (!(t2 > tl && t2 < tr)) return undefined;
    const [g2] = await this.at([t2]);
    if (!(maxAbs(sub(g2, along(a, sl, t2))) <= this.tol(t2 - a.t, tl - a.t, nu))) return undefined;
    if (!(maxAbs(sub(g2, along(b, sr, t2))) <= this.tol(b.t - t2, b.t - tr, nu))) return undefined;
    return { t: t2, lo: a.t, hi: b.t, dS: sub(sr, sl) };
  }

  /** the kink lies on a unit's hyperplane, with the slope jump that unit would make along this line */
  private known(k: Kink): boolean {
    const x = this.x0.map((v, i) => v + k.t * this.dir[i]);
    const w = this.hi - this.lo;
    return this.units.some((u) => {
      if (Math.abs(dot(u.w, x) + u.b) > 2e-3 * w) return false;
      const expect = u.u.map((v) => v * u.s * Math.abs(dot(u.w, this.dir)));
      return maxAbs(sub(k.dS, expect)) <= 0.05 * maxAbs(k.dS);
    });
  }

  /** the unit behind a kink from the Jacobian jump across its hyperplane (Jagielski §5.2), or undefined */
  private async recover(k: Kink): Promise<Found | undefined> {
    const { d, k1 } = this;
    const w = this.hi - this.lo;
    const eps = Math.min(0.3 * (k.t - k.lo), 0.3 * (k.hi - k.t), 0.05 * w);
    // closer to its neighbours than a step, a kink may be two hyperplanes a hair apart: another line will do
    if (eps < this.step) return undefined;
    const jac: Float64Array[] = [];
    const sides: FitSample[] = [];
    for (const side of [1, -1]) {
      const base = new Float32Array(d);
      this.point(k.t + side * eps, base, 0);
      const g0 = await this.oracle.g(base, 1);
      const J = Number.isFinite(g0[0]) ? await this.jacobian(base, g0, eps / 4) : undefined;
      if (!J) return undefined;
      jac.push(J);
      sides.push({ x: base, g: g0, m: 1 });
    }
    const jump = sub(jac[0], jac[1]); // [k1 × d]: J₊ − J₋ = A'_j w_jᵀ
    // the jump along the line must be the kink's slope change
    const alongDir = Float64Array.from({ length: k1 }, (_, r) => dot(jump.subarray(r * d, (r + 1) * d), this.dir));
    if (maxAbs(sub(alongDir, k.dS)) > 0.05 * maxAbs(k.dS)) return undefined;
    const [top] = topSingular(jump, k1, d, 1, 0);
    if (!top || top.s ** 2 < 0.99 * dot(jump, jump)) return undefined; // not rank one: two hyperplanes
    const orient = Math.sign(dot(top.v, this.dir)) || 1; // the side t > t* is w·x + b > 0
    const wv = top.v.map((v) => v * orient);
    const u = top.u.map((v) => v * orient);
    const x = this.x0.map((v, i) => v + k.t * this.dir[i]);
    return { w: wv, b: -dot(wv, x), s: top.s, u, x, eps, sides, checked: 0 };
  }

  /** ∂G/∂x at `base` [k1 × d] by differences along each coordinate, each checked for a kink in between */
  private async jacobian(base: Float32Array, g0: Float64Array, h0: number): Promise<Float64Array | undefined> {
    const { d, k1 } = this;
    const J = new Float64Array(k1 * d);
    const nu = noise(g0);
    let todo = Array.from({ length: d }, (_, i) => i);
    let h = 2 ** Math.floor(Math.log2(h0)); // a power of two: exact steps in float32
    for (let tries = 0; tries < 4 && todo.length; tries++, h /= 4) {
      const x = new Float32Array(2 * todo.length * d);
      const offs: Array<[number, number]> = [];
      todo.forEach((i, j) => {
        // two more points on the coordinate, both inside the box
        const up = base[i] + 2 * h <= this.hi;
        const down = base[i] - 2 * h >= this.lo;
        const [o1, o2] = up && down ? [h, -h] : up ? [h, 2 * h] : [-h, -2 * h];
        x.set(base, 2 * j * d);
        x.set(base, (2 * j + 1) * d);
        x[2 * j * d + i] = Math.fround(base[i] + o1);
        x[(2 * j + 1) * d + i] = Math.fround(base[i] + o2);
        offs.push([x[2 * j * d + i] - base[i], x[(2 * j + 1) * d + i] - base[i]]);
      });
      const g = await this.oracle.g(x, 2 * todo.length);
      const retry: number[] = [];
      todo.forEach((i, j) => {
        const [o1, o2] = offs[j];
        let bad = o1 === o2 || o1 === 0 || o2 === 0; // a step below float32 resolution
        for (let r = 0; r < k1 && !bad; r++) {
          const [g1, g2] = [g[2 * j * k1 + r], g[(2 * j + 1) * k1 + r]];
          const slope = (g1 - g2) / (o1 - o2);
          const at0 = g2 - slope * o2; // the two points' line at the base: G there if no kink in between
          bad = !(Math.abs(at0 - g0[r]) <= TOL * nu * (1 + Math.abs(o2 / (o1 - o2))));
          J[r * d + i] = slope;
        }
        if (bad) retry.push(i);
      });
      todo = retry;
    }
    return todo.length ? undefined : J;
  }
}
