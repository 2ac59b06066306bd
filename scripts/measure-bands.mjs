#!/usr/bin/env node
// Set a reproduction spec's bands from the seeds a run measured (src/runner/bands.ts: min/max over
// seeds ± 2 sd, clamped, three decimals). Prints every figure; --write rewrites the spec's expect.
//   node scripts/measure-bands.mjs <paper> <scale> <results.csv> [--extra surrogate_acc,pow_ratio] [--write]
// Needs the build (npx tsc -p tsconfig.build.json) and the data the spec uses (MSE_DATA_DIR).
import { readFileSync, writeFileSync } from 'node:fs';
import { planPaper, paperFile } from '../dist/runner/reproduce.js';
import { measureBands } from '../dist/runner/bands.js';
import { readResults } from '../dist/runner/csv-writer.js';
import { initBackend } from '../dist/compute/backend.js';

const args = process.argv.slice(2);
const flag = (name) => {
  const i = args.indexOf(name);
  return i < 0 ? undefined : (args.splice(i, name === '--write' ? 1 : 2)[1] ?? true);
};
const write = flag('--write') !== undefined;
const extra = String(flag('--extra') ?? '')
  .split(',')
  .filter(Boolean);
const [paper, scale, csv] = args;
if (!paper || !scale || !csv) {
  console.error('usage: node scripts/measure-bands.mjs <paper> <scale> <results.csv> [--extra m1,m2] [--write]');
  process.exit(2);
}
// planning sizes budgets given in unknowns (`1x`) with a model: it needs a backend
await initBackend('auto', { threads: 1 });
const { planned, spec, sc } = await planPaper(paper, scale, { dataDir: process.env.MSE_DATA_DIR });
const rows = new Map(readResults(csv).map((r) => [r.cell_id, r]));
const { figures, missing } = measureBands(planned, rows, extra);
for (const f of figures)
  console.log(
    `${(f.cell.id ?? f.cell.attack).padEnd(28)} ${f.metric.padEnd(16)} seeds ${f.values.map((v) => v.toPrecision(4)).join(' / ')}  mean ${f.mean.toPrecision(4)}  band [${f.band.join(', ')}]`,
  );
if (missing.length) {
  console.error(`not every seed measured: ${missing.join('; ')} (no band written for them)`);
  if (write) process.exit(1);
}
if (write) {
  const file = paperFile(paper);
  const json = JSON.parse(readFileSync(file, 'utf8'));
  const cells = json.scales[scale].cells;
  for (const f of figures) {
    const i = sc.cells.indexOf(f.cell);
    cells[i].expect = { ...cells[i].expect, [f.metric]: f.band };
  }
  writeFileSync(file, JSON.stringify(json, null, 2) + '\n');
  console.log(`wrote ${figures.length} bands to ${file} (${spec.paper} ${scale}, seeds ${sc.seeds.join(', ')})`);
}
