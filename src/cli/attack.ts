/** `mse attack`: run one attack against one (defended) victim and print, or append, its result row. */
import chalk from 'chalk';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { HttpPredictionApi } from '../api/http-api.js';
import { parseAttack } from '../attacks/registry.js';
import { parseBudget, resolveBudget } from '../bench/budget.js';
import { runCell, cellSpecOf } from '../bench/cell.js';
import { ResultsCsv } from '../bench/csv-writer.js';
import { makeManifest, writeManifest } from '../bench/manifest.js';
import { cellId } from '../bench/result-row.js';
import { checkPlanData } from '../bench/plan-data.js';
import { assertDatasetName, loadDataset } from '../data/index.js';
import { parseDefense } from '../defenses/registry.js';
import { UsageError } from '../errors.js';
import { parseModelSpec } from '../models/zoo.js';
import { defaultAttacks, defaultVictim } from '../bench/grid.js';
import { progressBar, startBackend, table } from './common.js';
import type { AttackProgress } from '../attacks/types.js';
import type { GlobalOptions } from './index.js';

interface AttackOpts {
  target?: string;
  key?: string;
  /** machine-readable progress on stderr (used by `mse bench` workers) */
  progressJson?: boolean;
  dataset: string;
  victim?: string;
  defense: string[];
  attack?: string;
  budget: string;
  seed: number;
  out?: string;
  json?: boolean;
}

export async function attack(g: GlobalOptions, o: AttackOpts): Promise<void> {
  // validate every name before any slow work
  assertDatasetName(o.dataset);
  const budgetSpecs = o.budget.split(',').map((b) => parseBudget(b));
  o.defense.forEach(parseDefense);
  if (o.attack) parseAttack(o.attack);
  if (o.victim) parseModelSpec(o.victim);
  if (o.target) assertTargetUrl(o.target);
  const b = await startBackend(g);
  const ds = await loadDataset(o.dataset, { dataDir: g.dataDir, progress: !g.quiet });
  for (const n of ds.notes) process.stderr.write(chalk.yellow(`note: ${n}\n`));
  // the remote server must be a victim of this dataset (input shape, classes) and speak the
  // protocol: checked once here, before anything is trained or queried
  if (o.target) await HttpPredictionApi.connect(o.target, { key: o.key, expect: { inputShape: ds.inputShape, numClasses: ds.numClasses, name: ds.name } });
  const victim = o.victim ?? defaultVictim(ds);
  const kind = parseModelSpec(victim).kind;
  // the first of a sweep's defaults for this family: Knockoff for CNNs, equation solving for the rest
  const attackName = o.attack ?? defaultAttacks(kind)[0];
  const budgets = [...new Set(budgetSpecs.map((s) => resolveBudget(s, ds, parseModelSpec(victim))))].sort((a, b) => a - b);
  // the attacker's data before anything is trained; the pool variant is part of the cell's id
  const plan = await checkPlanData([{ dataset: o.dataset, victim, attack: attackName, defenses: o.defense }], { dataDir: g.dataDir, progress: !g.quiet });
  for (const n of plan.notes) process.stderr.write(chalk.yellow(`note: ${n}\n`));
  const base = { dataset: o.dataset, victim, defenses: o.defense, attack: attackName, seed: o.seed, pool: plan.cells[0].pool, runId: o.out ? path.basename(o.out) : 'adhoc', data: { dataDir: g.dataDir }, ...(o.target ? { target: { url: o.target, key: o.key } } : {}) };
  let todo = budgets;
  let csv: ResultsCsv | undefined;
  if (o.out) {
    csv = new ResultsCsv(path.join(o.out, 'results.csv'));
    const have = csv;
    todo = budgets.filter((budget) => !have.has(cellId(cellSpecOf({ ...base, budget }))));
    if (todo.length === 0) {
      process.stderr.write(`${budgets.length === 1 ? 'this cell is' : 'every budget is'} already in ${csv.file}; nothing to do\n`);
      csv.close();
      return;
    }
  }
  const input = { ...base, budget: todo[todo.length - 1], budgets: todo, onProgress: o.progressJson ? jsonProgress() : progressReporter(g) };
  const { rows, notes } = await runCell(input);
  input.onProgress('done');
  for (const n of notes) process.stderr.write(chalk.dim(`note: ${n}\n`));
  if (csv && o.out) {
    if (!existsSync(path.join(o.out, 'manifest.json'))) writeManifest(o.out, makeManifest(path.basename(o.out), b, { command: 'attack', ...base, budgets: todo }, { [ds.name]: { variant: ds.variant, notes: ds.notes }, ...plan.datasets }));
    for (const row of rows) csv.write(row);
    csv.close();
  }
  if (o.json) {
    for (const row of rows) process.stdout.write(JSON.stringify(row) + '\n');
    return;
  }
  const fmt = (v: string | number) => (typeof v === 'number' ? (Number.isInteger(v) ? String(v) : v.toPrecision(4)) : v);
  const keys = ['dataset', 'victim', 'victim_acc', 'defense', 'attack', 'budget', 'queries', 'surrogate_acc', 'agreement_test', 'agreement_unif', 'param_error', 'defended_acc', 'defended_agreement', 'perturbation_l1', 'honest_slowdown', 'attacker_cpu_s', 'pow_s', 'wall_s', 'backend', 'status'] as const;
  process.stdout.write(table(keys.map((k) => [k, ...rows.map((row) => fmt(row[k]))])) + '\n');
  if (csv) process.stderr.write(chalk.dim(`appended ${rows.length} row${rows.length === 1 ? '' : 's'} to ${csv.file}\n`));
}

function assertTargetUrl(target: string): void {
  let u: URL;
  try {
    u = new URL(target);
  } catch {
    throw new UsageError(`--target must be a URL like http://127.0.0.1:8080, got '${target}'`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new UsageError(`--target must be an http:// or https:// URL, got '${target}'`);
}

/** Progress as JSON lines on stderr, at most every 200 ms: {"progress": {phase, done, total, label}}. */
function jsonProgress(): (phase: string, p?: AttackProgress) => void {
  let last = 0;
  return (phase, p) => {
    const now = performance.now();
    if (p && now - last < 200 && p.done < p.total) return;
    last = now;
    process.stderr.write(JSON.stringify({ progress: p ?? { phase, done: 0, total: 0 } }) + '\n');
  };
}

/** One bar for the attack's queries, then one for the surrogate's training (examples, with the epoch in the label). */
function progressReporter(g: GlobalOptions): (phase: string, p?: AttackProgress) => void {
  let current: { phase: string; bar: ReturnType<typeof progressBar> } | undefined;
  return (phase, p) => {
    const key = p ? p.phase : phase;
    if (current && current.phase !== key) {
      current.bar.stop();
      current = undefined;
    }
    if (!p) return;
    if (!current) current = { phase: key, bar: progressBar(g, p.phase === 'query' ? 'queries ' : 'training') };
    current.bar.update(p.done, p.total, p.label);
  };
}
