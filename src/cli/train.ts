/**
 * `minibatch train`: train a model on Fashion-MNIST (the subset shipped in the package by default) with
 * mini-batches, report test accuracy, and optionally save/resume checkpoints and write an HTML report.
 */
import { realpathSync } from 'node:fs';
import { resolve } from 'node:path';
import cliProgress from 'cli-progress';
import { backendInfo } from '../backend/backend.js';
import { DataLoader } from '../data/dataloader.js';
import { TensorDataset } from '../data/dataset.js';
import { FashionMnistDataset } from '../data/fashion-dataset.js';
import { fashionMnistSearchPath, loadFashionMnist, shippedFashionMnistDir } from '../data/fashion-mnist.js';
import { FormatError, ValueError } from '../errors.js';
import { BatchNorm1d, BatchNorm2d } from '../nn/layers.js';
import { Adagrad } from '../optim/adagrad.js';
import { Adam, AdamW } from '../optim/adam.js';
import { RMSprop } from '../optim/rmsprop.js';
import { constant, cosineAnnealing, type Schedule, stepDecay } from '../optim/schedules.js';
import { SGD } from '../optim/sgd.js';
import type { Precision } from '../tensor/autocast.js';
import { tensor } from '../tensor/creation.js';
import { defaultGenerator, Generator } from '../tensor/random.js';
import type { Tensor } from '../tensor/tensor.js';
import { loadCheckpoint, readCheckpointMeta, saveCheckpoint } from '../train/checkpoint.js';
import { type EpochLog, evaluate, fit } from '../train/fit.js';
import { GradScaler } from '../train/grad-scaler.js';
import { buildModel, MODEL_NAMES, type ModelName, sampleShape } from '../train/models.js';
import { writeReport } from './report.js';

/** A bad command line (a value out of range, an unknown choice): one line plus the usage hint, exit code 2. */
export class UsageError extends ValueError {}

export const SCHEDULES = ['cosine', 'step', 'constant'] as const;
export const PRECISIONS = ['fp32', 'bf16', 'fp16'] as const satisfies readonly Precision[];

export interface TrainArgs {
  data?: string;
  model: ModelName;
  epochs: number;
  batchSize: number;
  optimizer: OptimizerName;
  lr?: number;
  warmupSteps: number;
  schedule: (typeof SCHEDULES)[number];
  accumulate: number;
  precision: Precision;
  workers: number;
  seed: number;
  save?: string;
  resume?: string;
  report?: string;
  json: boolean;
  quiet: boolean;
}

export interface TrainResult {
  backend: string;
  model: string;
  epochs: number;
  batch_size: number;
  train_loss: number;
  test_loss: number;
  test_accuracy: number;
  samples_per_sec: number;
  seconds: number;
  peak_rss_mb: number;
  data: string;
}

/**
 * Which Fashion-MNIST to read: the subset shipped in the package by default (predictable: seconds to train);
 * `full` searches the installed dataset (MINIBATCH_DATA, Debian's /usr/share/datasets/fashion-mnist); anything
 * else is a directory.
 */
export function datasetOptions(data: string | undefined): { dir?: string; searchPath?: string[] } {
  // The installed full dataset only: falling back to the shipped subset would train on a tenth of it unasked.
  if (data === 'full')
    return { searchPath: fashionMnistSearchPath().filter((d) => d !== shippedFashionMnistDir()) };
  const dir = data ?? shippedFashionMnistDir();
  if (!dir)
    throw new ValueError(
      'train',
      'the shipped dataset is missing from this installation; pass --data DIR or --data full',
    );
  return { dir };
}

/** Images as float32 in [0, 1], shaped for the model; labels as int32. */
export function toTensors(images: Uint8Array, labels: Uint8Array, model: ModelName): [Tensor, Tensor] {
  const n = labels.length;
  const x = new Float32Array(images.length);
  for (let i = 0; i < x.length; i++) x[i] = images[i]! / 255;
  return [tensor(x, { shape: [n, ...sampleShape(model)] }), tensor(Int32Array.from(labels))];
}

/** The flags that decide what a run computes (TrainArgs key: flag): `--resume` takes them from the checkpoint. */
export const RUN_SETTINGS = {
  data: 'data',
  model: 'model',
  batchSize: 'batch-size',
  optimizer: 'optimizer',
  lr: 'lr',
  warmupSteps: 'warmup-steps',
  schedule: 'schedule',
  accumulate: 'accumulate',
  precision: 'precision',
  seed: 'seed',
} as const;

/** The CLI's optimizers, each with the lr it trains the MLPs well with when --lr is not given. */
export const OPTIMIZERS = {
  sgd: { lr: 0.05, make: (p: Tensor[], lr: number) => new SGD(p, { lr, momentum: 0.9 }) },
  adam: { lr: 1e-3, make: (p: Tensor[], lr: number) => new Adam(p, { lr }) },
  adamw: { lr: 1e-3, make: (p: Tensor[], lr: number) => new AdamW(p, { lr }) },
  rmsprop: { lr: 1e-3, make: (p: Tensor[], lr: number) => new RMSprop(p, { lr }) },
  adagrad: { lr: 1e-2, make: (p: Tensor[], lr: number) => new Adagrad(p, { lr }) },
} as const;
export type OptimizerName = keyof typeof OPTIMIZERS;
const defaultLr = (optimizer: OptimizerName) => OPTIMIZERS[optimizer].lr;

/** What a value must be: the command line's values and a checkpoint's run settings are held to the same rules. */
export interface Rule {
  ok: (v: unknown) => boolean;
  what: string;
}
const safeInt = (v: unknown): v is number => Number.isSafeInteger(v);
export const RULES = {
  positiveInt: { ok: (v) => safeInt(v) && v > 0, what: 'a positive integer' },
  nonNegativeInt: { ok: (v) => safeInt(v) && v >= 0, what: 'a non-negative integer' },
  positive: {
    ok: (v) => typeof v === 'number' && v > 0 && Number.isFinite(v),
    what: 'a positive number',
  },
  // Epoch seeds are seed·1000 + epoch: beyond 2^32 that sum would lose the epoch in float64.
  seed: { ok: (v) => safeInt(v) && v >= 0 && v < 2 ** 32, what: 'an integer in [0, 2^32)' },
} satisfies Record<string, Rule>;
const choice = (list: readonly string[]): Rule => ({
  ok: (v) => list.includes(v as string),
  what: `one of ${list.join(', ')}`,
});

/** The rule of each setting of a run (TrainArgs key), with the flag that sets it. */
export const SETTING_RULES: Record<string, Rule & { flag: string }> = {
  data: { ok: (v) => typeof v === 'string' && v !== '', what: "a directory or 'full'", flag: 'data' },
  model: { ...choice(MODEL_NAMES), flag: 'model' },
  epochs: { ...RULES.positiveInt, flag: 'epochs' },
  batchSize: { ...RULES.positiveInt, flag: 'batch-size' },
  optimizer: { ...choice(Object.keys(OPTIMIZERS)), flag: 'optimizer' },
  lr: { ...RULES.positive, flag: 'lr' },
  warmupSteps: { ...RULES.nonNegativeInt, flag: 'warmup-steps' },
  schedule: { ...choice(SCHEDULES), flag: 'schedule' },
  accumulate: { ...RULES.positiveInt, flag: 'accumulate' },
  precision: { ...choice(PRECISIONS), flag: 'precision' },
  workers: { ...RULES.nonNegativeInt, flag: 'workers' },
  seed: { ...RULES.seed, flag: 'seed' },
};

/** The same directory, however it was written (`./data/x`, a symlink to it). */
function sameDir(a: string, b: string): boolean {
  const real = (p: string) => {
    try {
      return realpathSync(p);
    } catch {
      return resolve(p);
    }
  };
  return real(a) === real(b);
}

/** --data as the run reads it: undefined for the shipped subset, however it is named. */
function dataSetting(d: string | undefined): string | undefined {
  if (d === undefined || d === 'full') return d;
  const shipped = shippedFashionMnistDir();
  return shipped !== undefined && sameDir(d, shipped) ? undefined : resolve(d);
}

/**
 * `args` for `--resume FILE`: the settings that decide the run (RUN_SETTINGS) come from the checkpoint, so the
 * resumed run continues the one that wrote it; a setting given on the command line (`given`, TrainArgs keys)
 * must agree with it. --epochs, --workers and the outputs stay the command line's. A checkpoint without run
 * arguments (written by `saveCheckpoint` from a user's own loop) leaves `args` as they are. The checkpoint's
 * settings are held to the command line's rules: a hand-edited or damaged one is a FormatError naming the field.
 */
export async function resumeSettings(args: TrainArgs, given: ReadonlySet<string>): Promise<TrainArgs> {
  const path = args.resume!;
  const saved = (await readCheckpointMeta(path)).args;
  if (saved === undefined || saved === null) return args;
  const corrupt = (detail: string) => new FormatError('train', path, `corrupt metadata: ${detail}`);
  if (typeof saved !== 'object' || Array.isArray(saved))
    throw corrupt(`args must be an object (got ${JSON.stringify(saved)})`);
  const was = saved as Record<string, unknown>;
  for (const key of Object.keys(RUN_SETTINGS)) {
    const v = was[key];
    // No lr: the optimizer's default; no data: the shipped subset. The others are always written.
    if (v === undefined && (key === 'lr' || key === 'data')) continue;
    const rule = SETTING_RULES[key]!;
    if (v === undefined) throw corrupt(`args.${key} is missing`);
    if (!rule.ok(v)) throw corrupt(`args.${key} must be ${rule.what} (got ${JSON.stringify(v)})`);
  }
  const out: Record<string, unknown> = { ...args };
  for (const [key, flag] of Object.entries(RUN_SETTINGS)) {
    const mine = (args as unknown as Record<string, unknown>)[key];
    // lr compares as the value used: no --lr means the optimizer's default; data as the directory read.
    const same =
      key === 'lr'
        ? (mine ?? defaultLr(args.optimizer)) === (was.lr ?? defaultLr(was.optimizer as OptimizerName))
        : key === 'data'
          ? dataSetting(mine as string | undefined) === dataSetting(was.data as string | undefined)
          : mine === was[key];
    if (given.has(key)) {
      if (!same) {
        throw new ValueError(
          'train',
          `--${flag} ${mine} differs from the checkpoint's ${was[key] ?? '(default)'} in ${path}: ` +
            'a resumed run keeps the settings it started with',
        );
      }
    } else if (was[key] === undefined) delete out[key];
    else out[key] = was[key];
  }
  return out as unknown as TrainArgs;
}

/** lr after `warmup` linear steps from 0, then the chosen decay over the remaining updates. */
export function makeSchedule(
  kind: TrainArgs['schedule'],
  lr: number,
  warmup: number,
  total: number,
): Schedule {
  const after: Schedule =
    kind === 'cosine'
      ? cosineAnnealing(lr, Math.max(1, total - warmup))
      : kind === 'step'
        ? stepDecay(lr, Math.max(1, Math.ceil((total - warmup) / 3)), 0.1)
        : constant(lr);
  return (step) => (step < warmup ? (lr * (step + 1)) / warmup : after(step - warmup));
}

export async function train(
  args: TrainArgs,
  log: (s: string) => void = (s) => process.stderr.write(`${s}\n`),
): Promise<TrainResult> {
  const t0 = performance.now();
  const ds = loadFashionMnist(datasetOptions(args.data));
  for (const [split, n] of [
    ['train', ds.train.length],
    ['test', ds.test.length],
  ] as const) {
    if (n === 0) throw new ValueError('train', `the ${split} split in ${ds.source} has no images`);
  }
  const [xTrain, yTrain] = toTensors(ds.train.images, ds.train.labels, args.model);
  const [xTest, yTest] = toTensors(ds.test.images, ds.test.labels, args.model);
  const backend = backendInfo().name;
  log(
    `minibatch train: backend ${backend}, model ${args.model}, data ${ds.source} (${ds.train.length} train / ${ds.test.length} test)`,
  );

  defaultGenerator.manualSeed(args.seed);
  const model = buildModel(args.model, new Generator(args.seed));
  const lr = args.lr ?? defaultLr(args.optimizer);
  // The shuffle's generator is re-seeded from (seed, epoch) at each epoch start: a resumed run replays the
  // same orders. With workers, batches are gathered off the main thread from the dataset's own copy.
  const shuffle = new Generator(args.seed);
  const trainSet =
    args.workers > 0
      ? new FashionMnistDataset({
          split: 'train',
          flatten: args.model !== 'cnn',
          ...datasetOptions(args.data),
        })
      : new TensorDataset(xTrain, yTrain);
  // BatchNorm cannot train on one sample (PyTorch refuses too): an epoch whose last batch would be a single
  // sample drops it (1 of N samples) instead of failing there; batch size 1 is refused up front.
  const batchNorm = model.modules().some((m) => m instanceof BatchNorm1d || m instanceof BatchNorm2d);
  if (batchNorm && args.batchSize === 1)
    throw new UsageError(
      'train',
      `--model ${args.model} cannot train with --batch-size 1: BatchNorm needs two samples per batch`,
    );
  const trainLoader = new DataLoader(trainSet, {
    batchSize: args.batchSize,
    dropLast: batchNorm && ds.train.length % args.batchSize === 1,
    shuffle: true,
    generator: shuffle,
    numWorkers: args.workers,
    ...(args.workers > 0 && { persistentWorkers: true }),
  });
  const testLoader = new DataLoader(new TensorDataset(xTest, yTest), { batchSize: 1000 });
  const updatesPerEpoch = Math.ceil(trainLoader.length / args.accumulate);
  const schedule = makeSchedule(args.schedule, lr, args.warmupSteps, updatesPerEpoch * args.epochs);
  const optimizer = OPTIMIZERS[args.optimizer].make(model.parameters(), lr);

  // fp16's loss scale is part of the run: checkpointed with it, so a resumed run scales as the original did.
  const scaler = args.precision === 'fp16' ? new GradScaler() : undefined;
  let startEpoch = 0;
  let startStep = 0;
  const history: EpochLog[] = [];
  if (args.resume) {
    const ck = await loadCheckpoint(args.resume, model, optimizer);
    if (ck.epoch >= args.epochs) {
      throw new ValueError(
        'train',
        `${args.resume} has already trained ${ck.epoch} epoch${ck.epoch === 1 ? '' : 's'}; pass --epochs above ${ck.epoch} to train on`,
      );
    }
    startEpoch = ck.epoch;
    startStep = ck.step;
    if (scaler && ck.scaler) scaler.loadStateDict(ck.scaler);
    history.push(...(ck.history as EpochLog[]));
    log(`resumed from ${args.resume} at epoch ${startEpoch}`);
  }

  const bar = args.quiet
    ? null
    : new cliProgress.SingleBar(
        {
          format:
            'epoch {epoch} |{bar}| {value}/{total} batches | {rate} samples/s | loss {loss} | ETA {eta_formatted}',
          stream: process.stderr,
          hideCursor: true,
          etaBuffer: 50,
        },
        cliProgress.Presets.shades_classic,
      );
  let epochT0 = 0;
  let epochSamples = 0;
  // A live bar's timer keeps the process alive: stopped on every way out of fit, errors included.
  const result = await fitWithBar(bar, () =>
    fit(model, {
      train: trainLoader,
      val: testLoader,
      optimizer,
      epochs: args.epochs,
      accumulateSteps: args.accumulate,
      schedule,
      precision: args.precision,
      ...(scaler && { scaler }),
      startEpoch,
      startStep,
      // Each epoch's shuffle and dropout come from (seed, epoch) alone, so a resumed run repeats them exactly.
      onEpochStart: (epoch) => {
        defaultGenerator.manualSeed(args.seed * 1000 + epoch);
        shuffle.manualSeed(args.seed * 1000 + epoch);
        epochT0 = performance.now();
        epochSamples = 0;
        bar?.start(trainLoader.length, 0, { epoch: epoch + 1, rate: '-', loss: '-' });
      },
      callbacks: {
        onBatchEnd: (b) => {
          epochSamples += b.samples;
          const rate = Math.round(epochSamples / ((performance.now() - epochT0) / 1000));
          bar?.update(b.batch + 1, { loss: b.loss.toFixed(4), rate });
        },
        onEpochEnd: async (e) => {
          bar?.stop();
          history.push(e);
          if (args.save)
            await saveCheckpoint(args.save, {
              model,
              optimizer,
              epoch: e.epoch,
              step: startStep + e.epoch * updatesPerEpoch - startEpoch * updatesPerEpoch,
              history,
              args,
              ...(scaler && { scaler: scaler.stateDict() }),
            });
          // After the checkpoint: an epoch reported done is saved.
          log(
            `epoch ${e.epoch}/${args.epochs}: train loss ${e.trainLoss.toFixed(4)}, test loss ${e.valLoss!.toFixed(4)}, test accuracy ${(100 * e.valAccuracy!).toFixed(2)}%, ${Math.round(e.samples / e.seconds)} samples/s${e.skippedSteps ? `, ${e.skippedSteps} fp16 steps skipped` : ''}`,
          );
          return undefined;
        },
      },
    }),
  );
  trainLoader.close(); // persistent workers end here, so the process exits by itself
  const test = await evaluate(model, testLoader);
  const trainSeconds = result.history.reduce((s, e) => s + e.seconds, 0);
  const trained = result.history.reduce((s, e) => s + e.samples, 0);
  const out: TrainResult = {
    backend,
    model: args.model,
    epochs: args.epochs,
    batch_size: args.batchSize,
    train_loss: history.at(-1)?.trainLoss ?? Number.NaN,
    test_loss: test.loss,
    test_accuracy: test.accuracy,
    samples_per_sec: trained / Math.max(trainSeconds, 1e-9),
    seconds: (performance.now() - t0) / 1000,
    peak_rss_mb: process.resourceUsage().maxRSS / 1024,
    data: ds.source,
  };
  if (args.report) {
    await writeReport(args.report, {
      title: `minibatch train: ${args.model} on Fashion-MNIST`,
      result: { ...out },
      history,
      schedule,
      updates: updatesPerEpoch * args.epochs,
    });
    log(`report written to ${args.report}`);
  }
  return out;
}

/** fit() with the progress bar stopped however it ends (and the cursor it hid shown again). */
async function fitWithBar<T>(bar: cliProgress.SingleBar | null, run: () => Promise<T>): Promise<T> {
  const restore = () => bar?.stop();
  process.once('SIGINT', onInterrupt);
  try {
    return await run();
  } finally {
    restore();
    process.off('SIGINT', onInterrupt);
  }
  function onInterrupt(): void {
    restore(); // cli-progress hides the cursor and turns off line wrapping
    process.exit(130);
  }
}

/** Every setting of `a` against its rule (SETTING_RULES): a bad one is a UsageError naming its flag. */
export function checkTrainArgs(a: TrainArgs): void {
  for (const [key, rule] of Object.entries(SETTING_RULES)) {
    const v = (a as unknown as Record<string, unknown>)[key];
    if (v === undefined && (key === 'lr' || key === 'data')) continue;
    if (!rule.ok(v)) throw new UsageError('train', `--${rule.flag} must be ${rule.what} (got ${v})`);
  }
}
