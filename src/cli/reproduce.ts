/** `mse reproduce <paper>`: run a paper's spec, write CSV + markdown table, fail if a figure leaves its band. */
import chalk from 'chalk';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { checkPluginVersions, makeManifest, writeManifest } from '../runner/manifest.js';
import { listPapers, loadPaper, paperFile, paperPasses, planPaper, reproduce as run } from '../runner/reproduce.js';
import { estimatePlan, formatDuration, pastCells } from '../runner/estimate.js';
import { readResults } from '../runner/csv-writer.js';
import { remaining } from '../runner/plan.js';
import { slurmScripts, validateEmitOptions } from '../runner/emit.js';
import { isShardFile, parseShard, resultsFileName } from '../runner/shard.js';
import { assertDirOrAbsent, ensureDir } from '../fs-util.js';
import { loadPlugins } from '../units/plugins.js';
import { UsageError } from '../errors.js';
import { validateSeeds } from '../runner/grid.js';
import { startBackend, table } from './common.js';
import type { GlobalOptions } from './options.js';

export interface ReproduceOpts {
  scale: string;
  out?: string;
  all?: boolean;
  shard?: string;
  emit?: string;
  slurmTime?: string;
  slurmCpus?: number;
  slurmMem?: string;
  slurmPartition?: string;
  /** print each paper's query passes and the estimated time, run nothing */
  plan?: boolean;
}

/** A paper's directory name under --out when several run together: its id, or a spec file's name. */
function paperDir(paper: string): string {
  return path.basename(paper).replace(/\.json$/, '');
}

/**
 * `mse reproduce <paper…> | --all`: each paper's figures checked against its bands. Several papers
 * go to <out>/<paper>/. `--shard i/n` runs only the query passes dealt to task i (numbered across
 * all the papers, in order) into shard CSVs and checks nothing; a run without it folds those in
 * first, so after every task it only checks and writes the tables. `--emit slurm` writes that as
 * one Slurm array (a task per query pass) and a dependent job that checks and reports.
 */
export async function reproduce(g: GlobalOptions, papers: string[], o: ReproduceOpts): Promise<void> {
  if (o.all && papers.length) throw new UsageError('give paper names or --all, not both');
  if (o.all) papers = listPapers();
  if (!papers.length)
    throw new UsageError(
      'name a paper (e.g. mse reproduce tramer-2016) or use --all',
      `papers: ${listPapers().join(', ')}`,
    );
  if (new Set(papers.map(paperDir)).size !== papers.length) throw new UsageError('a paper is named twice');
  if (o.emit !== undefined && o.emit !== 'slurm') throw new UsageError(`--emit must be slurm, got '${o.emit}'`);
  if (o.emit && o.shard) throw new UsageError('--emit writes the jobs that run --shard; give one or the other');
  if (o.plan && o.emit)
    throw new UsageError('--plan shows what would run here; --emit writes job files: give one or the other');
  if (o.out !== undefined && o.out.trim() === '') throw new UsageError('--out must not be empty');
  const shard = o.shard ? parseShard(o.shard) : undefined;
  const specs = papers.map((paper) => {
    let spec: ReturnType<typeof loadPaper>;
    try {
      spec = loadPaper(paper); // validates the name before starting the backend
    } catch (e) {
      if (e instanceof SyntaxError) throw new UsageError(`${paper} is not valid JSON: ${e.message}`);
      throw e;
    }
    if (typeof spec !== 'object' || spec === null || typeof spec.scales !== 'object' || spec.scales === null)
      throw new UsageError(
        `${paper} is not a reproduction spec (no "scales" object)`,
        'see bench/papers/*.json for the format',
      );
    if (!Object.hasOwn(spec.scales, o.scale)) {
      // --all runs the papers that have the scale; a paper named by hand must have it
      if (o.all) return undefined;
      throw new UsageError(
        `${paper} has no scale '${o.scale}'`,
        `choose one of: ${Object.keys(spec.scales).join(', ')}`,
      );
    }
    checkScale(paper, o.scale, spec.scales[o.scale]);
    const plugins: unknown = spec.plugins;
    if (plugins !== undefined && (!Array.isArray(plugins) || plugins.some((p) => typeof p !== 'string' || !p.trim())))
      throw new UsageError(`${paper}: plugins must be a list of file names (relative to the spec file)`);
    return { paper, spec };
  });
  const todo = specs.filter((x): x is NonNullable<typeof x> => x !== undefined);
  const single = papers.length === 1 && !o.all;
  const root = o.out ?? path.join('results', single ? `${papers[0]}-${o.scale}` : `reproduce-${o.scale}`);
  const outOf = (paper: string) => (single ? root : path.join(root, paperDir(paper)));
  const data = { dataDir: g.dataDir };
  // the spec's plugins before anything is written: a broken one fails with nothing left behind
  for (const { paper, spec } of todo)
    if (spec.plugins?.length) await loadPlugins(spec.plugins, path.dirname(paperFile(paper)));
  // planning sizes budgets given in unknowns (`1x`) with a model, so it needs the backend too
  const b = await startBackend(g);
  if (o.plan) {
    assertDirOrAbsent(root); // where the run would fail, the plan does too
    return printReproducePlan(todo, o.scale, outOf, { ...data, plan: true }, shard);
  }
  if (o.emit) {
    // one array task per query pass, over every paper; the data is checked here, before any job exists
    let passes = 0;
    for (const { paper } of todo) passes += await paperPasses(paper, o.scale, data);
    const scope = o.all ? ['--all'] : papers;
    const e = {
      args: [],
      shards: passes,
      out: root,
      cwd: process.cwd(),
      time: o.slurmTime,
      cpus: o.slurmCpus,
      mem: o.slurmMem,
      partition: o.slurmPartition,
      command: {
        name: 'reproduce',
        task: ['reproduce', ...scope, '--scale', o.scale, '--out', root],
        // the checks and tables once every pass is in, then each paper's report
        after: [
          ['reproduce', ...scope, '--scale', o.scale, '--out', root],
          ...todo.map(({ paper }) => ['report', outOf(paper)]),
        ],
      },
    };
    validateEmitOptions(e, 'slurm'); // before anything is written
    ensureDir(root);
    const sc = slurmScripts(e);
    const written = (
      [
        ['sbatch-array.sh', sc.array],
        ['sbatch-merge.sh', sc.merge],
        ['submit.sh', sc.submit],
      ] as const
    ).map(([name, text]) => {
      writeFileSync(path.join(root, name), text, { mode: 0o755 });
      return path.join(root, name);
    });
    process.stdout.write(`${written.join('\n')}\n`);
    process.stderr.write(
      chalk.dim(
        `${passes} query passes over ${todo.length} papers; submit with: bash ${path.join(root, 'submit.sh')}\n`,
      ),
    );
    return;
  }
  let offset = 0;
  let failed = 0;
  for (const { paper, spec } of todo) {
    const out = outOf(paper);
    const base = offset;
    const mine = shard
      ? { index: shard.index, count: shard.count, take: (k: number) => (base + k) % shard.count === shard.index }
      : undefined;
    let passes = 0;
    if (!single && !g.quiet && !shard) process.stderr.write(chalk.bold(`${paper} (${o.scale})\n`));
    const res = await run(
      paper,
      o.scale,
      out,
      data,
      (i, n, label) => {
        if (!g.quiet) process.stderr.write(chalk.dim(`[${i}/${n}] ${label}\n`));
      },
      (plan) => {
        passes = plan.cells.length;
        for (const n of plan.data.notes) process.stderr.write(chalk.yellow(`mse: note: ${n}\n`));
        checkPluginVersions(out, plan.plugins);
        writeManifest(
          out,
          makeManifest(
            path.basename(out),
            b,
            { paper, scale: o.scale, spec: spec.scales[o.scale] },
            plan.data.datasets,
            plan.plugins,
          ),
        );
      },
      mine,
    );
    offset += passes;
    if (shard) continue;
    writeFileSync(path.join(out, 'table.md'), res.table);
    process.stdout.write(res.table + '\n');
    const bad = res.checks.filter((c) => !c.ok);
    for (const c of res.checks) {
      const line = `${c.ok ? 'ok  ' : 'FAIL'} ${c.cell}: ${c.metric} = ${Number.isNaN(c.value) ? 'missing' : c.value.toPrecision(4)} (band ${c.band[0]}–${c.band[1]})`;
      process.stdout.write((c.ok ? chalk.green(line) : chalk.red(line)) + '\n');
    }
    process.stdout.write(`${res.checks.length - bad.length} passed, ${bad.length} failed\n`);
    process.stderr.write(chalk.dim(`wrote ${res.csv} and ${path.join(out, 'table.md')}\n`));
    if (bad.length) failed++;
  }
  if (shard)
    process.stderr.write(chalk.dim(`shard ${shard.index}/${shard.count}: done (${offset} query passes in all)\n`));
  else if (!single) process.stdout.write(`${todo.length - failed} of ${todo.length} papers passed every check\n`);
  if (failed) process.exitCode = 1;
}

/** A hand-written spec file is user input: check the shape the runner relies on, one line per problem. */
function checkScale(paper: string, scale: string, sc: unknown): void {
  const where = `${paper} (scale ${scale})`;
  const obj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (!obj(sc)) throw new UsageError(`${where} must be an object with seeds and cells`);
  if (!Array.isArray(sc.seeds) || sc.seeds.some((x) => typeof x !== 'number'))
    throw new UsageError(`${where}: seeds must be a list of integers`);
  validateSeeds(sc.seeds as number[]);
  if (!Array.isArray(sc.cells) || !sc.cells.length) throw new UsageError(`${where}: cells must be a non-empty list`);
  sc.cells.forEach((c: unknown, i: number) => {
    if (!obj(c)) throw new UsageError(`${where}: cell ${i} must be an object`);
    for (const k of ['dataset', 'victim', 'attack', 'budget'])
      if (typeof c[k] !== 'string') throw new UsageError(`${where}: cell ${i} needs a string "${k}"`);
    if (c.defenses !== undefined && (!Array.isArray(c.defenses) || c.defenses.some((d) => typeof d !== 'string')))
      throw new UsageError(`${where}: cell ${i}: defenses must be a list of strings`);
    if (
      !obj(c.expect) ||
      Object.values(c.expect).some((b) => !Array.isArray(b) || b.length !== 2 || b.some((x) => typeof x !== 'number'))
    )
      throw new UsageError(`${where}: cell ${i}: expect must map metrics to [low, high] bands`);
  });
  if (
    sc.relations !== undefined &&
    (!Array.isArray(sc.relations) ||
      sc.relations.some(
        (r) => !obj(r) || typeof r.metric !== 'string' || typeof r.greater !== 'string' || typeof r.less !== 'string',
      ))
  ) {
    throw new UsageError(`${where}: relations must be a list of {metric, greater, less, by?}`);
  }
}

/**
 * `mse reproduce … --plan`: per paper, its query passes (the cells of its plan), what its output
 * already holds and the estimated time (estimate.ts, one process); nothing is trained or written.
 */
async function printReproducePlan(
  todo: Array<{ paper: string }>,
  scale: string,
  outOf: (paper: string) => string,
  data: { dataDir?: string; plan: boolean },
  shard: ReturnType<typeof parseShard> | undefined,
): Promise<void> {
  let total = 0;
  let offset = 0;
  const lines: string[][] = [];
  for (const { paper } of todo) {
    const { plan } = await planPaper(paper, scale, data);
    for (const n of plan.data.notes) process.stderr.write(chalk.yellow(`mse: note: ${n}\n`));
    // a shard's passes are dealt over all the papers in order, as the run deals them
    const base = offset;
    offset += plan.cells.length;
    const mine = plan.cells.filter((_, k) => !shard || (base + k) % shard.count === shard.index);
    const file = path.join(outOf(paper), resultsFileName(shard));
    assertDirOrAbsent(outOf(paper));
    // what the run counts as done: its CSV and, unsharded, the shard CSVs it folds in first
    const csvs = [
      file,
      ...(shard || !existsSync(outOf(paper))
        ? []
        : readdirSync(outOf(paper))
            .filter(isShardFile)
            .map((f) => path.join(outOf(paper), f))),
    ];
    const have = new Set(csvs.flatMap((f) => (existsSync(f) ? readResults(f).map((r) => r.cell_id) : [])));
    const left = remaining(mine, (id) => have.has(id));
    const est = estimatePlan(left, pastCells(outOf(paper), file), 1);
    total += est.wallS;
    lines.push([
      paper,
      String(mine.length),
      String(mine.length - left.length),
      formatDuration(est.wallS),
      outOf(paper),
    ]);
  }
  process.stdout.write(
    table([['paper', 'query passes', 'done', 'estimate', 'output'].map((h) => chalk.bold(h)), ...lines]) +
      `\nEstimated ${formatDuration(total)} in one process at scale ${scale} (cost model: mse bench --plan). Nothing was run.\n`,
  );
}
