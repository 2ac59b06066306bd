/**
 * `pow` (Dziedzic, Kaleem, Lu, Papernot, ICLR 2022, "Increasing the Cost of Model Extraction with
 * Calibrated Proof of Work"): every `batch` queries cost a HashCash puzzle whose difficulty grows with
 * how far the client's cumulative privacy cost runs ahead of an honest user's:
 *     ε_user(n)  PATE-kNN (GNMax, data-dependent RDP) cost of the client's n answered queries
 *     ε_exp(n)   a line fitted to an honest user's trace (held-out in-distribution queries)
 *     T(n)       = unit · clamp(base^|ε_user(n) − ε_exp(n)|, 1, cap)                     (seconds per puzzle)
 *     bits       = round(log₂(T · hash rate)), so that a puzzle takes T on this machine
 * `unit` defaults to the victim's own latency for a batch, so an honest user pays at most about 2× the
 * undefended latency (the paper's design goal) while a client whose queries leak more pays
 * exponentially more, up to `cap` units a puzzle. The paper caps a puzzle at 2948.47 s where its
 * MNIST victim answers 1k queries in 7.36 s: a cap of ≈ 400× the undefended time, hence the default
 * (`unit=1,cap=2948.47` is the paper's absolute scale). An absolute cap under a millisecond unit let
 * an attacker pay 10^6× the honest user per query, and turned the seed-to-seed spread of its excess
 * privacy cost (≈ 2× between victims) into a 150× spread of PoW seconds (issue 19).
 * The privacy cost composes RDP over a client's queries and converts once (the reference code's
 * pknn tracker, analysis/private_knn.py); the paper's MNIST calibration figures (ε ≈ 0.25 a query)
 * come from its PATE path, which converts each query to ε and adds them, so our ε is about 100×
 * smaller and base 1.18 (the code's pknn value) acts on that smaller scale. In bench runs the price is computed from the measured hash rate (the ledger's
 * PoW seconds); `solve=true` also solves each puzzle for real (capped at `maxbits`). The puzzle code
 * (issue, solve, verify) is `pow/hashcash.ts`, which `mse serve` uses on the wire.
 * The calibration (`prepare`) runs once per cell and is shared; each API instance keeps its own
 * per-client privacy-cost trackers.
 */
import type { Defense } from '../api/types.js';
import { predictAll } from '../models/train.js';
import { MseError } from '../errors.js';
import { defineDefense } from './define.js';
import { issueChallenge, measureHashRate, solve } from '../protocol/hashcash.js';
import { PknnPrivacyCost } from './pow/privacy-cost.js';

export interface PowCalibration {
  /** honest cost line ε_exp(n) = slope·n + intercept */
  slope: number;
  intercept: number;
  /** seconds per puzzle at zero excess cost */
  unit: number;
  /** SHA-1 stamps per second on this machine */
  hashRate: number;
}

export type PowDefense = Defense & {
  calibration?: PowCalibration;
  /** HashCash bits the client's next puzzle needs, from its cost so far (capped at maxbits): what `mse serve` asks */
  nextBits(clientId: string): number;
};

/** What the defender calibrates once per cell, shared read-only by every API: its training set's representations and the honest line. */
export interface PowPrepared {
  /** log-posteriors of the victim on its training set, [n, k] */
  rep: Float32Array;
  labels: Int32Array;
  k: number;
  calibration: PowCalibration;
}

export const pow = defineDefense({
  name: 'pow',
  stages: ['price'],
  describe:
    'calibrated proof-of-work: a HashCash puzzle per batch, harder as the client’s PATE-kNN privacy cost outruns an honest user’s (Dziedzic 2022)',
  params: {
    batch: { type: 'int', min: 1, default: 64, help: 'queries per puzzle' },
    base: {
      type: 'number',
      min: 1,
      default: 1.18,
      help: 'time grows as base^(excess privacy cost) (the paper: 1.18 for MNIST with pknn)',
    },
    unit: {
      type: 'number',
      min: 0,
      default: 0,
      help: 'seconds per puzzle at zero excess cost; 0 = the victim’s own latency for a batch (honest users pay ≈ 2×)',
    },
    cap: {
      type: 'number',
      min: 1,
      default: 2948.47 / 7.36,
      help: 'the most a puzzle costs, in units (the paper: 2948.47 s cap over its victim’s 7.36 s per 1k queries ≈ 400)',
    },
    k: { type: 'int', min: 1, default: 300, help: 'PATE-kNN neighbours' },
    sigma: { type: 'number', min: 1e-9, default: 28, help: 'GNMax noise σ' },
    delta: { type: 'number', min: 1e-30, max: 1, default: 1e-5, help: 'δ of the privacy cost' },
    calib: {
      type: 'int',
      min: 1,
      default: 5000,
      help: 'held-out queries that trace the honest user (at most half the held-out set)',
    },
    solve: {
      type: 'bool',
      default: false,
      help: 'also solve every puzzle (else price it from the measured hash rate)',
    },
    maxbits: {
      type: 'int',
      min: 0,
      max: 32,
      default: 20,
      help: 'cap on the difficulty actually solved (solve=true, and the puzzles mse serve issues)',
    },
  },
  async prepare(p, e): Promise<PowPrepared> {
    const opts = { k: p.k, sigma: p.sigma, delta: p.delta };
    const k = e.victim.numClasses;
    const rep = logOf(await predictAll(e.victim, e.train.x, e.train.n));
    // the honest user: held-out in-distribution queries, in batches, traced like any client
    // the first part of the held-out data traces the honest user; the rest stays unseen by the calibration
    const m = Math.min(p.calib, Math.ceil(e.heldOut.n / 2));
    const d = e.victim.inputShape.reduce((a, b) => a * b, 1);
    const honest = new PknnPrivacyCost(rep, e.train.y, k, opts);
    const xs: number[] = [];
    const ys: number[] = [];
    const t0 = performance.now();
    const probs = await predictAll(e.victim, e.heldOut.x.subarray(0, m * d), m);
    const latencyPerQuery = (performance.now() - t0) / 1000 / Math.max(1, m);
    const reps = logOf(probs);
    for (let s = 0; s < m; s += p.batch) {
      const b = Math.min(p.batch, m - s);
      honest.add(reps.subarray(s * k, (s + b) * k), b);
      xs.push(honest.queries);
      ys.push(honest.epsilon());
    }
    const { slope, intercept } = lineFit(xs, ys);
    const unit = p.unit > 0 ? p.unit : latencyPerQuery * p.batch;
    return { rep, labels: e.train.y, k, calibration: { slope, intercept, unit, hashRate: measureHashRate(100) } };
  },
  create(p, prepared: PowPrepared) {
    const { batch, base, maxbits } = p;
    const opts = { k: p.k, sigma: p.sigma, delta: p.delta };
    const { calibration } = prepared;
    // this API's own ledger of clients: what one API's queries cost never changes another's price
    const clients = new Map<string, PknnPrivacyCost>();
    const bitsAt = (tracker: PknnPrivacyCost | undefined): number => {
      const { slope, intercept, unit, hashRate } = calibration;
      const n = tracker?.queries ?? 0;
      const diff = Math.abs((tracker?.epsilon() ?? 0) - (slope * n + intercept));
      // base^diff overflows to Infinity past diff ≈ 4,300 at base 1.18: the clamp still gives the cap
      const perPuzzle = unit * Math.min(p.cap, Math.max(1, base ** diff));
      return Math.max(0, Math.round(Math.log2(perPuzzle * hashRate)));
    };
    return {
      calibration,
      nextBits(clientId: string): number {
        return Math.min(bitsAt(clients.get(clientId)), maxbits);
      },
      price(_x, ctx) {
        if (!ctx.probs) throw new MseError('pow', 'the pow defense needs the victim’s posteriors for its price');
        const m = ctx.probs.shape[0];
        const tracker =
          clients.get(ctx.clientId) ?? new PknnPrivacyCost(prepared.rep, prepared.labels, prepared.k, opts);
        clients.set(ctx.clientId, tracker);
        tracker.add(logOf(ctx.probs.dataSync() as Float32Array), m);
        const { hashRate } = calibration;
        const bits = bitsAt(tracker);
        if (p.solve) solve(issueChallenge(Math.min(bits, maxbits), ctx.clientId));
        // each puzzle covers `batch` queries; a smaller batch pays its share
        return { powSeconds: ((2 ** bits / hashRate) * m) / batch };
      },
    };
  },
});

function logOf(p: Float32Array): Float32Array {
  return p.map((v) => Math.log(Math.max(v, 1e-30)));
}

function lineFit(xs: number[], ys: number[]): { slope: number; intercept: number } {
  const n = xs.length;
  if (n < 2) return { slope: n ? ys[0] / Math.max(1, xs[0]) : 0, intercept: 0 };
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let sxy = 0;
  let sxx = 0;
  for (let i = 0; i < n; i++) {
    sxy += (xs[i] - mx) * (ys[i] - my);
    sxx += (xs[i] - mx) ** 2;
  }
  const slope = sxx > 0 ? sxy / sxx : 0;
  return { slope, intercept: my - slope * mx };
}
