/**
 * The one gradient table. `PrimitiveCtx` lists every differentiable primitive with what its forward saves;
 * `gradRules` is typed over it, so `tsc` fails until a new primitive has its gradient. Rules are written with
 * public ops (they run on every backend), receive the upstream gradient `g` (shape of the output) and return
 * one gradient per input (null where `needs[i]` is false or the input has no gradient).
 */
import * as ops from '../tensor/ops.js';
import type { Tensor } from '../tensor/tensor.js';

export interface PrimitiveCtx {
  neg: null;
  exp: null;
  log: null;
  sqrt: null;
  abs: null;
  tanh: null;
  sigmoid: null;
  relu: null;
  erf: null;
  sign: null;
  add: null;
  sub: null;
  mul: null;
  div: null;
  pow: null;
  maximum: null;
  minimum: null;
  where: { cond: Tensor };
  clamp: { lo: number; hi: number };
  /** Reductions save the input shape and the reduced axes. */
  sum: { axes: number[]; shape: number[] };
  max: { axes: number[]; shape: number[] };
  min: { axes: number[]; shape: number[] };
  softmax: null;
  logSoftmax: null;
  matmul: null;
  /** Views save the input's shape (reshape also stands for view, squeeze, unsqueeze, flatten). */
  reshape: { shape: number[] };
  permute: { perm: number[] };
  expand: { shape: number[] };
  slice: { shape: number[]; dim: number; start: number; step: number };
  contiguous: null;
  cat: { dim: number; sizes: number[] };
  indexSelect: { dim: number; index: Int32Array; shape: number[] };
  /**
   * A fused op defined with `customOp` (BatchNorm, cross-entropy, attention...): its forward runs its own
   * kernel and its backward is the analytic formula, kept beside the forward in the op's own file.
   */
  custom: { name: string; backward: CustomBackward };
}

export type Primitive = keyof PrimitiveCtx;

/**
 * A fused op's backward: one gradient per input (null where `needs` is false). `sole[i]`: input i is a leaf
 * whose only use in this graph is this op, so its gradient may be written straight into the leaf's zeroed
 * `.grad` and returned as that very tensor (see accumulateGrad).
 */
export type CustomBackward = (
  g: Tensor,
  needs: boolean[],
  inputs: Tensor[],
  sole: boolean[],
) => (Tensor | null)[];

type Rule<P extends Primitive> = (
  g: Tensor,
  ctx: PrimitiveCtx[P],
  inputs: Tensor[],
  out: Tensor,
  needs: boolean[],
  sole: boolean[],
) => (Tensor | null)[];

// Wrappers, not destructuring: this module and ops.ts import each other, so ops' bindings must be read at
// call time, not at load time.
type Operand = Tensor | number;
const sub = (a: Operand, b: Operand) => ops.sub(a, b);
const mul = (a: Operand, b: Operand) => ops.mul(a, b);
const div = (a: Operand, b: Operand) => ops.div(a, b);
const neg = (a: Tensor) => ops.neg(a);
const sumTo = (g: Tensor, shape: readonly number[]) => ops.sumTo(g, shape);

/** d/dx of max/min reductions: ties share the gradient equally (torch.amax semantics). */
const extremumGrad = (g: Tensor, { axes, shape }: PrimitiveCtx['max'], [x]: Tensor[], out: Tensor) => {
  const keep = shape.map((d, i) => (axes.includes(i) ? 1 : d));
  // The positions equal to the result share its gradient; a NaN result came from the NaN positions (PyTorch's
  // evenly_distribute_backward; NaN == NaN is false, so the gradient was 0/0 = NaN everywhere).
  const o = ops.reshape(out, keep);
  const mask = ops.where(ops.ne(o, o), ops.ne(x!, x!), ops.eq(x!, o)).float();
  const count = ops.sum(mask, axes, true);
  return [div(mul(mask, ops.reshape(g, keep)), count)];
};

/** Gradients of maximum/minimum: g/2 on ties, else g, zeroed on a's side where `loses(a, b)`, b's where `wins`. */
const extremeShares = (
  g: Tensor,
  a: Tensor,
  b: Tensor,
  needs: readonly boolean[],
  loses: (x: Tensor, y: Tensor) => Tensor,
  wins: (x: Tensor, y: Tensor) => Tensor,
) => {
  const tie = ops.eq(a, b);
  const share = (lost: Tensor) => ops.where(tie, 0.5, ops.where(lost, 0, 1));
  return [
    needs[0] ? sumTo(mul(g, share(loses(a, b))), a.shape) : null,
    needs[1] ? sumTo(mul(g, share(wins(a, b))), b.shape) : null,
  ];
};

/** d/db a^b = a^b log a, 0 where a == 0 and b >= 0 (see the pow rule). */
const powExponentGrad = (g: Tensor, a: Tensor, b: Tensor, out: Tensor) => {
  const d = mul(g, mul(out, ops.log(a)));
  return ops.where(ops.eq(a, 0), ops.where(ops.ge(b, 0), 0, d), d);
};

/** The gradient table's type: one rule per primitive. */
export type GradTable = { [P in Primitive]: Rule<P> };

export const gradRules: GradTable = {
  neg: (g) => [neg(g)],
  exp: (g, _c, _i, out) => [mul(g, out)],
  log: (g, _c, [x]) => [div(g, x!)],
  sqrt: (g, _c, _i, out) => [div(g, mul(out, 2))],
  abs: (g, _c, [x]) => [mul(g, ops.sign(x!))],
  tanh: (g, _c, _i, out) => [mul(g, sub(1, mul(out, out)))],
  sigmoid: (g, _c, _i, out) => [mul(g, mul(out, sub(1, out)))],
  relu: (g, _c, [x]) => [ops.reluGrad(x!, g)],
  erf: (g, _c, [x]) => [mul(g, mul(ops.exp(neg(mul(x!, x!))), 2 / Math.sqrt(Math.PI)))],
  sign: (g) => [ops.zerosOf(g.shape)],
  add: (g, _c, [a, b], _o, needs) => [
    needs[0] ? sumTo(g, a!.shape) : null,
    needs[1] ? sumTo(g, b!.shape) : null,
  ],
  sub: (g, _c, [a, b], _o, needs) => [
    needs[0] ? sumTo(g, a!.shape) : null,
    needs[1] ? sumTo(neg(g), b!.shape) : null,
  ],
  mul: (g, _c, [a, b], _o, needs) => [
    needs[0] ? sumTo(mul(g, b!), a!.shape) : null,
    needs[1] ? sumTo(mul(g, a!), b!.shape) : null,
  ],
  div: (g, _c, [a, b], out, needs) => [
    needs[0] ? sumTo(div(g, b!), a!.shape) : null,
    needs[1] ? sumTo(neg(div(mul(g, out), b!)), b!.shape) : null,
  ],
  pow: (g, _c, [a, b], out, needs) => [
    // d/da a^b = b a^(b-1), taken as 0 where b == 0 (else 0·0^-1 = NaN at a == 0); d/db a^b = a^b log a, taken
    // as 0 where a == 0 and b >= 0 (a negative b gives -inf there). PyTorch's pow_backward conventions.
    needs[0] ? sumTo(ops.where(ops.eq(b!, 0), 0, mul(g, mul(b!, ops.pow(a!, sub(b!, 1))))), a!.shape) : null,
    needs[1] ? sumTo(powExponentGrad(g, a!, b!, out), b!.shape) : null,
  ],
  // PyTorch's maximum/minimum backward: ties split the gradient in half, the smaller (larger) side gets none,
  // and where a comparison fails (a NaN) both sides get all of it.
  maximum: (g, _c, [a, b], _o, needs) => extremeShares(g, a!, b!, needs, ops.lt, ops.gt),
  minimum: (g, _c, [a, b], _o, needs) => extremeShares(g, a!, b!, needs, ops.gt, ops.lt),
  where: (g, { cond }, [a, b], _o, needs) => [
    needs[0] ? sumTo(ops.where(cond, g, 0), a!.shape) : null,
    needs[1] ? sumTo(ops.where(cond, 0, g), b!.shape) : null,
  ],
  clamp: (g, { lo, hi }, [x]) => [ops.where(ops.ge(x!, lo), ops.where(ops.le(x!, hi), g, 0), 0)],
  sum: (g, { axes, shape }) => [
    ops.expand(
      ops.reshape(
        g,
        shape.map((d, i) => (axes.includes(i) ? 1 : d)),
      ),
      shape,
    ),
  ],
  max: extremumGrad,
  min: extremumGrad,
  // y = softmax(x): dx = y * (g - sum(g*y)); y = logSoftmax(x): dx = g - softmax(x) * sum(g).
  softmax: (g, _c, _i, out) => [mul(out, sub(g, ops.sum(mul(g, out), -1, true)))],
  logSoftmax: (g, _c, _i, out) => [sub(g, mul(ops.exp(out), ops.sum(g, -1, true)))],
  matmul: (g, _c, [a, b], _o, needs) => [
    needs[0] ? sumTo(ops.matmul(g, b!.mT), a!.shape) : null,
    needs[1] ? sumTo(ops.matmul(a!.mT, g), b!.shape) : null,
  ],
  reshape: (g, { shape }) => [ops.reshape(g, shape)],
  permute: (g, { perm }) => {
    const inv = new Array<number>(perm.length);
    perm.forEach((p, i) => {
      inv[p] = i;
    });
    return [ops.permute(g, inv)];
  },
  expand: (g, { shape }) => [sumTo(g, shape)],
  slice: (g, { shape, dim, start, step }) => [ops.sliceScatter(shape, dim, start, step, g)],
  contiguous: (g) => [g],
  cat: (g, { dim, sizes }, _i, _o, needs) => {
    let at = 0;
    return sizes.map((n, k) => {
      const part = needs[k] ? ops.slice(g, dim, at, at + n) : null;
      at += n;
      return part;
    });
  },
  indexSelect: (g, { dim, index, shape }) => [ops.indexAdd(shape, dim, index, g)],
  custom: (g, { backward }, inputs, _o, needs, sole) => backward(g, needs, inputs, sole),
};

/**
 * Add a gradient into a leaf's `.grad`. The first gradient is copied into a fresh contiguous buffer the leaf
 * owns; later ones are added in place, so `.grad` keeps its identity (optimizers may hold it) and no memory
 * is allocated per step for accumulation.
 */
export function accumulateGrad(leaf: Tensor, g: Tensor): void {
  // A rule that wrote the gradient into the leaf's zeroed .grad itself (linear's dW) returns that .grad.
  if (g === leaf.grad) return;
  if (!leaf.grad) {
    // A copy the leaf owns, in the backend's long-lived storage where it has one (see Backend.allocLongLived).
    const gf = g.dtype === 'float32' ? g : g.float();
    const kept = ops.longLived(gf);
    leaf.grad = kept === gf ? ops.contiguous(gf, true) : kept;
    return;
  }
  // In place: the add kernel reads and writes the same dense buffer elementwise.
  ops.addInto(leaf.grad, g);
}
