/**
 * The wasm backend's registered kernels against the reference (`js`) kernels: random dense inputs just below
 * and above WASM_MIN_ELEMENTWISE (the reference path and the wasm path), one split across the thread pool,
 * and special values (NaN, ±Inf, ±0, ±1000, denormals); binary ops with a repeated-row or scalar operand.
 * Exact where the op is (abs, neg, sign, maximum, minimum, clamp, relu, reluBackward, binary ops), else within
 * 1e-6 relative.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import type { KernelTable, View } from '../../../src/backend/backend.js';
import { jsKernels } from '../../../src/backend/js/kernels.js';
import { WASM_MIN_ELEMENTWISE, WASM_MIN_MACS, wasmRuntime } from '../../../src/backend/wasm/backend.js';
import { ELEMENTWISE_MIN_PER_THREAD } from '../../../src/backend/wasm/runtime.js';
import { rand, ELEMENTWISE_SIZES as SIZES, wasmKernelTable } from './helpers.js';

const rt = wasmRuntime();
const { wasm, info } = wasmKernelTable();
after(() => rt?.shutdown());
const SPECIALS = [
  Number.NaN,
  Number.POSITIVE_INFINITY,
  Number.NEGATIVE_INFINITY,
  0,
  -0,
  1000,
  -1000,
  1e-40,
  -1e-40,
  1,
  -1,
  88.5,
  -88.5,
  1e-4,
  -1e-4,
  0.625,
  -0.625,
  20,
  -20,
  3.4e38,
];

const view = (data: Float32Array, shape: number[] = [data.length]): View => {
  const strides = shape.map((_, i) => shape.slice(i + 1).reduce((a, d) => a * d, 1));
  return { data, dtype: 'float32', shape, strides, offset: 0 };
};

/** Random values spread over magnitudes 1e-6..1e3 of both signs, specials first (repeated past the tails). */
function inputs(n: number, seed: number, positive = false): Float32Array {
  const u = rand(n, seed);
  const v = rand(n, seed + 100);
  const x = Float32Array.from(u, (a, i) => Math.sign(a) * 10 ** (Math.abs(v[i]!) * 9 - 6));
  for (let i = 0; i < SPECIALS.length; i++) x[i * 5] = SPECIALS[i]!;
  for (let i = 0; i < SPECIALS.length; i++) x[n - 1 - i] = SPECIALS[i]!;
  return positive ? x.map((a) => Math.abs(a)) : x;
}

/**
 * got vs want: NaN where NaN, equal infinities, else |got - want| <= tol·max(|want|, floor) (tol 0: equal
 * values; -0 and +0 count as equal).
 */
function check(
  label: string,
  got: ArrayLike<number>,
  want: ArrayLike<number>,
  tol: number,
  floor = 1e-35,
): void {
  assert.equal(got.length, want.length, `${label}: length`);
  for (let i = 0; i < want.length; i++) {
    const w = want[i]!;
    const g = got[i]!;
    if (Number.isNaN(w) || Number.isNaN(g)) {
      assert.ok(Number.isNaN(g) && Number.isNaN(w), `${label}[${i}]: got ${g}, want ${w}`);
      continue;
    }
    if (tol === 0 || !Number.isFinite(w)) {
      assert.ok(g === w, `${label}[${i}]: got ${g}, want ${w}`);
      continue;
    }
    const d = Math.abs(g - w) / Math.max(Math.abs(w), floor);
    assert.ok(d <= tol, `${label}[${i}]: got ${g}, want ${w} (relative difference ${d})`);
  }
}

const TOL = 1e-6;

/** The wasm log kernel, built but not registered yet (see wasm/backend.ts), called through the runtime. */
function wasmLog(x: View, out: Float32Array): void {
  const n = out.length;
  const p = rt!.alloc(8 * n);
  rt!.f32(p, n).set((x.data as Float32Array).subarray(x.offset, x.offset + n));
  rt!.unary('log', p, p + 4 * n, n);
  out.set(rt!.f32(p + 4 * n, n));
  rt!.free(p);
}

describe('wasm kernel registry', { skip: rt === undefined }, () => {
  test('the registered kernels are no longer fallbacks', () => {
    for (const k of [
      'reluBackward',
      'softmaxCrossEntropy',
      'softmaxCrossEntropyBackward',
      'sum',
      'max',
      'min',
      'neg',
      'abs',
      'sqrt',
      'sign',
      'sigmoid',
      'tanh',
      'maximum',
      'minimum',
      'clamp',
      'softmax',
      'logSoftmax',
    ]) {
      assert.ok(!info.fallbacks.includes(k), `${k} still falls back`);
    }
  });

  const unary: [
    keyof KernelTable & ('neg' | 'abs' | 'sqrt' | 'sign' | 'sigmoid' | 'tanh' | 'log' | 'relu'),
    number,
  ][] = [
    ['neg', 0],
    ['abs', 0],
    ['sign', 0],
    ['relu', 0],
    ['sqrt', TOL],
    ['sigmoid', TOL],
    ['tanh', TOL],
    ['log', TOL],
  ];
  for (const [op, tol] of unary) {
    test(`${op} matches the reference`, () => {
      for (const n of SIZES) {
        for (const positive of op === 'log' || op === 'sqrt' ? [false, true] : [false]) {
          const x = inputs(n, n + 1, positive);
          const got = new Float32Array(n);
          const want = new Float32Array(n);
          (op === 'log' ? wasmLog : wasm[op])(view(x), got);
          jsKernels[op](view(x), want);
          check(`${op} n=${n}`, got, want, tol);
        }
      }
    });
  }

  // One op per element in float32 either way, so wasm and the reference agree exactly, NaN and ±0 included.
  test('binary ops with a repeated row or a scalar b match the reference exactly', () => {
    const rowView = (row: Float32Array, shape: number[]): View => ({
      data: row,
      dtype: 'float32',
      shape,
      strides: shape.map((_, i) => (i === shape.length - 1 ? 1 : 0)),
      offset: 0,
    });
    for (const op of ['add', 'sub', 'mul', 'div', 'maximum', 'minimum'] as const) {
      // Rows of 1, 3 (no SIMD step), 13 and 256; (2, 3, 300) a row over two leading dims; below the threshold.
      for (const shape of [
        [600, 1],
        [200, 3],
        [64, 13],
        [128, 256],
        [2, 3, 300],
        [4, 100],
      ]) {
        const n = shape.reduce((x, d) => x * d, 1);
        const C = shape[shape.length - 1]!;
        const a = inputs(n, n + 7);
        const row = inputs(Math.max(C, SPECIALS.length + 1), C + 3).subarray(0, C);
        const got = new Float32Array(n);
        const want = new Float32Array(n);
        wasm[op](view(a, shape), rowView(row, shape), got);
        jsKernels[op](view(a, shape), rowView(row, shape), want);
        check(`${op} row ${shape.join('x')}`, got, want, 0);
      }
      for (const s of [2.5, -0, Number.NaN, Number.POSITIVE_INFINITY, 1e-40]) {
        for (const n of SIZES) {
          const a = inputs(n, n + 11);
          const b: View = {
            data: Float32Array.of(7, s),
            dtype: 'float32',
            shape: [n],
            strides: [0],
            offset: 1,
          };
          const got = new Float32Array(n);
          const want = new Float32Array(n);
          wasm[op](view(a), b, got);
          jsKernels[op](view(a), b, want);
          check(`${op} scalar ${s} n=${n}`, got, want, 0);
        }
      }
    }
  });

  test('log and sqrt specials are IEEE', () => {
    const n = WASM_MIN_ELEMENTWISE + 4;
    const x = new Float32Array(n).fill(2);
    x.set([0, -0, -1, Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 1, 1e-45]);
    const out = new Float32Array(n);
    wasmLog(view(x), out);
    assert.deepEqual(Array.from(out.subarray(0, 8)), [
      Number.NEGATIVE_INFINITY,
      Number.NEGATIVE_INFINITY,
      Number.NaN,
      Number.NaN,
      Number.POSITIVE_INFINITY,
      Number.NaN,
      0,
      Math.fround(Math.log(Math.fround(1e-45))),
    ]);
    wasm.sqrt(view(x), out);
    assert.ok(Number.isNaN(out[2]!) && Number.isNaN(out[3]!) && Object.is(out[1], -0));
    assert.equal(out[4], Number.POSITIVE_INFINITY);
  });

  for (const op of ['maximum', 'minimum'] as const) {
    test(`${op} matches the reference (NaN-propagating)`, () => {
      for (const n of SIZES) {
        const a = inputs(n, 7);
        const b = inputs(n, 8);
        b.copyWithin(0, 3, 3 + 3 * SPECIALS.length);
        const got = new Float32Array(n);
        const want = new Float32Array(n);
        wasm[op](view(a), view(b), got);
        jsKernels[op](view(a), view(b), want);
        check(`${op} n=${n}`, got, want, 0);
      }
    });
  }

  test('clamp matches the reference', () => {
    for (const n of SIZES) {
      const x = inputs(n, 9);
      for (const [lo, hi] of [
        [-1, 1],
        [0.1, 0.7],
        [Number.NEGATIVE_INFINITY, 0],
        [0, Number.POSITIVE_INFINITY],
        [-1000, 1000],
      ] as const) {
        const got = new Float32Array(n);
        const want = new Float32Array(n);
        wasm.clamp(view(x), lo, hi, got);
        jsKernels.clamp(view(x), lo, hi, want);
        check(`clamp [${lo}, ${hi}] n=${n}`, got, want, 0);
      }
    }
  });

  test('reluBackward matches the reference', () => {
    for (const n of SIZES) {
      const x = inputs(n, 10);
      const g = inputs(n, 11);
      const got = new Float32Array(n);
      const want = new Float32Array(n);
      wasm.reluBackward(view(x), view(g), got);
      jsKernels.reluBackward(view(x), view(g), want);
      check(`reluBackward n=${n}`, got, want, 0);
    }
  });

  // (R, C) shapes around the threshold, with ragged column counts for the scalar tails.
  const SHAPES: [number, number][] = [
    [127, 129],
    [128, 128],
    [129, 131],
    [4, 4099],
    [4099, 5],
    [1, WASM_MIN_ELEMENTWISE + 3],
    [WASM_MIN_ELEMENTWISE + 3, 1],
    [2, 2 * ELEMENTWISE_MIN_PER_THREAD + 9],
    [ELEMENTWISE_MIN_PER_THREAD + 9, 3],
  ];

  test('sum, max, min over the last and first axes match the reference', () => {
    for (const [R, C] of SHAPES) {
      const x = rand(R * C, R + C).map((v) => v * 100);
      const xs = inputs(R * C, R);
      for (const data of [x, xs]) {
        for (const axes of [[1], [0], [0, 1]]) {
          for (const op of ['sum', 'max', 'min'] as const) {
            const m = axes.length === 2 ? 1 : axes[0] === 1 ? R : C;
            const got = new Float32Array(m);
            const want = new Float32Array(m);
            wasm[op](view(data, [R, C]), axes, got);
            jsKernels[op](view(data, [R, C]), axes, want);
            check(`${op} axes=${axes} ${R}x${C}`, got, want, op === 'sum' ? TOL : 0);
          }
        }
      }
    }
  });

  test('sum over trailing and leading axis runs of a 3-D tensor', () => {
    const shape = [8, 40, 60];
    const x = rand(8 * 40 * 60, 3);
    for (const axes of [[2], [1, 2], [0], [0, 1], [1], [0, 2]]) {
      const m = shape.filter((_, i) => !axes.includes(i)).reduce((a, d) => a * d, 1);
      const got = new Float32Array(m);
      const want = new Float32Array(m);
      wasm.sum(view(x, shape), axes, got);
      jsKernels.sum(view(x, shape), axes, want);
      check(`sum axes=${axes}`, got, want, TOL);
    }
  });

  test('softmax and logSoftmax over the last axis match the reference', () => {
    for (const [R, C] of SHAPES) {
      const x = rand(R * C, R * 3 + C).map((v) => v * 20);
      const rows: number[][] = [
        [1000, -1000, 0],
        [-1000, -1000, -1000],
        [Number.NaN, 1, 2],
        [Number.POSITIVE_INFINITY, 1, 2],
        [Number.NEGATIVE_INFINITY, 1, 2],
        [88, -88, 0],
      ];
      if (C >= 3) {
        for (let r = 0; r < Math.min(R, rows.length); r++) x.set(rows[r]!, r * C);
      }
      if (C >= 3 && R > rows.length) x.fill(Number.NEGATIVE_INFINITY, rows.length * C, rows.length * C + C);
      for (const op of ['softmax', 'logSoftmax'] as const) {
        const got = new Float32Array(R * C);
        const want = new Float32Array(R * C);
        wasm[op](view(x, [R, C]), got);
        jsKernels[op](view(x, [R, C]), want);
        // A row max's log-softmax is -log(1 + tiny): float64's own rounding of 1 + tiny (either side's, in its
        // own summation order) is ~1e-16 absolute there, so log-softmax is compared above a 1e-9 floor.
        check(`${op} ${R}x${C}`, got, want, TOL, op === 'logSoftmax' ? 1e-9 : 1e-35);
      }
    }
  });

  test('softmaxCrossEntropy and its backward match the reference', () => {
    for (const [R, C] of SHAPES) {
      const logits = rand(R * C, R + 2 * C).map((v) => v * 10);
      if (C >= 3) logits.set([1000, -1000, 0], 0);
      const t = Int32Array.from(rand(R, 5), (v) => Math.floor(((v + 1) / 2) * C));
      const got = new Float32Array(R * C);
      const want = new Float32Array(R * C);
      const lg = wasm.softmaxCrossEntropy(logits, t, R, C, got);
      const lw = jsKernels.softmaxCrossEntropy(logits, t, R, C, want);
      check(`softmaxCrossEntropy probs ${R}x${C}`, got, want, TOL);
      check(`softmaxCrossEntropy loss ${R}x${C}`, [lg], [lw], TOL);
      for (const scale of [1 / R, 0.37, -2]) {
        const dg = new Float32Array(R * C);
        const dw = new Float32Array(R * C);
        wasm.softmaxCrossEntropyBackward(want, t, R, C, scale, dg);
        jsKernels.softmaxCrossEntropyBackward(want, t, R, C, scale, dw);
        check(`softmaxCrossEntropyBackward ${R}x${C} scale=${scale}`, dg, dw, 0);
      }
    }
  });

  test('matmul of views at an offset, transposed, with bias and ReLU, small and threaded', () => {
    // 40×48×56 stays on the caller (the plain runtime's lean path); 96×112×128 splits over the pool.
    for (const [M, K, N] of [
      [40, 48, 56],
      [96, 112, 128],
    ] as const) {
      assert.ok(M * K * N >= WASM_MIN_MACS);
      for (const [transA, transB] of [
        [false, false],
        [true, false],
        [false, true],
      ] as const) {
        for (const fused of [false, true]) {
          // Each operand sits past 7 unrelated floats (and ends before 5): a row slice, or a transposed one.
          const matrix = (rows: number, cols: number, trans: boolean, seed: number): View => ({
            data: rand(rows * cols + 12, seed),
            dtype: 'float32',
            shape: [rows, cols],
            strides: trans ? [1, rows] : [cols, 1],
            offset: 7,
          });
          const a = matrix(M, K, transA, M + K);
          const b = matrix(K, N, transB, K + N + 1);
          const epilogue = fused ? { bias: rand(N, 3), relu: true } : undefined;
          const got = new Float32Array(M * N);
          const want = new Float32Array(M * N);
          wasm.matmul(a, b, got, epilogue);
          jsKernels.matmul(a, b, want, epilogue);
          check(`matmul ${M}x${K}x${N} tA=${transA} tB=${transB} fused=${fused}`, got, want, 1e-5, 1);
        }
      }
    }
  });

  test('strided and broadcast views fall back to the reference', () => {
    const n = WASM_MIN_ELEMENTWISE * 2;
    const data = rand(n, 12);
    const strided: View = { data, dtype: 'float32', shape: [n / 2], strides: [2], offset: 1 };
    const got = new Float32Array(n / 2);
    const want = new Float32Array(n / 2);
    wasm.tanh(strided, got);
    jsKernels.tanh(strided, want);
    check('tanh strided', got, want, 0);
    const t: View = { data, dtype: 'float32', shape: [128, 256], strides: [1, 128], offset: 0 };
    const gs = new Float32Array(128);
    const ws = new Float32Array(128);
    wasm.sum(t, [1], gs);
    jsKernels.sum(t, [1], ws);
    check('sum transposed', gs, ws, 0);
  });
});
