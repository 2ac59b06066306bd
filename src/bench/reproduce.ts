/**
 * `mse reproduce <paper>`: run a paper's sweep spec (bench/papers/<paper>.json) at a scale, write the
 * results CSV (resumable), a markdown table in the paper's layout, and check every figure against
 * the band the spec stores for it (mean over seeds). A figure outside its band fails the run.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { MseError, UsageError, unknownChoice } from '../errors.js';
import { loadDataset } from '../data/registry.js';
import type { ResolveOptions } from '../data/resolve.js';
import { parseModelSpec } from '../models/zoo.js';
import { parseBudget, resolveBudget } from './budget.js';
import { cellSpecOf, runCell } from './cell.js';
import { ResultsCsv, readResults } from './csv-writer.js';
import { cellId, type ResultColumn } from './result-row.js';

const PAPERS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bench', 'papers');

export interface PaperCell {
  dataset: string;
  victim: string;
  attack: string;
  budget: string;
  defenses?: string[];
  expect: Partial<Record<ResultColumn, [number, number]>>;
  /** why a band differs from the paper's claim */
  note?: string;
  /** the paper's own figures for this cell, shown beside ours */
  paper?: { queries?: number; R_test?: number; R_unif?: number; time_s?: number };
}

export interface PaperSpec {
  paper: string;
  title: string;
  mirrors: string;
  paper_numbers?: Record<string, string>;
  scales: Record<string, { seeds: number[]; cells: PaperCell[] }>;
}

export function listPapers(): string[] {
  return existsSync(PAPERS_DIR) ? readdirSync(PAPERS_DIR).filter((f) => f.endsWith('.json')).map((f) => f.replace(/\.json$/, '')) : [];
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
}

export async function reproduce(name: string, scale: string, outDir: string, data: ResolveOptions, onCell?: (i: number, total: number, label: string) => void): Promise<ReproduceResult> {
  const spec = loadPaper(name);
  const sc = spec.scales[scale];
  if (!sc) throw new UsageError(`${name} has no scale '${scale}'. Available: ${Object.keys(spec.scales).join(', ')}`);
  const csvPath = path.join(outDir, 'results.csv');
  const csv = new ResultsCsv(csvPath);
  const planned: Array<{ cell: PaperCell; seed: number; id: string; label: string }> = [];
  try {
    for (const cell of sc.cells) {
      const ds = await loadDataset(cell.dataset, data);
      const budget = resolveBudget(parseBudget(cell.budget), ds, parseModelSpec(cell.victim));
      for (const seed of sc.seeds) {
        const input = { dataset: cell.dataset, victim: cell.victim, defenses: cell.defenses ?? [], attack: cell.attack, budget, seed, runId: path.basename(outDir), data };
        const id = cellId(cellSpecOf(input));
        const label = `${cell.attack} ${cell.dataset}/${cell.victim} ${cell.budget} seed ${seed}`;
        planned.push({ cell, seed, id, label });
        if (csv.has(id)) continue;
        onCell?.(planned.length, sc.cells.length * sc.seeds.length, label);
        const { row } = await runCell(input);
        csv.write(row);
      }
    }
  } finally {
    csv.close();
  }
  const rows = new Map(readResults(csvPath).map((r) => [r.cell_id, r]));
  const checks: CheckedFigure[] = [];
  const lines = ['| attack | dataset | victim | budget | queries | R_test | R_unif | param error | time (s) | paper: queries, R_test, R_unif, time (s) | status |', '|---|---|---|---|---|---|---|---|---|---|---|'];
  const notes: string[] = [];
  for (const cell of sc.cells) {
    const mine = planned.filter((p) => p.cell === cell).map((p) => rows.get(p.id)).filter((r): r is Record<string, string> => r !== undefined);
    const mean = (k: string) => {
      const v = mine.map((r) => r[k]).filter((s) => s !== '' && s !== undefined).map(Number);
      return v.length ? v.reduce((a, b) => a + b, 0) / v.length : NaN;
    };
    const label = `${cell.attack} ${cell.dataset}/${cell.victim} ${cell.budget}`;
    for (const [metric, band] of Object.entries(cell.expect) as Array<[string, [number, number]]>) {
      const value = mean(metric);
      checks.push({ cell: label, metric, value, band, ok: value >= band[0] && value <= band[1] });
    }
    const f = (v: number, digits = 4) => (Number.isNaN(v) ? '–' : Number.isInteger(v) ? String(v) : v.toPrecision(digits));
    const status = [...new Set(mine.map((r) => r.status))].join(', ');
    const p = cell.paper;
    const paper = p ? [p.queries, p.R_test, p.R_unif, p.time_s].map((v) => (v === undefined ? '–' : f(v))).join(', ') : '';
    let row = `| ${cell.attack} | ${cell.dataset} | ${cell.victim} | ${cell.budget} | ${f(mean('queries'))} | ${f(1 - mean('agreement_test'))} | ${f(1 - mean('agreement_unif'))} | ${f(mean('param_error'), 3)} | ${f(mean('wall_s'), 3)} | ${paper} | ${status}`;
    if (cell.note) {
      notes.push(`${notes.length + 1}. ${label}: ${cell.note}`);
      row += ` [${notes.length}]`;
    }
    lines.push(`${row} |`);
  }
  const table = [`# ${spec.title}`, '', `Reproduces: ${spec.mirrors}. Scale \`${scale}\`, seeds ${sc.seeds.join(', ')}; means over seeds. R = 1 − agreement.`, '', ...lines, '', ...(notes.length ? ['Notes:', '', ...notes, ''] : [])].join('\n');
  if (planned.length === 0) throw new MseError('reproduce', `${name}/${scale} has no cells`);
  return { table, checks, csv: csvPath };
}
