/**
 * A victim that answers labels only (the user's own model, `output=labels`, or an argmax export that
 * output=auto reads as labels) is planned and run as an API that reveals labels only, as with `top1`:
 * label-only attacks steal it, attacks that need probabilities are not-applicable before any query,
 * and defenses that rework probabilities are refused when the plan is made.
 */
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineAttack } from '../../src/attacks/define.js';
import { ATTACKS } from '../../src/attacks/registry.js';
import { initBackend } from '../../src/compute/backend.js';
import { loadDataset } from '../../src/data/registry.js';
import { UsageError } from '../../src/errors.js';
import { makePlan, type CellRequest } from '../../src/runner/plan.js';
import { runCell } from '../../src/runner/run-cell.js';
import { HAVE_SHARED } from '../testing/fixtures.js';
import { saveLayersModel } from '../testing/tfjs-files.js';

/** an attack that needs probabilities and assumes no family: only what the API reveals can refuse it */
const PROBE = defineAttack({
  name: 'probe-needs-probs',
  describe: 'test probe',
  params: {},
  requires: { reveals: 'probs', victims: 'any' },
  run: () => Promise.reject(new Error('the probe must not run against a labels-only API')),
});

let file = '';
beforeAll(async () => {
  await initBackend('wasm', { threads: 1 });
  ATTACKS.add(PROBE);
  // a k-column model the user declares labels-only: blobs (3 classes, 2 features)
  const ds = await loadDataset('blobs');
  const model = tf.sequential({
    layers: [
      tf.layers.dense({
        inputShape: ds.inputShape,
        units: 8,
        activation: 'relu',
        kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }),
      }),
      tf.layers.dense({ units: ds.numClasses, kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }) }),
    ],
  });
  model.compile({ optimizer: tf.train.adam(0.05), loss: tf.losses.softmaxCrossEntropy });
  const x = tf.tensor(ds.train.x, [ds.train.n, ...ds.inputShape]);
  const y = tf.oneHot(tf.tensor1d(ds.train.y, 'int32'), ds.numClasses);
  await model.fit(x, y, { epochs: 5, batchSize: 64, shuffle: false, verbose: 0 });
  tf.dispose([x, y]);
  file = await saveLayersModel(model, mkdtempSync(path.join(os.tmpdir(), 'mse-labels-')));
  model.dispose();
}, 120_000);

afterAll(() => {
  ATTACKS.remove(PROBE.name);
});

const request = (victim: string, attack: string, defenses: string[] = [], dataset = 'blobs'): CellRequest => ({
  dataset,
  victim,
  attack,
  defenses,
  budgets: ['300'],
  seed: 1,
});

describe('a victim declared output=labels', () => {
  it('is stolen by a label-only attack: its stolen model agrees with it far above chance (1/3)', async () => {
    const plan = await makePlan([request(`tfjs:path=${file},output=labels`, 'jbda:seedsize=20,epochs=20')], {
      data: {},
      unifSize: 500,
    });
    const { rows } = await runCell(plan.cells[0], { runId: 't' });
    expect(rows).toHaveLength(1);
    const row = rows[0];
    expect(row.status).toBe('ok');
    expect(row.queries).toBe(300);
    expect(Number(row.victim_acc)).toBeGreaterThan(0.9);
    expect(Number(row.agreement_test)).toBeGreaterThan(0.8);
    // labels keep every top-1 answer: the honest user's accuracy is the victim's
    expect(Number(row.defended_acc)).toBeCloseTo(Number(row.victim_acc), 12);
  });

  it('an attack that needs probabilities is not-applicable before any query; equation solving too', async () => {
    const plan = await makePlan(
      [
        request(`tfjs:path=${file},output=labels`, PROBE.name),
        request(`tfjs:path=${file},output=labels`, 'eq-softmax'),
      ],
      { data: {}, unifSize: 100 },
    );
    const [probe, eq] = await Promise.all(plan.cells.map((c) => runCell(c, { runId: 't' }))).then((o) =>
      o.map((x) => x.row),
    );
    expect(probe.status).toBe(
      'not-applicable: probe-needs-probs cannot run here: it needs probabilities, the API reveals labels only',
    );
    expect(probe.queries).toBe(0);
    expect(eq.status).toMatch(/^not-applicable: eq-softmax cannot run here: /);
    expect(eq.queries).toBe(0);
    // the same model read as it answers (probabilities) is the probe's to run: the refusal is the labels'
    const probs = await makePlan([request(`tfjs:path=${file}`, PROBE.name)], { data: {}, unifSize: 100 });
    await expect(runCell(probs.cells[0], { runId: 't' })).rejects.toThrow(/must not run against a labels-only API/);
  });

  it('defenses that rework probabilities are refused when the plan is made; top1 and input defenses are not', async () => {
    for (const d of ['mad:eps=0.5', 'reverse-sigmoid', 'round'])
      await expect(makePlan([request(`tfjs:path=${file},output=labels`, 'jbda', [d])], { data: {} })).rejects.toThrow(
        new RegExp(
          `^defense '${d.split(':')[0]}' needs probabilities but the victim tfjs:.*output=labels.* answers labels only$`,
        ),
      );
    await expect(
      makePlan([request(`tfjs:path=${file},output=labels`, 'jbda', ['mad'])], { data: {} }),
    ).rejects.toBeInstanceOf(UsageError);
    const ok = await makePlan([request(`tfjs:path=${file},output=labels`, 'jbda', ['input-noise', 'top1'])], {
      data: {},
    });
    expect(ok.cells[0].defenses.map((d) => d.name)).toEqual(['input-noise', 'top1']);
  });
});

describe.skipIf(!HAVE_SHARED)('an ONNX argmax export (int64 class indices), output=auto', () => {
  const ONNX = path.resolve('test/fixtures/onnx/iris-labels.onnx');

  it('is read as labels, with a note; label-only attacks run and the others are not-applicable', async () => {
    const plan = await makePlan(
      [
        request(`onnx:path=${ONNX}`, 'jbda:seedsize=20,epochs=20', [], 'iris'),
        request(`onnx:path=${ONNX}`, PROBE.name, [], 'iris'),
      ],
      { data: {}, unifSize: 500 },
    );
    expect(
      plan.data.notes.filter((n) => /answers one column of class indices: read as output=labels/.test(n)),
    ).toHaveLength(1);
    const stolen = (await runCell(plan.cells[0], { runId: 't' })).row;
    expect(stolen.status).toBe('ok');
    expect(Number(stolen.victim_acc)).toBeGreaterThan(0.8); // nearest centroid on iris
    expect(Number(stolen.agreement_test)).toBeGreaterThan(0.7);
    const probe = (await runCell(plan.cells[1], { runId: 't' })).row;
    expect(probe.status).toBe(
      'not-applicable: probe-needs-probs cannot run here: it needs probabilities, the API reveals labels only',
    );
    expect(probe.queries).toBe(0);
  });
});
