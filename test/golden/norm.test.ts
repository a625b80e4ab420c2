import assert from 'node:assert/strict';
import { it } from 'node:test';
import * as mb from '../../src/index.js';
import { assertClose, type FixtureTensor, fixture, forEachBackend, ft, gradcheck } from '../helpers.js';

type Step = Record<
  'x' | 'y' | 'g' | 'dx' | 'dweight' | 'dbias' | 'running_mean' | 'running_var',
  FixtureTensor
> & { num_batches_tracked: number };
type BnCase = {
  shape: number[];
  eps: number;
  momentum: number;
  weight: FixtureTensor;
  bias: FixtureTensor;
  train_steps: Step[];
  eval_x: FixtureTensor;
  eval_y: FixtureTensor;
};

forEachBackend(() => {
  for (const c of fixture<{ cases: BnCase[] }>('batchnorm.json').cases) {
    it(`BatchNorm${c.shape.length === 4 ? '2d' : '1d'} on ${c.shape}: 3 training steps and eval match PyTorch`, () => {
      const C = c.shape[1]!;
      const bn = c.shape.length === 4 ? new mb.BatchNorm2d(C) : new mb.BatchNorm1d(C);
      bn.weight!.copy_(ft(c.weight));
      bn.bias!.copy_(ft(c.bias));
      for (const s of c.train_steps) {
        bn.zeroGrad();
        const x = ft(s.x, true);
        const y = bn.forward(x);
        assertClose(y, s.y, { label: 'y' });
        y.backward(ft(s.g));
        assertClose(x.grad!, s.dx, { label: 'dx', atol: 1e-5 });
        assertClose(bn.weight!.grad!, s.dweight, { label: 'dweight', atol: 1e-5 });
        assertClose(bn.bias!.grad!, s.dbias, { label: 'dbias', atol: 1e-5 });
        assertClose(bn.runningMean!, s.running_mean, { label: 'running_mean' });
        assertClose(bn.runningVar!, s.running_var, { label: 'running_var' });
        assert.equal(bn.numBatchesTracked!.item(), s.num_batches_tracked);
      }
      bn.eval();
      assertClose(bn.forward(ft(c.eval_x)), c.eval_y, { label: 'eval y' });
    });
  }

  it('BatchNorm backward (the fused analytic formula) matches finite differences', () => {
    const g = new mb.Generator(4);
    gradcheck(
      (x, w, b) => mb.functional.batchNorm(x!, { weight: w!, bias: b!, training: true }),
      [
        mb.randn([5, 3, 2], { generator: g }),
        mb.randn([3], { generator: g }),
        mb.randn([3], { generator: g }),
      ],
      { label: 'batchNorm' },
    );
  });

  it("BatchNorm in training with one value per channel throws PyTorch's error, not NaN", () => {
    assert.throws(
      () => new mb.BatchNorm1d(16).forward(mb.randn([1, 16])),
      /BatchNorm|batchNorm: expected more than 1 value per channel when training, got input size \[1,16\]/,
    );
    assert.equal(
      new mb.BatchNorm1d(16)
        .eval()
        .forward(mb.randn([1, 16]))
        .shape.join(),
      '1,16',
    );
    assert.throws(
      () => new mb.BatchNorm2d(3).forward(mb.randn([2, 3])),
      /BatchNorm2d: expected 4D input \(got 2D input \[2,3\]\)/,
    );
  });

  it('BatchNorm with momentum null keeps a cumulative average', () => {
    const bn = new mb.BatchNorm1d(1, { momentum: null });
    bn.forward(mb.tensor([[1], [3]]));
    bn.forward(mb.tensor([[5], [7]]));
    assertClose(bn.runningMean!, [4]);
    assertClose(bn.runningVar!, [2]);
  });

  type LnCase = Record<'x' | 'weight' | 'bias' | 'y' | 'g' | 'dx' | 'dweight' | 'dbias', FixtureTensor> & {
    eps: number;
  };
  for (const c of fixture<{ cases: LnCase[] }>('layernorm.json').cases) {
    it(`LayerNorm over the last dim of ${c.x.shape} matches PyTorch`, () => {
      const ln = new mb.LayerNorm(c.x.shape.at(-1)!, c.eps);
      ln.weight!.copy_(ft(c.weight));
      ln.bias!.copy_(ft(c.bias));
      const x = ft(c.x, true);
      const y = ln.forward(x);
      assertClose(y, c.y, { label: 'y' });
      y.backward(ft(c.g));
      assertClose(x.grad!, c.dx, { label: 'dx', atol: 1e-5 });
      assertClose(ln.weight!.grad!, c.dweight, { label: 'dweight', atol: 1e-5 });
      assertClose(ln.bias!.grad!, c.dbias, { label: 'dbias', atol: 1e-5 });
    });
  }
  it("functional batchNorm defaults to evaluation, as PyTorch's F.batch_norm, and needs running statistics there", () => {
    const x = mb.tensor([
      [1, 2],
      [3, 6],
      [5, 1],
    ]);
    const [rm, rv] = [mb.zeros([2]), mb.ones([2])];
    // F.batch_norm(x, zeros(2), ones(2)) is x / sqrt(1 + 1e-5), running statistics untouched.
    assertClose(mb.functional.batchNorm(x, { runningMean: rm, runningVar: rv }), x.div(Math.sqrt(1 + 1e-5)), {
      label: 'eval',
    });
    assert.deepEqual([...rm.toTypedArray(), ...rv.toTypedArray()], [0, 0, 1, 1]);
    assert.throws(
      () => mb.functional.batchNorm(x, { training: false }),
      /batchNorm: runningMean and runningVar must be given when not training/,
    );
  });
});
