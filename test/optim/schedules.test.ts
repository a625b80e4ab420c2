import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { ValueError } from '../../src/errors.js';
import {
  asSchedule,
  CosineAnnealingLR,
  constant,
  cosineAnnealing,
  ExponentialLR,
  LinearLR,
  linearWarmup,
  MultiStepLR,
  type OptimizerLike,
  type Schedule,
  type Scheduler,
  SequentialLR,
  StepLR,
  stepDecay,
  warmupCosine,
} from '../../src/optim/schedules.js';

// Compiled to build/test/optim/, fixtures stay in test/fixtures/.
const fixture = JSON.parse(
  readFileSync(new URL('../../../test/fixtures/schedules.json', import.meta.url), 'utf8'),
);
type Case = {
  schedule: string;
  base_lr: number;
  options: Record<string, number>;
  lrs: number[];
  values: number[];
};
const cases: Record<string, Case> = Object.fromEntries(fixture.cases.map((c: Case) => [c.schedule, c]));

/** Largest relative difference, checked against `tol` and printed (llm.c check_tensor style). */
function expectClose(label: string, got: number[], want: number[], tol = 1e-7): void {
  assert.equal(got.length, want.length, `${label}: length`);
  let maxDiff = 0;
  got.forEach((g, i) => {
    const diff = Math.abs(g - want[i]!) / Math.abs(want[i]!);
    maxDiff = Math.max(maxDiff, diff);
    assert.ok(diff <= tol, `${label}: step ${i}: got ${g}, expected ${want[i]} (rel diff ${diff})`);
  });
  console.log(`${label}: OK max rel diff = ${maxDiff.toExponential(2)}`);
}

const sample = (s: Schedule, n: number) => Array.from({ length: n }, (_, t) => s(t));

/** The lr before each of n steps, as generate.py records it: read lr, optimizer.step(), scheduler.step(). */
function run(make: (opt: OptimizerLike) => Scheduler, baseLr: number, n: number): number[] {
  const opt = { paramGroups: [{ lr: baseLr }] };
  const sched = make(opt);
  const lrs: number[] = [];
  for (let t = 0; t < n; t++) {
    lrs.push(opt.paramGroups[0]!.lr);
    sched.step();
  }
  return lrs;
}

const torchWarmupCosine = (opt: OptimizerLike) =>
  new SequentialLR(
    opt,
    [
      new LinearLR(opt, { startFactor: 0.1, endFactor: 1, totalIters: 5 }),
      new CosineAnnealingLR(opt, { tMax: 20 }),
    ],
    [5],
  );

describe('PyTorch schedulers against torch 1.13 (schedules.json)', () => {
  it('LinearLR', () => {
    const c = cases.LinearLR!;
    const { start_factor, end_factor, total_iters } = c.options;
    const make = (opt: OptimizerLike) =>
      new LinearLR(opt, { startFactor: start_factor!, endFactor: end_factor!, totalIters: total_iters! });
    expectClose('LinearLR', run(make, c.base_lr, c.lrs.length), c.lrs);
    // The recursive formula's rounding, reproduced bit for bit: 0.09999999999999999, not 0.1.
    assert.equal(run(make, c.base_lr, c.lrs.length)[10], 0.09999999999999999);
  });

  it('CosineAnnealingLR, rising again past T_max', () => {
    const c = cases.CosineAnnealingLR!;
    const make = (opt: OptimizerLike) =>
      new CosineAnnealingLR(opt, { tMax: c.options.T_max!, etaMin: c.options.eta_min! });
    expectClose('CosineAnnealingLR', run(make, c.base_lr, c.lrs.length), c.lrs);
  });

  it('StepLR', () => {
    const c = cases.StepLR!;
    const make = (opt: OptimizerLike) =>
      new StepLR(opt, { stepSize: c.options.step_size!, gamma: c.options.gamma! });
    assert.deepEqual(run(make, c.base_lr, c.lrs.length), c.lrs);
  });

  it('SequentialLR(LinearLR, CosineAnnealingLR): the milestone step included', () => {
    const c = cases.warmup_then_cosine!;
    const lrs = run(torchWarmupCosine, c.base_lr, c.lrs.length);
    expectClose('SequentialLR warm-up+cosine', lrs, c.lrs);
    // At the milestone the cosine restarts from its closed form at 0, i.e. exactly the base lr.
    assert.equal(lrs[5], 0.1);
  });

  it('MultiStepLR (a repeated milestone decays twice) and ExponentialLR, against torch 1.13', () => {
    // torch.optim.lr_scheduler.MultiStepLR(SGD(lr=1), milestones=[2, 4, 4], gamma=0.5), lr before each step.
    const multi = (opt: OptimizerLike) => new MultiStepLR(opt, { milestones: [2, 4, 4], gamma: 0.5 });
    assert.deepEqual(run(multi, 1, 7), [1, 1, 0.5, 0.5, 0.125, 0.125, 0.125]);
    const exp = (opt: OptimizerLike) => new ExponentialLR(opt, { gamma: 0.9 });
    assert.deepEqual(
      run(exp, 0.1, 5),
      [0.1, 0.09000000000000001, 0.08100000000000002, 0.07290000000000002, 0.06561000000000002],
    );
    // Closed forms (what asSchedule and SequentialLR use) agree with the recursion.
    assert.deepEqual(sample(asSchedule(multi, 1), 7), [1, 1, 0.5, 0.5, 0.125, 0.125, 0.125]);
    const opt = { paramGroups: [{ lr: 1 }] };
    assert.throws(
      () => new MultiStepLR(opt, { milestones: [4, 2] }),
      /MultiStepLR: milestones must be increasing/,
    );
    assert.throws(
      () => new MultiStepLR(opt, { milestones: [] }),
      /MultiStepLR: milestones must be a non-empty array/,
    );
    assert.throws(
      () => new ExponentialLR(opt, { gamma: -1 }),
      /ExponentialLR: gamma must be a positive number/,
    );
    const s = new MultiStepLR(opt, { milestones: [2] });
    s.step();
    const again = new MultiStepLR({ paramGroups: [{ lr: 1 }] }, { milestones: [2] });
    again.loadStateDict(s.stateDict());
    assert.equal(again.lastEpoch, 1);
  });

  it('asSchedule replays a scheduler as a pure function, in any order of steps', () => {
    const c = cases.warmup_then_cosine!;
    const s = asSchedule(torchWarmupCosine, c.base_lr);
    assert.equal(s(20), run(torchWarmupCosine, c.base_lr, 21)[20]);
    expectClose('asSchedule(SequentialLR)', sample(s, c.lrs.length), c.lrs);
    assert.throws(() => s(-1), /asSchedule: step must be an integer >= 0 \(got -1\)/);
  });
});

describe('pure schedules against the same PyTorch values', () => {
  it('linearWarmup is LinearLR in closed form', () => {
    const c = cases.LinearLR!;
    expectClose('linearWarmup', sample(linearWarmup(c.base_lr, 8, 0.25), c.lrs.length), c.lrs);
  });

  it('cosineAnnealing is CosineAnnealingLR in closed form', () => {
    const c = cases.CosineAnnealingLR!;
    expectClose('cosineAnnealing', sample(cosineAnnealing(c.base_lr, 10, 0.001), c.lrs.length), c.lrs);
  });

  it('stepDecay is StepLR in closed form', () => {
    const c = cases.StepLR!;
    assert.deepEqual(sample(stepDecay(c.base_lr, 5, 0.5), c.lrs.length), c.lrs);
  });

  it('warmupCosine is SequentialLR(LinearLR, CosineAnnealingLR)', () => {
    const c = cases.warmup_then_cosine!;
    const s = warmupCosine(c.base_lr, 5, 25, { startFactor: 0.1, etaMin: 0 });
    expectClose('warmupCosine', sample(s, c.lrs.length), c.lrs);
  });

  it("stepDecay gives the seed's adaptive batch size min(32 * 2^(epoch // 10), 256)", () => {
    const c = cases.seed_batch_size!;
    const batchSize = stepDecay(c.options.initial!, c.options.every!, 2);
    assert.deepEqual(
      c.values.map((_, e) => Math.min(batchSize(e), c.options.max!)),
      c.values,
    );
  });

  it('constant, and warm-up from 0 by default', () => {
    assert.deepEqual(sample(constant(0.3), 3), [0.3, 0.3, 0.3]);
    assert.deepEqual(sample(linearWarmup(0.1, 4), 6), [0, 0.025, 0.05, 0.07500000000000001, 0.1, 0.1]);
    assert.deepEqual(sample(linearWarmup(0.1, 0), 2), [0.1, 0.1]);
  });
});

describe('PyTorch scheduler behaviour', () => {
  it('LinearLR matches the example of the PyTorch 2.1 docs', () => {
    const lrs = run((opt) => new LinearLR(opt, { startFactor: 0.5, totalIters: 4 }), 0.05, 7);
    expectClose('LinearLR docs example', lrs, [0.025, 0.03125, 0.0375, 0.04375, 0.05, 0.05, 0.05], 1e-15);
  });

  it('CosineAnnealingLR stays on the closed-form cosine through many periods', () => {
    const make = (opt: OptimizerLike) => new CosineAnnealingLR(opt, { tMax: 7, etaMin: 0.01 });
    expectClose(
      'CosineAnnealingLR 10 periods',
      run(make, 0.5, 140),
      sample(cosineAnnealing(0.5, 7, 0.01), 140),
      1e-12,
    );
  });

  it('scales every parameter group from its own base lr', () => {
    const opt: OptimizerLike = { paramGroups: [{ lr: 0.1 }, { lr: 0.02 }] };
    const sched = new StepLR(opt, { stepSize: 2, gamma: 0.5 });
    for (let t = 0; t < 4; t++) sched.step();
    assert.deepEqual(sched.getLastLr(), [0.025, 0.005]);
    assert.deepEqual(sched.baseLrs, [0.1, 0.02]);
    assert.deepEqual(
      opt.paramGroups.map((g) => g.initialLr),
      [0.1, 0.02],
    );
  });

  it('stateDict / loadStateDict resume a scheduler mid-run', () => {
    const opt = { paramGroups: [{ lr: 0.1 }] };
    const sched = new CosineAnnealingLR(opt, { tMax: 10, etaMin: 0.001 });
    for (let t = 0; t < 6; t++) sched.step();
    const saved = JSON.parse(JSON.stringify(sched.stateDict()));
    const savedLr = opt.paramGroups[0]!.lr;
    // Resume as PyTorch does: build fresh objects, restore the optimizer (its lr), then the scheduler.
    const opt2 = { paramGroups: [{ lr: 0.1 }] };
    const sched2 = new CosineAnnealingLR(opt2, { tMax: 3 });
    opt2.paramGroups[0]!.lr = savedLr;
    sched2.loadStateDict(saved);
    for (let t = 0; t < 9; t++) {
      sched.step();
      sched2.step();
      assert.equal(opt2.paramGroups[0]!.lr, opt.paramGroups[0]!.lr);
    }
    assert.throws(
      () => new StepLR({ paramGroups: [{ lr: 1 }] }, { stepSize: 1 }).loadStateDict(saved),
      /loadStateDict: state is for another scheduler \(got options etaMin,tMax, expected gamma,stepSize\)/,
    );
  });

  it('SequentialLR stateDict / loadStateDict across the milestone', () => {
    const c = cases.warmup_then_cosine!;
    const opt = { paramGroups: [{ lr: c.base_lr }] };
    const sched = torchWarmupCosine(opt);
    for (let t = 0; t < 3; t++) sched.step();
    const saved = JSON.parse(JSON.stringify(sched.stateDict()));
    const opt2 = { paramGroups: [{ lr: c.base_lr }] };
    const sched2 = torchWarmupCosine(opt2);
    opt2.paramGroups[0]!.lr = opt.paramGroups[0]!.lr;
    sched2.loadStateDict(saved);
    const lrs = [opt2.paramGroups[0]!.lr];
    for (let t = 3; t < 24; t++) {
      sched2.step();
      lrs.push(opt2.paramGroups[0]!.lr);
    }
    expectClose('SequentialLR resumed at step 3', lrs, c.lrs.slice(3));
  });

  it('rejects bad arguments with PyTorch-like messages', () => {
    const opt = { paramGroups: [{ lr: 0.1 }] };
    assert.throws(
      () => new LinearLR(opt, { startFactor: 0 }),
      /LinearLR: startFactor must be in \(0, 1\] \(got 0\)/,
    );
    assert.throws(
      () => new LinearLR(opt, { endFactor: 1.5 }),
      /LinearLR: endFactor must be in \[0, 1\] \(got 1.5\)/,
    );
    assert.throws(
      () => new CosineAnnealingLR(opt, { tMax: 0 }),
      /CosineAnnealingLR: tMax must be > 0 \(got 0\)/,
    );
    assert.throws(() => new StepLR(opt, { stepSize: 2.5 }), ValueError);
    const a = new LinearLR(opt);
    assert.throws(
      () => new SequentialLR(opt, [a, new StepLR(opt, { stepSize: 3 })], []),
      /SequentialLR: needs one milestone fewer than schedulers \(got 0, expected 1\)/,
    );
    const other = { paramGroups: [{ lr: 0.1 }] };
    assert.throws(
      () => new SequentialLR(opt, [a, new StepLR(other, { stepSize: 3 })], [2]),
      /SequentialLR: scheduler 1 drives another optimizer/,
    );
    assert.throws(
      () => warmupCosine(0.1, 10, 10),
      /warmupCosine: totalSteps must exceed warmupSteps \(got 10/,
    );
  });
});
