/**
 * GEMM throughput of the wasm runtime, plain SIMD and (where the engine has it) relaxed SIMD, on 1 and 2
 * threads, plus the per-call cost of a small GEMM. Run one benchmark at a time:
 *   node --experimental-wasm-relaxed-simd build/bench/gemm.js [threads...]
 */
import { initWasm, type WasmRuntime } from '../src/backend/wasm/runtime.js';

const shapes: [number, number, number][] = [
  [128, 784, 256],
  [512, 512, 512],
  [1024, 1024, 1024],
];
const threadCounts = process.argv.length > 2 ? process.argv.slice(2).map(Number) : [1, 2];

/** Best of `rounds` timings of `reps` calls, in ms per call, after one untimed round (JIT tier-up). */
function time(fn: () => void, reps: number, rounds = 3): number {
  for (let i = 0; i < reps; i++) fn();
  let best = Number.POSITIVE_INFINITY;
  for (let r = 0; r < rounds; r++) {
    const t0 = performance.now();
    for (let i = 0; i < reps; i++) fn();
    best = Math.min(best, (performance.now() - t0) / reps);
  }
  return best;
}

function gemmCase(rt: WasmRuntime, M: number, N: number, K: number): () => void {
  const a = rt.alloc(4 * M * K);
  const b = rt.alloc(4 * K * N);
  const c = rt.alloc(4 * M * N);
  for (const [p, n] of [
    [a, M * K],
    [b, K * N],
  ] as const) {
    rt.f32(p, n).set(Float32Array.from({ length: n }, () => Math.random() - 0.5));
  }
  return () => rt.sgemm(false, false, M, N, K, 1, a, K, b, N, 0, c, N);
}

for (const relaxedSimd of [false, true]) {
  const rt = initWasm({ relaxedSimd });
  if (relaxedSimd && !rt.features.relaxedSimd) {
    console.log('relaxed SIMD: not available (Node 20 needs --experimental-wasm-relaxed-simd)');
    continue;
  }
  const kind = relaxedSimd ? 'relaxed' : 'plain';
  for (const threads of threadCounts) {
    rt.threads = threads;
    for (const [M, N, K] of shapes) {
      const flops = 2 * M * N * K;
      const ms = time(gemmCase(rt, M, N, K), Math.max(1, Math.round(3e8 / flops)));
      console.log(
        `${kind} ${threads}t ${M}x${N}x${K}: ${(flops / ms / 1e6).toFixed(1)} GFLOP/s (${ms.toFixed(2)} ms)`,
      );
    }
  }
  rt.threads = 1;
  const us = time(gemmCase(rt, 32, 32, 32), 20000) * 1000;
  console.log(
    `${kind} 32x32x32: ${us.toFixed(2)} µs per call (${((2 * 32 ** 3) / us / 1e3).toFixed(1)} GFLOP/s)`,
  );
  rt.shutdown();
}
