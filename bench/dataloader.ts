/**
 * DataLoader throughput with worker threads. Fashion-MNIST training images go through a per-sample
 * augmentation (random crop of the image padded by 4 pixels, random horizontal flip, normalisation, as
 * torchvision's RandomCrop(28, padding=4) + RandomHorizontalFlip + Normalize) into a simulated training step
 * that busy-waits as long as augmenting a batch takes in this thread, so loading and compute are balanced
 * and perfect overlap would double throughput. Prints samples/s for numWorkers 0, 1 and 2 and the speedup.
 *
 * Run: npx tsc -p tsconfig.json && node build/bench/dataloader.js   (about 15 s)
 */
// The package entry first, as a program would: it registers the backends and loads the tensor modules in order.
import '../src/index.js';
import { availableParallelism, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { isMainThread } from 'node:worker_threads';
import { DataLoader } from '../src/data/dataloader.js';
import type { Dataset, ModuleSpec } from '../src/data/dataset.js';
import { loadFashionMnist } from '../src/data/fashion-mnist.js';
import type { Tensor } from '../src/index.js';
import { defaultGenerator } from '../src/tensor/random.js';

// Fashion-MNIST's training-set pixel mean and standard deviation (in [0, 1] units).
const MEAN = 0.286;
const STD = 0.353;
const PAD = 4;

/** Fashion-MNIST training images, augmented on every read. Workers rebuild it from `spec`. */
export class AugmentedFashion implements Dataset<[Float32Array, number]> {
  readonly spec: ModuleSpec = { module: import.meta.url, export: 'AugmentedFashion', args: [] };
  private readonly images: Uint8Array;
  private readonly labels: Uint8Array;
  readonly length: number;

  constructor() {
    ({
      images: this.images,
      labels: this.labels,
      length: this.length,
    } = loadFashionMnist({ split: 'train' }).train);
  }

  getItem(i: number): [Float32Array, number] {
    // Each worker's default generator is seeded baseSeed + id, so augmentations differ between workers.
    const dx = defaultGenerator.int(-PAD, PAD + 1);
    const dy = defaultGenerator.int(-PAD, PAD + 1);
    const flip = defaultGenerator.uniform() < 0.5;
    const out = new Float32Array(784);
    const src = i * 784;
    for (let r = 0; r < 28; r++) {
      const sr = r + dy;
      for (let c = 0; c < 28; c++) {
        const sc = (flip ? 27 - c : c) + dx;
        const v = sr >= 0 && sr < 28 && sc >= 0 && sc < 28 ? this.images[src + sr * 28 + sc]! : 0;
        out[r * 28 + c] = (v / 255 - MEAN) / STD;
      }
    }
    return [out, this.labels[i]!];
  }
}

const BATCH = 256;
const WARMUP = 10; // batches, which also cover starting the workers and loading the data in each
const BATCHES = 200;

function busyWait(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end);
}

async function main(): Promise<void> {
  const dataset = new AugmentedFashion();
  // The simulated step costs what loading one batch costs in this thread.
  const probe = new DataLoader<Tensor[]>(dataset, { batchSize: BATCH, shuffle: true, seed: 0 });
  let t0 = 0;
  let n = 0;
  for (const _ of probe) {
    if (++n === WARMUP) t0 = performance.now();
    if (n === WARMUP + 20) break;
  }
  const stepMs = (performance.now() - t0) / 20;

  const rows: { workers: number; samplesPerS: number; waitMs: number }[] = [];
  for (const numWorkers of [0, 1, 2]) {
    const loader = new DataLoader<Tensor[]>(dataset, {
      batchSize: BATCH,
      shuffle: true,
      seed: 0,
      numWorkers,
      ...(numWorkers > 0 ? { prefetchFactor: 2, reuseBuffers: true, persistentWorkers: true } : {}),
    });
    let waited = 0;
    let it = loader[Symbol.asyncIterator]();
    for (let b = 0; b < WARMUP + BATCHES; b++) {
      if (b === WARMUP) t0 = performance.now();
      const w0 = performance.now();
      // The subset shipped in the package (10,000 images) runs out within the count: start another epoch.
      if ((await it.next()).done) await (it = loader[Symbol.asyncIterator]()).next();
      if (b >= WARMUP) waited += performance.now() - w0;
      busyWait(stepMs);
    }
    await it.return?.();
    loader.close();
    const seconds = (performance.now() - t0) / 1000;
    rows.push({ workers: numWorkers, samplesPerS: (BATCHES * BATCH) / seconds, waitMs: waited / BATCHES });
  }

  // Other processes on the machine skew the worker rows most: say how busy it was.
  console.log(`load average ${loadavg()[0]!.toFixed(2)} on ${availableParallelism()} cores`);
  console.log(
    `${dataset.length} images, batch ${BATCH}, ${BATCHES} batches timed: loading a batch in this thread ${stepMs.toFixed(2)} ms, simulated step as long`,
  );
  console.log('numWorkers | samples/s | waiting for data, ms/batch | speedup');
  for (const r of rows) {
    console.log(
      `${String(r.workers).padStart(10)} | ${r.samplesPerS.toFixed(0).padStart(9)} | ${r.waitMs.toFixed(2).padStart(26)} | ${(r.samplesPerS / rows[0]!.samplesPerS).toFixed(2)}x`,
    );
  }
}

// Workers (and other modules) import this one for AugmentedFashion; only running it runs the benchmark.
if (isMainThread && process.argv[1] === fileURLToPath(import.meta.url)) await main();
