import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as mb from '../../src/index.js';

// PyTorch's version counter: a value a gradient rule needs, overwritten in place after the forward pass, makes
// backward fail instead of computing the gradient from the new values.
describe('in-place writes into tensors a graph needs', () => {
  const stale =
    /backward: one of the tensors needed for gradient computation has been modified by an inplace operation/;

  it('an input of mul written after the forward: refused (the gradient would use the new values)', () => {
    const w = mb.tensor([1, 2], { requiresGrad: true });
    const x = mb.tensor([3, 4]);
    const y = w.mul(x);
    x.fill_(0);
    assert.throws(() => y.sum().backward(), /the input 1 of mul, \[2\], is at version 1; expected version 0/);
  });

  it("an op's saved output written (exp), a non-leaf overwritten (copy_), a write through detach(): refused", () => {
    const w = mb.tensor([1, 2], { requiresGrad: true });
    const e = w.exp();
    e.fill_(1);
    assert.throws(() => e.sum().backward(), /the output of exp/);
    const a = mb.tensor([1, 2], { requiresGrad: true });
    const b = a.mul(2);
    b.copy_(mb.tensor([7, 7]));
    assert.throws(() => b.sum().backward(), stale);
    const c = mb.tensor([0.5, 1.5], { requiresGrad: true });
    const s = c.sigmoid();
    s.detach().zero_();
    assert.throws(() => s.sum().backward(), /the output of sigmoid/);
  });

  it('an optimizer step between forward and backward: refused; a fused op (linear) too', () => {
    const m = new mb.Linear(3, 2);
    const opt = new mb.SGD(m.parameters(), { lr: 0.1 });
    m.forward(mb.ones([1, 3]))
      .sum()
      .backward();
    const loss = m.forward(mb.ones([1, 3])).sum();
    opt.step();
    assert.throws(() => loss.backward(), /of linear/);
  });

  it('what the rule does not read may change (as in PyTorch): add, views; the usual loop is untouched', () => {
    const w = mb.tensor([1, 2], { requiresGrad: true });
    const x = mb.tensor([3, 4]);
    const y = w.add(x);
    x.fill_(0);
    y.sum().backward();
    assert.deepEqual(w.grad!.toList(), [1, 1]);
    const m = new mb.Linear(3, 2);
    const opt = new mb.SGD(m.parameters(), { lr: 0.1, momentum: 0.9 });
    for (let i = 0; i < 3; i++) {
      opt.zeroGrad();
      m.forward(mb.ones([2, 3]))
        .sum()
        .backward();
      opt.step();
    }
    // Writes before any graph uses the tensor are fine (setting a parameter).
    m.weight.copy_(mb.zeros([2, 3]));
    m.forward(mb.ones([1, 3]))
      .sum()
      .backward();
  });
});

describe('in-place arithmetic (add_, sub_, mul_, div_, clamp_)', () => {
  it('computes in place as PyTorch 1.13 (w.add_(0.5).mul_(2).sub_(1).div_(4).clamp_(min=0.5)), bumping the version', () => {
    const w = mb.tensor([1, 2]);
    const data = w.data;
    w.add_(mb.tensor([0.5, 0.5]))
      .mul_(2)
      .sub_(1)
      .div_(4)
      .clamp_({ min: 0.5 });
    assert.deepEqual(w.toList(), [0.5, 1]);
    assert.equal(w.data, data, 'same storage');
    const x = mb.tensor([1, 2], { requiresGrad: true });
    const y = x.mul(w);
    w.mul_(3);
    assert.throws(() => y.sum().backward(), /modified by an inplace operation/);
  });

  it('a manual SGD step inside noGrad works; outside, on tensors that require grad, it is refused', () => {
    const p = mb.tensor([1, 2], { requiresGrad: true });
    p.mul(p).sum().backward(); // grad 2p = [2, 4]
    assert.throws(
      () => p.sub_(p.grad!.mul(0.1)),
      /sub_: in-place arithmetic on tensors that require grad while recording/,
    );
    mb.noGrad(() => p.sub_(p.grad!.mul(0.1)));
    assert.deepEqual(
      (p.toList() as number[]).map((v) => Math.round(v * 1e6) / 1e6),
      [0.8, 1.6],
    );
    const plain = mb.tensor([1, 2]);
    assert.throws(
      () => plain.add_(p),
      /add_: in-place arithmetic on tensors that require grad/,
      'the graph would lose p',
    );
  });

  it('the result keeps the target dtype and shape (int += 0.5 and a broadcast target are refused)', () => {
    const i = mb.tensor(Int32Array.from([1, 2]));
    assert.throws(() => i.add_(0.5), /add_: result type float32 can't be cast to the int32 tensor/);
    i.add_(3);
    assert.deepEqual(i.toList(), [4, 5]);
    const row = mb.tensor([1, 2]);
    assert.throws(
      () => row.add_(mb.ones([3, 2])),
      /add_: output with shape \[2\] doesn't match the broadcast shape \[3,2\]/,
    );
    const m = mb.ones([3, 2]);
    m.mul_(mb.tensor([2, 3])); // the operand broadcasts, the target does not
    assert.deepEqual(m.toList(), [
      [2, 3],
      [2, 3],
      [2, 3],
    ]);
  });
});
