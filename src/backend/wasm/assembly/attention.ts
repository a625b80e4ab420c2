// Tiled online-softmax attention (FlashAttention-2 style, REFERENCE.md §3.1), one work item per call: the JS
// side (tasks.ts) cuts a call into items and spreads them over threads.
//
//   q (B,L,E)  k (B,S,E)  v (B,S,Ev)  out, dOut (B,L,Ev)  lse (B,L)  all row-major f32, pointers are byte
//   addresses. A query tile is bq rows i0..i0+rows, a key tile bk keys j0..j0+cols.
//   mask cell (b,i,j) is element maskOff[b] + i·strideL + j·strideS of `mask` (maskOff: i32 per batch entry);
//   maskKind 0 none, 1 f32 added to the scaled score, 2 u8 where 0 masks the cell out.
//
// Every product of a tile pair is one small GEMM on the 4×8 register tile `mk`, with the scores kept
// transposed, Sᵀ (keys × queries): K_j's rows are read in place as the A operand, the query tile is copied
// once per tile as Qᵀ (E × bq, scale folded in) for the B operand, and the softmax statistics of four queries
// are one vector, so the online max/sum and the exps run down the columns without horizontal reductions.
// Scratch (attnScratchBytes) depends on the tile sizes and E, Ev only, never on L or S.

import { expV, madd, transpose4 } from './simd';

// @ts-expect-error: decorator
@inline function rup(x: i32, m: i32): i32 {
  return ((x + m - 1) / m) * m;
}

// @ts-expect-error: decorator
@inline function al(bytes: usize): usize {
  return (bytes + 63) & ~(<usize>63);
}

/**
 * C (4×8, row stride ldc bytes) = [C +] Σ_{k<kc} A[x][k]·B[k][0..8], with A[x][k] at a + x·aRow + k·aStep
 * and B[k] the 8 floats at b + k·bStep. 8 accumulators + 2 B vectors + 1 A splat = 11 live v128.
 */
function mk(kc: i32, a: usize, aRow: usize, aStep: usize, b: usize, bStep: usize, c: usize, ldc: usize, add: bool): void {
  let c00 = f32x4.splat(0), c01 = f32x4.splat(0), c10 = f32x4.splat(0), c11 = f32x4.splat(0);
  let c20 = f32x4.splat(0), c21 = f32x4.splat(0), c30 = f32x4.splat(0), c31 = f32x4.splat(0);
  if (add) {
    c00 = v128.load(c);
    c01 = v128.load(c, 16);
    c10 = v128.load(c + ldc);
    c11 = v128.load(c + ldc, 16);
    c20 = v128.load(c + 2 * ldc);
    c21 = v128.load(c + 2 * ldc, 16);
    c30 = v128.load(c + 3 * ldc);
    c31 = v128.load(c + 3 * ldc, 16);
  }
  const r2 = aRow << 1;
  const r3 = r2 + aRow;
  for (let k = 0; k < kc; k++) {
    const b0 = v128.load(b);
    const b1 = v128.load(b, 16);
    let x = v128.load32_splat(a);
    c00 = madd(x, b0, c00);
    c01 = madd(x, b1, c01);
    x = v128.load32_splat(a + aRow);
    c10 = madd(x, b0, c10);
    c11 = madd(x, b1, c11);
    x = v128.load32_splat(a + r2);
    c20 = madd(x, b0, c20);
    c21 = madd(x, b1, c21);
    x = v128.load32_splat(a + r3);
    c30 = madd(x, b0, c30);
    c31 = madd(x, b1, c31);
    a += aStep;
    b += bStep;
  }
  v128.store(c, c00);
  v128.store(c, c01, 16);
  v128.store(c + ldc, c10);
  v128.store(c + ldc, c11, 16);
  v128.store(c + 2 * ldc, c20);
  v128.store(c + 2 * ldc, c21, 16);
  v128.store(c + 3 * ldc, c30);
  v128.store(c + 3 * ldc, c31, 16);
}

/**
 * C (M×N) [+]= A (M×kc) · B (kc×N) by 4×8 tiles; M a multiple of 4, N of 8. A[m][k] at a + m·aRow + k·aStep,
 * B row k at b + k·bStep (N floats, contiguous), C row m at c + m·ldc. All strides in bytes.
 */
function gemm(M: i32, N: i32, kc: i32, a: usize, aRow: usize, aStep: usize, b: usize, bStep: usize, c: usize, ldc: usize, add: bool): void {
  for (let i = 0; i < M; i += 4) {
    const ai = a + <usize>i * aRow;
    const ci = c + <usize>i * ldc;
    for (let j = 0; j < N; j += 8) mk(kc, ai, aRow, aStep, b + (<usize>j << 2), bStep, ci + (<usize>j << 2), ldc, add);
  }
}

/**
 * `n` rows of `w` floats (row stride ldSrc floats) into dst (`rowsTo` rows of `wTo` floats), zero-padded on
 * both sides. Returns dst.
 */
function padCopy(src: usize, ldSrc: i32, n: i32, w: i32, dst: usize, rowsTo: i32, wTo: i32): usize {
  for (let r = 0; r < rowsTo; r++) {
    const d = dst + ((<usize>r * wTo) << 2);
    let e = 0;
    if (r < n) {
      const s = src + ((<usize>r * ldSrc) << 2);
      for (; e + 4 <= w; e += 4) v128.store(d + (<usize>e << 2), v128.load(s + (<usize>e << 2)));
      for (; e < w; e++) store<f32>(d + (<usize>e << 2), load<f32>(s + (<usize>e << 2)));
    }
    for (; e < wTo; e++) store<f32>(d + (<usize>e << 2), 0);
  }
  return dst;
}

/** dst (w × ldT floats) = alpha·srcᵀ for `rows` rows of w floats (row stride ldSrc); columns rows..ldT zero. */
function transposeTile(src: usize, ldSrc: i32, rows: i32, w: i32, alpha: f32, dst: usize, ldT: i32): void {
  for (let e = 0; e < w; e++) {
    const d = dst + ((<usize>e * ldT) << 2);
    for (let r = rows; r < ldT; r++) store<f32>(d + (<usize>r << 2), 0);
  }
  // 4×4 blocks transposed in registers, then the ragged edges one by one.
  const va = f32x4.splat(alpha);
  const ld = <usize>ldSrc << 2;
  const r4 = rows & ~3;
  const w4 = w & ~3;
  for (let r = 0; r < r4; r += 4) {
    const s = src + <usize>r * ld;
    for (let e = 0; e < w4; e += 4) {
      const p = s + (<usize>e << 2);
      transpose4(
        f32x4.mul(v128.load(p), va),
        f32x4.mul(v128.load(p + ld), va),
        f32x4.mul(v128.load(p + 2 * ld), va),
        f32x4.mul(v128.load(p + 3 * ld), va),
        dst + ((<usize>e * ldT + r) << 2),
        <usize>ldT << 2,
      );
    }
  }
  for (let r = 0; r < rows; r++) {
    const s = src + <usize>r * ld;
    for (let e = r < r4 ? w4 : 0; e < w; e++) store<f32>(dst + ((<usize>e * ldT + r) << 2), alpha * load<f32>(s + (<usize>e << 2)));
  }
}

/**
 * Mask and causal cut on the score tile Sᵀ (cols × rows used, row stride ldT floats): additive masks are added,
 * masked-out cells become -inf. Query i0 + r, key j0 + c.
 */
function applyMask(
  st: usize, ldT: i32, rows: i32, cols: i32, i0: i32, j0: i32, causal: bool,
  mask: usize, maskKind: i32, mOff: i32, strideL: i32, strideS: i32,
): void {
  const ninf = -Infinity as f32;
  if (maskKind != 0) {
    for (let c = 0; c < cols; c++) {
      const row = st + ((<usize>c * ldT) << 2);
      const mc = mOff + (j0 + c) * strideS;
      for (let r = 0; r < rows; r++) {
        const idx = <usize>(mc + (i0 + r) * strideL);
        const p = row + (<usize>r << 2);
        if (maskKind == 1) store<f32>(p, load<f32>(p) + load<f32>(mask + (idx << 2)));
        else if (load<u8>(mask + idx) == 0) store<f32>(p, ninf);
      }
    }
  }
  // Causal: key j0 + c is hidden from queries i0 + r < j0 + c, i.e. r < j0 + c - i0.
  if (causal && j0 + cols - 1 > i0) {
    for (let c = 0; c < cols; c++) {
      const row = st + ((<usize>c * ldT) << 2);
      const hide = min(rows, j0 + c - i0);
      for (let r = 0; r < hide; r++) store<f32>(row + (<usize>r << 2), ninf);
    }
  }
}

/** Bytes of scratch one thread needs for tiles bq × bk at head sizes E, Ev (forward and backward). */
export function attnScratchBytes(bq: i32, bk: i32, E: i32, Ev: i32): f64 {
  const bqP = <usize>rup(bq, 8);
  const bkP = <usize>rup(bk, 4);
  const EP = <usize>rup(E, 8);
  const EvP = <usize>rup(Ev, 8);
  const Eu = <usize>E;
  const Evu = <usize>Ev;
  // qt, dot, ot, D, lse | st, dpt | kp, vp | qr, dor | dk, dv | dq (bwd); the forward uses a subset.
  const f =
    al(Eu * bqP * 4) + 2 * al(Evu * bqP * 4) + 2 * al(bqP * 4) +
    2 * al(bkP * bqP * 4) +
    al(bkP * EP * 4) + al(bkP * EvP * 4) +
    al(bqP * EP * 4) + al(bqP * EvP * 4) +
    al(bkP * EP * 4) + al(bkP * EvP * 4) +
    al(bqP * EP * 4) + 3 * al(bqP * 4);
  return <f64>f;
}

/**
 * Forward of one query tile (batch entry b, queries i0..i0+bq): out rows = softmax(scale·q·kᵀ + mask)·v and
 * lse = m + log(l) (-inf and zeros for a row that sees no key).
 */
export function attnForward(
  q: usize, k: usize, v: usize, mask: usize, maskKind: i32, maskOff: usize, strideL: i32, strideS: i32,
  out: usize, lse: usize, L: i32, S: i32, E: i32, Ev: i32, scale: f32, causal: bool, bq: i32, bk: i32,
  b: i32, i0: i32, scratch: usize,
): void {
  const rows = min(bq, L - i0);
  const bqP = rup(bq, 8);
  const bkP = rup(bk, 4);
  const EP = rup(E, 8);
  const EvP = rup(Ev, 8);
  const ldT = <usize>bqP << 2;
  // Scratch: Qᵀ (E × bqP), Sᵀ (bkP × bqP), acc (bqP × EvP), m, l, corr (bqP), padded K and V tiles.
  const qt = scratch;
  const st = qt + al(<usize>E * ldT);
  const acc = st + al(<usize>bkP * ldT);
  const mv = acc + al(<usize>(bqP * EvP) << 2);
  const lv = mv + al(ldT);
  const cv = lv + al(ldT);
  const kp = cv + al(ldT);
  const vp = kp + al(<usize>(bkP * EP) << 2);
  const mOff = maskKind ? load<i32>(maskOff + (<usize>b << 2)) : 0;

  transposeTile(q + ((<usize>(b * L + i0) * E) << 2), E, rows, E, scale, qt, bqP);
  memory.fill(acc, 0, <usize>(bqP * EvP) << 2);
  for (let r = 0; r < bqP; r += 4) {
    v128.store(mv + (<usize>r << 2), f32x4.splat(-Infinity));
    v128.store(lv + (<usize>r << 2), f32x4.splat(0));
  }
  const ninf = f32x4.splat(-Infinity);
  const zero = f32x4.splat(0);
  const one = f32x4.splat(1);
  const jEnd = causal ? min(S, i0 + rows) : S;
  for (let j0 = 0; j0 < jEnd; j0 += bk) {
    const cols = min(bk, jEnd - j0);
    const cols4 = rup(cols, 4);
    let kr = k + ((<usize>(b * S + j0) * E) << 2);
    let ldk = E;
    if (cols & 3) {
      kr = padCopy(kr, E, cols, E, kp, cols4, E);
    }
    let vr = v + ((<usize>(b * S + j0) * Ev) << 2);
    let ldv = Ev;
    if (Ev & 7) {
      vr = padCopy(vr, Ev, cols, Ev, vp, cols, EvP);
      ldv = EvP;
    }
    // Sᵀ (cols4 × bqP) = K_j · (scale·Q_i)ᵀ
    gemm(cols4, bqP, E, kr, <usize>ldk << 2, 4, qt, ldT, st, ldT, false);
    if (maskKind != 0 || causal) applyMask(st, bqP, rows, cols, i0, j0, causal, mask, maskKind, mOff, strideL, strideS);
    // Online softmax down the columns, four queries per vector.
    let rescale = false;
    for (let r = 0; r < bqP; r += 4) {
      const ro = <usize>r << 2;
      const mOld = v128.load(mv + ro);
      let mx = ninf;
      for (let c = 0; c < cols; c++) mx = f32x4.max(mx, v128.load(st + <usize>c * ldT + ro));
      const mNew = f32x4.max(mOld, mx);
      // Nothing seen yet for a query: subtract 0 instead of -inf (its scores are all -inf and give 0).
      const dead = f32x4.eq(mNew, ninf);
      const mSub = v128.bitselect(zero, mNew, dead);
      let sum = zero;
      for (let c = 0; c < cols; c++) {
        const p = st + <usize>c * ldT + ro;
        const s = v128.load(p);
        const e = v128.andnot(expV(f32x4.sub(s, mSub)), f32x4.eq(s, ninf));
        v128.store(p, e);
        sum = f32x4.add(sum, e);
      }
      // exp(mOld - mNew): 1 when the max did not move; mOld = -inf (nothing yet) gives 0.
      const corr = v128.andnot(v128.bitselect(one, expV(f32x4.sub(mOld, mSub)), f32x4.eq(mOld, mNew)), f32x4.eq(mOld, ninf));
      v128.store(cv + ro, corr);
      v128.store(lv + ro, madd(corr, v128.load(lv + ro), sum));
      v128.store(mv + ro, mNew);
      if (!rescale && !i32x4.all_true(f32x4.eq(corr, one))) rescale = true;
    }
    if (rescale) {
      for (let r = 0; r < rows; r++) {
        const cr = load<f32>(cv + (<usize>r << 2));
        if (cr == 1) continue;
        const vc = f32x4.splat(cr);
        const row = acc + ((<usize>(r * EvP)) << 2);
        for (let e = 0; e < EvP; e += 4) v128.store(row + (<usize>e << 2), f32x4.mul(v128.load(row + (<usize>e << 2)), vc));
      }
    }
    // acc (bqP × EvP) += P (bqP × cols) · V_j (cols × EvP); P[r][c] = Sᵀ[c][r].
    gemm(bqP, EvP, cols, st, 4, ldT, vr, <usize>ldv << 2, acc, <usize>EvP << 2, true);
  }
  for (let r = 0; r < rows; r++) {
    const li = load<f32>(lv + (<usize>r << 2));
    const o = out + ((<usize>(b * L + i0 + r) * Ev) << 2);
    const row = acc + ((<usize>(r * EvP)) << 2);
    const inv: f32 = li > 0 ? 1 / li : 0;
    for (let e = 0; e < Ev; e++) store<f32>(o + (<usize>e << 2), load<f32>(row + (<usize>e << 2)) * inv);
    store<f32>(lse + (<usize>(b * L + i0 + r) << 2), li > 0 ? <f32>(<f64>load<f32>(mv + (<usize>r << 2)) + Math.log(<f64>li)) : -Infinity);
  }
}

/**
 * Per query tile: Qᵀ (scaled), dOᵀ, D = rowsum(dOut∘out) and the LSE (-inf in the padding columns, so their P
 * is 0). D is summed in the order and with the multiply-add of the dP = dOut·vᵀ tiles, so that where P is
 * one-hot (out = v_j exactly) dP − D is exactly 0, as in float64.
 */
function prepQueries(
  q: usize, out: usize, dout: usize, lse: usize, L: i32, E: i32, Ev: i32, scale: f32, b: i32, i0: i32,
  rows: i32, bqP: i32, qt: usize, dot: usize, ot: usize, dv: usize, lv: usize,
): void {
  const base = b * L + i0;
  const ldT = <usize>bqP << 2;
  transposeTile(q + ((<usize>base * E) << 2), E, rows, E, scale, qt, bqP);
  transposeTile(dout + ((<usize>base * Ev) << 2), Ev, rows, Ev, 1, dot, bqP);
  transposeTile(out + ((<usize>base * Ev) << 2), Ev, rows, Ev, 1, ot, bqP);
  for (let r = 0; r < bqP; r += 4) {
    const ro = <usize>r << 2;
    let d = f32x4.splat(0);
    for (let e = 0; e < Ev; e++) d = madd(v128.load(ot + <usize>e * ldT + ro), v128.load(dot + <usize>e * ldT + ro), d);
    v128.store(dv + ro, d);
  }
  for (let r = 0; r < bqP; r++) store<f32>(lv + (<usize>r << 2), r < rows ? load<f32>(lse + (<usize>(base + r) << 2)) : -Infinity);
}

/**
 * One tile pair of the backward: P = exp(Sᵀ − lse) into st and dSᵀ = P∘(dOut·vᵀ − D) into dpt (both keys ×
 * queries, first cols rows valid), dmask += dS where there is one. kr/vr: the key and value tile rows,
 * padded to a multiple of 4 rows.
 */
function pairGrad(
  kr: usize, ldk: i32, vr: usize, ldv: i32, cols: i32, rows: i32, E: i32, Ev: i32, bqP: i32, i0: i32, j0: i32,
  causal: bool, mask: usize, maskKind: i32, mOff: i32, strideL: i32, strideS: i32, dmask: usize,
  qt: usize, dot: usize, dv: usize, lv: usize, st: usize, dpt: usize,
): void {
  const ldT = <usize>bqP << 2;
  const cols4 = rup(cols, 4);
  gemm(cols4, bqP, E, kr, <usize>ldk << 2, 4, qt, ldT, st, ldT, false);
  if (maskKind != 0 || causal) applyMask(st, bqP, rows, cols, i0, j0, causal, mask, maskKind, mOff, strideL, strideS);
  // dPᵀ (cols4 × bqP) = V_j · dO_iᵀ
  gemm(cols4, bqP, Ev, vr, <usize>ldv << 2, 4, dot, ldT, dpt, ldT, false);
  const ninf = f32x4.splat(-Infinity);
  const zero = f32x4.splat(0);
  for (let r = 0; r < bqP; r += 4) {
    const ro = <usize>r << 2;
    const l = v128.load(lv + ro);
    const lSub = v128.bitselect(zero, l, f32x4.eq(l, ninf));
    const dead = f32x4.eq(l, ninf);
    const d = v128.load(dv + ro);
    for (let c = 0; c < cols; c++) {
      const o = <usize>c * ldT + ro;
      const s = v128.load(st + o);
      const p = v128.andnot(expV(f32x4.sub(s, lSub)), v128.or(f32x4.eq(s, ninf), dead));
      v128.store(st + o, p);
      v128.store(dpt + o, f32x4.mul(p, f32x4.sub(v128.load(dpt + o), d)));
    }
  }
  if (dmask) {
    for (let c = 0; c < cols; c++) {
      const mc = mOff + (j0 + c) * strideS;
      const row = dpt + <usize>c * ldT;
      for (let r = 0; r < rows; r++) {
        const p = dmask + (<usize>(mc + (i0 + r) * strideL) << 2);
        store<f32>(p, load<f32>(p) + load<f32>(row + (<usize>r << 2)));
      }
    }
  }
}

/**
 * Backward of one key tile (batch entry b, keys j0..j0+bk) over every query tile that sees it: writes dk and
 * dv rows (either may be 0: not wanted). With dq (not 0) also accumulates this tile's share of dq, zeroing
 * batch entry b's dq at j0 = 0: a caller that runs every key tile of b in order on one thread gets the whole
 * backward in one pass.
 */
export function attnBackwardKV(
  q: usize, k: usize, v: usize, out: usize, dout: usize, lse: usize, dq: usize, dk: usize, dv: usize,
  dmask: usize, mask: usize, maskKind: i32, maskOff: usize, strideL: i32, strideS: i32,
  L: i32, S: i32, E: i32, Ev: i32, scale: f32, causal: bool, bq: i32, bk: i32, b: i32, j0: i32, scratch: usize,
): void {
  const cols = min(bk, S - j0);
  const cols4 = rup(cols, 4);
  const bqP = rup(bq, 8);
  const bkP = rup(bk, 4);
  const EP = rup(E, 8);
  const EvP = rup(Ev, 8);
  const ldT = <usize>bqP << 2;
  const qt = scratch;
  const dot = qt + al(<usize>E * ldT);
  const ot = dot + al(<usize>Ev * ldT);
  const Dv = ot + al(<usize>Ev * ldT);
  const lv = Dv + al(ldT);
  const st = lv + al(ldT);
  const dpt = st + al(<usize>bkP * ldT);
  const kp = dpt + al(<usize>bkP * ldT);
  const vp = kp + al(<usize>(bkP * EP) << 2);
  const qr = vp + al(<usize>(bkP * EvP) << 2);
  const dor = qr + al(<usize>(bqP * EP) << 2);
  const dkA = dor + al(<usize>(bqP * EvP) << 2);
  const dvA = dkA + al(<usize>(bkP * EP) << 2);
  const dqt = dvA + al(<usize>(bkP * EvP) << 2);
  const mOff = maskKind ? load<i32>(maskOff + (<usize>b << 2)) : 0;

  if (dq && j0 == 0) memory.fill(dq + ((<usize>b * L * E) << 2), 0, (<usize>L * E) << 2);
  // K_j rows serve as A (rows padded to 4) and, for dq, as B (columns padded to 8).
  let kr = k + ((<usize>(b * S + j0) * E) << 2);
  let ldk = E;
  if ((cols & 3) || (dq && (E & 7))) {
    kr = padCopy(kr, E, cols, E, kp, cols4, EP);
    ldk = EP;
  }
  let vr = v + ((<usize>(b * S + j0) * Ev) << 2);
  let ldv = Ev;
  if (cols & 3) {
    vr = padCopy(vr, Ev, cols, Ev, vp, cols4, Ev);
  }
  memory.fill(dkA, 0, <usize>(cols4 * EP) << 2);
  memory.fill(dvA, 0, <usize>(cols4 * EvP) << 2);
  // Causal: query tiles that end before j0 do not see this key tile.
  const iStart = causal ? (j0 / bq) * bq : 0;
  for (let i0 = iStart; i0 < L; i0 += bq) {
    const rows = min(bq, L - i0);
    prepQueries(q, out, dout, lse, L, E, Ev, scale, b, i0, rows, bqP, qt, dot, ot, Dv, lv);
    pairGrad(kr, ldk, vr, ldv, cols, rows, E, Ev, bqP, i0, j0, causal, mask, maskKind, mOff, strideL, strideS, dmask, qt, dot, Dv, lv, st, dpt);
    const base = b * L + i0;
    if (dv) {
      // dV_j (cols4 × EvP) += Pᵀ (cols4 × rows) · dO_i (rows × EvP)
      let dr = dout + ((<usize>base * Ev) << 2);
      let ldd = Ev;
      if (Ev & 7) {
        dr = padCopy(dr, Ev, rows, Ev, dor, rows, EvP);
        ldd = EvP;
      }
      gemm(cols4, EvP, rows, st, ldT, 4, dr, <usize>ldd << 2, dvA, <usize>EvP << 2, true);
    }
    if (dk) {
      // dK_j (cols4 × EP) += dSᵀ (cols4 × rows) · Q_i (rows × EP)
      let qrow = q + ((<usize>base * E) << 2);
      let ldq = E;
      if (E & 7) {
        qrow = padCopy(qrow, E, rows, E, qr, rows, EP);
        ldq = EP;
      }
      gemm(cols4, EP, rows, dpt, ldT, 4, qrow, <usize>ldq << 2, dkA, <usize>EP << 2, true);
    }
    if (dq) {
      // dQ_i (bqP × EP) = dS (bqP × cols) · K_j (cols × EP), then dq rows += scale·dQ_i
      gemm(bqP, EP, cols, dpt, 4, ldT, kr, <usize>ldk << 2, dqt, <usize>EP << 2, false);
      const vs = f32x4.splat(scale);
      for (let r = 0; r < rows; r++) {
        const d = dq + ((<usize>(base + r) * E) << 2);
        const s = dqt + ((<usize>(r * EP)) << 2);
        let e = 0;
        for (; e + 4 <= E; e += 4) v128.store(d + (<usize>e << 2), madd(vs, v128.load(s + (<usize>e << 2)), v128.load(d + (<usize>e << 2))));
        for (; e < E; e++) store<f32>(d + (<usize>e << 2), load<f32>(d + (<usize>e << 2)) + scale * load<f32>(s + (<usize>e << 2)));
      }
    }
  }
  for (let c = 0; c < cols; c++) {
    const row = <usize>(b * S + j0 + c);
    if (dk) {
      const d = dk + ((row * E) << 2);
      const s = dkA + ((<usize>(c * EP)) << 2);
      for (let e = 0; e < E; e++) store<f32>(d + (<usize>e << 2), scale * load<f32>(s + (<usize>e << 2)));
    }
    if (dv) {
      const d = dv + ((row * Ev) << 2);
      const s = dvA + ((<usize>(c * EvP)) << 2);
      for (let e = 0; e < Ev; e++) store<f32>(d + (<usize>e << 2), load<f32>(s + (<usize>e << 2)));
    }
  }
}

/** Backward of one query tile (batch entry b, queries i0..i0+bq) over every key tile it sees: writes dq rows. */
export function attnBackwardQ(
  q: usize, k: usize, v: usize, out: usize, dout: usize, lse: usize, dq: usize,
  mask: usize, maskKind: i32, maskOff: usize, strideL: i32, strideS: i32,
  L: i32, S: i32, E: i32, Ev: i32, scale: f32, causal: bool, bq: i32, bk: i32, b: i32, i0: i32, scratch: usize,
): void {
  const rows = min(bq, L - i0);
  const bqP = rup(bq, 8);
  const bkP = rup(bk, 4);
  const EP = rup(E, 8);
  const EvP = rup(Ev, 8);
  const ldT = <usize>bqP << 2;
  const qt = scratch;
  const dot = qt + al(<usize>E * ldT);
  const ot = dot + al(<usize>Ev * ldT);
  const Dv = ot + al(<usize>Ev * ldT);
  const lv = Dv + al(ldT);
  const st = lv + al(ldT);
  const dpt = st + al(<usize>bkP * ldT);
  const kp = dpt + al(<usize>bkP * ldT);
  const vp = kp + al(<usize>(bkP * EP) << 2);
  const qr = vp + al(<usize>(bkP * EvP) << 2);
  const dor = qr + al(<usize>(bqP * EP) << 2);
  const dkA = dor + al(<usize>(bqP * EvP) << 2);
  const dvA = dkA + al(<usize>(bkP * EP) << 2);
  const dqA = dvA + al(<usize>(bkP * EvP) << 2);
  const mOff = maskKind ? load<i32>(maskOff + (<usize>b << 2)) : 0;

  prepQueries(q, out, dout, lse, L, E, Ev, scale, b, i0, rows, bqP, qt, dot, ot, Dv, lv);
  memory.fill(dqA, 0, <usize>(bqP * EP) << 2);
  const jEnd = causal ? min(S, i0 + rows) : S;
  for (let j0 = 0; j0 < jEnd; j0 += bk) {
    const cols = min(bk, jEnd - j0);
    const cols4 = rup(cols, 4);
    let kr = k + ((<usize>(b * S + j0) * E) << 2);
    let ldk = E;
    if ((cols & 3) || (E & 7)) {
      kr = padCopy(kr, E, cols, E, kp, cols4, EP);
      ldk = EP;
    }
    let vr = v + ((<usize>(b * S + j0) * Ev) << 2);
    if (cols & 3) vr = padCopy(vr, Ev, cols, Ev, vp, cols4, Ev);
    pairGrad(kr, ldk, vr, Ev, cols, rows, E, Ev, bqP, i0, j0, causal, mask, maskKind, mOff, strideL, strideS, 0, qt, dot, Dv, lv, st, dpt);
    gemm(bqP, EP, cols, dpt, 4, ldT, kr, <usize>ldk << 2, dqA, <usize>EP << 2, true);
  }
  for (let r = 0; r < rows; r++) {
    const d = dq + ((<usize>(b * L + i0 + r) * E) << 2);
    const s = dqA + ((<usize>(r * EP)) << 2);
    for (let e = 0; e < E; e++) store<f32>(d + (<usize>e << 2), scale * load<f32>(s + (<usize>e << 2)));
  }
}
