import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { ELEMENTWISE_MIN_PER_THREAD, initWasm, type WasmRuntime } from '../../../src/backend/wasm/runtime.js';
import { MinibatchError, ValueError } from '../../../src/errors.js';
import { assertClose, put, rand } from './helpers.js';

const single = initWasm({ threads: 1 });
const multi = initWasm({ threads: 2 });
after(() => multi.shutdown());

const ops = {
  add: (x: number, y: number) => x + y,
  sub: (x: number, y: number) => x - y,
  mul: (x: number, y: number) => x * y,
  div: (x: number, y: number) => x / y,
};

// Small sizes hit the scalar tails; the big one is split across the two threads in the multi runtime.
const sizes = [1, 7, 37, 2 * ELEMENTWISE_MIN_PER_THREAD + 5];

function out(rt: WasmRuntime, ptr: number, n: number): Float32Array {
  return rt.f32(ptr, n).slice();
}

describe('wasm elementwise kernels', () => {
  for (const [label, rt] of [
    ['1 thread', single],
    ['2 threads', multi],
  ] as const) {
    test(`binary, row-broadcast and scalar ops (${label})`, () => {
      for (const n of sizes) {
        const a = rand(n, 1);
        const b = rand(n, 2).map((v) => v + 2);
        const [pa, pb, po] = [put(rt, a), put(rt, b), rt.alloc(4 * n)];
        for (const [op, f] of Object.entries(ops) as [keyof typeof ops, (x: number, y: number) => number][]) {
          rt.binary(op, pa, pb, po, n);
          assertClose(
            `${op} n=${n}`,
            out(rt, po, n),
            Float32Array.from(a, (v, i) => f(v, b[i]!)),
            0,
          );
          rt.binaryScalar(op, pa, 1.5, po, n);
          assertClose(
            `${op} scalar n=${n}`,
            out(rt, po, n),
            Float32Array.from(a, (v) => f(v, 1.5)),
            0,
          );
          const C = 13;
          const R = Math.floor(n / C);
          rt.binaryRow(op, pa, pb, po, R, C);
          const want = Float32Array.from(a.subarray(0, R * C), (v, i) => f(v, b[i % C]!));
          assertClose(`${op} row R=${R}`, out(rt, po, R * C), want, 0);
        }
        for (const p of [pa, pb, po]) rt.free(p);
      }
    });

    test(`relu forward and backward (${label})`, () => {
      for (const n of sizes) {
        const x = rand(n, 3);
        x[0] = Number.NaN;
        const dy = rand(n, 4);
        const [px, pdy, po] = [put(rt, x), put(rt, dy), rt.alloc(4 * n)];
        rt.relu(px, po, n);
        assertClose(
          `relu n=${n}`,
          out(rt, po, n),
          x.map((v) => (Number.isNaN(v) ? v : Math.max(v, 0))),
          0,
        );
        rt.reluBackward(px, pdy, po, n);
        assertClose(
          `relu' n=${n}`,
          out(rt, po, n),
          // PyTorch's threshold_backward: a NaN input passes its gradient.
          Float32Array.from(x, (v, i) => (v <= 0 ? 0 : dy[i]!)),
          0,
        );
        for (const p of [px, pdy, po]) rt.free(p);
      }
    });

    test(`exp (${label})`, () => {
      for (const n of sizes) {
        const x = rand(n, 5).map((v) => v * 87);
        const [px, po] = [put(rt, x), rt.alloc(4 * n)];
        rt.exp(px, po, n);
        assertClose(`exp n=${n}`, out(rt, po, n), Float32Array.from(x, Math.exp), 1e-6, 0);
        for (const p of [px, po]) rt.free(p);
      }
    });

    test(`sums over rows and columns (${label})`, () => {
      for (const [R, C] of [
        [1, 1],
        [300, 37],
        [5, 2 * ELEMENTWISE_MIN_PER_THREAD + 3],
        [2 * ELEMENTWISE_MIN_PER_THREAD + 3, 3],
      ] as const) {
        const x = rand(R * C, 6);
        const [px, p0, p1] = [put(rt, x), rt.alloc(4 * C), rt.alloc(4 * R)];
        rt.sumAxis0(px, R, C, p0);
        rt.sumAxis1(px, R, C, p1);
        const want0 = new Float64Array(C);
        const want1 = new Float64Array(R);
        for (let r = 0; r < R; r++) {
          for (let c = 0; c < C; c++) {
            want0[c]! += x[r * C + c]!;
            want1[r]! += x[r * C + c]!;
          }
        }
        // Sums of n terms in [-1, 1): judged against sqrt(n), the typical size of such a sum.
        assertClose(`sumAxis0 ${R}x${C}`, out(rt, p0, C), want0, 1e-5, Math.sqrt(R));
        assertClose(`sumAxis1 ${R}x${C}`, out(rt, p1, R), want1, 1e-5, Math.sqrt(C));
        for (const p of [px, p0, p1]) rt.free(p);
      }
    });

    test(`softmax cross-entropy forward and backward (${label})`, () => {
      for (const [R, C] of [
        [1, 1],
        [3, 10],
        [40, 7],
        [2 * ELEMENTWISE_MIN_PER_THREAD, 2],
      ] as const) {
        const logits = rand(R * C, 7).map((v) => v * 30);
        const targets = Int32Array.from({ length: R }, (_, r) => (r * 7) % C);
        const grad = rand(R, 8);
        const [pl, pt, pg] = [put(rt, logits), put(rt, targets), put(rt, grad)];
        const [ploss, pp, pdx] = [rt.alloc(4 * R), rt.alloc(4 * R * C), rt.alloc(4 * R * C)];
        rt.softmaxCrossEntropy(pl, pt, R, C, ploss, pp);
        rt.softmaxCrossEntropyBackward(pp, pt, R, C, 0.5, pg, pdx);
        const loss = new Float64Array(R);
        const probs = new Float64Array(R * C);
        const dx = new Float64Array(R * C);
        for (let r = 0; r < R; r++) {
          const row = logits.subarray(r * C, (r + 1) * C);
          const m = Math.max(...row);
          const s = row.reduce((acc, v) => acc + Math.exp(v - m), 0);
          loss[r] = m + Math.log(s) - row[targets[r]!]!;
          for (let c = 0; c < C; c++) {
            probs[r * C + c] = Math.exp(row[c]! - m) / s;
            dx[r * C + c] = 0.5 * grad[r]! * (probs[r * C + c]! - (c === targets[r] ? 1 : 0));
          }
        }
        assertClose(`sce loss ${R}x${C}`, out(rt, ploss, R), loss, 1e-5);
        assertClose(`sce probs ${R}x${C}`, out(rt, pp, R * C), probs, 1e-6);
        assertClose(`sce dx ${R}x${C}`, out(rt, pdx, R * C), dx, 1e-6);
        rt.softmaxCrossEntropy(pl, pt, R, C, ploss);
        assertClose(`sce loss without probs ${R}x${C}`, out(rt, ploss, R), loss, 1e-5);
        for (const p of [pl, pt, pg, ploss, pp, pdx]) rt.free(p);
      }
    });
  }

  test('exp keeps overflow, underflow, denormals and NaN', () => {
    const x = Float32Array.of(-200, -103, -90, 0, 88.7, 89, 200, Number.NaN, Number.NEGATIVE_INFINITY);
    const [px, po] = [put(single, x), single.alloc(4 * x.length)];
    single.exp(px, po, x.length);
    const got = out(single, po, x.length);
    const want = Float32Array.from(x, Math.exp);
    // Denormals carry few significant bits, so those are compared absolutely.
    assertClose('exp specials', got, want, 1e-6, 1e-37);
  });
});

describe('wasm heap', () => {
  test('alignment, reuse and coalescing', () => {
    const rt = initWasm({ threads: 1 });
    const base = rt.bytesInUse;
    const [a, b, c] = [rt.alloc(1), rt.alloc(100), rt.alloc(0)];
    for (const p of [a, b, c]) assert.equal(p % 64, 0);
    assert.equal(rt.bytesInUse - base, 64 + 128 + 64);
    rt.free(b);
    rt.free(a);
    rt.free(c);
    assert.equal(rt.bytesInUse, base);
    assert.equal(rt.alloc(256), a, 'the three freed blocks merged into one');
  });

  test('bad frees and exhaustion throw with the op and the numbers', () => {
    const rt = initWasm({ threads: 1, maxMemoryBytes: 8 << 20 });
    assert.throws(() => rt.free(12345), new ValueError('wasm.free', '12345 is not a live allocation'));
    assert.throws(() => rt.alloc(-1), /wasm.alloc: bytes must be a non-negative integer \(got -1\)/);
    assert.throws(
      () => rt.alloc(16 << 20),
      (e: unknown) => {
        assert.ok(e instanceof MinibatchError);
        assert.match(
          e.message,
          /^wasm.alloc: out of memory \(got a request for 16777216 bytes, \d+ bytes in use of \d+\)$/,
        );
        return true;
      },
    );
  });
});

describe('wasm thread pool', () => {
  test('starts lazily: small calls stay on the calling thread', () => {
    const rt = initWasm({ threads: 2 });
    const p = put(rt, rand(1000, 1));
    rt.relu(p, p, 1000);
    rt.sgemm(false, false, 8, 8, 8, 1, p, 8, p, 8, 0, p, 8);
    assert.equal(rt.workersStarted, 0);
    rt.shutdown();
  });

  test('a failing chunk is rethrown by the caller and the pool stays usable', () => {
    const rt = initWasm({ threads: 2 });
    const [M, N, K] = [256, 64, 64];
    const a = rt.alloc(4 * M * K);
    const b = rt.alloc(4 * K * N);
    const ok = rt.alloc(4 * M * N);
    rt.f32(a, M * K).fill(1);
    rt.f32(b, K * N).fill(1);
    rt.sgemm(false, false, M, N, K, 1, a, K, b, N, 0, ok, N);
    assert.equal(rt.workersStarted, 1);
    // C's rows past M/2 lie beyond the end of the memory: whichever thread claims them traps, the caller's
    // own RuntimeError or a worker's, rethrown as `wasm: worker 1 failed: ...`.
    const c = rt.memory.buffer.byteLength - (4 * N * M) / 2;
    assert.throws(() => rt.sgemm(false, false, M, N, K, 1, a, K, b, N, 0, c, N), /out of bounds/);
    rt.f32(ok, M * N).fill(0);
    rt.sgemm(false, false, M, N, K, 1, a, K, b, N, 0, ok, N);
    assert.ok(rt.f32(ok, M * N).every((v) => v === K));
    rt.shutdown();
  });
});
