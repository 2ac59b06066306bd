/**
 * Job files for running a sweep's shards elsewhere: a Slurm array job (one task per shard, then a
 * merge job that depends on all of them) or a GitHub Actions matrix workflow. Both run the same
 * `mse bench` arguments with `--shard i/n` added, then `mse merge`. Every value is validated first
 * and quoted for whatever reads it (bash, sbatch's #SBATCH parser, YAML), so a flag value can never
 * add a command, a Slurm option or a workflow key.
 */
import { UsageError } from '../errors.js';

export interface EmitOptions {
  /** the bench arguments to repeat (without --emit/--shards/--shard) */
  args: string[];
  shards: number;
  out: string;
  /** the project directory the jobs run in (where mse is installed) */
  cwd: string;
  /**
   * what the jobs run (default: `mse bench <args>` per shard, then `mse merge`): the mse arguments
   * of one array task (`--shard i/n` is added) and of the job that runs after all of them
   */
  command?: { name: string; task: string[]; after: string[][] };
  /** Slurm resources */
  time?: string;
  cpus?: number;
  mem?: string;
  partition?: string;
}

/**
 * Shell quoting for bash: words of only these characters need none; anything else goes in single
 * quotes, where bash gives no character a meaning except the closing quote, which is written as
 * '\'' (close, escaped quote, reopen). Newlines would survive this too, but validation refuses them.
 */
function quote(a: string): string {
  return /^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, "'\\''")}'`;
}

/**
 * Quoting for an `#SBATCH` line. No shell reads those lines: sbatch splits them itself
 * (src/sbatch/opt.c, _get_argument) at whitespace, groups "…" or '…', takes a backslash as
 * "the next character literally" (inside quotes too) and ends the line at an unquoted #. So a
 * value in double quotes, with \ and " backslash-escaped, reaches sbatch as one exact argument.
 */
function sbatchQuote(a: string): string {
  return /^[\w@%+=:,./-]+$/.test(a) ? a : `"${a.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

/**
 * A YAML double-quoted scalar. JSON's string syntax is a subset of YAML's, so no value can close
 * the scalar early and add keys, a flow-mapping entry or a comment.
 */
function yamlQuote(a: string): string {
  return JSON.stringify(a);
}

// C0 and C1 controls, DEL, and what YAML 1.1 or editors treat as line breaks (NEL is in C1), and
// the byte-order mark YAML refuses inside a document
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\ufeff]/;

function describeChar(c: string): string {
  if (c === '\n') return 'a newline';
  if (c === '\r') return 'a carriage return';
  if (c === '\t') return 'a tab';
  if (c === '\u2028' || c === '\u2029') return 'a Unicode line separator';
  if (c === '\ufeff') return 'a byte-order mark';
  return `a control character (U+${c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')})`;
}

/**
 * The value as it appears in a one-line message: JSON-escaped, so a newline stays "\n"; JSON
 * leaves DEL, C1 controls (which some terminals obey) and U+2028/9 raw, so escape those too.
 */
function shown(v: string): string {
  return JSON.stringify(v).replace(
    /[\u007f-\u009f\u2028\u2029\ufeff]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

function refuseControl(what: string, v: string): void {
  const m = CONTROL.exec(v);
  if (m)
    throw new UsageError(
      `${what} contains ${describeChar(m[0])}: ${shown(v)}`,
      'job files cannot carry control characters or line breaks; remove it',
    );
}

/** Paths that commands in the job files take as operands: a leading '-' would read as an option. */
function refusePathLike(what: string, v: string): void {
  refuseControl(what, v);
  if (v === '') throw new UsageError(`${what} must not be empty`);
  if (v.startsWith('-')) throw new UsageError(`${what} must not start with '-': ${shown(v)}`, `write it as ./${v}`);
}

// Slurm's --mem: a whole number with an optional K/M/G/T suffix (no suffix: megabytes)
const SLURM_MEM = /^\d+[KMGTkmgt]?$/;
// Slurm's --time: MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS
const SLURM_TIME =
  /^(\d+|\d+:\d{1,2}|\d+:\d{1,2}:\d{1,2}|\d+-\d{1,2}|\d+-\d{1,2}:\d{1,2}|\d+-\d{1,2}:\d{1,2}:\d{1,2})$/;
const SLURM_PARTITION = /^[A-Za-z0-9_.-]+(,[A-Za-z0-9_.-]+)*$/;

/** The flag a repeated bench argument came from, for the message: the option before a value. */
function argName(args: string[], i: number): string {
  if (args[i].startsWith('-')) return `bench argument ${args[i].split('=')[0]}`;
  return i > 0 && args[i - 1].startsWith('-') ? `the value of ${args[i - 1]}` : `bench argument ${shown(args[i])}`;
}

/**
 * Refuse (UsageError, naming the flag) any value that the job files for `target` could not carry
 * exactly. Both emitters call it before producing anything; the CLI calls it before writing.
 */
export function validateEmitOptions(o: EmitOptions, target: 'slurm' | 'github'): void {
  if (!Number.isInteger(o.shards) || o.shards < 1)
    throw new UsageError(`--shards must be a whole number of at least 1, got ${o.shards}`);
  o.args.forEach((a, i) => refuseControl(argName(o.args, i), a));
  for (const a of [...(o.command?.task ?? []), ...(o.command?.after.flat() ?? [])]) refuseControl('an argument', a);
  refusePathLike('--out', o.out);
  refusePathLike('the working directory', o.cwd);
  if (o.cpus !== undefined && (!Number.isInteger(o.cpus) || o.cpus < 1))
    throw new UsageError(`--slurm-cpus must be a whole number of at least 1, got ${o.cpus}`);
  if (o.mem !== undefined && !SLURM_MEM.test(o.mem))
    throw new UsageError(
      `--slurm-mem must be like 8G, 8000M, 512K, 1T or a whole number of megabytes, got ${shown(o.mem)}`,
    );
  if (o.time !== undefined && !SLURM_TIME.test(o.time))
    throw new UsageError(`--slurm-time must be MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS, got ${shown(o.time)}`);
  if (o.partition !== undefined && !SLURM_PARTITION.test(o.partition))
    throw new UsageError(
      `--slurm-partition must be a partition name of letters, digits, _ . - (or a comma-separated list), got ${shown(o.partition)}`,
    );
  if (target === 'slurm') {
    // Slurm turns a backslash anywhere in --output into "expand no %-patterns", which would put
    // every shard's log into one file named literally slurm-%A_%a.out; no escape avoids that
    if (o.out.includes('\\'))
      throw new UsageError(
        `--out contains a backslash, which Slurm's --output cannot carry: ${shown(o.out)}`,
        'choose a directory without one',
      );
  } else {
    // GitHub evaluates ${{ … }} in any string of a workflow, quoted or not
    for (const [what, v] of [['--out', o.out], ...o.args.map((a, i) => [argName(o.args, i), a])]) {
      if (v.includes('${{'))
        throw new UsageError(
          `${what} contains '\${{', which GitHub Actions would evaluate as an expression: ${shown(v)}`,
        );
    }
  }
}

/** The --out directory inside a Slurm filename pattern: % is Slurm's escape, %% a literal %. */
function slurmPatternDir(out: string): string {
  return out.replace(/%/g, '%%');
}

export function slurmScripts(o: EmitOptions): { array: string; merge: string; submit: string } {
  validateEmitOptions(o, 'slurm');
  const res = [
    `#SBATCH --cpus-per-task=${o.cpus ?? 2}`,
    `#SBATCH --time=${o.time ?? '04:00:00'}`,
    ...(o.mem ? [`#SBATCH --mem=${o.mem}`] : []),
    ...(o.partition ? [`#SBATCH --partition=${o.partition}`] : []),
  ];
  const name = o.command?.name ?? 'bench';
  const task = o.command
    ? [
        // one process per task, as many threads as Slurm gave it
        'export MSE_THREADS="${SLURM_CPUS_PER_TASK:-1}"',
        `npx mse ${o.command.task.map(quote).join(' ')} --shard "\${SLURM_ARRAY_TASK_ID}/${o.shards}"`,
      ]
    : [
        `npx mse bench ${o.args.map(quote).join(' ')} --out ${quote(o.out)} --jobs "\${SLURM_CPUS_PER_TASK:-1}" --shard "\${SLURM_ARRAY_TASK_ID}/${o.shards}"`,
      ];
  // every step runs (a report is still worth having when a band failed); the job fails with the first failure
  const after = o.command
    ? ['status=0', ...o.command.after.map((a) => `npx mse ${a.map(quote).join(' ')} || status=$?`), 'exit "$status"']
    : [`npx mse merge ${quote(o.out)}`];
  const array = [
    '#!/usr/bin/env bash',
    `#SBATCH --job-name=mse-${name}`,
    `#SBATCH --array=0-${o.shards - 1}`,
    `#SBATCH --output=${sbatchQuote(`${slurmPatternDir(o.out)}/slurm-%A_%a.out`)}`,
    `#SBATCH --chdir=${sbatchQuote(o.cwd)}`,
    ...res,
    'set -euo pipefail',
    ...task,
    '',
  ].join('\n');
  const merge = [
    '#!/usr/bin/env bash',
    `#SBATCH --job-name=${o.command ? `mse-${name}-merge` : 'mse-merge'}`,
    `#SBATCH --output=${sbatchQuote(`${slurmPatternDir(o.out)}/slurm-merge-%j.out`)}`,
    '#SBATCH --cpus-per-task=1',
    `#SBATCH --time=00:30:00`,
    `#SBATCH --chdir=${sbatchQuote(o.cwd)}`,
    'set -euo pipefail',
    ...after,
    '',
  ].join('\n');
  const submit = [
    '#!/usr/bin/env bash',
    '# submit the shards, then the merge once every shard has succeeded',
    'set -euo pipefail',
    `cd ${quote(o.cwd)}`,
    `jid=$(sbatch --parsable ${quote(o.out)}/sbatch-array.sh)`,
    `sbatch --dependency=afterok:$jid ${quote(o.out)}/sbatch-merge.sh`,
    '',
  ].join('\n');
  return { array, merge, submit };
}

export function githubWorkflow(o: EmitOptions): string {
  validateEmitOptions(o, 'github');
  const shards = Array.from({ length: o.shards }, (_, i) => i).join(', ');
  // values reach YAML only inside double-quoted scalars; ${{ matrix.shard }} is the template's own
  // (and quoted too: a plain scalar inside a { } flow mapping cannot hold braces)
  const run = (cmd: string) => yamlQuote(cmd);
  const dir = yamlQuote(`${o.out}/`);
  return `# generated by mse bench --emit github: one job per shard, then a merge job
name: mse-bench
on: workflow_dispatch
jobs:
  shard:
    runs-on: ubuntu-latest
    strategy:
      fail-fast: false
      matrix:
        shard: [${shards}]
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-node@v4
        with: { node-version: 20 }
      - run: npm ci
      - run: ${run(`npx mse bench ${o.args.map(quote).join(' ')} --out ${quote(o.out)} --shard \${{ matrix.shard }}/${o.shards}`)}
      - uses: actions/upload-artifact@v4
        with: { name: "shard-\${{ matrix.shard }}", path: ${dir} }
  merge:
    needs: shard
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-node@v4
        with: { node-version: 20 }
      - run: npm ci
      - uses: actions/download-artifact@v4
        with: { path: ${dir}, merge-multiple: true }
      - run: ${run(`npx mse merge ${quote(o.out)}`)}
      - uses: actions/upload-artifact@v4
        with: { name: results, path: ${dir} }
`;
}
