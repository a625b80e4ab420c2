/**
 * The seed's section 4: vectorised activations and batch losses, in minibatch.
 * Run: npx tsc -p tsconfig.json && node build/examples/losses.js
 */
import * as mb from '../src/index.js';

const F = mb.functional;
const g = new mb.Generator(1);
const X = mb.randn([4, 5], { generator: g }).mul(3);
console.log('relu_batch   ', F.relu(X).toList());
console.log(
  'sigmoid_batch at ±1000 (stable, no clipping needed):',
  F.sigmoid(mb.tensor([-1000, 0, 1000])).toList(),
);
console.log('softmax_batch rows sum to', F.softmax(X, 1).sum(1).toList());

const pred = mb.randn([8, 3], { generator: g });
const target = mb.randn([8, 3], { generator: g });
console.log('mse_loss_batch', mb.mseLoss(pred, target).item());

const logits = mb.randn([8, 10], { generator: g }).mul(2);
const labels = mb.randint(0, 10, [8], { generator: g });
// The seed's cross_entropy_batch takes probabilities and adds 1e-8; crossEntropy takes logits and is exact.
const probs = F.softmax(logits, 1);
const picked = Array.from({ length: 8 }, (_, i) =>
  probs
    .select(0, i)
    .select(0, (labels.toList() as number[])[i]!)
    .item(),
);
const seedValue = -picked.reduce((s, p) => s + Math.log(p + 1e-8), 0) / 8;
console.log(`cross_entropy_batch (seed, probabilities + 1e-8): ${seedValue.toFixed(6)}`);
console.log(
  `crossEntropy (logits, exact):                      ${mb.crossEntropy(logits, labels).item().toFixed(6)}`,
);
console.log('with label smoothing 0.1:', mb.crossEntropy(logits, labels, { labelSmoothing: 0.1 }).item());
