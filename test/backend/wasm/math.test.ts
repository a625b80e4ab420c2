/**
 * The wasm erf, pow and scatterAdd kernels (assembly/math.ts) against the reference (`js`) kernels: through the
 * backend's kernel table below and above WASM_MIN_ELEMENTWISE and split across the thread pool, and straight
 * through the runtime (plain and relaxed SIMD) at sizes that leave 1-3 elements for the tails. erf within 3e-7
 * absolute (measured 1.8e-7; the requirement is 1e-6); pow within 1e-6 relative (float64 inside: measured
 * bit-identical to Math.pow rounded to float32, but for C's special cases below) and exact on its special cases;
 * scatterAdd bit for bit (the same float32 sums in the same order).
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import type { View } from '../../../src/backend/backend.js';
import { jsKernels } from '../../../src/backend/js/kernels.js';
import { WASM_MIN_ELEMENTWISE, wasmRuntime } from '../../../src/backend/wasm/backend.js';
import { ELEMENTWISE_MIN_PER_THREAD, initWasm } from '../../../src/backend/wasm/runtime.js';
import { put, rand, ELEMENTWISE_SIZES as SIZES, wasmKernelTable } from './helpers.js';

const rt = wasmRuntime();
const { wasm, info } = wasmKernelTable();
const single = rt && initWasm({ threads: 1 });
const multi = rt && initWasm({ threads: 2 });
/** The plain-SIMD binary (no fused multiply-add), which engines without relaxed SIMD run. */
const plain = rt && initWasm({ threads: 1, relaxedSimd: false });
after(() => {
  rt?.shutdown();
  multi?.shutdown();
});

/** Sizes for the runtime-level checks: empty, 1-3 tail elements, whole vectors, and a two-thread split. */
const TAILS = [0, 1, 2, 3, 4, 5, 7, 9, 17, 2 * ELEMENTWISE_MIN_PER_THREAD + 7];

const view = (data: Float32Array, shape: number[] = [data.length], offset = 0): View => {
  const strides = shape.map((_, i) => shape.slice(i + 1).reduce((a, d) => a * d, 1));
  return { data, dtype: 'float32', shape, strides, offset };
};
const scalarView = (value: number, n: number): View => ({
  data: Float32Array.of(value),
  dtype: 'float32',
  shape: [n],
  strides: [0],
  offset: 0,
});

const same = (g: number, w: number) => Object.is(g, w) || (Number.isNaN(g) && Number.isNaN(w));

/**
 * Non-finite and zero references must match exactly (the sign of zero too); the rest
 * within tol·max(|want|, floor). Returns the largest difference seen, for the log.
 */
function check(
  label: string,
  got: ArrayLike<number>,
  want: ArrayLike<number>,
  tol: number,
  floor: number,
): number {
  assert.equal(got.length, want.length, `${label}: length`);
  let worst = 0;
  for (let i = 0; i < want.length; i++) {
    const g = got[i]!;
    const w = want[i]!;
    if (!Number.isFinite(w) || w === 0 || tol === 0) {
      assert.ok(same(g, w), `${label}[${i}]: got ${g}, want ${w}`);
      continue;
    }
    const d = Math.abs(g - w) / Math.max(Math.abs(w), floor);
    assert.ok(d <= tol, `${label}[${i}]: got ${g}, want ${w} (difference ${d})`);
    worst = Math.max(worst, d);
  }
  return worst;
}

// Both the reference and the kernel keep the sign of zero (erf is odd; IEEE, PyTorch): compared exactly.
const ERF_SPECIALS = [
  Number.NaN,
  Number.POSITIVE_INFINITY,
  Number.NEGATIVE_INFINITY,
  0,
  -0,
  1e-40,
  -1e-40,
  1e-45,
  1e-20,
  0.999999,
  1,
  1.000001,
  -1,
  3.9,
  3.92,
  4,
  -4,
  5,
  -27,
  3.4e38,
];

/** erf inputs: a sweep over [-5, 5] (through both branches and the clamp), specials at both ends. */
function erfInputs(n: number, seed: number): Float32Array {
  const x = Float32Array.from(rand(n, seed), (v) => v * 5);
  for (let i = 0; i < Math.min(n, ERF_SPECIALS.length); i++) {
    x[i] = ERF_SPECIALS[i]!;
    x[n - 1 - i] = ERF_SPECIALS[i]!;
  }
  return x;
}

const POW_SPECIALS = [
  Number.NaN,
  Number.POSITIVE_INFINITY,
  Number.NEGATIVE_INFINITY,
  0,
  -0,
  1,
  -1,
  2,
  -2,
  0.5,
  -0.5,
  3,
  -3,
  2.5,
  -2.5,
  1e-40,
  -1e-40,
  1e30,
  -1e30,
  16777216,
  16777217,
  100,
  -100,
];

/** pow operands: bases over magnitudes 1e-4..1e4 of both signs; exponents a third integers, the rest spread. */
function powInputs(n: number, seed: number): [Float32Array, Float32Array] {
  const u = rand(n, seed);
  const v = rand(n, seed + 1);
  const w = rand(n, seed + 2);
  const a = Float32Array.from(u, (s, i) => Math.sign(s) * 10 ** (v[i]! * 4));
  const b = Float32Array.from(w, (s, i) => (i % 3 === 0 ? Math.round(s * 10) : s * 10 ** (v[i]! + 0.5)));
  return [a, b];
}

describe('wasm math kernels: erf, pow, scatterAdd', { skip: rt === undefined }, () => {
  test('erf, pow and scatterAdd are no longer fallbacks', () => {
    for (const k of ['erf', 'pow', 'scatterAdd']) {
      assert.ok(!info.fallbacks.includes(k), `${k} still falls back`);
    }
  });

  test('erf matches the reference within 3e-7 absolute', () => {
    for (const n of SIZES) {
      const x = erfInputs(n, n);
      const got = new Float32Array(n);
      const want = new Float32Array(n);
      wasm.erf(view(x), got);
      jsKernels.erf(view(x), want);
      const worst = check(`erf n=${n}`, got, want, 3e-7, 1);
      // Relative accuracy near zero too (erf(x) ~ 1.128·x), above float32's denormals.
      const rel = check(`erf n=${n} relative`, got, want, 4e-7, 1e-30);
      if (process.env.MINIBATCH_TEST_VERBOSE) console.log(`erf n=${n}: ${worst} absolute, ${rel} relative`);
    }
  });

  test('erf specials: ±Inf gives ±1, NaN stays NaN, the sign of zero is kept, |x| >= 3.92 rounds to ±1', () => {
    const n = WASM_MIN_ELEMENTWISE + 3;
    const x = new Float32Array(n).fill(0.25);
    x.set([Number.NaN, Infinity, -Infinity, 0, -0, 4, -4, 1e6, -3.4e38]);
    const out = new Float32Array(n);
    wasm.erf(view(x), out);
    assert.deepEqual(Array.from(out.subarray(0, 9)), [Number.NaN, 1, -1, 0, -0, 1, -1, 1, -1]);
    assert.ok(Object.is(out[4], -0));
  });

  for (const [label, r] of [
    ['1 thread', single],
    ['2 threads', multi],
    ['plain SIMD', plain],
  ] as const) {
    test(`erf and pow through the runtime at tail sizes (${label})`, () => {
      for (const n of TAILS) {
        // Arrays of at least one element (the scalar operand is element 0); n of them are used.
        const xs = erfInputs(Math.max(n, 1), n + 3);
        const x = xs.subarray(0, n);
        const [a, b] = powInputs(Math.max(n, 1), n + 5);
        const px = put(r!, xs);
        const pa = put(r!, a);
        const pb = put(r!, b);
        const po = r!.alloc(4 * n + 64);
        const want = new Float32Array(n);
        r!.erf(px, po, n);
        jsKernels.erf(view(x), want);
        check(`erf n=${n}`, r!.f32(po, n).slice(), want, 3e-7, 1);
        r!.pow(pa, pb, po, n);
        jsKernels.pow(view(a.subarray(0, n)), view(b.subarray(0, n)), want);
        check(`pow n=${n}`, r!.f32(po, n).slice(), want, 1e-6, 1e-30);
        r!.pow(pa, pb, po, n, 'b');
        jsKernels.pow(view(a.subarray(0, n)), scalarView(b[0]!, n), want);
        check(`pow x^s n=${n}`, r!.f32(po, n).slice(), want, 1e-6, 1e-30);
        r!.pow(pa, pb, po, n, 'a');
        jsKernels.pow(scalarView(a[0]!, n), view(b.subarray(0, n)), want);
        check(`pow s^x n=${n}`, r!.f32(po, n).slice(), want, 1e-6, 1e-30);
        for (const p of [px, pa, pb, po]) r!.free(p);
      }
    });
  }

  test('an element comes out the same at any position (tails run the vector code)', () => {
    const r = single!;
    const x = Float32Array.of(0.3, -1.7, 2.9, 0.3, -1.7, 2.9, 0.3);
    const y = Float32Array.of(2.2, 3, -0.7, 2.2, 3, -0.7, 2.2);
    const [px, py, po] = [put(r, x), put(r, y), r.alloc(64)];
    r.erf(px, po, 7);
    const e = r.f32(po, 7).slice();
    r.pow(px, py, po, 7);
    const p = r.f32(po, 7).slice();
    for (let i = 0; i < 4; i++) {
      assert.equal(e[i + 3], e[i]);
      assert.equal(p[i + 3], p[i]);
    }
    for (const q of [px, py, po]) r.free(q);
  });

  test('pow matches the reference within 1e-6 relative (dense, x^s and s^x)', () => {
    for (const n of SIZES) {
      const [a, b] = powInputs(n, n);
      const got = new Float32Array(n);
      const want = new Float32Array(n);
      wasm.pow(view(a), view(b), got);
      jsKernels.pow(view(a), view(b), want);
      check(`pow n=${n}`, got, want, 1e-6, 1e-30);
      for (const s of [2, 0.5, 3, -1, -2, 0, 1, 1.5, -0.5, Number.NaN, Number.POSITIVE_INFINITY]) {
        wasm.pow(view(a), scalarView(s, n), got);
        jsKernels.pow(view(a), scalarView(s, n), want);
        check(`pow x^${s} n=${n}`, got, want, 1e-6, 1e-30);
        const e = b.map((v) => v / 4);
        wasm.pow(scalarView(s, n), view(e), got);
        jsKernels.pow(scalarView(s, n), view(e), want);
        check(`pow ${s}^x n=${n}`, got, want, 1e-6, 1e-30);
      }
    }
  });

  test("pow special cases are exactly C's pow (PyTorch's) rounded to float32", () => {
    // C's pow is JavaScript's ** but for 1^y = 1 (NaN y too) and (-1)^±Inf = 1.
    const cPow = (x: number, y: number) => (x === 1 || (x === -1 && Math.abs(y) === Infinity) ? 1 : x ** y);
    const pairs: [number, number][] = [];
    for (const x of POW_SPECIALS) for (const y of POW_SPECIALS) pairs.push([x, y]);
    const n = Math.max(WASM_MIN_ELEMENTWISE, pairs.length) + 1;
    const a = new Float32Array(n).fill(1.5);
    const b = new Float32Array(n).fill(2);
    pairs.forEach(([x, y], i) => {
      a[i] = x;
      b[i] = y;
    });
    const got = new Float32Array(n);
    wasm.pow(view(a), view(b), got);
    for (let i = 0; i < pairs.length; i++) {
      const want = Math.fround(cPow(a[i]!, b[i]!));
      assert.ok(same(got[i]!, want), `pow(${a[i]}, ${b[i]}): got ${got[i]}, want ${want}`);
    }
    // The rules by name: x^0 = 1 for NaN, negative bases, 0^-y = Inf, x^2 and x^0.5 exact.
    const at = (x: number, y: number) => got[pairs.findIndex(([p, q]) => Object.is(p, x) && Object.is(q, y))];
    assert.equal(at(Number.NaN, 0), 1);
    assert.equal(at(1, Number.NaN), 1);
    assert.equal(at(-1, Infinity), 1);
    assert.equal(at(-2, 3), -8);
    assert.equal(at(-2, 2), 4);
    assert.ok(Number.isNaN(at(-2, 2.5)!));
    assert.equal(at(0, -2), Infinity);
    assert.equal(at(-0, -3), -Infinity);
    assert.equal(at(100, 2), 10000);
    assert.equal(at(100, 0.5), 10);
    assert.equal(at(1, Infinity), 1);
  });

  test('strided and broadcast views fall back to the reference', () => {
    const n = WASM_MIN_ELEMENTWISE * 2;
    const data = erfInputs(n, 12);
    const strided: View = { data, dtype: 'float32', shape: [n / 2], strides: [2], offset: 1 };
    const got = new Float32Array(n / 2);
    const want = new Float32Array(n / 2);
    wasm.erf(strided, got);
    jsKernels.erf(strided, want);
    check('erf strided', got, want, 0, 1);
    const [a, b] = powInputs(n, 3);
    const rows: View = { data: b, dtype: 'float32', shape: [n / 256, 128], strides: [0, 1], offset: 7 };
    const base: View = view(a.subarray(0, n / 2), [n / 256, 128]);
    wasm.pow(base, rows, got);
    jsKernels.pow(base, rows, want);
    check('pow row-broadcast', got, want, 0, 1);
    wasm.pow(strided, view(b.subarray(0, n / 2)), got);
    jsKernels.pow(strided, view(b.subarray(0, n / 2)), want);
    check('pow strided', got, want, 0, 1);
  });

  /** scatterAdd cases: dst shape, axis, index length; dst starts non-zero (the kernel adds into it). */
  const scatterCases: { shape: number[]; axis: number; I: number; label: string }[] = [
    { shape: [1000, 64], axis: 0, I: 512, label: 'embedding rows (touched rows only)' },
    { shape: [50000, 32], axis: 0, I: 700, label: 'large table, few rows' },
    {
      shape: [300, 17],
      axis: 0,
      I: Math.ceil((2 * ELEMENTWISE_MIN_PER_THREAD) / 17),
      label: 'rows, two threads',
    },
    { shape: [3000, 5], axis: 0, I: 4000, label: 'short rows (all of dst copied)' },
    { shape: [40, 30, 20], axis: 1, I: 50, label: 'middle axis, outer >= D' },
    { shape: [4, 300, 24], axis: 1, I: 400, label: 'middle axis, outer < D' },
    { shape: [64, 1000, 3], axis: 1, I: 700, label: 'middle axis, outer < D, two threads' },
    { shape: [2000, 3, 4], axis: 1, I: 20, label: 'middle axis, outer >= D, two threads' },
    { shape: [200, 50], axis: 1, I: 120, label: 'last axis (inner 1)' },
    { shape: [WASM_MIN_ELEMENTWISE + 5], axis: 0, I: WASM_MIN_ELEMENTWISE + 9, label: '1-D' },
    { shape: [100000, 8], axis: 0, I: 2100, label: 'dst too large for the copy: reference' },
    { shape: [100, 16], axis: 0, I: 10, label: 'below the threshold: reference' },
  ];
  for (const { shape, axis, I, label } of scatterCases) {
    test(`scatterAdd ${label}: dst ${JSON.stringify(shape)}, axis ${axis}, ${I} indices`, () => {
      const D = shape[axis]!;
      const srcShape = shape.map((d, i) => (i === axis ? I : d));
      const ns = srcShape.reduce((p, d) => p * d, 1);
      const nd = shape.reduce((p, d) => p * d, 1);
      // Repeated indices (a few hot rows, like frequent tokens), in no order.
      const index = Int32Array.from(rand(I, I + D), (v, i) =>
        i % 4 === 0 ? i % 3 : Math.floor(((v + 1) / 2) * D),
      );
      const src = rand(ns, ns);
      const start = rand(nd, nd).map((v) => (v > 0.5 ? v : 0));
      const got = start.slice();
      const want = start.slice();
      wasm.scatterAdd(view(got, shape), axis, index, view(src, srcShape));
      jsKernels.scatterAdd(view(want, shape), axis, index, view(src, srcShape));
      check('scatterAdd', got, want, 0, 1);
    });
  }

  test('scatterAdd with offset views and a non-dense src', () => {
    const shape = [500, 40];
    const I = 600;
    const index = Int32Array.from(rand(I, 1), (v) => Math.floor(((v + 1) / 2) * 500));
    const srcStore = rand(I * 40 + 9, 2);
    const dstStore = rand(500 * 40 + 5, 3);
    const src = view(srcStore, [I, 40], 9);
    const got = dstStore.slice();
    const want = dstStore.slice();
    wasm.scatterAdd(view(got, shape, 5), 0, index, src);
    jsKernels.scatterAdd(view(want, shape, 5), 0, index, src);
    check('scatterAdd offset', got, want, 0, 1);
    // src transposed (a permuted gradient): the reference path.
    const t: View = { data: srcStore, dtype: 'float32', shape: [I, 40], strides: [1, I], offset: 0 };
    const got2 = dstStore.slice();
    const want2 = dstStore.slice();
    wasm.scatterAdd(view(got2, shape), 0, index, t);
    jsKernels.scatterAdd(view(want2, shape), 0, index, t);
    check('scatterAdd transposed src', got2, want2, 0, 1);
  });

  for (const [label, r] of [
    ['1 thread', single],
    ['2 threads', multi],
  ] as const) {
    test(`scatterAdd through the runtime at ragged row lengths (${label})`, () => {
      for (const [outer, D, I, inner] of [
        [1, 3, 5, 1],
        [1, 4, 9, 3],
        [2, 5, 7, 5],
        [3, 2, 4, 9],
        [1, 7, 0, 4],
        [1, 4099, Math.ceil((2 * ELEMENTWISE_MIN_PER_THREAD) / 7), 7],
        [Math.ceil((2 * ELEMENTWISE_MIN_PER_THREAD) / 6), 2, 3, 2],
      ] as const) {
        const index = Int32Array.from(rand(Math.max(I, 1), D + I), (v) =>
          Math.floor(((v + 1) / 2) * D),
        ).subarray(0, I);
        const src = rand(Math.max(outer * I * inner, 1), 4).subarray(0, outer * I * inner);
        const dst = rand(outer * D * inner, 5);
        const want = dst.slice();
        jsKernels.scatterAdd(view(want, [outer, D, inner]), 1, index, view(src, [outer, I, inner]));
        const [pd, ps, pi] = [put(r!, dst), r!.alloc(4 * src.length + 64), r!.alloc(4 * I + 64)];
        r!.f32(ps, src.length).set(src);
        r!.i32(pi, I).set(index);
        r!.scatterAdd(pd, ps, pi, outer, D, I, inner);
        check(`scatterAdd (${outer}, ${D}, ${I}, ${inner})`, r!.f32(pd, dst.length).slice(), want, 0, 1);
        for (const p of [pd, ps, pi]) r!.free(p);
      }
    });
  }
});
