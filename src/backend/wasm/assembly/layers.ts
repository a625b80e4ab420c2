// BatchNorm and im2col/col2im on raw pointers, one thread's share of channels or planes (the JS side splits).
//
//   x is (N, C, S) row-major for BatchNorm (S = L or H·W); channels [c0, c1) are this call's share. Sums
//   run in float64 (two lanes, so the order differs from the reference's one-lane loop by float64 rounding
//   only); every output element is computed in float64 from the same float64 operands as the reference.
//   im2col/col2im work on planes p = n·C + c in [p0, p1): plane p of x is H·W floats at x + p·H·W, its
//   columns kh·kw·Ho·Wo floats at cols + p·kh·kw·Ho·Wo (the reference's layout).

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
// dy at p, zeroed where the fused ReLU's output at q (0: no ReLU) is not positive (NaN included).
// @ts-expect-error: decorator
@inline function gated(p: usize, q: usize): v128 {
  const d = v128.load(p);
  return q ? v128.and(d, f32x4.gt(v128.load(q), f32x4.splat(0))) : d;
}
// @ts-expect-error: decorator
@inline function gated1(p: usize, q: usize): f32 {
  const d = load<f32>(p);
  return q && !(load<f32>(q) > 0) ? 0 : d;
}

// bnForward for channels c..c+15 of (N, C): one 64-byte line of each row per step, so every line fetched
// is used whole (the 4-channel walk fetched each line 4 times per pass: 512×256 batches are L2-sized);
// per channel the same float64 lane and row order as bnForward4.
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
  for (let i = 0, p = x + base; i < N; i++, p += ld) {
    const v0 = v128.load(p, 0);
    const v1 = v128.load(p, 16);
    const v2 = v128.load(p, 32);
    const v3 = v128.load(p, 48);
    s0 = f64x2.add(s0, lo2(v0));
    s1 = f64x2.add(s1, hi2(v0));
    s2 = f64x2.add(s2, lo2(v1));
    s3 = f64x2.add(s3, hi2(v1));
    s4 = f64x2.add(s4, lo2(v2));
    s5 = f64x2.add(s5, hi2(v2));
    s6 = f64x2.add(s6, lo2(v3));
    s7 = f64x2.add(s7, hi2(v3));
  }
  const vn = f64x2.splat(<f64>N);
  const m0 = f64x2.div(s0, vn);
  const m1 = f64x2.div(s1, vn);
  const m2 = f64x2.div(s2, vn);
  const m3 = f64x2.div(s3, vn);
  const m4 = f64x2.div(s4, vn);
  const m5 = f64x2.div(s5, vn);
  const m6 = f64x2.div(s6, vn);
  const m7 = f64x2.div(s7, vn);
  let q0 = f64x2.splat(0);
  let q1 = f64x2.splat(0);
  let q2 = f64x2.splat(0);
  let q3 = f64x2.splat(0);
  let q4 = f64x2.splat(0);
  let q5 = f64x2.splat(0);
  let q6 = f64x2.splat(0);
  let q7 = f64x2.splat(0);
  for (let i = 0, p = x + base; i < N; i++, p += ld) {
    const v0 = v128.load(p, 0);
    const v1 = v128.load(p, 16);
    const v2 = v128.load(p, 32);
    const v3 = v128.load(p, 48);
    const d0 = f64x2.sub(lo2(v0), m0);
    q0 = f64x2.add(q0, f64x2.mul(d0, d0));
    const d1 = f64x2.sub(hi2(v0), m1);
    q1 = f64x2.add(q1, f64x2.mul(d1, d1));
    const d2 = f64x2.sub(lo2(v1), m2);
    q2 = f64x2.add(q2, f64x2.mul(d2, d2));
    const d3 = f64x2.sub(hi2(v1), m3);
    q3 = f64x2.add(q3, f64x2.mul(d3, d3));
    const d4 = f64x2.sub(lo2(v2), m4);
    q4 = f64x2.add(q4, f64x2.mul(d4, d4));
    const d5 = f64x2.sub(hi2(v2), m5);
    q5 = f64x2.add(q5, f64x2.mul(d5, d5));
    const d6 = f64x2.sub(lo2(v3), m6);
    q6 = f64x2.add(q6, f64x2.mul(d6, d6));
    const d7 = f64x2.sub(hi2(v3), m7);
    q7 = f64x2.add(q7, f64x2.mul(d7, d7));
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
  v128.store(mean + base, pack4(m0, m1), 0);
  v128.store(invstd + base, pack4(is0, is1), 0);
  v128.store(mean + base, pack4(m2, m3), 16);
  v128.store(invstd + base, pack4(is2, is3), 16);
  v128.store(mean + base, pack4(m4, m5), 32);
  v128.store(invstd + base, pack4(is4, is5), 32);
  v128.store(mean + base, pack4(m6, m7), 48);
  v128.store(invstd + base, pack4(is6, is7), 48);
  const wv0 = param4(w ? w + base + 0 : 0, 1);
  const bv0 = param4(b ? b + base + 0 : 0, 0);
  const wv1 = param4(w ? w + base + 16 : 0, 1);
  const bv1 = param4(b ? b + base + 16 : 0, 0);
  const wv2 = param4(w ? w + base + 32 : 0, 1);
  const bv2 = param4(b ? b + base + 32 : 0, 0);
  const wv3 = param4(w ? w + base + 48 : 0, 1);
  const bv3 = param4(b ? b + base + 48 : 0, 0);
  const w0 = lo2(wv0);
  const b0 = lo2(bv0);
  const w1 = hi2(wv0);
  const b1 = hi2(bv0);
  const w2 = lo2(wv1);
  const b2 = lo2(bv1);
  const w3 = hi2(wv1);
  const b3 = hi2(bv1);
  const w4 = lo2(wv2);
  const b4 = lo2(bv2);
  const w5 = hi2(wv2);
  const b5 = hi2(bv2);
  const w6 = lo2(wv3);
  const b6 = lo2(bv3);
  const w7 = hi2(wv3);
  const b7 = hi2(bv3);
  for (let i = 0, o = base; i < N; i++, o += ld) {
    const v0 = v128.load(x + o, 0);
    const v1 = v128.load(x + o, 16);
    const v2 = v128.load(x + o, 32);
    const v3 = v128.load(x + o, 48);
    const y0 = f64x2.add(f64x2.mul(f64x2.mul(f64x2.sub(lo2(v0), m0), is0), w0), b0);
    const y1 = f64x2.add(f64x2.mul(f64x2.mul(f64x2.sub(hi2(v0), m1), is1), w1), b1);
    const y2 = f64x2.add(f64x2.mul(f64x2.mul(f64x2.sub(lo2(v1), m2), is2), w2), b2);
    const y3 = f64x2.add(f64x2.mul(f64x2.mul(f64x2.sub(hi2(v1), m3), is3), w3), b3);
    const y4 = f64x2.add(f64x2.mul(f64x2.mul(f64x2.sub(lo2(v2), m4), is4), w4), b4);
    const y5 = f64x2.add(f64x2.mul(f64x2.mul(f64x2.sub(hi2(v2), m5), is5), w5), b5);
    const y6 = f64x2.add(f64x2.mul(f64x2.mul(f64x2.sub(lo2(v3), m6), is6), w6), b6);
    const y7 = f64x2.add(f64x2.mul(f64x2.mul(f64x2.sub(hi2(v3), m7), is7), w7), b7);
    v128.store(out + o, act(pack4(y0, y1), relu), 0);
    v128.store(out + o, act(pack4(y2, y3), relu), 16);
    v128.store(out + o, act(pack4(y4, y5), relu), 32);
    v128.store(out + o, act(pack4(y6, y7), relu), 48);
  }
}

// bnForward for channels c..c+3 of (N, C): each channel's sums in one float64 lane, rows in order (the
// reference's order), the outputs from the same float64 mean and invstd.
function bnForward4(x: usize, N: i32, C: i32, w: usize, b: usize, eps: f64, out: usize, mean: usize, invstd: usize, c: i32, relu: bool): void {
  const ld = <usize>C << 2;
  const base = <usize>c << 2;
  let s0 = f64x2.splat(0);
  let s1 = f64x2.splat(0);
  for (let i = 0, p = x + base; i < N; i++, p += ld) {
    const v = v128.load(p);
    s0 = f64x2.add(s0, lo2(v));
    s1 = f64x2.add(s1, hi2(v));
  }
  const vn = f64x2.splat(<f64>N);
  const m0 = f64x2.div(s0, vn);
  const m1 = f64x2.div(s1, vn);
  let q0 = f64x2.splat(0);
  let q1 = f64x2.splat(0);
  for (let i = 0, p = x + base; i < N; i++, p += ld) {
    const v = v128.load(p);
    const d0 = f64x2.sub(lo2(v), m0);
    const d1 = f64x2.sub(hi2(v), m1);
    q0 = f64x2.add(q0, f64x2.mul(d0, d0));
    q1 = f64x2.add(q1, f64x2.mul(d1, d1));
  }
  const one = f64x2.splat(1);
  const veps = f64x2.splat(eps);
  const is0 = f64x2.div(one, f64x2.sqrt(f64x2.add(f64x2.div(q0, vn), veps)));
  const is1 = f64x2.div(one, f64x2.sqrt(f64x2.add(f64x2.div(q1, vn), veps)));
  v128.store(mean + base, pack4(m0, m1));
  v128.store(invstd + base, pack4(is0, is1));
  const wv = param4(w ? w + base : 0, 1);
  const bv = param4(b ? b + base : 0, 0);
  const w0 = lo2(wv);
  const w1 = hi2(wv);
  const b0 = lo2(bv);
  const b1 = hi2(bv);
  for (let i = 0, o = base; i < N; i++, o += ld) {
    const v = v128.load(x + o);
    const y0 = f64x2.add(f64x2.mul(f64x2.mul(f64x2.sub(lo2(v), m0), is0), w0), b0);
    const y1 = f64x2.add(f64x2.mul(f64x2.mul(f64x2.sub(hi2(v), m1), is1), w1), b1);
    v128.store(out + o, act(pack4(y0, y1), relu));
  }
}

// bnBackward for channels c..c+3 of (N, C), as bnForward4.
function bnBackward4(
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
): void {
  const ld = <usize>C << 2;
  const base = <usize>c << 2;
  const mv = v128.load(mean + base);
  const iv = v128.load(invstd + base);
  const m0 = lo2(mv);
  const m1 = hi2(mv);
  const is0 = lo2(iv);
  const is1 = hi2(iv);
  let a0 = f64x2.splat(0);
  let a1 = f64x2.splat(0);
  let e0 = f64x2.splat(0);
  let e1 = f64x2.splat(0);
  for (let i = 0, o = base; i < N; i++, o += ld) {
    const v = v128.load(x + o);
    const d = gated(dy + o, mask && mask + o);
    const g0 = lo2(d);
    const g1 = hi2(d);
    a0 = f64x2.add(a0, g0);
    a1 = f64x2.add(a1, g1);
    e0 = f64x2.add(e0, f64x2.mul(g0, f64x2.mul(f64x2.sub(lo2(v), m0), is0)));
    e1 = f64x2.add(e1, f64x2.mul(g1, f64x2.mul(f64x2.sub(hi2(v), m1), is1)));
  }
  v128.store(db + base, pack4(a0, a1));
  v128.store(dw + base, pack4(e0, e1));
  const wv = param4(w ? w + base : 0, 1);
  const k0 = f64x2.mul(lo2(wv), is0);
  const k1 = f64x2.mul(hi2(wv), is1);
  const vn = f64x2.splat(<f64>N);
  const mdy0 = f64x2.div(a0, vn);
  const mdy1 = f64x2.div(a1, vn);
  const mdyx0 = f64x2.div(e0, vn);
  const mdyx1 = f64x2.div(e1, vn);
  for (let i = 0, o = base; i < N; i++, o += ld) {
    const v = v128.load(x + o);
    const d = gated(dy + o, mask && mask + o);
    const y0 = f64x2.mul(k0, f64x2.sub(f64x2.sub(lo2(d), mdy0), f64x2.mul(f64x2.mul(f64x2.sub(lo2(v), m0), is0), mdyx0)));
    const y1 = f64x2.mul(k1, f64x2.sub(f64x2.sub(hi2(d), mdy1), f64x2.mul(f64x2.mul(f64x2.sub(hi2(v), m1), is1), mdyx1)));
    v128.store(dx + o, pack4(y0, y1));
  }
}

// bnBackward for channels c..c+15 of (N, C), as bnForward16.
function bnBackward16(
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
): void {
  const ld = <usize>C << 2;
  const base = <usize>c << 2;
  const mv0 = v128.load(mean + base, 0);
  const iv0 = v128.load(invstd + base, 0);
  const mv1 = v128.load(mean + base, 16);
  const iv1 = v128.load(invstd + base, 16);
  const mv2 = v128.load(mean + base, 32);
  const iv2 = v128.load(invstd + base, 32);
  const mv3 = v128.load(mean + base, 48);
  const iv3 = v128.load(invstd + base, 48);
  const m0 = lo2(mv0);
  const is0 = lo2(iv0);
  const m1 = hi2(mv0);
  const is1 = hi2(iv0);
  const m2 = lo2(mv1);
  const is2 = lo2(iv1);
  const m3 = hi2(mv1);
  const is3 = hi2(iv1);
  const m4 = lo2(mv2);
  const is4 = lo2(iv2);
  const m5 = hi2(mv2);
  const is5 = hi2(iv2);
  const m6 = lo2(mv3);
  const is6 = lo2(iv3);
  const m7 = hi2(mv3);
  const is7 = hi2(iv3);
  let a0 = f64x2.splat(0);
  let a1 = f64x2.splat(0);
  let a2 = f64x2.splat(0);
  let a3 = f64x2.splat(0);
  let a4 = f64x2.splat(0);
  let a5 = f64x2.splat(0);
  let a6 = f64x2.splat(0);
  let a7 = f64x2.splat(0);
  let e0 = f64x2.splat(0);
  let e1 = f64x2.splat(0);
  let e2 = f64x2.splat(0);
  let e3 = f64x2.splat(0);
  let e4 = f64x2.splat(0);
  let e5 = f64x2.splat(0);
  let e6 = f64x2.splat(0);
  let e7 = f64x2.splat(0);
  for (let i = 0, o = base; i < N; i++, o += ld) {
    const v0 = v128.load(x + o, 0);
    const v1 = v128.load(x + o, 16);
    const v2 = v128.load(x + o, 32);
    const v3 = v128.load(x + o, 48);
    const d0 = gated(dy + o + 0, mask && mask + o + 0);
    const d1 = gated(dy + o + 16, mask && mask + o + 16);
    const d2 = gated(dy + o + 32, mask && mask + o + 32);
    const d3 = gated(dy + o + 48, mask && mask + o + 48);
    const g0 = lo2(d0);
    a0 = f64x2.add(a0, g0);
    e0 = f64x2.add(e0, f64x2.mul(g0, f64x2.mul(f64x2.sub(lo2(v0), m0), is0)));
    const g1 = hi2(d0);
    a1 = f64x2.add(a1, g1);
    e1 = f64x2.add(e1, f64x2.mul(g1, f64x2.mul(f64x2.sub(hi2(v0), m1), is1)));
    const g2 = lo2(d1);
    a2 = f64x2.add(a2, g2);
    e2 = f64x2.add(e2, f64x2.mul(g2, f64x2.mul(f64x2.sub(lo2(v1), m2), is2)));
    const g3 = hi2(d1);
    a3 = f64x2.add(a3, g3);
    e3 = f64x2.add(e3, f64x2.mul(g3, f64x2.mul(f64x2.sub(hi2(v1), m3), is3)));
    const g4 = lo2(d2);
    a4 = f64x2.add(a4, g4);
    e4 = f64x2.add(e4, f64x2.mul(g4, f64x2.mul(f64x2.sub(lo2(v2), m4), is4)));
    const g5 = hi2(d2);
    a5 = f64x2.add(a5, g5);
    e5 = f64x2.add(e5, f64x2.mul(g5, f64x2.mul(f64x2.sub(hi2(v2), m5), is5)));
    const g6 = lo2(d3);
    a6 = f64x2.add(a6, g6);
    e6 = f64x2.add(e6, f64x2.mul(g6, f64x2.mul(f64x2.sub(lo2(v3), m6), is6)));
    const g7 = hi2(d3);
    a7 = f64x2.add(a7, g7);
    e7 = f64x2.add(e7, f64x2.mul(g7, f64x2.mul(f64x2.sub(hi2(v3), m7), is7)));
  }
  v128.store(db + base, pack4(a0, a1), 0);
  v128.store(dw + base, pack4(e0, e1), 0);
  v128.store(db + base, pack4(a2, a3), 16);
  v128.store(dw + base, pack4(e2, e3), 16);
  v128.store(db + base, pack4(a4, a5), 32);
  v128.store(dw + base, pack4(e4, e5), 32);
  v128.store(db + base, pack4(a6, a7), 48);
  v128.store(dw + base, pack4(e6, e7), 48);
  const wv0 = param4(w ? w + base + 0 : 0, 1);
  const wv1 = param4(w ? w + base + 16 : 0, 1);
  const wv2 = param4(w ? w + base + 32 : 0, 1);
  const wv3 = param4(w ? w + base + 48 : 0, 1);
  const k0 = f64x2.mul(lo2(wv0), is0);
  const k1 = f64x2.mul(hi2(wv0), is1);
  const k2 = f64x2.mul(lo2(wv1), is2);
  const k3 = f64x2.mul(hi2(wv1), is3);
  const k4 = f64x2.mul(lo2(wv2), is4);
  const k5 = f64x2.mul(hi2(wv2), is5);
  const k6 = f64x2.mul(lo2(wv3), is6);
  const k7 = f64x2.mul(hi2(wv3), is7);
  const vn = f64x2.splat(<f64>N);
  const mdy0 = f64x2.div(a0, vn);
  const mdyx0 = f64x2.div(e0, vn);
  const mdy1 = f64x2.div(a1, vn);
  const mdyx1 = f64x2.div(e1, vn);
  const mdy2 = f64x2.div(a2, vn);
  const mdyx2 = f64x2.div(e2, vn);
  const mdy3 = f64x2.div(a3, vn);
  const mdyx3 = f64x2.div(e3, vn);
  const mdy4 = f64x2.div(a4, vn);
  const mdyx4 = f64x2.div(e4, vn);
  const mdy5 = f64x2.div(a5, vn);
  const mdyx5 = f64x2.div(e5, vn);
  const mdy6 = f64x2.div(a6, vn);
  const mdyx6 = f64x2.div(e6, vn);
  const mdy7 = f64x2.div(a7, vn);
  const mdyx7 = f64x2.div(e7, vn);
  for (let i = 0, o = base; i < N; i++, o += ld) {
    const v0 = v128.load(x + o, 0);
    const v1 = v128.load(x + o, 16);
    const v2 = v128.load(x + o, 32);
    const v3 = v128.load(x + o, 48);
    const d0 = gated(dy + o + 0, mask && mask + o + 0);
    const d1 = gated(dy + o + 16, mask && mask + o + 16);
    const d2 = gated(dy + o + 32, mask && mask + o + 32);
    const d3 = gated(dy + o + 48, mask && mask + o + 48);
    const y0 = f64x2.mul(k0, f64x2.sub(f64x2.sub(lo2(d0), mdy0), f64x2.mul(f64x2.mul(f64x2.sub(lo2(v0), m0), is0), mdyx0)));
    const y1 = f64x2.mul(k1, f64x2.sub(f64x2.sub(hi2(d0), mdy1), f64x2.mul(f64x2.mul(f64x2.sub(hi2(v0), m1), is1), mdyx1)));
    const y2 = f64x2.mul(k2, f64x2.sub(f64x2.sub(lo2(d1), mdy2), f64x2.mul(f64x2.mul(f64x2.sub(lo2(v1), m2), is2), mdyx2)));
    const y3 = f64x2.mul(k3, f64x2.sub(f64x2.sub(hi2(d1), mdy3), f64x2.mul(f64x2.mul(f64x2.sub(hi2(v1), m3), is3), mdyx3)));
    const y4 = f64x2.mul(k4, f64x2.sub(f64x2.sub(lo2(d2), mdy4), f64x2.mul(f64x2.mul(f64x2.sub(lo2(v2), m4), is4), mdyx4)));
    const y5 = f64x2.mul(k5, f64x2.sub(f64x2.sub(hi2(d2), mdy5), f64x2.mul(f64x2.mul(f64x2.sub(hi2(v2), m5), is5), mdyx5)));
    const y6 = f64x2.mul(k6, f64x2.sub(f64x2.sub(lo2(d3), mdy6), f64x2.mul(f64x2.mul(f64x2.sub(lo2(v3), m6), is6), mdyx6)));
    const y7 = f64x2.mul(k7, f64x2.sub(f64x2.sub(hi2(d3), mdy7), f64x2.mul(f64x2.mul(f64x2.sub(hi2(v3), m7), is7), mdyx7)));
    v128.store(dx + o, pack4(y0, y1), 0);
    v128.store(dx + o, pack4(y2, y3), 16);
    v128.store(dx + o, pack4(y4, y5), 32);
    v128.store(dx + o, pack4(y6, y7), 48);
  }
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
    for (; c0 + 16 <= c1; c0 += 16) bnBackward16(x, dy, N, C, w, mean, invstd, dx, dw, db, c0, mask);
    for (; c0 + 4 <= c1; c0 += 4) bnBackward4(x, dy, N, C, w, mean, invstd, dx, dw, db, c0, mask);
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

/** cols[p, (i·kw + j), oy·Wo + ox] = x[p, oy·stride + i - pad, ox·stride + j - pad] (0 outside). */
export function im2col(
  x: usize,
  p0: i32,
  p1: i32,
  H: i32,
  W: i32,
  kh: i32,
  kw: i32,
  stride: i32,
  pad: i32,
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
        // ox range with xx = ox·stride + j - pad inside [0, W).
        let lo = 0;
        while (lo < Wo && lo * stride + j - pad < 0) lo++;
        let hi = Wo;
        while (hi > lo && (hi - 1) * stride + j - pad >= W) hi--;
        for (let oy = 0; oy < Ho; oy++) {
          const y = oy * stride + i - pad;
          const row = o + ((<usize>(oy * Wo)) << 2);
          if (y < 0 || y >= H) {
            memory.fill(row, 0, <usize>Wo << 2);
            continue;
          }
          if (lo > 0) memory.fill(row, 0, <usize>lo << 2);
          const src = xb + ((<usize>(y * W + j - pad)) << 2);
          if (stride == 1) {
            if (hi > lo) memory.copy(row + (<usize>lo << 2), src + (<usize>lo << 2), <usize>(hi - lo) << 2);
          } else {
            for (let ox = lo; ox < hi; ox++) {
              store<f32>(row + (<usize>ox << 2), load<f32>(src + (<usize>(ox * stride) << 2)));
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
  stride: i32,
  pad: i32,
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
        let lo = 0;
        while (lo < Wo && lo * stride + j - pad < 0) lo++;
        let hi = Wo;
        while (hi > lo && (hi - 1) * stride + j - pad >= W) hi--;
        for (let oy = 0; oy < Ho; oy++) {
          const y = oy * stride + i - pad;
          if (y < 0 || y >= H) continue;
          const row = o + ((<usize>(oy * Wo)) << 2);
          const dst = xb + ((<usize>(y * W + j - pad)) << 2);
          if (stride == 1) {
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
              const a = dst + (<usize>(ox * stride) << 2);
              store<f32>(a, load<f32>(a) + load<f32>(row + (<usize>ox << 2)));
            }
          }
        }
      }
    }
  }
}
