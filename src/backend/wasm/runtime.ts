/**
 * The WebAssembly runtime under the wasm backend: one module of SIMD kernels (assembly/), a JS-owned heap in
 * its memory, and a lazily started pool of worker threads sharing that memory.
 *
 * Raw and unchecked by design: pointers are byte addresses from `alloc`, sizes are element counts, and the
 * op that calls in has validated shapes already (STYLE: validate once, in the op). Shape legend as in the
 * kernels: C (M,N) = op(A) (M,K) · op(B) (K,N); R rows × C columns for row-wise kernels; n flat elements.
 *
 * @example
 * const rt = initWasm();
 * const a = rt.alloc(4 * 2 * 3), b = rt.alloc(4 * 3 * 4), c = rt.alloc(4 * 2 * 4);
 * rt.f32(a, 6).set([1, 2, 3, 4, 5, 6]);
 * rt.f32(b, 12).fill(1);
 * rt.sgemm(false, false, 2, 4, 3, 1, a, 3, b, 4, 0, c, 4, { relu: true }); // c = relu(a·b), (2,4)
 * rt.f32(c, 8); // [6, 6, 6, 6, 15, 15, 15, 15]
 */
import { MinibatchError, ValueError } from '../../errors.js';
import type { AdagradUpdate, AdamUpdate, ConvGeometry, RmspropUpdate, SgdUpdate } from '../backend.js';
import { relaxedSimdWasm, simdWasm } from './generated/binaries.js';
import { Heap } from './heap.js';
import { MAX_THREADS, Pool, type Spawner } from './pool.js';
import {
  chunksOf,
  type Kernels,
  MAX_ARGS,
  runChunk,
  sgemmSharedOperand,
  Task,
  type TaskName,
} from './tasks.js';

/**
 * Multiply-adds per thread below which a GEMM stays on the calling thread. Handing a call to workers costs
 * 2-5 µs while they spin, 13-27 µs to wake sleeping ones on an idle machine (50-300 µs measured on a busy
 * 2-vCPU VM); 64³ multiply-adds take about 17 µs at 30 GFLOP/s, so smaller products gain less from a second
 * thread than the hand-off costs.
 */
export const GEMM_MIN_MACS_PER_THREAD = 64 * 64 * 64;
/**
 * Elements per thread below which an elementwise kernel stays on the calling thread. Measured: an add of
 * 64 Ki floats takes about 15 µs (in cache), an exp about 100 µs; below that the hand-off eats the gain.
 */
export const ELEMENTWISE_MIN_PER_THREAD = 1 << 16;

const PAGE = 65536;

export type BinaryOp = 'add' | 'sub' | 'mul' | 'div' | 'maximum' | 'minimum';
const OP_CODE: Record<BinaryOp, number> = { add: 0, sub: 1, mul: 2, div: 3, maximum: 4, minimum: 5 };
/** Unary kernels of assembly/elementwise.ts `unary` (sigmoid and tanh stable, log about 1-2 ulp). */
export type UnaryOp = 'neg' | 'abs' | 'sqrt' | 'sign' | 'sigmoid' | 'tanh' | 'log';
const UNARY_CODE: Record<UnaryOp, number> = { neg: 0, abs: 1, sqrt: 2, sign: 3, sigmoid: 4, tanh: 5, log: 6 };
/** Reductions of reduceRows / reduceCols: sum accumulates in float64; max and min propagate NaN. */
export type ReduceOp = 'sum' | 'max' | 'min';
const REDUCE_CODE: Record<ReduceOp, number> = { sum: 0, max: 1, min: 2 };
/** Comparisons of `compare`: 0/1 bytes, NaN compares false except ne. */
export type CompareOp = 'eq' | 'ne' | 'lt' | 'le' | 'gt' | 'ge';
const COMPARE_CODE: Record<CompareOp, number> = { eq: 0, ne: 1, lt: 2, le: 3, gt: 4, ge: 5 };

/** Geometry of im2col / col2im: ConvGeometry's with its N·C images counted as P = N·C planes. */
export type Im2colArgs = Omit<ConvGeometry, 'N' | 'C'> & { planes: number };

export interface WasmOptions {
  /** Threads including the caller (default: the available cores; always 1 without shared memory/threads). */
  threads?: number;
  /** Use the relaxed-SIMD kernels (fused multiply-add) where the engine accepts them (default true). */
  relaxedSimd?: boolean;
  /** Share the memory with worker threads (default: where SharedArrayBuffer exists). */
  sharedMemory?: boolean;
  /** Largest the memory may grow, in bytes (default 2 GiB, at most 4 GiB). */
  maxMemoryBytes?: number;
}

/** What this runtime runs on. `simd` is always true: the kernels need 128-bit SIMD. */
export interface WasmFeatures {
  simd: true;
  relaxedSimd: boolean;
  sharedMemory: boolean;
  /**
   * Worker threads are available over the shared memory: Node worker_threads, or module Web Workers in a
   * cross-origin isolated page (there they start asynchronously: see `WasmRuntime.startThreads`).
   */
  threads: boolean;
}

/**
 * Work of the attention backward in two passes relative to one: the key-tile pass (dk, dv) and the query-tile
 * pass (dq) both recompute P and dP, 7 tile products per tile pair against 5. Measured 1.3-1.4x on one
 * thread at (4, 2048, 64).
 */
export const ATTENTION_TWO_PASS_COST = 1.4;

/**
 * Operands of the attention kernels (assembly/attention.ts), all in wasm memory: q (B,L,E), k (B,S,E),
 * v (B,S,Ev) row-major; mask cell (b,i,j) is element maskOff[b] + i·strideL + j·strideS of `mask` (maskOff:
 * B int32s), maskKind 0 none, 1 float32 added, 2 uint8 where 0 masks out.
 */
export interface AttentionArgs {
  q: number;
  k: number;
  v: number;
  mask: number;
  maskKind: 0 | 1 | 2;
  maskOff: number;
  strideL: number;
  strideS: number;
  B: number;
  L: number;
  S: number;
  E: number;
  Ev: number;
  scale: number;
  causal: boolean;
  /** Tile sizes (see WasmRuntime.attentionTiles). */
  bq: number;
  bk: number;
}

/** Multiply-adds of one attention product pass of inner size `inner` (about half with a causal mask). */
const attentionMacs = (p: AttentionArgs, inner: number) => (p.B * p.L * p.S * inner) / (p.causal ? 2 : 1);

/** Optional fused epilogue of a GEMM: C += bias (N) broadcast over rows, then ReLU. */
export interface GemmEpilogue {
  /** Pointer to N floats (0 or absent: none). */
  bias?: number;
  /** Elements between the biases of consecutive batch entries (batched GEMM only; default 0: shared). */
  biasStride?: number;
  relu?: boolean;
}

type NodeWorkerThreads = typeof import('node:worker_threads');
type NodeOs = typeof import('node:os');

interface Prepared {
  bytes: Uint8Array<ArrayBuffer>;
  features: WasmFeatures;
  spawner: Spawner | undefined;
  cores: number;
}

/** The embedded binary's bytes. A plain loop: `Uint8Array.from` with a callback took 12-16 ms per binary. */
function decode(base64: string): Uint8Array<ArrayBuffer> {
  const text = atob(base64);
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
  return bytes;
}

// NOTE: the binaries declare their imported memory shared; for a plain memory the declaration must say so
// too. The import entry is `03 "env" 06 "memory" 02 <limits flags>`; flags 0x03 (maximum + shared) -> 0x01.
const MEMORY_IMPORT = [0x03, 0x65, 0x6e, 0x76, 0x06, 0x6d, 0x65, 0x6d, 0x6f, 0x72, 0x79, 0x02, 0x03];

function unshare(bytes: Uint8Array<ArrayBuffer>): Uint8Array<ArrayBuffer> {
  const at = bytes.findIndex((_, i) => MEMORY_IMPORT.every((v, j) => bytes[i + j] === v));
  if (at < 0) throw new MinibatchError('wasm', 'kernel binary has no shared memory import to rewrite');
  const out = bytes.slice();
  out[at + MEMORY_IMPORT.length - 1] = 0x01;
  return out;
}

// `process.getBuiltinModule` (Node >= 20.16) loads Node modules synchronously without a static import that
// would break browser bundles.
function nodeModule<T>(id: string): T | undefined {
  const proc = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
  return proc?.getBuiltinModule?.(id) as T | undefined;
}

function prepare(opts: WasmOptions): Prepared {
  const plain = decode(simdWasm);
  const sharedMemory = (opts.sharedMemory ?? true) && typeof SharedArrayBuffer === 'function';
  const variant = (b: Uint8Array<ArrayBuffer>) => (sharedMemory ? b : unshare(b));
  if (!WebAssembly.validate(variant(plain))) {
    throw new MinibatchError(
      'wasm',
      'this engine lacks WebAssembly SIMD (got a failed validation of the kernels)',
    );
  }
  // The probe is the relaxed binary itself: it validates exactly where it can run (Node 20 needs
  // --experimental-wasm-relaxed-simd).
  const relaxed = variant(decode(relaxedSimdWasm));
  const relaxedSimd = (opts.relaxedSimd ?? true) && WebAssembly.validate(relaxed);
  const spawner = sharedMemory ? findSpawner() : undefined;
  const os = nodeModule<NodeOs>('node:os');
  const nav = (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator;
  return {
    bytes: relaxedSimd ? relaxed : variant(plain),
    features: { simd: true, relaxedSimd, sharedMemory, threads: spawner !== undefined },
    spawner,
    cores: os ? os.availableParallelism() : Math.max(1, nav?.hardwareConcurrency ?? 1),
  };
}

/**
 * Node's worker_threads; else, in a browser, module Web Workers where the page is cross-origin isolated (a
 * shared memory can only be posted to a worker there; browsers hide SharedArrayBuffer otherwise anyway).
 */
function findSpawner(): Spawner | undefined {
  const workerThreads = nodeModule<NodeWorkerThreads>('node:worker_threads');
  if (workerThreads) return { kind: 'node', Worker: workerThreads.Worker };
  const g = globalThis as { Worker?: typeof Worker; crossOriginIsolated?: boolean };
  if (typeof g.Worker !== 'function' || g.crossOriginIsolated === false) return;
  return { kind: 'web', Worker: g.Worker };
}

/** Creates a runtime synchronously (Node, browser workers; a browser's main thread wants initWasmAsync). */
export function initWasm(opts: WasmOptions = {}): WasmRuntime {
  const p = prepare(opts);
  return new WasmRuntime(new WebAssembly.Module(p.bytes), p, opts);
}

/** Creates a runtime, compiling asynchronously (a browser's main thread may refuse to compile synchronously). */
export async function initWasmAsync(opts: WasmOptions = {}): Promise<WasmRuntime> {
  const p = prepare(opts);
  return new WasmRuntime(await WebAssembly.compile(p.bytes), p, opts);
}

export class WasmRuntime {
  readonly features: WasmFeatures;
  /** The module's memory: shared between threads when `features.sharedMemory`. */
  readonly memory: WebAssembly.Memory;
  private readonly kernels: Kernels;
  private readonly heap: Heap;
  private readonly local = new Float64Array(MAX_ARGS);
  /** GEMM packing buffers by thread id (0 = the caller). */
  private readonly scratch: number[] = [];
  private readonly scratchBytes: number;
  /** sgemm's task arguments (apart from `local`, which a call on the caller alone fills). */
  private readonly gemmArgs = new Float64Array(MAX_ARGS);
  private readonly spawner: Spawner | undefined;
  /** The memory's buffers that resident arrays were made over (a shared memory's grows give new objects). */
  private readonly residentBuffers = new WeakSet<ArrayBufferLike>();
  /** Whether residentF32 has handed out anything (else pointerOf needs no lookup). */
  private hasResident = false;
  private readonly finalizer = new FinalizationRegistry<number>((ptr) => this.heap.free(ptr));
  /** Thread t's GEMM scratch, allocated when its worker starts. */
  private readonly scratchOf = (tid: number): number =>
    (this.scratch[tid] ??= this.heap.alloc(this.scratchBytes));
  private readonly module: WebAssembly.Module;
  private pool: Pool | undefined;
  /** Why web workers could not start (then calls stay on the caller). */
  private poolFailure: Error | undefined;
  private nThreads: number;
  /** How the attention backward runs: 0 picks (see `attentionBackward`), 1 one pass, 2 two passes. */
  attentionPasses: 0 | 1 | 2 = 0;

  /** Use initWasm / initWasmAsync. */
  constructor(module: WebAssembly.Module, p: Prepared, opts: WasmOptions) {
    this.module = module;
    this.features = p.features;
    this.spawner = p.spawner;
    const maxPages = Math.min(65536, Math.floor((opts.maxMemoryBytes ?? 2 ** 31) / PAGE));
    this.memory = new WebAssembly.Memory({
      initial: Math.min(64, maxPages),
      maximum: maxPages,
      shared: p.features.sharedMemory,
    });
    this.kernels = new WebAssembly.Instance(module, { env: { memory: this.memory } })
      .exports as unknown as Kernels;
    this.heap = new Heap(this.memory, this.kernels.heapBase());
    this.scratchBytes = this.kernels.gemmScratchBytes();
    this.scratch.push(this.heap.alloc(this.scratchBytes));
    this.nThreads = 1;
    this.threads = opts.threads ?? p.cores;
  }

  /**
   * Threads a large kernel call may use, the caller included. Workers start at the first call that wants
   * them; lowering the count leaves spare workers asleep. Reads back 1 where threads are unavailable.
   */
  get threads(): number {
    return this.nThreads;
  }

  set threads(n: number) {
    if (!Number.isInteger(n) || n < 1)
      throw new ValueError('wasm.threads', `expected a positive integer (got ${n})`);
    this.nThreads = this.features.threads ? Math.min(n, MAX_THREADS) : 1;
  }

  /**
   * Run every call on the caller alone (the native backend sets this while it is active: OpenBLAS's workers
   * spin between GEMMs for ~0.1 s, and a wasm worker competing with them for a core slowed the kernels down,
   * e.g. an SGD step of 235k parameters from 0.5 to 0.8-1.0 ms on 2 cores).
   */
  callerOnly = false;

  /** Worker threads started and ready so far (0 until a call needs them, or `startThreads`). */
  get workersStarted(): number {
    return this.pool?.size ?? 0;
  }

  /**
   * Starts the workers for `threads` (the caller included) ahead of the first large call and resolves with
   * the workers ready (0 where threads are unavailable). In a browser this is how to get threads from the
   * first call on: workers start asynchronously there, never blocking (a page's main thread cannot wait for
   * them), and calls run on the caller alone, then on the workers ready so far, until they all are. On Node
   * it blocks until they are ready, as the first large call would. Rejects when a worker fails to start;
   * in a browser calls then stay on the caller.
   */
  async startThreads(): Promise<number> {
    if (this.poolFailure) throw this.poolFailure;
    if (this.nThreads <= 1) return this.workersStarted;
    const pool = this.ensurePool();
    await this.startWorkers(pool, this.nThreads - 1);
    return pool.size;
  }

  /** Ends the workers (the runtime stays usable and restarts them when needed). */
  shutdown(): void {
    this.pool?.close();
    this.pool = undefined;
  }

  /** A 64-byte aligned block of `bytes` bytes, uninitialised; may grow the memory (see `f32`). */
  alloc(bytes: number): number {
    return this.heap.alloc(bytes);
  }

  free(ptr: number): void {
    this.heap.free(ptr);
  }

  /** Bytes allocated and not freed. */
  get bytesInUse(): number {
    return this.heap.bytesInUse;
  }

  /**
   * A Float32Array over `length` floats at `ptr`. NOTE: on a plain (non-shared) memory, growing it detaches
   * every view, so take views after the allocations of a step, not before; views on a shared memory survive.
   */
  f32(ptr: number, length: number): Float32Array {
    return new Float32Array(this.memory.buffer, ptr, length);
  }

  /**
   * A Float32Array over the whole memory as far as float index `end` at least (index = byte pointer / 4),
   * kept between calls: a small kernel's copies skip making a view per operand (~0.1 µs each). Same
   * lifetime rule as `f32`; a grown memory gets a new view here.
   */
  heapF32(end: number): Float32Array {
    if (this.wholeF32.length < end) this.wholeF32 = new Float32Array(this.memory.buffer);
    return this.wholeF32;
  }
  private wholeF32 = new Float32Array(0);

  /**
   * n zeroed floats that live in this memory until the GC collects the returned array (a FinalizationRegistry
   * frees the block), so kernels use them in place, without copies: for storage that lives across steps
   * (parameters, gradients, optimizer state), never per-step temporaries, whose blocks a synchronous loop
   * would pile up before any finalizer runs. Undefined without shared memory, where growing the memory would
   * detach the array.
   */
  residentF32(n: number): Float32Array | undefined {
    if (!this.features.sharedMemory) return undefined;
    const ptr = this.heap.alloc(4 * n);
    const buffer = this.memory.buffer;
    this.residentBuffers.add(buffer);
    this.hasResident = true;
    const a = new Float32Array(buffer, ptr, n).fill(0);
    this.finalizer.register(a, ptr);
    return a;
  }

  /** The byte address of `a` if it is a view of this memory (resident storage), else -1. */
  pointerOf(a: Float32Array): number {
    // Most calls (a plain memory, or nothing resident yet) skip the lookup and its `.buffer` read.
    return this.hasResident && this.residentBuffers.has(a.buffer) ? a.byteOffset : -1;
  }

  /** An Int32Array over `length` ints at `ptr` (class targets); same lifetime rule as `f32`. */
  i32(ptr: number, length: number): Int32Array {
    return new Int32Array(this.memory.buffer, ptr, length);
  }

  /**
   * C (M,N) = alpha·op(A)·op(B) + beta·C, then optionally + bias (N) per column and ReLU.
   * op(A) is (M,K): A stored (M,K) with row stride lda, or (K,M) when transA. op(B) is (K,N): B stored (K,N)
   * with ldb, or (N,K) when transB. C is not read when beta is 0. K = 0 gives beta·C (+ epilogue).
   */
  sgemm(
    transA: boolean,
    transB: boolean,
    M: number,
    N: number,
    K: number,
    alpha: number,
    a: number,
    lda: number,
    b: number,
    ldb: number,
    beta: number,
    c: number,
    ldc: number,
    epilogue: GemmEpilogue = {},
  ): void {
    this.sgemmBatched(transA, transB, M, N, K, alpha, a, lda, 0, b, ldb, 0, beta, c, ldc, 0, 1, epilogue);
  }

  /**
   * `batch` independent GEMMs as in `sgemm`; entry i uses a + i·strideA, b + i·strideB, c + i·strideC and
   * bias + i·biasStride (strides in elements; a stride of 0 shares that operand, e.g. one weight matrix).
   */
  sgemmBatched(
    transA: boolean,
    transB: boolean,
    M: number,
    N: number,
    K: number,
    alpha: number,
    a: number,
    lda: number,
    strideA: number,
    b: number,
    ldb: number,
    strideB: number,
    beta: number,
    c: number,
    ldc: number,
    strideC: number,
    batch: number,
    epilogue: GemmEpilogue = {},
  ): void {
    const { bias = 0, biasStride = 0, relu = false } = epilogue;
    const shares = (batch * M * N * K) / GEMM_MIN_MACS_PER_THREAD;
    if (batch === 1 && (this.callerOnly || this.nThreads <= 1 || shares < 2)) {
      // One matrix on the caller (a small product): straight to the kernel, no task argument block (~0.3 µs
      // of a 32×32×32 matmul's ~5).
      this.kernels.sgemm(
        +transA,
        +transB,
        M,
        N,
        K,
        alpha,
        a,
        lda,
        b,
        ldb,
        beta,
        c,
        ldc,
        bias,
        +relu,
        this.scratch[0]!,
        0,
        0,
      );
      return;
    }
    const args = this.gemmArgs;
    args.set([+transA, +transB, M, N, K, alpha, a, lda, strideA, b, ldb, strideB, beta, c, ldc, strideC]);
    args.set([batch, bias, biasStride, +relu, 0, 0], 16);
    // Split over threads, every chunk would pack the same operand again (8 chunks of 512×512×512 pack all of
    // B 8 times, 7-11% of a one-thread run): pack it once, across the threads, and hand it to every chunk.
    // 2 threads, against packing per chunk, medians of 41 paired rounds in one process: 128×784×256 +9%,
    // 512³ +5%, 1024³ +5%.
    const which = sgemmSharedOperand(this.kernels, args, this.threadsFor(shares));
    if (which < 0) {
      this.call('sgemm', shares, args);
      return;
    }
    // Freed after the call: a large product's packed operand is not kept from the rest of the heap.
    const packed = this.heap.alloc(this.kernels.gemmPackedBytes(which, which ? N : M, K));
    try {
      const pack = which ? [1, +transB, b, ldb, N, K, 1] : [0, +transA, a, lda, M, K, alpha];
      this.call('gemmPrepack', shares, [...pack, packed]);
      args[which ? 21 : 20] = packed;
      this.call('sgemm', shares, args);
    } finally {
      this.heap.free(packed);
    }
  }

  /** out (n) = a (n) op b (n). */
  binary(op: BinaryOp, a: number, b: number, out: number, n: number): void {
    this.call('binary', n / ELEMENTWISE_MIN_PER_THREAD, [OP_CODE[op], a, b, out, n]);
  }

  /** SGD step in place over n floats (see assembly/optim.ts; b = 0 without momentum). */
  sgdUpdate(p: number, g: number, b: number, n: number, h: SgdUpdate): void {
    const flags = +h.first | (+h.nesterov << 1) | (+h.maximize << 2) | (b ? 8 : 0);
    this.call('sgdUpdate', n / ELEMENTWISE_MIN_PER_THREAD, [p, g, b, n, flags, h.wd, h.mu, h.keep, h.negLr]);
  }

  /** Adam step in place over n floats (see assembly/optim.ts; vmax = 0 without amsgrad). */
  adamUpdate(p: number, g: number, m: number, v: number, vmax: number, n: number, h: AdamUpdate): void {
    const flags = +h.decoupled | (+h.maximize << 1) | (vmax ? 4 : 0);
    this.call('adamUpdate', n / ELEMENTWISE_MIN_PER_THREAD, [
      p,
      g,
      m,
      v,
      vmax,
      n,
      flags,
      h.b1,
      h.b2,
      h.keep1,
      h.keep2,
      h.negStepSize,
      h.bc2Sqrt,
      h.eps,
      h.wd,
      h.shrink,
    ]);
  }
  /** RMSprop step in place over n floats (see assembly/optim.ts; ga, buf = 0 when not centered, no momentum). */
  rmspropUpdate(
    p: number,
    g: number,
    sq: number,
    ga: number,
    buf: number,
    n: number,
    h: RmspropUpdate,
  ): void {
    const flags = +h.maximize | (ga ? 2 : 0) | (buf ? 4 : 0);
    this.call('rmspropUpdate', n / ELEMENTWISE_MIN_PER_THREAD, [
      p,
      g,
      sq,
      ga,
      buf,
      n,
      flags,
      h.alpha,
      h.keep,
      h.eps,
      h.wd,
      h.mu,
      h.negLr,
    ]);
  }

  /** Adagrad step in place over n floats (see assembly/optim.ts). */
  adagradUpdate(p: number, g: number, sum: number, n: number, h: AdagradUpdate): void {
    this.call('adagradUpdate', n / ELEMENTWISE_MIN_PER_THREAD, [
      p,
      g,
      sum,
      n,
      +h.maximize,
      h.eps,
      h.wd,
      h.negClr,
    ]);
  }

  /** out (R,C) = a (R,C) op b (C), b broadcast over rows. */
  binaryRow(op: BinaryOp, a: number, b: number, out: number, R: number, C: number): void {
    this.call('binaryRow', (R * C) / ELEMENTWISE_MIN_PER_THREAD, [OP_CODE[op], a, b, out, R, C]);
  }

  /** out (n) = a (n) op s. */
  binaryScalar(op: BinaryOp, a: number, s: number, out: number, n: number): void {
    this.call('binaryScalar', n / ELEMENTWISE_MIN_PER_THREAD, [OP_CODE[op], a, s, out, n]);
  }

  /** out (n) = max(x, 0). */
  relu(x: number, out: number, n: number): void {
    this.call('relu', n / ELEMENTWISE_MIN_PER_THREAD, [x, out, n]);
  }

  /** dx (n) = dy where x > 0 else 0 (x: the ReLU input or output). */
  reluBackward(x: number, dy: number, dx: number, n: number): void {
    this.call('reluBackward', n / ELEMENTWISE_MIN_PER_THREAD, [x, dy, dx, n]);
  }

  /** out (n) = e^x (about 2 ulp; overflow gives +inf, denormals are kept). */
  exp(x: number, out: number, n: number): void {
    this.call('exp', n / ELEMENTWISE_MIN_PER_THREAD, [x, out, n]);
  }

  /** out (n) = erf(x), within 3 ulp (1.8e-7 absolute); ±Inf gives ±1, NaN stays NaN. */
  erf(x: number, out: number, n: number): void {
    this.call('erf', n / ELEMENTWISE_MIN_PER_THREAD, [x, out, n]);
  }

  /**
   * out (n) = a^b with Math.pow's values and special cases, rounded to float32 (float64 inside). With
   * `scalar` 'a' or 'b' that operand is one float32 at its pointer, used for every element.
   */
  pow(a: number, b: number, out: number, n: number, scalar?: 'a' | 'b'): void {
    const args = [a, scalar === 'a' ? 0 : 1, b, scalar === 'b' ? 0 : 1, out, n];
    this.call('pow', n / ELEMENTWISE_MIN_PER_THREAD, args);
  }

  /**
   * dst (outer, D, inner) [o, index[i], :] += src (outer, I, inner) [o, i, :], index: I int32s in [0, D).
   * Repeated indices add up in index order (bit for bit the reference's sums).
   */
  scatterAdd(
    dst: number,
    src: number,
    index: number,
    outer: number,
    D: number,
    I: number,
    inner: number,
  ): void {
    const work = outer * I * inner;
    this.call('scatterAdd', work / ELEMENTWISE_MIN_PER_THREAD, [dst, src, index, outer, D, I, inner]);
  }

  /** out (n) = op(x) elementwise (see UnaryOp). */
  unary(op: UnaryOp, x: number, out: number, n: number): void {
    this.call('unary', n / ELEMENTWISE_MIN_PER_THREAD, [UNARY_CODE[op], x, out, n]);
  }

  /** out (n) = x < lo ? lo : min(x, hi) (lo, hi rounded to float32; NaN passes through). */
  clamp(x: number, lo: number, hi: number, out: number, n: number): void {
    this.call('clamp', n / ELEMENTWISE_MIN_PER_THREAD, [x, lo, hi, out, n]);
  }

  /** out (n) = v (rounded to float32). */
  fill(out: number, v: number, n: number): void {
    this.call('fill', n / ELEMENTWISE_MIN_PER_THREAD, [out, v, n]);
  }

  /** out (n) = float32(x · s), the product in float64 (bit-identical to a JS Float32Array store). */
  scale64(x: number, s: number, out: number, n: number): void {
    this.call('scale64', n / ELEMENTWISE_MIN_PER_THREAD, [x, s, out, n]);
  }

  /** out (R) = op over the C columns of each row of x (R,C). */
  reduceRows(op: ReduceOp, x: number, R: number, C: number, out: number): void {
    this.call('reduceRows', (R * C) / ELEMENTWISE_MIN_PER_THREAD, [REDUCE_CODE[op], x, R, C, out]);
  }

  /** out (C) = op over the R rows of x (R,C). */
  reduceCols(op: ReduceOp, x: number, R: number, C: number, out: number): void {
    this.call('reduceCols', (R * C) / ELEMENTWISE_MIN_PER_THREAD, [REDUCE_CODE[op], x, R, C, out]);
  }

  /** out (R,C) = softmax (or log-softmax when `log`) of each row of x (R,C), max-subtracted. */
  softmaxRows(log: boolean, x: number, R: number, C: number, out: number): void {
    this.call('softmaxRows', (4 * R * C) / ELEMENTWISE_MIN_PER_THREAD, [+log, x, R, C, out]);
  }

  /** out (C) = sum of x (R,C) over its rows. */
  sumAxis0(x: number, R: number, C: number, out: number): void {
    this.call('sumAxis0', (R * C) / ELEMENTWISE_MIN_PER_THREAD, [x, R, C, out]);
  }

  /** out (R) = sum of x (R,C) over its columns. */
  sumAxis1(x: number, R: number, C: number, out: number): void {
    this.call('sumAxis1', (R * C) / ELEMENTWISE_MIN_PER_THREAD, [x, R, C, out]);
  }

  /**
   * loss (R) = logsumexp(logits[r]) - logits[r, targets[r]] for logits (R,C) and i32 targets (R) in [0, C);
   * probs (R,C), unless 0, receives softmax(logits) for the backward pass.
   */
  softmaxCrossEntropy(logits: number, targets: number, R: number, C: number, loss: number, probs = 0): void {
    this.call('softmaxCrossEntropy', (4 * R * C) / ELEMENTWISE_MIN_PER_THREAD, [
      logits,
      targets,
      R,
      C,
      loss,
      probs,
    ]);
  }

  /** dx (R,C) = g_r·(probs[r] - onehot(targets[r])) with g_r = scale·grad[r], or scale when grad is 0. */
  softmaxCrossEntropyBackward(
    probs: number,
    targets: number,
    R: number,
    C: number,
    scale: number,
    grad: number,
    dx: number,
  ): void {
    const args = [probs, targets, R, C, scale, grad, dx];
    this.call('softmaxCrossEntropyBackward', (R * C) / ELEMENTWISE_MIN_PER_THREAD, args);
  }

  /** out (n bytes) = a (n) op b (n) as 0/1. */
  compare(op: CompareOp, a: number, b: number, out: number, n: number): void {
    this.call('compare', n / ELEMENTWISE_MIN_PER_THREAD, [COMPARE_CODE[op], a, b, out, n]);
  }

  /** out (n) = cond (n bytes) != 0 ? a (n) : b (n). */
  select(cond: number, a: number, b: number, out: number, n: number): void {
    this.call('select', n / ELEMENTWISE_MIN_PER_THREAD, [cond, a, b, out, n]);
  }

  /** out (R int32s) = index of the first max (min) of each row of x (R,C), C >= 1; a NaN wins. */
  argReduceRows(isMin: boolean, x: number, R: number, C: number, out: number): void {
    this.call('argReduceRows', (R * C) / ELEMENTWISE_MIN_PER_THREAD, [+isMin, x, R, C, out]);
  }

  /**
   * BatchNorm forward over x (N,C,S): per-channel mean, invstd = 1/sqrt(biased var + eps) (float64 sums) and
   * out = (x - mean)·invstd·w + b, then ReLU with `relu`; w, b pointers to C floats or 0 (none).
   */
  batchNormForward(
    x: number,
    N: number,
    C: number,
    S: number,
    w: number,
    b: number,
    eps: number,
    out: number,
    mean: number,
    invstd: number,
    relu = false,
  ): void {
    const shares = Math.min(C, (3 * N * C * S) / ELEMENTWISE_MIN_PER_THREAD);
    this.call('bnForward', shares, [x, N, C, S, w, b, eps, out, mean, invstd, +relu]);
  }

  /**
   * BatchNorm backward (see KernelTable.batchNormBackward); w a pointer to C floats or 0; reluOut the fused
   * forward's output (dy counts where it is positive) or 0.
   */
  batchNormBackward(
    x: number,
    dy: number,
    N: number,
    C: number,
    S: number,
    w: number,
    mean: number,
    invstd: number,
    dx: number,
    dw: number,
    db: number,
    reluOut = 0,
  ): void {
    const shares = Math.min(C, (2 * N * C * S) / ELEMENTWISE_MIN_PER_THREAD);
    this.call('bnBackward', shares, [x, dy, N, C, S, w, mean, invstd, dx, dw, db, reluOut]);
  }

  /** cols (P, kh·kw, Ho·Wo) = im2col of x (P, H, W). */
  im2col(x: number, g: Im2colArgs, cols: number): void {
    const work = g.planes * g.kh * g.kw * g.Ho * g.Wo;
    const args = [x, g.planes, g.H, g.W, g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.dh, g.dw, g.Ho, g.Wo, cols];
    this.call('im2col', Math.min(g.planes, work / ELEMENTWISE_MIN_PER_THREAD), args);
  }

  /** dx (P, H, W) += col2im of cols (P, kh·kw, Ho·Wo). */
  col2im(cols: number, g: Im2colArgs, dx: number): void {
    const work = g.planes * g.kh * g.kw * g.Ho * g.Wo;
    const args = [cols, g.planes, g.H, g.W, g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.dh, g.dw, g.Ho, g.Wo, dx];
    this.call('col2im', Math.min(g.planes, work / ELEMENTWISE_MIN_PER_THREAD), args);
  }

  /**
   * Tile sizes for the attention kernels at head sizes E, Ev: bq × bk, halved (keys first) until one thread's
   * scratch holds them; null when not even 8 × 8 fits (heads of several thousand).
   */
  attentionTiles(bq: number, bk: number, E: number, Ev: number): [number, number] | null {
    while (this.kernels.attnScratchBytes(bq, bk, E, Ev) > this.scratchBytes) {
      if (bk > 8) bk = Math.ceil(bk / 2);
      else if (bq > 8) bq = Math.ceil(bq / 2);
      else return null;
    }
    return [bq, bk];
  }

  /** Bytes of each thread's scratch the attention kernels use at these tiles (fixed: no L or S in it). */
  attentionScratchBytes(bq: number, bk: number, E: number, Ev: number): number {
    return this.kernels.attnScratchBytes(bq, bk, E, Ev);
  }

  /**
   * Tiled attention forward (assembly/attention.ts): out (B,L,Ev) = softmax(scale·q·kᵀ + mask)·v, lse (B,L).
   * Tiles from `attentionTiles`. Work items are (batch entry, query tile) pairs spread over the threads.
   */
  attentionForward(p: AttentionArgs, out: number, lse: number): void {
    const { q, k, v, mask, maskKind, maskOff, strideL, strideS, B, L, S, E, Ev, scale, causal, bq, bk } = p;
    const args = [q, k, v, mask, maskKind, maskOff, strideL, strideS, out, lse, B, L, S, E, Ev, scale];
    args.push(+causal, bq, bk);
    this.call('attentionForward', attentionMacs(p, E + Ev) / GEMM_MIN_MACS_PER_THREAD, args);
  }

  /**
   * The recomputing backward: writes dq (B,L,E), dk (B,S,E), dv (B,S,Ev) (0: not wanted) and accumulates
   * dmask (0: none; laid out as the mask, zeroed by the caller). One pass runs each batch entry whole on
   * one thread (5 tile products per tile pair); two passes run key tiles (dk, dv) then query tiles (dq) on
   * all threads, recomputing P (7 products). `attentionPasses` chooses; 0 (auto) takes one pass unless the
   * batch entries split so unevenly over the threads (B = 1 on 2 threads) that the two passes'
   * ATTENTION_TWO_PASS_COST is less than the idle share. dmask always runs on one thread (its cells are
   * shared across broadcast dims).
   */
  attentionBackward(
    p: AttentionArgs,
    out: number,
    dout: number,
    lse: number,
    dq: number,
    dk: number,
    dv: number,
    dmask: number,
  ): void {
    const { q, k, v, mask, maskKind, maskOff, strideL, strideS, B, L, S, E, Ev, scale, causal, bq, bk } = p;
    const args = [q, k, v, out, dout, lse, dq, dk, dv, dmask, mask, maskKind, maskOff, strideL, strideS];
    args.push(B, L, S, E, Ev, scale, +causal, bq, bk);
    // 5 tile products per tile pair against the forward's 2; the threshold counts the lighter pass (3).
    const shares = dmask ? 1 : (1.5 * attentionMacs(p, E + Ev)) / GEMM_MIN_MACS_PER_THREAD;
    const n = Math.max(1, Math.min(this.nThreads, Math.floor(shares)));
    if (!dq || dmask) {
      this.call(dq ? 'attentionBackwardFused' : 'attentionBackwardKV', shares, args);
      return;
    }
    if (!dk && !dv) {
      this.call('attentionBackwardQ', shares, args);
      return;
    }
    const passes = this.attentionPasses;
    const fused = passes ? passes === 1 : Math.ceil(B / n) * n <= ATTENTION_TWO_PASS_COST * B;
    if (fused) {
      this.call('attentionBackwardFused', shares, args);
      return;
    }
    args[6] = 0;
    this.call('attentionBackwardKV', shares, args);
    args[6] = dq;
    this.call('attentionBackwardQ', shares, args);
  }

  /** Threads a call over `shares` (work / per-thread minimum) may use, the caller included. */
  private threadsFor(shares: number): number {
    return this.callerOnly ? 1 : Math.min(this.nThreads, Math.floor(shares));
  }

  // `shares`: how many threads the work is worth (work / per-thread minimum), capped by `threads`.
  private call(name: TaskName, shares: number, args: ArrayLike<number>): void {
    const task = Task[name];
    const n = this.threadsFor(shares);
    const pool = n > 1 ? this.startPool(n - 1) : undefined;
    if (!pool) {
      this.local.set(args);
      runChunk(this.kernels, task, this.local, 0, 1, this.scratch[0]!);
      return;
    }
    // Web workers still starting are left out (the caller never waits for them).
    const threads = Math.min(n, pool.size + 1);
    pool.args.set(args);
    pool.run(this.kernels, task, chunksOf(task, pool.args, threads), threads, this.scratch[0]!);
  }

  private ensurePool(): Pool {
    this.pool ??= new Pool(this.spawner!, this.module, this.memory);
    return this.pool;
  }

  /**
   * A pool with up to `workers` ready workers, or undefined to run on the caller alone. Node: started here,
   * blocking until ready. Web: started in the background (never awaited here), so the workers ready now.
   */
  private startPool(workers: number): Pool | undefined {
    if (this.spawner!.kind === 'node') {
      const pool = this.ensurePool();
      if (pool.size < workers) pool.grow(workers, this.scratchOf);
      return pool;
    }
    if (this.poolFailure) return undefined;
    const pool = this.ensurePool();
    // All the threads at once: they start in the background, each start taking a while.
    const want = Math.max(workers, this.nThreads - 1);
    if (pool.spawned < want) this.startWorkers(pool, want).catch(() => {}); // recorded in poolFailure
    return pool.size > 0 ? pool : undefined;
  }

  /** `pool.start`; a web worker that fails to start ends the pool and keeps calls on the caller from then on. */
  private startWorkers(pool: Pool, count: number): Promise<void> {
    return pool.start(count, this.scratchOf).catch((err: Error) => {
      if (this.spawner?.kind === 'web' && this.pool === pool) {
        this.poolFailure = err;
        this.shutdown();
      }
      throw err;
    });
  }
}
