/**
 * `mse merge results/<run>` (or shard CSVs): join the shards of a sweep into <run>/results.csv,
 * checking against the grid in <run>/manifest.json that every cell is present exactly once.
 * Missing or duplicated cells are listed and the exit code is 1 (nothing is written then).
 */
import chalk from 'chalk';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { realFile, ResultsCsv, readResults } from '../runner/csv-writer.js';
import type { GridSpec } from '../runner/grid.js';
import { cellLabel, planSweep } from '../runner/plan.js';
import { isShardFile } from '../runner/shard.js';
import { RESULT_COLUMNS, type ResultRow } from '../runner/result-row.js';
import { loadPlugin } from '../units/plugins.js';
import { MseError, UsageError } from '../errors.js';
import { startBackend } from './common.js';
import type { GlobalOptions } from './options.js';

export async function merge(g: GlobalOptions, targets: string[], o: { out?: string }): Promise<void> {
  const files = targets.flatMap((t) =>
    existsSync(t) && statSync(t).isDirectory()
      ? readdirSync(t)
          .filter(isShardFile)
          .map((f) => path.join(t, f))
      : [t],
  );
  if (!files.length)
    throw new MseError('merge', `no shard CSVs in ${targets.join(', ')}`, 'run mse bench … --shard i/n first');
  for (const f of files) if (!existsSync(f)) throw new MseError('merge', `${f} does not exist`);
  const dir = path.dirname(files[0]);
  const outFile = o.out ?? path.join(dir, 'results.csv');
  if (files.some((f) => realFile(f) === realFile(outFile)))
    throw new UsageError(`--out ${outFile} is one of the shards being merged`, 'write the merged CSV to another file');
  const manifestFile = path.join(dir, 'manifest.json');
  if (!existsSync(manifestFile))
    throw new MseError(
      'merge',
      `${manifestFile} is missing: it holds the sweep's grid`,
      'merge the shards of one mse bench run, in its output directory',
    );
  let manifest: { spec?: { grid?: GridSpec; quick?: boolean }; plugins?: Array<{ path: string; hash: string }> };
  try {
    manifest = JSON.parse(readFileSync(manifestFile, 'utf8')) as typeof manifest;
  } catch (e) {
    throw new MseError('merge', `${manifestFile} is not readable JSON: ${(e as Error).message}`);
  }
  const grid = manifest?.spec?.grid as Record<string, unknown> | undefined;
  const lists = ['datasets', 'victims', 'defenses', 'attacks', 'budgets'];
  if (
    typeof grid !== 'object' ||
    grid === null ||
    !Array.isArray(grid.datasets) ||
    !Array.isArray(grid.seeds) ||
    grid.seeds.some((x) => !Number.isInteger(x)) ||
    lists.some(
      (k) =>
        grid[k] !== undefined && (!Array.isArray(grid[k]) || (grid[k] as unknown[]).some((x) => typeof x !== 'string')),
    )
  ) {
    throw new MseError(
      'merge',
      `${manifestFile} does not describe an mse bench grid`,
      'merge the shards of one mse bench run, in its output directory',
    );
  }
  if (!manifest.spec?.grid) throw new MseError('merge', `${manifestFile} does not describe an mse bench grid`);
  // the plugins the sweep used, as they were then (a changed plugin would give its cells other ids)
  const plugins: unknown[] = Array.isArray(manifest.plugins) ? manifest.plugins : [];
  for (const p of plugins) {
    const ok =
      typeof p === 'object' &&
      p !== null &&
      typeof (p as { path?: unknown }).path === 'string' &&
      /^[0-9a-f]{16}$/.test(String((p as { hash?: unknown }).hash));
    if (!ok)
      throw new MseError(
        'merge',
        `${manifestFile} lists a plugin without its path and content hash`,
        'merge the shards of one mse bench run, with the manifest it wrote',
      );
    await loadPlugin((p as { path: string }).path, (p as { hash: string }).hash);
  }
  await startBackend(g, false);
  // the same plan bench made: the pools the shards used (an embedded pool gives its cells other ids), the ids
  const plan = await planSweep(manifest.spec.grid, {
    quick: manifest.spec.quick === true,
    data: { dataDir: g.dataDir },
  });
  const expected = new Map<string, string>();
  for (const c of plan.cells) c.budgets.forEach((budget, i) => expected.set(c.ids[i], cellLabel(c, budget)));
  const seen = new Map<string, { row: Record<string, string>; files: string[] }>();
  for (const f of files) {
    for (const r of readResults(f)) {
      const e = seen.get(r.cell_id);
      if (e) e.files.push(f);
      else seen.set(r.cell_id, { row: r, files: [f] });
    }
  }
  const missing = [...expected].filter(([id]) => !seen.has(id));
  const duplicated = [...seen].filter(([, e]) => e.files.length > 1);
  const unexpected = [...seen].filter(([id]) => !expected.has(id));
  for (const [, what] of missing) process.stderr.write(chalk.red(`missing: ${what}\n`));
  for (const [id, e] of duplicated)
    process.stderr.write(chalk.red(`duplicated: ${expected.get(id) ?? id} in ${e.files.join(', ')}\n`));
  for (const [id, e] of unexpected)
    process.stderr.write(chalk.yellow(`not in the grid (ignored): ${id} from ${e.files[0]}\n`));
  if (missing.length || duplicated.length) {
    process.stderr.write(
      `${expected.size} cells expected: ${missing.length} missing, ${duplicated.length} duplicated; nothing written\n`,
    );
    process.exitCode = 1;
    return;
  }
  const csv = new ResultsCsv(outFile);
  let written = 0;
  try {
    for (const [id, e] of seen) {
      if (!expected.has(id) || csv.has(id)) continue;
      csv.write(Object.fromEntries(RESULT_COLUMNS.map((k) => [k, e.row[k] ?? ''])) as ResultRow);
      written++;
    }
  } finally {
    csv.close();
  }
  process.stdout.write(
    `${expected.size} cells from ${files.length} shards, each exactly once: ${outFile} (${written} rows written)\n`,
  );
}
