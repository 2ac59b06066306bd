/** `mse reproduce <paper>`: run a paper's spec, write CSV + markdown table, fail if a figure leaves its band. */
import chalk from 'chalk';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { checkPluginVersions, makeManifest, writeManifest } from '../runner/manifest.js';
import { loadPaper, paperFile, reproduce as run } from '../runner/reproduce.js';
import { loadPlugins } from '../units/plugins.js';
import { UsageError } from '../errors.js';
import { validateSeeds } from '../runner/grid.js';
import { startBackend } from './common.js';
import type { GlobalOptions } from './options.js';

export async function reproduce(g: GlobalOptions, paper: string, o: { scale: string; out?: string }): Promise<void> {
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
  if (!Object.hasOwn(spec.scales, o.scale))
    throw new UsageError(`${paper} has no scale '${o.scale}'`, `choose one of: ${Object.keys(spec.scales).join(', ')}`);
  checkScale(paper, o.scale, spec.scales[o.scale]);
  const plugins: unknown = spec.plugins;
  if (plugins !== undefined && (!Array.isArray(plugins) || plugins.some((p) => typeof p !== 'string' || !p.trim())))
    throw new UsageError(`${paper}: plugins must be a list of file names (relative to the spec file)`);
  // the spec's plugins before anything is written: a broken one fails with nothing left behind
  if (spec.plugins?.length) await loadPlugins(spec.plugins, path.dirname(paperFile(paper)));
  const b = await startBackend(g);
  const out = o.out ?? path.join('results', `${paper}-${o.scale}`);
  const res = await run(
    paper,
    o.scale,
    out,
    { dataDir: g.dataDir },
    (i, n, label) => {
      if (!g.quiet) process.stderr.write(chalk.dim(`[${i}/${n}] ${label}\n`));
    },
    (plan) => {
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
  );
  writeFileSync(path.join(out, 'table.md'), res.table);
  process.stdout.write(res.table + '\n');
  const bad = res.checks.filter((c) => !c.ok);
  for (const c of res.checks) {
    const line = `${c.ok ? 'ok  ' : 'FAIL'} ${c.cell}: ${c.metric} = ${Number.isNaN(c.value) ? 'missing' : c.value.toPrecision(4)} (band ${c.band[0]}–${c.band[1]})`;
    process.stdout.write((c.ok ? chalk.green(line) : chalk.red(line)) + '\n');
  }
  process.stdout.write(`${res.checks.length - bad.length} passed, ${bad.length} failed\n`);
  process.stderr.write(chalk.dim(`wrote ${res.csv} and ${path.join(out, 'table.md')}\n`));
  if (bad.length) process.exitCode = 1;
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
