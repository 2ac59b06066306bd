/**
 * What every victim and surrogate is. `predict` returns probabilities (rows sum to 1); the caller
 * owns and disposes the result. Trainable models also expose logits, variables and a loss.
 */
import type * as tfType from '@tensorflow/tfjs';

export type Probs = tfType.Tensor2D; // [n, k], rows sum to 1
export type Logits = tfType.Tensor2D; // [n, k] (or [n, 1] for a binary logistic head)

/** The built-in model families. */
export const MODEL_KINDS = ['logistic', 'softmax', 'ovr', 'mlp', 'cnn', 'tree'] as const;
export type BuiltinModelKind = (typeof MODEL_KINDS)[number];
/** A model family's name: a built-in, or a network family a plugin defines (defineModel). */
export type ModelKind = BuiltinModelKind | (string & {});

export interface Model {
  readonly kind: ModelKind;
  readonly inputShape: number[];
  readonly numClasses: number;
  /**
   * true for a model that answers class labels only (a user's model read as output=labels): its
   * `predict` gives one-hot rows, and a prediction API around it reveals labels only
   */
  readonly labelsOnly?: boolean;
  /** what loading found that the user should hear once (a fixed batch size, which of several outputs is read) */
  readonly notes?: readonly string[];
  predict(x: tfType.Tensor): Probs;
  /**
   * For models whose runtime answers asynchronously (an ONNX victim): the same as predict, awaited.
   * Callers that may hold such a victim use `predictProbs`.
   */
  predictAsync?(x: tfType.Tensor): Promise<Probs>;
  /** flat parameters in a documented order (weights then biases, layer by layer), for parameter error */
  params?(): Float32Array;
  /** a JSON-serialisable snapshot that `loadModel` restores exactly */
  serialize(): SerializedModel;
  dispose(): void;
}

export interface SerializedModel {
  format: 'mse-model/1';
  kind: ModelKind;
  inputShape: number[];
  numClasses: number;
  [key: string]: unknown;
}

/** A model's probabilities, through its asynchronous path when it has one (ONNX victims). */
export async function predictProbs(model: Pick<Model, 'predict' | 'predictAsync'>, x: tfType.Tensor): Promise<Probs> {
  return model.predictAsync ? model.predictAsync(x) : model.predict(x);
}
