// BatchNorm and im2col/col2im on raw pointers, one thread's share of channels or planes (the JS side splits).
//
//   x is (N, C, S) row-major for BatchNorm (S = L or H·W); channels [c0, c1) are this call's share. Sums
//   run in float64 (two lanes, so the order differs from the reference's one-lane loop by float64 rounding
//   only), except BatchNorm1d's (S = 1): float32 blocks added in float64 (BN_BLOCK), and its outputs in
//   float32, 4 channels or more at a time (see bnForward16); the last C mod 4 channels and BatchNorm2d (S > 1), one channel at a time, in float64 from
//   the same float64 operands as the reference.
//   im2col/col2im work on planes p = n·C + c in [p0, p1): plane p of x is H·W floats at x + p·H·W, its
//   columns kh·kw·Ho·Wo floats at cols + p·kh·kw·Ho·Wo (the reference's layout).

import { madd } from './simd';

// BatchNorm1d's sums run over blocks of BN_BLOCK rows in float32 registers (4 lanes, one add or fused
// multiply-add per vector) and add the block sums in float64: the same ~1e-7 relative accuracy as summing every
// row in float64 (a block sum of 16 rounds at most 16 times), with a quarter of the float64 work, which was the
// bottleneck (512×256 forward 130 → 100 µs, backward 237 → 208).
const BN_BLOCK = 16;

// @ts-expect-error: decorator
@inline function hsum(v: v128): f64 {
  return f64x2.extract_lane(v, 0) + f64x2.extract_lane(v, 1);
}

// Σ x over channel c of (N, C, S), in float64.
function chanSum(x: usize, N: i32, C: i32, S: i32, c: i32): f64 {
  let acc = f64x2.splat(0);
  let tail: f64 = 0;
  for (let i = 0; i < N; i++) {
    const p = x + ((<usize>(i * C + c) * <usize>S) << 2);
    let j = 0;
    for (; j + 4 <= S; j += 4) {
      const v = v128.load(p + (<usize>j << 2));
      acc = f64x2.add(acc, f64x2.promote_low_f32x4(v));
      acc = f64x2.add(acc, f64x2.promote_low_f32x4(i32x4.shuffle(v, v, 2, 3, 0, 1)));
    }
    for (; j < S; j++) tail += <f64>load<f32>(p + (<usize>j << 2));
  }
  return hsum(acc) + tail;
}

// Channels c..c+3 of a row as two float64 pairs.
// @ts-expect-error: decorator
@inline function lo2(v: v128): v128 {
  return f64x2.promote_low_f32x4(v);
}
// @ts-expect-error: decorator
@inline function hi2(v: v128): v128 {
  return f64x2.promote_low_f32x4(i32x4.shuffle(v, v, 2, 3, 0, 1));
}
// @ts-expect-error: decorator
@inline function pack4(lo: v128, hi: v128): v128 {
  return i32x4.shuffle(f32x4.demote_f64x2_zero(lo), f32x4.demote_f64x2_zero(hi), 0, 1, 4, 5);
}
// 4 float32 at p (0: the default d) as two float64 pairs.
// @ts-expect-error: decorator
@inline function param4(p: usize, d: f32): v128 {
  return p ? v128.load(p) : f32x4.splat(d);
}

// The fused ReLU of a BatchNorm output (max, as the reference: NaN stays NaN, -0 becomes 0).
// @ts-expect-error: decorator
@inline function act(v: v128, relu: bool): v128 {
  return relu ? f32x4.max(v, f32x4.splat(0)) : v;
}
// dy at p, zeroed where the fused ReLU's output at q (0: no ReLU) is <= 0 (a NaN passes dy, as PyTorch's).
// @ts-expect-error: decorator
@inline function gated(p: usize, q: usize): v128 {
  const d = v128.load(p);
  return q ? v128.andnot(d, f32x4.le(v128.load(q), f32x4.splat(0))) : d;
}
// @ts-expect-error: decorator
@inline function gated1(p: usize, q: usize): f32 {
  const d = load<f32>(p);
  return q && load<f32>(q) <= 0 ? 0 : d;
}

// bnForward for channels c..c+15 of (N, C): one 64-byte line of each row per step, so every line fetched
// is used whole (the 4-channel walk fetched each line 4 times per pass: 512×256 batches are L2-sized).
// The sums run per BN_BLOCK rows; the deviations x - mean are float32 (exact when x is within 2× of the mean,
// else rounded once), their squares float32 summed per block, so the variance keeps ~1e-7 relative. The
// output is float32 arithmetic, (x - mean)·(invstd·w) + b with invstd·w rounded once from float64: a quarter
// of the float64 work per element, within a float32 rounding of each term (PyTorch's CPU kernel computes
// x·(invstd·w) + (b - mean·invstd·w) in float32, which cancels where this subtracts first).
function bnForward16(x: usize, N: i32, C: i32, w: usize, b: usize, eps: f64, out: usize, mean: usize, invstd: usize, c: i32, relu: bool): void {
  const ld = <usize>C << 2;
  const base = <usize>c << 2;
  let s0 = f64x2.splat(0);
  let s1 = f64x2.splat(0);
  let s2 = f64x2.splat(0);
  let s3 = f64x2.splat(0);
  let s4 = f64x2.splat(0);
  let s5 = f64x2.splat(0);
  let s6 = f64x2.splat(0);
  let s7 = f64x2.splat(0);
  for (let i0 = 0; i0 < N; i0 += BN_BLOCK) {
    const i1 = min(i0 + BN_BLOCK, N);
    let t0 = f32x4.splat(0);
    let t1 = f32x4.splat(0);
    let t2 = f32x4.splat(0);
    let t3 = f32x4.splat(0);
    for (let i = i0, p = x + base + <usize>i0 * ld; i < i1; i++, p += ld) {
      t0 = f32x4.add(t0, v128.load(p, 0));
      t1 = f32x4.add(t1, v128.load(p, 16));
      t2 = f32x4.add(t2, v128.load(p, 32));
      t3 = f32x4.add(t3, v128.load(p, 48));
    }
    s0 = f64x2.add(s0, lo2(t0));
    s1 = f64x2.add(s1, hi2(t0));
    s2 = f64x2.add(s2, lo2(t1));
    s3 = f64x2.add(s3, hi2(t1));
    s4 = f64x2.add(s4, lo2(t2));
    s5 = f64x2.add(s5, hi2(t2));
    s6 = f64x2.add(s6, lo2(t3));
    s7 = f64x2.add(s7, hi2(t3));
  }
  const vn = f64x2.splat(<f64>N);
  const m0 = pack4(f64x2.div(s0, vn), f64x2.div(s1, vn));
  const m1 = pack4(f64x2.div(s2, vn), f64x2.div(s3, vn));
  const m2 = pack4(f64x2.div(s4, vn), f64x2.div(s5, vn));
  const m3 = pack4(f64x2.div(s6, vn), f64x2.div(s7, vn));
  let q0 = f64x2.splat(0);
  let q1 = f64x2.splat(0);
  let q2 = f64x2.splat(0);
  let q3 = f64x2.splat(0);
  let q4 = f64x2.splat(0);
  let q5 = f64x2.splat(0);
  let q6 = f64x2.splat(0);
  let q7 = f64x2.splat(0);
  for (let i0 = 0; i0 < N; i0 += BN_BLOCK) {
    const i1 = min(i0 + BN_BLOCK, N);
    let t0 = f32x4.splat(0);
    let t1 = f32x4.splat(0);
    let t2 = f32x4.splat(0);
    let t3 = f32x4.splat(0);
    for (let i = i0, p = x + base + <usize>i0 * ld; i < i1; i++, p += ld) {
      const d0 = f32x4.sub(v128.load(p, 0), m0);
      const d1 = f32x4.sub(v128.load(p, 16), m1);
      const d2 = f32x4.sub(v128.load(p, 32), m2);
      const d3 = f32x4.sub(v128.load(p, 48), m3);
      t0 = madd(d0, d0, t0);
      t1 = madd(d1, d1, t1);
      t2 = madd(d2, d2, t2);
      t3 = madd(d3, d3, t3);
    }
    q0 = f64x2.add(q0, lo2(t0));
    q1 = f64x2.add(q1, hi2(t0));
    q2 = f64x2.add(q2, lo2(t1));
    q3 = f64x2.add(q3, hi2(t1));
    q4 = f64x2.add(q4, lo2(t2));
    q5 = f64x2.add(q5, hi2(t2));
    q6 = f64x2.add(q6, lo2(t3));
    q7 = f64x2.add(q7, hi2(t3));
  }
  const one = f64x2.splat(1);
  const veps = f64x2.splat(eps);
  const is0 = f64x2.div(one, f64x2.sqrt(f64x2.add(f64x2.div(q0, vn), veps)));
  const is1 = f64x2.div(one, f64x2.sqrt(f64x2.add(f64x2.div(q1, vn), veps)));
  const is2 = f64x2.div(one, f64x2.sqrt(f64x2.add(f64x2.div(q2, vn), veps)));
  const is3 = f64x2.div(one, f64x2.sqrt(f64x2.add(f64x2.div(q3, vn), veps)));
  const is4 = f64x2.div(one, f64x2.sqrt(f64x2.add(f64x2.div(q4, vn), veps)));
  const is5 = f64x2.div(one, f64x2.sqrt(f64x2.add(f64x2.div(q5, vn), veps)));
  const is6 = f64x2.div(one, f64x2.sqrt(f64x2.add(f64x2.div(q6, vn), veps)));
  const is7 = f64x2.div(one, f64x2.sqrt(f64x2.add(f64x2.div(q7, vn), veps)));
  v128.store(mean + base, m0, 0);
  v128.store(mean + base, m1, 16);
  v128.store(mean + base, m2, 32);
  v128.store(mean + base, m3, 48);
  v128.store(invstd + base, pack4(is0, is1), 0);
  v128.store(invstd + base, pack4(is2, is3), 16);
  v128.store(invstd + base, pack4(is4, is5), 32);
  v128.store(invstd + base, pack4(is6, is7), 48);
  const wv0 = param4(w ? w + base + 0 : 0, 1);
  const wv1 = param4(w ? w + base + 16 : 0, 1);
  const wv2 = param4(w ? w + base + 32 : 0, 1);
  const wv3 = param4(w ? w + base + 48 : 0, 1);
  const k0 = pack4(f64x2.mul(is0, lo2(wv0)), f64x2.mul(is1, hi2(wv0)));
  const k1 = pack4(f64x2.mul(is2, lo2(wv1)), f64x2.mul(is3, hi2(wv1)));
  const k2 = pack4(f64x2.mul(is4, lo2(wv2)), f64x2.mul(is5, hi2(wv2)));
  const k3 = pack4(f64x2.mul(is6, lo2(wv3)), f64x2.mul(is7, hi2(wv3)));
  const b0 = param4(b ? b + base + 0 : 0, 0);
  const b1 = param4(b ? b + base + 16 : 0, 0);
  const b2 = param4(b ? b + base + 32 : 0, 0);
  const b3 = param4(b ? b + base + 48 : 0, 0);
  for (let i = 0, o = base; i < N; i++, o += ld) {
    const y0 = madd(f32x4.sub(v128.load(x + o, 0), m0), k0, b0);
    const y1 = madd(f32x4.sub(v128.load(x + o, 16), m1), k1, b1);
    const y2 = madd(f32x4.sub(v128.load(x + o, 32), m2), k2, b2);
    const y3 = madd(f32x4.sub(v128.load(x + o, 48), m3), k3, b3);
    v128.store(out + o, act(y0, relu), 0);
    v128.store(out + o, act(y1, relu), 16);
    v128.store(out + o, act(y2, relu), 32);
    v128.store(out + o, act(y3, relu), 48);
  }
}

// bnForward for channels c..c+3 of (N, C) (what is left after the 16-channel steps), with bnForward16's
// arithmetic, so a channel's result does not depend on where it falls.
function bnForward4(x: usize, N: i32, C: i32, w: usize, b: usize, eps: f64, out: usize, mean: usize, invstd: usize, c: i32, relu: bool): void {
  const ld = <usize>C << 2;
  const base = <usize>c << 2;
  let s0 = f64x2.splat(0);
  let s1 = f64x2.splat(0);
  for (let i0 = 0; i0 < N; i0 += BN_BLOCK) {
    const i1 = min(i0 + BN_BLOCK, N);
    let t = f32x4.splat(0);
    for (let i = i0, p = x + base + <usize>i0 * ld; i < i1; i++, p += ld) t = f32x4.add(t, v128.load(p));
    s0 = f64x2.add(s0, lo2(t));
    s1 = f64x2.add(s1, hi2(t));
  }
  const vn = f64x2.splat(<f64>N);
  const m = pack4(f64x2.div(s0, vn), f64x2.div(s1, vn));
  let q0 = f64x2.splat(0);
  let q1 = f64x2.splat(0);
  for (let i0 = 0; i0 < N; i0 += BN_BLOCK) {
    const i1 = min(i0 + BN_BLOCK, N);
    let t = f32x4.splat(0);
    for (let i = i0, p = x + base + <usize>i0 * ld; i < i1; i++, p += ld) {
      const d = f32x4.sub(v128.load(p), m);
      t = madd(d, d, t);
    }
    q0 = f64x2.add(q0, lo2(t));
    q1 = f64x2.add(q1, hi2(t));
  }
  const one = f64x2.splat(1);
  const veps = f64x2.splat(eps);
  const is0 = f64x2.div(one, f64x2.sqrt(f64x2.add(f64x2.div(q0, vn), veps)));
  const is1 = f64x2.div(one, f64x2.sqrt(f64x2.add(f64x2.div(q1, vn), veps)));
  v128.store(mean + base, m);
  v128.store(invstd + base, pack4(is0, is1));
  const wv = param4(w ? w + base : 0, 1);
  const k = pack4(f64x2.mul(is0, lo2(wv)), f64x2.mul(is1, hi2(wv)));
  const bv = param4(b ? b + base : 0, 0);
  for (let i = 0, o = base; i < N; i++, o += ld) {
    v128.store(out + o, act(madd(f32x4.sub(v128.load(x + o), m), k, bv), relu));
  }
}

// bnBackward for channels c..c+7 of (N, C), or c..c+3 without `eight` (what is left after the 8-channel
// steps; inlined with a constant flag, so each is its own straight-line loop): Σ dy and Σ dy·(x - mean) per
// BN_BLOCK rows over float32 products (dw = invstd·the second), then dx = dy·k + (x - mean)·q + r in float32 with
// k = w·invstd, q = -k·invstd·mean(dy·x̂) and r = -k·mean(dy) rounded once from float64: the reference's
// w·invstd·(dy - mean(dy) - x̂·mean(dy·x̂)) regrouped. Eight channels, not sixteen as forward: sixteen
// channels' 16 float64 accumulators and 16 float32 constants spilled from V8's 16 vector registers (no
// faster than the float64 kernel); the next call reads the other half of each line from L2.
// @ts-expect-error: decorator
@inline function bnBackwardLines(
  x: usize,
  dy: usize,
  N: i32,
  C: i32,
  w: usize,
  mean: usize,
  invstd: usize,
  dx: usize,
  dw: usize,
  db: usize,
  c: i32,
  mask: usize,
  eight: bool,
): void {
  const ld = <usize>C << 2;
  const base = <usize>c << 2;
  const m0 = v128.load(mean + base, 0);
  const m1 = eight ? v128.load(mean + base, 16) : m0;
  let a0 = f64x2.splat(0);
  let a1 = f64x2.splat(0);
  let a2 = f64x2.splat(0);
  let a3 = f64x2.splat(0);
  let e0 = f64x2.splat(0);
  let e1 = f64x2.splat(0);
  let e2 = f64x2.splat(0);
  let e3 = f64x2.splat(0);
  for (let i0 = 0; i0 < N; i0 += BN_BLOCK) {
    const i1 = min(i0 + BN_BLOCK, N);
    let ta = f32x4.splat(0);
    let tb = f32x4.splat(0);
    let te = f32x4.splat(0);
    let tf = f32x4.splat(0);
    for (let i = i0, o = base + <usize>i0 * ld; i < i1; i++, o += ld) {
      const d0 = gated(dy + o, mask && mask + o);
      ta = f32x4.add(ta, d0);
      te = madd(d0, f32x4.sub(v128.load(x + o, 0), m0), te);
      if (eight) {
        const d1 = gated(dy + o + 16, mask && mask + o + 16);
        tb = f32x4.add(tb, d1);
        tf = madd(d1, f32x4.sub(v128.load(x + o, 16), m1), tf);
      }
    }
    a0 = f64x2.add(a0, lo2(ta));
    a1 = f64x2.add(a1, hi2(ta));
    e0 = f64x2.add(e0, lo2(te));
    e1 = f64x2.add(e1, hi2(te));
    if (eight) {
      a2 = f64x2.add(a2, lo2(tb));
      a3 = f64x2.add(a3, hi2(tb));
      e2 = f64x2.add(e2, lo2(tf));
      e3 = f64x2.add(e3, hi2(tf));
    }
  }
  const iv0 = v128.load(invstd + base, 0);
  const iv1 = eight ? v128.load(invstd + base, 16) : iv0;
  const is0 = lo2(iv0);
  const is1 = hi2(iv0);
  const is2 = lo2(iv1);
  const is3 = hi2(iv1);
  // Σ dy·x̂ = invstd·Σ dy·(x - mean)
  e0 = f64x2.mul(e0, is0);
  e1 = f64x2.mul(e1, is1);
  e2 = f64x2.mul(e2, is2);
  e3 = f64x2.mul(e3, is3);
  v128.store(db + base, pack4(a0, a1), 0);
  v128.store(dw + base, pack4(e0, e1), 0);
  if (eight) {
    v128.store(db + base, pack4(a2, a3), 16);
    v128.store(dw + base, pack4(e2, e3), 16);
  }
  const wv0 = param4(w ? w + base : 0, 1);
  const wv1 = eight ? param4(w ? w + base + 16 : 0, 1) : wv0;
  const vn = f64x2.splat(<f64>N);
  const k0 = f64x2.mul(lo2(wv0), is0);
  const k1 = f64x2.mul(hi2(wv0), is1);
  const k2 = f64x2.mul(lo2(wv1), is2);
  const k3 = f64x2.mul(hi2(wv1), is3);
  const kf0 = pack4(k0, k1);
  const kf1 = pack4(k2, k3);
  const qf0 = pack4(bnQ(k0, is0, e0, vn), bnQ(k1, is1, e1, vn));
  const qf1 = pack4(bnQ(k2, is2, e2, vn), bnQ(k3, is3, e3, vn));
  const rf0 = pack4(bnR(k0, a0, vn), bnR(k1, a1, vn));
  const rf1 = pack4(bnR(k2, a2, vn), bnR(k3, a3, vn));
  for (let i = 0, o = base; i < N; i++, o += ld) {
    const d0 = gated(dy + o, mask && mask + o);
    v128.store(dx + o, madd(d0, kf0, madd(f32x4.sub(v128.load(x + o, 0), m0), qf0, rf0)), 0);
    if (eight) {
      const d1 = gated(dy + o + 16, mask && mask + o + 16);
      v128.store(dx + o, madd(d1, kf1, madd(f32x4.sub(v128.load(x + o, 16), m1), qf1, rf1)), 16);
    }
  }
}

// dx coefficients of bnBackwardLines for two channels (float64 pairs):
// q = -k·invstd·Σ(dy·x̂)/N, r = -k·Σ(dy)/N.
// @ts-expect-error: decorator
@inline function bnQ(k: v128, is: v128, sdyx: v128, n: v128): v128 {
  return f64x2.neg(f64x2.mul(f64x2.mul(k, is), f64x2.div(sdyx, n)));
}
// @ts-expect-error: decorator
@inline function bnR(k: v128, sdy: v128, n: v128): v128 {
  return f64x2.neg(f64x2.mul(k, f64x2.div(sdy, n)));
}

/**
 * Per-channel mean and invstd = 1/sqrt(var + eps) (biased, two passes), out = (x - mean)·invstd·w + b, then
 * max(out, 0) with `relu` (BatchNorm and the ReLU after it in one pass).
 */
export function bnForward(
  x: usize,
  N: i32,
  C: i32,
  S: i32,
  w: usize,
  b: usize,
  eps: f64,
  out: usize,
  mean: usize,
  invstd: usize,
  c0: i32,
  c1: i32,
  relu: bool,
): void {
  const n = <f64>N * <f64>S;
  // BatchNorm1d (S = 1): channels are adjacent in a row, so 4 at a time (one v128 per row) instead of a
  // column walk that fetches each cache line 16 times per pass.
  if (S == 1) {
    for (; c0 + 16 <= c1; c0 += 16) bnForward16(x, N, C, w, b, eps, out, mean, invstd, c0, relu);
    for (; c0 + 4 <= c1; c0 += 4) bnForward4(x, N, C, w, b, eps, out, mean, invstd, c0, relu);
  }
  for (let c = c0; c < c1; c++) {
    const m = chanSum(x, N, C, S, c) / n;
    const vm = f64x2.splat(m);
    let acc = f64x2.splat(0);
    let tail: f64 = 0;
    for (let i = 0; i < N; i++) {
      const p = x + ((<usize>(i * C + c) * <usize>S) << 2);
      let j = 0;
      for (; j + 4 <= S; j += 4) {
        const v = v128.load(p + (<usize>j << 2));
        const d0 = f64x2.sub(f64x2.promote_low_f32x4(v), vm);
        const d1 = f64x2.sub(f64x2.promote_low_f32x4(i32x4.shuffle(v, v, 2, 3, 0, 1)), vm);
        acc = f64x2.add(acc, f64x2.mul(d0, d0));
        acc = f64x2.add(acc, f64x2.mul(d1, d1));
      }
      for (; j < S; j++) {
        const d = <f64>load<f32>(p + (<usize>j << 2)) - m;
        tail += d * d;
      }
    }
    const is = 1 / Math.sqrt((hsum(acc) + tail) / n + eps);
    store<f32>(mean + (<usize>c << 2), <f32>m);
    store<f32>(invstd + (<usize>c << 2), <f32>is);
    const wc: f64 = w ? <f64>load<f32>(w + (<usize>c << 2)) : 1;
    const bc: f64 = b ? <f64>load<f32>(b + (<usize>c << 2)) : 0;
    const vis = f64x2.splat(is);
    const vw = f64x2.splat(wc);
    const vb = f64x2.splat(bc);
    for (let i = 0; i < N; i++) {
      const off = (<usize>(i * C + c) * <usize>S) << 2;
      const p = x + off;
      const q = out + off;
      let j = 0;
      for (; j + 4 <= S; j += 4) {
        const o = <usize>j << 2;
        const v = v128.load(p + o);
        const y0 = f64x2.add(f64x2.mul(f64x2.mul(f64x2.sub(f64x2.promote_low_f32x4(v), vm), vis), vw), vb);
        const hi = f64x2.promote_low_f32x4(i32x4.shuffle(v, v, 2, 3, 0, 1));
        const y1 = f64x2.add(f64x2.mul(f64x2.mul(f64x2.sub(hi, vm), vis), vw), vb);
        v128.store(q + o, act(pack4(y0, y1), relu));
      }
      for (; j < S; j++) {
        const o = <usize>j << 2;
        const y = <f32>((<f64>load<f32>(p + o) - m) * is * wc + bc);
        store<f32>(q + o, relu && !(y > 0) && y == y ? 0 : y);
      }
    }
  }
}

/**
 * dx = w·invstd·(dy - mean(dy) - x̂·mean(dy·x̂)), dw = Σ dy·x̂, db = Σ dy (x̂ = (x - mean)·invstd). With `mask` (the
 * fused ReLU's output; 0 for none) dy counts only where the mask is positive.
 */
export function bnBackward(
  x: usize,
  dy: usize,
  N: i32,
  C: i32,
  S: i32,
  w: usize,
  mean: usize,
  invstd: usize,
  dx: usize,
  dw: usize,
  db: usize,
  c0: i32,
  c1: i32,
  mask: usize,
): void {
  const n = <f64>N * <f64>S;
  if (S == 1) {
    for (; c0 + 8 <= c1; c0 += 8) bnBackwardLines(x, dy, N, C, w, mean, invstd, dx, dw, db, c0, mask, true);
    for (; c0 + 4 <= c1; c0 += 4) bnBackwardLines(x, dy, N, C, w, mean, invstd, dx, dw, db, c0, mask, false);
  }
  for (let c = c0; c < c1; c++) {
    const m = <f64>load<f32>(mean + (<usize>c << 2));
    const is = <f64>load<f32>(invstd + (<usize>c << 2));
    const vm = f64x2.splat(m);
    const vis = f64x2.splat(is);
    let a1 = f64x2.splat(0);
    let a2 = f64x2.splat(0);
    let t1: f64 = 0;
    let t2: f64 = 0;
    for (let i = 0; i < N; i++) {
      const off = (<usize>(i * C + c) * <usize>S) << 2;
      const p = x + off;
      const g = dy + off;
      const mk = mask && mask + off;
      let j = 0;
      for (; j + 4 <= S; j += 4) {
        const o = <usize>j << 2;
        const v = v128.load(p + o);
        const d = gated(g + o, mk && mk + o);
        const g0 = f64x2.promote_low_f32x4(d);
        const g1 = f64x2.promote_low_f32x4(i32x4.shuffle(d, d, 2, 3, 0, 1));
        const h0 = f64x2.mul(f64x2.sub(f64x2.promote_low_f32x4(v), vm), vis);
        const h1 = f64x2.mul(f64x2.sub(f64x2.promote_low_f32x4(i32x4.shuffle(v, v, 2, 3, 0, 1)), vm), vis);
        a1 = f64x2.add(f64x2.add(a1, g0), g1);
        a2 = f64x2.add(f64x2.add(a2, f64x2.mul(g0, h0)), f64x2.mul(g1, h1));
      }
      for (; j < S; j++) {
        const o = <usize>j << 2;
        const gv = <f64>gated1(g + o, mk && mk + o);
        t1 += gv;
        t2 += gv * ((<f64>load<f32>(p + o) - m) * is);
      }
    }
    const sdy = hsum(a1) + t1;
    const sdyx = hsum(a2) + t2;
    store<f32>(db + (<usize>c << 2), <f32>sdy);
    store<f32>(dw + (<usize>c << 2), <f32>sdyx);
    const k = (w ? <f64>load<f32>(w + (<usize>c << 2)) : 1) * is;
    const mdy = sdy / n;
    const mdyx = sdyx / n;
    const vk = f64x2.splat(k);
    const vmdy = f64x2.splat(mdy);
    const vmdyx = f64x2.splat(mdyx);
    for (let i = 0; i < N; i++) {
      const off = (<usize>(i * C + c) * <usize>S) << 2;
      const p = x + off;
      const g = dy + off;
      const mk = mask && mask + off;
      const q = dx + off;
      let j = 0;
      for (; j + 4 <= S; j += 4) {
        const o = <usize>j << 2;
        const v = v128.load(p + o);
        const d = gated(g + o, mk && mk + o);
        const x0 = f64x2.promote_low_f32x4(v);
        const x1 = f64x2.promote_low_f32x4(i32x4.shuffle(v, v, 2, 3, 0, 1));
        const g0 = f64x2.promote_low_f32x4(d);
        const g1 = f64x2.promote_low_f32x4(i32x4.shuffle(d, d, 2, 3, 0, 1));
        const y0 = f64x2.mul(
          vk,
          f64x2.sub(f64x2.sub(g0, vmdy), f64x2.mul(f64x2.mul(f64x2.sub(x0, vm), vis), vmdyx)),
        );
        const y1 = f64x2.mul(
          vk,
          f64x2.sub(f64x2.sub(g1, vmdy), f64x2.mul(f64x2.mul(f64x2.sub(x1, vm), vis), vmdyx)),
        );
        v128.store(q + o, pack4(y0, y1));
      }
      for (; j < S; j++) {
        const o = <usize>j << 2;
        store<f32>(
          q + o,
          <f32>(k * (<f64>gated1(g + o, mk && mk + o) - mdy - (<f64>load<f32>(p + o) - m) * is * mdyx)),
        );
      }
    }
  }
}

/**
 * cols[p, (i·kw + j), oy·Wo + ox] = x[p, oy·sh + i·dh - ph, ox·sw + j·dw - pw] (0 outside); see ConvGeometry.
 * [lo, hi) is the run of ox whose column falls inside [0, W), found once per tap.
 */
export function im2col(
  x: usize,
  p0: i32,
  p1: i32,
  H: i32,
  W: i32,
  kh: i32,
  kw: i32,
  sh: i32,
  sw: i32,
  ph: i32,
  pw: i32,
  dh: i32,
  dw: i32,
  Ho: i32,
  Wo: i32,
  cols: usize,
): void {
  const L = Ho * Wo;
  for (let p = p0; p < p1; p++) {
    const xb = x + ((<usize>p * <usize>(H * W)) << 2);
    let o = cols + ((<usize>p * <usize>(kh * kw * L)) << 2);
    for (let i = 0; i < kh; i++) {
      for (let j = 0; j < kw; j++, o += <usize>L << 2) {
        const x0 = j * dw - pw;
        let lo = 0;
        while (lo < Wo && lo * sw + x0 < 0) lo++;
        let hi = Wo;
        while (hi > lo && (hi - 1) * sw + x0 >= W) hi--;
        for (let oy = 0; oy < Ho; oy++) {
          const y = oy * sh + i * dh - ph;
          const row = o + ((<usize>(oy * Wo)) << 2);
          if (y < 0 || y >= H) {
            memory.fill(row, 0, <usize>Wo << 2);
            continue;
          }
          if (lo > 0) memory.fill(row, 0, <usize>lo << 2);
          const src = xb + ((<usize>(y * W + x0)) << 2);
          if (sw == 1) {
            if (hi > lo) memory.copy(row + (<usize>lo << 2), src + (<usize>lo << 2), <usize>(hi - lo) << 2);
          } else {
            for (let ox = lo; ox < hi; ox++) {
              store<f32>(row + (<usize>ox << 2), load<f32>(src + (<usize>(ox * sw) << 2)));
            }
          }
          if (hi < Wo) memory.fill(row + (<usize>hi << 2), 0, <usize>(Wo - hi) << 2);
        }
      }
    }
  }
}

/** The adjoint of im2col: dx[p] += cols[p] scattered back (dx starts as given, zeroed by the caller). */
export function col2im(
  cols: usize,
  p0: i32,
  p1: i32,
  H: i32,
  W: i32,
  kh: i32,
  kw: i32,
  sh: i32,
  sw: i32,
  ph: i32,
  pw: i32,
  dh: i32,
  dw: i32,
  Ho: i32,
  Wo: i32,
  dx: usize,
): void {
  const L = Ho * Wo;
  for (let p = p0; p < p1; p++) {
    const xb = dx + ((<usize>p * <usize>(H * W)) << 2);
    let o = cols + ((<usize>p * <usize>(kh * kw * L)) << 2);
    for (let i = 0; i < kh; i++) {
      for (let j = 0; j < kw; j++, o += <usize>L << 2) {
        const x0 = j * dw - pw;
        let lo = 0;
        while (lo < Wo && lo * sw + x0 < 0) lo++;
        let hi = Wo;
        while (hi > lo && (hi - 1) * sw + x0 >= W) hi--;
        for (let oy = 0; oy < Ho; oy++) {
          const y = oy * sh + i * dh - ph;
          if (y < 0 || y >= H) continue;
          const row = o + ((<usize>(oy * Wo)) << 2);
          const dst = xb + ((<usize>(y * W + x0)) << 2);
          if (sw == 1) {
            let ox = lo;
            for (; ox + 4 <= hi; ox += 4) {
              const a = dst + (<usize>ox << 2);
              v128.store(a, f32x4.add(v128.load(a), v128.load(row + (<usize>ox << 2))));
            }
            for (; ox < hi; ox++) {
              const a = dst + (<usize>ox << 2);
              store<f32>(a, load<f32>(a) + load<f32>(row + (<usize>ox << 2)));
            }
          } else {
            for (let ox = lo; ox < hi; ox++) {
              const a = dst + (<usize>(ox * sw) << 2);
              store<f32>(a, load<f32>(a) + load<f32>(row + (<usize>ox << 2)));
            }
          }
        }
      }
    }
  }
}
