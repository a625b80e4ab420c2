/**
 * A finite-difference gradient check for every differentiable primitive, on random inputs. The last test
 * fails when a primitive is added to the gradient table without a case here.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import type { Primitive, Tensor } from '../../src/index.js';
import * as mb from '../../src/index.js';
import { forEachBackend, gradcheck } from '../helpers.js';

const g = new mb.Generator(123);
const r = (...shape: number[]) => mb.randn(shape, { generator: g });
/** Values bounded away from 0 (for log, sqrt, div, pow) and away from kinks (abs, relu, clamp). */
const pos = (...shape: number[]) => mb.add(mb.rand(shape, { generator: g }), 0.5);
const awayFromZero = (...shape: number[]) => {
  const x = r(...shape);
  return mb.add(x, mb.mul(mb.sign(x), 0.1));
};

const w423 = r(4, 2, 3);
const w234 = r(2, 3, 4);

const cases: Record<Primitive, [(...xs: Tensor[]) => Tensor, () => Tensor[]]> = {
  neg: [(x) => mb.neg(x), () => [r(3, 4)]],
  exp: [(x) => mb.exp(x), () => [r(3, 4)]],
  log: [(x) => mb.log(x), () => [pos(3, 4)]],
  sqrt: [(x) => mb.sqrt(x), () => [pos(3, 4)]],
  abs: [(x) => mb.abs(x), () => [awayFromZero(3, 4)]],
  tanh: [(x) => mb.tanh(x), () => [r(3, 4)]],
  sigmoid: [(x) => mb.sigmoid(x), () => [r(3, 4)]],
  relu: [(x) => mb.relu(x), () => [awayFromZero(3, 4)]],
  erf: [(x) => mb.erf(x), () => [r(3, 4)]],
  sign: [(x) => mb.add(mb.sign(x), x), () => [awayFromZero(5)]],
  add: [(a, b) => mb.add(a!, b!), () => [r(2, 3, 4), r(3, 1)]],
  sub: [(a, b) => mb.sub(a!, b!), () => [r(4), r(2, 3, 4)]],
  mul: [(a, b) => mb.mul(a!, b!), () => [r(2, 3), r(2, 1)]],
  div: [(a, b) => mb.div(a!, b!), () => [r(2, 3), pos(3)]],
  pow: [(a, b) => mb.pow(a!, b!), () => [pos(2, 3), r(2, 3)]],
  maximum: [(a, b) => mb.maximum(a!, b!), () => [r(3, 4), r(4)]],
  minimum: [(a, b) => mb.minimum(a!, b!), () => [r(3, 4), r(3, 1)]],
  where: [(a, b) => mb.where(mb.gt(a!, 0), a!, b!), () => [awayFromZero(3, 4), r(4)]],
  clamp: [(x) => mb.clamp(x, -0.5, 0.5), () => [mb.tensor([-1, -0.3, 0.1, 0.4, 0.9, 2])]],
  sum: [(x) => mb.sum(x, [0, 2], true), () => [r(2, 3, 4)]],
  max: [(x) => mb.max(x, 1), () => [r(3, 5)]],
  min: [(x) => mb.min(x, [0, 1]), () => [r(3, 5)]],
  softmax: [(x) => mb.softmax(x, 0), () => [r(4, 3)]],
  logSoftmax: [(x) => mb.logSoftmax(x, -1), () => [r(2, 3, 5)]],
  matmul: [(a, b) => mb.matmul(a!, b!), () => [r(2, 1, 3, 4), r(3, 4, 2)]],
  reshape: [(x) => mb.reshape(mb.transpose(x, 0, 1), [-1]), () => [r(3, 4)]],
  permute: [(x) => mb.mul(mb.permute(x, [2, 0, 1]), w423), () => [r(2, 3, 4)]],
  expand: [(x) => mb.mul(mb.expand(x, [2, 3, 4]), w234), () => [r(3, 1)]],
  slice: [(x) => mb.slice(x, 1, 1, 5, 2), () => [r(3, 6)]],
  contiguous: [(x) => mb.contiguous(mb.transpose(x, 0, 1)), () => [r(3, 4)]],
  cat: [(a, b) => mb.cat([a!, b!], 1), () => [r(2, 3), r(2, 2)]],
  indexSelect: [(x) => mb.indexSelect(x, 0, [2, 0, 2, 1]), () => [r(3, 4)]],
  // A fused op: y = a·b² with its hand-written backward.
  custom: [
    (a, b) =>
      mb.customOp(
        'cube',
        [a!, b!],
        mb.noGrad(() => mb.mul(a!, mb.mul(b!, b!))),
        (g) => [mb.mul(g, mb.mul(b!, b!)), mb.mul(g, mb.mul(mb.mul(a!, b!), 2))],
      ),
    () => [r(3), r(3)],
  ],
};

forEachBackend(() => {
  for (const [prim, [fn, inputs]] of Object.entries(cases)) {
    it(`${prim}: autograd matches finite differences`, () => gradcheck(fn, inputs(), { label: prim }));
  }
  it('composite ops built from primitives: mean, var, std, logsumexp, stack, select', () => {
    gradcheck((x) => mb.mean(x, 1), [r(3, 4)], { label: 'mean' });
    gradcheck((x) => mb.variance(x, [0], { correction: 0 }), [r(5, 2)], { label: 'var' });
    gradcheck((x) => mb.std(x, 1), [r(2, 6)], { label: 'std' });
    gradcheck((x) => mb.logsumexp(x, -1), [r(3, 4)], { label: 'logsumexp' });
    gradcheck((a, b) => mb.stack([a!, b!], 1), [r(2, 3), r(2, 3)], { label: 'stack' });
    gradcheck((x) => x.select(1, -1), [r(2, 3)], { label: 'select' });
  });
});

it('every primitive in the gradient table has a finite-difference case', () => {
  assert.deepEqual(Object.keys(cases).sort(), Object.keys(mb.gradRules).sort());
});
