/**
 * Edge cases where minibatch once differed from PyTorch (values from PyTorch 1.13): gradients at the points
 * where a formula divides by zero, clamp with min > max, an empty dim list, infinite logsumexp, narrow's
 * bounds, argmax with keepDim and no dim. Each runs small and at 2,000 elements (the wasm kernels' sizes).
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import * as mb from '../../src/index.js';
import { assertClose, forEachBackend, gradcheck } from '../helpers.js';

/** `pattern` repeated to n values. */
const tile = (pattern: number[], n: number) =>
  Array.from({ length: n }, (_, i) => pattern[i % pattern.length]!);
const SIZES = [1, 500];

forEachBackend(() => {
  it('crossEntropy with every target ignored: loss NaN, gradient 0 (not NaN)', () => {
    for (const labelSmoothing of [0, 0.1]) {
      for (const fn of ['crossEntropy', 'nllLoss'] as const) {
        const x = mb.randn([3, 4]).requiresGrad_();
        const input = fn === 'nllLoss' ? x.logSoftmax(-1) : x;
        const target = mb.tensor([-100, -100, -100], { dtype: 'int32' });
        const loss =
          fn === 'nllLoss' ? mb.nllLoss(input, target) : mb.crossEntropy(input, target, { labelSmoothing });
        assert.ok(Number.isNaN(loss.item()), `${fn}: loss ${loss.item()}`);
        loss.backward();
        const g = [...(x.grad!.toTypedArray() as Float32Array)];
        assert.ok(g.length === 12 && g.every((v) => v === 0), `${fn}: gradient ${g}`);
      }
    }
    // A target left: the mean over it, as usual.
    const x = mb.tensor([[1, 2, 3]]).requiresGrad_();
    const loss = mb.crossEntropy(x, mb.tensor([2], { dtype: 'int32' }));
    assert.ok(Math.abs(loss.item() - 0.40760596) < 1e-6);
  });

  it('pow gradients at a = 0: 0 where the exponent is 0, -inf for a negative exponent', () => {
    for (const k of SIZES) {
      // torch: a [0, 0, 2], b [-1, 2, 1] -> a.grad [-inf, 0, 1], b.grad [-inf, 0, 1.3863]
      const a = mb.tensor(tile([0, 0, 2], 3 * k)).requiresGrad_();
      const b = mb.tensor(tile([-1, 2, 1], 3 * k)).requiresGrad_();
      mb.pow(a, b).sum().backward();
      const ga = a.grad!.toTypedArray();
      const gb = b.grad!.toTypedArray();
      assert.deepEqual([ga[0], ga[1], ga[2]], [Number.NEGATIVE_INFINITY, 0, 1]);
      assert.equal(gb[0], Number.NEGATIVE_INFINITY);
      assert.equal(gb[1], 0);
      assert.ok(Math.abs(gb[2]! - 2 * Math.log(2)) < 1e-6);
      // torch: x [0, 2] ** 0 -> x.grad [0, 0]; with a tensor exponent [0, 0] its grad is [0, log 2]
      const x = mb.tensor(tile([0, 2], 2 * k)).requiresGrad_();
      mb.pow(x, 0).sum().backward();
      assert.deepEqual([...x.grad!.toTypedArray()].slice(0, 2), [0, 0]);
      const y = mb.tensor(tile([0, 2], 2 * k)).requiresGrad_();
      const e = mb.zeros([2 * k]).requiresGrad_();
      mb.pow(y, e).sum().backward();
      assert.deepEqual([...y.grad!.toTypedArray()].slice(0, 2), [0, 0]);
      const ge = e.grad!.toTypedArray();
      assert.equal(ge[0], 0);
      assert.ok(Math.abs(ge[1]! - Math.log(2)) < 1e-6);
    }
  });

  it('clamp with min > max gives max everywhere and a zero gradient, NaN stays NaN', () => {
    for (const k of SIZES) {
      const x = mb.tensor(tile([1, 5, 2, 3, Number.NaN], 5 * k)).requiresGrad_();
      const y = x.clamp(3, 1);
      assert.deepEqual([...y.toTypedArray()].slice(0, 5), [1, 1, 1, 1, Number.NaN]);
      y.sum().backward();
      assert.deepEqual([...x.grad!.toTypedArray()].slice(0, 5), [0, 0, 0, 0, 0]);
      // min <= max is unchanged: [1, 5, 2, 3] clamped to [2, 4]
      assert.deepEqual(
        [
          ...mb
            .tensor(tile([1, 5, 2, 3], 4 * k))
            .clamp(2, 4)
            .toTypedArray(),
        ].slice(0, 4),
        [2, 4, 2, 3],
      );
    }
  });

  it('an empty dim list reduces over every dim (sum, mean, max, var)', () => {
    const x = mb.tensor([
      [1, 5],
      [2, 3],
    ]);
    assert.deepEqual(x.sum([]).shape, []);
    assert.equal(x.sum([]).item(), 11);
    assert.equal(x.mean([]).item(), 2.75);
    assert.equal(mb.max(x, []).item(), 5);
    assert.ok(Math.abs(mb.variance(x, []).item() - 2.9166667) < 1e-6);
    assert.deepEqual(x.sum([], true).shape, [1, 1]);
  });

  it('logsumexp over a row with +inf is inf; all -inf is -inf', () => {
    for (const k of SIZES) {
      const row = [Number.POSITIVE_INFINITY, 1, ...new Array(2 * k - 2).fill(0)];
      const x = mb.tensor([row, [Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, ...row.slice(2)]]);
      assert.deepEqual(
        [...x.logsumexp(1).toTypedArray()],
        [Number.POSITIVE_INFINITY, Number.POSITIVE_INFINITY],
      );
      const allNeg = mb.full([1, 2 * k], Number.NEGATIVE_INFINITY);
      assert.equal(allNeg.logsumexp(1).toTypedArray()[0], Number.NEGATIVE_INFINITY);
      const plain = mb
        .tensor([[0, Math.log(3)]])
        .logsumexp(1)
        .item();
      assert.ok(Math.abs(plain - Math.log(4)) < 1e-6);
    }
  });

  it('narrow checks its range as PyTorch does; slice takes integer bounds only', () => {
    const x = mb.arange(6).float();
    assert.deepEqual(x.narrow(0, 2, 3).toList(), [2, 3, 4]);
    assert.deepEqual(x.narrow(0, -2, 2).toList(), [4, 5]);
    assert.deepEqual(x.narrow(0, 6, 0).shape, [0]);
    assert.throws(() => x.narrow(0, 2, -1), /narrow: length must be a non-negative integer \(got -1\)/);
    assert.throws(() => x.narrow(0, 4, 5), /narrow: start 4 \+ length 5 exceeds dimension 0 of size 6/);
    assert.throws(() => x.narrow(0, 7, 0), /narrow: start 7 is out of range for dimension 0 with size 6/);
    assert.throws(() => x.slice(0, 0.5, 3), /slice: start and end must be integers \(got 0\.5 and 3\)/);
    assert.throws(() => x.slice(0, 0, 2.5), /slice: start and end must be integers/);
  });

  it('bools: nested booleans make a bool tensor; + and maximum are or, × and minimum are and, − is refused', () => {
    const b = mb.tensor([true, false, true, false]);
    const c = mb.tensor([true, true, false, false]);
    assert.equal(b.dtype, 'bool');
    for (const [got, want] of [
      [mb.add(b, c), [true, true, true, false]],
      [mb.maximum(b, c), [true, true, true, false]],
      [mb.mul(b, c), [true, false, false, false]],
      [mb.minimum(b, c), [true, false, false, false]],
    ] as const) {
      assert.equal(got.dtype, 'bool');
      assert.deepEqual(got.toList(), want);
    }
    // A bool with an int number is int arithmetic (PyTorch: True + 1 is 2).
    assert.deepEqual(mb.add(b, 1).toList(), [2, 1, 2, 1]);
    assert.equal(mb.add(b, 1).dtype, 'int32');
    // torch refuses − with any bool operand: two masks, a mask and a number, a number tensor and True.
    for (const [x, y] of [
      [b, c],
      [b, 1.5],
      [mb.ones([4]), true],
    ] as const) {
      assert.throws(() => mb.sub(x, y), /sub: subtraction with a bool tensor is not supported/);
    }
  });

  it('ints stay ints: neg, abs, sign, relu and pow (exact, wrapping at 32 bits); a negative int power is refused', () => {
    for (const k of [1, 300]) {
      const a = mb.tensor(Int32Array.from({ length: 7 * k }, (_, i) => (i % 7) - 2)); // -2..4 repeated
      for (const [got, want] of [
        [mb.pow(a, 2), [4, 1, 0, 1, 4, 9, 16]],
        [a.neg(), [2, 1, 0, -1, -2, -3, -4]],
        [a.abs(), [2, 1, 0, 1, 2, 3, 4]],
        [mb.sign(a), [-1, -1, 0, 1, 1, 1, 1]],
        [mb.relu(a), [0, 0, 0, 1, 2, 3, 4]],
      ] as const) {
        assert.equal(got.dtype, 'int32');
        assert.deepEqual([...got.toTypedArray()].slice(0, 7), want);
      }
      assert.equal(a.exp().dtype, 'float32');
      assert.equal(mb.pow(a, 0.5).dtype, 'float32');
      assert.throws(() => mb.pow(a, -1), /pow: integers to negative integer powers are not allowed/);
      // clamp: whole bounds keep ints, a fractional one gives floats (PyTorch's promotion).
      assert.equal(a.clamp(-1, 3).dtype, 'int32');
      assert.deepEqual([...a.clamp(-1, 3).toTypedArray()].slice(0, 7), [-1, -1, 0, 1, 2, 3, 3]);
      assert.equal(a.clamp(undefined, 2).dtype, 'int32');
      assert.deepEqual([...a.clamp(0.5).toTypedArray()].slice(0, 7), [0.5, 0.5, 0.5, 1, 2, 3, 4]);
      assert.equal(a.clamp(0.5).dtype, 'float32');
    }
    // 3^31 wraps as a 32-bit product would; 2^31 is -2^31.
    const p = mb.pow(mb.tensor([2, 3], { dtype: 'int32' }), mb.tensor([[10], [31]], { dtype: 'int32' }));
    assert.deepEqual(p.toList(), [
      [1024, 59049],
      [-2147483648, Number(BigInt.asIntN(32, 3n ** 31n))],
    ]);
  });

  it('only float tensors can require gradients; fill values must be numbers', () => {
    assert.throws(
      () => mb.arange(3).requiresGrad_(),
      /requiresGrad_: only float tensors can require gradients \(got int32\)/,
    );
    assert.throws(() => mb.zeros([2], { dtype: 'int32', requiresGrad: true }), /full: only float tensors/);
    assert.throws(() => mb.tensor([true], { requiresGrad: true }), /tensor: only float tensors/);
    assert.throws(
      () => mb.full([2], 'a' as unknown as number),
      /full: the fill value must be a number or a boolean \(got string a\)/,
    );
    assert.equal(mb.arange(3).requiresGrad_(false).requiresGrad, false);
    assert.ok(mb.zeros([2], { requiresGrad: true }).requiresGrad);
  });

  it('relu keeps -0 and NaN (PyTorch: relu(-0.) is -0.), in the vector body and the tail alike', () => {
    for (const n of [5, 511, 512, 515]) {
      const x = new Float32Array(n).fill(1);
      x[0] = -0;
      x[1] = Number.NaN;
      x[2] = -3;
      x[n - 1] = -0; // past the last 4-wide block when n % 4 != 0
      const r = mb.tensor(x).relu().toTypedArray();
      assert.ok(
        Object.is(r[0], -0) && Number.isNaN(r[1]) && Object.is(r[2], 0) && Object.is(r[n - 1], -0),
        `n=${n}`,
      );
    }
  });

  it('matmul computes 0·Inf and 0·NaN as NaN at every size (the reference skipped zeros)', () => {
    for (const [M, K, N] of [
      [1, 2, 1],
      [2, 16, 16],
      [16, 16, 16],
      [40, 48, 56],
    ]) {
      for (const bad of [Number.POSITIVE_INFINITY, Number.NaN]) {
        const a = new Float32Array(M * K).fill(1);
        a[0] = 0;
        const b = new Float32Array(K * N).fill(1);
        b[0] = bad;
        const c = mb
          .tensor(a, { shape: [M, K] })
          .matmul(mb.tensor(b, { shape: [K, N] }))
          .toTypedArray();
        assert.ok(Number.isNaN(c[0]), `${M}x${K}x${N}: ${c[0]}`);
        if (N > 1) assert.equal(c[1], K - 1); // the other columns: a sum of ones past the zero
      }
    }
  });

  it('argmax and argmin with keepDim and no dim keep every dim as 1', () => {
    const x = mb.tensor([
      [1, 5],
      [7, 0],
    ]);
    assert.deepEqual(x.argmax(undefined, true).shape, [1, 1]);
    assert.deepEqual(x.argmax(undefined, true).toList(), [[2]]);
    assert.deepEqual(x.argmin(undefined, true).toList(), [[3]]);
    assert.deepEqual(x.argmax().shape, []);
  });

  it('0-d tensors: a reduction over dim 0 or -1 is the scalar itself; ops that index a dim refuse them', () => {
    // torch 1.13: sum/max/min/mean/logsumexp(s, 0) are s, var(s, 0, unbiased=False) is 0; they gave 0, -Inf,
    // Inf, NaN, -Inf and NaN (dim 0 of a 0-d tensor has no size).
    const s = mb.tensor([3]).reshape([]);
    const reduced = [
      mb.sum(s, 0),
      mb.max(s, 0),
      mb.min(s, -1),
      mb.mean(s, 0),
      mb.logsumexp(s, 0),
      mb.sum(s, [0], true),
    ];
    for (const r of reduced) {
      assert.deepEqual(r.shape, []);
      assert.equal(r.item(), 3);
    }
    assert.equal(mb.variance(s, 0, { unbiased: false }).item(), 0);
    assert.throws(
      () => mb.sum(s, 1),
      /sum: dimension out of range \(expected to be in range of \[-1, 0\], but got 1\)/,
    );
    for (const [name, fn] of [
      ['cat', () => mb.cat([s, s], 0)],
      ['select', () => mb.select(s, 0, 0)],
      ['narrow', () => mb.narrow(s, 0, 0, 1)],
      ['slice', () => mb.slice(s, 0, 0, 1)],
      ['indexSelect', () => mb.indexSelect(s, 0, [3])],
    ] as const) {
      assert.throws(fn, new RegExp(`${name}: cannot be applied to a 0-d tensor`), name);
    }
  });

  it("std's gradient is 0 where the std is 0 (PyTorch's std_backward), and matches finite differences elsewhere", () => {
    const y = mb.tensor(
      [
        [1, 2, 4],
        [3, 3, 3],
      ],
      { requiresGrad: true },
    );
    mb.std(y, 1).sum().backward();
    // torch.std(y, 1).sum().backward() in torch 1.13; the constant row gave NaN through sqrt's rule.
    assertClose(y.grad!, [-0.4364357590675354, -0.10910891741514206, 0.5455447435379028, 0, 0, 0], {
      label: 'dy',
    });
    gradcheck(
      (t) => mb.std(t!, [0, 2], { keepDim: true }),
      [mb.randn([3, 2, 4], { generator: new mb.Generator(8) })],
    );
  });

  it('empty tensors go through copies (cat, stack, indexSelect, a slice backward) and logsumexp, as in PyTorch', () => {
    // These threw a raw RangeError from the copy kernel: an empty view's offset may lie past its storage.
    assert.deepEqual(mb.cat([mb.zeros([2, 0, 1]), mb.zeros([2, 0, 3])], 2).shape, [2, 0, 4]);
    assert.deepEqual(mb.stack([mb.zeros([0, 2]), mb.zeros([0, 2])], 1).shape, [0, 2, 2]);
    assert.deepEqual(mb.indexSelect(mb.zeros([0, 3]), 1, [0, 2, 2]).shape, [0, 3]);
    const x = mb.zeros([0, 4], { requiresGrad: true });
    x.slice(1, 2, 4).mul(2).sum().backward();
    assert.deepEqual(x.grad!.shape, [0, 4]);
    // torch.logsumexp(zeros(2, 0), 1) is [-inf, -inf]
    assert.deepEqual([...mb.logsumexp(mb.zeros([2, 0]), 1).toTypedArray()], [-Infinity, -Infinity]);
  });

  it("pow follows C's pow, as PyTorch: 1^y = 1 for any y, (-1)^±Inf = 1 (JavaScript's Math.pow gives NaN)", () => {
    // 300 elements: past the wasm kernel's threshold, so the SIMD lanes' special cases run too.
    const bases = [1, -1, 1, -1, 1, 2, Number.NaN, 0.5];
    const exps = [Infinity, -Infinity, Number.NaN, Infinity, -Infinity, 3, 0, -2];
    const a = Float32Array.from({ length: 300 }, (_, i) => bases[i % 8]!);
    const b = Float32Array.from({ length: 300 }, (_, i) => exps[i % 8]!);
    const r = mb.pow(mb.tensor(a), mb.tensor(b)).toTypedArray();
    // torch.pow(torch.tensor(bases), torch.tensor(exps)): 1, 1, 1, 1, 1, 8, 1, 4
    for (let i = 0; i < 300; i++) assert.equal(r[i], [1, 1, 1, 1, 1, 8, 1, 4][i % 8], `element ${i}`);
  });

  it("dtypes as torch 1.13's: max/min of bools are bool, sign(bool) is bool, an infinite clamp bound makes an int float", () => {
    const b = mb.tensor([
      [true, false],
      [false, false],
    ]);
    const show = (t: mb.Tensor) => [t.dtype, t.toList()];
    assert.deepEqual(show(mb.max(b)), ['bool', true]);
    assert.deepEqual(show(mb.max(b, 1)), ['bool', [true, false]]);
    assert.deepEqual(show(mb.min(b, 0)), ['bool', [false, false]]);
    assert.deepEqual(show(mb.sum(b)), ['int32', 1], 'a sum of bools counts them');
    assert.deepEqual(show(mb.sign(b)), [
      'bool',
      [
        [true, false],
        [false, false],
      ],
    ]);
    const i = mb.tensor(Int32Array.from([-3, 0, 7]));
    assert.deepEqual(show(mb.clamp(i, -1, Infinity)), ['float32', [-1, 0, 7]]); // torch.clamp(i, -1, float('inf'))
    assert.deepEqual(show(mb.clamp(i, -1, 5)), ['int32', [-1, 0, 5]]);
    assert.deepEqual(show(mb.clamp(i, { min: -1 })), ['int32', [-1, 0, 7]]);
  });

  it("relu's gradient at NaN passes, as PyTorch's threshold_backward (result <= 0 ? 0 : grad); 0 and below stop it", () => {
    // 600 elements: the wasm kernel's SIMD lanes and tail both run.
    const x = mb.tensor(
      Float32Array.from({ length: 600 }, (_, i) => [Number.NaN, 2, -1, 0][i % 4]!),
      { requiresGrad: true },
    );
    mb.relu(x).mul(3).sum().backward();
    const g = x.grad!.toTypedArray();
    for (let i = 0; i < 600; i++) assert.equal(g[i], [3, 3, 0, 0][i % 4], `element ${i}`);
  });

  it("sign is PyTorch's (0 < x) - (x < 0): NaN and -0 give 0, so abs's gradient at NaN is 0", () => {
    const vals = [Number.NaN, -0, 0, 2, -3];
    const x = mb.tensor(
      Float32Array.from({ length: 600 }, (_, i) => vals[i % 5]!),
      { requiresGrad: true },
    );
    const s = mb.sign(x).toTypedArray();
    x.abs().sum().backward();
    const g = x.grad!.toTypedArray();
    // torch.sign([nan, -0., 0., 2., -3.]) = [0, 0, 0, 1, -1]; abs's gradient the same.
    for (let i = 0; i < 600; i++) {
      assert.ok(Object.is(s[i], [0, 0, 0, 1, -1][i % 5]), `sign element ${i}: ${s[i]}`);
      assert.equal(g[i], [0, 0, 0, 1, -1][i % 5], `abs' element ${i}`);
    }
  });

  it('gradients at NaN as torch 1.13: maximum/minimum pass all of it to both sides, max(x) to the NaN', () => {
    const pair = (op: typeof mb.maximum) => {
      const a = mb.tensor([Number.NaN, 1, 2, 3], { requiresGrad: true });
      const b = mb.tensor([0, Number.NaN, 2, 1], { requiresGrad: true });
      op(a, b).sum().backward();
      return [[...a.grad!.toTypedArray()], [...b.grad!.toTypedArray()]];
    };
    // torch.maximum / torch.minimum backward on these inputs
    assert.deepEqual(pair(mb.maximum), [
      [1, 1, 0.5, 1],
      [1, 1, 0.5, 0],
    ]);
    assert.deepEqual(pair(mb.minimum), [
      [1, 1, 0.5, 0],
      [1, 1, 0.5, 1],
    ]);
    const x = mb.tensor([1, Number.NaN, 3], { requiresGrad: true });
    mb.max(x).backward();
    assert.deepEqual([...x.grad!.toTypedArray()], [0, 1, 0]); // torch.max(x).backward(); it was NaN everywhere
  });

  it('indexSelect refuses a bool mask as an index, as torch 1.13 (it was read as indices 0 and 1)', () => {
    const x = mb.tensor([10, 20, 30]);
    assert.throws(
      () => mb.indexSelect(x, 0, mb.tensor([true, false])),
      /indexSelect: index must be a 1-D integer tensor \(got bool \[2\]\)/,
    );
    assert.deepEqual(mb.indexSelect(x, 0, mb.tensor(Int32Array.from([2, 0]))).toList(), [30, 10]);
  });
});
