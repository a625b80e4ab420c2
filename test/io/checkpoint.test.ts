import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';
import * as mb from '../../src/index.js';
import { assertClose, type FixtureTensor, fixture, forEachBackend, ft, ROOT } from '../helpers.js';

const mlp = () =>
  new mb.Sequential(
    new mb.Linear(12, 16),
    new mb.BatchNorm1d(16),
    new mb.ReLU(),
    new mb.Linear(16, 8),
    new mb.ReLU(),
    new mb.Linear(8, 3),
  );
type MlpCase = {
  eval_x: FixtureTensor;
  eval_logits: FixtureTensor;
  final_state_dict: Record<string, FixtureTensor>;
};

forEachBackend(() => {
  it("loads PyTorch's mlp.safetensors (F32, I64, F16, BF16) and reproduces its eval logits", async () => {
    const sd = await mb.load(join(ROOT, 'test/fixtures/mlp.safetensors'));
    assert.equal(sd['1.num_batches_tracked']!.dtype, 'int32');
    assert.equal(sd['1.num_batches_tracked']!.item(), 3);
    assert.equal(sd['extra.half']!.dtype, 'float32');
    assert.deepEqual(sd['extra.half']!.shape, [3, 2]);
    assert.deepEqual(sd['extra.bf16']!.shape, [4]);
    const model = mlp();
    assert.throws(
      () => model.loadStateDict(sd),
      /unexpected key\(s\) in state_dict: "extra.bf16", "extra.half"|unexpected key\(s\) in state_dict: "extra.half", "extra.bf16"/,
    );
    model.loadStateDict(sd, { strict: false });
    const c = fixture<{ cases: MlpCase[] }>('mlp_training.json').cases[0]!;
    model.eval();
    assertClose(
      mb.noGrad(() => model.forward(ft(c.eval_x))),
      c.eval_logits,
      { rtol: 1e-4, atol: 1e-5, label: 'eval logits' },
    );
  });

  it('save then load round-trips a state dict exactly, and F16 storage rounds to half precision', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mb-ckpt-'));
    const model = mlp();
    model.forward(mb.randn([4, 12]));
    await mb.save(model.stateDict(), join(dir, 'm.safetensors'));
    const back = await mb.load(join(dir, 'm.safetensors'));
    for (const [k, t] of Object.entries(model.stateDict())) {
      assert.deepEqual(back[k]!.toList(), t.toList(), k);
      assert.equal(back[k]!.dtype, t.dtype, k);
    }
    const bytes = readFileSync(join(dir, 'm.safetensors'));
    const headerLen = Number(bytes.readBigUInt64LE(0));
    assert.equal(headerLen % 8, 0, 'header is 8-byte aligned');
    assert.match(
      bytes.subarray(8, 8 + headerLen).toString(),
      /"1.num_batches_tracked":\{"dtype":"I64","shape":\[\]/,
    );
    await mb.save({ w: mb.tensor([1 / 3]) }, join(dir, 'h.safetensors'), { dtype: 'F16' });
    assertClose((await mb.load(join(dir, 'h.safetensors'))).w!, [0.333251953125], { rtol: 0, atol: 0 });
  });

  it('a truncated or corrupt file is rejected with an error naming the file; a failed save keeps the old file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mb-ckpt-'));
    const good = readFileSync(join(ROOT, 'test/fixtures/mlp.safetensors'));
    const cut = join(dir, 'cut.safetensors');
    writeFileSync(cut, good.subarray(0, good.length - 10));
    await assert.rejects(mb.load(cut), (e: Error) => e instanceof mb.FormatError && e.message.includes(cut));
    const path = join(dir, 'keep.safetensors');
    await mb.save({ a: mb.ones([2]) }, path);
    const before = readFileSync(path);
    await assert.rejects(mb.save({ a: mb.ones([2]) }, join(dir, 'missing-dir', 'x.safetensors')));
    await assert.rejects(
      mb.save({ 'bad\u0000': mb.zeros([1]), a: mb.zeros([1]) } as never, join(dir, 'nul', 'x')),
    );
    assert.deepEqual(readFileSync(path), before);
  });
});

/** The optimizer part of a checkpoint's metadata, as the tests below damage it. */
interface Meta {
  optimizer: { scalars: unknown; param_groups: (Record<string, unknown> | null)[]; step_count: unknown };
}

it('a checkpoint whose run metadata is damaged is refused by name (a hand-edited epoch resumed at epoch "two")', async () => {
  const { decodeSafetensors, encodeSafetensors } = await import('../../src/io/safetensors.js');
  const dir = mkdtempSync(join(tmpdir(), 'mb-ckmeta-'));
  const path = join(dir, 'ck.safetensors');
  const model = mlp();
  const optimizer = new mb.SGD(model.parameters(), { lr: 0.1, momentum: 0.9 });
  await mb.saveCheckpoint(path, { model, optimizer, epoch: 1, step: 4, history: [] });
  const file = decodeSafetensors(new Uint8Array(readFileSync(path)));
  const meta = JSON.parse(file.metadata!.minibatch!);
  for (const [edit, msg] of [
    [(m: Record<string, unknown>) => void (m.epoch = 'two'), /corrupt metadata: epoch "two"/],
    [(m: Record<string, unknown>) => void (m.step = -1), /corrupt metadata: step -1/],
    [(m: Record<string, unknown>) => void delete m.optimizer, /corrupt metadata: no optimizer state/],
    [
      (m: Record<string, unknown>) => void (m.version = 99),
      /corrupt metadata: version 99 \(this minibatch reads version 1\)/,
    ],
    [(m: Record<string, unknown>) => void delete m.version, /corrupt metadata: version missing/],
    [(m: Meta) => void (m.optimizer.scalars = null), /corrupt metadata: optimizer\.scalars null/],
    [(m: Meta) => void (m.optimizer.scalars = { 0: 3 }), /corrupt metadata: optimizer\.scalars\.0 3/],
    [
      (m: Meta) => void (m.optimizer.scalars = { 0: { step: 'x' } }),
      /corrupt metadata: optimizer\.scalars\.0\.step "x"/,
    ],
    [
      (m: Meta) => void (m.optimizer.scalars = { 0: { step: -1 } }),
      /corrupt metadata: optimizer\.scalars\.0\.step -1/,
    ],
    [
      (m: Meta) => void (m.optimizer.scalars = { 0: { step: 1.5 } }),
      /corrupt metadata: optimizer\.scalars\.0\.step 1\.5/,
    ],
    [
      (m: Meta) => void (m.optimizer.param_groups = [null]),
      /corrupt metadata: optimizer\.param_groups\[0\] null/,
    ],
    [
      (m: Meta) => void (m.optimizer.param_groups[0]!.lr = 'x'),
      /corrupt metadata: optimizer\.param_groups\[0\]\.lr "x"/,
    ],
    [
      (m: Meta) => void (m.optimizer.param_groups[0]!.params = [0, -1]),
      /corrupt metadata: optimizer\.param_groups\[0\]\.params \[0,-1\]/,
    ],
    [(m: Meta) => void (m.optimizer.step_count = 'x'), /corrupt metadata: optimizer\.step_count "x"/],
    [
      (m: Record<string, unknown>) => void (m.scaler = { scale: 0 }),
      /corrupt metadata: scaler: the state dict lacks the numbers growthFactor, backoffFactor, growthInterval, growthTracker/,
    ],
    [
      (m: Record<string, unknown>) =>
        void (m.scaler = {
          scale: 0,
          growthFactor: 2,
          backoffFactor: 0.5,
          growthInterval: 2000,
          growthTracker: 0,
        }),
      /corrupt metadata: scaler: out-of-range values in \{"scale":0,/,
    ],
    [(m: Record<string, unknown>) => void (m.history = {}), /corrupt metadata: no history/],
  ] as [(m: never) => void, RegExp][]) {
    const m = structuredClone(meta) as never;
    edit(m);
    const bad = join(dir, 'bad.safetensors');
    writeFileSync(bad, encodeSafetensors(file.tensors, { ...file.metadata, minibatch: JSON.stringify(m) }));
    await assert.rejects(
      () => mb.loadCheckpoint(bad, mlp(), new mb.SGD(mlp().parameters(), { lr: 0.1 })),
      (e: Error) => e instanceof mb.FormatError && msg.test(e.message) && e.message.includes(bad),
    );
  }
  const ok = await mb.loadCheckpoint(path, mlp(), new mb.SGD(mlp().parameters(), { lr: 0.1, momentum: 0.9 }));
  assert.equal(ok.epoch, 1);
});
