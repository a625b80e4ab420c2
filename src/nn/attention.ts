/**
 * Scaled dot-product attention with PyTorch's semantics (`F.scaled_dot_product_attention`), three ways with
 * one answer:
 *   naive    the full L×S score matrix from public ops; autograd does the backward (the reference)
 *   chunked  the seed's memory_efficient_attention: naive per chunk of queries, then cat (O(chunk·S) scores)
 *   tiled    online softmax over query and key tiles (REFERENCE.md §3.1) as one fused op: never the L×S
 *            matrix, saves the log-sum-exp, the backward recomputes P tile by tile (the attentionForward and
 *            attentionBackward kernels: the reference loops in attention-kernels.ts, wasm SIMD in
 *            src/backend/wasm/assembly/attention.ts)
 *
 * Shape legend: N batch, H heads, L query length, S key/value length, E query/key size, Ev value size.
 * q (..., L, E), k (..., S, E), v (..., S, Ev) -> (..., L, Ev); the leading dims broadcast.
 */
import { type AttentionGeometry, type AttentionMaskView, backendInfo, kernels } from '../backend/backend.js';
import { checkOptions, fmtShape, optionKeys, ShapeError, ValueError } from '../errors.js';
import * as ops from '../tensor/ops.js';
import type { Generator } from '../tensor/random.js';
import { broadcastShapes, numel, sameShape } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { dropout } from './functional.js';

export type AttentionImpl = 'auto' | 'naive' | 'chunked' | 'tiled';

export interface AttentionOptions {
  /**
   * Broadcastable to (..., L, S). bool: true = attend (PyTorch's SDPA convention; note that
   * nn.MultiheadAttention's masks use the opposite one); float32: added to the scaled scores (-Infinity masks).
   */
  mask?: Tensor | null;
  /** Query i attends to keys j <= i (top-left aligned, as PyTorch; with L != S this is not bottom-right). */
  isCausal?: boolean;
  /** Multiplies q·kᵀ; default 1/√E. */
  scale?: number;
  /** Dropout on the attention weights (always applied when > 0, as in PyTorch: pass 0 in eval). */
  dropoutP?: number;
  generator?: Generator;
  /** Which path computes it; 'auto' (default) picks tiled when it pays and dropoutP is 0. */
  impl?: AttentionImpl;
  /** Queries per chunk of the chunked path (default 128). */
  chunkSize?: number;
  /** Tile sizes of the tiled path (defaults 64 and 128). */
  blockQ?: number;
  blockK?: number;
}
const ATTENTION_OPTIONS = optionKeys<AttentionOptions>()([
  'mask',
  'isCausal',
  'scale',
  'dropoutP',
  'generator',
  'impl',
  'chunkSize',
  'blockQ',
  'blockK',
]);

/**
 * From this many scores (B·L·S) 'auto' takes the tiled path on a backend whose matmul is fast but whose
 * attention kernels are the reference loops: one float32 score matrix is then 64 MiB (REFERENCE.md §3.1's
 * (4, 2048, 2048)) and naive training keeps several alive. A memory trade there, measured before the wasm
 * kernels (bench/attention.ts, wasm SIMD matmul on 2 threads, 2-core machine): naive fwd+bwd 2.05 s and
 * 452 MiB peak extra, reference tiled 18.9 s and 14 MiB. No backend registered today is in that case: wasm
 * has its own attention kernels, native takes wasm's.
 */
export const TILED_MIN_SCORES = 1 << 24;

/**
 * What 'auto' runs. With dropout: chunked (the tiled path refuses dropout, like PyTorch's flash kernel);
 * chunked matched naive at (4, 256, 64) and beat it at (4, 512, 64) on the js backend, and is naive itself
 * when L <= chunkSize. Without, tiled:
 *  - where the attention kernels are a backend's own (wasm SIMD, and native through its wasm base): there is
 *    no crossover, tiled beat naive at every size tried (2-core machine, median of 3-200 runs, from
 *    (8, 8, 16) to (4, 1024, 64), causal or not: forward 1.9-14x, fwd+bwd 1.0-9x; (4, 2048, 64) in
 *    bench/attention.ts), since it skips the score matrix's allocations, copies and separate softmax;
 *  - where matmul is the reference kernel (js backend: tiled beat naive 1.1-3.1x fwd+bwd, (8, 8, 16) to
 *    (4, 256, 64));
 *  - else (fast matmul, reference attention loops) only from TILED_MIN_SCORES, for memory.
 */
function autoImpl(dropoutP: number, scores: number): 'naive' | 'chunked' | 'tiled' {
  if (dropoutP > 0) return 'chunked';
  const info = backendInfo();
  if (info.name === 'js' || info.fallbackFrom.matmul === 'js') return 'tiled';
  if (info.fallbackFrom.attentionForward !== 'js') return 'tiled';
  return scores >= TILED_MIN_SCORES ? 'tiled' : 'naive';
}

const DEFAULT_CHUNK = 128;
// Bq × Bk = 64 × 128: the K and V tiles (2·128·E floats, 64 KiB at E = 64) stay in L2 while the Bq query
// rows pass over them. Measured: no tile size from 16×64 to 256×512 was faster beyond noise (±10%) at
// L = S = 768 and 2048, E = 64, since one scalar thread is bound by arithmetic, not memory; likewise for the
// wasm kernels, 64×64 to 256×128 at (4, 2048, 64) on one thread (±20% on a busy machine).
const DEFAULT_BLOCK_Q = 64;
const DEFAULT_BLOCK_K = 128;

const OP = 'scaledDotProductAttention';

function positiveInt(name: string, v: number): void {
  if (!Number.isInteger(v) || v <= 0)
    throw new ValueError(OP, `${name} must be a positive integer (got ${v})`);
}

/** Validated sizes of one call. */
interface Problem {
  batch: number[];
  L: number;
  S: number;
  E: number;
  Ev: number;
  scale: number;
  causal: boolean;
  mask: Tensor | null;
}

function check(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions): Problem {
  for (const [name, t] of [
    ['query', q],
    ['key', k],
    ['value', v],
  ] as const) {
    if (t.rank < 2)
      throw new ShapeError(OP, `${name} must have at least 2 dims (..., T, E), got ${fmtShape(t.shape)}`);
    if (t.dtype !== 'float32') throw new ValueError(OP, `${name} must be float32, got ${t.dtype}`);
  }
  const [L, E] = q.shape.slice(-2) as [number, number];
  const [S, Ek] = k.shape.slice(-2) as [number, number];
  const [Sv, Ev] = v.shape.slice(-2) as [number, number];
  if (Ek !== E)
    throw new ShapeError(
      OP,
      `query ${fmtShape(q.shape)} and key ${fmtShape(k.shape)} must have the same last dim (got ${E} and ${Ek})`,
    );
  if (Sv !== S)
    throw new ShapeError(
      OP,
      `key ${fmtShape(k.shape)} and value ${fmtShape(v.shape)} must have the same length (got ${S} and ${Sv})`,
    );
  let batch: number[];
  try {
    batch = broadcastShapes(
      OP,
      broadcastShapes(OP, q.shape.slice(0, -2), k.shape.slice(0, -2)),
      v.shape.slice(0, -2),
    );
  } catch {
    throw new ShapeError(
      OP,
      `batch dims of query ${fmtShape(q.shape)}, key ${fmtShape(k.shape)} and value ${fmtShape(v.shape)} cannot be broadcast`,
    );
  }
  const mask = opts.mask ?? null;
  const causal = opts.isCausal ?? false;
  if (mask) {
    if (causal)
      throw new ValueError(
        OP,
        'pass either mask or isCausal, not both (as PyTorch: fold the causal mask in)',
      );
    if (mask.dtype === 'int32')
      throw new ValueError(OP, `mask must be bool (true = attend) or float32 (added), got ${mask.dtype}`);
    const target = [...batch, L, S];
    const fits =
      mask.rank <= target.length &&
      mask.shape.every((d, i) => d === 1 || d === target[target.length - mask.rank + i]);
    if (!fits)
      throw new ShapeError(
        OP,
        `mask ${fmtShape(mask.shape)} is not broadcastable to ${fmtShape(target)} (batch..., L, S)`,
      );
  }
  const p = opts.dropoutP ?? 0;
  if (!(p >= 0 && p <= 1)) throw new ValueError(OP, `dropoutP must be in [0, 1] (got ${p})`);
  const scale = opts.scale ?? 1 / Math.sqrt(E);
  if (opts.impl !== undefined && !['auto', 'naive', 'chunked', 'tiled'].includes(opts.impl))
    throw new ValueError(OP, `unknown impl '${opts.impl}' (expected auto, naive, chunked or tiled)`);
  for (const name of ['chunkSize', 'blockQ', 'blockK'] as const)
    if (opts[name] !== undefined) positiveInt(name, opts[name]);
  return { batch, L, S, E, Ev, scale, causal, mask };
}

/**
 * Attention with PyTorch's `F.scaled_dot_product_attention` semantics: softmax(q·kᵀ·scale + mask)·v, on
 * (N, T, E), (N, H, T, E) or any leading dims (broadcast). The three `impl`s agree to float32 rounding; rows
 * whose keys are all masked give zeros (and zero gradients), as PyTorch >= 2.5, not NaN.
 *
 * @example
 * const q = mb.randn([2, 4, 16, 8]);                        // (N, H, L, E)
 * const y = mb.scaledDotProductAttention(q, q, q, { isCausal: true });   // (2, 4, 16, 8)
 * const z = mb.scaledDotProductAttention(q, q, q, { impl: 'tiled', blockQ: 8 }); // same values
 */
export function scaledDotProductAttention(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  opts: AttentionOptions = {},
): Tensor {
  checkOptions('scaledDotProductAttention', opts, ATTENTION_OPTIONS);
  const pr = check(q, k, v, opts);
  const dropoutP = opts.dropoutP ?? 0;
  const scores = numel(pr.batch) * pr.L * pr.S;
  const impl = !opts.impl || opts.impl === 'auto' ? autoImpl(dropoutP, scores) : opts.impl;
  if (impl === 'tiled' && dropoutP > 0)
    throw new ValueError(
      OP,
      `the tiled path does not support dropout (got dropoutP=${dropoutP}); use naive or chunked`,
    );
  // With no queries or no keys the composed paths would reduce over an empty dim; the kernel gives the
  // defined answer (zeros, like fully masked rows).
  if (impl === 'tiled' || scores === 0) return tiled(q, k, v, pr, opts);
  const drop = (p: Tensor) => (dropoutP > 0 ? dropout(p, dropoutP, true, opts.generator) : p);
  if (impl === 'chunked') return chunked(q, k, v, pr, opts.chunkSize ?? DEFAULT_CHUNK, drop);
  return ops.matmul(drop(attentionWeights(q, k, pr)), v);
}

/** Bool (rows, S) mask, true where query row0 + r may see key j (top-left aligned causal). */
function causalMask(rows: number, row0: number, S: number): Tensor {
  const m = ops.empty([rows, S], 'bool');
  const d = m.data as Uint8Array;
  for (let r = 0; r < rows; r++) d.fill(1, r * S, Math.min(S, row0 + r + 1) + r * S);
  return m;
}

/**
 * The attention weights softmax(q·kᵀ·scale + mask) (..., L, S) from public ops, so autograd differentiates
 * them. Fully masked rows are zeros: their scores are replaced by 0 before the softmax (no NaN to leak into
 * the gradient) and their weights by 0 after.
 */
function attentionWeights(q: Tensor, k: Tensor, pr: Problem, row0 = 0): Tensor {
  let s = ops.mul(ops.matmul(q, ops.transpose(k, -2, -1)), pr.scale);
  const L = q.shape[q.rank - 2]!;
  if (pr.causal) return ops.softmax(ops.where(causalMask(L, row0, pr.S), s, -Infinity), -1);
  if (!pr.mask) return ops.softmax(s, -1);
  s = pr.mask.dtype === 'bool' ? ops.where(pr.mask, s, -Infinity) : ops.add(s, pr.mask);
  const dead = ops.eq(ops.max(s, -1, true).detach(), -Infinity);
  return ops.where(dead, 0, ops.softmax(ops.where(dead, 0, s), -1));
}

/**
 * The weights of `scaledDotProductAttention` (..., L, S), for callers that return them
 * (MultiheadAttention's needWeights). Same options, minus dropout and impl.
 * @example attentionProbabilities(q, k, { isCausal: true }).sum(-1) // ones (or 0 for fully masked rows)
 */
export function attentionProbabilities(
  q: Tensor,
  k: Tensor,
  opts: Pick<AttentionOptions, 'mask' | 'isCausal' | 'scale'> = {},
): Tensor {
  checkOptions('attentionProbabilities', opts, ['mask', 'isCausal', 'scale']);
  return attentionWeights(q, k, check(q, k, k, opts));
}

/** The seed's memory_efficient_attention: the naive path on `size` queries at a time, then cat. */
function chunked(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  pr: Problem,
  size: number,
  drop: (p: Tensor) => Tensor,
): Tensor {
  const parts: Tensor[] = [];
  // A mask with a full L dim is sliced with the queries; one broadcast over L is shared by every chunk.
  const sliceMask = pr.mask && pr.mask.rank >= 2 && pr.mask.shape[pr.mask.rank - 2] === pr.L && pr.L > 1;
  for (let i0 = 0; i0 < pr.L; i0 += size) {
    const qc = ops.slice(q, -2, i0, i0 + size);
    const mask = sliceMask ? ops.slice(pr.mask!, -2, i0, i0 + size) : pr.mask;
    parts.push(ops.matmul(drop(attentionWeights(qc, k, { ...pr, mask }, i0)), v));
  }
  return parts.length === 1 ? parts[0]! : ops.cat(parts, -2);
}

/**
 * The mask read in place through its own strides (a broadcast or expanded mask is never copied): per flattened
 * batch index the offset of its (0, 0) cell, and the strides of L and S (0 where the mask broadcasts).
 */
function maskView(mask: Tensor, batch: readonly number[]): AttentionMaskView {
  const pad = batch.length + 2 - mask.rank;
  const shape = [...Array<number>(pad).fill(1), ...mask.shape];
  const strides = [...Array<number>(pad).fill(0), ...mask.strides].map((st, i) => (shape[i] === 1 ? 0 : st));
  const batchOffset = new Int32Array(numel(batch));
  for (let b = 0; b < batchOffset.length; b++) {
    let rest = b;
    let off = mask.offset;
    for (let d = batch.length - 1; d >= 0; d--) {
      off += (rest % batch[d]!) * strides[d]!;
      rest = Math.floor(rest / batch[d]!);
    }
    batchOffset[b] = off;
  }
  return {
    additive: mask.dtype === 'float32',
    data: mask.data as Float32Array | Uint8Array,
    batchOffset,
    strideL: strides[batch.length]!,
    strideS: strides[batch.length + 1]!,
  };
}

/** One fused op over contiguous (B, T, E) buffers; broadcast batch dims are expanded first (autograd sums back). */
function tiled(q: Tensor, k: Tensor, v: Tensor, pr: Problem, opts: AttentionOptions): Tensor {
  const { batch, L, S, E, Ev } = pr;
  const full = (t: Tensor, T: number, D: number) => {
    const shape = [...batch, T, D];
    return ops.contiguous(sameShape(t.shape, shape) ? t : ops.expand(t, shape));
  };
  const [qc, kc, vc] = [full(q, L, E), full(k, S, E), full(v, S, Ev)];
  // A mask that needs a gradient is made contiguous, so dmask (allocated contiguous) shares its layout.
  const mask = pr.mask?.requiresGrad ? ops.contiguous(pr.mask) : pr.mask;
  const geom: AttentionGeometry = {
    B: numel(batch),
    L,
    S,
    E,
    Ev,
    scale: pr.scale,
    causal: pr.causal,
    blockQ: opts.blockQ ?? DEFAULT_BLOCK_Q,
    blockK: opts.blockK ?? DEFAULT_BLOCK_K,
  };
  const mv = mask ? maskView(mask, batch) : null;
  const out = ops.empty([...batch, L, Ev]);
  const lse = new Float32Array(geom.B * L);
  const f32 = (t: Tensor) => t.data as Float32Array;
  kernels().attentionForward(f32(qc), f32(kc), f32(vc), geom, mv, f32(out), lse);
  const inputs = [qc, kc, vc, ...(mask?.dtype === 'float32' ? [mask] : [])];
  return ops.customOp(OP, inputs, out, (g, needs) => {
    const grads = inputs.map((t, i) => (needs[i] ? ops.empty(t.shape) : null));
    const [dq, dk, dv, dmask] = grads.map((t) => (t ? f32(t) : null));
    kernels().attentionBackward(
      f32(qc),
      f32(kc),
      f32(vc),
      f32(out),
      f32(ops.contiguous(g)),
      lse,
      geom,
      mv,
      dq ?? null,
      dk ?? null,
      dv ?? null,
      dmask ?? null,
    );
    return grads;
  });
}
