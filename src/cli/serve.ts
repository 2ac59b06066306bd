/** `mse serve`: a (cached) victim behind its defenses as an HTTP API; SIGTERM drains in-flight requests. */
import chalk from 'chalk';
import { createServer as createNetServer } from 'node:net';
import type { Defense } from '../api/types.js';
import { loadDataset } from '../data/index.js';
import { parseDefenseSpec } from '../defenses/registry.js';
import { MseError, UsageError } from '../errors.js';
import { getVictim } from '../models/victim.js';
import { parseModelSpec } from '../models/zoo.js';
import { AuditLog } from '../serve/audit.js';
import { readKeysFile } from '../serve/keys.js';
import { createServer } from '../serve/server.js';
import { datasetDefaults } from '../data/registry.js';
import { stream } from '../compute/streams.js';
import type { Prepared } from '../defenses/define.js';
import { startBackend } from './common.js';
import type { GlobalOptions } from './options.js';

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

/** Where a listen error leaves the user, in one line (EADDRINUSE, a host that is not here, …). */
function listenError(e: unknown, host: string, port: number): MseError {
  const code = (e as NodeJS.ErrnoException).code ?? '';
  const at = `${host.includes(':') ? `[${host}]` : host}:${port}`;
  if (code === 'EADDRINUSE')
    return new MseError(
      'serve',
      `cannot listen on ${at}: address already in use`,
      'choose another --port (0 picks a free one), or stop the process that holds it',
    );
  if (code === 'EADDRNOTAVAIL')
    return new MseError(
      'serve',
      `cannot listen on ${host}: not an address of this machine`,
      'give --host an address of one of its interfaces, e.g. 127.0.0.1 or 0.0.0.0',
    );
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN' || code === 'EAI_NONAME' || code === 'EAI_FAIL')
    return new MseError(
      'serve',
      `cannot listen on ${host}: not an IP address or a known host name`,
      'give --host an address such as 127.0.0.1, 0.0.0.0 or ::1',
    );
  if (code === 'EACCES' || code === 'EPERM')
    return new MseError(
      'serve',
      `cannot listen on ${at}: permission denied`,
      'ports below 1024 need privileges; choose e.g. --port 8080',
    );
  return new MseError('serve', `cannot listen on ${at}: ${code || (e as Error).message}`);
}

/** Bind and release host:port once, so that a bad --host or a taken --port fails before the victim is loaded or trained. */
async function checkListen(host: string, port: number): Promise<void> {
  const probe = createNetServer();
  try {
    await new Promise<void>((resolve, reject) => {
      probe.once('error', reject);
      probe.listen({ port, host, exclusive: true }, resolve);
    });
  } catch (e) {
    throw listenError(e, host, port);
  }
  await new Promise<void>((resolve) => probe.close(() => resolve()));
}

export async function serve(g: GlobalOptions, o: ServeOpts): Promise<void> {
  if (o.pow !== 'on' && o.pow !== 'off') throw new UsageError(`--pow must be on or off, got '${o.pow}'`);
  const specs = [...o.defense];
  if (o.pow === 'on' && !specs.some((s) => s.startsWith('pow'))) specs.push('pow');
  // validated now; prepared and created once the victim is here (one instance: the server is one API)
  const parsed = specs.map(parseDefenseSpec);
  // every start-up check that needs no victim runs first: a bad flag fails in a second, not after training
  if (!Number.isInteger(o.port) || o.port < 0 || o.port > 65535)
    throw new UsageError(`--port must be an integer from 0 to 65535, got ${o.port}`);
  const keys = o.keys ? readKeysFile(o.keys) : undefined;
  if (o.auditLog) AuditLog.open(o.auditLog).close();
  await checkListen(o.host, o.port);
  await startBackend(g);
  const ds = await loadDataset(o.dataset, { dataDir: g.dataDir });
  const victim = o.victim ?? datasetDefaults(ds).victim;
  const v = await getVictim(ds, parseModelSpec(victim), o.seed);
  if (v.cacheNote) process.stderr.write(chalk.yellow(`note: ${v.cacheNote}\n`));
  const prepared: Prepared[] = [];
  const defenses: Defense[] = [];
  for (const [i, d] of parsed.entries()) {
    prepared.push(
      await d.unit.prepare(d.values, {
        victim: v.model,
        train: ds.train,
        heldOut: ds.test,
        rng: stream(o.seed, `defense-setup:${i}`),
        datasetName: ds.name,
        domain: ds.domain,
        data: { dataDir: g.dataDir },
      }),
    );
    defenses.push(d.unit.create(d.values, prepared[i]));
    const note = prepared[i].note;
    if (note) process.stderr.write(chalk.yellow(`note: ${note}\n`));
  }
  const app = await createServer({
    victim: v.model,
    defenses,
    domain: ds.domain,
    seed: o.seed,
    keys,
    pow: o.pow === 'on',
    maxBatch: o.maxBatch,
    auditLog: o.auditLog,
    auditMaxBytes: 64 * 1024 * 1024,
  });
  let addr: string;
  try {
    addr = await app.listen({ port: o.port, host: o.host });
  } catch (e) {
    await app.close();
    throw listenError(e, o.host, o.port);
  }
  process.stderr.write(
    chalk.green(
      `serving ${o.dataset}/${victim} (seed ${o.seed}, test accuracy ${v.testAcc.toFixed(4)}) behind [${specs.join(', ') || 'none'}] at ${addr}${keys ? `, ${keys.length} API keys (${keys.filter((k) => k.admin).length} admin)` : ', open (no keys; /metrics for loopback clients only)'}\n`,
    ),
  );
  // print the address on stdout too, for scripts that start a server on port 0
  process.stdout.write(`${addr}\n`);
  // serve until a signal; close() stops accepting and waits for in-flight requests, then the CLI exits 0
  await new Promise<void>((resolve) => {
    const stop = (sig: string) => {
      process.stderr.write(`${sig}: draining in-flight requests\n`);
      void app.close().then(() => {
        for (const p of prepared) p.dispose();
        v.model.dispose();
        resolve();
      });
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}
