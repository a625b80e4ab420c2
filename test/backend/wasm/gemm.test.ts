import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { GEMM_MIN_MACS_PER_THREAD, initWasm } from '../../../src/backend/wasm/runtime.js';
import { checkGemm, type GemmCase, put, rand } from './helpers.js';

const TOL = 1e-5;
const single = initWasm({ threads: 1 });
// Three threads on any machine: two workers plus the caller, so uneven splits get exercised.
const multi = initWasm({ threads: 3 });
after(() => multi.shutdown());

function expectGemm(label: string, rt: typeof single, g: GemmCase): void {
  const worst = checkGemm(rt, g);
  console.log(`${label}: OK maxdiff=${worst.toExponential(2)}`);
  assert.ok(worst <= TOL, `${label}: relative difference ${worst} > ${TOL}`);
}

// Sizes around the micro-tiles (packed 6×8, direct 4×8), the blocks (MC 132, KC 256, NC 2048) and one-element
// edges. A·Bᵀ always, A·B up to M = 32 and Aᵀ·B up to K = 64 and M = 512 take the direct kernels: their tiles (2×4 dot products
// with K mod 4 left over; 4×8 over KC blocks of K), their L2 row blocks of A·Bᵀ (64 rows, fewer for a long K)
// and the edges of the Aᵀ·B rule get shapes of their own.
const shapes: [number, number, number][] = [
  [512, 9, 64],
  [513, 9, 64],
  [37, 30, 65],
  [32, 40, 300],
  [31, 13, 1030],
  [2, 3, 1030],
  [1, 1, 1],
  [1, 9, 1],
  [4, 8, 4],
  [3, 5, 7],
  [5, 9, 17],
  [13, 27, 300],
  [131, 17, 19],
  [6, 2050, 5],
];

describe('wasm sgemm', () => {
  for (const [M, N, K] of shapes) {
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        const label = `${transA ? 'At' : 'A'}·${transB ? 'Bt' : 'B'} ${M}x${N}x${K}`;
        test(label, () => expectGemm(label, single, { transA, transB, M, N, K, alpha: 1, beta: 0 }));
      }
    }
  }

  test('alpha, beta and padded leading dimensions', () => {
    expectGemm('alpha/beta', single, {
      transA: false,
      transB: false,
      M: 9,
      N: 11,
      K: 13,
      alpha: 0.5,
      beta: -2,
    });
    expectGemm('alpha/beta, Aᵀ·B direct', single, {
      transA: true,
      transB: false,
      M: 10,
      N: 21,
      K: 32,
      alpha: -1.5,
      beta: 0.5,
      pad: 2,
    });
    expectGemm('padded', single, {
      transA: true,
      transB: true,
      M: 7,
      N: 19,
      K: 21,
      alpha: 1.5,
      beta: 1,
      pad: 3,
    });
  });

  test('beta 0 ignores NaN in C', () => {
    const c = put(single, new Float32Array(4 * 8).fill(Number.NaN));
    const a = put(single, new Float32Array(4).fill(1));
    const b = put(single, new Float32Array(8).fill(2));
    single.sgemm(false, false, 4, 8, 1, 1, a, 1, b, 8, 0, c, 8);
    assert.deepEqual([...single.f32(c, 32)], new Array(32).fill(2));
  });

  test('K = 0 gives beta·C plus the epilogue', () => {
    expectGemm('K=0', single, { transA: false, transB: false, M: 5, N: 9, K: 0, alpha: 1, beta: 0.5 });
    expectGemm('K=0 bias relu', single, {
      ...{ transA: false, transB: false, M: 5, N: 9, K: 0, alpha: 1, beta: 0 },
      ...{ bias: true, relu: true },
    });
  });

  test('fused bias and ReLU epilogue, across K blocks and edge tiles', () => {
    for (const [M, N, K] of [
      [3, 5, 7],
      [9, 17, 600],
      [33, 70, 256],
    ] as const) {
      for (const [transA, transB] of [
        [false, false],
        [false, true],
        [true, false],
      ] as const) {
        const g = { transA, transB, M, N, K, alpha: 1, beta: 0.25, bias: true, relu: true };
        expectGemm(`bias+relu ${M}x${N}x${K}`, single, g);
      }
    }
  });

  test('several threads, split along M and along N', () => {
    assert.equal(multi.threads, 3);
    for (const [M, N, K] of [
      [67, 41, 300],
      [37, 301, 129],
      [200, 200, 64],
    ] as const) {
      assert.ok(M * N * K >= 3 * GEMM_MIN_MACS_PER_THREAD, 'shape too small to use the threads');
      for (const [transA, transB] of [
        [false, false],
        [true, true],
      ] as const) {
        const g = { transA, transB, M, N, K, alpha: 1, beta: 0.5, bias: true, relu: true, pad: 1 };
        expectGemm(`3 threads ${M}x${N}x${K}`, multi, g);
      }
    }
    assert.equal(multi.workersStarted, 2);
  });

  // Split by rows, every chunk needs all of B; by columns, all of A: the runtime packs that operand once
  // (gemmPrepack) for the chunks that take the packed path. These shapes give chunks of over 32 rows (A·B's
  // packed path), K over one KC block, N over one NC block (2060 > 2048), edges of the 6×8 tile, alpha ≠ 1
  // (folded into a packed A) and padded rows.
  test('several threads, the shared operand packed once for every chunk', () => {
    for (const [M, N, K, transA, transB, alpha] of [
      [520, 37, 300, false, false, 1],
      [520, 37, 300, true, false, 0.5],
      [2100, 2060, 5, false, false, 1],
      [37, 301, 129, false, false, 0.5],
      [37, 301, 129, true, false, 2],
      [45, 601, 70, true, true, -1],
    ] as const) {
      const g = { transA, transB, M, N, K, alpha, beta: 0.5, bias: true, relu: true, pad: 3 };
      expectGemm(`3 threads, shared operand packed once, ${M}x${N}x${K} tA=${transA} tB=${transB}`, multi, g);
    }
  });

  test('batched, with a shared (stride 0) operand, on one and three threads', () => {
    for (const rt of [single, multi]) {
      for (const batch of [1, 3, 6]) {
        const [M, N, K] = [45, 38, 70];
        const A = rand(batch * M * K, 7);
        const W = rand(K * N, 8);
        const bias = rand(batch * N, 9);
        const pa = put(rt, A);
        const pw = put(rt, W);
        const pbias = put(rt, bias);
        const pc = rt.alloc(4 * batch * M * N);
        rt.sgemmBatched(false, true, M, N, K, 1, pa, K, M * K, pw, K, 0, 0, pc, N, M * N, batch, {
          bias: pbias,
          biasStride: N,
          relu: true,
        });
        const got = rt.f32(pc, batch * M * N).slice();
        let worst = 0;
        for (let i = 0; i < batch; i++) {
          for (let m = 0; m < M; m++) {
            for (let n = 0; n < N; n++) {
              let sum = bias[i * N + n]!;
              let scale = Math.abs(sum);
              for (let k = 0; k < K; k++) {
                const p = A[i * M * K + m * K + k]! * W[n * K + k]!;
                sum += p;
                scale += Math.abs(p);
              }
              worst = Math.max(worst, Math.abs(got[(i * M + m) * N + n]! - Math.max(sum, 0)) / scale);
            }
          }
        }
        console.log(`batched x${batch} (${rt.threads} threads): OK maxdiff=${worst.toExponential(2)}`);
        assert.ok(worst <= TOL);
        for (const p of [pa, pw, pbias, pc]) rt.free(p);
      }
    }
  });

  test('a plain (non-shared) memory runs single-threaded and survives growth', () => {
    const rt = initWasm({ sharedMemory: false, threads: 4 });
    assert.equal(rt.features.sharedMemory, false);
    assert.equal(rt.features.threads, false);
    assert.equal(rt.threads, 1);
    const before = rt.memory.buffer.byteLength;
    const big = rt.alloc(before);
    assert.ok(rt.memory.buffer.byteLength > before, 'memory grew');
    expectGemm('non-shared', rt, { transA: false, transB: true, M: 70, N: 90, K: 100, alpha: 1, beta: 0 });
    rt.free(big);
  });
});
