/** `mse attack`: run one attack against one (defended) victim and print, or append, its result row. */
import chalk from 'chalk';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { HttpPredictionApi } from '../api/http-api.js';
import { runCell } from '../runner/run-cell.js';
import { ResultsCsv, readResults } from '../runner/csv-writer.js';
import { checkPluginVersions, makeManifest, recordPlugins, writeManifest } from '../runner/manifest.js';
import { canonicalValues } from '../models/normalize.js';
import {
  cellLabel,
  makePlan,
  remaining,
  validateRequests,
  withBudgets,
  type CellRequest,
  type Target,
} from '../runner/plan.js';
import { estimatePlan, formatDuration, pastCells } from '../runner/estimate.js';
import { loadDataset } from '../data/index.js';
import { UsageError, unknownChoice } from '../errors.js';
import { assertDirOrAbsent } from '../fs-util.js';
import { PROTOCOLS, type Protocol } from '../api/model-server-api.js';
import { parseSpec } from '../params.js';
import { jsonProgress, progressBar, startBackend, table } from './common.js';
import type { AttackProgress } from '../attacks/types.js';
import type { GlobalOptions } from './options.js';

interface AttackOpts {
  target?: string;
  key?: string;
  protocol?: string;
  targetLayout?: string;
  targetOutput?: string;
  timeout?: number;
  concurrency?: number;
  targetMean?: string;
  targetStd?: string;
  targetOutputName?: string;
  /** transferability on this many test images (image cells) */
  transfer?: number;
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
  /** print the cell and its estimated time, run nothing */
  plan?: boolean;
}

export async function attack(g: GlobalOptions, o: AttackOpts): Promise<void> {
  // one cell, asked for in spec strings: the defenses are one stack, in order
  const request: CellRequest = {
    dataset: o.dataset,
    // a model server with no local copy named: the victim is the served model, measured through it
    victim: o.victim ?? (o.target && o.protocol && o.protocol !== 'mse' ? 'served' : undefined),
    defenses: o.defense,
    attack: o.attack,
    budgets: o.budget.split(','),
    seed: o.seed,
  };
  // validate every name before any slow work
  const stacked = o.defense.find((d) => d.includes('+'));
  if (stacked)
    throw new UsageError(
      `--defense ${stacked}: mse attack takes one defense per --defense`,
      'repeat --defense to stack them, in order',
    );
  validateRequests([request]);
  if (o.target) assertTargetUrl(o.target);
  const protocol = o.protocol ?? 'mse';
  if (!(PROTOCOLS as readonly string[]).includes(protocol)) throw unknownChoice('protocol', protocol, PROTOCOLS);
  if (
    !o.target &&
    (o.protocol ||
      o.targetLayout ||
      o.targetOutput ||
      o.timeout !== undefined ||
      o.concurrency !== undefined ||
      o.targetMean !== undefined ||
      o.targetStd !== undefined ||
      o.targetOutputName !== undefined)
  )
    throw new UsageError(
      '--protocol, --target-layout, --target-output, --target-output-name, --target-mean/--target-std, --timeout and --concurrency describe a --target; give one',
    );
  const layouts = ['nhwc', 'nchw', 'flat'];
  const outputs = ['auto', 'probs', 'logits', 'labels'];
  if (o.targetLayout && !layouts.includes(o.targetLayout))
    throw unknownChoice('--target-layout', o.targetLayout, layouts);
  if (o.targetOutput && !outputs.includes(o.targetOutput))
    throw unknownChoice('--target-output', o.targetOutput, outputs);
  if (protocol === 'mse' && (o.targetLayout || o.targetOutput || o.targetOutputName))
    throw new UsageError(
      '--target-layout and --target-output are for model servers (--protocol tf-serving or kserve-v2); mse serve says what it takes',
    );
  if (protocol === 'mse' && o.concurrency !== undefined)
    throw new UsageError('--concurrency is for model servers (--protocol tf-serving or kserve-v2)');
  if (protocol === 'mse' && (o.targetMean !== undefined || o.targetStd !== undefined))
    throw new UsageError(
      '--target-mean and --target-std are for model servers (--protocol tf-serving or kserve-v2); mse serve takes the data as it is',
    );
  const targetOpts = o.target
    ? {
        target: {
          url: o.target,
          key: o.key,
          ...(protocol !== 'mse'
            ? {
                protocol: protocol as Protocol,
                layout: (o.targetLayout ?? 'nhwc') as 'nhwc' | 'nchw' | 'flat',
                output: (o.targetOutput ?? 'auto') as 'auto' | 'probs' | 'logits' | 'labels',
                ...(o.timeout !== undefined ? { timeoutS: o.timeout } : {}),
                ...(o.concurrency !== undefined ? { concurrency: o.concurrency } : {}),
                ...(o.targetOutputName !== undefined ? { outputName: o.targetOutputName } : {}),
                ...(o.targetMean !== undefined ? { mean: canonicalValues('--target-mean', 'mean', o.targetMean) } : {}),
                ...(o.targetStd !== undefined ? { std: canonicalValues('--target-std', 'std', o.targetStd) } : {}),
              }
            : {}),
        },
      }
    : {};
  const data = { dataDir: g.dataDir };
  if (o.plan) return printAttackPlan(request, o, data, targetOpts);
  const b = await startBackend(g);
  const ds = await loadDataset(o.dataset, { ...data, progress: !g.quiet });
  // the remote server must be a victim of this dataset (input shape, classes) and speak the
  // protocol: checked once here, before anything is trained or queried
  if (o.target && protocol === 'mse') {
    const remote = await HttpPredictionApi.connect(o.target, {
      key: o.key,
      expect: { inputShape: ds.inputShape, numClasses: ds.numClasses, name: ds.name },
    });
    // the row records the defenses and measures their cost to honest users locally: they must be the server's
    const served = remote.info.defenses.filter((n) => n !== 'none');
    const named = o.defense.map((d) => parseSpec(d).name).filter((n) => n !== 'none');
    if (served.join('+') !== named.join('+'))
      throw new UsageError(
        `the server at ${o.target} runs [${served.join(', ') || 'no defense'}] but --defense names [${named.join(', ') || 'none'}]`,
        "name the server's defenses, in order, with --defense, and give them the parameters the server runs (its /v1/info lists names only)",
      );
  }
  // family defaults filled (the victim family's first attack), the attacker's data checked before
  // anything is trained; the pool variant is part of the cell's id
  const plan = await makePlan([request], {
    data: { ...data, progress: !g.quiet },
    ...(o.transfer ? { transfer: o.transfer } : {}),
    ...targetOpts,
  });
  for (const n of plan.data.notes) process.stderr.write(chalk.yellow(`note: ${n}\n`));
  const cell = plan.cells[0];
  const runId = o.out ? path.basename(o.out) : 'adhoc';
  let todo = cell;
  let csv: ResultsCsv | undefined;
  if (o.out) {
    checkPluginVersions(o.out, plan.plugins);
    csv = new ResultsCsv(path.join(o.out, 'results.csv'));
    const have = csv;
    todo = withBudgets(
      cell,
      cell.budgets.filter((_, i) => !have.has(cell.ids[i])),
    );
    if (todo.budgets.length === 0) {
      process.stderr.write(
        `${cell.budgets.length === 1 ? 'this cell is' : 'every budget is'} already in ${csv.file}; nothing to do\n`,
      );
      csv.close();
      return;
    }
  }
  const onProgress = o.progressJson ? jsonProgress() : progressReporter(g);
  const { rows, notes } = await runCell(todo, { runId, data, onProgress });
  onProgress('done');
  for (const n of notes) process.stderr.write(chalk.dim(`note: ${n}\n`));
  if (csv && o.out) {
    if (!existsSync(path.join(o.out, 'manifest.json')))
      writeManifest(o.out, makeManifest(runId, b, { command: 'attack', cell: todo }, plan.data.datasets, plan.plugins));
    else recordPlugins(o.out, plan.plugins);
    for (const row of rows) csv.write(row);
    csv.close();
  }
  if (o.json) {
    for (const row of rows) process.stdout.write(JSON.stringify(row) + '\n');
    return;
  }
  const fmt = (v: string | number) =>
    typeof v === 'number' ? (Number.isInteger(v) ? String(v) : v.toPrecision(4)) : v;
  const keys = [
    'dataset',
    'victim',
    'victim_acc',
    'defense',
    'attack',
    'budget',
    'queries',
    'surrogate_acc',
    'agreement_test',
    'agreement_unif',
    'param_error',
    'kl_test',
    'l1_test',
    'transfer_fgsm_eps01',
    'transfer_fgsm_eps03',
    'transfer_pgd_eps01',
    'transfer_pgd_eps03',
    'defended_acc',
    'defended_agreement',
    'perturbation_l1',
    'honest_slowdown',
    'detected_at',
    'benign_fpr',
    'watermark_acc',
    'ownership_verified',
    'attacker_cpu_s',
    'pow_s',
    'pow_ratio',
    'wall_s',
    'backend',
    'status',
  ] as const;
  process.stdout.write(table(keys.map((k) => [k, ...rows.map((row) => fmt(row[k]))])) + '\n');
  if (csv)
    process.stderr.write(chalk.dim(`appended ${rows.length} row${rows.length === 1 ? '' : 's'} to ${csv.file}\n`));
}

function assertTargetUrl(target: string): void {
  let u: URL;
  try {
    u = new URL(target);
  } catch {
    throw new UsageError(`--target must be a URL like http://127.0.0.1:8080, got '${target}'`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:')
    throw new UsageError(`--target must be an http:// or https:// URL, got '${target}'`);
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

/**
 * `mse attack --plan`: the cell resolved (every name, value and dataset checked; a --target is not
 * contacted), the budgets --out still lacks and the estimated time (estimate.ts); nothing trained.
 */
async function printAttackPlan(
  request: CellRequest,
  o: AttackOpts,
  data: { dataDir?: string },
  targetOpts: { target?: Target },
): Promise<void> {
  if (o.out) assertDirOrAbsent(o.out); // where the run would fail, the plan does too
  const plan = await makePlan([request], {
    data: { ...data, progress: false, plan: true },
    ...(o.transfer ? { transfer: o.transfer } : {}),
    ...targetOpts,
  });
  for (const n of plan.data.notes) process.stderr.write(chalk.yellow(`note: ${n}\n`));
  const cell = plan.cells[0];
  const file = o.out ? path.join(o.out, 'results.csv') : undefined;
  const have = new Set(file && existsSync(file) ? readResults(file).map((r) => r.cell_id) : []);
  const todo = remaining([cell], (id) => have.has(id));
  const est = estimatePlan(todo, pastCells(o.out, file), 1);
  const toRun = todo[0]?.budgets ?? [];
  const line = {
    cell: cellLabel(cell),
    budgets: cell.budgets,
    to_run: toRun,
    estimate_s: Math.round(est.wallS),
    basis: est.cells[0]?.basis,
  };
  if (o.json) {
    process.stdout.write(JSON.stringify(line) + '\n');
    return;
  }
  process.stdout.write(
    `${line.cell}\nbudgets ${cell.budgets.join(',')}${file ? `; ${cell.budgets.length - toRun.length} already in ${file}` : ''}\n` +
      (toRun.length
        ? `Estimated time: ${formatDuration(est.wallS)} (${line.basis}). Nothing was run.\n`
        : 'Nothing to run.\n'),
  );
}
