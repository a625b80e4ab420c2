/**
 * The `native` backend (Node only): GEMM on the machine's BLAS (blas.ts), straight on the tensors' storage,
 * no copies. It registers `matmul` (convolutions lower to it through im2col, so they run there too),
 * plain-momentum SGD (level 1) and sums over leading axes (GEMV); the rest comes from its base, `wasm`, and
 * from `js` below that (`backendInfo().fallbackFrom`). It is the default where a BLAS loads; where none
 * does, minibatch runs on wasm and `backendInfo().unavailable.native` (also `nativeUnavailable`) says why,
 * once.
 *
 * Choosing the library: `MINIBATCH_BLAS=/path/or/name` (`openblas`, `mkl`, `blis`, `accelerate`, a file name
 * or a path; `none` turns the backend off) at startup, or `loadNative({ library })` later. Threads follow
 * minibatch's own setting, the wasm runtime's `threads` (default: the cores), so the pools never oversubscribe.
 *
 * Every size goes to BLAS: its call costs about 0.5 µs through koffi, and even a 6×6×6 product takes the JS
 * reference kernel 3 µs (measured on this 2-core machine), so there is no small-size cut-off as in wasm.
 *
 * Shape legend: B batch entries (broadcast leading dims flattened), M×K @ K×N.
 */

import { inGraphWork } from '../../autograd/engine.js';
import { MinibatchError } from '../../errors.js';
import { fmadd } from '../../optim/update-kernels.js';
import { allocStorage } from '../../tensor/dtype.js';
import {
  type KernelTable,
  kernels,
  kernelsOf,
  type MatmulEpilogue,
  registerBackend,
  reportUnavailable,
  type View,
} from '../backend.js';
import { type GemmLayout, gemmOperand } from '../gemm-layout.js';
import { denseOffset, rowOffsets } from '../js/kernels.js';
import { wasmRuntime } from '../wasm/backend.js';
import { type Blas, importKoffi, type Koffi, loadBlas, nodeProcess } from './blas.js';

let blas: Blas | undefined;
let koffi: Koffi | undefined;
/** Why the native backend is off here (undefined when it is registered). */
export let nativeUnavailable: string | undefined;

const proc = nodeProcess();
const cores = (() => {
  const os = proc?.getBuiltinModule?.('node:os') as typeof import('node:os') | undefined;
  return os ? os.availableParallelism() : 1;
})();

/**
 * Below this many multiply-adds a GEMM runs on one BLAS thread: OpenBLAS's threads cost more to hand work to
 * than they save. Measured in a training step at batch 128 on the reference machine (µs, 1 vs 2 threads):
 * 128×128×256 (4.2M): 110 vs 135-170; 128×256×784 (25.7M): 660 vs 530-560; 512×256×128 (16.8M): 215 vs 105.
 */
export const BLAS_SPLIT_MACS = 1 << 23;
/**
 * The same threshold outside graph work (`inGraphWork()` false: inference, evaluation under `noGrad`; a
 * training step's GEMMs run with recording off but count as graph work): a forward pass is GEMMs back to
 * back, where OpenBLAS's second thread is still spinning from the last one and pays from here on. In a
 * training step the rest of the step runs beside that spinning thread and loses more than the split gains:
 * splitting the 32×784×256 forward GEMM at batch 32 (2t 169 vs 1t 237 µs alone) made the whole step 1.3 →
 * 1.6 ms, while inference at batch 32 went from 95-118k to 110-140k samples/s.
 */
export const BLAS_SPLIT_MACS_NO_GRAD = 1 << 22;

/** minibatch's thread setting: the wasm runtime's (which defaults to the cores), else the cores. */
const threadsWanted = () => wasmRuntime()?.threads ?? cores;

function matmul(a: View, b: View, out: Float32Array, epilogue?: MatmulEpilogue): void {
  const r = a.shape.length;
  const [M, K, N] = [a.shape[r - 2]!, a.shape[r - 1]!, b.shape[r - 1]!];
  if (out.length === 0) return;
  // The bias goes in first and GEMM adds the product to it (beta = 1); BLAS has no ReLU: one pass after.
  const bias = epilogue?.bias;
  if (bias) {
    out.set(bias);
    for (let filled = N; filled < out.length; filled *= 2) out.copyWithin(filled, 0, filled);
  }
  if (K === 0) {
    if (!bias) out.fill(0);
  } else {
    gemm(a, b, out, M, K, N, bias ? 1 : 0);
  }
  if (epilogue?.relu)
    kernels().relu({ data: out, dtype: 'float32', shape: [out.length], strides: [1], offset: 0 }, out);
}

/** out = a·b + beta·out, beta 0 or 1 (see `matmul`). */
function gemm(a: View, b: View, out: Float32Array, M: number, K: number, N: number, beta: number): void {
  const r = a.shape.length;
  const lib = blas!;
  const split = inGraphWork() ? BLAS_SPLIT_MACS : BLAS_SPLIT_MACS_NO_GRAD;
  lib.setThreads(M * N * K * (out.length / (M * N)) < split ? 1 : threadsWanted());
  let la: GemmLayout;
  let lb: GemmLayout;
  // An operand in no GEMM-able layout (rare: a permuted or expanded view) is gathered first.
  ({ v: a, l: la } = gemmOperand(a, M, K));
  ({ v: b, l: lb } = gemmOperand(b, K, N));
  const ad = a.data as Float32Array;
  const bd = b.data as Float32Array;
  // A pointer to a matrix's first element: the array itself when it starts there (a subarray costs ~0.7 µs).
  const at = (d: Float32Array, o: number) => (o === 0 ? d : d.subarray(o));
  if (r === 2 && M === 1 && lib.sgemv) {
    // One row (inference at batch 1): GEMV, 6× faster than OpenBLAS's GEMM with M = 1 (784×256: 15 vs 90 µs).
    // out (N) = op(B)ᵀ·a: B stored (N,K) when transposed, so B·a; else (K,N), so Bᵀ·a. a's K values are ld
    // apart when a is stored transposed (a column), else contiguous.
    const [rows, cols] = lb.trans ? [N, K] : [K, N];
    lib.sgemv(
      !lb.trans,
      rows,
      cols,
      1,
      at(bd, b.offset),
      lb.ld,
      at(ad, a.offset),
      la.trans ? la.ld : 1,
      beta,
      out,
    );
    return;
  }
  if (r === 2) {
    // The common case, kept lean: a 32×32×32 call is dominated by this overhead, not the arithmetic.
    lib.sgemm(la.trans, lb.trans, M, N, K, 1, at(ad, a.offset), la.ld, at(bd, b.offset), lb.ld, beta, out, N);
    return;
  }
  const batch = a.shape.slice(0, -2);
  const aOff = rowOffsets([...batch, 1], [...a.strides.slice(0, -2), 0], a.offset);
  const bOff = rowOffsets([...batch, 1], [...b.strides.slice(0, -2), 0], b.offset);
  const B = aOff.length;
  // A shared B (weights over a batch) and A's entries one after another, M rows of ld apart: one GEMM of B·M
  // rows, which BLAS splits across its threads far better than B small ones.
  const ldA = la.ld;
  if (
    B > 1 &&
    !la.trans &&
    bOff.every((o) => o === bOff[0]) &&
    aOff.every((o, t) => o === aOff[0]! + t * M * ldA)
  ) {
    lib.sgemm(
      false,
      lb.trans,
      B * M,
      N,
      K,
      1,
      ad.subarray(aOff[0]),
      ldA,
      bd.subarray(bOff[0]),
      lb.ld,
      beta,
      out,
      N,
    );
    return;
  }
  for (let t = 0; t < B; t++) {
    lib.sgemm(
      la.trans,
      lb.trans,
      M,
      N,
      K,
      1,
      ad.subarray(aOff[t]),
      la.ld,
      bd.subarray(bOff[t]),
      lb.ld,
      beta,
      B === 1 ? out : out.subarray(t * M * N),
      N,
    );
  }
}

/**
 * Rows of a column sum that one GEMV adds in float32 (a block rounds at most 255 times); the block sums are
 * added in float64, as the reference adds everything.
 */
export const SUM_BLOCK_ROWS = 256;
const ones = new Float32Array(SUM_BLOCK_ROWS).fill(1);
let blockSum = new Float32Array(0);
let sums = new Float64Array(0);

/**
 * A dense float32 tensor summed over its leading axes, (R, C) -> (C) (a bias gradient, a mean over the
 * batch), is a GEMV with a column of ones, one per block of SUM_BLOCK_ROWS rows, straight on the storage.
 * 512×256: 44 µs in the base (copied in, then summed) against 16 µs; in a training step at batch 512, 64
 * against 36 µs. Other reductions go to the base backend.
 */
const sum: KernelTable['sum'] = (x, axes, out) => {
  const lib = blas!;
  const r = x.shape.length;
  const d0 = denseOffset(x);
  const k = axes.length;
  if (
    !lib.sgemv ||
    x.dtype !== 'float32' ||
    !(out instanceof Float32Array) ||
    d0 < 0 ||
    k === 0 ||
    k === r ||
    axes[k - 1] !== k - 1 ||
    out.length === 0
  ) {
    return kernelsOf('wasm').sum(x, axes, out);
  }
  const C = out.length;
  const R = x.shape.slice(0, k).reduce((a, d) => a * d, 1);
  const data = x.data as Float32Array;
  lib.setThreads(1);
  if (R <= SUM_BLOCK_ROWS) {
    if (R === 0) out.fill(0);
    else lib.sgemv(true, R, C, 1, data.subarray(d0), C, ones, 1, 0, out);
    return;
  }
  if (blockSum.length < C) [blockSum, sums] = [new Float32Array(C), new Float64Array(C)];
  const part = blockSum.subarray(0, C);
  sums.fill(0, 0, C);
  for (let r0 = 0; r0 < R; r0 += SUM_BLOCK_ROWS) {
    const rows = Math.min(SUM_BLOCK_ROWS, R - r0);
    lib.sgemv(true, rows, C, 1, data.subarray(d0 + r0 * C), C, ones, 1, 0, part);
    for (let c = 0; c < C; c++) sums[c]! += part[c]!;
  }
  for (let c = 0; c < C; c++) out[c] = sums[c]!;
};

/**
 * Below this many parameters an SGD step stays with the base backend: three BLAS calls cost ~1 µs in calls.
 */
export const BLAS_MIN_OPTIM = 4096;

/**
 * Plain momentum SGD in place with BLAS level 1, no copies: v = μ·v (sscal), v += g (saxpy), p += −lr·v
 * (saxpy). The roundings are the reference's: μ·v and v + g are single float32 operations, and OpenBLAS's
 * saxpy loop is a fused multiply-add, PyTorch's `add(alpha)` exactly (the reference emulates that in float64,
 * which rounds twice about once in 2^29).
 * Other cases (first step, Nesterov, decay, dampening, maximize) go to the base backend.
 */
const sgdUpdate: KernelTable['sgdUpdate'] = (p, g, b, h) => {
  const lib = blas!;
  const n = p.length;
  if (
    !lib.saxpy ||
    !lib.sscal ||
    !b ||
    n < BLAS_MIN_OPTIM ||
    h.first ||
    h.nesterov ||
    h.maximize ||
    h.wd !== 0 ||
    h.keep !== 1
  ) {
    return kernelsOf('wasm').sgdUpdate(p, g, b, h);
  }
  lib.setThreads(1);
  lib.sscal(n, h.mu, b);
  lib.saxpy(n, 1, g, b);
  // OpenBLAS's SIMD loop fuses; its scalar tail (past the last 32-float block) rounds twice, which with
  // cancellation is several ulps off: the tail takes the reference's rounding instead.
  const body = n - (n % 64);
  lib.saxpy(body, h.negLr, b, p);
  for (let i = body; i < n; i++) p[i] = fmadd(h.negLr, b[i]!, p[i]!);
};

function describe(): Record<string, string | number | boolean> {
  const lib = blas!;
  const facts: Record<string, string | number | boolean> = {
    kind: `${lib.vendor} through koffi`,
    library: lib.library,
    threads: lib.threads || threadsWanted(),
    // GEMMs under BLAS_SPLIT_MACS use one thread; the base's wasm kernels run on the caller (activated).
    smallGemmThreads: 1,
    baseThreads: 1,
    base: 'wasm',
  };
  if (lib.config) facts.config = lib.config;
  if (lib.core) facts.core = `${lib.core}: ${lib.coreNote}`;
  return facts;
}

function register(loaded: Blas): void {
  blas = loaded;
  blas.setThreads(threadsWanted());
  nativeUnavailable = undefined;
  registerBackend(
    {
      name: 'native',
      priority: 20,
      base: 'wasm',
      alloc: allocStorage,
      // The BLAS's workers hold the other cores between GEMMs: its base's wasm kernels stay on the caller.
      activated: () => {
        const rt = wasmRuntime();
        if (rt) rt.callerOnly = true;
      },
      describe,
    },
    { matmul, sgdUpdate, sum } satisfies Partial<KernelTable>,
  );
  if (loaded.coreNote?.startsWith('WRONG'))
    warn(`native backend: OpenBLAS core ${loaded.core}: ${loaded.coreNote}`);
}

function warn(message: string): void {
  (proc as { emitWarning?: (m: string) => void } | undefined)?.emitWarning?.(`minibatch: ${message}`);
}

/**
 * Load a BLAS and make `native` available (the default, unless the user chose a backend): `library` is a path,
 * a file name, or one of `openblas`, `mkl`, `blis`, `accelerate` (default: `MINIBATCH_BLAS`, else the first of
 * the platform's that loads). Throws, saying why, when none loads; the backends already registered stay.
 */
export function loadNative(opts: { library?: string } = {}): void {
  if (!proc?.getBuiltinModule) throw new MinibatchError('native', nativeUnavailable ?? 'not running on Node');
  if (!koffi) throw new MinibatchError('native', nativeUnavailable ?? 'koffi is not loaded');
  try {
    register(loadBlas(koffi, proc, opts.library ?? (proc.env.MINIBATCH_BLAS || undefined)));
  } catch (e) {
    if (!blas) reportUnavailable('native', (nativeUnavailable = (e as Error).message));
    throw new MinibatchError('native', (e as Error).message);
  }
}

/** The loaded BLAS (undefined when the backend is off), for benchmarks and the debug listing. */
export function nativeBlas(): Blas | undefined {
  return blas;
}

if (!proc) nativeUnavailable = 'not running on Node';
else if (!proc.getBuiltinModule) nativeUnavailable = 'needs Node 20.16 or later (process.getBuiltinModule)';
else if (proc.env.MINIBATCH_BLAS?.toLowerCase() === 'none')
  nativeUnavailable = 'turned off by MINIBATCH_BLAS=none';
// NOTE: DataLoader workers import the library to build batches; they need no BLAS, and koffi's addon
// loading in a worker that the process is tearing down aborts the process (seen at exit after an early break).
else if (!(proc.getBuiltinModule('node:worker_threads') as typeof import('node:worker_threads')).isMainThread)
  nativeUnavailable = 'not loaded in worker threads (GEMM runs on the main thread)';
else {
  try {
    koffi = await importKoffi();
    register(loadBlas(koffi, proc, proc.env.MINIBATCH_BLAS || undefined));
  } catch (e) {
    nativeUnavailable = (e as Error).message;
    // Said once, at startup, when the user asked for a library; otherwise only in backendInfo().
    if (proc.env.MINIBATCH_BLAS) warn(`native backend off, running on wasm: ${nativeUnavailable}`);
  }
}
if (nativeUnavailable) reportUnavailable('native', nativeUnavailable);
