/**
 * Batch losses, PyTorch's formulas and defaults (REFERENCE.md §1.2). Shape legend: N batch, C classes,
 * d… extra dims ((N, C, T) for sequences: the class dim is 1, as in PyTorch).
 *
 * NOTE: the seed's `cross_entropy_batch` takes probabilities and adds 1e-8 inside the log; `crossEntropy`
 * takes logits and uses log-softmax, so it is exact for any logits (±1000 included) with no epsilon.
 */

import { recordedCompute } from '../autograd/engine.js';
import { kernels } from '../backend/backend.js';
import { checkOptions, fmtShape, optionKeys, ShapeError, ValueError } from '../errors.js';
import { gather } from '../tensor/indexing.js';
import * as ops from '../tensor/ops.js';
import type { Tensor } from '../tensor/tensor.js';

export type Reduction = 'mean' | 'sum' | 'none';

function reduce(op: string, loss: Tensor, reduction: Reduction): Tensor {
  if (reduction === 'mean') return ops.mean(loss);
  if (reduction === 'sum') return ops.sum(loss);
  if (reduction === 'none') return loss;
  throw new ValueError(
    op,
    `${String(reduction)} is not a valid value for reduction (expected mean, sum or none)`,
  );
}

/** Mean squared error (the seed's mse_loss_batch). */
export function mseLoss(input: Tensor, target: Tensor, opts: { reduction?: Reduction } = {}): Tensor {
  checkOptions('mseLoss', opts, ['reduction']);
  const { reduction = 'mean' } = opts;
  sameShapes('mseLoss', input, target);
  const d = ops.sub(input, target);
  return reduce('mseLoss', ops.mul(d, d), reduction);
}

/** input and target of one shape, or a ShapeError naming the loss. */
function sameShapes(op: string, input: Tensor, target: Tensor): void {
  if (input.shape.join() !== target.shape.join()) {
    throw new ShapeError(
      op,
      `input ${fmtShape(input.shape)} and target ${fmtShape(target.shape)} must have the same shape`,
    );
  }
}

/** Mean absolute error, PyTorch's l1_loss. */
export function l1Loss(input: Tensor, target: Tensor, opts: { reduction?: Reduction } = {}): Tensor {
  checkOptions('l1Loss', opts, ['reduction']);
  sameShapes('l1Loss', input, target);
  return reduce('l1Loss', ops.abs(ops.sub(input, target)), opts.reduction ?? 'mean');
}

/**
 * Huber loss, PyTorch's huber_loss: ½d² where |d| < delta, else delta·(|d| - ½delta) (default delta 1).
 * `smoothL1Loss` is PyTorch's smooth_l1_loss: the same shape divided by `beta` (default 1; equal at 1).
 */
export function huberLoss(
  input: Tensor,
  target: Tensor,
  opts: { reduction?: Reduction; delta?: number } = {},
): Tensor {
  checkOptions('huberLoss', opts, ['reduction', 'delta']);
  const { reduction = 'mean', delta = 1 } = opts;
  if (!(delta > 0)) throw new ValueError('huberLoss', `delta must be positive (got ${delta})`);
  sameShapes('huberLoss', input, target);
  return reduce('huberLoss', huber(ops.sub(input, target), delta), reduction);
}

export function smoothL1Loss(
  input: Tensor,
  target: Tensor,
  opts: { reduction?: Reduction; beta?: number } = {},
): Tensor {
  checkOptions('smoothL1Loss', opts, ['reduction', 'beta']);
  const { reduction = 'mean', beta = 1 } = opts;
  if (!(beta >= 0)) throw new ValueError('smoothL1Loss', `beta must be non-negative (got ${beta})`);
  sameShapes('smoothL1Loss', input, target);
  const d = ops.sub(input, target);
  // beta 0 is the L1 loss (PyTorch's special case); otherwise huber(d, beta) / beta.
  return reduce('smoothL1Loss', beta === 0 ? ops.abs(d) : ops.div(huber(d, beta), beta), reduction);
}

/** Elementwise ½d² for |d| < delta, delta·(|d| - ½delta) beyond. */
function huber(d: Tensor, delta: number): Tensor {
  const a = ops.abs(d);
  return ops.where(ops.lt(a, delta), ops.mul(ops.mul(d, d), 0.5), ops.mul(ops.sub(a, 0.5 * delta), delta));
}

export interface CrossEntropyOptions {
  /** Per-class weight (C). */
  weight?: Tensor | null;
  /** Targets equal to this are ignored (class-index targets only). Default -100. */
  ignoreIndex?: number;
  reduction?: Reduction;
  /** Mix the target with the uniform distribution: (1-ε)·target + ε/C. */
  labelSmoothing?: number;
}
const CROSS_ENTROPY_OPTIONS = optionKeys<CrossEntropyOptions>()([
  'weight',
  'ignoreIndex',
  'reduction',
  'labelSmoothing',
]);

/** Move the class dim (1) last and flatten: (N, C, d…) -> (N·d…, C). */
function classLast(x: Tensor): Tensor {
  if (x.rank <= 2) return x.rank === 1 ? x.reshape([1, -1]) : x;
  const perm = [0, ...Array.from({ length: x.rank - 2 }, (_, i) => i + 2), 1];
  return ops.permute(x, perm).reshape([-1, x.shape[1]!]);
}

/**
 * Negative log-likelihood of log-probabilities `logp` (N, C, d…) at class indices `target` (N, d…), int32.
 * With `weight`, `mean` divides by the summed weights of the non-ignored targets (PyTorch's rule).
 */
export function nllLoss(logp: Tensor, target: Tensor, opts: CrossEntropyOptions = {}): Tensor {
  // PyTorch's nll_loss has no label smoothing.
  checkOptions('nllLoss', opts, ['weight', 'ignoreIndex', 'reduction']);
  return classIndexLoss('nllLoss', logp, target, { ...opts, labelSmoothing: 0 }, false);
}

/**
 * Cross-entropy from logits (N, C) or (N, C, d…) with class-index targets (int32, (N) or (N, d…)) or class
 * probabilities (float32, same shape as the logits). Options as PyTorch: weight, ignoreIndex, reduction,
 * labelSmoothing.
 * @example crossEntropy(logits, labels) // (N,10) logits, (N) int32 labels -> scalar
 */
export function crossEntropy(input: Tensor, target: Tensor, opts: CrossEntropyOptions = {}): Tensor {
  checkOptions('crossEntropy', opts, CROSS_ENTROPY_OPTIONS);
  const eps = opts.labelSmoothing ?? 0;
  if (!(eps >= 0 && eps <= 1))
    throw new ValueError('crossEntropy', `label_smoothing must be between 0.0 and 1.0. Got: ${eps}`);
  if (target.dtype === 'float32') return probabilityLoss(input, target, opts);
  return classIndexLoss('crossEntropy', input, target, opts, true);
}

function checkWeight(op: string, weight: Tensor | null | undefined, C: number): void {
  if (weight && (weight.rank !== 1 || weight.shape[0] !== C)) {
    throw new ShapeError(
      op,
      `weight tensor should be defined either for all ${C} classes or no classes but got weight tensor of shape: ${fmtShape(weight.shape)}`,
    );
  }
}

/**
 * The common case as one fused op: (N, C) logits, class targets none of which is ignored, no weights or
 * smoothing, mean or sum. Forward: softmax and loss in one pass; backward: (softmax - onehot)·g/N.
 */
function fusedCrossEntropy(input: Tensor, target: Tensor, reduction: 'mean' | 'sum'): Tensor {
  const [R, C] = input.shape as [number, number];
  const logits = ops.contiguous(input).data as Float32Array;
  const t = ops.contiguous(target).data as Int32Array;
  const probs = new Float32Array(R * C);
  const total = kernels().softmaxCrossEntropy(logits, t, R, C, probs);
  const out = ops.empty([]);
  out.data[0] = reduction === 'mean' ? total / R : total;
  return ops.customOp('crossEntropy', [input], out, (g) => {
    const dx = ops.uninitialized([R, C]);
    const scale = g.item() / (reduction === 'mean' ? R : 1);
    kernels().softmaxCrossEntropyBackward(probs, t, R, C, scale, dx.data as Float32Array);
    return [dx];
  });
}

function classIndexLoss(
  op: string,
  input: Tensor,
  target: Tensor,
  opts: CrossEntropyOptions,
  fromLogits: boolean,
): Tensor {
  const { weight = null, ignoreIndex = -100, reduction = 'mean', labelSmoothing = 0 } = opts;
  if (target.dtype !== 'int32')
    throw new ValueError(op, `expected class indices as an int32 tensor, got ${target.dtype}`);
  const expected = input.rank === 1 ? [] : [input.shape[0]!, ...input.shape.slice(2)];
  if (target.shape.join() !== expected.join()) {
    throw new ShapeError(
      op,
      `expected target of shape ${fmtShape(expected)} for input ${fmtShape(input.shape)}, got ${fmtShape(target.shape)}`,
    );
  }
  const C = input.rank === 1 ? input.shape[0]! : input.shape[1]!;
  checkWeight(op, weight, C);
  const t = ops.contiguous(target).data as Int32Array;
  for (const v of t) {
    if (v !== ignoreIndex && (v < 0 || v >= C))
      throw new ValueError(op, `target ${v} is out of bounds for ${C} classes`);
  }
  const plain =
    !weight &&
    labelSmoothing === 0 &&
    (reduction === 'mean' || reduction === 'sum') &&
    !t.includes(ignoreIndex);
  if (fromLogits && plain && input.rank === 2 && input.shape[0]! > 0)
    return fusedCrossEntropy(input, target, reduction);
  const x = classLast(input); // (M, C)
  const logp = fromLogits ? ops.logSoftmax(x, -1) : x;
  const tm = ops.reshape(target, [-1]); // (M)
  const valid = ops.ne(tm, ignoreIndex); // (M)
  // Each row's target entry, gathered (an ignored row reads class 0 and is masked out by `where`): a one-hot
  // product would turn a -Inf logit of another class into -Inf·0 = NaN.
  const safe = ops.where(valid, tm, 0); // (M)
  const chosen = ops.reshape(gather(logp, 1, ops.reshape(safe, [-1, 1])), [-1]); // (M)
  const rowW = ops.where(valid, weight ? ops.indexSelect(weight, 0, safe) : 1, 0); // (M): w_{y_n}, 0 if ignored
  const nll = ops.neg(ops.mul(ops.where(valid, chosen, 0), rowW)); // (M)
  const denom = ops.sum(rowW); // Σ w_{y_n} over non-ignored (count without weights)
  let loss = nll;
  if (labelSmoothing > 0) {
    const lw = weight ? ops.mul(logp, weight) : logp;
    const smooth = ops.where(valid, ops.neg(ops.sum(lw, -1)), 0); // (M)
    loss = ops.add(ops.mul(nll, 1 - labelSmoothing), ops.mul(smooth, labelSmoothing / C));
  }
  if (reduction === 'none') return loss.reshape(target.shape);
  if (reduction === 'sum') return ops.sum(loss);
  if (reduction === 'mean') {
    // Every target ignored: the loss is 0/0 = NaN, as PyTorch's, but the gradient is 0 there, as PyTorch's
    // (nothing was picked): dividing by the zero count would send NaN into every parameter's gradient.
    if (t.every((v) => v === ignoreIndex)) return ops.add(ops.mul(ops.sum(loss), 0), Number.NaN);
    return ops.div(ops.sum(loss), denom);
  }
  return reduce(op, loss, reduction);
}

function probabilityLoss(input: Tensor, target: Tensor, opts: CrossEntropyOptions): Tensor {
  const { weight = null, reduction = 'mean', labelSmoothing = 0 } = opts;
  if (opts.ignoreIndex !== undefined && opts.ignoreIndex !== -100) {
    throw new ValueError('crossEntropy', 'ignore_index is not supported for floating point target');
  }
  if (input.shape.join() !== target.shape.join()) {
    throw new ShapeError(
      'crossEntropy',
      `probability target ${fmtShape(target.shape)} must have the shape of the input ${fmtShape(input.shape)}`,
    );
  }
  const C = input.rank === 1 ? input.shape[0]! : input.shape[1]!;
  checkWeight('crossEntropy', weight, C);
  const logp = ops.logSoftmax(classLast(input), -1);
  let p = classLast(target);
  if (labelSmoothing > 0) p = ops.add(ops.mul(p, 1 - labelSmoothing), labelSmoothing / C);
  const terms = ops.mul(logp, weight ? ops.mul(p, weight) : p);
  const loss = ops.neg(ops.sum(terms, -1));
  if (reduction === 'none')
    return loss.reshape(input.rank === 1 ? [] : [input.shape[0]!, ...input.shape.slice(2)]);
  return reduce('crossEntropy', loss, reduction);
}

/**
 * Binary cross-entropy on logits, stable for any x: (1-y)·x + lw·(log(1+e^-|x|) + max(-x, 0)), with
 * lw = 1 + (posWeight-1)·y.
 */
/**
 * softplus(-x) = log(1 + e^-x), stable at ±1e4 as log(1 + e^-|x|) + max(-x, 0), with the derivative of the
 * function itself, sigmoid(x) - 1: differentiated through abs and relu, whose slopes at 0 are 0, it was 0 at
 * x = 0 instead of -1/2 (a zero-initialised output layer starts exactly there).
 */
function softplusNeg(x: Tensor): Tensor {
  const value = recordedCompute(() =>
    ops.add(ops.log(ops.add(ops.exp(ops.neg(ops.abs(x))), 1)), ops.relu(ops.neg(x))),
  );
  return ops.customOp('softplusNeg', [x], value, (g) => [ops.mul(g, ops.sub(ops.sigmoid(x), 1))]);
}

export function binaryCrossEntropyWithLogits(
  input: Tensor,
  target: Tensor,
  opts: { weight?: Tensor | null; posWeight?: Tensor | null; reduction?: Reduction } = {},
): Tensor {
  checkOptions('binaryCrossEntropyWithLogits', opts, ['weight', 'posWeight', 'reduction']);
  const { weight = null, posWeight = null, reduction = 'mean' } = opts;
  if (input.shape.join() !== target.shape.join()) {
    throw new ShapeError(
      'binaryCrossEntropyWithLogits',
      `target size ${fmtShape(target.shape)} must be the same as input size ${fmtShape(input.shape)}`,
    );
  }
  if (target.dtype !== 'float32') {
    throw new ValueError(
      'binaryCrossEntropyWithLogits',
      `target must be float32 probabilities (got ${target.dtype}): convert labels with y.float()`,
    );
  }
  const sp = softplusNeg(input);
  const lw = posWeight ? ops.add(ops.mul(ops.sub(posWeight, 1), target), 1) : null;
  let loss = ops.add(ops.mul(ops.sub(1, target), input), lw ? ops.mul(lw, sp) : sp);
  if (weight) loss = ops.mul(loss, weight);
  return reduce('binaryCrossEntropyWithLogits', loss, reduction);
}
