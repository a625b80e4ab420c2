import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ValueError } from '../../src/errors.js';
import * as mb from '../../src/index.js';
import { SGD } from '../../src/optim/sgd.js';
import { forEachBackend } from '../helpers.js';

forEachBackend(() => {
  describe('SGD', () => {
    it('no dampening on the first step, then b = μb + (1-τ)g, lr outside the velocity', () => {
      const w = mb.tensor([1], { requiresGrad: true });
      const opt = new SGD([w], { lr: 0.5, momentum: 0.5, dampening: 0.5 });
      w.grad = mb.tensor([1]);
      opt.step(); // b = 1, w = 1 - 0.5
      assert.deepEqual(w.toTypedArray(), Float32Array.from([0.5]));
      opt.paramGroups[0]!.lr = 0.25;
      opt.step(); // b = 0.5 + 0.5 = 1, w = 0.5 - 0.25
      assert.deepEqual(w.toTypedArray(), Float32Array.from([0.25]));
      assert.deepEqual(opt.state.get(w)!.momentumBuffer!.toTypedArray(), Float32Array.from([1]));
    });

    it('plain SGD keeps no momentum buffer', () => {
      const w = mb.tensor([1], { requiresGrad: true });
      const opt = new SGD([w], { lr: 0.5 });
      w.grad = mb.tensor([1]);
      opt.step();
      assert.deepEqual(opt.stateDict().state, { 0: {} });
    });

    it('maximize steps along the gradient', () => {
      const a = mb.tensor([1, 2], { requiresGrad: true });
      const b = mb.tensor([1, 2], { requiresGrad: true });
      const up = new SGD([a], { lr: 0.1, momentum: 0.9, weightDecay: 0.1, maximize: true });
      const down = new SGD([b], { lr: 0.1, momentum: 0.9, weightDecay: 0.1 });
      for (let t = 0; t < 3; t++) {
        a.grad = mb.tensor([0.3, -0.7]);
        b.grad = mb.tensor([-0.3, 0.7]);
        up.step();
        down.step();
      }
      // maximize negates the gradient before the decay is added, so it matches minimizing -g.
      assert.deepEqual(a.toTypedArray(), b.toTypedArray());
    });

    it("rejects bad hyper-parameters with PyTorch's messages", () => {
      const w = [mb.tensor([1], { requiresGrad: true })];
      const bad: [object, string][] = [
        [{ lr: -1 }, 'SGD: Invalid learning rate: -1'],
        [{ lr: Number.NaN }, 'SGD: Invalid learning rate: NaN'],
        [{ momentum: -0.5 }, 'SGD: Invalid momentum value: -0.5'],
        [{ weightDecay: -1e-4 }, 'SGD: Invalid weight_decay value: -0.0001'],
        [{ nesterov: true }, 'SGD: Nesterov momentum requires a momentum and zero dampening'],
        [
          { nesterov: true, momentum: 0.9, dampening: 0.1 },
          'SGD: Nesterov momentum requires a momentum and zero dampening',
        ],
      ];
      for (const [options, message] of bad) {
        assert.throws(
          () => new SGD(w, options),
          (e: unknown) => e instanceof ValueError && e.message === message,
          message,
        );
      }
    });
  });
});
