/** `mse attack`: run one attack against one (defended) victim and print, or append, its result row. */
import chalk from 'chalk';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { parseAttack } from '../attacks/registry.js';
import { parseBudget, resolveBudget } from '../bench/budget.js';
import { runCell, cellSpecOf } from '../bench/cell.js';
import { ResultsCsv } from '../bench/csv-writer.js';
import { makeManifest, writeManifest } from '../bench/manifest.js';
import { cellId } from '../bench/result-row.js';
import { assertDatasetName, loadDataset } from '../data/index.js';
import { parseDefense } from '../defenses/registry.js';
import { parseModelSpec } from '../models/zoo.js';
import { startBackend, table } from './common.js';
import type { GlobalOptions } from './index.js';

interface AttackOpts {
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
  const budgetSpec = parseBudget(o.budget);
  o.defense.forEach(parseDefense);
  if (o.attack) parseAttack(o.attack);
  if (o.victim) parseModelSpec(o.victim);
  const b = await startBackend(g);
  const ds = await loadDataset(o.dataset, { dataDir: g.dataDir, progress: !g.quiet });
  for (const n of ds.notes) process.stderr.write(chalk.yellow(`note: ${n}\n`));
  const victim = o.victim ?? (ds.kind === 'image' ? 'cnn' : ds.numClasses === 2 ? 'logistic' : 'softmax');
  const kind = parseModelSpec(victim).kind;
  const attackName = o.attack ?? ({ logistic: 'eq-lr', softmax: 'eq-softmax', ovr: 'eq-ovr', mlp: 'eq-mlp', tree: 'tree-path', cnn: 'retrain-uniform' } as const)[kind];
  const budget = resolveBudget(budgetSpec, ds, parseModelSpec(victim));
  const input = { dataset: o.dataset, victim, defenses: o.defense, attack: attackName, budget, seed: o.seed, runId: o.out ? path.basename(o.out) : 'adhoc', data: { dataDir: g.dataDir } };
  let csv: ResultsCsv | undefined;
  if (o.out) {
    csv = new ResultsCsv(path.join(o.out, 'results.csv'));
    const id = cellId(cellSpecOf(input));
    if (csv.has(id)) {
      process.stderr.write(`cell ${id} is already in ${csv.file}; nothing to do\n`);
      csv.close();
      return;
    }
  }
  const { row, notes } = await runCell(input);
  for (const n of notes) process.stderr.write(chalk.dim(`note: ${n}\n`));
  if (csv && o.out) {
    if (!existsSync(path.join(o.out, 'manifest.json'))) writeManifest(o.out, makeManifest(path.basename(o.out), b, { command: 'attack', ...input }, { [ds.name]: { variant: ds.variant, notes: ds.notes } }));
    csv.write(row);
    csv.close();
  }
  if (o.json) {
    process.stdout.write(JSON.stringify(row) + '\n');
    return;
  }
  const fmt = (v: string | number) => (typeof v === 'number' ? (Number.isInteger(v) ? String(v) : v.toPrecision(4)) : v);
  const keys = ['dataset', 'victim', 'victim_acc', 'defense', 'attack', 'budget', 'queries', 'surrogate_acc', 'agreement_test', 'agreement_unif', 'param_error', 'defended_acc', 'attacker_cpu_s', 'wall_s', 'backend', 'status'] as const;
  process.stdout.write(table(keys.map((k) => [k, fmt(row[k])])) + '\n');
  if (csv) process.stderr.write(chalk.dim(`appended to ${csv.file}\n`));
}
