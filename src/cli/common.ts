/** Shared CLI plumbing: start the backend (and say which one), progress bars, colour. */
import type { AttackProgress } from '../attacks/types.js';
import chalk from 'chalk';
import { nativeHint } from '../compute/native.js';
import { SingleBar, Presets } from 'cli-progress';
import { initBackend, parseBackend, type BackendInfo } from '../compute/backend.js';
import type { GlobalOptions } from './options.js';

export async function startBackend(g: GlobalOptions, announce = true): Promise<BackendInfo> {
  const b = await initBackend(g.backend === 'auto' ? 'auto' : parseBackend(g.backend), { threads: g.threads });
  if (announce && !g.quiet) {
    const blas = b.label.endsWith('+openblas') ? ', native BLAS' : '';
    process.stderr.write(
      chalk.dim(
        `backend: ${b.name} (tf.getBackend() = ${b.tfBackend}${blas}, ${b.threads} thread${b.threads === 1 ? '' : 's'})\n`,
      ),
    );
    // on pure wasm where the native BLAS could run: what it would bring and how to get it, once
    const hint = b.name === 'wasm' ? nativeHint() : undefined;
    if (hint) process.stderr.write(chalk.yellow(`note: ${hint}\n`));
  }
  return b;
}

export function useBars(g: GlobalOptions): boolean {
  return !g.quiet && process.stderr.isTTY === true && !process.env.CI;
}

export function progressBar(
  g: GlobalOptions,
  label: string,
): { update(v: number, total: number, info?: string): void; stop(): void } {
  if (!useBars(g)) return { update: () => undefined, stop: () => undefined };
  const bar = new SingleBar(
    {
      format: `${label} [{bar}] {percentage}% {value}/{total} | {duration_formatted} elapsed, eta {eta_formatted} {info}`,
      stream: process.stderr,
      hideCursor: true,
    },
    Presets.shades_classic,
  );
  let started = false;
  return {
    update(v, total, info = '') {
      if (!started) {
        bar.start(total, 0, { info });
        started = true;
      }
      bar.setTotal(total);
      bar.update(v, { info });
    },
    stop() {
      if (started) bar.stop();
    },
  };
}

export function table(rows: string[][]): string {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => stripAnsi(r[c] ?? '').length)));
  return rows
    .map((r) =>
      r
        .map((cell, c) => cell + ' '.repeat(widths[c] - stripAnsi(cell).length))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

function stripAnsi(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/\u001b\[[0-9;]*m/g, '');
}

/** Progress as JSON lines on stderr, at most every 200 ms: {"progress": {phase, done, total, label}}. */
export function jsonProgress(): (phase: string, p?: AttackProgress) => void {
  let last = 0;
  return (phase, p) => {
    const now = performance.now();
    if (p && now - last < 200 && p.done < p.total) return;
    last = now;
    process.stderr.write(JSON.stringify({ progress: p ?? { phase, done: 0, total: 0 } }) + '\n');
  };
}
