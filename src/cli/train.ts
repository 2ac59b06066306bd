/** `mse train`: train (or load from the cache) a victim and print its test accuracy. */
import chalk from 'chalk';
import { asUserError, MseError, UsageError } from '../errors.js';
import { assertDatasetName, loadDataset } from '../data/index.js';
import { getVictim, MODELS, parseModelSpec } from '../models/index.js';
import { writeAtomic } from '../models/victim.js';
import { formatParams } from '../params.js';
import { progressBar, startBackend } from './common.js';
import type { GlobalOptions } from './options.js';

interface TrainOpts {
  dataset: string;
  model: string;
  seed: number;
  cache: boolean;
  save?: string;
  json?: boolean;
}

export async function train(g: GlobalOptions, o: TrainOpts): Promise<void> {
  assertDatasetName(o.dataset); // validate before any slow work
  const spec = parseModelSpec(o.model);
  const loaded = MODELS.get(spec.kind).load !== undefined;
  if (loaded && o.save)
    throw new UsageError(`--save: a ${spec.kind} model is loaded from its own files; there is nothing new to save`);
  const b = await startBackend(g);
  const ds = await loadDataset(o.dataset, { dataDir: g.dataDir, progress: !g.quiet });
  for (const n of ds.notes) process.stderr.write(chalk.yellow(`note: ${n}\n`));
  const bar = progressBar(g, `train ${ds.name}/${spec.kind}`);
  const v = await getVictim(ds, spec, o.seed, { noCache: !o.cache, onProgress: (s, t) => bar.update(s, t) });
  bar.stop();
  if (v.cacheNote) process.stderr.write(chalk.yellow(`note: ${v.cacheNote}\n`));
  if (v.cacheError)
    process.stderr.write(
      chalk.yellow(`note: victim not cached (${v.cacheError}); set MSE_CACHE_DIR to a writable directory\n`),
    );
  if (o.save) {
    try {
      writeAtomic(o.save, JSON.stringify(v.model.serialize()));
    } catch (err) {
      throw new MseError(
        'io',
        `cannot write ${o.save}: ${asUserError(err)?.message ?? (err as Error).message}`,
        'choose a writable --save path',
      );
    }
  }
  const result = {
    dataset: ds.name,
    dataset_variant: ds.variant,
    model: spec.kind,
    params: formatParams(spec.params),
    seed: o.seed,
    backend: b.label,
    train_examples: ds.train.n,
    test_examples: ds.test.n,
    test_acc: v.testAcc,
    train_seconds: v.trainSeconds,
    cached: v.cached,
    path: v.path ?? null,
  };
  if (o.json) {
    process.stdout.write(JSON.stringify(result) + '\n');
    return;
  }
  process.stdout.write(
    `${ds.name} (${ds.variant}) ${spec.kind}${result.params ? `:${result.params}` : ''} seed=${o.seed}: ` +
      `test accuracy ${chalk.bold((100 * v.testAcc).toFixed(2) + '%')} on ${ds.test.n} examples ` +
      `[backend ${b.label}, ${v.cached ? 'loaded from cache' : loaded ? `loaded from its files in ${v.trainSeconds.toFixed(1)} s` : `trained in ${v.trainSeconds.toFixed(1)} s`}]\n`,
  );
}
