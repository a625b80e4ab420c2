/**
 * Child process for the flat-memory test (run with --expose-gc): a PyTorch-style training loop written
 * without any scope or dispose call. Prints JSON with the live heap + typed-array bytes after a GC at each
 * checkpoint.
 */
import * as mb from '../../src/index.js';

const steps = Number(process.argv[2] ?? 3000);
const gen = new mb.Generator(0);
const X = mb.randn([256, 64], { generator: gen });
const y = mb.randint(0, 10, [256], { generator: gen });
const onehot = mb.eq(mb.arange(10).reshape(1, 10), y.reshape(256, 1)).float();
const w1 = mb.mul(mb.randn([64, 32], { generator: gen }), 0.1).requiresGrad_();
const b1 = mb.zeros([32], { requiresGrad: true });
const w2 = mb.mul(mb.randn([32, 10], { generator: gen }), 0.1).requiresGrad_();
const params = [w1, b1, w2];

const live = () => {
  (globalThis as { gc?: () => void }).gc!();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
};
const samples: number[] = [];
const losses: number[] = [];
for (let step = 0; step < steps; step++) {
  const idx = mb.randint(0, 256, [32], { generator: gen });
  const xb = mb.indexSelect(X, 0, idx);
  const tb = mb.indexSelect(onehot, 0, idx);
  const logits = xb.matmul(w1).add(b1).relu().matmul(w2);
  const loss = logits.logSoftmax(-1).mul(tb).sum(-1).mean().neg();
  for (const p of params) p.grad?.zero_();
  loss.backward();
  mb.noGrad(() => {
    for (const p of params) p.copy_(p.sub(p.grad!.mul(0.1)));
  });
  if (step % 100 === 0) losses.push(loss.item());
  if (step >= steps / 10 && step % (steps / 10) === 0) samples.push(live());
}
console.log(JSON.stringify({ samples, losses }));
