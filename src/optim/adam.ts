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
 * `addcmul`, fused multiply-adds ({@link fmadd}); the last line is `addcdiv`, `p + (s·m)/denom`.
 */
import { zeros } from '../tensor/creation.js';
import type { Tensor } from '../tensor/tensor.js';
import {
  fmadd,
  type Hyperparameters,
  Optimizer,
  type Options,
  type ParamGroup,
  type Params,
} from './optimizer.js';

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
  constructor(
    params: Params<AdamHyperparameters>,
    {
      lr = 1e-3,
      betas = [0.9, 0.999],
      eps = 1e-8,
      weightDecay = 0,
      amsgrad = false,
      maximize = false,
      decoupledWeightDecay = false,
    }: AdamOptions = {},
  ) {
    super(params, { lr, betas, eps, weightDecay, amsgrad, maximize, decoupledWeightDecay });
  }

  protected override check(g: AdamHyperparameters): void {
    super.check(g);
    this.require(g.eps >= 0, `Invalid epsilon value: ${g.eps}`);
    g.betas.forEach((b, i) => {
      this.require(b >= 0 && b < 1, `Invalid beta parameter at index ${i}: ${b}`);
    });
  }

  protected initState(p: Tensor): AdamState {
    return { step: 0, expAvg: zeros(p.shape), expAvgSq: zeros(p.shape) };
  }

  protected update(p: Tensor, grad: Tensor, group: ParamGroup<AdamHyperparameters>, s: AdamState): void {
    const f = Math.fround;
    const { lr, betas, weightDecay, amsgrad, maximize, decoupledWeightDecay: decoupled } = group;
    const t = ++s.step;
    const [beta1, beta2] = betas;
    const b1 = f(beta1);
    const b2 = f(beta2);
    const keep1 = f(1 - beta1);
    const keep2 = f(1 - beta2);
    const negStepSize = f(-(lr / (1 - beta1 ** t)));
    const bc2Sqrt = f(Math.sqrt(1 - beta2 ** t));
    const eps = f(group.eps);
    const wd = f(weightDecay);
    const shrink = f(1 - lr * weightDecay);
    if (amsgrad) s.maxExpAvgSq ??= zeros(p.shape);
    const m = s.expAvg.data as Float32Array;
    const v = s.expAvgSq.data as Float32Array;
    const vmax = s.maxExpAvgSq?.data as Float32Array;
    const pd = p.data as Float32Array;
    const gd = grad.data as Float32Array;
    const po = p.offset;
    const go = grad.offset;
    const n = p.size;
    for (let i = 0; i < n; i++) {
      let g = maximize ? -gd[go + i]! : gd[go + i]!;
      if (decoupled) pd[po + i] = pd[po + i]! * shrink;
      else if (wd !== 0) g = fmadd(wd, pd[po + i]!, g);
      const mi = fmadd(keep1, g, f(b1 * m[i]!));
      let vi = fmadd(f(keep2 * g), g, f(b2 * v[i]!));
      m[i] = mi;
      v[i] = vi;
      if (amsgrad) vi = vmax[i] = Math.max(vmax[i]!, vi);
      const denom = f(f(f(Math.sqrt(vi)) / bc2Sqrt) + eps);
      pd[po + i] = pd[po + i]! + f(f(negStepSize * mi) / denom);
    }
  }
}

/**
 * `torch.optim.AdamW`: Adam with decoupled weight decay, default 1e-2.
 *
 * @example
 * const opt = new AdamW(model.parameters(), { lr: 3e-4, weightDecay: 0.1 });
 */
export class AdamW extends Adam {
  constructor(params: Params<AdamHyperparameters>, options: Omit<AdamOptions, 'decoupledWeightDecay'> = {}) {
    super(params, { ...options, weightDecay: options.weightDecay ?? 1e-2, decoupledWeightDecay: true });
  }
}
