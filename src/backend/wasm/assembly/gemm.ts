// Single-precision GEMM, one thread's share: over packed panels (BLIS/GotoBLAS loop order), or, for A·Bᵀ, for
// A·B with a small M and for Aᵀ·B with a small K, straight from the operands (see sgemm).
//
//   C (M,N) = alpha · op(A) (M,K) · op(B) (K,N) + beta · C   [+ bias (N) per column] [ReLU]
//   A is stored (M,K) with row stride lda, or (K,M) when transA; B is stored (K,N) with ldb, or (N,K)
//   when transB; C is (M,N) with ldc. All strides are in elements, all pointers byte addresses, 0 = none.
//   MR×NR = 6×8 register tile: 12 accumulators + 2 B vectors + 1 A splat = 15 live v128, all of V8's
//   allocatable xmm registers (no spills in the loop). With 12 independent FMA chains the loop keeps both FMA
//   pipes busy through their 4-cycle latency, which 8 (a 4×8 tile) barely does: 6×8 ran 16-19% faster than
//   4×8 over the same packed panels (medians of 61 paired rounds, three runs).
//   KC×NR (8 KiB) B panel stays in L1 while the MC×KC (132 KiB) A block streams from L2; the KC×NC
//   packed B block (2 MiB) is reused by every A block of the same column range.
// The scratch buffer (gemmScratchBytes) is per thread: the JS side hands each thread its own.
// A GEMM split across threads by rows needs all of B in every chunk, one split by columns all of A: the
// caller packs that operand once for all chunks (gemmPrepack) and passes it as preB or preA.

import { madd, transpose4 } from './simd';

const MR: i32 = 6;
const NR: i32 = 8;
const KC: i32 = 256;
const MC: i32 = 132; // a multiple of MR
const NC: i32 = 2048;
/**
 * A·B with both row-major and M up to this goes to the direct kernel (sgemmStrided): measured 1t, GFLOP/s packed
 * vs direct: 1×784×256 4.5 vs 10.9, 32×32×32 23.7 vs 31.8, 32×784×256 29.8 vs 34.6; from M = 64 on the packed
 * path wins or ties (128×1024×1024: 29.3 vs 19.9, B's rows 4 KiB apart defeat the prefetcher).
 */
const NN_MAX_M: i32 = 32;
/**
 * Aᵀ·B with K up to TN_MAX_K and M up to TN_MAX_M goes to the direct kernel (sgemmStrided): linear's dW at a
 * small batch. 1t GFLOP/s, packed vs direct (M×K×N), through the runtime with dense operands: 256×32×784 23.5 vs
 * 25.4, 10×32×128 13.0 vs 21.1, 128×32×256 and 256×64×784 even; with padded rows (no set conflicts) 256×32×784
 * 23.0 vs 30.4. A longer K or a larger M favours packing (512×128×512 32.6 vs 26.2, 1024×32×1024 22.1 vs
 * 19.2): the strips of A and B a tile walks no longer stay in L1.
 */
const TN_MAX_K: i32 = 64;
const TN_MAX_M: i32 = 512;

/** Bytes of scratch one thread needs: packed A block, packed B block, one edge tile. */
export function gemmScratchBytes(): i32 {
  return (MC * KC + KC * NC + MR * NR) * 4;
}

// Each packed A panel is kc steps of MR floats (rows i..i+5 at step k), zero-padded past M.
function packA(transA: bool, a: usize, lda: i32, mc: i32, kc: i32, alpha: f32, dst: usize): void {
  const va = f32x4.splat(alpha);
  for (let i = 0; i < mc; i += MR) {
    const mr = min(MR, mc - i);
    if (transA) {
      // Stored (K,M): the 6 values of one step are contiguous.
      let src = a + (<usize>i << 2);
      if (mr == MR) {
        for (let k = 0; k < kc; k++) {
          v128.store(dst, f32x4.mul(v128.load(src), va));
          store<f32>(dst, load<f32>(src, 16) * alpha, 16);
          store<f32>(dst, load<f32>(src, 20) * alpha, 20);
          src += <usize>lda << 2;
          dst += MR << 2;
        }
      } else {
        for (let k = 0; k < kc; k++) {
          for (let r = 0; r < MR; r++) {
            store<f32>(dst + (<usize>r << 2), r < mr ? load<f32>(src + (<usize>r << 2)) * alpha : 0);
          }
          src += <usize>lda << 2;
          dst += MR << 2;
        }
      }
    } else {
      // Stored (M,K): 4 steps at a time, rows 0-3 transposed in registers, rows 4-5 interleaved in pairs.
      const row = a + ((<usize>i * lda) << 2);
      const ld = <usize>lda << 2;
      let k = 0;
      if (mr == MR) {
        for (; k + 4 <= kc; k += 4) {
          const p = row + (<usize>k << 2);
          transpose4(
            f32x4.mul(v128.load(p), va),
            f32x4.mul(v128.load(p + ld), va),
            f32x4.mul(v128.load(p + 2 * ld), va),
            f32x4.mul(v128.load(p + 3 * ld), va),
            dst,
            MR << 2,
          );
          const r4 = f32x4.mul(v128.load(p + 4 * ld), va);
          const r5 = f32x4.mul(v128.load(p + 5 * ld), va);
          const lo = i32x4.shuffle(r4, r5, 0, 4, 1, 5);
          const hi = i32x4.shuffle(r4, r5, 2, 6, 3, 7);
          v128.store64_lane(dst, lo, 0, 16);
          v128.store64_lane(dst, lo, 1, 16 + (MR << 2));
          v128.store64_lane(dst, hi, 0, 16 + (MR << 3));
          v128.store64_lane(dst, hi, 1, 16 + 3 * (MR << 2));
          dst += MR << 4;
        }
      }
      for (; k < kc; k++) {
        for (let r = 0; r < MR; r++) {
          store<f32>(dst + (<usize>r << 2), r < mr ? load<f32>(row + <usize>r * ld + (<usize>k << 2)) * alpha : 0);
        }
        dst += MR << 2;
      }
    }
  }
}

// Each packed B panel is kc steps of NR floats (columns j..j+7 at step k), zero-padded past N.
function packB(transB: bool, b: usize, ldb: i32, kc: i32, nc: i32, dst: usize): void {
  const ld = <usize>ldb << 2;
  for (let j = 0; j < nc; j += NR) {
    const nr = min(NR, nc - j);
    if (!transB && nr == NR) {
      // Stored (K,N): the 8 values of one step are contiguous.
      let src = b + (<usize>j << 2);
      for (let k = 0; k < kc; k++) {
        v128.store(dst, v128.load(src));
        v128.store(dst, v128.load(src, 16), 16);
        src += ld;
        dst += 32;
      }
    } else if (transB && nr == NR) {
      // Stored (N,K): 8 rows of B^T; transpose 4×4 blocks into the two halves of each step.
      const col = b + <usize>j * ld;
      let k = 0;
      for (; k + 4 <= kc; k += 4) {
        const p = col + (<usize>k << 2);
        transpose4(v128.load(p), v128.load(p + ld), v128.load(p + 2 * ld), v128.load(p + 3 * ld), dst, 32);
        const q = p + 4 * ld;
        transpose4(v128.load(q), v128.load(q + ld), v128.load(q + 2 * ld), v128.load(q + 3 * ld), dst + 16, 32);
        dst += 128;
      }
      for (; k < kc; k++) {
        for (let q = 0; q < NR; q++) store<f32>(dst + (<usize>q << 2), load<f32>(col + <usize>q * ld + (<usize>k << 2)));
        dst += 32;
      }
    } else {
      for (let k = 0; k < kc; k++) {
        for (let q = 0; q < NR; q++) {
          const off = transB ? <usize>(j + q) * ld + (<usize>k << 2) : <usize>k * ld + (<usize>(j + q) << 2);
          store<f32>(dst + (<usize>q << 2), q < nr ? load<f32>(b + off) : 0);
        }
        dst += 32;
      }
    }
  }
}

// One C row of the tile: c = acc + beta·c (c not read when beta == 0, so NaN garbage in C cannot leak),
// then the epilogue on the last K block.
// @ts-expect-error: decorator
@inline function storeRow(c: usize, lo: v128, hi: v128, beta: f32, b0: v128, b1: v128, epi: bool, relu: bool): void {
  if (beta != 0) {
    const vb = f32x4.splat(beta);
    lo = madd(vb, v128.load(c), lo);
    hi = madd(vb, v128.load(c, 16), hi);
  }
  if (epi) {
    lo = f32x4.add(lo, b0);
    hi = f32x4.add(hi, b1);
    if (relu) {
      lo = f32x4.max(lo, f32x4.splat(0));
      hi = f32x4.max(hi, f32x4.splat(0));
    }
  }
  v128.store(c, lo);
  v128.store(c, hi, 16);
}

// The 6×8 register tile: tile (MR×NR, row stride NR) = packed A panel (kc×6) · packed B panel (kc×8). The
// accumulators go straight to the tile and the caller merges it into C (storeTile, mergeEdge): with the
// beta/bias/ReLU epilogue here instead, V8 hoists the six splat loads of a step ahead of its FMAs and spills
// four accumulators in the loop (35% slower than this over the same panels).
function micro(kc: i32, pa: usize, pb: usize, tile: usize): void {
  let c00 = f32x4.splat(0), c01 = f32x4.splat(0), c10 = f32x4.splat(0), c11 = f32x4.splat(0);
  let c20 = f32x4.splat(0), c21 = f32x4.splat(0), c30 = f32x4.splat(0), c31 = f32x4.splat(0);
  let c40 = f32x4.splat(0), c41 = f32x4.splat(0), c50 = f32x4.splat(0), c51 = f32x4.splat(0);
  // The B pointer is the only loop variable (no counter): 4-6% faster on this loop of ~36 instructions.
  const end = pb + (<usize>(kc * NR) << 2);
  while (pb < end) {
    const b0 = v128.load(pb);
    const b1 = v128.load(pb, 16);
    let a = v128.load32_splat(pa);
    c00 = madd(a, b0, c00);
    c01 = madd(a, b1, c01);
    a = v128.load32_splat(pa, 4);
    c10 = madd(a, b0, c10);
    c11 = madd(a, b1, c11);
    a = v128.load32_splat(pa, 8);
    c20 = madd(a, b0, c20);
    c21 = madd(a, b1, c21);
    a = v128.load32_splat(pa, 12);
    c30 = madd(a, b0, c30);
    c31 = madd(a, b1, c31);
    a = v128.load32_splat(pa, 16);
    c40 = madd(a, b0, c40);
    c41 = madd(a, b1, c41);
    a = v128.load32_splat(pa, 20);
    c50 = madd(a, b0, c50);
    c51 = madd(a, b1, c51);
    pa += MR << 2;
    pb += NR << 2;
  }
  v128.store(tile, c00);
  v128.store(tile, c01, 16);
  v128.store(tile, c10, 32);
  v128.store(tile, c11, 48);
  v128.store(tile, c20, 64);
  v128.store(tile, c21, 80);
  v128.store(tile, c30, 96);
  v128.store(tile, c31, 112);
  v128.store(tile, c40, 128);
  v128.store(tile, c41, 144);
  v128.store(tile, c50, 160);
  v128.store(tile, c51, 176);
}

// Merges a full tile into C: c = tile + beta·c, then the epilogue on the last K block (storeRow).
function storeTile(tile: usize, c: usize, ldc: usize, beta: f32, bias: usize, epi: bool, relu: bool): void {
  const b0 = bias ? v128.load(bias) : f32x4.splat(0);
  const b1 = bias ? v128.load(bias, 16) : f32x4.splat(0);
  const ld = ldc << 2;
  for (let r = 0; r < MR; r++) {
    const t = tile + (<usize>(r * NR) << 2);
    storeRow(c + <usize>r * ld, v128.load(t), v128.load(t, 16), beta, b0, b1, epi, relu);
  }
}

// Scalar merge of a partial tile (mr < MR or nr < NR) computed into `tile` with row stride NR.
function mergeEdge(tile: usize, mr: i32, nr: i32, c: usize, ldc: usize, beta: f32, bias: usize, epi: bool, relu: bool): void {
  for (let i = 0; i < mr; i++) {
    for (let j = 0; j < nr; j++) {
      const cp = c + ((<usize>i * ldc + j) << 2);
      let v = load<f32>(tile + (<usize>(i * NR + j) << 2));
      if (beta != 0) v += beta * load<f32>(cp);
      if (epi) {
        if (bias) v += load<f32>(bias + (<usize>j << 2));
        if (relu) v = max(v, 0);
      }
      store<f32>(cp, v);
    }
  }
}


// ---- Direct kernels: no packing, for a small M (inference, small batches), where packing the weight
// (K·N floats written and read back for M·K·N multiply-adds) costs as much as the product itself.

// Horizontal sums of four accumulators: [Σc0, Σc1, Σc2, Σc3].
// @ts-expect-error: decorator
@inline function hsum4(c0: v128, c1: v128, c2: v128, c3: v128): v128 {
  const t0 = f32x4.add(i32x4.shuffle(c0, c1, 0, 4, 1, 5), i32x4.shuffle(c0, c1, 2, 6, 3, 7));
  const t1 = f32x4.add(i32x4.shuffle(c2, c3, 0, 4, 1, 5), i32x4.shuffle(c2, c3, 2, 6, 3, 7));
  return f32x4.add(i32x4.shuffle(t0, t1, 0, 1, 4, 5), i32x4.shuffle(t0, t1, 2, 3, 6, 7));
}

// Σ of the lanes of one accumulator.
// @ts-expect-error: decorator
@inline function hsum1(c: v128): f32 {
  const t = f32x4.add(c, i32x4.shuffle(c, c, 2, 3, 0, 1));
  return f32x4.extract_lane(t, 0) + f32x4.extract_lane(t, 1);
}

// C[i, j..j+4] = alpha·r + beta·C (+ bias, ReLU), r the four dot products of row i.
// @ts-expect-error: decorator
@inline function storeDot4(c: usize, r: v128, alpha: f32, beta: f32, bias: usize, relu: bool): void {
  if (alpha != 1) r = f32x4.mul(r, f32x4.splat(alpha));
  if (beta != 0) r = madd(f32x4.splat(beta), v128.load(c), r);
  if (bias) r = f32x4.add(r, v128.load(bias));
  if (relu) r = f32x4.max(r, f32x4.splat(0));
  v128.store(c, r);
}

// @ts-expect-error: decorator
@inline function storeDot1(c: usize, v: f32, alpha: f32, beta: f32, bias: usize, relu: bool): void {
  v *= alpha;
  if (beta != 0) v += beta * load<f32>(c);
  if (bias) v += load<f32>(bias);
  store<f32>(c, relu ? max(v, 0) : v);
}

// Scalar tail of a dot product over k in [k0, K).
// @ts-expect-error: decorator
@inline function dotTail(a: usize, b: usize, k0: i32, K: i32): f32 {
  let s: f32 = 0;
  for (let k = k0; k < K; k++) s += load<f32>(a + (<usize>k << 2)) * load<f32>(b + (<usize>k << 2));
  return s;
}

// C (M,N) = alpha·A (M,K)·Bᵀ with B stored (N,K): every entry a dot product of two contiguous rows, SIMD
// over K. Tiles of 2 A rows × 4 B rows: 8 accumulators + 6 loads per 4 steps of k.
function sgemmNT(M: i32, N: i32, K: i32, alpha: f32, a: usize, lda: i32, b: usize, ldb: i32, beta: f32,
                 c: usize, ldc: i32, bias: usize, relu: bool): void {
  const la = <usize>lda << 2;
  const lb = <usize>ldb << 2;
  const lc = <usize>ldc << 2;
  const K4 = K & ~3;
  // Rows of A in blocks that stay in L2 while every B row passes over them.
  const IB = max(2, min(64, (49152 / K) & ~1));
  for (let i0 = 0; i0 < M; i0 += IB) {
    const i1 = min(M, i0 + IB);
    let j = 0;
    for (; j + 4 <= N; j += 4) {
      const b0 = b + <usize>j * lb;
      const b1 = b0 + lb;
      const b2 = b1 + lb;
      const b3 = b2 + lb;
      const bj = bias ? bias + (<usize>j << 2) : 0;
      let i = i0;
      for (; i + 2 <= i1; i += 2) {
        const a0 = a + <usize>i * la;
        const a1 = a0 + la;
        let c00 = f32x4.splat(0), c01 = f32x4.splat(0), c02 = f32x4.splat(0), c03 = f32x4.splat(0);
        let c10 = f32x4.splat(0), c11 = f32x4.splat(0), c12 = f32x4.splat(0), c13 = f32x4.splat(0);
        for (let o: usize = 0, e = <usize>K4 << 2; o < e; o += 16) {
          const x0 = v128.load(a0 + o);
          const x1 = v128.load(a1 + o);
          let y = v128.load(b0 + o);
          c00 = madd(x0, y, c00);
          c10 = madd(x1, y, c10);
          y = v128.load(b1 + o);
          c01 = madd(x0, y, c01);
          c11 = madd(x1, y, c11);
          y = v128.load(b2 + o);
          c02 = madd(x0, y, c02);
          c12 = madd(x1, y, c12);
          y = v128.load(b3 + o);
          c03 = madd(x0, y, c03);
          c13 = madd(x1, y, c13);
        }
        let r0 = hsum4(c00, c01, c02, c03);
        let r1 = hsum4(c10, c11, c12, c13);
        if (K4 < K) {
          r0 = f32x4.add(r0, f32x4(dotTail(a0, b0, K4, K), dotTail(a0, b1, K4, K), dotTail(a0, b2, K4, K), dotTail(a0, b3, K4, K)));
          r1 = f32x4.add(r1, f32x4(dotTail(a1, b0, K4, K), dotTail(a1, b1, K4, K), dotTail(a1, b2, K4, K), dotTail(a1, b3, K4, K)));
        }
        const cp = c + <usize>i * lc + (<usize>j << 2);
        storeDot4(cp, r0, alpha, beta, bj, relu);
        storeDot4(cp + lc, r1, alpha, beta, bj, relu);
      }
      if (i < i1) {
        const a0 = a + <usize>i * la;
        let c00 = f32x4.splat(0), c01 = f32x4.splat(0), c02 = f32x4.splat(0), c03 = f32x4.splat(0);
        for (let o: usize = 0, e = <usize>K4 << 2; o < e; o += 16) {
          const x0 = v128.load(a0 + o);
          c00 = madd(x0, v128.load(b0 + o), c00);
          c01 = madd(x0, v128.load(b1 + o), c01);
          c02 = madd(x0, v128.load(b2 + o), c02);
          c03 = madd(x0, v128.load(b3 + o), c03);
        }
        let r0 = hsum4(c00, c01, c02, c03);
        if (K4 < K) {
          r0 = f32x4.add(r0, f32x4(dotTail(a0, b0, K4, K), dotTail(a0, b1, K4, K), dotTail(a0, b2, K4, K), dotTail(a0, b3, K4, K)));
        }
        storeDot4(c + <usize>i * lc + (<usize>j << 2), r0, alpha, beta, bj, relu);
      }
    }
    // The last N mod 4 columns: one B row at a time.
    for (; j < N; j++) {
      const b0 = b + <usize>j * lb;
      const bj = bias ? bias + (<usize>j << 2) : 0;
      for (let i = i0; i < i1; i++) {
        const a0 = a + <usize>i * la;
        let c00 = f32x4.splat(0);
        for (let o: usize = 0, e = <usize>K4 << 2; o < e; o += 16) c00 = madd(v128.load(a0 + o), v128.load(b0 + o), c00);
        storeDot1(c + <usize>i * lc + (<usize>j << 2), hsum1(c00) + dotTail(a0, b0, K4, K), alpha, beta, bj, relu);
      }
    }
  }
}



// C (M,N) = alpha·op(A) (M,K)·B (K,N), B row-major, straight from the operands in 4×8 tiles: A(i,k) is the float
// at a + i·aRow + k·aStep (bytes), so A·B is (lda·4, 4) and Aᵀ·B with A stored (K,M) is (4, lda·4). Per k, 4
// splats of A and 2 vectors of B's row; K in blocks of KC so a tile's strip of B (KC rows) stays in L1. For a
// small M (A·B) or a small K (Aᵀ·B, linear's dW), where packing costs as much as the product.
function sgemmStrided(M: i32, N: i32, K: i32, alpha: f32, a: usize, aRow: usize, aStep: usize, b: usize, ldb: i32,
                      beta: f32, c: usize, ldc: i32, bias: usize, relu: bool): void {
  const lb = <usize>ldb << 2;
  const lc = <usize>ldc << 2;
  const va = f32x4.splat(alpha);
  const r2 = aRow << 1;
  const r3 = r2 + aRow;
  for (let pc = 0; pc < K; pc += KC) {
    const kc = min(KC, K - pc);
    const bk: f32 = pc == 0 ? beta : 1;
    const epi = pc + kc >= K;
    const bias0 = epi ? bias : 0;
    const relu0 = epi && relu;
    const ab = a + <usize>pc * aStep;
    const bb = b + <usize>pc * lb;
    let j = 0;
    for (; j + 8 <= N; j += 8) {
      const bj = bb + (<usize>j << 2);
      const b0 = bias0 ? v128.load(bias0 + (<usize>j << 2)) : f32x4.splat(0);
      const b1 = bias0 ? v128.load(bias0 + (<usize>j << 2), 16) : f32x4.splat(0);
      let i = 0;
      for (; i + 4 <= M; i += 4) {
        let c00 = f32x4.splat(0), c01 = f32x4.splat(0), c10 = f32x4.splat(0), c11 = f32x4.splat(0);
        let c20 = f32x4.splat(0), c21 = f32x4.splat(0), c30 = f32x4.splat(0), c31 = f32x4.splat(0);
        let pa = ab + <usize>i * aRow;
        let pb = bj;
        for (let k = 0; k < kc; k++) {
          const y0 = v128.load(pb);
          const y1 = v128.load(pb, 16);
          let x = v128.load32_splat(pa);
          c00 = madd(x, y0, c00);
          c01 = madd(x, y1, c01);
          x = v128.load32_splat(pa + aRow);
          c10 = madd(x, y0, c10);
          c11 = madd(x, y1, c11);
          x = v128.load32_splat(pa + r2);
          c20 = madd(x, y0, c20);
          c21 = madd(x, y1, c21);
          x = v128.load32_splat(pa + r3);
          c30 = madd(x, y0, c30);
          c31 = madd(x, y1, c31);
          pa += aStep;
          pb += lb;
        }
        const cp = c + <usize>i * lc + (<usize>j << 2);
        const ep = bias0 != 0 || relu0;
        storeRow(cp, f32x4.mul(c00, va), f32x4.mul(c01, va), bk, b0, b1, ep, relu0);
        storeRow(cp + lc, f32x4.mul(c10, va), f32x4.mul(c11, va), bk, b0, b1, ep, relu0);
        storeRow(cp + 2 * lc, f32x4.mul(c20, va), f32x4.mul(c21, va), bk, b0, b1, ep, relu0);
        storeRow(cp + 3 * lc, f32x4.mul(c30, va), f32x4.mul(c31, va), bk, b0, b1, ep, relu0);
      }
      for (; i < M; i++) {
        let c00 = f32x4.splat(0), c01 = f32x4.splat(0);
        let pa = ab + <usize>i * aRow;
        let pb = bj;
        for (let k = 0; k < kc; k++) {
          const x = v128.load32_splat(pa);
          c00 = madd(x, v128.load(pb), c00);
          c01 = madd(x, v128.load(pb, 16), c01);
          pa += aStep;
          pb += lb;
        }
        storeRow(c + <usize>i * lc + (<usize>j << 2), f32x4.mul(c00, va), f32x4.mul(c01, va), bk, b0, b1, bias0 != 0 || relu0, relu0);
      }
    }
    // The last N mod 8 columns, one at a time.
    for (; j < N; j++) {
      for (let i = 0; i < M; i++) {
        let s: f32 = 0;
        let pa = ab + <usize>i * aRow;
        let pb = bb + (<usize>j << 2);
        for (let k = 0; k < kc; k++) {
          s += load<f32>(pa) * load<f32>(pb);
          pa += aStep;
          pb += lb;
        }
        const cp = c + <usize>i * lc + (<usize>j << 2);
        let v = alpha * s;
        if (bk != 0) v += bk * load<f32>(cp);
        if (bias0) v += load<f32>(bias0 + (<usize>j << 2));
        store<f32>(cp, relu0 ? max(v, 0) : v);
      }
    }
  }
}

// K == 0: the product is empty, C = beta·C then the epilogue.
function scaleC(M: i32, N: i32, beta: f32, c: usize, ldc: i32, bias: usize, relu: bool): void {
  for (let i = 0; i < M; i++) {
    const row = c + ((<usize>i * ldc) << 2);
    for (let j = 0; j < N; j++) {
      const p = row + (<usize>j << 2);
      let v: f32 = beta != 0 ? beta * load<f32>(p) : 0;
      if (bias) v += load<f32>(bias + (<usize>j << 2));
      store<f32>(p, relu ? max(v, 0) : v);
    }
  }
}

/**
 * Whether sgemm packs its operands for these arguments (false: a direct kernel, which reads them in place).
 * The JS side asks before packing a shared operand for a threaded call (gemmPrepack).
 */
export function gemmPacks(transA: bool, transB: bool, M: i32, K: i32): bool {
  // A·Bᵀ (linear's forward, x·Wᵀ) is always faster as dot products: no packing, same loads per FMA (1t,
  // GFLOP/s packed vs dot: 1×784×256 5.0 vs 18.5, 32×784×256 36.1 vs 39.9, 512×784×256 38.7 vs 42.5,
  // 1024×1024×1024 31.8 vs 37.7).
  if (transB && !transA) return false;
  if (transA && !transB) return !(K <= TN_MAX_K && M <= TN_MAX_M);
  return transA || M > NN_MAX_M;
}

// M rounded up to whole MR-row panels (which 0: A) or N to NR-column panels (which 1: B).
function paddedLen(which: i32, len: i32): i32 {
  const unit = which == 0 ? MR : NR;
  return (len + unit - 1) / unit * unit;
}

/** Bytes gemmPrepack writes for the whole of op(A) (which 0, len M) or op(B) (which 1, len N) over K. */
export function gemmPackedBytes(which: i32, len: i32, K: i32): i32 {
  return paddedLen(which, len) * K * 4;
}

/**
 * Packs rows [i0, i1) of A (op(A) is M×K; `which` 0) or columns [i0, i1) of B (op(B) is K×N; `which` 1)
 * into the layout sgemm reads as preA / preB: for each KC block of K, the MR-row (NR-column) panels of the
 * whole operand, so a block starts at pc·Mpad (pc·Npad) floats and panel i at i·kc within it. `len` is M or
 * N; i0 is a multiple of MR (NR). alpha scales A as packA does (1 for B).
 */
export function gemmPrepack(which: i32, trans: bool, src: usize, ld: i32, len: i32, K: i32, i0: i32, i1: i32, alpha: f32, dst: usize): void {
  const padded = <usize>paddedLen(which, len);
  for (let pc = 0; pc < K; pc += KC) {
    const kc = min(KC, K - pc);
    const out = dst + ((<usize>pc * padded + <usize>i0 * kc) << 2);
    if (which == 0) {
      packA(trans, trans ? src + ((<usize>pc * ld + i0) << 2) : src + ((<usize>i0 * ld + pc) << 2), ld, i1 - i0, kc, alpha, out);
    } else {
      packB(trans, trans ? src + ((<usize>i0 * ld + pc) << 2) : src + ((<usize>pc * ld + i0) << 2), ld, kc, i1 - i0, out);
    }
  }
}

/**
 * C = alpha·op(A)·op(B) + beta·C (+bias, ReLU); see the legend at the top of this file. preA / preB (0: none)
 * are the whole of op(A) / op(B) packed by gemmPrepack (alpha already in preA); on the packed path they
 * replace packing here, elsewhere they are unused.
 */
export function sgemm(
  transA: bool,
  transB: bool,
  M: i32,
  N: i32,
  K: i32,
  alpha: f32,
  a: usize,
  lda: i32,
  b: usize,
  ldb: i32,
  beta: f32,
  c: usize,
  ldc: i32,
  bias: usize,
  relu: bool,
  scratch: usize,
  preA: usize,
  preB: usize,
): void {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    scaleC(M, N, beta, c, ldc, bias, relu);
    return;
  }
  if (!gemmPacks(transA, transB, M, K)) {
    if (transB) sgemmNT(M, N, K, alpha, a, lda, b, ldb, beta, c, ldc, bias, relu);
    else if (transA) sgemmStrided(M, N, K, alpha, a, 4, <usize>lda << 2, b, ldb, beta, c, ldc, bias, relu);
    else sgemmStrided(M, N, K, alpha, a, <usize>lda << 2, 4, b, ldb, beta, c, ldc, bias, relu);
    return;
  }
  const tile = scratch + ((<usize>(MC * KC + KC * NC)) << 2);
  const ldcu = <usize>ldc;
  const mPad = <usize>((M + MR - 1) / MR) * MR;
  const nPad = <usize>((N + NR - 1) / NR) * NR;
  for (let jc = 0; jc < N; jc += NC) {
    const nc = min(NC, N - jc);
    for (let pc = 0; pc < K; pc += KC) {
      const kc = min(KC, K - pc);
      const bk: f32 = pc == 0 ? beta : 1;
      const epi = pc + kc >= K;
      let pB = scratch + ((<usize>MC * KC) << 2);
      if (preB) {
        pB = preB + ((<usize>pc * nPad + <usize>jc * kc) << 2);
      } else {
        const bsrc = transB ? b + ((<usize>jc * ldb + pc) << 2) : b + ((<usize>pc * ldb + jc) << 2);
        packB(transB, bsrc, ldb, kc, nc, pB);
      }
      for (let ic = 0; ic < M; ic += MC) {
        const mc = min(MC, M - ic);
        let pA = scratch;
        if (preA) {
          pA = preA + ((<usize>pc * mPad + <usize>ic * kc) << 2);
        } else {
          const asrc = transA ? a + ((<usize>pc * lda + ic) << 2) : a + ((<usize>ic * lda + pc) << 2);
          packA(transA, asrc, lda, mc, kc, alpha, pA);
        }
        for (let jr = 0; jr < nc; jr += NR) {
          const nr = min(NR, nc - jr);
          const pb = pB + ((<usize>jr * kc) << 2);
          const bj = bias ? bias + (<usize>(jc + jr) << 2) : 0;
          for (let ir = 0; ir < mc; ir += MR) {
            const mr = min(MR, mc - ir);
            const pa = pA + ((<usize>ir * kc) << 2);
            const cp = c + ((<usize>(ic + ir) * ldcu + jc + jr) << 2);
            // Two call sites on purpose: Binaryen inlines a function with one caller, and inlined into this
            // loop nest the micro-kernel spills again (see micro).
            if (mr == MR && nr == NR) {
              micro(kc, pa, pb, tile);
              storeTile(tile, cp, ldcu, bk, bj, epi, relu);
            } else {
              micro(kc, pa, pb, tile);
              mergeEdge(tile, mr, nr, cp, ldcu, bk, bj, epi, relu);
            }
          }
        }
      }
    }
  }
}
