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
import { clipGradNorm } from '../optim/clip.js';
import type { Schedule } from '../optim/schedules.js';
import { autocast, checkPrecision, type Precision } from '../tensor/autocast.js';
import { argmax, eq, ge, gt, mul, reshape, sum } from '../tensor/ops.js';
import { Tensor } from '../tensor/tensor.js';
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
  /** Awaited when it returns a promise. */
  onBatchEnd?(log: BatchLog): void | Promise<void>;
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
   * keep their ratio to it, and a group whose lr is 0 (frozen) stays at 0. A PyTorch-style scheduler becomes one
   * with `asSchedule`. The ratio is what PyTorch's multiplicative schedulers do per group (LinearLR, StepLR,
   * MultiStepLR, ExponentialLR); a schedule with a floor, such as CosineAnnealingLR's etaMin, has its floor
   * scaled too, where PyTorch gives every group the same floor: for that, step the scheduler on the optimizer
   * in a loop of your own.
   */
  schedule?: Schedule;
  precision?: Precision;
  /**
   * Clip the gradients' total 2-norm to this before each update (`clipGradNorm`; PyTorch Lightning's
   * gradient_clip_val): after accumulation and after fp16 unscaling, as PyTorch's AMP recipe orders it.
   */
  clipGradNorm?: number;
  /**
   * Stop when the monitored metric has not improved by more than `minDelta` for `patience` epochs;
   * `restoreBestWeights` puts back the model's state (parameters and buffers) from the best epoch at the end.
   */
  earlyStopping?: EarlyStopping;
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

export interface EarlyStopping {
  /** The metric to watch (default 'valLoss'; lower is better for the loss, higher for the accuracy). */
  monitor?: 'valLoss' | 'valAccuracy';
  /** Epochs without improvement before stopping: an integer >= 0. */
  patience: number;
  /** The smallest change that counts as an improvement (default 0). */
  minDelta?: number;
  /** Restore the best epoch's model state when training ends (default false; Keras's restore_best_weights). */
  restoreBestWeights?: boolean;
}

const CALLBACKS = optionKeys<FitCallbacks>()(['onBatchEnd', 'onEpochEnd']);
const EARLY_STOPPING = optionKeys<EarlyStopping>()(['monitor', 'patience', 'minDelta', 'restoreBestWeights']);
const FIT_OPTIONS = optionKeys<FitOptions>()([
  'train',
  'val',
  'optimizer',
  'epochs',
  'loss',
  'accumulateSteps',
  'schedule',
  'precision',
  'clipGradNorm',
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

/** Refuses what cannot be a batch source, before any work (a bad `val` used to fail after a training epoch). */
function checkSource(op: string, name: string, src: unknown): void {
  const iterable = src as Partial<AsyncIterable<unknown> & Iterable<unknown>> | null;
  if (
    typeof src !== 'function' &&
    typeof iterable?.[Symbol.asyncIterator] !== 'function' &&
    typeof iterable?.[Symbol.iterator] !== 'function'
  ) {
    throw new ValueError(
      op,
      `${name} must be a DataLoader, an iterable of [x, y] batches or a function of the epoch returning one (got ${kindOf(src)})`,
    );
  }
}

/** The batches of one epoch, each checked to be [input, target] tensors; an epoch without a batch is an error. */
async function* batchesOf(op: string, src: BatchSource, epoch: number): AsyncGenerator<[Tensor, Tensor]> {
  const it = typeof src === 'function' ? src(epoch) : src;
  checkSource(op, 'the batch source', it);
  let any = false;
  for await (const b of it as AsyncIterable<unknown>) {
    if (!Array.isArray(b) || b.length !== 2 || !(b[0] instanceof Tensor) || !(b[1] instanceof Tensor)) {
      const what = Array.isArray(b)
        ? `an array of ${b.length}: ${b.map((v) => (v instanceof Tensor ? 'Tensor' : kindOf(v))).join(', ')}`
        : b !== null && typeof b === 'object' && !(b instanceof Tensor)
          ? `an object with keys ${Object.keys(b).join(', ')}`
          : kindOf(b);
      throw new ValueError(
        op,
        `a batch must be [input, target], two tensors (got ${what}): give a function of the epoch that yields [x, y] from your batches, e.g. train: async function* () { for await (const b of loader) yield [b.x, b.y]; }`,
      );
    }
    any = true;
    yield b as [Tensor, Tensor];
  }
  if (!any) {
    throw new ValueError(
      op,
      `epoch ${epoch + 1} has no batches: the source is empty, or a one-shot iterator that an earlier epoch used up (pass a DataLoader, an array, or a function of the epoch)`,
    );
  }
}

/**
 * [right, counted] class predictions of `out` (classes on dim 1: (N, C) or (N, C, T...)) against int targets of
 * its shape without dim 1; negative targets (ignore_index, -100 by default) are not counted. One logit per
 * sample ((N) or (N, 1), binary cross-entropy with logits) predicts class 1 where it is above 0, against 0/1
 * targets of either dtype. NaN otherwise (regression).
 */
function correct(out: Tensor, target: Tensor): [number, number] {
  const n = out.shape[0] ?? 0;
  if ((out.rank === 1 || (out.rank === 2 && out.shape[1] === 1)) && target.size === n) {
    // Float targets are labels only when every one is 0 or 1 (else a regression: no accuracy).
    const t = reshape(target, [n]);
    const labels =
      t.dtype !== 'float32' || (t.toTypedArray() as Float32Array).every((v) => v === 0 || v === 1);
    return labels ? [sum(eq(gt(reshape(out, [n]), 0), gt(t, 0))).item(), n] : [Number.NaN, 0];
  }
  if (target.dtype !== 'int32' || out.rank < 2) return [Number.NaN, 0];
  const valid = ge(target, 0);
  return [sum(mul(eq(argmax(out, 1), target), valid)).item(), sum(valid).item()];
}

/** A copy of the model's state dict (parameters and buffers), detached from the live tensors. */
function cloneState(model: Module): Record<string, Tensor> {
  return noGrad(() => Object.fromEntries(Object.entries(model.stateDict()).map(([k, t]) => [k, t.clone()])));
}

/** Mean loss and accuracy of `model` over `data`, in eval mode and without a graph, its matmuls in `precision`. */
export async function evaluate(
  model: Module,
  data: BatchSource,
  opts: { loss?: (o: Tensor, t: Tensor) => Tensor; epoch?: number; precision?: Precision } = {},
): Promise<{ loss: number; accuracy: number; samples: number }> {
  checkOptions('evaluate', opts, ['loss', 'epoch', 'precision']);
  checkSource('evaluate', 'data', data);
  const { loss = (o: Tensor, t: Tensor) => crossEntropy(o, t), epoch = 0, precision = 'fp32' } = opts;
  checkPrecision('evaluate', precision);
  const was = model.training;
  model.eval();
  let total = 0;
  let right = 0;
  let counted = 0;
  let n = 0;
  try {
    for await (const [x, y] of batchesOf('evaluate', data, epoch)) {
      noGrad(() => {
        const out = autocast(precision, () => model.forward(x));
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
  checkSource('fit', 'train', opts.train);
  if (opts.val !== undefined) checkSource('fit', 'val', opts.val);
  const opt = opts.optimizer as Partial<OptimizerLike> | undefined;
  if (
    typeof opt?.step !== 'function' ||
    typeof opt.zeroGrad !== 'function' ||
    !Array.isArray(opt.paramGroups)
  ) {
    throw new ValueError(
      'fit',
      `optimizer must be an optimizer (new SGD(model.parameters(), ...)), got ${kindOf(opt)}`,
    );
  }
  if (opts.schedule !== undefined && typeof opts.schedule !== 'function') {
    throw new ValueError(
      'fit',
      `schedule must be a function of the update step returning the lr (got ${kindOf(opts.schedule)}): ` +
        'a PyTorch-style scheduler becomes one with asSchedule((o) => new StepLR(o, {...}), lr), and a constant ' +
        "lr is the optimizer's own",
    );
  }
  checkPrecision('fit', opts.precision ?? 'fp32');
  const clip = opts.clipGradNorm;
  if (clip !== undefined && !(typeof clip === 'number' && clip > 0)) {
    throw new ValueError(
      'fit',
      `clipGradNorm must be a positive number (got ${kindOf(clip)} ${String(clip)})`,
    );
  }
  // Callbacks may carry state of their own (fields, a class instance): only unknown hooks are refused.
  const hook = Object.keys(opts.callbacks ?? {}).find((k) => /^on[A-Z_]/.test(k) && !CALLBACKS.includes(k));
  if (hook) {
    const where = hook === 'onEpochStart' ? "; onEpochStart is an option of fit's own" : '';
    throw new ValueError('fit', `unknown callback '${hook}' (expected ${CALLBACKS.join(' or ')}${where})`);
  }
  checkOptions('fit', opts.earlyStopping, EARLY_STOPPING);
  if (opts.earlyStopping) {
    const { monitor = 'valLoss', patience, minDelta = 0 } = opts.earlyStopping;
    if (monitor !== 'valLoss' && monitor !== 'valAccuracy') {
      throw new ValueError(
        'fit',
        `earlyStopping.monitor must be 'valLoss' or 'valAccuracy' (got ${JSON.stringify(monitor)})`,
      );
    }
    if (!Number.isInteger(patience) || patience < 0) {
      throw new ValueError(
        'fit',
        `earlyStopping.patience must be an integer >= 0 (got ${JSON.stringify(patience)})`,
      );
    }
    if (!(typeof minDelta === 'number' && minDelta >= 0 && Number.isFinite(minDelta))) {
      throw new ValueError(
        'fit',
        `earlyStopping.minDelta must be a finite number >= 0 (got ${JSON.stringify(minDelta)})`,
      );
    }
  }
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
  let bestState: Record<string, Tensor> | undefined;
  let stoppedEarly = false;

  /**
   * `fix`: the factor that turns the accumulated gradients into the mean over the group's samples (1 when the
   * group had k micro-batches of one size; see the loop).
   */
  // Each group's lr relative to the first's, kept by the schedule (a resumed run's groups are in that ratio too);
  // a frozen group (lr 0) stays frozen, as PyTorch's schedulers scale a base lr of 0 to 0.
  const lr0 = optimizer.paramGroups[0]?.lr ?? 0;
  const ratios = optimizer.paramGroups.map((g) => (g.lr === 0 ? 0 : lr0 > 0 ? g.lr / lr0 : 1));
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
    if (ok && clip !== undefined) clipGradNorm(params, clip);
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
      await callbacks.onBatchEnd?.({
        epoch,
        batch: micro,
        loss: lv,
        samples: b,
        lr: optimizer.paramGroups[0]!.lr,
      });
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
      // Under the training precision, as PyTorch Lightning validates under its autocast.
      const v = await evaluate(model, opts.val, { loss: lossFn, epoch, precision });
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
      const { monitor = 'valLoss', patience, minDelta = 0, restoreBestWeights } = opts.earlyStopping;
      const v = log[monitor]!; // val is given (checked at the start)
      const better =
        Number.isNaN(best) || (monitor === 'valLoss' ? v < best - minDelta : v > best + minDelta);
      if (better) {
        best = v;
        sinceBest = 0;
        // Copies: the model's own tensors change in place at the next update.
        if (restoreBestWeights) bestState = cloneState(model);
      } else if (++sinceBest >= patience) {
        stoppedEarly = true;
        break;
      }
    }
  }
  if (bestState) model.loadStateDict(bestState);
  return { history, steps: step - (opts.startStep ?? 0), stoppedEarly };
}
