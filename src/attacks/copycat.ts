/**
 * CopycatCNN (Correia-Silva, Berriel, Badue, de Souza, Oliveira-Santos, IJCNN 2018; IBM ART's
 * `CopycatCNN`): label non-problem-domain natural images with the target's top-1 answer only and
 * train a copy on them (§III, the NPD fake dataset). That is exactly Knockoff's random strategy with
 * `labels=top1`, so this preset runs `knockoff:labels=top1` — same queries, same surrogate for a
 * seed — and is listed under its own name for users who know it from ART. Deviation: the paper also
 * mixes in problem-domain images and fine-tunes an ImageNet-pretrained VGG; here the pool is the
 * victim dataset's default out-of-distribution pool and the surrogate is trained from scratch.
 */
import type { Schema } from '../params.js';
import { defineAttack } from './define.js';
import { knockoff, POOL } from './knockoff.js';
import { SURROGATE_PARAMS } from './surrogate.js';

// top-1 labels are what CopycatCNN is: neither the labels choice nor a defense-aware inversion of probabilities applies
const {
  labels: _labels,
  adapt: _adapt,
  'adapt-beta': _beta,
  'adapt-gamma': _gamma,
  'adapt-defense': _defense,
  'adapt-shadows': _shadows,
  ...TRAINING
} = SURROGATE_PARAMS;

export const copycat = defineAttack({
  name: 'copycat',
  describe:
    'CopycatCNN: top-1 labels on non-problem-domain images (Correia-Silva 2018; ART CopycatCNN); equals knockoff:labels=top1',
  params: { ...POOL, ...TRAINING } as const satisfies Schema,
  learningCurve: true,
  requires: (p) => ({ pool: p.pool }),
  run: (p, api, know, rng, opts) => knockoff.create({ ...p, labels: 'top1' }).run(api, know, rng, opts),
});
