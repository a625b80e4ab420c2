/**
 * LambdaLR, MultiplicativeLR, ConstantLR, PolynomialLR, CosineAnnealingWarmRestarts and CyclicLR against torch
 * 1.13 (test/fixtures/schedules_more.json, made by generate_schedulers3.py): every group's lr (and CyclicLR's
 * momentum) step by step, resumption from state dicts, SequentialLR over them, and the refusals; and what
 * loadStateDict says about a state that is not one of ours.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ValueError } from '../../src/errors.js';
import * as mb from '../../src/index.js';
import { Adam } from '../../src/optim/adam.js';
import {
  asSchedule,
  ConstantLR,
  CosineAnnealingWarmRestarts,
  CyclicLR,
  type CyclicLROptions,
  ExponentialLR,
  LambdaLR,
  LinearLR,
  type LRScheduler,
  MultiplicativeLR,
  type OptimizerLike,
  PolynomialLR,
  ReduceLROnPlateau,
  SequentialLR,
  type StepFunction,
  StepLR,
} from '../../src/optim/schedules.js';
import { SGD } from '../../src/optim/sgd.js';
import { fixture } from '../helpers.js';

interface RunCase {
  name: string;
  scheduler: string;
  initial_lrs: number[];
  options: Record<string, unknown>;
  optimizer_options: Record<string, unknown>;
  steps: number;
  /** [t][group]: after t scheduler steps, t = 0..steps. */
  lrs: number[][];
  momenta?: number[][];
  /** A run stopped after resume_at steps, saved, loaded into fresh objects and continued: t = resume_at..steps. */
  resume_at: number;
  resumed_lrs: number[][];
  resumed_momenta?: number[][];
}
interface OpsCase {
  name: string;
  scheduler: 'CosineAnnealingWarmRestarts';
  initial_lrs: number[];
  options: Record<string, unknown>;
  /** 'step' is step(), a number step(epoch); each record follows the constructor, then each op. */
  ops: ('step' | number)[];
  lrs: number[][];
  T_cur: number[];
  T_i: number[];
  last_epoch: number[];
}
interface SequentialCase {
  name: string;
  scheduler: 'SequentialLR';
  initial_lrs: number[];
  schedulers: { scheduler: string; options: Record<string, unknown> }[];
  milestones: number[];
  steps: number;
  lrs: number[][];
}
interface ErrorCase {
  name: 'error';
  scheduler: string;
  options: Record<string, unknown>;
  initial_lrs: number[];
  optimizer: 'SGD' | 'Adam';
  /** step() calls after construction, then step(epoch) if not null. */
  steps: number;
  epoch: number | null;
  /** torch's exception, as `Type: message`. */
  error: string;
}
type Case = RunCase | OpsCase | SequentialCase | ErrorCase;
const cases = fixture<{ cases: Case[] }>('schedules_more.json').cases;
const byName = <T extends Case>(name: string) => cases.find((c) => c.name === name) as T;
const runCases = cases.filter((c): c is RunCase => 'resume_at' in c);
const opsCases = cases.filter((c): c is OpsCase => 'ops' in c);
const sequentialCases = cases.filter((c): c is SequentialCase => c.scheduler === 'SequentialLR');
const errorCases = cases.filter((c): c is ErrorCase => c.name === 'error');

/** The fixture's functions, by their Python source. */
const FUNCTIONS: Record<string, StepFunction> = {
  '0.95 ** t': (t) => 0.95 ** t,
  'min(1.0, (t + 1) / 4)': (t) => Math.min(1, (t + 1) / 4),
  '1 / (t + 1)': (t) => 1 / (t + 1),
  '0.9': () => 0.9,
  '0.5 if t % 3 == 0 else 1.0': (t) => (t % 3 === 0 ? 0.5 : 1),
  '0.5 ** x': (x) => 0.5 ** x,
  '1 / (1 + 0.05 * x)': (x) => 1 / (1 + 0.05 * x),
};
const fn = (source: string) => {
  assert.ok(source in FUNCTIONS, `no function for ${source}`);
  return FUNCTIONS[source]!;
};

/** PyTorch's keyword arguments as our options: `max_lr` -> `maxLr`, `T_0` -> `t0`, functions by source. */
function camel<T>(o: Record<string, unknown>): T {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) {
    const key =
      k === 'T_0' ? 't0' : k === 'T_mult' ? 'tMult' : k.replace(/_([a-z])/g, (_, c) => c.toUpperCase());
    const isFn = k === 'lr_lambda' || k === 'scale_fn';
    out[key] = isFn ? (Array.isArray(v) ? v.map((s) => fn(s as string)) : fn(v as string)) : v;
  }
  return out as T;
}

/** A PyTorch-named scheduler over `opt` from the fixture's keyword arguments. */
function make(scheduler: string, opt: OptimizerLike, options: Record<string, unknown>): LRScheduler {
  const o = camel<never>(options);
  switch (scheduler) {
    case 'LambdaLR':
      return new LambdaLR(opt, o);
    case 'MultiplicativeLR':
      return new MultiplicativeLR(opt, o);
    case 'ConstantLR':
      return new ConstantLR(opt, o);
    case 'PolynomialLR':
      return new PolynomialLR(opt, o);
    case 'CosineAnnealingWarmRestarts':
      return new CosineAnnealingWarmRestarts(opt, o);
    case 'CyclicLR':
      return new CyclicLR(opt, o);
    default:
      throw new Error(`no scheduler ${scheduler}`);
  }
}

/** A real optimizer over one 1-element parameter per group with these lrs, as the generator builds it. */
function makeOptimizer(lrs: number[], options: Record<string, unknown> = {}, kind: 'SGD' | 'Adam' = 'SGD') {
  const groups = lrs.map((lr) => ({ params: [mb.zeros([1], { requiresGrad: true })], lr }));
  return kind === 'Adam' ? new Adam(groups, camel(options)) : new SGD(groups, camel(options));
}

type Group = { lr: number; momentum?: number; betas?: readonly number[] };

/** lr and momentum (β1 for Adam) of every group after t steps, t = 0..steps (the current state first). */
function record(opt: OptimizerLike, sched: { step(): void }, steps: number) {
  const lrs: number[][] = [];
  const momenta: number[][] = [];
  for (let t = 0; t <= steps; t++) {
    if (t > 0) sched.step();
    const groups = opt.paramGroups as Group[];
    lrs.push(groups.map((g) => g.lr));
    momenta.push(groups.map((g) => g.betas?.[0] ?? g.momentum!));
  }
  return { lrs, momenta };
}

/** Float64 schedules: at most 1e-12 relative (V8's cos and pow and glibc's may differ in the last bit). */
function expectClose(label: string, got: number[][], want: number[][], tol = 1e-12): void {
  assert.equal(got.length, want.length, `${label}: steps`);
  let maxDiff = 0;
  got.forEach((row, t) => {
    assert.equal(row.length, want[t]!.length, `${label}: step ${t}: groups`);
    row.forEach((g, i) => {
      const w = want[t]![i]!;
      const diff = w === 0 ? Math.abs(g) : Math.abs(g - w) / Math.abs(w);
      maxDiff = Math.max(maxDiff, diff);
      assert.ok(diff <= tol, `${label}: step ${t}, group ${i}: got ${g}, expected ${w} (rel diff ${diff})`);
    });
  });
  if (process.env.MINIBATCH_TEST_VERBOSE)
    console.log(`${label}: OK max rel diff = ${maxDiff.toExponential(2)}`);
}

describe('schedulers against torch 1.13 (schedules_more.json)', () => {
  it('the fixture has every scheduler, two groups for each, and a resume for each', () => {
    const kinds = new Set(runCases.filter((c) => c.initial_lrs.length === 2).map((c) => c.scheduler));
    assert.deepEqual([...kinds].sort(), [
      'ConstantLR',
      'CosineAnnealingWarmRestarts',
      'CyclicLR',
      'LambdaLR',
      'MultiplicativeLR',
      'PolynomialLR',
    ]);
    for (const c of runCases) assert.ok(c.resume_at > 0 && c.resume_at < c.steps, c.name);
  });

  for (const c of runCases) {
    it(`${c.name}: every group's lr${c.momenta ? ' and momentum' : ''} at each step, and resumed mid-run`, () => {
      const opt = makeOptimizer(c.initial_lrs, c.optimizer_options);
      const sched = make(c.scheduler, opt, c.options);
      const got = record(opt, sched, c.steps);
      expectClose(`${c.name} lr`, got.lrs, c.lrs);
      if (c.momenta) expectClose(`${c.name} momentum`, got.momenta, c.momenta);
      assert.deepEqual(
        sched.getLastLr(),
        opt.paramGroups.map((g) => g.lr),
      );

      // Stop, save both state dicts through JSON, load them into objects built with other lrs, continue.
      const opt1 = makeOptimizer(c.initial_lrs, c.optimizer_options);
      const sched1 = make(c.scheduler, opt1, c.options);
      for (let t = 0; t < c.resume_at; t++) sched1.step();
      const savedSched = JSON.parse(JSON.stringify(sched1.stateDict()));
      const savedOpt = JSON.parse(JSON.stringify(opt1.stateDict()));
      const opt2 = makeOptimizer(
        c.initial_lrs.map((lr) => lr * 7),
        c.optimizer_options,
      );
      const sched2 = make(c.scheduler, opt2, c.options);
      opt2.loadStateDict(savedOpt);
      sched2.loadStateDict(savedSched);
      assert.equal(sched2.lastEpoch, c.resume_at);
      assert.deepEqual(sched2.stateDict(), savedSched);
      const rest = record(opt2, sched2, c.steps - c.resume_at);
      expectClose(`${c.name} resumed lr`, rest.lrs, c.resumed_lrs);
      if (c.resumed_momenta) expectClose(`${c.name} resumed momentum`, rest.momenta, c.resumed_momenta);
      // torch resumes exactly where the uninterrupted run goes.
      assert.deepEqual(c.resumed_lrs, c.lrs.slice(c.resume_at));
    });
  }

  for (const c of opsCases) {
    it(`${c.name}: step() and step(epoch) (fractional too): lr, T_cur, T_i, last_epoch after each`, () => {
      const opt = { paramGroups: c.initial_lrs.map((lr) => ({ lr })) };
      const sched = make(c.scheduler, opt, c.options) as CosineAnnealingWarmRestarts;
      const lrs: number[][] = [];
      const got = { tCur: [] as number[], tI: [] as number[], lastEpoch: [] as number[] };
      const snap = () => {
        lrs.push(opt.paramGroups.map((g) => g.lr));
        got.tCur.push(sched.tCur);
        got.tI.push(sched.tI);
        got.lastEpoch.push(sched.lastEpoch);
      };
      snap();
      for (const op of c.ops) {
        if (op === 'step') sched.step();
        else sched.step(op);
        snap();
      }
      expectClose(c.name, lrs, c.lrs);
      // The period arithmetic (a log with T_mult > 1) gives the same numbers as Python's.
      assert.deepEqual(got.tCur, c.T_cur);
      assert.deepEqual(got.tI, c.T_i);
      assert.deepEqual(got.lastEpoch, c.last_epoch);
    });
  }

  for (const c of sequentialCases) {
    it(`${c.name}: inside SequentialLR (restarted with step(0) at a milestone)`, () => {
      const opt = makeOptimizer(c.initial_lrs);
      const children = c.schedulers.map((s) => make(s.scheduler, opt, s.options));
      const sched = new SequentialLR(opt, children, c.milestones);
      expectClose(c.name, record(opt, sched, c.steps).lrs, c.lrs);
    });
  }
});

describe('LambdaLR and MultiplicativeLR', () => {
  it('keep their functions out of the state dict, as PyTorch keeps plain functions out', () => {
    const c = byName<RunCase>('lambda_per_group');
    const opt = { paramGroups: c.initial_lrs.map((lr) => ({ lr })) };
    const sched = new LambdaLR(opt, camel(c.options));
    for (let t = 0; t < 3; t++) sched.step();
    const saved = sched.stateDict();
    assert.deepEqual(saved, { lastEpoch: 3, baseLrs: c.initial_lrs, lastLr: c.lrs[3], options: {} });
    assert.deepEqual(JSON.parse(JSON.stringify(saved)), saved);
  });

  it('asSchedule replays them (one group, the shared function)', () => {
    const c = byName<RunCase>('multiplicative_shared');
    const s = asSchedule((o) => new MultiplicativeLR(o, camel(c.options)), c.initial_lrs[0]!);
    expectClose(
      'asSchedule(MultiplicativeLR)',
      c.lrs.map((_, t) => [s(t)]),
      c.lrs.map((row) => [row[0]!]),
    );
  });

  it('refuse a wrong number of functions, a non-function, and a function that returns no number', () => {
    const opt = () => ({ paramGroups: [{ lr: 0.1 }, { lr: 0.2 }] });
    for (const [Sched, op] of [
      [LambdaLR, 'LambdaLR'],
      [MultiplicativeLR, 'MultiplicativeLR'],
    ] as const) {
      assert.throws(
        () => new Sched(opt(), { lrLambda: [() => 1] }),
        new RegExp(`${op}: lrLambda needs one function per parameter group \\(got 1, expected 2\\)`),
      );
      assert.throws(
        () => new Sched(opt(), { lrLambda: 0.9 as unknown as StepFunction }),
        new RegExp(`${op}: lrLambda must be a function or one per parameter group \\(got number\\)`),
      );
      assert.throws(
        () => new Sched(opt(), {} as never),
        new RegExp(`${op}: lrLambda must be a function or one per parameter group \\(got undefined\\)`),
      );
      assert.throws(
        () => new Sched(opt(), { lr_lambda: () => 1 } as never),
        new RegExp(`${op}: unknown option 'lr_lambda' .*did you mean 'lrLambda'\\?`),
      );
      const o = opt();
      const sched = new Sched(o, {
        lrLambda: [() => 1, (t) => (t < 2 ? 1 : (undefined as unknown as number))],
      });
      sched.step();
      assert.throws(
        () => sched.step(),
        new RegExp(`${op}: lrLambda of group 1 must return a finite number \\(got undefined for 2\\)`),
      );
      assert.deepEqual(
        o.paramGroups.map((g) => g.lr),
        [0.1, 0.2],
        'no group was written',
      );
    }
    assert.throws(
      () => new LambdaLR(opt(), { lrLambda: () => Number.NaN }),
      /LambdaLR: lrLambda of group 0 must return a finite number \(got NaN for 0\)/,
    );
  });
});

describe('ConstantLR and PolynomialLR', () => {
  it("use PyTorch's defaults (factor 1/3, totalIters 5; totalIters 5, power 1)", () => {
    const opt = { paramGroups: [{ lr: 0.3 }] };
    assert.deepEqual(new ConstantLR(opt).stateDict().options, { factor: 1 / 3, totalIters: 5 });
    assert.deepEqual(new PolynomialLR({ paramGroups: [{ lr: 1 }] }).stateDict().options, {
      totalIters: 5,
      power: 1,
    });
  });

  it('refuse bad options, naming the scheduler and the value', () => {
    const opt = () => ({ paramGroups: [{ lr: 0.1 }] });
    const bad: [() => unknown, RegExp][] = [
      [
        () => new ConstantLR(opt(), { factor: 1.5 }),
        /ConstantLR: factor must be in \(0, 1\]: the lr is multiplied by it, then divided by it at totalIters \(got 1.5\)/,
      ],
      [() => new ConstantLR(opt(), { factor: 0 }), /ConstantLR: factor must be in \(0, 1\].*\(got 0\)/],
      [
        () => new ConstantLR(opt(), { factor: Number.NaN }),
        /ConstantLR: factor must be in \(0, 1\].*\(got NaN\)/,
      ],
      [
        () => new ConstantLR(opt(), { totalIters: 0 }),
        /ConstantLR: totalIters must be an integer >= 1 \(got 0\)/,
      ],
      [
        () => new ConstantLR(opt(), { total_iters: 3 } as never),
        /ConstantLR: unknown option 'total_iters' .*did you mean 'totalIters'\?/,
      ],
      [
        () => new PolynomialLR(opt(), { totalIters: 2.5 }),
        /PolynomialLR: totalIters must be an integer >= 1 \(got 2.5\)/,
      ],
      [
        () => new PolynomialLR(opt(), { power: -1 }),
        /PolynomialLR: power must be a finite number >= 0 \(got -1\)/,
      ],
      [
        () => new PolynomialLR(opt(), { power: Number.POSITIVE_INFINITY }),
        /PolynomialLR: power must be a finite number >= 0 \(got Infinity\)/,
      ],
    ];
    for (const [build, message] of bad) assert.throws(build, message);
  });
});

describe('CosineAnnealingWarmRestarts', () => {
  it('saves T_cur and T_i: a fractional position survives the state dict', () => {
    const opt = { paramGroups: [{ lr: 0.1 }] };
    const sched = new CosineAnnealingWarmRestarts(opt, { t0: 10, tMult: 2 });
    sched.step(26.5);
    const saved = JSON.parse(JSON.stringify(sched.stateDict()));
    assert.deepEqual(
      { tCur: saved.tCur, tI: saved.tI, lastEpoch: saved.lastEpoch },
      { tCur: 16.5, tI: 20, lastEpoch: 26 },
    );
    const opt2 = { paramGroups: [{ lr: 0.1 }] };
    const sched2 = new CosineAnnealingWarmRestarts(opt2, { t0: 10, tMult: 2 });
    sched2.loadStateDict(saved);
    sched.step();
    sched2.step();
    assert.deepEqual([sched2.tCur, sched2.tI, sched2.getLastLr()], [sched.tCur, sched.tI, sched.getLastLr()]);
    const { tCur: _, ...noTCur } = saved;
    assert.throws(
      () => sched2.loadStateDict(noTCur),
      /CosineAnnealingWarmRestarts.loadStateDict: state is not from stateDict\(\) \(missing tCur; got keys lastEpoch, baseLrs, lastLr, options, tI\)/,
    );
    assert.throws(
      () => sched2.loadStateDict(new StepLR(opt2, { stepSize: 2 }).stateDict() as never),
      /CosineAnnealingWarmRestarts.loadStateDict: state is for another scheduler \(got options gamma,stepSize, expected etaMin,t0,tMult\)/,
    );
    assert.deepEqual(sched2.stateDict(), sched.stateDict(), 'a refused state changes nothing');
  });

  it('asSchedule replays it', () => {
    const c = byName<RunCase>('warm_restarts_defaults_one_group');
    const s = asSchedule((o) => new CosineAnnealingWarmRestarts(o, camel(c.options)), c.initial_lrs[0]!);
    expectClose(
      'asSchedule(CosineAnnealingWarmRestarts)',
      c.lrs.map((_, t) => [s(t)]),
      c.lrs,
    );
  });

  it('refuses what torch refuses, in its terms (t0, tMult integers, epoch >= 0)', () => {
    const opt = () => ({ paramGroups: [{ lr: 0.1 }] });
    const bad: [() => unknown, RegExp][] = [
      [
        () => new CosineAnnealingWarmRestarts(opt(), { t0: 0 }),
        /CosineAnnealingWarmRestarts: t0 must be an integer >= 1 \(got 0\)/,
      ],
      [
        () => new CosineAnnealingWarmRestarts(opt(), {} as never),
        /CosineAnnealingWarmRestarts: t0 must be an integer >= 1 \(got undefined\)/,
      ],
      [
        () => new CosineAnnealingWarmRestarts(opt(), { t0: 5, tMult: 1.5 }),
        /CosineAnnealingWarmRestarts: tMult must be an integer >= 1 \(got 1.5\)/,
      ],
      [
        () => new CosineAnnealingWarmRestarts(opt(), { T_0: 5 } as never),
        /CosineAnnealingWarmRestarts: unknown option 'T_0' \(expected one of t0, tMult, etaMin\)/,
      ],
    ];
    for (const [build, message] of bad) assert.throws(build, message);
    const sched = new CosineAnnealingWarmRestarts(opt(), { t0: 5 });
    sched.step();
    for (const epoch of [-1, Number.NaN]) {
      assert.throws(
        () => sched.step(epoch),
        new RegExp(`CosineAnnealingWarmRestarts.step: epoch must be a number >= 0 \\(got ${epoch}\\)`),
      );
    }
    assert.deepEqual([sched.lastEpoch, sched.tCur, sched.tI], [1, 1, 5], 'a refused epoch changes nothing');
  });
});

describe('CyclicLR', () => {
  it("cycles Adam's beta1 as SGD's momentum (torch 1.13 refuses Adam; torch 2 cycles its beta1)", () => {
    const c = byName<RunCase>('cyclic_defaults');
    const opt = makeOptimizer(c.initial_lrs, { betas: [0.5, 0.99] }, 'Adam') as Adam;
    const sched = new CyclicLR(opt, camel(c.options));
    const got = record(opt, sched, c.steps);
    expectClose('CyclicLR(Adam) lr', got.lrs, c.lrs);
    expectClose('CyclicLR(Adam) beta1', got.momenta, c.momenta!);
    assert.equal(opt.paramGroups[0]!.betas[1], 0.99);
    assert.deepEqual(opt.defaults.betas, [0.5, 0.99], "the defaults' pair is left alone");
  });

  it('sets every lr to baseLr and keeps the lr bounds in its options (the state dict)', () => {
    const c = byName<RunCase>('cyclic_triangular');
    const opt = { paramGroups: [{ lr: 5 }, { lr: 6 }] };
    const sched = new CyclicLR(opt, camel(c.options));
    assert.deepEqual(
      opt.paramGroups.map((g) => g.lr),
      c.lrs[0],
    );
    assert.deepEqual(sched.baseLrs, c.options.base_lr);
    assert.deepEqual(sched.stateDict().options, {
      maxLr: [0.1, 0.01],
      stepSizeUp: 4,
      stepSizeDown: 4,
      mode: 'triangular',
      gamma: 1,
      scaleMode: 'cycle',
      cycleMomentum: false,
      baseMomentum: [],
      maxMomentum: [],
    });
  });

  it('refuses cycleMomentum (the default) without a momentum to cycle, saying how to go without', () => {
    const plain = { paramGroups: [{ lr: 0.1 }] };
    assert.throws(
      () => new CyclicLR(plain, { baseLr: 0.01, maxLr: 0.1 }),
      /CyclicLR: optimizer must support momentum with cycleMomentum enabled \(group 0 has neither momentum nor betas\): pass cycleMomentum: false to cycle the lr only/,
    );
    assert.deepEqual(plain, { paramGroups: [{ lr: 0.1 }] }, 'the groups are unchanged');
    const s = asSchedule(
      (o) => new CyclicLR(o, { baseLr: 0.01, maxLr: 0.1, stepSizeUp: 2, cycleMomentum: false }),
      1,
    );
    assert.deepEqual([0, 1, 2, 3, 4].map(s), [0.01, 0.05500000000000001, 0.1, 0.05500000000000001, 0.01]);
  });

  it("refuses bad options, naming the value (torch's refusals included, before touching the groups)", () => {
    const sgd = () => ({
      paramGroups: [
        { lr: 0.1, momentum: 0.9 },
        { lr: 0.2, momentum: 0.9 },
      ],
    });
    const bad: [Partial<CyclicLROptions> & Record<string, unknown>, RegExp][] = [
      [
        { maxLr: 0.1 },
        /CyclicLR: baseLr must be a finite number or one per parameter group \(got undefined\)/,
      ],
      [
        { baseLr: [0.1, 0.2, 0.3], maxLr: 1 },
        /CyclicLR: baseLr needs one value per parameter group \(got 3, expected 2\)/,
      ],
      [
        { baseLr: 0.1, maxLr: [1] },
        /CyclicLR: maxLr needs one value per parameter group \(got 1, expected 2\)/,
      ],
      [{ baseLr: -0.1, maxLr: 1 }, /CyclicLR: baseLr and maxLr must be >= 0 \(got -0.1\)/],
      [
        { baseLr: 0.1, maxLr: 1, stepSizeUp: 0 },
        /CyclicLR: stepSizeUp must be a finite number > 0 \(got 0\)/,
      ],
      [
        { baseLr: 0.1, maxLr: 1, stepSizeUp: Number.POSITIVE_INFINITY },
        /CyclicLR: stepSizeUp must be a finite number > 0 \(got Infinity\)/,
      ],
      [
        { baseLr: 0.1, maxLr: 1, stepSizeDown: -1 },
        /CyclicLR: stepSizeDown must be a finite number >= 0 \(got -1\)/,
      ],
      [
        { baseLr: 0.1, maxLr: 1, mode: 'exp' as 'exp_range' },
        /CyclicLR: mode must be 'triangular', 'triangular2' or 'exp_range' \(got exp\)/,
      ],
      [{ baseLr: 0.1, maxLr: 1, gamma: 0 }, /CyclicLR: gamma must be > 0 \(got 0\)/],
      [
        { baseLr: 0.1, maxLr: 1, scaleFn: 0.5 as unknown as StepFunction },
        /CyclicLR: scaleFn must be a function \(got number\)/,
      ],
      [
        { baseLr: 0.1, maxLr: 1, scaleMode: 'iteration' as 'cycle' },
        /CyclicLR: scaleMode must be 'cycle' or 'iterations' \(got iteration\)/,
      ],
      [
        { baseLr: 0.1, maxLr: 1, maxMomentum: [0.9] },
        /CyclicLR: maxMomentum needs one value per parameter group \(got 1, expected 2\)/,
      ],
      [{ base_lr: 0.1, maxLr: 1 }, /CyclicLR: unknown option 'base_lr' .*did you mean 'baseLr'\?/],
    ];
    for (const [options, message] of bad) {
      const opt = sgd();
      assert.throws(() => new CyclicLR(opt, options as CyclicLROptions), message);
      assert.deepEqual(opt, sgd(), `${message}: the groups are unchanged`);
    }
    // Momentum bounds are not read without cycleMomentum (as in torch).
    new CyclicLR(sgd(), { baseLr: 0.1, maxLr: 1, cycleMomentum: false, maxMomentum: [0.9] });
    const sched = new CyclicLR(sgd(), {
      baseLr: 0.1,
      maxLr: 1,
      cycleMomentum: false,
      scaleFn: (x) => (x < 2 ? 1 : (null as unknown as number)),
      scaleMode: 'iterations',
    });
    sched.step();
    assert.throws(() => sched.step(), /CyclicLR: scaleFn must return a finite number \(got null for 2\)/);
  });
});

describe('torch 1.13 refusals (schedules_more.json): each refused here too, in our terms', () => {
  // In the fixture's order: torch's message, then ours.
  const expected: [string, RegExp][] = [
    [
      'Expected 2 lr_lambdas, but got 3',
      /LambdaLR: lrLambda needs one function per parameter group \(got 3, expected 2\)/,
    ],
    [
      'Expected 2 lr_lambdas, but got 1',
      /MultiplicativeLR: lrLambda needs one function per parameter group \(got 1, expected 2\)/,
    ],
    [
      'Constant multiplicative factor expected to be between 0 and 1.',
      /ConstantLR: factor must be in \(0, 1\].*\(got 1.5\)/,
    ],
    [
      'Constant multiplicative factor expected to be between 0 and 1.',
      /ConstantLR: factor must be in \(0, 1\].*\(got -0.1\)/,
    ],
    // torch takes factor 0 and fails at total_iters; refused at construction here.
    ['ZeroDivisionError: float division by zero', /ConstantLR: factor must be in \(0, 1\].*\(got 0\)/],
    [
      'Expected positive integer T_0, but got 0',
      /CosineAnnealingWarmRestarts: t0 must be an integer >= 1 \(got 0\)/,
    ],
    [
      'Expected positive integer T_0, but got 2.5',
      /CosineAnnealingWarmRestarts: t0 must be an integer >= 1 \(got 2.5\)/,
    ],
    [
      'Expected integer T_mult >= 1, but got 0',
      /CosineAnnealingWarmRestarts: tMult must be an integer >= 1 \(got 0\)/,
    ],
    [
      'Expected integer T_mult >= 1, but got 1.5',
      /CosineAnnealingWarmRestarts: tMult must be an integer >= 1 \(got 1.5\)/,
    ],
    [
      'Expected non-negative epoch, but got -1',
      /CosineAnnealingWarmRestarts.step: epoch must be a number >= 0 \(got -1\)/,
    ],
    [
      'mode is invalid and scale_fn is None',
      /CyclicLR: mode must be 'triangular', 'triangular2' or 'exp_range' \(got exp\)/,
    ],
    [
      'expected 2 values for base_lr, got 3',
      /CyclicLR: baseLr needs one value per parameter group \(got 3, expected 2\)/,
    ],
    [
      'expected 2 values for max_lr, got 1',
      /CyclicLR: maxLr needs one value per parameter group \(got 1, expected 2\)/,
    ],
    [
      'expected 2 values for max_momentum, got 1',
      /CyclicLR: maxMomentum needs one value per parameter group \(got 1, expected 2\)/,
    ],
    [
      'ZeroDivisionError: float division by zero',
      /CyclicLR: stepSizeUp must be a finite number > 0 \(got 0\)/,
    ],
  ];

  it('covers every refusal in the fixture but one (Adam in CyclicLR, which is cycled here)', () => {
    assert.equal(errorCases.length, expected.length + 1);
    const adam = errorCases.at(-1)!;
    assert.equal(adam.optimizer, 'Adam');
    assert.match(adam.error, /optimizer must support momentum with `cycle_momentum` option enabled/);
  });

  errorCases.slice(0, -1).forEach((c, i) => {
    const [torch, ours] = expected[i]!;
    it(`${c.scheduler} ${JSON.stringify(c.options)}${c.epoch === null ? '' : ` step(${c.epoch})`}`, () => {
      assert.ok(c.error.includes(torch), `torch: ${c.error}`);
      assert.throws(
        () => {
          const opt = makeOptimizer(c.initial_lrs, {}, c.optimizer);
          const sched = make(c.scheduler, opt, c.options);
          for (let t = 0; t < c.steps; t++) sched.step();
          if (c.epoch !== null) sched.step(c.epoch);
        },
        (e: Error) => e instanceof ValueError && ours.test(e.message),
      );
    });
  });
});

describe('loadStateDict refuses what is not a state dict of its own', () => {
  const opt = () => ({ paramGroups: [{ lr: 0.1 }] });
  // What torch.optim.lr_scheduler.StepLR(...).state_dict() holds.
  const torchState = {
    step_size: 3,
    gamma: 0.1,
    base_lrs: [0.1],
    last_epoch: 2,
    _step_count: 3,
    _last_lr: [0.1],
  };

  it("names the scheduler and the missing keys, and says PyTorch's state_dict cannot be loaded", () => {
    const schedulers: [string, { loadStateDict(s: never): void }][] = [
      ['StepLR', new StepLR(opt(), { stepSize: 3 })],
      ['LambdaLR', new LambdaLR(opt(), { lrLambda: () => 1 })],
      ['CyclicLR', new CyclicLR(opt(), { baseLr: 0.1, maxLr: 1, cycleMomentum: false })],
    ];
    for (const [name, sched] of schedulers) {
      assert.throws(
        () => sched.loadStateDict(torchState as never),
        (e: Error) =>
          e instanceof ValueError &&
          e.message ===
            `${name}.loadStateDict: state is not from stateDict() (missing lastEpoch, baseLrs, lastLr, options; ` +
              "got keys step_size, gamma, base_lrs, last_epoch, _step_count, _last_lr): PyTorch's state_dict() " +
              'has other keys (snake_case) and cannot be loaded',
      );
      for (const [state, kind] of [
        [null, 'null'],
        [undefined, 'undefined'],
        [[1], 'an array'],
        ['{}', 'string'],
      ] as const) {
        assert.throws(
          () => sched.loadStateDict(state as never),
          (e: Error) =>
            e instanceof ValueError &&
            e.message === `${name}.loadStateDict: state must be an object from stateDict() (got ${kind})`,
        );
      }
    }
  });

  it('refuses bad options and another number of groups, before changing anything', () => {
    const sched = new ExponentialLR(opt(), { gamma: 0.5 });
    sched.step();
    const saved = sched.stateDict();
    assert.throws(
      () => sched.loadStateDict({ ...saved, options: null } as never),
      /ExponentialLR.loadStateDict: state.options must be an object \(got null\)/,
    );
    assert.throws(
      () => sched.loadStateDict({ ...saved, baseLrs: [0.1, 0.2], lastLr: [0.1, 0.2] }),
      /ExponentialLR.loadStateDict: state is for another number of parameter groups \(got baseLrs \[0.1,0.2\], expected 1 values\)/,
    );
    assert.throws(
      () => new LinearLR(opt()).loadStateDict(saved),
      /LinearLR.loadStateDict: state is for another scheduler \(got options gamma, expected endFactor,startFactor,totalIters\)/,
    );
    assert.deepEqual(sched.stateDict(), saved);
  });

  it('SequentialLR and ReduceLROnPlateau say the same', () => {
    const o = opt();
    const seq = new SequentialLR(o, [new ConstantLR(o), new ExponentialLR(o, { gamma: 0.9 })], [5]);
    assert.throws(
      () => seq.loadStateDict(null as never),
      /SequentialLR.loadStateDict: state must be an object from stateDict\(\) \(got null\)/,
    );
    assert.throws(
      () => seq.loadStateDict({ last_epoch: 1, _schedulers: [] } as never),
      /SequentialLR.loadStateDict: state is not from stateDict\(\) \(missing lastEpoch, milestones, lastLr, schedulers; got keys last_epoch, _schedulers\): PyTorch's/,
    );
    assert.throws(
      () => seq.loadStateDict({ ...seq.stateDict(), schedulers: {} } as never),
      /SequentialLR.loadStateDict: state has another number of schedulers \(got object, expected 2\)/,
    );
    const plateau = new ReduceLROnPlateau(opt());
    assert.throws(
      () => plateau.loadStateDict(seq.stateDict() as never),
      /ReduceLROnPlateau.loadStateDict: state is not from stateDict\(\) \(missing best, numBadEpochs, cooldownCounter, options; got keys lastEpoch, milestones, lastLr, schedulers\)$/,
    );
  });
});
