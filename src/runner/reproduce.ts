/**
 * `mse reproduce <paper>`: run a paper's sweep spec (bench/papers/<paper>.json) at a scale, write the
 * results CSV (resumable), a markdown table in the paper's layout, and check every figure against
 * the band the spec stores for it (mean over seeds). A figure outside its band fails the run.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { MseError, UsageError, unknownChoice } from '../errors.js';
import type { ResolveOptions } from '../data/resolve.js';
import { ATTACKS } from '../attacks/registry.js';
import { isShardFile, resultsFileName } from './shard.js';
import { cellLabel, makePlan, remaining, type CellRequest, type Plan } from './plan.js';
import { loadPlugins } from '../units/plugins.js';
import type { PlanDataReport } from './plan-data.js';
import { runCell } from './run-cell.js';
import { ResultsCsv, readResults } from './csv-writer.js';
import { makeRow, type ResultColumn, type ResultRow } from './result-row.js';

const PAPERS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bench', 'papers');

export interface PaperCell {
  /** a name for `relations` */
  id?: string;
  dataset: string;
  victim: string;
  attack: string;
  budget: string;
  defenses?: string[];
  expect: Partial<Record<ResultColumn, [number, number]>>;
  /** why a band differs from the paper's claim */
  note?: string;
  /** the paper's own figures for this cell, shown beside ours (e.g. queries, R_test, R_unif, time_s) */
  paper?: Record<string, number>;
}

export interface PaperSpec {
  paper: string;
  title: string;
  mirrors: string;
  paper_numbers?: Record<string, string>;
  /** the table's metric columns (default: Tramèr's queries, R_test, R_unif, param_error, wall_s) */
  columns?: string[];
  scales: Record<string, { seeds: number[]; cells: PaperCell[]; relations?: Relation[] }>;
  /** plugin files whose units the cells name, relative to the spec file */
  plugins?: string[];
}

const COLUMN_TITLES: Record<string, string> = {
  param_error: 'param error',
  wall_s: 'time (s)',
  surrogate_acc: 'attacker acc',
  agreement_test: 'agreement',
  victim_acc: 'victim acc',
  defended_acc: 'defended acc',
  attacker_cpu_s: 'attacker CPU (s)',
};

/** A comparison the paper makes between two cells: mean(metric) of `greater` exceeds `less`'s by at least `by`. */
export interface Relation {
  metric: ResultColumn;
  greater: string;
  less: string;
  by?: number;
  note?: string;
}

export function listPapers(): string[] {
  return existsSync(PAPERS_DIR)
    ? readdirSync(PAPERS_DIR)
        .filter((f) => f.endsWith('.json'))
        .map((f) => f.replace(/\.json$/, ''))
    : [];
}

/** The spec file of a paper id, or the path given. */
export function paperFile(name: string): string {
  return name.endsWith('.json') ? path.resolve(name) : path.join(PAPERS_DIR, `${name}.json`);
}

/** A paper id from bench/papers/, or a path to a spec file of the same format. */
export function loadPaper(name: string): PaperSpec {
  if (name.endsWith('.json')) {
    if (!existsSync(name)) throw new UsageError(`spec file ${name} not found`);
    return JSON.parse(readFileSync(name, 'utf8')) as PaperSpec;
  }
  const papers = listPapers();
  if (!papers.includes(name)) throw unknownChoice('paper', name, papers.length ? papers : ['(none)']);
  return JSON.parse(readFileSync(path.join(PAPERS_DIR, `${name}.json`), 'utf8')) as PaperSpec;
}

export interface CheckedFigure {
  cell: string;
  metric: string;
  value: number;
  band: [number, number];
  ok: boolean;
}

export interface ReproduceResult {
  table: string;
  checks: CheckedFigure[];
  csv: string;
  /** the data every cell used (for the manifest's `datasets`) */
  data: PlanDataReport;
  /** the plugins the spec's cells use (for the manifest) */
  plugins: Plan['plugins'];
}

/**
 * A paper's cells at a scale as a plan, and which plan cell id every (spec cell, seed) became (cells
 * that differ only in budget share one query pass when the attack has a learning curve). All data is
 * checked first: one error for whatever is missing.
 */
export async function planPaper(
  name: string,
  scale: string,
  data: ResolveOptions,
): Promise<{
  spec: PaperSpec;
  sc: PaperSpec['scales'][string];
  plan: Plan;
  planned: { cell: PaperCell; seed: number; id: string }[];
}> {
  const spec = loadPaper(name);
  const sc = spec.scales[scale];
  if (spec.plugins?.length) await loadPlugins(spec.plugins, path.dirname(paperFile(name)));
  if (!sc) throw new UsageError(`${name} has no scale '${scale}'. Available: ${Object.keys(spec.scales).join(', ')}`);
  const reqs: CellRequest[] = sc.cells.flatMap((cell) =>
    sc.seeds.map((seed) => ({
      dataset: cell.dataset,
      victim: cell.victim,
      attack: cell.attack,
      defenses: cell.defenses ?? [],
      budgets: [cell.budget],
      seed,
    })),
  );
  const plan = await makePlan(reqs, { data });
  const planned = plan.requests.map((r, i) => ({
    cell: sc.cells[Math.floor(i / sc.seeds.length)],
    seed: sc.seeds[i % sc.seeds.length],
    id: r.cell.ids[r.cell.budgets.indexOf(r.budgets[0])],
  }));
  return { spec, sc, plan, planned };
}

/** One task's share of the plan: the query passes (plan cells, by index) it runs, into shard-i-of-n.csv. */
export interface ReproduceShard {
  index: number;
  count: number;
  take(planCell: number): boolean;
}

/** The rows of shard-*-of-*.csv in `dir` that belong to this plan and are not in `csv` yet, appended to it. */
function foldShards(dir: string, csv: ResultsCsv, ids: Set<string>): void {
  if (!existsSync(dir)) return;
  for (const f of readdirSync(dir).filter(isShardFile).sort()) {
    for (const row of readResults(path.join(dir, f)))
      if (ids.has(row.cell_id) && !csv.has(row.cell_id)) csv.write(makeRow(row as Partial<ResultRow>));
  }
}

/** How many query passes (plan cells) a paper's scale has: what `--shard` deals out. */
export async function paperPasses(name: string, scale: string, data: ResolveOptions): Promise<number> {
  return (await planPaper(name, scale, data)).plan.cells.length;
}

/**
 * `onPlan` is called once every dataset the spec needs is known to be here (before the first cell
 * and any training): print its notes, record its datasets in the manifest.
 */
export async function reproduce(
  name: string,
  scale: string,
  outDir: string,
  data: ResolveOptions,
  onCell?: (i: number, total: number, label: string) => void,
  onPlan?: (plan: Plan) => void,
  shard?: ReproduceShard,
): Promise<ReproduceResult> {
  const { spec, sc, plan, planned } = await planPaper(name, scale, data);
  onPlan?.(plan);
  const csvPath = path.join(outDir, resultsFileName(shard));
  const csv = new ResultsCsv(csvPath);
  try {
    // what shards of this paper already measured (mse reproduce --shard, e.g. a Slurm array's tasks)
    if (!shard) foldShards(outDir, csv, new Set(plan.cells.flatMap((c) => c.ids)));
    // a shard counts its own passes only
    const mine = plan.cells.filter((_, k) => !shard || shard.take(k));
    const todo = remaining(mine, (id) => csv.has(id));
    let done = mine.reduce((a, c) => a + c.budgets.length, 0) - todo.reduce((a, c) => a + c.budgets.length, 0);
    const total = done + todo.reduce((a, c) => a + c.budgets.length, 0);
    for (const cell of todo) {
      onCell?.(
        done + 1,
        total,
        `${cellLabel(cell)}${cell.budgets.length > 1 ? ` (${cell.budgets.length} budgets${ATTACKS.get(cell.attack.name).learningCurve ? ', one query pass' : ''})` : ` budget ${cell.budgets[0]}`}`,
      );
      const { rows } = await runCell(cell, { runId: path.basename(outDir), data });
      for (const row of rows) csv.write(row);
      done += cell.budgets.length;
    }
  } finally {
    csv.close();
  }
  if (shard) return { table: '', checks: [], csv: csvPath, data: plan.data, plugins: plan.plugins };
  const rows = new Map(readResults(csvPath).map((r) => [r.cell_id, r]));
  const checks: CheckedFigure[] = [];
  const columns = spec.columns ?? ['queries', 'R_test', 'R_unif', 'param_error', 'wall_s'];
  const paperKeys = [...new Set(sc.cells.flatMap((c) => Object.keys(c.paper ?? {})))];
  const header = [
    'attack',
    'dataset',
    'victim',
    'defense',
    'budget',
    ...columns.map((c) => COLUMN_TITLES[c] ?? c),
    ...(paperKeys.length ? [`paper: ${paperKeys.join(', ')}`] : []),
    'status',
  ];
  const lines = [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`];
  const notes: string[] = [];
  const means = new Map<string, (k: string) => number>();
  for (const cell of sc.cells) {
    const mine = [...new Set(planned.filter((p) => p.cell === cell).map((p) => p.id))]
      .map((id) => rows.get(id))
      .filter((r): r is Record<string, string> => r !== undefined);
    const mean = (k: string) => {
      const v = mine
        .map((r) => r[k])
        .filter((s) => s !== '' && s !== undefined)
        .map(Number);
      return v.length ? v.reduce((a, b) => a + b, 0) / v.length : NaN;
    };
    const label = `${cell.attack} ${cell.dataset}/${cell.victim} ${cell.defenses?.length ? `[${cell.defenses.join(' ')}] ` : ''}${cell.budget}`;
    if (cell.id) means.set(cell.id, mean);
    for (const [metric, band] of Object.entries(cell.expect) as Array<[string, [number, number]]>) {
      const value = mean(metric);
      checks.push({ cell: label, metric, value, band, ok: value >= band[0] && value <= band[1] });
    }
    const f = (v: number, digits = 4) =>
      Number.isNaN(v) ? '–' : Number.isInteger(v) ? String(v) : v.toPrecision(digits);
    const status = [...new Set(mine.map((r) => r.status))].join(', ');
    const p = cell.paper;
    const paper = paperKeys.length
      ? [p ? paperKeys.map((k) => (p[k] === undefined ? '–' : f(p[k]))).join(', ') : '']
      : [];
    const value = (c: string) =>
      c === 'R_test' ? 1 - mean('agreement_test') : c === 'R_unif' ? 1 - mean('agreement_unif') : mean(c);
    const cellsOut = [
      cell.attack,
      cell.dataset,
      cell.victim,
      cell.defenses?.join(' ') ?? 'none',
      cell.budget,
      ...columns.map((c) => f(value(c), c === 'param_error' || c.endsWith('_s') ? 3 : 4)),
      ...paper,
      status,
    ];
    let row = `| ${cellsOut.join(' | ')}`;
    if (cell.note) {
      notes.push(`${notes.length + 1}. ${label}: ${cell.note}`);
      row += ` [${notes.length}]`;
    }
    lines.push(`${row} |`);
  }
  for (const r of sc.relations ?? []) {
    const a = means.get(r.greater);
    const b = means.get(r.less);
    if (!a || !b)
      throw new UsageError(`${name}/${scale}: relation names an unknown cell id (${a ? r.less : r.greater})`);
    const by = r.by ?? 0;
    checks.push({
      cell: `${r.greater} > ${r.less}${by ? ` + ${by}` : ''}`,
      metric: r.metric,
      value: a(r.metric) - b(r.metric),
      band: [by, Infinity],
      ok: a(r.metric) - b(r.metric) >= by,
    });
  }
  const table = [
    `# ${spec.title}`,
    '',
    `Reproduces: ${spec.mirrors}. Scale \`${scale}\`, seeds ${sc.seeds.join(', ')}; means over seeds${columns.some((c) => c.startsWith('R_')) ? '. R = 1 − agreement' : ''}.`,
    '',
    ...lines,
    '',
    ...(notes.length ? ['Notes:', '', ...notes, ''] : []),
  ].join('\n');
  if (planned.length === 0) throw new MseError('reproduce', `${name}/${scale} has no cells`);
  return { table, checks, csv: csvPath, data: plan.data, plugins: plan.plugins };
}
