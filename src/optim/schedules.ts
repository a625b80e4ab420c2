/**
 * Learning-rate schedules.
 *
 * Two forms of the same curves:
 * - pure functions of the step, `(step) => lr` (llm.c `schedulers.h`, optax): an optimizer takes
 *   `number | Schedule`, and a schedule can be printed without training;
 * - PyTorch's stateful schedulers (`LinearLR`, `CosineAnnealingLR`, `StepLR`, `SequentialLR`), which rewrite
 *   `optimizer.paramGroups[i].lr` on each `step()` with PyTorch's own recursive formulas, so a training script
 *   ported from PyTorch gets its learning rates step for step, quirks included.
 *
 * Step t counts from 0: `schedule(t)` is the lr of the t-th optimizer step, which is what a PyTorch optimizer
 * sees after `t` calls of `scheduler.step()` (PyTorch's `last_epoch`).
 */
import { checkOptions, optionKeys, ValueError } from '../errors.js';

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

/** What every scheduler offers (PyTorch `LRScheduler`'s public surface). */
export interface Scheduler {
  step(): void;
  getLastLr(): number[];
}

/** `LRScheduler.stateDict()`: PyTorch's `last_epoch`, `base_lrs`, `_last_lr` and the hyper-parameters. */
export interface SchedulerState {
  lastEpoch: number;
  baseLrs: number[];
  lastLr: number[];
  options: Record<string, number | readonly number[]>;
}

/**
 * PyTorch's `LRScheduler`: the constructor records each group's `initialLr` (if no scheduler did yet), takes
 * those as the base lrs and performs step 0. `step()` applies the recursive (chainable) formula to the groups'
 * current lr; `step(epoch)` (what SequentialLR uses at a milestone) jumps to the closed form at `epoch`.
 * NOTE: as in PyTorch, `loadStateDict` restores the scheduler only; the optimizer's lr comes back with the
 * optimizer's own state. A subclass keeps its hyper-parameters in `options`, not in fields of its own: the base
 * constructor already calls `chainedLr`, before a subclass's fields are initialized.
 */
export abstract class LRScheduler<
  O extends Record<string, number | readonly number[]> = Record<string, number | readonly number[]>,
> implements Scheduler
{
  /** Number of `step()` calls since construction (PyTorch's `last_epoch`). */
  lastEpoch = -1;
  baseLrs: number[];
  private lastLr: number[] = [];

  constructor(
    readonly optimizer: OptimizerLike,
    protected readonly options: O,
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
      lrs = this.baseLrs.map((base) => this.closedFormLr(base));
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
      options: { ...this.options },
    };
  }

  /**
   * Continue from a {@link stateDict} snapshot of the same kind of scheduler.
   *
   * @example
   * sched.loadStateDict(JSON.parse(readFileSync('sched.json', 'utf8')));
   */
  loadStateDict(state: SchedulerState): void {
    const want = Object.keys(this.options).sort().join(',');
    const got = Object.keys(state.options).sort().join(',');
    if (got !== want) {
      throw new ValueError(
        'loadStateDict',
        `state is for another scheduler (got options ${got}, expected ${want})`,
      );
    }
    this.lastEpoch = state.lastEpoch;
    this.baseLrs = [...state.baseLrs];
    this.lastLr = [...state.lastLr];
    Object.assign(this.options, state.options);
  }

  /** PyTorch `get_lr()`: the next lr of each group from its current one, at `this.lastEpoch`. */
  protected abstract chainedLr(current: number[]): number[];
  /** PyTorch `_get_closed_form_lr()`: the lr at `this.lastEpoch` from a base lr. */
  protected abstract closedFormLr(base: number): number;
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
    if (state.schedulers.length !== this.schedulers.length) {
      throw new ValueError(
        'loadStateDict',
        `state has another number of schedulers (got ${state.schedulers.length}, expected ${this.schedulers.length})`,
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
