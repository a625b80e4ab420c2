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

/** Per-channel mean and invstd = 1/sqrt(var + eps) (biased, two passes), out = (x - mean)·invstd·w + b. */
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
): void {
  const n = <f64>N * <f64>S;
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
        v128.store(
          q + o,
          i32x4.shuffle(f32x4.demote_f64x2_zero(y0), f32x4.demote_f64x2_zero(y1), 0, 1, 4, 5),
        );
      }
      for (; j < S; j++) {
        const o = <usize>j << 2;
        store<f32>(q + o, <f32>((<f64>load<f32>(p + o) - m) * is * wc + bc));
      }
    }
  }
}

/** dx = w·invstd·(dy - mean(dy) - x̂·mean(dy·x̂)), dw = Σ dy·x̂, db = Σ dy (x̂ = (x - mean)·invstd). */
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
): void {
  const n = <f64>N * <f64>S;
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
      let j = 0;
      for (; j + 4 <= S; j += 4) {
        const o = <usize>j << 2;
        const v = v128.load(p + o);
        const d = v128.load(g + o);
        const g0 = f64x2.promote_low_f32x4(d);
        const g1 = f64x2.promote_low_f32x4(i32x4.shuffle(d, d, 2, 3, 0, 1));
        const h0 = f64x2.mul(f64x2.sub(f64x2.promote_low_f32x4(v), vm), vis);
        const h1 = f64x2.mul(f64x2.sub(f64x2.promote_low_f32x4(i32x4.shuffle(v, v, 2, 3, 0, 1)), vm), vis);
        a1 = f64x2.add(f64x2.add(a1, g0), g1);
        a2 = f64x2.add(f64x2.add(a2, f64x2.mul(g0, h0)), f64x2.mul(g1, h1));
      }
      for (; j < S; j++) {
        const o = <usize>j << 2;
        const gv = <f64>load<f32>(g + o);
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
      const q = dx + off;
      let j = 0;
      for (; j + 4 <= S; j += 4) {
        const o = <usize>j << 2;
        const v = v128.load(p + o);
        const d = v128.load(g + o);
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
        v128.store(
          q + o,
          i32x4.shuffle(f32x4.demote_f64x2_zero(y0), f32x4.demote_f64x2_zero(y1), 0, 1, 4, 5),
        );
      }
      for (; j < S; j++) {
        const o = <usize>j << 2;
        store<f32>(
          q + o,
          <f32>(k * (<f64>load<f32>(g + o) - mdy - (<f64>load<f32>(p + o) - m) * is * mdyx)),
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
