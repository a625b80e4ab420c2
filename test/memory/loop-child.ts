/**
 * Child process for the flat-memory test (run with --expose-gc): the documented PyTorch-style training loop
 * (DataLoader, Module, crossEntropy, SGD) with no scope or dispose call anywhere. Prints JSON with the live
 * heap + typed-array bytes after a GC at each checkpoint, and the losses.
 */
import * as mb from '../../src/index.js';

const steps = Number(process.argv[2] ?? 3000);
const gen = new mb.Generator(0);
const X = mb.randn([512, 64], { generator: gen });
const y = X.slice(1, 0, 10).argmax(1);
const model = new mb.Sequential(
  new mb.Linear(64, 32),
  new mb.BatchNorm1d(32),
  new mb.ReLU(),
  new mb.Dropout(0.1),
  new mb.Linear(32, 10),
);
const optimizer = new mb.SGD(model.parameters(), { lr: 0.05, momentum: 0.9 });
const loader = new mb.DataLoader(new mb.TensorDataset(X, y), { batchSize: 32, shuffle: true, seed: 0 });

const live = () => {
  // Twice: V8 frees array buffers on a background sweeper, which the next full GC waits for.
  (globalThis as { gc?: () => void }).gc!();
  (globalThis as { gc?: () => void }).gc!();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
};
const samples: number[] = [];
const losses: number[] = [];
let step = 0;
while (step < steps) {
  for (const [xb, yb] of loader) {
    const loss = mb.crossEntropy(model.forward(xb!), yb!);
    optimizer.zeroGrad();
    loss.backward();
    optimizer.step();
    if (step % 100 === 0) losses.push(loss.item());
    if (step >= steps / 10 && step % (steps / 10) === 0) samples.push(live());
    if (++step === steps) break;
  }
}
console.log(JSON.stringify({ samples, losses, backend: mb.backendInfo().name }));
