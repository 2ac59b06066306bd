/**
 * Defense registry: name → typed parameters and a factory. Registry key = file name = CLI value.
 * `--defense name:key=value,…` and sweep specs share `parseSpec`. A new defense is one file plus
 * one line here.
 */
import type { Defense } from '../api/types.js';
import { unknownChoice } from '../errors.js';
import { parseSpec, resolveParams, type ParamDecls, type ParamValues } from '../params.js';
import { inputNoise } from './input-noise.js';
import { mad } from './mad.js';
import { noise } from './noise.js';
import { pow } from './pow.js';
import { none } from './none.js';
import { reverseSigmoid } from './reverse-sigmoid.js';
import { round } from './round.js';
import { topk } from './topk.js';
import { top1 } from './top1.js';

export interface DefenseDef {
  describe: string;
  params: ParamDecls;
  create(p: ParamValues): Defense;
}

const MAD: ParamDecls = {
  eps: { type: 'number', min: 0, default: 0.5, help: 'ε: the perturbation budget dist(ỹ, y) ≤ ε (default 0.5, the reference README’s; at L1 ε ≥ 1 confident answers flip)' },
  ydist: { type: 'string', choices: ['l1', 'l2', 'kl'], default: 'l1', help: 'the distance ε bounds' },
  oracle: { type: 'string', choices: ['extreme', 'random', 'argmin'], default: 'extreme', help: 'target vertex: MAD’s (extreme), or the random / least-likely ablations' },
  argmax: { type: 'bool', default: false, help: 'MAD-argmax: keep every answer’s top-1 class' },
  proxy: { type: 'string', default: 'auto', help: 'the defender’s randomly initialised surrogate: auto (cnn for images, mlp otherwise) or a model kind' },
};

export const DEFENSES: Record<string, DefenseDef> = {
  none: { describe: 'undefended: the victim’s probabilities as they are', params: {}, create: () => none() },
  top1: { describe: 'labels only: reveal the predicted class, not the probabilities', params: {}, create: () => top1() },
  topk: { describe: 'reveal the k largest probabilities, renormalised', params: { k: { type: 'int', min: 1, default: 1, help: 'probabilities kept' } }, create: topk },
  round: { describe: 'round probabilities to r decimals and renormalise (Tramèr 2016 §7)', params: { decimals: { type: 'int', min: 0, max: 10, default: 2, help: 'decimals kept' } }, create: round },
  noise: { describe: 'Gaussian noise on the probabilities, clipped and renormalised', params: { sigma: { type: 'number', min: 0, default: 0.1, help: 'noise standard deviation' } }, create: noise },
  'input-noise': {
    describe: 'garble each input before the victim sees it: x + c·(x − μ) + N(0, σ²) (Grana 2020)',
    params: {
      sigma: { type: 'number', min: 0, default: 0.1, help: 'σ of the independent part' },
      corr: { type: 'number', default: 0, help: 'c: the part correlated with the input, which biases the attacker' },
    },
    create: inputNoise,
  },
  mad: { describe: 'prediction poisoning: maximise the angular deviation of the attacker’s gradient within ε (Orekondy 2020)', params: MAD, create: mad('mad') },
  poison: { describe: 'alias of mad (prediction poisoning, Orekondy 2020)', params: MAD, create: mad('poison') },
  pow: {
    describe: 'calibrated proof-of-work: a HashCash puzzle per batch, harder as the client’s PATE-kNN privacy cost outruns an honest user’s (Dziedzic 2022)',
    params: {
      batch: { type: 'int', min: 1, default: 64, help: 'queries per puzzle' },
      base: { type: 'number', min: 1, default: 1.18, help: 'time grows as base^(excess privacy cost) (the paper: 1.18 for MNIST with pknn)' },
      unit: { type: 'number', min: 0, default: 0, help: 'seconds per puzzle at zero excess cost; 0 = the victim’s own latency for a batch (honest users pay ≈ 2×)' },
      k: { type: 'int', min: 1, default: 300, help: 'PATE-kNN neighbours' },
      sigma: { type: 'number', min: 1e-9, default: 28, help: 'GNMax noise σ' },
      delta: { type: 'number', min: 1e-30, max: 1, default: 1e-5, help: 'δ of the privacy cost' },
      calib: { type: 'int', min: 1, default: 5000, help: 'held-out queries that trace the honest user (at most half the held-out set)' },
      solve: { type: 'bool', default: false, help: 'also solve every puzzle (else price it from the measured hash rate)' },
      maxbits: { type: 'int', min: 0, max: 32, default: 20, help: 'cap on the difficulty actually solved (solve=true, and the puzzles mse serve issues)' },
    },
    create: pow,
  },
  'reverse-sigmoid': {
    describe: 'reverse sigmoid deceptive perturbation (Lee et al. 2018, eqs. 3–4)',
    params: {
      beta: { type: 'number', min: 0, default: 1, help: 'β: perturbation magnitude' },
      gamma: { type: 'number', min: 1e-9, default: 0.1, help: 'γ: convergence parameter (γ = 1 makes it an affine mix toward uniform)' },
    },
    create: reverseSigmoid,
  },
};

export function parseDefense(text: string): Defense {
  const { name, raw } = parseSpec(text);
  const def = DEFENSES[name];
  if (!def) throw unknownChoice('defense', name, Object.keys(DEFENSES));
  return def.create(resolveParams(`defense ${name}`, def.params, raw));
}
