/**
 * The runner: one plan cell, end to end — dataset → victim (cached) → the defender's setup →
 * defended PredictionApis → attack → metrics → one ResultRow per budget. Every way mse executes a
 * cell (`mse attack`, serial and `--jobs` sweeps, shards, Slurm tasks, `mse reproduce`) calls
 * `runCell` with a plan cell; nothing else runs one.
 *
 * The attack sees only the API and the attacker's knowledge; the metrics see everything. Evaluation
 * queries (test set, uniform set, defender utility) never count against the attacker's budget: they
 * go to separate, unmetered APIs, each with its own defense instances (what a defense prepared once
 * is shared read-only), so measuring the honest user changes no answer the attacker receives.
 * Every random choice comes from a named stream of the cell's seed (compute/streams.ts).
 */
import { activeBackend, tf } from '../compute/backend.js';
import { stream } from '../compute/streams.js';
import type { Rng } from '../compute/rng.js';
import { LocalPredictionApi } from '../api/local-api.js';
import { powWithin } from '../api/pow-trace.js';
import { SybilApi } from '../api/sybil-api.js';
import type { Watermarks } from '../defenses/dawn.js';
import { verifyWatermarks } from '../metrics/watermark.js';
import type { ApiResponse, Defense, Ledger, PredictionApi, Reveal } from '../api/types.js';
import { HttpPredictionApi } from '../api/http-api.js';
import { ModelServerApi } from '../api/model-server-api.js';
import { ATTACKS } from '../attacks/registry.js';
import { notApplicable } from '../attacks/define.js';
import {
  AttackNotApplicable,
  type Attack,
  type AttackerKnowledge,
  type AttackProgress,
  type AttackResult,
  type Pool,
} from '../attacks/types.js';
import { loadDataset } from '../data/registry.js';
import { choosePool, fetchState, loadPoolDataset, missingDataError } from '../data/pool.js';
import type { ResolveOptions } from '../data/resolve.js';
import { exampleSize, subset, type Dataset, type Split } from '../data/types.js';
import { DataError, DetectedError, MseError, QueryRefusedError, UsageError } from '../errors.js';
import type { Model } from '../models/model.js';
import { DEFENSES } from '../defenses/registry.js';
import type { Prepared } from '../defenses/define.js';
import { fidelityOf, probsOf, uniformInputs } from '../metrics/agreement.js';
import { correctlyClassified, transferability } from '../metrics/transfer.js';
import { accuracyOf, argmaxRows } from '../models/train.js';
import { paramError } from '../metrics/param-error.js';
import { UtilityMeter } from '../metrics/utility.js';
import { getVictim } from '../models/victim.js';
import { PhaseClock, formatPhases } from './phases.js';
import { ServedModel, servedVictim } from '../models/served.js';
import { poolShapeHint } from '../data/user-data.js';
import { parseNormalization } from '../models/normalize.js';
import { declaresLabels, familyOf, formatModelSpec } from '../models/zoo.js';
import { mseVersion } from './manifest.js';
import { cellSpec, type PlanCell } from './plan.js';
import { poolWanted } from './plan-data.js';
import { cellId, makeRow, type ResultRow } from './result-row.js';

export interface RunContext {
  /** recorded in every row (the results directory's name) */
  runId: string;
  data?: ResolveOptions;
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

type Utility = {
  acc: number;
  agreement: number;
  l1?: number;
  kl?: number;
  slowdown: number;
  /** the honest user's ledger (queries, PoW paid and when), for the attacker/honest PoW ratio */
  ledger: Readonly<Ledger>;
  /** with a monitor in the stack: the share of honest streams it alarmed on (the benign false-positive rate) */
  fpr?: number;
};

/** The transfer pool the cell loads and the note to show when a shipped variant stands in. */
async function poolOf(c: PlanCell, ds: Dataset, data: ResolveOptions): Promise<{ spec?: string; note?: string }> {
  const wanted = poolWanted(c.attack, ds.name);
  if (!wanted) return {};
  if (c.pool) return { spec: c.pool };
  // a plan always chooses; a cell built by hand chooses here, the same way
  const state = fetchState(data);
  const choice = await choosePool(wanted, data, state, ds.inputShape);
  if (choice.problems.length) {
    const err = missingDataError(choice.problems, new Map([[choice.spec, [`pool of ${c.attack.name}`]]]), data, state);
    throw new DataError(`${c.attack.name}'s transfer pool ${wanted}: ${err.message}`, err.hint);
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
      throw new UsageError(
        `pool ${spec} has inputs of shape ${p.inputShape.join('×')}, the victim (${victimDs.name}) takes ${victimDs.inputShape.join('×')}`,
        poolShapeHint(spec),
      );
    }
  }
  return pooled.pool;
}

/** A loaded or served victim's content hash (its files, its URL), as the plan recorded it; '' for the zoo's. */
function victimVariant(c: PlanCell): string {
  const h = c.contentHashes ?? {};
  if (c.victim.kind === 'served') return h['model:served'] ? `served-${h['model:served']}` : '';
  const own = h[`model:${formatModelSpec(c.victim)}`];
  return own ? `file-${own}` : '';
}

/** How to reach the cell's model-server target: for mse's own measuring (unmetered), and for the attacker with its budget added. */
function servedTarget(c: PlanCell, ds: Dataset) {
  const t = c.target;
  if (!t?.protocol || t.protocol === 'mse')
    throw new UsageError('the served victim is the model behind --target, measured through a model server');
  return {
    protocol: t.protocol,
    url: t.url,
    key: t.key,
    layout: t.layout,
    output: t.output,
    timeoutS: t.timeoutS,
    concurrency: t.concurrency,
    normalization: parseNormalization('--target-mean/--target-std', t.mean, t.std, ds.inputShape),
    outputName: t.outputName,
  };
}

/** The model behind the cell's model-server target, connected for measuring (no local copy). */
function servedVictimOf(c: PlanCell, ds: Dataset) {
  return servedVictim(servedTarget(c, ds), ds);
}

/**
 * A local copy (-v) measures what the attack's answers come from: say so when it is not the served
 * model — the top-1 answers of both on the first test inputs — before the row's victim columns are
 * taken for the server's.
 */
async function copyDisagreement(c: PlanCell, ds: Dataset, local: Model): Promise<string | undefined> {
  const n = Math.min(100, ds.test.n);
  const x = ds.test.x.subarray(0, n * exampleSize(ds));
  const remote = new ServedModel(
    new ModelServerApi({
      ...servedTarget(c, ds),
      inputShape: ds.inputShape,
      numClasses: ds.numClasses,
      domain: ds.domain,
    }),
    ds.inputShape,
    ds.numClasses,
  );
  try {
    const a = argmaxRows(await probsOf(local, x, n), ds.numClasses);
    const b = argmaxRows(await probsOf(remote, x, n), ds.numClasses);
    const differ = a.filter((v, i) => v !== b[i]).length;
    return differ
      ? `the local copy (-v ${formatModelSpec(c.victim)}) and the server at ${c.target!.url} disagree on ${differ} of the first ${n} test inputs: victim_acc, the agreements and the defender's columns are the copy's, the attack's answers the server's (leave -v out to measure the server itself)`
      : undefined;
  } finally {
    remote.dispose();
  }
}

/**
 * What the API will reveal, known before any query: a model server what --target-output says; else
 * labels when a defense reduces answers to labels or the victim is declared labels-only
 * (`onnx:…,output=labels`), leaf ids for a tree, probabilities otherwise. (A victim that output=auto
 * finds labels-only is known once loaded: its API says so, and the pass checks that before any query.)
 */
function revealsOf(c: PlanCell): Reveal {
  if (c.target) return c.target.output === 'labels' ? 'labels' : 'probs';
  const labels = declaresLabels(c.victim) || c.defenses.some((d) => DEFENSES.get(d.name).reveals === 'labels');
  return labels ? 'labels' : c.victim.kind === 'tree' ? 'leaf' : 'probs';
}

export async function runCell(c: PlanCell, ctx: RunContext): Promise<CellOutput> {
  const t0 = performance.now();
  const phases = new PhaseClock();
  phases.enter('load');
  const data = ctx.data ?? {};
  const unit = ATTACKS.get(c.attack.name);
  const attack = unit.create(c.attack.params);
  const req = unit.requires(c.attack.params);
  const ds = await loadDataset(c.dataset, data);
  // a plugin dataset is what the plan saw, or the rows would carry ids of other data
  for (const [key, variant] of Object.entries(c.contentHashes ?? {})) {
    if (!key.startsWith('dataset:')) continue; // a model's files are checked where they are loaded
    const name = key.slice('dataset:'.length);
    const now = (await loadDataset(name, data)).variant;
    if (now !== variant)
      throw new MseError(
        'dataset',
        `dataset ${name} changed since the plan was made (${now}, planned ${variant})`,
        'a changed dataset is a different experiment: re-plan the sweep',
      );
  }
  const notes: string[] = [];
  // the requirements the setting can be checked against before anything is trained or queried
  // (with the largest budget: a smaller one that falls short is refused by its own pass)
  let why = notApplicable(req, {
    victim: c.victim.kind,
    numClasses: ds.numClasses,
    reveals: revealsOf(c),
    budget: Math.max(...c.budgets),
  });
  if (!why && req.pool !== undefined && !poolWanted(c.attack, ds.name))
    why = `no default transfer pool for ${ds.name}; name one with ${c.attack.name}:pool=<dataset>`;
  // the attacker's data first: a missing pool fails the cell before its victim is trained
  const know: AttackerKnowledge = {
    inputShape: ds.inputShape,
    numClasses: ds.numClasses,
    domain: ds.domain,
    family: familyOf(c.victim),
  };
  if (!why) {
    const pool = await poolOf(c, ds, data);
    if (pool.note) notes.push(pool.note);
    // the pool variant is part of the rows' ids, whoever chose it
    c = { ...c, pool: pool.spec };
    if (pool.spec) know.pool = await loadPool(c.attack.name, pool.spec, ds, data);
    if (req.seedSize) {
      const idx = stream(c.seed, 'seed-set').permutation(ds.train.n).slice(0, Math.min(req.seedSize, ds.train.n));
      know.seed = subset(ds.train, idx, exampleSize(ds));
    }
  }
  ctx.onProgress?.('victim');
  phases.enter('victim');
  const v = c.victim.kind === 'served' ? await servedVictimOf(c, ds) : await getVictim(ds, c.victim, c.seed);
  if (v.cacheNote) notes.push(v.cacheNote);
  if (c.target?.protocol && c.target.protocol !== 'mse' && !(v.model instanceof ServedModel)) {
    const differ = await copyDisagreement(c, ds, v.model);
    if (differ) notes.push(differ);
  }
  const stack = c.defenses.length ? c.defenses : [{ name: 'none', params: {} }];
  const prepared: Array<Prepared | undefined> = [];
  try {
    // the defender's one-time setup (pow's calibration, MAD's proxy), shared by every API below
    phases.enter('setup');
    for (const [i, d] of stack.entries()) {
      const u = DEFENSES.get(d.name);
      prepared.push(
        u.prepares
          ? await u.prepare(d.params, {
              victim: v.model,
              train: ds.train,
              heldOut: ds.test,
              rng: stream(c.seed, `defense-setup:${i}`),
              datasetName: ds.name,
              domain: ds.domain,
              data,
            })
          : undefined,
      );
    }
    // what a defense's setup has to tell the user (SEAT's held-out distances beside its δ)
    for (const p of prepared) if (p?.note) notes.push(p.note);
    /** a fresh instance of the stack for one API */
    const instances = (): Defense[] => stack.map((d, i) => DEFENSES.get(d.name).create(d.params, prepared[i]));
    // defender utility on the test set, through an unmetered API of its own
    ctx.onProgress?.('utility');
    phases.enter('utility');
    // the victim's own answers on the test set, once: the utility pass and every row's fidelity use them
    const victimTest = await probsOf(v.model, ds.test.x, ds.test.n);
    const utility = await defendedUtility(v.model, victimTest, instances, ds, stream(c.seed, 'utility'));
    const rows: ResultRow[] = [];
    // attacks without learning curves run once per budget, each from the same seed
    const passes = c.budgets.length > 1 && !unit.learningCurve ? c.budgets.map((b) => [b]) : [c.budgets];
    for (const pass of passes)
      rows.push(
        ...(await runPass(c, ctx, attack, why, ds, v, victimTest, instances, know, utility, pass, notes, t0, phases)),
      );
    if (v.model instanceof ServedModel) notes.push(...v.model.notes);
    if (v.model instanceof ServedModel)
      notes.push(
        `the served model answered ${v.model.asked} inputs of mse's own to be measured (its test accuracy, the agreements), besides the attack's queries`,
      );
    return { row: rows[rows.length - 1], rows, dataset: ds, notes };
  } finally {
    for (const p of prepared) {
      try {
        p?.dispose();
      } catch {
        // freeing a defense's setup must not hide why the cell ended, nor keep the victim alive
      }
    }
    v.model.dispose();
  }
}

/**
 * An attack's result is its own account; the rows are the runner's. What the rows take from it must
 * hold: a model to measure, a count of queries the API really answered, one learning-curve point
 * per budget asked for, finite CPU seconds. A result that breaks this is the attack's bug, said in
 * one line (the rows it would give are not written).
 */
function checkResult(name: string, r: AttackResult, pass: number[], answered: number): void {
  const bad = (why: string) => new MseError('attack-result', `attack ${name} returned ${why}`);
  if (typeof r !== 'object' || r === null) throw bad('no result');
  const isModel = (m: unknown) =>
    typeof m === 'object' &&
    m !== null &&
    typeof (m as Model).predict === 'function' &&
    typeof (m as Model).dispose === 'function';
  const queries = (q: unknown) => Number.isSafeInteger(q) && (q as number) >= 0 && (q as number) <= answered;
  if (!isModel(r.surrogate)) throw bad('no surrogate model');
  if (!queries(r.queries)) throw bad(`queries = ${String(r.queries)}, but the API answered ${answered}`);
  if (!Array.isArray(r.notes) || r.notes.some((n) => typeof n !== 'string'))
    throw bad('notes that are not a list of strings');
  if (r.curve === undefined) {
    if (pass.length > 1) throw bad(`no learning curve for the ${pass.length} budgets asked`);
    return;
  }
  if (!Array.isArray(r.curve) || r.curve.length !== pass.length)
    throw bad(
      `a learning curve of ${Array.isArray(r.curve) ? r.curve.length : 0} points for the ${pass.length} budgets asked`,
    );
  r.curve.forEach((p, i) => {
    if (p.budget !== pass[i]) throw bad(`a learning-curve point for budget ${p.budget} where ${pass[i]} was asked`);
    if (!queries(p.queries) || p.queries > p.budget) throw bad(`queries = ${p.queries} at budget ${p.budget}`);
    if (!isModel(p.surrogate)) throw bad(`no surrogate at budget ${p.budget}`);
    if (!Number.isFinite(p.attackerSeconds) || p.attackerSeconds < 0)
      throw bad(`attacker seconds ${p.attackerSeconds} at budget ${p.budget}`);
  });
}

/** One run of the attack against a fresh API with budget max(pass); one row per budget in `pass`. */
async function runPass(
  c: PlanCell,
  ctx: RunContext,
  attack: Attack,
  planWhy: string | undefined,
  ds: Dataset,
  v: { model: Model; testAcc: number },
  victimTest: Float32Array,
  instances: () => Defense[],
  know: AttackerKnowledge,
  utility: Utility,
  pass: number[],
  notes: string[],
  t0: number,
  phases: PhaseClock,
): Promise<ResultRow[]> {
  const budget = pass[pass.length - 1];
  const accounts = typeof c.attack.params.accounts === 'number' ? c.attack.params.accounts : 1;
  // the attacker's APIs' defense instances and client ids, for what they recorded (watermarks)
  const issued: Array<{ defenses: Defense[]; clientId: string }> = [];
  const issue = (clientId: string): Defense[] => {
    const defenses = instances();
    issued.push({ defenses, clientId });
    return defenses;
  };
  // tree victims are served like BigML: each answer carries the leaf's identifier
  const t = c.target;
  if (t && accounts > 1)
    throw new UsageError(
      `${c.attack.name}: accounts=${accounts} spreads the queries over client identities mse makes itself; against --target it would need that many keys`,
    );
  const api: PredictionApi = t
    ? t.protocol && t.protocol !== 'mse'
      ? new ModelServerApi({
          ...servedTarget(c, ds),
          budget,
          inputShape: ds.inputShape,
          numClasses: ds.numClasses,
          domain: ds.domain,
        })
      : await HttpPredictionApi.connect(t.url, { key: t.key, budget })
    : accounts > 1
      ? // a Sybil attacker: k client identities, each with its own defense state, one budget over all
        new SybilApi(
          Array.from(
            { length: accounts },
            (_, i) =>
              new LocalPredictionApi(v.model, issue(`attacker-${budget}-${i}`), {
                rng: stream(c.seed, `api:account-${i}`),
                domain: ds.domain,
                revealLeaves: c.victim.kind === 'tree',
                clientId: `attacker-${budget}-${i}`,
              }),
          ),
          budget,
        )
      : new LocalPredictionApi(v.model, issue(`attacker-${budget}`), {
          rng: stream(c.seed, 'api'),
          domain: ds.domain,
          budget,
          revealLeaves: c.victim.kind === 'tree',
          clientId: `attacker-${budget}`,
        });
  const base = (b: number) => {
    const spec = cellSpec(c, b);
    const { plugins: _plugins, ...columns } = spec;
    return {
      cell_id: cellId(spec),
      run_id: ctx.runId,
      mse_version: mseVersion(),
      backend: activeBackend().label,
      ...columns,
      dataset_variant: ds.variant,
      victim_variant: victimVariant(c),
      victim_acc: v.testAcc,
    };
  };
  const d = exampleSize(ds);
  const defender = {
    defended_acc: utility.acc,
    defended_agreement: utility.agreement,
    perturbation_l1: utility.l1,
    perturbation_kl: utility.kl,
    honest_slowdown: utility.slowdown,
    benign_fpr: utility.fpr,
  };

  ctx.onProgress?.('attack');
  let result: AttackResult | undefined;
  // checked once, before any query: the plan's verdict, and what this API says it reveals
  const why =
    planWhy ??
    notApplicable(ATTACKS.get(c.attack.name).requires(c.attack.params), {
      victim: c.victim.kind,
      numClasses: know.numClasses,
      reveals: api.info.reveals,
      budget,
    });
  let status = why ? `not-applicable: ${c.attack.name} cannot run here: ${why}` : 'ok';
  const cpuAttack0 = process.cpuUsage();
  phases.enter('training');
  if (!why) {
    try {
      result = await attack.run(api, know, stream(c.seed, 'attack'), {
        checkpoints: pass,
        onProgress: (p) => ctx.onProgress?.('attack', p),
      });
      try {
        checkResult(c.attack.name, result, pass, api.ledger.queries);
      } catch (e) {
        // what it returned is not kept: free what models there are
        for (const m of new Set([
          result?.surrogate,
          ...(Array.isArray(result?.curve) ? result.curve.map((p) => p?.surrogate) : []),
        ]))
          if (m && typeof (m as Model).dispose === 'function') (m as Model).dispose();
        throw e;
      }
      notes.push(...result.notes);
      if (api instanceof SybilApi)
        notes.push(
          `Sybil: ${accounts} accounts, ${api.alarmed} refused by a detector${api.ledger.detectedAt !== undefined ? `, the first after ${api.ledger.detectedAt} queries in all` : ''}`,
        );
      // what the server's answers showed (which of several outputs was read), said once
      if (api instanceof ModelServerApi) for (const n of api.notes) if (!notes.includes(n)) notes.push(n);
      if (api.ledger.detectedAt !== undefined) status = 'ok-detected';
      else if (result.budgetExhausted) status = 'ok-budget-exhausted';
    } catch (err) {
      // a server that refuses before the attacker's own count runs out, to an attack that cannot
      // stop with what it has: a row that says so, not a failed sweep
      if (err instanceof QueryRefusedError) {
        status = `${err instanceof DetectedError ? 'detected' : 'budget-exhausted'}: the API refused ${c.attack.name} after ${api.ledger.queries} queries (${err.message}); no surrogate`;
      } else {
        // what only the attack can see (a pool of the wrong shape) it reports the same way
        if (!(err instanceof AttackNotApplicable)) throw err;
        status = `not-applicable: ${err.message}`;
      }
    }
  }
  const attackCpu = process.cpuUsage(cpuAttack0);
  // the API's answering time, inside the attack's, is the queries' phase
  phases.move('training', 'queries', api.ledger.apiSeconds);
  phases.enter('eval');
  if (!result)
    return pass.map((b) =>
      makeRow({
        ...base(b),
        queries: api.ledger.queries,
        ...defender,
        detected_at: api.ledger.detectedAt,
        pow_s: api.ledger.powSeconds,
        pow_ratio: powRatio(api.ledger, utility.ledger, api.ledger.queries),
        wall_s: (performance.now() - t0) / 1000,
        phase_s: formatPhases(phases.snapshot()),
        status,
      }),
    );

  // the attacker's own compute: CPU seconds during the attack, less the time the API spent answering
  const wholeCpu = Math.max(0, (attackCpu.user + attackCpu.system) / 1e6 - api.ledger.apiSeconds);
  const points = result.curve ?? [
    { budget, queries: api.ledger.queries, surrogate: result.surrogate, attackerSeconds: wholeCpu },
  ];
  const caughtWithin = (b: number) => api.ledger.detectedAt !== undefined && api.ledger.detectedAt < b;
  const marks = watermarksOf(issued);
  if (marks)
    notes.push(
      `watermarks: the API recorded ${marks.n} for the attacker (${issued.length} client${issued.length > 1 ? 's' : ''})`,
    );
  const unifN = c.unifSize ?? 10000;
  const unif = uniformInputs(stream(c.seed, 'uniform'), unifN, d, ds.domain);
  const rows: ResultRow[] = [];
  const k = ds.numClasses;
  try {
    // the victim's answers on the uniform set, once for every surrogate of the pass
    const victimUnif = await probsOf(v.model, unif, unifN);
    // transferability is asked for (--transfer n): on images, the first n test images the victim gets right
    const attacked = c.transfer && ds.kind === 'image' ? correctlyClassified(victimTest, ds.test.y, k, c.transfer) : [];
    for (const p of points) {
      ctx.onProgress?.('metrics');
      const pe = paramError(v.model, p.surrogate, ds.domain);
      const surTest = await probsOf(p.surrogate, ds.test.x, ds.test.n);
      const onTest = fidelityOf(victimTest, surTest, k);
      const tr = attacked.length
        ? await transferability(v.model, p.surrogate, ds.test.x, ds.test.y, attacked, ds.domain)
        : undefined;
      // ownership: the watermarks recorded for this point's queries (a prefix of the stream) are what it learnt from
      const mine = marks && (issued.length > 1 ? marks : marksBefore(marks, p.queries));
      const wm = mine && mine.n > 0 ? await verifyWatermarks(p.surrogate, mine, k) : undefined;
      rows.push(
        makeRow({
          ...base(p.budget),
          queries: p.queries,
          surrogate_acc: accuracyOf(argmaxRows(surTest, k), ds.test.y),
          agreement_test: onTest.agreement,
          agreement_unif: fidelityOf(victimUnif, await probsOf(p.surrogate, unif, unifN), k).agreement,
          param_error: pe ? pe.relL2 : undefined,
          kl_test: onTest.kl,
          l1_test: onTest.l1,
          transfer_fgsm_eps01: tr?.fgsm[0],
          transfer_fgsm_eps03: tr?.fgsm[1],
          transfer_pgd_eps01: tr?.pgd[0],
          transfer_pgd_eps03: tr?.pgd[1],
          ...defender,
          // a run with this point's budget would have been caught only if the alarm came within it
          detected_at: caughtWithin(p.budget) ? api.ledger.detectedAt : undefined,
          watermark_acc: wm?.acc,
          ownership_verified: wm ? (wm.verified ? 1 : 0) : undefined,
          attacker_cpu_s: p.attackerSeconds,
          // the PoW this prefix of the stream paid (a growing price makes early queries cheaper)
          pow_s: powWithin(api.ledger, p.queries),
          pow_ratio: powRatio(api.ledger, utility.ledger, p.queries),
          wall_s: (performance.now() - t0) / 1000,
          phase_s: formatPhases(phases.snapshot()),
          status: status === 'ok-detected' && !caughtWithin(p.budget) ? 'ok' : status,
        }),
      );
    }
  } finally {
    for (const s of new Set([result.surrogate, ...points.map((p) => p.surrogate)])) s.dispose();
  }
  return rows;
}

/**
 * What the attacker's first q queries paid in PoW per query, over what the honest user's first q (all
 * of its stream when shorter) paid per query: Dziedzic 2022's "attackers pay up to 100×, honest users
 * ≤ 2×" as one number per row. Undefined when either paid nothing (no PoW in the stack).
 */
function powRatio(attacker: Readonly<Ledger>, honest: Readonly<Ledger>, q: number): number | undefined {
  const qa = Math.min(q, attacker.queries);
  const qh = Math.min(q, honest.queries);
  if (qa <= 0 || qh <= 0) return undefined;
  const a = powWithin(attacker, qa) / qa;
  const h = powWithin(honest, qh) / qh;
  return a > 0 && h > 0 ? a / h : undefined;
}

/** Top-1 accuracy of what the defended API returns, and its mean L1 and KL(y‖ỹ) distance from the victim's posteriors. */
/**
 * The defender's side, on the test set through an unmetered copy of the defended API (client
 * "honest"): top-1 accuracy of the answers and their agreement with the undefended victim, mean L1
 * and KL(y‖ỹ) from the true posteriors, and the honest user's slowdown, (API + PoW seconds) / API seconds.
 */
async function defendedUtility(
  victim: Model,
  y: Float32Array,
  instances: () => Defense[],
  ds: Dataset,
  rng: Rng,
): Promise<Utility> {
  const defenses = instances();
  const api = new LocalPredictionApi(victim, defenses, { rng: rng.fork(), domain: ds.domain, clientId: 'honest' });
  const k = ds.numClasses;
  const n = ds.test.n;
  const d = ds.inputShape.reduce((a, b) => a * b, 1);
  const meter = new UtilityMeter(k);
  const batch = 1024;
  for (let s = 0; s < n; s += batch) {
    const m = Math.min(batch, n - s);
    const xt = tf.tensor(ds.test.x.subarray(s * d, (s + m) * d), [m, ...ds.inputShape]);
    let r: ApiResponse = {};
    try {
      try {
        r = await api.query(xt);
      } catch (e) {
        // a detector alarmed on the honest user: refused from here on, every refused query a wrong answer
        if (!(e instanceof DetectedError)) throw e;
        meter.add(
          y.subarray(s * k, (s + m) * k),
          ds.test.y.subarray(s, s + m),
          { labels: new Int32Array(m).fill(-1) },
          m,
        );
        continue;
      }
      const labels = r.labels ? ((await r.labels.data()) as Int32Array) : undefined;
      const probs = r.probs ? ((await r.probs.data()) as Float32Array) : undefined;
      meter.add(y.subarray(s * k, (s + m) * k), ds.test.y.subarray(s, s + m), { probs, labels }, m);
    } finally {
      tf.dispose([xt, r.probs ?? [], r.labels ?? []]);
    }
  }
  const l = api.ledger;
  const utility: Utility = {
    ...meter.result(),
    slowdown: l.apiSeconds > 0 ? (l.apiSeconds + l.powSeconds) / l.apiSeconds : 1,
    ledger: l,
  };
  // a monitor in the stack: how often it alarms on honest clients, each stream its own client
  if (defenses.some((x) => typeof x.monitor === 'function')) {
    const alarmed = [l.alarm !== undefined];
    const order = (split: Split, r: Rng) => r.permutation(split.n).slice(0, Math.min(split.n, HONEST_STREAM));
    for (const [client, split] of [
      ['honest-shuffled', ds.test],
      ['honest-natural', ds.train],
    ] as const)
      alarmed.push(
        await honestStreamAlarms(victim, instances(), ds, split, order(split, rng.fork()), client, rng.fork()),
      );
    utility.fpr = alarmed.filter(Boolean).length / alarmed.length;
  }
  return utility;
}

/** the longest honest stream a monitor is measured on, besides the test set in order */
const HONEST_STREAM = 5000;

/** Whether a fresh API's monitors alarm on an honest client asking `split`'s rows in this order. */
async function honestStreamAlarms(
  victim: Model,
  defenses: Defense[],
  ds: Dataset,
  split: Split,
  order: Int32Array,
  clientId: string,
  rng: Rng,
): Promise<boolean> {
  const api = new LocalPredictionApi(victim, defenses, { rng, domain: ds.domain, clientId });
  const d = exampleSize(ds);
  const batch = 256;
  const xb = new Float32Array(batch * d);
  for (let s = 0; s < order.length; s += batch) {
    const m = Math.min(batch, order.length - s);
    for (let i = 0; i < m; i++) xb.set(split.x.subarray(order[s + i] * d, (order[s + i] + 1) * d), i * d);
    const xt = tf.tensor(xb.subarray(0, m * d), [m, ...ds.inputShape]);
    try {
      const r = await api.query(xt);
      tf.dispose([r.probs ?? [], r.labels ?? []]);
    } catch (e) {
      if (e instanceof DetectedError) return true;
      throw e;
    } finally {
      xt.dispose();
    }
  }
  return false;
}

/** Every watermark the attacker's APIs recorded for it (a watermarking defense's instances), joined; none when none did. */
function watermarksOf(issued: Array<{ defenses: Defense[]; clientId: string }>): Watermarks | undefined {
  const parts: Watermarks[] = [];
  for (const { defenses, clientId } of issued)
    for (const d of defenses) {
      const get = (d as Defense & { watermarksOf?: (id: string) => Watermarks | undefined }).watermarksOf;
      const w = typeof get === 'function' ? get.call(d, clientId) : undefined;
      // a defense whose marks are one set for every client (EWE) returns the same object: counted once
      if (w && w.n > 0 && !parts.includes(w)) parts.push(w);
    }
  if (!parts.length) return undefined;
  const n = parts.reduce((a, w) => a + w.n, 0);
  const d = parts[0].x.length / parts[0].n;
  const x = new Float32Array(n * d);
  const labels = new Int32Array(n);
  const at = new Int32Array(n);
  let o = 0;
  for (const w of parts) {
    x.set(w.x, o * d);
    labels.set(w.labels, o);
    at.set(w.at, o);
    o += w.n;
  }
  return { x, labels, at, n };
}

/** the watermarks among a client's first `queries` queries (what a surrogate trained on that prefix saw) */
function marksBefore(w: Watermarks, queries: number): Watermarks {
  let n = 0;
  while (n < w.n && w.at[n] < queries) n++;
  const d = w.n ? w.x.length / w.n : 0;
  return { x: w.x.subarray(0, n * d), labels: w.labels.subarray(0, n), at: w.at.subarray(0, n), n };
}
