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
