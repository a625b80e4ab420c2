import assert from 'node:assert/strict';
import { it } from 'node:test';
import * as mb from '../../src/index.js';
import { forEachBackend } from '../helpers.js';

forEachBackend(() => {
  const setup = () => {
    const g = new mb.Generator(3);
    const model = new mb.Sequential(
      new mb.Linear(64, 128, { generator: g }),
      new mb.ReLU(),
      new mb.Linear(128, 10, { generator: g }),
    );
    const x = mb.randn([32, 64], { generator: g });
    const y = mb.randint(0, 10, [32], { generator: g });
    return { model, x, y };
  };

  for (const precision of ['bf16', 'fp16'] as const) {
    it(`autocast ${precision}: matmuls see 16-bit values, saved activations are kept in 16 bits, gradients stay close to fp32`, () => {
      const ref = setup();
      mb.crossEntropy(ref.model.forward(ref.x), ref.y).backward();
      const { model, x, y } = setup();
      const loss = mb.autocast(precision, () => mb.crossEntropy(model.forward(x), y));
      // The second Linear's node keeps its input (the ReLU output, 32×128) packed in 16 bits, not float32.
      const logits = loss._node!.inputs[0]!;
      const kept = logits._node!.inputs[0]!;
      assert.ok(kept.packed, 'activation is packed');
      assert.equal(kept.packed!.bits.length, 32 * 128);
      assert.equal(kept.data.length, 0, 'no float32 storage kept');
      loss.backward();
      // Relative error of each gradient as a whole. Rounding a pre-activation near 0 can flip its ReLU mask,
      // which changes single entries completely: with bf16 (8-bit mantissa) ~0.3% of 4096 entries flip, an
      // expected relative error of ~sqrt(0.003) ≈ 5% (measured 6.5%); fp16 (11 bits) is ~8× finer.
      const tol = precision === 'bf16' ? 0.1 : 0.02;
      ref.model.parameters().forEach((p, i) => {
        const d = model.parameters()[i]!.grad!.sub(p.grad!);
        const rel = Math.sqrt(d.mul(d).sum().item() / p.grad!.mul(p.grad!).sum().item());
        assert.ok(rel < tol, `grad ${i}: relative error ${rel}`);
      });
    });
  }

  it('fp32 outside autocast keeps float32 activations; 16-bit rounding is round-to-nearest-even', () => {
    const { model, x, y } = setup();
    const loss = mb.crossEntropy(model.forward(x), y);
    assert.equal(loss._node!.inputs[0]!._node!.inputs[0]!.packed, undefined);
    const v = mb.autocast('bf16', () => mb.matmul(mb.tensor([[1 + 2 ** -8 + 2 ** -10]]), mb.ones([1, 1])));
    assert.equal(v.item(), 1 + 2 ** -7, 'rounded up to the nearest bf16');
  });
});
