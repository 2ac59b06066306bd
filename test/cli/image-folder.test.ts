/**
 * A folder of the user's images, end to end through the built CLI: the PyTorch-exported MNIST CNN
 * (test/fixtures/onnx) judged on MNIST digits written as PNG files gets exactly the accuracy its
 * recorded PyTorch probabilities give, and is attacked by Knockoff with a pool of other images in
 * another size and colour (JPEG, RGB, 32×32), resized to the victim's input; serial and --jobs 2
 * give the same rows, and a changed pool is a new experiment.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadDataset } from '../../src/data/registry.js';
import { exampleSize } from '../../src/data/types.js';
import { readResults } from '../../src/runner/csv-writer.js';
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
const tmp = (p: string) => mkdtempSync(path.join(os.tmpdir(), p));

let data = '';
let pool = '';
let have = false;
let recordedAcc = 0;
beforeAll(async () => {
  have = (await onnxRuntime()) !== undefined;
  const ds = await loadDataset('mnist');
  const d = exampleSize(ds);
  const digit = (i: number) =>
    Buffer.from(Array.from(ds.test.x.subarray(i * d, (i + 1) * d), (v) => Math.round(v * 255)));
  // train/: digits 100…399; test/: digits 0…99, whose PyTorch probabilities the fixture recorded
  data = tmp('mse-digits-');
  for (let i = 0; i < 400; i++) {
    const dir = path.join(data, i < 100 ? 'test' : 'train', String(ds.test.y[i]));
    mkdirSync(dir, { recursive: true });
    await sharp(digit(i), { raw: { width: 28, height: 28, channels: 1 } })
      .toColourspace('b-w')
      .png()
      .toFile(path.join(dir, `${i}.png`));
  }
  // the pool: other digits as a user might have them, RGB JPEGs of another size, no classes
  pool = tmp('mse-pool-');
  for (let i = 400; i < 900; i++)
    await sharp(digit(i), { raw: { width: 28, height: 28, channels: 1 } })
      .resize(32, 32)
      .toColourspace('srgb')
      .jpeg({ quality: 90 })
      .toFile(path.join(pool, `${i}.jpg`));
  const want = JSON.parse(readFileSync('test/fixtures/onnx/mnist-cnn.probs.json', 'utf8')) as { probs: number[][] };
  recordedAcc = want.probs.filter((p, i) => p.indexOf(Math.max(...p)) === ds.test.y[i]).length / want.probs.length;
}, 120_000);

describe('a folder of images as the data and as the pool', () => {
  it('the ONNX victim’s accuracy on the PNGs is PyTorch’s; Knockoff with a resized JPEG pool steals it', (ctx) => {
    if (!have) ctx.skip();
    const r = mse([
      'attack',
      '-d',
      `folder:path=${data}`,
      '-v',
      `onnx:path=${MODEL}`,
      '-a',
      `knockoff:pool=folder:path=${pool}`,
      '-b',
      '400',
      '--json',
    ]);
    expect(r.code, r.err).toBe(0);
    const row = JSON.parse(r.out.trim().split('\n').pop()!) as Record<string, string | number>;
    expect(row.status).toBe('ok');
    expect(row.victim_acc).toBeCloseTo(recordedAcc, 12);
    expect(recordedAcc).toBeGreaterThan(0.9);
    expect(row.dataset_variant).toMatch(/^folder-[0-9a-f]{16}$/);
    // the pool as it was loaded: the victim's 28×28 grey, in the row
    expect(row.attack_params).toContain(`pool=[folder:channels=1,path=${pool},size=28x28,test=0.3]`);
    // a copy from 400 digits agrees with the victim far above chance (0.1)
    expect(Number(row.agreement_test)).toBeGreaterThan(0.5);
  });

  it('serial and --jobs 2 give the same rows; a changed pool folder is another cell', async (ctx) => {
    if (!have) ctx.skip();
    const grid = (out: string, jobs: string) => [
      'bench',
      '-d',
      `folder:path=${data}`,
      '-v',
      `onnx:path=${MODEL}`,
      '-a',
      `knockoff:pool=[folder:path=${pool},size=28x28,channels=1]`,
      '--defense',
      'round:decimals=1',
      '-b',
      '100',
      '--seeds',
      '1',
      '--jobs',
      jobs,
      '-o',
      out,
      '-q',
    ];
    const dir = tmp('mse-folder-sweep-');
    const a = mse(grid(path.join(dir, 'serial'), '1'));
    expect(a.code, a.err).toBe(0);
    const b = mse(grid(path.join(dir, 'jobs'), '2'));
    expect(b.code, b.err).toBe(0);
    const strip = (rows: Array<Record<string, string>>) =>
      rows.map(({ run_id: _r, wall_s: _w, attacker_cpu_s: _c, phase_s: _p, ...rest }) => JSON.stringify(rest)).sort();
    const serial = readResults(path.join(dir, 'serial', 'results.csv'));
    expect(serial).toHaveLength(2);
    expect(strip(readResults(path.join(dir, 'jobs', 'results.csv')))).toEqual(strip(serial));

    // resumed: the same pool is the same cell; another image in it is a new one
    const attack = (out: string) =>
      mse([
        'attack',
        '-d',
        `folder:path=${data}`,
        '-v',
        `onnx:path=${MODEL}`,
        '-a',
        `knockoff:pool=folder:path=${pool}`,
        '-b',
        '100',
        '-o',
        out,
        '-q',
      ]);
    const out = path.join(dir, 'resume');
    expect(attack(out).code).toBe(0);
    const again = attack(out);
    expect(again.err).toMatch(/already in .*nothing to do/);
    await sharp({ create: { width: 32, height: 32, channels: 3, background: '#808080' } })
      .jpeg()
      .toFile(path.join(pool, 'zz-new.jpg'));
    expect(attack(out).code).toBe(0);
    const ids = readResults(path.join(out, 'results.csv')).map((r) => r.cell_id);
    expect(ids).toHaveLength(2);
    expect(ids[0]).not.toBe(ids[1]);
  });
});
