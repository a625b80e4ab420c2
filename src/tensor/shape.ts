import { fmtShape, kindOf, ShapeError, ValueError } from '../errors.js';

/**
 * A copy of a shape or strides that V8 keeps as an array of small integers. Sizes computed in optimized code
 * (a typed array's `.length`, `Math.ceil`, a division) are doubles there, and an array literal or `map` that
 * receives one stores doubles: V8 gives it another map, and every optimized function that had only seen
 * small-integer shapes deoptimizes on it (`wrong map`). Once V8 optimized `indexSelect`, the DataLoader's
 * batches carried such shapes: 35 functions deoptimized mid-epoch and recompiling them took ~200 ms of the
 * second core from OpenBLAS's thread. Tensors are built through this (`fresh`, `viewOf`), so a size that
 * arrives as a double stops here.
 */
export function dims(a: readonly number[]): number[] {
  const out: number[] = [];
  for (let i = 0; i < a.length; i++) {
    const d = a[i]!;
    // Beyond int32 (a dim or stride of 2^31 elements): kept exact, copied outside this array literal, whose
    // allocation site would otherwise turn every later copy into doubles.
    if ((d | 0) !== d) return [...a];
    out.push(d | 0);
  }
  return out;
}

/** Number of elements of a shape (1 for a scalar, 0 if any dimension is 0). */
export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Row-major (C order) strides of a shape. */
export function contiguousStrides(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i]!;
  }
  return s;
}

/** True when `strides` walk `shape` in row-major order with no gaps (size-1 dims may have any stride). */
export function isContiguous(shape: readonly number[], strides: readonly number[]): boolean {
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    const d = shape[i]!;
    if (d !== 1 && strides[i] !== acc) return d === 0;
    acc *= d;
  }
  return true;
}

/** NumPy broadcasting of two shapes, aligned from the right. */
export function broadcastShapes(op: string, a: readonly number[], b: readonly number[]): number[] {
  const n = Math.max(a.length, b.length);
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const da = a[a.length - n + i] ?? 1;
    const db = b[b.length - n + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) {
      throw new ShapeError(
        op,
        `shapes ${fmtShape(a)} and ${fmtShape(b)} cannot be broadcast (dim ${i}: ${da} vs ${db})`,
      );
    }
    out[i] = da === 1 ? db : da;
  }
  return out;
}

/** Resolve a possibly negative dimension index against a rank, with PyTorch's error wording. */
export function normDim(op: string, dim: number, rank: number): number {
  const lo = rank === 0 ? -1 : -rank;
  const hi = rank === 0 ? 0 : rank - 1;
  if (!Number.isInteger(dim) || dim < lo || dim > hi) {
    throw new ValueError(
      op,
      `dimension out of range (expected to be in range of [${lo}, ${hi}], but got ${dim})`,
    );
  }
  return dim < 0 ? dim + Math.max(rank, 1) : dim;
}

/** Resolve a list of dims (undefined = all), sorted and unique. */
export function normDims(op: string, dims: number | readonly number[] | undefined, rank: number): number[] {
  if (dims !== undefined && typeof dims !== 'number' && !Array.isArray(dims))
    throw new ValueError(op, `dims must be a number or an array of numbers (got ${kindOf(dims)})`);
  const list = typeof dims === 'number' ? [dims] : dims;
  // No dims, or an empty list (PyTorch's x.sum([])), reduce over every dim.
  if (list === undefined || list.length === 0) return Array.from({ length: rank }, (_, i) => i);
  // A 0-d tensor's dim 0 (or -1) is the scalar itself: reducing over it is reducing over no axis (PyTorch's
  // sum(s, 0) is s); as an axis it would have no size.
  if (rank === 0) {
    for (const d of list) normDim(op, d, 0);
    return [];
  }
  const out = [...new Set(list.map((d) => normDim(op, d, rank)))].sort((x, y) => x - y);
  if (out.length !== list.length)
    throw new ValueError(op, `dim ${JSON.stringify(list)} appears multiple times`);
  return out;
}

export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Validate a shape given by a user: non-negative integers; at most one -1 is inferred from `size`. */
export function resolveShape(op: string, shape: readonly number[], size?: number): number[] {
  // One number is a 1-D shape (torch.ones(5)); anything else but a list is refused by name.
  if (typeof shape === 'number') shape = [shape];
  if (!Array.isArray(shape))
    throw new ValueError(op, `shape must be an array of sizes (got ${kindOf(shape)})`);
  let infer = -1;
  let known = 1;
  shape.forEach((d, i) => {
    if (d === -1 && size !== undefined) {
      if (infer >= 0) throw new ValueError(op, `only one dimension can be inferred (got ${fmtShape(shape)})`);
      infer = i;
    } else if (!Number.isInteger(d) || d < 0) {
      throw new ValueError(op, `invalid shape dimension ${d} in ${fmtShape(shape)}`);
    } else known *= d;
  });
  const out = [...shape];
  if (infer >= 0) {
    if (known === 0 || size! % known !== 0) {
      throw new ShapeError(op, `shape ${fmtShape(shape)} is invalid for input of size ${size}`);
    }
    out[infer] = size! / known;
  }
  return out;
}
