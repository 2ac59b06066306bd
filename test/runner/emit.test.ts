/**
 * Emitted job files must carry hostile flag values without letting them run, add Slurm options or
 * YAML keys: Slurm values are validated, paths are quoted the way sbatch and bash read them, and
 * the GitHub workflow quotes every interpolated value and refuses `${{`.
 */
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { githubWorkflow, slurmScripts, validateEmitOptions, type EmitOptions } from '../../src/runner/emit.js';
import { UsageError } from '../../src/errors.js';

const base: EmitOptions = {
  args: ['-d', 'mnist', '--defense', 'mad:eps=0.1,0.5'],
  shards: 4,
  out: 'results/big',
  cwd: '/work/proj',
  mem: '8G',
};

/** What a call throws (or undefined), so a test can check its class and message together. */
function thrown(f: () => unknown): unknown {
  try {
    f();
  } catch (e) {
    return e;
  }
  return undefined;
}

/** Expect a one-line UsageError naming `flag` from validation and from both emitters. */
function expectRefused(o: EmitOptions, flag: string): void {
  for (const f of [() => validateEmitOptions(o, 'slurm'), () => slurmScripts(o), () => githubWorkflow(o)]) {
    const e = thrown(f);
    expect(e).toBeInstanceOf(UsageError);
    const msg = (e as Error).message;
    expect(msg).toContain(flag);
    expect(msg).not.toMatch(/[\n\r]/);
  }
}

/**
 * sbatch's reading of one `#SBATCH` line (src/sbatch/opt.c, _get_argument): whitespace separates
 * arguments, '…' or "…" group, a backslash escapes the next character, an unquoted # ends the line.
 */
function sbatchArgs(line: string): string[] {
  const out: string[] = [];
  let i = 0;
  for (;;) {
    while (i < line.length && /\s/.test(line[i])) i++;
    if (i >= line.length) return out;
    let arg = '';
    let q = '';
    let esc = false;
    let any = false;
    while (i < line.length && (q || !/\s/.test(line[i]))) {
      const c = line[i];
      if (esc) esc = false;
      else if (c === '\\') {
        esc = true;
        i++;
        continue;
      } else if (q) {
        if (c === q) {
          q = '';
          i++;
          continue;
        }
      } else if (c === '"' || c === "'") {
        q = c;
        i++;
        continue;
      } else if (c === '#') break;
      arg += c;
      any = true;
      i++;
    }
    if (q) throw new Error(`unmatched ${q} in ${line}`);
    if (!any) return out;
    out.push(arg);
    if (line[i] === '#') return out;
  }
}

/** All arguments sbatch takes from a script's #SBATCH header (it stops at the first command). */
function sbatchHeader(script: string): string[] {
  const args: string[] = [];
  for (const line of script.split('\n')) {
    if (line.startsWith('#SBATCH')) args.push(...sbatchArgs(line.slice('#SBATCH'.length)));
    else if (/^\s*[^#\s]/.test(line)) break;
  }
  return args;
}

describe('emit: validation', () => {
  it('accepts the documented Slurm memory and time formats and partition lists', () => {
    for (const mem of ['8G', '8000M', '512K', '1T', '16000', '4g'])
      expect(() => validateEmitOptions({ ...base, mem }, 'slurm')).not.toThrow();
    for (const time of ['30', '30:00', '04:00:00', '2-12', '2-12:30', '2-12:30:15'])
      expect(() => validateEmitOptions({ ...base, time }, 'slurm')).not.toThrow();
    for (const partition of ['gpu', 'gpu_a100', 'long.q', 'short-1,short-2'])
      expect(() => validateEmitOptions({ ...base, partition }, 'slurm')).not.toThrow();
  });

  it('refuses a --slurm-mem with an injected line, smuggled options or nonsense, naming the flag', () => {
    for (const mem of ['8G\necho INJECTED > f', '8G --wrap=id', '8G\r', '$(id)', '8 G', '', '8GB', '-1', '8G;id'])
      expectRefused({ ...base, mem }, '--slurm-mem');
  });

  it('refuses malformed --slurm-time and --slurm-partition values', () => {
    for (const time of ['4h', '04:00:00\necho x', '1-', '::', '04:00:00 --wrap=id', '`id`', '1:2:3:4'])
      expectRefused({ ...base, time }, '--slurm-time');
    for (const partition of ['gpu\n#SBATCH --wrap=id', 'gpu --wrap=id', 'a,,b', '$(id)', 'gpu;id', ''])
      expectRefused({ ...base, partition }, '--slurm-partition');
  });

  it('refuses non-integer --slurm-cpus and shard counts', () => {
    expectRefused({ ...base, cpus: 1.5 }, '--slurm-cpus');
    expectRefused({ ...base, cpus: 0 }, '--slurm-cpus');
    expectRefused({ ...base, shards: 0 }, '--shards');
  });

  it('refuses control characters anywhere: --out, the working directory and the repeated bench arguments', () => {
    expectRefused({ ...base, out: 'results/x\necho INJECTED > f' }, '--out');
    expectRefused({ ...base, out: 'results/x\u2028y' }, '--out');
    expectRefused({ ...base, cwd: '/work/pro\nj' }, 'working directory');
    expectRefused({ ...base, args: ['-d', 'mnist\necho INJECTED'] }, '-d');
    expectRefused({ ...base, args: ['--defense', 'mad:eps=0.1\u0007'] }, '--defense');
  });

  it('refuses an --out or working directory that a command would read as an option', () => {
    expectRefused({ ...base, out: '--wrap=touch pwned' }, '--out');
    expectRefused({ ...base, out: '' }, '--out');
    expectRefused({ ...base, cwd: '-x' }, 'working directory');
  });

  it('refuses a backslash in --out for Slurm (it would switch off the %A/%a patterns of --output), not for GitHub', () => {
    expect(thrown(() => slurmScripts({ ...base, out: 'res\\ults' }))).toBeInstanceOf(UsageError);
    expect(() => githubWorkflow({ ...base, out: 'res\\ults' })).not.toThrow();
  });

  it('refuses GitHub expressions in values for the workflow', () => {
    for (const o of [
      { ...base, out: 'r/${{ secrets.TOKEN }}' },
      { ...base, args: ['-d', '${{ secrets.TOKEN }}'] },
    ]) {
      const e = thrown(() => githubWorkflow(o));
      expect(e).toBeInstanceOf(UsageError);
      expect((e as Error).message).toMatch(/\$\{\{/);
    }
  });
});

describe('emit: Slurm scripts', () => {
  const hostileOut = "results/it's a dir #1 %a";
  const hostileCwd = '/work/my "proj" \\x #y';

  it('quotes --output and --chdir so that sbatch reads exactly the intended options', () => {
    const s = slurmScripts({ ...base, out: hostileOut, cwd: hostileCwd, time: '1-00:00', partition: 'gpu,cpu' });
    expect(sbatchHeader(s.array)).toEqual([
      '--job-name=mse-bench',
      '--array=0-3',
      // %% is Slurm's literal %, so the directory's own % is not a pattern
      "--output=results/it's a dir #1 %%a/slurm-%A_%a.out",
      `--chdir=${hostileCwd}`,
      '--cpus-per-task=2',
      '--time=1-00:00',
      '--mem=8G',
      '--partition=gpu,cpu',
    ]);
    expect(sbatchHeader(s.merge)).toEqual([
      '--job-name=mse-merge',
      "--output=results/it's a dir #1 %%a/slurm-merge-%j.out",
      '--cpus-per-task=1',
      '--time=00:30:00',
      `--chdir=${hostileCwd}`,
    ]);
    // plain values stay unquoted, as before
    const plain = slurmScripts(base);
    expect(plain.array).toContain('#SBATCH --output=results/big/slurm-%A_%a.out');
    expect(plain.array).toContain('#SBATCH --chdir=/work/proj');
  });

  it('end to end: bash runs the scripts with hostile-but-valid values and every argument round-trips exactly', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'mse-emit-'));
    const marker = path.join(dir, 'INJECTED');
    const cwd = path.join(dir, "proj 'q' $(touch INJECTED)");
    mkdirSync(cwd);
    const out = "res ult's/$(touch INJECTED)";
    const args = [
      '-d',
      'mnist',
      '--defense',
      `mad:eps=0.1;touch ${marker}`,
      '-a',
      '`touch INJECTED`',
      '-v',
      `"'$HOME' \\ * ~ ! & | > < { } [ ] ? #x`,
      '-b',
      '',
      '--spec',
      ' lead and trail ',
    ];
    const o: EmitOptions = { args, shards: 4, out, cwd, cpus: 3, time: '10', mem: '512K', partition: 'p' };
    const s = slurmScripts(o);
    const bin = path.join(dir, 'bin');
    mkdirSync(bin);
    // stubs print their argv, NUL-separated, instead of running anything
    for (const [name, extra] of [
      ['npx', ''],
      ['sbatch', 'echo 42'],
    ]) {
      writeFileSync(
        path.join(bin, name),
        `#!/usr/bin/env bash\nprintf '%s\\0' "$(basename "$0")" "$@" >> "$ARGV_LOG"\n${extra}\n`,
      );
      chmodSync(path.join(bin, name), 0o755);
    }
    const log = path.join(dir, 'argv.log');
    const env = {
      ...process.env,
      PATH: `${bin}:${process.env.PATH ?? ''}`,
      ARGV_LOG: log,
      SLURM_ARRAY_TASK_ID: '2',
      SLURM_CPUS_PER_TASK: '3',
    };
    const runs: string[][] = [];
    for (const [name, text] of [
      ['array', s.array],
      ['merge', s.merge],
      ['submit', s.submit],
    ] as const) {
      const file = path.join(dir, `${name}.sh`);
      writeFileSync(file, text);
      const syntax = spawnSync('bash', ['-n', file], { encoding: 'utf8' });
      expect([name, syntax.status, syntax.stderr]).toEqual([name, 0, '']);
      writeFileSync(log, '');
      const r = spawnSync('bash', [file], { encoding: 'utf8', cwd, env });
      expect([name, r.status, r.stderr]).toEqual([name, 0, '']);
      const words = readFileSync(log, 'utf8').split('\0').slice(0, -1);
      runs.push(words);
    }
    expect(runs[0]).toEqual(['npx', 'mse', 'bench', ...args, '--out', out, '--jobs', '3', '--shard', '2/4']);
    expect(runs[1]).toEqual(['npx', 'mse', 'merge', out]);
    expect(runs[2]).toEqual([
      'sbatch',
      '--parsable',
      `${out}/sbatch-array.sh`,
      'sbatch',
      '--dependency=afterok:42',
      `${out}/sbatch-merge.sh`,
    ]);
    expect(existsSync(marker)).toBe(false);
    expect(existsSync(path.join(cwd, 'INJECTED'))).toBe(false);
  });
});

describe('emit: the reported injection', () => {
  it('a --slurm-mem with a newline never becomes a script line that bash runs', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'mse-emit-'));
    const marker = path.join(dir, 'INJECTED');
    let s: ReturnType<typeof slurmScripts> | undefined;
    const e = thrown(() => (s = slurmScripts({ ...base, cwd: dir, mem: `8G\necho INJECTED > ${marker}` })));
    if (s) {
      // what the old emitter did: write the script; running it must still not run the injected line
      const bin = path.join(dir, 'bin');
      mkdirSync(bin);
      writeFileSync(path.join(bin, 'npx'), '#!/usr/bin/env bash\n');
      chmodSync(path.join(bin, 'npx'), 0o755);
      writeFileSync(path.join(dir, 'array.sh'), s.array);
      spawnSync('bash', [path.join(dir, 'array.sh')], {
        cwd: dir,
        env: { ...process.env, PATH: `${bin}:${process.env.PATH ?? ''}`, SLURM_ARRAY_TASK_ID: '0' },
      });
    }
    expect(existsSync(marker)).toBe(false);
    expect(e).toBeInstanceOf(UsageError);
  });
});

describe('emit: GitHub workflow', () => {
  it('quotes run: lines and path: values so a hostile --out or argument cannot add YAML keys', () => {
    const out = 'r/x" }, name: evil, path: /etc #';
    const args = ['-d', 'mnist', '--defense', 'a: b #c', '-a', '\'}]"{'];
    const gh = githubWorkflow({ ...base, out, args });
    const benign = githubWorkflow(base);
    // the same lines with the same keys: nothing was added or cut off
    const shape = (t: string) => t.split('\n').map((l) => l.match(/^\s*(- )?[\w-]*:?/)?.[0]);
    expect(shape(gh)).toEqual(shape(benign));
    // expressions only where the template put them
    expect(gh.match(/\$\{\{/g)?.length).toBe(benign.match(/\$\{\{/g)?.length);
    // each interpolated value is one JSON-style double-quoted YAML scalar that decodes exactly
    const runs = [...gh.matchAll(/^\s*- run: (".*")$/gm)].map((m) => JSON.parse(m[1]) as string);
    expect(runs).toContain(
      `npx mse bench -d mnist --defense 'a: b #c' -a ''\\''}]"{' --out '${out}' --shard \${{ matrix.shard }}/4`,
    );
    expect(runs).toContain(`npx mse merge '${out}'`);
    const paths = [...gh.matchAll(/path: ("(?:[^"\\]|\\.)*")/g)].map((m) => JSON.parse(m[1]) as string);
    expect(paths).toEqual([`${out}/`, `${out}/`, `${out}/`]);
  });

  const havePyYaml = spawnSync('python3', ['-c', 'import yaml'], { timeout: 10_000 }).status === 0;
  it.skipIf(!havePyYaml)(
    `a YAML parser reads exactly the intended steps${havePyYaml ? '' : ' — SKIPPED: no python3 with PyYAML here'}`,
    () => {
      const out = 'r/it is "x" }, path: /etc #';
      const args = ['-d', 'mnist', '--defense', 'a: b #c'];
      const gh = githubWorkflow({ ...base, out, args });
      const r = spawnSync(
        'python3',
        ['-c', 'import sys, json, yaml; print(json.dumps(yaml.safe_load(sys.stdin)["jobs"]))'],
        { input: gh, encoding: 'utf8' },
      );
      expect(r.stderr).toBe('');
      const jobs = JSON.parse(r.stdout) as Record<string, { steps: Array<Record<string, unknown>> }>;
      expect(jobs.shard.steps.slice(3)).toEqual([
        { run: `npx mse bench -d mnist --defense 'a: b #c' --out '${out}' --shard \${{ matrix.shard }}/4` },
        { uses: 'actions/upload-artifact@v4', with: { name: 'shard-${{ matrix.shard }}', path: `${out}/` } },
      ]);
      expect(jobs.merge.steps.slice(3)).toEqual([
        { uses: 'actions/download-artifact@v4', with: { path: `${out}/`, 'merge-multiple': true } },
        { run: `npx mse merge '${out}'` },
        { uses: 'actions/upload-artifact@v4', with: { name: 'results', path: `${out}/` } },
      ]);
    },
  );
});
