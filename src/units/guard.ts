/**
 * What mse does not take on trust from a plugin: every call into a plugin unit's code is guarded,
 * so a throw becomes one line naming the plugin, the unit and what failed (never an "internal
 * error" with a stack: the bug is the plugin's, and the user needs to know whose), and what a
 * plugin defense hands back to the API — answers, inputs, prices — is checked for shape and
 * finiteness before anyone sees it (an HTTP client would refuse the same answers from `mse serve`).
 * An attack's result is checked by the runner for every attack (run-cell.ts).
 */
import type { ApiResponse, Defense, Probs, QueryCtx } from '../api/types.js';
import type { Tensor } from '@tensorflow/tfjs';
import type { AttackUnit } from '../attacks/define.js';
import { AttackNotApplicable } from '../attacks/types.js';
import type { DatasetUnit } from '../data/define.js';
import type { DefenseUnit } from '../defenses/define.js';
import { MseError, UsageError } from '../errors.js';
import type { Architecture, ModelUnit } from '../models/define.js';
import type { LayerSpec } from '../models/net.js';
import type { UnitSource } from './registry.js';

/** A plugin unit's code failed or broke the contract. Exit 1, one line. */
export class PluginError extends MseError {
  constructor(source: UnitSource, unit: string, what: string) {
    super('plugin', `plugin ${source.plugin}: ${unit}: ${what}`);
  }
}

const firstLine = (e: unknown) => (e instanceof Error ? e.message : String(e)).split('\n')[0];

/** Rethrow what a plugin's code threw as one line naming it; declared refusals pass through. */
function rethrow(source: UnitSource, unit: string, step: string, e: unknown): never {
  if (e instanceof AttackNotApplicable || e instanceof PluginError) throw e;
  // a declaration mse refused (a bad requirement, value or name) already names the unit: say whose it is, keep exit 2
  if (e instanceof UsageError) throw new UsageError(`plugin ${source.plugin}: ${e.message}`, e.hint);
  // mse's own errors raised on the plugin's behalf (a spent budget) keep their text
  if (e instanceof MseError) throw new PluginError(source, unit, `${step}: ${e.message}`);
  throw new PluginError(source, unit, `${step} failed: ${firstLine(e)}`);
}

function guard<T>(source: UnitSource, unit: string, step: string, f: () => T): T {
  try {
    const v = f();
    if (v instanceof Promise) return v.catch((e: unknown) => rethrow(source, unit, step, e)) as T;
    return v;
  } catch (e) {
    rethrow(source, unit, step, e);
  }
}

export function guardAttack(u: AttackUnit, source: UnitSource): AttackUnit {
  const unit = `attack ${u.name}`;
  return {
    ...u,
    source,
    resolve: (raw) => guard(source, unit, 'check', () => u.resolve(raw)),
    requires: (v) => guard(source, unit, 'requires', () => u.requires(v)),
    create: (v) => {
      const a = guard(source, unit, 'create', () => u.create(v));
      return { ...a, run: (api, know, rng, opts) => guard(source, unit, 'run', () => a.run(api, know, rng, opts)) };
    },
  };
}

function finiteTensor(t: Tensor | undefined): boolean {
  if (!t) return true;
  const v = t.dataSync();
  for (let i = 0; i < v.length; i++) if (!Number.isFinite(v[i])) return false;
  return true;
}

/** Check one output stage's answer against the probabilities it was given. */
function checkAnswer(source: UnitSource, unit: string, given: Probs, r: ApiResponse): void {
  const [n, k] = given.shape;
  const bad = (why: string) => new PluginError(source, unit, `output ${why}`);
  if (typeof r !== 'object' || r === null || (!r.probs && !r.labels)) throw bad('must return { probs } or { labels }');
  if (r.probs) {
    if (r.probs.shape.length !== 2 || r.probs.shape[0] !== n || r.probs.shape[1] !== k)
      throw bad(`returned probabilities of shape [${r.probs.shape.join(', ')}] for a batch of [${n}, ${k}]`);
    const p = r.probs.dataSync();
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let j = 0; j < k; j++) {
        const x = p[i * k + j];
        if (!Number.isFinite(x) || x < 0)
          throw bad(`returned a probability that is not a finite number ≥ 0 (row ${i}: ${x})`);
        s += x;
      }
      if (Math.abs(s - 1) > 1e-3) throw bad(`returned a row that does not sum to 1 (row ${i} sums to ${s})`);
    }
  }
  if (r.labels) {
    if (r.labels.shape.length !== 1 || r.labels.shape[0] !== n)
      throw bad(`returned ${r.labels.shape.join('×')} labels for ${n} queries`);
    const l = r.labels.dataSync();
    for (let i = 0; i < n; i++)
      if (!Number.isInteger(l[i]) || l[i] < 0 || l[i] >= k)
        throw bad(`returned label ${l[i]}, not a class in 0…${k - 1}`);
  }
}

export function guardDefense(u: DefenseUnit, source: UnitSource): DefenseUnit {
  const unit = `defense ${u.name}`;
  return {
    ...u,
    source,
    resolve: (raw) => guard(source, unit, 'check', () => u.resolve(raw)),
    prepare: (v, env) => guard(source, unit, 'prepare', () => u.prepare(v, env)),
    stagesOf: (v) => guard(source, unit, 'create', () => u.stagesOf(v)),
    create: (v, prepared) => {
      const d = guard(source, unit, 'create', () => u.create(v, prepared));
      const out: Defense & Record<string, unknown> = { ...d };
      if (d.input) {
        const input = d.input.bind(d);
        out.input = (x: Tensor, ctx: QueryCtx) => {
          const y = guard(source, unit, 'input', () => input(x, ctx));
          if (!y || typeof y !== 'object' || !('shape' in y) || y.shape.join() !== x.shape.join())
            throw new PluginError(
              source,
              unit,
              `input must return a tensor of the query's shape [${x.shape.join(', ')}]`,
            );
          if (!finiteTensor(y)) throw new PluginError(source, unit, 'input returned an input that is not finite');
          return y;
        };
      }
      if (d.output) {
        const output = d.output.bind(d);
        out.output = (probs: Probs, ctx: QueryCtx) => {
          const r = guard(source, unit, 'output', () => output(probs, ctx));
          try {
            checkAnswer(source, unit, probs, r);
          } catch (e) {
            for (const t of [r?.probs, r?.labels]) if (t && t !== probs && typeof t.dispose === 'function') t.dispose();
            throw e;
          }
          return r;
        };
      }
      if (d.price) {
        const price = d.price.bind(d);
        out.price = (x: Tensor, ctx: QueryCtx) => {
          const r = guard(source, unit, 'price', () => price(x, ctx));
          if (!r || !Number.isFinite(r.powSeconds) || r.powSeconds < 0)
            throw new PluginError(
              source,
              unit,
              `price must return { powSeconds } finite and ≥ 0, got ${JSON.stringify(r)}`,
            );
          return r;
        };
      }
      if (d.monitor) {
        const monitor = d.monitor.bind(d);
        out.monitor = (x: Tensor, ctx: QueryCtx) => {
          const r = guard(source, unit, 'monitor', () => monitor(x, ctx));
          if (r === undefined) return r;
          if (!r || typeof r.reason !== 'string' || !Number.isInteger(r.row) || r.row < 0 || r.row >= x.shape[0])
            throw new PluginError(
              source,
              unit,
              `monitor must return undefined or { reason: string, row } with row a batch index 0…${x.shape[0] - 1}`,
            );
          return r;
        };
      }
      return out as Defense & ReturnType<DefenseUnit['create']>;
    },
  };
}

const ACTIVATIONS = [undefined, 'linear', 'relu', 'tanh'];
const posInt = (v: unknown) => Number.isSafeInteger(v) && (v as number) >= 1;

/** What a plugin's `layers` returns, checked: Net would skip a layer type it does not know. */
function checkArchitecture(source: UnitSource, unit: string, a: Architecture, k: number): Architecture {
  const bad = (why: string) => new PluginError(source, unit, `layers ${why}`);
  if (!a || !Array.isArray(a.layers) || !a.layers.length) throw bad('must return { layers: [...], head }');
  if (!['softmax', 'sigmoid', 'ovr'].includes(a.head))
    throw bad(`returned head '${String(a.head)}'; use softmax, sigmoid or ovr`);
  a.layers.forEach((l: LayerSpec, i) => {
    const at = `layer ${i} (${JSON.stringify(l)})`;
    if (!l || typeof l !== 'object') throw bad(`${at} is not a layer`);
    if (!ACTIVATIONS.includes((l as { activation?: string }).activation))
      throw bad(`${at}: activation must be linear, relu or tanh`);
    if (l.type === 'dense') {
      if (!posInt(l.units)) throw bad(`${at}: units must be an integer ≥ 1`);
    } else if (l.type === 'conv2d') {
      if (!posInt(l.filters) || !posInt(l.kernel) || (l.stride !== undefined && !posInt(l.stride)))
        throw bad(`${at}: filters, kernel and stride must be integers ≥ 1`);
      if (l.padding !== undefined && l.padding !== 'same' && l.padding !== 'valid')
        throw bad(`${at}: padding must be same or valid`);
    } else if (l.type === 'maxpool') {
      if (!posInt(l.size)) throw bad(`${at}: size must be an integer ≥ 1`);
    } else if (l.type !== 'flatten') throw bad(`${at}: the type must be dense, conv2d, maxpool or flatten`);
  });
  const last = a.layers[a.layers.length - 1];
  const outputs = a.head === 'sigmoid' ? 1 : k;
  if (last.type !== 'dense' || last.units !== outputs)
    throw bad(`must end in a dense layer of ${outputs} units for the ${a.head} head (${k} classes)`);
  return a;
}

export function guardModel(u: ModelUnit, source: UnitSource): ModelUnit {
  const unit = `model ${u.name}`;
  const layers = u.layers;
  return {
    ...u,
    source,
    resolve: (raw) => guard(source, unit, 'check', () => u.resolve(raw)),
    train: u.train ? (ds) => guard(source, unit, 'train', () => u.train!(ds)) : undefined,
    budgets: (quick) => guard(source, unit, 'budgets', () => u.budgets(quick)),
    layers: layers
      ? (ds, v) =>
          checkArchitecture(
            source,
            unit,
            guard(source, unit, 'layers', () => layers(ds, v)),
            ds.numClasses,
          )
      : undefined,
  };
}

export function guardDataset(u: DatasetUnit, source: UnitSource): DatasetUnit {
  return {
    ...u,
    source,
    // defineDataset's own checks already name the dataset: add only whose it is
    load: () =>
      u.load().catch((e: unknown) => {
        throw new MseError(
          'plugin',
          `plugin ${source.plugin}: ${e instanceof MseError ? e.message : `dataset ${u.name}: load failed: ${firstLine(e)}`}`,
        );
      }),
  };
}
