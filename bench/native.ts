/**
 * GEMM throughput of the native backend (the system BLAS through koffi) on 1 thread and all cores, next to
 * the wasm runtime and numpy's BLAS measured in the same run (where `python3 -c 'import numpy'` works), plus
 * the per-call cost of a 32×32×32 product through the full op (`mb.matmul`) and through the raw cblas call.
 * Short: best of 3 rounds of ~0.3 GFLOP each. Run alone:
 *   node --experimental-wasm-relaxed-simd build/bench/native.js
 */
import { spawnSync } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { nativeBlas, nativeUnavailable } from '../src/backend/native/backend.js';
import { wasmRuntime } from '../src/backend/wasm/backend.js';
import * as mb from '../src/index.js';

/** [M, N, K] as in bench/gemm.ts: 128x784x256 is the MLP's first layer at batch 128. */
const shapes: [number, number, number][] = [
  [128, 784, 256],
  [512, 512, 512],
  [1024, 1024, 1024],
];
const cores = availableParallelism();
const threadCounts = [...new Set([1, cores])];

/** Best of `rounds` timings of `reps` calls, in ms per call, after one untimed round. */
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
const repsFor = (flops: number) => Math.max(1, Math.round(3e8 / flops));
const randArray = (n: number) => Float32Array.from({ length: n }, () => Math.random() - 0.5);

/** GFLOP/s per `${label} ${threads}t` and shape label. */
const rows = new Map<string, Map<string, number>>();
const put = (row: string, shape: string, gflops: number) => {
  if (!rows.has(row)) rows.set(row, new Map());
  rows.get(row)!.set(shape, gflops);
};
const label = ([M, N, K]: [number, number, number]) => `${M}x${N}x${K}`;

const blas = nativeBlas();
if (!blas) console.log(`native: unavailable (${nativeUnavailable})`);
else {
  const info = mb.backendInfo();
  console.log(`native: ${blas.vendor} ${blas.library}${blas.config ? ` (${blas.config})` : ''}`);
  if (info.facts.core) console.log(`core: ${info.facts.core}`);
  for (const threads of threadCounts) {
    blas.setThreads(threads);
    for (const s of shapes) {
      const [M, N, K] = s;
      const [a, b, c] = [randArray(M * K), randArray(K * N), new Float32Array(M * N)];
      const flops = 2 * M * N * K;
      const ms = time(() => blas.sgemm(false, false, M, N, K, 1, a, K, b, N, 0, c, N), repsFor(flops));
      put(`native ${threads}t`, label(s), flops / ms / 1e6);
    }
  }
}

const rt = wasmRuntime();
if (rt) {
  const was = rt.threads;
  for (const threads of threadCounts) {
    rt.threads = threads;
    for (const s of shapes) {
      const [M, N, K] = s;
      const [pa, pb, pc] = [rt.alloc(4 * M * K), rt.alloc(4 * K * N), rt.alloc(4 * M * N)];
      rt.f32(pa, M * K).set(randArray(M * K));
      rt.f32(pb, K * N).set(randArray(K * N));
      const flops = 2 * M * N * K;
      const ms = time(() => rt.sgemm(false, false, M, N, K, 1, pa, K, pb, N, 0, pc, N), repsFor(flops));
      put(`wasm${rt.features.relaxedSimd ? ' relaxed' : ''} ${threads}t`, label(s), flops / ms / 1e6);
      for (const p of [pa, pb, pc]) rt.free(p);
    }
  }
  rt.threads = was;
}

// numpy: one python process per thread count (its BLAS reads the thread variables when it loads).
const numpyScript = `
import json, sys, time
import numpy as np
try:
    blas = np.show_config(mode='dicts')['Build Dependencies']['blas']
    name = f"{blas.get('name')} {blas.get('version', '')}".strip()
except Exception:
    name = 'unknown BLAS'
out = {'version': np.__version__, 'blas': name, 'gflops': {}}
for M, N, K in json.loads(sys.argv[1]):
    a = np.random.rand(M, K).astype(np.float32) - 0.5
    b = np.random.rand(K, N).astype(np.float32) - 0.5
    flops = 2 * M * N * K
    reps = max(1, round(3e8 / flops))
    a @ b
    best = float('inf')
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(reps):
            a @ b
        best = min(best, (time.perf_counter() - t0) / reps)
    out['gflops'][f'{M}x{N}x{K}'] = flops / best / 1e9
print(json.dumps(out))
`;
const probe = spawnSync('python3', ['-c', 'import numpy'], { encoding: 'utf8' });
if (probe.status !== 0) {
  console.log(`numpy: not available (${probe.error?.message ?? probe.stderr.trim().split('\n').pop()})`);
} else {
  for (const threads of threadCounts) {
    const n = String(threads);
    const r = spawnSync('python3', ['-c', numpyScript, JSON.stringify(shapes)], {
      encoding: 'utf8',
      env: { ...process.env, OPENBLAS_NUM_THREADS: n, OMP_NUM_THREADS: n, MKL_NUM_THREADS: n },
    });
    if (r.status !== 0) {
      console.log(`numpy: failed (${r.stderr.trim().split('\n').pop()})`);
      break;
    }
    const res = JSON.parse(r.stdout) as { version: string; blas: string; gflops: Record<string, number> };
    if (threads === 1) console.log(`numpy ${res.version}: ${res.blas}`);
    for (const [shape, g] of Object.entries(res.gflops)) put(`numpy ${threads}t`, shape, g);
  }
}

console.log(`\nGFLOP/s (best of 3, ${cores} cores, float32, C = A·B row-major):\n`);
console.log(`| backend | ${shapes.map(label).join(' | ')} |`);
console.log(`| --- | ${shapes.map(() => '---:').join(' | ')} |`);
for (const [row, m] of rows) {
  console.log(`| ${row} | ${shapes.map((s) => m.get(label(s))?.toFixed(1) ?? '-').join(' | ')} |`);
}

// Per-call cost of a small product: the full op (validation, allocation, dispatch) vs the raw FFI call.
console.log('\n32x32x32 per call (1 thread):');
const a = mb.uniform([32, 32], -1, 1);
const b = mb.uniform([32, 32], -1, 1);
if (rt) rt.threads = 1;
for (const backend of ['native', 'wasm', 'js']) {
  if (!mb.listBackends().includes(backend)) continue;
  mb.setBackend(backend);
  const us = time(() => mb.matmul(a, b), 5000) * 1000;
  console.log(`  mb.matmul on ${backend}: ${us.toFixed(2)} µs`);
}
if (blas) {
  blas.setThreads(1);
  const [x, y, z] = [a.data as Float32Array, b.data as Float32Array, new Float32Array(1024)];
  const us = time(() => blas.sgemm(false, false, 32, 32, 32, 1, x, 32, y, 32, 0, z, 32), 20000) * 1000;
  console.log(`  raw cblas_sgemm: ${us.toFixed(2)} µs (${((2 * 32 ** 3) / us / 1e3).toFixed(1)} GFLOP/s)`);
}
rt?.shutdown();
