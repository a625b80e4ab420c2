/**
 * BatchNorm with its ReLU fused (`batchNorm(x, {relu: true})`, what Sequential runs for BatchNorm then ReLU)
 * against the two ops composed, on every backend: outputs, gradients of x, weight and bias, the running
 * statistics, N×C and N×C×H×W inputs below and above the wasm threshold (512 elements) and with channel counts
 * around the kernels' 16- and 4-channel groups; a finite-difference check; the eval path; and the kernels'
 * `relu` / `reluOut` arguments against the reference kernel.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { kernels } from '../../src/backend/backend.js';
import { jsKernels } from '../../src/backend/js/kernels.js';
import * as mb from '../../src/index.js';
import { assertClose, forEachBackend, gradcheck } from '../helpers.js';

const F = mb.functional;
const leaf = (shape: number[], seed: number) =>
  mb.randn(shape, { generator: new mb.Generator(seed), requiresGrad: true });

forEachBackend(() => {
  for (const shape of [
    [6, 5],
    [64, 37],
    [96, 48],
    [4, 3, 5, 7],
  ]) {
    it(`batchNorm + relu ${JSON.stringify(shape)} equals relu(batchNorm(x)): values, gradients, statistics`, () => {
      const C = shape[1]!;
      const run = (fused: boolean) => {
        const x = leaf(shape, 1);
        const w = leaf([C], 2);
        const b = leaf([C], 3);
        const rm = mb.zeros([C]);
        const rv = mb.ones([C]);
        const opts = { weight: w, bias: b, runningMean: rm, runningVar: rv, training: true };
        const y = fused ? F.batchNorm(x, { ...opts, relu: true }) : mb.relu(F.batchNorm(x, opts));
        y.backward(mb.randn(shape, { generator: new mb.Generator(4) }));
        return { y, x, w, b, rm, rv };
      };
      const f = run(true);
      const u = run(false);
      assertClose(f.y, u.y, { label: 'y' });
      assert.ok(
        f.y.toTypedArray().some((v) => v === 0) && f.y.toTypedArray().some((v) => v > 0),
        'the ReLU clamped some outputs and kept others',
      );
      assertClose(f.x.grad!, u.x.grad!, { label: 'dx', atol: 1e-5 });
      assertClose(f.w.grad!, u.w.grad!, { label: 'dweight', atol: 1e-5 });
      assertClose(f.b.grad!, u.b.grad!, { label: 'dbias', atol: 1e-5 });
      assertClose(f.rm, u.rm, { label: 'running mean' });
      assertClose(f.rv, u.rv, { label: 'running var' });
    });
  }

  it('batchNorm + relu passes a finite-difference check', () => {
    gradcheck(
      (x, w, b) => F.batchNorm(x!, { weight: w!, bias: b!, training: true, relu: true }),
      [leaf([7, 3], 5), leaf([3], 6), leaf([3], 7)],
    );
  });

  it('Sequential fuses BatchNorm+ReLU in training and eval, and gives what the layers give one by one', () => {
    const g = new mb.Generator(9);
    const model = new mb.Sequential(
      new mb.Linear(20, 24, { generator: g }),
      new mb.BatchNorm1d(24),
      new mb.ReLU(),
      new mb.Linear(24, 5, { generator: g }),
    );
    const twin = new mb.Sequential(
      new mb.Linear(20, 24, { generator: new mb.Generator(9) }),
      new mb.BatchNorm1d(24),
      new mb.ReLU(),
      new mb.Linear(24, 5, { generator: new mb.Generator(9) }),
    );
    twin.loadStateDict(model.stateDict());
    const x = mb.randn([40, 20], { generator: new mb.Generator(10) });
    const target = mb.tensor(Int32Array.from({ length: 40 }, (_, i) => i % 5));
    const fused = model.forward(x);
    let y = x;
    for (const m of twin.layers) y = m.forward(y);
    assertClose(fused, y, { label: 'training forward' });
    mb.crossEntropy(fused, target).backward();
    mb.crossEntropy(y, target).backward();
    model.parameters().forEach((p, i) => {
      assertClose(p.grad!, twin.parameters()[i]!.grad!, { label: `grad ${i}`, atol: 1e-5 });
    });
    assertClose(model.stateDict()['1.running_var']!, twin.stateDict()['1.running_var']!, {
      label: 'running var',
    });
    model.eval();
    twin.eval();
    let z = x;
    for (const m of twin.layers) z = m.forward(z);
    assertClose(model.forward(x), z, { label: 'eval forward' });
  });

  it('the BatchNorm kernels with relu / reluOut match the reference kernels', () => {
    for (const [N, C, S] of [
      [64, 37, 1],
      [40, 48, 1],
      [8, 6, 30],
    ] as const) {
      const n = N * C * S;
      const x = mb.randn([n], { generator: new mb.Generator(N + C) }).toTypedArray() as Float32Array;
      const dy = mb.randn([n], { generator: new mb.Generator(S) }).toTypedArray() as Float32Array;
      const w = mb.randn([C], { generator: new mb.Generator(2) }).toTypedArray() as Float32Array;
      const b = mb.randn([C], { generator: new mb.Generator(3) }).toTypedArray() as Float32Array;
      const fwd = (k: typeof jsKernels) => {
        const r = { out: new Float32Array(n), mean: new Float32Array(C), invstd: new Float32Array(C) };
        k.batchNormForward(x, N, C, S, w, b, 1e-5, r.out, r.mean, r.invstd, true);
        return r;
      };
      const [got, want] = [fwd(kernels()), fwd(jsKernels)];
      assertClose(got.out, want.out, { label: `out ${N}x${C}x${S}` });
      assert.ok(
        want.out.every((v) => v >= 0),
        'the reference output is clamped',
      );
      const bwd = (k: typeof jsKernels) => {
        const r = [new Float32Array(n), new Float32Array(C), new Float32Array(C)] as const;
        k.batchNormBackward(x, dy, N, C, S, w, want.mean, want.invstd, ...r, want.out);
        return r;
      };
      const [g, e] = [bwd(kernels()), bwd(jsKernels)];
      ['dx', 'dweight', 'dbias'].forEach((label, i) => {
        assertClose(g[i]!, e[i]!, { label: `${label} ${N}x${C}x${S}`, atol: 1e-5 });
      });
    }
  });
});
