/**
 * The optimizer base (PyTorch `torch.optim.Optimizer`): parameter groups with per-group hyper-parameters,
 * `zeroGrad`, `step`, and a state dict in PyTorch's layout.
 *
 * Protocol of a step: for each group, if its lr was given as a {@link Schedule}, `lr = schedule(stepCount)`;
 * then each parameter that has a `.grad` is updated in place by the subclass's `update`, one flat float32 loop
 * over its storage (parameters and gradients are contiguous). Parameters without a gradient are skipped and
 * get no state, as in PyTorch. The loops write storage directly and record nothing, so no `noGrad` is needed.
 */
import { bumpVersion } from '../autograd/engine.js';
import { checkOptions, fmtShape, kindOf, ShapeError, ValueError } from '../errors.js';
import { clearGrad } from '../tensor/ops.js';
import { isContiguous, sameShape } from '../tensor/shape.js';
import { Tensor } from '../tensor/tensor.js';
import type { Schedule } from './schedules.js';

/** Hyper-parameters every optimizer here has. */
export interface Hyperparameters {
  /** Learning rate of the next step (a scheduler may rewrite it). */
  lr: number;
  /** L2 penalty (Adam, SGD) or decoupled decay (AdamW), >= 0. */
  weightDecay: number;
  /** Maximize the objective instead of minimizing it. */
  maximize: boolean;
}

/** A hyper-parameter as stored in a state dict: JSON-able. */
export type HyperValue = number | boolean | number[];

/** A parameter group: its tensors, its hyper-parameters, and how its lr is driven. */
export type ParamGroup<H extends Hyperparameters = Hyperparameters> = H & {
  params: Tensor[];
  /** Set when lr was given as a Schedule: before each step, `lr = schedule(stepCount)`. */
  schedule?: Schedule;
  /** PyTorch's `initial_lr`, set by the first LR scheduler attached. */
  initialLr?: number;
};

/** Hyper-parameters as a constructor takes them: all optional, lr a number or a {@link Schedule}. */
export type Options<H extends Hyperparameters> = Partial<Omit<H, 'lr'>> & { lr?: number | Schedule };

/**
 * A parameter group as a constructor takes it: tensors (one tensor is a group of one, as in PyTorch) plus the
 * options that differ from the defaults.
 */
export type GroupOptions<H extends Hyperparameters> = Options<H> & { params: Tensor | Iterable<Tensor> };

/** What an optimizer optimizes: tensors (one group), or groups of them with their own options. */
export type Params<H extends Hyperparameters> = Iterable<Tensor> | readonly GroupOptions<H>[];

/**
 * `optimizer.state_dict()` in PyTorch's layout: per-parameter state keyed by the parameter's index over all
 * groups, and each group's hyper-parameters with `params` as those indices. Keys are PyTorch's snake_case
 * names (`momentum_buffer`, `exp_avg`, `weight_decay`). Tensors go to safetensors, the rest to JSON.
 * `step_count` (ours) is the number of `step()` calls, at which a Schedule resumes; PyTorch ignores it, and a
 * dict converted from PyTorch, which lacks it, loads as step 0.
 */
export interface OptimizerStateDict {
  state: Record<number, Record<string, Tensor | number>>;
  param_groups: ({ params: number[] } & Record<string, HyperValue>)[];
  step_count?: number;
}

export { fmadd } from './update-kernels.js';

const snake = (k: string) => k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
const camel = (k: string) => k.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());

/**
 * Base of SGD, Adam and AdamW. A subclass supplies the hyper-parameter checks and the per-parameter update,
 * and names its per-parameter state S (buffers of the parameter's shape, counters) in camelCase, which the
 * state dict saves in snake_case.
 * NOTE: a group whose lr is a Schedule has its lr rewritten before every step, so an LR scheduler attached to
 * the same group has no effect: use one or the other.
 *
 * @example
 * const opt = new SGD(model.parameters(), { lr: 0.1, momentum: 0.9 });
 * for (const [x, y] of batches) {
 *   opt.zeroGrad();
 *   crossEntropy(model.forward(x), y).backward();
 *   opt.step();
 * }
 */
export abstract class Optimizer<H extends Hyperparameters, S extends object> {
  readonly paramGroups: ParamGroup<H>[] = [];
  /** Per-parameter state, created at a parameter's first update. */
  state = new Map<Tensor, S>();
  /** Number of `step()` calls so far: the step at which schedules are evaluated. */
  stepCount = 0;

  /**
   * @param params the tensors to optimize, or groups of them with their own options (PyTorch's per-group
   *   options), e.g. `[{ params: body }, { params: head, lr: 0.1 }]`
   * @param defaults every hyper-parameter, for groups that do not set it
   */
  constructor(
    params: Params<H>,
    readonly defaults: Options<H>,
  ) {
    const op = this.constructor.name;
    if (typeof (params as Partial<Iterable<unknown>> | null)?.[Symbol.iterator] !== 'function') {
      const hint =
        typeof (params as { parameters?: unknown })?.parameters === 'function'
          ? ': pass model.parameters()'
          : '';
      throw new ValueError(
        op,
        `params must be an iterable of Tensors or of parameter groups (got ${typeof params})${hint}`,
      );
    }
    // Any iterable (a Set, a generator), as PyTorch takes.
    const list = [...(params as Iterable<Tensor | GroupOptions<H>>)];
    if (list.length === 0) throw new ValueError(op, 'optimizer got an empty parameter list');
    const groups = list[0] instanceof Tensor ? [{ params: list as Tensor[] }] : list;
    for (const g of groups as readonly GroupOptions<H>[]) this.addParamGroup(g);
  }

  /**
   * Add a group of parameters (PyTorch `add_param_group`), e.g. layers unfrozen during fine-tuning. Options
   * it does not set come from the optimizer's defaults.
   *
   * @example
   * opt.addParamGroup({ params: head.parameters(), lr: 1e-2 });
   */
  addParamGroup(options: GroupOptions<H>): void {
    const op = this.constructor.name;
    checkOptions(op, options, ['params', ...Object.keys(this.defaults)]);
    const { params: given, lr, ...rest } = { ...this.defaults, ...options };
    // One tensor is a list of one, as in PyTorch's add_param_group.
    const params = given instanceof Tensor ? [given] : given;
    if (typeof (params as Partial<Iterable<Tensor>> | null)?.[Symbol.iterator] !== 'function')
      throw new ValueError(op, `params must be a Tensor or an iterable of them (got ${kindOf(params)})`);
    const seen = new Set(this.paramGroups.flatMap((g) => g.params));
    for (const p of params) {
      if (!(p instanceof Tensor)) {
        throw new ValueError(op, `optimizer can only optimize Tensors, but one of the params is ${typeof p}`);
      }
      if (!p.isLeaf) throw new ValueError(op, "can't optimize a non-leaf Tensor");
      // The update loops read storage linearly from the offset.
      if (p.dtype !== 'float32' || !isContiguous(p.shape, p.strides)) {
        throw new ValueError(op, `can only optimize contiguous float32 tensors (got a ${p.dtype} view)`);
      }
      if (seen.has(p))
        throw new ValueError(op, 'some parameters appear more than once in the parameter groups');
      seen.add(p);
    }
    const schedule = typeof lr === 'function' ? lr : undefined;
    const group = {
      lr: schedule ? schedule(this.stepCount) : lr,
      ...rest,
      params: [...params],
      ...(schedule && { schedule }),
    } as unknown as ParamGroup<H>;
    this.check(group);
    this.paramGroups.push(group);
  }

  /**
   * Set every gradient to zero in place; the `.grad` tensors keep their identity (and their memory), and the
   * next backward copies into them instead of adding to zeros. Write a zeroed `.grad` through its methods
   * (`copy_`, `fill_`), not its `.data`, before that backward. `setToNone` drops the gradients instead
   * (PyTorch's set_to_none; the next backward allocates them again).
   */
  zeroGrad(setToNone = false): void {
    for (const g of this.paramGroups) for (const p of g.params) clearGrad(p, setToNone);
  }

  /** One update of every parameter that has a gradient. */
  step(): void {
    for (const group of this.paramGroups) {
      if (group.schedule) group.lr = group.schedule(this.stepCount);
      for (const p of group.params) {
        if (!p.grad) continue;
        let s = this.state.get(p);
        if (!s) this.state.set(p, (s = this.initState(p)));
        this.update(p, p.grad, group, s);
        bumpVersion(p); // written in place: a graph recorded before this step can no longer backward through p
      }
    }
    this.stepCount++;
  }

  /**
   * The state in PyTorch's layout. Like `Module.stateDict`, tensors are the optimizer's own (updated in place
   * by later steps): save them before stepping again, or clone them.
   *
   * @example
   * const sd = opt.stateDict(); // { state: { 0: { exp_avg, exp_avg_sq, step } }, param_groups: [...] }
   */
  stateDict(): OptimizerStateDict {
    const index = new Map(this.paramGroups.flatMap((g) => g.params).map((p, i) => [p, i]));
    const state: OptimizerStateDict['state'] = {};
    for (const [p, s] of this.state) {
      const entry: Record<string, Tensor | number> = {};
      for (const [k, v] of Object.entries(s)) if (v !== undefined) entry[snake(k)] = v;
      state[index.get(p)!] = entry;
    }
    const param_groups = this.paramGroups.map(({ params, schedule, ...hyper }) => {
      const g: Record<string, HyperValue> = {};
      for (const [k, v] of Object.entries(hyper)) g[snake(k)] = Array.isArray(v) ? [...v] : v;
      return { ...g, params: params.map((p) => index.get(p)!) };
    });
    return { state, param_groups, step_count: this.stepCount };
  }

  /**
   * Continue from a {@link stateDict} of an optimizer of the same kind over parameters of the same shapes,
   * grouped the same way. Tensors are copied in; hyper-parameters (lr included) are restored, a Schedule is
   * kept and resumes at the saved step count. Nothing changes if the dict does not fit.
   *
   * @example
   * opt.loadStateDict(sd); // then opt.step() continues exactly where the saved run stopped
   */
  loadStateDict(sd: OptimizerStateDict): void {
    const op = 'loadStateDict';
    const groups = sd.param_groups;
    if (groups.length !== this.paramGroups.length) {
      throw new ValueError(
        op,
        `loaded state dict has a different number of parameter groups (got ${groups.length}, expected ${this.paramGroups.length})`,
      );
    }
    const hyper = this.paramGroups.map((g, i) => {
      const { params, ...saved } = groups[i]!;
      if (params.length !== g.params.length) {
        throw new ValueError(
          op,
          `loaded state dict contains a parameter group that doesn't match the size of optimizer's group (group ${i}: got ${params.length} params, expected ${g.params.length})`,
        );
      }
      const h: Record<string, HyperValue> = {};
      for (const [k, v] of Object.entries(saved)) h[camel(k)] = Array.isArray(v) ? [...v] : v;
      this.check({ ...g, ...h });
      return h;
    });
    const params = this.paramGroups.flatMap((g) => g.params);
    const state = new Map<Tensor, S>();
    const { required, optional } = this.stateNames;
    for (const [k, saved] of Object.entries(sd.state)) {
      const p = params[Number(k)];
      if (!p) throw new ValueError(op, `state for parameter ${k}, which this optimizer does not have`);
      // Another optimizer's state (SGD's momentum for Adam) would fail later, inside a step.
      const names = Object.keys(saved).map(camel);
      const wrong = names.filter((n) => !required.includes(n) && !optional.includes(n));
      const missing = required.filter((n) => !names.includes(n));
      if (wrong.length || missing.length) {
        throw new ValueError(
          op,
          `the state of parameter ${k} has ${names.join(', ') || 'nothing'}, but ${this.constructor.name} keeps ` +
            `${[...required, ...optional].join(', ')}: a state dict of another optimizer?`,
        );
      }
      const s: Record<string, Tensor | number> = {};
      for (const [name, v] of Object.entries(saved)) {
        if (v instanceof Tensor && !sameShape(v.shape, p.shape)) {
          throw new ShapeError(
            op,
            `${name} of parameter ${k} has shape ${fmtShape(v.shape)}, expected the parameter's ${fmtShape(p.shape)}`,
          );
        }
        s[camel(name)] = v instanceof Tensor ? v.float().clone() : v;
      }
      state.set(p, s as S);
    }
    this.paramGroups.forEach((g, i) => {
      Object.assign(g, hyper[i]);
    });
    this.state = state;
    this.stepCount = sd.step_count ?? 0;
  }

  /**
   * Reject bad hyper-parameters with PyTorch's messages. Subclasses add theirs.
   * NOTE: called from the base constructor, so it must not read subclass fields.
   */
  protected check(g: H): void {
    this.require(g.lr >= 0, `Invalid learning rate: ${g.lr}`);
    this.require(g.weightDecay >= 0, `Invalid weight_decay value: ${g.weightDecay}`);
  }

  /** Throw `ValueError('<Optimizer>: message')` unless `ok`. Conditions are written so that NaN fails them. */
  protected require(ok: boolean, message: string): void {
    if (!ok) throw new ValueError(this.constructor.name, message);
  }

  /** The state of a parameter at its first update. */
  protected abstract initState(p: Tensor): S;

  /** The names a parameter's state has (`loadStateDict` rejects others): always, and sometimes. */
  protected abstract readonly stateNames: { required: readonly string[]; optional: readonly string[] };

  /** Update `p` in place from its gradient `g`, with its group's hyper-parameters and its state. */
  protected abstract update(p: Tensor, g: Tensor, group: ParamGroup<H>, state: S): void;
}
