/**
 * Stochastic gradient descent with momentum, PyTorch's algorithm (REFERENCE.md §1.4; torch 1.13
 * `_single_tensor_sgd`), in float32 with PyTorch's order of operations:
 *
 *   g = grad (negated if maximize);  g = g + wd·p                      (L2-coupled decay)
 *   b = g on the first step, else b = μ·b + (1−τ)·g                     (no dampening on the first step)
 *   g = g + μ·b if nesterov else b;  p = p + (−lr)·g
 *
 * Each `x + α·y` is ATen's `add(x, y, alpha)`: one fused multiply-add ({@link fmadd}).
 *
 * lr stays outside the velocity, so changing lr (schedules) does not rescale the momentum already built up.
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
  constructor(
    params: Params<SGDHyperparameters>,
    {
      lr = 1e-3,
      momentum = 0,
      dampening = 0,
      weightDecay = 0,
      nesterov = false,
      maximize = false,
    }: SGDOptions = {},
  ) {
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
    // PyTorch casts each Python scalar to float32 before the kernel uses it.
    const wd = f(group.weightDecay);
    const mu = f(group.momentum);
    const keep = f(1 - group.dampening);
    const negLr = f(-group.lr);
    const { maximize, nesterov } = group;
    const first = group.momentum !== 0 && !state.momentumBuffer;
    if (first) state.momentumBuffer = zeros(p.shape);
    const b = state.momentumBuffer?.data as Float32Array;
    const pd = p.data as Float32Array;
    const gd = grad.data as Float32Array;
    const po = p.offset;
    const go = grad.offset;
    const n = p.size;
    if (!maximize && wd === 0 && mu !== 0 && !first && !nesterov && keep === 1) {
      // The common case (plain momentum) without per-element branches: the same roundings as below.
      for (let i = 0; i < n; i++) {
        const v = f(gd[go + i]! + f(mu * b[i]!));
        b[i] = v;
        pd[po + i] = f(negLr * v + pd[po + i]!);
      }
      return;
    }
    for (let i = 0; i < n; i++) {
      let d = maximize ? -gd[go + i]! : gd[go + i]!;
      if (wd !== 0) d = fmadd(wd, pd[po + i]!, d);
      if (mu !== 0) {
        const v = first ? d : fmadd(keep, d, f(mu * b[i]!));
        b[i] = v;
        d = nesterov ? fmadd(mu, v, d) : v;
      }
      pd[po + i] = fmadd(negLr, d, pd[po + i]!);
    }
  }
}
