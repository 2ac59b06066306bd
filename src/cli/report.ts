/** `mse report results/<run>`: trade-off tables, Pareto frontier and figures from the CSV alone. */
import chalk from 'chalk';
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { readResults } from '../runner/csv-writer.js';
import { MseError } from '../errors.js';
import { writeReport } from '../report/report.js';
import { manifestForDisplay } from '../runner/manifest.js';

export async function report(target: string, o: { out?: string; png: boolean; html: boolean }): Promise<void> {
  const csv = existsSync(target) && statSync(target).isDirectory() ? path.join(target, 'results.csv') : target;
  if (!existsSync(csv))
    throw new MseError('report', `${csv} does not exist`, 'give a run directory (results/<run>) or its results.csv');
  const rows = readResults(csv);
  if (!rows.length) throw new MseError('report', `${csv} has no result rows`);
  const out = o.out ?? path.join(path.dirname(csv), 'report');
  const manifest = manifestForDisplay(path.dirname(csv));
  if (manifest.problem)
    process.stderr.write(
      chalk.yellow(
        `mse: note: ${path.join(path.dirname(csv), 'manifest.json')} ${manifest.problem}; the page shows no provenance\n`,
      ),
    );
  const r = await writeReport(rows, out, {
    png: o.png,
    html: o.html,
    manifest: manifest.value,
    manifestProblem: manifest.problem && `manifest.json beside the CSV ${manifest.problem}`,
    csvHref: path.relative(out, csv).split(path.sep).join('/'),
  });
  process.stdout.write(r.markdown + '\n');
  process.stderr.write(chalk.dim(`wrote ${r.files.join(', ')}\n`));
}
