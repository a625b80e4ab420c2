/**
 * Adam and AdamW (REFERENCE.md §1.5; torch 1.13 `_single_tensor_adam` / `_single_tensor_adamw`), in float32
 * with PyTorch's order of operations. One class: AdamW is Adam with the decay decoupled, as in PyTorch >= 2.6
 * (`Adam(decoupled_weight_decay=True)`).
 *
 *   g = grad (negated if maximize)
 *   decoupled: p = p·(1 − lr·wd)   (first, scaled by lr)        else: g = g + wd·p   (L2)
 *   m = β1·m + (1−β1)·g;   v = β2·v + (1−β2)·g·g;   amsgrad: vmax = max(vmax, v), use vmax for v
 *   p = p + (−lr/(1−β1^t))·m / (√v/√(1−β2^t) + ε)
 *
 * NOTE: amsgrad keeps the maximum of the raw v and bias-corrects it afterwards, as PyTorch's code does; the
 * docs' formula (maximum of the corrected v̂, also REFERENCE.md §1.5) differs (pytorch/pytorch#142323).
 * The bias corrections and step size are computed in float64 (Python floats), then cast to float32, as
 * PyTorch does when it passes them to the kernels as scalars. The moment updates are ATen's `add(alpha)` and
 * `addcmul`, fused multiply-adds (`fmadd`); the last line is `addcdiv`, `p + (s·m)/denom`. The loop is the
 * backend's `adamUpdate` kernel (reference: update-kernels.ts).
 */

import { type AdamUpdate, kernels } from '../backend/backend.js';
import { checkOptions, optionKeys } from '../errors.js';
import { zerosLongLived } from '../tensor/ops.js';
import type { Tensor } from '../tensor/tensor.js';
import { type Hyperparameters, Optimizer, type Options, type ParamGroup, type Params } from './optimizer.js';

/** Adam's hyper-parameters; the defaults are PyTorch's (AdamW: weightDecay 1e-2, decoupled). */
export interface AdamHyperparameters extends Hyperparameters {
  /** Learning rate (default 1e-3). */
  lr: number;
  /** Decay rates of the running averages of the gradient and its square (default [0.9, 0.999]). */
  betas: [number, number];
  /** Added to the denominator, after bias correction (default 1e-8). */
  eps: number;
  /** Weight decay (default 0): an L2 term added to the gradient, or decoupled (AdamW). */
  weightDecay: number;
  /** Use the largest second moment seen so far (AMSGrad; default false). */
  amsgrad: boolean;
  /** Maximize the objective (default false). */
  maximize: boolean;
  /** Decay the weights directly by lr·weightDecay before the update instead of through the gradient (AdamW). */
  decoupledWeightDecay: boolean;
}

export type AdamOptions = Options<AdamHyperparameters>;
const ADAM_OPTIONS = optionKeys<AdamOptions>()([
  'lr',
  'betas',
  'eps',
  'weightDecay',
  'amsgrad',
  'maximize',
  'decoupledWeightDecay',
]);
const ADAMW_OPTIONS = ADAM_OPTIONS.filter((k) => k !== 'decoupledWeightDecay');

/** Adam's per-parameter state (PyTorch's `step`, `exp_avg`, `exp_avg_sq`, `max_exp_avg_sq`). */
export interface AdamState {
  /** Updates of this parameter so far. */
  step: number;
  expAvg: Tensor;
  expAvgSq: Tensor;
  /** With amsgrad only. */
  maxExpAvgSq?: Tensor;
}

/**
 * `torch.optim.Adam`.
 *
 * @example
 * const opt = new Adam(model.parameters(), { lr: 3e-4, betas: [0.9, 0.95] });
 * opt.zeroGrad();
 * loss.backward();
 * opt.step();
 */
export class Adam extends Optimizer<AdamHyperparameters, AdamState> {
  protected readonly stateNames = { required: ['step', 'expAvg', 'expAvgSq'], optional: ['maxExpAvgSq'] };
  constructor(params: Params<AdamHyperparameters>, options: AdamOptions = {}) {
    checkOptions('Adam', options, ADAM_OPTIONS);
    const {
      lr = 1e-3,
      betas = [0.9, 0.999],
      eps = 1e-8,
      weightDecay = 0,
      amsgrad = false,
      maximize = false,
      decoupledWeightDecay = false,
    } = options;
    super(params, { lr, betas, eps, weightDecay, amsgrad, maximize, decoupledWeightDecay });
  }

  protected override check(g: AdamHyperparameters): void {
    super.check(g);
    this.require(g.eps >= 0, `Invalid epsilon value: ${g.eps}`);
    // One beta would leave beta2 undefined and every parameter NaN after the first step.
    this.require(
      Array.isArray(g.betas) && g.betas.length === 2,
      `betas must be a pair [beta1, beta2], got ${JSON.stringify(g.betas)}`,
    );
    g.betas.forEach((b, i) => {
      this.require(b >= 0 && b < 1, `Invalid beta parameter at index ${i}: ${b}`);
    });
  }

  protected initState(p: Tensor): AdamState {
    return { step: 0, expAvg: zerosLongLived(p.shape), expAvgSq: zerosLongLived(p.shape) };
  }

  protected update(p: Tensor, grad: Tensor, group: ParamGroup<AdamHyperparameters>, s: AdamState): void {
    const t = ++s.step;
    if (group.amsgrad) s.maxExpAvgSq ??= zerosLongLived(p.shape);
    const n = p.size;
    kernels().adamUpdate(
      (p.data as Float32Array).subarray(p.offset, p.offset + n),
      (grad.data as Float32Array).subarray(grad.offset, grad.offset + n),
      s.expAvg.data as Float32Array,
      s.expAvgSq.data as Float32Array,
      (s.maxExpAvgSq?.data as Float32Array | undefined) ?? null,
      adamScalars(group, t),
    );
  }
}

/**
 * The float32 scalars of Adam step t (1-based) for the `adamUpdate` kernel: the bias corrections and step size
 * in float64 (Python floats), then cast, as PyTorch passes them to its kernels.
 */
export function adamScalars(group: AdamHyperparameters, t: number): AdamUpdate {
  const f = Math.fround;
  const { lr, betas, weightDecay } = group;
  const [beta1, beta2] = betas;
  return {
    b1: f(beta1),
    b2: f(beta2),
    keep1: f(1 - beta1),
    keep2: f(1 - beta2),
    negStepSize: f(-(lr / (1 - beta1 ** t))),
    bc2Sqrt: f(Math.sqrt(1 - beta2 ** t)),
    eps: f(group.eps),
    wd: f(weightDecay),
    shrink: f(1 - lr * weightDecay),
    decoupled: group.decoupledWeightDecay,
    maximize: group.maximize,
  };
}

/**
 * `torch.optim.AdamW`: Adam with decoupled weight decay, default 1e-2.
 *
 * @example
 * const opt = new AdamW(model.parameters(), { lr: 3e-4, weightDecay: 0.1 });
 */
export class AdamW extends Adam {
  constructor(params: Params<AdamHyperparameters>, options: Omit<AdamOptions, 'decoupledWeightDecay'> = {}) {
    checkOptions('AdamW', options, ADAMW_OPTIONS);
    super(params, { ...options, weightDecay: options.weightDecay ?? 1e-2, decoupledWeightDecay: true });
  }
}
