import assert from 'node:assert/strict';
import { it } from 'node:test';
import * as mb from '../../src/index.js';
import { assertClose, type FixtureTensor, fixture, forEachBackend, ft } from '../helpers.js';

type Case = {
  op: string;
  input: FixtureTensor;
  target: FixtureTensor;
  loss: FixtureTensor | number;
  dinput: FixtureTensor;
  reduction?: mb.Reduction;
  label_smoothing?: number;
  ignore_index?: number;
  weight?: FixtureTensor;
  target_kind?: string;
};

const describeCase = (c: Case) =>
  [
    c.op,
    c.target_kind,
    c.reduction,
    c.label_smoothing && `smoothing ${c.label_smoothing}`,
    c.ignore_index !== undefined && `ignore ${c.ignore_index}`,
    c.weight && 'weight',
    `input ${c.input.shape}`,
  ]
    .filter(Boolean)
    .join(', ');

forEachBackend(() => {
  for (const c of fixture<{ cases: Case[] }>('losses.json').cases) {
    it(`${describeCase(c)} matches PyTorch (loss and gradient)`, () => {
      const x = ft(c.input, true);
      let loss: mb.Tensor;
      if (c.op === 'mse') loss = mb.mseLoss(x, ft(c.target), { reduction: c.reduction ?? 'mean' });
      else if (c.op === 'bce_with_logits') loss = mb.binaryCrossEntropyWithLogits(x, ft(c.target));
      else {
        const target =
          c.target_kind === 'probabilities'
            ? ft(c.target)
            : mb.tensor(Int32Array.from(c.target.data), { shape: c.target.shape });
        loss = mb.crossEntropy(x, target, {
          ...(c.reduction && { reduction: c.reduction }),
          ...(c.label_smoothing && { labelSmoothing: c.label_smoothing }),
          ...(c.ignore_index !== undefined && { ignoreIndex: c.ignore_index }),
          ...(c.weight && { weight: ft(c.weight) }),
        });
      }
      assertClose(loss, typeof c.loss === 'number' ? [c.loss] : c.loss.data, { label: 'loss' });
      loss.sum().backward();
      assertClose(x.grad!, c.dinput, { label: 'dinput' });
    });
  }

  it('crossEntropy is exact for logits of ±1000 (no 1e-8 epsilon) and NaN when every target is ignored', () => {
    const logits = mb.tensor([[1000, -1000, 0]]);
    assertClose(mb.crossEntropy(logits, mb.tensor(new Int32Array([0]))), [0]);
    assertClose(mb.crossEntropy(logits, mb.tensor(new Int32Array([1]))), [2000]);
    assert.ok(Number.isNaN(mb.crossEntropy(logits, mb.tensor(new Int32Array([-100]))).item()));
  });

  it('bad loss input is rejected with clear messages', () => {
    const x = mb.zeros([4, 3]);
    assert.throws(
      () => mb.crossEntropy(x, mb.tensor(new Int32Array([0, 1, 3, 0]))),
      /crossEntropy: target 3 is out of bounds for 3 classes/,
    );
    assert.throws(
      () => mb.crossEntropy(x, mb.tensor(new Int32Array([0, 1]))),
      /crossEntropy: expected target of shape \[4\] for input \[4,3\], got \[2\]/,
    );
    assert.throws(
      () => mb.crossEntropy(x, mb.zeros([4, 3]), { ignoreIndex: 1 }),
      /ignore_index is not supported for floating point target/,
    );
    assert.throws(
      () => mb.crossEntropy(x, mb.tensor(new Int32Array(4)), { weight: mb.ones([2]) }),
      /weight tensor should be defined either for all 3 classes/,
    );
    assert.throws(
      () => mb.mseLoss(x, mb.zeros([3])),
      /mseLoss: input \[4,3\] and target \[3\] must have the same shape/,
    );
    assert.throws(
      () => mb.mseLoss(x, x, { reduction: 'avg' as never }),
      /mseLoss: avg is not a valid value for reduction/,
    );
  });

  it('l1Loss, huberLoss and smoothL1Loss: values and gradients of PyTorch 1.13', () => {
    const target = mb.tensor([
      [0, 0, 1],
      [0.2, -1, -0.3],
    ]);
    const cases: [string, (x: mb.Tensor) => mb.Tensor, number, number[]][] = [
      // F.l1_loss(x, t): the gradient at d = 0 is 0, as sign(0).
      ['l1', (x) => mb.l1Loss(x, target), 1.1833332777023315, [1 / 6, -1 / 6, 1 / 6, -1 / 6, 1 / 6, 0]],
      [
        'huber delta 2',
        (x) => mb.huberLoss(x, target, { delta: 2 }),
        1.1883333921432495,
        [0.0833333, -0.3333333, 0.3333333, -0.0166667, 0.3333333, 0],
      ],
      [
        'smooth l1 beta 0.5',
        (x) => mb.smoothL1Loss(x, target, { beta: 0.5 }),
        1.0016666650772095,
        [1 / 6, -1 / 6, 1 / 6, -0.0333333, 1 / 6, 0],
      ],
      [
        'smooth l1 sum',
        (x) => mb.smoothL1Loss(x, target, { reduction: 'sum' }),
        5.130000114440918,
        [0.5, -1, 1, -0.1, 1, 0],
      ],
    ];
    for (const [name, f, loss, grad] of cases) {
      const x = mb.tensor(
        [
          [0.5, -2, 3],
          [0.1, 1.5, -0.3],
        ],
        { requiresGrad: true },
      );
      const l = f(x);
      assertClose(l, [loss], { rtol: 1e-6 });
      l.backward();
      assertClose(x.grad!, grad, { rtol: 1e-5, atol: 1e-7, label: name });
    }
    const x = mb.tensor([
      [0.5, -2, 3],
      [0.1, 1.5, -0.3],
    ]);
    assertClose(
      mb.huberLoss(x, target, { reduction: 'none' }),
      [0.125, 1.5, 1.5, 0.005000000353902578, 2, 0],
      { rtol: 1e-6 },
    );
    assertClose(mb.smoothL1Loss(x, target, { beta: 0 }), [mb.l1Loss(x, target).item()]);
    assert.throws(
      () => mb.l1Loss(x, mb.ones([3])),
      /l1Loss: input \[2,3\] and target \[3\] must have the same shape/,
    );
    assert.throws(() => mb.huberLoss(x, target, { delta: 0 }), /huberLoss: delta must be positive/);
  });
  it('a -Inf logit of another class leaves the loss finite, on every path (torch 1.13 values)', () => {
    const x = mb.tensor(Float32Array.from([-Infinity, 0, 1]), { shape: [1, 3] });
    const y = mb.tensor(Int32Array.from([2]));
    // F.cross_entropy(x, y, reduction='none') = 0.3132617; nll_loss of [-inf, -0.5, -1] at 2 = 1; with
    // label_smoothing 0.1 the -inf class makes it inf. All were NaN (-Inf·0 from a one-hot product).
    assertClose(mb.crossEntropy(x, y, { reduction: 'none' }), [0.31326169], { label: 'none' });
    const w = mb.tensor(Float32Array.from([1, 2, 3]));
    assertClose(mb.crossEntropy(x, y, { weight: w }), [0.31326169], { label: 'weight' });
    const lp = mb.tensor(Float32Array.from([-Infinity, -0.5, -1]), { shape: [1, 3] });
    assert.equal(mb.nllLoss(lp, y).item(), 1);
    assert.equal(mb.crossEntropy(x, y, { labelSmoothing: 0.1 }).item(), Infinity);
  });

  it("binaryCrossEntropyWithLogits' gradient at a logit of exactly 0 is sigmoid(0)·lw - pw·y (torch 1.13)", () => {
    for (const [y, pw, want] of [
      [0, 1, 0.5],
      [1, 1, -0.5],
      [1, 3, -1.5],
    ] as const) {
      const x = mb.zeros([1], { requiresGrad: true });
      const posWeight = pw === 1 ? null : mb.tensor(Float32Array.from([pw]));
      mb.binaryCrossEntropyWithLogits(x, mb.tensor(Float32Array.from([y])), {
        reduction: 'sum',
        posWeight,
      }).backward();
      assert.equal(x.grad!.item(), want, `y=${y} posWeight=${pw}`);
    }
    assert.throws(
      () => mb.binaryCrossEntropyWithLogits(mb.zeros([2]), mb.tensor(Int32Array.from([0, 1]))),
      /binaryCrossEntropyWithLogits: target must be float32 probabilities \(got int32\)/,
    );
  });
});
