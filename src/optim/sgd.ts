/**
 * Stochastic gradient descent with momentum, PyTorch's algorithm (REFERENCE.md §1.4; torch 1.13
 * `_single_tensor_sgd`), in float32 with PyTorch's order of operations:
 *
 *   g = grad (negated if maximize);  g = g + wd·p                      (L2-coupled decay)
 *   b = g on the first step, else b = μ·b + (1−τ)·g                     (no dampening on the first step)
 *   g = g + μ·b if nesterov else b;  p = p + (−lr)·g
 *
 * Each `x + α·y` is ATen's `add(x, y, alpha)`: one fused multiply-add (`fmadd`). The loop is the backend's
 * `sgdUpdate` kernel (reference: update-kernels.ts).
 *
 * lr stays outside the velocity, so changing lr (schedules) does not rescale the momentum already built up.
 */

import { kernels } from '../backend/backend.js';
import { checkOptions, optionKeys } from '../errors.js';
import { zerosLongLived } from '../tensor/ops.js';
import type { Tensor } from '../tensor/tensor.js';
import { type Hyperparameters, Optimizer, type Options, type ParamGroup, type Params } from './optimizer.js';

/** SGD's hyper-parameters; the defaults are PyTorch's. */
export interface SGDHyperparameters extends Hyperparameters {
  /** Learning rate (default 1e-3). */
  lr: number;
  /** Momentum factor μ (default 0: plain SGD). */
  momentum: number;
  /** Dampening τ of the momentum (default 0). */
  dampening: number;
  /** L2 penalty added to the gradient (default 0). */
  weightDecay: number;
  /** Nesterov momentum; needs momentum > 0 and dampening 0 (default false). */
  nesterov: boolean;
  /** Maximize the objective (default false). */
  maximize: boolean;
}

export type SGDOptions = Options<SGDHyperparameters>;
const SGD_OPTIONS = optionKeys<SGDOptions>()([
  'lr',
  'momentum',
  'dampening',
  'weightDecay',
  'nesterov',
  'maximize',
]);

/** SGD's per-parameter state: the velocity, from the first step on when momentum is used. */
export interface SGDState {
  momentumBuffer?: Tensor;
}

/**
 * `torch.optim.SGD`.
 *
 * @example
 * const opt = new SGD(model.parameters(), { lr: 0.1, momentum: 0.9, nesterov: true, weightDecay: 5e-4 });
 * opt.zeroGrad();
 * loss.backward();
 * opt.step();
 */
export class SGD extends Optimizer<SGDHyperparameters, SGDState> {
  protected readonly stateNames = { required: [], optional: ['momentumBuffer'] };
  constructor(params: Params<SGDHyperparameters>, options: SGDOptions = {}) {
    checkOptions('SGD', options, SGD_OPTIONS);
    const {
      lr = 1e-3,
      momentum = 0,
      dampening = 0,
      weightDecay = 0,
      nesterov = false,
      maximize = false,
    } = options;
    super(params, { lr, momentum, dampening, weightDecay, nesterov, maximize });
  }

  protected override check(g: SGDHyperparameters): void {
    super.check(g);
    this.require(g.momentum >= 0, `Invalid momentum value: ${g.momentum}`);
    this.require(
      !g.nesterov || (g.momentum > 0 && g.dampening === 0),
      'Nesterov momentum requires a momentum and zero dampening',
    );
  }

  protected initState(): SGDState {
    return {};
  }

  protected update(p: Tensor, grad: Tensor, group: ParamGroup<SGDHyperparameters>, state: SGDState): void {
    const f = Math.fround;
    const first = group.momentum !== 0 && !state.momentumBuffer;
    if (first) state.momentumBuffer = zerosLongLived(p.shape);
    const n = p.size;
    // PyTorch casts each Python scalar to float32 before the kernel uses it.
    kernels().sgdUpdate(
      (p.data as Float32Array).subarray(p.offset, p.offset + n),
      (grad.data as Float32Array).subarray(grad.offset, grad.offset + n),
      (state.momentumBuffer?.data as Float32Array | undefined) ?? null,
      {
        wd: f(group.weightDecay),
        mu: f(group.momentum),
        keep: f(1 - group.dampening),
        negLr: f(-group.lr),
        first,
        nesterov: group.nesterov,
        maximize: group.maximize,
      },
    );
  }
}
