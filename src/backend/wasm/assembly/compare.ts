// Comparisons and select on raw pointers, one thread's share of n flat elements.
//
//   Compare op codes: 0 eq, 1 ne, 2 lt, 3 le, 4 gt, 5 ge; out is n bytes of 0/1 (NaN compares false except
//   ne, as IEEE). select: out[i] = cond[i] != 0 ? a[i] : b[i], cond n bytes.

// @ts-expect-error: decorator
@inline function cmpV(op: i32, x: v128, y: v128): v128 {
  if (op == 0) return f32x4.eq(x, y);
  if (op == 1) return f32x4.ne(x, y);
  if (op == 2) return f32x4.lt(x, y);
  if (op == 3) return f32x4.le(x, y);
  if (op == 4) return f32x4.gt(x, y);
  return f32x4.ge(x, y);
}

// @ts-expect-error: decorator
@inline function cmpS(op: i32, x: f32, y: f32): bool {
  if (op == 0) return x == y;
  if (op == 1) return x != y;
  if (op == 2) return x < y;
  if (op == 3) return x <= y;
  if (op == 4) return x > y;
  return x >= y;
}

// @ts-expect-error: decorator
@inline function cmpLoop(op: i32, a: usize, b: usize, out: usize, n: i32): void {
  const one = i8x16.splat(1);
  let i = 0;
  for (; i + 16 <= n; i += 16) {
    const o = <usize>i << 2;
    const m0 = cmpV(op, v128.load(a + o), v128.load(b + o));
    const m1 = cmpV(op, v128.load(a + o + 16), v128.load(b + o + 16));
    const m2 = cmpV(op, v128.load(a + o + 32), v128.load(b + o + 32));
    const m3 = cmpV(op, v128.load(a + o + 48), v128.load(b + o + 48));
    const lo = i16x8.narrow_i32x4_s(m0, m1);
    const hi = i16x8.narrow_i32x4_s(m2, m3);
    v128.store(out + <usize>i, v128.and(i8x16.narrow_i16x8_s(lo, hi), one));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    store<u8>(out + <usize>i, cmpS(op, load<f32>(a + o), load<f32>(b + o)) ? 1 : 0);
  }
}

/** out (n bytes) = a (n) op b (n) as 0/1. */
export function compare(op: i32, a: usize, b: usize, out: usize, n: i32): void {
  if (op == 0) cmpLoop(0, a, b, out, n);
  else if (op == 1) cmpLoop(1, a, b, out, n);
  else if (op == 2) cmpLoop(2, a, b, out, n);
  else if (op == 3) cmpLoop(3, a, b, out, n);
  else if (op == 4) cmpLoop(4, a, b, out, n);
  else cmpLoop(5, a, b, out, n);
}

/** out (n) = cond[i] != 0 ? a[i] : b[i]; cond is n bytes, a, b, out n floats (bits copied as they are). */
export function select(cond: usize, a: usize, b: usize, out: usize, n: i32): void {
  const zero = i32x4.splat(0);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    const c = i32x4.extend_low_i16x8_u(i16x8.extend_low_i8x16_u(v128.load32_zero(cond + <usize>i)));
    const m = i32x4.ne(c, zero);
    v128.store(out + o, v128.bitselect(v128.load(a + o), v128.load(b + o), m));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    store<u32>(out + o, load<u8>(cond + <usize>i) ? load<u32>(a + o) : load<u32>(b + o));
  }
}

/** out (R) = index of the first max (min when `isMin`) of each row of x (R, C), C >= 1; a NaN wins. */
export function argReduceRows(isMin: i32, x: usize, R: i32, C: i32, out: usize): void {
  for (let r = 0; r < R; r++) {
    const p = x + ((<usize>r * <usize>C) << 2);
    let best = load<f32>(p);
    let bi = 0;
    if (best == best) {
      for (let j = 1; j < C; j++) {
        const v = load<f32>(p + (<usize>j << 2));
        if (v != v) {
          bi = j;
          break;
        }
        if (isMin ? v < best : v > best) {
          best = v;
          bi = j;
        }
      }
    }
    store<i32>(out + (<usize>r << 2), bi);
  }
}
