import assert from 'node:assert/strict';
import { it } from 'node:test';
import * as mb from '../../src/index.js';
import { MultiheadAttention, TransformerEncoderLayer } from '../../src/nn/transformer.js';
import { Adam } from '../../src/optim/adam.js';
import { assertClose, forEachBackend } from '../helpers.js';

const gen = (seed: number) => new mb.Generator(seed);

forEachBackend(() => {
  it("MultiheadAttention has PyTorch's parameter names, shapes and init", () => {
    const mha = new MultiheadAttention(8, 2, { generator: gen(1) });
    assert.deepEqual(
      Object.entries(mha.stateDict()).map(([k, t]) => [k, t.shape]),
      [
        ['in_proj_weight', [24, 8]],
        ['in_proj_bias', [24]],
        ['out_proj.weight', [8, 8]],
        ['out_proj.bias', [8]],
      ],
    );
    assert.ok(mha.inProjBias!.toTypedArray().every((x) => x === 0));
    assert.ok(mha.outProj.bias!.toTypedArray().every((x) => x === 0));
    // xavier_uniform_ on (3E, E): bound √(6 / (E + 3E)) = √(6/32).
    const w = mha.inProjWeight.abs().max().item();
    assert.ok(w <= Math.sqrt(6 / 32) && w > 0.9 * Math.sqrt(6 / 32), `max |w| = ${w}`);
    assert.deepEqual(Object.keys(new MultiheadAttention(8, 2, { bias: false }).stateDict()), [
      'in_proj_weight',
      'out_proj.weight',
    ]);
  });

  it('MultiheadAttention forward matches a hand computation (2 heads of size 1)', () => {
    const mha = new MultiheadAttention(2, 2);
    // Identity projections and out_proj bias (1, -1): head h attends with feature h alone (scale 1/√1).
    const eye = [1, 0, 0, 1];
    mha.loadStateDict({
      in_proj_weight: mb.tensor(Float32Array.from([...eye, ...eye, ...eye]), { shape: [6, 2] }),
      in_proj_bias: mb.zeros([6]),
      'out_proj.weight': mb.tensor(Float32Array.from(eye), { shape: [2, 2] }),
      'out_proj.bias': mb.tensor([1, -1]),
    });
    const x = mb.tensor([
      [
        [1, 0],
        [0, 1],
      ],
    ]); // (N=1, L=2, E=2)
    // Head 0, query 0: scores (1, 0) -> weights (e, 1)/(e + 1) over values (1, 0) -> e/(e + 1) = 0.7311.
    // Head 0, query 1: scores (0, 0) -> 0.5. Head 1 is the mirror image.
    const a = Math.E / (Math.E + 1);
    const expected = [
      [
        [a + 1, 0.5 - 1],
        [0.5 + 1, a - 1],
      ],
    ];
    assertClose(mha.forward(x), expected.flat(2), { label: 'mha' });
    const { output, weights } = mha.forwardWithWeights(x);
    assertClose(output, expected.flat(2), { label: 'mha with weights' });
    // Averaged over heads: query 0 gives (a + 0.5, 1 - a + 0.5) / 2.
    assertClose(weights, [(a + 0.5) / 2, (1.5 - a) / 2, (1.5 - a) / 2, (a + 0.5) / 2], { label: 'weights' });
  });

  it('MultiheadAttention masks follow PyTorch (true = blocked) and layouts agree', () => {
    const mha = new MultiheadAttention(8, 2, { generator: gen(2) });
    const q = mb.randn([2, 5, 8], { generator: gen(3) });
    const kv = mb.randn([2, 7, 8], { generator: gen(4) });
    // Padding the last 3 keys is the same as leaving them out.
    const pad = mb.tensor(Uint8Array.from([0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1]), { shape: [2, 7] });
    const short = mb.slice(kv, 1, 0, 4);
    const ref = mha.forward(q, short, short);
    assertClose(mha.forward(q, kv, kv, { keyPaddingMask: pad }), ref, { label: 'key padding', atol: 1e-6 });
    const addPad = mb.where(pad, -Infinity, 0);
    assertClose(mha.forward(q, kv, kv, { keyPaddingMask: addPad }), ref, { label: 'float key padding' });
    // A bool attnMask of the same pattern, and per-head (N·H, L, S) masks.
    const blocked = mb.expand(mb.reshape(pad, [2, 1, 1, 7]), [2, 2, 5, 7]).reshape([4, 5, 7]);
    assertClose(mha.forward(q, kv, kv, { attnMask: blocked }), ref, { label: 'attnMask (N·H, L, S)' });
    // isCausal = the upper-triangle attnMask; with key padding on top, masks combine.
    const x = mb.randn([2, 7, 8], { generator: gen(5) });
    const upper = mb.gt(mb.arange(7).reshape([1, 7]), mb.arange(7).reshape([7, 1]));
    const causal = mha.forward(x, x, x, { isCausal: true });
    assertClose(mha.forward(x, x, x, { attnMask: upper }), causal, { label: 'causal' });
    assertClose(
      mha.forward(x, x, x, { isCausal: true, keyPaddingMask: pad }),
      mha.forward(x, x, x, { attnMask: mb.where(upper, -Infinity, 0), keyPaddingMask: pad }),
      { label: 'causal + padding' },
    );
    // Sequence-first layout and unbatched input give the same numbers.
    const seqFirst = new MultiheadAttention(8, 2, { batchFirst: false });
    seqFirst.loadStateDict(mha.stateDict());
    assertClose(
      seqFirst.forward(q.transpose(0, 1), kv.transpose(0, 1), kv.transpose(0, 1)).transpose(0, 1),
      mha.forward(q, kv, kv),
      {
        label: 'batchFirst false',
      },
    );
    assertClose(
      mha.forward(q.select(0, 1), kv.select(0, 1), kv.select(0, 1)),
      mha.forward(q, kv, kv).select(0, 1),
      {
        label: 'unbatched',
      },
    );
    // The weights path gives the same output; padded keys get zero weight.
    const { output, weights } = mha.forwardWithWeights(q, kv, kv, { keyPaddingMask: pad });
    assertClose(output, ref, { label: 'with weights' });
    assert.deepEqual(weights.shape, [2, 5, 7]);
    assert.equal((weights.toList() as number[][][])[0]![0]![5], 0);
    assert.deepEqual(
      mha.forwardWithWeights(q, kv, kv, { averageAttnWeights: false }).weights.shape,
      [2, 2, 5, 7],
    );
  });

  it('MultiheadAttention rejects bad shapes with typed errors', () => {
    const mha = new MultiheadAttention(8, 2);
    assert.throws(
      () => new MultiheadAttention(8, 3),
      /MultiheadAttention: embed_dim must be divisible by num_heads \(got 8 and 3\)/,
    );
    assert.throws(
      () => mha.forward(mb.zeros([2, 5, 6])),
      (e: unknown) =>
        e instanceof mb.ShapeError &&
        /MultiheadAttention: query must be \(N, T, 8\)/.test((e as Error).message),
    );
    assert.throws(
      () => mha.forward(mb.zeros([2, 5, 8]), mb.zeros([3, 5, 8]), mb.zeros([3, 5, 8])),
      /MultiheadAttention: query, key and value must share the batch size/,
    );
    assert.throws(
      () =>
        mha.forward(mb.zeros([2, 5, 8]), mb.zeros([2, 5, 8]), mb.zeros([2, 5, 8]), {
          attnMask: mb.zeros([5, 4]),
        }),
      /MultiheadAttention: attnMask must be \(L, S\) = \[5,5\] or \(N·H, L, S\) = \[4,5,5\], got \[5,4\]/,
    );
    assert.throws(
      () =>
        mha.forward(mb.zeros([2, 5, 8]), mb.zeros([2, 5, 8]), mb.zeros([2, 5, 8]), {
          keyPaddingMask: mb.zeros([5]),
        }),
      /MultiheadAttention: keyPaddingMask must be \[2,5\] \(N, S\), got \[5\]/,
    );
    assert.throws(
      () =>
        mha.forward(mb.zeros([2, 5, 8]), mb.zeros([2, 5, 8]), mb.zeros([2, 5, 8]), {
          keyPaddingMask: mb.zeros([2, 5], { dtype: 'int32' }),
        }),
      /MultiheadAttention: keyPaddingMask must be bool \(true = not allowed to attend\) or float32 \(added to the scores\), got int32/,
    );
  });

  it("TransformerEncoderLayer has PyTorch's state-dict keys and gradients reach every parameter", () => {
    const layer = new TransformerEncoderLayer(8, 2, 16, 0.1, { generator: gen(6) });
    assert.deepEqual(Object.keys(layer.stateDict()), [
      'self_attn.in_proj_weight',
      'self_attn.in_proj_bias',
      'self_attn.out_proj.weight',
      'self_attn.out_proj.bias',
      'linear1.weight',
      'linear1.bias',
      'linear2.weight',
      'linear2.bias',
      'norm1.weight',
      'norm1.bias',
      'norm2.weight',
      'norm2.bias',
    ]);
    const y = layer.forward(mb.randn([2, 5, 8], { generator: gen(7) }), { isCausal: true });
    assert.deepEqual(y.shape, [2, 5, 8]);
    mb.sum(mb.mul(y, mb.randn([2, 5, 8], { generator: gen(8) }))).backward();
    for (const [name, p] of layer.namedParameters()) assert.ok(p.grad && p.grad.abs().sum().item() > 0, name);
    // Eval mode turns dropout off: the same input gives the same output twice.
    layer.eval();
    const x = mb.randn([2, 5, 8], { generator: gen(9) });
    assert.deepEqual(layer.forward(x).toList(), layer.forward(x).toList());
  });

  for (const normFirst of [false, true]) {
    it(`a TransformerEncoderLayer learns to reverse sequences (normFirst=${normFirst})`, () => {
      // Tokens 0..V-1 at T positions; the target at position t is the token at T-1-t, which needs attention
      // by position: one-hot tokens + learned positions -> encoder layer -> linear head -> cross-entropy.
      const [V, T, D, N] = [5, 6, 16, 32];
      const g = gen(10);
      class Reverser extends mb.Module {
        embed = this.registerModule('embed', new mb.Linear(V, D, { generator: g }));
        pos = this.registerParameter('pos', mb.randn([T, D], { generator: g }));
        layer = this.registerModule(
          'layer',
          new TransformerEncoderLayer(D, 2, 32, 0, {
            normFirst,
            activation: normFirst ? 'gelu' : 'relu',
            generator: g,
          }),
        );
        head = this.registerModule('head', new mb.Linear(D, V, { generator: g }));
        forward(x: mb.Tensor): mb.Tensor {
          return this.head.forward(this.layer.forward(mb.add(this.embed.forward(x), this.pos)));
        }
      }
      const model = new Reverser();
      const opt = new Adam(model.parameters(), { lr: 1e-2 });
      const losses: number[] = [];
      for (let step = 0; step < 60; step++) {
        const tokens = mb.randint(0, V, [N, T], { generator: g });
        const onehot = mb.cast(mb.eq(tokens.unsqueeze(-1), mb.arange(V)), 'float32');
        const target = mb.indexSelect(
          tokens,
          1,
          Array.from({ length: T }, (_, t) => T - 1 - t),
        );
        const loss = mb.crossEntropy(model.forward(onehot).reshape([N * T, V]), target.reshape([N * T]));
        opt.zeroGrad();
        loss.backward();
        opt.step();
        losses.push(loss.item());
      }
      const first = losses.slice(0, 10).reduce((a, b) => a + b) / 10;
      const last = losses.slice(-10).reduce((a, b) => a + b) / 10;
      // Chance is ln 5 = 1.61; measured: about 1.8 -> 0.02 by step 50.
      assert.ok(last < 0.1 * first, `loss ${first.toFixed(3)} -> ${last.toFixed(3)}`);
    });
  }
});
