/**
 * What every peer of the benchmark runner implements, and the data and initial weights they share, so each
 * library trains the same model on the same float32 images from the same kind of initial weights.
 */
import { loadFashionMnist, shippedFashionMnistDir } from '../../src/index.js';
import type { PeerHost } from './host.js';

export type ModelKind = 'mlp' | 'mlp-bn';

/** One split as float32 pixels in [0, 1], N×784 row-major, and int32 labels. */
export interface Split {
  x: Float32Array;
  y: Int32Array;
  n: number;
}

export interface Data {
  train: Split;
  test: Split;
  source: string;
  shipped: boolean;
}

export interface TrainSpec {
  model: ModelKind;
  batch: number;
  train: Split;
  test: Split;
  /** Train on at most this many samples (a prefix of the shuffled epoch); accuracy only for a full epoch. */
  maxSamples: number;
  /** And stop after the batch that passes this many seconds (slow peers; Infinity for the others). */
  maxSeconds: number;
  seed: number;
}

export interface TrainResult {
  /** Samples trained on in the timed loop, and its wall time (shuffle, batch gather and the steps). */
  samples: number;
  seconds: number;
  /** Test accuracy after the epoch, when the full epoch ran. */
  accuracy?: number;
}

/** A library (or one configuration of one) under test. Every method is optional: a peer does what it can. */
export interface Peer {
  /** Row label in the tables, e.g. 'minibatch wasm 2t'. */
  name: string;
  /** Threads it computes on: ratios compare it with the minibatch row of the same thread count. */
  threads: number;
  /** Made current before its measurements (backend switch, thread count). */
  activate?(): Promise<void> | void;
  /** A call computing one (M,K)×(K,N) float32 product whose result is readable from JavaScript. */
  gemm?(M: number, K: number, N: number): () => void;
  /** Tiny-op dispatch: `add` of two [TINY_ADD] tensors, `matmul` 32×32×32. */
  tinyOp?(op: 'add' | 'matmul'): () => void;
  /** One (possibly capped) shuffled epoch of the model, timed, then test accuracy. */
  train?(spec: TrainSpec): Promise<TrainResult>;
  /** A call that runs the MLP (eval mode) on the next `batch` test images and reads the logits back. */
  infer?(batch: number, test: Split): () => void;
  /** A note for the tables (e.g. how results are read back). */
  note?: string;
  /** Facts for the report's header and JSON (the library's version, what its backend found), asked once. */
  info?(): Promise<Record<string, unknown>> | Record<string, unknown>;
  /** The child process the peer runs in, where it does not run in the runner's (bench/lib/host.ts). */
  host?: PeerHost;
}

/** Fashion-MNIST as float32 in [0, 1]: the full set where installed, the shipped subset when `quick`. */
export function loadData(quick: boolean): Data {
  const fm = loadFashionMnist(quick ? { dir: shippedFashionMnistDir() } : {});
  const conv = (s: { images: Uint8Array; labels: Uint8Array; length: number }): Split => {
    const x = new Float32Array(s.images.length);
    for (let i = 0; i < x.length; i++) x[i] = s.images[i]! / 255;
    return { x, y: Int32Array.from(s.labels), n: s.length };
  };
  return { train: conv(fm.train), test: conv(fm.test), source: fm.source, shipped: fm.shipped };
}

/** mulberry32: a small seeded generator for the peers' shuffles and initial weights. */
export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A random permutation of 0..n-1 (Fisher-Yates). */
export function permutation(n: number, rand: () => number): Int32Array {
  const p = new Int32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    const t = p[i]!;
    p[i] = p[j]!;
    p[j] = t;
  }
  return p;
}

/** Copies rows `idx[start..end)` of `src` (rows of `width`) into `x`, and their labels into `y`. */
export function gather(
  src: Split,
  idx: Int32Array,
  start: number,
  end: number,
  x: Float32Array,
  y: Int32Array,
  width = 784,
): void {
  for (let b = 0, i = start; i < end; i++, b++) {
    const r = idx[i]!;
    x.set(src.x.subarray(r * width, (r + 1) * width), b * width);
    y[b] = src.y[r]!;
  }
}

/** Layer widths of the MLP 784-256-128-10. */
/** Elements of each operand of the tiny `add` (issue 3: "a 1000-element add"). */
export const TINY_ADD = 1000;

export const WIDTHS = [784, 256, 128, 10] as const;

/**
 * PyTorch's Linear initialisation (weight and bias uniform in ±1/sqrt(fan_in)), with the weight laid out
 * (in, out) so that y = x @ w + b, as tfjs and jax-js write it.
 */
export function initLinear(
  fanIn: number,
  fanOut: number,
  rand: () => number,
): { w: Float32Array; b: Float32Array } {
  const bound = 1 / Math.sqrt(fanIn);
  const u = () => (2 * rand() - 1) * bound;
  return { w: Float32Array.from({ length: fanIn * fanOut }, u), b: Float32Array.from({ length: fanOut }, u) };
}

/**
 * Batch sizes of the warm-up before a timed epoch: three full batches, and the epoch's last, smaller batch
 * when the timed run will reach it (jit-compiling peers compile once per shape).
 */
export function warmupSizes(spec: TrainSpec): number[] {
  const tail = spec.train.n % spec.batch;
  return [spec.batch, spec.batch, spec.batch, ...(tail && spec.maxSamples >= spec.train.n ? [tail] : [])];
}

/**
 * Batch starts of an epoch of `n` samples at `batch`, stopping once `maxSamples` are covered or, checked
 * before each batch, once `maxSeconds` have passed since the generator was created.
 */
export function* batchStarts(
  n: number,
  batch: number,
  maxSamples: number,
  maxSeconds: number,
): Generator<number> {
  const t0 = performance.now();
  for (let s = 0; s < Math.min(n, maxSamples); s += batch) {
    if (s > 0 && performance.now() - t0 > 1000 * maxSeconds) return;
    yield s;
  }
}

/** Index of the largest of `k` logits in each row. */
export function argmaxRows(logits: ArrayLike<number>, rows: number, k = 10): Int32Array {
  const out = new Int32Array(rows);
  for (let r = 0; r < rows; r++) {
    let best = 0;
    for (let c = 1; c < k; c++) if (logits[r * k + c]! > logits[r * k + best]!) best = c;
    out[r] = best;
  }
  return out;
}

/** A cursor over the test set yielding consecutive batch starts, wrapping to 0 when a batch would not fit. */
export function cursor(n: number, batch: number): () => number {
  let s = 0;
  return () => {
    if (s + batch > n) s = 0;
    const r = s;
    s += batch;
    return r;
  };
}
