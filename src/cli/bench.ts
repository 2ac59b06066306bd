/**
 * `mse bench`: sweep a grid of (dataset × victim × defense × attack × seed) cells, each with its
 * budgets, into <out>/results.csv (resumable: finished cells are skipped, rows are appended whole),
 * then print a summary over seeds (mean ± 95% CI). With --jobs N > 1 cells run in N single-threaded
 * worker processes (`mse run-cell`, reading its plan cell as JSON; V8's single-threaded GC); the parent
 * alone writes the CSV.
 */
import { attackLabel, defenseLabel } from '../report/report.js';
import { strongestSet } from '../report/strongest.js';
import { assertDirOrAbsent, ensureDir } from '../fs-util.js';
import chalk from 'chalk';
import { spawn, type ChildProcess } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { MultiBar, Presets } from 'cli-progress';
import { runCell } from '../runner/run-cell.js';
import { ResultsCsv, readResults } from '../runner/csv-writer.js';
import { githubWorkflow, slurmScripts, validateEmitOptions } from '../runner/emit.js';
import { parseShard, resultsFileName, shardOf } from '../runner/shard.js';
import { existsSync, writeFileSync } from 'node:fs';
import { readGridSpec, type GridSpec } from '../runner/grid.js';
import { cellLabel, planSweep, refText, remaining, shardKey, validateGridSpec, type PlanCell } from '../runner/plan.js';
import { checkPluginVersions, makeManifest, writeManifest } from '../runner/manifest.js';
import type { ResultRow } from '../runner/result-row.js';
import { phaseSummary } from '../runner/phases.js';
import { estimatePlan, formatDuration, pastCells } from '../runner/estimate.js';
import { SweepStatus, statusInterval } from './sweep-status.js';
import { formatStat, summarise } from '../runner/summary.js';
import { describeCellError, runSweep, workerError, type CellOutcome } from '../runner/sweep.js';
import { loadDataset } from '../data/registry.js';
import { MseError, UsageError } from '../errors.js';
import { getVictim } from '../models/victim.js';
import { formatModelSpec } from '../models/zoo.js';
import { loadedPlugins, loadPlugins } from '../units/plugins.js';
import { startBackend, table, useBars } from './common.js';
import type { GlobalOptions } from './options.js';
import type { AttackProgress } from '../attacks/types.js';

export interface BenchOpts {
  dataset: string[];
  victim: string[];
  defense: string[];
  attack: string[];
  budget?: string;
  seeds?: number;
  spec?: string;
  jobs?: number;
  out?: string;
  quick?: boolean;
  /** transferability on this many test images (image cells) */
  transfer?: number;
  baseline: boolean;
  json?: boolean;
  /** print the plan and its estimated wall time, run nothing */
  plan?: boolean;
  /** run only shard i of n (i/n) into <out>/shard-<i>-of-<n>.csv */
  shard?: string;
  /** write job files instead of running: slurm (sbatch array + merge) or github (matrix workflow) */
  emit?: string;
  shards: number;
  slurmTime?: string;
  slurmCpus?: number;
  slurmMem?: string;
  slurmPartition?: string;
}

/**
 * A plugin's path as a job file names it: absolute for Slurm (its jobs share this file system and
 * start in this directory), relative to this directory for GitHub, whose runner checks the
 * repository out afresh — so a plugin outside it cannot be run there.
 */
function pluginArg(p: string, emit: string): string {
  if (emit !== 'github') return p;
  const rel = path.relative(process.cwd(), p);
  if (rel.startsWith('..') || path.isAbsolute(rel))
    throw new UsageError(
      `plugin ${p} is outside this directory: a GitHub runner checks out the repository and cannot find it`,
      'put the plugin in the repository and run --emit github from its root',
    );
  return rel;
}

/** The bench arguments that define the grid, to repeat in emitted job files (plugins by absolute path). */
function gridArgs(o: BenchOpts, emit: string): string[] {
  return [
    ...loadedPlugins().flatMap((p) => ['--plugin', pluginArg(p.path, emit)]),
    ...o.dataset.flatMap((d) => ['-d', d]),
    ...o.victim.flatMap((v) => ['-v', v]),
    ...o.defense.flatMap((d) => ['--defense', d]),
    ...o.attack.flatMap((a) => ['-a', a]),
    ...(o.budget ? ['-b', o.budget] : []),
    ...(o.seeds ? ['--seeds', String(o.seeds)] : []),
    ...(o.spec ? ['--spec', o.spec] : []),
    ...(o.quick ? ['--quick'] : []),
    ...(o.transfer ? ['--transfer', String(o.transfer)] : []),
    ...(o.baseline ? [] : ['--no-baseline']),
  ];
}

const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'mse.js');
const SUMMARY_METRICS = [
  'surrogate_acc',
  'agreement_test',
  'defended_acc',
  'perturbation_l1',
  'queries',
  'attacker_cpu_s',
  'pow_s',
];

export async function bench(g: GlobalOptions, o: BenchOpts): Promise<void> {
  const fromFile = o.spec ? readGridSpec(o.spec) : {};
  const grid: GridSpec = {
    datasets: o.dataset.length ? o.dataset : (fromFile.datasets ?? []),
    victims: o.victim.length ? o.victim : fromFile.victims,
    defenses: o.defense.length ? o.defense : fromFile.defenses,
    attacks: o.attack.length ? o.attack : fromFile.attacks,
    budgets: o.budget ? o.budget.split(',') : fromFile.budgets,
    seeds: o.seeds ? Array.from({ length: o.seeds }, (_, i) => i + 1) : (fromFile.seeds ?? (o.quick ? [1] : [1, 2, 3])),
    baseline: o.baseline && fromFile.baseline !== false,
  };
  // a spec's plugins (relative to the spec file), before its names are checked
  if (fromFile.plugins?.length) await loadPlugins(fromFile.plugins);
  if (o.emit !== undefined && o.emit !== 'slurm' && o.emit !== 'github')
    throw new UsageError(`--emit must be slurm or github, got '${o.emit}'`);
  if (o.plan && o.emit)
    throw new UsageError('--plan shows what would run here; --emit writes job files: give one or the other');
  const shard = o.shard ? parseShard(o.shard) : undefined;
  const jobs = o.jobs ?? os.availableParallelism();
  if (!(jobs >= 1)) throw new UsageError('--jobs must be at least 1');
  const data = { dataDir: g.dataDir };
  if (o.out !== undefined && o.out.trim() === '')
    throw new UsageError('--out must not be empty', 'name a directory, e.g. -o results/my-run');
  validateGridSpec(grid);
  const out = o.out ?? path.join('results', `bench-${new Date().toISOString().slice(0, 19).replace(/[:T]/g, '-')}`);
  if (o.emit) {
    const e = {
      args: gridArgs(o, o.emit),
      shards: o.shards,
      out,
      cwd: process.cwd(),
      time: o.slurmTime,
      cpus: o.slurmCpus,
      mem: o.slurmMem,
      partition: o.slurmPartition,
    };
    validateEmitOptions(e, o.emit); // before anything is written
    ensureDir(out);
    const written: string[] = [];
    if (o.emit === 'slurm') {
      const sc = slurmScripts(e);
      for (const [name, text] of [
        ['sbatch-array.sh', sc.array],
        ['sbatch-merge.sh', sc.merge],
        ['submit.sh', sc.submit],
      ] as const) {
        writeFileSync(path.join(out, name), text, { mode: 0o755 });
        written.push(path.join(out, name));
      }
    } else {
      writeFileSync(path.join(out, 'mse-bench.yml'), githubWorkflow(e));
      written.push(path.join(out, 'mse-bench.yml'));
    }
    process.stdout.write(`${written.join('\n')}\n`);
    process.stderr.write(
      chalk.dim(
        o.emit === 'slurm'
          ? `submit with: bash ${path.join(out, 'submit.sh')}\n`
          : `copy ${written[0]} into .github/workflows/ and run it from the Actions tab\n`,
      ),
    );
    return;
  }
  if (o.plan) return printPlan(g, o, grid, out, shard, jobs);
  const b = await startBackend(g, !o.json);
  const runId = path.basename(out);
  // flags, spec and family defaults resolved once into plan cells, every dataset checked before anything trains
  const plan = await planSweep(grid, {
    quick: o.quick === true,
    ...(o.transfer ? { transfer: o.transfer } : {}),
    data: { ...data, progress: !g.quiet && !o.json },
  });
  for (const n of plan.data.notes) process.stderr.write(chalk.yellow(`mse: note: ${n}\n`));
  // shards are cut on keys without pools, so every machine agrees on them
  const cells = shard ? shardOf(plan.cells, shardKey, shard) : plan.cells;
  checkPluginVersions(out, plan.plugins);
  const csv = new ResultsCsv(path.join(out, resultsFileName(shard)));
  try {
    writeManifest(
      out,
      makeManifest(
        runId,
        b,
        { command: 'bench', grid, quick: o.quick === true, jobs, ...(shard ? { shards: shard.count } : {}) },
        plan.data.datasets,
        plan.plugins,
      ),
    );
  } catch (e) {
    csv.close();
    throw e;
  }
  const todo = remaining(cells, (id) => csv.has(id));
  const total = cells.length;
  let done = total - todo.length;
  const label = (c: PlanCell) => cellLabel(c);
  // bars have 40 columns: what tells running cells apart first
  const barLabel = (c: PlanCell, phase = '') =>
    `${c.defenses.map(refText).join('+')} s${c.seed} ${refText(c.attack)} ${phase}`.slice(0, 40).padEnd(40);
  const workers = Math.min(jobs, Math.max(1, todo.length));
  // an estimate only informs: whatever goes wrong reading past runs, the sweep runs without one
  let estimate = estimatePlan(todo, [], workers);
  try {
    if (todo.length) estimate = estimatePlan(todo, pastCells(out, csv.file), workers);
  } catch {
    // no history, then: the bench:perf defaults
  }
  const estimateOf = new Map(estimate.cells.map((e) => [e.cell, e.seconds]));
  if (!o.json)
    process.stderr.write(
      chalk.dim(
        `${total} cells (${cells.reduce((a, c) => a + c.budgets.length, 0)} rows), ${done} already in ${csv.file}; ${todo.length ? `${workers} worker${workers > 1 ? 's' : ''}, estimated ${formatDuration(estimate.wallS)} (mse bench --plan shows how)` : 'nothing to run'}\n`,
      ),
    );

  const bars =
    useBars(g) && !o.json
      ? new MultiBar(
          {
            format: '{label} [{bar}] {value}/{total} | eta {eta_formatted}',
            stream: process.stderr,
            hideCursor: true,
            clearOnComplete: true,
          },
          Presets.shades_classic,
        )
      : undefined;
  const gridBar = bars?.create(total, done, { label: 'cells'.padEnd(40) });
  const failures: string[] = [];
  const t0 = performance.now();
  type Task = (typeof todo)[number];
  // without bars (stderr piped, or --json): a status line (or JSON event) at least every 30 s
  const status = new SweepStatus<Task>(total, done, (c) => estimateOf.get(c) ?? 0, label, workers, new Set(todo));
  const heartbeat = bars
    ? undefined
    : setInterval(
        () => process.stderr.write(o.json ? JSON.stringify(status.event()) + '\n' : chalk.dim(status.line()) + '\n'),
        statusInterval() * 1000,
      );
  heartbeat?.unref();
  // recording is the only step that may stop the sweep (a full disk): a cell's own failure is an outcome
  const finish = (c: Task, { rows, error }: CellOutcome) => {
    if (rows) for (const row of rows) csv.write(row);
    done++;
    status.finish(c, !error && !!rows?.every((r) => String(r.status).startsWith('ok')));
    if (error) failures.push(`${label(c)}: ${error}`);
    gridBar?.update(done);
    if (o.json)
      process.stderr.write(
        JSON.stringify({
          event: 'cell',
          cell: label(c),
          status: error ? 'failed' : 'done',
          ...(error ? { error } : {}),
          cells_done: done,
          cells_total: total,
          elapsed_s: Math.round((performance.now() - t0) / 1000),
        }) + '\n',
      );
    else if (!bars)
      process.stderr.write(
        `${error ? chalk.red('FAIL') : chalk.green('done')} [${done}/${total}] ${label(c)} (${((performance.now() - t0) / 1000).toFixed(0)} s)${error ? `: ${error}` : ''}\n`,
      );
    // a plugin edited under a running sweep fails every cell still to come the same way: stop at the first
    if (error && /^plugin .* changed (since the plan was made|while it was being loaded)/.test(error))
      throw new UsageError(error);
  };
  const children = new Set<ChildProcess>();
  const stopChildren = () => {
    for (const ch of children) ch.kill('SIGTERM');
  };
  // Ctrl-C / kill: stop the workers, release the results file, say how to resume. (A SIGKILLed
  // parent cannot do this: its workers notice the closed IPC channel and stop by themselves.)
  const onSignal = (sig: NodeJS.Signals) => {
    stopChildren();
    bars?.stop();
    csv.close();
    process.stderr.write(
      `${sig}: stopped with ${done} of ${total} cells in ${csv.file}; re-run the same command to resume\n`,
    );
    process.exit(128 + (sig === 'SIGINT' ? 2 : sig === 'SIGHUP' ? 1 : 15));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  process.once('SIGHUP', onSignal); // the terminal closed
  try {
    if (jobs === 1 || todo.length <= 1) {
      await runSweep(
        todo,
        1,
        async (cell) => {
          const bar = bars?.create(1, 0, { label: barLabel(cell) });
          status.start(cell);
          try {
            const { rows } = await runCell(cell, {
              runId,
              data,
              onProgress: (phase, p) => {
                status.progress(cell, phase, p);
                if (!p || !bar) return;
                bar.setTotal(p.total);
                bar.update(p.done);
              },
            });
            return { rows };
          } catch (e) {
            const error = describeCellError(e);
            if (error.startsWith('internal error') && e instanceof Error && e.stack)
              process.stderr.write(chalk.dim(`${label(cell)}: ${e.stack}\n`));
            return { error };
          } finally {
            bar && bars?.remove(bar);
          }
        },
        finish,
      );
    } else {
      // victims once, here, so workers only read the cache
      const victims = new Map(todo.map((c) => [JSON.stringify([c.dataset, formatModelSpec(c.victim), c.seed]), c]));
      for (const c of victims.values()) {
        const v = await getVictim(await loadDataset(c.dataset, data), c.victim, c.seed);
        if (v.cacheNote) process.stderr.write(chalk.yellow(`note: ${v.cacheNote}\n`));
        v.model.dispose();
      }
      await runSweep(
        todo,
        jobs,
        async (cell) => {
          const bar = bars?.create(1, 0, { label: barLabel(cell) });
          status.start(cell);
          try {
            return await runWorker(g, cell, runId, children, (p) => {
              status.progress(cell, p.phase, p.total ? p : undefined);
              if (!bar || !p.total) return;
              bar.setTotal(p.total);
              bar.update(p.done, { label: barLabel(cell, p.phase) });
            });
          } finally {
            if (bar) bars?.remove(bar);
          }
        },
        finish,
        stopChildren,
      );
    }
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    process.removeListener('SIGHUP', onSignal);
    stopChildren();
    bars?.stop();
    if (heartbeat) clearInterval(heartbeat);
    csv.close();
  }

  // the summary covers this grid's cells only (the CSV may hold other runs' rows)
  const wanted = new Set(cells.flatMap((c) => c.ids));
  const rows = readResults(csv.file).filter((r) => wanted.has(r.cell_id));
  const groups = summarise(rows, SUMMARY_METRICS);
  if (o.json) {
    process.stdout.write(
      JSON.stringify({ out, backend: b.label, cells: total, failures, summary: groups, phases: phaseSummary(rows) }) +
        '\n',
    );
  } else {
    const seedsNote =
      grid.seeds.length >= 2
        ? `mean ± 95% CI over ${grid.seeds.length} seeds`
        : 'one seed (use --seeds 3 for confidence intervals)';
    const head = [
      'dataset',
      'victim',
      'defense',
      'attack',
      'budget',
      'attacker acc',
      'agreement',
      'defended acc',
      'L1',
      'PoW s',
      'status',
      'worst case',
    ].map((h) => chalk.bold(h));
    // security is the worst case: mark the strongest attacker per defense and budget, and a defense
    // only one attack was measured against (its figure is a lower bound)
    const worst = strongestSet(groups, attackLabel);
    const lines = groups.map((gr) => [
      gr.key.dataset,
      gr.key.victim,
      // as a person would type them: two variants of one attack stay apart, defaults stay out
      defenseLabel(gr),
      attackLabel(gr),
      gr.key.budget,
      chalk.cyan(formatStat(gr.metrics.surrogate_acc)),
      formatStat(gr.metrics.agreement_test),
      formatStat(gr.metrics.defended_acc),
      formatStat(gr.metrics.perturbation_l1),
      formatStat(gr.metrics.pow_s, 2),
      gr.statuses.join(', '),
      worst.get(gr) === 'strongest'
        ? chalk.yellow('◀ strongest')
        : worst.get(gr) === 'single' && gr.key.defense !== 'none'
          ? chalk.dim('single attacker')
          : '',
    ]);
    const phases = phaseSummary(rows);
    process.stdout.write(
      `${table([head, ...lines])}\n${chalk.dim(`${seedsNote}; backend ${b.label}; rows in ${csv.file}`)}\n${phases ? `${chalk.dim(phases)}\n` : ''}`,
    );
  }
  if (failures.length) {
    for (const f of failures) process.stderr.write(chalk.red(`failed: ${f}\n`));
    process.exitCode = 1;
  }
}

/**
 * One plan cell in a fresh single-threaded process (`mse run-cell`, which reads the cell as JSON on
 * stdin and runs it through the same runCell); its rows come back as JSON lines.
 */
function runWorker(
  g: GlobalOptions,
  c: PlanCell,
  runId: string,
  children: Set<ChildProcess>,
  onProgress: (p: AttackProgress) => void,
): Promise<CellOutcome> {
  const args = [
    '--single-threaded-gc',
    BIN,
    '--threads',
    '1',
    '-q',
    '--backend',
    g.backend,
    ...(g.dataDir ? ['--data-dir', g.dataDir] : []),
    'run-cell',
  ];
  return new Promise((resolve) => {
    // the IPC channel ties the worker's life to ours: it exits when the channel closes (cli/index.ts)
    const child = spawn(process.execPath, args, {
      stdio: ['pipe', 'pipe', 'pipe', 'ipc'],
      env: { ...process.env, NO_COLOR: '1' },
    });
    children.add(child);
    child.stdin?.on('error', () => undefined); // a worker that dies at once reports through its exit code
    child.stdin?.end(JSON.stringify({ cell: c, runId }));
    let stdout = '';
    let stderr = '';
    let partial = '';
    child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr?.on('data', (d: Buffer) => {
      const lines = (partial + d.toString()).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        if (line.startsWith('{"progress"')) {
          try {
            onProgress((JSON.parse(line) as { progress: AttackProgress }).progress);
            continue;
          } catch {
            // not ours after all: keep it as text
          }
        }
        stderr += line + '\n';
      }
    });
    child.on('error', (e) => {
      children.delete(child);
      resolve({ error: `could not start a worker: ${e.message}` });
    });
    child.on('close', (code, signal) => {
      children.delete(child);
      if (code !== 0) return resolve({ error: workerError(stderr + partial, code, signal) });
      try {
        const rows = stdout
          .trim()
          .split('\n')
          .filter(Boolean)
          .map((l) => ({ ...(JSON.parse(l) as ResultRow), run_id: runId }));
        resolve({ rows });
      } catch {
        resolve({ error: 'worker printed something other than result rows' });
      }
    });
  });
}

/**
 * `mse bench --plan`: the grid resolved into cells (every name, value and dataset checked, nothing
 * trained, no backend started), what `--out` already holds, and the estimated wall time from the
 * cost model in estimate.ts, calibrated by past result CSVs here.
 */
async function printPlan(
  g: GlobalOptions,
  o: BenchOpts,
  grid: GridSpec,
  out: string,
  shard: ReturnType<typeof parseShard> | undefined,
  jobs: number,
): Promise<void> {
  assertDirOrAbsent(out); // where the run would fail, the plan does too
  const plan = await planSweep(grid, {
    quick: o.quick === true,
    ...(o.transfer ? { transfer: o.transfer } : {}),
    data: { dataDir: g.dataDir, progress: false, plan: true },
  });
  for (const n of plan.data.notes) process.stderr.write(chalk.yellow(`mse: note: ${n}\n`));
  const cells = shard ? shardOf(plan.cells, shardKey, shard) : plan.cells;
  const file = path.join(out, resultsFileName(shard));
  const have = new Set(existsSync(file) ? readResults(file).map((r) => r.cell_id) : []);
  const todo = remaining(cells, (id) => have.has(id));
  const rows = cells.reduce((a, c) => a + c.budgets.length, 0);
  const rowsTodo = todo.reduce((a, c) => a + c.budgets.length, 0);
  const samples = pastCells(out, file);
  const workers = Math.min(jobs, Math.max(1, todo.length));
  const est = estimatePlan(todo, samples, workers);
  if (o.json) {
    process.stdout.write(
      JSON.stringify({
        out,
        cells: cells.length,
        rows,
        done_rows: rows - rowsTodo,
        todo: est.cells.map((e) => ({
          cell: cellLabel(e.cell),
          budgets: e.cell.budgets,
          estimate_s: Math.round(e.seconds),
          basis: e.basis,
        })),
        workers,
        estimate_wall_s: Math.round(est.wallS),
        estimate_cpu_s: Math.round(est.cpuS),
        history_cells: est.samples,
      }) + '\n',
    );
    return;
  }
  const head = ['cell', 'budgets to run', 'estimate', 'from'].map((h) => chalk.bold(h));
  const lines = est.cells.map((e) => [cellLabel(e.cell), e.cell.budgets.join(','), formatDuration(e.seconds), e.basis]);
  process.stdout.write(
    `${lines.length ? table([head, ...lines]) + '\n' : ''}` +
      `${cells.length} cells (${rows} rows) in ${file}: ${rows - rowsTodo} rows already there, ${rowsTodo} to run.\n` +
      (todo.length
        ? `Estimated wall time: ${formatDuration(est.wallS)} on ${workers} worker${workers > 1 ? 's' : ''} (${formatDuration(est.cpuS)} of cell time; ${est.samples ? `calibrated by ${est.samples} past cells in result CSVs here` : 'no past cells here: bench:perf defaults, a rough guide'}).\n` +
          chalk.dim('Victims not yet in the cache are trained first (not counted). Nothing was run.\n')
        : 'Nothing to run.\n'),
  );
}
