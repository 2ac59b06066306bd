/** `mse list [models|datasets|defenses|backends]` */
import { unknownChoice } from '../errors.js';
import { BACKENDS } from '../compute/backend.js';
import { DATASETS, SYNTHETIC } from '../data/index.js';
import { DEFENSES } from '../defenses/registry.js';
import { ATTACKS } from '../attacks/registry.js';
import { MODELS } from '../models/zoo.js';
import type { ParamDecls } from '../params.js';

const WHAT = ['models', 'datasets', 'attacks', 'defenses', 'backends', 'all'] as const;

function params(p: ParamDecls): string {
  const keys = Object.entries(p).map(([k, d]) => `${k}${d.default !== undefined ? `=${String(d.default)}` : ''}`);
  return keys.length ? `  [${keys.join(', ')}]` : '';
}

export async function list(what: string): Promise<void> {
  if (!(WHAT as readonly string[]).includes(what)) throw unknownChoice('list topic', what, WHAT);
  const out: string[] = [];
  if (what === 'models' || what === 'all') {
    out.push('models:');
    for (const [k, m] of Object.entries(MODELS)) out.push(`  ${k.padEnd(15)} ${m.describe}${params(m.params)}`);
  }
  if (what === 'datasets' || what === 'all') {
    out.push('datasets:');
    for (const d of DATASETS) out.push(`  ${d.name.padEnd(15)} ${d.kind.padEnd(8)} ${d.description}`);
    for (const s of SYNTHETIC) out.push(`  ${s.padEnd(15)} ${'tabular'.padEnd(8)} synthetic (generated)`);
  }
  if (what === 'attacks' || what === 'all') {
    out.push('attacks:');
    for (const [k, a] of Object.entries(ATTACKS)) out.push(`  ${k.padEnd(15)} ${a.describe}${params(a.params)}`);
  }
  if (what === 'defenses' || what === 'all') {
    out.push('defenses:');
    for (const [k, d] of Object.entries(DEFENSES)) out.push(`  ${k.padEnd(15)} ${d.describe}${params(d.params)}`);
  }
  if (what === 'backends' || what === 'all') {
    out.push(`backends (fastest first): ${BACKENDS.join(', ')}`);
  }
  process.stdout.write(out.join('\n') + '\n');
}
