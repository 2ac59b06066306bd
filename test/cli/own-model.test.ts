/**
 * The user's own model as the victim, end to end through the built CLI: a TF.js model trained here
 * (as a user would in TF.js or convert from Keras) is attacked with `-v tfjs:path=…`, defended, swept
 * with workers, and its bad forms are one line each.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/compute/backend.js';
import { loadDataset } from '../../src/data/registry.js';
import { readResults } from '../../src/runner/csv-writer.js';
import { saveLayersModel } from '../testing/tfjs-files.js';
import { HAVE_SHARED } from '../testing/fixtures.js';

const ROOT = path.resolve('.');
function mse(args: string[]) {
  const r = spawnSync(process.execPath, [path.join(ROOT, 'bin/mse.js'), ...args], {
    encoding: 'utf8',
    env: { ...process.env, NO_COLOR: '1' },
    timeout: 180_000,
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}
const tmp = (p: string) => mkdtempSync(path.join(os.tmpdir(), p));

let file = '';
let accuracy = 0;
beforeAll(async () => {
  await initBackend('wasm', { threads: 1 });
  const ds = await loadDataset('iris');
  const model = tf.sequential({
    layers: [
      tf.layers.dense({
        inputShape: ds.inputShape,
        units: 16,
        activation: 'relu',
        kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }),
      }),
      tf.layers.dense({ units: ds.numClasses, kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }) }), // logits, as a PyTorch export gives
    ],
  });
  model.compile({ optimizer: tf.train.adam(0.05), loss: tf.losses.softmaxCrossEntropy });
  const x = tf.tensor(ds.train.x, [ds.train.n, ...ds.inputShape]);
  const y = tf.oneHot(tf.tensor1d(ds.train.y, 'int32'), ds.numClasses);
  await model.fit(x, y, { epochs: 60, batchSize: 32, shuffle: false, verbose: 0 });
  const pred = tf.tidy(() =>
    tf.argMax(model.predict(tf.tensor(ds.test.x, [ds.test.n, ...ds.inputShape])) as tf.Tensor, 1).dataSync(),
  );
  accuracy = pred.filter((p, i) => p === ds.test.y[i]).length / ds.test.n;
  file = await saveLayersModel(model, tmp('mse-own-'));
  tf.dispose([x, y]);
  model.dispose();
}, 120_000);

describe('your own TF.js model as the victim', () => {
  it('is attacked as it is: its accuracy is its own, the stolen model is measured against it', () => {
    expect(accuracy).toBeGreaterThan(0.8);
    const r = mse([
      'attack',
      '-d',
      'iris',
      '-v',
      `tfjs:path=${file}`,
      '-a',
      'jbda:seedsize=20,epochs=20',
      '-b',
      '300',
      '--json',
      '-q',
    ]);
    expect(r.code, r.err).toBe(0);
    const row = JSON.parse(r.out) as Record<string, string | number>;
    expect(row.victim).toBe(`tfjs:layout=auto,output=auto,path=${file}`);
    expect(row.victim_acc).toBeCloseTo(accuracy, 12);
    expect(row.status).toBe('ok');
    expect(row.queries).toBe(300);
    expect(Number(row.agreement_test)).toBeGreaterThan(0.6);
  });

  it('declared output=labels: the API reveals labels only, JBDA still steals it, MAD is refused in one line', () => {
    const args = ['attack', '-d', 'iris', '-v', `tfjs:path=${file},output=labels`, '-b', '300', '--json', '-q'];
    const r = mse([...args, '-a', 'jbda:seedsize=20,epochs=20']);
    expect(r.code, r.err).toBe(0);
    const row = JSON.parse(r.out) as Record<string, string | number>;
    expect(row.victim).toBe(`tfjs:layout=auto,output=labels,path=${file}`);
    expect(row.victim_acc).toBeCloseTo(accuracy, 12);
    expect(row.defended_acc).toBeCloseTo(accuracy, 12); // labels keep every top-1 answer
    expect(row.status).toBe('ok');
    expect(Number(row.agreement_test)).toBeGreaterThan(0.6); // chance: 1/3
    const mad = mse([...args, '-a', 'jbda', '--defense', 'mad:eps=0.5']);
    expect(mad.code).toBe(2);
    expect(mad.err).toMatch(
      /^mse: error: defense 'mad' needs probabilities but the victim tfjs:.* answers labels only/m,
    );
    expect(mad.err).not.toMatch(/internal error|\n\s+at /);
  });

  it('defended and swept with workers, the family defaults apply (Knockoff needs a pool a table lacks: not-applicable)', () => {
    const dir = tmp('mse-own-sweep-');
    const r = mse([
      'bench',
      '-d',
      'iris',
      '-v',
      `tfjs:path=${file}`,
      '--defense',
      'mad:eps=0.5',
      '-b',
      '200',
      '--seeds',
      '1',
      '--jobs',
      '2',
      '-o',
      dir,
      '-q',
    ]);
    expect(r.code, r.err).toBe(0);
    const rows = readResults(path.join(dir, 'results.csv'));
    expect(rows).toHaveLength(4); // none + mad, × knockoff + jbda
    for (const row of rows) {
      expect(Number(row.victim_acc)).toBeCloseTo(accuracy, 12);
      if (row.attack === 'knockoff') expect(row.status).toMatch(/^not-applicable: .*no default transfer pool for iris/);
      else expect(row.status).toBe('ok');
    }
    const mad = rows.find((x) => x.defense === 'mad' && x.attack === 'jbda')!;
    expect(Number(mad.perturbation_l1)).toBeGreaterThan(0);
  });

  it("the model's files are part of the cell's id: retrained weights are a new cell, not a resumed one", () => {
    const dir = tmp('mse-own-hash-');
    for (const f of ['model.json', 'weights.bin']) copyFileSync(path.join(path.dirname(file), f), path.join(dir, f));
    const copy = path.join(dir, 'model.json');
    const run = () =>
      mse([
        'attack',
        '-d',
        'iris',
        '-v',
        `tfjs:path=${copy}`,
        '-a',
        'jbda:seedsize=20,epochs=2',
        '-b',
        '100',
        '-o',
        path.join(dir, 'out'),
        '-q',
      ]);
    expect(run().code).toBe(0);
    expect(run().err).toMatch(/already in/);
    const w = readFileSync(path.join(dir, 'weights.bin'));
    w[0] ^= 0xff; // other weights, same file names
    writeFileSync(path.join(dir, 'weights.bin'), w);
    expect(run().code).toBe(0);
    expect(new Set(readResults(path.join(dir, 'out', 'results.csv')).map((r) => r.cell_id)).size).toBe(2);
  });

  it("bad forms are one line: a missing file, another dataset's shape, a budget as a multiple", () => {
    const out = tmp('mse-own-bad-');
    const missing = mse([
      'attack',
      '-d',
      'iris',
      '-v',
      `tfjs:path=${path.join(out, 'nope.json')}`,
      '-a',
      'jbda',
      '-b',
      '100',
      '-o',
      path.join(out, 'a'),
    ]);
    expect(missing.code).toBe(1);
    expect(missing.err).toMatch(/^mse: error: model .*nope\.json does not exist$/m);
    const shape = mse([
      'attack',
      '-d',
      'breast-cancer',
      '-v',
      `tfjs:path=${file}`,
      '-a',
      'jbda',
      '-b',
      '100',
      '-o',
      path.join(out, 'b'),
    ]);
    expect(shape.code).toBe(2);
    expect(shape.err).toMatch(/takes inputs of shape \[n, 4\], the data has 30 features/);
    const multiple = mse([
      'attack',
      '-d',
      'iris',
      '-v',
      `tfjs:path=${file}`,
      '-a',
      'jbda',
      '-b',
      '1x',
      '-o',
      path.join(out, 'c'),
    ]);
    expect(multiple.code).toBe(2);
    expect(multiple.err).toMatch(/give its budget as a number of queries/);
    const save = mse(['train', '-d', 'iris', '-m', `tfjs:path=${file}`, '--save', path.join(out, 'm.json')]);
    expect(save.code).toBe(2);
    expect(save.err).toMatch(/--save: a tfjs model is loaded from its own files/);
    for (const e of [missing.err, shape.err, multiple.err, save.err]) expect(e).not.toMatch(/internal error|\n\s+at /);
    for (const d of ['a', 'b', 'c']) expect(existsSync(path.join(out, d))).toBe(false);
  });
});

describe('your own data file as the dataset', () => {
  it('a CSV is swept like a registry table (the same rows with --jobs 2), and new data is a new experiment', () => {
    const dir = tmp('mse-own-csv-');
    const data = path.join(dir, 'people.csv');
    const write = (shift: number) => {
      const lines = ['age,city,income,buys'];
      for (let i = 0; i < 200; i++)
        lines.push(
          `${20 + (i % 50)},${['oslo', 'rome', 'lima'][i % 3]},${(i * 37) % 100},${(i % 50) + ((i * 37) % 100) / 4 + shift > 40 ? 'yes' : 'no'}`,
        );
      writeFileSync(data, lines.join('\n') + '\n');
    };
    write(0);
    const grid = [
      'bench',
      '-d',
      `csv:path=${data},label=buys`,
      '-a',
      'eq-lr',
      '-a',
      'retrain-uniform',
      '-b',
      '1x',
      '--seeds',
      '1',
      '-q',
    ];
    expect(mse([...grid, '-o', path.join(dir, 'serial'), '--jobs', '1']).code).toBe(0);
    expect(mse([...grid, '-o', path.join(dir, 'jobs'), '--jobs', '2']).code).toBe(0);
    const a = readResults(path.join(dir, 'serial', 'results.csv'));
    const b = readResults(path.join(dir, 'jobs', 'results.csv'));
    expect(a).toHaveLength(2);
    const key = (rows: typeof a) => rows.map((r) => [r.cell_id, r.agreement_test, r.victim_acc].join(' ')).sort(); // workers finish in any order
    expect(key(a)).toEqual(key(b));
    expect(a[0].dataset).toBe(`csv:label=buys,path=${data},test=0.3`);
    expect(Number(a.find((r) => r.attack === 'eq-lr')!.agreement_test)).toBeGreaterThan(0.95); // equation solving is exact on a logistic victim
    write(10);
    expect(mse([...grid, '-o', path.join(dir, 'serial'), '--jobs', '1']).code).toBe(0);
    const again = readResults(path.join(dir, 'serial', 'results.csv'));
    expect(again).toHaveLength(4); // new data: new cells, not resumed ones
    expect(new Set(again.map((r) => r.dataset_variant)).size).toBe(2);
  });
});

describe.skipIf(!HAVE_SHARED)('your own ONNX model (as PyTorch exports it) as the victim', () => {
  it('mse bench -v onnx:path=… -d mnist --defense mad:eps=0.5,argmax=true completes with sensible rows', () => {
    const dir = tmp('mse-onnx-');
    const onnx = path.join(ROOT, 'test/fixtures/onnx/mnist-cnn.onnx');
    const r = mse([
      'bench',
      '-v',
      `onnx:path=${onnx}`,
      '-d',
      'mnist',
      '--defense',
      'mad:eps=0.5,argmax=true',
      '-a',
      'knockoff:epochs=5',
      '-b',
      '1000',
      '--seeds',
      '1',
      '--jobs',
      '2',
      '-o',
      dir,
      '-q',
    ]);
    expect(r.code, r.err).toBe(0);
    const rows = readResults(path.join(dir, 'results.csv'));
    expect(rows.map((x) => x.defense).sort()).toEqual(['mad', 'none']);
    for (const row of rows) {
      expect(row.status).toBe('ok');
      expect(Number(row.victim_acc)).toBeGreaterThan(0.8); // the fixture's own accuracy (optimistic: see its script)
      expect(Number(row.queries)).toBe(1000);
      expect(Number(row.agreement_test)).toBeGreaterThan(0.3); // 1000 Fashion-MNIST queries steal well above chance (0.1): measured 0.57 undefended, 0.42 under MAD
    }
    const mad = rows.find((x) => x.defense === 'mad')!;
    // MAD-argmax keeps every top-1 answer: the honest user's accuracy is the victim's, and answers are perturbed
    expect(Number(mad.defended_acc)).toBeCloseTo(Number(mad.victim_acc), 10);
    expect(Number(mad.perturbation_l1)).toBeGreaterThan(0);
    expect(Number(mad.perturbation_l1)).toBeLessThanOrEqual(0.5 + 1e-6); // within ε (L1)
    expect(mse(['doctor']).out).toMatch(/ONNX victims\s+onnxruntime-node/);
  });
});
