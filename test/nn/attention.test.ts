import assert from 'node:assert/strict';
import { it } from 'node:test';
import * as mb from '../../src/index.js';
import {
  type AttentionImpl,
  type AttentionOptions,
  attentionProbabilities,
  scaledDotProductAttention as sdpa,
  TILED_MIN_SCORES,
} from '../../src/nn/attention.js';
import { attentionBackward, attentionForward } from '../../src/nn/attention-kernels.js';
import { assertClose, type FixtureTensor, fixture, forEachBackend, ft, gradcheck } from '../helpers.js';

type Case = Record<'q' | 'k' | 'v' | 'y' | 'g' | 'dq' | 'dk' | 'dv', FixtureTensor> & {
  causal: boolean;
  scale: number;
};

const PATHS: AttentionImpl[] = ['naive', 'chunked', 'tiled'];
// Small chunks and tiles, so the golden cases (lengths 5 to 33) really cross chunk and tile boundaries.
const SMALL = { chunkSize: 4, blockQ: 4, blockK: 8 };

/** Values and the gradients of sum(y·g) with respect to q, k, v (and a float mask, when it requires grad). */
function run(q: mb.Tensor, k: mb.Tensor, v: mb.Tensor, opts: AttentionOptions, g?: mb.Tensor) {
  const leaves = [q, k, v].map((t) => t.detach().requiresGrad_());
  const mask = opts.mask?.requiresGrad ? opts.mask.detach().requiresGrad_() : opts.mask;
  const y = sdpa(leaves[0]!, leaves[1]!, leaves[2]!, { ...opts, mask });
  const up = g ?? mb.randn([...y.shape], { generator: new mb.Generator(99) });
  y.backward(up);
  return { y, grads: leaves.map((l) => l.grad!), dmask: mask?.requiresGrad ? mask.grad! : null };
}

function agree(
  label: string,
  a: ReturnType<typeof run>,
  b: ReturnType<typeof run>,
  { rtol = 1e-4, atol = 1e-5 } = {},
): void {
  assertClose(a.y, b.y, { label: `${label} y`, rtol, atol });
  ['dq', 'dk', 'dv'].forEach((n, i) => {
    assertClose(a.grads[i]!, b.grads[i]!, { label: `${label} ${n}`, rtol, atol });
  });
  if (a.dmask || b.dmask) assertClose(a.dmask!, b.dmask!, { label: `${label} dmask`, rtol, atol });
}

const rnd = (shape: number[], seed: number, scale = 1) =>
  mb.mul(mb.randn(shape, { generator: new mb.Generator(seed) }), scale);

forEachBackend(() => {
  for (const c of fixture<{ cases: Case[] }>('attention.json').cases) {
    for (const impl of PATHS) {
      it(`${impl} matches PyTorch on ${c.q.shape} (causal=${c.causal})`, () => {
        const r = run(ft(c.q), ft(c.k), ft(c.v), { impl, isCausal: c.causal, ...SMALL }, ft(c.g));
        assertClose(r.y, c.y, { label: `${impl} y` });
        assertClose(r.grads[0]!, c.dq, { label: `${impl} dq` });
        assertClose(r.grads[1]!, c.dk, { label: `${impl} dk` });
        assertClose(r.grads[2]!, c.dv, { label: `${impl} dv` });
      });
    }
    it(`tiled with default tiles and auto match PyTorch on ${c.q.shape}`, () => {
      for (const impl of ['tiled', 'auto'] as const) {
        const r = run(ft(c.q), ft(c.k), ft(c.v), { impl, isCausal: c.causal, scale: c.scale }, ft(c.g));
        assertClose(r.y, c.y, { label: `${impl} y` });
        assertClose(r.grads[0]!, c.dq, { label: `${impl} dq` });
      }
    });
  }

  // [name, q shape, k/v shape, options]: lengths that are not multiples of the tiles, L != S, broadcast
  // batch dims, Ev != E, bool and additive masks of several broadcast shapes.
  const bool = (shape: number[], seed: number, keep = 0.7) =>
    mb.lt(mb.rand(shape, { generator: new mb.Generator(seed) }), keep);
  const cases: [string, number[], number[], AttentionOptions, number?][] = [
    ['3-D, L=S=13', [2, 13, 6], [2, 13, 6], {}],
    ['L=7 < S=19', [2, 3, 7, 5], [2, 3, 19, 5], {}],
    ['L=19 > S=7, causal', [2, 19, 5], [2, 7, 5], { isCausal: true }],
    ['L=7 < S=19, causal', [1, 2, 7, 4], [1, 2, 19, 4], { isCausal: true }],
    ['key/value shared over heads (MQA)', [2, 3, 9, 4], [2, 1, 11, 4], {}],
    ['2-D inputs', [9, 4], [10, 4], {}],
    ['scale 0.3', [2, 9, 4], [2, 10, 4], { scale: 0.3 }],
    ['bool mask (L, S)', [2, 2, 9, 4], [2, 2, 12, 4], { mask: bool([9, 12], 5) }],
    ['bool key padding (N, 1, 1, S)', [3, 2, 9, 4], [3, 2, 12, 4], { mask: bool([3, 1, 1, 12], 6) }],
    ['bool mask (N, H, L, S)', [2, 2, 9, 4], [2, 2, 12, 4], { mask: bool([2, 2, 9, 12], 7) }],
    ['additive mask (1, H, L, S)', [2, 2, 9, 4], [2, 2, 12, 4], { mask: rnd([1, 2, 9, 12], 8) }],
    ['additive mask (S), requires grad', [2, 9, 4], [2, 12, 4], { mask: rnd([12], 9).requiresGrad_() }],
    [
      'additive mask (N, L, 1) broadcast over S, requires grad',
      [3, 9, 4],
      [3, 12, 4],
      { mask: rnd([3, 9, 1], 10).requiresGrad_() },
    ],
    [
      'additive mask with -inf cells',
      [2, 9, 4],
      [2, 12, 4],
      { mask: mb.where(bool([9, 12], 11), 0, -Infinity) },
    ],
  ];
  for (const [name, qs, ks, opts] of cases) {
    it(`tiled and chunked agree with naive: ${name}`, () => {
      const vs = [...ks.slice(0, -1), 3]; // Ev = 3 != E
      const [q, k, v] = [rnd(qs, 1), rnd(ks, 2), rnd(vs, 3)];
      const ref = run(q, k, v, { ...opts, impl: 'naive' });
      for (const [bq, bk] of [
        [4, 8],
        [5, 3],
        [64, 128],
      ] as const)
        agree(`tiled ${bq}x${bk}`, run(q, k, v, { ...opts, impl: 'tiled', blockQ: bq, blockK: bk }), ref);
      agree('chunked 4', run(q, k, v, { ...opts, impl: 'chunked', chunkSize: 4 }), ref);
    });
  }

  it('fully masked rows give zeros and zero gradients on every path (bool and -inf masks)', () => {
    const [q, k, v] = [rnd([2, 6, 4], 1), rnd([2, 5, 4], 2), rnd([2, 5, 4], 3)];
    const keep = mb.tensor(
      Float32Array.from({ length: 30 }, (_, i) => (Math.floor(i / 5) % 3 === 1 ? 0 : 1)),
      {
        shape: [6, 5],
      },
    ); // rows 1 and 4 see no key
    for (const mask of [mb.gt(keep, 0), mb.where(mb.gt(keep, 0), 0, -Infinity)]) {
      for (const impl of PATHS) {
        const r = run(q, k, v, { mask, impl, ...SMALL });
        const y = r.y.toList() as number[][][];
        for (const b of [0, 1])
          for (const i of [1, 4]) assert.deepEqual(y[b]![i], [0, 0, 0, 0], `${impl} row ${i}`);
        for (const g of r.grads)
          assert.ok(g.toTypedArray().every(Number.isFinite), `${impl}: finite gradients`);
        const dq = r.grads[0]!.toList() as number[][][];
        for (const b of [0, 1])
          for (const i of [1, 4]) assert.deepEqual(dq[b]![i], [0, 0, 0, 0], `${impl} dq row ${i}`);
      }
    }
  });

  it('scores of +-1e4 stay finite and the paths agree', () => {
    // q·k/√E reaches about ±1e4, where a naive exp overflows. Integer q and k keep the scores exact in
    // float32, so the paths can be compared tightly even there.
    const ints = (shape: number[], seed: number) =>
      mb.tensor((rnd(shape, seed, 100).toTypedArray() as Float32Array).map(Math.round), { shape });
    const [q, k, v] = [ints([2, 7, 4], 1), ints([2, 9, 4], 2), rnd([2, 9, 4], 3)];
    const ref = run(q, k, v, { impl: 'naive' });
    const scores = mb.matmul(q, k.mT).abs().max().item() / 2;
    assert.ok(scores > 1e4, `max |score| ${scores}`);
    for (const impl of ['chunked', 'tiled'] as const) {
      const r = run(q, k, v, { impl, ...SMALL });
      assert.ok(r.y.toTypedArray().every(Number.isFinite), `${impl}: finite`);
      agree(impl, r, ref);
    }
  });

  it('tiled gradients match finite differences (plain, causal, bool mask, additive mask)', () => {
    const [q, k, v] = [rnd([1, 2, 5, 3], 1), rnd([1, 2, 7, 3], 2), rnd([1, 2, 7, 2], 3)];
    const tiles = { impl: 'tiled', blockQ: 2, blockK: 3 } as const;
    gradcheck((a, b, c) => sdpa(a!, b!, c!, tiles), [q, k, v], { label: 'tiled' });
    gradcheck((a, b, c) => sdpa(a!, b!, c!, { ...tiles, isCausal: true }), [q, k, v], {
      label: 'tiled causal',
    });
    const keep = mb.lt(mb.rand([5, 7], { generator: new mb.Generator(4) }), 0.6);
    gradcheck((a, b, c) => sdpa(a!, b!, c!, { ...tiles, mask: keep }), [q, k, v], { label: 'tiled bool' });
    gradcheck((a, b, c, m) => sdpa(a!, b!, c!, { ...tiles, mask: m! }), [q, k, v, rnd([2, 1, 7], 5)], {
      label: 'tiled additive',
    });
  });

  it('auto: tiled where the attention kernels are fast, matmul is the reference or the scores are many; composed ops with dropout', () => {
    const [q, k, v] = [rnd([2, 9, 4], 1), rnd([2, 9, 4], 2), rnd([2, 9, 4], 3)].map((t) => t.requiresGrad_());
    const fused = sdpa(q!, k!, v!);
    const info = mb.backendInfo();
    const fastAttention = info.name !== 'js' && info.fallbackFrom.attentionForward !== 'js';
    const referenceMatmul = info.name === 'js' || info.fallbackFrom.matmul === 'js';
    assert.equal(fused._node?.prim === 'custom', fastAttention || referenceMatmul);
    const n = Math.sqrt(TILED_MIN_SCORES); // E = 1 keeps the big case cheap
    const big = sdpa(rnd([1, n, 1], 4).requiresGrad_(), rnd([1, n, 1], 5), rnd([1, n, 1], 6));
    assert.equal(big._node?.prim, 'custom');
    const dropped = (seed: number) => sdpa(q!, k!, v!, { dropoutP: 0.5, generator: new mb.Generator(seed) });
    assert.notEqual(dropped(1)._node?.prim, 'custom');
    assert.deepEqual(dropped(1).toList(), dropped(1).toList());
    assert.notDeepEqual(dropped(1).toList(), fused.toList());
    assert.deepEqual(
      sdpa(q!, k!, v!, { dropoutP: 0.5, impl: 'naive', generator: new mb.Generator(1) }).toList(),
      sdpa(q!, k!, v!, {
        dropoutP: 0.5,
        impl: 'chunked',
        chunkSize: 64,
        generator: new mb.Generator(1),
      }).toList(),
      'one chunk draws the same mask as naive',
    );
    const zero = sdpa(q!, k!, v!, { dropoutP: 1, impl: 'naive' });
    assert.ok(zero.toTypedArray().every((x) => x === 0));
  });

  it('no keys or no queries: zeros of the right shape', () => {
    assert.deepEqual(sdpa(rnd([2, 3, 4], 1), mb.zeros([2, 0, 4]), mb.zeros([2, 0, 5])).toList(), [
      [
        [0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0],
      ],
      [
        [0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0],
      ],
    ]);
    assert.deepEqual(
      sdpa(mb.zeros([2, 0, 4]), rnd([2, 3, 4], 1), rnd([2, 3, 4], 2), { impl: 'naive' }).shape,
      [2, 0, 4],
    );
  });

  it('attentionProbabilities are the softmax weights: rows sum to 1, causal upper triangle 0', () => {
    const p = attentionProbabilities(rnd([2, 5, 4], 1), rnd([2, 5, 4], 2), { isCausal: true });
    assertClose(p.sum(-1), mb.ones([2, 5]), { label: 'row sums' });
    assert.equal((p.toList() as number[][][])[0]![1]![2], 0);
  });

  it('rejects bad shapes and options with typed errors naming the op', () => {
    const x = mb.zeros([2, 5, 4]);
    const cases: [() => unknown, typeof mb.MinibatchError, RegExp][] = [
      [
        () => sdpa(mb.zeros([4]), x, x),
        mb.ShapeError,
        /scaledDotProductAttention: query must have at least 2 dims \(\.\.\., T, E\), got \[4\]/,
      ],
      [
        () => sdpa(x, mb.zeros([2, 5, 3]), x),
        mb.ShapeError,
        /scaledDotProductAttention: query \[2,5,4\] and key \[2,5,3\] must have the same last dim \(got 4 and 3\)/,
      ],
      [
        () => sdpa(x, x, mb.zeros([2, 6, 4])),
        mb.ShapeError,
        /scaledDotProductAttention: key \[2,5,4\] and value \[2,6,4\] must have the same length \(got 5 and 6\)/,
      ],
      [
        () => sdpa(x, mb.zeros([3, 5, 4]), mb.zeros([3, 5, 4])),
        mb.ShapeError,
        /scaledDotProductAttention: batch dims of query \[2,5,4\], key \[3,5,4\] and value \[3,5,4\] cannot be broadcast/,
      ],
      [
        () => sdpa(x, x, x, { mask: mb.ones([5, 6], { dtype: 'bool' }) }),
        mb.ShapeError,
        /scaledDotProductAttention: mask \[5,6\] is not broadcastable to \[2,5,5\] \(batch\.\.\., L, S\)/,
      ],
      [
        () => sdpa(x, x, x, { mask: mb.ones([5, 5], { dtype: 'int32' }) }),
        mb.ValueError,
        /scaledDotProductAttention: mask must be bool \(true = attend\) or float32 \(added\), got int32/,
      ],
      [
        () => sdpa(x, x, x, { mask: mb.ones([5, 5]), isCausal: true }),
        mb.ValueError,
        /scaledDotProductAttention: pass either mask or isCausal, not both/,
      ],
      [
        () => sdpa(x, x, x, { impl: 'tiled', dropoutP: 0.1 }),
        mb.ValueError,
        /scaledDotProductAttention: the tiled path does not support dropout \(got dropoutP=0\.1\)/,
      ],
      [
        () => sdpa(x, x, x, { impl: 'flash' as AttentionImpl }),
        mb.ValueError,
        /scaledDotProductAttention: unknown impl 'flash'/,
      ],
      [
        () => sdpa(x, x, x, { blockQ: 0 }),
        mb.ValueError,
        /scaledDotProductAttention: blockQ must be a positive integer \(got 0\)/,
      ],
      [
        () => sdpa(x, x, x, { dropoutP: 1.5 }),
        mb.ValueError,
        /scaledDotProductAttention: dropoutP must be in \[0, 1\]/,
      ],
      [
        () => sdpa(mb.zeros([2, 5, 4], { dtype: 'int32' }), x, x),
        mb.ValueError,
        /scaledDotProductAttention: query must be float32, got int32/,
      ],
    ];
    for (const [fn, cls, re] of cases)
      assert.throws(fn, (e: unknown) => e instanceof cls && re.test((e as Error).message));
  });
});

it('the kernels allocate scratch independent of L and S', () => {
  const bytes = (L: number, S: number) => {
    const g = { B: 1, L, S, E: 8, Ev: 8, scale: 0.3, causal: false, blockQ: 16, blockK: 32 };
    const [q, k, v, o] = [
      new Float32Array(L * 8),
      new Float32Array(S * 8),
      new Float32Array(S * 8),
      new Float32Array(L * 8),
    ];
    const lse = new Float32Array(L);
    return [
      attentionForward(q, k, v, g, null, o, lse),
      attentionBackward(
        q,
        k,
        v,
        o,
        o,
        lse,
        g,
        null,
        new Float32Array(L * 8),
        new Float32Array(S * 8),
        new Float32Array(S * 8),
        null,
      ),
    ];
  };
  assert.deepEqual(bytes(40, 40), bytes(400, 300));
});
