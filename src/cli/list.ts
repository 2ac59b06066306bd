/** `mse list [models|datasets|defenses|backends]` */
import { unknownChoice } from '../errors.js';
import { BACKENDS } from '../compute/backend.js';
import { DATASET_UNITS } from '../data/registry.js';
import { DEFENSES } from '../defenses/registry.js';
import { ATTACKS } from '../attacks/registry.js';
import { MODELS } from '../models/zoo.js';
import type { ParamDecl, Schema } from '../params.js';
import type { Unit } from '../units/registry.js';

const WHAT = ['models', 'datasets', 'attacks', 'defenses', 'backends', 'all'] as const;

function params(p: Schema): string {
  const keys = Object.entries(p).map(([k, d]) => `${k}${d.default !== undefined ? `=${String(d.default)}` : ''}`);
  return keys.length ? `  [${keys.join(', ')}]` : '';
}

/** A declaration's type and range, for the detailed listing: "int ≥ 1", "one of l1, l2, kl". */
function range(d: ParamDecl): string {
  if (d.type === 'string') return d.choices ? `one of ${d.choices.join(', ')}` : 'string';
  if (d.type === 'bool') return 'true or false';
  const lo = d.min !== undefined ? ` ≥ ${d.min}` : '';
  const hi = d.max !== undefined ? ` ≤ ${d.max}` : '';
  return `${d.type}${lo}${lo && hi ? ',' : ''}${hi}`;
}

/** One unit: its line, then (in a detailed listing) one line per parameter with its help. */
function unitLines(u: Unit & { params: Schema }, detailed: boolean): string[] {
  const from = u.source ? ` (plugin ${u.source.plugin})` : '';
  if (!detailed) return [`  ${u.name.padEnd(15)} ${u.describe}${params(u.params)}${from}`];
  return [
    `  ${u.name}${from}`,
    `      ${u.describe}`,
    ...Object.entries(u.params).map(
      ([k, d]) =>
        `      ${`${k}${d.default !== undefined ? `=${String(d.default)}` : ''}`.padEnd(22)} ${range(d)}: ${d.help}`,
    ),
  ];
}

export async function list(what: string): Promise<void> {
  if (!(WHAT as readonly string[]).includes(what)) throw unknownChoice('list topic', what, WHAT);
  const out: string[] = [];
  if (what === 'models' || what === 'all') {
    out.push('models:');
    for (const m of MODELS.all()) out.push(...unitLines(m, what === 'models'));
  }
  if (what === 'datasets' || what === 'all') {
    out.push('datasets:');
    for (const d of DATASET_UNITS.all())
      out.push(
        `  ${d.name.padEnd(15)} ${d.dataKind.padEnd(8)} ${d.describe}${d.source ? ` (plugin ${d.source.plugin})` : ''}`,
      );
  }
  if (what === 'attacks' || what === 'all') {
    out.push('attacks:');
    for (const a of ATTACKS.all()) out.push(...unitLines(a, what === 'attacks'));
  }
  if (what === 'defenses' || what === 'all') {
    out.push('defenses:');
    for (const d of DEFENSES.all()) out.push(...unitLines(d, what === 'defenses'));
  }
  if (what === 'backends' || what === 'all') {
    out.push(`backends (fastest first): ${BACKENDS.join(', ')}`);
  }
  process.stdout.write(out.join('\n') + '\n');
}
