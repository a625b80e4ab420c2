/**
 * Adagrad, PyTorch's algorithm (torch 1.13 `_single_tensor_adagrad`), in float32 with PyTorch's order of
 * operations, at a parameter's step t (1-based):
 *
 *   g = grad (negated if maximize);  g = g + wd·p                                 (L2-coupled decay)
 *   clr = lr / (1 + (t − 1)·lrDecay)                                              (float64, then float32)
 *   sum = sum + g²;   p = p − clr·g / (√sum + eps)
 *
 * The running sum starts at `initialAccumulatorValue`. The loop is the backend's `adagradUpdate` kernel
 * (reference: update-kernels.ts).
 */

import { kernels } from '../backend/backend.js';
import { checkOptions, optionKeys } from '../errors.js';
import { full } from '../tensor/creation.js';
import { longLived } from '../tensor/ops.js';
import type { Tensor } from '../tensor/tensor.js';
import { type Hyperparameters, Optimizer, type Options, type ParamGroup, type Params } from './optimizer.js';

/** Adagrad's hyper-parameters; the defaults are PyTorch's. */
export interface AdagradHyperparameters extends Hyperparameters {
  /** Learning rate (default 1e-2). */
  lr: number;
  /** Learning-rate decay per step of the parameter (default 0). */
  lrDecay: number;
  /** L2 penalty added to the gradient (default 0). */
  weightDecay: number;
  /** Starting value of the running sum of squared gradients (default 0). */
  initialAccumulatorValue: number;
  /** Added to the denominator, after the square root (default 1e-10). */
  eps: number;
  /** Maximize the objective (default false). */
  maximize: boolean;
}

export type AdagradOptions = Options<AdagradHyperparameters>;
const ADAGRAD_OPTIONS = optionKeys<AdagradOptions>()([
  'lr',
  'lrDecay',
  'weightDecay',
  'initialAccumulatorValue',
  'eps',
  'maximize',
]);

/** Adagrad's per-parameter state (PyTorch's `step`, `sum`). */
export interface AdagradState {
  /** Updates of this parameter so far. */
  step: number;
  sum: Tensor;
}

/**
 * `torch.optim.Adagrad`.
 *
 * @example
 * const opt = new Adagrad(model.parameters(), { lr: 0.1, initialAccumulatorValue: 0.1 });
 * opt.zeroGrad();
 * loss.backward();
 * opt.step();
 */
export class Adagrad extends Optimizer<AdagradHyperparameters, AdagradState> {
  protected readonly stateNames = { required: ['step', 'sum'], optional: [] };
  constructor(params: Params<AdagradHyperparameters>, options: AdagradOptions = {}) {
    checkOptions('Adagrad', options, ADAGRAD_OPTIONS);
    const {
      lr = 1e-2,
      lrDecay = 0,
      weightDecay = 0,
      initialAccumulatorValue = 0,
      eps = 1e-10,
      maximize = false,
    } = options;
    super(params, { lr, lrDecay, weightDecay, initialAccumulatorValue, eps, maximize });
  }

  protected override check(g: AdagradHyperparameters): void {
    super.check(g);
    this.require(g.lrDecay >= 0, `Invalid lr_decay value: ${g.lrDecay}`);
    this.require(
      g.initialAccumulatorValue >= 0,
      `Invalid initial_accumulator_value value: ${g.initialAccumulatorValue}`,
    );
    this.require(g.eps >= 0, `Invalid epsilon value: ${g.eps}`);
  }

  protected initState(p: Tensor): AdagradState {
    // PyTorch fills the sum from the parameter's group when the optimizer is built; here at the first update.
    const group = this.paramGroups.find((g) => g.params.includes(p))!;
    return { step: 0, sum: longLived(full(p.shape, group.initialAccumulatorValue)) };
  }

  protected update(
    p: Tensor,
    grad: Tensor,
    group: ParamGroup<AdagradHyperparameters>,
    s: AdagradState,
  ): void {
    const f = Math.fround;
    const t = ++s.step;
    const n = p.size;
    kernels().adagradUpdate(
      (p.data as Float32Array).subarray(p.offset, p.offset + n),
      (grad.data as Float32Array).subarray(grad.offset, grad.offset + n),
      s.sum.data as Float32Array,
      {
        eps: f(group.eps),
        wd: f(group.weightDecay),
        negClr: f(-(group.lr / (1 + (t - 1) * group.lrDecay))),
        maximize: group.maximize,
      },
    );
  }
}
