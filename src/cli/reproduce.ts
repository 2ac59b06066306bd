/** `mse reproduce <paper>`: run a paper's spec, write CSV + markdown table, fail if a figure leaves its band. */
import chalk from 'chalk';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { makeManifest, writeManifest } from '../bench/manifest.js';
import { loadPaper, reproduce as run } from '../bench/reproduce.js';
import { MseError } from '../errors.js';
import { startBackend } from './common.js';
import type { GlobalOptions } from './index.js';

export async function reproduce(g: GlobalOptions, paper: string, o: { scale: string; out?: string }): Promise<void> {
  const spec = loadPaper(paper); // validates the name before starting the backend
  if (!spec.scales[o.scale]) throw new MseError('usage', `${paper} has no scale '${o.scale}'`);
  const b = await startBackend(g);
  const out = o.out ?? path.join('results', `${paper}-${o.scale}`);
  writeManifest(out, makeManifest(path.basename(out), b, { paper, scale: o.scale, spec: spec.scales[o.scale] }));
  const res = await run(paper, o.scale, out, { dataDir: g.dataDir }, (i, n, label) => {
    if (!g.quiet) process.stderr.write(chalk.dim(`[${i}/${n}] ${label}\n`));
  });
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
