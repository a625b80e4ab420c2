import assert from 'node:assert/strict';
import { it } from 'node:test';
import * as mb from '../../src/index.js';
import { assertClose, forEachBackend } from '../helpers.js';

forEachBackend(() => {
  it('gradients accumulate into .grad until zeroed, and keep the same tensor', () => {
    const w = mb.tensor([1, 2, 3], { requiresGrad: true });
    mb.sum(mb.mul(w, w)).backward();
    const first = w.grad!;
    assertClose(first, [2, 4, 6]);
    mb.sum(mb.mul(w, 3)).backward();
    assert.equal(w.grad, first);
    assertClose(w.grad!, [5, 7, 9]);
    w.grad!.zero_();
    mb.sum(w).backward();
    assertClose(w.grad!, [1, 1, 1]);
  });

  it('backward takes an upstream gradient for non-scalar outputs', () => {
    const x = mb.tensor(
      [
        [1, 2],
        [3, 4],
      ],
      { requiresGrad: true },
    );
    const y = mb.mul(x, x);
    assert.throws(
      () => y.backward(),
      /backward: grad can be implicitly created only for scalar outputs \(got \[2,2\]\)/,
    );
    y.backward(
      mb.tensor([
        [1, 0],
        [0, 2],
      ]),
    );
    assertClose(x.grad!, [2, 0, 0, 16]);
  });

  it('a tensor used twice gets the sum of both paths', () => {
    const x = mb.tensor([2], { requiresGrad: true });
    const y = mb.add(mb.mul(x, x), mb.exp(x));
    y.backward(mb.ones([1]));
    assertClose(x.grad!, [4 + Math.exp(2)]);
  });

  it('noGrad records nothing; detach cuts the graph but shares storage', () => {
    const w = mb.ones([2], { requiresGrad: true });
    const y = mb.noGrad(() => mb.mul(w, 2));
    assert.equal(y.requiresGrad, false);
    assert.equal(y.isLeaf, true);
    const d = w.detach();
    assert.equal(d.requiresGrad, false);
    assert.equal(d.data, w.data);
    assert.equal(mb.isGradEnabled(), true);
  });

  it('backward through a graph twice throws unless retainGraph', () => {
    const x = mb.tensor([1, 2], { requiresGrad: true });
    const y = mb.sum(mb.exp(x));
    y.backward(undefined, { retainGraph: true });
    y.backward();
    assertClose(x.grad!, [2 * Math.E, 2 * Math.exp(2)]);
    assert.throws(() => y.backward(), /backward: trying to backward through the graph a second time/);
  });

  it('ops on tensors without requiresGrad record no graph', () => {
    const y = mb.mul(mb.ones([2]), 2);
    assert.equal(y.requiresGrad, false);
    assert.throws(() => y.backward(), /backward: tensor does not require grad/);
  });

  it('gradients flow through non-contiguous views (transpose, expand, slice)', () => {
    const x = mb.arange(6).float().reshape(2, 3).requiresGrad_();
    const y = mb.sum(mb.mul(x.transpose(0, 1).slice(0, 1), mb.tensor([[1, 10]])));
    y.backward();
    assertClose(x.grad!, [0, 1, 1, 0, 10, 10]);
  });
});

it('inGraphWork: on while recording, inside an op computing what it records, and in backward; off under noGrad', async () => {
  const { inGraphWork, recordedCompute } = await import('../../src/autograd/engine.js');
  const { customOp } = await import('../../src/tensor/ops.js');
  const seen: Record<string, boolean> = {};
  const x = mb.tensor([1, 2], { requiresGrad: true });
  const op = (label: string) => {
    const y = recordedCompute(() => {
      seen[`${label} forward`] = inGraphWork();
      assert.equal(mb.isGradEnabled(), false, 'recording is off inside recordedCompute');
      return mb.mul(x, 2);
    });
    return customOp('double', [x], y, (g) => {
      seen[`${label} backward`] = inGraphWork();
      return [mb.mul(g, 2)];
    });
  };
  mb.sum(op('train')).backward();
  mb.noGrad(() => op('eval'));
  assert.deepEqual(seen, { 'train forward': true, 'train backward': true, 'eval forward': false });
  assert.equal(inGraphWork(), true, 'recording is on again');
  assert.equal(
    mb.noGrad(() => inGraphWork()),
    false,
  );
  assertClose(x.grad!, [2, 2]);
});
