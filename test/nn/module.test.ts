import assert from 'node:assert/strict';
import { it } from 'node:test';
import * as mb from '../../src/index.js';
import { assertClose, forEachBackend } from '../helpers.js';

forEachBackend(() => {
  const mlp = () =>
    new mb.Sequential(
      new mb.Linear(12, 16),
      new mb.BatchNorm1d(16),
      new mb.ReLU(),
      new mb.Linear(16, 8),
      new mb.ReLU(),
      new mb.Linear(8, 3),
    );

  it("state-dict keys and order are PyTorch's", () => {
    assert.deepEqual(Object.keys(mlp().stateDict()), [
      '0.weight',
      '0.bias',
      '1.weight',
      '1.bias',
      '1.running_mean',
      '1.running_var',
      '1.num_batches_tracked',
      '3.weight',
      '3.bias',
      '5.weight',
      '5.bias',
    ]);
    assert.equal(mlp().parameters().length, 8);
  });

  it("repr looks like PyTorch's", () => {
    assert.equal(
      String(
        new mb.Sequential(
          new mb.Linear(784, 256),
          new mb.BatchNorm1d(256),
          new mb.ReLU(),
          new mb.Dropout(0.2),
        ),
      ),
      'Sequential(\n  (0): Linear(in_features=784, out_features=256, bias=True)\n  (1): BatchNorm1d(256, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)\n  (2): ReLU()\n  (3): Dropout(p=0.2, inplace=False)\n)',
    );
  });

  it('Linear init is U(-1/sqrt(in), 1/sqrt(in)) and seeded', () => {
    const a = new mb.Linear(100, 50, { generator: new mb.Generator(1) });
    const b = new mb.Linear(100, 50, { generator: new mb.Generator(1) });
    assert.deepEqual(a.weight.toList(), b.weight.toList());
    assert.ok(a.weight.abs().max().item() <= 0.1);
    assert.ok(a.weight.abs().max().item() > 0.09);
    assert.ok(Math.abs(a.weight.mean().item()) < 0.01);
  });

  it('loadStateDict copies values, rejects missing/unexpected keys and size mismatches', () => {
    const a = mlp();
    const b = mlp();
    b.loadStateDict(a.stateDict());
    assert.deepEqual(b.stateDict()['3.weight']!.toList(), a.stateDict()['3.weight']!.toList());
    const sd = { ...a.stateDict() };
    delete sd['0.bias'];
    delete sd['1.num_batches_tracked'];
    assert.throws(
      () => b.loadStateDict(sd),
      /loadStateDict: error\(s\) in loading state_dict for Sequential: missing key\(s\) in state_dict: "0.bias"/,
    );
    assert.throws(
      () => b.loadStateDict({ ...a.stateDict(), extra: mb.zeros([1]) }),
      /unexpected key\(s\) in state_dict: "extra"/,
    );
    assert.throws(
      () => b.loadStateDict({ ...a.stateDict(), '0.bias': mb.zeros([3]) }),
      /size mismatch for 0.bias: copying a param with shape \[3\], the shape in current model is \[16\]/,
    );
    b.loadStateDict(sd, { strict: false });
  });

  it('a module used twice (tied weights) lists its parameters once; an optimizer takes them', () => {
    const lin = new mb.Linear(3, 3);
    const s = new mb.Sequential(lin, new mb.ReLU(), lin);
    assert.equal(s.parameters().length, 2);
    assert.deepEqual(Object.keys(s.stateDict()), ['0.weight', '0.bias', '2.weight', '2.bias']); // as PyTorch
    const opt = new mb.SGD(s.parameters(), { lr: 0.1 });
    s.forward(mb.randn([2, 3]))
      .sum()
      .backward();
    opt.step();
  });

  it("module traversal as PyTorch's: children, modules, named modules, buffers, requiresGrad_, Sequential at/length/append", () => {
    const inner = new mb.Sequential(new mb.ReLU(), new mb.Linear(2, 2));
    const s = new mb.Sequential(new mb.Linear(2, 2), inner);
    // PyTorch: [n for n, _ in s.named_modules()] == ['', '0', '1', '1.0', '1.1']
    assert.deepEqual(
      s.namedModules().map(([n]) => n),
      ['', '0', '1', '1.0', '1.1'],
    );
    assert.equal(s.modules().length, 5);
    assert.deepEqual(s.children(), [s.at(0), inner]);
    assert.equal(s.at(-1), inner);
    assert.equal(s.length, 2);
    assert.throws(() => s.at(2), /Sequential: index 2 is out of range for 2 layers/);
    s.append(new mb.BatchNorm1d(2));
    assert.equal(s.length, 3);
    assert.deepEqual(Object.keys(s.stateDict()).slice(-5), [
      '2.weight',
      '2.bias',
      '2.running_mean',
      '2.running_var',
      '2.num_batches_tracked',
    ]);
    assert.equal(s.buffers().length, 3);
    assert.throws(
      () => s.append((() => 1) as unknown as mb.Module),
      /Sequential: expected a Module, got a function/,
    );
    s.requiresGrad_(false);
    assert.ok(s.parameters().every((p) => !p.requiresGrad));
    inner.requiresGrad_(true);
    assert.deepEqual(
      s.parameters().map((p) => p.requiresGrad),
      [false, false, true, true, false, false],
    );
  });

  it("GELU's tanh approximation matches PyTorch's (values and gradients); a non-leaf parameter is refused", () => {
    const x = mb.tensor([-3, -1, -0.5, 0, 0.5, 1, 3]).requiresGrad_();
    const y = new mb.GELU({ approximate: 'tanh' }).forward(x);
    y.sum().backward();
    // PyTorch 1.13 nn.GELU(approximate='tanh')
    assertClose(y, [-0.0036374, -0.158808, -0.154286, 0, 0.345714, 0.841192, 2.9963627], { atol: 2e-6 });
    assertClose(x.grad!, [-0.0115843, -0.0829641, 0.1326301, 0.5, 0.8673699, 1.0829641, 1.0115843], {
      atol: 2e-6,
    });
    assert.equal(String(new mb.GELU({ approximate: 'tanh' })), "GELU(approximate='tanh')");
    assert.throws(
      () => new mb.GELU({ approximate: 'fast' as 'tanh' }),
      /GELU: approximate must be 'none' or 'tanh'/,
    );
    class Holder extends mb.Module {
      constructor(t: mb.Tensor) {
        super();
        this.registerParameter('w', t);
      }
      forward(v: mb.Tensor): mb.Tensor {
        return v;
      }
    }
    assert.throws(
      () => new Holder(mb.ones([2]).requiresGrad_().mul(2)),
      /registerParameter: cannot make the non-leaf tensor 'w' a parameter/,
    );
  });

  it('loadStateDict without num_batches_tracked resets it to 0, as PyTorch', () => {
    const bn = new mb.BatchNorm1d(3);
    bn.forward(mb.randn([4, 3]));
    bn.forward(mb.randn([4, 3]));
    const { num_batches_tracked, ...sd } = bn.stateDict();
    assert.equal(num_batches_tracked!.item(), 2);
    bn.loadStateDict(sd);
    assert.equal(bn.stateDict().num_batches_tracked!.item(), 0);
  });

  it('Conv2d and MaxPool2d refuse options they do not have and non-integer geometry, naming the layer', () => {
    const bad = (fn: () => unknown, re: RegExp) => assert.throws(fn, re);
    bad(
      () => new mb.Conv2d(1, 1, 3, { paddingMode: 'reflect' } as object),
      /Conv2d: unknown option 'paddingMode' \(expected one of bias, generator, stride, padding, dilation, groups\)/,
    );
    bad(
      () => new mb.Conv2d(1, 1, 3, { stride: 1.5 }),
      /Conv2d: stride must be a positive integer or a pair of them, got 1.5/,
    );
    bad(
      () => new mb.Conv2d(1, 1, 3, { stride: 0 }),
      /Conv2d: stride must be a positive integer or a pair of them, got 0/,
    );
    bad(
      () => new mb.Conv2d(1, 1, 3, { padding: 0.5 }),
      /Conv2d: padding must be a non-negative integer or a pair of them, got 0.5/,
    );
    bad(
      () => new mb.Conv2d(1, 1, 3, { padding: 'full' as 'same' }),
      /Conv2d: padding must be a size, 'same' or 'valid', got 'full'/,
    );
    bad(
      () => new mb.MaxPool2d(2.5),
      /MaxPool2d: kernel_size must be a positive integer or a pair of them, got 2.5/,
    );
    bad(
      () => new mb.MaxPool2d(2, 1.5),
      /MaxPool2d: stride must be a positive integer or a pair of them, got 1.5/,
    );
    bad(
      () => new mb.MaxPool2d(0),
      /MaxPool2d: kernel_size must be a positive integer or a pair of them, got 0/,
    );
    // The functional forms check too.
    bad(
      () => mb.functional.maxPool2d(mb.randn([1, 1, 7, 7]), 2, 1.5),
      /maxPool2d: stride must be a positive integer or a pair of them, got 1.5/,
    );
    bad(
      () => mb.functional.conv2d(mb.randn([1, 1, 7, 7]), mb.randn([1, 1, 3, 3]), null, 1, 'full' as 'same'),
      /conv2d: padding must be a size, 'same' or 'valid', got 'full'/,
    );
  });

  it('Dropout: inverted, seeded, identity in eval, p=1 zeros', () => {
    const x = mb.ones([1000]);
    const d = new mb.Dropout(0.3, new mb.Generator(5));
    const y = d.forward(x);
    const kept = y.gt(0).float().mean().item();
    assert.ok(Math.abs(kept - 0.7) < 0.05, `kept ${kept}`);
    assertClose(y.max(), [1 / 0.7]);
    const y2 = new mb.Dropout(0.3, new mb.Generator(5)).forward(x);
    assert.deepEqual(y.toList(), y2.toList());
    d.eval();
    assert.equal(d.forward(x), x);
    assert.equal(new mb.Dropout(1).forward(x).sum().item(), 0);
    assert.throws(
      () => new mb.Dropout(1.5),
      /Dropout: dropout probability has to be between 0 and 1, but got 1.5/,
    );
  });

  it('train()/eval() reach every child; zeroGrad zeroes in place', () => {
    const m = mlp();
    m.eval();
    assert.equal((m.layers[1] as mb.BatchNorm1d).training, false);
    m.train();
    const loss = m.forward(mb.randn([4, 12])).sum();
    loss.backward();
    const g = m.parameters()[0]!.grad!;
    m.zeroGrad();
    assert.equal(m.parameters()[0]!.grad, g);
    assert.equal(g.abs().sum().item(), 0);
  });

  it('Flatten, activations and Conv2d compose into a small CNN', () => {
    const cnn = new mb.Sequential(
      new mb.Conv2d(1, 4, 3, { padding: 1 }),
      new mb.ReLU(),
      new mb.MaxPool2d(2),
      new mb.Flatten(),
      new mb.Linear(4 * 14 * 14, 10),
      new mb.LogSoftmax(1),
    );
    const y = cnn.forward(mb.randn([2, 1, 28, 28]));
    assert.deepEqual(y.shape, [2, 10]);
    assertClose(y.exp().sum(1), [1, 1]);
    assert.match(
      String(cnn),
      /\(0\): Conv2d\(1, 4, kernel_size=\(3, 3\), stride=\(1, 1\), padding=\(1, 1\)\)/,
    );
    for (const M of [mb.GELU, mb.Tanh, mb.Sigmoid])
      assert.deepEqual(new M().forward(mb.zeros([2])).shape, [2]);
    assertClose(new mb.Softmax(0).forward(mb.zeros([4])), [0.25, 0.25, 0.25, 0.25]);
  });

  it('attributes register as in PyTorch: a Module child, a leaf tensor that requires grad a parameter, in order', () => {
    class Net extends mb.Module {
      fc1 = new mb.Linear(4, 8);
      drop = new mb.Dropout(0.5);
      scale = mb.ones([1], { requiresGrad: true });
      notAParameter = mb.ones([2]); // no gradient: not registered (PyTorch: a plain tensor attribute)
      fc2: mb.Linear;
      constructor() {
        super();
        this.fc2 = new mb.Linear(8, 2);
      }
      forward(x: mb.Tensor) {
        return this.fc2.forward(this.drop.forward(this.fc1.forward(x).relu())).mul(this.scale);
      }
    }
    const net = new Net();
    assert.deepEqual(Object.keys(net.stateDict()), [
      'scale',
      'fc1.weight',
      'fc1.bias',
      'fc2.weight',
      'fc2.bias',
    ]);
    assert.equal(net.parameters().length, 5);
    net.eval();
    assert.equal(net.drop.training, false, 'eval reaches an attribute child');
    assert.match(
      String(net),
      /^Net\(\n {2}\(fc1\): Linear\(in_features=4, out_features=8, bias=True\)\n {2}\(drop\): Dropout/,
    );
    // Registered children under PyTorch's names are not registered again under their property names.
    const layer = new mb.TransformerEncoderLayer(4, 2, 8, 0);
    assert.equal(Object.keys(layer.stateDict()).filter((k) => k.startsWith('selfAttn')).length, 0);
    assert.equal(new Set(layer.parameters()).size, layer.parameters().length);
    // An attribute set after construction counts; a model trains end to end.
    const late = new Net();
    (late as unknown as { extra: mb.Linear }).extra = new mb.Linear(1, 1);
    assert.ok(Object.keys(late.stateDict()).includes('extra.weight'));
    const opt = new mb.SGD(net.parameters(), { lr: 0.1 });
    net.train();
    const out = net.forward(mb.randn([3, 4]));
    const loss = out.mul(out).mean();
    loss.backward();
    opt.step();
    assert.ok(net.scale.grad && net.fc1.weight.grad);
  });

  it("Embedding: rows at int32 indices of any shape, gradients added per use, padding_idx (PyTorch 1.13's values)", () => {
    const w = mb.tensor(
      [
        [0.1, 0.2],
        [0.3, -0.4],
        [0.5, 0.6],
        [-0.7, 0.8],
      ],
      { requiresGrad: true },
    );
    const idx = mb.tensor(Int32Array.from([1, 2, 1, 0, 3, 1]), { shape: [2, 3] });
    const g = mb.arange(0, 12, 1, { dtype: 'float32' }).reshape([2, 3, 2]).div(10);
    const out = mb.functional.embedding(idx, w, 3);
    assertClose(
      out,
      [
        [
          [0.3, -0.4],
          [0.5, 0.6],
          [0.3, -0.4],
        ],
        [
          [0.1, 0.2],
          [-0.7, 0.8],
          [0.3, -0.4],
        ],
      ].flat(2),
    );
    out.backward(g);
    // torch.nn.functional.embedding(idx, w, padding_idx=3).backward(g): row 1 gets three uses, row 3 nothing.
    assertClose(
      w.grad!,
      [
        [0.6, 0.7],
        [1.4, 1.7],
        [0.2, 0.3],
        [0, 0],
      ].flat(),
    );
    w.grad = null;
    mb.functional.embedding(idx, w).backward(g);
    assertClose(
      w.grad!,
      [
        [0.6, 0.7],
        [1.4, 1.7],
        [0.2, 0.3],
        [0.8, 0.9],
      ].flat(),
    );
    const e = new mb.Embedding(5, 3, { paddingIdx: -1, generator: new mb.Generator(0) });
    assert.equal(String(e), 'Embedding(5, 3, padding_idx=4)');
    assert.deepEqual(e.weight.narrow(0, 4, 1).toList(), [[0, 0, 0]]);
    assert.deepEqual(Object.keys(e.stateDict()), ['weight']);
    assert.deepEqual(e.forward(mb.tensor(Int32Array.from([4, 0]))).shape, [2, 3]);
    // The padding row gets no gradient, even an Inf or NaN one (torch 1.13: zeros; a product with 0 gave NaN).
    e.forward(mb.tensor(Int32Array.from([4, 1]))).backward(
      mb.tensor([
        [Infinity, Number.NaN, 1],
        [1, 2, 3],
      ]),
    );
    assert.deepEqual(e.weight.grad!.narrow(0, 4, 1).toList(), [[0, 0, 0]]);
    assert.deepEqual(e.weight.grad!.narrow(0, 1, 1).toList(), [[1, 2, 3]]);
    assert.throws(
      () => e.forward(mb.tensor([1, 2])),
      /embedding: indices must be an int32 tensor \(got float32\)/,
    );
    assert.throws(
      () => e.forward(mb.tensor(Int32Array.from([5]))),
      /embedding: index 5 is out of range for 5 embeddings/,
    );
    assert.throws(
      () => new mb.Embedding(5, 3, { paddingIdx: 5 }),
      /Embedding: padding_idx must be within num_embeddings/,
    );
    assert.throws(() => new mb.Embedding(5, 3, { padding_idx: 0 } as never), /did you mean 'paddingIdx'/);
  });

  it('ModuleList registers by index and iterates; Identity; LeakyReLU values and gradients as PyTorch 1.13', () => {
    class Deep extends mb.Module {
      blocks = new mb.ModuleList([new mb.Linear(2, 2), new mb.Identity()]);
      forward(x: mb.Tensor) {
        let y = x;
        for (const b of this.blocks) y = b.forward(y);
        return y;
      }
    }
    const d = new Deep();
    assert.deepEqual(Object.keys(d.stateDict()), ['blocks.0.weight', 'blocks.0.bias']);
    assert.equal(
      String(d.blocks),
      'ModuleList(\n  (0): Linear(in_features=2, out_features=2, bias=True)\n  (1): Identity()\n)',
    );
    assert.equal(d.blocks.length, 2);
    assert.ok(d.blocks.at(-1) instanceof mb.Identity);
    assert.deepEqual(d.forward(mb.ones([3, 2])).shape, [3, 2]);
    assert.throws(() => d.blocks.forward(), /ModuleList: a ModuleList has no forward/);
    assert.throws(() => d.blocks.append({} as never), /ModuleList: expected a Module, got object/);
    // torch.nn.functional.leaky_relu(x, 0.1) and its gradient (the slope at 0 and -0).
    const x = mb.tensor([-2, -0, 0, 0.5, 3], { requiresGrad: true });
    const y = new mb.LeakyReLU(0.1).forward(x);
    assertClose(y, [-0.2, -0, 0, 0.5, 3]);
    assert.ok(Object.is((y.toList() as number[])[1], -0));
    y.sum().backward();
    assertClose(x.grad!, [0.1, 0.1, 0.1, 1, 1]);
    assert.equal(String(new mb.LeakyReLU()), 'LeakyReLU(negative_slope=0.01)');
  });
  it("functional embedding counts a negative paddingIdx from the end, as PyTorch's; conv2d checks its bias", () => {
    const w = mb.randn([4, 2], { requiresGrad: true });
    const idx = mb.tensor(Int32Array.from([3, 3, 0]));
    mb.functional.embedding(idx, w, -1).sum().backward();
    // F.embedding(idx, w, padding_idx=-1): row 3 (the padding row) gets no gradient, row 0 gets 1s.
    assert.deepEqual([...w.grad!.toTypedArray()], [1, 1, 0, 0, 0, 0, 0, 0]);
    assert.throws(
      () => mb.functional.embedding(idx, w, 4),
      /embedding: paddingIdx must be within num_embeddings/,
    );
    assert.throws(
      () => mb.functional.conv2d(mb.zeros([1, 1, 3, 3]), mb.zeros([2, 1, 2, 2]), mb.zeros([1, 2])),
      /conv2d: bias must be 1-D with 2 elements \(got \[1,2\]\)/,
    );
  });
  it('a module or tensor used twice is listed once, and a reassigned parameter ties weights, as PyTorch', () => {
    const lin = new mb.Linear(2, 2);
    const seq = new mb.Sequential(lin, new mb.ReLU(), lin);
    // torch: named_parameters() gives 0.weight, 0.bias; named_children() 0, 1; state_dict() keeps every name.
    assert.deepEqual(
      seq.namedParameters().map(([k]) => k),
      ['0.weight', '0.bias'],
    );
    assert.deepEqual(
      seq.namedChildren().map(([k]) => k),
      ['0', '1'],
    );
    assert.equal(seq.children().length, 2);
    assert.deepEqual(Object.keys(seq.stateDict()), ['0.weight', '0.bias', '2.weight', '2.bias']);
    class Tied extends mb.Module {
      emb = new mb.Linear(3, 2, { bias: false });
      dec = new mb.Linear(3, 2, { bias: false });
      forward(x: mb.Tensor) {
        return this.dec.forward(x);
      }
    }
    const m = new Tied();
    (m.dec as { weight: mb.Tensor }).weight = m.emb.weight; // weight tying, as `dec.weight = emb.weight`
    assert.equal(m.stateDict()['dec.weight'], m.emb.weight, 'the state dict holds the tied tensor');
    assert.equal(m.parameters().length, 1);
    m.forward(mb.ones([1, 3]))
      .sum()
      .backward();
    assert.ok(m.emb.weight.grad, 'the gradient reaches the shared tensor');
  });
});
