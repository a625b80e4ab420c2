import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkOptions, ValueError } from '../src/errors.js';
import * as mb from '../src/index.js';

// Every public call that takes an options object refuses a key it does not know: PyTorch's snake_case
// (`weight_decay`) would otherwise be ignored without a word, and the run would train without it.

const lin = () => new mb.Linear(3, 2);
const opt = () => new mb.SGD(lin().parameters(), { lr: 0.1 });
const x = mb.randn([4, 3]);
const labels = mb.tensor(Int32Array.from([0, 1, 0, 1]));
const ds = () => new mb.TensorDataset(mb.ones([4, 2]), mb.tensor(Int32Array.from([0, 1, 0, 1])));
const loader = () => new mb.DataLoader(ds(), { batchSize: 2 });

/**
 * [op named in the error, a call with a bad key, the camelCase key it should suggest (or null), the same call
 * with every option spelt right, which must not throw]
 */
type Case = [string, (o: object) => unknown, string | null, object];
const cases: Case[] = [
  [
    'SGD',
    (o) => new mb.SGD(lin().parameters(), o),
    'weightDecay',
    { lr: 0.1, momentum: 0.9, dampening: 0, weightDecay: 1e-4, nesterov: false, maximize: false },
  ],
  [
    'Adam',
    (o) => new mb.Adam(lin().parameters(), o),
    'weightDecay',
    {
      lr: 0.1,
      betas: [0.9, 0.99],
      eps: 1e-8,
      weightDecay: 0,
      amsgrad: true,
      maximize: false,
      decoupledWeightDecay: false,
    },
  ],
  [
    'AdamW',
    (o) => new mb.AdamW(lin().parameters(), o),
    'weightDecay',
    { lr: 0.1, betas: [0.9, 0.99], eps: 1e-8, weightDecay: 0.1, amsgrad: false, maximize: false },
  ],
  [
    'SGD',
    (o) => opt().addParamGroup({ params: lin().parameters(), ...o }),
    'weightDecay',
    { lr: 0.2, momentum: 0.5 },
  ],
  ['StepLR', (o) => new mb.StepLR(opt(), { stepSize: 2, ...o }), null, { gamma: 0.5 }],
  [
    'CosineAnnealingLR',
    (o) => new mb.CosineAnnealingLR(opt(), { tMax: 5, ...o }),
    'etaMin',
    { etaMin: 0.01 },
  ],
  [
    'LinearLR',
    (o) => new mb.LinearLR(opt(), o),
    'startFactor',
    { startFactor: 0.5, endFactor: 1, totalIters: 3 },
  ],
  ['warmupCosine', (o) => mb.warmupCosine(0.1, 2, 10, o), 'startFactor', { startFactor: 0.1, etaMin: 0 }],
  ['Linear', (o) => new mb.Linear(3, 2, o), null, { bias: false, generator: new mb.Generator(1) }],
  [
    'BatchNorm1d',
    (o) => new mb.BatchNorm1d(4, o),
    'trackRunningStats',
    { eps: 1e-3, momentum: null, affine: false, trackRunningStats: false },
  ],
  ['BatchNorm2d', (o) => new mb.BatchNorm2d(4, o), 'trackRunningStats', { eps: 1e-3 }],
  ['Conv2d', (o) => new mb.Conv2d(1, 2, 3, o), null, { stride: 2, padding: 1, bias: true }],
  ['GELU', (o) => new mb.GELU(o), null, { approximate: 'tanh' }],
  [
    'MultiheadAttention',
    (o) => new mb.MultiheadAttention(4, 2, o),
    'batchFirst',
    { bias: true, dropout: 0, batchFirst: false },
  ],
  [
    'MultiheadAttention',
    (o) => {
      const q = mb.randn([1, 3, 4]);
      return new mb.MultiheadAttention(4, 2).forward(q, q, q, o);
    },
    'keyPaddingMask',
    { isCausal: true },
  ],
  [
    'TransformerEncoderLayer',
    (o) => new mb.TransformerEncoderLayer(4, 2, 8, 0, o),
    'normFirst',
    { activation: 'gelu', layerNormEps: 1e-6, batchFirst: true, normFirst: true },
  ],
  [
    'TransformerEncoderLayer',
    (o) => new mb.TransformerEncoderLayer(4, 2, 8, 0).forward(mb.randn([1, 3, 4]), o),
    'srcKeyPaddingMask',
    { isCausal: true },
  ],
  [
    'crossEntropy',
    (o) => mb.crossEntropy(x.matmul(mb.randn([3, 2])), labels, o),
    'labelSmoothing',
    { labelSmoothing: 0.1, reduction: 'sum', ignoreIndex: -1 },
  ],
  [
    'nllLoss',
    (o) => mb.nllLoss(mb.logSoftmax(mb.randn([4, 2]), 1), labels, o),
    'ignoreIndex',
    { reduction: 'none' },
  ],
  [
    'batchNorm',
    (o) => mb.functional.batchNorm(mb.randn([4, 3]), { training: true, ...o }),
    'runningMean',
    { eps: 1e-3 },
  ],
  [
    'scaledDotProductAttention',
    (o) => mb.scaledDotProductAttention(mb.randn([1, 3, 4]), mb.randn([1, 3, 4]), mb.randn([1, 3, 4]), o),
    'isCausal',
    { isCausal: true, scale: 0.5, impl: 'naive' },
  ],
  [
    'DataLoader',
    (o) => new mb.DataLoader(ds(), o),
    'batchSize',
    { batchSize: 2, shuffle: true, dropLast: true, seed: 3 },
  ],
  [
    'RandomSampler',
    (o) => new mb.RandomSampler(4, o),
    'numSamples',
    { replacement: true, numSamples: 8, seed: 1 },
  ],
  ['SubsetRandomSampler', (o) => new mb.SubsetRandomSampler([1, 2], o), null, { seed: 1 }],
  [
    'WeightedRandomSampler',
    (o) => new mb.WeightedRandomSampler([1, 3], 2, o),
    null,
    { replacement: false, seed: 1 },
  ],
  [
    'BucketBatchSampler',
    (o) => new mb.BucketBatchSampler([3, 1, 2, 4], 2, o),
    'dropLast',
    { shuffle: false, dropLast: true, bucketSize: 4 },
  ],
  [
    'GradScaler',
    (o) => new mb.GradScaler(o),
    'initScale',
    { initScale: 2, growthFactor: 2, backoffFactor: 0.5, growthInterval: 3, enabled: true },
  ],
  [
    'tensor',
    (o) => mb.tensor([1, 2], o),
    'requiresGrad',
    { requiresGrad: true, dtype: 'float32', shape: [2, 1] },
  ],
  ['full', (o) => mb.zeros([2], o), 'requiresGrad', { requiresGrad: true }],
  ['arange', (o) => mb.arange(0, 3, 1, o), 'requiresGrad', { dtype: 'float32', requiresGrad: true }],
  ['random', (o) => mb.randn([2], o), 'requiresGrad', { generator: new mb.Generator(2), requiresGrad: true }],
  ['randperm', (o) => mb.randperm(3, o), null, { generator: new mb.Generator(2) }],
  [
    'backward',
    (o) => mb.randn([2], { requiresGrad: true }).sum().backward(undefined, o),
    'retainGraph',
    { retainGraph: true },
  ],
  ['loadStateDict', (o) => lin().loadStateDict(lin().stateDict(), o), null, { strict: false }],
];

/** PyTorch's spelling of a camelCase key (`weightDecay` -> `weight_decay`), or a made-up key when none. */
const snake = (k: string | null) => (k ? k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`) : 'colour');

describe('options objects', () => {
  for (const [op, call, suggest, good] of cases) {
    const key = snake(suggest);
    it(`${op}: '${key}' is refused${suggest ? ` with '${suggest}' suggested` : ''}; every option it takes passes`, () => {
      assert.throws(
        () => call({ [key]: 1 }),
        (e: Error) =>
          e instanceof ValueError &&
          e.message.startsWith(`${op}: unknown option '${key}' (expected one of `) &&
          (suggest
            ? e.message.endsWith(`; did you mean '${suggest}'?)`)
            : !e.message.includes('did you mean')),
      );
      call(good);
    });
  }

  it('fit refuses unknown options, an unknown callback hook and unknown earlyStopping keys; callbacks may keep state', async () => {
    const model = new mb.Linear(2, 2);
    const base = {
      train: loader(),
      optimizer: new mb.SGD(model.parameters(), { lr: 0.1 }),
      epochs: 1,
      loss: () => model.forward(mb.ones([1, 2])).sum(),
    };
    await assert.rejects(
      () => mb.fit(model, { ...base, accumulate_steps: 2 } as never),
      /fit: unknown option 'accumulate_steps' .*did you mean 'accumulateSteps'\?\)$/,
    );
    await assert.rejects(
      () => mb.fit(model, { ...base, callbacks: { onEpochStart: () => {} } } as never),
      /fit: unknown callback 'onEpochStart' \(expected onBatchEnd or onEpochEnd; onEpochStart is an option of fit's own\)/,
    );
    await assert.rejects(
      () => mb.fit(model, { ...base, callbacks: { on_epoch_end: () => {} } } as never),
      /fit: unknown callback 'on_epoch_end'/,
    );
    await assert.rejects(
      () => mb.fit(model, { ...base, earlyStopping: { patience: 1, min_delta: 0 } } as never),
      /fit: unknown option 'min_delta'.*did you mean 'minDelta'/,
    );
    const seen: number[] = [];
    await mb.fit(model, {
      ...base,
      callbacks: { seen, onEpochEnd: (log: mb.EpochLog) => void seen.push(log.epoch) } as never,
    });
    assert.deepEqual(seen, [1]);
  });

  it('refuses options that are not an object, and misplaced positional arguments', () => {
    assert.throws(
      () => checkOptions('op', 5, ['a']),
      /^ValueError: op: options must be an object \(got number 5\)$/,
    );
    assert.throws(() => checkOptions('op', null, ['a']), /op: options must be an object \(got null\)/);
    assert.throws(() => checkOptions('op', [1], ['a']), /op: options must be an object \(got an array\)/);
    assert.throws(
      () => new mb.Linear(3, 2, false as never),
      /Linear: options must be an object \(got boolean false\)/,
    );
    assert.throws(
      () => new mb.Dropout(0.5, { inplace: true } as never),
      /Dropout: generator must be a Generator \(got object\)/,
    );
    assert.throws(
      () => new mb.LayerNorm(4, { eps: 1e-3 } as never),
      /LayerNorm: expected LayerNorm\(normalizedShape, eps: number, elementwiseAffine: boolean\)/,
    );
    assert.throws(
      () =>
        mb
          .randn([2], { requiresGrad: true })
          .sum()
          .backward({ retainGraph: true } as never),
      /backward: grad must be a Tensor \(got object\); options go second/,
    );
    assert.throws(
      () => new mb.VariableBatchSampler(new mb.SequentialSampler(4), [2], 1 as never),
      /VariableBatchSampler: drop_last should be a boolean value, but got drop_last=1/,
    );
  });
});

describe('bad arguments get typed errors naming the op', () => {
  it('dtypes outside float32, int32 and bool are refused (they were stored in bytes: 300 came back as 44)', () => {
    assert.throws(
      () => mb.tensor([1, 300], { dtype: 'int64' as never }),
      /^ValueError: tensor: unknown dtype 'int64' \(expected float32, int32 or bool: integers are int32 here\)$/,
    );
    assert.throws(() => mb.tensor([1.5]).to('float64' as never), /to: unknown dtype 'float64'/);
    assert.throws(() => mb.full([2], 1, { dtype: 'long' as never }), /full: unknown dtype 'long'/);
    assert.throws(() => mb.arange(0, 3, 1, { dtype: 'double' as never }), /arange: unknown dtype 'double'/);
    assert.throws(() => mb.randn([2], { dtype: 'float16' as never }), /random: unknown dtype 'float16'/);
    assert.throws(
      () => mb.tensor(new Float64Array([1.5]) as never),
      /tensor: a Float64Array is not tensor storage/,
    );
  });

  it('numbers become bools as in PyTorch (non-zero, NaN included, is true); nested data must be numbers', () => {
    assert.deepEqual(mb.tensor([0, 0.5, 256, -1, Number.NaN], { dtype: 'bool' }).toList(), [
      false,
      true,
      true,
      true,
      true,
    ]);
    assert.deepEqual(mb.full([2], 256, { dtype: 'bool' }).toList(), [true, true]);
    assert.throws(
      () => mb.tensor([['1.5', 'abc']] as never),
      /tensor: expected numbers or booleans \(got string "1\.5" at index 0\)/,
    );
    assert.throws(
      () => mb.tensor(null as never),
      /tensor: expected numbers or booleans \(got null at index 0\)/,
    );
  });

  it('operands are tensors, numbers or booleans (undefined, arrays and strings were coerced to NaN or numbers)', () => {
    const x = mb.tensor([-2, 0.5, 3]);
    assert.throws(
      () => x.add(undefined as never),
      /^ValueError: add: operands must be tensors, numbers or booleans \(got undefined\)$/,
    );
    assert.throws(
      () => x.add([1, 2, 3] as never),
      /add: operands must be tensors, numbers or booleans \(got an array\) \(make it a tensor/,
    );
    assert.throws(() => x.mul('2' as never), /mul: operands must be .* \(got string\)/);
    assert.throws(() => mb.gt(x, null as never), /gt: operands must be .* \(got null\)/);
    assert.throws(() => mb.where(mb.gt(x, 0), x, {} as never), /where: operands must be .* \(got object\)/);
  });

  it('reductions: keepDim is a boolean, dims a number or a list; max(a, b) is elementwise; var takes unbiased', () => {
    const x = mb.tensor([
      [1, 2, 3, 4],
      [2, 4, 6, 8],
    ]);
    assert.throws(
      () => x.mean(1, { keepDim: false } as never),
      /mean: keepDim must be a boolean \(got object\), e\.g\. mean\(1, true\)/,
    );
    assert.throws(() => x.sum(1, 1 as never), /sum: keepDim must be a boolean \(got number\)/);
    assert.throws(() => x.argmax(1, 'yes' as never), /argmax: keepDim must be a boolean/);
    assert.throws(
      () => x.sum({ dim: 1 } as never),
      /sum: dims must be a number or an array of numbers \(got object\)/,
    );
    assert.deepEqual(x.max(mb.full([2, 4], 3)).toList(), [
      [3, 3, 3, 4],
      [3, 4, 6, 8],
    ]);
    assert.deepEqual(mb.min(x, mb.full([4], 3)).toList(), [
      [1, 2, 3, 3],
      [2, 3, 3, 3],
    ]);
    // torch.tensor([[1,2,3,4],[2,4,6,8.]]).var(1, unbiased=False) = [1.25, 5.0]; std(1, keepdim=True) is (2, 1).
    assert.deepEqual(x.var(1, { unbiased: false }).toList(), [1.25, 5]);
    assert.deepEqual(x.var(1, { correction: 0 }).toList(), [1.25, 5]);
    assert.deepEqual(x.std(1, { keepDim: true }).shape, [2, 1]);
    assert.throws(
      () => x.var(1, { unbiased: false, correction: 0 }),
      /var: give correction or unbiased, not both/,
    );
    assert.throws(() => x.var(1, false as never), /var: options must be an object \(got boolean false\)/);
    assert.throws(() => x.std(1, { keepdim: true } as never), /std: unknown option 'keepdim'/);
  });

  it('losses, linear, save and evaluate check their options and arguments', async () => {
    const a = mb.randn([4, 3]);
    const t = mb.rand([4, 3]);
    assert.throws(
      () => mb.binaryCrossEntropyWithLogits(a, t, { pos_weight: mb.ones([3]) } as never),
      /binaryCrossEntropyWithLogits: unknown option 'pos_weight' .*did you mean 'posWeight'\?\)$/,
    );
    assert.throws(
      () => mb.mseLoss(a, t, { reduce: 'sum' } as never),
      /mseLoss: unknown option 'reduce' \(expected one of reduction\)/,
    );
    const lp = mb.logSoftmax(mb.randn([4, 2]), 1);
    assert.throws(
      () => mb.nllLoss(lp, labels, { labelSmoothing: 0.5 }),
      /nllLoss: unknown option 'labelSmoothing' \(expected one of weight, ignoreIndex, reduction\)/,
    );
    assert.throws(
      () => mb.functional.linear(x, mb.ones([2, 3]), null, { activation: 'relu' } as never),
      /linear: unknown option 'activation'/,
    );
    const opt = new mb.SGD(lin().parameters(), { lr: 0.1, momentum: 0.9 });
    await assert.rejects(
      () => mb.save(opt.stateDict() as never, '/tmp/never-written.safetensors'),
      /save: 'state' is a nested object, not a Tensor: .*saveCheckpoint/,
    );
    await assert.rejects(
      () => mb.save(lin().stateDict(), '/tmp/never-written.safetensors', { meta: {} } as never),
      /save: unknown option 'meta'/,
    );
    await assert.rejects(
      () => mb.evaluate(lin(), { data: [] } as never),
      /evaluate: data must be a DataLoader, an iterable of \[x, y\] batches or a function of the epoch returning one \(got object\)/,
    );
    await assert.rejects(
      () => mb.evaluate(lin(), loader(), { lossFn: () => x } as never),
      /evaluate: unknown option 'lossFn'/,
    );
  });
});

describe('PyTorch forms a PyTorch user reaches for', () => {
  it('ones(5), clamp({ min, max }), max(a, b), x.T, dim(), numel(), narrow; mistakes are named', () => {
    assert.deepEqual(mb.ones(5 as never).shape, [5]);
    assert.throws(
      () => mb.zeros(2 as never, 3 as never),
      /full: a shape is one array: zeros\(\[2, 3, \.\.\.\]\), not zeros\(2, 3, \.\.\.\)/,
    );
    const x = mb.tensor([-2, 0.5, 3]);
    assert.deepEqual(x.clamp({ min: 0 }).toList(), [0, 0.5, 3]);
    assert.deepEqual(mb.clamp(x, { min: -1, max: 1 }).toList(), [-1, 0.5, 1]);
    assert.throws(() => x.clamp({ low: 0 } as never), /clamp: unknown option 'low'/);
    assert.throws(() => x.clamp('0' as never), /clamp: min must be a number \(got string\)/);
    const m = mb.arange(0, 6, 1, { dtype: 'float32' }).reshape([2, 3]);
    assert.deepEqual(m.T.toList(), [
      [0, 3],
      [1, 4],
      [2, 5],
    ]);
    assert.deepEqual(mb.ones([2, 3, 4]).T.shape, [4, 3, 2]);
    assert.equal(m.dim(), 2);
    assert.equal(m.numel(), 6);
    assert.deepEqual(mb.narrow(m, 1, 1, 2).toList(), [
      [1, 2],
      [4, 5],
    ]);
    assert.throws(
      () => mb.cat(x as never, x as never),
      /cat: expected an array of tensors \(got a Tensor\): cat\(\[a, b\], dim\)/,
    );
    assert.throws(
      () => mb.stack([x, [1]] as never),
      /stack: expected an array of tensors \(got an array with a non-Tensor\)/,
    );
    assert.throws(() => mb.neg(mb.tensor([true])), /neg: negation of a bool tensor is not supported/);
    assert.throws(
      () => lin().forward([[1, 2, 3]] as never),
      /linear: input must be a Tensor \(got an array\)/,
    );
    assert.throws(() => mb.matmul([[1]] as never, x), /matmul: expected a Tensor \(got an array\)/);
  });

  it('optimizers take any iterable of tensors and refuse a module; clipping takes one tensor; zeroGrad(true)', () => {
    const m = lin();
    const opt = new mb.SGD(new Set(m.parameters()), { lr: 0.5 });
    assert.equal(opt.paramGroups[0]!.params.length, 2);
    assert.throws(
      () => new mb.SGD(m as never),
      /SGD: params must be an iterable of Tensors or of parameter groups \(got object\): pass model\.parameters\(\)/,
    );
    const w = mb.tensor([3, 4], { requiresGrad: true });
    w.mul(w).sum().backward(); // grad [6, 8], norm 10
    assert.equal(mb.clipGradNorm(w, 5), 10);
    // PyTorch: the gradient times maxNorm / (norm + 1e-6).
    const g = w.grad!.toList() as number[];
    assert.ok(Math.abs(g[0]! - 3) < 1e-6 && Math.abs(g[1]! - 4) < 1e-6, String(g));
    assert.throws(
      () => mb.clipGradNorm(5 as never, 1),
      /clipGradNorm: expected tensors or an iterable of them \(got number\)/,
    );
    new mb.SGD([w], { lr: 0.1 }).zeroGrad(true);
    assert.equal(w.grad, null, 'setToNone drops the gradient');
    w.mul(2).sum().backward();
    assert.deepEqual(w.grad!.toList(), [2, 2]);
    m.forward(x).sum().backward();
    m.zeroGrad(true);
    assert.equal(m.weight.grad, null);
  });

  it('datasets: extends Dataset works, a Tensor or a non-Tensor field is named', () => {
    class Squares extends mb.Dataset<[mb.Tensor, mb.Tensor]> {
      readonly length = 4;
      getItem(i: number): [mb.Tensor, mb.Tensor] {
        return [mb.tensor([i]), mb.tensor(Int32Array.from([i * i]))];
      }
    }
    const batches = [...new mb.DataLoader(new Squares(), { batchSize: 2 })] as mb.Tensor[][];
    assert.deepEqual(batches[1]![1]!.toList(), [[4], [9]]);
    assert.throws(
      () => new mb.DataLoader(x as never),
      /DataLoader: the dataset needs getItem\(i\) and length, or to be iterable \(got a Tensor \(wrap it: new TensorDataset\(x, y\)\)\)/,
    );
    assert.throws(
      () => new mb.TensorDataset(mb.ones([4, 2]), [1, 2, 3, 4] as never),
      /TensorDataset: argument 1 is an array, not a Tensor/,
    );
  });

  it('noGrad: an async callback records nothing until it settles; a non-function is refused', async () => {
    const m = lin();
    async function* batches() {
      yield mb.ones([1, 3]);
      await new Promise((r) => setTimeout(r, 1));
      yield mb.ones([1, 3]);
    }
    const flags: boolean[] = [];
    await mb.noGrad(async () => {
      for await (const b of batches()) flags.push(m.forward(b).requiresGrad);
    });
    assert.deepEqual(flags, [false, false], 'after the first await too');
    assert.equal(m.forward(mb.ones([1, 3])).requiresGrad, true, 'recording is back once it settled');
    await assert.rejects(() => mb.noGrad(async () => Promise.reject(new Error('boom'))), /boom/);
    assert.equal(m.forward(mb.ones([1, 3])).requiresGrad, true, 'and after a rejection');
    assert.throws(() => mb.noGrad(5 as never), /noGrad: expected a function \(got number\)/);
  });
});
