import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';
import * as mb from '../../src/index.js';
import { loadCheckpoint, saveCheckpoint } from '../../src/train/checkpoint.js';
import { fit } from '../../src/train/fit.js';
import { assertClose, forEachBackend } from '../helpers.js';

const data = (n: number, seed = 0) => {
  const g = new mb.Generator(seed);
  const x = mb.randn([n, 6], { generator: g });
  // A learnable rule: the class is the argmax of the first three features.
  const y = x.slice(1, 0, 3).argmax(1);
  return { x, y };
};
const model = (seed = 1) =>
  new mb.Sequential(
    new mb.Linear(6, 16, { generator: new mb.Generator(seed) }),
    new mb.ReLU(),
    new mb.Linear(16, 3, { generator: new mb.Generator(seed + 1) }),
  );
const batches = (x: mb.Tensor, y: mb.Tensor, B: number): [mb.Tensor, mb.Tensor][] =>
  Array.from({ length: Math.ceil(x.shape[0]! / B) }, (_, i) => [
    x.slice(0, i * B, (i + 1) * B),
    y.slice(0, i * B, (i + 1) * B),
  ]);

forEachBackend(() => {
  it('gradient accumulation over k micro-batches gives the same update as one batch k times larger', async () => {
    const { x, y } = data(48);
    const a = model();
    const b = model();
    const optA = new mb.SGD(a.parameters(), { lr: 0.1, momentum: 0.9 });
    const optB = new mb.SGD(b.parameters(), { lr: 0.1, momentum: 0.9 });
    const sched = (s: number) => 0.1 / (1 + s);
    const ra = await fit(a, {
      train: batches(x, y, 4),
      optimizer: optA,
      epochs: 2,
      accumulateSteps: 4,
      schedule: sched,
    });
    const rb = await fit(b, { train: batches(x, y, 16), optimizer: optB, epochs: 2, schedule: sched });
    assert.equal(ra.steps, 6, 'schedule steps per optimizer update, not per micro-batch');
    assert.equal(rb.steps, 6);
    const sa = a.stateDict();
    const sb = b.stateDict();
    for (const k of Object.keys(sa)) assertClose(sa[k]!, sb[k]!, { rtol: 1e-5, atol: 1e-6, label: k });
    assert.equal(optA.paramGroups[0]!.lr, sched(5));
  });

  it('a run resumed from a checkpoint ends exactly where an uninterrupted run ends', async () => {
    const { x, y } = data(40);
    const perEpoch = (epoch: number) => {
      const perm = new mb.Generator(100 + epoch).permutation(40);
      return batches(mb.indexSelect(x, 0, perm), mb.indexSelect(y, 0, perm), 8);
    };
    const straight = model();
    const optS = new mb.AdamW(straight.parameters(), { lr: 0.01 });
    const full = await fit(straight, { train: perEpoch, optimizer: optS, epochs: 4 });

    const dir = mkdtempSync(join(tmpdir(), 'mb-fit-'));
    const first = model();
    const opt1 = new mb.AdamW(first.parameters(), { lr: 0.01 });
    const part = await fit(first, { train: perEpoch, optimizer: opt1, epochs: 2 });
    await saveCheckpoint(join(dir, 'ck.safetensors'), {
      model: first,
      optimizer: opt1,
      epoch: 2,
      step: part.steps,
      history: part.history,
    });

    const resumed = model(7); // different init: everything must come from the checkpoint
    const opt2 = new mb.AdamW(resumed.parameters(), { lr: 0.5 });
    const ck = await loadCheckpoint(join(dir, 'ck.safetensors'), resumed, opt2);
    assert.equal(ck.epoch, 2);
    const rest = await fit(resumed, {
      train: perEpoch,
      optimizer: opt2,
      epochs: 4,
      startEpoch: ck.epoch,
      startStep: ck.step,
    });
    assert.deepEqual(
      rest.history.map((e) => e.trainLoss),
      full.history.slice(2).map((e) => e.trainLoss),
    );
    const a = straight.stateDict();
    const b = resumed.stateDict();
    for (const k of Object.keys(a)) assert.deepEqual(b[k]!.toList(), a[k]!.toList(), k);
    // The checkpoint is one safetensors file whose model keys PyTorch loads as they are.
    const header = readFileSync(join(dir, 'ck.safetensors')).subarray(8, 2000).toString();
    assert.match(header, /"0.weight":\{"dtype":"F32","shape":\[16,6\]/);
    assert.match(header, /optimizer.state.0.exp_avg/);
  });

  it('accumulation with a short last group or ragged micro-batches still equals the big batch', async () => {
    // N = 44 in micro-batches of 4 with k = 3: groups of 12, 12, 12 and a last one of 8 (two micro-batches);
    // micro-batches of 5 make every group ragged (5, 5, 5 | ... | 4). Big batches: 12 (and 15) samples.
    for (const [B, k] of [
      [4, 3],
      [5, 3],
    ] as const) {
      const { x, y } = data(44, 3);
      const a = model(5);
      const b = model(5);
      const optA = new mb.SGD(a.parameters(), { lr: 0.5 });
      const optB = new mb.SGD(b.parameters(), { lr: 0.5 });
      await fit(a, { train: batches(x, y, B), optimizer: optA, epochs: 2, accumulateSteps: k });
      await fit(b, { train: batches(x, y, B * k), optimizer: optB, epochs: 2 });
      const sa = a.stateDict();
      const sb = b.stateDict();
      for (const key of Object.keys(sa))
        assertClose(sa[key]!, sb[key]!, { rtol: 1e-5, atol: 1e-6, label: `B=${B} ${key}` });
    }
  });

  it('accuracy counts every target of (N, C, T) outputs, not N, and skips ignored ones', async () => {
    // An identity model over logits that pick the target at 11 of the 12 positions (one ignored: -100).
    const [N, C, T] = [3, 4, 4];
    const target = Int32Array.from({ length: N * T }, (_, i) => i % C);
    const logits = new Float32Array(N * C * T);
    for (let n = 0; n < N; n++)
      for (let t = 0; t < T; t++) logits[n * C * T + target[n * T + t]! * T + t] = 10;
    logits[1 * T + 0] = 20; // position (0, t=0): class 1 wins over the target 0
    target[N * T - 1] = -100;
    class Id extends mb.Module {
      forward(x: mb.Tensor): mb.Tensor {
        return x;
      }
    }
    const r = await mb.evaluate(new Id(), [
      [mb.tensor(logits, { shape: [N, C, T] }), mb.tensor(target, { shape: [N, T] })],
    ]);
    assert.equal(r.accuracy, 10 / 11);
    assert.equal(r.samples, N);
  });

  it("a DataLoader is told the epoch: a batch-size schedule resumed at epoch 2 has epoch 2's size", async () => {
    const { x, y } = data(64);
    const schedule = mb.batchSizeSchedule({ initial: 4, max: 32, every: 1 });
    const loader = new mb.DataLoader(new mb.TensorDataset(x, y), {
      batchSampler: new mb.VariableBatchSampler(new mb.SequentialSampler(64), (e) => schedule(e)),
    });
    const m = model();
    const seen: number[] = [];
    await fit(m, {
      train: loader,
      optimizer: new mb.SGD(m.parameters(), { lr: 0.01 }),
      epochs: 4,
      startEpoch: 2,
      callbacks: { onBatchEnd: (b) => void (b.batch === 0 && seen.push(b.samples)) },
    });
    assert.deepEqual(seen, [16, 32]);
  });

  it("a schedule keeps each parameter group's ratio to the first; batch logs show the lr of their update", async () => {
    const { x, y } = data(16);
    const m = model();
    const [first, second] = [m.parameters().slice(0, 2), m.parameters().slice(2)];
    const opt = new mb.SGD(
      [
        { params: first, lr: 1e-3 },
        { params: second, lr: 1e-2 },
      ],
      { lr: 1e-2 },
    );
    const lrs: number[] = [];
    const sched = (s: number) => 0.1 / (1 + s);
    await fit(m, {
      train: batches(x, y, 4),
      optimizer: opt,
      epochs: 1,
      accumulateSteps: 2,
      schedule: sched,
      callbacks: { onBatchEnd: (b) => void lrs.push(b.lr) },
    });
    // Two updates (steps 0 and 1) of two micro-batches each: group 0 follows the schedule, group 1 is 10× it.
    assert.deepEqual(lrs, [sched(0), sched(0), sched(1), sched(1)]);
    assert.ok(Math.abs(opt.paramGroups[1]!.lr - 10 * sched(1)) < 1e-12);
    // earlyStopping without val is refused before any training.
    const before = m.parameters()[0]!.clone();
    await assert.rejects(
      fit(m, { train: batches(x, y, 4), optimizer: opt, epochs: 1, earlyStopping: { patience: 1 } }),
      /fit: earlyStopping monitors valLoss, which needs a validation set/,
    );
    assert.deepEqual(m.parameters()[0]!.toList(), before.toList());
  });

  it('a NaN loss stops training with a clear message', async () => {
    const m = model();
    const opt = new mb.SGD(m.parameters(), { lr: 0.1 });
    const { x, y } = data(8);
    const bad = x.mul(mb.tensor([Number.NaN]));
    await assert.rejects(
      fit(m, { train: [[bad, y]], optimizer: opt, epochs: 1 }),
      /fit: loss is NaN at epoch 1, batch 1: training stopped/,
    );
    // Under fp16 too: the loss scale acts on the backward pass, so skipping steps would never cure it.
    for (const precision of ['fp16', 'bf16'] as const) {
      await assert.rejects(
        fit(m, { train: [[bad, y]], optimizer: opt, epochs: 3, precision }),
        /fit: loss is NaN at epoch 1, batch 1: training stopped/,
      );
    }
  });

  it('fp16: overflowing steps are skipped and the scale backs off (GradScaler rules); bf16 trains', async () => {
    const { x, y } = data(32);
    const m = model();
    const opt = new mb.SGD(m.parameters(), { lr: 0.1 });
    const before = m.parameters()[0]!.clone();
    const scaler = new mb.GradScaler({ initScale: 2 ** 40, growthInterval: 1000 });
    const r = await fit(m, { train: batches(x, y, 2), optimizer: opt, epochs: 2, precision: 'fp16', scaler });
    assert.ok(r.history[1]!.skippedSteps < 16, 'once the scale fits, steps are taken');
    // Scaled by 2^40 the gradients overflow fp16's range (65504): steps are skipped, the scale halves each time.
    assert.ok(r.history[0]!.skippedSteps >= 1);
    const skipped = r.history[0]!.skippedSteps + r.history[1]!.skippedSteps;
    assert.equal(scaler.scale, 2 ** (40 - skipped));

    assert.notDeepEqual(m.parameters()[0]!.toList(), before.toList());
    const m2 = model();
    const r2 = await fit(m2, {
      train: batches(x, y, 8),
      val: batches(x, y, 32),
      optimizer: new mb.SGD(m2.parameters(), { lr: 0.2, momentum: 0.9 }),
      epochs: 15,
      precision: 'bf16',
    });
    assert.ok(r2.history.at(-1)!.trainLoss < r2.history[0]!.trainLoss * 0.6, 'bf16 training lowers the loss');
  });

  it("the seed's batch-size schedule plugs in: batch size doubles every 10 epochs up to the cap", async () => {
    const { x, y } = data(64);
    const m = model();
    const schedule = mb.batchSizeSchedule({ initial: 4, max: 16, every: 10 });
    const sampler = new mb.VariableBatchSampler(new mb.SequentialSampler(64), (epoch) => schedule(epoch));
    const loader = new mb.DataLoader(new mb.TensorDataset(x, y), { batchSampler: sampler });
    const sizes: number[] = [];
    const r = await fit(m, {
      train: (epoch) => {
        loader.setEpoch(epoch);
        return loader;
      },
      optimizer: new mb.SGD(m.parameters(), { lr: 0.01 }),
      epochs: 30,
      callbacks: { onBatchEnd: (b) => void (b.batch === 0 && sizes.push(b.samples)) },
    });
    assert.deepEqual([sizes[0], sizes[9], sizes[10], sizes[19], sizes[20], sizes[29]], [4, 4, 8, 8, 16, 16]);
    // Updates per epoch follow: 64/4 = 16 for ten epochs, then 8, then 4.
    assert.equal(r.steps, 10 * 16 + 10 * 8 + 10 * 4);
  });

  it('early stopping and callbacks', async () => {
    const { x, y } = data(16);
    const m = model();
    const seen: number[] = [];
    const r = await fit(m, {
      train: batches(x, y, 8),
      val: batches(x, y, 16),
      optimizer: new mb.SGD(m.parameters(), { lr: 0 }),
      epochs: 10,
      earlyStopping: { monitor: 'valLoss', patience: 2 },
      callbacks: { onEpochEnd: (e) => void seen.push(e.epoch) },
    });
    assert.equal(r.stoppedEarly, true);
    assert.deepEqual(seen, [1, 2, 3], 'lr 0 never improves: stops after patience epochs');
  });

  it('restoreBestWeights puts back the best epoch: its validation loss, not the last one', async () => {
    const { x, y } = data(32);
    const m = model();
    // lr 2 without momentum overshoots: the validation loss gets worse after the first epochs.
    const r = await fit(m, {
      train: batches(x, y, 4),
      val: batches(x, y, 32),
      optimizer: new mb.SGD(m.parameters(), { lr: 2 }),
      epochs: 12,
      earlyStopping: { patience: 3, restoreBestWeights: true },
    });
    const losses = r.history.map((h) => h.valLoss!);
    const best = Math.min(...losses);
    assert.ok(losses.at(-1)! > best, `the last epoch is not the best (${losses.join(', ')})`);
    const { loss } = await mb.evaluate(m, batches(x, y, 32));
    assert.ok(Math.abs(loss - best) < 1e-6 * best, `restored loss ${loss}, best ${best}`);
  });

  it('a binary classifier with one logit gets its accuracy: logit > 0 against 0/1 targets', async () => {
    const g = new mb.Generator(3);
    const x = mb.randn([64, 2], { generator: g });
    const yi = mb.gt(x.slice(1, 0, 1).reshape([64]), 0).int(); // the sign of the first feature
    const m = new mb.Linear(2, 1, { generator: new mb.Generator(4) });
    const yf = yi.float().reshape([64, 1]);
    const opt = new mb.SGD(m.parameters(), { lr: 0.5 });
    const loss = (o: mb.Tensor, t: mb.Tensor) => mb.binaryCrossEntropyWithLogits(o, t);
    const r = await fit(m, {
      train: batches(x, yf, 16),
      val: batches(x, yf, 64),
      optimizer: opt,
      epochs: 30,
      loss,
    });
    const expected = mb
      .eq(mb.gt(m.forward(x).reshape([64]), 0), mb.gt(yi, 0))
      .float()
      .mean()
      .item();
    assert.equal(r.history.at(-1)!.valAccuracy, expected);
    assert.ok(expected > 0.9, `it learned the rule (${expected})`);
    // int 0/1 labels count the same way; a regression target (not all 0/1) has no accuracy.
    const intLabels = await mb.evaluate(m, [[x, yi]], {
      loss: (o, t) => loss(o, t.float().reshape([64, 1])),
    });
    assert.equal(intLabels.accuracy, expected);
    const reg = await mb.evaluate(m, [[x, x.slice(1, 1, 2)]], { loss: mb.mseLoss });
    assert.ok(Number.isNaN(reg.accuracy));
  });

  it('a schedule leaves a frozen parameter group (lr 0) frozen', async () => {
    const { x, y } = data(16);
    const m = model();
    const [body, head] = [m.at(0)!.parameters(), m.at(2)!.parameters()];
    const before = body.map((p) => p.toTypedArray());
    const opt = new mb.SGD(
      [
        { params: body, lr: 0 },
        { params: head, lr: 0.1 },
      ],
      { lr: 0.1 },
    );
    await fit(m, { train: batches(x, y, 8), optimizer: opt, epochs: 2, schedule: (s) => 0.1 / (1 + s) });
    assert.deepEqual(
      body.map((p) => p.toTypedArray()),
      before,
    );
    assert.deepEqual(
      opt.paramGroups.map((g) => g.lr),
      [0, 0.1 / 4],
    );
  });

  it('clipGradNorm clips the total gradient norm before every update', async () => {
    const { x, y } = data(16);
    const [a, b] = [model(), model()];
    const optA = new mb.SGD(a.parameters(), { lr: 0.1 });
    await fit(a, { train: batches(x, y, 16), optimizer: optA, epochs: 1, clipGradNorm: 0.01 });
    // The same update by hand: backward, clip, step.
    const optB = new mb.SGD(b.parameters(), { lr: 0.1 });
    mb.crossEntropy(b.forward(x), y).backward();
    const total = mb.clipGradNorm(b.parameters(), 0.01);
    assert.ok(total > 0.01, `the gradient was large enough to clip (${total})`);
    optB.step();
    const [sa, sb] = [a.stateDict(), b.stateDict()];
    for (const k of Object.keys(sa)) assertClose(sa[k]!, sb[k]!, { rtol: 1e-6, atol: 1e-7, label: k });
  });

  it('onBatchEnd may be async: fit waits for it', async () => {
    const { x, y } = data(16);
    const m = model();
    const order: string[] = [];
    await fit(m, {
      train: batches(x, y, 8),
      optimizer: new mb.SGD(m.parameters(), { lr: 0.1 }),
      epochs: 1,
      callbacks: {
        onBatchEnd: async (b) => {
          await new Promise((r) => setTimeout(r, 5));
          order.push(`batch ${b.batch}`);
        },
        onEpochEnd: () => void order.push('epoch'),
      },
    });
    assert.deepEqual(order, ['batch 0', 'batch 1', 'epoch']);
  });

  it('bad options and batches are refused up front, by name', async () => {
    const { x, y } = data(8);
    const m = model();
    const optimizer = new mb.SGD(m.parameters(), { lr: 0.1 });
    const train = batches(x, y, 4);
    const bad: [Record<string, unknown>, RegExp][] = [
      [{ precision: 'float16' }, /fit: precision must be fp32, bf16, fp16 \(got "float16"\)/],
      [
        { earlyStopping: { monitor: 'val_loss', patience: 2 }, val: train },
        /earlyStopping.monitor must be 'valLoss' or 'valAccuracy' \(got "val_loss"\)/,
      ],
      [
        { earlyStopping: { monitor: 'valLoss' }, val: train },
        /earlyStopping.patience must be an integer >= 0 \(got undefined\)/,
      ],
      [
        { earlyStopping: { patience: '2' }, val: train },
        /earlyStopping.patience must be an integer >= 0 \(got "2"\)/,
      ],
      [
        { schedule: new mb.StepLR(new mb.SGD(m.parameters()), { stepSize: 1 }) },
        /fit: schedule must be a function .*asSchedule/,
      ],
      [{ schedule: 0.01 }, /fit: schedule must be a function/],
      [{ optimizer: undefined }, /fit: optimizer must be an optimizer/],
      [{ train: undefined }, /fit: train must be a DataLoader/],
      [{ val: 5 }, /fit: val must be a DataLoader/],
      [{ clipGradNorm: 0 }, /fit: clipGradNorm must be a positive number/],
    ];
    for (const [override, re] of bad) {
      await assert.rejects(
        // biome-ignore lint/suspicious/noExplicitAny: wrong on purpose
        fit(m, { train, optimizer, epochs: 1, ...override } as any),
        (e: unknown) => e instanceof mb.ValueError && re.test((e as Error).message),
        String(re),
      );
    }
    // Batches of another form: a clear error, not a TypeError from destructuring.
    const dict = [{ x, y }];
    await assert.rejects(
      fit(m, { train: dict as unknown as mb.FitOptions['train'], optimizer, epochs: 1 }),
      /a batch must be \[input, target\], two tensors \(got an object with keys x, y\)/,
    );
    const triple = [[x, y, x]];
    await assert.rejects(
      fit(m, { train: triple as unknown as mb.FitOptions['train'], optimizer, epochs: 1 }),
      /got an array of 3: Tensor, Tensor, Tensor/,
    );
    // A one-shot source (a generator object) runs dry after its first epoch: the second epoch says so.
    const once = (function* () {
      yield* train;
    })();
    await assert.rejects(fit(m, { train: once, optimizer, epochs: 2 }), /fit: epoch 2 has no batches/);
    assert.throws(
      () => mb.autocast('half' as mb.Precision, () => 0),
      /autocast: precision must be fp32, bf16, fp16/,
    );
  });
  it('validation runs under the training precision, as PyTorch Lightning validates under its autocast', async () => {
    const { x, y } = data(32);
    const m = model();
    const val = batches(x, y, 32);
    const r = await fit(m, {
      train: batches(x, y, 8),
      val,
      optimizer: new mb.SGD(m.parameters(), { lr: 0.1 }),
      epochs: 1,
      precision: 'bf16',
    });
    const bf16 = await mb.evaluate(m, val, { precision: 'bf16' });
    const fp32 = await mb.evaluate(m, val);
    assert.equal(r.history[0]!.valLoss, bf16.loss);
    assert.notEqual(bf16.loss, fp32.loss, 'bf16 rounding shows in the loss');
  });
});
