/**
 * `top1`: reveal only the predicted class (the label-only API every paper reports as a baseline;
 * Tramèr et al. 2016 §6 attack it by retraining). The defended accuracy equals the victim's exactly.
 */
import { tf } from '../compute/backend.js';
import type { Labels } from '../api/types.js';
import { defineDefense } from './define.js';

export const top1 = defineDefense({
  name: 'top1',
  describe: 'labels only: reveal the predicted class, not the probabilities',
  params: {},
  reveals: 'labels',
  create: () => ({
    output: (p) => ({ labels: tf.argMax(p, 1) as Labels }),
  }),
});
