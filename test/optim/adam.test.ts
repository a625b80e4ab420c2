import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ValueError } from '../../src/errors.js';
import * as mb from '../../src/index.js';
import { Adam, type AdamOptions, AdamW } from '../../src/optim/adam.js';
import { assertClose, forEachBackend } from '../helpers.js';

const GRADS = [
  [2, -1, 0.5],
  [0.01, 0.02, -0.03],
  [0.5, 0.1, -0.2],
  [-0.001, 0.3, 0.002],
];

/**
 * torch 1.13's `_single_tensor_adam(w)` in float64, for options the fixtures lack. NOTE: amsgrad keeps the
 * maximum of the raw second moment and bias-corrects it afterwards, as the code does; the docs' formula (maximum
 * of the corrected v̂) differs (pytorch/pytorch#142323).
 */
function reference(p0: number[], grads: number[][], decoupled: boolean, o: Required<AdamOptions>): number[] {
  const lr = o.lr as number;
  const [b1, b2] = o.betas;
  const p = [...p0];
  const m = p.map(() => 0);
  const v = p.map(() => 0);
  const vmax = p.map(() => 0);
  grads.forEach((gs, s) => {
    const t = s + 1;
    p.forEach((_, i) => {
      let g = o.maximize ? -gs[i]! : gs[i]!;
      if (decoupled) p[i]! *= 1 - lr * o.weightDecay;
      else g += o.weightDecay * p[i]!;
      m[i] = b1 * m[i]! + (1 - b1) * g;
      v[i] = b2 * v[i]! + (1 - b2) * g * g;
      vmax[i] = Math.max(vmax[i]!, v[i]!);
      const vt = o.amsgrad ? vmax[i]! : v[i]!;
      p[i]! -= ((lr / (1 - b1 ** t)) * m[i]!) / (Math.sqrt(vt / (1 - b2 ** t)) + o.eps);
    });
  });
  return p;
}

function run(make: (params: mb.Tensor[]) => Adam): mb.Tensor {
  const w = mb.tensor([1, -2, 0.5], { requiresGrad: true });
  const opt = make([w]);
  for (const g of GRADS) {
    w.grad = mb.tensor(g);
    opt.step();
  }
  return w;
}

const DEFAULTS: Required<AdamOptions> = {
  lr: 1e-3,
  betas: [0.9, 0.999],
  eps: 1e-8,
  weightDecay: 0,
  amsgrad: false,
  maximize: false,
  decoupledWeightDecay: false,
};

forEachBackend(() => {
  describe('Adam and AdamW beyond the fixtures, against a float64 transcription', () => {
    const configs: [string, boolean, AdamOptions][] = [
      ['Adam amsgrad', false, { lr: 0.1, amsgrad: true }],
      ['Adam amsgrad + L2 + maximize', false, { lr: 0.1, amsgrad: true, weightDecay: 0.1, maximize: true }],
      ['AdamW amsgrad', true, { lr: 0.1, amsgrad: true, weightDecay: 0.1, betas: [0.8, 0.99] }],
    ];
    for (const [name, decoupled, options] of configs) {
      it(name, () => {
        const w = run((ps) => (decoupled ? new AdamW(ps, options) : new Adam(ps, options)));
        const want = reference([1, -2, 0.5], GRADS, decoupled, { ...DEFAULTS, ...options });
        assertClose(w, want, { rtol: 1e-6, atol: 0, label: name });
      });
    }

    it('amsgrad makes a difference when gradients shrink', () => {
      const plain = run((ps) => new Adam(ps, { lr: 0.1 }));
      const ams = run((ps) => new Adam(ps, { lr: 0.1, amsgrad: true }));
      assert.notDeepEqual(plain.toTypedArray(), ams.toTypedArray());
    });
  });

  describe('AdamW is Adam with decoupled decay', () => {
    it('defaults to weightDecay 1e-2, decoupled', () => {
      const w = mb.tensor([1], { requiresGrad: true });
      const g = new AdamW([w]).paramGroups[0]!;
      assert.equal(g.weightDecay, 1e-2);
      assert.equal(g.decoupledWeightDecay, true);
      assert.equal(new Adam([w]).paramGroups[0]!.weightDecay, 0);
    });

    it('equals Adam with decoupledWeightDecay', () => {
      const a = run((ps) => new AdamW(ps, { lr: 0.05 }));
      const b = run((ps) => new Adam(ps, { lr: 0.05, weightDecay: 1e-2, decoupledWeightDecay: true }));
      assert.deepEqual(a.toTypedArray(), b.toTypedArray());
    });

    it('decays a parameter with zero gradient by lr·wd per step; Adam leaves it', () => {
      const zero = (make: (ps: mb.Tensor[]) => Adam) => {
        const w = mb.tensor([2], { requiresGrad: true });
        const opt = make([w]);
        w.grad = mb.tensor([0]);
        opt.step();
        return w.item();
      };
      assert.equal(
        zero((ps) => new AdamW(ps, { lr: 0.1, weightDecay: 0.5 })),
        Math.fround(2 * Math.fround(0.95)),
      );
      assert.equal(
        zero((ps) => new Adam(ps, { lr: 0.1 })),
        2,
      );
    });
  });

  describe('Adam validation', () => {
    it("rejects bad hyper-parameters with PyTorch's messages", () => {
      const w = [mb.tensor([1], { requiresGrad: true })];
      const bad: [AdamOptions, string][] = [
        [{ lr: -1 }, 'Invalid learning rate: -1'],
        [{ eps: -1e-8 }, 'Invalid epsilon value: -1e-8'],
        [{ betas: [1, 0.999] }, 'Invalid beta parameter at index 0: 1'],
        [{ betas: [0.9, -0.1] }, 'Invalid beta parameter at index 1: -0.1'],
        // One beta left beta2 undefined and every parameter NaN after the first step.
        [{ betas: [0.9] as unknown as [number, number] }, 'betas must be a pair [beta1, beta2], got [0.9]'],
        [{ weightDecay: -0.01 }, 'Invalid weight_decay value: -0.01'],
      ];
      for (const [options, message] of bad) {
        for (const [name, make] of [
          ['Adam', () => new Adam(w, options)],
          ['AdamW', () => new AdamW(w, options)],
        ] as const) {
          assert.throws(
            make,
            (e: unknown) => e instanceof ValueError && e.message === `${name}: ${message}`,
            `${name}: ${message}`,
          );
        }
      }
    });
  });
});
