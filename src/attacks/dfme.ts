/**
 * Data-Free Model Extraction (Truong, Maini, Walls, Papernot, CVPR 2021; reference code
 * github.com/cake-lab/datafree-model-extraction). The attacker has no data at all: a generator and
 * the student play the game of ./data-free.ts with DFME's choices — the ℓ1 distance between logits
 * recovered from the probabilities (§3.2 eq. 3, §3.4), one random direction per gradient estimate
 * (§3.3 eq. 5), B = 256, n_G = 1, n_S = 5, no replay. The paper spends millions of queries (2M on
 * SVHN, 20M on CIFAR-10).
 */
import { defineAttack } from './define.js';
import { dataFreeParams, runDataFree } from './data-free.js';

export const dfme = defineAttack({
  name: 'dfme',
  describe:
    'Data-free model extraction: a generator proposes queries where the student disagrees, gradients estimated through the API (Truong 2021)',
  params: dataFreeParams({ batch: 256, directions: 1, sSteps: 5, replay: 0, loss: 'l1', paper: 'the paper' }),
  learningCurve: true,
  requires: { reveals: 'probs' },
  run: (p, api, know, rng, opts) => runDataFree('dfme', p, false, api, know, rng, opts),
});
