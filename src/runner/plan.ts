/**
 * The resolved plan: what every command that runs cells (attack, bench, its shards and workers,
 * merge, reproduce) agrees on. Flags, a spec file and the family defaults are merged and validated
 * once into typed plan cells — units looked up, parameters resolved, budgets counted, the attacker's
 * data chosen, cell ids computed — and everything downstream takes plan cells, never spec strings.
 * A plan cell is plain JSON: a worker process receives it whole.
 */
import { parseAttackSpec, ATTACKS } from '../attacks/registry.js';
import { assertDatasetName, datasetDefaults, datasetUnit, DATASET_UNITS, loadDataset } from '../data/registry.js';
import type { ResolveOptions } from '../data/resolve.js';
import { isUserDataSpec, userDataset } from '../data/user-data.js';
import { parseDefenseSpec, DEFENSES } from '../defenses/registry.js';
import { DataError, UsageError } from '../errors.js';
import { declaresLabels, formatModelSpec, MODELS, parseModelSpec, type ModelSpec } from '../models/zoo.js';
import type { ModelUnit } from '../models/define.js';
import { parseNormalization } from '../models/normalize.js';
import type { Dataset } from '../data/types.js';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { formatParams, parseSpec, type ParamValues, type Schema } from '../params.js';
import type { PluginRef } from '../units/plugins.js';
import type { Protocol } from '../api/model-server-api.js';
import type { UnitSource } from '../units/registry.js';
import { parseBudget, resolveBudget } from './budget.js';
import { expandDefenseStack, expandSpec, validateSeeds, type GridSpec } from './grid.js';
import { checkPlanData, poolWanted, type PlanDataReport } from './plan-data.js';
import { cellId, type CellSpec } from './result-row.js';

/** A served victim: mse's own protocol, or a model server's (how to send inputs and read answers). */
export interface Target {
  url: string;
  key?: string;
  protocol?: Protocol;
  layout?: 'nhwc' | 'nchw' | 'flat';
  output?: 'auto' | 'probs' | 'logits' | 'labels';
  timeoutS?: number;
  /** a model server: requests in flight at once (default 1); changes no answer, so no cell id */
  concurrency?: number;
  /** a model server: per-channel (x − mean)/std before sending ('/'-separated lists, as -v onnx:mean=…) */
  mean?: string;
  std?: string;
  /** a model server with several outputs: the one to read (default: the only one, else the first, with a note) */
  outputName?: string;
}

/** A unit with its resolved parameters (defaults filled). */
export interface UnitRef {
  name: string;
  params: ParamValues;
}

export interface PlanCell {
  dataset: string;
  victim: ModelSpec;
  /** the defense stack in the order the API applies it; `none` alone for the undefended baseline */
  defenses: UnitRef[];
  attack: UnitRef;
  seed: number;
  /** ascending and distinct: one result row each */
  budgets: number[];
  /** the cell id of each budget's row */
  ids: string[];
  /** the transfer pool it loads, as the plan chose it (`fashion-mnist`, or `fashion-mnist@test10k` when only the shipped split is here) */
  pool?: string;
  /** the plugins its units come from: a worker loads them (and checks their hashes) before running it */
  plugins: Array<Pick<PluginRef, 'path' | 'hash'>>;
  /**
   * content hashes of what the cell reads besides mse's own files, as planned: each plugin dataset's
   * variant (`dataset:<name>`) and a loaded victim's files (`model:<path>`); part of its id, checked when it runs
   */
  contentHashes?: Record<string, string>;
  /** attack a served API instead of an in-process one (`mse attack --target`) */
  target?: Target;
  /** |U| for R_unif (Tramèr: 10,000) */
  unifSize?: number;
  /**
   * image cells: how many test images (the first the victim classifies correctly) to craft FGSM/PGD
   * examples on each surrogate for the transferability columns; absent: not measured (it costs 42
   * gradient passes of the surrogate over them per row)
   */
  transfer?: number;
}

/** One cell as asked for, in spec strings (a grid expands into these; a paper spec lists them). */
export interface CellRequest {
  dataset: string;
  /** a model spec; default: the dataset's family default */
  victim?: string;
  /** one stack, in order; empty: undefended */
  defenses: string[];
  /** default: the victim family's first default attack */
  attack?: string;
  /** counts or multiples ("5k", "1x"); default: the victim family's */
  budgets?: string[];
  seed: number;
}

export interface Plan {
  cells: PlanCell[];
  /** for each request, in order: the cell that runs it and its budgets as counted */
  requests: Array<{ cell: PlanCell; budgets: number[] }>;
  /** the data every cell uses, for the manifest */
  data: PlanDataReport;
  /** every plugin a cell uses */
  plugins: Array<Pick<PluginRef, 'path' | 'hash'>>;
}

export interface PlanOptions {
  data: ResolveOptions & { progress?: boolean };
  quick?: boolean;
  target?: Target;
  unifSize?: number;
  /** measure transferability on this many test images (PlanCell.transfer) */
  transfer?: number;
}

/** "name:k=v,…" in canonical form (what rows record). */
export function refText(r: UnitRef): string {
  const p = formatParams(r.params);
  return p ? `${r.name}:${p}` : r.name;
}

/** The spec a row of this cell records (and its id hashes), for one of its budgets. */
export function cellSpec(c: PlanCell, budget: number): CellSpec {
  const defs = c.defenses.length ? c.defenses : [{ name: 'none', params: {} }];
  // a smaller pool is a different experiment, so it gets its own cell id; the full pool keeps
  // the params (and ids) that rows had before pools had variants
  const attackParams =
    c.pool && (c.pool.includes('@') || isUserDataSpec(c.pool)) && 'pool' in c.attack.params
      ? { ...c.attack.params, pool: c.pool }
      : c.attack.params;
  const plugins = [...new Set([...c.plugins.map((p) => p.hash), ...Object.values(c.contentHashes ?? {})])]
    .sort()
    .join('+');
  return {
    dataset: c.dataset,
    victim: formatModelSpec(c.victim),
    defense: defs.map((d) => d.name).join('+'),
    defense_params: defs.map((d) => formatParams(d.params)).join('+'),
    attack: c.attack.name,
    attack_params: formatParams(attackParams),
    budget,
    seed: c.seed,
    ...(plugins ? { plugins } : {}),
  };
}

/** "name:k=v" with only the parameters that differ from their defaults: what a person would have typed. */
export function shortText(r: UnitRef, schema: Schema | undefined): string {
  const changed = Object.fromEntries(
    Object.entries(r.params).filter(([k, v]) => JSON.stringify(schema?.[k]?.default) !== JSON.stringify(v)),
  );
  return refText({ name: r.name, params: changed });
}

/** One line naming a cell, the same in every command's progress and errors. */
export function cellLabel(
  c: Pick<PlanCell, 'dataset' | 'victim' | 'defenses' | 'attack' | 'seed'>,
  budget?: number,
): string {
  const defs =
    c.defenses.map((d) => shortText(d, DEFENSES.has(d.name) ? DEFENSES.get(d.name).params : undefined)).join('+') ||
    'none';
  const attack = shortText(c.attack, ATTACKS.has(c.attack.name) ? ATTACKS.get(c.attack.name).params : undefined);
  return `${attack} ${c.dataset}/${formatModelSpec(c.victim)} [${defs}] seed ${c.seed}${budget !== undefined ? ` budget ${budget}` : ''}`;
}

/** The same cell with only some of its budgets (those still to run). */
export function withBudgets(c: PlanCell, budgets: number[]): PlanCell {
  const keep = c.budgets.map((b, i) => ({ b, id: c.ids[i] })).filter((x) => budgets.includes(x.b));
  return { ...c, budgets: keep.map((x) => x.b), ids: keep.map((x) => x.id) };
}

/** The cells with only the budgets whose rows `has` lacks; cells with none left dropped. */
export function remaining(cells: PlanCell[], has: (id: string) => boolean): PlanCell[] {
  return cells
    .map((c) =>
      withBudgets(
        c,
        c.budgets.filter((_, i) => !has(c.ids[i])),
      ),
    )
    .filter((c) => c.budgets.length);
}

/**
 * A key that does not depend on where the attacker's data came from (which may differ between
 * machines: one has the full pool, another the shipped split), for cutting shards every machine
 * agrees on.
 */
export function shardKey(c: PlanCell): string {
  return cellId(cellSpec({ ...c, pool: undefined }, c.budgets[0]));
}

const sourceOf = (s: UnitSource | undefined) => (s ? [{ path: s.plugin, hash: s.hash }] : []);

/**
 * Parse and validate every request (no data loaded: a typo fails before the backend starts).
 * Returns the resolved units per request, budgets still as specs.
 */
function parseRequest(r: CellRequest) {
  assertDatasetName(r.dataset);
  const victim = r.victim === undefined ? undefined : parseModelSpec(r.victim);
  const defenses = r.defenses.map((d) => parseDefenseSpec(d));
  const attack = r.attack === undefined ? undefined : parseAttackSpec(r.attack);
  const budgets = r.budgets?.map((b) => ({ text: b, spec: parseBudget(b) }));
  return { victim, defenses, attack, budgets };
}

/** Check every request's names and values without loading anything. */
export function validateRequests(reqs: CellRequest[]): void {
  reqs.forEach(parseRequest);
}

/**
 * Resolve requests into plan cells: family defaults filled, budgets counted, the attacker's data
 * checked (one error for everything missing, before any victim trains), ids computed. Requests that
 * name the same cell merge (their budgets unite); two spellings of one cell (round and
 * round:decimals=2, its default) are one cell.
 */
export async function makePlan(reqs: CellRequest[], o: PlanOptions): Promise<Plan> {
  const parsed = reqs.map((r) => ({ r, ...parseRequest(r) }));
  // the data first, before a dataset is loaded to count budgets: one error for every missing file
  // (pools of attacks still to be chosen by family defaults are checked with the cells below)
  await checkPlanData(
    parsed.map((p) => ({
      dataset: p.r.dataset,
      attack: p.attack && { name: p.attack.unit.name, params: p.attack.values },
    })),
    o.data,
  );
  const byKey = new Map<string, Omit<PlanCell, 'ids'>>();
  const reqOf: Array<{ key: string; budgets: number[] }> = [];
  const victimNotes = new Set<string>();
  for (const p of parsed) {
    // the dataset's canonical name (a user file's spec with its defaults written out)
    const dsName = datasetUnit(p.r.dataset).name;
    const ds = await loadDataset(dsName, o.data);
    const victim = p.victim ?? parseModelSpec(datasetDefaults(ds).victim);
    const model = MODELS.get(victim.kind);
    const attack = p.attack ?? parseAttackSpec(model.attacks[0]);
    const budgetSpecs = p.budgets?.map((b) => b.spec) ?? model.budgets(o.quick === true).map(parseBudget);
    const budgets = budgetSpecs.map((b) => resolveBudget(b, ds, victim));
    const defenses = p.defenses.length ? p.defenses : [parseDefenseSpec('none')];
    checkAttackNeeds(attack.unit.name, attack.values);
    // every unit the cell uses, including those named by a parameter (a plugin's dataset as the
    // pool, a plugin's model as the surrogate's arch or MAD's proxy): workers load their plugins,
    // and their hashes are part of the cell's id
    const poolName = poolWanted({ name: attack.unit.name, params: attack.values }, dsName);
    const datasets = [
      dsName,
      ...(poolName && DATASET_UNITS.has(poolName.split('@')[0]) ? [poolName.split('@')[0]] : []),
    ];
    const named = [attack.values, ...defenses.map((d) => d.values)]
      .flatMap((v) => Object.values(v))
      .filter((v): v is string => typeof v === 'string');
    const units = [
      ATTACKS.get(attack.unit.name),
      ...defenses.map((d) => DEFENSES.get(d.unit.name)),
      model,
      ...datasets.map((n) => datasetUnit(n)),
      ...named.flatMap((v) => (MODELS.has(v.split(':')[0]) ? [MODELS.get(v.split(':')[0])] : [])),
      ...named.flatMap((v) => (DATASET_UNITS.has(v.split('@')[0]) ? [DATASET_UNITS.get(v.split('@')[0])] : [])),
    ];
    const plugins = units.flatMap((u) => sourceOf(u.source));
    // the content of data mse does not ship — a plugin dataset's arrays, the user's own file — is
    // part of the id too (its variant): other data under the same name is another experiment
    const contentHashes: Record<string, string> = {};
    for (const u of units)
      if (u.kind === 'dataset' && (u.source || u.name.includes(':')))
        contentHashes[`dataset:${u.name}`] = (await loadDataset(u.name, o.data)).variant;
    // a victim the user brings: here, loadable, fitting the data; its files' content is part of the id
    const served = victim.kind === 'served';
    if (served) checkServed(o.target, defenses);
    const loaded = model.load && !served ? await checkLoadedVictim(model, victim, ds) : undefined;
    // the served model is the one at its URL: another server is another victim
    if (served && o.target)
      contentHashes['model:served'] = createHash('sha256').update(o.target.url).digest('hex').slice(0, 16);
    // preprocessing mse applies before a model server sees the input changes its answers: another cell
    if (o.target && (o.target.mean !== undefined || o.target.std !== undefined)) {
      parseNormalization('--target-mean/--target-std', o.target.mean, o.target.std, ds.inputShape);
      contentHashes['target:normalization'] = `${o.target.mean ?? '0'}|${o.target.std ?? '1'}`;
    }
    if (o.target?.outputName !== undefined) contentHashes['target:output'] = o.target.outputName;
    if (loaded) {
      contentHashes[`model:${formatModelSpec(victim)}`] = loaded.hash;
      for (const n of loaded.notes) victimNotes.add(n);
    }
    checkStack(defenses, loaded?.labelsOnly ? formatModelSpec(victim) : undefined);
    const cell = {
      dataset: dsName,
      victim,
      defenses: defenses.map((d) => ({ name: d.unit.name, params: d.values })),
      attack: { name: attack.unit.name, params: attack.values },
      seed: p.r.seed,
      budgets,
      plugins: [...new Map(plugins.map((x) => [x.path, x])).values()],
      ...(Object.keys(contentHashes).length ? { contentHashes } : {}),
      ...(o.target ? { target: o.target } : {}),
      ...(o.unifSize ? { unifSize: o.unifSize } : {}),
      ...(o.transfer ? { transfer: o.transfer } : {}),
    };
    const key = JSON.stringify([
      cell.dataset,
      formatModelSpec(victim),
      cell.defenses.map(refText),
      refText(cell.attack),
      cell.seed,
    ]);
    const had = byKey.get(key);
    if (had) had.budgets.push(...budgets);
    else byKey.set(key, cell);
    reqOf.push({ key, budgets: [...budgets] });
  }
  const cells0 = [...byKey.values()].map((c) => ({ ...c, budgets: [...new Set(c.budgets)].sort((a, b) => a - b) }));
  // every dataset the cells need, before anything is trained: one error for all that is missing
  const data = await checkPlanData(cells0, o.data);
  data.notes.push(...victimNotes);
  const seen = new Map<string, PlanCell>();
  const byKeyCell = new Map<string, PlanCell>();
  const keys = [...byKey.keys()];
  cells0.forEach((c, i) => {
    const pool = data.cells[i].pool;
    // the user's own pool: its content is part of the id (another folder under the same path is another experiment)
    const withPool =
      pool && isUserDataSpec(pool)
        ? { ...c, pool, contentHashes: { ...c.contentHashes, [`pool:${pool}`]: data.datasets[pool].variant } }
        : { ...c, pool };
    const cell: PlanCell = { ...withPool, ids: c.budgets.map((b) => cellId(cellSpec({ ...withPool, ids: [] }, b))) };
    const k = cell.ids.join();
    byKeyCell.set(keys[i], seen.get(k) ?? cell);
    if (!seen.has(k)) seen.set(k, cell);
  });
  const cells = [...seen.values()];
  const requests = reqOf.map((r) => ({ cell: byKeyCell.get(r.key)!, budgets: r.budgets }));
  return {
    cells,
    requests,
    data,
    plugins: [...new Map(cells.flatMap((c) => c.plugins).map((x) => [x.path, x])).values()],
  };
}

const loadedVictims = new Map<string, { hash: string; labelsOnly: boolean; notes: readonly string[] }>();
/**
 * A victim the user brings: its files are here, it loads, and it fits the dataset (input shape,
 * classes, what it outputs) — said before anything trains. Returns its files' content hash, whether
 * it answers labels only, and a note when output=auto found that.
 */
async function checkLoadedVictim(
  unit: ModelUnit,
  spec: ModelSpec,
  ds: Dataset,
): Promise<{ hash: string; labelsOnly: boolean; notes: string[] }> {
  const files = unit.files?.(spec.params) ?? [];
  const h = createHash('sha256');
  for (const f of files) {
    let bytes: Buffer;
    try {
      bytes = readFileSync(f);
    } catch (e) {
      throw new DataError(
        `${formatModelSpec(spec)}: ${f} cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`,
      );
    }
    h.update(`${f}\0`).update(bytes).update('\0');
  }
  const hash = h.digest('hex').slice(0, 16);
  const key = JSON.stringify([formatModelSpec(spec), ds.name, ds.variant, hash]);
  let seen = loadedVictims.get(key);
  if (!seen) {
    const m = await unit.load!(ds, spec.params);
    // what loading found out (a fixed batch size, which of several outputs is read) is said once, at plan time
    seen = { hash, labelsOnly: m.labelsOnly === true, notes: [...(m.notes ?? [])] };
    m.dispose();
    loadedVictims.set(key, seen);
  }
  // output=auto read one column of class indices as labels: say so (a declared output=labels needs no note)
  const note =
    seen.labelsOnly && !declaresLabels(spec)
      ? `${formatModelSpec(spec)} answers one column of class indices: read as output=labels, so the API reveals labels only and attacks that need probabilities are not-applicable`
      : undefined;
  return { hash: seen.hash, labelsOnly: seen.labelsOnly, notes: [...seen.notes, ...(note ? [note] : [])] };
}

/**
 * A stack the API would refuse, before anything trains: a stage that needs probabilities after one
 * that reveals labels only, or on a victim that answers labels only (`labelsVictim`, its spec).
 */
function checkStack(
  defenses: Array<{
    unit: { name: string; reveals?: 'probs' | 'labels'; stagesOf(v: ParamValues): readonly string[] | undefined };
    values: ParamValues;
  }>,
  labelsVictim?: string,
): void {
  let labels: string | undefined;
  for (const d of defenses) {
    if (labelsVictim && d.unit.reveals !== 'labels' && d.unit.stagesOf(d.values)?.includes('output'))
      throw new UsageError(
        `defense '${d.unit.name}' needs probabilities but the victim ${labelsVictim} answers labels only`,
        `drop ${d.unit.name} for this victim: a labels-only victim takes input, price and labels-only defenses (top1)`,
      );
    if (labels && d.unit.stagesOf(d.values)?.includes('output'))
      throw new UsageError(
        `defense '${d.unit.name}' needs probabilities but an earlier defense (${labels}) reveals labels only`,
        'put it before that one',
      );
    if (d.unit.reveals === 'labels') labels = d.unit.name;
  }
}

/**
 * The served victim (`-v served`: the model behind --target, no local copy) is measured through a
 * model server, as it answers: the defenses it runs are part of it, so none is named here.
 */
function checkServed(target: Target | undefined, defenses: Array<{ unit: { name: string } }>): void {
  if (!target?.protocol || target.protocol === 'mse')
    throw new UsageError(
      'the served victim is the model behind --target, measured through a model server',
      'give --target URL --protocol tf-serving|kserve-v2 (or name a local victim with -v)',
    );
  const named = defenses.map((d) => d.unit.name).filter((n) => n !== 'none');
  if (named.length)
    throw new UsageError(
      `--defense ${named.join('+')} with no local copy of the served model: the server's answers are what is measured, defenses included`,
      'leave --defense out to measure the server as it answers, or give -v a local copy of its model so mse applies and measures the defenses',
    );
}

/** What an attack requires must name things that exist: model families, a pool dataset. */
function checkAttackNeeds(name: string, values: ParamValues): void {
  const req = ATTACKS.get(name).requires(values);
  for (const v of Array.isArray(req.victims) ? req.victims : [])
    if (!MODELS.has(v))
      throw new UsageError(
        `attack ${name}: requires a '${v}' victim, which is no model family (${MODELS.names().join(', ')})`,
      );
  if (req.pool !== undefined && req.pool !== 'auto') {
    try {
      if (isUserDataSpec(req.pool)) userDataset(req.pool);
      else assertDatasetName(req.pool.split('@')[0]);
    } catch (e) {
      throw new UsageError(`attack ${name}: its pool ${req.pool}: ${(e as Error).message}`);
    }
  }
}

/** A sweep's grid as requests: datasets × victims × defense stacks × attacks × seeds, in a stable order. */
export async function gridRequests(g: GridSpec, quick: boolean, data: ResolveOptions): Promise<CellRequest[]> {
  validateGridSpec(g);
  const stacks = [...(g.baseline === false ? [] : [['none']]), ...(g.defenses ?? []).flatMap(expandDefenseStack)];
  const uniqueStacks = [...new Map(stacks.map((s) => [s.join('+'), s])).values()];
  if (!uniqueStacks.length) throw new UsageError('no defenses to run: give --defense or leave the baseline on');
  const attackAlts = g.attacks?.flatMap((a) => expandSpec(a, ATTACKS.get(parseSpec(a).name).params));
  const reqs: CellRequest[] = [];
  for (const name of g.datasets) {
    const ds = await loadDataset(name, data);
    const victims = g.victims?.flatMap((v) => expandSpec(v, MODELS.get(parseSpec(v).name).params)) ?? [
      datasetDefaults(ds).victim,
    ];
    for (const victim of victims) {
      const model = MODELS.get(parseModelSpec(victim).kind);
      const attacks = attackAlts ?? model.attacks.map((a) => (quick && a === 'knockoff' ? 'knockoff:epochs=3' : a));
      const budgets = g.budgets ?? model.budgets(quick);
      for (const defenses of uniqueStacks)
        for (const attack of attacks)
          for (const seed of g.seeds) reqs.push({ dataset: name, victim, defenses, attack, budgets, seed });
    }
  }
  return reqs;
}

/** Check every name and value of a grid without loading anything (so a typo fails before the backend starts). */
export function validateGridSpec(g: GridSpec): void {
  if (!g.datasets.length) throw new UsageError('give at least one --dataset (or a --spec with datasets)');
  g.datasets.forEach(assertDatasetName);
  (g.defenses ?? []).forEach(expandDefenseStack);
  g.attacks?.flatMap((a) => expandSpec(a, ATTACKS.get(parseSpec(a).name).params)).forEach(parseAttackSpec);
  g.victims?.flatMap((v) => expandSpec(v, MODELS.get(parseSpec(v).name).params)).forEach(parseModelSpec);
  if (g.budgets && !g.budgets.length)
    throw new UsageError('no budgets given', 'leave budgets out for the default, or list at least one');
  g.budgets?.forEach(parseBudget);
  validateSeeds(g.seeds);
}

/** A sweep's plan: its grid's requests, resolved. */
export async function planSweep(g: GridSpec, o: PlanOptions): Promise<Plan> {
  return makePlan(await gridRequests(g, o.quick === true, o.data), o);
}
