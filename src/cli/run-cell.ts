/**
 * `mse run-cell` (hidden): a sweep worker. Reads `{cell, runId}` — one plan cell as the parent
 * resolved it — as JSON on stdin, loads the plugins the cell names (checking their content hashes),
 * runs it through the same runCell as every other command, and prints its rows as JSON lines on
 * stdout, with progress as JSON lines on stderr.
 */
import { MODELS } from '../models/zoo.js';
import { ATTACKS } from '../attacks/registry.js';
import { DEFENSES } from '../defenses/registry.js';
import { assertDatasetName } from '../data/registry.js';
import { UsageError } from '../errors.js';
import type { ParamValues } from '../params.js';
import type { PlanCell } from '../runner/plan.js';
import { runCell } from '../runner/run-cell.js';
import { loadPlugin } from '../units/plugins.js';
import { jsonProgress, startBackend } from './common.js';
import type { GlobalOptions } from './options.js';

/** Values back into "key=value" strings, for resolving them again. */
function rawOf(values: ParamValues): Record<string, string[]> {
  return Object.fromEntries(
    Object.entries(values).map(([k, v]) => [k, Array.isArray(v) ? v.map(String) : [String(v)]]),
  );
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** The shape the runner relies on; a worker is only ever fed by mse, but a bad line is a clear error, not a crash. */
function asCell(v: unknown): { cell: PlanCell; runId: string } {
  const o = v as { cell?: Record<string, unknown>; runId?: unknown } | null;
  const c = o?.cell;
  const ref = (r: unknown) =>
    typeof r === 'object' &&
    r !== null &&
    typeof (r as { name?: unknown }).name === 'string' &&
    typeof (r as { params?: unknown }).params === 'object';
  const ok =
    c &&
    typeof o.runId === 'string' &&
    typeof c.dataset === 'string' &&
    typeof c.seed === 'number' &&
    ref(c.attack) &&
    Array.isArray(c.defenses) &&
    c.defenses.every(ref) &&
    typeof c.victim === 'object' &&
    c.victim !== null &&
    typeof (c.victim as { kind?: unknown }).kind === 'string' &&
    Array.isArray(c.budgets) &&
    Array.isArray(c.ids) &&
    c.budgets.length === c.ids.length &&
    Array.isArray(c.plugins) &&
    c.plugins.every(
      (p) =>
        typeof p === 'object' &&
        p !== null &&
        typeof (p as { path?: unknown }).path === 'string' &&
        typeof (p as { hash?: unknown }).hash === 'string',
    );
  if (!ok)
    throw new UsageError('run-cell reads {"cell": <plan cell>, "runId": "…"} on stdin (it is mse bench’s worker)');
  return o as unknown as { cell: PlanCell; runId: string };
}

export async function runCellCommand(g: GlobalOptions): Promise<void> {
  let input: unknown;
  try {
    input = JSON.parse(await readStdin());
  } catch (e) {
    throw new UsageError(`run-cell: stdin is not JSON: ${(e as Error).message}`);
  }
  const { cell, runId } = asCell(input);
  for (const p of cell.plugins) await loadPlugin(p.path, p.hash);
  // every unit the cell names exists here (a plugin's, once loaded), and every value is one it
  // accepts: the same checks the plan made, so a hand-fed cell gets a clear line, not a crash
  const same = (what: string, given: ParamValues, resolved: ParamValues) => {
    if (JSON.stringify(Object.entries(given).sort()) !== JSON.stringify(Object.entries(resolved).sort()))
      throw new UsageError(`run-cell: the ${what}'s parameters are not as its plan would give them`);
  };
  same(
    `attack ${cell.attack.name}`,
    cell.attack.params,
    ATTACKS.get(cell.attack.name).resolve(rawOf(cell.attack.params)),
  );
  same(
    `model ${cell.victim.kind}`,
    cell.victim.params,
    MODELS.get(cell.victim.kind).resolve(rawOf(cell.victim.params)),
  );
  for (const d of cell.defenses) same(`defense ${d.name}`, d.params, DEFENSES.get(d.name).resolve(rawOf(d.params)));
  assertDatasetName(cell.dataset);
  if (!Number.isSafeInteger(cell.seed) || cell.seed < 0) throw new UsageError('run-cell: seed must be an integer ≥ 0');
  if (
    !cell.budgets.length ||
    cell.budgets.some((b, i) => !Number.isSafeInteger(b) || b < 1 || (i > 0 && b <= cell.budgets[i - 1]))
  )
    throw new UsageError('run-cell: budgets must be ascending integers ≥ 1');
  await startBackend(g, false);
  const progress = jsonProgress();
  const { rows } = await runCell(cell, { runId, data: { dataDir: g.dataDir }, onProgress: progress });
  for (const row of rows) process.stdout.write(JSON.stringify(row) + '\n');
}
