/**
 * The optimizers' per-element updates as reference kernels (`sgdUpdate`, `adamUpdate`, `rmspropUpdate`,
 * `adagradUpdate` of the js backend): the
 * oracle the SIMD kernels (src/backend/wasm/assembly/optim.ts) match bit for bit. Flat loops over dense
 * float32 storage, in PyTorch's order of operations and roundings (see SgdUpdate, AdamUpdate).
 */
import type { KernelTable } from '../backend/backend.js';

/**
 * `a·b + c` rounded once to float32, from float32 inputs: what ATen's `add(x, y, alpha)` and `addcmul` compute
 * on x86 with FMA (`vec::fmadd`, and the compiler contracts the scalar tail loop too). The fixtures, made on
 * such a machine, match it bit for bit and differ from two roundings in the last bit.
 * NOTE: a·b is exact in float64 and the sum is rounded twice (float64, then float32); that differs from one
 * rounding only if the float64 sum lands exactly halfway between two floats, about one case in 2^29.
 */
export const fmadd = (a: number, b: number, c: number): number => Math.fround(a * b + c);

export const sgdUpdate: KernelTable['sgdUpdate'] = (p, g, b, h) => {
  const f = Math.fround;
  const { wd, mu, keep, negLr, first, nesterov, maximize } = h;
  const n = p.length;
  if (b && !maximize && wd === 0 && !first && !nesterov && keep === 1) {
    // The common case (plain momentum) without per-element branches: the same roundings as below.
    for (let i = 0; i < n; i++) {
      const v = f(g[i]! + f(mu * b[i]!));
      b[i] = v;
      p[i] = f(negLr * v + p[i]!);
    }
    return;
  }
  for (let i = 0; i < n; i++) {
    let d = maximize ? -g[i]! : g[i]!;
    if (wd !== 0) d = fmadd(wd, p[i]!, d);
    if (b) {
      const v = first ? d : fmadd(keep, d, f(mu * b[i]!));
      b[i] = v;
      d = nesterov ? fmadd(mu, v, d) : v;
    }
    p[i] = fmadd(negLr, d, p[i]!);
  }
};

export const adamUpdate: KernelTable['adamUpdate'] = (p, g, m, v, vmax, h) => {
  const f = Math.fround;
  const { b1, b2, keep1, keep2, negStepSize, bc2Sqrt, eps, wd, shrink, decoupled, maximize } = h;
  for (let i = 0, n = p.length; i < n; i++) {
    let gi = maximize ? -g[i]! : g[i]!;
    if (decoupled) p[i] = p[i]! * shrink;
    else if (wd !== 0) gi = fmadd(wd, p[i]!, gi);
    const mi = fmadd(keep1, gi, f(b1 * m[i]!));
    let vi = fmadd(f(keep2 * gi), gi, f(b2 * v[i]!));
    m[i] = mi;
    v[i] = vi;
    if (vmax) vi = vmax[i] = Math.max(vmax[i]!, vi);
    const denom = f(f(f(Math.sqrt(vi)) / bc2Sqrt) + eps);
    p[i] = p[i]! + f(f(negStepSize * mi) / denom);
  }
};

// ATen's addcmul(s, t1, t2, value) is fmadd(value·t1, t2, s) and addcdiv(s, t1, t2, value) is
// s + (value·t1)/t2, each step rounded to float32 (as Adam's loop above).

export const rmspropUpdate: KernelTable['rmspropUpdate'] = (p, g, sq, gavg, buf, h) => {
  const f = Math.fround;
  const { alpha, keep, eps, wd, mu, negLr, maximize } = h;
  for (let i = 0, n = p.length; i < n; i++) {
    let gi = maximize ? -g[i]! : g[i]!;
    if (wd !== 0) gi = fmadd(wd, p[i]!, gi);
    const si = fmadd(f(keep * gi), gi, f(alpha * sq[i]!));
    sq[i] = si;
    let avg: number;
    if (gavg) {
      const ai = fmadd(keep, gi, f(alpha * gavg[i]!));
      gavg[i] = ai;
      avg = f(f(Math.sqrt(fmadd(-ai, ai, si))) + eps);
    } else {
      avg = f(f(Math.sqrt(si)) + eps);
    }
    if (buf) {
      const bi = f(f(mu * buf[i]!) + f(gi / avg));
      buf[i] = bi;
      p[i] = fmadd(negLr, bi, p[i]!);
    } else {
      p[i] = f(p[i]! + f(f(negLr * gi) / avg));
    }
  }
};

export const adagradUpdate: KernelTable['adagradUpdate'] = (p, g, sum, h) => {
  const f = Math.fround;
  const { eps, wd, negClr, maximize } = h;
  for (let i = 0, n = p.length; i < n; i++) {
    let gi = maximize ? -g[i]! : g[i]!;
    if (wd !== 0) gi = fmadd(wd, p[i]!, gi);
    const si = fmadd(gi, gi, sum[i]!);
    sum[i] = si;
    p[i] = f(p[i]! + f(f(negClr * gi) / f(f(Math.sqrt(si)) + eps)));
  }
};
