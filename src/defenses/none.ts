/** `none`: the undefended API — probabilities as the victim computes them. The baseline every row is compared with. */
import type { Defense } from '../api/types.js';

export function none(): Defense {
  return { name: 'none', params: {} };
}
