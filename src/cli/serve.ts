/** `mse serve`: a (cached) victim behind its defenses as an HTTP API; SIGTERM drains in-flight requests. */
import chalk from 'chalk';
import { readFileSync } from 'node:fs';
import type { Defense } from '../api/types.js';
import { loadDataset } from '../data/index.js';
import { parseDefense } from '../defenses/registry.js';
import { MseError, UsageError } from '../errors.js';
import { getVictim } from '../models/victim.js';
import { parseModelSpec } from '../models/zoo.js';
import { createServer, type ClientKey } from '../serve/server.js';
import { defaultVictim } from '../bench/grid.js';
import { startBackend } from './common.js';
import type { GlobalOptions } from './index.js';

export interface ServeOpts {
  dataset: string;
  victim?: string;
  seed: number;
  defense: string[];
  pow: string;
  keys?: string;
  port: number;
  host: string;
  maxBatch: number;
  auditLog?: string;
}

function readKeys(file: string): ClientKey[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new MseError('serve', `cannot read keys from ${file}: ${(e as Error).message}`, 'give a JSON file like {"keys": [{"key": "…", "id": "alice", "budget": 10000, "ratePerSec": 100}]}');
  }
  const keys = (parsed as { keys?: unknown }).keys;
  if (!Array.isArray(keys) || keys.some((k) => typeof k !== 'object' || typeof (k as ClientKey).key !== 'string' || typeof (k as ClientKey).id !== 'string')) {
    throw new MseError('serve', `${file} must hold {"keys": [{"key": string, "id": string, "budget"?: number, "ratePerSec"?: number}]}`);
  }
  return keys as ClientKey[];
}

export async function serve(g: GlobalOptions, o: ServeOpts): Promise<void> {
  if (o.pow !== 'on' && o.pow !== 'off') throw new UsageError(`--pow must be on or off, got '${o.pow}'`);
  const specs = [...o.defense];
  if (o.pow === 'on' && !specs.some((s) => s.startsWith('pow'))) specs.push('pow');
  const defenses: Defense[] = specs.map(parseDefense);
  const keys = o.keys ? readKeys(o.keys) : undefined;
  await startBackend(g);
  const ds = await loadDataset(o.dataset, { dataDir: g.dataDir });
  const victim = o.victim ?? defaultVictim(ds);
  const v = await getVictim(ds, parseModelSpec(victim), o.seed);
  for (const d of defenses) await d.bind?.({ victim: v.model, train: ds.train, heldOut: ds.test });
  const app = await createServer({ victim: v.model, defenses, domain: ds.domain, seed: o.seed, keys, pow: o.pow === 'on', maxBatch: o.maxBatch, auditLog: o.auditLog, auditMaxBytes: 64 * 1024 * 1024 });
  const addr = await app.listen({ port: o.port, host: o.host });
  process.stderr.write(chalk.green(`serving ${o.dataset}/${victim} (seed ${o.seed}, test accuracy ${v.testAcc.toFixed(4)}) behind [${specs.join(', ') || 'none'}] at ${addr}${keys ? `, ${keys.length} API keys` : ', open (no keys)'}\n`));
  // print the address on stdout too, for scripts that start a server on port 0
  process.stdout.write(`${addr}\n`);
  // serve until a signal; close() stops accepting and waits for in-flight requests, then the CLI exits 0
  await new Promise<void>((resolve) => {
    const stop = (sig: string) => {
      process.stderr.write(`${sig}: draining in-flight requests\n`);
      void app.close().then(() => {
        v.model.dispose();
        resolve();
      });
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}
