/**
 * The batch-size profiler: the seed's `profile_batch_sizes`, done properly. For each batch size: warm-up
 * runs, then repeated timed runs; the median and spread of ms per batch, samples/s, the memory it took, and
 * the speedup over batch size 1. A per-sample loop (no batch dimension at all, the seed's "slow" way) is
 * measured as a baseline row. Also: convergence under a fixed training budget, and a batch-size finder.
 */
import { noGrad } from '../autograd/engine.js';
import { checkOptions, MinibatchError, optionKeys, ValueError } from '../errors.js';
import { crossEntropy } from '../nn/losses.js';
import type { Module } from '../nn/module.js';
import { SGD } from '../optim/sgd.js';
import { randint, randn } from '../tensor/creation.js';
import { allocated, indexSelect } from '../tensor/ops.js';
import { Generator } from '../tensor/random.js';
import type { Tensor } from '../tensor/tensor.js';

export type ProfileMode = 'inference' | 'train';

export interface ProfileRow {
  /** Batch size, or 1 for the per-sample loop (see `label`). */
  batch_size: number;
  label: string;
  samples_per_sec: number;
  ms_per_batch: number;
  /** Spread of ms per batch over the timed runs: 25th and 75th percentiles. */
  ms_p25: number;
  ms_p75: number;
  peak_rss_mb: number;
  /** Tensor storage allocated by one batch (forward, or forward + backward + update), MB. */
  alloc_mb_per_batch: number;
  speedup_vs_1: number;
}

const quantile = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  const i = (s.length - 1) * q;
  const lo = Math.floor(i);
  return s[lo]! + (s[Math.min(lo + 1, s.length - 1)]! - s[lo]!) * (i - lo);
};

export interface ProfileOptions {
  /** Builds a fresh model (same seed each time, so every batch size starts equal). */
  makeModel: () => Module;
  sampleShape: number[];
  batchSizes: number[];
  mode: ProfileMode;
  /** Timed runs per batch size (median reported). */
  repeats?: number;
  warmup?: number;
  /** Minimum samples per timed run: small batches are repeated so timer noise stays small. */
  minSamples?: number;
  /** Include the per-sample loop baseline (inference of a model that takes unbatched input: the MLPs). */
  loopBaseline?: boolean;
  /** Measure batch 1 even when `batchSizes` lacks it, as speedup_vs_1's base (default true). */
  speedupBase?: boolean;
  onRow?: (row: ProfileRow) => void;
}
const PROFILE_OPTIONS = optionKeys<ProfileOptions>()([
  'makeModel',
  'sampleShape',
  'batchSizes',
  'mode',
  'repeats',
  'warmup',
  'minSamples',
  'loopBaseline',
  'speedupBase',
  'onRow',
]);

/**
 * The process's peak RSS so far, MB (NaN where there is no process: a browser). Batch sizes run in ascending
 * order, so after a row it is the peak up to and including that batch size (the current RSS can go down).
 */
function peakRssMb(): number {
  const proc = (globalThis as { process?: { resourceUsage?: () => { maxRSS: number } } }).process;
  return proc?.resourceUsage ? proc.resourceUsage().maxRSS / 1024 : Number.NaN;
}

/** BatchNorm's refusal of a batch of one in training (PyTorch's too). */
const batchOfOne = (e: unknown) => e instanceof MinibatchError && e.op === 'batchNorm';

/** Time one batch of `B` samples `reps` times; returns ms per batch for each rep. */
function timeBatches(
  model: Module,
  x: Tensor,
  y: Tensor,
  mode: ProfileMode,
  opt: SGD | null,
  inner: number,
  reps: number,
): { ms: number[]; alloc: number } {
  const once = () => {
    if (mode === 'inference') noGrad(() => model.forward(x));
    else {
      opt!.zeroGrad();
      crossEntropy(model.forward(x), y).backward();
      opt!.step();
    }
  };
  const a0 = allocated.bytes;
  once();
  const alloc = allocated.bytes - a0;
  const ms: number[] = [];
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    for (let i = 0; i < inner; i++) once();
    ms.push((performance.now() - t0) / inner);
  }
  return { ms, alloc };
}

export function profileBatchSizes(o: ProfileOptions): ProfileRow[] {
  checkOptions('profileBatchSizes', o, PROFILE_OPTIONS);
  const { repeats = 7, warmup = 2, minSamples = 512, loopBaseline = true } = o;
  const rows: ProfileRow[] = [];
  let base = Number.NaN;
  const run = (B: number, label: string, perSample: boolean) => {
    const model = o.makeModel();
    model.train(o.mode === 'train');
    const opt = o.mode === 'train' ? new SGD(model.parameters(), { lr: 1e-3, momentum: 0.9 }) : null;
    // Each batch size gets inputs of its own size (the same values: one seed), so the memory a row reports
    // is not that of the largest batch's inputs.
    const gen = new Generator(0);
    let x: Tensor;
    let y: Tensor;
    try {
      x = randn([B, ...o.sampleShape], { generator: gen });
      y = randint(0, 10, [B], { generator: gen });
    } catch (e) {
      if (!(e instanceof RangeError)) throw e;
      throw new ValueError('profile', `batch size ${B}: cannot allocate its inputs (${e.message})`);
    }
    // A per-sample loop feeds one sample at a time with no batch dimension (the seed's slow way); it only
    // applies where the model accepts unbatched input (Linear does, BatchNorm and Conv2d do not).
    const xs = perSample ? x.reshape(o.sampleShape) : x;
    const inner = Math.max(1, Math.ceil(minSamples / B));
    timeBatches(model, xs, y, o.mode, opt, 1, warmup);
    const { ms, alloc } = timeBatches(model, xs, y, o.mode, opt, inner, repeats);
    const med = quantile(ms, 0.5);
    const row: ProfileRow = {
      batch_size: B,
      label,
      samples_per_sec: (B * 1000) / med,
      ms_per_batch: med,
      ms_p25: quantile(ms, 0.25),
      ms_p75: quantile(ms, 0.75),
      peak_rss_mb: peakRssMb(),
      alloc_mb_per_batch: alloc / 2 ** 20,
      speedup_vs_1: 0,
    };
    if (B === 1 && !perSample) base = row.samples_per_sec;
    rows.push(row);
    return row;
  };
  if (loopBaseline && o.mode === 'inference' && o.sampleShape.length === 1) {
    try {
      run(1, 'per-sample loop', true);
    } catch {
      rows.pop(); // models that need a batch dim have no unbatched baseline
    }
  }
  // Batch 1 is always measured: it is the base of speedup_vs_1 (a ratio to the smallest batch scaled by its
  // size would assume batch 1 as fast per batch as it). Where batch 1 cannot train (BatchNorm needs two
  // values per channel) and it was not asked for, there is no base: speedup_vs_1 is NaN (null in JSON).
  const implicit = o.speedupBase !== false && !o.batchSizes.includes(1);
  const sizes = [...new Set([...(implicit ? [1] : []), ...o.batchSizes])].sort((a, b) => a - b);
  for (const B of sizes) {
    try {
      run(B, `batch ${B}`, false);
    } catch (e) {
      if (!(B === 1 && implicit && batchOfOne(e))) throw e;
    }
  }
  for (const r of rows) {
    r.speedup_vs_1 = r.samples_per_sec / base;
    o.onRow?.(r);
  }
  return rows;
}

export interface ConvergenceRow {
  batch_size: number;
  lr: number;
  updates: number;
  /** Samples trained on: the budget exactly when it is a sample budget. */
  samples: number;
  /** Cross-entropy on the first 2,000 training samples after training (eval mode), alike for every batch. */
  final_train_loss: number;
  test_accuracy: number;
  seconds: number;
}

export interface ConvergenceOptions {
  makeModel: () => Module;
  x: Tensor;
  y: Tensor;
  xTest: Tensor;
  yTest: Tensor;
  batchSizes: number[];
  baseLr: number;
  baseBatch: number;
  scaleLr: 'linear' | 'sqrt' | 'none';
  budgetSamples?: number;
  budgetSeconds?: number;
  seed?: number;
  onRow?: (r: ConvergenceRow) => void;
}
const CONVERGENCE_OPTIONS = optionKeys<ConvergenceOptions>()([
  'makeModel',
  'x',
  'y',
  'xTest',
  'yTest',
  'batchSizes',
  'baseLr',
  'baseBatch',
  'scaleLr',
  'budgetSamples',
  'budgetSeconds',
  'seed',
  'onRow',
]);

/**
 * The seed's section 6 trade-offs, measured: the same training budget (samples or seconds) at each batch
 * size, the learning rate scaled from `baseLr` at `baseBatch` by `scaleLr` (linear: lr·B/B0, sqrt: lr·√(B/B0)).
 */
export function profileConvergence(o: ConvergenceOptions): ConvergenceRow[] {
  checkOptions('profileConvergence', o, CONVERGENCE_OPTIONS);
  const rows: ConvergenceRow[] = [];
  const N = o.x.shape[0]!;
  const sizes = [...new Set(o.batchSizes)].sort((a, b) => a - b);
  for (const B of sizes) {
    if (B > N)
      throw new ValueError('profile', `batch size ${B} is larger than the training set (${N} samples)`);
    if (o.budgetSamples !== undefined && B > o.budgetSamples)
      throw new ValueError(
        'profile',
        `batch size ${B} is larger than the budget of ${o.budgetSamples} samples`,
      );
  }
  // The train loss reported: on a fixed slice of the training set after training, the same for every batch
  // size (a running mean of the last steps' losses mixes weights of different ages, and for a batch trained
  // a few times it is mostly the untrained model's loss).
  const lossIdx = Array.from({ length: Math.min(N, 2000) }, (_, i) => i);
  for (const B of sizes) {
    const factor =
      o.scaleLr === 'linear' ? B / o.baseBatch : o.scaleLr === 'sqrt' ? Math.sqrt(B / o.baseBatch) : 1;
    const lr = o.baseLr * factor;
    const model = o.makeModel();
    const opt = new SGD(model.parameters(), { lr, momentum: 0.9 });
    const gen = new Generator(o.seed ?? 0);
    let perm = gen.permutation(N);
    let at = 0;
    let samples = 0;
    let updates = 0;
    const t0 = performance.now();
    const budgetLeft = () =>
      o.budgetSeconds !== undefined
        ? (performance.now() - t0) / 1000 < o.budgetSeconds
        : samples < (o.budgetSamples ?? N);
    while (budgetLeft()) {
      if (at + B > N) {
        perm = gen.permutation(N);
        at = 0;
      }
      // The last step takes only what is left of a sample budget, so every batch size trains on as many
      // samples; a lone leftover sample is dropped (BatchNorm cannot train on one, and samples says so).
      const take = o.budgetSeconds === undefined ? Math.min(B, (o.budgetSamples ?? N) - samples) : B;
      if (take === 1 && B > 1) break;
      const idx = perm.subarray(at, at + take);
      at += take;
      opt.zeroGrad();
      const loss = crossEntropy(model.forward(indexSelect(o.x, 0, idx)), indexSelect(o.y, 0, idx));
      loss.backward();
      opt.step();
      samples += take;
      updates++;
    }
    const seconds = (performance.now() - t0) / 1000;
    model.eval();
    const trainLoss = noGrad(() =>
      crossEntropy(model.forward(indexSelect(o.x, 0, lossIdx)), indexSelect(o.y, 0, lossIdx)).item(),
    );
    const acc = noGrad(() => {
      let right = 0;
      const n = o.xTest.shape[0]!;
      for (let s = 0; s < n; s += 1000) {
        const idx = Array.from({ length: Math.min(1000, n - s) }, (_, i) => s + i);
        const pred = model.forward(indexSelect(o.xTest, 0, idx)).argmax(1);
        right += pred
          .eq(indexSelect(o.yTest, 0, idx))
          .float()
          .sum()
          .item();
      }
      return right / n;
    });
    const row = {
      batch_size: B,
      lr,
      updates,
      samples,
      final_train_loss: trainLoss,
      test_accuracy: acc,
      seconds,
    };
    rows.push(row);
    o.onRow?.(row);
  }
  return rows;
}

/**
 * The largest batch whose training step fits `memoryBudgetMb` (tensor storage allocated per step), and the
 * batch with the best throughput among those that fit (PyTorch Lightning's finder only gives the first).
 */
export function findBatchSize(o: {
  makeModel: () => Module;
  sampleShape: number[];
  memoryBudgetMb: number;
  maxBatch?: number;
}): {
  rows: ProfileRow[];
  largestFitting: number;
  bestThroughput: number;
} {
  checkOptions('findBatchSize', o, ['makeModel', 'sampleShape', 'memoryBudgetMb', 'maxBatch']);
  const rows: ProfileRow[] = [];
  for (let B = 1; B <= (o.maxBatch ?? 8192); B *= 2) {
    let row: ProfileRow | undefined;
    try {
      [row] = profileBatchSizes({
        makeModel: o.makeModel,
        sampleShape: o.sampleShape,
        batchSizes: [B],
        mode: 'train',
        repeats: 3,
        warmup: 1,
        minSamples: 256,
        loopBaseline: false,
        speedupBase: false, // set below, from the batch-1 row
      });
    } catch (e) {
      // Batch 1 cannot train a model with BatchNorm (two values per channel needed): start at 2 then.
      if (B === 1 && batchOfOne(e)) continue;
      throw e;
    }
    if (row!.alloc_mb_per_batch > o.memoryBudgetMb) break;
    rows.push(row!);
  }
  if (!rows.length) return { rows, largestFitting: 0, bestThroughput: 0 };
  const base = rows[0]!.batch_size === 1 ? rows[0]!.samples_per_sec : Number.NaN;
  for (const r of rows) r.speedup_vs_1 = r.samples_per_sec / base;
  const best = rows.reduce((a, b) => (b.samples_per_sec > a.samples_per_sec ? b : a));
  return { rows, largestFitting: rows.at(-1)!.batch_size, bestThroughput: best.batch_size };
}
