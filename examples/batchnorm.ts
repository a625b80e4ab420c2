/**
 * The seed's section 5 BatchNorm, in minibatch: forward in training and eval, and the backward pass the seed
 * derives by hand, here computed by the fused op's analytic formula. Checks dX against the seed's formula.
 * Run: npx tsc -p tsconfig.json && node build/examples/batchnorm.js
 */
import * as mb from '../src/index.js';

const g = new mb.Generator(0);
const X = mb.randn([32, 4], { generator: g }).mul(2).add(1).requiresGrad_();
const bn = new mb.BatchNorm1d(4);

const fmt = (t: mb.Tensor) => (t.toList() as number[]).map((v) => v.toFixed(4)).join(', ');
const out = bn.forward(X); // training: batch statistics
console.log(
  `train forward: per-feature mean [${fmt(out.mean(0))}], var [${fmt(out.var(0, { correction: 0 }))}]`,
);
const dout = mb.randn([32, 4], { generator: g });
out.backward(dout);

// The seed's hand-written backward, with the same tensors, for comparison.
const eps = 1e-5;
const { x, mean, v } = mb.noGrad(() => ({ x: X.detach(), mean: X.mean(0), v: X.var(0, { correction: 0 }) }));
const inv = v.add(eps).sqrt();
const xNorm = x.sub(mean).div(inv);
const dXn = dout.mul(bn.weight!.detach());
const dvar = dXn.mul(x.sub(mean)).mul(-0.5).mul(v.add(eps).pow(-1.5)).sum(0);
const dmean = dXn.mul(-1).div(inv).sum(0);
const dXseed = dXn
  .div(inv)
  .add(dvar.mul(2).mul(x.sub(mean)).div(32))
  .add(dmean.div(32));
const maxdiff = X.grad!.sub(dXseed).abs().max().item();
console.log(`dgamma [${fmt(bn.weight!.grad!)}]`);
console.log(`dbeta  [${fmt(bn.bias!.grad!)}]`);
console.log(`dX: fused analytic backward vs the seed's formula, max |diff| = ${maxdiff.toExponential(2)}`);
console.log(
  `dgamma vs sum(dout * X_norm): max |diff| = ${bn.weight!.grad!.sub(dout.mul(xNorm).sum(0)).abs().max().item().toExponential(2)}`,
);

// Running statistics (PyTorch convention: momentum 0.1 weighs the new batch; the seed's 0.9 weighs the old).
console.log(`running_mean [${fmt(bn.runningMean!)}], running_var (unbiased) [${fmt(bn.runningVar!)}]`);
bn.eval();
console.log(
  `eval forward of the first row: [${fmt(mb.noGrad(() => bn.forward(x.slice(0, 0, 1))).reshape(-1))}]`,
);
