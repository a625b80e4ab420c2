// Optimizer updates over one parameter's flat float32 arrays, in place: the SIMD twins of the reference loops
// in src/optim/update-kernels.ts, bit for bit. Plain float32 lane ops where the reference rounds each step
// (Math.fround of one +, ·, /, √ is the float32 result), float64 lanes where it computes x + a·y in float64
// and rounds once (`fmadd`). n elements; flag bits below; pointers need no alignment.

// @ts-expect-error: decorator
@inline function lo64(x: v128): v128 {
  return f64x2.promote_low_f32x4(x);
}

// @ts-expect-error: decorator
@inline function hi64(x: v128): v128 {
  return f64x2.promote_low_f32x4(i32x4.shuffle(x, x, 2, 3, 0, 1));
}

/** float32(a·b + c) per lane with the product and sum in float64: the reference's `fmadd`. */
// @ts-expect-error: decorator
@inline function fmadd4(a: v128, b: v128, c: v128): v128 {
  const lo = f32x4.demote_f64x2_zero(f64x2.add(f64x2.mul(lo64(a), lo64(b)), lo64(c)));
  const hi = f32x4.demote_f64x2_zero(f64x2.add(f64x2.mul(hi64(a), hi64(b)), hi64(c)));
  return i32x4.shuffle(lo, hi, 0, 1, 4, 5);
}

// @ts-expect-error: decorator
@inline function fmadd1(a: f32, b: f32, c: f32): f32 {
  return <f32>(<f64>a * <f64>b + <f64>c);
}

const SGD_FIRST = 1;
const SGD_NESTEROV = 2;
const SGD_MAXIMIZE = 4;
const SGD_MOMENTUM = 8;

/** SGD (flags: 1 first step, 2 nesterov, 4 maximize, 8 momentum buffer b present). */
export function sgdUpdate(p: usize, g: usize, b: usize, n: i32, flags: i32, wd: f32, mu: f32, keep: f32, negLr: f32): void {
  const first = (flags & SGD_FIRST) != 0;
  const nesterov = (flags & SGD_NESTEROV) != 0;
  const maximize = (flags & SGD_MAXIMIZE) != 0;
  const momentum = (flags & SGD_MOMENTUM) != 0;
  const vwd = f32x4.splat(wd);
  const vmu = f32x4.splat(mu);
  const vkeep = f32x4.splat(keep);
  const vlr = f32x4.splat(negLr);
  let i = 0;
  if (momentum && !first && !nesterov && !maximize && wd == 0 && keep == 1) {
    // The common case (plain momentum) without per-lane branches: (1−τ)·d + μ·v with τ = 0 is one float32
    // add, the same rounding as the float64 form.
    for (; i + 4 <= n; i += 4) {
      const o = <usize>i << 2;
      const v = f32x4.add(v128.load(g + o), f32x4.mul(vmu, v128.load(b + o)));
      v128.store(b + o, v);
      v128.store(p + o, fmadd4(vlr, v, v128.load(p + o)));
    }
  }
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    const pv = v128.load(p + o);
    let d = v128.load(g + o);
    if (maximize) d = f32x4.neg(d);
    if (wd != 0) d = fmadd4(vwd, pv, d);
    if (momentum) {
      const v = first ? d : fmadd4(vkeep, d, f32x4.mul(vmu, v128.load(b + o)));
      v128.store(b + o, v);
      d = nesterov ? fmadd4(vmu, v, d) : v;
    }
    v128.store(p + o, fmadd4(vlr, d, pv));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    const pv = load<f32>(p + o);
    let d = load<f32>(g + o);
    if (maximize) d = -d;
    if (wd != 0) d = fmadd1(wd, pv, d);
    if (momentum) {
      const v = first ? d : fmadd1(keep, d, mu * load<f32>(b + o));
      store<f32>(b + o, v);
      d = nesterov ? fmadd1(mu, v, d) : v;
    }
    store<f32>(p + o, fmadd1(negLr, d, pv));
  }
}

const ADAM_DECOUPLED = 1;
const ADAM_MAXIMIZE = 2;
const ADAM_AMSGRAD = 4;

/** Adam / AdamW (flags: 1 decoupled weight decay, 2 maximize, 4 amsgrad: vmax present). */
export function adamUpdate(
  p: usize,
  g: usize,
  m: usize,
  v: usize,
  vmax: usize,
  n: i32,
  flags: i32,
  b1: f32,
  b2: f32,
  keep1: f32,
  keep2: f32,
  negStepSize: f32,
  bc2Sqrt: f32,
  eps: f32,
  wd: f32,
  shrink: f32,
): void {
  const decoupled = (flags & ADAM_DECOUPLED) != 0;
  const maximize = (flags & ADAM_MAXIMIZE) != 0;
  const amsgrad = (flags & ADAM_AMSGRAD) != 0;
  const vb1 = f32x4.splat(b1);
  const vb2 = f32x4.splat(b2);
  const vk1 = f32x4.splat(keep1);
  const vk2 = f32x4.splat(keep2);
  const vstep = f32x4.splat(negStepSize);
  const vbc2 = f32x4.splat(bc2Sqrt);
  const veps = f32x4.splat(eps);
  const vwd = f32x4.splat(wd);
  const vshrink = f32x4.splat(shrink);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    let gv = v128.load(g + o);
    if (maximize) gv = f32x4.neg(gv);
    let pv = v128.load(p + o);
    if (decoupled) pv = f32x4.mul(pv, vshrink);
    else if (wd != 0) gv = fmadd4(vwd, pv, gv);
    const mi = fmadd4(vk1, gv, f32x4.mul(vb1, v128.load(m + o)));
    let vi = fmadd4(f32x4.mul(vk2, gv), gv, f32x4.mul(vb2, v128.load(v + o)));
    v128.store(m + o, mi);
    v128.store(v + o, vi);
    if (amsgrad) {
      vi = f32x4.max(v128.load(vmax + o), vi);
      v128.store(vmax + o, vi);
    }
    const denom = f32x4.add(f32x4.div(f32x4.sqrt(vi), vbc2), veps);
    v128.store(p + o, f32x4.add(pv, f32x4.div(f32x4.mul(vstep, mi), denom)));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    let gi = load<f32>(g + o);
    if (maximize) gi = -gi;
    let pi = load<f32>(p + o);
    if (decoupled) pi = pi * shrink;
    else if (wd != 0) gi = fmadd1(wd, pi, gi);
    const mi = fmadd1(keep1, gi, b1 * load<f32>(m + o));
    let vi = fmadd1(keep2 * gi, gi, b2 * load<f32>(v + o));
    store<f32>(m + o, mi);
    store<f32>(v + o, vi);
    if (amsgrad) {
      vi = max(load<f32>(vmax + o), vi);
      store<f32>(vmax + o, vi);
    }
    const denom = sqrt<f32>(vi) / bc2Sqrt + eps;
    store<f32>(p + o, pi + (negStepSize * mi) / denom);
  }
}

const RMSPROP_MAXIMIZE = 1;
const RMSPROP_CENTERED = 2;
const RMSPROP_MOMENTUM = 4;

/** RMSprop (flags: 1 maximize, 2 centered: ga present, 4 momentum: buf present). */
export function rmspropUpdate(
  p: usize,
  g: usize,
  sq: usize,
  ga: usize,
  buf: usize,
  n: i32,
  flags: i32,
  alpha: f32,
  keep: f32,
  eps: f32,
  wd: f32,
  mu: f32,
  negLr: f32,
): void {
  const maximize = (flags & RMSPROP_MAXIMIZE) != 0;
  const centered = (flags & RMSPROP_CENTERED) != 0;
  const momentum = (flags & RMSPROP_MOMENTUM) != 0;
  const valpha = f32x4.splat(alpha);
  const vkeep = f32x4.splat(keep);
  const veps = f32x4.splat(eps);
  const vwd = f32x4.splat(wd);
  const vmu = f32x4.splat(mu);
  const vlr = f32x4.splat(negLr);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    const pv = v128.load(p + o);
    let gv = v128.load(g + o);
    if (maximize) gv = f32x4.neg(gv);
    if (wd != 0) gv = fmadd4(vwd, pv, gv);
    const s = fmadd4(f32x4.mul(vkeep, gv), gv, f32x4.mul(valpha, v128.load(sq + o)));
    v128.store(sq + o, s);
    let avg: v128;
    if (centered) {
      const a = fmadd4(vkeep, gv, f32x4.mul(valpha, v128.load(ga + o)));
      v128.store(ga + o, a);
      avg = f32x4.add(f32x4.sqrt(fmadd4(f32x4.neg(a), a, s)), veps);
    } else {
      avg = f32x4.add(f32x4.sqrt(s), veps);
    }
    if (momentum) {
      const b = f32x4.add(f32x4.mul(vmu, v128.load(buf + o)), f32x4.div(gv, avg));
      v128.store(buf + o, b);
      v128.store(p + o, fmadd4(vlr, b, pv));
    } else {
      v128.store(p + o, f32x4.add(pv, f32x4.div(f32x4.mul(vlr, gv), avg)));
    }
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    const pi = load<f32>(p + o);
    let gi = load<f32>(g + o);
    if (maximize) gi = -gi;
    if (wd != 0) gi = fmadd1(wd, pi, gi);
    const s = fmadd1(keep * gi, gi, alpha * load<f32>(sq + o));
    store<f32>(sq + o, s);
    let avg: f32;
    if (centered) {
      const a = fmadd1(keep, gi, alpha * load<f32>(ga + o));
      store<f32>(ga + o, a);
      avg = sqrt<f32>(fmadd1(-a, a, s)) + eps;
    } else {
      avg = sqrt<f32>(s) + eps;
    }
    if (momentum) {
      const b = mu * load<f32>(buf + o) + gi / avg;
      store<f32>(buf + o, b);
      store<f32>(p + o, fmadd1(negLr, b, pi));
    } else {
      store<f32>(p + o, pi + (negLr * gi) / avg);
    }
  }
}

/** Adagrad (flags: 1 maximize). */
export function adagradUpdate(p: usize, g: usize, sum: usize, n: i32, flags: i32, eps: f32, wd: f32, negClr: f32): void {
  const maximize = (flags & 1) != 0;
  const veps = f32x4.splat(eps);
  const vwd = f32x4.splat(wd);
  const vlr = f32x4.splat(negClr);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    const pv = v128.load(p + o);
    let gv = v128.load(g + o);
    if (maximize) gv = f32x4.neg(gv);
    if (wd != 0) gv = fmadd4(vwd, pv, gv);
    const s = fmadd4(gv, gv, v128.load(sum + o));
    v128.store(sum + o, s);
    v128.store(p + o, f32x4.add(pv, f32x4.div(f32x4.mul(vlr, gv), f32x4.add(f32x4.sqrt(s), veps))));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    const pi = load<f32>(p + o);
    let gi = load<f32>(g + o);
    if (maximize) gi = -gi;
    if (wd != 0) gi = fmadd1(wd, pi, gi);
    const s = fmadd1(gi, gi, load<f32>(sum + o));
    store<f32>(sum + o, s);
    store<f32>(p + o, pi + (negClr * gi) / (sqrt<f32>(s) + eps));
  }
}
