/**
 * What mixed precision saves and costs (run with --expose-gc): for each precision, the memory the graph keeps
 * for backward after a forward pass (`kept_mb`: `mb.savedBytes`, its saved activations' storages, each once;
 * `graph_mb`: the process's live memory growth after a GC, which includes everything else the pass left), the
 * time of a training step, and test accuracy after a few epochs on the shipped Fashion-MNIST subset.
 * Run: node --expose-gc build/bench/precision.js [epochs]
 */

import { toTensors } from '../src/cli/train.js';
import * as mb from '../src/index.js';

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with node --expose-gc');
const epochs = Number(process.argv[2] ?? 3);
const live = () => {
  gc();
  const m = process.memoryUsage();
  return m.arrayBuffers + m.heapUsed;
};
const ds = mb.loadFashionMnist({ dir: mb.shippedFashionMnistDir()! });
const rows = [];
for (const model of ['mlp', 'cnn'] as const) {
  const [x, y] = toTensors(ds.train.images, ds.train.labels, model);
  const [xt, yt] = toTensors(ds.test.images, ds.test.labels, model);
  const B = model === 'mlp' ? 1024 : 128;
  const xb = x.slice(0, 0, B);
  const yb = y.slice(0, 0, B);
  for (const precision of ['fp32', 'bf16', 'fp16'] as const) {
    const net = mb.buildModel(model, new mb.Generator(0));
    mb.autocast(precision, () => mb.crossEntropy(net.forward(xb), yb)).backward(); // warm-up: grads exist
    // The median of 5 measurements of what one forward pass's graph holds live after a GC.
    const held: number[] = [];
    let loss = mb.zeros([]);
    for (let i = 0; i < 5; i++) {
      const before = live();
      loss = mb.autocast(precision, () => mb.crossEntropy(net.forward(xb), yb));
      held.push(live() - before);
      loss.backward();
    }
    const graphBytes = held.sort((a, b) => a - b)[2]!;
    const kept = mb.savedBytes(mb.autocast(precision, () => mb.crossEntropy(net.forward(xb), yb)));
    const opt = new mb.SGD(net.parameters(), { lr: 0.05, momentum: 0.9 });
    const times: number[] = [];
    for (let i = 0; i < 7; i++) {
      const t0 = performance.now();
      opt.zeroGrad();
      mb.autocast(precision, () => mb.crossEntropy(net.forward(xb), yb)).backward();
      opt.step();
      times.push(performance.now() - t0);
    }
    times.sort((a, b) => a - b);
    const fresh = mb.buildModel(model, new mb.Generator(0));
    const loader = new mb.DataLoader(new mb.TensorDataset(x, y), { batchSize: 64, shuffle: true, seed: 0 });
    const test = new mb.DataLoader(new mb.TensorDataset(xt, yt), { batchSize: 1000 });
    const r = await mb.fit(fresh, {
      train: loader,
      val: test,
      optimizer: new mb.SGD(fresh.parameters(), { lr: 0.05, momentum: 0.9 }),
      epochs: model === 'cnn' ? 1 : epochs,
      precision,
    });
    rows.push({
      model,
      batch: B,
      precision,
      kept_mb: +(kept / 2 ** 20).toFixed(2),
      graph_mb: +(graphBytes / 2 ** 20).toFixed(2),
      step_ms: +times[3]!.toFixed(1),
      test_accuracy: +r.history.at(-1)!.valAccuracy!.toFixed(4),
      epochs: r.history.length,
    });
    console.log(JSON.stringify(rows.at(-1)));
  }
}
console.table(rows);
