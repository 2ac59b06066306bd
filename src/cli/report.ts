/** `mse report results/<run>`: trade-off tables, Pareto frontier and figures from the CSV alone. */
import chalk from 'chalk';
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { readResults } from '../runner/csv-writer.js';
import { MseError } from '../errors.js';
import { writeReport } from '../report/report.js';

export async function report(target: string, o: { out?: string; png: boolean; html: boolean }): Promise<void> {
  const csv = existsSync(target) && statSync(target).isDirectory() ? path.join(target, 'results.csv') : target;
  if (!existsSync(csv))
    throw new MseError('report', `${csv} does not exist`, 'give a run directory (results/<run>) or its results.csv');
  const rows = readResults(csv);
  if (!rows.length) throw new MseError('report', `${csv} has no result rows`);
  const out = o.out ?? path.join(path.dirname(csv), 'report');
  const manifest = readManifest(path.join(path.dirname(csv), 'manifest.json'));
  const r = await writeReport(rows, out, {
    png: o.png,
    html: o.html,
    manifest: manifest.value,
    manifestProblem: manifest.problem,
    csvHref: path.relative(out, csv).split(path.sep).join('/'),
  });
  process.stdout.write(r.markdown + '\n');
  process.stderr.write(chalk.dim(`wrote ${r.files.join(', ')}\n`));
}

/** The run's manifest for the page's provenance; a missing or damaged one only loses that part, and says why. */
function readManifest(file: string): { value?: unknown; problem?: string } {
  if (!existsSync(file)) return {};
  let problem: string;
  try {
    const value = JSON.parse(readFileSync(file, 'utf8')) as unknown;
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) return { value };
    problem = 'is not a JSON object';
  } catch (e) {
    problem = (e as NodeJS.ErrnoException).code === 'EISDIR' ? 'is a directory' : 'is not valid JSON';
  }
  process.stderr.write(chalk.yellow(`mse: note: ${file} ${problem}; the page shows no provenance\n`));
  return { problem: `manifest.json beside the CSV ${problem}` };
}
