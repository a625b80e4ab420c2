/**
 * The seed's section 8 MiniBatchSGD on a small problem, in minibatch: a DataLoader over (X, y), a model,
 * cross-entropy, SGD. The seed's hand-written gradient (softmax - onehot)/N is what autograd computes.
 * Run: npx tsc -p tsconfig.json && node build/examples/minibatch-sgd.js
 */
import * as mb from '../src/index.js';

const g = new mb.Generator(0);
// Three Gaussian blobs in 2-D: a small classification problem.
const N = 600;
const y = mb.randint(0, 3, [N], { generator: g });
const centers = mb.tensor([
  [0, 3],
  [-3, -2],
  [3, -2],
]);
const X = mb.indexSelect(centers, 0, y).add(mb.randn([N, 2], { generator: g }));

const model = new mb.Sequential(
  new mb.Linear(2, 16, { generator: g }),
  new mb.ReLU(),
  new mb.Linear(16, 3, { generator: g }),
);
const optimizer = new mb.SGD(model.parameters(), { lr: 0.1 });
const loader = new mb.DataLoader(new mb.TensorDataset(X, y), { batchSize: 32, shuffle: true, seed: 0 });

for (let epoch = 0; epoch < 5; epoch++) {
  let epochLoss = 0;
  let batches = 0;
  for (const [xb, yb] of loader) {
    const predictions = model.forward(xb!);
    const loss = mb.crossEntropy(predictions, yb!);
    optimizer.zeroGrad();
    loss.backward();
    optimizer.step();
    epochLoss += loss.item();
    batches++;
  }
  const acc = mb.noGrad(() => model.forward(X).argmax(1).eq(y).float().mean().item());
  console.log(
    `epoch ${epoch + 1}: loss ${(epochLoss / batches).toFixed(4)}, accuracy ${(100 * acc).toFixed(1)}%, ${batches} batches`,
  );
}

// The seed's compute_grad_loss: (softmax(predictions) - onehot) / batch_size, next to autograd's.
const xb = X.slice(0, 0, 8);
const yb = y.slice(0, 0, 8);
const logits = model.forward(xb).detach().requiresGrad_();
mb.crossEntropy(logits, yb).backward();
const onehot = mb.eq(mb.arange(3).reshape(1, 3), yb.reshape(8, 1)).float();
const seedGrad = mb.softmax(logits.detach(), 1).sub(onehot).div(8);
console.log(
  `autograd vs the seed's (softmax - onehot)/N: max |diff| = ${logits.grad!.sub(seedGrad).abs().max().item().toExponential(2)}`,
);
