import assert from 'node:assert/strict';
import { it } from 'node:test';
import * as mb from '../../src/index.js';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from '../../src/io/safetensors.js';
import { packBits, roundInPlace, unpackBits } from '../../src/tensor/autocast.js';
import { assertClose, forEachBackend } from '../helpers.js';

it('the array conversions give the bits of the scalar converters (every half, 400k float32 patterns)', () => {
  // Every float32 class: normals, fp16 subnormals and their boundaries, overflow to inf, inf, NaN, ±0; random
  // bit patterns, random magnitudes over 2^-30..2^20, and halfway cases, which round to even.
  const n = 400_000;
  const x = new Float32Array(n);
  const u = new Uint32Array(x.buffer);
  let s = 12345;
  const next = () => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    return s;
  };
  for (let i = 0; i < n; i++) {
    const k = i % 4;
    if (k === 0) u[i] = next();
    else if (k === 1) x[i] = ((next() / 2 ** 32 - 0.5) * 2 ** ((next() % 50) - 30)) as number;
    else if (k === 2)
      u[i] = (next() & 0xffffe000) | 0x1000; // halfway between two fp16 values
    else u[i] = (next() & 0xffff0000) | 0x8000; // halfway between two bf16 values
  }
  const specials = [0, -0, 1, -1, 65504, 65519.996, 65520, -65520, 2 ** -14, -(2 ** -14), 2 ** -24, 2 ** -25];
  x.set([...specials, 3 * 2 ** -26, 2 ** -14 - 2 ** -25, Infinity, -Infinity, 1e-45, 3.4e38]);
  const same = (got: number, want: number, what: string) =>
    assert.ok(
      Object.is(got, want) || (Number.isNaN(got) && Number.isNaN(want)),
      `${what}: ${got} vs ${want}`,
    );
  for (const [precision, toBits, fromBits] of [
    ['fp16', f32ToF16, f16ToF32],
    ['bf16', f32ToBf16, bf16ToF32],
  ] as const) {
    const packed = packBits(x, precision);
    const rounded = x.slice();
    roundInPlace(rounded, precision);
    for (let i = 0; i < n; i++) {
      const want = toBits(x[i]!);
      if (packed[i] !== want) assert.fail(`${precision} pack ${x[i]}: ${packed[i]} vs ${want}`);
      same(rounded[i]!, Math.fround(fromBits(want)), `${precision} round ${x[i]}`);
    }
    const all = Uint16Array.from({ length: 65536 }, (_, i) => i);
    const back = new Float32Array(65536);
    unpackBits(all, precision, back);
    for (let i = 0; i < 65536; i++) same(back[i]!, Math.fround(fromBits(i)), `${precision} unpack ${i}`);
  }
});

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

  it('a 16-bit graph keeps half the bytes of a float32 one (MLP with fused ReLU, CNN with views of one storage)', () => {
    // mb.savedBytes counts each saved storage once, float32 or its 16-bit copy. Linear+ReLU keeps its output
    // once (not once for the mask and once as the next layer's input); a conv's output, its reshape and the
    // ReLU over it share one 16-bit copy, as they share one buffer in float32.
    for (const [model, shape] of [
      ['mlp', [64, 784]],
      ['cnn', [8, 1, 28, 28]],
    ] as const) {
      const net = mb.buildModel(model, new mb.Generator(1));
      const x = mb.rand([...shape]);
      const y = mb.randint(0, 10, [shape[0]]);
      const [f32, b16] = (['fp32', 'bf16'] as const).map((p) =>
        mb.savedBytes(mb.autocast(p, () => mb.crossEntropy(net.forward(x), y))),
      );
      // float32 MLP at batch 64: the two hidden activations and the logits, 64·(256 + 128 + 10)·4 bytes.
      if (model === 'mlp') assert.equal(f32, 64 * (256 + 128 + 10) * 4);
      assert.ok(b16! > 0 && b16! <= 0.52 * f32!, `${model}: bf16 keeps ${b16} bytes, fp32 ${f32}`);
    }
  });

  it('under autocast a matmul rounds both operands (plain, transposed or a slice) and its result', () => {
    for (const precision of ['bf16', 'fp16'] as const) {
      const g = new mb.Generator(5);
      const a = mb.randn([8, 40], { generator: g });
      const w = mb.randn([24, 40], { generator: g });
      const big = mb.randn([30, 40], { generator: g });
      const round = (t: mb.Tensor) => {
        const c = t.contiguous().clone();
        roundInPlace(c.data as Float32Array, precision);
        return c;
      };
      for (const [label, b] of [
        ['transposed weight', w.mT],
        ['plain', w.mT.contiguous()],
        ['a slice of rows', big.slice(0, 3, 27).mT],
      ] as const) {
        const got = mb.autocast(precision, () => mb.matmul(a, b));
        const want = mb.matmul(round(a), round(b));
        roundInPlace(want.data as Float32Array, precision);
        assert.deepEqual([...got.toTypedArray()], [...want.toTypedArray()], `${precision} ${label}`);
        assert.notDeepEqual([...got.toTypedArray()], [...mb.matmul(a, b).toTypedArray()], 'rounding shows');
      }
    }
  });

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

  it("under autocast linear is PyTorch's addmm: x·Wᵀ + b in float32, rounded once (torch 1.13's bf16 values)", () => {
    // x·Wᵀ = 1 + u/2 (half a 16-bit ulp u at 1: a tie that rounds down to 1) and b = u/2: rounded once the
    // sum is 1 + u; rounding the product before adding the bias gave 1 + u/2, not even a 16-bit value.
    for (const [precision, u] of [
      ['bf16', 2 ** -7],
      ['fp16', 2 ** -10],
    ] as const) {
      const x = mb.tensor([[1, u / 2]]);
      const w = mb.tensor([[1, 1]], { requiresGrad: true });
      const y = mb.autocast(precision, () => mb.functional.linear(x, w, mb.tensor([u / 2])));
      assert.equal(y.item(), 1 + u, precision);
    }
  });

  it('an activation with a finite value past fp16 range is kept in float32, so its gradient stays finite', () => {
    // exp(12) = 162754.8 > 65504: stored as fp16 it came back Infinity and so did d mean(exp(x)) / dx.
    const grad = (v: number) => {
      const x = mb.full([64, 32], v).requiresGrad_();
      mb.autocast('fp16', () => mb.mean(mb.exp(x))).backward();
      return x.grad!;
    };
    assertClose(grad(12), mb.full([64, 32], Math.exp(12) / 2048), { rtol: 1e-6, label: 'exp(12)' });
    // Within range the kept exp(1) is the fp16 value 2.71875 (e rounded), as before.
    assertClose(grad(1), mb.full([64, 32], 2.71875 / 2048), { rtol: 1e-7, label: 'exp(1)' });
  });

  it('fp32 outside autocast keeps float32 activations; 16-bit rounding is round-to-nearest-even', () => {
    const { model, x, y } = setup();
    const loss = mb.crossEntropy(model.forward(x), y);
    assert.equal(loss._node!.inputs[0]!._node!.inputs[0]!.packed, undefined);
    const v = mb.autocast('bf16', () => mb.matmul(mb.tensor([[1 + 2 ** -8 + 2 ** -10]]), mb.ones([1, 1])));
    assert.equal(v.item(), 1 + 2 ** -7, 'rounded up to the nearest bf16');
  });
});
