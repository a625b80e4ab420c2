import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as mb from '../../src/index.js';
import { clipGradNorm, clipGradValue } from '../../src/optim/clip.js';
import { assertClose, forEachBackend } from '../helpers.js';

/** Two parameters with gradients [3, 4] and [[12]] (2-norm 13, 1-norm 19, inf-norm 12), one without. */
function params(): mb.Tensor[] {
  const a = mb.tensor([0, 0], { requiresGrad: true });
  const b = mb.tensor([[0]], { requiresGrad: true });
  const c = mb.tensor([0], { requiresGrad: true });
  a.grad = mb.tensor([3, 4]);
  b.grad = mb.tensor([[12]]);
  return [a, b, c];
}

const grads = (ps: mb.Tensor[]) =>
  ps.flatMap((p) => (p.grad ? [...(p.grad.toTypedArray() as Float32Array)] : []));

forEachBackend(() => {
  describe('clipGradNorm', () => {
    it('scales by maxNorm / (total + 1e-6) and returns the total 2-norm', () => {
      const ps = params();
      assert.equal(clipGradNorm(ps, 6.5), 13);
      const coef = 6.5 / (13 + 1e-6); // 0.4999999615...
      assertClose(grads(ps), [3 * coef, 4 * coef, 12 * coef], { rtol: 1e-7, atol: 0, label: 'clip 2-norm' });
      assert.equal(ps[2]!.grad, null);
    });

    it('leaves gradients under the limit unchanged (coefficient clamped to 1)', () => {
      const ps = params();
      assert.equal(clipGradNorm(ps, 20), 13);
      assert.deepEqual(grads(ps), [3, 4, 12]);
    });

    it('inf-norm and 1-norm', () => {
      const inf = params();
      assert.equal(clipGradNorm(inf, 6, Infinity), 12);
      const c = 6 / (12 + 1e-6);
      assertClose(grads(inf), [3 * c, 4 * c, 12 * c], { rtol: 1e-7, atol: 0, label: 'clip inf-norm' });
      const one = params();
      assert.equal(clipGradNorm(one, 100, 1), 19);
    });

    it('a non-finite total is returned and propagates, as in PyTorch', () => {
      const ps = params();
      ps[0]!.grad = mb.tensor([Infinity, 1]);
      assert.equal(clipGradNorm(ps, 1), Infinity);
      assert.deepEqual(grads(ps), [Number.NaN, 0, 0]);
    });

    it('errorIfNonfinite throws on a NaN or infinite total and leaves the gradients alone', () => {
      const ps = params();
      ps[0]!.grad = mb.tensor([Number.NaN, 1]);
      assert.throws(
        () => clipGradNorm(ps, 1, 2, { errorIfNonfinite: true }),
        /clipGradNorm: the total norm of order 2 for gradients from `parameters` is non-finite \(NaN\)/,
      );
      assert.deepEqual(grads(ps), [Number.NaN, 1, 12]);
      // A finite total clips as without the option; a misspelt option is refused, not ignored.
      assert.equal(clipGradNorm(params(), 6.5, 2, { errorIfNonfinite: true }), 13);
      assert.throws(
        () => clipGradNorm(params(), 1, 2, { error_if_nonfinite: true } as object),
        /clipGradNorm: unknown option 'error_if_nonfinite'/,
      );
    });

    it('no gradients: total 0', () => {
      assert.equal(clipGradNorm([mb.tensor([1], { requiresGrad: true })], 1), 0);
    });

    it('rejects bad arguments', () => {
      assert.throws(() => clipGradNorm(params(), -1), /clipGradNorm: maxNorm must be >= 0 \(got -1\)/);
      assert.throws(
        () => clipGradNorm(params(), 1, 0),
        /clipGradNorm: normType must be > 0 or Infinity \(got 0\)/,
      );
    });
  });

  describe('clipGradValue', () => {
    it('clamps every element into [-c, c]; NaN stays NaN', () => {
      const p = mb.tensor([0, 0, 0, 0], { requiresGrad: true });
      p.grad = mb.tensor([-2, 0.5, 3, Number.NaN]);
      clipGradValue([p, mb.tensor([1], { requiresGrad: true })], 1);
      assert.deepEqual(grads([p]), [-1, 0.5, 1, Number.NaN]);
      assert.throws(() => clipGradValue([p], -1), /clipGradValue: clipValue must be >= 0 \(got -1\)/);
    });
  });
});
