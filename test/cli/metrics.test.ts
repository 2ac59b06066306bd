/**
 * The rows' distribution-fidelity and transferability columns, end to end: every row has KL and L1
 * between victim and copy on the test set; `--transfer n` adds FGSM/PGD transfer rates on image
 * cells (a table has no images to perturb: empty there).
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { onnxRuntime } from '../../src/models/onnx.js';

const ROOT = path.resolve('.');
const MODEL = 'test/fixtures/onnx/mnist-cnn.onnx';
function mse(args: string[]) {
  const r = spawnSync(process.execPath, [path.join(ROOT, 'bin/mse.js'), ...args], {
    encoding: 'utf8',
    env: { ...process.env, NO_COLOR: '1' },
    timeout: 240_000,
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}
const lastRow = (out: string) => JSON.parse(out.trim().split('\n').pop()!) as Record<string, string | number>;

let have = false;
beforeAll(async () => {
  have = (await onnxRuntime()) !== undefined;
});

describe('fidelity and transferability columns', () => {
  it('--transfer on an image victim: FGSM/PGD rates in [0, 1], PGD at ε 0.3 at least FGSM at ε 0.1', (ctx) => {
    if (!have) ctx.skip();
    const r = mse([
      'attack',
      '-d',
      'mnist',
      '-v',
      `onnx:path=${MODEL}`,
      '-a',
      'knockoff:epochs=3',
      '-b',
      '500',
      '--transfer',
      '200',
      '--json',
      '-q',
    ]);
    expect(r.code, r.err).toBe(0);
    const row = lastRow(r.out);
    expect(row.status).toBe('ok');
    const rates = ['transfer_fgsm_eps01', 'transfer_fgsm_eps03', 'transfer_pgd_eps01', 'transfer_pgd_eps03'].map(
      (c) => row[c],
    );
    for (const v of rates) {
      expect(typeof v).toBe('number');
      expect(v as number).toBeGreaterThanOrEqual(0);
      expect(v as number).toBeLessThanOrEqual(1);
    }
    expect(rates[3] as number).toBeGreaterThanOrEqual(rates[0] as number);
    // a copy that agrees with the victim 100% of the time would have KL ~ 0; this one does not
    expect(row.kl_test as number).toBeGreaterThan(0);
    expect(row.l1_test as number).toBeGreaterThan(0);
    expect(row.l1_test as number).toBeLessThanOrEqual(2);
  });

  it('a table: KL and L1 always, transfer left empty even when asked', () => {
    const r = mse([
      'attack',
      '-d',
      'iris',
      '-v',
      'softmax',
      '-a',
      'eq-softmax',
      '-b',
      '1x',
      '--transfer',
      '50',
      '--json',
    ]);
    expect(r.code, r.err).toBe(0);
    const row = lastRow(r.out);
    expect(row.status).toBe('ok');
    // equation solving recovers softmax regression almost exactly: tiny KL
    expect(row.kl_test as number).toBeGreaterThanOrEqual(0);
    expect(row.kl_test as number).toBeLessThan(0.01);
    expect(row.transfer_pgd_eps03).toBe('');
  });
});
