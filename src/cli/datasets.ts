/** `mse datasets [list|fetch|verify] [names…]` */
import chalk from 'chalk';
import { UsageError, unknownChoice } from '../errors.js';
import { availability, DATASETS, getEntry, resolveFile } from '../data/index.js';
import { table } from './common.js';
import type { GlobalOptions } from './options.js';

export async function datasets(
  g: GlobalOptions,
  action: string,
  names: string[],
  opts: { json?: boolean },
): Promise<void> {
  const all = DATASETS.map((d) => d.name);
  for (const n of names) if (!all.includes(n)) throw unknownChoice('dataset', n, all);
  const chosen = names.length ? names : all;
  switch (action) {
    case 'list':
    case 'verify': {
      // availability() re-hashes every file it finds, so list and verify are the same check
      const av = availability({ dataDir: g.dataDir }).filter((a) => chosen.includes(a.name));
      if (opts.json) {
        process.stdout.write(JSON.stringify(av, null, 2) + '\n');
        return;
      }
      const rows = [['dataset', 'kind', 'file', 'status', 'where']];
      for (const a of av) {
        for (const f of a.files) {
          const st =
            f.status === 'ok'
              ? chalk.green('ok')
              : f.status === 'missing'
                ? f.optional
                  ? chalk.dim('missing (optional)')
                  : chalk.yellow('missing')
                : f.status === 'unreadable'
                  ? chalk.red('unreadable')
                  : chalk.red('bad checksum');
          rows.push([
            a.name,
            a.kind,
            f.name,
            st,
            f.where ?? ('problem' in f && f.problem ? String(f.problem).split(':')[0] : ''),
          ]);
        }
      }
      process.stdout.write(table(rows) + '\n');
      if (
        action === 'verify' &&
        av.some((a) => a.files.some((f) => f.status === 'bad-checksum' || f.status === 'unreadable'))
      )
        process.exitCode = 1;
      return;
    }
    case 'fetch': {
      for (const name of chosen) {
        const e = getEntry(name)!;
        for (const f of e.files) {
          await resolveFile(name, e.dir, f, { dataDir: g.dataDir, progress: !g.quiet });
          process.stdout.write(`${name}: ${f.name} ok\n`);
        }
      }
      return;
    }
    default:
      throw new UsageError(`unknown datasets action '${action}'. Available: list, fetch, verify`);
  }
}
