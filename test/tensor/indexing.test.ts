import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ShapeError, ValueError } from '../../src/errors.js';
import * as mb from '../../src/index.js';
import { assertClose, type FixtureTensor, fixture, forEachBackend, ft, gradcheck } from '../helpers.js';

interface Case {
  op: 'gather' | 'topk' | 'sort' | 'cumsum';
  x: FixtureTensor;
  y: FixtureTensor;
  g?: FixtureTensor;
  dx?: FixtureTensor;
  dim?: number;
  index?: FixtureTensor;
  indices?: FixtureTensor;
  k?: number;
  largest?: boolean;
  descending?: boolean;
}

/** Fixture data with JSON's missing NaN and infinities written as strings. */
const num = (v: number | string) => (typeof v === 'string' ? Number(v) : v);
const floats = (f: FixtureTensor) =>
  mb.tensor(Float32Array.from(f.data as (number | string)[], num), { shape: f.shape });
const ints = (f: FixtureTensor) => mb.tensor(Int32Array.from(f.data), { shape: f.shape });

forEachBackend(() => {
  describe('gather, topk, sort, cumsum against torch 1.13 (indexing.json)', () => {
    for (const c of fixture<{ cases: Case[] }>('indexing.json').cases) {
      const opts = JSON.stringify({ dim: c.dim, k: c.k, largest: c.largest, descending: c.descending });
      it(`${c.op} ${opts} on ${c.x.shape}`, () => {
        const isInt = c.op === 'cumsum' && !c.g;
        const x = isInt ? ints(c.x) : floats(c.x);
        if (c.g) x.requiresGrad = true;
        let y: mb.Tensor;
        if (c.op === 'gather') y = x.gather(c.dim!, ints(c.index!));
        else if (c.op === 'cumsum') y = mb.cumsum(x, c.dim!);
        else {
          const [values, indices] =
            c.op === 'topk'
              ? mb.topk(x, c.k!, { dim: c.dim!, largest: c.largest! })
              : mb.sort(x, { dim: c.dim!, descending: c.descending! });
          assert.deepEqual(indices.toTypedArray(), Int32Array.from(c.indices!.data), 'indices');
          assert.deepEqual(indices.shape, c.indices!.shape);
          y = values;
        }
        if (isInt) {
          assert.equal(y.dtype, 'int32');
          assert.deepEqual(y.toTypedArray(), Int32Array.from(c.y.data));
          return;
        }
        assertClose(y, floats(c.y), { label: 'y' });
        if (c.g) {
          y.backward(ft(c.g));
          assertClose(x.grad!, c.dx!, { label: 'dx' });
        }
      });
    }
  });

  it('cumsum and gather match finite differences; sort/argsort/topk agree with each other', () => {
    const g = new mb.Generator(9);
    gradcheck(
      (t) => mb.cumsum(t!, 1).mul(mb.randn([3, 4, 2], { generator: new mb.Generator(1) })),
      [mb.randn([3, 4, 2], { generator: g })],
    );
    const index = mb.tensor(Int32Array.from([0, 2, 2, 1, 0, 0]), { shape: [2, 3] });
    gradcheck((t) => mb.gather(t!, 1, index), [mb.randn([2, 4], { generator: g })]);
    // A strided view: gather reads through the strides, its gradient lands in the right places.
    const base = mb.randn([4, 2], { generator: g, requiresGrad: true });
    const y = mb.gather(base.T, 1, index);
    assert.deepEqual(
      y.toTypedArray(),
      Float32Array.from(
        [0, 2, 2, 1, 0, 0],
        (j, n) => base.T.contiguous().toTypedArray()[(n < 3 ? 0 : 4) + j]!,
      ),
    );
    y.sum().backward();
    // Row 0 of base.T took its entries 0, 2, 2: base[0][0] once, base[2][0] twice; row 1 took 1, 0, 0.
    assert.deepEqual(base.grad!.toTypedArray(), Float32Array.from([1, 2, 0, 1, 2, 0, 0, 0]));
    const x = mb.randn([5, 7], { generator: g });
    const { values, indices } = x.sort({ dim: 0, descending: true });
    assert.deepEqual(x.argsort({ dim: 0, descending: true }).toTypedArray(), indices.toTypedArray());
    assert.deepEqual(mb.gather(x, 0, indices).toTypedArray(), values.toTypedArray());
    const [top] = x.topk(3, { dim: 0 });
    assert.deepEqual(top.toTypedArray(), values.narrow(0, 0, 3).contiguous().toTypedArray());
    // top-5 accuracy, the common use: is the target among each row's 5 largest logits?
    const hits = mb.eq(x.topk(5).indices, mb.tensor(Int32Array.from([0, 1, 2, 3, 4]), { shape: [5, 1] }));
    assert.equal(hits.sum(1).shape.join(), '5');
  });

  it('bad arguments are refused by name', () => {
    const x = mb.zeros([2, 3]);
    const bad: [() => unknown, RegExp][] = [
      [() => mb.topk(x, 4), /topk: k \(4\) must be an integer in \[0, 3\], the size of dim 1 of \[2,3\]/],
      [() => mb.topk(x, 1, { dim: 2 }), /topk: dimension out of range/],
      [
        // PyTorch's `sorted`, as a user would write it
        () => mb.topk(x, 1, { sorted: false } as unknown as mb.TopkOptions),
        /topk: unknown option 'sorted' \(expected one of dim, largest\)/,
      ],
      [() => mb.sort(x, { descending: 1 as unknown as boolean }), /sort: descending must be a boolean/],
      [() => mb.gather(x, 1, mb.tensor([[0]])), /gather: index must be an int32 Tensor \(got float32\)/],
      [
        () => mb.gather(x, 1, mb.tensor(Int32Array.from([0]))),
        /gather: index \[1\] must have as many dims as the input \[2,3\]/,
      ],
      [
        () => mb.gather(x, 1, mb.tensor(Int32Array.from([0, 0, 0]), { shape: [3, 1] })),
        /gather: index \[3,1\] is larger than the input \[2,3\] outside dim 1/,
      ],
      [
        () => mb.gather(x, 1, mb.tensor(Int32Array.from([3]), { shape: [1, 1] })),
        /gather: index 3 is out of bounds for dimension 1 with size 3/,
      ],
      [() => mb.cumsum(x, -3), /cumsum: dimension out of range/],
    ];
    for (const [fn, re] of bad) {
      assert.throws(
        fn,
        (e: unknown) => (e instanceof ValueError || e instanceof ShapeError) && re.test((e as Error).message),
        String(re),
      );
    }
  });
});
