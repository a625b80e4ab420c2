/**
 * RMSprop, PyTorch's algorithm (torch 1.13 `_single_tensor_rmsprop`), in float32 with PyTorch's order of
 * operations:
 *
 *   g = grad (negated if maximize);  g = g + wd·p                                 (L2-coupled decay)
 *   sq = α·sq + (1−α)·g²
 *   centered: ga = α·ga + (1−α)·g;  avg = √(sq − ga²) + eps        else: avg = √sq + eps
 *   momentum: buf = μ·buf + g/avg;  p = p − lr·buf                  else: p = p − lr·g/avg
 *
 * eps is added after the square root (Keras and TensorFlow add it inside). The loop is the backend's
 * `rmspropUpdate` kernel (reference: update-kernels.ts).
 */

import { kernels } from '../backend/backend.js';
import { checkOptions, optionKeys } from '../errors.js';
import { zerosLongLived } from '../tensor/ops.js';
import type { Tensor } from '../tensor/tensor.js';
import { type Hyperparameters, Optimizer, type Options, type ParamGroup, type Params } from './optimizer.js';

/** RMSprop's hyper-parameters; the defaults are PyTorch's. */
export interface RMSpropHyperparameters extends Hyperparameters {
  /** Learning rate (default 1e-2). */
  lr: number;
  /** Smoothing constant α of the running average of g² (default 0.99). */
  alpha: number;
  /** Added to the denominator, after the square root (default 1e-8). */
  eps: number;
  /** L2 penalty added to the gradient (default 0). */
  weightDecay: number;
  /** Momentum factor μ (default 0). */
  momentum: number;
  /** Normalize by the estimated variance of the gradient instead of its second moment (default false). */
  centered: boolean;
  /** Maximize the objective (default false). */
  maximize: boolean;
}

export type RMSpropOptions = Options<RMSpropHyperparameters>;
const RMSPROP_OPTIONS = optionKeys<RMSpropOptions>()([
  'lr',
  'alpha',
  'eps',
  'weightDecay',
  'momentum',
  'centered',
  'maximize',
]);

/** RMSprop's per-parameter state (PyTorch's `step`, `square_avg`, `momentum_buffer`, `grad_avg`). */
export interface RMSpropState {
  /** Updates of this parameter so far. */
  step: number;
  squareAvg: Tensor;
  /** With momentum > 0 only. */
  momentumBuffer?: Tensor;
  /** When centered only. */
  gradAvg?: Tensor;
}

/**
 * `torch.optim.RMSprop`.
 *
 * @example
 * const opt = new RMSprop(model.parameters(), { lr: 1e-3, momentum: 0.9, centered: true });
 * opt.zeroGrad();
 * loss.backward();
 * opt.step();
 */
export class RMSprop extends Optimizer<RMSpropHyperparameters, RMSpropState> {
  protected readonly stateNames = {
    required: ['step', 'squareAvg'],
    optional: ['momentumBuffer', 'gradAvg'],
  };
  constructor(params: Params<RMSpropHyperparameters>, options: RMSpropOptions = {}) {
    checkOptions('RMSprop', options, RMSPROP_OPTIONS);
    const {
      lr = 1e-2,
      alpha = 0.99,
      eps = 1e-8,
      weightDecay = 0,
      momentum = 0,
      centered = false,
      maximize = false,
    } = options;
    super(params, { lr, alpha, eps, weightDecay, momentum, centered, maximize });
  }

  protected override check(g: RMSpropHyperparameters): void {
    super.check(g);
    this.require(g.eps >= 0, `Invalid epsilon value: ${g.eps}`);
    this.require(g.momentum >= 0, `Invalid momentum value: ${g.momentum}`);
    this.require(g.alpha >= 0, `Invalid alpha value: ${g.alpha}`);
  }

  protected initState(p: Tensor): RMSpropState {
    return { step: 0, squareAvg: zerosLongLived(p.shape) };
  }

  protected update(
    p: Tensor,
    grad: Tensor,
    group: ParamGroup<RMSpropHyperparameters>,
    s: RMSpropState,
  ): void {
    const f = Math.fround;
    s.step++;
    // Created when first needed, as PyTorch does: a group's momentum or centering may be switched on later.
    if (group.momentum > 0) s.momentumBuffer ??= zerosLongLived(p.shape);
    if (group.centered) s.gradAvg ??= zerosLongLived(p.shape);
    const n = p.size;
    // PyTorch casts each Python scalar (1 − α computed in float64) to float32 before the kernel uses it.
    kernels().rmspropUpdate(
      (p.data as Float32Array).subarray(p.offset, p.offset + n),
      (grad.data as Float32Array).subarray(grad.offset, grad.offset + n),
      s.squareAvg.data as Float32Array,
      group.centered ? (s.gradAvg!.data as Float32Array) : null,
      group.momentum > 0 ? (s.momentumBuffer!.data as Float32Array) : null,
      {
        alpha: f(group.alpha),
        keep: f(1 - group.alpha),
        eps: f(group.eps),
        wd: f(group.weightDecay),
        mu: f(group.momentum),
        negLr: f(-group.lr),
        maximize: group.maximize,
      },
    );
  }
}
