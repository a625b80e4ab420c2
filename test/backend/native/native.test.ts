/**
 * The native backend's GEMM against the reference kernel through the full op, on the views the frontend
 * hands it: edge sizes, K = 0, transposed and sliced operands, batched and broadcast batch dims, and layouts
 * that need a gather. Where no BLAS loads here, the suite is skipped with the reason (printed once).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { kernelsOf } from '../../../src/backend/backend.js';
import { jsKernels } from '../../../src/backend/js/kernels.js';
import {
  BLAS_MIN_OPTIM,
  BLAS_SPLIT_MACS,
  BLAS_SPLIT_MACS_NO_GRAD,
  loadNative,
  nativeBlas,
  nativeUnavailable,
  SUM_BLOCK_ROWS,
} from '../../../src/backend/native/backend.js';
import type { Tensor } from '../../../src/index.js';
import * as mb from '../../../src/index.js';
import { assertClose } from '../../helpers.js';

const gen = new mb.Generator(11);
const rand = (...shape: number[]) => mb.uniform(shape, -1, 1, { generator: gen });

/** matmul on native vs js; each element within 1e-5 of the scale f32 rounding works on, sum_k |a·b|. */
function check(label: string, a: Tensor, b: Tensor): void {
  mb.setBackend('native');
  const got = mb.matmul(a, b);
  mb.setBackend('js');
  const want = mb.matmul(a, b);
  const scale = mb.matmul(mb.abs(a), mb.abs(b));
  mb.setBackend('native');
  assert.deepEqual(got.shape, want.shape, `${label}: shape`);
  const [g, w, s] = [got, want, scale].map((t) => t.toTypedArray() as Float32Array) as [
    Float32Array,
    Float32Array,
    Float32Array,
  ];
  let worst = 0;
  for (let i = 0; i < w.length; i++) {
    const d = Math.abs(g[i]! - w[i]!) / Math.max(s[i]!, 1e-30);
    assert.ok(d <= 1e-5 || g[i] === w[i], `${label}[${i}]: got ${g[i]}, want ${w[i]} (relative ${d})`);
    worst = Math.max(worst, w[i] === g[i] ? 0 : d);
  }
  if (process.env.MINIBATCH_TEST_VERBOSE) console.log(`${label}: OK maxdiff=${worst.toExponential(2)}`);
}

if (nativeUnavailable !== undefined) {
  console.log(`native backend skipped: ${nativeUnavailable}`);
  it.skip(`native backend: ${nativeUnavailable}`);
} else {
  describe('native backend', () => {
    let prev = '';
    before(() => {
      prev = mb.getBackend();
      mb.setBackend('native');
    });
    after(() => mb.setBackend(prev));

    it('is the default, composed over wasm over js, and says which BLAS and core it runs', () => {
      const info = mb.backendInfo();
      assert.equal(info.name, 'native');
      assert.deepEqual(info.fallbacks.includes('matmul'), false);
      const wasm = mb.listBackends().includes('wasm');
      assert.equal(info.fallbackFrom.add, wasm ? 'wasm' : 'js');
      assert.equal(info.fallbackFrom.erf, wasm ? 'wasm' : 'js');
      assert.equal(info.fallbackFrom.gather, 'js');
      assert.equal(info.unavailable.native, undefined);
      const blas = nativeBlas()!;
      assert.equal(info.facts.library, blas.library);
      if (blas.vendor === 'OpenBLAS') assert.match(String(info.facts.core), /^\w+: /);
      console.log(`native: ${JSON.stringify(info.facts)}`);
    });

    it('plain GEMM on edge sizes: 1x1, vectors, non-multiples of any block', () => {
      for (const [M, K, N] of [
        [1, 1, 1],
        [1, 7, 1],
        [1, 5, 9],
        [9, 5, 1],
        [3, 5, 7],
        [13, 300, 27],
        [131, 19, 17],
        [6, 5, 2050],
      ] as const) {
        check(`${M}x${K}x${N}`, rand(M, K), rand(K, N));
      }
    });

    it('K = 0 gives zeros; empty M or N gives an empty result', () => {
      const y = mb.matmul(mb.ones([3, 0]), mb.ones([0, 4]));
      assert.deepEqual(y.shape, [3, 4]);
      assert.deepEqual([...(y.toTypedArray() as Float32Array)], new Array(12).fill(0));
      assert.deepEqual(mb.matmul(mb.ones([0, 5]), mb.ones([5, 4])).shape, [0, 4]);
      assert.deepEqual(mb.matmul(mb.ones([2, 3, 0]), mb.ones([0, 2])).shape, [2, 3, 2]);
    });

    it('transposed operands (swapped strides) go to BLAS as they are', () => {
      for (const [M, K, N] of [
        [1, 1, 1],
        [4, 9, 5],
        [33, 17, 65],
      ] as const) {
        check(`At ${M}x${K}x${N}`, rand(K, M).mT, rand(K, N));
        check(`Bt ${M}x${K}x${N}`, rand(M, K), rand(N, K).mT);
        check(`At·Bt ${M}x${K}x${N}`, rand(K, M).mT, rand(N, K).mT);
      }
    });

    it('one row (M = 1) runs as GEMV, in every layout of A and B, with the bias epilogue (beta = 1)', () => {
      const blas = nativeBlas()!;
      assert.ok(blas.sgemv, 'this BLAS has cblas_sgemv');
      const sgemv = blas.sgemv;
      let calls = 0;
      blas.sgemv = (...args) => {
        calls++;
        sgemv.apply(blas, args);
      };
      try {
        for (const [K, N] of [
          [1, 1],
          [784, 256],
          [13, 70],
        ] as const) {
          check(`a·B ${K}x${N}`, rand(1, K), rand(K, N));
          check(`a·Bt ${K}x${N}`, rand(1, K), rand(N, K).mT);
          check(`at·B ${K}x${N}`, rand(K, 1).mT, rand(K, N));
          check(
            `row of a wider matrix·Bt ${K}x${N}`,
            rand(3, K + 2)
              .slice(0, 1, 2)
              .slice(1, 1, K + 1),
            rand(N, K).mT,
          );
        }
        assert.equal(calls, 12);
        const [x, w, bias] = [rand(1, 40), rand(9, 40), rand(9)];
        mb.setBackend('native');
        const got = mb.functional.linear(x, w, bias, { relu: true });
        mb.setBackend('js');
        const want = mb.functional.linear(x, w, bias, { relu: true });
        mb.setBackend('native');
        const [g, e] = [got, want].map((t) => t.toTypedArray());
        assert.ok(
          e.some((v) => v === 0) && g.every((v, k) => Math.abs(v - e[k]!) <= 1e-5 * (1 + Math.abs(e[k]!))),
          `linear + relu on one row: got ${g}, want ${e}`,
        );
        assert.equal(calls, 13);
      } finally {
        blas.sgemv = sgemv;
      }
    });

    it('sliced views: storage offsets and leading dimensions wider than the matrix', () => {
      const big = rand(20, 30);
      check('A column slice (ld 30)', big.slice(1, 3, 17), rand(14, 6));
      check('A row+column slice (offset)', big.slice(0, 5, 12).slice(1, 2, 9), rand(7, 11));
      check('B slice, transposed', rand(6, 9), big.slice(0, 4, 15).slice(1, 10, 19).mT);
      check('a single row as M=1 (row stride ignored)', big.slice(0, 7, 8), rand(30, 4));
    });

    it('layouts BLAS cannot take are gathered first: an expanded row, a strided column', () => {
      check('expanded A (stride 0)', rand(1, 8).expand(6, 8), rand(8, 5));
      check('expanded B (stride 0)', rand(6, 8), rand(8, 1).expand(8, 5));
      check('step-2 columns', rand(7, 20).slice(1, 0, 20, 2), rand(10, 3));
    });

    it('batched: per-entry GEMMs, a shared weight folded into one GEMM, broadcast batch dims', () => {
      // Count the BLAS calls the native matmul makes (the reference run in check() makes none).
      const blas = nativeBlas()!;
      const sgemm = blas.sgemm;
      let calls = 0;
      blas.sgemm = (...args) => {
        calls++;
        sgemm.apply(blas, args);
      };
      const calls_ = (f: () => void) => {
        calls = 0;
        f();
        return calls;
      };
      try {
        assert.equal(
          calls_(() => check('batched 3-D', rand(4, 5, 6), rand(4, 6, 7))),
          4,
        );
        assert.equal(
          calls_(() => check('shared B folded (B·M rows)', rand(3, 5, 6), rand(6, 7))),
          1,
        );
        assert.equal(
          calls_(() => check('shared B, transposed', rand(3, 5, 6), rand(7, 6).mT)),
          1,
        );
        const notFolded = () => check('shared B, A transposed per entry', rand(3, 6, 5).mT, rand(6, 7));
        assert.equal(calls_(notFolded), 3);
        const padded = () => check('shared B, A entries apart', rand(3, 9, 6).slice(1, 0, 5), rand(6, 7));
        assert.equal(calls_(padded), 3);
      } finally {
        blas.sgemm = sgemm;
      }
      check('shared A', rand(5, 6), rand(3, 6, 7));
      check('broadcast batch dims', rand(2, 1, 4, 5), rand(3, 5, 6));
      check('4-D permuted batch (A entries out of order)', rand(3, 2, 4, 5).permute(1, 0, 2, 3), rand(5, 6));
      check('1-D operands', rand(6), rand(6, 3));
    });

    it('convolution (im2col + GEMM) and its gradients agree with the reference', () => {
      const x = rand(2, 3, 7, 7);
      const w = rand(4, 3, 3, 3);
      const run = (backend: string) => {
        mb.setBackend(backend);
        const xl = x.detach().requiresGrad_();
        const wl = w.detach().requiresGrad_();
        const y = mb.functional.conv2d(xl, wl, null, 1, 1);
        y.sum().backward();
        return [y, xl.grad!, wl.grad!].map((t) => t.toTypedArray() as Float32Array);
      };
      const want = run('js');
      const got = run('native');
      for (let k = 0; k < 3; k++) {
        for (let i = 0; i < want[k]!.length; i++) {
          assert.ok(Math.abs(got[k]![i]! - want[k]![i]!) <= 1e-4 * Math.max(1, Math.abs(want[k]![i]!)));
        }
      }
    });

    it('loadNative: a library that does not load throws why and keeps the loaded one; reloading works', () => {
      const loaded = nativeBlas()!;
      assert.throws(
        () => loadNative({ library: '/nonexistent/libnope.so' }),
        (e: Error) => e instanceof mb.MinibatchError && /native: no BLAS .*libnope\.so/.test(e.message),
      );
      assert.equal(nativeBlas(), loaded);
      assert.equal(mb.getBackend(), 'native');
      loadNative({ library: loaded.library });
      assert.notEqual(nativeBlas(), loaded);
      assert.equal(nativeBlas()!.library, loaded.library);
      check('after reload', rand(9, 8), rand(8, 7));
    });

    it('BLAS threads follow minibatch (the wasm runtime threads setting)', async () => {
      const { wasmRuntime } = await import('../../../src/backend/wasm/backend.js');
      const rt = wasmRuntime();
      const blas = nativeBlas()!;
      if (!rt || blas.vendor === 'Accelerate') return;
      const was = rt.threads;
      rt.threads = 1;
      mb.matmul(rand(40, 40), rand(40, 40));
      assert.equal(blas.threads, 1);
      assert.equal(mb.backendInfo().facts.threads, 1);
      rt.threads = was;
      mb.matmul(rand(256, 256), rand(256, 256));
      assert.equal(blas.threads, rt.threads, 'a large GEMM uses every thread');
      mb.matmul(rand(40, 40), rand(40, 40));
      assert.equal(blas.threads, 1, `a GEMM under BLAS_SPLIT_MACS (${BLAS_SPLIT_MACS}) uses one`);
    });

    it('a training step keeps GEMMs under BLAS_SPLIT_MACS on one thread; a forward under noGrad splits from BLAS_SPLIT_MACS_NO_GRAD', async () => {
      const { wasmRuntime } = await import('../../../src/backend/wasm/backend.js');
      const rt = wasmRuntime();
      const blas = nativeBlas()!;
      if (!rt || blas.vendor === 'Accelerate') return;
      const was = rt.threads;
      rt.threads = 2;
      // Every GEMM of a Linear(784, 256) step at batch 32 has 32·784·256 = 6.4M multiply-adds: between the two
      // thresholds. Each one runs with recording off (the fused linear op, the gradient rules) yet belongs to
      // the step.
      assert.ok(BLAS_SPLIT_MACS_NO_GRAD < 32 * 784 * 256 && 32 * 784 * 256 < BLAS_SPLIT_MACS);
      const layer = new mb.Linear(784, 256);
      const x = rand(32, 784).requiresGrad_();
      const set = blas.setThreads;
      const seen: number[] = [];
      blas.setThreads = (n: number) => {
        seen.push(n);
        set.call(blas, n);
      };
      try {
        mb.sum(layer.forward(x)).backward();
        assert.deepEqual([...new Set(seen)], [1], 'forward, dW and dX of a training step on one thread');
        seen.length = 0;
        mb.noGrad(() => layer.forward(x));
        assert.deepEqual(seen, [2], 'a forward pass alone on both');
      } finally {
        blas.setThreads = set;
        rt.threads = was;
      }
    });

    // saxpy is a true fused multiply-add (PyTorch's rounding); the reference emulates it in float64, rounding
    // twice, which differs in the last bit about once in 2^29 updates: the parameters may differ there only.
    it('SGD with plain momentum runs on BLAS level 1 in place and matches the reference', () => {
      const f = Math.fround;
      const blas = nativeBlas()!;
      if (!blas.saxpy) return;
      const table = kernelsOf('native');
      for (const n of [BLAS_MIN_OPTIM - 1, BLAS_MIN_OPTIM, 100_003]) {
        const p1 = rand(1, n).toTypedArray() as Float32Array;
        const b1 = new Float32Array(n);
        const [p2, b2] = [new Float32Array(n), new Float32Array(n)];
        let differ = 0;
        for (let step = 0; step < 4; step++) {
          // Each step from the same state, so a last-bit difference cannot compound.
          p2.set(p1);
          b2.set(b1);
          const g = rand(1, n).toTypedArray() as Float32Array;
          const h = {
            wd: 0,
            mu: f(0.9),
            keep: 1,
            negLr: f(-0.05),
            first: step === 0,
            nesterov: false,
            maximize: false,
          };
          jsKernels.sgdUpdate(p1, g, b1, h);
          table.sgdUpdate(p2, g, b2, h);
          const [u1, u2] = [new Int32Array(p1.buffer), new Int32Array(p2.buffer)];
          for (let i = 0; i < n; i++) {
            if (u1[i] === u2[i]) continue;
            differ++;
            assert.equal(
              Math.abs(u1[i]! - u2[i]!),
              1,
              `step ${step}, parameter ${i} of ${n}: more than 1 ulp apart`,
            );
          }
          assert.deepEqual(
            new Uint32Array(b2.buffer),
            new Uint32Array(b1.buffer),
            `velocity n=${n} step ${step}`,
          );
        }
        assert.ok(differ <= 2, `n=${n}: ${differ} parameter updates differ in the last bit`);
      }
    });

    it('a sum over leading axes is GEMVs of SUM_BLOCK_ROWS rows whose block sums add in float64', () => {
      const blas = nativeBlas()!;
      if (!blas.sgemv) return;
      assert.equal(mb.backendInfo().fallbackFrom.sum, undefined);
      const calls: number[] = [];
      const sgemv = blas.sgemv;
      blas.sgemv = (...args) => {
        calls.push(args[1]);
        sgemv(...args);
      };
      try {
        // Against float64 sums: each within 256 roundings of the column's sum of |x| (one block's bound).
        for (const [shape, dims] of [
          [[1, 5], [0]],
          [[SUM_BLOCK_ROWS, 3], [0]],
          [[2 * SUM_BLOCK_ROWS + 7, 33], [0]],
          [
            [4, 70, 6],
            [0, 1],
          ],
        ] as [number[], number[]][]) {
          calls.length = 0;
          const x = rand(2, ...shape)
            .slice(0, 1, 2)
            .reshape(shape); // a dense view at an offset
          const got = x.sum(dims).toTypedArray() as Float32Array;
          const rows = dims.reduce((a, d) => a * shape[d]!, 1);
          assert.deepEqual(
            calls,
            Array.from({ length: Math.ceil(rows / SUM_BLOCK_ROWS) }, (_, b) =>
              Math.min(SUM_BLOCK_ROWS, rows - b * SUM_BLOCK_ROWS),
            ),
            `[${shape}] over ${dims}: one GEMV per block`,
          );
          const v = x.toTypedArray() as Float32Array;
          const C = got.length;
          for (let c = 0; c < C; c++) {
            let exact = 0;
            let abs = 0;
            for (let r = 0; r < rows; r++) {
              exact += v[r * C + c]!;
              abs += Math.abs(v[r * C + c]!);
            }
            assert.ok(Math.abs(got[c]! - exact) <= 256 * 2 ** -24 * abs, `[${shape}] column ${c}`);
          }
        }
        // A first block summing to 2^24, then two blocks summing to 1: float32 rounds 2^24 + 1 back to 2^24.
        const big = new Float32Array(3 * SUM_BLOCK_ROWS);
        big.fill(2 ** 24 / SUM_BLOCK_ROWS, 0, SUM_BLOCK_ROWS);
        big[SUM_BLOCK_ROWS] = big[2 * SUM_BLOCK_ROWS + 5] = 1;
        assert.deepEqual(
          mb
            .tensor(big, { shape: [3 * SUM_BLOCK_ROWS, 1] })
            .sum(0)
            .toList(),
          [2 ** 24 + 2],
        );
        // Strided views, a trailing axis and a full reduction stay with the base.
        calls.length = 0;
        const m = rand(6, 4);
        assertClose(m.mT.sum(0), m.sum(1).toTypedArray() as Float32Array);
        m.sum(1);
        m.sum();
        assert.equal(calls.length, 0);
      } finally {
        blas.sgemv = sgemv;
      }
    });

    it('while native is active its base wasm kernels stay on the caller; wasm active, they use the pool', async () => {
      const { wasmRuntime } = await import('../../../src/backend/wasm/backend.js');
      const rt = wasmRuntime();
      if (!rt) return;
      assert.equal(mb.getBackend(), 'native');
      assert.equal(rt.callerOnly, true);
      mb.setBackend('wasm');
      assert.equal(rt.callerOnly, false);
      mb.setBackend('native');
      assert.equal(rt.callerOnly, true);
    });
  });
}
