/**
 * The `mse` entry point: builds the root command and nothing else. Each command lives in its own
 * file and is imported lazily, so `--help` is instant. This is the only place that prints errors
 * and chooses exit codes: 2 for usage errors, 1 for everything else.
 */
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { statSync } from 'node:fs';
import { asUserError, UsageError } from '../errors.js';

import type { GlobalOptions } from './options.js';
export type { GlobalOptions } from './options.js';

function intArg(min = 0) {
  return (v: string): number => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isInteger(n) || n < min)
      throw new InvalidArgumentError(`must be an integer ≥ ${min}.`);
    return n;
  };
}

function isDirectory(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

export function buildProgram(): Command {
  const program = new Command('mse')
    .description('Benchmark model-extraction attacks against prediction-API defenses.')
    .version(process.env.npm_package_version ?? '0.1.0', '-V, --version')
    .addOption(
      new Option('--backend <name>', 'compute backend: auto (fastest available), node-gpu, node, wasm, cpu').default(
        'auto',
      ),
    )
    .option('--threads <n>', 'compute threads for the wasm backend (default: cores, or MSE_THREADS)', intArg(1))
    .option('--data-dir <dir>', 'look here first for dataset files (then MSE_DATA_DIR, datasets/, /usr/share/datasets)')
    .option('-q, --quiet', 'no progress bars')
    .option(
      '--plugin <file>',
      'load attacks, defenses, model families or datasets from an ES module of define* units (repeatable; see examples/plugins/)',
      (v: string, acc: string[]) => [...acc, v],
      [] as string[],
    )
    .exitOverride()
    .configureOutput({ outputError: (str, write) => write(`mse: ${str.replace(/^error: /, 'error: ')}`) })
    .showHelpAfterError('(run with --help for usage)')
    .hook('preAction', async () => {
      // a --data-dir that is not a directory would be skipped silently by the lookup: say so instead
      const dir = program.opts<GlobalOptions>().dataDir;
      if (dir !== undefined && !isDirectory(dir)) throw new UsageError(`--data-dir ${dir} is not a directory`);
      const plugins = program.opts<GlobalOptions>().plugin;
      if (plugins.length) await (await import('../units/plugins.js')).loadPlugins(plugins);
    })
    .addHelpText(
      'after',
      `
Examples:
  $ mse doctor                                  # backend, versions, which datasets are here
  $ mse train --dataset mnist --model cnn       # train (and cache) a victim, print its test accuracy
  $ mse datasets                                # dataset availability and where files were found
  $ mse list models                             # what is available`,
    );

  program
    .command('doctor')
    .description('print the compute backend, versions, data directories and locally available datasets')
    .addHelpText(
      'after',
      '\nExamples:\n  $ mse doctor\n  $ mse --backend cpu doctor\n  $ MSE_DATA_DIR=../shared/datasets mse doctor',
    )
    .action(async () => (await import('./doctor.js')).doctor(program.opts<GlobalOptions>()));

  program
    .command('train')
    .description('train a victim model (cached by dataset, model, parameters and seed) and report its test accuracy')
    .requiredOption(
      '-d, --dataset <name>',
      'dataset (see `mse list datasets`), or your own: csv:path=F, npz:path=F, folder:path=DIR',
    )
    .requiredOption(
      '-m, --model <spec>',
      'model kind with optional parameters, e.g. cnn, mlp:hidden=256,128, tree:depth=6',
    )
    .option('-s, --seed <n>', 'random seed (initialisation, shuffling)', intArg(0), 1)
    .option('--no-cache', 'retrain even if a cached victim exists, and do not cache')
    .option('--save <file>', 'also write the trained model to this JSON file')
    .option('--json', 'print the result as JSON')
    .addHelpText(
      'after',
      '\nExamples:\n  $ mse train --dataset mnist --model cnn\n  $ mse train -d fashion-mnist -m cnn:epochs=2 --seed 3\n  $ mse train -d adult -m logistic --save adult-lr.json\n  $ mse train -d iris -m mlp:hidden=20,activation=tanh --json',
    )
    .action(async (opts) => (await import('./train.js')).train(program.opts<GlobalOptions>(), opts));

  program
    .command('attack')
    .description(
      'run one extraction attack against one (defended) victim and report attacker success, cost and defender utility',
    )
    .requiredOption(
      '-d, --dataset <name>',
      'dataset (see `mse list datasets`), or your own: csv:path=F, npz:path=F, folder:path=DIR',
    )
    .option(
      '-v, --victim <spec>',
      'victim model (default: cnn for images, logistic for binary tables, softmax otherwise; with a model-server --target, the served model itself, measured through the server)',
    )
    .option(
      '--defense <spec>',
      'defense, repeatable, applied in order (default: none)',
      (v: string, acc: string[]) => [...acc, v],
      [] as string[],
    )
    .option(
      '-a, --attack <spec>',
      'attack (default: knockoff for image victims, the equation-solving attack for the victim family, tree-path for trees); see `mse list attacks`',
      // one attack per run: a second -a would silently replace the first
      (v: string, prev: string | undefined) => {
        if (prev !== undefined)
          throw new InvalidArgumentError(
            `mse attack runs one attack (got '${prev}' and '${v}'); mse bench takes several.`,
          );
        return v;
      },
    )
    .option(
      '-b, --budget <list>',
      "query budget: a count (500, 5k) or a multiple of the victim's unknown parameters (1x, 0.5x); a list (1k,5k,10k) is a learning curve, one row each (Knockoff/JBDA train on prefixes of one query pass)",
      '1x',
    )
    .option('-s, --seed <n>', 'random seed (victim, queries, attacker)', intArg(0), 1)
    .option(
      '-o, --out <dir>',
      'append the result row to <dir>/results.csv (skips a cell already there) and write <dir>/manifest.json',
    )
    .option('--json', 'print the result row as JSON')
    .option('--plan', 'print the cell, the budgets --out still lacks and an estimated time, then exit without training')
    .option(
      '--transfer <n>',
      "image victims: craft FGSM and PGD examples (ε 0.1, 0.3) on each surrogate from the first n test images the victim gets right, and record how often they fool the victim (the issue's 1000; costs 42 surrogate gradient passes over them per row)",
      intArg(1),
    )
    .option(
      '--target <url>',
      'attack a remote API (mse serve) instead of an in-process one; --defense then names what the server runs',
    )
    .option('--key <key>', 'API key for --target')
    .option(
      '--protocol <name>',
      'what --target speaks: mse (mse serve, default), tf-serving (…/v1/models/<name>) or kserve-v2 (…/v2/models/<name>: Triton, KServe, TorchServe, MLServer)',
    )
    .option(
      '--target-layout <layout>',
      'a model server: how to send images, nhwc (default), nchw (PyTorch exports) or flat',
    )
    .option(
      '--target-output <kind>',
      'a model server: what it answers, auto (default: probabilities if distributions, else logits), probs, logits or labels',
    )
    .option(
      '--target-output-name <name>',
      'a model server with several outputs: the one to read (default: the only one, else the first, with a note)',
    )
    .option(
      '--target-mean <values>',
      "a model server: subtract this per channel before sending, one value or one per channel separated by '/' (what torchvision's Normalize did in training)",
    )
    .option('--target-std <values>', 'a model server: then divide by this per channel (see --target-mean)')
    .option('--timeout <s>', 'a model server: seconds each request may take (default 30)', intArg(1))
    .option(
      '--concurrency <n>',
      'a model server: requests in flight at once when a query spans several (of 64 inputs each); answers are the same as one at a time (default 1)',
      intArg(1),
    )
    .addOption(new Option('--progress-json', 'progress as JSON lines on stderr (for scripts)').hideHelp())
    .addHelpText(
      'after',
      '\nExamples:\n  $ mse attack -d adult -v logistic -a eq-lr -b 1x\n  $ mse attack -d breast-cancer -a retrain-uniform -b 50x --seed 2\n  $ mse attack -d linear -a eq-lr -b 11 --out results/demo --json\n  $ mse attack -d mushroom -v tree:depth=6 -a tree-path -b 20k\n  $ mse attack -d mnist -a knockoff:pool=fashion-mnist -b 1k,5k,10k\n  $ mse attack -d mnist -a knockoff:labels=top1,epochs=5 -b 5k --defense top1\n  $ mse attack -d mnist -a knockoff -b 5k --target http://127.0.0.1:8000/v2/models/mnist --protocol kserve-v2 --target-layout nchw',
    )
    .action(async (opts) => (await import('./attack.js')).attack(program.opts<GlobalOptions>(), opts));

  program
    .command('serve')
    .description(
      'serve a (cached) victim behind its defenses as an HTTP prediction API, with API keys, budgets, rate limits and proof-of-work',
    )
    .requiredOption('-d, --dataset <name>', 'the victim’s dataset')
    .option('-v, --victim <spec>', 'victim model (default: cnn for images, logistic/softmax for tables)')
    .option('-s, --seed <n>', 'victim seed (the cached victim of mse attack/bench with this seed)', intArg(0), 1)
    .option(
      '--defense <spec>',
      'defense, repeatable, applied in order',
      (v: string, acc: string[]) => [...acc, v],
      [] as string[],
    )
    .option('--pow <on|off>', 'require a solved proof-of-work puzzle per request (adds the pow defense)', 'off')
    .option(
      '--keys <file>',
      'API keys as JSON: {"keys": [{"key", "id", "budget"?, "ratePerSec"?, "admin"?}]}, ids unique; an "admin": true key may read /metrics. Without it the API is open and /metrics answers loopback clients only',
    )
    .option(
      '-p, --port <n>',
      'port, 0–65535 (0: any free one; the address is printed)',
      (v: string) => {
        const n = Number(v);
        if (!/^\d+$/.test(v.trim()) || n > 65535) throw new InvalidArgumentError('must be an integer from 0 to 65535.');
        return n;
      },
      8080,
    )
    .option('--host <addr>', 'interface to listen on', '127.0.0.1')
    .option('--max-batch <n>', 'most inputs per request', intArg(1), 1024)
    .option(
      '--audit-log <file>',
      'append every request, answered or refused, to this JSON-lines file (checked writable at start-up; rotated at 64 MiB)',
    )
    .addHelpText(
      'after',
      '\nExamples:\n  $ mse serve -d mnist --defense mad:eps=0.5,argmax=true --pow on --port 8080\n  $ mse serve -d adult -v logistic --keys keys.json --audit-log audit.jsonl\n  $ mse attack -d mnist -a knockoff -b 5k --target http://127.0.0.1:8080',
    )
    .action(async (opts) => (await import('./serve.js')).serve(program.opts<GlobalOptions>(), opts));

  program
    .command('bench')
    .description(
      'sweep datasets × victims × defenses × attacks × seeds (× budgets) into results/<run>/results.csv and summarise attacker success vs defender utility',
    )
    .option('-d, --dataset <name>', 'dataset, repeatable', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option(
      '-v, --victim <spec>',
      'victim model, repeatable (default: cnn for images, logistic/softmax for tables)',
      (v: string, acc: string[]) => [...acc, v],
      [] as string[],
    )
    .option(
      '--defense <spec>',
      "defense, repeatable; a value list sweeps (mad:eps=0.1,0.5,1), '+' stacks (round:decimals=2+top1); `none` is always added unless --no-baseline",
      (v: string, acc: string[]) => [...acc, v],
      [] as string[],
    )
    .option('--no-baseline', 'do not add the undefended baseline')
    .option(
      '-a, --attack <spec>',
      'attack, repeatable (default: knockoff for image victims, equation solving + a label-only attack for tables)',
      (v: string, acc: string[]) => [...acc, v],
      [] as string[],
    )
    .option('-b, --budget <list>', 'budgets, e.g. 1k,5k,10k or 1x,10x (default by victim kind)')
    .option('--seeds <n>', 'seeds 1..n (default 3; --quick: 1)', intArg(1))
    .option(
      '--spec <file>',
      'a JSON sweep spec with datasets, victims, defenses, attacks, budgets, seeds, plugins (plugin paths relative to the spec; flags override its fields)',
    )
    .option('-j, --jobs <n>', 'worker processes, one single-threaded cell each (default: cores)', intArg(1))
    .option('-o, --out <dir>', 'output directory (default results/bench-<time>); re-running the same command resumes')
    .option('--quick', 'a small grid that finishes in about a minute on 2 cores (1 seed, small budgets, few epochs)')
    .option(
      '--transfer <n>',
      "image victims: craft FGSM and PGD examples (ε 0.1, 0.3) on each surrogate from the first n test images the victim gets right, and record how often they fool the victim (the issue's 1000; costs 42 surrogate gradient passes over them per row)",
      intArg(1),
    )
    .option('--json', 'print the summary as JSON')
    .option(
      '--plan',
      'print what would run (cells, rows, what --out already has) and an estimated wall time, then exit without training',
    )
    .option(
      '--shard <i/n>',
      'run only shard i of n (a deterministic, balanced slice of the grid) into <out>/shard-i-of-n.csv; join with mse merge',
    )
    .option(
      '--emit <slurm|github>',
      'write job files for running the shards elsewhere instead of running (Slurm array + merge job, or a GitHub Actions matrix)',
    )
    .option('--shards <n>', 'shards for --emit', intArg(1), 4)
    .option('--slurm-time <t>', 'Slurm --time per shard (default 04:00:00)')
    .option('--slurm-cpus <n>', 'Slurm --cpus-per-task (default 2)', intArg(1))
    .option('--slurm-mem <m>', 'Slurm --mem per shard, e.g. 8G')
    .option('--slurm-partition <p>', 'Slurm partition')
    .addHelpText(
      'after',
      '\nExamples:\n  $ mse bench --defense poison --dataset mnist --quick\n  $ mse bench --defense poison --dataset mnist --plan\n  $ mse bench -d mnist --defense mad:eps=0.5,1,argmax=true --defense reverse-sigmoid:beta=0.2,0.8 -b 1k,5k --seeds 3 -o results/mnist-defenses\n  $ mse bench -d adult -d breast-cancer --defense round:decimals=2,3,4 --seeds 3\n  $ mse bench --spec bench/sweeps/quick.json --jobs 2\n  $ mse bench -d mnist --defense mad:eps=0.1,0.5,1 --seeds 5 -o results/big --emit slurm --shards 8 --slurm-mem 8G',
    )
    .action(async (opts) => (await import('./bench.js')).bench(program.opts<GlobalOptions>(), opts));

  program
    .command('run-cell', { hidden: true })
    .description('run one plan cell read as JSON on stdin; rows as JSON lines (mse bench’s worker)')
    .action(async () => (await import('./run-cell.js')).runCellCommand(program.opts<GlobalOptions>()));

  program
    .command('report')
    .description(
      'trade-off tables against the strongest attacker (Pareto frontier marked) and figures (SVG + PNG) from a results CSV, and one self-contained interactive page (index.html)',
    )
    .argument('<run>', 'a run directory (results/<run>) or a results.csv')
    .option('-o, --out <dir>', 'where to write report.md, index.html and the figures (default <run>/report)')
    .option('--no-png', 'SVG only')
    .option('--no-html', 'no index.html')
    .addHelpText(
      'after',
      '\nExamples:\n  $ mse report results/mnist-defenses\n  $ mse report results/bench-2026-11-23/results.csv --out /tmp/report',
    )
    .action(async (run: string, opts) => (await import('./report.js')).report(run, opts));

  program
    .command('merge')
    .description("join a sweep's shard CSVs into results.csv, checking every cell of its grid is present exactly once")
    .argument('<run...>', 'the run directory (its shard-*.csv and manifest.json), or shard CSV files')
    .option('-o, --out <file>', 'merged CSV (default <run>/results.csv)')
    .addHelpText('after', '\nExamples:\n  $ mse merge results/big\n  $ mse merge results/big/shard-*.csv')
    .action(async (runs: string[], opts) =>
      (await import('./merge.js')).merge(program.opts<GlobalOptions>(), runs, opts),
    );

  program
    .command('repair')
    .description(
      'make a damaged results CSV readable: keep every good row, move damaged and torn lines to <file>.damaged',
    )
    .argument('<run>', 'a run directory (results/<run>) or a results CSV')
    .addHelpText(
      'after',
      '\nExamples:\n  $ mse repair results/mnist-defenses\n  $ mse repair results/big/shard-2-of-8.csv',
    )
    .action(async (run: string) => (await import('./repair.js')).repair(run));

  program
    .command('compare')
    .description(
      'compare two result CSVs: per-metric deltas joined on cells, paired t-tests when seeds allow, cells in only one file',
    )
    .argument('<a>', 'the reference results.csv')
    .argument('<b>', 'the new results.csv')
    .option('--timing', 'also compare timing columns (attacker CPU, PoW, slowdown, wall time)')
    .option(
      '--tolerance <x>',
      'with one seed, a change beyond this counts (relative for counts and seconds)',
      (v: string) => {
        const n = Number(v);
        if (!(n >= 0)) throw new InvalidArgumentError('must be a number ≥ 0.');
        return n;
      },
      0.01,
    )
    .option(
      '--fail-on-regression',
      'exit 1 when a metric moved (significantly, or beyond the tolerance) or a cell is missing from <b>',
    )
    .option('--all', 'list unchanged metrics too')
    .option('--json', 'print the comparison as JSON')
    .option('--html <file>', 'also write the comparison as a self-contained page (deltas, significance, a figure)')
    .addHelpText(
      'after',
      '\nExamples:\n  $ mse compare results/main/results.csv results/branch/results.csv\n  $ mse compare a.csv b.csv --fail-on-regression --tolerance 0.02\n  $ mse compare results/main/results.csv results/branch/results.csv --html results/compare.html',
    )
    .action(async (a: string, b: string, opts) => (await import('./compare.js')).compare(a, b, opts));

  program
    .command('reproduce')
    .description(
      "run a paper's reproduction spec (bench/papers/<paper>.json), write CSV + table, check every figure against its expected band",
    )
    .argument('[papers...]', 'paper ids (e.g. tramer-2016) or spec files')
    .option('--all', 'every paper in bench/papers that has the scale')
    .option('--scale <name>', 'ci (minutes) or full', 'ci')
    .option('--plan', "print each paper's query passes, what --out holds and an estimated time, then exit")
    .option(
      '-o, --out <dir>',
      'output directory (default results/<paper>-<scale>; several papers: results/reproduce-<scale>/<paper>); re-running resumes',
    )
    .option(
      '--shard <i/n>',
      "run only task i of n's query passes (numbered across the papers) into shard CSVs; a later run without it folds them in and checks",
    )
    .option(
      '--emit <slurm>',
      'write a Slurm array (one task per query pass) and a dependent check + report job instead of running',
    )
    .option('--slurm-time <t>', 'Slurm --time per task (default 04:00:00)')
    .option('--slurm-cpus <n>', 'Slurm --cpus-per-task (default 2)', intArg(1))
    .option('--slurm-mem <m>', 'Slurm --mem per task, e.g. 8G')
    .option('--slurm-partition <p>', 'Slurm partition')
    .addHelpText(
      'after',
      '\nExamples:\n  $ mse reproduce tramer-2016                # the CI-sized version\n  $ mse reproduce tramer-2016 --scale full --out results/tramer-full\n  $ mse reproduce --all --scale full --emit slurm --slurm-mem 8G   # then: bash results/reproduce-full/submit.sh',
    )
    .action(async (papers: string[], opts) =>
      (await import('./reproduce.js')).reproduce(program.opts<GlobalOptions>(), papers, opts),
    );

  program
    .command('datasets')
    .description('list datasets and their local availability; fetch or verify their files')
    .argument('[action]', 'list | fetch | verify', 'list')
    .argument('[names...]', 'datasets to fetch or verify (default: all)')
    .option('--json', 'print as JSON')
    .addHelpText(
      'after',
      '\nExamples:\n  $ mse datasets\n  $ mse datasets fetch mnist fashion-mnist     # download into datasets/ with checksum checks\n  $ mse datasets verify                        # re-check every local file against its sha256',
    )
    .action(async (action: string, names: string[], opts) =>
      (await import('./datasets.js')).datasets(program.opts<GlobalOptions>(), action, names, opts),
    );

  program
    .command('list')
    .description('list available models, datasets, defenses and backends')
    .argument('[what]', 'models | datasets | attacks | defenses | backends | all', 'all')
    .addHelpText('after', '\nExamples:\n  $ mse list\n  $ mse list models')
    .action(async (what: string) => (await import('./list.js')).list(what));

  return program;
}

export async function main(argv: string[]): Promise<void> {
  // a bench worker (spawned with an IPC channel) stops when its parent dies, however it dies
  if (process.send) (await import('./parent-watch.js')).dieWithParent();
  const program = buildProgram();
  let code = 0;
  try {
    await program.parseAsync(argv);
  } catch (err) {
    code = report(err);
  }
  // The wasm backend's thread pool must not keep the process alive; a command may have set
  // process.exitCode (a failed check) without throwing.
  process.exit(code || Number(process.exitCode ?? 0));
}

function report(err: unknown): number {
  if (err instanceof CommanderError) {
    if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help')
      return 0;
    return 2; // commander already printed the one-line message
  }
  const user = asUserError(err);
  if (user) {
    const msg = user.message.replace(/\s*\n\s*/g, ' ');
    process.stderr.write(`mse: error: ${msg}${user.hint ? ` (${user.hint})` : ''}\n`);
    return user.exitCode;
  }
  const e = err as Error;
  process.stderr.write(`mse: internal error: ${e?.stack ?? String(err)}\n`);
  return 1;
}
