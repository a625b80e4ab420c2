/**
 * The backend interface: storage and dispatch, not math. A backend allocates storage and registers kernels by
 * name; the table of kernel names below is the contract. The TypeScript reference backend (`js`) implements
 * every kernel (the compiler checks it); a fast backend registers the ones it has, and the rest come from its
 * `base` backend, that one's base, and so on down to `js` (native → wasm → js), listed once in
 * `backendInfo().fallbacks` with where each comes from, never reported per call.
 *
 * Kernels receive strided views and write into an output buffer the frontend allocated (contiguous, row-major).
 * Ops validate their arguments before calling a kernel: kernels never see bad shapes.
 */
import { ValueError } from '../errors.js';
import type { DType, StorageOf, TypedArray } from '../tensor/dtype.js';

/** A strided view of storage: what a kernel reads. Tensors are Views. */
export interface View {
  readonly data: TypedArray;
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly strides: readonly number[];
  readonly offset: number;
}

export const UNARY_OPS = [
  'neg',
  'exp',
  'log',
  'sqrt',
  'abs',
  'tanh',
  'sigmoid',
  'relu',
  'erf',
  'sign',
] as const;
export type UnaryOp = (typeof UNARY_OPS)[number];
export const BINARY_OPS = ['add', 'sub', 'mul', 'div', 'pow', 'maximum', 'minimum'] as const;
export type BinaryOp = (typeof BINARY_OPS)[number];
export const COMPARE_OPS = ['eq', 'ne', 'lt', 'le', 'gt', 'ge'] as const;
export type CompareOp = (typeof COMPARE_OPS)[number];
export type ReduceOp = 'sum' | 'max' | 'min';

/** x: any shape; out: contiguous, same shape. */
export type UnaryKernel = (x: View, out: Float32Array) => void;
/** a, b: already broadcast to `out`'s shape (stride 0 on broadcast dims); out: contiguous. */
export type BinaryKernel = (a: View, b: View, out: TypedArray) => void;
export type CompareKernel = (a: View, b: View, out: Uint8Array) => void;

/** What `matmul` does to its result before storing it: out = relu?(a·b + bias). */
export interface MatmulEpilogue {
  /** N floats, dense, added to every row. */
  bias?: Float32Array;
  relu?: boolean;
}

/**
 * SGD's per-step scalars, float32-rounded. With d = ±g (maximize) and x + a·y one fused multiply-add rounded
 * to float32 (optimizer.ts `fmadd`):  d = d + wd·p;  v = d (first step) or (1−τ)·d + float32(μ·v);
 * d = d + μ·v (nesterov) or v;  p = p + (−lr)·d.
 */
export interface SgdUpdate {
  wd: number;
  mu: number;
  /** 1 − dampening. */
  keep: number;
  negLr: number;
  first: boolean;
  nesterov: boolean;
  maximize: boolean;
}

/**
 * Adam's per-step scalars, float32-rounded: m = (1−β1)·g + β1·m;  v = ((1−β2)·g)·g + β2·v (fused);
 * v̂ = max(vmax, v) with amsgrad;  p += (negStepSize·m) / (√v̂ / bc2Sqrt + eps); weight decay coupled
 * (g += wd·p) or decoupled (p ·= shrink, AdamW).
 */
export interface AdamUpdate {
  b1: number;
  b2: number;
  keep1: number;
  keep2: number;
  negStepSize: number;
  bc2Sqrt: number;
  eps: number;
  wd: number;
  shrink: number;
  decoupled: boolean;
  maximize: boolean;
}

/**
 * RMSprop's per-step scalars, float32-rounded (torch 1.13 `_single_tensor_rmsprop`): g += wd·p;
 * sq = α·sq + (keep·g)·g;  centered: ga = α·ga + keep·g, avg = √(sq − ga·ga) + eps, else avg = √sq + eps;
 * momentum: buf = μ·buf + g/avg, p += negLr·buf;  else p += (negLr·g)/avg. keep = 1 − α.
 */
export interface RmspropUpdate {
  alpha: number;
  keep: number;
  eps: number;
  wd: number;
  mu: number;
  negLr: number;
  maximize: boolean;
}

/**
 * Adagrad's per-step scalars, float32-rounded (torch 1.13 `_single_tensor_adagrad`): g += wd·p;  sum += g·g;
 * p += (negClr·g)/(√sum + eps), with clr = lr / (1 + (step − 1)·lrDecay) computed in float64.
 */
export interface AdagradUpdate {
  eps: number;
  wd: number;
  negClr: number;
  maximize: boolean;
}

/**
 * Every kernel by name. Shape legend: N batch, M/K/N' matmul sizes, C classes or channels.
 */
export interface KernelTable {
  neg: UnaryKernel;
  exp: UnaryKernel;
  log: UnaryKernel;
  sqrt: UnaryKernel;
  abs: UnaryKernel;
  tanh: UnaryKernel;
  sigmoid: UnaryKernel;
  relu: UnaryKernel;
  erf: UnaryKernel;
  sign: UnaryKernel;
  add: BinaryKernel;
  sub: BinaryKernel;
  mul: BinaryKernel;
  div: BinaryKernel;
  pow: BinaryKernel;
  maximum: BinaryKernel;
  minimum: BinaryKernel;
  eq: CompareKernel;
  ne: CompareKernel;
  lt: CompareKernel;
  le: CompareKernel;
  gt: CompareKernel;
  ge: CompareKernel;
  /** cond (bool), a, b broadcast to out's shape. */
  where: (cond: View, a: View, b: View, out: TypedArray) => void;
  /** Clamp to [lo, hi] (either may be ±Infinity). NaN passes through. */
  clamp: (x: View, lo: number, hi: number, out: Float32Array) => void;
  /** Reduce over `axes` (sorted); out has x's shape with those axes removed, contiguous. */
  sum: (x: View, axes: readonly number[], out: TypedArray) => void;
  max: (x: View, axes: readonly number[], out: TypedArray) => void;
  min: (x: View, axes: readonly number[], out: TypedArray) => void;
  /** Index of the first max (min) along `axis`; out has x's shape without `axis`. */
  argmax: (x: View, axis: number, out: Int32Array) => void;
  argmin: (x: View, axis: number, out: Int32Array) => void;
  /**
   * a: [...B, M, K], b: [...B, K, N] with equal (broadcast) batch dims; out: [...B, M, N]. The epilogue, where
   * given, adds a bias (N) to every row and then applies ReLU in the same pass (linear's forward).
   */
  matmul: (a: View, b: View, out: Float32Array, epilogue?: MatmulEpilogue) => void;
  /** Strided copy with dtype conversion: dst[i] = src[i] for dst's shape (src broadcast to it). */
  copy: (src: View, dst: View) => void;
  /** out = x gathered along `axis` at `index` (indexSelect); out shape: x's with shape[axis] = index.length. */
  gather: (x: View, axis: number, index: Int32Array, out: TypedArray) => void;
  /** dst (contiguous) += src scattered along `axis` at `index` (the gradient of gather). */
  scatterAdd: (dst: View, axis: number, index: Int32Array, src: View) => void;
  /** Softmax / log-softmax over the last axis of a contiguous [R, C] input. */
  softmax: (x: View, out: Float32Array) => void;
  logSoftmax: (x: View, out: Float32Array) => void;
  /**
   * Fused BatchNorm over contiguous x viewed as (N, C, S) (S = L or H·W, 1 for (N, C)): per-channel batch
   * mean and biased variance, out = (x - mean)·invstd·w + b, then max(out, 0) with `relu` (BatchNorm then
   * ReLU in one pass); writes mean and invstd = 1/sqrt(var + eps).
   */
  batchNormForward: (
    x: Float32Array,
    N: number,
    C: number,
    S: number,
    weight: Float32Array | null,
    bias: Float32Array | null,
    eps: number,
    out: Float32Array,
    mean: Float32Array,
    invstd: Float32Array,
    relu?: boolean,
  ) => void;
  /**
   * The analytic backward: dx = w·invstd·(dy - mean(dy) - x̂·mean(dy·x̂)), dw = Σ dy·x̂, db = Σ dy. With
   * `reluOut` (the fused forward's output) dy is first zeroed where reluOut <= 0, ReLU's backward.
   */
  batchNormBackward: (
    x: Float32Array,
    dy: Float32Array,
    N: number,
    C: number,
    S: number,
    weight: Float32Array | null,
    mean: Float32Array,
    invstd: Float32Array,
    dx: Float32Array,
    dweight: Float32Array,
    dbias: Float32Array,
    reluOut?: Float32Array | null,
  ) => void;
  /** out = g where x > 0, else 0 (ReLU's backward in one pass); x and g have out's shape. */
  reluBackward: (x: View, g: View, out: Float32Array) => void;
  /**
   * Fused softmax + cross-entropy over rows of contiguous logits (R, C) with class targets (R): writes the
   * softmax to probs and returns the summed loss Σ_r (logsumexp(x_r) - x_r[t_r]).
   */
  softmaxCrossEntropy: (
    logits: Float32Array,
    targets: Int32Array,
    R: number,
    C: number,
    probs: Float32Array,
  ) => number;
  /** dx = scale·(probs - onehot(targets)), the loss's gradient. */
  softmaxCrossEntropyBackward: (
    probs: Float32Array,
    targets: Int32Array,
    R: number,
    C: number,
    scale: number,
    dx: Float32Array,
  ) => void;
  /**
   * One SGD step (src/optim/sgd.ts) over a parameter's dense float32 storage, in place: p, g and the velocity
   * buf (null without momentum) have the same length. Scalars are float32-rounded; the order of operations
   * and roundings is PyTorch's (see SgdUpdate).
   */
  sgdUpdate: (p: Float32Array, g: Float32Array, buf: Float32Array | null, h: SgdUpdate) => void;
  /** One Adam/AdamW step (src/optim/adam.ts) in place over p, g, the moments m, v and vmax (amsgrad, else null). */
  adamUpdate: (
    p: Float32Array,
    g: Float32Array,
    m: Float32Array,
    v: Float32Array,
    vmax: Float32Array | null,
    h: AdamUpdate,
  ) => void;
  /**
   * One RMSprop step (src/optim/rmsprop.ts) in place over p, g, the squared average sq, the gradient average
   * gavg (centered, else null) and the momentum buffer buf (momentum > 0, else null).
   */
  rmspropUpdate: (
    p: Float32Array,
    g: Float32Array,
    sq: Float32Array,
    gavg: Float32Array | null,
    buf: Float32Array | null,
    h: RmspropUpdate,
  ) => void;
  /** One Adagrad step (src/optim/adagrad.ts) in place over p, g and the running sum of squares. */
  adagradUpdate: (p: Float32Array, g: Float32Array, sum: Float32Array, h: AdagradUpdate) => void;
  /** im2col of contiguous x (N, C, H, W) into cols (N, C·kh·kw, Ho·Wo) for a convolution's GEMM. */
  im2col: (x: Float32Array, g: ConvGeometry, cols: Float32Array) => void;
  /** col2im: the adjoint of im2col, accumulating cols back into dx (N, C, H, W), which starts zeroed. */
  col2im: (cols: Float32Array, g: ConvGeometry, dx: Float32Array) => void;
  /**
   * Tiled online-softmax attention (REFERENCE.md §3.1) over contiguous q (B, L, E), k (B, S, E), v (B, S, Ev):
   * out (B, L, Ev) = softmax(scale·q·kᵀ + mask)·v and lse (B, L), each row's log-sum-exp (zeros and -Infinity
   * for a row that sees no key). Extra memory independent of L and S: never the L×S score matrix.
   */
  attentionForward: (
    q: Float32Array,
    k: Float32Array,
    v: Float32Array,
    g: AttentionGeometry,
    mask: AttentionMaskView | null,
    out: Float32Array,
    lse: Float32Array,
  ) => void;
  /**
   * Its backward, recomputing P from lse tile by tile: writes dq (B, L, E), dk (B, S, E), dv (B, S, Ev) (null:
   * not wanted) and accumulates dmask (laid out as the mask, zeroed by the caller; float masks only).
   */
  attentionBackward: (
    q: Float32Array,
    k: Float32Array,
    v: Float32Array,
    out: Float32Array,
    dOut: Float32Array,
    lse: Float32Array,
    g: AttentionGeometry,
    mask: AttentionMaskView | null,
    dq: Float32Array | null,
    dk: Float32Array | null,
    dv: Float32Array | null,
    dmask: Float32Array | null,
  ) => void;
}

/** Sizes and switches of one attention call (shape legend at `attentionForward`). */
export interface AttentionGeometry {
  B: number;
  L: number;
  S: number;
  E: number;
  Ev: number;
  /** Multiplies q·k before the mask is applied (PyTorch's default is 1/√E). */
  scale: number;
  /** Query i sees keys j <= i (top-left aligned, PyTorch's `is_causal`). */
  causal: boolean;
  /** Tile sizes: blockQ query rows against blockK keys (a kernel may pick smaller ones to fit its scratch). */
  blockQ: number;
  blockK: number;
}

/**
 * An attention mask read in place through strides, so a broadcast mask (key padding, one (L, S) mask) is never
 * copied: cell (b, i, j) is data[batchOffset[b] + i·strideL + j·strideS] (stride 0 on broadcast dims).
 */
export interface AttentionMaskView {
  /** true: float added to the scaled scores; false: bool where 0 masks the cell out. */
  additive: boolean;
  data: Float32Array | Uint8Array;
  batchOffset: Int32Array;
  strideL: number;
  strideS: number;
}

/**
 * Geometry of a 2-D convolution or pooling window over (N, C, H, W) input: kh×kw taps dh, dw apart (dilation),
 * output pixel (oy, ox) reads input row oy·sh + i·dh - ph and column ox·sw + j·dw - pw (zero outside). ph, pw
 * pad the top and left; the bottom and right padding only shows in Ho, Wo (PyTorch's padding='same' pads one
 * more there when the total is odd).
 */
export interface ConvGeometry {
  N: number;
  C: number;
  H: number;
  W: number;
  kh: number;
  kw: number;
  sh: number;
  sw: number;
  ph: number;
  pw: number;
  dh: number;
  dw: number;
  Ho: number;
  Wo: number;
}

export type KernelName = keyof KernelTable;

export interface Backend {
  readonly name: string;
  /** Higher is preferred when choosing the default backend. */
  readonly priority: number;
  /**
   * Allocate storage for n elements, zeroed unless `zeroed` is false (then an output its kernel writes
   * completely: see allocStorage). A fast backend may place it in its own memory.
   */
  alloc<D extends DType>(dtype: D, n: number, zeroed?: boolean): StorageOf[D];
  /**
   * Zeroed float32 storage for a tensor that lives across steps (a parameter, its gradient, optimizer state):
   * where present, the backend places it where its kernels use it without copies.
   */
  allocLongLived?(n: number): Float32Array;
  /** Facts for the debug listing (threads, SIMD, the library loaded). */
  describe(): Record<string, string | number | boolean>;
  /**
   * The backend whose kernels fill this one's gaps (default `'js'`). Chains are followed down to `js`; a base
   * not registered on this platform (wasm without SIMD) is passed over for the reference.
   */
  readonly base?: string;
  /** Called each time this backend becomes the active one (e.g. to share threads with its base). */
  activated?(): void;
}

interface Registered {
  backend: Backend;
  kernels: Partial<KernelTable>;
}

const registry = new Map<string, Registered>();
let active: Registered | undefined;
/** The resolved table for the active backend: its own kernels, its bases' for the rest. */
let table: KernelTable | undefined;
let fallbacks: KernelName[] = [];
/** For each kernel the active backend lacks, the backend in its chain that provides it. */
let fallbackFrom: Partial<Record<KernelName, string>> = {};
/** Why a backend is not registered on this platform (shown by backendInfo and setBackend's error). */
const unavailable = new Map<string, string>();

/** Register a backend with the kernels it implements. The reference backend must implement them all. */
export function registerBackend(backend: Backend, kernels: Partial<KernelTable>): void {
  registry.set(backend.name, { backend, kernels });
  unavailable.delete(backend.name);
  mergedCache.clear();
  // A newly registered backend may outrank the current default, unless the user chose one; one registered
  // again (a reloaded library) replaces itself, and the table of anything built over it is merged anew.
  if (!chosenByUser) active = undefined;
  else if (active) activate(registry.get(active.backend.name)!);
}

let chosenByUser = false;

function resolve(): Registered {
  if (active) return active;
  const env = typeof process !== 'undefined' ? process.env?.MINIBATCH_BACKEND : undefined;
  if (env && !chosenByUser) {
    setBackend(env);
    return active!;
  }
  let best: Registered | undefined;
  for (const r of registry.values()) if (!best || r.backend.priority > best.backend.priority) best = r;
  if (!best) throw new ValueError('backend', 'no backend is registered');
  activate(best);
  return best;
}

/** Record why a backend could not be registered here (a missing library, an engine without a feature). */
export function reportUnavailable(name: string, reason: string): void {
  if (!registry.has(name)) unavailable.set(name, reason);
}

/** A backend's kernels merged over its bases' (the chain down to `js`; the nearest wins), with their origins. */
function merge(r: Registered): { merged: KernelTable; from: Record<KernelName, string> } {
  const ref = registry.get('js');
  if (!ref) throw new ValueError('backend', "the reference backend 'js' is not registered");
  const chain: Registered[] = [];
  for (let c: Registered | undefined = r; c && c !== ref && !chain.includes(c); ) {
    chain.push(c);
    c = registry.get(c.backend.base ?? 'js');
  }
  chain.push(ref);
  const merged: Partial<KernelTable> = {};
  const from: Partial<Record<KernelName, string>> = {};
  for (const c of chain.reverse()) {
    Object.assign(merged, c.kernels);
    for (const k of Object.keys(c.kernels) as KernelName[]) from[k] = c.backend.name;
  }
  return { merged: merged as KernelTable, from: from as Record<KernelName, string> };
}

/**
 * The kernel table `name` runs with (its own kernels over its bases'), or the reference's where `name` is not
 * registered: what a backend's kernel calls to hand a case it does not cover to its base.
 */
export function kernelsOf(name: string): KernelTable {
  let t = mergedCache.get(name);
  if (!t) mergedCache.set(name, (t = merge(registry.get(name) ?? registry.get('js')!).merged));
  return t;
}
/** kernelsOf's tables, dropped whenever a backend registers. */
const mergedCache = new Map<string, KernelTable>();

function activate(r: Registered): void {
  const { merged, from } = merge(r);
  fallbacks = (Object.keys(from) as KernelName[]).filter((k) => from[k] !== r.backend.name);
  fallbackFrom = Object.fromEntries(fallbacks.map((k) => [k, from[k]]));
  active = r;
  table = merged;
  r.backend.activated?.();
}

/** Choose a backend by name (`'js'`, `'wasm'`, `'native'`), or read `MINIBATCH_BACKEND`. */
export function setBackend(name: string): void {
  const r = registry.get(name);
  if (!r) {
    const why = unavailable.get(name);
    throw new ValueError(
      'setBackend',
      why
        ? `backend '${name}' is unavailable here: ${why}`
        : `unknown backend '${name}' (registered: ${[...registry.keys()].join(', ')})`,
    );
  }
  chosenByUser = true;
  activate(r);
}

/** The active backend's name. */
export function getBackend(): string {
  return resolve().backend.name;
}

export function listBackends(): string[] {
  return [...registry.keys()];
}

/** The kernel table of the active backend (its own kernels merged over its bases', down to the reference). */
export function kernels(): KernelTable {
  if (!table) resolve();
  return table!;
}

export function activeBackend(): Backend {
  return resolve().backend;
}

/**
 * Debug listing: the active backend, its facts, the kernels it lacks (`fallbacks`) with the backend each comes
 * from (`fallbackFrom`), and why any other backend is unavailable here (`unavailable`, by name).
 */
export function backendInfo(): {
  name: string;
  facts: Record<string, string | number | boolean>;
  fallbacks: string[];
  fallbackFrom: Record<string, string>;
  unavailable: Record<string, string>;
} {
  const r = resolve();
  return {
    name: r.backend.name,
    facts: r.backend.describe(),
    fallbacks: [...fallbacks],
    fallbackFrom: { ...fallbackFrom } as Record<string, string>,
    unavailable: Object.fromEntries(unavailable),
  };
}
