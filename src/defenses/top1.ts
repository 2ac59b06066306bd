/**
 * `top1`: reveal only the predicted class (the label-only API every paper reports as a baseline;
 * Tramèr et al. 2016 §6 attack it by retraining). The defended accuracy equals the victim's exactly.
 */
import { tf } from '../compute/backend.js';
import type { Defense, Labels } from '../api/types.js';

export function top1(): Defense {
  return {
    name: 'top1',
    params: {},
    reveals: 'labels',
    output: (p) => ({ labels: tf.argMax(p, 1) as Labels }),
  };
}
