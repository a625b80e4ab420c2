/**
 * Tiled online-softmax attention (FlashAttention-2 style, REFERENCE.md §3.1): the forward and backward loops
 * over contiguous Float32Arrays, the reference implementations of the `attentionForward` and
 * `attentionBackward` kernels (registered by src/backend/js/kernels.ts; the wasm backend has its own in
 * src/backend/wasm/assembly/attention.ts). No tensors and no validation here (`scaledDotProductAttention` in
 * attention.ts checks shapes once).
 *
 * Shape legend:
 *   B  flattened batch (N·H·...)      L  query length      S  key/value length
 *   E  query/key head size            Ev value head size   Bq × Bk  a tile: Bq query rows against Bk keys
 *   q (B, L, E)   k (B, S, E)   v (B, S, Ev)   out, dOut (B, L, Ev)   lse (B, L)   all row-major
 *   mask cell (b, i, j) is data[batchOffset[b] + i·strideL + j·strideS] (stride 0 on broadcast dims)
 *
 * Neither loop ever holds the L×S score matrix: scratch is O(Bq·(E + Ev) + Bk·(E + Ev)), independent of L
 * and S. Both return the bytes of scratch they allocated, so callers can check that claim.
 *
 * Accumulators are float64 (JavaScript arithmetic is double anyway); results are rounded to float32 once,
 * except dk and dv, which gather one float64 tile sum per query tile into their float32 outputs.
 */
import type { AttentionGeometry, AttentionMaskView } from '../backend/backend.js';

export type { AttentionGeometry, AttentionMaskView } from '../backend/backend.js';

/** a[ao..ao+n)·b[bo..bo+n), four accumulators: about 1.7x the plain loop on V8, which does not vectorise. */
function dot(a: Float32Array, ao: number, b: Float32Array, bo: number, n: number): number {
  let d0 = 0;
  let d1 = 0;
  let d2 = 0;
  let d3 = 0;
  let e = 0;
  for (; e + 3 < n; e += 4) {
    d0 += a[ao + e]! * b[bo + e]!;
    d1 += a[ao + e + 1]! * b[bo + e + 1]!;
    d2 += a[ao + e + 2]! * b[bo + e + 2]!;
    d3 += a[ao + e + 3]! * b[bo + e + 3]!;
  }
  for (; e < n; e++) d0 += a[ao + e]! * b[bo + e]!;
  return d0 + d1 + d2 + d3;
}

/** y[yo..yo+n) += alpha·x[xo..xo+n), unrolled like `dot`. */
function axpy(alpha: number, x: Float32Array, xo: number, y: Float64Array, yo: number, n: number): void {
  let e = 0;
  for (; e + 3 < n; e += 4) {
    y[yo + e]! += alpha * x[xo + e]!;
    y[yo + e + 1]! += alpha * x[xo + e + 1]!;
    y[yo + e + 2]! += alpha * x[xo + e + 2]!;
    y[yo + e + 3]! += alpha * x[xo + e + 3]!;
  }
  for (; e < n; e++) y[yo + e]! += alpha * x[xo + e]!;
}

/**
 * out = softmax(scale·q·kᵀ + mask)·v, tile by tile, with the running max m, denominator l and numerator of
 * each query row; writes lse = m + log(l) for the backward. Rows with every key masked give zeros and
 * lse = -Infinity. Returns the scratch bytes allocated.
 */
export function attentionForward(
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  g: AttentionGeometry,
  mask: AttentionMaskView | null,
  out: Float32Array,
  lse: Float32Array,
): number {
  const { B, L, S, E, Ev, scale, causal, blockQ, blockK } = g;
  const m = new Float64Array(blockQ);
  const l = new Float64Array(blockQ);
  const acc = new Float64Array(blockQ * Ev);
  const s = new Float64Array(blockK); // one row of a score tile
  for (let b = 0; b < B; b++) {
    const qb = b * L * E;
    const kb = b * S * E;
    const vb = b * S * Ev;
    const mb = mask ? mask.batchOffset[b]! : 0;
    for (let i0 = 0; i0 < L; i0 += blockQ) {
      const i1 = Math.min(i0 + blockQ, L);
      m.fill(-Infinity);
      l.fill(0);
      acc.fill(0);
      // Causal: no row of this tile sees a key past its last row, so later key tiles are skipped whole.
      const jEnd = causal ? Math.min(S, i1) : S;
      for (let j0 = 0; j0 < jEnd; j0 += blockK) {
        const j1 = Math.min(j0 + blockK, jEnd);
        for (let i = i0; i < i1; i++) {
          const r = i - i0;
          const jr = causal ? Math.min(j1, i + 1) : j1;
          const qo = qb + i * E;
          let mx = -Infinity;
          for (let j = j0; j < jr; j++) {
            let sc = dot(q, qo, k, kb + j * E, E) * scale;
            if (mask) {
              const mv = mask.data[mb + i * mask.strideL + j * mask.strideS]!;
              if (mask.additive) sc += mv;
              else if (mv === 0) sc = -Infinity;
            }
            s[j - j0] = sc;
            if (sc > mx) mx = sc;
          }
          const mOld = m[r]!;
          const mNew = Math.max(mx, mOld);
          // Everything seen so far is masked: keep the empty state (exp(-inf - -inf) would be NaN).
          if (mNew === -Infinity) continue;
          const c = Math.exp(mOld - mNew);
          const ao = r * Ev;
          if (c !== 1) for (let e = 0; e < Ev; e++) acc[ao + e]! *= c;
          let rowSum = 0;
          for (let j = j0; j < jr; j++) {
            const p = Math.exp(s[j - j0]! - mNew);
            if (p === 0) continue;
            rowSum += p;
            axpy(p, v, vb + j * Ev, acc, ao, Ev);
          }
          l[r] = c * l[r]! + rowSum;
          m[r] = mNew;
        }
      }
      for (let i = i0; i < i1; i++) {
        const r = i - i0;
        const oo = (b * L + i) * Ev;
        const li = l[r]!;
        // A fully masked row: zeros (PyTorch >= 2.5's safe softmax), not 0/0.
        const inv = li > 0 ? 1 / li : 0;
        for (let e = 0; e < Ev; e++) out[oo + e] = acc[r * Ev + e]! * inv;
        lse[b * L + i] = li > 0 ? m[r]! + Math.log(li) : -Infinity;
      }
    }
  }
  return (m.length + l.length + acc.length + s.length) * 8;
}

/**
 * The backward by recomputation: P = exp(scale·q·kᵀ + mask − lse) tile by tile, D = rowsum(dOut∘out),
 * dS = P∘(dOut·vᵀ − D), dq = scale·dS·k, dk = scale·dSᵀ·q, dv = Pᵀ·dOut, dmask = dS (summed over its broadcast
 * dims, in the mask's own layout). Pass null for a gradient that is not needed. dq, dk and dv are written;
 * dmask is accumulated into, so it must start zeroed. Returns the scratch bytes allocated.
 */
export function attentionBackward(
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
): number {
  const { B, L, S, E, Ev, scale, causal, blockQ, blockK } = g;
  const D = new Float64Array(blockQ);
  const dqAcc = new Float64Array(blockQ * E);
  const dkAcc = new Float64Array(blockK * E);
  const dvAcc = new Float64Array(blockK * Ev);
  // Keys no query sees (causal with S > L) get no tile sum: zero them first.
  dk?.fill(0);
  dv?.fill(0);
  for (let b = 0; b < B; b++) {
    const qb = b * L * E;
    const kb = b * S * E;
    const vb = b * S * Ev;
    const mb = mask ? mask.batchOffset[b]! : 0;
    for (let i0 = 0; i0 < L; i0 += blockQ) {
      const i1 = Math.min(i0 + blockQ, L);
      for (let i = i0; i < i1; i++) {
        const oo = (b * L + i) * Ev;
        D[i - i0] = dot(dOut, oo, out, oo, Ev);
      }
      dqAcc.fill(0);
      const jEnd = causal ? Math.min(S, i1) : S;
      for (let j0 = 0; j0 < jEnd; j0 += blockK) {
        const j1 = Math.min(j0 + blockK, jEnd);
        dkAcc.fill(0, 0, (j1 - j0) * E);
        dvAcc.fill(0, 0, (j1 - j0) * Ev);
        for (let i = i0; i < i1; i++) {
          const r = i - i0;
          const li = lse[b * L + i]!;
          if (li === -Infinity) continue; // a fully masked row: zero output, zero gradients
          const jr = causal ? Math.min(j1, i + 1) : j1;
          const qo = qb + i * E;
          const oo = (b * L + i) * Ev;
          for (let j = j0; j < jr; j++) {
            const ko = kb + j * E;
            const vo = vb + j * Ev;
            let sc = dot(q, qo, k, ko, E) * scale;
            const mi = mb + (mask ? i * mask.strideL + j * mask.strideS : 0);
            if (mask) {
              if (mask.additive) sc += mask.data[mi]!;
              else if (mask.data[mi] === 0) continue;
            }
            const p = Math.exp(sc - li);
            if (p === 0) continue; // masked (-inf) or underflowed: dS = 0 here
            if (dv) axpy(p, dOut, oo, dvAcc, (j - j0) * Ev, Ev);
            const ds = p * (dot(dOut, oo, v, vo, Ev) - D[r]!);
            if (dmask) dmask[mi]! += ds;
            if (dq) axpy(ds * scale, k, ko, dqAcc, r * E, E);
            if (dk) axpy(ds * scale, q, qo, dkAcc, (j - j0) * E, E);
          }
        }
        if (dk) for (let t = 0, o = kb + j0 * E; t < (j1 - j0) * E; t++) dk[o + t]! += dkAcc[t]!;
        if (dv) for (let t = 0, o = vb + j0 * Ev; t < (j1 - j0) * Ev; t++) dv[o + t]! += dvAcc[t]!;
      }
      if (dq) for (let t = 0, o = qb + i0 * E; t < (i1 - i0) * E; t++) dq[o + t] = dqAcc[t]!;
    }
  }
  return (D.length + dqAcc.length + dkAcc.length + dvAcc.length) * 8;
}
