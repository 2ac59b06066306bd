/**
 * MAZE: data-free model stealing by zeroth-order gradient estimation (Kariyappa, Prakash, Qureshi,
 * CVPR 2021; reference code github.com/sanjaykariyappa/MAZE). The game of ./data-free.ts with MAZE's
 * choices: the disagreement is KL(victim ‖ clone) between probabilities (§3, eq. 3), 10 random
 * directions per gradient estimate (§3.2, `--ndirs 10`), B = 128, n_G = 1, n_C = 5 clone steps of
 * which the first reuses the generator step's queries, and n_R = 10 experience-replay steps per
 * iteration on earlier queries (§3.3, `--iter_exp 10`). The paper's Fashion-MNIST runs use 5M queries.
 */
import { defineAttack } from './define.js';
import { dataFreeParams, runDataFree } from './data-free.js';

export const maze = defineAttack({
  name: 'maze',
  describe:
    'MAZE: data-free stealing with a generator, KL disagreement, zeroth-order gradients and experience replay (Kariyappa 2021)',
  params: dataFreeParams({ batch: 128, directions: 10, sSteps: 5, replay: 10, loss: 'kl', paper: 'MAZE' }),
  learningCurve: true,
  requires: { reveals: 'probs' },
  run: (p, api, know, rng, opts) => runDataFree('maze', p, true, api, know, rng, opts),
});
