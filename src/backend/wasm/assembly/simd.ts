// Helpers shared by the kernels. Compiled twice (scripts/build-wasm.mjs): ASC_FEATURE_RELAXED_SIMD is a
// compile-time constant, so each binary keeps exactly one branch of `madd`.

/** a·b + c per lane: one fused f32x4.relaxed_madd where the engine has relaxed SIMD, else mul then add. */
// @ts-expect-error: decorator
@inline export function madd(a: v128, b: v128, c: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return f32x4.relaxed_madd(a, b, c);
  return f32x4.add(f32x4.mul(a, b), c);
}

/** r0..r3 rows of a 4×4 block in, its columns out (the classic two-level unpack). */
// @ts-expect-error: decorator
@inline export function transpose4(r0: v128, r1: v128, r2: v128, r3: v128, dst: usize, dstStride: usize): void {
  const lo01 = i32x4.shuffle(r0, r1, 0, 4, 1, 5);
  const lo23 = i32x4.shuffle(r2, r3, 0, 4, 1, 5);
  const hi01 = i32x4.shuffle(r0, r1, 2, 6, 3, 7);
  const hi23 = i32x4.shuffle(r2, r3, 2, 6, 3, 7);
  v128.store(dst, i32x4.shuffle(lo01, lo23, 0, 1, 4, 5));
  v128.store(dst + dstStride, i32x4.shuffle(lo01, lo23, 2, 3, 6, 7));
  v128.store(dst + 2 * dstStride, i32x4.shuffle(hi01, hi23, 0, 1, 4, 5));
  v128.store(dst + 3 * dstStride, i32x4.shuffle(hi01, hi23, 2, 3, 6, 7));
}

/**
 * e^x per lane, about 2 ulp. Range reduction x = n·ln2 + r with |r| <= ln2/2 (ln2 split hi/lo so n·ln2_hi
 * is exact), the Cephes expf polynomial for e^r, then 2^n built in the exponent bits.
 * NOTE: 2^n is applied as two factors 2^(n>>1)·2^(n-(n>>1)) so that overflow gives +inf and the
 * denormal range (x down to -103.9) comes out right instead of being flushed; NaN stays NaN.
 */
// @ts-expect-error: decorator
@inline export function expV(x: v128): v128 {
  // pmax/pmin (one instruction each, unlike max/min) return their first operand when it is NaN.
  x = f32x4.pmin(f32x4.pmax(x, f32x4.splat(-104.0)), f32x4.splat(89.0));
  const n = f32x4.nearest(f32x4.mul(x, f32x4.splat(1.44269504088896341)));
  let r = madd(n, f32x4.splat(-0.693359375), x);
  r = madd(n, f32x4.splat(2.12194440e-4), r);
  let p = f32x4.splat(1.9875691500e-4);
  p = madd(p, r, f32x4.splat(1.3981999507e-3));
  p = madd(p, r, f32x4.splat(8.3334519073e-3));
  p = madd(p, r, f32x4.splat(4.1665795894e-2));
  p = madd(p, r, f32x4.splat(1.6666665459e-1));
  p = madd(p, r, f32x4.splat(5.0000001201e-1));
  p = madd(p, f32x4.mul(r, r), f32x4.add(r, f32x4.splat(1.0)));
  const ni = i32x4.trunc_sat_f32x4_s(n);
  const n1 = i32x4.shr_s(ni, 1);
  const n2 = i32x4.sub(ni, n1);
  const bias = i32x4.splat(127);
  const s1 = i32x4.shl(i32x4.add(n1, bias), 23);
  const s2 = i32x4.shl(i32x4.add(n2, bias), 23);
  return f32x4.mul(f32x4.mul(p, s1), s2);
}

/**
 * Natural log per lane, about 1-2 ulp (Cephes logf): x = 2^e·m with m in [√½, √2), log(1 + (m - 1)) by a
 * polynomial, plus e·ln2 split hi/lo. Denormals are scaled by 2^23 first; log(±0) = -inf, log(x < 0) = NaN,
 * log(+inf) = +inf, NaN stays NaN.
 */
// @ts-expect-error: decorator
@inline export function logV(x0: v128): v128 {
  const tiny = f32x4.lt(x0, f32x4.splat(1.17549435e-38));
  const x = v128.bitselect(f32x4.mul(x0, f32x4.splat(8388608.0)), x0, tiny);
  const bits = x;
  let e = i32x4.sub(i32x4.shr_u(bits, 23), i32x4.splat(126));
  e = i32x4.sub(e, v128.and(tiny, i32x4.splat(23)));
  // m in [0.5, 1)
  let m = v128.or(v128.and(bits, i32x4.splat(0x007fffff)), i32x4.splat(0x3f000000));
  const lt = f32x4.lt(m, f32x4.splat(0.707106781186547524));
  // e -= 1 where m < √½ (the mask is -1 there); f = 2m - 1 there, else m - 1.
  e = i32x4.add(e, lt);
  m = f32x4.sub(f32x4.add(m, v128.and(m, lt)), f32x4.splat(1));
  const fe = f32x4.convert_i32x4_s(e);
  const z = f32x4.mul(m, m);
  let y = f32x4.splat(7.0376836292e-2);
  y = madd(y, m, f32x4.splat(-1.1514610310e-1));
  y = madd(y, m, f32x4.splat(1.1676998740e-1));
  y = madd(y, m, f32x4.splat(-1.2420140846e-1));
  y = madd(y, m, f32x4.splat(1.4249322787e-1));
  y = madd(y, m, f32x4.splat(-1.6668057665e-1));
  y = madd(y, m, f32x4.splat(2.0000714765e-1));
  y = madd(y, m, f32x4.splat(-2.4999993993e-1));
  y = madd(y, m, f32x4.splat(3.3333331174e-1));
  y = f32x4.mul(f32x4.mul(y, m), z);
  y = madd(fe, f32x4.splat(-2.12194440e-4), y);
  y = madd(z, f32x4.splat(-0.5), y);
  let r = f32x4.add(m, y);
  r = madd(fe, f32x4.splat(0.693359375), r);
  // Specials: 0 -> -inf, negative or NaN -> NaN, +inf -> +inf.
  r = v128.bitselect(f32x4.splat(-Infinity), r, f32x4.eq(x0, f32x4.splat(0)));
  r = v128.bitselect(f32x4.splat(NaN), r, f32x4.lt(x0, f32x4.splat(0)));
  r = v128.bitselect(x0, r, f32x4.ne(x0, x0));
  return v128.bitselect(x0, r, f32x4.eq(x0, f32x4.splat(Infinity)));
}

/** The last 1-3 floats of an array as one vector (zeros past `rest`), so a tail gets the vector code's rounding. */
// @ts-expect-error: decorator
@inline export function loadTail(src: usize, rest: i32): v128 {
  let v = f32x4.splat(0);
  v = f32x4.replace_lane(v, 0, load<f32>(src));
  if (rest > 1) v = f32x4.replace_lane(v, 1, load<f32>(src, 4));
  if (rest > 2) v = f32x4.replace_lane(v, 2, load<f32>(src, 8));
  return v;
}

/** Stores the first `rest` (1-3) lanes of v. */
// @ts-expect-error: decorator
@inline export function storeTail(dst: usize, v: v128, rest: i32): void {
  store<f32>(dst, f32x4.extract_lane(v, 0));
  if (rest > 1) store<f32>(dst, f32x4.extract_lane(v, 1), 4);
  if (rest > 2) store<f32>(dst, f32x4.extract_lane(v, 2), 8);
}
