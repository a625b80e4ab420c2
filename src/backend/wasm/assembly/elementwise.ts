// Elementwise, reduction and loss kernels on raw pointers, one thread's share (the JS side splits ranges).
//
//   n = elements of a flat array; R = rows, C = columns of a row-major (R,C) array.
//   Binary op codes: 0 add, 1 sub, 2 mul, 3 div. Targets are i32 class indices in [0, C).
// Main loops go 4 lanes at a time with a scalar tail; pointers need no alignment.

import { expV } from './simd';

// @ts-expect-error: decorator
@inline function opV(op: i32, x: v128, y: v128): v128 {
  if (op == 0) return f32x4.add(x, y);
  if (op == 1) return f32x4.sub(x, y);
  if (op == 2) return f32x4.mul(x, y);
  return f32x4.div(x, y);
}

// @ts-expect-error: decorator
@inline function opS(op: i32, x: f32, y: f32): f32 {
  if (op == 0) return x + y;
  if (op == 1) return x - y;
  if (op == 2) return x * y;
  return x / y;
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
  else binLoop(3, a, b, out, n);
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
    const o = <usize>i << 2;
    store<f32>(out + o, max(load<f32>(x + o), 0));
  }
}

/** dx (n) = dy where x > 0, else 0. x may be the ReLU input or its output: the mask is the same. */
export function reluBackward(x: usize, dy: usize, dx: usize, n: i32): void {
  const zero = f32x4.splat(0);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    v128.store(dx + o, v128.and(v128.load(dy + o), f32x4.gt(v128.load(x + o), zero)));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    store<f32>(dx + o, load<f32>(x + o) > 0 ? load<f32>(dy + o) : 0);
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
    const src = x + (<usize>i << 2);
    const dst = out + (<usize>i << 2);
    const rest = n - i;
    let v = f32x4.splat(0);
    v = f32x4.replace_lane(v, 0, load<f32>(src));
    if (rest > 1) v = f32x4.replace_lane(v, 1, load<f32>(src, 4));
    if (rest > 2) v = f32x4.replace_lane(v, 2, load<f32>(src, 8));
    v = expV(v);
    store<f32>(dst, f32x4.extract_lane(v, 0));
    if (rest > 1) store<f32>(dst, f32x4.extract_lane(v, 1), 4);
    if (rest > 2) store<f32>(dst, f32x4.extract_lane(v, 2), 8);
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
    const vm = f32x4.splat(m);
    let acc = f32x4.splat(0);
    let s: f32 = 0;
    let c = 0;
    const pr = probs + <usize>r * stride;
    for (; c + 4 <= C; c += 4) {
      const e = expV(f32x4.sub(v128.load(x + (<usize>c << 2)), vm));
      if (probs) v128.store(pr + (<usize>c << 2), e);
      acc = f32x4.add(acc, e);
    }
    for (; c < C; c++) {
      const e = f32x4.extract_lane(expV(f32x4.splat(load<f32>(x + (<usize>c << 2)) - m)), 0);
      if (probs) store<f32>(pr + (<usize>c << 2), e);
      s += e;
    }
    s += f32x4.extract_lane(acc, 0) + f32x4.extract_lane(acc, 1) + (f32x4.extract_lane(acc, 2) + f32x4.extract_lane(acc, 3));
    const t = load<i32>(targets + (<usize>r << 2));
    store<f32>(loss + (<usize>r << 2), <f32>(<f64>m + Math.log(<f64>s) - <f64>load<f32>(x + (<usize>t << 2))));
    if (probs) {
      const inv = f32x4.splat(1 / s);
      c = 0;
      for (; c + 4 <= C; c += 4) {
        const o = pr + (<usize>c << 2);
        v128.store(o, f32x4.mul(v128.load(o), inv));
      }
      for (; c < C; c++) {
        const o = pr + (<usize>c << 2);
        store<f32>(o, load<f32>(o) / s);
      }
    }
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
