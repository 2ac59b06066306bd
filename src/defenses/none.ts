/** `none`: the undefended API — probabilities as the victim computes them. The baseline every row is compared with. */
import { defineDefense } from './define.js';

export const none = defineDefense({
  name: 'none',
  describe: 'undefended: the victim’s probabilities as they are',
  params: {},
  create: () => ({}),
});
