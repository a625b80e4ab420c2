// Elementwise, reduction and loss kernels on raw pointers, one thread's share (the JS side splits ranges).
//
//   n = elements of a flat array; R = rows, C = columns of a row-major (R,C) array.
//   Binary op codes: 0 add, 1 sub, 2 mul, 3 div, 4 maximum, 5 minimum (NaN-propagating, -0 < +0 as IEEE).
//   Unary op codes: 0 neg, 1 abs, 2 sqrt, 3 sign, 4 sigmoid, 5 tanh, 6 log. Reduce op codes: 0 sum (in
//   float64), 1 max, 2 min (NaN-propagating). Targets are i32 class indices in [0, C).
// Main loops go 4 lanes at a time with a scalar tail; pointers need no alignment.

import { expV, loadTail, logV, madd, storeTail } from './simd';

// @ts-expect-error: decorator
@inline function opV(op: i32, x: v128, y: v128): v128 {
  if (op == 0) return f32x4.add(x, y);
  if (op == 1) return f32x4.sub(x, y);
  if (op == 2) return f32x4.mul(x, y);
  if (op == 3) return f32x4.div(x, y);
  if (op == 4) return f32x4.max(x, y);
  return f32x4.min(x, y);
}

// @ts-expect-error: decorator
@inline function opS(op: i32, x: f32, y: f32): f32 {
  if (op == 0) return x + y;
  if (op == 1) return x - y;
  if (op == 2) return x * y;
  if (op == 3) return x / y;
  if (op == 4) return max(x, y);
  return min(x, y);
}

// out[i] = a[i] op b[i] for i < n. `op` is a literal at every call site, so each inlined copy keeps one op.
// @ts-expect-error: decorator
@inline function binLoop(op: i32, a: usize, b: usize, out: usize, n: i32): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    v128.store(out + o, opV(op, v128.load(a + o), v128.load(b + o)));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    store<f32>(out + o, opS(op, load<f32>(a + o), load<f32>(b + o)));
  }
}

// out[i] = a[i] op s for i < n.
// @ts-expect-error: decorator
@inline function scalarLoop(op: i32, a: usize, s: f32, out: usize, n: i32): void {
  const vs = f32x4.splat(s);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    v128.store(out + o, opV(op, v128.load(a + o), vs));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    store<f32>(out + o, opS(op, load<f32>(a + o), s));
  }
}

function binAny(op: i32, a: usize, b: usize, out: usize, n: i32): void {
  if (op == 0) binLoop(0, a, b, out, n);
  else if (op == 1) binLoop(1, a, b, out, n);
  else if (op == 2) binLoop(2, a, b, out, n);
  else if (op == 3) binLoop(3, a, b, out, n);
  else if (op == 4) binLoop(4, a, b, out, n);
  else binLoop(5, a, b, out, n);
}

/** out (n) = a (n) op b (n). */
export function binary(op: i32, a: usize, b: usize, out: usize, n: i32): void {
  binAny(op, a, b, out, n);
}

/** out (R,C) = a (R,C) op b (C): b is broadcast down the rows (a bias, a per-feature scale). */
export function binaryRow(op: i32, a: usize, b: usize, out: usize, R: i32, C: i32): void {
  const stride = <usize>C << 2;
  for (let r = 0; r < R; r++) binAny(op, a + <usize>r * stride, b, out + <usize>r * stride, C);
}

/** out (n) = a (n) op s. */
export function binaryScalar(op: i32, a: usize, s: f32, out: usize, n: i32): void {
  if (op == 0) scalarLoop(0, a, s, out, n);
  else if (op == 1) scalarLoop(1, a, s, out, n);
  else if (op == 2) scalarLoop(2, a, s, out, n);
  else scalarLoop(3, a, s, out, n);
}

/** out (n) = max(x, 0); NaN stays NaN like PyTorch (pmax returns its first operand when that is NaN). */
export function relu(x: usize, out: usize, n: i32): void {
  const zero = f32x4.splat(0);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    v128.store(out + o, f32x4.pmax(v128.load(x + o), zero));
  }
  for (; i < n; i++) {
    // pmax's rule (x < 0 ? 0 : x), not max: -0 stays -0 in the tail as in the vector body, as in PyTorch.
    const o = <usize>i << 2;
    const v = load<f32>(x + o);
    store<f32>(out + o, v < 0 ? 0 : v);
  }
}

/** dx (n) = 0 where x <= 0, else dy (NaN x passes dy, as PyTorch's threshold_backward); x: ReLU input or output. */
export function reluBackward(x: usize, dy: usize, dx: usize, n: i32): void {
  const zero = f32x4.splat(0);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    v128.store(dx + o, v128.andnot(v128.load(dy + o), f32x4.le(v128.load(x + o), zero)));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    store<f32>(dx + o, load<f32>(x + o) <= 0 ? 0 : load<f32>(dy + o));
  }
}

/** out (n) = e^x, about 2 ulp (see expV). */
export function exp(x: usize, out: usize, n: i32): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    v128.store(out + o, expV(v128.load(x + o)));
  }
  if (i < n) {
    // Tail through the same vector code so every element gets the same rounding.
    const o = <usize>i << 2;
    storeTail(out + o, expV(loadTail(x + o, n - i)), n - i);
  }
}

// Rows per partial sum in sumAxis0: 128 rows × 64-byte lines = 8 KiB stays in L1 across the column chunks,
// and summing in blocks keeps the f32 error near (128 + R/128)·eps instead of R·eps.
const SUM_BLOCK: i32 = 128;

/** out (C) = sum over rows of x (R,C) with row stride ldx (the bias gradient). */
export function sumAxis0(x: usize, R: i32, C: i32, ldx: i32, out: usize): void {
  const ld = <usize>ldx << 2;
  for (let c = 0; c < C; c++) store<f32>(out + (<usize>c << 2), 0);
  for (let r0 = 0; r0 < R; r0 += SUM_BLOCK) {
    const rows = min(SUM_BLOCK, R - r0);
    const base = x + <usize>r0 * ld;
    let c = 0;
    for (; c + 4 <= C; c += 4) {
      let p = base + (<usize>c << 2);
      let acc = f32x4.splat(0);
      for (let r = 0; r < rows; r++) {
        acc = f32x4.add(acc, v128.load(p));
        p += ld;
      }
      const o = out + (<usize>c << 2);
      v128.store(o, f32x4.add(v128.load(o), acc));
    }
    for (; c < C; c++) {
      let p = base + (<usize>c << 2);
      let acc: f32 = 0;
      for (let r = 0; r < rows; r++) {
        acc += load<f32>(p);
        p += ld;
      }
      const o = out + (<usize>c << 2);
      store<f32>(o, load<f32>(o) + acc);
    }
  }
}

// Sum of n floats: two vector accumulators (latency hiding), then lanes, then the tail.
function rowSum(p: usize, n: i32): f32 {
  let a0 = f32x4.splat(0);
  let a1 = f32x4.splat(0);
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const o = p + (<usize>i << 2);
    a0 = f32x4.add(a0, v128.load(o));
    a1 = f32x4.add(a1, v128.load(o, 16));
  }
  if (i + 4 <= n) {
    a0 = f32x4.add(a0, v128.load(p + (<usize>i << 2)));
    i += 4;
  }
  const a = f32x4.add(a0, a1);
  let s = f32x4.extract_lane(a, 0) + f32x4.extract_lane(a, 1) + (f32x4.extract_lane(a, 2) + f32x4.extract_lane(a, 3));
  for (; i < n; i++) s += load<f32>(p + (<usize>i << 2));
  return s;
}

/** out (R) = sum over columns of each row of x (R,C). */
export function sumAxis1(x: usize, R: i32, C: i32, out: usize): void {
  const stride = <usize>C << 2;
  for (let r = 0; r < R; r++) store<f32>(out + (<usize>r << 2), rowSum(x + <usize>r * stride, C));
}

// Sum in float64 of e^(x[i] - m) over n floats (the pair of lanes promoted per vector); writes the
// exponentials to out unless out is 0.
function expSum(x: usize, n: i32, m: f32, out: usize): f64 {
  const vm = f32x4.splat(m);
  let a0 = f64x2.splat(0);
  let a1 = f64x2.splat(0);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    // d = x - m rounded, err its rounding error (TwoSum); e^(x-m) = e^d·(1 + err) to first order.
    const v = v128.load(x + o);
    const d = f32x4.sub(v, vm);
    const bb = f32x4.sub(d, v);
    const err = f32x4.sub(f32x4.sub(v, f32x4.sub(d, bb)), f32x4.add(vm, bb));
    let e = expV(d);
    // err is NaN only where d is ±inf or NaN; e is exact (0, inf or NaN) there.
    e = v128.bitselect(madd(e, err, e), e, f32x4.eq(err, err));
    if (out) v128.store(out + o, e);
    a0 = f64x2.add(a0, f64x2.promote_low_f32x4(e));
    a1 = f64x2.add(a1, f64x2.promote_low_f32x4(i32x4.shuffle(e, e, 2, 3, 0, 1)));
  }
  const a = f64x2.add(a0, a1);
  let s = f64x2.extract_lane(a, 0) + f64x2.extract_lane(a, 1);
  for (; i < n; i++) {
    const o = <usize>i << 2;
    const v = load<f32>(x + o);
    const d = v - m;
    const bb = d - v;
    const err = (v - (d - bb)) - (m + bb);
    let e = f32x4.extract_lane(expV(f32x4.splat(d)), 0);
    if (err == err) e += e * err;
    if (out) store<f32>(out + o, e);
    s += <f64>e;
  }
  return s;
}

// p[i] *= k for i < n.
function scaleRow(p: usize, k: f32, n: i32): void {
  const vk = f32x4.splat(k);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = p + (<usize>i << 2);
    v128.store(o, f32x4.mul(v128.load(o), vk));
  }
  for (; i < n; i++) {
    const o = p + (<usize>i << 2);
    store<f32>(o, load<f32>(o) * k);
  }
}

function rowMax(p: usize, n: i32): f32 {
  let m = f32x4.splat(-Infinity);
  let i = 0;
  for (; i + 4 <= n; i += 4) m = f32x4.max(m, v128.load(p + (<usize>i << 2)));
  let s = max(max(f32x4.extract_lane(m, 0), f32x4.extract_lane(m, 1)), max(f32x4.extract_lane(m, 2), f32x4.extract_lane(m, 3)));
  for (; i < n; i++) s = max(s, load<f32>(p + (<usize>i << 2)));
  return s;
}

/**
 * Softmax cross-entropy forward over rows: loss (R) = logsumexp(logits[r]) - logits[r, t_r], computed as
 * m + log(sum exp(x - m)) with m the row max so nothing overflows. probs (R,C), when not 0, receives
 * softmax(logits) for the backward pass.
 */
export function softmaxCrossEntropy(logits: usize, targets: usize, R: i32, C: i32, loss: usize, probs: usize): void {
  const stride = <usize>C << 2;
  for (let r = 0; r < R; r++) {
    const x = logits + <usize>r * stride;
    const m = rowMax(x, C);
    const pr = probs + <usize>r * stride;
    const s = expSum(x, C, m, probs ? pr : 0);
    const t = load<i32>(targets + (<usize>r << 2));
    store<f32>(loss + (<usize>r << 2), <f32>(<f64>m + Math.log(s) - <f64>load<f32>(x + (<usize>t << 2))));
    if (probs) scaleRow(pr, <f32>(1 / s), C);
  }
}

/**
 * Softmax cross-entropy backward: dx (R,C) = g_r · (probs[r] - onehot(t_r)), with g_r = scale · grad[r]
 * when grad (R) is not 0, else scale (e.g. 1/R for a mean loss).
 */
export function softmaxCrossEntropyBackward(probs: usize, targets: usize, R: i32, C: i32, scale: f32, grad: usize, dx: usize): void {
  const stride = <usize>C << 2;
  for (let r = 0; r < R; r++) {
    const g: f32 = grad ? scale * load<f32>(grad + (<usize>r << 2)) : scale;
    const p = probs + <usize>r * stride;
    const d = dx + <usize>r * stride;
    binaryScalar(2, p, g, d, C);
    const t = <usize>load<i32>(targets + (<usize>r << 2)) << 2;
    store<f32>(d + t, load<f32>(d + t) - g);
  }
}

// ---- unary ops, clamp ------------------------------------------------------------------------------------

/** Sign bit / magnitude masks. */
// @ts-expect-error: decorator
@inline function signBits(x: v128): v128 {
  return v128.and(x, i32x4.splat(0x80000000));
}

/**
 * tanh per lane, about 2 ulp: the Cephes tanhf polynomial for |x| < 0.625 (no cancellation near 0), else
 * 1 - 2/(e^(2|x|) + 1), which saturates to 1 (e^(2|x|) = +inf) instead of overflowing. Sign restored last.
 */
// @ts-expect-error: decorator
@inline function tanhV(x: v128): v128 {
  const ax = f32x4.abs(x);
  const z = f32x4.mul(x, x);
  let p = f32x4.splat(-5.70498872745e-3);
  p = madd(p, z, f32x4.splat(2.06390887954e-2));
  p = madd(p, z, f32x4.splat(-5.37397155531e-2));
  p = madd(p, z, f32x4.splat(1.33314422036e-1));
  p = madd(p, z, f32x4.splat(-3.33332819422e-1));
  const small = madd(f32x4.mul(p, z), ax, ax);
  const e = expV(f32x4.add(ax, ax));
  const big = f32x4.sub(f32x4.splat(1), f32x4.div(f32x4.splat(2), f32x4.add(e, f32x4.splat(1))));
  const y = v128.bitselect(small, big, f32x4.lt(ax, f32x4.splat(0.625)));
  return v128.or(y, signBits(x));
}

/** 1/(1 + e^-x) without e^(large): with e = e^-|x|, 1/(1+e) for x >= 0, e/(1+e) otherwise. */
// @ts-expect-error: decorator
@inline function sigmoidV(x: v128): v128 {
  const e = expV(f32x4.neg(f32x4.abs(x)));
  const num = v128.bitselect(f32x4.splat(1), e, f32x4.ge(x, f32x4.splat(0)));
  return f32x4.div(num, f32x4.add(e, f32x4.splat(1)));
}

/** sign: 1, -1, else 0 (±0 and NaN), PyTorch's (0 < x) - (x < 0). */
// @ts-expect-error: decorator
@inline function signV(x: v128): v128 {
  const zero = f32x4.splat(0);
  const neg = v128.bitselect(f32x4.splat(-1), zero, f32x4.lt(x, zero));
  return v128.bitselect(f32x4.splat(1), neg, f32x4.gt(x, zero));
}

// @ts-expect-error: decorator
@inline function unaryV(op: i32, x: v128): v128 {
  if (op == 0) return f32x4.neg(x);
  if (op == 1) return f32x4.abs(x);
  if (op == 2) return f32x4.sqrt(x);
  if (op == 3) return signV(x);
  if (op == 4) return sigmoidV(x);
  if (op == 5) return tanhV(x);
  return logV(x);
}

// out[i] = f(x[i]); the tail goes through the same vector code so every element rounds the same way.
// @ts-expect-error: decorator
@inline function unaryLoop(op: i32, x: usize, out: usize, n: i32): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    v128.store(out + o, unaryV(op, v128.load(x + o)));
  }
  if (i < n) {
    const src = x + (<usize>i << 2);
    const dst = out + (<usize>i << 2);
    const rest = n - i;
    let v = f32x4.splat(0);
    v = f32x4.replace_lane(v, 0, load<f32>(src));
    if (rest > 1) v = f32x4.replace_lane(v, 1, load<f32>(src, 4));
    if (rest > 2) v = f32x4.replace_lane(v, 2, load<f32>(src, 8));
    v = unaryV(op, v);
    store<f32>(dst, f32x4.extract_lane(v, 0));
    if (rest > 1) store<f32>(dst, f32x4.extract_lane(v, 1), 4);
    if (rest > 2) store<f32>(dst, f32x4.extract_lane(v, 2), 8);
  }
}

/** out (n) = f(x) for unary op code `op` (see the header). */
export function unary(op: i32, x: usize, out: usize, n: i32): void {
  if (op == 0) unaryLoop(0, x, out, n);
  else if (op == 1) unaryLoop(1, x, out, n);
  else if (op == 2) unaryLoop(2, x, out, n);
  else if (op == 3) unaryLoop(3, x, out, n);
  else if (op == 4) unaryLoop(4, x, out, n);
  else if (op == 5) unaryLoop(5, x, out, n);
  else unaryLoop(6, x, out, n);
}

/** out (n) = v. */
export function fill(out: usize, v: f32, n: i32): void {
  const vv = f32x4.splat(v);
  let i = 0;
  for (; i + 4 <= n; i += 4) v128.store(out + (<usize>i << 2), vv);
  for (; i < n; i++) store<f32>(out + (<usize>i << 2), v);
}

/** out (n) = x < lo ? lo : min(x, hi), as the reference: NaN passes through. */
export function clamp(x: usize, lo: f32, hi: f32, out: usize, n: i32): void {
  const vlo = f32x4.splat(lo);
  const vhi = f32x4.splat(hi);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    const v = v128.load(x + o);
    v128.store(out + o, v128.bitselect(vlo, f32x4.min(v, vhi), f32x4.lt(v, vlo)));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    const v = load<f32>(x + o);
    store<f32>(out + o, v < lo ? lo : min(v, hi));
  }
}

/** out (n) = f32(x · s) with the product taken in float64 (s a float64 scale), as JS rounds it. */
export function scale64(x: usize, s: f64, out: usize, n: i32): void {
  const vs = f64x2.splat(s);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    const v = v128.load(x + o);
    const lo = f32x4.demote_f64x2_zero(f64x2.mul(f64x2.promote_low_f32x4(v), vs));
    const hi = f32x4.demote_f64x2_zero(f64x2.mul(f64x2.promote_low_f32x4(i32x4.shuffle(v, v, 2, 3, 0, 1)), vs));
    v128.store(out + o, i32x4.shuffle(lo, hi, 0, 1, 4, 5));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    store<f32>(out + o, <f32>(<f64>load<f32>(x + o) * s));
  }
}

// ---- reductions ------------------------------------------------------------------------------------------

// One row's reduction: sum in float64, max/min NaN-propagating.
// @ts-expect-error: decorator
@inline function reduceRow(op: i32, p: usize, n: i32): f32 {
  if (op == 0) {
    let a0 = f64x2.splat(0);
    let a1 = f64x2.splat(0);
    let i = 0;
    for (; i + 4 <= n; i += 4) {
      const v = v128.load(p + (<usize>i << 2));
      a0 = f64x2.add(a0, f64x2.promote_low_f32x4(v));
      a1 = f64x2.add(a1, f64x2.promote_low_f32x4(i32x4.shuffle(v, v, 2, 3, 0, 1)));
    }
    const a = f64x2.add(a0, a1);
    let s = f64x2.extract_lane(a, 0) + f64x2.extract_lane(a, 1);
    for (; i < n; i++) s += <f64>load<f32>(p + (<usize>i << 2));
    return <f32>s;
  }
  const init: f32 = op == 1 ? -Infinity : Infinity;
  let m = f32x4.splat(init);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const v = v128.load(p + (<usize>i << 2));
    m = op == 1 ? f32x4.max(m, v) : f32x4.min(m, v);
  }
  const l0 = f32x4.extract_lane(m, 0);
  const l1 = f32x4.extract_lane(m, 1);
  const l2 = f32x4.extract_lane(m, 2);
  const l3 = f32x4.extract_lane(m, 3);
  let s: f32 = op == 1 ? max(max(l0, l1), max(l2, l3)) : min(min(l0, l1), min(l2, l3));
  for (; i < n; i++) {
    const v = load<f32>(p + (<usize>i << 2));
    s = op == 1 ? max(s, v) : min(s, v);
  }
  return s;
}

/** out (R) = reduction of each row of x (R,C) over its C columns (op code: see the header). */
export function reduceRows(op: i32, x: usize, R: i32, C: i32, out: usize): void {
  const stride = <usize>C << 2;
  for (let r = 0; r < R; r++) {
    const p = x + <usize>r * stride;
    const o = out + (<usize>r << 2);
    if (op == 0) store<f32>(o, reduceRow(0, p, C));
    else if (op == 1) store<f32>(o, reduceRow(1, p, C));
    else store<f32>(o, reduceRow(2, p, C));
  }
}

// Columns [c, c + 4) of x (R rows, row stride ld bytes) reduced down the rows into out.
// @ts-expect-error: decorator
@inline function reduceCols4(op: i32, x: usize, R: i32, ld: usize, out: usize): void {
  if (op == 0) {
    let a0 = f64x2.splat(0);
    let a1 = f64x2.splat(0);
    let p = x;
    for (let r = 0; r < R; r++) {
      const v = v128.load(p);
      a0 = f64x2.add(a0, f64x2.promote_low_f32x4(v));
      a1 = f64x2.add(a1, f64x2.promote_low_f32x4(i32x4.shuffle(v, v, 2, 3, 0, 1)));
      p += ld;
    }
    v128.store(out, i32x4.shuffle(f32x4.demote_f64x2_zero(a0), f32x4.demote_f64x2_zero(a1), 0, 1, 4, 5));
    return;
  }
  let m = f32x4.splat(op == 1 ? -Infinity : Infinity);
  let p = x;
  for (let r = 0; r < R; r++) {
    const v = v128.load(p);
    m = op == 1 ? f32x4.max(m, v) : f32x4.min(m, v);
    p += ld;
  }
  v128.store(out, m);
}

// 16 columns (one cache line per row) reduced down the rows.
// @ts-expect-error: decorator
@inline function reduceCols16(op: i32, x: usize, R: i32, ld: usize, out: usize): void {
  if (op == 0) {
    let a0 = f64x2.splat(0);
    let a1 = f64x2.splat(0);
    let a2 = f64x2.splat(0);
    let a3 = f64x2.splat(0);
    let a4 = f64x2.splat(0);
    let a5 = f64x2.splat(0);
    let a6 = f64x2.splat(0);
    let a7 = f64x2.splat(0);
    let p = x;
    for (let r = 0; r < R; r++) {
      const v0 = v128.load(p);
      const v1 = v128.load(p, 16);
      const v2 = v128.load(p, 32);
      const v3 = v128.load(p, 48);
      a0 = f64x2.add(a0, f64x2.promote_low_f32x4(v0));
      a1 = f64x2.add(a1, f64x2.promote_low_f32x4(i32x4.shuffle(v0, v0, 2, 3, 0, 1)));
      a2 = f64x2.add(a2, f64x2.promote_low_f32x4(v1));
      a3 = f64x2.add(a3, f64x2.promote_low_f32x4(i32x4.shuffle(v1, v1, 2, 3, 0, 1)));
      a4 = f64x2.add(a4, f64x2.promote_low_f32x4(v2));
      a5 = f64x2.add(a5, f64x2.promote_low_f32x4(i32x4.shuffle(v2, v2, 2, 3, 0, 1)));
      a6 = f64x2.add(a6, f64x2.promote_low_f32x4(v3));
      a7 = f64x2.add(a7, f64x2.promote_low_f32x4(i32x4.shuffle(v3, v3, 2, 3, 0, 1)));
      p += ld;
    }
    v128.store(out, i32x4.shuffle(f32x4.demote_f64x2_zero(a0), f32x4.demote_f64x2_zero(a1), 0, 1, 4, 5));
    v128.store(out, i32x4.shuffle(f32x4.demote_f64x2_zero(a2), f32x4.demote_f64x2_zero(a3), 0, 1, 4, 5), 16);
    v128.store(out, i32x4.shuffle(f32x4.demote_f64x2_zero(a4), f32x4.demote_f64x2_zero(a5), 0, 1, 4, 5), 32);
    v128.store(out, i32x4.shuffle(f32x4.demote_f64x2_zero(a6), f32x4.demote_f64x2_zero(a7), 0, 1, 4, 5), 48);
    return;
  }
  const init = f32x4.splat(op == 1 ? -Infinity : Infinity);
  let m0 = init;
  let m1 = init;
  let m2 = init;
  let m3 = init;
  let p = x;
  for (let r = 0; r < R; r++) {
    if (op == 1) {
      m0 = f32x4.max(m0, v128.load(p));
      m1 = f32x4.max(m1, v128.load(p, 16));
      m2 = f32x4.max(m2, v128.load(p, 32));
      m3 = f32x4.max(m3, v128.load(p, 48));
    } else {
      m0 = f32x4.min(m0, v128.load(p));
      m1 = f32x4.min(m1, v128.load(p, 16));
      m2 = f32x4.min(m2, v128.load(p, 32));
      m3 = f32x4.min(m3, v128.load(p, 48));
    }
    p += ld;
  }
  v128.store(out, m0);
  v128.store(out, m1, 16);
  v128.store(out, m2, 32);
  v128.store(out, m3, 48);
}

// @ts-expect-error: decorator
@inline function reduceColsLoop(op: i32, x: usize, R: i32, C: i32, ld: usize, out: usize): void {
  let c = 0;
  for (; c + 16 <= C; c += 16) reduceCols16(op, x + (<usize>c << 2), R, ld, out + (<usize>c << 2));
  for (; c + 4 <= C; c += 4) reduceCols4(op, x + (<usize>c << 2), R, ld, out + (<usize>c << 2));
  for (; c < C; c++) {
    let p = x + (<usize>c << 2);
    if (op == 0) {
      let s: f64 = 0;
      for (let r = 0; r < R; r++) {
        s += <f64>load<f32>(p);
        p += ld;
      }
      store<f32>(out + (<usize>c << 2), <f32>s);
    } else {
      let m: f32 = op == 1 ? -Infinity : Infinity;
      for (let r = 0; r < R; r++) {
        m = op == 1 ? max(m, load<f32>(p)) : min(m, load<f32>(p));
        p += ld;
      }
      store<f32>(out + (<usize>c << 2), m);
    }
  }
}

/** out (C) = reduction of x (R,C) (row stride ldx) down its R rows (op code: see the header). */
export function reduceCols(op: i32, x: usize, R: i32, C: i32, ldx: i32, out: usize): void {
  const ld = <usize>ldx << 2;
  if (op == 0) reduceColsLoop(0, x, R, C, ld, out);
  else if (op == 1) reduceColsLoop(1, x, R, C, ld, out);
  else reduceColsLoop(2, x, R, C, ld, out);
}

// ---- softmax -----------------------------------------------------------------------------------------------

/**
 * Softmax (log = 0) or log-softmax (log = 1) of each row of x (R,C) into out (R,C), as the reference: m the
 * NaN-propagating row max (0 when the row is all -inf), s = Σ e^(x - m) in float64, then e^(x - m)/s or
 * (x - m) - log(s).
 */
export function softmaxRows(log: i32, x: usize, R: i32, C: i32, out: usize): void {
  const stride = <usize>C << 2;
  for (let r = 0; r < R; r++) {
    const px = x + <usize>r * stride;
    const po = out + <usize>r * stride;
    let m = reduceRow(1, px, C);
    if (m == -Infinity) m = 0;
    if (!log) {
      const s = expSum(px, C, m, po);
      scaleRow(po, <f32>(1 / s), C);
      continue;
    }
    const ls = Math.log(expSum(px, C, m, 0));
    // (x - m) - log(s) in float64: x - m is exact there, one rounding at the end.
    const vm = f64x2.splat(<f64>m);
    const lo = f64x2.splat(ls);
    let c = 0;
    for (; c + 4 <= C; c += 4) {
      const o = <usize>c << 2;
      const v = v128.load(px + o);
      const a = f64x2.sub(f64x2.sub(f64x2.promote_low_f32x4(v), vm), lo);
      const b = f64x2.sub(f64x2.sub(f64x2.promote_low_f32x4(i32x4.shuffle(v, v, 2, 3, 0, 1)), vm), lo);
      v128.store(po + o, i32x4.shuffle(f32x4.demote_f64x2_zero(a), f32x4.demote_f64x2_zero(b), 0, 1, 4, 5));
    }
    for (; c < C; c++) {
      const o = <usize>c << 2;
      store<f32>(po + o, <f32>(<f64>load<f32>(px + o) - <f64>m - ls));
    }
  }
}
