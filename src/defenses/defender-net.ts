/**
 * An untrained network a defense trains for itself in `prepare` (adaptive misinformation's detector,
 * SEAT's similarity encoder): the victim's own family where it is a network mse builds, else the
 * image CNN or the tabular MLP, with `outputs` units in its last layer.
 */
import type { DefenderEnv } from '../api/types.js';
import type { Rng } from '../compute/rng.js';
import type { Net } from '../models/net.js';
import { createNet, parseModelSpec } from '../models/zoo.js';

export function defenderNet(env: DefenderEnv, name: string, outputs: number, rng: Rng): Net {
  const v = env.victim;
  const image = v.inputShape.length === 3;
  const kind = v.kind === 'cnn' || v.kind === 'mlp' ? v.kind : image ? 'cnn' : 'mlp';
  return createNet(
    parseModelSpec(kind),
    { name, inputShape: v.inputShape, numClasses: outputs, kind: image ? 'image' : 'tabular' },
    rng,
  );
}
