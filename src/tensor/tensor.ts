/**
 * The tensor: a strided view (shape, strides, offset) of a typed-array storage, plus autograd state.
 *
 * Batch conventions (first dim is the batch, as in PyTorch):
 *   (N, D)        tabular rows / MLP activations
 *   (N, T, D)     sequences: T time steps of D features
 *   (N, C, H, W)  images: C channels of H×W pixels
 * Views (reshape of contiguous data, squeeze, unsqueeze, transpose, permute, expand, slice) share storage;
 * `contiguous()` copies only when the layout requires it.
 *
 * Memory: storage is an ordinary typed array owned by the JavaScript garbage collector. Nothing is disposed by
 * hand; backward releases the graph it consumed. See ARCHITECTURE.md, "Memory".
 */
import { type BackwardOptions, type Node, runBackward } from '../autograd/engine.js';
import { accumulateGrad, gradRules } from '../autograd/grad.js';
import type { View } from '../backend/backend.js';
import { checkOptions, fmtShape, kindOf, ShapeError, ValueError } from '../errors.js';
import type { DType, TypedArray } from './dtype.js';
import * as indexing from './indexing.js';
import * as ops from './ops.js';
import { formatTensor } from './print.js';
import { contiguousStrides, numel, sameShape } from './shape.js';

export type Scalar = number | boolean;
export type TensorOrScalar = Tensor | Scalar;

export class Tensor implements View {
  #grad: Tensor | null = null;
  /** Gradient accumulated by `backward` (leaves with requiresGrad only), until zeroed. */
  get grad(): Tensor | null {
    return this.#grad;
  }
  /**
   * Assign a gradient, PyTorch's `p.grad = g`: it must have this tensor's shape and dtype (the optimizers read it
   * as a flat run of this tensor's size). A strided view (a transpose, a slice, an expand) is kept as a dense copy.
   */
  set grad(g: Tensor | null) {
    if (g !== null) {
      if (!(g instanceof Tensor))
        throw new ValueError('grad', `assigned grad must be a Tensor or null (got ${kindOf(g)})`);
      if (!sameShape(g.shape, this.shape))
        throw new ShapeError(
          'grad',
          `assigned grad has shape ${fmtShape(g.shape)}, but the tensor has ${fmtShape(this.shape)}`,
        );
      if (g.dtype !== this.dtype)
        throw new ValueError('grad', `assigned grad has dtype ${g.dtype}, but the tensor is ${this.dtype}`);
      g = ops.contiguous(g);
    }
    this.#grad = g;
  }
  /** The op that produced this tensor, while a graph is recorded. Internal. */
  _node: Node | null = null;
  /** Set on the 16-bit stand-in a graph keeps for an activation under autocast (see ops.packActivation). */
  packed?: { precision: 'bf16' | 'fp16' | 'fp32'; bits: Uint16Array };

  constructor(
    readonly data: TypedArray,
    readonly dtype: DType,
    readonly shape: readonly number[],
    readonly strides: readonly number[] = contiguousStrides(shape),
    readonly offset = 0,
    public requiresGrad = false,
  ) {}

  get rank(): number {
    return this.shape.length;
  }
  get ndim(): number {
    return this.shape.length;
  }
  get size(): number {
    return numel(this.shape);
  }
  /** True for tensors created by the user (not the output of a recorded op). */
  get isLeaf(): boolean {
    return this._node === null;
  }

  /** Number of dimensions, as PyTorch's `x.dim()` (the same as `rank`). */
  dim(): number {
    return this.shape.length;
  }

  /** Number of elements, as PyTorch's `x.numel()` (the same as `size`). */
  numel(): number {
    return this.size;
  }

  // ---- autograd -------------------------------------------------------------------------------------------

  /** Mark this leaf as requiring gradients (in place, returns this). Only float tensors can, as in PyTorch. */
  requiresGrad_(on = true): this {
    if (on && this.dtype !== 'float32')
      throw new ValueError('requiresGrad_', `only float tensors can require gradients (got ${this.dtype})`);
    this.requiresGrad = on;
    return this;
  }

  /**
   * Backpropagate from this tensor. A scalar needs no argument; otherwise pass the upstream gradient (same
   * shape). Gradients accumulate into `.grad` of leaves that require them, until zeroed.
   */
  backward(grad?: Tensor, opts: BackwardOptions = {}): void {
    checkOptions('backward', opts, ['retainGraph']);
    if (grad !== undefined && !(grad instanceof Tensor)) {
      throw new ValueError(
        'backward',
        `grad must be a Tensor (got ${typeof grad}); options go second: backward(undefined, opts)`,
      );
    }
    if (!this.requiresGrad) {
      throw new ShapeError('backward', 'tensor does not require grad and has no recorded graph');
    }
    let g = grad;
    if (!g) {
      if (this.size !== 1) {
        throw new ShapeError(
          'backward',
          `grad can be implicitly created only for scalar outputs (got ${fmtShape(this.shape)})`,
        );
      }
      g = ops.onesLike(this);
    } else if (g.shape.join() !== this.shape.join()) {
      throw new ShapeError(
        'backward',
        `gradient has shape ${fmtShape(g.shape)}, expected ${fmtShape(this.shape)}`,
      );
    }
    runBackward(this, g, opts, gradRules, ops.add, accumulateGrad, ops.unpack);
  }

  /** A tensor sharing storage, cut from the graph. */
  detach(): Tensor {
    return new Tensor(this.data, this.dtype, this.shape, this.strides, this.offset, false);
  }

  // ---- reading values -------------------------------------------------------------------------------------

  /** The value of a one-element tensor. */
  item(): number {
    if (this.size !== 1)
      throw new ShapeError('item', `a tensor with ${this.size} elements cannot be converted to a number`);
    return this.data[this.offset]!;
  }

  /** The values in row-major order, as a new typed array (a copy; the storage is never exposed mutable). */
  toTypedArray(): TypedArray {
    const d = ops.contiguous(this, true).data;
    // A copy the caller owns outright, buffer included (small storage shares its buffer: see allocStorage).
    return d.byteLength === d.buffer.byteLength ? d : d.slice();
  }

  /** Nested arrays of numbers (booleans for a bool tensor), like PyTorch's `tolist()`. */
  toList(): unknown {
    const values = Array.from(this.toTypedArray() as ArrayLike<number>);
    // A bool tensor lists booleans, as PyTorch's tolist() gives True/False.
    const flat = this.dtype === 'bool' ? values.map((v) => v !== 0) : values;
    const build = (d: number, off: number): unknown => {
      if (d === this.shape.length) return flat[off];
      const stride = numel(this.shape.slice(d + 1));
      return Array.from({ length: this.shape[d]! }, (_, i) => build(d + 1, off + i * stride));
    };
    return build(0, 0);
  }

  toString(): string {
    return formatTensor(this);
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return formatTensor(this);
  }

  // ---- in-place, outside autograd (optimizers, initialisers) ----------------------------------------------

  /** Copy values from `src` (broadcast to this shape) into this tensor's storage. Not recorded. */
  copy_(src: TensorOrScalar): this {
    ops.assign(this, src);
    return this;
  }
  zero_(): this {
    return this.copy_(0);
  }
  fill_(v: number): this {
    return this.copy_(v);
  }
  /** this += other, in place (PyTorch's add_), e.g. a manual update inside noGrad: `w.sub_(w.grad.mul(lr))`. */
  add_(other: TensorOrScalar): this {
    return this.inPlace('add_', ops.add, other);
  }
  sub_(other: TensorOrScalar): this {
    return this.inPlace('sub_', ops.sub, other);
  }
  mul_(other: TensorOrScalar): this {
    return this.inPlace('mul_', ops.mul, other);
  }
  div_(other: TensorOrScalar): this {
    return this.inPlace('div_', ops.div, other);
  }
  clamp_(min?: number | { min?: number; max?: number }, max?: number): this {
    return this.inPlace('clamp_', (x) => ops.clamp(x, min, max), 0);
  }
  private inPlace(op: string, f: (a: Tensor, b: TensorOrScalar) => Tensor, other: TensorOrScalar): this {
    ops.checkInPlace(op, this, other);
    const r = f(this, other);
    ops.checkInPlaceResult(op, this, r);
    ops.assign(this, r);
    return this;
  }

  // ---- ops as methods (see ops.ts for documentation) ------------------------------------------------------

  neg(): Tensor {
    return ops.neg(this);
  }
  exp(): Tensor {
    return ops.exp(this);
  }
  log(): Tensor {
    return ops.log(this);
  }
  sqrt(): Tensor {
    return ops.sqrt(this);
  }
  abs(): Tensor {
    return ops.abs(this);
  }
  tanh(): Tensor {
    return ops.tanh(this);
  }
  sigmoid(): Tensor {
    return ops.sigmoid(this);
  }
  relu(): Tensor {
    return ops.relu(this);
  }
  erf(): Tensor {
    return ops.erf(this);
  }
  sign(): Tensor {
    return ops.sign(this);
  }
  add(b: TensorOrScalar): Tensor {
    return ops.add(this, b);
  }
  sub(b: TensorOrScalar): Tensor {
    return ops.sub(this, b);
  }
  mul(b: TensorOrScalar): Tensor {
    return ops.mul(this, b);
  }
  div(b: TensorOrScalar): Tensor {
    return ops.div(this, b);
  }
  pow(b: TensorOrScalar): Tensor {
    return ops.pow(this, b);
  }
  maximum(b: TensorOrScalar): Tensor {
    return ops.maximum(this, b);
  }
  minimum(b: TensorOrScalar): Tensor {
    return ops.minimum(this, b);
  }
  eq(b: TensorOrScalar): Tensor {
    return ops.eq(this, b);
  }
  ne(b: TensorOrScalar): Tensor {
    return ops.ne(this, b);
  }
  lt(b: TensorOrScalar): Tensor {
    return ops.lt(this, b);
  }
  le(b: TensorOrScalar): Tensor {
    return ops.le(this, b);
  }
  gt(b: TensorOrScalar): Tensor {
    return ops.gt(this, b);
  }
  ge(b: TensorOrScalar): Tensor {
    return ops.ge(this, b);
  }
  clamp(min?: number | { min?: number; max?: number }, max?: number): Tensor {
    return ops.clamp(this, min, max);
  }
  sum(dims?: number | number[], keepDim = false): Tensor {
    return ops.sum(this, dims, keepDim);
  }
  mean(dims?: number | number[], keepDim = false): Tensor {
    return ops.mean(this, dims, keepDim);
  }
  max(dims?: number | number[] | Tensor, keepDim = false): Tensor {
    return ops.max(this, dims, keepDim);
  }
  min(dims?: number | number[] | Tensor, keepDim = false): Tensor {
    return ops.min(this, dims, keepDim);
  }
  var(dims?: number | number[], opts?: ops.VarianceOptions): Tensor {
    return ops.variance(this, dims, opts);
  }
  std(dims?: number | number[], opts?: ops.VarianceOptions): Tensor {
    return ops.std(this, dims, opts);
  }
  argmax(dim?: number, keepDim = false): Tensor {
    return ops.argmax(this, dim, keepDim);
  }
  argmin(dim?: number, keepDim = false): Tensor {
    return ops.argmin(this, dim, keepDim);
  }
  logsumexp(dims: number | number[], keepDim = false): Tensor {
    return ops.logsumexp(this, dims, keepDim);
  }
  softmax(dim = -1): Tensor {
    return ops.softmax(this, dim);
  }
  logSoftmax(dim = -1): Tensor {
    return ops.logSoftmax(this, dim);
  }
  matmul(b: Tensor): Tensor {
    return ops.matmul(this, b);
  }
  reshape(...shape: number[] | [readonly number[]]): Tensor {
    return ops.reshape(this, flat(shape));
  }
  view(...shape: number[] | [readonly number[]]): Tensor {
    return ops.view(this, flat(shape));
  }
  flatten(startDim = 0, endDim = -1): Tensor {
    return ops.flatten(this, startDim, endDim);
  }
  squeeze(dim?: number): Tensor {
    return ops.squeeze(this, dim);
  }
  unsqueeze(dim: number): Tensor {
    return ops.unsqueeze(this, dim);
  }
  transpose(d0 = -2, d1 = -1): Tensor {
    return ops.transpose(this, d0, d1);
  }
  /** Transpose of the last two dims (PyTorch's `.mT`). */
  get mT(): Tensor {
    return ops.transpose(this, -2, -1);
  }
  /** All dims reversed, as PyTorch's `x.T` (the transpose of a matrix). */
  get T(): Tensor {
    return ops.permute(
      this,
      this.shape.map((_, i) => this.shape.length - 1 - i),
    );
  }
  permute(...perm: number[] | [readonly number[]]): Tensor {
    return ops.permute(this, flat(perm));
  }
  expand(...shape: number[] | [readonly number[]]): Tensor {
    return ops.expand(this, flat(shape));
  }
  slice(dim: number, start?: number, end?: number, step = 1): Tensor {
    return ops.slice(this, dim, start, end, step);
  }
  narrow(dim: number, start: number, length: number): Tensor {
    return ops.narrow(this, dim, start, length);
  }
  /** The sub-tensor at `index` of `dim` (that dim removed). */
  select(dim: number, index: number): Tensor {
    return ops.select(this, dim, index);
  }
  contiguous(): Tensor {
    return ops.contiguous(this);
  }
  clone(): Tensor {
    return ops.contiguous(this, true);
  }
  indexSelect(dim: number, index: Tensor | Int32Array | number[]): Tensor {
    return ops.indexSelect(this, dim, index);
  }
  /** See `gather` (torch.gather). */
  gather(dim: number, index: Tensor): Tensor {
    return indexing.gather(this, dim, index);
  }
  /** See `topk`: `const [values, indices] = x.topk(5)`. */
  topk(k: number, opts?: indexing.TopkOptions): indexing.ValuesIndices {
    return indexing.topk(this, k, opts);
  }
  /** See `sort` (stable; NaN last). */
  sort(opts?: indexing.SortOptions): indexing.ValuesIndices {
    return indexing.sort(this, opts);
  }
  argsort(opts?: indexing.SortOptions): Tensor {
    return indexing.argsort(this, opts);
  }
  cumsum(dim: number): Tensor {
    return indexing.cumsum(this, dim);
  }
  to(dtype: DType): Tensor {
    return ops.cast(this, dtype);
  }
  float(): Tensor {
    return ops.cast(this, 'float32');
  }
  int(): Tensor {
    return ops.cast(this, 'int32');
  }
}

function flat(args: number[] | [readonly number[]]): number[] {
  return Array.isArray(args[0]) ? [...(args[0] as readonly number[])] : (args as number[]);
}
