/**
 * One bench cell, end to end: dataset → victim (cached) → defended PredictionApi → attack →
 * metrics → ResultRow. The attack sees only the API and the attacker's knowledge; the metrics see
 * everything. Evaluation queries (test set, uniform set, defender utility) never count against the
 * attacker's budget: they go to separate, unmetered APIs.
 */
import { activeBackend, tf } from '../compute/backend.js';
import { Rng } from '../compute/rng.js';
import { LocalPredictionApi } from '../api/local-api.js';
import type { ApiResponse, Defense, PredictionApi } from '../api/types.js';
import { HttpPredictionApi } from '../api/http-api.js';
import { parseAttack } from '../attacks/registry.js';
import { AttackNotApplicable, type Attack, type AttackerKnowledge, type AttackProgress, type AttackResult, type Pool } from '../attacks/types.js';
import { loadDataset } from '../data/registry.js';
import { choosePool, fetchState, loadPoolDataset, missingDataError } from '../data/pool.js';
import type { ResolveOptions } from '../data/resolve.js';
import { exampleSize, subset, type Dataset } from '../data/types.js';
import { DataError, MseError, UsageError } from '../errors.js';
import type { Model } from '../models/model.js';
import { parseDefense } from '../defenses/registry.js';
import { fidelity, probsOf, testAccuracy, uniformInputs } from '../metrics/agreement.js';
import { paramError } from '../metrics/param-error.js';
import { getVictim } from '../models/victim.js';
import { parseModelSpec, type ModelSpec } from '../models/zoo.js';
import { formatParams } from '../params.js';
import { mseVersion } from './manifest.js';
import { cellId, makeRow, type CellSpec, type ResultRow } from './result-row.js';

export interface CellInput {
  dataset: string;
  victim: string;
  defenses: string[];
  attack: string;
  /** the query budget; with `budgets`, their maximum */
  budget: number;
  /**
   * A learning curve: budgets evaluated in one pass by attacks that support it (each surrogate is
   * trained on that prefix of the query log); one row per budget. Other attacks run once per budget.
   */
  budgets?: number[];
  seed: number;
  runId: string;
  /**
   * Attack a remote API (`mse serve`) instead of an in-process one. The defenses listed are then
   * the ones the server runs: they label the row and measure the defender's utility locally.
   */
  target?: { url: string; key?: string };
  data?: ResolveOptions;
  /**
   * The transfer pool to load, as checkPlanData chose it (`fashion-mnist`, or the embedded
   * `fashion-mnist@test10k` when the full dataset is absent); without it the cell chooses the same
   * way. An embedded variant is part of the cell's identity: it is written into attack_params.
   */
  pool?: string;
  /** |U| for R_unif (Tramèr: 10,000) */
  unifSize?: number;
  onProgress?: (phase: string, p?: AttackProgress) => void;
}

export interface CellOutput {
  /** the row of the largest budget */
  row: ResultRow;
  /** one row per budget, ascending */
  rows: ResultRow[];
  dataset: Dataset;
  notes: string[];
}

export function cellSpecOf(c: CellInput): CellSpec {
  const defs = c.defenses.length ? c.defenses.map(parseDefense) : [parseDefense('none')];
  const attack = parseAttack(c.attack);
  const victim = parseModelSpec(c.victim);
  return {
    dataset: c.dataset,
    victim: `${victim.kind}${Object.keys(victim.params).length ? `:${formatParams(victim.params)}` : ''}`,
    defense: defs.map((d) => d.name).join('+'),
    defense_params: defs.map((d) => formatParams(d.params)).join('+'),
    attack: attack.name,
    // a smaller pool is a different experiment, so it gets its own cell id; the full pool keeps
    // the params (and ids) that rows had before pools had variants
    attack_params: formatParams(c.pool?.includes('@') && 'pool' in attack.params ? { ...attack.params, pool: c.pool } : attack.params),
    budget: c.budget,
    seed: c.seed,
  };
}

/** The budgets a cell input stands for, ascending and distinct. */
export function budgetsOf(c: CellInput): number[] {
  return [...new Set(c.budgets ?? [c.budget])].sort((a, b) => a - b);
}

/** The attacker's own data (transfer pool, seed set) that an attack asks for. */
async function attackerKnowledge(attack: Attack, ds: Dataset, victim: ModelSpec, seed: number, pool: string | undefined, data?: ResolveOptions): Promise<AttackerKnowledge> {
  const know: AttackerKnowledge = { inputShape: ds.inputShape, numClasses: ds.numClasses, domain: ds.domain, family: { kind: victim.kind, hidden: victim.params.hidden as number[] | undefined, activation: victim.params.activation as 'relu' | 'tanh' | undefined } };
  const needs = attack.needs?.(ds.name) ?? {};
  if (needs.pool) know.pool = await loadPool(attack.name, pool ?? needs.pool, ds, data);
  if (needs.seedSize) {
    // a separate stream: adding a seed set must not shift the victim's, the API's or the attack's randomness
    const r = new Rng((seed ^ 0x5eedc0de) >>> 0);
    const idx = r.permutation(ds.train.n).slice(0, Math.min(needs.seedSize, ds.train.n));
    know.seed = subset(ds.train, idx, exampleSize(ds));
  }
  return know;
}

/**
 * The pool spec this cell loads and the note to show when a shipped variant stands in: the plan's
 * choice when given, else the same choice made here (a `mse attack` worker is not handed the plan).
 */
async function poolOf(c: CellInput, attack: Attack, ds: Dataset): Promise<{ spec?: string; note?: string }> {
  let wanted: string | undefined;
  try {
    wanted = attack.needs?.(ds.name).pool;
  } catch (err) {
    if (err instanceof AttackNotApplicable) return {}; // reported by attackerKnowledge, as before
    throw err;
  }
  if (!wanted) return {};
  if (c.pool) return { spec: c.pool };
  const data = c.data ?? {};
  const state = fetchState(data);
  const choice = await choosePool(wanted, data, state);
  if (choice.problems.length) {
    const err = missingDataError(choice.problems, new Map([[choice.spec, [`pool of ${attack.name}`]]]), data, state);
    throw new DataError(`${attack.name}'s transfer pool ${wanted}: ${err.message}`, err.hint);
  }
  return { spec: choice.spec, note: choice.note };
}

let pooled: { key: string; pool: Pool } | undefined;
/** the last pool that could not be loaded: the next cells fail at once with the same line */
let poolFailure: { key: string; err: MseError } | undefined;

/** A dataset's every image (train and test) as a transfer pool, kept for the next cell. */
async function loadPool(attackName: string, spec: string, victimDs: Dataset, data?: ResolveOptions): Promise<Pool> {
  const key = JSON.stringify([spec, data?.dataDir ?? '', process.env.MSE_DATA_DIR ?? '']);
  if (poolFailure?.key === key) throw poolFailure.err;
  if (pooled?.key !== key) {
    pooled = undefined;
    let p: Dataset;
    try {
      p = await loadPoolDataset(spec, data ?? {});
    } catch (err) {
      // file-system trouble arrives as DataError (resolve.ts); anything else is a bug and keeps its stack
      if (!(err instanceof MseError)) throw err;
      // one line that says it is the pool, not the victim's data, that is missing
      const e = new DataError(`${attackName}'s transfer pool ${spec}: ${err.message}`, err.hint);
      poolFailure = { key, err: e };
      throw e;
    }
    const d = exampleSize(p);
    const x = new Float32Array((p.train.n + p.test.n) * d);
    x.set(p.train.x);
    x.set(p.test.x, p.train.n * d);
    const y = new Int32Array(p.train.n + p.test.n);
    y.set(p.train.y);
    y.set(p.test.y, p.train.n);
    pooled = { key, pool: { name: spec, x, y, n: y.length, numClasses: p.numClasses, classNames: p.classNames } };
    if (p.inputShape.join('x') !== victimDs.inputShape.join('x')) {
      pooled = undefined;
      throw new UsageError(`pool ${spec} has inputs of shape ${p.inputShape.join('×')}, the victim (${victimDs.name}) takes ${victimDs.inputShape.join('×')}`);
    }
  }
  return pooled.pool;
}

export async function runCell(c: CellInput): Promise<CellOutput> {
  const t0 = performance.now();
  const budgets = budgetsOf(c);
  const attack = parseAttack(c.attack);
  const ds = await loadDataset(c.dataset, c.data);
  const victimSpec = parseModelSpec(c.victim);
  const notes: string[] = [];
  // the attacker's data first: a missing pool fails the cell before its victim is trained
  const pool = await poolOf(c, attack, ds);
  if (pool.note) notes.push(pool.note);
  c = { ...c, pool: pool.spec };
  const know = await attackerKnowledge(attack, ds, victimSpec, c.seed, pool.spec, c.data);
  c.onProgress?.('victim');
  const v = await getVictim(ds, victimSpec, c.seed);
  if (v.cacheNote) notes.push(v.cacheNote);
  try {
    const defenses: Defense[] = (c.defenses.length ? c.defenses : ['none']).map(parseDefense);
    // defenses that calibrate themselves (proof-of-work) see the defender's model and data, once
    for (const d of defenses) await d.bind?.({ victim: v.model, train: ds.train, heldOut: ds.test });
    // defender utility on the test set, through an unmetered copy of the defended API
    c.onProgress?.('utility');
    const utility = await defendedUtility(v.model, defenses, ds, utilityRng(c.seed));
    const rows: ResultRow[] = [];
    // attacks without learning curves run once per budget, each from the same seed
    const passes = budgets.length > 1 && !attack.learningCurve ? budgets.map((b) => [b]) : [budgets];
    for (const pass of passes) {
      rows.push(...(await runPass(c, attack, ds, v, victimSpec, defenses, know, utility, pass, notes, t0)));
    }
    return { row: rows[rows.length - 1], rows, dataset: ds, notes };
  } finally {
    v.model.dispose();
  }
}

function utilityRng(seed: number): Rng {
  const rng = new Rng(seed);
  rng.fork(); // the API's stream
  return rng.fork();
}

/** One run of the attack against a fresh API with budget max(pass); one row per budget in `pass`. */
async function runPass(
  c: CellInput,
  attack: Attack,
  ds: Dataset,
  v: { model: Model; testAcc: number },
  victimSpec: ModelSpec,
  defenses: Defense[],
  know: AttackerKnowledge,
  utility: { acc: number; agreement: number; l1?: number; kl?: number; slowdown: number },
  pass: number[],
  notes: string[],
  t0: number,
): Promise<ResultRow[]> {
  const budget = pass[pass.length - 1];
  const rng = new Rng(c.seed);
  // tree victims are served like BigML: each answer carries the leaf's identifier
  const apiRng = rng.fork();
  const api: PredictionApi = c.target
    ? await HttpPredictionApi.connect(c.target.url, { key: c.target.key, budget })
    : new LocalPredictionApi(v.model, defenses, { rng: apiRng, domain: ds.domain, budget, revealLeaves: victimSpec.kind === 'tree', clientId: `attacker-${budget}` });
  rng.fork(); // the utility stream (see utilityRng)
  const specOf = (b: number) => cellSpecOf({ ...c, budget: b });
  const base = (b: number) => ({ cell_id: cellId(specOf(b)), run_id: c.runId, mse_version: mseVersion(), backend: activeBackend().label, ...specOf(b), dataset_variant: ds.variant, victim_acc: v.testAcc });
  const d = exampleSize(ds);
  const defender = { defended_acc: utility.acc, defended_agreement: utility.agreement, perturbation_l1: utility.l1, perturbation_kl: utility.kl, honest_slowdown: utility.slowdown };

  c.onProgress?.('attack');
  let result: AttackResult | undefined;
  let status = 'ok';
  const cpuAttack0 = process.cpuUsage();
  try {
    result = await attack.run(api, know, rng.fork(), { checkpoints: pass, onProgress: (p) => c.onProgress?.('attack', p) });
    notes.push(...result.notes);
    if (result.budgetExhausted) status = 'ok-budget-exhausted';
  } catch (err) {
    if (!(err instanceof AttackNotApplicable)) throw err;
    status = `not-applicable: ${err.message}`;
  }
  const attackCpu = process.cpuUsage(cpuAttack0);
  if (!result) return pass.map((b) => makeRow({ ...base(b), queries: api.ledger.queries, ...defender, pow_s: api.ledger.powSeconds, wall_s: (performance.now() - t0) / 1000, status }));

  // the attacker's own compute: CPU seconds during the attack, less the time the API spent answering
  const wholeCpu = Math.max(0, (attackCpu.user + attackCpu.system) / 1e6 - api.ledger.apiSeconds);
  const points = result.curve ?? [{ budget, queries: api.ledger.queries, surrogate: result.surrogate, attackerSeconds: wholeCpu }];
  const unifN = c.unifSize ?? 10000;
  const unif = uniformInputs(new Rng(c.seed ^ 0x5eed), unifN, d, ds.domain);
  const rows: ResultRow[] = [];
  try {
    for (const p of points) {
      c.onProgress?.('metrics');
      const pe = paramError(v.model, p.surrogate);
      rows.push(
        makeRow({
          ...base(p.budget),
          queries: p.queries,
          surrogate_acc: await testAccuracy(p.surrogate, ds.test.x, ds.test.y),
          agreement_test: (await fidelity(v.model, p.surrogate, ds.test.x, ds.test.n)).agreement,
          agreement_unif: (await fidelity(v.model, p.surrogate, unif, unifN)).agreement,
          param_error: pe ? pe.relL2 : undefined,
          ...defender,
          attacker_cpu_s: p.attackerSeconds,
          // PoW time scales with the queries in this prefix
          pow_s: api.ledger.queries ? (api.ledger.powSeconds * p.queries) / api.ledger.queries : 0,
          wall_s: (performance.now() - t0) / 1000,
          status,
        }),
      );
    }
  } finally {
    for (const s of new Set([result.surrogate, ...points.map((p) => p.surrogate)])) s.dispose();
  }
  return rows;
}

/** Top-1 accuracy of what the defended API returns, and its mean L1 and KL(y‖ỹ) distance from the victim's posteriors. */
/**
 * The defender's side, on the test set through an unmetered copy of the defended API (client
 * "honest"): top-1 accuracy of the answers and their agreement with the undefended victim, mean L1
 * and KL(y‖ỹ) from the true posteriors, and the honest user's slowdown, (API + PoW seconds) / API seconds.
 */
async function defendedUtility(victim: Model, defenses: Defense[], ds: Dataset, rng: Rng): Promise<{ acc: number; agreement: number; l1?: number; kl?: number; slowdown: number }> {
  const api = new LocalPredictionApi(victim, defenses, { rng, domain: ds.domain, clientId: 'honest' });
  const k = ds.numClasses;
  const n = ds.test.n;
  const d = ds.inputShape.reduce((a, b) => a * b, 1);
  const y = await probsOf(victim, ds.test.x, n);
  let correct = 0;
  let agree = 0;
  let l1 = 0;
  let kl = 0;
  let probsSeen = true;
  const batch = 1024;
  for (let s = 0; s < n; s += batch) {
    const m = Math.min(batch, n - s);
    const xt = tf.tensor(ds.test.x.subarray(s * d, (s + m) * d), [m, ...ds.inputShape]);
    let r: ApiResponse = {};
    try {
      r = await api.query(xt);
      const labels = r.labels ? ((await r.labels.data()) as Int32Array) : undefined;
      const p = r.probs ? ((await r.probs.data()) as Float32Array) : undefined;
      if (!p) probsSeen = false;
      for (let i = 0; i < m; i++) {
        let top = labels ? labels[i] : 0;
        if (p) {
          for (let j = 1; j < k; j++) if (p[i * k + j] > p[i * k + top]) top = j;
          for (let j = 0; j < k; j++) {
            const a = y[(s + i) * k + j];
            const b = p[i * k + j];
            l1 += Math.abs(a - b);
            if (a > 0) kl += a * Math.log(a / Math.max(b, 1e-12));
          }
        }
        if (top === ds.test.y[s + i]) correct++;
        let vtop = 0;
        for (let j = 1; j < k; j++) if (y[(s + i) * k + j] > y[(s + i) * k + vtop]) vtop = j;
        if (top === vtop) agree++;
      }
    } finally {
      tf.dispose([xt, r.probs ?? [], r.labels ?? []]);
    }
  }
  const l = api.ledger;
  return { acc: correct / n, agreement: agree / n, l1: probsSeen ? l1 / n : undefined, kl: probsSeen ? Math.max(0, kl / n) : undefined, slowdown: l.apiSeconds > 0 ? (l.apiSeconds + l.powSeconds) / l.apiSeconds : 1 };
}
