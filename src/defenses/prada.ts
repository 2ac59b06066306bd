/**
 * PRADA (Juuti, Szyller, Marchal, Asokan, EuroS&P 2019; reference code
 * github.com/SSGAalto/prada-protecting-against-dnn-model-stealing-attacks, `growing_set.py`): detect
 * an extraction in one client's query stream. Natural queries' distances to each other look normally
 * distributed; the synthetic queries of Jacobian-based augmentation do not. Per client and per class
 * the victim predicts, PRADA keeps a growing set G_c of past queries:
 *   - each new query x of class c gets d_min = min_{y ∈ G_c} ‖x − y‖₂, which joins the distance list D
 *     (the first query of a class starts G_c instead);
 *   - x joins G_c when d_min > T_c, and T_c ← max(T_c, mean − std of the distances that admitted G_c's members);
 *   - every `every` queries, the distances of the classes with at least `class-min` of them, outliers
 *     beyond 3σ removed, are tested with Shapiro–Wilk once there are more than `min`: W < δ raises
 *     the alarm (the reference's server uses δ = 0.9).
 * The alarm is final here: the API refuses the client from then on (the reference only reports it).
 * Bounded state (an API server must not grow without limit under many keys): at most `clients`
 * clients are tracked, the least recently seen evicted first (an evicted client starts afresh);
 * each keeps at most `set-size` growing-set members (past that, queries are still measured but no
 * longer admitted) and its last 5,000 distances (the Shapiro–Wilk test's range).
 */
import { shapiroWilk } from '../metrics/shapiro-wilk.js';
import type { Alarm, QueryCtx } from '../api/types.js';
import type { Tensor } from '@tensorflow/tfjs';
import { ClientStates } from './client-states.js';
import { defineDefense } from './define.js';

/** the Shapiro–Wilk test's largest sample (Royston's approximation) */
const MAX_DISTANCES = 5000;

interface ClassSet {
  /** members, row-major [capacity·d] */
  x: Float32Array;
  n: number;
  /** distances that admitted the members: their sum and sum of squares, for mean − std */
  sum: number;
  sumSq: number;
  admitted: number;
  threshold: number;
  /** distances measured for this class (its queries after the first) */
  measured: number;
}

interface ClientState {
  classes: Map<number, ClassSet>;
  /** the last MAX_DISTANCES distances and their classes, a ring */
  dist: Float64Array;
  cls: Int32Array;
  head: number;
  count: number;
  members: number;
  processed: number;
  /** the last W computed, for the alarm's reason */
  w?: number;
}

function newClient(): ClientState {
  return {
    classes: new Map(),
    dist: new Float64Array(MAX_DISTANCES),
    cls: new Int32Array(MAX_DISTANCES),
    head: 0,
    count: 0,
    members: 0,
    processed: 0,
  };
}

/** min over the set of ‖q − y‖₂, stopping each sum once it passes the best so far */
function minDistance(set: ClassSet, q: Float32Array, d: number): number {
  let best = Infinity;
  for (let r = 0; r < set.n; r++) {
    const o = r * d;
    let s = 0;
    for (let j = 0; j < d && s < best; j++) {
      const t = q[j] - set.x[o + j];
      s += t * t;
    }
    if (s < best) best = s;
  }
  return Math.sqrt(best);
}

function admit(set: ClassSet, q: Float32Array, d: number): void {
  if ((set.n + 1) * d > set.x.length) {
    const grown = new Float32Array(Math.max(d * 8, set.x.length * 2));
    grown.set(set.x.subarray(0, set.n * d));
    set.x = grown;
  }
  set.x.set(q, set.n * d);
  set.n++;
}

export const prada = defineDefense({
  name: 'prada',
  describe:
    "PRADA: alarm when a client's minimum query distances stop looking normal (Shapiro–Wilk W < δ), then refuse it (Juuti 2019)",
  params: {
    delta: {
      type: 'number',
      min: 0,
      max: 1,
      default: 0.9,
      help: 'alarm threshold δ on the Shapiro–Wilk W (the reference server: 0.9)',
    },
    every: { type: 'int', min: 1, default: 10, help: 'test every this many queries (the reference: 10)' },
    min: {
      type: 'int',
      min: 3,
      max: MAX_DISTANCES,
      default: 100,
      help: 'test only with more distances than this (the reference: 100)',
    },
    'class-min': {
      type: 'int',
      min: 1,
      default: 10,
      help: "a class's distances join the test once it has this many (the reference: 10)",
    },
    clients: {
      type: 'int',
      min: 1,
      max: 1_000_000,
      default: 64,
      help: 'clients tracked at once; the least recently seen is evicted first and starts afresh',
    },
    'set-size': {
      type: 'int',
      min: 1,
      max: 1_000_000,
      default: 2000,
      help: 'growing-set members kept per client (memory: clients × set-size × input size × 4 bytes at most)',
    },
  },
  create: (p) => {
    const states = new ClientStates<ClientState>(p.clients);

    /** The distances the test sees: classes with ≥ class-min distances, 3σ outliers removed (reference `__reject_outliers`). */
    const testSample = (s: ClientState): Float64Array => {
      const n = Math.min(s.count, MAX_DISTANCES);
      const keep: number[] = [];
      for (let i = 0; i < n; i++) {
        const c = s.classes.get(s.cls[i]);
        if (c && c.measured >= p['class-min']) keep.push(s.dist[i]);
      }
      if (keep.length === 0) return new Float64Array(0);
      let mean = 0;
      for (const v of keep) mean += v;
      mean /= keep.length;
      let sq = 0;
      for (const v of keep) sq += (v - mean) ** 2;
      const sd = Math.sqrt(sq / keep.length);
      return Float64Array.from(keep.filter((v) => Math.abs(v - mean) < 3 * sd));
    };

    return {
      monitor(x: Tensor, ctx: QueryCtx): Alarm | undefined {
        if (!ctx.probs) return undefined;
        const n = x.shape[0];
        const d = x.size / n;
        const xs = x.dataSync() as Float32Array;
        const probs = ctx.probs.dataSync() as Float32Array;
        const k = probs.length / n;
        const s = states.use(ctx.clientId, newClient);
        for (let i = 0; i < n; i++) {
          const q = xs.subarray(i * d, (i + 1) * d);
          let c = 0;
          for (let j = 1; j < k; j++) if (probs[i * k + j] > probs[i * k + c]) c = j;
          const set = s.classes.get(c);
          if (!set) {
            const fresh: ClassSet = {
              x: new Float32Array(d * 8),
              n: 0,
              sum: 0,
              sumSq: 0,
              admitted: 1,
              threshold: 0,
              measured: 0,
            };
            // the reference seeds each class's admitted distances with a 0 for its first member
            if (s.members < p['set-size']) {
              admit(fresh, q, d);
              s.members++;
            }
            s.classes.set(c, fresh);
          } else if (set.n === 0) {
            // a class first seen once the member cap was reached: nothing to measure against
          } else {
            const dmin = minDistance(set, q, d);
            set.measured++;
            s.dist[s.head] = dmin;
            s.cls[s.head] = c;
            s.head = (s.head + 1) % MAX_DISTANCES;
            s.count++;
            if (dmin > set.threshold && s.members < p['set-size']) {
              admit(set, q, d);
              s.members++;
              set.sum += dmin;
              set.sumSq += dmin * dmin;
              set.admitted++;
              // T_c ← max(T_c, mean − std) over the admitted distances (reference `mean_dif_std`, population std)
              const mean = set.sum / set.admitted;
              const sd = Math.sqrt(Math.max(0, set.sumSq / set.admitted - mean * mean));
              set.threshold = Math.max(set.threshold, mean - sd);
            }
          }
          // every `every` queries, from the first (reference: queries_processed % 10 == 0)
          if (s.processed % p.every === 0) {
            const sample = testSample(s);
            if (sample.length > p.min) {
              const { w } = shapiroWilk(sample);
              s.w = w;
              if (w < p.delta) {
                s.processed++;
                return {
                  reason: `Shapiro–Wilk W = ${w.toFixed(4)} < δ = ${p.delta} on ${sample.length} minimum distances`,
                  row: i,
                };
              }
            }
          }
          s.processed++;
        }
        return undefined;
      },
      /** clients tracked now (at most `clients`) */
      trackedClients: () => states.size,
      /** growing-set members kept for a client */
      membersOf: (id: string) => states.peek(id)?.members ?? 0,
    };
  },
});
