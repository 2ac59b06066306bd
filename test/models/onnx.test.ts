/**
 * An ONNX victim as PyTorch exports it (scripts/make-onnx-fixture.py: a small MNIST CNN, NCHW input,
 * logits out): mse runs it with onnxruntime-node and reproduces PyTorch's own probabilities. And a
 * graph that ends in argmax (scripts/make-onnx-labels-fixture.py: int64 class indices of shape [n])
 * is read as labels. A victim declared with mean and std (a model trained behind PyTorch's
 * transforms.Normalize: scripts/make-onnx-normalized-fixture.py) gets (x − mean) / std first.
 */
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend, tf } from '../../src/compute/backend.js';
import { loadDataset } from '../../src/data/registry.js';
import type { Dataset } from '../../src/data/types.js';
import { predictProbs, type Model } from '../../src/models/model.js';
import { onnxRuntime, OnnxModel } from '../../src/models/onnx.js';
import { MODELS, parseModelSpec } from '../../src/models/zoo.js';
import { UsageError } from '../../src/errors.js';
import { HAVE_SHARED } from '../testing/fixtures.js';

const MODEL = 'test/fixtures/onnx/mnist-cnn.onnx';
const want = JSON.parse(readFileSync('test/fixtures/onnx/mnist-cnn.probs.json', 'utf8')) as { probs: number[][] };

beforeAll(async () => {
  await initBackend('wasm', { threads: 1 });
});

describe.skipIf(!HAVE_SHARED)('ONNX victims', () => {
  it("reproduce PyTorch's probabilities for the first 100 test digits within 1e-5 (NCHW read from the graph, softmax on logits)", async () => {
    expect(await onnxRuntime()).toBeDefined();
    const ds = await loadDataset('mnist');
    const m = await OnnxModel.load(MODEL, ds, { layout: 'auto', output: 'auto' });
    const x = tf.tensor(ds.test.x.subarray(0, 100 * 784), [100, 28, 28, 1]);
    const p = await predictProbs(m, x);
    const got = p.arraySync();
    let worst = 0;
    for (let i = 0; i < 100; i++)
      for (let j = 0; j < 10; j++) worst = Math.max(worst, Math.abs(got[i][j] - want.probs[i][j]));
    expect(worst).toBeLessThan(1e-5);
    tf.dispose([x, p]);
    m.dispose();
  });

  it('a model that is not ONNX, or declared to output probabilities it does not, is one line', async () => {
    const ds = await loadDataset('mnist');
    await expect(
      OnnxModel.load('test/fixtures/onnx/mnist-cnn.probs.json', ds, { layout: 'auto', output: 'auto' }),
    ).rejects.toThrow(/is not an ONNX model onnxruntime can load/);
    await expect(OnnxModel.load(MODEL, ds, { layout: 'auto', output: 'probs' })).rejects.toThrow(
      /declared output=probs, but its answers are not probabilities/,
    );
    await expect(
      OnnxModel.load(MODEL, { ...ds, inputShape: [784] }, { layout: 'auto', output: 'auto' }),
    ).rejects.toThrow(/takes inputs of shape \[n, 1, 28, 28\], the data has 784 features/);
  });
});

describe('an ONNX victim that answers labels (an int64 argmax)', () => {
  const LABELS = 'test/fixtures/onnx/iris-labels.onnx';
  // iris-shaped inputs (4 features in [−1, 1], 3 classes): the fixture is nearest-centroid on them
  const n = 64;
  const x = new Float32Array(n * 4).map((_, i) => Math.sin(i * 1.7));
  const ds = { inputShape: [4], numClasses: 3, test: { x, y: new Int32Array(n), n } };
  const centroids = [
    [-0.619, 0.194, -0.847, -0.88],
    [-0.04, -0.338, 0.134, 0.049],
    [0.3, -0.179, 0.572, 0.604],
  ];
  const nearest = (i: number) => {
    const d = centroids.map((c) => c.reduce((s, v, j) => s + (x[i * 4 + j] - v) ** 2, 0));
    return d.indexOf(Math.min(...d));
  };

  it('auto reads it as labels, and its one-hot rows are the classes it answers', async () => {
    expect(await onnxRuntime()).toBeDefined();
    const m = await OnnxModel.load(LABELS, ds, { layout: 'auto', output: 'auto' });
    expect(m.labelsOnly).toBe(true);
    const xt = tf.tensor(x, [n, 4]);
    const p = await predictProbs(m, xt);
    const rows = p.arraySync();
    const classes = rows.map((r) => r.indexOf(1));
    expect(classes).toEqual(Array.from({ length: n }, (_, i) => nearest(i)));
    expect(new Set(classes).size).toBeGreaterThan(1);
    for (const r of rows) expect(r.reduce((a, b) => a + b, 0)).toBe(1);
    tf.dispose([xt, p]);
    m.dispose();
  });

  it('declared output=probs, an argmax export is one line that names output=labels', async () => {
    await expect(OnnxModel.load(LABELS, ds, { layout: 'auto', output: 'probs' })).rejects.toThrow(
      /model .*iris-labels\.onnx answers 1 values per input, the data has 3 classes/,
    );
    await expect(
      OnnxModel.load(LABELS, { ...ds, numClasses: 2 }, { layout: 'auto', output: 'labels' }),
    ).rejects.toThrow(/answered 2, not a class index 0…1/);
  });
});

describe.skipIf(!HAVE_SHARED)('ONNX victims trained behind transforms.Normalize (mean, std)', () => {
  const n = 100;
  /** The victim a spec names, loaded for the dataset as a run loads it (checked, then normalized). */
  async function victim(spec: string, ds: Dataset): Promise<Model> {
    const s = parseModelSpec(spec);
    const load = MODELS.get(s.kind).load;
    if (!load) throw new Error(`${s.kind} is not a loaded model`);
    return load(ds, s.params);
  }
  async function answers(m: Model, x: Float32Array): Promise<number[][]> {
    const xt = tf.tensor(x, [n, 28, 28, 1]);
    const p = await predictProbs(m, xt);
    const rows = p.arraySync();
    tf.dispose([xt, p]);
    return rows;
  }
  const worst = (a: number[][], b: number[][]) =>
    Math.max(...a.flatMap((row, i) => row.map((v, j) => Math.abs(v - b[i][j]))));

  it('mean=0.5,std=2 answers as onnxruntime does on (x − 0.5) / 2 fed by hand, within 1e-5', async () => {
    const rt = await onnxRuntime();
    if (!rt) throw new Error('onnxruntime-node is not installed');
    const ds = await loadDataset('mnist');
    const x = ds.test.x.slice(0, n * 784);
    // by hand: normalized, NCHW (one channel: the same order as NHWC), softmax of the logits
    const session = await rt.InferenceSession.create(MODEL);
    const out = await session.run({
      input: new rt.Tensor(
        'float32',
        Float32Array.from(x, (v) => (v - 0.5) / 2),
        [n, 1, 28, 28],
      ),
    });
    const logits = Array.from(out.logits.data as Float32Array);
    await session.release();
    const want = Array.from({ length: n }, (_, i) => {
      const row = logits.slice(i * 10, i * 10 + 10);
      const top = Math.max(...row);
      const e = row.map((v) => Math.exp(v - top));
      const s = e.reduce((a, b) => a + b, 0);
      return e.map((v) => v / s);
    });
    const m = await victim(`onnx:path=${MODEL},mean=0.5,std=2`, ds);
    const plain = await victim(`onnx:path=${MODEL}`, ds);
    expect(worst(await answers(m, x), want)).toBeLessThan(1e-5);
    // and normalizing changed them: the plain victim's answers are far from these
    expect(worst(await answers(plain, x), want)).toBeGreaterThan(1e-2);
    expect(ds.test.x.subarray(0, n * 784)).toEqual(x); // the data is left in its own domain
    m.dispose();
    plain.dispose();
  });

  it('mean=0,std=1 answers exactly as no mean and std', async () => {
    const ds = await loadDataset('mnist');
    const x = ds.test.x.subarray(0, n * 784);
    const identity = await victim(`onnx:path=${MODEL},mean=0,std=1`, ds);
    const plain = await victim(`onnx:path=${MODEL}`, ds);
    expect(await answers(identity, x)).toEqual(await answers(plain, x));
    identity.dispose();
    plain.dispose();
  });

  it("a model trained on normalized MNIST, exported without it, gives PyTorch's probabilities with mean and std", async () => {
    // scripts/make-onnx-normalized-fixture.py: trained as the PyTorch MNIST example, Normalize((0.1307,), (0.3081,))
    const fixture = JSON.parse(readFileSync('test/fixtures/onnx/mnist-cnn-normalized.probs.json', 'utf8')) as {
      probs: number[][];
    };
    const file = 'test/fixtures/onnx/mnist-cnn-normalized.onnx';
    const ds = await loadDataset('mnist');
    const x = ds.test.x.subarray(0, n * 784);
    const m = await victim(`onnx:path=${file},mean=0.1307,std=0.3081`, ds);
    expect(worst(await answers(m, x), fixture.probs)).toBeLessThan(1e-5);
    m.dispose();
    const raw = await victim(`onnx:path=${file}`, ds);
    expect(worst(await answers(raw, x), fixture.probs)).toBeGreaterThan(1e-2);
    raw.dispose();
  });

  it('statistics that do not fit the data are one line at load, bad values one line when the spec is read', async () => {
    const ds = await loadDataset('mnist');
    await expect(victim(`onnx:path=${MODEL},mean=0.485/0.456/0.406`, ds)).rejects.toThrow(
      /^model onnx: mean has 3 values, but the data \(28×28×1\) has 1 channel$/,
    );
    await expect(victim(`onnx:path=${MODEL},std=0.5/0.5`, ds)).rejects.toThrow(
      /^model onnx: std has 2 values, but the data \(28×28×1\) has 1 channel$/,
    );
    expect(() => parseModelSpec(`onnx:path=${MODEL},std=0`)).toThrow(/^model onnx: std must be > 0/);
    expect(() => parseModelSpec(`onnx:path=${MODEL},std=-1`)).toThrow(/^model onnx: std must be > 0/);
    expect(() => parseModelSpec(`onnx:path=${MODEL},mean=zero`)).toThrow(/^model onnx: mean must be a finite number/);
  });
});

describe('ONNX victims exported with a fixed batch, several outputs, or answers that change (make-onnx-odd-fixtures.py)', () => {
  const DIR = 'test/fixtures/onnx';
  // the fixtures' nearest-centroid classifier, by hand: softmax(3·(μ_c·x − |μ_c|²/2))
  const centroids = [
    [-0.619, 0.194, -0.847, -0.88],
    [-0.04, -0.338, 0.134, 0.049],
    [0.3, -0.179, 0.572, 0.604],
  ];
  const logitsOf = (x: Float32Array, i: number) =>
    centroids.map((c) => 3 * c.reduce((s, v, j) => s + v * x[i * 4 + j] - (v * v) / 2, 0));
  const softmax = (z: number[]) => {
    const e = z.map((v) => Math.exp(v - Math.max(...z)));
    return e.map((v) => v / e.reduce((a, b) => a + b, 0));
  };
  /** n iris-shaped rows; the first feature is > 0.5 (where the odd fixtures misbehave) from row `farFrom` on */
  const rows = (n: number, farFrom = n) =>
    new Float32Array(n * 4).map((_, i) =>
      i % 4 === 0 ? (Math.floor(i / 4) >= farFrom ? 0.8 : -0.5) + 0.1 * Math.sin(i) : Math.sin(i * 1.7),
    );
  const dataset = (x: Float32Array) => ({
    inputShape: [4],
    numClasses: 3,
    test: { x, y: new Int32Array(x.length / 4), n: x.length / 4 },
  });
  async function answers(m: OnnxModel, x: Float32Array): Promise<number[][]> {
    const xt = tf.tensor(x, [x.length / 4, 4]);
    try {
      const p = await predictProbs(m, xt);
      const out = p.arraySync();
      p.dispose();
      return out;
    } finally {
      xt.dispose();
    }
  }
  const worst = (got: number[][], x: Float32Array) =>
    Math.max(...got.flatMap((r, i) => r.map((v, j) => Math.abs(v - softmax(logitsOf(x, i))[j]))));

  it('a graph that takes batches of exactly 1 (or 5) is run that many at a time, with a note saying so', async () => {
    const x = rows(13, 7);
    for (const [file, b] of [
      ['iris-batch1.onnx', 1],
      ['iris-batch5.onnx', 5],
    ] as const) {
      const before = tf.memory().numTensors;
      const m = await OnnxModel.load(`${DIR}/${file}`, dataset(rows(64)), { layout: 'auto', output: 'auto' });
      expect(m.notes).toEqual([
        `model ${DIR}/${file} takes batches of exactly ${b}: run ${b} at a time; export with dynamic_axes={'input': {0: 'n'}} for speed`,
      ]);
      expect(worst(await answers(m, x), x)).toBeLessThan(1e-5); // 13 rows: 2 batches of 5 and 3 padded
      m.dispose();
      expect(tf.memory().numTensors).toBe(before);
    }
  });

  it('a graph with two outputs uses the first, and its notes say which', async () => {
    const m = await OnnxModel.load(`${DIR}/iris-two-outputs.onnx`, dataset(rows(64)), {
      layout: 'auto',
      output: 'auto',
    });
    expect(m.notes).toEqual([`model ${DIR}/iris-two-outputs.onnx has outputs logits, probs: using logits`]);
    const x = rows(20, 10);
    expect(worst(await answers(m, x), x)).toBeLessThan(1e-5); // read as logits: softmax applied
    m.dispose();
  });

  it('NaN answers past the first test examples are one line naming the model', async () => {
    const m = await OnnxModel.load(`${DIR}/iris-nan.onnx`, dataset(rows(64)), { layout: 'auto', output: 'auto' });
    await expect(answers(m, rows(10))).resolves.toHaveLength(10);
    await expect(answers(m, rows(10, 8))).rejects.toThrow(
      /^model test\/fixtures\/onnx\/iris-nan\.onnx answered NaN\/Infinity for some inputs$/,
    );
    m.dispose();
    // and on the first test examples, at load
    await expect(
      OnnxModel.load(`${DIR}/iris-nan.onnx`, dataset(rows(64, 60)), { layout: 'auto', output: 'auto' }),
    ).rejects.toThrow(/iris-nan\.onnx answered NaN\/Infinity for some inputs/);
  });

  it('answers that switch from probabilities to logits contradict what auto decided: one line naming output=', async () => {
    const m = await OnnxModel.load(`${DIR}/iris-mixed.onnx`, dataset(rows(64)), { layout: 'auto', output: 'auto' });
    expect(worst(await answers(m, rows(10)), rows(10))).toBeLessThan(1e-5);
    const later = answers(m, rows(10, 5));
    await expect(later).rejects.toThrow(UsageError);
    await expect(later).rejects.toThrow(
      /^model test\/fixtures\/onnx\/iris-mixed\.onnx was read as output=probs \(auto: decided from its answers to the first 64 inputs\), but 5 of 10 later rows are not probabilities$/,
    );
    await later.catch((e: UsageError) => expect(e.hint).toMatch(/declare .*output=logits or output=probs/));
    m.dispose();
    // declared: the message says so
    const declared = await OnnxModel.load(`${DIR}/iris-mixed.onnx`, dataset(rows(64)), {
      layout: 'auto',
      output: 'probs',
    });
    await expect(answers(declared, rows(10, 5))).rejects.toThrow(
      /iris-mixed\.onnx was declared output=probs, but its answers to some inputs are not probabilities \(5 of 10 rows\)/,
    );
    declared.dispose();
    // both kinds among the first answers: refused at load
    await expect(
      OnnxModel.load(`${DIR}/iris-mixed.onnx`, dataset(rows(64, 40)), { layout: 'auto', output: 'auto' }),
    ).rejects.toThrow(/answers probabilities for some of the first 64 inputs and not for others \(40 of 64 rows/);
  });
});
