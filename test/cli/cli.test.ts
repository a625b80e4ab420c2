import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { benchArgs, main } from '../../src/cli/main.js';
import { encodeIdx, readIdx } from '../../src/data/idx.js';
import { decodeSafetensors, encodeSafetensors } from '../../src/io/safetensors.js';
import { readCheckpointMeta } from '../../src/train/checkpoint.js';
import { ROOT } from '../helpers.js';

/** Run the CLI in-process; collect stdout and stderr lines. */
async function run(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(
    argv,
    (s) => void out.push(s),
    (s) => void err.push(s),
  );
  return { code, out: out.join('\n'), err: err.join('\n') };
}

/** A small Fashion-MNIST directory cut from the shipped subset (600 train, 200 test images). */
function tinyData(): string {
  const dir = mkdtempSync(join(tmpdir(), 'mb-cli-'));
  const src = join(ROOT, 'data/fashion-mnist');
  for (const [name, n] of [
    ['train', 600],
    ['t10k', 200],
  ] as const) {
    const images = readIdx(join(src, `${name}-images-idx3-ubyte.gz`));
    const labels = readIdx(join(src, `${name}-labels-idx1-ubyte.gz`));
    writeFileSync(
      join(dir, `${name}-images-idx3-ubyte.gz`),
      gzipSync(encodeIdx([n, 28, 28], (images.data as Uint8Array).subarray(0, n * 784))),
    );
    writeFileSync(
      join(dir, `${name}-labels-idx1-ubyte.gz`),
      gzipSync(encodeIdx([n], (labels.data as Uint8Array).subarray(0, n))),
    );
  }
  return dir;
}

it('bad flags and values: one clear line on stderr, exit code 2, no stack trace', async () => {
  for (const [argv, msg] of [
    [['train', '--epochs', 'many'], /^error: minibatch: --epochs expects a number \(got 'many'\)/],
    [
      ['train', '--model', 'resnet'],
      /^error: minibatch: --model must be one of mlp, mlp-bn, cnn \(got 'resnet'\)/,
    ],
    [['train', '--bogus'], /^error: minibatch: Unknown option '--bogus'/],
    [
      ['train', '--optimizer', 'lbfgs'],
      /^error: minibatch: --optimizer must be one of sgd, adam, adamw, rmsprop, adagrad \(got 'lbfgs'\)/,
    ],
    [['fly'], /^error: minibatch: unknown command 'fly'/],
    [['profile', '--batch-sizes', '1,x'], /^error: minibatch: --batch-sizes expects a number \(got 'x'\)/],
  ] as const) {
    const r = await run(...argv);
    assert.equal(r.code, 2, argv.join(' '));
    assert.match(r.err, msg);
    assert.doesNotMatch(r.err, /\n\s+at /, 'no stack trace');
  }
  // A value out of range is a bad command line too: exit 2 and the hint, the value as typed.
  for (const [argv, msg] of [
    [['train', '--epochs', '0'], /^error: minibatch: --epochs must be a positive integer \(got 0\)$/m],
    [['train', '--lr', '0'], /^error: minibatch: --lr must be a positive number \(got 0\)$/m],
    [['train', '--lr=1e-400'], /^error: minibatch: --lr must be a positive number \(got 1e-400\)$/m],
    [['train', '--batch-size', '2.5'], /--batch-size must be a positive integer \(got 2.5\)$/m],
    [['train', '--workers', '-1'], /--workers must be a non-negative integer \(got -1\)$/m],
    [
      ['train', '--backend', 'foo'],
      /^error: minibatch: --backend must be one of js, wasm, native \(got 'foo'\)$/m,
    ],
    [['find-batch-size', '--max-batch', '0'], /--max-batch must be a positive integer \(got 0\)$/m],
    [['profile', '--mode', 'convergence', '--lr', '0'], /--lr must be a positive number \(got 0\)$/m],
  ] as const) {
    const r = await run(...argv);
    assert.equal(r.code, 2, argv.join(' '));
    assert.match(r.err, msg, argv.join(' '));
    assert.match(r.err, /^run 'minibatch --help' for usage$/m, argv.join(' '));
  }
  assert.match((await run('--help')).out, /exit status: 0 done, 1 .*, 2 a bad command line/);
});

it('a missing data directory or a corrupt file: one line, exit 1; --verbose adds the stack', async () => {
  let r = await run('train', '--data', '/nonexistent/fm');
  assert.equal(r.code, 1);
  assert.equal(r.err, 'error: fashion-mnist: directory /nonexistent/fm does not exist');
  const dir = tinyData();
  writeFileSync(
    join(dir, 't10k-labels-idx1-ubyte.gz'),
    gzipSync(Buffer.from([0, 0, 8, 1, 0, 0, 0, 200, 1, 2])),
  );
  r = await run('train', '--data', dir, '--quiet');
  assert.equal(r.code, 1);
  assert.match(r.err.split('\n').at(-1)!, /^error: idx: .*t10k-labels-idx1-ubyte.gz: truncated/);
  r = await run('train', '--data', dir, '--verbose');
  assert.match(r.err, /\n\s+at /);
});

it('train --json prints one parseable object with the documented fields; --save writes a checkpoint, --report a page', async () => {
  const dir = tinyData();
  const out = mkdtempSync(join(tmpdir(), 'mb-cli-out-'));
  const r = await run(
    'train',
    '--data',
    dir,
    '--epochs',
    '2',
    '--batch-size',
    '32',
    '--json',
    '--save',
    join(out, 'ck.safetensors'),
    '--report',
    join(out, 'r.html'),
  );
  assert.equal(r.code, 0, r.err);
  const j = JSON.parse(r.out);
  for (const k of [
    'backend',
    'model',
    'epochs',
    'batch_size',
    'train_loss',
    'test_loss',
    'test_accuracy',
    'samples_per_sec',
    'seconds',
    'peak_rss_mb',
  ])
    assert.ok(k in j, k);
  assert.equal(j.epochs, 2);
  assert.ok(j.test_accuracy > 0.5, `accuracy ${j.test_accuracy}`);
  assert.match(readFileSync(join(out, 'r.html'), 'utf8'), /^<!doctype html>.*<svg/s);
  const resumed = await run(
    'train',
    '--data',
    dir,
    '--epochs',
    '3',
    '--batch-size',
    '32',
    '--json',
    '--resume',
    join(out, 'ck.safetensors'),
  );
  assert.equal(resumed.code, 0, resumed.err);
  assert.match(resumed.err, /resumed from .* at epoch 2/);
});

it('a run resumed from its checkpoint ends exactly where the uninterrupted run ends, with adamw, rmsprop and adagrad; --workers gives the same run', async () => {
  const dir = tinyData();
  const out = mkdtempSync(join(tmpdir(), 'mb-cli-resume-'));
  for (const optimizer of ['adamw', 'rmsprop', 'adagrad']) {
    // A constant schedule: a cosine's length follows --epochs, so a 1-epoch run would decay differently.
    const common = [
      'train',
      '--data',
      dir,
      '--batch-size',
      '50',
      '--json',
      '--quiet',
      '--optimizer',
      optimizer,
      '--schedule',
      'constant',
    ];
    const ck = join(out, `${optimizer}.safetensors`);
    const straight = JSON.parse((await run(...common, '--epochs', '3')).out);
    assert.ok(straight.train_loss < 2.2, `${optimizer} lowers the loss (${straight.train_loss})`);
    const first = await run(...common, '--epochs', '1', '--save', ck);
    assert.equal(first.code, 0, first.err);
    const resumed = await run(...common, '--epochs', '3', '--resume', ck);
    assert.equal(resumed.code, 0, resumed.err);
    const r = JSON.parse(resumed.out);
    assert.equal(r.train_loss, straight.train_loss, optimizer);
    assert.equal(r.test_loss, straight.test_loss, optimizer);
    assert.equal(r.test_accuracy, straight.test_accuracy, optimizer);
    if (optimizer !== 'adamw') continue;
    const workers = JSON.parse((await run(...common, '--epochs', '3', '--workers', '1')).out);
    assert.equal(workers.test_loss, straight.test_loss, 'same batches from a worker thread');
  }
});

it('fp16: a resumed run carries on with the saved loss scale and ends where the uninterrupted run ends', async () => {
  const dir = tinyData();
  const out = mkdtempSync(join(tmpdir(), 'mb-cli-fp16-'));
  // Batch 4 overflows fp16 at the initial scale 2^16 in the first epoch: the scaler backs off several times,
  // and a resumed run that started again from 2^16 would skip those steps a second time.
  const common = ['train', '--data', dir, '--batch-size', '4', '--precision', 'fp16', '--json'];
  const more = ['--schedule', 'constant'];
  const straight = await run(...common, ...more, '--epochs', '2');
  assert.equal(straight.code, 0, straight.err);
  const first = await run(...common, ...more, '--epochs', '1', '--save', join(out, 'ck.safetensors'));
  assert.match(first.err, /fp16 steps skipped/);
  // Resumed with only --epochs: the run's settings (batch size, precision, schedule, lr) come from the file.
  const resumed = await run(
    'train',
    '--data',
    dir,
    '--json',
    '--quiet',
    '--epochs',
    '2',
    '--resume',
    join(out, 'ck.safetensors'),
  );
  assert.equal(resumed.code, 0, resumed.err);
  const [a, b] = [JSON.parse(straight.out), JSON.parse(resumed.out)];
  assert.equal(b.batch_size, 4);
  assert.equal(b.train_loss, a.train_loss);
  assert.equal(b.test_loss, a.test_loss);
});

it('--resume: a setting that differs from the checkpoint, another optimizer, or too few epochs is one clear error', async () => {
  const dir = tinyData();
  const out = mkdtempSync(join(tmpdir(), 'mb-cli-resume2-'));
  const ck = join(out, 'ck.safetensors');
  const first = await run(
    'train',
    '--data',
    dir,
    '--epochs',
    '1',
    '--model',
    'mlp-bn',
    '--optimizer',
    'adamw',
    '--quiet',
    '--save',
    ck,
  );
  assert.equal(first.code, 0, first.err);
  for (const [flags, msg] of [
    [
      ['--batch-size', '32'],
      /^error: train: --batch-size 32 differs from the checkpoint's 64 in .*ck\.safetensors: a resumed run keeps the settings it started with$/,
    ],
    [['--optimizer', 'sgd'], /^error: train: --optimizer sgd differs from the checkpoint's adamw/],
    [['--model', 'mlp'], /^error: train: --model mlp differs from the checkpoint's mlp-bn/],
    [['--lr', '0.01'], /^error: train: --lr 0.01 differs from the checkpoint's \(default\)/],
  ] as const) {
    const r = await run('train', '--data', dir, '--epochs', '2', '--quiet', '--resume', ck, ...flags);
    assert.equal(r.code, 1, flags.join(' '));
    assert.match(r.err, msg);
  }
  // The optimizer's default lr given explicitly is the same setting.
  const same = await run(
    'train',
    '--data',
    dir,
    '--epochs',
    '2',
    '--quiet',
    '--json',
    '--resume',
    ck,
    '--lr',
    '0.001',
  );
  assert.equal(same.code, 0, same.err);
  // The run above saved its second epoch back to ck (no --save): 1 and 2 epochs are both done.
  for (const epochs of ['1', '2']) {
    const done = await run('train', '--data', dir, '--epochs', epochs, '--quiet', '--resume', ck);
    assert.equal(done.code, 1);
    assert.match(
      done.err,
      /error: train: .* has already trained 2 epochs; pass --epochs above 2 to train on$/,
    );
  }
});

it('outputs are checked before the work; negative and non-decimal numbers are one-line errors', async () => {
  const out = mkdtempSync(join(tmpdir(), 'mb-cli-out2-'));
  for (const [argv, code, msg] of [
    [
      ['train', '--save', join(out, 'no', 'x.st')],
      1,
      /^error: minibatch: --save .*x\.st: directory .*no does not exist$/,
    ],
    [['train', '--report', out], 1, /^error: minibatch: --report .* is a directory$/],
    [
      ['profile', '--plot', join(out, 'no', 'p.svg')],
      1,
      /^error: minibatch: --plot .*: directory .* does not exist$/,
    ],
    [['train', '--lr', '-1'], 2, /^error: minibatch: --lr must be a positive number \(got -1\)$/m],
    [
      ['train', '--seed', '-3'],
      2,
      /^error: minibatch: --seed must be an integer in \[0, 2\^32\) \(got -3\)$/m,
    ],
    [['train', '--batch-size', '0x10'], 2, /^error: minibatch: --batch-size expects a number \(got '0x10'\)/],
    [
      ['profile', '--mode', 'convergence', '--budget-samples', '0'],
      2,
      /--budget-samples must be a positive integer/,
    ],
    [
      ['profile', '--mode', 'convergence', '--budget-seconds', '-1'],
      2,
      /--budget-seconds must be positive \(got -1\)/,
    ],
    [['profile', '--mode', 'convergence', '--budget-seconds', '1', '--budget-samples', '9'], 2, /not both/],
    [['profile', '--data', out], 2, /--data is only used by profile --mode convergence/],
    [
      ['find-batch-size', '--memory-budget', '0.001'],
      1,
      /^error: find-batch-size: not even batch size 1 of mlp fits in 0.001 MB$/,
    ],
  ] as const) {
    const r = await run(...argv);
    assert.equal(r.code, code, argv.join(' '));
    assert.match(r.err, msg, argv.join(' '));
    assert.equal(r.out, '', 'nothing on stdout');
  }
  const none = await run();
  assert.equal(none.code, 2);
  assert.equal(none.out, '');
  assert.match(none.err, /^usage: minibatch/);
});

it('profile --json: samples/s rises with batch size; --plot writes an SVG', async () => {
  const out = mkdtempSync(join(tmpdir(), 'mb-cli-prof-'));
  const r = await run('profile', '--batch-sizes', '1,16,128', '--json', '--plot', join(out, 'p.svg'));
  assert.equal(r.code, 0, r.err);
  const j = JSON.parse(r.out) as {
    backend: string;
    mode: string;
    rows: { batch_size: number; label: string; samples_per_sec: number; speedup_vs_1: number }[];
  };
  assert.equal(j.mode, 'inference');
  const batched = j.rows.filter((x) => x.label !== 'per-sample loop');
  assert.deepEqual(
    batched.map((x) => x.batch_size),
    [1, 16, 128],
  );
  assert.ok(batched[2]!.samples_per_sec > batched[0]!.samples_per_sec, JSON.stringify(batched));
  assert.ok(batched[2]!.speedup_vs_1 > 1);
  assert.match(readFileSync(join(out, 'p.svg'), 'utf8'), /^<svg/);
  // Without 1 in the list, batch 1 is measured anyway: the speedup is over it, not a guess.
  const t = JSON.parse(
    (await run('profile', '--mode', 'train', '--batch-sizes', '8,32', '--json')).out,
  ) as typeof j;
  assert.deepEqual(
    t.rows.map((x) => x.batch_size),
    [1, 8, 32],
  );
  assert.equal(t.rows[0]!.speedup_vs_1, 1);
  for (const x of t.rows)
    assert.ok(Math.abs(x.speedup_vs_1 - x.samples_per_sec / t.rows[0]!.samples_per_sec) < 1e-9);
});

it('profile with BatchNorm in train mode, find-batch-size for it, and convergence at an exactly equal budget', async () => {
  // Batch 1 cannot train BatchNorm: not asked for, it is left out and there is no speedup base (null).
  const bn = await run('profile', '--model', 'mlp-bn', '--mode', 'train', '--batch-sizes', '4,16', '--json');
  assert.equal(bn.code, 0, bn.err);
  const rows = (
    JSON.parse(bn.out) as { rows: { batch_size: number; speedup_vs_1: number | null; peak_rss_mb: number }[] }
  ).rows;
  assert.deepEqual(
    rows.map((r) => [r.batch_size, r.speedup_vs_1]),
    [
      [4, null],
      [16, null],
    ],
  );
  assert.ok(rows[1]!.peak_rss_mb >= rows[0]!.peak_rss_mb, 'a peak does not go down');
  const fb = JSON.parse(
    (await run('find-batch-size', '--model', 'mlp-bn', '--max-batch', '8', '--json')).out,
  ) as {
    rows: { batch_size: number }[];
  };
  assert.deepEqual(
    fb.rows.map((r) => r.batch_size),
    [2, 4, 8],
  );
  // Convergence: sorted and deduplicated, every batch size on exactly the budget's samples.
  const cv = await run(
    'profile',
    '--mode',
    'convergence',
    '--batch-sizes',
    '512,8,8,1000',
    '--budget-samples',
    '2000',
    '--json',
  );
  assert.equal(cv.code, 0, cv.err);
  const c = JSON.parse(cv.out) as {
    model: string;
    rows: { batch_size: number; samples: number; updates: number }[];
  };
  assert.equal(c.model, 'mlp');
  assert.deepEqual(
    c.rows.map((r) => [r.batch_size, r.samples, r.updates]),
    [
      [8, 2000, 250],
      [512, 2000, 4],
      [1000, 2000, 2],
    ],
  );
  // A lone leftover sample is not trained on (BatchNorm cannot train on one): 2000 of a 2001 budget.
  const odd = await run(
    'profile',
    '--mode',
    'convergence',
    '--model',
    'mlp-bn',
    '--batch-sizes',
    '8',
    '--budget-samples',
    '2001',
    '--json',
  );
  assert.equal(odd.code, 0, odd.err);
  assert.equal((JSON.parse(odd.out) as { rows: { samples: number }[] }).rows[0]!.samples, 2000);
  for (const [argv, msg] of [
    [
      ['--batch-sizes', '16384'],
      /profile: batch size 16384 is larger than the training set \(10000 samples\)/,
    ],
    [
      ['--batch-sizes', '3000', '--budget-samples', '2000'],
      /profile: batch size 3000 is larger than the budget of 2000 samples/,
    ],
  ] as const) {
    const r = await run('profile', '--mode', 'convergence', ...argv);
    assert.equal(r.code, 1);
    assert.match(r.err, msg);
  }
});

it('find-batch-size --json: the largest batch within the budget and the fastest one', async () => {
  const r = await run('find-batch-size', '--memory-budget', '2', '--json');
  assert.equal(r.code, 0, r.err);
  const j = JSON.parse(r.out) as {
    largest_fitting: number;
    best_throughput: number;
    rows: { batch_size: number; alloc_mb_per_batch: number; samples_per_sec: number }[];
  };
  assert.ok(j.rows.length >= 2);
  assert.equal(j.largest_fitting, j.rows.at(-1)!.batch_size);
  assert.ok(j.rows.every((x) => x.alloc_mb_per_batch <= 2));
  const fastest = j.rows.reduce((a, b) => (b.samples_per_sec > a.samples_per_sec ? b : a));
  assert.equal(j.best_throughput, fastest.batch_size);
  assert.match(
    (await run('find-batch-size', '--memory-budget', '0')).err,
    /--memory-budget must be positive \(got 0\)/,
  );
  // The cap on the batch sizes tried is a flag, and the text says when the cap, not the budget, stopped it.
  const capped = await run('find-batch-size', '--memory-budget', '2', '--max-batch', '4');
  assert.equal(capped.code, 0, capped.err);
  assert.match(
    capped.out,
    /largest batch within 2 MB of tensor storage per step: 4 \(the --max-batch 4 cap: larger may fit\)/,
  );
});

it('the installed bin runs and exits by itself', () => {
  const r = spawnSync(process.execPath, [join(ROOT, 'bin/minibatch.js'), '--help'], {
    encoding: 'utf8',
    timeout: 20000,
  });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^usage: minibatch <command>/);
});

it('flags of other commands, empty values, infinite numbers, one file for two outputs and a directory to resume are refused', async () => {
  const dir = tinyData();
  const out = mkdtempSync(join(tmpdir(), 'mb-cli-flags-'));
  for (const [argv, code, msg] of [
    [['profile', '--batch-size', '3'], 2, /^error: minibatch: --batch-size is not an option of profile$/m],
    [['train', '--plot', join(out, 'p.svg')], 2, /--plot is not an option of train/],
    [['find-batch-size', '--save', join(out, 'x')], 2, /--save is not an option of find-batch-size/],
    [['train', '--data', dir, '--resume', ''], 2, /--resume needs a value/],
    [['train', '--data', dir, '--save', ''], 2, /--save needs a value/],
    [['train', '--data', dir, '--lr', '1e400'], 2, /--lr must be finite \(got '1e400'\)/],
    [
      ['train', '--data', dir, '--save', join(out, 'same'), '--report', join(out, 'same')],
      2,
      /--report and --save name the same file/,
    ],
    [['train', '--data', dir, '--resume', out], 1, /--resume .*: a directory, not a checkpoint file/],
    [['train', '--data', dir, '--seed', String(2 ** 40)], 2, /--seed must be an integer in \[0, 2\^32\)/],
    [
      ['profile', '--mode', 'convergence', '--data', dir, '--lr', '0'],
      2,
      /--lr must be a positive number \(got 0\)/,
    ],
    [
      ['train', '--data', join(dir, 'train-labels-idx1-ubyte.gz')],
      1,
      /train-labels-idx1-ubyte\.gz is a file, not a directory of IDX files/,
    ],
  ] as const) {
    const r = await run(...argv);
    assert.equal(r.code, code, `${argv.join(' ')}: ${r.err}`);
    assert.match(r.err, msg, argv.join(' '));
  }
});

it('an empty split is named, not reported as NaN% accuracy', async () => {
  const dir = tinyData();
  writeFileSync(join(dir, 't10k-images-idx3-ubyte.gz'), gzipSync(encodeIdx([0, 28, 28], new Uint8Array(0))));
  writeFileSync(join(dir, 't10k-labels-idx1-ubyte.gz'), gzipSync(encodeIdx([0], new Uint8Array(0))));
  const r = await run('train', '--data', dir, '--epochs', '1');
  assert.equal(r.code, 1);
  assert.match(r.err, /^error: train: the test split in .* has no images$/m);
});

it('mlp-bn: a last batch of one sample is dropped instead of failing; batch 1 is refused up front; --quiet is quiet', async () => {
  const dir = tinyData(); // 600 training images: batch 599 leaves one
  const r = await run(
    'train',
    '--data',
    dir,
    '--model',
    'mlp-bn',
    '--epochs',
    '1',
    '--batch-size',
    '599',
    '--json',
    '--quiet',
  );
  assert.equal(r.code, 0, r.err);
  assert.equal(r.err, '', '--quiet prints nothing but errors');
  assert.ok(Number.isFinite(JSON.parse(r.out).train_loss));
  const one = await run('train', '--data', dir, '--model', 'mlp-bn', '--batch-size', '1');
  assert.equal(one.code, 2);
  assert.match(
    one.err,
    /--model mlp-bn cannot train with --batch-size 1: BatchNorm needs two samples per batch/,
  );
  // profile --mode train of a BatchNorm model: batch 1, measured only as the speedup's base, is skipped.
  const p = await run('profile', '--mode', 'train', '--model', 'mlp-bn', '--batch-sizes', '2,4', '--json');
  assert.equal(p.code, 0, p.err);
  assert.deepEqual(
    JSON.parse(p.out).rows.map((row: { batch_size: number }) => row.batch_size),
    [2, 4],
  );
});

/** The parts of a checkpoint's run metadata the tests below edit. */
interface Meta {
  version: unknown;
  args: Record<string, unknown>;
  optimizer: { scalars: Record<string, Record<string, unknown>> };
}

/** A copy of checkpoint `src` whose run metadata `edit` changed (a hand edit, a damaged file). */
function editMeta(src: string, dst: string, edit: (m: Meta) => void): string {
  const file = decodeSafetensors(new Uint8Array(readFileSync(src)));
  const meta = JSON.parse(file.metadata!.minibatch!);
  edit(meta);
  writeFileSync(dst, encodeSafetensors(file.tensors, { ...file.metadata, minibatch: JSON.stringify(meta) }));
  return dst;
}

it('--resume without --save saves the resumed run back to its checkpoint; --save elsewhere leaves it; 1 epoch is singular', async () => {
  const dir = tinyData();
  const out = mkdtempSync(join(tmpdir(), 'mb-cli-resave-'));
  const ck = join(out, 'ck.safetensors');
  const common = ['train', '--data', dir, '--batch-size', '50', '--quiet'];
  const first = await run(...common, '--epochs', '1', '--save', ck);
  assert.equal(first.code, 0, first.err);
  assert.match(first.out, / after 1 epoch, /);
  const other = join(out, 'other.safetensors');
  const elsewhere = await run(...common, '--epochs', '2', '--resume', ck, '--save', other);
  assert.equal(elsewhere.code, 0, elsewhere.err);
  assert.match(elsewhere.out, / after 2 epochs, /);
  assert.equal((await readCheckpointMeta(ck)).epoch, 1, '--save names another file: the checkpoint is kept');
  assert.equal((await readCheckpointMeta(other)).epoch, 2);
  const back = await run(...common, '--epochs', '2', '--resume', ck);
  assert.equal(back.code, 0, back.err);
  assert.equal((await readCheckpointMeta(ck)).epoch, 2, 'the resumed run is saved where it came from');
  assert.match(
    (await run('--help')).out,
    /resumed run saves over the checkpoint it resumed from unless --save/,
  );
});

it('--resume of a checkpoint with damaged run settings or optimizer state: one line naming the field, exit 1', async () => {
  const dir = tinyData();
  const out = mkdtempSync(join(tmpdir(), 'mb-cli-corrupt-'));
  const ck = join(out, 'ck.safetensors');
  const first = await run(
    'train',
    '--data',
    dir,
    '--epochs',
    '1',
    '--optimizer',
    'adam',
    '--quiet',
    '--save',
    ck,
  );
  assert.equal(first.code, 0, first.err);
  for (const [edit, msg] of [
    [
      (m) => void (m.args.schedule = 'bogus'),
      /corrupt metadata: args\.schedule must be one of cosine, step, constant \(got "bogus"\)/,
    ],
    [
      (m) => void (m.args.seed = -1),
      /corrupt metadata: args\.seed must be an integer in \[0, 2\^32\) \(got -1\)/,
    ],
    [(m) => void (m.args.optimizer = 'lbfgs'), /corrupt metadata: args\.optimizer must be one of sgd, adam/],
    [
      (m) => void (m.args.batchSize = 0),
      /corrupt metadata: args\.batchSize must be a positive integer \(got 0\)/,
    ],
    [(m) => void (m.args.lr = 'fast'), /corrupt metadata: args\.lr must be a positive number \(got "fast"\)/],
    [(m) => void delete m.args.model, /corrupt metadata: args\.model is missing/],
    [(m) => void (m.optimizer.scalars = null as never), /corrupt metadata: optimizer\.scalars null/],
    [(m) => void (m.optimizer.scalars[0].step = 'x'), /corrupt metadata: optimizer\.scalars\.0\.step "x"/],
    [(m) => void (m.optimizer.scalars[0].step = -1), /corrupt metadata: optimizer\.scalars\.0\.step -1/],
    [(m) => void (m.version = 99), /corrupt metadata: version 99/],
  ] as [(m: Meta) => void, RegExp][]) {
    const bad = editMeta(ck, join(out, 'bad.safetensors'), edit);
    for (const given of [[], ['--lr', '0.001']]) {
      const r = await run('train', '--data', dir, '--epochs', '2', '--quiet', '--resume', bad, ...given);
      assert.equal(r.code, 1, `${edit}: ${r.err}`);
      assert.match(r.err, msg, String(edit));
      assert.match(r.err, /^error: (train|loadCheckpoint): .*bad\.safetensors: corrupt metadata: /);
      assert.doesNotMatch(r.err, /\n/, 'one line');
    }
  }
});

it('--resume with --data naming the shipped subset explicitly is the default the checkpoint recorded', async () => {
  const dir = tinyData();
  const out = mkdtempSync(join(tmpdir(), 'mb-cli-default-'));
  const ck = join(out, 'ck.safetensors');
  const first = await run('train', '--data', dir, '--epochs', '1', '--quiet', '--save', ck);
  assert.equal(first.code, 0, first.err);
  // As a run without --data records it (cheaper than training on the shipped subset here).
  const dflt = editMeta(ck, join(out, 'default.safetensors'), (m) => void delete m.args.data);
  const shipped = `${ROOT}/data/../data/fashion-mnist/`;
  // --epochs 1: refused for the epochs, after the settings were accepted (nothing is trained).
  const r = await run('train', '--data', shipped, '--epochs', '1', '--quiet', '--resume', dflt);
  assert.equal(r.code, 1);
  assert.match(r.err, /has already trained 1 epoch/);
  const other = await run('train', '--data', dir, '--epochs', '1', '--quiet', '--resume', dflt);
  assert.match(other.err, /--data .* differs from the checkpoint's \(default\)/);
});

it('bench takes its own options: checked before it starts (one line, exit 2), passed on to bench/run.js', async () => {
  for (const [argv, msg] of [
    [
      ['bench', '--quick', '--only', 'nope'],
      /^error: minibatch: --only: unknown section nope \(expected gemm, ops, mlp, infer, accuracy\)$/m,
    ],
    [['bench', '--json'], /^error: minibatch: Unknown option '--json'/m],
    [['bench', '--only', 'gemm,,ops'], /--only takes a comma-separated list/],
    [['bench', '--peers', ''], /--peers needs a value/],
    [['bench', 'now'], /unexpected argument 'now'/],
    [['--backend', 'js', 'bench'], /--backend is not an option of bench/],
  ] as const) {
    const r = await run(...argv);
    assert.equal(r.code, 2, argv.join(' '));
    assert.match(r.err, msg, argv.join(' '));
    assert.doesNotMatch(r.err, /\n\s+at /, 'no stack trace');
  }
  const missing = await run('bench', '--out', '/nonexistent/dir/b.json');
  assert.equal(missing.code, 1);
  assert.match(missing.err, /^error: minibatch: --out .*: directory \/nonexistent\/dir does not exist$/);
  const help = await run('bench', '--help');
  assert.equal(help.code, 0);
  assert.match(help.out, /^usage: minibatch bench \[--quick\] \[--only /);
  assert.deepEqual(benchArgs(['--quick', '--only=gemm, ops', '--peers', 'tfjs', '--verbose']), {
    args: ['--quick', '--only', 'gemm,ops', '--peers', 'tfjs'],
    verbose: true,
  });
});

it('bench through the installed bin: a bad option is one line; an error the bench script throws is one line too', () => {
  const bin = join(ROOT, 'bin/minibatch.js');
  const r = spawnSync(process.execPath, [bin, 'bench', '--quick', '--only', 'nope'], {
    encoding: 'utf8',
    timeout: 20000,
  });
  assert.equal(r.status, 2, r.stderr);
  assert.equal(
    r.stderr.split('\n')[0],
    'error: minibatch: --only: unknown section nope (expected gemm, ops, mlp, infer, accuracy)',
  );
  assert.doesNotMatch(r.stderr, /\n\s+at /);
  // The bench's own failures: a script that throws (as bench/run.js's strict parse did) is run the same way.
  const dir = mkdtempSync(join(tmpdir(), 'mb-cli-bench-'));
  const script = join(dir, 'throws.mjs');
  writeFileSync(script, "await null;\nthrow new Error('--only: unknown section x\\nsecond line');\n");
  const mainJs = join(ROOT, 'build/src/cli/main.js');
  assert.ok(existsSync(mainJs));
  for (const verbose of [false, true]) {
    const c = spawnSync(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `const { runBenchScript } = await import(${JSON.stringify(mainJs)});` +
          `process.exitCode = runBenchScript(${JSON.stringify(script)}, [], ${verbose});`,
      ],
      { encoding: 'utf8', timeout: 20000 },
    );
    assert.equal(c.status, 1, c.stderr);
    assert.equal(c.stderr.split('\n')[0], 'error: bench: --only: unknown section x');
    if (verbose) assert.match(c.stderr, /\n\s+at /);
    else assert.equal(c.stderr, 'error: bench: --only: unknown section x\n');
  }
});
