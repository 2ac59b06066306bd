/**
 * The README stays true: every fenced `npx mse …` command in it is run the way a new user would
 * type it (in a scratch directory, offline), so a renamed flag or command breaks CI instead of a
 * reader. Sweeps and image attacks that take minutes are checked with `--plan` (every name, value
 * and dataset resolved, nothing trained); `serve` is started and stopped; the results a command
 * reads (`report results/mnist`, `compare results/a …`) are made first by a fast tabular sweep at
 * the same paths. Each command must be classified below: a new one fails until it is.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { HAVE_SHARED } from '../testing/fixtures.js';

const ROOT = path.resolve('.');
const BIN = path.join(ROOT, 'bin', 'mse.js');

/** Every `npx mse …` in a fenced block, continuation lines joined, trailing comments dropped. */
export function readmeCommands(markdown: string): string[] {
  const out: string[] = [];
  let fenced = false;
  let pending = '';
  for (const raw of markdown.split('\n')) {
    if (raw.trim().startsWith('```')) {
      fenced = !fenced;
      pending = '';
      continue;
    }
    if (!fenced) continue;
    const line = pending + raw.replace(/\s+#\s.*$/, '').trim();
    if (line.endsWith('\\')) {
      pending = line.slice(0, -1).trim() + ' ';
      continue;
    }
    pending = '';
    for (const part of line.split('&&').map((p) => p.trim()))
      if (part.startsWith('npx mse ') || part === 'npx mse') out.push(part.slice('npx mse'.length).trim());
  }
  return out;
}

type Check = { how: 'run' } | { how: 'plan' } | { how: 'serve' } | { how: 'skip'; why: string };

/** How each README command is checked; the first rule that matches wins. */
function classify(cmd: string): Check | undefined {
  const [command] = cmd.split(/\s+/);
  if (command === 'serve') return { how: 'serve' };
  if (command === 'bench' && cmd.includes('--emit')) return { how: 'run' }; // writes job files only
  if (command === 'bench' || command === 'reproduce') return { how: 'plan' };
  if (command === 'attack' && (/--target\b/.test(cmd) || /-d (mnist|fashion-mnist|cifar)/.test(cmd)))
    return { how: 'plan' };
  if (command === 'report' && cmd.includes('results/full'))
    return { how: 'skip', why: 'reads what the cluster job in the same block writes' };
  if (
    ['--help', 'doctor', 'list', 'datasets', 'train', 'attack', 'report', 'compare', 'repair'].includes(command ?? '')
  )
    return { how: 'run' };
  return undefined;
}

const split = (cmd: string) => cmd.match(/"[^"]*"|'[^']*'|\S+/g)!.map((a) => a.replace(/^["']|["']$/g, ''));

describe('README commands', () => {
  const commands = readmeCommands(readFileSync(path.join(ROOT, 'README.md'), 'utf8'));

  it('finds the commands and knows how to check each one', () => {
    expect(commands.length).toBeGreaterThan(20);
    expect(commands).toContain('bench --defense poison --dataset mnist --quick');
    const unclassified = commands.filter((c) => !classify(c));
    expect(unclassified, 'add a rule to classify() for each new README command').toEqual([]);
    // what the check catches: a flag renamed under the README is a usage error, even with --plan
    const renamed = spawnSync(
      process.execPath,
      [BIN, 'bench', '--defense', 'poison', '--dataset', 'mnist', '--quik', '--plan'],
      {
        encoding: 'utf8',
      },
    );
    expect(renamed.status).toBe(2);
  });

  it.skipIf(!HAVE_SHARED)(
    'every command runs as written (sweeps and image attacks with --plan)',
    async () => {
      const dir = mkdtempSync(path.join(os.tmpdir(), 'mse-readme-'));
      const env = {
        ...process.env,
        NO_COLOR: '1',
        // the suite's victim cache, wherever the command runs
        MSE_CACHE_DIR: path.resolve(process.env.MSE_CACHE_DIR ?? '.vitest-cache'),
      };
      const mse = (args: string[]) =>
        spawnSync(process.execPath, [BIN, ...args], { cwd: dir, env, encoding: 'utf8', timeout: 300_000 });
      // what the report / compare / repair / cluster commands read, made first at the README's paths
      const fixture = (out: string) =>
        expect(
          mse([
            'bench',
            '-d',
            'linear',
            '-a',
            'eq-lr',
            '--defense',
            'round:decimals=1',
            '-b',
            '1x',
            '--seeds',
            '2',
            '-j',
            '1',
            '-o',
            out,
          ]).status,
        ).toBe(0);
      for (const out of ['results/mnist', 'results/a', 'results/b']) fixture(out);
      writeFileSync(path.join(dir, 'my-sweep.json'), JSON.stringify({ datasets: ['linear'], attacks: ['eq-lr'] }));
      const failures: string[] = [];
      const skipped: string[] = [];
      for (const cmd of commands) {
        const check = classify(cmd)!;
        const args = split(cmd);
        if (check.how === 'skip') {
          skipped.push(`${cmd} (${check.why})`);
          continue;
        }
        if (check.how === 'serve') {
          // started on a free port, answering its info endpoint, then stopped with SIGTERM
          const portless = args.map((a, i) => (args[i - 1] === '--port' ? '0' : a));
          const child = spawn(process.execPath, [BIN, ...portless], {
            cwd: dir,
            env,
            stdio: ['ignore', 'pipe', 'pipe'],
          });
          let text = '';
          child.stdout.on('data', (d: Buffer) => (text += d.toString()));
          child.stderr.on('data', (d: Buffer) => (text += d.toString()));
          const url = await new Promise<string | undefined>((resolve) => {
            const timer = setTimeout(() => resolve(undefined), 120_000);
            const look = () => {
              const m = /https?:\/\/[\d.]+:(\d+)/.exec(text);
              if (m && Number(m[1]) > 0) {
                clearTimeout(timer);
                resolve(m[0]);
              }
            };
            child.stdout.on('data', look);
            child.stderr.on('data', look);
            child.on('exit', () => resolve(undefined));
          });
          const info = url
            ? await fetch(`${url}/v1/info`)
                .then((r) => r.status)
                .catch(() => 0)
            : 0;
          child.kill('SIGTERM');
          const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
          if (!url || info !== 200 || code !== 0)
            failures.push(`${cmd}: url ${url ?? 'none'}, /v1/info ${info}, exit ${code}\n${text.slice(-400)}`);
          continue;
        }
        const r = mse(check.how === 'plan' ? [...args, '--plan'] : args);
        if (r.status !== 0 || /\n\s+at .+:\d+:\d+/.test(r.stderr))
          failures.push(`${check.how === 'plan' ? `${cmd} --plan` : cmd}: exit ${r.status}\n${r.stderr.slice(-600)}`);
      }
      expect(failures).toEqual([]);
      expect(skipped.length).toBeLessThanOrEqual(1);
    },
    600_000,
  );
});
