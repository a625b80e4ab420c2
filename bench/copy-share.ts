/**
 * The memory-design measurement (ARCHITECTURE.md, "Memory"): if every temporary lived in the JavaScript heap
 * and a fast backend copied kernel operands in and results out, what share of a training step would the
 * copies cost? Counts the bytes that cross per step (MLP 784-256-128-10, batch 128, forward + backward + SGD,
 * parameters/gradients pinned, so only temporaries cross), times copying that many bytes with
 * TypedArray.set, and compares with the step's GEMM time at a measured SIMD speed (GFLOPS env, default 30).
 */

import type { KernelTable, View } from '../src/backend/backend.js';
import { jsKernels } from '../src/backend/js/kernels.js';
import * as mb from '../src/index.js';
import { allocStorage } from '../src/tensor/dtype.js';

let bytes = 0;
const counted = Object.fromEntries(
  Object.entries(jsKernels).map(([name, fn]) => [
    name,
    (...args: unknown[]) => {
      for (const a of args) {
        if (a && typeof a === 'object' && 'data' in a && 'shape' in a) {
          const v = a as View;
          bytes += v.shape.reduce((p, d) => p * d, 1) * 4;
        } else if (ArrayBuffer.isView(a)) bytes += (a as Float32Array).byteLength;
      }
      return (fn as (...x: unknown[]) => unknown)(...args);
    },
  ]),
) as unknown as KernelTable;
mb.registerBackend(
  {
    name: 'count',
    priority: -1,
    alloc: allocStorage,
    describe: () => ({}),
  },
  counted,
);
mb.setBackend('count');

const B = 128;
const gen = new mb.Generator(0);
const layers = [784, 256, 128, 10];
const params = layers
  .slice(1)
  .flatMap((out, i) => [
    mb.mul(mb.randn([out, layers[i]!], { generator: gen }), 0.05).requiresGrad_(),
    mb.zeros([out], { requiresGrad: true }),
  ]);
const x = mb.randn([B, 784], { generator: gen });
const t = mb.eq(mb.arange(10).reshape(1, 10), mb.randint(0, 10, [B, 1], { generator: gen })).float();
const step = () => {
  let h = x;
  for (let i = 0; i < params.length; i += 2) {
    h = mb.functional.linear(h, params[i]!, params[i + 1]!);
    if (i < params.length - 2) h = h.relu();
  }
  const loss = h.logSoftmax(-1).mul(t).sum(-1).mean().neg();
  loss.backward();
};
step();
bytes = 0;
step();
// Parameters and their gradients are pinned in the fast backend's memory: they do not cross.
const pinned = params.reduce((s, p) => s + p.size * 4 * 2, 0);
const crossing = Math.max(0, bytes - pinned);
const src = new Float32Array(crossing / 4);
const dst = new Float32Array(crossing / 4);
let best = Infinity;
for (let r = 0; r < 20; r++) {
  const t0 = performance.now();
  dst.set(src);
  best = Math.min(best, performance.now() - t0);
}
const flops = 3 * 2 * B * (784 * 256 + 256 * 128 + 128 * 10);
const gflops = Number(process.env.GFLOPS ?? 30);
const gemmMs = flops / (gflops * 1e6);
console.log(
  JSON.stringify({
    batch: B,
    bytesPerStep: bytes,
    crossingBytes: crossing,
    copyMs: +best.toFixed(3),
    gemmMsAtGflops: +gemmMs.toFixed(3),
    gflops,
    copyShare: +(best / (best + gemmMs)).toFixed(3),
  }),
);
