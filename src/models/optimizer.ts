/**
 * Optimisers for the training loop. Where the backend has mse's fused update kernels (wasm with the
 * native BLAS) each variable is updated by one kernel; elsewhere tfjs's own Adam / momentum SGD do
 * the same arithmetic op by op. Hyperparameters as in tf.train: Adam β1 = 0.9, β2 = 0.999, ε = 1e-7.
 */
import { tf } from '../compute/backend.js';
import { ADAM_KERNEL, MOMENTUM_KERNEL } from '../compute/kernels/native-optim.js';

export interface OptimizerConfig {
  optimizer: 'adam' | 'sgd';
  lr: number;
  momentum?: number;
}

export interface StepOptimizer {
  /** Minimise `loss` over `vars` by one step; returns the loss when `returnLoss` (caller disposes). */
  minimize(loss: () => tf.Scalar, returnLoss: boolean, vars: tf.Variable[]): tf.Scalar | undefined;
  /** One step with gradients computed elsewhere (`grads[i]` for `vars[i]`; the caller disposes them). */
  apply(grads: tf.Tensor[], vars: tf.Variable[]): void;
  dispose(): void;
}

export function makeOptimizer(cfg: OptimizerConfig): StepOptimizer {
  const kernel = cfg.optimizer === 'adam' ? ADAM_KERNEL : MOMENTUM_KERNEL;
  if (tf.getKernel(kernel, tf.getBackend())) return new FusedOptimizer(cfg);
  const opt = cfg.optimizer === 'adam' ? tf.train.adam(cfg.lr) : tf.train.momentum(cfg.lr, cfg.momentum ?? 0.9);
  return {
    minimize: (loss, returnLoss, vars) => opt.minimize(loss, returnLoss, vars) ?? undefined,
    apply: (grads, vars) => opt.applyGradients(vars.map((v, i) => ({ name: v.name, tensor: grads[i] }))),
    dispose: () => {
      opt.dispose();
      // tfjs 4.22's MomentumOptimizer.dispose() forgets the learning-rate scalar it inherits from SGD
      (opt as unknown as { c?: tf.Tensor }).c?.dispose();
    },
  };
}

class FusedOptimizer implements StepOptimizer {
  private readonly state = new Map<tf.Variable, tf.Tensor[]>();
  private t = 0;
  constructor(private readonly cfg: OptimizerConfig) {}

  minimize(loss: () => tf.Scalar, returnLoss: boolean, vars: tf.Variable[]): tf.Scalar | undefined {
    const { value, grads } = tf.variableGrads(loss, vars);
    this.apply(
      vars.map((v) => grads[v.name]),
      vars,
    );
    tf.dispose(Object.values(grads));
    if (returnLoss) return value;
    value.dispose();
    return undefined;
  }

  apply(grads: tf.Tensor[], vars: tf.Variable[]): void {
    this.t += 1;
    const b1 = 0.9;
    const b2 = 0.999;
    vars.forEach((v, i) => {
      const g = grads[i];
      const st =
        this.state.get(v) ??
        (this.cfg.optimizer === 'adam' ? [tf.zerosLike(v), tf.zerosLike(v)] : [tf.zerosLike(v)]).map((t) => tf.keep(t));
      const out =
        this.cfg.optimizer === 'adam'
          ? (tf
              .engine()
              .runKernel(
                ADAM_KERNEL,
                { w: v, m: st[0], v: st[1], g },
                { lr: this.cfg.lr, b1, b2, eps: 1e-7, b1t: b1 ** this.t, b2t: b2 ** this.t },
              ) as tf.Tensor[])
          : (tf
              .engine()
              .runKernel(
                MOMENTUM_KERNEL,
                { w: v, vel: st[0], g },
                { lr: this.cfg.lr, mu: this.cfg.momentum ?? 0.9 },
              ) as tf.Tensor[]);
      v.assign(out[0]);
      out[0].dispose();
      tf.dispose(st);
      this.state.set(
        v,
        out.slice(1).map((t) => tf.keep(t)),
      );
    });
  }

  dispose(): void {
    for (const st of this.state.values()) tf.dispose(st);
    this.state.clear();
  }
}
