/** `mse compare a.csv b.csv`: per-metric deltas between two runs, joined on cells, with significance when seeds allow. */
import chalk from 'chalk';
import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ensureDir } from '../fs-util.js';
import { compareReport, formatValue as f, significance } from '../report/compare-page.js';
import { manifestForDisplay } from '../runner/manifest.js';
import { renderHtml } from '../report/html.js';
import { compareResults, regressions } from '../runner/compare.js';
import { readResults } from '../runner/csv-writer.js';
import { MseError } from '../errors.js';
import { table } from './common.js';

export interface CompareOpts {
  timing?: boolean;
  tolerance: number;
  failOnRegression?: boolean;
  all?: boolean;
  json?: boolean;
  /** also write the comparison as a page */
  html?: string;
}

export function compare(fileA: string, fileB: string, o: CompareOpts): void {
  for (const f of [fileA, fileB])
    if (!existsSync(f))
      throw new MseError(
        'compare',
        `${f} does not exist`,
        'give two results.csv files written by mse bench, attack or reproduce',
      );
  const a = readResults(fileA);
  const b = readResults(fileB);
  const c = compareResults(a, b, { timing: o.timing, tolerance: o.tolerance });
  const reg = regressions(c);
  if (o.json) {
    process.stdout.write(JSON.stringify({ ...c, regressions: reg }) + '\n');
  } else {
    const lines: string[][] = [['cell', 'metric', 'a', 'b', 'Δ', 'seeds', 'significance'].map((h) => chalk.bold(h))];
    for (const cell of c.cells) {
      for (const d of cell.deltas) {
        if (!o.all && d.delta === 0) continue;
        const text = significance(d, o.tolerance);
        const sig = (d.n >= 2 ? d.significant : d.beyondTolerance) ? chalk.yellow(text) : text;
        lines.push([cell.key, d.metric, f(d.a), f(d.b), `${d.delta > 0 ? '+' : ''}${f(d.delta)}`, String(d.n), sig]);
      }
    }
    const unchanged = c.cells.filter((cell) => cell.deltas.every((d) => d.delta === 0)).length;
    process.stdout.write(
      lines.length > 1
        ? `${table(lines)}\n`
        : c.cells.length
          ? 'no metric differs\n'
          : 'no cell is in both files: nothing to compare\n',
    );
    process.stdout.write(
      chalk.dim(
        `${c.cells.length} cells in both (${unchanged} identical${o.all ? '' : ', not listed'}); timing columns ${o.timing ? 'included' : 'ignored (--timing to include)'}\n`,
      ),
    );
    for (const k of c.onlyA) process.stdout.write(chalk.red(`only in ${fileA}: ${k}\n`));
    for (const k of c.onlyB) process.stdout.write(chalk.cyan(`only in ${fileB}: ${k}\n`));
  }
  if (o.html) {
    const page = path.resolve(o.html);
    ensureDir(path.dirname(page));
    const rel = (f: string) => path.relative(path.dirname(page), path.resolve(f)).split(path.sep).join('/');
    writeFileSync(
      page,
      renderHtml(compareReport(c, fileA, fileB, o.tolerance), {
        title: 'mse compare',
        runs: [
          { label: `A: ${fileA}`, manifest: manifestForDisplay(path.dirname(fileA)).value, csvHref: rel(fileA) },
          { label: `B: ${fileB}`, manifest: manifestForDisplay(path.dirname(fileB)).value, csvHref: rel(fileB) },
        ],
      }),
    );
    process.stderr.write(chalk.dim(`wrote ${page}\n`));
  }
  if (o.failOnRegression && reg.length) {
    for (const r of reg) process.stderr.write(chalk.red(`regression: ${r}\n`));
    process.exitCode = 1;
  }
}
