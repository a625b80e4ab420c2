// erf, pow and scatterAdd: one thread's share of each (the JS side splits ranges, see tasks.ts).
//
//   n = elements of a flat array. scatterAdd views dst as (outer, D, inner) and src as (outer, I, inner),
//   I = index length, the scattered axis in the middle.
// Main loops go 4 lanes at a time; tails run through the same vector code so that every element of an
// array gets the same rounding wherever it sits.

import { expV, loadTail, madd, storeTail } from './simd';

// ---- erf ------------------------------------------------------------------------------------------------

// NOTE: the coefficients are float32 least-squares fits weighted towards minimax relative error (numpy, the
// targets from scipy's erf and erfcx): erf(x)/x as a polynomial in x² on [0, 1], and erfcx(x) = e^(x²)·erfc(x)
// as a polynomial in x - 1 on [1, 4] (fit errors 1e-9 and 2e-8 relative). Evaluated in float32 the result
// is within 3 ulp of the reference rounded to float32 (measured on every 61st float in [2^-30, 4.5]: 1.8e-7
// absolute, 2.4e-7 relative; 1.2e-7 absolute with relaxed SIMD's fused multiply-add); XLA's single rational
// ErfImpl32 is 7 ulp (4.2e-7). Past |x| = 3.92 erf rounds to ±1 in float32, so |x| is clamped to 4.

/** erf per lane: x·P(x²) below |x| = 1, 1 - e^(-x²)·Q(|x| - 1) above; ±Inf gives ±1, NaN stays NaN. */
// @ts-expect-error: decorator
@inline function erfV(x: v128): v128 {
  const sign = v128.and(x, i32x4.splat(0x80000000));
  // pmin returns its first operand when that is NaN, so NaN flows through both branches.
  const ax = f32x4.pmin(v128.xor(x, sign), f32x4.splat(4.0));
  const x2 = f32x4.mul(ax, ax);
  let p = f32x4.splat(7.85386146e-5);
  p = madd(p, x2, f32x4.splat(-0.000801019371));
  p = madd(p, x2, f32x4.splat(0.00518832775));
  p = madd(p, x2, f32x4.splat(-0.0268538129));
  p = madd(p, x2, f32x4.splat(0.112835854));
  p = madd(p, x2, f32x4.splat(-0.37612626));
  p = madd(p, x2, f32x4.splat(1.12837911));
  const small = f32x4.mul(ax, p);
  const t = f32x4.sub(ax, f32x4.splat(1.0));
  let q = f32x4.splat(-3.97184721e-7);
  q = madd(q, t, f32x4.splat(8.21805315e-6));
  q = madd(q, t, f32x4.splat(-7.80460541e-5));
  q = madd(q, t, f32x4.splat(0.000457120448));
  q = madd(q, t, f32x4.splat(-0.00188760343));
  q = madd(q, t, f32x4.splat(0.00601682719));
  q = madd(q, t, f32x4.splat(-0.0159439612));
  q = madd(q, t, f32x4.splat(0.0372160003));
  q = madd(q, t, f32x4.splat(-0.0791195408));
  q = madd(q, t, f32x4.splat(0.154354408));
  q = madd(q, t, f32x4.splat(-0.273210913));
  q = madd(q, t, f32x4.splat(0.427583575));
  const large = f32x4.sub(f32x4.splat(1.0), f32x4.mul(expV(f32x4.neg(x2)), q));
  // NaN compares false: it takes the large branch, which keeps it NaN.
  const r = v128.bitselect(small, large, f32x4.lt(ax, f32x4.splat(1.0)));
  return v128.or(r, sign);
}

/** out (n) = erf(x), within 3 ulp (see erfV). */
export function erf(x: usize, out: usize, n: i32): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    v128.store(out + o, erfV(v128.load(x + o)));
  }
  if (i < n) {
    const o = <usize>i << 2;
    storeTail(out + o, erfV(loadTail(x + o, n - i)), n - i);
  }
}

// ---- pow ------------------------------------------------------------------------------------------------

// pow(x, y) = e^(y·log|x|) in float64, two lanes per f64x2, then rounded to float32: the float64 error
// (about 1e-15 relative for any result float32 can hold) is far below float32's rounding, so results are
// the correctly rounded ones but for rare ties. A negative base takes the sign of an odd integer exponent
// and gives NaN for a non-integer one. Lanes with x = ±0, ±Inf, NaN or y = ±Inf, NaN are redone one by one
// with C's pow rules, which PyTorch follows (x^0 = 1 even for NaN; 1^y = 1 for every y, NaN included;
// (-1)^±Inf = 1), where JavaScript's Math.pow gives NaN for the last two.

/** log(x) per f64 lane for finite x > 0 (fdlibm's log: x = 2^k·m, m in (√½, √2], log(m) by Lg1..Lg7). */
// @ts-expect-error: decorator
@inline function logD(x: v128): v128 {
  let e = i64x2.shr_u(x, 52);
  let m = v128.or(v128.and(x, i64x2.splat(0x000fffffffffffff)), i64x2.splat(0x3ff0000000000000));
  const big = f64x2.gt(m, f64x2.splat(1.4142135623730951));
  m = v128.bitselect(f64x2.mul(m, f64x2.splat(0.5)), m, big);
  e = i64x2.sub(e, big);
  // The biased exponents fit the low 32 bits of each lane: gather them for the int-to-float conversion.
  const k = f64x2.sub(f64x2.convert_low_i32x4_s(i32x4.shuffle(e, e, 0, 2, 0, 2)), f64x2.splat(1023.0));
  const f = f64x2.sub(m, f64x2.splat(1.0));
  const s = f64x2.div(f, f64x2.add(f, f64x2.splat(2.0)));
  const z = f64x2.mul(s, s);
  const w = f64x2.mul(z, z);
  let t1 = f64x2.add(f64x2.mul(w, f64x2.splat(1.531383769920937332e-1)), f64x2.splat(2.222219843214978396e-1));
  t1 = f64x2.mul(w, f64x2.add(f64x2.mul(w, t1), f64x2.splat(3.999999999940941908e-1)));
  let t2 = f64x2.add(f64x2.mul(w, f64x2.splat(1.479819860511658591e-1)), f64x2.splat(1.818357216161805012e-1));
  t2 = f64x2.add(f64x2.mul(w, t2), f64x2.splat(2.857142874366239149e-1));
  t2 = f64x2.mul(z, f64x2.add(f64x2.mul(w, t2), f64x2.splat(6.666666666666735130e-1)));
  const R = f64x2.add(t1, t2);
  const hfsq = f64x2.mul(f64x2.splat(0.5), f64x2.mul(f, f));
  const logm = f64x2.add(f64x2.sub(f, hfsq), f64x2.mul(s, f64x2.add(hfsq, R)));
  return f64x2.add(f64x2.mul(k, f64x2.splat(0.6931471805599453)), logm);
}

/**
 * e^t per f64 lane, t clamped to [-110, 100] (beyond, the float32 result is 0 or Inf anyway; within, 2^n
 * stays a normal float64): t = n·ln2 + r, |r| <= ln2/2, Taylor to r^11 (1e-14 relative), times 2^n.
 */
// @ts-expect-error: decorator
@inline function expD(t0: v128): v128 {
  const t = f64x2.pmin(f64x2.pmax(t0, f64x2.splat(-110.0)), f64x2.splat(100.0));
  const n = f64x2.nearest(f64x2.mul(t, f64x2.splat(1.4426950408889634)));
  let r = f64x2.sub(t, f64x2.mul(n, f64x2.splat(6.93147180369123816490e-1)));
  r = f64x2.sub(r, f64x2.mul(n, f64x2.splat(1.90821492927058770002e-10)));
  let p = f64x2.splat(1.0 / 39916800.0);
  p = f64x2.add(f64x2.mul(p, r), f64x2.splat(1.0 / 3628800.0));
  p = f64x2.add(f64x2.mul(p, r), f64x2.splat(1.0 / 362880.0));
  p = f64x2.add(f64x2.mul(p, r), f64x2.splat(1.0 / 40320.0));
  p = f64x2.add(f64x2.mul(p, r), f64x2.splat(1.0 / 5040.0));
  p = f64x2.add(f64x2.mul(p, r), f64x2.splat(1.0 / 720.0));
  p = f64x2.add(f64x2.mul(p, r), f64x2.splat(1.0 / 120.0));
  p = f64x2.add(f64x2.mul(p, r), f64x2.splat(1.0 / 24.0));
  p = f64x2.add(f64x2.mul(p, r), f64x2.splat(1.0 / 6.0));
  p = f64x2.add(f64x2.mul(p, r), f64x2.splat(0.5));
  p = f64x2.add(f64x2.mul(p, r), f64x2.splat(1.0));
  p = f64x2.add(f64x2.mul(p, r), f64x2.splat(1.0));
  const ni = i64x2.extend_low_i32x4_s(i32x4.trunc_sat_f64x2_s_zero(n));
  return f64x2.mul(p, i64x2.shl(i64x2.add(ni, i64x2.splat(1023)), 52));
}

/** |x|^y for two f64 lanes, rounded to float32 in lanes 0 and 1 of the result. */
// @ts-expect-error: decorator
@inline function powHalf(ax: v128, y: v128): v128 {
  return f32x4.demote_f64x2_zero(expD(f64x2.mul(y, logD(ax))));
}

/** C's pow(x, y) (PyTorch's): the reference kernel's powC. */
function powC(x: f64, y: f64): f64 {
  if (y == 0 || x == 1) return 1;
  if (isNaN(x) || isNaN(y)) return NaN;
  if (x == -1 && !isFinite(y)) return 1;
  return Math.pow(x, y);
}

/** Lanes of r flagged in `redo` recomputed from x, y by powC (rare: zeros, infinities, NaN). */
function redoLanes(r: v128, x: v128, y: v128, redo: v128): v128 {
  if (i32x4.extract_lane(redo, 0)) {
    r = f32x4.replace_lane(r, 0, <f32>powC(f32x4.extract_lane(x, 0), f32x4.extract_lane(y, 0)));
  }
  if (i32x4.extract_lane(redo, 1)) {
    r = f32x4.replace_lane(r, 1, <f32>powC(f32x4.extract_lane(x, 1), f32x4.extract_lane(y, 1)));
  }
  if (i32x4.extract_lane(redo, 2)) {
    r = f32x4.replace_lane(r, 2, <f32>powC(f32x4.extract_lane(x, 2), f32x4.extract_lane(y, 2)));
  }
  if (i32x4.extract_lane(redo, 3)) {
    r = f32x4.replace_lane(r, 3, <f32>powC(f32x4.extract_lane(x, 3), f32x4.extract_lane(y, 3)));
  }
  return r;
}

/** x^y per lane with C pow's results, rounded to float32 (see above). */
// @ts-expect-error: decorator
@inline function powV(x: v128, y: v128): v128 {
  const ax = v128.and(x, i32x4.splat(0x7fffffff));
  const inf = f32x4.splat(Infinity);
  const lo = powHalf(f64x2.promote_low_f32x4(ax), f64x2.promote_low_f32x4(y));
  const hi = powHalf(
    f64x2.promote_low_f32x4(i32x4.shuffle(ax, ax, 2, 3, 2, 3)),
    f64x2.promote_low_f32x4(i32x4.shuffle(y, y, 2, 3, 2, 3)),
  );
  let r = i32x4.shuffle(lo, hi, 0, 1, 4, 5);
  // A negative base: NaN unless y is an integer, negative when y is odd (|y| >= 2^24 is always even).
  const neg = f32x4.lt(x, f32x4.splat(0));
  const half = f32x4.mul(y, f32x4.splat(0.5));
  const isInt = f32x4.eq(f32x4.nearest(y), y);
  const odd = v128.and(isInt, f32x4.ne(f32x4.nearest(half), half));
  r = v128.bitselect(f32x4.splat(NaN), r, v128.andnot(neg, isInt));
  r = v128.or(r, v128.and(v128.and(neg, odd), i32x4.splat(0x80000000)));
  const ok = v128.and(
    v128.and(f32x4.gt(ax, f32x4.splat(0)), f32x4.lt(ax, inf)),
    f32x4.lt(f32x4.abs(y), inf),
  );
  if (v128.any_true(v128.not(ok))) r = redoLanes(r, x, y, v128.not(ok));
  return r;
}

// out[i] = a[i]^b[i] for i < n; a step of 0 reads one scalar at a (b) for every element. The steps are
// literals at every call site, so each inlined copy keeps its own loads.
// @ts-expect-error: decorator
@inline function powLoop(a: usize, aStep: i32, b: usize, bStep: i32, out: usize, n: i32): void {
  const sa = f32x4.splat(load<f32>(a));
  const sb = f32x4.splat(load<f32>(b));
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    const x = aStep ? v128.load(a + o) : sa;
    const y = bStep ? v128.load(b + o) : sb;
    v128.store(out + o, powV(x, y));
  }
  if (i < n) {
    const o = <usize>i << 2;
    const rest = n - i;
    let x = sa;
    let y = sb;
    if (aStep) {
      x = f32x4.replace_lane(f32x4.splat(1), 0, load<f32>(a + o));
      if (rest > 1) x = f32x4.replace_lane(x, 1, load<f32>(a + o, 4));
      if (rest > 2) x = f32x4.replace_lane(x, 2, load<f32>(a + o, 8));
    }
    if (bStep) {
      y = f32x4.replace_lane(f32x4.splat(1), 0, load<f32>(b + o));
      if (rest > 1) y = f32x4.replace_lane(y, 1, load<f32>(b + o, 4));
      if (rest > 2) y = f32x4.replace_lane(y, 2, load<f32>(b + o, 8));
    }
    const v = powV(x, y);
    store<f32>(out + o, f32x4.extract_lane(v, 0));
    if (rest > 1) store<f32>(out + o, f32x4.extract_lane(v, 1), 4);
    if (rest > 2) store<f32>(out + o, f32x4.extract_lane(v, 2), 8);
  }
}

/**
 * out (n) = a^b elementwise with C pow's values (powC) rounded to float32; aStep / bStep 1 for an array of n,
 * 0 for one float32 read for every element (a scalar base or exponent; not both).
 */
export function pow(a: usize, aStep: i32, b: usize, bStep: i32, out: usize, n: i32): void {
  if (n <= 0) return;
  if (aStep && bStep) powLoop(a, 1, b, 1, out, n);
  else if (aStep) powLoop(a, 1, b, 0, out, n);
  else powLoop(a, 0, b, 1, out, n);
}

// ---- scatterAdd -----------------------------------------------------------------------------------------

// dst[j] += src[j] for j < n, 4 lanes at a time.
// @ts-expect-error: decorator
@inline function addRow(dst: usize, src: usize, n: i32): void {
  let j = 0;
  for (; j + 4 <= n; j += 4) {
    const o = <usize>j << 2;
    v128.store(dst + o, f32x4.add(v128.load(dst + o), v128.load(src + o)));
  }
  for (; j < n; j++) {
    const o = <usize>j << 2;
    store<f32>(dst + o, load<f32>(dst + o) + load<f32>(src + o));
  }
}

/**
 * dst (outer, D, inner) [o, index[i], :] += src (outer, I, inner) [o, i, :] for o in [o0, o1), i in order,
 * only where index[i] is in [d0, d1): a thread owns whole dst rows, and every element sums its
 * contributions in index order, as the reference does (float32 adds, so bit for bit the same).
 */
export function scatterAdd(
  dst: usize,
  src: usize,
  index: usize,
  D: i32,
  I: i32,
  inner: i32,
  o0: i32,
  o1: i32,
  d0: i32,
  d1: i32,
): void {
  const row = <usize>inner << 2;
  for (let o = o0; o < o1; o++) {
    const dBase = dst + <usize>o * <usize>D * row;
    const sBase = src + <usize>o * <usize>I * row;
    for (let i = 0; i < I; i++) {
      const d = load<i32>(index + (<usize>i << 2));
      if (d < d0 || d >= d1) continue;
      if (inner == 1) {
        const p = dBase + (<usize>d << 2);
        store<f32>(p, load<f32>(p) + load<f32>(sBase + (<usize>i << 2)));
      } else {
        addRow(dBase + <usize>d * row, sBase + <usize>i * row, inner);
      }
    }
  }
}
