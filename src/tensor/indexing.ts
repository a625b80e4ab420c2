/**
 * Indexing and ordering along one dim, as torch's: `gather`, `topk`, `sort`, `argsort`, `cumsum`. Each runs a
 * plain loop over the rows along its dim and records a custom op whose backward scatters (gather, topk, sort:
 * the gradient goes back to the positions the values came from) or reverses the scan (cumsum). Indices are
 * int32, this library's index type (PyTorch's are int64).
 */
import { checkOptions, fmtShape, kindOf, optionKeys, ShapeError, ValueError } from '../errors.js';
import { contiguous, customOp, empty, permute, reshape, uninitialized } from './ops.js';
import { normDim } from './shape.js';
import { Tensor } from './tensor.js';

/** `values` and `indices`, destructurable both ways: `const [v, i] = topk(x, 5)` or `const { values } = ...`. */
export type ValuesIndices = [values: Tensor, indices: Tensor] & { values: Tensor; indices: Tensor };

function valuesIndices(values: Tensor, indices: Tensor): ValuesIndices {
  return Object.assign([values, indices] as [Tensor, Tensor], { values, indices });
}

function requireTensor(op: string, x: unknown): asserts x is Tensor {
  if (!(x instanceof Tensor)) throw new ValueError(op, `input must be a Tensor (got ${kindOf(x)})`);
}

/**
 * Runs `body` on x with `dim` moved last and made contiguous: rows of length x.shape[dim]. `body` returns
 * tensors in that row layout, which are moved back. A 0-d tensor is one row of one.
 */
function alongRows<T extends Tensor[]>(x: Tensor, d: number, body: (rows: Tensor) => T): T {
  if (x.rank === 0) {
    const out = body(reshape(x, [1]));
    return out.map((t) => reshape(t, [])) as T;
  }
  const perm = [...Array(x.rank).keys()].filter((i) => i !== d).concat(d);
  const inverse = perm.map((_, i) => perm.indexOf(i));
  const out = body(contiguous(permute(x, perm)));
  return out.map((t) => permute(t, inverse)) as T;
}

/** Ascending order with NaN last (PyTorch's), as a comparator on values; ties compare equal (stable sorts). */
function ascending(a: number, b: number): number {
  if (a < b) return -1;
  if (a > b) return 1;
  const [na, nb] = [Number.isNaN(a), Number.isNaN(b)];
  return na === nb ? 0 : na ? 1 : -1;
}

/**
 * The first `k` positions of each row of `rows` (R, L) in sorted order: indices (R, k) and values (R, k).
 * Stable: equal values keep their input order, also when descending (PyTorch's `stable=True`).
 */
function sortRows(rows: Tensor, k: number, descending: boolean): [Tensor, Tensor] {
  const L = rows.shape[rows.rank - 1]!;
  const R = L === 0 ? 0 : rows.size / L;
  const lead = rows.shape.slice(0, -1);
  const values = uninitialized([...lead, k], rows.dtype);
  const indices = uninitialized([...lead, k], 'int32');
  const [xd, vd, id] = [rows.data, values.data, indices.data];
  const order = new Array<number>(L);
  for (let r = 0; r < R; r++) {
    const base = r * L;
    for (let i = 0; i < L; i++) order[i] = i;
    const cmp = descending
      ? (a: number, b: number) => ascending(xd[base + b]!, xd[base + a]!)
      : (a: number, b: number) => ascending(xd[base + a]!, xd[base + b]!);
    order.sort(cmp);
    for (let i = 0; i < k; i++) {
      id[r * k + i] = order[i]!;
      vd[r * k + i] = xd[base + order[i]!]!;
    }
  }
  return [values, indices];
}

/**
 * Records `values` (R, k), taken from `rows` (R, L) at `indices`, as a differentiable function of `rows`: the
 * gradient of each value goes back to the position it came from.
 */
function takenAlongRows(rows: Tensor, values: Tensor, indices: Tensor): Tensor {
  if (!rows.requiresGrad) return values;
  const [L, k] = [rows.shape[rows.rank - 1]!, values.shape[values.rank - 1]!];
  return customOp('takeAlongRows', [rows], values, (g) => {
    const dx = empty(rows.shape);
    const [gd, dd, id] = [contiguous(g).data, dx.data, indices.data];
    for (let r = 0; r < (k === 0 ? 0 : values.size / k); r++) {
      for (let i = 0; i < k; i++) dd[r * L + id[r * k + i]!]! += gd[r * k + i]!;
    }
    return [dx];
  });
}

export interface SortOptions {
  /** The dim to sort along (default -1, the last). */
  dim?: number;
  /** Largest first (default false). */
  descending?: boolean;
}

const SORT_OPTIONS = optionKeys<SortOptions>()(['dim', 'descending']);

function sortOptions(op: string, opts: SortOptions): { dim: number; descending: boolean } {
  checkOptions(op, opts, SORT_OPTIONS);
  const { dim = -1, descending = false } = opts;
  if (typeof descending !== 'boolean')
    throw new ValueError(op, `descending must be a boolean (got ${kindOf(descending)})`);
  return { dim, descending };
}

/**
 * `torch.sort(x, dim, descending, stable=True)`: the values along `dim` in order, and where each came from.
 * Stable (equal values keep their order); NaN sorts as the largest. Differentiable in the values.
 * @example const [values, indices] = sort(x, { descending: true }) // along the last dim
 */
export function sort(x: Tensor, opts: SortOptions = {}): ValuesIndices {
  requireTensor('sort', x);
  const { dim, descending } = sortOptions('sort', opts);
  const d = normDim('sort', dim, x.rank);
  const L = x.rank === 0 ? 1 : x.shape[d]!;
  const [values, indices] = alongRows(x, d, (rows) => {
    const [v, i] = sortRows(rows, L, descending);
    return [takenAlongRows(rows, v, i), i];
  });
  return valuesIndices(values, indices);
}

/** `torch.argsort(x, dim, descending)`: the indices of `sort` (stable). */
export function argsort(x: Tensor, opts: SortOptions = {}): Tensor {
  return sort(x, opts).indices;
}

export interface TopkOptions {
  /** The dim to search (default -1, the last). */
  dim?: number;
  /** The k largest (default true), or the k smallest. */
  largest?: boolean;
}

const TOPK_OPTIONS = optionKeys<TopkOptions>()(['dim', 'largest']);

/**
 * `torch.topk(x, k, dim, largest, sorted=True)`: the k largest (or smallest) values along `dim`, in order, and
 * their indices; among equal values the first in the input comes first; NaN counts as the largest.
 * Differentiable in the values.
 * @example const { indices } = topk(logits, 5) // top-5 classes per row of (N, C)
 */
export function topk(x: Tensor, k: number, opts: TopkOptions = {}): ValuesIndices {
  const op = 'topk';
  requireTensor(op, x);
  checkOptions(op, opts, TOPK_OPTIONS);
  const { dim = -1, largest = true } = opts;
  if (typeof largest !== 'boolean')
    throw new ValueError(op, `largest must be a boolean (got ${kindOf(largest)})`);
  const d = normDim(op, dim, x.rank);
  const L = x.rank === 0 ? 1 : x.shape[d]!;
  if (!Number.isInteger(k) || k < 0 || k > L) {
    throw new ValueError(
      op,
      `k (${k}) must be an integer in [0, ${L}], the size of dim ${d} of ${fmtShape(x.shape)}`,
    );
  }
  const [values, indices] = alongRows(x, d, (rows) => {
    const [v, i] = sortRows(rows, k, largest);
    return [takenAlongRows(rows, v, i), i];
  });
  return valuesIndices(values, indices);
}

/**
 * `torch.cumsum(x, dim)`: running sums along `dim`. Float sums accumulate in float64 and round each output (as
 * PyTorch's CPU kernel); int32 and bool sum as int32. The gradient is the reversed running sum.
 * @example cumsum(tensor([1, 2, 3]), 0) // [1, 3, 6]
 */
export function cumsum(x: Tensor, dim: number): Tensor {
  requireTensor('cumsum', x);
  const d = normDim('cumsum', dim, x.rank);
  const [out] = alongRows(x, d, (rows) => {
    const L = rows.shape[rows.rank - 1]!;
    const y = uninitialized(rows.shape, rows.dtype === 'float32' ? 'float32' : 'int32');
    scan(rows.data, y.data, L, false);
    if (!rows.requiresGrad) return [y];
    return [
      customOp('cumsum', [rows], y, (g) => {
        const dx = uninitialized(rows.shape);
        scan(contiguous(g).data, dx.data, L, true);
        return [dx];
      }),
    ];
  });
  return out;
}

/** Running sums of each row of length L, forwards or backwards; float64 accumulation for float output. */
function scan(
  src: ArrayLike<number>,
  dst: Float32Array | Int32Array | Uint8Array,
  L: number,
  reverse: boolean,
): void {
  const ints = !(dst instanceof Float32Array);
  for (let base = 0; base < dst.length; base += L) {
    let acc = 0;
    for (let j = 0; j < L; j++) {
      const i = base + (reverse ? L - 1 - j : j);
      acc = ints ? (acc + src[i]!) | 0 : acc + src[i]!;
      dst[i] = acc;
    }
  }
}

/**
 * `torch.gather(x, dim, index)`: out[i][j][k] = x[index[i][j][k]][j][k] for dim 0 (likewise for other dims).
 * `index` has x's rank, and no larger size than x on the other dims; out has index's shape. Differentiable in
 * x: the gradient is added back at the gathered positions (scatter-add).
 * @example gather(logProbs, 1, targets.unsqueeze(1)) // (N, C), (N, 1) -> (N, 1): each row's target entry
 */
export function gather(x: Tensor, dim: number, index: Tensor): Tensor {
  const op = 'gather';
  requireTensor(op, x);
  if (!(index instanceof Tensor) || index.dtype !== 'int32') {
    throw new ValueError(
      op,
      `index must be an int32 Tensor (got ${index instanceof Tensor ? index.dtype : kindOf(index)})`,
    );
  }
  const d = normDim(op, dim, x.rank);
  if (index.rank !== Math.max(x.rank, 1) && !(x.rank === 0 && index.rank === 0)) {
    throw new ShapeError(
      op,
      `index ${fmtShape(index.shape)} must have as many dims as the input ${fmtShape(x.shape)}`,
    );
  }
  if (index.shape.some((s, i) => i !== d && s > (x.shape[i] ?? 1))) {
    throw new ShapeError(
      op,
      `index ${fmtShape(index.shape)} is larger than the input ${fmtShape(x.shape)} outside dim ${d}`,
    );
  }
  const size = x.rank === 0 ? 1 : x.shape[d]!;
  const idx = contiguous(index).data as Int32Array;
  for (let i = 0; i < idx.length; i++) {
    if (idx[i]! < 0 || idx[i]! >= size) {
      throw new ValueError(op, `index ${idx[i]} is out of bounds for dimension ${d} with size ${size}`);
    }
  }
  // The offset into x (through its strides) of each index element: its own position, with dim d replaced.
  const offsets = new Int32Array(idx.length);
  const shape = index.shape;
  const pos = new Array<number>(shape.length).fill(0);
  for (let n = 0; n < idx.length; n++) {
    let o = x.offset;
    for (let i = 0; i < shape.length; i++) o += (i === d ? idx[n]! : pos[i]!) * (x.strides[i] ?? 0);
    offsets[n] = o;
    for (let i = shape.length - 1; i >= 0 && ++pos[i]! === shape[i]; i--) pos[i] = 0;
  }
  const out = uninitialized(shape, x.dtype);
  const [xd, od] = [x.data, out.data];
  for (let n = 0; n < offsets.length; n++) od[n] = xd[offsets[n]!]!;
  if (!x.requiresGrad) return out;
  return customOp(op, [x], out, (g) => {
    // Scatter-add into a contiguous gradient: the same positions, through x's contiguous strides.
    const dx = empty(x.shape);
    const gd = contiguous(g).data;
    const [dd, cs] = [dx.data, dx.strides];
    pos.fill(0);
    for (let n = 0; n < idx.length; n++) {
      let o = 0;
      for (let i = 0; i < shape.length; i++) o += (i === d ? idx[n]! : pos[i]!) * (cs[i] ?? 0);
      dd[o]! += gd[n]!;
      for (let i = shape.length - 1; i >= 0 && ++pos[i]! === shape[i]; i--) pos[i] = 0;
    }
    return [dx];
  });
}
