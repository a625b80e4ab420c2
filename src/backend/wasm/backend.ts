/**
 * The `wasm` backend: WebAssembly SIMD kernels (runtime.ts) behind the kernel registry. Tensor storage stays
 * in the JavaScript heap (ARCHITECTURE.md, "Memory"); a kernel copies its operands into one reusable scratch
 * region of the wasm memory, runs there (across the thread pool for large work) and copies the result out.
 * Kernels this backend does not register fall back to the reference kernels, listed in `backendInfo()`.
 *
 * Shape legend: B batch entries (broadcast leading dims flattened), M×K @ K×N.
 */
import { allocStorage } from '../../tensor/dtype.js';
import {
  type AttentionGeometry,
  type AttentionMaskView,
  type ConvGeometry,
  type KernelTable,
  type MatmulEpilogue,
  registerBackend,
  reportUnavailable,
  type View,
} from '../backend.js';
import { type GemmLayout, gemmOperand, gemmSpan } from '../gemm-layout.js';
import { denseOffset, jsKernels, rowOffsets } from '../js/kernels.js';
import {
  type AttentionArgs,
  type BinaryOp,
  type CompareOp,
  type Im2colArgs,
  initWasm,
  type ReduceOp,
  type UnaryOp,
  type WasmRuntime,
} from './runtime.js';

/**
 * Below this many multiply-adds a GEMM stays in the reference kernel: copying operands in and out and the
 * call itself cost about 1-2 µs, which is what the JS loop needs for ~4k multiply-adds.
 */
export const WASM_MIN_MACS = 4096;
/**
 * Elementwise ops below this many elements stay in JS, where the call and the copies in and out would cost
 * more than the loop saves. Measured on the reference machine (µs, JS loop vs wasm with its copies): add
 * 256: 0.83 vs 1.20, 1024: 2.6 vs 1.0, 4096: 10.4 vs 3.3; exp 256: 2.5 vs 1.0 (transcendentals win sooner).
 */
export const WASM_MIN_ELEMENTWISE = 512;

/** The shared-memory runtime: threads, and resident storage (parameters, gradients, optimizer state). */
let main: WasmRuntime | undefined;
/**
 * A second runtime over a plain (non-shared) memory for calls that run on the caller alone, without resident
 * operands: V8 copies into and out of a SharedArrayBuffer at about half memcpy speed (512 KiB: 29-41 µs
 * against 15 µs here), and a call copies its operands in and its result out. Undefined where `main` is plain.
 */
let plain: WasmRuntime | undefined;
/** The runtime of the kernel call in progress: every kernel below picks it with `use` before touching it. */
let rt: WasmRuntime | undefined;

/**
 * Below this much work (elements; GEMM: multiply-adds / 32) no kernel splits across threads (the thresholds
 * in runtime.ts give each thread at least 2^16 elements or 2^18 multiply-adds), so a call may run on `plain`.
 */
const THREADED_WORK = 1 << 14;

/**
 * Sets `rt` for a call over `work` (see THREADED_WORK) with these operands: `plain` when the call stays on the
 * caller and no operand is resident in `main` (pointerOf is per memory: an operand resident there would be
 * copied into `plain` instead, correct but a copy more).
 */
function use(work: number, ...arrays: (ArrayBufferView | null | undefined)[]): void {
  const m = main!;
  const callerOnly = m.callerOnly || m.threads <= 1 || work < THREADED_WORK;
  rt = plain && callerOnly && !arrays.some((a) => a && m.pointerOf(a as Float32Array) >= 0) ? plain : m;
}

const scratchState = new Map<WasmRuntime, { ptr: number; bytes: number }>();

/** A scratch region of at least `bytes` in the current runtime's memory, reused across calls (grown, never shrunk). */
function scratch(bytes: number): number {
  let st = scratchState.get(rt!);
  if (!st) scratchState.set(rt!, (st = { ptr: 0, bytes: 0 }));
  if (bytes > st.bytes) {
    if (st.ptr) rt!.free(st.ptr);
    st.bytes = Math.max(bytes, st.bytes * 2, 1 << 20);
    st.ptr = rt!.alloc(st.bytes);
  }
  return st.ptr;
}

function matmul(a: View, b: View, out: Float32Array, epilogue?: MatmulEpilogue): void {
  const r = a.shape.length;
  const [M, K, N] = [a.shape[r - 2]!, a.shape[r - 1]!, b.shape[r - 1]!];
  if (M * N === 0) return;
  if (M * N * K < WASM_MIN_MACS) {
    jsKernels.matmul(a, b, out, epilogue);
    return;
  }
  let la: GemmLayout;
  let lb: GemmLayout;
  // An operand in no GEMM-able layout (rare: a permuted or expanded view) is gathered first.
  ({ v: a, l: la } = gemmOperand(a, M, K));
  ({ v: b, l: lb } = gemmOperand(b, K, N));
  use((M * N * K) / 32, a.data, b.data, out, epilogue?.bias);
  if (r === 2 && rt === plain) {
    smallMatmul(a, la, b, lb, out, M, K, N, epilogue);
    return;
  }
  // Offsets of each matrix of the batch (two plain matrices, the common case, skip the arrays).
  const batch = r === 2 ? [] : a.shape.slice(0, -2);
  const aOff = r === 2 ? [a.offset] : rowOffsets([...batch, 1], [...a.strides.slice(0, -2), 0], a.offset);
  const bOff = r === 2 ? [b.offset] : rowOffsets([...batch, 1], [...b.strides.slice(0, -2), 0], b.offset);
  const B = aOff.length;
  const sa = gemmSpan(M, K, la);
  const sb = gemmSpan(K, N, lb);
  // Shared operands (weights broadcast over the batch) are copied once.
  const aShared = B > 1 && aOff.every((o) => o === aOff[0]);
  const bShared = B > 1 && bOff.every((o) => o === bOff[0]);
  const na = aShared ? 1 : B;
  const nb = bShared ? 1 : B;
  const bias = epilogue?.bias;
  // Resident operands (parameters, gradients: see WasmRuntime.residentF32) are used in place; one matrix
  // (B = 1) or a shared one is one pointer. The rest is copied into scratch, the result out of it.
  const resident = (d: Float32Array, off: number, one: boolean) => {
    const p = one ? rt!.pointerOf(d) : -1;
    return p < 0 ? -1 : p + 4 * off;
  };
  const ra = resident(a.data as Float32Array, aOff[0]!, na === 1);
  const rb = resident(b.data as Float32Array, bOff[0]!, nb === 1);
  const rc = B === 1 ? rt!.pointerOf(out) : -1;
  const rbias = bias ? rt!.pointerOf(bias) : -1;
  const base = scratch(
    4 * ((ra < 0 ? na * sa : 0) + (rb < 0 ? nb * sb : 0) + (rc < 0 ? B * M * N : 0) + (rbias < 0 ? N : 0)) +
      256,
  );
  let at = base;
  const take = (floats: number) => {
    const p = at;
    at += 4 * floats;
    return p;
  };
  const pa = ra >= 0 ? ra : take(na * sa);
  const pb = rb >= 0 ? rb : take(nb * sb);
  const pc = rc >= 0 ? rc : take(B * M * N);
  const pbias = !bias ? 0 : rbias >= 0 ? rbias : take(N);
  if (bias && rbias < 0) rt!.f32(pbias, N).set(bias);
  if (ra < 0) {
    const heapA = rt!.f32(pa, na * sa);
    for (let t = 0; t < na; t++)
      heapA.set((a.data as Float32Array).subarray(aOff[t]!, aOff[t]! + sa), t * sa);
  }
  if (rb < 0) {
    const heapB = rt!.f32(pb, nb * sb);
    for (let t = 0; t < nb; t++)
      heapB.set((b.data as Float32Array).subarray(bOff[t]!, bOff[t]! + sb), t * sb);
  }
  rt!.sgemmBatched(
    la.trans,
    lb.trans,
    M,
    N,
    K,
    1,
    pa,
    la.ld,
    aShared ? 0 : sa,
    pb,
    lb.ld,
    bShared ? 0 : sb,
    0,
    pc,
    N,
    M * N,
    B,
    { bias: pbias, relu: epilogue?.relu ?? false },
  );
  if (rc < 0) out.set(rt!.f32(pc, B * M * N));
}

/**
 * `matmul` of two matrices on the plain runtime (the caller alone, nothing resident there): operands copied
 * in through one kept view of the memory, straight to the kernel. In a 32×32×32 product this glue costs about
 * as much as the arithmetic, so it skips the general path's batch and resident bookkeeping: 10-13% less per
 * call at 32³, 20% at 16³ (the two builds in one process, medians of 41 paired rounds).
 */
function smallMatmul(
  a: View,
  la: GemmLayout,
  b: View,
  lb: GemmLayout,
  out: Float32Array,
  M: number,
  K: number,
  N: number,
  epilogue: MatmulEpilogue | undefined,
): void {
  const sa = gemmSpan(M, K, la);
  const sb = gemmSpan(K, N, lb);
  const bias = epilogue?.bias;
  const at = scratch(4 * (sa + sb + M * N + (bias ? N : 0))) >> 2; // float indices
  const ib = at + sa;
  const ic = ib + sb;
  const heap = rt!.heapF32(ic + M * N + (bias ? N : 0));
  const whole = (v: View, n: number) =>
    (v.offset === 0 && v.data.length === n
      ? v.data
      : v.data.subarray(v.offset, v.offset + n)) as Float32Array;
  heap.set(whole(a, sa), at);
  heap.set(whole(b, sb), ib);
  if (bias) heap.set(bias, ic + M * N);
  rt!.sgemm(la.trans, lb.trans, M, N, K, 1, 4 * at, la.ld, 4 * ib, lb.ld, 0, 4 * ic, N, {
    bias: bias ? 4 * (ic + M * N) : 0,
    relu: epilogue?.relu ?? false,
  });
  out.set(heap.subarray(ic, ic + M * N));
}

const isDense = (v: View) => denseOffset(v) >= 0;

/**
 * Length C of b's rows when b (viewed at the output's shape) is one row repeated over the leading dims: last
 * stride 1, every other 0 (a bias or a per-feature scale over (N, C)); else 0.
 */
function rowLength(b: View): number {
  const r = b.shape.length;
  if (r < 2 || b.strides[r - 1] !== 1) return 0;
  for (let i = 0; i < r - 1; i++) if (b.strides[i] !== 0) return 0;
  return b.shape[r - 1]!;
}

/**
 * float32 operands run in wasm when a is dense and b is dense too (same shape), one repeated row (binaryRow)
 * or one value (binaryScalar: +, −, ×, ÷); anything else (a broadcast a, other views, ints) in the reference.
 */
function binary(op: BinaryOp): KernelTable['add'] {
  const scalarOp = op === 'add' || op === 'sub' || op === 'mul' || op === 'div';
  return (a, b, out) => {
    const n = out.length;
    if (
      n < WASM_MIN_ELEMENTWISE ||
      a.dtype !== 'float32' ||
      b.dtype !== 'float32' ||
      !(out instanceof Float32Array) ||
      !isDense(a)
    ) {
      return jsKernels[op](a, b, out);
    }
    const bd = b.data as Float32Array;
    const dense = isDense(b);
    const C = dense ? 0 : rowLength(b);
    if (!dense && C === 0 && !(scalarOp && b.strides.every((s) => s === 0))) {
      return jsKernels[op](a, b, out);
    }
    // a at p, the result at p + 4n, b (n floats, a row of C, or none) after them.
    use(n);
    const p = scratch(4 * (2 * n + (dense ? n : C)));
    const pb = p + 8 * n;
    rt!.f32(p, n).set((a.data as Float32Array).subarray(a.offset, a.offset + n));
    if (dense) {
      rt!.f32(pb, n).set(bd.subarray(b.offset, b.offset + n));
      rt!.binary(op, p, pb, p + 4 * n, n);
    } else if (C > 0) {
      rt!.f32(pb, C).set(bd.subarray(b.offset, b.offset + C));
      rt!.binaryRow(op, p, pb, p + 4 * n, n / C, C);
    } else {
      rt!.binaryScalar(op, p, bd[b.offset]!, p + 4 * n, n);
    }
    out.set(rt!.f32(p + 4 * n, n));
  };
}

function unaryOp(name: 'relu' | 'exp' | 'erf'): KernelTable['relu'] {
  return (x, out) => {
    const n = out.length;
    if (n < WASM_MIN_ELEMENTWISE || x.dtype !== 'float32' || !isDense(x)) return jsKernels[name](x, out);
    use(n);
    const p = scratch(8 * n);
    rt!.f32(p, n).set((x.data as Float32Array).subarray(x.offset, x.offset + n));
    rt![name](p, p + 4 * n, n);
    out.set(rt!.f32(p + 4 * n, n));
  };
}

/** The `unary` kernel family (neg, abs, sqrt, sign, sigmoid, tanh, log) with the same dense fast path. */
function unaryFamily(name: UnaryOp): KernelTable['neg'] {
  return (x, out) => {
    const n = out.length;
    if (n < WASM_MIN_ELEMENTWISE || x.dtype !== 'float32' || !isDense(x)) return jsKernels[name](x, out);
    use(n);
    const p = scratch(8 * n);
    rt!.f32(p, n).set((x.data as Float32Array).subarray(x.offset, x.offset + n));
    rt!.unary(name, p, p + 4 * n, n);
    out.set(rt!.f32(p + 4 * n, n));
  };
}

const clamp: KernelTable['clamp'] = (x, lo, hi, out) => {
  const n = out.length;
  // The kernel compares in float32: the same outcome as the reference's float64 compare (rounding is
  // monotonic, and a tie yields float32(lo) or float32(hi) either way).
  if (n < WASM_MIN_ELEMENTWISE || x.dtype !== 'float32' || !isDense(x))
    return jsKernels.clamp(x, lo, hi, out);
  use(n);
  const p = scratch(8 * n);
  rt!.f32(p, n).set((x.data as Float32Array).subarray(x.offset, x.offset + n));
  rt!.clamp(p, lo, hi, p + 4 * n, n);
  out.set(rt!.f32(p + 4 * n, n));
};

const reluBackward: KernelTable['reluBackward'] = (x, g, out) => {
  const n = out.length;
  if (
    n < WASM_MIN_ELEMENTWISE ||
    x.dtype !== 'float32' ||
    g.dtype !== 'float32' ||
    !isDense(x) ||
    !isDense(g)
  ) {
    return jsKernels.reluBackward(x, g, out);
  }
  use(n);
  const p = scratch(12 * n);
  rt!.f32(p, n).set((x.data as Float32Array).subarray(x.offset, x.offset + n));
  rt!.f32(p + 4 * n, n).set((g.data as Float32Array).subarray(g.offset, g.offset + n));
  rt!.reluBackward(p, p + 4 * n, p + 8 * n, n);
  out.set(rt!.f32(p + 8 * n, n));
};

const numel = (shape: readonly number[]) => shape.reduce((a, d) => a * d, 1);

/**
 * A dense float32 input reduced over a trailing run of axes (rows: R × C with C the reduced extent) or a
 * leading run (columns) runs in wasm; other axis sets, strided views and integer dtypes in the reference.
 */
function reduceOp(op: ReduceOp): KernelTable['sum'] {
  return (x, axes, out) => {
    const n = numel(x.shape);
    const r = x.shape.length;
    if (
      n < WASM_MIN_ELEMENTWISE ||
      axes.length === 0 ||
      x.dtype !== 'float32' ||
      !(out instanceof Float32Array) ||
      !isDense(x)
    ) {
      return jsKernels[op](x, axes, out);
    }
    const trailing = axes.every((a, i) => a === r - axes.length + i);
    const leading = axes.every((a, i) => a === i);
    if (!trailing && !leading) return jsKernels[op](x, axes, out);
    const split = trailing ? r - axes.length : axes.length;
    const R = numel(x.shape.slice(0, split));
    const C = n / R;
    use(n);
    const p = scratch(4 * n + 4 * out.length);
    rt!.f32(p, n).set((x.data as Float32Array).subarray(x.offset, x.offset + n));
    if (trailing) rt!.reduceRows(op, p, R, C, p + 4 * n);
    else rt!.reduceCols(op, p, R, C, p + 4 * n);
    out.set(rt!.f32(p + 4 * n, out.length));
  };
}

/** Softmax / log-softmax over the last axis of a dense float32 (R, C) input. */
function softmaxOp(log: boolean): KernelTable['softmax'] {
  const name = log ? 'logSoftmax' : 'softmax';
  return (x, out) => {
    const n = out.length;
    const C = x.shape.length === 0 ? 1 : x.shape[x.shape.length - 1]!;
    if (n < WASM_MIN_ELEMENTWISE || C === 0 || x.dtype !== 'float32' || !isDense(x)) {
      return jsKernels[name](x, out);
    }
    use(4 * n);
    const p = scratch(8 * n);
    rt!.f32(p, n).set((x.data as Float32Array).subarray(x.offset, x.offset + n));
    rt!.softmaxRows(log, p, n / C, C, p + 4 * n);
    out.set(rt!.f32(p + 4 * n, n));
  };
}

/** Forward: per-row losses (float64 inside, float32 out) summed here in float64, as the reference does. */
const softmaxCrossEntropy: KernelTable['softmaxCrossEntropy'] = (logits, targets, R, C, probs) => {
  const n = R * C;
  if (n < WASM_MIN_ELEMENTWISE) return jsKernels.softmaxCrossEntropy(logits, targets, R, C, probs);
  use(4 * n);
  const p = scratch(8 * n + 8 * R);
  const pt = p + 8 * n;
  const pl = pt + 4 * R;
  rt!.f32(p, n).set(logits.subarray(0, n));
  rt!.i32(pt, R).set(targets.subarray(0, R));
  rt!.softmaxCrossEntropy(p, pt, R, C, pl, p + 4 * n);
  probs.set(rt!.f32(p + 4 * n, n));
  const loss = rt!.f32(pl, R);
  let total = 0;
  for (let r = 0; r < R; r++) total += loss[r]!;
  return total;
};

/**
 * Backward: dx = float32(scale·probs) in wasm (the product in float64, bit-identical to the reference), then
 * the R target entries less scale here, as the reference rounds them.
 */
const softmaxCrossEntropyBackward: KernelTable['softmaxCrossEntropyBackward'] = (
  probs,
  targets,
  R,
  C,
  scale,
  dx,
) => {
  const n = R * C;
  if (n < WASM_MIN_ELEMENTWISE) return jsKernels.softmaxCrossEntropyBackward(probs, targets, R, C, scale, dx);
  use(n);
  const p = scratch(8 * n);
  rt!.f32(p, n).set(probs.subarray(0, n));
  rt!.scale64(p, scale, p + 4 * n, n);
  dx.set(rt!.f32(p + 4 * n, n));
  for (let r = 0; r < R; r++) dx[r * C + targets[r]!]! -= scale;
};

/**
 * Optimizer updates below this many parameters stay in JS: the reference loop costs ~5 ns a parameter (float64
 * roundings), the wasm call ~1-2 µs plus ~1 ns a parameter to copy three or four arrays in and two or three out.
 */
export const WASM_MIN_OPTIM = 256;

/**
 * Pointers for a kernel over same-length float32 arrays: a resident array (see WasmRuntime.residentF32) is
 * used in place; the others are copied into scratch, and `done` copies back those the kernel wrote.
 */
function operands(
  arrays: readonly Float32Array[],
  written: readonly boolean[],
): { ptrs: number[]; done(): void } {
  const n = arrays[0]!.length;
  use(n, ...arrays);
  const ptrs = arrays.map((a) => rt!.pointerOf(a));
  const copied = ptrs.filter((p) => p < 0).length;
  let at = copied ? scratch(4 * n * copied) : 0;
  ptrs.forEach((p, i) => {
    if (p >= 0) return;
    ptrs[i] = at;
    rt!.f32(at, n).set(arrays[i]!);
    at += 4 * n;
  });
  return {
    ptrs,
    done() {
      arrays.forEach((a, i) => {
        if (written[i] && rt!.pointerOf(a) < 0) a.set(rt!.f32(ptrs[i]!, n));
      });
    },
  };
}

const sgdUpdate: KernelTable['sgdUpdate'] = (p, g, b, h) => {
  const n = p.length;
  if (n < WASM_MIN_OPTIM) return jsKernels.sgdUpdate(p, g, b, h);
  const ops = operands(b ? [p, g, b] : [p, g], [true, false, true]);
  rt!.sgdUpdate(ops.ptrs[0]!, ops.ptrs[1]!, b ? ops.ptrs[2]! : 0, n, h);
  ops.done();
};

const adamUpdate: KernelTable['adamUpdate'] = (p, g, m, v, vmax, h) => {
  const n = p.length;
  if (n < WASM_MIN_OPTIM) return jsKernels.adamUpdate(p, g, m, v, vmax, h);
  const ops = operands(vmax ? [p, g, m, v, vmax] : [p, g, m, v], [true, false, true, true, true]);
  const [pp, pg, pm, pv, px] = ops.ptrs;
  rt!.adamUpdate(pp!, pg!, pm!, pv!, vmax ? px! : 0, n, h);
  ops.done();
};

const rmspropUpdate: KernelTable['rmspropUpdate'] = (p, g, sq, ga, buf, h) => {
  const n = p.length;
  if (n < WASM_MIN_OPTIM) return jsKernels.rmspropUpdate(p, g, sq, ga, buf, h);
  const arrays = [p, g, sq, ...(ga ? [ga] : []), ...(buf ? [buf] : [])];
  const ops = operands(arrays, [true, false, true, true, true]);
  const [pp, pg, ps] = ops.ptrs;
  rt!.rmspropUpdate(pp!, pg!, ps!, ga ? ops.ptrs[3]! : 0, buf ? ops.ptrs[arrays.length - 1]! : 0, n, h);
  ops.done();
};

const adagradUpdate: KernelTable['adagradUpdate'] = (p, g, sum, h) => {
  const n = p.length;
  if (n < WASM_MIN_OPTIM) return jsKernels.adagradUpdate(p, g, sum, h);
  const ops = operands([p, g, sum], [true, false, true]);
  const [pp, pg, ps] = ops.ptrs;
  rt!.adagradUpdate(pp!, pg!, ps!, n, h);
  ops.done();
};

/**
 * Copies stay with the reference (memcpy-bound) except filling resident storage with one value (zeroGrad on a
 * parameter's gradient): V8 fills a SharedArrayBuffer element by element, 8× slower than wasm's stores.
 */
const copy: KernelTable['copy'] = (src, dst) => {
  if (src.dtype === 'float32' && dst.dtype === 'float32' && src.strides.every((st) => st === 0)) {
    const d0 = denseOffset(dst);
    // The fill is for resident storage only: naming dst makes `use` pick the memory it lives in.
    use(Number.POSITIVE_INFINITY, dst.data);
    const p = d0 >= 0 ? rt!.pointerOf(dst.data as Float32Array) : -1;
    if (p >= 0) {
      rt!.fill(
        p + 4 * d0,
        src.data[src.offset]!,
        dst.shape.reduce((a, b) => a * b, 1),
      );
      return;
    }
  }
  jsKernels.copy(src, dst);
};

/** Same-shape dense float32 comparisons run in wasm (0/1 bytes out); broadcasts and ints in the reference. */
function compareOp(op: CompareOp): KernelTable['eq'] {
  return (a, b, out) => {
    const n = out.length;
    if (
      n < WASM_MIN_ELEMENTWISE ||
      a.dtype !== 'float32' ||
      b.dtype !== 'float32' ||
      !isDense(a) ||
      !isDense(b)
    ) {
      return jsKernels[op](a, b, out);
    }
    use(n);
    const p = scratch(9 * n + 64);
    const po = p + 8 * n;
    rt!.f32(p, n).set((a.data as Float32Array).subarray(a.offset, a.offset + n));
    rt!.f32(p + 4 * n, n).set((b.data as Float32Array).subarray(b.offset, b.offset + n));
    rt!.compare(op, p, p + 4 * n, po, n);
    out.set(new Uint8Array(rt!.memory.buffer, po, n));
  };
}

/** where over a dense bool condition and dense float32 operands of out's shape (no broadcast) runs in wasm. */
const where: KernelTable['where'] = (cond, a, b, out) => {
  const n = out.length;
  if (
    n < WASM_MIN_ELEMENTWISE ||
    a.dtype !== 'float32' ||
    b.dtype !== 'float32' ||
    !(out instanceof Float32Array) ||
    !(cond.data instanceof Uint8Array) ||
    !isDense(cond) ||
    !isDense(a) ||
    !isDense(b)
  ) {
    return jsKernels.where(cond, a, b, out);
  }
  use(n);
  const p = scratch(13 * n + 64);
  const pc = p + 12 * n;
  rt!.f32(p, n).set((a.data as Float32Array).subarray(a.offset, a.offset + n));
  rt!.f32(p + 4 * n, n).set((b.data as Float32Array).subarray(b.offset, b.offset + n));
  new Uint8Array(rt!.memory.buffer, pc, n).set(cond.data.subarray(cond.offset, cond.offset + n));
  rt!.select(pc, p, p + 4 * n, p + 8 * n, n);
  out.set(rt!.f32(p + 8 * n, n));
};

/** argmax / argmin over the last axis of a dense float32 input run in wasm; other axes in the reference. */
function argOp(isMin: boolean): KernelTable['argmax'] {
  const name = isMin ? 'argmin' : 'argmax';
  return (x, axis, out) => {
    const n = numel(x.shape);
    const C = x.shape[axis] ?? 0;
    if (
      n < WASM_MIN_ELEMENTWISE ||
      axis !== x.shape.length - 1 ||
      C === 0 ||
      x.dtype !== 'float32' ||
      !isDense(x)
    ) {
      return jsKernels[name](x, axis, out);
    }
    const R = n / C;
    use(n);
    const p = scratch(4 * n + 4 * R);
    rt!.f32(p, n).set((x.data as Float32Array).subarray(x.offset, x.offset + n));
    rt!.argReduceRows(isMin, p, R, C, p + 4 * n);
    out.set(rt!.i32(p + 4 * n, R));
  };
}

/** Five cache lines: an odd number, so streams whose rows lie 2^k lines apart fall in different L1 sets. */
const STAGGER = 320;

/**
 * Byte offsets of 64-byte aligned blocks of the given float counts in the scratch region, each STAGGER bytes
 * after the end of the one before. Without the gap, blocks of a power-of-two size (a 512×256 batch: 512 KiB)
 * start at the same address modulo 4 KiB, so a kernel walking several of them column by column (BatchNorm:
 * x, dy, the ReLU mask, dx, rows 1 KiB apart) maps every stream onto the same few L1 sets: BatchNorm backward
 * at 512×256 took 335 µs, 248 with the blocks staggered (median, one process, A/B).
 */
function layout(floats: number[]): number[] {
  const ptr: number[] = [];
  let total = 0;
  for (const n of floats) {
    ptr.push(total);
    total += Math.ceil((4 * n) / 64) * 64 + STAGGER;
  }
  const base = scratch(total + 64);
  return ptr.map((p) => p + base);
}

const batchNormForward: KernelTable['batchNormForward'] = (
  x,
  N,
  C,
  S,
  weight,
  bias,
  eps,
  out,
  mean,
  invstd,
  relu = false,
) => {
  const n = N * C * S;
  if (n < WASM_MIN_ELEMENTWISE)
    return jsKernels.batchNormForward(x, N, C, S, weight, bias, eps, out, mean, invstd, relu);
  use(n);
  const [px, po, pw, pb, pm, pi] = layout([n, n, weight ? C : 0, bias ? C : 0, C, C]) as number[];
  rt!.f32(px!, n).set(x.subarray(0, n));
  if (weight) rt!.f32(pw!, C).set(weight.subarray(0, C));
  if (bias) rt!.f32(pb!, C).set(bias.subarray(0, C));
  rt!.batchNormForward(px!, N, C, S, weight ? pw! : 0, bias ? pb! : 0, eps, po!, pm!, pi!, relu);
  out.set(rt!.f32(po!, n));
  mean.set(rt!.f32(pm!, C));
  invstd.set(rt!.f32(pi!, C));
};

const batchNormBackward: KernelTable['batchNormBackward'] = (
  x,
  dy,
  N,
  C,
  S,
  weight,
  mean,
  invstd,
  dx,
  dweight,
  dbias,
  reluOut = null,
) => {
  const n = N * C * S;
  if (n < WASM_MIN_ELEMENTWISE) {
    return jsKernels.batchNormBackward(x, dy, N, C, S, weight, mean, invstd, dx, dweight, dbias, reluOut);
  }
  use(n);
  const [px, pg, pd, pw, pm, pi, pdw, pdb, pr] = layout([
    n,
    n,
    n,
    weight ? C : 0,
    C,
    C,
    C,
    C,
    reluOut ? n : 0,
  ]) as number[];
  rt!.f32(px!, n).set(x.subarray(0, n));
  rt!.f32(pg!, n).set(dy.subarray(0, n));
  if (reluOut) rt!.f32(pr!, n).set(reluOut.subarray(0, n));
  if (weight) rt!.f32(pw!, C).set(weight.subarray(0, C));
  rt!.f32(pm!, C).set(mean.subarray(0, C));
  rt!.f32(pi!, C).set(invstd.subarray(0, C));
  rt!.batchNormBackward(px!, pg!, N, C, S, weight ? pw! : 0, pm!, pi!, pd!, pdw!, pdb!, reluOut ? pr! : 0);
  dx.set(rt!.f32(pd!, n));
  dweight.set(rt!.f32(pdw!, C));
  dbias.set(rt!.f32(pdb!, C));
};

const convArgs = (g: ConvGeometry): Im2colArgs => ({ ...g, planes: g.N * g.C });

const im2col: KernelTable['im2col'] = (x, g, cols) => {
  const nx = g.N * g.C * g.H * g.W;
  const nc = g.N * g.C * g.kh * g.kw * g.Ho * g.Wo;
  if (nc < WASM_MIN_ELEMENTWISE || nx === 0) return jsKernels.im2col(x, g, cols);
  use(nc);
  const [px, pc] = layout([nx, nc]) as number[];
  rt!.f32(px!, nx).set(x.subarray(0, nx));
  rt!.im2col(px!, convArgs(g), pc!);
  cols.set(rt!.f32(pc!, nc));
};

const col2im: KernelTable['col2im'] = (cols, g, dx) => {
  const nx = g.N * g.C * g.H * g.W;
  const nc = g.N * g.C * g.kh * g.kw * g.Ho * g.Wo;
  if (nc < WASM_MIN_ELEMENTWISE || nx === 0) return jsKernels.col2im(cols, g, dx);
  use(nc);
  const [pc, px] = layout([nc, nx]) as number[];
  rt!.f32(pc!, nc).set(cols.subarray(0, nc));
  // dx accumulates: its current contents go in (zeros, per the contract, but kept exactly either way).
  rt!.f32(px!, nx).set(dx.subarray(0, nx));
  rt!.col2im(pc!, convArgs(g), px!);
  dx.set(rt!.f32(px!, nx));
};

/** A view of one value broadcast to its shape (a scalar operand): stride 0 on every dim longer than 1. */
const isScalar = (v: View) => v.strides.every((s, i) => s === 0 || v.shape[i] === 1);

/**
 * pow over dense float32 operands of out's shape, either of them possibly a broadcast scalar (x ** 2, 2 ** x),
 * runs in wasm; other broadcasts, views and ints in the reference.
 */
const pow: KernelTable['pow'] = (a, b, out) => {
  const n = out.length;
  const aDense = isDense(a);
  const bDense = isDense(b);
  if (
    n < WASM_MIN_ELEMENTWISE ||
    a.dtype !== 'float32' ||
    b.dtype !== 'float32' ||
    !(out instanceof Float32Array) ||
    !((aDense && (bDense || isScalar(b))) || (bDense && isScalar(a)))
  ) {
    return jsKernels.pow(a, b, out);
  }
  const scalar = !aDense ? 'a' : !bDense ? 'b' : undefined;
  const na = scalar === 'a' ? 1 : n;
  const nb = scalar === 'b' ? 1 : n;
  use(n);
  const [pa, pb, po] = layout([na, nb, n]) as number[];
  rt!.f32(pa!, na).set((a.data as Float32Array).subarray(a.offset, a.offset + na));
  rt!.f32(pb!, nb).set((b.data as Float32Array).subarray(b.offset, b.offset + nb));
  rt!.pow(pa!, pb!, po!, n, scalar);
  out.set(rt!.f32(po!, n));
};

/**
 * Most elements of dst scatterAdd's general path may hold per element of src: the path copies all of dst in
 * and out of wasm memory, which costs about as much per element as the reference's loop does per element of
 * src. NOTE: an estimate from the copy and loop rates, not a measurement.
 */
export const SCATTER_MAX_DST_PER_SRC = 4;

/**
 * scatterAdd of dense float32 src into dense float32 dst in wasm, bit for bit the reference's sums. Along the
 * first axis with rows of 16 floats or more (an embedding's gradient: a large table, a few touched rows)
 * only the rows the index touches cross into wasm memory; otherwise all of dst does, when it is not much
 * larger than src (SCATTER_MAX_DST_PER_SRC).
 */
const scatterAdd: KernelTable['scatterAdd'] = (dst, axis, index, src) => {
  const ns = numel(src.shape);
  const nd = numel(dst.shape);
  if (
    ns < WASM_MIN_ELEMENTWISE ||
    dst.dtype !== 'float32' ||
    src.dtype !== 'float32' ||
    !isDense(dst) ||
    !isDense(src)
  ) {
    return jsKernels.scatterAdd(dst, axis, index, src);
  }
  const outer = numel(dst.shape.slice(0, axis));
  const D = dst.shape[axis]!;
  const inner = numel(dst.shape.slice(axis + 1));
  const I = index.length;
  const dd = dst.data as Float32Array;
  const sd = (src.data as Float32Array).subarray(src.offset, src.offset + ns);
  use(ns);
  if (outer === 1 && inner >= 16) {
    // Touched rows, each once in order of first use; the index is renumbered to them.
    const slot = new Int32Array(D).fill(-1);
    const local = new Int32Array(I);
    const rows: number[] = [];
    for (let i = 0; i < I; i++) {
      const d = index[i]!;
      let s = slot[d]!;
      if (s < 0) {
        s = slot[d] = rows.length;
        rows.push(d);
      }
      local[i] = s;
    }
    const U = rows.length;
    const [pd, ps, pi] = layout([U * inner, ns, I]) as number[];
    const heapDst = rt!.f32(pd!, U * inner);
    for (let u = 0; u < U; u++) {
      const at = dst.offset + rows[u]! * inner;
      heapDst.set(dd.subarray(at, at + inner), u * inner);
    }
    rt!.f32(ps!, ns).set(sd);
    rt!.i32(pi!, I).set(local);
    rt!.scatterAdd(pd!, ps!, pi!, 1, U, I, inner);
    const sums = rt!.f32(pd!, U * inner);
    for (let u = 0; u < U; u++)
      dd.set(sums.subarray(u * inner, (u + 1) * inner), dst.offset + rows[u]! * inner);
    return;
  }
  if (nd > SCATTER_MAX_DST_PER_SRC * ns) return jsKernels.scatterAdd(dst, axis, index, src);
  const [pd, ps, pi] = layout([nd, ns, I]) as number[];
  rt!.f32(pd!, nd).set(dd.subarray(dst.offset, dst.offset + nd));
  rt!.f32(ps!, ns).set(sd);
  rt!.i32(pi!, I).set(index);
  rt!.scatterAdd(pd!, ps!, pi!, outer, D, I, inner);
  dd.set(rt!.f32(pd!, nd), dst.offset);
};

/**
 * Lays out one attention call in the scratch region: blocks of `floats` float32s (64-byte aligned) in order,
 * then the mask's storage and its batch offsets. Returns the block pointers and the kernel's arguments (q, k,
 * v being the first three blocks).
 */
function attentionCall(
  g: AttentionGeometry,
  mask: AttentionMaskView | null,
  tiles: [number, number],
  floats: number[],
): { ptr: number[]; args: AttentionArgs } {
  const sizes = [...floats.map((n) => 4 * n), mask ? mask.data.byteLength : 0, mask ? 4 * g.B : 0];
  const ptr: number[] = [];
  let total = 0;
  for (const bytes of sizes) {
    ptr.push(total);
    total += Math.ceil(bytes / 64) * 64;
  }
  const base = scratch(total);
  for (let i = 0; i < ptr.length; i++) ptr[i]! += base;
  const [pMask, pOff] = ptr.slice(-2) as [number, number];
  if (mask) {
    const d = mask.data;
    new Uint8Array(rt!.memory.buffer, pMask, d.byteLength).set(
      new Uint8Array(d.buffer, d.byteOffset, d.byteLength),
    );
    rt!.i32(pOff, g.B).set(mask.batchOffset);
  }
  const args: AttentionArgs = {
    q: ptr[0]!,
    k: ptr[1]!,
    v: ptr[2]!,
    mask: mask ? pMask : 0,
    maskKind: mask ? (mask.additive ? 1 : 2) : 0,
    maskOff: mask ? pOff : 0,
    strideL: mask?.strideL ?? 0,
    strideS: mask?.strideS ?? 0,
    B: g.B,
    L: g.L,
    S: g.S,
    E: g.E,
    Ev: g.Ev,
    scale: g.scale,
    causal: g.causal,
    bq: tiles[0],
    bk: tiles[1],
  };
  return { ptr, args };
}

/** Tiles that fit the kernels' scratch, or null where the reference runs (empty sizes, heads of thousands). */
function attentionTiles(g: AttentionGeometry): [number, number] | null {
  if (g.B * g.L * g.S * g.E * g.Ev === 0) return null;
  return rt!.attentionTiles(g.blockQ, g.blockK, g.E, g.Ev);
}

/** q, k, v are copied into wasm memory; the kernel's own scratch is a fixed block per thread. */
const attentionForward: KernelTable['attentionForward'] = (q, k, v, g, mask, out, lse) => {
  use(g.B * g.L * g.S);
  const tiles = attentionTiles(g);
  if (!tiles) return jsKernels.attentionForward(q, k, v, g, mask, out, lse);
  const { ptr, args } = attentionCall(g, mask, tiles, [q.length, k.length, v.length, out.length, lse.length]);
  rt!.f32(args.q, q.length).set(q);
  rt!.f32(args.k, k.length).set(k);
  rt!.f32(args.v, v.length).set(v);
  rt!.attentionForward(args, ptr[3]!, ptr[4]!);
  out.set(rt!.f32(ptr[3]!, out.length));
  lse.set(rt!.f32(ptr[4]!, lse.length));
};

const attentionBackward: KernelTable['attentionBackward'] = (
  q,
  k,
  v,
  out,
  dOut,
  lse,
  g,
  mask,
  dq,
  dk,
  dv,
  dmask,
) => {
  use(g.B * g.L * g.S);
  const tiles = attentionTiles(g);
  if (!tiles) return jsKernels.attentionBackward(q, k, v, out, dOut, lse, g, mask, dq, dk, dv, dmask);
  const inputs = [q, k, v, out, dOut, lse];
  const grads = [dq, dk, dv, dmask];
  const { ptr, args } = attentionCall(g, mask, tiles, [
    ...inputs.map((t) => t.length),
    ...grads.map((t) => t?.length ?? 0),
  ]);
  for (let i = 0; i < inputs.length; i++) rt!.f32(ptr[i]!, inputs[i]!.length).set(inputs[i]!);
  if (dmask) rt!.f32(ptr[9]!, dmask.length).set(dmask);
  const [pq, pk, pv, pm] = grads.map((t, i) => (t ? ptr[6 + i]! : 0)) as [number, number, number, number];
  rt!.attentionBackward(args, ptr[3]!, ptr[4]!, ptr[5]!, pq, pk, pv, pm);
  grads.forEach((t, i) => {
    t?.set(rt!.f32(ptr[6 + i]!, t.length));
  });
};

/** Try to enable relaxed SIMD on Node 20 (a V8 flag Node 22+ has on), before the module is compiled. */
function enableRelaxedSimd(): void {
  const proc = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
  const v8 = proc?.getBuiltinModule?.('node:v8') as { setFlagsFromString(f: string): void } | undefined;
  try {
    v8?.setFlagsFromString('--experimental-wasm-relaxed-simd');
  } catch {
    // An engine without the flag simply runs the plain SIMD kernels.
  }
}

/** Why the wasm backend is unavailable, when it is (shown by backendInfo of the active backend). */
export let wasmUnavailable: string | undefined;

try {
  enableRelaxedSimd();
  main = rt = initWasm();
  if (main.features.sharedMemory) plain = initWasm({ sharedMemory: false, threads: 1 });
  const kernels: Partial<KernelTable> = {
    matmul,
    add: binary('add'),
    sub: binary('sub'),
    mul: binary('mul'),
    div: binary('div'),
    maximum: binary('maximum'),
    minimum: binary('minimum'),
    relu: unaryOp('relu'),
    exp: unaryOp('exp'),
    erf: unaryOp('erf'),
    pow,
    neg: unaryFamily('neg'),
    abs: unaryFamily('abs'),
    sqrt: unaryFamily('sqrt'),
    sign: unaryFamily('sign'),
    sigmoid: unaryFamily('sigmoid'),
    tanh: unaryFamily('tanh'),
    log: unaryFamily('log'),
    clamp,
    reluBackward,
    sum: reduceOp('sum'),
    max: reduceOp('max'),
    min: reduceOp('min'),
    softmax: softmaxOp(false),
    logSoftmax: softmaxOp(true),
    softmaxCrossEntropy,
    softmaxCrossEntropyBackward,
    attentionForward,
    attentionBackward,
    eq: compareOp('eq'),
    ne: compareOp('ne'),
    lt: compareOp('lt'),
    le: compareOp('le'),
    gt: compareOp('gt'),
    ge: compareOp('ge'),
    where,
    argmax: argOp(false),
    argmin: argOp(true),
    batchNormForward,
    batchNormBackward,
    im2col,
    col2im,
    scatterAdd,
    sgdUpdate,
    adamUpdate,
    rmspropUpdate,
    adagradUpdate,
    copy,
  };
  registerBackend(
    {
      name: 'wasm',
      priority: 10,
      alloc: allocStorage,
      allocLongLived: (n) => main!.residentF32(n) ?? new Float32Array(n),
      activated: () => {
        main!.callerOnly = false;
      },
      describe: () => ({
        kind: 'WebAssembly SIMD',
        relaxedSimd: main!.features.relaxedSimd,
        sharedMemory: main!.features.sharedMemory,
        threads: main!.threads,
      }),
    },
    kernels,
  );
} catch (e) {
  wasmUnavailable = (e as Error).message;
  reportUnavailable('wasm', wasmUnavailable);
}

/** The wasm runtime (undefined where WebAssembly SIMD is unavailable): threads can be set here. */
export function wasmRuntime(): WasmRuntime | undefined {
  return main;
}

/**
 * Starts the wasm backend's worker threads now and resolves with how many are ready (0 where there are no
 * threads). Optional: in a cross-origin isolated browser page the workers otherwise start in the background
 * at the first large call, which runs on the caller alone until they are ready; on Node they start at
 * once when first needed anyway. Rejects when a worker fails to start (kernels then stay on the caller).
 */
export function startWasmThreads(): Promise<number> {
  return main ? main.startThreads() : Promise.resolve(0);
}
