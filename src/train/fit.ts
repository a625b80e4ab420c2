/**
 * `fit`: mini-batch training over any model, loss, optimizer and batch source, with evaluation, metrics,
 * callbacks, early stopping, gradient accumulation (seed section 7), learning-rate and batch-size schedules
 * (seed section 6), fp16/bf16 mixed precision with dynamic loss scaling, and atomic checkpoints that resume
 * exactly. A plain PyTorch-style loop over the same pieces works just as well; fit is that loop, once.
 *
 * Step protocol (k = accumulateSteps): for each micro-batch, loss/k is backpropagated (scaled for fp16);
 * after k micro-batches the gradients are unscaled, the lr for that update is set from the schedule, the
 * optimizer steps (skipped on fp16 overflow) and the gradients are zeroed. An epoch's trailing micro-batches
 * that do not fill k are stepped too, so no sample is wasted.
 */
import { noGrad } from '../autograd/engine.js';
import { checkOptions, kindOf, optionKeys, StateError, ValueError } from '../errors.js';
import { crossEntropy } from '../nn/losses.js';
import type { Module } from '../nn/module.js';
import type { Schedule } from '../optim/schedules.js';
import { autocast, type Precision } from '../tensor/autocast.js';
import { argmax, eq, ge, mul, sum } from '../tensor/ops.js';
import type { Tensor } from '../tensor/tensor.js';
import { GradScaler } from './grad-scaler.js';

/** The largest finite fp16 value: a scaled gradient beyond it would be Inf in fp16 storage. */
const FP16_MAX = 65504;

/** Batches of (input, target): a DataLoader, an array, or any (async) iterable. Called per epoch if a function. */
export type BatchSource =
  | Iterable<[Tensor, Tensor]>
  | AsyncIterable<[Tensor, Tensor]>
  | ((epoch: number) => Iterable<[Tensor, Tensor]> | AsyncIterable<[Tensor, Tensor]>);

/** What fit needs of an optimizer (SGD, Adam, AdamW all fit). */
export interface OptimizerLike {
  paramGroups: { lr: number; params: Tensor[] }[];
  step(): void;
  zeroGrad(): void;
}

export interface EpochLog {
  epoch: number;
  trainLoss: number;
  trainAccuracy: number;
  valLoss?: number;
  valAccuracy?: number;
  lr: number;
  samples: number;
  seconds: number;
  skippedSteps: number;
}

export interface BatchLog {
  epoch: number;
  /** Micro-batch index within the epoch. */
  batch: number;
  loss: number;
  samples: number;
  lr: number;
}

export interface FitCallbacks {
  onBatchEnd?(log: BatchLog): void;
  /** Return 'stop' to end training after this epoch. */
  onEpochEnd?(log: EpochLog): undefined | 'stop' | Promise<undefined | 'stop'>;
}

export interface FitOptions {
  train: BatchSource;
  val?: BatchSource;
  optimizer: OptimizerLike;
  epochs: number;
  /** (output, target) -> scalar loss; cross-entropy by default. */
  loss?: (output: Tensor, target: Tensor) => Tensor;
  /** Micro-batches per optimizer update: the update equals one batch k times larger (BatchNorm aside). */
  accumulateSteps?: number;
  /**
   * Learning rate per optimizer update (not per micro-batch), for the first parameter group; the other groups
   * keep their ratio to it (PyTorch's schedulers scale each group's own base lr alike).
   */
  schedule?: Schedule;
  precision?: Precision;
  /** Stop when the monitored metric has not improved for `patience` epochs. */
  earlyStopping?: { monitor?: 'valLoss' | 'valAccuracy'; patience: number; minDelta?: number };
  callbacks?: FitCallbacks;
  /** First epoch to run (resume): epochs before it are taken as done. */
  startEpoch?: number;
  /** Optimizer updates already made (resume): the schedule continues from here. */
  startStep?: number;
  /** Called at each epoch start, e.g. to seed that epoch's shuffle and dropout (exact resume). */
  onEpochStart?(epoch: number): void;
  /** Loss scaler for fp16 (created with PyTorch's defaults when precision is fp16 and none is given). */
  scaler?: GradScaler;
}

const CALLBACKS = optionKeys<FitCallbacks>()(['onBatchEnd', 'onEpochEnd']);
const FIT_OPTIONS = optionKeys<FitOptions>()([
  'train',
  'val',
  'optimizer',
  'epochs',
  'loss',
  'accumulateSteps',
  'schedule',
  'precision',
  'earlyStopping',
  'callbacks',
  'startEpoch',
  'startStep',
  'onEpochStart',
  'scaler',
]);

export interface FitResult {
  history: EpochLog[];
  /** Optimizer updates made, counting from startStep. */
  steps: number;
  stoppedEarly: boolean;
}

async function* batchesOf(op: string, src: BatchSource, epoch: number): AsyncGenerator<[Tensor, Tensor]> {
  const it = typeof src === 'function' ? src(epoch) : src;
  const iterable = it as Partial<AsyncIterable<unknown> & Iterable<unknown>> | null;
  if (
    typeof iterable?.[Symbol.asyncIterator] !== 'function' &&
    typeof iterable?.[Symbol.iterator] !== 'function'
  ) {
    throw new ValueError(
      op,
      `batches come from a DataLoader, an iterable of [x, y] or a function of the epoch returning one (got ${kindOf(it)})`,
    );
  }
  for await (const b of it as AsyncIterable<[Tensor, Tensor]>) yield b;
}

/**
 * [right, counted] class predictions of `out` (classes on dim 1: (N, C) or (N, C, T...)) against int targets of
 * its shape without dim 1; negative targets (ignore_index, -100 by default) are not counted. NaN without int
 * targets.
 */
function correct(out: Tensor, target: Tensor): [number, number] {
  if (target.dtype !== 'int32' || out.rank < 2) return [Number.NaN, 0];
  const valid = ge(target, 0);
  return [sum(mul(eq(argmax(out, 1), target), valid)).item(), sum(valid).item()];
}

/** Mean loss and accuracy of `model` over `data`, in eval mode and without a graph. */
export async function evaluate(
  model: Module,
  data: BatchSource,
  opts: { loss?: (o: Tensor, t: Tensor) => Tensor; epoch?: number } = {},
): Promise<{ loss: number; accuracy: number; samples: number }> {
  checkOptions('evaluate', opts, ['loss', 'epoch']);
  const { loss = (o: Tensor, t: Tensor) => crossEntropy(o, t), epoch = 0 } = opts;
  const was = model.training;
  model.eval();
  let total = 0;
  let right = 0;
  let counted = 0;
  let n = 0;
  try {
    for await (const [x, y] of batchesOf('evaluate', data, epoch)) {
      noGrad(() => {
        const out = model.forward(x);
        const b = x.shape[0]!;
        total += loss(out, y).item() * b;
        const [r, c] = correct(out, y);
        right += r;
        counted += c;
        n += b;
      });
    }
  } finally {
    model.train(was);
  }
  return { loss: total / n, accuracy: right / counted, samples: n };
}

/**
 * Train `model`. Returns the per-epoch history.
 * @example
 * const { history } = await fit(model, { train: loader, val: testLoader, optimizer: new SGD(model.parameters(), { lr: 0.05, momentum: 0.9 }), epochs: 5 });
 */
export async function fit(model: Module, opts: FitOptions): Promise<FitResult> {
  checkOptions('fit', opts, FIT_OPTIONS);
  // Callbacks may carry state of their own (fields, a class instance): only unknown hooks are refused.
  const hook = Object.keys(opts.callbacks ?? {}).find((k) => /^on[A-Z_]/.test(k) && !CALLBACKS.includes(k));
  if (hook) {
    const where = hook === 'onEpochStart' ? "; onEpochStart is an option of fit's own" : '';
    throw new ValueError('fit', `unknown callback '${hook}' (expected ${CALLBACKS.join(' or ')}${where})`);
  }
  checkOptions('fit', opts.earlyStopping, ['monitor', 'patience', 'minDelta']);
  const {
    optimizer,
    epochs,
    accumulateSteps: k = 1,
    precision = 'fp32',
    callbacks = {},
    startEpoch = 0,
  } = opts;
  const lossFn = opts.loss ?? ((o: Tensor, t: Tensor) => crossEntropy(o, t));
  if (!Number.isInteger(k) || k < 1)
    throw new ValueError('fit', `accumulateSteps must be a positive integer (got ${k})`);
  if (!Number.isInteger(epochs) || epochs < 0)
    throw new ValueError('fit', `epochs must be a non-negative integer (got ${epochs})`);
  const scaler = precision === 'fp16' ? (opts.scaler ?? new GradScaler()) : null;
  const params = optimizer.paramGroups.flatMap((g) => g.params);
  const history: EpochLog[] = [];
  let step = opts.startStep ?? 0;
  let best = Number.NaN;
  let sinceBest = 0;
  let stoppedEarly = false;

  /**
   * `fix`: the factor that turns the accumulated gradients into the mean over the group's samples (1 when the
   * group had k micro-batches of one size; see the loop).
   */
  // Each group's lr relative to the first's, kept by the schedule (a resumed run's groups are in that ratio too).
  const lr0 = optimizer.paramGroups[0]?.lr ?? 0;
  const ratios = optimizer.paramGroups.map((g) => (lr0 > 0 ? g.lr / lr0 : 1));
  /** Set the schedule's lr for the coming update `step`, before its micro-batches (so their logs show it). */
  const scheduleLr = () => {
    if (!opts.schedule) return;
    const lr = opts.schedule(step);
    optimizer.paramGroups.forEach((g, i) => {
      g.lr = ratios[i] === 1 ? lr : lr * ratios[i]!;
    });
  };
  if (opts.earlyStopping && !opts.val) {
    const { monitor = 'valLoss' } = opts.earlyStopping;
    throw new ValueError('fit', `earlyStopping monitors ${monitor}, which needs a validation set (val)`);
  }

  const update = (fix: number): boolean => {
    if (fix !== 1) {
      for (const p of params) {
        const g = p.grad?.data as Float32Array | undefined;
        if (g) for (let i = 0; i < g.length; i++) g[i] = Math.fround(g[i]! * fix);
      }
    }
    let ok = true;
    if (scaler) {
      const grads = params.filter((p) => p.grad).map((p) => p.grad!.data as Float32Array);
      // Gradients held in fp16 overflow past its largest finite value: emulated in the unscaling pass.
      const found = precision === 'fp16' ? scaler.unscale(grads, FP16_MAX) : scaler.unscale(grads);
      scaler.update(found);
      ok = !found;
    }
    if (ok) optimizer.step();
    optimizer.zeroGrad();
    step++;
    return ok;
  };

  for (let epoch = startEpoch; epoch < epochs; epoch++) {
    opts.onEpochStart?.(epoch);
    // A DataLoader's batch sampler learns the epoch (a batch-size schedule then resumes at the right size).
    (opts.train as { setEpoch?: (e: number) => void }).setEpoch?.(epoch);
    model.train();
    optimizer.zeroGrad();
    const t0 = performance.now();
    let lossSum = 0;
    let right = 0;
    let n = 0;
    let micro = 0;
    let pending = 0;
    let skipped = 0;
    let counted = 0; // targets the accuracy counts
    let first = 0; // the group's first micro-batch size
    let grouped = 0; // samples in the group so far
    for await (const [x, y] of batchesOf('fit', opts.train, epoch)) {
      const b = x.shape[0]!;
      const { out, loss } = autocast(precision, () => {
        const out = model.forward(x);
        return { out, loss: lossFn(out, y) };
      });
      const lv = loss.item();
      // A non-finite forward loss stops every precision: fp16's loss scale acts on the backward pass only, so
      // skipping steps could not cure it.
      if (!Number.isFinite(lv)) {
        throw new StateError(
          'fit',
          `loss is ${lv} at epoch ${epoch + 1}, batch ${micro + 1}: training stopped (the last checkpoint, if any, is intact)`,
        );
      }
      // The update must equal one batch of the group's samples: each micro-batch's mean loss weighs b / (k·first),
      // exactly 1/k for equal micro-batches; a short or ragged group is corrected at the update (see update).
      if (pending === 0) {
        first = b;
        scheduleLr();
      }
      const scaled = loss.div((k * first) / b);
      (scaler ? scaled.mul(scaler.scale) : scaled).backward();
      pending++;
      grouped += b;
      if (pending === k) {
        if (!update((k * first) / grouped)) skipped++;
        pending = 0;
        grouped = 0;
      }
      lossSum += lv * b;
      const [r, c] = noGrad(() => correct(out, y));
      right += r;
      counted += c;
      n += b;
      callbacks.onBatchEnd?.({ epoch, batch: micro, loss: lv, samples: b, lr: optimizer.paramGroups[0]!.lr });
      micro++;
    }
    if (pending > 0 && !update((k * first) / grouped)) skipped++;
    const log: EpochLog = {
      epoch: epoch + 1,
      trainLoss: lossSum / n,
      trainAccuracy: right / counted,
      lr: optimizer.paramGroups[0]!.lr,
      samples: n,
      seconds: (performance.now() - t0) / 1000,
      skippedSteps: skipped,
    };
    if (opts.val) {
      const v = await evaluate(model, opts.val, { loss: lossFn, epoch });
      log.valLoss = v.loss;
      log.valAccuracy = v.accuracy;
    }
    history.push(log);
    const verdict = await callbacks.onEpochEnd?.(log);
    if (verdict === 'stop') {
      stoppedEarly = true;
      break;
    }
    if (opts.earlyStopping) {
      const { monitor = 'valLoss', patience, minDelta = 0 } = opts.earlyStopping;
      const v = log[monitor]!; // val is given (checked at the start)
      const better =
        Number.isNaN(best) || (monitor === 'valLoss' ? v < best - minDelta : v > best + minDelta);
      if (better) {
        best = v;
        sinceBest = 0;
      } else if (++sinceBest >= patience) {
        stoppedEarly = true;
        break;
      }
    }
  }
  return { history, steps: step - (opts.startStep ?? 0), stoppedEarly };
}
