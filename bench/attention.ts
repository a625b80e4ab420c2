/**
 * Attention paths: time and peak extra memory of naive, query-chunked (chunk 128) and tiled, forward and
 * forward+backward; and the tiled kernels' extra memory as L grows.
 *   node build/bench/attention.js [B L D]        (default 4 2048 64; re-runs itself with --expose-gc)
 *
 * The size (4, 2048, 64) runs with the default backend's matmul (wasm SIMD where it loads). On the
 * reference js backend one naive forward of it alone takes about 20 s on this 2-core machine (4.3 GFLOP at
 * ~0.2-0.7 GFLOP/s), so the js rows use L/4 (16x less work) to keep the whole run near a minute. The tiled
 * path runs the backend's attention kernels: the reference TypeScript loops on js, WebAssembly SIMD on wasm.
 *
 * How memory is measured: the active backend's allocation point is wrapped; before each allocation it forces
 * a full GC and reads process.memoryUsage().arrayBuffers, so the peak is the live typed-array bytes at the
 * worst allocation plus the bytes being allocated, minus what was live before the call (q, k, v and the
 * upstream gradient). The GC time is subtracted from the timings. Buffers a kernel allocates for itself (js
 * matmul packs its right operand, E·S floats per call; wasm's scratch region inside its memory; the tiled
 * kernels' scratch, counted separately below) do not pass through the allocator and are not in the peak.
 */
import { spawnSync } from 'node:child_process';
import { activeBackend, type Backend, kernels } from '../src/backend/backend.js';
import { wasmRuntime } from '../src/backend/wasm/backend.js';
import * as mb from '../src/index.js';
import { type AttentionImpl, scaledDotProductAttention } from '../src/nn/attention.js';
import { type AttentionGeometry, attentionBackward, attentionForward } from '../src/nn/attention-kernels.js';

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) {
  const r = spawnSync(process.execPath, ['--expose-gc', ...process.argv.slice(1)], { stdio: 'inherit' });
  process.exit(r.status ?? 1);
}
const collect = gc!;

const [B, L, D] = process.argv.length > 4 ? process.argv.slice(2, 5).map(Number) : [4, 2048, 64];
const MiB = 2 ** 20;
const fmt = (bytes: number) => `${(bytes / MiB).toFixed(2)} MiB`;

// ---- the measuring allocator --------------------------------------------------------------------------------
let base = 0;
let peak = 0;
let gcMs = 0;
const live = () => {
  const t = performance.now();
  // Twice: V8 frees array buffers on a background sweeper, which the next full GC waits for.
  collect();
  collect();
  const bytes = process.memoryUsage().arrayBuffers;
  gcMs += performance.now() - t;
  return bytes;
};
let tracking = false;
for (const name of mb.listBackends()) {
  mb.setBackend(name);
  const be = activeBackend();
  const alloc = be.alloc.bind(be);
  be.alloc = ((dtype: mb.DType, n: number) => {
    if (tracking) peak = Math.max(peak, live() + n * (dtype === 'bool' ? 1 : 4) - base);
    return alloc(dtype, n);
  }) as Backend['alloc'];
}
const fast = mb.listBackends().find((b) => {
  mb.setBackend(b);
  return b !== 'js' && !mb.backendInfo().fallbacks.includes('matmul');
});

/** Milliseconds (GC for sampling excluded) and peak extra bytes of fn. */
function measure(fn: () => void): { ms: number; bytes: number } {
  base = live();
  peak = 0;
  gcMs = 0;
  tracking = true;
  const t0 = performance.now();
  fn();
  const ms = performance.now() - t0 - gcMs;
  tracking = false;
  return { ms, bytes: Math.max(peak, live() - base) };
}

// ---- 1. the tiled kernels as L grows ------------------------------------------------------------------------
// S is fixed at 256 so the sweep stays within seconds (the work is L·S); the unit tests show the scratch is
// independent of S too. Kernel scratch is what the kernels report allocating; the arrayBuffers delta across a
// call (GC before, none during: the kernels allocate only on entry) cross-checks it; maxRSS is the process's
// high-water mark after the call, which would jump by L·S·4 bytes per score matrix if one were built. This
// runs first, before the naive path raises the high-water mark.
const S = 256;
const rss0 = process.resourceUsage().maxRSS * 1024;
console.log(`tiled kernels alone, B=1, S=${S}, E=Ev=${D}, tiles 64 x 128; maxRSS before: ${fmt(rss0)}`);
console.log(
  '| L | inputs+outputs+LSE+grads | fwd scratch (counted) | Δ arrayBuffers fwd | bwd scratch (counted) | Δ arrayBuffers bwd | maxRSS | time |',
);
console.log('| --- | --- | --- | --- | --- | --- | --- | --- |');
for (const n of [1024, 2048, 4096, 8192]) {
  const rnd = (len: number) => Float32Array.from({ length: len }, () => Math.random() - 0.5);
  const [q, k, v] = [rnd(n * D), rnd(S * D), rnd(S * D)];
  const [o, lse, dq, dk, dv] = [
    new Float32Array(n * D),
    new Float32Array(n),
    new Float32Array(n * D),
    new Float32Array(S * D),
    new Float32Array(S * D),
  ];
  const geom: AttentionGeometry = {
    B: 1,
    L: n,
    S,
    E: D,
    Ev: D,
    scale: 1 / Math.sqrt(D),
    causal: false,
    blockQ: 64,
    blockK: 128,
  };
  const io = (q.length + k.length + v.length + o.length + lse.length + dq.length + dk.length + dv.length) * 4;
  const t0 = performance.now();
  let a0 = live();
  const fwd = attentionForward(q, k, v, geom, null, o, lse);
  const dFwd = process.memoryUsage().arrayBuffers - a0;
  a0 = live();
  const bwd = attentionBackward(q, k, v, o, o, lse, geom, null, dq, dk, dv, null);
  const dBwd = process.memoryUsage().arrayBuffers - a0;
  const ms = performance.now() - t0;
  const rss = process.resourceUsage().maxRSS * 1024;
  console.log(
    `| ${n} | ${fmt(io)} | ${(fwd / 1024).toFixed(1)} KiB | ${(dFwd / 1024).toFixed(1)} KiB | ${(bwd / 1024).toFixed(1)} KiB | ${(dBwd / 1024).toFixed(1)} KiB | ${fmt(rss)} | ${(ms / 1000).toFixed(2)} s |`,
  );
}

// ---- 1b. the wasm kernels as L = S grows ----------------------------------------------------------------------
// Their scratch is a fixed block per thread inside the wasm memory (the runtime's, shared with GEMM); the
// operands are copied into one reused heap region. So the heap holds the operands, never an L×S matrix: its
// size tracks the operands column, while one score matrix grows as L².
const rt = wasmRuntime();
if (rt) {
  mb.setBackend('wasm');
  const wasmKernels = kernels();
  const perThread = rt.attentionScratchBytes(64, 128, D, D);
  console.log(
    `\nwasm kernels, B=1, L=S, E=Ev=${D}, tiles 64 x 128, ${rt.threads} threads; kernel scratch ${(perThread / 1024).toFixed(1)} KiB per thread, whatever L`,
  );
  console.log(
    '| L = S | operands (q, k, v, out, lse, dOut, dq, dk, dv) | one L×S score matrix | wasm heap in use | wasm memory | forward | backward |',
  );
  console.log('| --- | --- | --- | --- | --- | --- | --- |');
  // A first round at 256 (not printed) starts the worker threads and warms the code.
  for (const n of [256, 1024, 2048, 4096, 8192]) {
    const rnd = (len: number) => Float32Array.from({ length: len }, () => Math.random() - 0.5);
    const [q, k, v, dOut] = [rnd(n * D), rnd(n * D), rnd(n * D), rnd(n * D)];
    const [o, lse, dq, dk, dv] = [n * D, n, n * D, n * D, n * D].map((len) => new Float32Array(len)) as [
      Float32Array,
      Float32Array,
      Float32Array,
      Float32Array,
      Float32Array,
    ];
    const geom: AttentionGeometry = {
      B: 1,
      L: n,
      S: n,
      E: D,
      Ev: D,
      scale: 1 / Math.sqrt(D),
      causal: false,
      blockQ: 64,
      blockK: 128,
    };
    const t0 = performance.now();
    wasmKernels.attentionForward(q, k, v, geom, null, o, lse);
    const t1 = performance.now();
    wasmKernels.attentionBackward(q, k, v, o, dOut, lse, geom, null, dq, dk, dv, null);
    const t2 = performance.now();
    const operands = (8 * n * D + n) * 4;
    if (n === 256) continue;
    console.log(
      `| ${n} | ${fmt(operands)} | ${fmt(n * n * 4)} | ${fmt(rt.bytesInUse)} | ${fmt(rt.memory.buffer.byteLength)} | ${((t1 - t0) / 1000).toFixed(2)} s | ${((t2 - t1) / 1000).toFixed(2)} s |`,
    );
  }
}

// ---- 2. the three paths ------------------------------------------------------------------------------------
type Row = { path: string; pass: string; ms: number; bytes: number };

function runPath(backend: string, impl: AttentionImpl, n: number, backward: boolean): Row {
  mb.setBackend(backend);
  const g = new mb.Generator(1);
  const [q, k, v] = [0, 1, 2].map(() => mb.randn([B, n, D], { generator: g, requiresGrad: backward }));
  const up = mb.randn([B, n, D], { generator: g });
  const call = () => scaledDotProductAttention(q!, k!, v!, { impl, chunkSize: 128 });
  const r = measure(backward ? () => call().backward(up) : () => mb.noGrad(call));
  const path =
    impl === 'tiled' ? 'tiled' : `${impl === 'chunked' ? 'chunked (128)' : 'naive'}, ${backend} matmul`;
  return { path, pass: backward ? 'fwd+bwd' : 'forward', ...r };
}

function table(n: number, runs: [string, AttentionImpl][]): void {
  // One small round first, so the timings are of optimised code.
  for (const [be, impl] of runs) for (const bwd of [false, true]) runPath(be, impl, 64, bwd);
  const flops = 4 * B * n * n * D; // two GEMMs of 2·L·S·D per batch entry
  const out = B * n * D * 4;
  console.log(
    `\nQ, K, V (${B}, ${n}, ${D}) float32, ${(flops / 1e9).toFixed(2)} GFLOP per forward; naive scores ${fmt(B * n * n * 4)}`,
  );
  console.log('| path | pass | time | GFLOP/s | peak extra memory | of which y (+ dq, dk, dv) |');
  console.log('| --- | --- | --- | --- | --- | --- |');
  for (const [be, impl] of runs) {
    for (const bwd of [false, true]) {
      const r = runPath(be, impl, n, bwd);
      const gfs = ((bwd ? 3 : 1) * flops) / r.ms / 1e6; // backward: about twice the forward's GEMM work
      console.log(
        `| ${r.path} | ${r.pass} | ${(r.ms / 1000).toFixed(2)} s | ${gfs.toFixed(2)} | ${fmt(r.bytes)} | ${fmt(bwd ? 4 * out : out)} |`,
      );
    }
  }
}

if (fast)
  table(L, [
    [fast, 'naive'],
    [fast, 'chunked'],
    [fast, 'tiled'],
  ]);
table(fast ? L / 4 : L, [
  ['js', 'naive'],
  ['js', 'chunked'],
  ['js', 'tiled'],
]);

// ---- 3. TensorFlow.js (tfjs-core on its wasm backend), the naive path built from its ops ---------------------
{
  const tf = await import('@tensorflow/tfjs-core');
  const { setWasmPaths } = await import('@tensorflow/tfjs-backend-wasm');
  const { createRequire } = await import('node:module');
  const { dirname } = await import('node:path');
  const require = createRequire(import.meta.url);
  setWasmPaths(`${dirname(require.resolve('@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm'))}/`);
  tf.enableProdMode();
  await tf.setBackend('wasm');
  const [q, k, v] = [0, 1, 2].map(() => tf.randomNormal([B, L, D]));
  const naive = () => tf.matMul(tf.softmax(tf.mul(tf.matMul(q!, k!, false, true), 1 / Math.sqrt(D))), v!);
  tf.tidy(() => naive().dataSync()); // warm-up
  const t0 = performance.now();
  const info = await tf.profile(() => tf.tidy(() => naive().dataSync()));
  const sec = (performance.now() - t0) / 1000;
  console.log(
    `\nTensorFlow.js ${tf.version_core} (${tf.getBackend()}, 1 thread), naive forward at (${B}, ${L}, ${D}):`,
  );
  console.log(
    `| path | pass | time | peak memory |\n| --- | --- | --- | --- |\n| tfjs naive (its ops) | forward | ${sec.toFixed(2)} s | ${fmt(info.peakBytes)} |`,
  );
}
