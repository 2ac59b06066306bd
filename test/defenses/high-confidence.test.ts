/**
 * high-confidence (ART's HighConfidence postprocessor, renormalised): on concrete answers, what is
 * zeroed, what is kept and how it is renormalised, the one-hot fallback, the identity at cutoff 0,
 * the range of its cutoff; and through the runner, against equation solving.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../src/compute/backend.js';
import { Rng } from '../../src/compute/rng.js';
import { DEFENSES, parseDefense, parseDefenseSpec } from '../../src/defenses/registry.js';
import { UsageError } from '../../src/errors.js';
import { HAVE_SHARED, SHARED_DATA } from '../testing/fixtures.js';

beforeAll(async () => {
  await initBackend('wasm', { threads: 1 });
});

const ROWS = [
  [0.6, 0.3, 0.1, 0],
  [0.2, 0.2, 0.5, 0.1],
  [0.26, 0.24, 0.25, 0.25], // exactly at the default cutoff: kept
  [0.1, 0.15, 0.3, 0.45],
];

/** The defense's answer to `rows`, as arrays of rows. */
function answer(spec: string, rows: number[][] = ROWS): number[][] {
  const d = parseDefense(spec);
  const p = tf.tensor2d(rows);
  const r = d.output!(p, { answered: 0, batch: 0, rng: new Rng(1), clientId: 'test' });
  const out = r.probs!.arraySync() as number[][];
  tf.dispose([p, r.probs!]);
  return out;
}

const close = (got: number[][], want: number[][]) =>
  got.forEach((row, i) => row.forEach((v, j) => expect(v, `[${i}][${j}]`).toBeCloseTo(want[i][j], 6)));

describe('high-confidence (ART HighConfidence, renormalised)', () => {
  it('is a built-in defense with ART’s default cutoff 0.25', () => {
    expect(DEFENSES.get('high-confidence').source).toBeUndefined();
    expect(parseDefenseSpec('high-confidence').values).toEqual({ cutoff: 0.25 });
  });

  it('zeroes every probability below the cutoff and renormalises what is left', () => {
    close(answer('high-confidence'), [
      [0.6 / 0.9, 0.3 / 0.9, 0, 0],
      [0, 0, 1, 0],
      [0.26, 0, 0.25, 0.25].map((v) => v / 0.76),
      [0, 0, 0.3 / 0.75, 0.45 / 0.75],
    ]);
    close(answer('high-confidence:cutoff=0.3'), [
      [0.6 / 0.9, 0.3 / 0.9, 0, 0],
      [0, 0, 1, 0],
      [1, 0, 0, 0], // nothing at 0.3 or above: the top-1 alone
      [0, 0, 0.3 / 0.75, 0.45 / 0.75],
    ]);
  });

  it('answers distributions that keep the top-1, and zeroes exactly the entries below the cutoff', () => {
    const r = new Rng(4);
    const rows = Array.from({ length: 200 }, () => {
      const e = Array.from({ length: 6 }, () => Math.exp(r.uniform(0.3, 5) * r.normal()));
      const s = e.reduce((a, b) => a + b, 0);
      return e.map((v) => v / s);
    });
    for (const cutoff of [0.1, 0.25, 0.5]) {
      const out = answer(`high-confidence:cutoff=${cutoff}`, rows);
      out.forEach((row, i) => {
        expect(row.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
        const top = rows[i].indexOf(Math.max(...rows[i]));
        expect(row.indexOf(Math.max(...row))).toBe(top);
        const above = rows[i].some((v) => v >= cutoff);
        row.forEach((v, j) => {
          if (rows[i][j] < cutoff && (above || j !== top)) expect(v).toBe(0);
          else expect(v).toBeGreaterThan(0);
        });
      });
    }
  });

  it('an answer with nothing above the cutoff is its one-hot top-1', () => {
    close(
      answer('high-confidence:cutoff=0.9', [
        [0.4, 0.35, 0.25],
        [0.1, 0.2, 0.7],
        [0.3, 0.3, 0.4],
      ]),
      [
        [1, 0, 0],
        [0, 0, 1],
        [0, 0, 1],
      ],
    );
    // cutoff 1: every answer short of certainty is one-hot
    close(answer('high-confidence:cutoff=1'), [
      [1, 0, 0, 0],
      [0, 0, 1, 0],
      [1, 0, 0, 0],
      [0, 0, 0, 1],
    ]);
  });

  it('cutoff 0 changes nothing', () => {
    close(answer('high-confidence:cutoff=0'), ROWS);
  });

  it('a cutoff outside [0, 1] is a usage error naming it', () => {
    expect(() => parseDefenseSpec('high-confidence:cutoff=2')).toThrow(UsageError);
    expect(() => parseDefenseSpec('high-confidence:cutoff=2')).toThrow(
      "defense high-confidence: cutoff must be ≤ 1, got '2'",
    );
    expect(() => parseDefenseSpec('high-confidence:cutoff=-0.1')).toThrow(/cutoff must be ≥ 0/);
    expect(() => parseDefenseSpec('high-confidence:k=2')).toThrow(UsageError);
  });

  it.skipIf(!HAVE_SHARED)(
    'through the runner: equation solving on iris keeps every label but no longer recovers the probabilities',
    () => {
      const r = spawnSync(
        process.execPath,
        [
          'bin/mse.js',
          'attack',
          '-d',
          'iris',
          '-a',
          'eq-softmax',
          '--defense',
          'high-confidence:cutoff=0.9',
          '-b',
          '300',
          '--json',
        ],
        { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1', MSE_DATA_DIR: SHARED_DATA }, timeout: 120_000 },
      );
      expect(r.status, r.stderr).toBe(0);
      const row = JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, number | string>;
      // measured: perturbation L1 0.42, the surrogate's KL from the victim 5.3 (≈ 6e-9 at cutoff 0), agreement 1
      expect(row.status).toBe('ok');
      expect(row.defended_agreement).toBe(1);
      expect(row.defended_acc).toBe(row.victim_acc);
      expect(row.perturbation_l1).toBeGreaterThan(0.2);
      expect(row.kl_test).toBeGreaterThan(1);
    },
  );
});
