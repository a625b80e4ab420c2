/**
 * Learning-rate schedules.
 *
 * Two forms of the same curves:
 * - pure functions of the step, `(step) => lr` (llm.c `schedulers.h`, optax): an optimizer takes
 *   `number | Schedule`, and a schedule can be printed without training;
 * - PyTorch's stateful schedulers (`LambdaLR`, `MultiplicativeLR`, `ConstantLR`, `LinearLR`, `PolynomialLR`,
 *   `StepLR`, `MultiStepLR`, `ExponentialLR`, `CosineAnnealingLR`, `CosineAnnealingWarmRestarts`, `CyclicLR`,
 *   `OneCycleLR`, `SequentialLR`), which rewrite `optimizer.paramGroups[i].lr` on each `step()` with PyTorch's
 *   own (often recursive) formulas, so a training script ported from PyTorch gets its learning rates step for
 *   step, quirks included; `ReduceLROnPlateau`, which steps on a validation metric instead of a step count.
 *
 * Step t counts from 0: `schedule(t)` is the lr of the t-th optimizer step, which is what a PyTorch optimizer
 * sees after `t` calls of `scheduler.step()` (PyTorch's `last_epoch`).
 */
import { checkOptions, kindOf, optionKeys, ValueError } from '../errors.js';

/** A learning rate as a pure function of the 0-based step. */
export type Schedule = (step: number) => number;

/**
 * The same learning rate at every step.
 *
 * @example
 * constant(0.1)(1000); // 0.1
 */
export function constant(lr: number): Schedule {
  return () => lr;
}

/**
 * Linear warm-up from `lr * startFactor` at step 0 to `lr` at `warmupSteps`, then constant: PyTorch's
 * `LinearLR(start_factor, end_factor=1, total_iters=warmupSteps)` in closed form. The default start 0 is the
 * common recipe (Hugging Face `get_linear_schedule_with_warmup`); PyTorch requires a start above 0.
 *
 * @example
 * const s = linearWarmup(0.1, 4); // 0, 0.025, 0.05, 0.075, 0.1, 0.1, ...
 */
export function linearWarmup(lr: number, warmupSteps: number, startFactor = 0): Schedule {
  checkCount('linearWarmup', 'warmupSteps', warmupSteps, 0);
  if (warmupSteps === 0) return constant(lr);
  return (step) => lr * (startFactor + ((1 - startFactor) * Math.min(step, warmupSteps)) / warmupSteps);
}

/**
 * Cosine from `lr` at step 0 down to `etaMin` at `tMax`: `etaMin + (lr - etaMin)(1 + cos(pi t / tMax)) / 2`.
 * NOTE: like PyTorch's `CosineAnnealingLR`, this is a plain cosine: past `tMax` it rises again (period
 * 2 tMax). Set `tMax` to the number of steps you train.
 *
 * @example
 * const s = cosineAnnealing(0.1, 100, 0.001); // s(0) = 0.1, s(50) = 0.0505, s(100) = 0.001
 */
export function cosineAnnealing(lr: number, tMax: number, etaMin = 0): Schedule {
  checkPositive('cosineAnnealing', 'tMax', tMax);
  return (step) => etaMin + ((lr - etaMin) * (1 + Math.cos((Math.PI * step) / tMax))) / 2;
}

/**
 * Multiply by `gamma` every `stepSize` steps: `lr * gamma ** floor(t / stepSize)` (PyTorch `StepLR`).
 *
 * @example
 * const s = stepDecay(0.1, 30); // 0.1 for steps 0-29, 0.01 for 30-59, ...
 * const batchSize = (epoch: number) => Math.min(stepDecay(32, 10, 2)(epoch), 256); // the seed's schedule
 */
export function stepDecay(lr: number, stepSize: number, gamma = 0.1): Schedule {
  checkCount('stepDecay', 'stepSize', stepSize, 1);
  return (step) => lr * gamma ** Math.floor(step / stepSize);
}

/** Options of {@link warmupCosine}. */
export interface WarmupCosineOptions {
  /** lr at step 0 as a fraction of `lr` (default 0). */
  startFactor?: number;
  /** lr at `totalSteps` (default 0). */
  etaMin?: number;
}

/**
 * Linear warm-up for `warmupSteps`, then cosine down to `etaMin` at `totalSteps`: the values PyTorch's
 * `SequentialLR([LinearLR(start_factor, total_iters=W), CosineAnnealingLR(T_max=T-W, eta_min)], [W])` gives.
 *
 * @example
 * const s = warmupCosine(3e-4, 100, 5000, { startFactor: 0.1 }); // s(0) = 3e-5, s(100) = 3e-4, s(5000) = 0
 */
export function warmupCosine(
  lr: number,
  warmupSteps: number,
  totalSteps: number,
  options: WarmupCosineOptions = {},
): Schedule {
  checkOptions('warmupCosine', options, optionKeys<WarmupCosineOptions>()(['startFactor', 'etaMin']));
  const { startFactor = 0, etaMin = 0 } = options;
  checkCount('warmupCosine', 'warmupSteps', warmupSteps, 0);
  if (!(totalSteps > warmupSteps)) {
    throw new ValueError(
      'warmupCosine',
      `totalSteps must exceed warmupSteps (got ${totalSteps}, expected more than ${warmupSteps})`,
    );
  }
  const warm = linearWarmup(lr, warmupSteps, startFactor);
  const cos = cosineAnnealing(lr, totalSteps - warmupSteps, etaMin);
  return (step) => (step < warmupSteps ? warm(step) : cos(step - warmupSteps));
}

/**
 * The learning rates a PyTorch-style scheduler would produce, as a pure {@link Schedule}: it replays the
 * scheduler on a stand-in optimizer with one group at `baseLr` (once; values are remembered).
 *
 * @example
 * const s = asSchedule((opt) => new CosineAnnealingLR(opt, { tMax: 10 }), 0.1);
 * console.log(Array.from({ length: 12 }, (_, t) => s(t))); // print it without training
 */
export function asSchedule(make: (optimizer: OptimizerLike) => Scheduler, baseLr: number): Schedule {
  const group: ParamGroupLike = { lr: baseLr };
  const scheduler = make({ paramGroups: [group] });
  const lrs = [group.lr];
  return (step) => {
    checkCount('asSchedule', 'step', step, 0);
    while (lrs.length <= step) {
      scheduler.step();
      lrs.push(group.lr);
    }
    return lrs[step]!;
  };
}

// ---- PyTorch-style schedulers ---------------------------------------------------------------------------

/** A parameter group as schedulers see it. `initialLr` is PyTorch's `initial_lr`, set by the first scheduler. */
export interface ParamGroupLike {
  lr: number;
  initialLr?: number;
}

/** Anything with PyTorch-like parameter groups: every minibatch optimizer. */
export interface OptimizerLike {
  paramGroups: ParamGroupLike[];
}

/**
 * What every step-counting scheduler offers (PyTorch `LRScheduler`'s public surface). `ReduceLROnPlateau`
 * steps on a metric instead, and offers `getLastLr` only.
 */
export interface Scheduler {
  step(): void;
  getLastLr(): number[];
}

/** A scheduler's hyper-parameter as its state dict keeps it: JSON-able. */
export type SchedulerOption = number | boolean | string | readonly number[];

/**
 * A function a scheduler calls with the step (LambdaLR's `lrLambda`, CyclicLR's `scaleFn`). Code is not in a
 * state dict (PyTorch does not save a plain function either): build the scheduler with it again, then load.
 */
export type StepFunction = (step: number) => number;

/** `LRScheduler.stateDict()`: PyTorch's `last_epoch`, `base_lrs`, `_last_lr` and the hyper-parameters. */
export interface SchedulerState {
  lastEpoch: number;
  baseLrs: number[];
  lastLr: number[];
  options: Record<string, SchedulerOption>;
}

/**
 * PyTorch's `LRScheduler`: the constructor records each group's `initialLr` (if no scheduler did yet), takes
 * those as the base lrs and performs step 0. `step()` applies the recursive (chainable) formula to the groups'
 * current lr; `step(epoch)` (what SequentialLR uses at a milestone) jumps to the closed form at `epoch`.
 * NOTE: as in PyTorch, `loadStateDict` restores the scheduler only; the optimizer's lr comes back with the
 * optimizer's own state. A subclass keeps its hyper-parameters in `options` and its functions in `fns`, not in
 * fields of its own: the base constructor already calls `chainedLr`, before a subclass's fields are initialized.
 */
export abstract class LRScheduler<O extends Record<string, SchedulerOption> = Record<string, SchedulerOption>>
  implements Scheduler
{
  /** Number of `step()` calls since construction (PyTorch's `last_epoch`). */
  lastEpoch = -1;
  baseLrs: number[];
  private lastLr: number[] = [];

  constructor(
    readonly optimizer: OptimizerLike,
    protected readonly options: O,
    /** Functions of the step the formulas call; not in the state dict. */
    protected readonly fns: readonly StepFunction[] = [],
  ) {
    for (const g of optimizer.paramGroups) g.initialLr ??= g.lr;
    this.baseLrs = optimizer.paramGroups.map((g) => g.initialLr!);
    this.step();
  }

  /** Advance one step and write the new lr into every parameter group. */
  step(epoch?: number): void {
    let lrs: number[];
    if (epoch === undefined) {
      this.lastEpoch++;
      lrs = this.chainedLr(this.optimizer.paramGroups.map((g) => g.lr));
    } else {
      this.lastEpoch = epoch;
      lrs = this.baseLrs.map((base, i) => this.closedFormLr(base, i));
    }
    this.optimizer.paramGroups.forEach((g, i) => {
      g.lr = lrs[i]!;
    });
    this.lastLr = this.optimizer.paramGroups.map((g) => g.lr);
  }

  /** The lr of each group as set by the last step. */
  getLastLr(): number[] {
    return [...this.lastLr];
  }

  /**
   * A JSON-able snapshot: step count, base and last lrs, hyper-parameters.
   *
   * @example
   * writeFileSync('sched.json', JSON.stringify(sched.stateDict()));
   */
  stateDict(): SchedulerState {
    return {
      lastEpoch: this.lastEpoch,
      baseLrs: [...this.baseLrs],
      lastLr: [...this.lastLr],
      options: copyOptions(this.options),
    };
  }

  /**
   * Continue from a {@link stateDict} snapshot of the same kind of scheduler, for as many parameter groups.
   * Anything else (a PyTorch `state_dict()`, null) is refused before the scheduler is touched.
   *
   * @example
   * sched.loadStateDict(JSON.parse(readFileSync('sched.json', 'utf8')));
   */
  loadStateDict(state: SchedulerState): void {
    const op = `${this.constructor.name}.loadStateDict`;
    checkState(op, state, this.stateKeys(), Object.keys(this.options));
    const groups = this.optimizer.paramGroups.length;
    checkGroupCount(op, 'baseLrs', state.baseLrs, groups);
    checkGroupCount(op, 'lastLr', state.lastLr, groups);
    this.lastEpoch = state.lastEpoch;
    this.baseLrs = [...state.baseLrs];
    this.lastLr = [...state.lastLr];
    Object.assign(this.options, copyOptions(state.options));
  }

  /** The keys of this scheduler's {@link stateDict}, all required by {@link loadStateDict}. */
  protected stateKeys(): readonly string[] {
    return SCHEDULER_STATE_KEYS;
  }

  /** PyTorch `get_lr()`: the next lr of each group from its current one, at `this.lastEpoch`. */
  protected abstract chainedLr(current: number[]): number[];
  /** PyTorch `_get_closed_form_lr()`: the lr of group `group` at `this.lastEpoch` from its base lr. */
  protected abstract closedFormLr(base: number, group: number): number;
}

/** Options of {@link LinearLR}, PyTorch's defaults. */
export interface LinearLROptions {
  /** Factor at step 0, in (0, 1] (default 1/3). */
  startFactor?: number;
  /** Factor from `totalIters` on, in [0, 1] (default 1). */
  endFactor?: number;
  /** Steps to go from start to end (default 5). */
  totalIters?: number;
}

/**
 * `torch.optim.lr_scheduler.LinearLR`: `lr = base * (s + (e - s) * min(t, T) / T)`, computed as PyTorch
 * does by `lr_t = lr_{t-1} * (1 + (e - s) / (T s + (t - 1)(e - s)))`, whose rounding differs from the closed
 * form in the last bits (0.09999999999999999 rather than 0.1).
 *
 * @example
 * const opt = { paramGroups: [{ lr: 0.05 }] };
 * const sched = new LinearLR(opt, { startFactor: 0.5, totalIters: 4 }); // opt lr: 0.025
 * sched.step(); // 0.03125, then 0.0375, 0.04375, 0.05, 0.05, ...
 */
export class LinearLR extends LRScheduler<Required<LinearLROptions>> {
  constructor(optimizer: OptimizerLike, options: LinearLROptions = {}) {
    checkOptions(
      'LinearLR',
      options,
      optionKeys<LinearLROptions>()(['startFactor', 'endFactor', 'totalIters']),
    );
    const { startFactor = 1 / 3, endFactor = 1, totalIters = 5 } = options;
    if (!(startFactor > 0 && startFactor <= 1)) {
      throw new ValueError('LinearLR', `startFactor must be in (0, 1] (got ${startFactor})`);
    }
    if (!(endFactor >= 0 && endFactor <= 1)) {
      throw new ValueError('LinearLR', `endFactor must be in [0, 1] (got ${endFactor})`);
    }
    checkCount('LinearLR', 'totalIters', totalIters, 1);
    super(optimizer, { startFactor, endFactor, totalIters });
  }

  protected chainedLr(current: number[]): number[] {
    const { startFactor: s, endFactor: e, totalIters: T } = this.options;
    const t = this.lastEpoch;
    if (t === 0) return current.map((lr) => lr * s);
    if (t > T) return current;
    return current.map((lr) => lr * (1 + (e - s) / (T * s + (t - 1) * (e - s))));
  }

  protected closedFormLr(base: number): number {
    const { startFactor: s, endFactor: e, totalIters: T } = this.options;
    return base * (s + ((e - s) * Math.min(T, this.lastEpoch)) / T);
  }
}

/** Options of {@link CosineAnnealingLR}. */
export interface CosineAnnealingLROptions {
  /** Half-period in steps: the lr reaches `etaMin` at `tMax`. */
  tMax: number;
  /** Minimum lr (default 0). */
  etaMin?: number;
}

/**
 * `torch.optim.lr_scheduler.CosineAnnealingLR`, with PyTorch's recursive update
 * `lr_t = etaMin + (lr_{t-1} - etaMin)(1 + cos(pi t/T)) / (1 + cos(pi (t-1)/T))` and its special case where
 * that denominator is 0 (t - 1 - T a multiple of 2T). No restarts: past `tMax` the lr rises again.
 *
 * @example
 * const opt = { paramGroups: [{ lr: 0.1 }] };
 * const sched = new CosineAnnealingLR(opt, { tMax: 10, etaMin: 0.001 });
 * for (let t = 0; t < 10; t++) { train(); sched.step(); } // opt lr: 0.001
 */
export class CosineAnnealingLR extends LRScheduler<Required<CosineAnnealingLROptions>> {
  constructor(optimizer: OptimizerLike, options: CosineAnnealingLROptions) {
    checkOptions('CosineAnnealingLR', options, optionKeys<CosineAnnealingLROptions>()(['tMax', 'etaMin']));
    const { tMax, etaMin = 0 } = options ?? {}; // a JavaScript caller may leave it out: tMax is then refused
    checkPositive('CosineAnnealingLR', 'tMax', tMax);
    super(optimizer, { tMax, etaMin });
  }

  protected chainedLr(current: number[]): number[] {
    const { tMax, etaMin } = this.options;
    const t = this.lastEpoch;
    if (t === 0) return current;
    if (pyMod(t - 1 - tMax, 2 * tMax) === 0) {
      return current.map((lr, i) => lr + ((this.baseLrs[i]! - etaMin) * (1 - Math.cos(Math.PI / tMax))) / 2);
    }
    return current.map(
      (lr) =>
        ((1 + Math.cos((Math.PI * t) / tMax)) / (1 + Math.cos((Math.PI * (t - 1)) / tMax))) * (lr - etaMin) +
        etaMin,
    );
  }

  protected closedFormLr(base: number): number {
    const { tMax, etaMin } = this.options;
    return etaMin + ((base - etaMin) * (1 + Math.cos((Math.PI * this.lastEpoch) / tMax))) / 2;
  }
}

/** Options of {@link StepLR}. */
export interface StepLROptions {
  /** Steps between decays. */
  stepSize: number;
  /** Decay factor (default 0.1). */
  gamma?: number;
}

/**
 * `torch.optim.lr_scheduler.StepLR`: multiply the lr by `gamma` every `stepSize` steps.
 *
 * @example
 * const sched = new StepLR(opt, { stepSize: 30, gamma: 0.1 }); // 0.1 -> 0.01 after 30 step() calls
 */
export class StepLR extends LRScheduler<Required<StepLROptions>> {
  constructor(optimizer: OptimizerLike, options: StepLROptions) {
    checkOptions('StepLR', options, optionKeys<StepLROptions>()(['stepSize', 'gamma']));
    const { stepSize, gamma = 0.1 } = options ?? {}; // as above: stepSize is then refused
    checkCount('StepLR', 'stepSize', stepSize, 1);
    super(optimizer, { stepSize, gamma });
  }

  protected chainedLr(current: number[]): number[] {
    const { stepSize, gamma } = this.options;
    if (this.lastEpoch === 0 || this.lastEpoch % stepSize !== 0) return current;
    return current.map((lr) => lr * gamma);
  }

  protected closedFormLr(base: number): number {
    const { stepSize, gamma } = this.options;
    return base * gamma ** Math.floor(this.lastEpoch / stepSize);
  }
}

/** Options of {@link MultiStepLR}. */
export interface MultiStepLROptions {
  /** Steps at which the lr is multiplied by gamma, increasing. */
  milestones: readonly number[];
  /** Decay factor (default 0.1). */
  gamma?: number;
}

/**
 * `torch.optim.lr_scheduler.MultiStepLR`: multiply the lr by `gamma` at each milestone (a milestone listed twice
 * decays twice, as PyTorch's Counter does).
 *
 * @example
 * const sched = new MultiStepLR(opt, { milestones: [30, 80] }); // 0.1 -> 0.01 at 30 -> 0.001 at 80
 */
export class MultiStepLR extends LRScheduler<{ milestones: readonly number[]; gamma: number }> {
  constructor(optimizer: OptimizerLike, options: MultiStepLROptions) {
    checkOptions('MultiStepLR', options, optionKeys<MultiStepLROptions>()(['milestones', 'gamma']));
    const { milestones, gamma = 0.1 } = options ?? {}; // a JavaScript caller may leave it out
    if (!Array.isArray(milestones) || milestones.length === 0)
      throw new ValueError('MultiStepLR', 'milestones must be a non-empty array of steps');
    for (const m of milestones) checkCount('MultiStepLR', 'milestones', m, 1);
    if (milestones.some((m, i) => i > 0 && m < milestones[i - 1]!))
      throw new ValueError('MultiStepLR', `milestones must be increasing (got ${milestones.join(', ')})`);
    super(optimizer, { milestones: [...milestones], gamma });
  }

  protected chainedLr(current: number[]): number[] {
    const { milestones, gamma } = this.options;
    const hits = milestones.filter((m) => m === this.lastEpoch).length;
    return hits ? current.map((lr) => lr * gamma ** hits) : current;
  }

  protected closedFormLr(base: number): number {
    const { milestones, gamma } = this.options;
    return base * gamma ** milestones.filter((m) => m <= this.lastEpoch).length;
  }
}

/**
 * `torch.optim.lr_scheduler.ExponentialLR`: multiply the lr by `gamma` every step.
 *
 * @example
 * const sched = new ExponentialLR(opt, { gamma: 0.9 }); // 0.1, 0.09, 0.081, ...
 */
export class ExponentialLR extends LRScheduler<{ gamma: number }> {
  constructor(optimizer: OptimizerLike, options: { gamma: number }) {
    checkOptions('ExponentialLR', options, ['gamma']);
    const { gamma } = options ?? {};
    if (typeof gamma !== 'number' || !(gamma > 0))
      throw new ValueError('ExponentialLR', `gamma must be a positive number (got ${String(gamma)})`);
    super(optimizer, { gamma });
  }

  protected chainedLr(current: number[]): number[] {
    return this.lastEpoch === 0 ? current : current.map((lr) => lr * this.options.gamma);
  }

  protected closedFormLr(base: number): number {
    return base * this.options.gamma ** this.lastEpoch;
  }
}

/** Options of {@link LambdaLR}. */
export interface LambdaLROptions {
  /** The lr's factor at step t (of the base lr), for every group or one function per group. */
  lrLambda: StepFunction | readonly StepFunction[];
}

/**
 * `torch.optim.lr_scheduler.LambdaLR`: `lr = base * lrLambda(t)`, one function for every group or one per
 * group. As in PyTorch the functions are not in the state dict: build the scheduler with the same functions,
 * then load the state. A function that returns anything but a finite number is refused at that step.
 *
 * @example
 * const sched = new LambdaLR(opt, { lrLambda: (t) => Math.min(1, (t + 1) / 100) }); // 100 warm-up steps
 * new LambdaLR(opt2, { lrLambda: [(t) => Math.floor(t / 30), (t) => 0.95 ** t] }); // a function per group
 */
export class LambdaLR extends LRScheduler<Record<string, never>> {
  constructor(optimizer: OptimizerLike, options: LambdaLROptions) {
    checkOptions('LambdaLR', options, optionKeys<LambdaLROptions>()(['lrLambda']));
    const { lrLambda } = options ?? {}; // a JavaScript caller may leave it out: lrLambda is then refused
    super(optimizer, {}, perGroupFunctions('LambdaLR', 'lrLambda', lrLambda, optimizer.paramGroups.length));
  }

  protected chainedLr(): number[] {
    return this.baseLrs.map((base, i) => this.closedFormLr(base, i));
  }

  protected closedFormLr(base: number, group: number): number {
    return base * callStepFunction('LambdaLR', 'lrLambda', this.fns[group]!, this.lastEpoch, group);
  }
}

/** Options of {@link MultiplicativeLR}. */
export interface MultiplicativeLROptions {
  /** The factor the current lr is multiplied by at step t >= 1, for every group or one function per group. */
  lrLambda: StepFunction | readonly StepFunction[];
}

/**
 * `torch.optim.lr_scheduler.MultiplicativeLR`: `lr_t = lr_{t-1} * lrLambda(t)` from step 1 on. As in LambdaLR,
 * the functions are not in the state dict. PyTorch has no closed form for it: `step(epoch)` (SequentialLR's
 * restart) multiplies the current lr by `lrLambda(epoch)`, and leaves it at epoch 0.
 *
 * @example
 * const sched = new MultiplicativeLR(opt, { lrLambda: () => 0.95 }); // 0.1, 0.095, 0.09025, ...
 */
export class MultiplicativeLR extends LRScheduler<Record<string, never>> {
  constructor(optimizer: OptimizerLike, options: MultiplicativeLROptions) {
    checkOptions('MultiplicativeLR', options, optionKeys<MultiplicativeLROptions>()(['lrLambda']));
    const { lrLambda } = options ?? {};
    super(
      optimizer,
      {},
      perGroupFunctions('MultiplicativeLR', 'lrLambda', lrLambda, optimizer.paramGroups.length),
    );
  }

  protected chainedLr(current: number[]): number[] {
    return current.map((lr, i) => this.next(lr, i));
  }

  protected closedFormLr(_base: number, group: number): number {
    return this.next(this.optimizer.paramGroups[group]!.lr, group);
  }

  private next(lr: number, group: number): number {
    const t = this.lastEpoch;
    return t > 0 ? lr * callStepFunction('MultiplicativeLR', 'lrLambda', this.fns[group]!, t, group) : lr;
  }
}

/** Options of {@link ConstantLR}, PyTorch's defaults. */
export interface ConstantLROptions {
  /** Factor of the lr until `totalIters`, in (0, 1] (default 1/3). */
  factor?: number;
  /** Steps at the reduced lr (default 5). */
  totalIters?: number;
}

/**
 * `torch.optim.lr_scheduler.ConstantLR`: `base * factor` for the first `totalIters` steps, then `base`; computed
 * as PyTorch does, by multiplying the current lr by `factor` at step 0 and by `1 / factor` at `totalIters`.
 * PyTorch takes factor 0 and then divides by zero at `totalIters`: it is refused here.
 *
 * @example
 * const sched = new ConstantLR(opt, { factor: 0.5, totalIters: 4 }); // 0.05: 0.025 for 4 steps, then 0.05
 */
export class ConstantLR extends LRScheduler<Required<ConstantLROptions>> {
  constructor(optimizer: OptimizerLike, options: ConstantLROptions = {}) {
    checkOptions('ConstantLR', options, optionKeys<ConstantLROptions>()(['factor', 'totalIters']));
    const { factor = 1 / 3, totalIters = 5 } = options;
    if (!(factor > 0 && factor <= 1)) {
      throw new ValueError(
        'ConstantLR',
        `factor must be in (0, 1]: the lr is multiplied by it, then divided by it at totalIters (got ${factor})`,
      );
    }
    checkCount('ConstantLR', 'totalIters', totalIters, 1);
    super(optimizer, { factor, totalIters });
  }

  protected chainedLr(current: number[]): number[] {
    const { factor, totalIters } = this.options;
    const t = this.lastEpoch;
    if (t === 0) return current.map((lr) => lr * factor);
    if (t !== totalIters) return current;
    return current.map((lr) => lr * (1 / factor));
  }

  protected closedFormLr(base: number): number {
    const { factor, totalIters } = this.options;
    return base * (factor + (this.lastEpoch >= totalIters ? 1 - factor : 0));
  }
}

/** Options of {@link PolynomialLR}, PyTorch's defaults. */
export interface PolynomialLROptions {
  /** Steps to decay the lr to 0 over (default 5). */
  totalIters?: number;
  /** Power of the polynomial, >= 0 (default 1: linear). */
  power?: number;
}

/**
 * `torch.optim.lr_scheduler.PolynomialLR`: `lr = base * (1 - min(t, T) / T) ** power`, 0 from `totalIters` on;
 * computed as PyTorch does, by multiplying the current lr by `((1 - t/T) / (1 - (t-1)/T)) ** power`.
 *
 * @example
 * const sched = new PolynomialLR(opt, { totalIters: 4 }); // 0.001: 0.00075, 0.0005, 0.00025, 0, 0, ...
 */
export class PolynomialLR extends LRScheduler<Required<PolynomialLROptions>> {
  constructor(optimizer: OptimizerLike, options: PolynomialLROptions = {}) {
    checkOptions('PolynomialLR', options, optionKeys<PolynomialLROptions>()(['totalIters', 'power']));
    const { totalIters = 5, power = 1 } = options;
    checkCount('PolynomialLR', 'totalIters', totalIters, 1);
    if (!(power >= 0 && power < Number.POSITIVE_INFINITY)) {
      throw new ValueError('PolynomialLR', `power must be a finite number >= 0 (got ${power})`);
    }
    super(optimizer, { totalIters, power });
  }

  protected chainedLr(current: number[]): number[] {
    const { totalIters: T, power } = this.options;
    const t = this.lastEpoch;
    if (t === 0 || t > T) return current;
    const decay = ((1 - t / T) / (1 - (t - 1) / T)) ** power;
    return current.map((lr) => lr * decay);
  }

  protected closedFormLr(base: number): number {
    const { totalIters: T, power } = this.options;
    return base * (1 - Math.min(T, this.lastEpoch) / T) ** power;
  }
}

/** Options of {@link CosineAnnealingWarmRestarts}. */
export interface CosineAnnealingWarmRestartsOptions {
  /** Steps until the first restart (PyTorch's `T_0`). */
  t0: number;
  /** Each period is `tMult` times the one before, an integer >= 1 (PyTorch's `T_mult`; default 1). */
  tMult?: number;
  /** Minimum lr (default 0). */
  etaMin?: number;
}

/** `CosineAnnealingWarmRestarts.stateDict()`: PyTorch's `T_cur` and `T_i` besides the usual. */
export interface CosineAnnealingWarmRestartsState extends SchedulerState {
  tCur: number;
  tI: number;
}

/**
 * `torch.optim.lr_scheduler.CosineAnnealingWarmRestarts` (SGDR): cosine from the base lr down towards `etaMin`
 * over a period of `tI` steps, then back to the base lr (a restart); the first period is `t0` steps and each
 * next one `tMult` times longer. `lr = etaMin + (base - etaMin)(1 + cos(pi tCur / tI)) / 2`.
 * `step()` counts one step; `step(epoch)` jumps to `epoch`, which may be fractional (PyTorch's per-batch
 * `step(epoch + i / batches)`), and a later `step()` counts on from there, as in PyTorch. With `tMult > 1`
 * the period of an epoch comes from a logarithm, with PyTorch's rounding.
 *
 * @example
 * const sched = new CosineAnnealingWarmRestarts(opt, { t0: 10, tMult: 2 }); // restarts after 10, 30, 70 steps
 * for (let e = 0; e < 20; e++) batches.forEach((b, i) => { train(b); sched.step(e + i / batches.length); });
 */
export class CosineAnnealingWarmRestarts extends LRScheduler<Required<CosineAnnealingWarmRestartsOptions>> {
  // Set by step(), which the base constructor calls: declared, not initialized (that would undo it).
  /** Steps since the last restart (PyTorch's `T_cur`); fractional after a fractional `step(epoch)`. */
  declare tCur: number;
  /** Length of the current period (PyTorch's `T_i`). */
  declare tI: number;

  constructor(optimizer: OptimizerLike, options: CosineAnnealingWarmRestartsOptions) {
    const op = 'CosineAnnealingWarmRestarts';
    checkOptions(op, options, optionKeys<CosineAnnealingWarmRestartsOptions>()(['t0', 'tMult', 'etaMin']));
    const { t0, tMult = 1, etaMin = 0 } = options ?? {}; // as above: t0 is then refused
    checkCount(op, 't0', t0, 1);
    checkCount(op, 'tMult', tMult, 1);
    super(optimizer, { t0, tMult, etaMin });
  }

  /** One step, or (with `epoch`, >= 0, possibly fractional) straight to that epoch. */
  override step(epoch?: number): void {
    const { t0, tMult } = this.options;
    if (epoch === undefined && this.lastEpoch >= 0) {
      this.tCur += 1;
      if (this.tCur >= this.tI) {
        this.tCur -= this.tI;
        this.tI *= tMult;
      }
      super.step();
      return;
    }
    epoch ??= 0; // the constructor's step (and SequentialLR's first) is step(0), as in PyTorch
    if (typeof epoch !== 'number' || !(epoch >= 0)) {
      throw new ValueError(
        'CosineAnnealingWarmRestarts.step',
        `epoch must be a number >= 0 (got ${typeof epoch === 'number' ? epoch : kindOf(epoch)})`,
      );
    }
    if (epoch < t0) {
      this.tI = t0;
      this.tCur = epoch;
    } else if (tMult === 1) {
      this.tCur = epoch % t0;
    } else {
      // PyTorch's int(math.log(epoch / T_0 * (T_mult - 1) + 1, T_mult)): completed periods.
      const n = Math.trunc(Math.log((epoch / t0) * (tMult - 1) + 1) / Math.log(tMult));
      this.tCur = epoch - (t0 * (tMult ** n - 1)) / (tMult - 1);
      this.tI = t0 * tMult ** n;
    }
    super.step(Math.floor(epoch));
  }

  /** A JSON-able snapshot: {@link LRScheduler.stateDict} plus the position in the period. */
  override stateDict(): CosineAnnealingWarmRestartsState {
    return { ...super.stateDict(), tCur: this.tCur, tI: this.tI };
  }

  /** Continue from a {@link stateDict} snapshot. */
  override loadStateDict(state: CosineAnnealingWarmRestartsState): void {
    super.loadStateDict(state); // checks the keys below too
    this.tCur = state.tCur;
    this.tI = state.tI;
  }

  protected override stateKeys(): readonly string[] {
    return [...super.stateKeys(), 'tCur', 'tI'];
  }

  protected chainedLr(): number[] {
    return this.baseLrs.map((base) => this.closedFormLr(base));
  }

  protected closedFormLr(base: number): number {
    const { etaMin } = this.options;
    return etaMin + ((base - etaMin) * (1 + Math.cos((Math.PI * this.tCur) / this.tI))) / 2;
  }
}

/** Options of {@link OneCycleLR}, PyTorch's defaults. Give `totalSteps`, or `epochs` and `stepsPerEpoch`. */
export interface OneCycleLROptions {
  /** Peak lr, for every group or one per group. */
  maxLr: number | readonly number[];
  /** Steps in the cycle (wins over `epochs` × `stepsPerEpoch` when both are given, as in PyTorch). */
  totalSteps?: number;
  /** With `stepsPerEpoch`: the cycle is `epochs * stepsPerEpoch` steps. */
  epochs?: number;
  stepsPerEpoch?: number;
  /** Fraction of the cycle spent raising the lr, in [0, 1] (default 0.3). */
  pctStart?: number;
  /** Shape of every phase (default 'cos'). */
  annealStrategy?: 'cos' | 'linear';
  /** Cycle SGD's `momentum` or Adam's β1 inversely to the lr (default true). */
  cycleMomentum?: boolean;
  /** Momentum at the lr's peak, for every group or one per group (default 0.85). */
  baseMomentum?: number | readonly number[];
  /** Momentum at the start and end of the cycle, for every group or one per group (default 0.95). */
  maxMomentum?: number | readonly number[];
  /** The lr starts at `maxLr / divFactor` (default 25). */
  divFactor?: number;
  /** The lr ends at `maxLr / divFactor / finalDivFactor` (default 1e4). */
  finalDivFactor?: number;
  /** Come back down to the initial lr symmetrically, then anneal to the minimum (the paper's form; default false). */
  threePhase?: boolean;
}

const ONE_CYCLE_OPTIONS = optionKeys<OneCycleLROptions>()([
  'maxLr',
  'totalSteps',
  'epochs',
  'stepsPerEpoch',
  'pctStart',
  'annealStrategy',
  'cycleMomentum',
  'baseMomentum',
  'maxMomentum',
  'divFactor',
  'finalDivFactor',
  'threePhase',
]);

/** A parameter group whose momentum OneCycleLR or CyclicLR cycles: SGD's `momentum` or Adam's `betas[0]`. */
interface MomentumGroup extends ParamGroupLike {
  momentum?: number;
  betas?: readonly number[];
}

/**
 * A parameter group as OneCycleLR drives it. As in PyTorch the cycle's bounds live in the optimizer's groups
 * (and so in its state dict, as `initial_lr`, `max_lr`, `min_lr`, `max_momentum`, `base_momentum`).
 */
interface OneCycleGroup extends MomentumGroup {
  initialLr: number;
  maxLr: number;
  minLr: number;
  maxMomentum?: number;
  baseMomentum?: number;
}

/** One phase of the cycle: it ends at step `end` (a float, as PyTorch computes it), going from..to in each pair. */
interface OneCyclePhase {
  end: number;
  lr: readonly ['initialLr' | 'maxLr', 'maxLr' | 'initialLr' | 'minLr'];
  momentum: readonly ['maxMomentum' | 'baseMomentum', 'maxMomentum' | 'baseMomentum'];
}

/**
 * `torch.optim.lr_scheduler.OneCycleLR` (the 1cycle policy, fastai's two phases by default): the lr rises from
 * `maxLr / divFactor` to `maxLr` over the first `pctStart` of the cycle, then falls to
 * `maxLr / divFactor / finalDivFactor`; the momentum moves the other way between `maxMomentum` and
 * `baseMomentum`. Call `step()` after every batch. Not chainable: each lr comes from the step number and the
 * bounds written into the groups (which are overwritten at construction), not from the current lr.
 * As in PyTorch, a phase ends at `pctStart * totalSteps - 1` (a float), `totalSteps` steps are allowed (the lr
 * after the last one lies past the minimum), one more throws, and a phase of length 0 (`pctStart * totalSteps`
 * = 1) throws where PyTorch divides by zero.
 *
 * @example
 * const opt = new SGD(model.parameters(), { lr: 0.1, momentum: 0.9 });
 * const sched = new OneCycleLR(opt, { maxLr: 0.1, epochs: 10, stepsPerEpoch: batches.length });
 * // opt lr: 0.004, momentum 0.95; the lr peaks at 0.1 (momentum 0.85) after 30% of the steps
 * for (let e = 0; e < 10; e++) for (const b of batches) { train(b); sched.step(); }
 * // fit sets the lr only: give it the cycle as a Schedule (one value per update), without the momentum
 * const make = (o: OptimizerLike) => new OneCycleLR(o, { maxLr: 0.1, totalSteps, cycleMomentum: false });
 * await fit(model, { train, optimizer: opt, epochs, schedule: asSchedule(make, 0.1) });
 */
export class OneCycleLR extends LRScheduler<{
  totalSteps: number;
  pctStart: number;
  annealStrategy: 'cos' | 'linear';
  threePhase: boolean;
  cycleMomentum: boolean;
}> {
  constructor(optimizer: OptimizerLike, options: OneCycleLROptions) {
    const op = 'OneCycleLR';
    checkOptions(op, options, ONE_CYCLE_OPTIONS);
    const {
      maxLr,
      epochs,
      stepsPerEpoch,
      pctStart = 0.3,
      annealStrategy = 'cos',
      cycleMomentum = true,
      baseMomentum = 0.85,
      maxMomentum = 0.95,
      divFactor = 25,
      finalDivFactor = 1e4,
      threePhase = false,
    } = options ?? {}; // a JavaScript caller may leave it out: maxLr is then refused
    let { totalSteps } = options ?? {};
    if (totalSteps !== undefined) checkCount(op, 'totalSteps', totalSteps, 1);
    else if (epochs === undefined || stepsPerEpoch === undefined) {
      throw new ValueError(op, 'give either totalSteps or (epochs and stepsPerEpoch)');
    } else {
      checkCount(op, 'epochs', epochs, 1);
      checkCount(op, 'stepsPerEpoch', stepsPerEpoch, 1);
      totalSteps = epochs * stepsPerEpoch;
    }
    if (!(pctStart >= 0 && pctStart <= 1)) {
      throw new ValueError(op, `pctStart must be in [0, 1] (got ${pctStart})`);
    }
    if (annealStrategy !== 'cos' && annealStrategy !== 'linear') {
      throw new ValueError(op, `annealStrategy must be 'cos' or 'linear' (got ${String(annealStrategy)})`);
    }
    checkPositive(op, 'divFactor', divFactor);
    checkPositive(op, 'finalDivFactor', finalDivFactor);
    const groups = optimizer.paramGroups as OneCycleGroup[];
    const maxLrs = perGroup(op, 'maxLr', maxLr, groups.length);
    for (const m of maxLrs) if (!(m >= 0)) throw new ValueError(op, `maxLr must be >= 0 (got ${m})`);
    const maxMomenta = perGroup(op, 'maxMomentum', maxMomentum, groups.length);
    const baseMomenta = perGroup(op, 'baseMomentum', baseMomentum, groups.length);
    if (cycleMomentum) checkMomentumGroups(op, groups);
    // Checked everything before writing: PyTorch writes the lr bounds before it refuses a missing momentum.
    groups.forEach((g, i) => {
      g.initialLr = maxLrs[i]! / divFactor;
      g.maxLr = maxLrs[i]!;
      g.minLr = g.initialLr / finalDivFactor;
      if (!cycleMomentum) return;
      setMomentum(g, maxMomenta[i]!);
      g.maxMomentum = maxMomenta[i]!;
      g.baseMomentum = baseMomenta[i]!;
    });
    super(optimizer, { totalSteps, pctStart, annealStrategy, threePhase, cycleMomentum });
  }

  protected chainedLr(): number[] {
    return this.optimizer.paramGroups.map((_, i) => this.lrAt(i));
  }

  protected closedFormLr(_base: number, group: number): number {
    return this.lrAt(group);
  }

  /** PyTorch's `get_lr` for one group at `lastEpoch`; writes the group's momentum as a side effect, as it does. */
  private lrAt(i: number): number {
    const { totalSteps, pctStart, annealStrategy, threePhase, cycleMomentum } = this.options;
    const t = this.lastEpoch;
    if (t > totalSteps) {
      // PyTorch counts the constructor's step too: `t + 1` calls.
      throw new ValueError(
        'OneCycleLR',
        `tried to step ${t + 1} times (the constructor's step included), but totalSteps is ${totalSteps}`,
      );
    }
    const phases = oneCyclePhases(totalSteps, pctStart, threePhase);
    const anneal = annealStrategy === 'cos' ? annealCos : annealLinear;
    // The first phase that ends at or after t, else the last; it starts where the one before ends.
    let k = 0;
    while (k < phases.length - 1 && t > phases[k]!.end) k++;
    const phase = phases[k]!;
    const start = k === 0 ? 0 : phases[k - 1]!.end;
    if (phase.end === start) {
      throw new ValueError(
        'OneCycleLR',
        `phase ${k + 1} of the cycle has no steps (it starts and ends at step ${start}, where PyTorch divides by zero): change pctStart (${pctStart}) or totalSteps (${totalSteps})`,
      );
    }
    const pct = (t - start) / (phase.end - start);
    const g = this.optimizer.paramGroups[i] as OneCycleGroup;
    if (cycleMomentum) setMomentum(g, anneal(g[phase.momentum[0]]!, g[phase.momentum[1]]!, pct));
    return anneal(g[phase.lr[0]], g[phase.lr[1]], pct);
  }
}

/** OneCycleLR's phases as torch 1.13 builds them: each ends at a float step (`float(pct_start * total) - 1`). */
function oneCyclePhases(totalSteps: number, pctStart: number, threePhase: boolean): OneCyclePhase[] {
  if (threePhase) {
    return [
      {
        end: pctStart * totalSteps - 1,
        lr: ['initialLr', 'maxLr'],
        momentum: ['maxMomentum', 'baseMomentum'],
      },
      {
        end: 2 * pctStart * totalSteps - 2,
        lr: ['maxLr', 'initialLr'],
        momentum: ['baseMomentum', 'maxMomentum'],
      },
      { end: totalSteps - 1, lr: ['initialLr', 'minLr'], momentum: ['maxMomentum', 'maxMomentum'] },
    ];
  }
  return [
    { end: pctStart * totalSteps - 1, lr: ['initialLr', 'maxLr'], momentum: ['maxMomentum', 'baseMomentum'] },
    { end: totalSteps - 1, lr: ['maxLr', 'minLr'], momentum: ['baseMomentum', 'maxMomentum'] },
  ];
}

/** PyTorch's `_annealing_cos`: from `start` at pct 0 to `end` at pct 1, with its order of operations. */
function annealCos(start: number, end: number, pct: number): number {
  const cosOut = Math.cos(Math.PI * pct) + 1;
  return end + ((start - end) / 2) * cosOut;
}

/** PyTorch's `_annealing_linear`. */
function annealLinear(start: number, end: number, pct: number): number {
  return (end - start) * pct + start;
}

/** Adam's β1 (a new pair, as PyTorch makes a new tuple: groups may share the defaults' array) or SGD's momentum. */
function setMomentum(g: MomentumGroup, m: number): void {
  if (g.betas) g.betas = [m, ...g.betas.slice(1)];
  else g.momentum = m;
}

/** With cycleMomentum, every group must have a momentum (SGD, RMSprop) or betas (Adam) to cycle. */
function checkMomentumGroups(op: string, groups: readonly MomentumGroup[], hint = ''): void {
  groups.forEach((g, i) => {
    if (typeof g.momentum !== 'number' && !Array.isArray(g.betas)) {
      throw new ValueError(
        op,
        `optimizer must support momentum with cycleMomentum enabled (group ${i} has neither momentum nor betas)${hint}`,
      );
    }
  });
}

/** Options of {@link CyclicLR}, PyTorch's defaults. */
export interface CyclicLROptions {
  /** Lower bound of the lr, where each cycle starts, for every group or one per group. */
  baseLr: number | readonly number[];
  /** Upper bound of the lr, for every group or one per group; the scaled modes stay below it. */
  maxLr: number | readonly number[];
  /** Steps from baseLr up to maxLr, > 0, fractional allowed as in PyTorch (default 2000). */
  stepSizeUp?: number;
  /** Steps back down, >= 0 (0: a sawtooth) (default stepSizeUp). */
  stepSizeDown?: number;
  /**
   * 'triangular': the same cycle every time; 'triangular2': its height halved each cycle; 'exp_range': its
   * height scaled by gamma ** step (default 'triangular'). Ignored with a scaleFn.
   */
  mode?: 'triangular' | 'triangular2' | 'exp_range';
  /** exp_range's base (default 1). */
  gamma?: number;
  /** A custom scale of the height, in [0, 1], of the cycle number (from 1) or of the step; replaces mode. */
  scaleFn?: StepFunction;
  /** What scaleFn takes: 'cycle' (the cycle number) or 'iterations' (the step) (default 'cycle'). */
  scaleMode?: 'cycle' | 'iterations';
  /** Cycle SGD's `momentum` or Adam's β1 inversely to the lr (default true, as in PyTorch). */
  cycleMomentum?: boolean;
  /** Momentum at the lr's peak, for every group or one per group (default 0.8). */
  baseMomentum?: number | readonly number[];
  /** Momentum at baseLr, for every group or one per group (default 0.9). */
  maxMomentum?: number | readonly number[];
}

const CYCLIC_OPTIONS = optionKeys<CyclicLROptions>()([
  'baseLr',
  'maxLr',
  'stepSizeUp',
  'stepSizeDown',
  'mode',
  'gamma',
  'scaleFn',
  'scaleMode',
  'cycleMomentum',
  'baseMomentum',
  'maxMomentum',
]);

/** {@link CyclicLR}'s hyper-parameters as its state dict keeps them (per-group values as lists). */
export type CyclicLRSettings = {
  maxLr: number[];
  stepSizeUp: number;
  stepSizeDown: number;
  mode: 'triangular' | 'triangular2' | 'exp_range';
  gamma: number;
  /** What the scale takes: the mode's own, or `scaleMode` with a scaleFn. */
  scaleMode: 'cycle' | 'iterations';
  cycleMomentum: boolean;
  /** One per group with cycleMomentum, else empty. */
  baseMomentum: number[];
  maxMomentum: number[];
};

/**
 * `torch.optim.lr_scheduler.CyclicLR` (Smith's cyclical learning rates): the lr goes from `baseLr` up to
 * `maxLr` over `stepSizeUp` steps and back over `stepSizeDown`, its height scaled by the mode; with
 * `cycleMomentum` (PyTorch's default) the momentum moves the other way, between `maxMomentum` and `baseMomentum`.
 * Call `step()` after every batch. The constructor sets every group's lr to `baseLr`; the lrs come from the step
 * number, not the current lr. A scaleFn is not in the state dict: build the scheduler with it again, then load.
 * NOTE: cycleMomentum needs a momentum in every group: SGD's `momentum` (0 counts: the cycle sets it) or, where
 * torch 1.13 refuses and torch 2 cycles it, Adam's β1. Pass `cycleMomentum: false` for a plain optimizer.
 *
 * @example
 * const opt = new SGD(model.parameters(), { lr: 0.01, momentum: 0.9 });
 * const sched = new CyclicLR(opt, { baseLr: 0.001, maxLr: 0.01, stepSizeUp: 4 * batches.length });
 * for (let e = 0; e < 16; e++) for (const b of batches) { train(b); sched.step(); } // two cycles of 8 epochs
 */
export class CyclicLR extends LRScheduler<CyclicLRSettings> {
  constructor(optimizer: OptimizerLike, options: CyclicLROptions) {
    const op = 'CyclicLR';
    checkOptions(op, options, CYCLIC_OPTIONS);
    const {
      baseLr,
      maxLr,
      stepSizeUp = 2000,
      stepSizeDown = stepSizeUp,
      mode = 'triangular',
      gamma = 1,
      scaleFn,
      scaleMode = 'cycle',
      cycleMomentum = true,
      baseMomentum = 0.8,
      maxMomentum = 0.9,
    } = options ?? {}; // a JavaScript caller may leave it out: baseLr is then refused
    const groups = optimizer.paramGroups as MomentumGroup[];
    const baseLrs = perGroup(op, 'baseLr', baseLr, groups.length);
    const maxLrs = perGroup(op, 'maxLr', maxLr, groups.length);
    for (const lr of [...baseLrs, ...maxLrs]) {
      if (!(lr >= 0)) throw new ValueError(op, `baseLr and maxLr must be >= 0 (got ${lr})`);
    }
    if (!(stepSizeUp > 0 && stepSizeUp < Number.POSITIVE_INFINITY)) {
      throw new ValueError(op, `stepSizeUp must be a finite number > 0 (got ${stepSizeUp})`);
    }
    if (!(stepSizeDown >= 0 && stepSizeDown < Number.POSITIVE_INFINITY)) {
      throw new ValueError(op, `stepSizeDown must be a finite number >= 0 (got ${stepSizeDown})`);
    }
    if (mode !== 'triangular' && mode !== 'triangular2' && mode !== 'exp_range') {
      throw new ValueError(
        op,
        `mode must be 'triangular', 'triangular2' or 'exp_range' (got ${String(mode)})`,
      );
    }
    checkPositive(op, 'gamma', gamma);
    if (scaleFn !== undefined && typeof scaleFn !== 'function') {
      throw new ValueError(op, `scaleFn must be a function (got ${kindOf(scaleFn)})`);
    }
    if (scaleMode !== 'cycle' && scaleMode !== 'iterations') {
      throw new ValueError(op, `scaleMode must be 'cycle' or 'iterations' (got ${String(scaleMode)})`);
    }
    let baseMomenta: number[] = [];
    let maxMomenta: number[] = [];
    if (cycleMomentum) {
      checkMomentumGroups(op, groups, ': pass cycleMomentum: false to cycle the lr only');
      baseMomenta = perGroup(op, 'baseMomentum', baseMomentum, groups.length);
      maxMomenta = perGroup(op, 'maxMomentum', maxMomentum, groups.length);
    }
    // Checked everything before writing. As in PyTorch, the lr starts at baseLr (the constructor's step puts
    // the momentum at maxMomentum).
    groups.forEach((g, i) => {
      g.lr = baseLrs[i]!;
    });
    const settings: CyclicLRSettings = {
      maxLr: maxLrs,
      stepSizeUp,
      stepSizeDown,
      mode,
      gamma,
      scaleMode: scaleFn ? scaleMode : mode === 'exp_range' ? 'iterations' : 'cycle',
      cycleMomentum,
      baseMomentum: baseMomenta,
      maxMomentum: maxMomenta,
    };
    super(optimizer, settings, scaleFn ? [scaleFn] : []);
    // PyTorch's order: the constructor's step used the groups' initialLr (baseLr, unless another scheduler set
    // it first); from now on, baseLr.
    this.baseLrs = baseLrs;
  }

  protected chainedLr(): number[] {
    return this.optimizer.paramGroups.map((_, i) => this.lrAt(i));
  }

  protected closedFormLr(_base: number, group: number): number {
    return this.lrAt(group);
  }

  /** PyTorch's `get_lr` for one group at `lastEpoch`, with its order of operations; writes the momentum too. */
  private lrAt(i: number): number {
    const { maxLr, stepSizeUp, stepSizeDown, scaleMode, cycleMomentum, baseMomentum, maxMomentum } =
      this.options;
    const t = this.lastEpoch;
    const totalSize = stepSizeUp + stepSizeDown;
    const stepRatio = stepSizeUp / totalSize;
    const cycle = Math.floor(1 + t / totalSize);
    const x = 1 + t / totalSize - cycle;
    const scaleFactor = x <= stepRatio ? x / stepRatio : (x - 1) / (stepRatio - 1);
    const scale = this.scale(scaleMode === 'cycle' ? cycle : t);
    if (cycleMomentum) {
      const height = (maxMomentum[i]! - baseMomentum[i]!) * scaleFactor;
      setMomentum(this.optimizer.paramGroups[i] as MomentumGroup, maxMomentum[i]! - height * scale);
    }
    const base = this.baseLrs[i]!;
    return base + (maxLr[i]! - base) * scaleFactor * scale;
  }

  /** The height's scale at `x` (a cycle number or a step): the scaleFn's, or the mode's. */
  private scale(x: number): number {
    const { mode, gamma } = this.options;
    if (this.fns.length > 0) return callStepFunction('CyclicLR', 'scaleFn', this.fns[0]!, x);
    if (mode === 'triangular2') return 1 / 2 ** (x - 1);
    return mode === 'exp_range' ? gamma ** x : 1;
  }
}

/** `SequentialLR.stateDict()`. */
export interface SequentialLRState {
  lastEpoch: number;
  milestones: number[];
  lastLr: number[];
  schedulers: SchedulerState[];
}

/**
 * `torch.optim.lr_scheduler.SequentialLR`: scheduler i drives the lr from milestone i-1 on. As in PyTorch the
 * constructor resets every group to its `initialLr`, undoes the children's construction steps and re-runs
 * step 0 of the first one only. NOTE: at a milestone the next scheduler restarts with `step(0)`, i.e. its
 * closed form at 0 from the base lrs, not from the lr the previous scheduler reached.
 *
 * @example
 * // 5 warm-up steps from 0.1·lr, then cosine to 0 over 20 steps (values of warmupCosine(lr, 5, 25, ...))
 * const sched = new SequentialLR(opt, [
 *   new LinearLR(opt, { startFactor: 0.1, totalIters: 5 }),
 *   new CosineAnnealingLR(opt, { tMax: 20 }),
 * ], [5]);
 */
export class SequentialLR implements Scheduler {
  /** Number of `step()` calls since construction. */
  lastEpoch = 0;
  private lastLr: number[];
  private milestones: number[];

  constructor(
    readonly optimizer: OptimizerLike,
    readonly schedulers: LRScheduler[],
    milestones: readonly number[],
  ) {
    schedulers.forEach((s, i) => {
      if (s.optimizer !== optimizer) {
        throw new ValueError(
          'SequentialLR',
          `scheduler ${i} drives another optimizer (got a different object)`,
        );
      }
    });
    if (milestones.length !== schedulers.length - 1) {
      throw new ValueError(
        'SequentialLR',
        `needs one milestone fewer than schedulers (got ${milestones.length}, expected ${schedulers.length - 1})`,
      );
    }
    milestones.forEach((m, i) => {
      if (!Number.isInteger(m) || m < 0 || (i > 0 && m < milestones[i - 1]!)) {
        throw new ValueError(
          'SequentialLR',
          `milestones must be ascending integers >= 0 (got [${milestones}])`,
        );
      }
    });
    this.milestones = [...milestones];
    for (const g of optimizer.paramGroups) g.lr = g.initialLr!;
    for (const s of schedulers) s.lastEpoch -= 1;
    schedulers[0]!.step();
    this.lastLr = schedulers[0]!.getLastLr();
  }

  /** Advance one step with the scheduler whose milestone has been reached. */
  step(): void {
    this.lastEpoch++;
    let idx = 0; // bisect_right(milestones, lastEpoch)
    while (idx < this.milestones.length && this.milestones[idx]! <= this.lastEpoch) idx++;
    const scheduler = this.schedulers[idx]!;
    if (idx > 0 && this.milestones[idx - 1] === this.lastEpoch) scheduler.step(0);
    else scheduler.step();
    this.lastLr = scheduler.getLastLr();
  }

  /** The lr of each group as set by the last step. */
  getLastLr(): number[] {
    return [...this.lastLr];
  }

  /** A JSON-able snapshot, the children's included (see {@link LRScheduler.stateDict}). */
  stateDict(): SequentialLRState {
    return {
      lastEpoch: this.lastEpoch,
      milestones: [...this.milestones],
      lastLr: [...this.lastLr],
      schedulers: this.schedulers.map((s) => s.stateDict()),
    };
  }

  /** Continue from a {@link stateDict} snapshot of a SequentialLR built the same way. */
  loadStateDict(state: SequentialLRState): void {
    const op = 'SequentialLR.loadStateDict';
    checkState(op, state, ['lastEpoch', 'milestones', 'lastLr', 'schedulers']);
    if (!Array.isArray(state.schedulers) || state.schedulers.length !== this.schedulers.length) {
      const got = Array.isArray(state.schedulers) ? state.schedulers.length : kindOf(state.schedulers);
      throw new ValueError(
        op,
        `state has another number of schedulers (got ${got}, expected ${this.schedulers.length})`,
      );
    }
    this.lastEpoch = state.lastEpoch;
    this.milestones = [...state.milestones];
    this.lastLr = [...state.lastLr];
    this.schedulers.forEach((s, i) => {
      s.loadStateDict(state.schedulers[i]!);
    });
  }
}

/** Options of {@link ReduceLROnPlateau}, PyTorch's defaults. */
export interface ReduceLROnPlateauOptions {
  /** 'min': reduce when the metric stops decreasing (a loss); 'max': when it stops increasing (default 'min'). */
  mode?: 'min' | 'max';
  /** The lr is multiplied by it, in [0, 1) (default 0.1). */
  factor?: number;
  /** Steps without improvement that are tolerated; the next one reduces the lr (default 10). */
  patience?: number;
  /** How much better than the best a metric must be to count as an improvement (default 1e-4). */
  threshold?: number;
  /** 'rel': better than best·(1 ∓ threshold); 'abs': better than best ∓ threshold (default 'rel'). */
  thresholdMode?: 'rel' | 'abs';
  /** Steps after a reduction during which bad steps are not counted (default 0). */
  cooldown?: number;
  /** Floor of the lr, for every group or one per group (default 0). */
  minLr?: number | readonly number[];
  /** A reduction smaller than this is skipped (default 1e-8). */
  eps?: number;
}

const PLATEAU_OPTIONS = optionKeys<ReduceLROnPlateauOptions>()([
  'mode',
  'factor',
  'patience',
  'threshold',
  'thresholdMode',
  'cooldown',
  'minLr',
  'eps',
]);

/** {@link ReduceLROnPlateau}'s hyper-parameters as its state dict keeps them (`minLr` one per group). */
export type ReduceLROnPlateauSettings = Required<Omit<ReduceLROnPlateauOptions, 'minLr'>> & {
  minLr: number[];
};

/**
 * `ReduceLROnPlateau.stateDict()`: PyTorch's counters and hyper-parameters. `best` is a number, or
 * 'Infinity' / '-Infinity' (JSON has no infinities; it starts at the mode's worst value).
 */
export interface ReduceLROnPlateauState {
  lastEpoch: number;
  best: number | 'Infinity' | '-Infinity';
  numBadEpochs: number;
  cooldownCounter: number;
  lastLr: number[];
  options: ReduceLROnPlateauSettings;
}

/**
 * `torch.optim.lr_scheduler.ReduceLROnPlateau`: multiply every group's lr by `factor` (down to its `minLr`)
 * once the metric given to `step(metric)` has not improved for more than `patience` steps, then wait
 * `cooldown` steps before counting again. Call it once per evaluation, after validating.
 * It steps on a metric rather than a count, so it is not a {@link Scheduler} (nor chainable, as in PyTorch):
 * `asSchedule` and `SequentialLR` cannot drive it. `getLastLr()` before the first step gives the groups' lrs
 * (torch 1.13 had none yet). A NaN metric counts as no improvement, as in PyTorch.
 *
 * @example
 * const sched = new ReduceLROnPlateau(opt, { factor: 0.5, patience: 2 });
 * for (let epoch = 0; epoch < 50; epoch++) { train(); sched.step(validationLoss()); }
 * // with fit (no `schedule`, which would overwrite the lr at every update):
 * await fit(model, { train, val, optimizer: opt, epochs: 50,
 *   callbacks: { onEpochEnd: (log) => void sched.step(log.valLoss!) } });
 */
export class ReduceLROnPlateau implements Pick<Scheduler, 'getLastLr'> {
  /** Number of `step(metric)` calls (PyTorch's `last_epoch`). */
  lastEpoch = 0;
  /** The best metric so far; the mode's worst (±Infinity) before the first step. */
  best: number;
  /** Steps since the last improvement, not counting those in cooldown. */
  numBadEpochs = 0;
  /** Cooldown steps left after a reduction. */
  cooldownCounter = 0;
  private lastLr: number[];
  private settings: ReduceLROnPlateauSettings;

  constructor(
    readonly optimizer: OptimizerLike,
    options: ReduceLROnPlateauOptions = {},
  ) {
    checkOptions('ReduceLROnPlateau', options, PLATEAU_OPTIONS);
    const {
      mode = 'min',
      factor = 0.1,
      patience = 10,
      threshold = 1e-4,
      thresholdMode = 'rel',
      cooldown = 0,
      minLr = 0,
      eps = 1e-8,
    } = options;
    const minLrs = perGroup('ReduceLROnPlateau', 'minLr', minLr, optimizer.paramGroups.length);
    this.settings = checkPlateau({
      mode,
      factor,
      patience,
      threshold,
      thresholdMode,
      cooldown,
      minLr: minLrs,
      eps,
    });
    this.best = this.worst();
    this.lastLr = optimizer.paramGroups.map((g) => g.lr);
  }

  /** Record one evaluation's metric (a validation loss in 'min' mode) and reduce the lrs if it has plateaued. */
  step(metric: number): void {
    if (typeof metric !== 'number') {
      throw new ValueError(
        'ReduceLROnPlateau.step',
        `metric must be a number (got ${kindOf(metric)}): pass loss.item() for a Tensor`,
      );
    }
    const { patience, cooldown } = this.settings;
    this.lastEpoch++;
    if (this.isBetter(metric)) {
      this.best = metric;
      this.numBadEpochs = 0;
    } else {
      this.numBadEpochs++;
    }
    if (this.cooldownCounter > 0) {
      this.cooldownCounter--;
      this.numBadEpochs = 0; // bad steps in cooldown do not count
    }
    if (this.numBadEpochs > patience) {
      this.reduceLr();
      this.cooldownCounter = cooldown;
      this.numBadEpochs = 0;
    }
    this.lastLr = this.optimizer.paramGroups.map((g) => g.lr);
  }

  /** The lr of each group after the last step. */
  getLastLr(): number[] {
    return [...this.lastLr];
  }

  /**
   * A JSON-able snapshot: counters, best metric, hyper-parameters.
   *
   * @example
   * writeFileSync('plateau.json', JSON.stringify(sched.stateDict()));
   */
  stateDict(): ReduceLROnPlateauState {
    const best = Number.isFinite(this.best) ? this.best : (String(this.best) as 'Infinity' | '-Infinity');
    return {
      lastEpoch: this.lastEpoch,
      best,
      numBadEpochs: this.numBadEpochs,
      cooldownCounter: this.cooldownCounter,
      lastLr: [...this.lastLr],
      options: { ...this.settings, minLr: [...this.settings.minLr] },
    };
  }

  /**
   * Continue from a {@link stateDict} snapshot. As in PyTorch the optimizer's lrs come back with the
   * optimizer's own state, and the hyper-parameters with the scheduler's (checked again, as PyTorch does).
   *
   * @example
   * sched.loadStateDict(JSON.parse(readFileSync('plateau.json', 'utf8')));
   */
  loadStateDict(state: ReduceLROnPlateauState): void {
    const op = 'ReduceLROnPlateau.loadStateDict';
    const keys = ['lastEpoch', 'best', 'numBadEpochs', 'cooldownCounter', 'lastLr', 'options'];
    checkState(op, state, keys, PLATEAU_OPTIONS);
    const { minLr } = state.options;
    checkGroupCount(op, 'minLr', minLr, this.optimizer.paramGroups.length);
    this.settings = checkPlateau({ ...state.options, minLr: [...minLr] });
    this.lastEpoch = state.lastEpoch;
    this.best = Number(state.best);
    this.numBadEpochs = state.numBadEpochs;
    this.cooldownCounter = state.cooldownCounter;
    this.lastLr = [...state.lastLr];
  }

  /** PyTorch's `mode_worse`: what any real metric improves on. */
  private worst(): number {
    return this.settings.mode === 'min' ? Number.POSITIVE_INFINITY : Number.NEGATIVE_INFINITY;
  }

  /** PyTorch's `is_better`, with its order of operations (`1. - threshold` first in 'rel' mode). */
  private isBetter(a: number): boolean {
    const { mode, threshold, thresholdMode } = this.settings;
    const best = this.best;
    if (mode === 'min') return thresholdMode === 'rel' ? a < best * (1 - threshold) : a < best - threshold;
    return thresholdMode === 'rel' ? a > best * (threshold + 1) : a > best + threshold;
  }

  /** PyTorch's `_reduce_lr`: each group down by `factor`, not below its floor, unless the change is under eps. */
  private reduceLr(): void {
    const { factor, minLr, eps } = this.settings;
    this.optimizer.paramGroups.forEach((g, i) => {
      const newLr = Math.max(g.lr * factor, minLr[i]!);
      if (g.lr - newLr > eps) g.lr = newLr;
    });
  }
}

/** ReduceLROnPlateau's hyper-parameters, checked (at construction and on load), returned as given. */
function checkPlateau(s: ReduceLROnPlateauSettings): ReduceLROnPlateauSettings {
  const op = 'ReduceLROnPlateau';
  if (s.mode !== 'min' && s.mode !== 'max') {
    throw new ValueError(op, `mode must be 'min' or 'max' (got ${String(s.mode)})`);
  }
  if (s.thresholdMode !== 'rel' && s.thresholdMode !== 'abs') {
    throw new ValueError(op, `thresholdMode must be 'rel' or 'abs' (got ${String(s.thresholdMode)})`);
  }
  if (!(s.factor >= 0 && s.factor < 1)) {
    throw new ValueError(op, `factor must be in [0, 1): the new lr is lr * factor (got ${s.factor})`);
  }
  checkCount(op, 'patience', s.patience, 0);
  checkCount(op, 'cooldown', s.cooldown, 0);
  if (!(s.threshold >= 0)) throw new ValueError(op, `threshold must be >= 0 (got ${s.threshold})`);
  if (!(s.eps >= 0)) throw new ValueError(op, `eps must be >= 0 (got ${s.eps})`);
  for (const m of s.minLr) if (!(m >= 0)) throw new ValueError(op, `minLr must be >= 0 (got ${m})`);
  return s;
}

/** Python's `%`: the result takes the divisor's sign, so (t - 1 - T) % 2T is never negative. */
function pyMod(a: number, b: number): number {
  return ((a % b) + b) % b;
}

function checkCount(op: string, name: string, value: number, min: number): void {
  if (!Number.isInteger(value) || value < min) {
    throw new ValueError(op, `${name} must be an integer >= ${min} (got ${value})`);
  }
}

function checkPositive(op: string, name: string, value: number): void {
  if (!(value > 0)) throw new ValueError(op, `${name} must be > 0 (got ${value})`);
}

/**
 * PyTorch's `_format_param`: one value for every group, or a list with one per group.
 * Returns one finite number per group.
 */
function perGroup(op: string, name: string, value: number | readonly number[], groups: number): number[] {
  const values = Array.isArray(value)
    ? [...(value as readonly number[])]
    : Array<number>(groups).fill(value as number);
  if (values.length !== groups) {
    throw new ValueError(
      op,
      `${name} needs one value per parameter group (got ${values.length}, expected ${groups})`,
    );
  }
  for (const v of values) {
    if (typeof v !== 'number' || !Number.isFinite(v)) {
      throw new ValueError(
        op,
        `${name} must be a finite number or one per parameter group (got ${typeof v === 'number' ? v : kindOf(v)})`,
      );
    }
  }
  return values;
}

/** What every {@link SchedulerState} has. */
const SCHEDULER_STATE_KEYS = ['lastEpoch', 'baseLrs', 'lastLr', 'options'] as const;

/**
 * A state given to `loadStateDict` is one the same kind of scheduler's `stateDict()` wrote: an object with
 * `keys`, whose `options` (if `options` is given) have those names. Null, another scheduler's state or PyTorch's
 * `state_dict()` (`last_epoch`, `base_lrs`, `_last_lr`...) gets a message rather than a TypeError from deep inside.
 */
function checkState(op: string, state: unknown, keys: readonly string[], options?: readonly string[]): void {
  const isObject = (v: unknown): v is Record<string, unknown> =>
    v !== null && typeof v === 'object' && !Array.isArray(v);
  if (!isObject(state)) {
    throw new ValueError(op, `state must be an object from stateDict() (got ${kindOf(state)})`);
  }
  if (options && 'options' in state) {
    if (!isObject(state.options)) {
      throw new ValueError(op, `state.options must be an object (got ${kindOf(state.options)})`);
    }
    const want = [...options].sort().join(',');
    const got = Object.keys(state.options).sort().join(',');
    if (got !== want) {
      throw new ValueError(op, `state is for another scheduler (got options ${got}, expected ${want})`);
    }
  }
  const missing = keys.filter((k) => !(k in state));
  if (missing.length === 0) return;
  const got = Object.keys(state);
  const torch = got.some((k) => k.includes('_'))
    ? ": PyTorch's state_dict() has other keys (snake_case) and cannot be loaded"
    : '';
  throw new ValueError(
    op,
    `state is not from stateDict() (missing ${missing.join(', ')}; got keys ${got.join(', ') || 'none'})${torch}`,
  );
}

/** A per-group list in a state must have one value per parameter group of this optimizer. */
function checkGroupCount(op: string, name: string, values: unknown, groups: number): void {
  if (!Array.isArray(values) || values.length !== groups) {
    throw new ValueError(
      op,
      `state is for another number of parameter groups (got ${name} ${JSON.stringify(values)}, expected ${groups} values)`,
    );
  }
}

/** A copy of a scheduler's options that shares no array with them. */
function copyOptions<O extends Record<string, SchedulerOption>>(options: O): O {
  return Object.fromEntries(Object.entries(options).map(([k, v]) => [k, Array.isArray(v) ? [...v] : v])) as O;
}

/**
 * PyTorch's `lr_lambda` list: one function for every group, or a list with one per group.
 * Returns one function per group.
 */
function perGroupFunctions(op: string, name: string, value: unknown, groups: number): StepFunction[] {
  const fns: unknown[] = Array.isArray(value) ? [...value] : Array<unknown>(groups).fill(value);
  if (fns.length !== groups) {
    throw new ValueError(
      op,
      `${name} needs one function per parameter group (got ${fns.length}, expected ${groups})`,
    );
  }
  for (const f of fns) {
    if (typeof f !== 'function') {
      throw new ValueError(op, `${name} must be a function or one per parameter group (got ${kindOf(f)})`);
    }
  }
  return fns as StepFunction[];
}

/** A user's function of the step, called: anything but a finite number would become the lr. */
function callStepFunction(op: string, name: string, fn: StepFunction, x: number, group?: number): number {
  const v: unknown = fn(x);
  if (typeof v !== 'number' || !Number.isFinite(v)) {
    const of = group === undefined ? '' : ` of group ${group}`;
    throw new ValueError(
      op,
      `${name}${of} must return a finite number (got ${typeof v === 'number' ? v : kindOf(v)} for ${x})`,
    );
  }
  return v;
}
