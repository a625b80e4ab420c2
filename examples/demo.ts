/**
 * A first look at minibatch: build a batch, run a small MLP forward and backward, print what happened.
 * Run: npm run demo
 */
import * as mb from '../src/index.js';

const F = mb.functional;
const gen = new mb.Generator(0);

// A batch of N=32 flattened 28×28 images (N, D) and their class labels (N).
const N = 32;
const x = mb.randn([N, 784], { generator: gen });
const labels = mb.randint(0, 10, [N], { generator: gen });
console.log(`backend: ${mb.backendInfo().name}`);
console.log(`batch x: [${x.shape}] ${x.dtype}, labels: [${labels.shape}] ${labels.dtype}`);

// A 784-128-10 MLP with PyTorch's Linear layout: weight (out, in), y = x·Wᵀ + b.
const init = (out: number, inp: number) =>
  mb.uniform([out, inp], -1 / Math.sqrt(inp), 1 / Math.sqrt(inp), { generator: gen }).requiresGrad_();
const w1 = init(128, 784);
const b1 = mb.zeros([128], { requiresGrad: true });
const w2 = init(10, 128);
const b2 = mb.zeros([10], { requiresGrad: true });

const onehot = mb.eq(mb.arange(10).reshape(1, 10), labels.reshape(N, 1)).float();
for (let step = 0; step < 5; step++) {
  const h = F.relu(F.linear(x, w1, b1)); // (N, 128)
  const logits = F.linear(h, w2, b2); // (N, 10)
  const loss = F.logSoftmax(logits, -1).mul(onehot).sum(-1).mean().neg(); // cross-entropy, a scalar
  for (const p of [w1, b1, w2, b2]) p.grad?.zero_();
  loss.backward();
  const gnorm = Math.sqrt([w1, b1, w2, b2].reduce((s, p) => s + p.grad!.mul(p.grad!).sum().item(), 0));
  mb.noGrad(() => {
    for (const p of [w1, b1, w2, b2]) p.copy_(p.sub(p.grad!.mul(0.1)));
  });
  console.log(
    `step ${step}: loss ${loss.item().toFixed(4)}  |grad| ${gnorm.toFixed(4)}  logits [${logits.shape}]`,
  );
}
console.log('softmax of the first sample after 5 SGD steps:');
console.log(
  String(mb.noGrad(() => F.softmax(F.linear(F.relu(F.linear(x.slice(0, 0, 1), w1, b1)), w2, b2), -1))),
);
