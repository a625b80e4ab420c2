/**
 * linear's fused epilogue (bias and ReLU in the GEMM pass) against the same function composed from primitives
 * (matmul, add, relu) on every backend: values and gradients, shapes below and above the wasm GEMM threshold,
 * a 3-D input, N = 1, and a finite-difference check; Sequential's Linear+ReLU fusion against running the
 * layers one by one; the matmul kernel's epilogue against the reference kernel, batched.
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
  for (const [xShape, outF] of [
    [[1, 5], 3],
    [[7, 13], 9],
    [[64, 100], 40],
    [[3, 11, 24], 17],
  ] as [number[], number][]) {
    const inF = xShape.at(-1)!;
    for (const relu of [false, true]) {
      it(`linear ${JSON.stringify(xShape)} -> ${outF}${relu ? ' + relu' : ''} equals the unfused ops`, () => {
        const [x1, w1, b1] = [leaf(xShape, 1), leaf([outF, inF], 2), leaf([outF], 3)];
        const [x2, w2, b2] = [leaf(xShape, 1), leaf([outF, inF], 2), leaf([outF], 3)];
        const y1 = F.linear(x1, w1, b1, { relu });
        const pre = mb.add(mb.matmul(x2, w2.mT), b2);
        const y2 = relu ? mb.relu(pre) : pre;
        assertClose(y1, y2, { label: 'y' });
        if (relu)
          assert.ok(
            y1.toTypedArray().some((v) => v === 0),
            'some outputs were clamped',
          );
        const g = mb.randn([...y1.shape], { generator: new mb.Generator(4) });
        y1.backward(g);
        y2.backward(g);
        assertClose(x1.grad!, x2.grad!, { label: 'dx' });
        assertClose(w1.grad!, w2.grad!, { label: 'dw', rtol: 1e-5, atol: 1e-5 });
        assertClose(b1.grad!, b2.grad!, { label: 'db', rtol: 1e-5, atol: 1e-5 });
      });
    }
  }

  it('linear + relu passes a finite-difference check', () => {
    // Inputs away from the kink: ReLU is not differentiable at 0.
    gradcheck(
      (x, w, b) => F.linear(x!, w!, b!, { relu: true }),
      [leaf([6, 8], 5), leaf([5, 8], 6), leaf([5], 7)],
    );
  });

  it('Sequential fuses Linear+ReLU and gives what the layers give one by one', () => {
    const g = new mb.Generator(9);
    const model = new mb.Sequential(
      new mb.Linear(30, 20, { generator: g }),
      new mb.ReLU(),
      new mb.Linear(20, 10, { generator: g }),
      new mb.ReLU(),
      new mb.Linear(10, 4, { generator: g }),
    );
    const x = mb.randn([16, 30], { generator: new mb.Generator(10) });
    const fused = model.forward(x);
    let y = x;
    for (const m of model.layers) y = m.forward(y);
    assertClose(fused, y, { label: 'forward' });
    mb.crossEntropy(fused, mb.tensor(Int32Array.from({ length: 16 }, (_, i) => i % 4))).backward();
    const grads = model.parameters().map((p) => p.grad!.toTypedArray().slice());
    model.zeroGrad();
    mb.crossEntropy(y, mb.tensor(Int32Array.from({ length: 16 }, (_, i) => i % 4))).backward();
    model.parameters().forEach((p, i) => {
      assertClose(p.grad!, grads[i]!, { label: `grad ${i}` });
    });
  });

  it('after zeroGrad, dW lands in the same .grad tensor; a weight used twice still sums both uses', () => {
    const g = new mb.Generator(21);
    const layer = new mb.Linear(12, 7, { generator: g });
    const x = mb.randn([5, 12], { generator: g });
    const target = () => {
      // The same two-use graph from primitives only: sum(relu(x·Wᵀ + b)·W).
      const w = layer.weight.detach().requiresGrad_();
      const b = layer.bias!.detach().requiresGrad_();
      mb.matmul(mb.relu(mb.add(mb.matmul(x, w.mT), b)), w)
        .sum()
        .backward();
      return [w.grad!, b.grad!];
    };
    const opt = new mb.SGD(layer.parameters(), { lr: 0.1 });
    layer.forward(x).sum().backward();
    const gradTensor = layer.weight.grad!;
    opt.zeroGrad();
    layer.forward(x).sum().backward();
    assert.equal(layer.weight.grad, gradTensor, 'the .grad tensor keeps its identity');
    const once = mb.matmul(mb.ones([7, 5]), x);
    assertClose(layer.weight.grad!, once, { label: 'dW, one use' });
    opt.zeroGrad();
    // Two uses of the weight in one graph: dW must be the sum of both, not one of them written in place.
    const h = layer.forward(x);
    mb.matmul(h.relu(), layer.weight).sum().backward();
    const [dw, db] = target();
    assertClose(layer.weight.grad!, dw!, { label: 'dW, two uses' });
    assertClose(layer.bias!.grad!, db!, { label: 'db' });
  });

  it('the matmul kernel epilogue (bias, ReLU) matches the reference kernel, batched', () => {
    const [B, M, K, N] = [3, 33, 40, 21];
    const a = mb.randn([B, M, K], { generator: new mb.Generator(11) });
    const b = mb.randn([B, K, N], { generator: new mb.Generator(12) });
    const bias = mb.randn([N], { generator: new mb.Generator(13) }).toTypedArray() as Float32Array;
    for (const relu of [false, true]) {
      const got = new Float32Array(B * M * N);
      const want = new Float32Array(B * M * N);
      kernels().matmul(a, b, got, { bias, relu });
      jsKernels.matmul(a, b, want, { bias, relu });
      assertClose(got, want, { label: `epilogue relu=${relu}`, rtol: 1e-5, atol: 1e-5 });
    }
  });
});
