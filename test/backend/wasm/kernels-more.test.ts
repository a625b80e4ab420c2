/**
 * The wasm backend's BatchNorm, im2col/col2im, comparison, where and argmax/argmin kernels against the
 * reference (`js`) kernels, below and above WASM_MIN_ELEMENTWISE and split across the thread pool. Exact
 * everywhere except BatchNorm (float64 sums in another order: within 1e-6 relative).
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import type { ConvGeometry, View } from '../../../src/backend/backend.js';
import { jsKernels } from '../../../src/backend/js/kernels.js';
import { wasmRuntime } from '../../../src/backend/wasm/backend.js';
import { rand, ELEMENTWISE_SIZES as SIZES, wasmKernelTable } from './helpers.js';

const rt = wasmRuntime();
const { wasm, info } = wasmKernelTable();
after(() => rt?.shutdown());
const SPECIALS = [Number.NaN, Infinity, -Infinity, 0, -0, 1, -1, 1e-40, 3.4e38, -3.4e38, 0.5];

const view = (data: Float32Array | Uint8Array, shape: number[] = [data.length]): View => {
  const strides = shape.map((_, i) => shape.slice(i + 1).reduce((a, d) => a * d, 1));
  return { data, dtype: data instanceof Uint8Array ? 'bool' : 'float32', shape, strides, offset: 0 };
};

/** Random values with many exact ties (rounded to a grid) and specials sprinkled in. */
function values(n: number, seed: number, specials = true): Float32Array {
  const x = Float32Array.from(rand(n, seed), (v) => Math.round(v * 8) / 4);
  if (specials) for (let i = 0; i < n; i += 37) x[i] = SPECIALS[(i / 37) % SPECIALS.length]!;
  return x;
}

function exact(label: string, got: ArrayLike<number>, want: ArrayLike<number>): void {
  assert.equal(got.length, want.length, `${label}: length`);
  for (let i = 0; i < want.length; i++) {
    const g = got[i]!;
    const w = want[i]!;
    assert.ok(Object.is(g, w) || (g === w && g !== 0), `${label}[${i}]: got ${g}, want ${w}`);
  }
}

const range = (a: Float32Array) => a.reduce((m, v) => Math.max(m, Math.abs(v)), 0);

/** |got - want| ≤ tol·max(|want|, floor) elementwise. */
function close(
  label: string,
  got: ArrayLike<number>,
  want: ArrayLike<number>,
  tol = 1e-6,
  floor = 1e-6,
): void {
  assert.equal(got.length, want.length, `${label}: length`);
  for (let i = 0; i < want.length; i++) {
    const g = got[i]!;
    const w = want[i]!;
    const d = Math.abs(g - w) / Math.max(Math.abs(w), floor);
    assert.ok(d <= tol, `${label}[${i}]: got ${g}, want ${w} (relative difference ${d})`);
  }
}

describe('wasm kernels: BatchNorm, im2col, comparisons, where, argmax', { skip: rt === undefined }, () => {
  test('the registered kernels are no longer fallbacks', () => {
    for (const k of [
      'batchNormForward',
      'batchNormBackward',
      'im2col',
      'col2im',
      'eq',
      'ne',
      'lt',
      'le',
      'gt',
      'ge',
      'where',
      'argmax',
      'argmin',
    ]) {
      assert.ok(!info.fallbacks.includes(k), `${k} still falls back`);
    }
  });

  const bnShapes: [number, number, number][] = [
    [4, 3, 7],
    [128, 64, 1],
    [129, 127, 1],
    [8, 16, 130],
    [16, 32, 257],
    [3, 5, 4099],
  ];
  for (const [N, C, S] of bnShapes) {
    for (const affine of [true, false]) {
      test(`batchNorm forward/backward (${N}, ${C}, ${S})${affine ? '' : ' no affine'}`, () => {
        const n = N * C * S;
        const x = Float32Array.from(rand(n, N + C + S), (v, i) => v * 3 + (i % 5) + 10);
        const dy = rand(n, 7 * n);
        const w = affine ? rand(C, 3) : null;
        const b = affine ? rand(C, 4) : null;
        const want = { out: new Float32Array(n), mean: new Float32Array(C), invstd: new Float32Array(C) };
        const got = { out: new Float32Array(n), mean: new Float32Array(C), invstd: new Float32Array(C) };
        jsKernels.batchNormForward(x, N, C, S, w, b, 1e-5, want.out, want.mean, want.invstd);
        wasm.batchNormForward(x, N, C, S, w, b, 1e-5, got.out, got.mean, got.invstd);
        close('mean', got.mean, want.mean);
        close('invstd', got.invstd, want.invstd);
        // out, dx and dw come from float32 arithmetic (see bnForward16 in assembly/layers.ts), whose error is
        // relative to the terms combined ((x - mean)·invstd·w and b, up to the largest output), not to an
        // output that cancels to near 0: within 1e-5 of the largest |value| there, 1e-5 relative elsewhere.
        close('out', got.out, want.out, 1e-5, range(want.out));
        const wb = [new Float32Array(n), new Float32Array(C), new Float32Array(C)] as const;
        const gb = [new Float32Array(n), new Float32Array(C), new Float32Array(C)] as const;
        jsKernels.batchNormBackward(x, dy, N, C, S, w, want.mean, want.invstd, ...wb);
        wasm.batchNormBackward(x, dy, N, C, S, w, want.mean, want.invstd, ...gb);
        close('dx', gb[0], wb[0], 1e-5, range(wb[0]));
        close('dweight', gb[1], wb[1], 1e-5, range(wb[1]));
        close('dbias', gb[2], wb[2], 1e-5);
      });
    }
  }

  // Square and rectangular windows, strided, padded, dilated.
  type Conv = [
    N: number,
    C: number,
    H: number,
    W: number,
    kh: number,
    kw: number,
    sh: number,
    sw: number,
    ph: number,
    pw: number,
    dh: number,
    dw: number,
  ];
  const convs: Conv[] = [
    [2, 3, 8, 8, 3, 3, 1, 1, 1, 1, 1, 1],
    [8, 16, 14, 14, 3, 3, 1, 1, 1, 1, 1, 1],
    [4, 8, 17, 15, 5, 3, 2, 2, 2, 2, 1, 1],
    [2, 16, 32, 32, 2, 2, 2, 2, 0, 0, 1, 1],
    [3, 6, 28, 28, 5, 5, 1, 1, 0, 0, 1, 1],
    [2, 4, 9, 33, 3, 7, 3, 3, 3, 3, 1, 1],
    [2, 5, 13, 19, 3, 2, 2, 1, 1, 0, 2, 3],
    [3, 4, 16, 12, 3, 3, 1, 3, 2, 4, 2, 2],
  ];
  for (const [N, C, H, W, kh, kw, sh, sw, ph, pw, dh, dw] of convs) {
    const c = { N, C, H, W, kh, kw, sh, sw, ph, pw, dh, dw };
    const g: ConvGeometry = {
      ...c,
      Ho: Math.floor((H + 2 * ph - dh * (kh - 1) - 1) / sh) + 1,
      Wo: Math.floor((W + 2 * pw - dw * (kw - 1) - 1) / sw) + 1,
    };
    test(`im2col / col2im ${JSON.stringify(c)}`, () => {
      const nx = g.N * g.C * g.H * g.W;
      const nc = g.N * g.C * g.kh * g.kw * g.Ho * g.Wo;
      const x = values(nx, nx);
      const want = new Float32Array(nc);
      const got = new Float32Array(nc).fill(7);
      jsKernels.im2col(x, g, want);
      wasm.im2col(x, g, got);
      exact('cols', got, want);
      const cols = rand(nc, nc);
      const dw = new Float32Array(nx);
      const dg = new Float32Array(nx);
      jsKernels.col2im(cols, g, dw);
      wasm.col2im(cols, g, dg);
      exact('dx', dg, dw);
    });
  }

  for (const n of SIZES) {
    test(`comparisons and where at n = ${n}`, () => {
      const a = values(n, n);
      const b = values(n, n + 1);
      for (let i = 0; i < n; i += 11) b[i] = a[i]!; // equal pairs, NaN against NaN included
      for (const op of ['eq', 'ne', 'lt', 'le', 'gt', 'ge'] as const) {
        const want = new Uint8Array(n);
        const got = new Uint8Array(n).fill(9);
        jsKernels[op](view(a), view(b), want);
        wasm[op](view(a), view(b), got);
        exact(op, got, want);
      }
      const cond = Uint8Array.from(rand(n, 5), (v) => (v > 0 ? 1 : 0));
      const want = new Float32Array(n);
      const got = new Float32Array(n);
      jsKernels.where(view(cond), view(a), view(b), want);
      wasm.where(view(cond), view(a), view(b), got);
      exact('where', got, want);
    });

    test(`argmax / argmin over the last axis at n = ${n}`, () => {
      for (const C of [1, 3, 16, 1000]) {
        const R = Math.ceil(n / C);
        const x = values(R * C, R + C, false);
        // NaN rows: first, last and middle positions, and rows of ties.
        if (R > 3) {
          x[0] = Number.NaN;
          x[2 * C - 1] = Number.NaN;
          x.fill(2, 2 * C, 3 * C);
        }
        if (R > 4) x[3 * C + (C >> 1)] = Number.NaN;
        for (const op of ['argmax', 'argmin'] as const) {
          const want = new Int32Array(R);
          const got = new Int32Array(R).fill(-1);
          jsKernels[op](view(x, [R, C]), 1, want);
          wasm[op](view(x, [R, C]), 1, got);
          exact(`${op} C=${C}`, got, want);
        }
      }
    });
  }
});
