/**
 * OneCycleLR and ReduceLROnPlateau against torch 1.13 (test/fixtures/schedules_plateau_onecycle.json, made by
 * generate_schedulers2.py): every group's lr and momentum step by step, the counters of the plateau logic,
 * resumption from state dicts, and the refusals.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ValueError } from '../../src/errors.js';
import * as mb from '../../src/index.js';
import { Adam } from '../../src/optim/adam.js';
import {
  asSchedule,
  OneCycleLR,
  type OneCycleLROptions,
  type OptimizerLike,
  ReduceLROnPlateau,
  type ReduceLROnPlateauOptions,
  StepLR,
} from '../../src/optim/schedules.js';
import { SGD } from '../../src/optim/sgd.js';
import { fit } from '../../src/train/fit.js';
import { fixture } from '../helpers.js';

interface OneCycleCase {
  name: string;
  optimizer: 'SGD' | 'Adam';
  optimizer_options: { lr: number; momentum?: number; betas?: [number, number] };
  options: Record<string, unknown>;
  total_steps: number;
  /** [t][group]: after t scheduler steps, t = 0..total_steps. */
  lrs: number[][];
  momenta: number[][];
  beta2?: number[][];
  error: string;
  group_keys: Record<string, number>[];
}
interface PlateauCase {
  name: string;
  initial_lrs: number[];
  options: Record<string, unknown>;
  metrics: number[];
  /** [step][group]: after each step(metric). */
  lrs: number[][];
  best: number[];
  num_bad_epochs: number[];
  cooldown_counter: number[];
}
const cases = fixture<{ cases: (OneCycleCase | PlateauCase)[] }>('schedules_plateau_onecycle.json').cases;
const byName = <T>(name: string) => cases.find((c) => c.name === name) as T;
const oneCycleCases = cases.filter((c): c is OneCycleCase => 'optimizer' in c);
const plateauCases = cases.filter((c): c is PlateauCase => 'metrics' in c);

/** PyTorch's keyword arguments as our options: `max_lr` -> `maxLr`. */
const camel = <T>(o: Record<string, unknown>) =>
  Object.fromEntries(
    Object.entries(o).map(([k, v]) => [k.replace(/_([a-z])/g, (_, c) => c.toUpperCase()), v]),
  ) as T;

/** Float64 schedules: at most 1e-12 relative (V8's cos and glibc's may differ in the last bit). */
function expectClose(label: string, got: number[][], want: number[][], tol = 1e-12): void {
  assert.equal(got.length, want.length, `${label}: steps`);
  let maxDiff = 0;
  got.forEach((row, t) => {
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

/** A real optimizer over one 1-element parameter per group, as the generator builds it. */
function makeOptimizer(c: OneCycleCase, groups = c.lrs[0]!.length) {
  const params = Array.from({ length: groups }, () => ({ params: [mb.zeros([1], { requiresGrad: true })] }));
  return c.optimizer === 'Adam'
    ? new Adam(params, c.optimizer_options)
    : new SGD(params, c.optimizer_options);
}

const momentumOf = (g: { momentum?: number; betas?: readonly number[] }) => g.betas?.[0] ?? g.momentum!;

/** lr, momentum and β2 of every group after t steps, t = from..total_steps. */
function record(opt: ReturnType<typeof makeOptimizer>, sched: OneCycleLR, steps: number) {
  const lrs: number[][] = [];
  const momenta: number[][] = [];
  const beta2: number[][] = [];
  for (let t = 0; t <= steps; t++) {
    if (t > 0) sched.step();
    const groups = opt.paramGroups as { lr: number; momentum?: number; betas?: number[] }[];
    lrs.push(groups.map((g) => g.lr));
    momenta.push(groups.map(momentumOf));
    beta2.push(groups.map((g) => g.betas?.[1] ?? Number.NaN));
  }
  return { lrs, momenta, beta2 };
}

describe('OneCycleLR against torch 1.13', () => {
  for (const c of oneCycleCases) {
    it(`${c.name}: lr and momentum of every group at each step, and the error one step past the end`, () => {
      const opt = makeOptimizer(c);
      const sched = new OneCycleLR(opt, camel<OneCycleLROptions>(c.options));
      const got = record(opt, sched, c.total_steps);
      expectClose(`${c.name} lr`, got.lrs, c.lrs);
      expectClose(`${c.name} momentum`, got.momenta, c.momenta);
      if (c.beta2) assert.deepEqual(got.beta2, c.beta2, 'beta2 is not cycled');
      assert.deepEqual(
        sched.getLastLr(),
        opt.paramGroups.map((g) => g.lr),
      );
      // The bounds PyTorch writes into the groups, under its keys in the optimizer's state dict.
      const saved = opt.stateDict().param_groups;
      c.group_keys.forEach((keys, i) => {
        for (const [k, v] of Object.entries(keys)) assert.equal(saved[i]![k], v, `group ${i} ${k}`);
      });
      // torch: "Tried to step 22 times. The specified number of total steps is 20".
      const [, times, total] =
        /Tried to step (\d+) times\. The specified number of total steps is (\d+)/.exec(c.error)!;
      assert.throws(
        () => sched.step(),
        (e: Error) =>
          e instanceof ValueError &&
          e.message ===
            `OneCycleLR: tried to step ${times} times (the constructor's step included), but totalSteps is ${total}`,
      );
    });
  }

  it('cycles a new betas pair: the defaults Adam shares with its groups are left alone', () => {
    const c = byName<OneCycleCase>('adam_cos');
    const opt = makeOptimizer(c) as Adam;
    const sched = new OneCycleLR(opt, camel<OneCycleLROptions>(c.options));
    sched.step();
    assert.deepEqual(opt.defaults.betas, [0.9, 0.99]);
    assert.equal(opt.paramGroups[0]!.betas[0], c.momenta[1]![0]);
  });

  it('asSchedule replays it (without momentum) as the pure Schedule fit takes', async () => {
    const c = byName<OneCycleCase>('sgd_no_cycle_momentum');
    const options = camel<OneCycleLROptions>(c.options);
    const s = asSchedule((o) => new OneCycleLR(o, options), 123); // the base lr is OneCycleLR's own
    const want = c.lrs.map((row) => [row[0]!]);
    expectClose(
      'asSchedule(OneCycleLR)',
      want.map((_, t) => [s(t)]),
      want,
    );
    assert.throws(() => s(c.total_steps + 1), /OneCycleLR: tried to step/);
    assert.throws(
      () => asSchedule((o) => new OneCycleLR(o, { ...options, cycleMomentum: true }), 0.1),
      /OneCycleLR: optimizer must support momentum with cycleMomentum enabled \(group 0 has neither momentum nor betas\)/,
    );

    // In fit: one lr per optimizer update (5 batches of 2 = 5 updates per epoch, 2 epochs = totalSteps 10).
    const g = new mb.Generator(0);
    const x = mb.randn([10, 3], { generator: g });
    const y = mb.tensor(Int32Array.from([0, 1, 0, 1, 1, 0, 0, 1, 1, 0]), { shape: [10] });
    const model = new mb.Linear(3, 2, { generator: g });
    const batches = Array.from({ length: 5 }, (_, i): [mb.Tensor, mb.Tensor] => [
      x.slice(0, 2 * i, 2 * i + 2),
      y.slice(0, 2 * i, 2 * i + 2),
    ]);
    const lrs: number[] = [];
    await fit(model, {
      train: batches,
      optimizer: new SGD(model.parameters(), { lr: 0.1 }),
      epochs: 2,
      schedule: s,
      callbacks: { onBatchEnd: (b) => void lrs.push(b.lr) },
    });
    assert.deepEqual(
      lrs,
      c.lrs.slice(0, 10).map((row) => row[0]),
    );
  });

  it('stateDict / loadStateDict (with the optimizer state dict) resume mid-cycle identically', () => {
    const c = byName<OneCycleCase>('sgd_two_groups');
    const opt = makeOptimizer(c);
    const sched = new OneCycleLR(opt, camel<OneCycleLROptions>(c.options));
    for (let t = 0; t < 5; t++) sched.step();
    const savedSched = JSON.parse(JSON.stringify(sched.stateDict()));
    const savedOpt = JSON.parse(JSON.stringify(opt.stateDict()));
    // Fresh objects built differently: the optimizer brings back the groups' bounds and momenta (PyTorch's
    // way), the scheduler its step and its own options.
    const opt2 = makeOptimizer(c);
    const sched2 = new OneCycleLR(opt2, {
      maxLr: 1,
      totalSteps: 3,
      threePhase: true,
      annealStrategy: 'linear',
    });
    opt2.loadStateDict(savedOpt);
    sched2.loadStateDict(savedSched);
    const rest = record(opt2, sched2, c.total_steps - 5);
    expectClose('OneCycleLR resumed lr', rest.lrs, c.lrs.slice(5));
    expectClose('OneCycleLR resumed momentum', rest.momenta, c.momenta.slice(5));
    assert.throws(
      () => new StepLR({ paramGroups: [{ lr: 1 }] }, { stepSize: 1 }).loadStateDict(savedSched),
      /loadStateDict: state is for another scheduler \(got options annealStrategy,cycleMomentum,pctStart,threePhase,totalSteps, expected gamma,stepSize\)/,
    );
  });

  it('a phase of no steps is refused where PyTorch divides by zero', () => {
    const sgd = () => ({ paramGroups: [{ lr: 0.1, momentum: 0.9 }] });
    // 0.1 * 10 - 1 = 0: phase 1 is [0, 0], already at the constructor's step (torch: ZeroDivisionError).
    assert.throws(
      () => new OneCycleLR(sgd(), { maxLr: 1, totalSteps: 10, pctStart: 0.1 }),
      /OneCycleLR: phase 1 of the cycle has no steps \(it starts and ends at step 0, where PyTorch divides by zero\)/,
    );
    // pctStart 1: phase 2 is [3, 3], reached only by the last allowed step.
    const sched = new OneCycleLR(sgd(), { maxLr: 1, totalSteps: 4, pctStart: 1 });
    for (let t = 0; t < 3; t++) sched.step();
    assert.deepEqual(sched.getLastLr(), [1]);
    assert.throws(
      () => sched.step(),
      /OneCycleLR: phase 2 of the cycle has no steps \(it starts and ends at step 3/,
    );
  });

  it('rejects bad options, naming the scheduler and the value, before touching the groups', () => {
    const sgd = () => ({ paramGroups: [{ lr: 0.1, momentum: 0.9 }] });
    const bad: [Partial<OneCycleLROptions> & Record<string, unknown>, RegExp][] = [
      [{ maxLr: 1 }, /OneCycleLR: give either totalSteps or \(epochs and stepsPerEpoch\)/],
      [{ maxLr: 1, epochs: 3 }, /OneCycleLR: give either totalSteps or \(epochs and stepsPerEpoch\)/],
      [{ maxLr: 1, totalSteps: 0 }, /OneCycleLR: totalSteps must be an integer >= 1 \(got 0\)/],
      [{ maxLr: 1, totalSteps: 2.5 }, /OneCycleLR: totalSteps must be an integer >= 1 \(got 2.5\)/],
      [
        { maxLr: 1, epochs: 2, stepsPerEpoch: -1 },
        /OneCycleLR: stepsPerEpoch must be an integer >= 1 \(got -1\)/,
      ],
      [{ maxLr: 1, totalSteps: 10, pctStart: 1.5 }, /OneCycleLR: pctStart must be in \[0, 1\] \(got 1.5\)/],
      [
        { maxLr: 1, totalSteps: 10, pctStart: Number.NaN },
        /OneCycleLR: pctStart must be in \[0, 1\] \(got NaN\)/,
      ],
      [
        { maxLr: 1, totalSteps: 10, annealStrategy: 'exp' as 'cos' },
        /OneCycleLR: annealStrategy must be 'cos' or 'linear' \(got exp\)/,
      ],
      [{ maxLr: 1, totalSteps: 10, divFactor: 0 }, /OneCycleLR: divFactor must be > 0 \(got 0\)/],
      [
        { maxLr: [1, 2], totalSteps: 10 },
        /OneCycleLR: maxLr needs one value per parameter group \(got 2, expected 1\)/,
      ],
      [
        { maxLr: 1, totalSteps: 10, baseMomentum: [Number.NaN] },
        /OneCycleLR: baseMomentum must be a finite number or one per parameter group \(got NaN\)/,
      ],
      [{ maxLr: -0.1, totalSteps: 10 }, /OneCycleLR: maxLr must be >= 0 \(got -0.1\)/],
      [
        { totalSteps: 10 },
        /OneCycleLR: maxLr must be a finite number or one per parameter group \(got undefined\)/,
      ],
      [{ max_lr: 1, totalSteps: 10 }, /OneCycleLR: unknown option 'max_lr' .*did you mean 'maxLr'\?/],
    ];
    for (const [options, message] of bad) {
      const opt = sgd();
      assert.throws(() => new OneCycleLR(opt, options as OneCycleLROptions), message);
      assert.deepEqual(opt, sgd(), `${message}: the groups are unchanged`);
    }
    const plain: OptimizerLike = { paramGroups: [{ lr: 0.1 }] };
    assert.throws(
      () => new OneCycleLR(plain, { maxLr: 1, totalSteps: 10 }),
      /OneCycleLR: optimizer must support momentum with cycleMomentum enabled/,
    );
    assert.deepEqual(plain, { paramGroups: [{ lr: 0.1 }] });
  });
});

/** Run a ReduceLROnPlateau over the case's metrics on stand-in groups; record what the fixture records. */
function runPlateau(c: PlateauCase, sched?: ReduceLROnPlateau, from = 0) {
  const opt = sched?.optimizer ?? { paramGroups: c.initial_lrs.map((lr) => ({ lr })) };
  const s = sched ?? new ReduceLROnPlateau(opt, camel<ReduceLROnPlateauOptions>(c.options));
  const out = { lrs: [] as number[][], best: [] as number[], bad: [] as number[], cooldown: [] as number[] };
  for (const m of c.metrics.slice(from)) {
    s.step(m);
    out.lrs.push(opt.paramGroups.map((g) => g.lr));
    out.best.push(s.best);
    out.bad.push(s.numBadEpochs);
    out.cooldown.push(s.cooldownCounter);
    assert.deepEqual(s.getLastLr(), out.lrs.at(-1));
  }
  return out;
}

describe('ReduceLROnPlateau against torch 1.13', () => {
  for (const c of plateauCases) {
    it(`${c.name}: lrs, best, bad epochs and cooldown after each metric, exactly`, () => {
      const got = runPlateau(c);
      // lr * factor and max(., minLr) are single float64 operations: the same bits as Python's.
      assert.deepEqual(got.lrs, c.lrs);
      assert.deepEqual(got.best, c.best);
      assert.deepEqual(got.bad, c.num_bad_epochs);
      assert.deepEqual(got.cooldown, c.cooldown_counter);
    });
  }

  it('the fixture covers reductions, floors, cooldown and skipped reductions', () => {
    const reductions = (c: PlateauCase, i: number) => new Set(c.lrs.map((row) => row[i])).size - 1;
    for (const c of plateauCases) assert.ok(reductions(c, 0) > 0, `${c.name} reduces the lr`);
    const eps = byName<PlateauCase>('eps_skips_small_reductions');
    // Group 2 went 2e-8 -> 2e-9 and then stopped: 1.8e-9 is under eps; group 1 stops at 1e-8 the same way.
    assert.deepEqual(eps.lrs.at(-1), [1.0000000000000005e-8, 2e-9]);
    assert.deepEqual(byName<PlateauCase>('max_abs_cooldown_min_lr').lrs.at(-1), [0.2, 0.2]);
  });

  it('stateDict / loadStateDict resume mid-run identically, through JSON (best may be Infinity)', () => {
    const c = byName<PlateauCase>('min_abs_cooldown_two_groups');
    const opt = { paramGroups: c.initial_lrs.map((lr) => ({ lr })) };
    const sched = new ReduceLROnPlateau(opt, camel<ReduceLROnPlateauOptions>(c.options));
    const fresh = JSON.parse(JSON.stringify(sched.stateDict()));
    assert.equal(fresh.best, 'Infinity');
    assert.deepEqual(sched.getLastLr(), c.initial_lrs);
    for (const m of c.metrics.slice(0, 10)) sched.step(m); // stops mid-cooldown
    assert.equal(sched.cooldownCounter, 1);
    const saved = JSON.parse(JSON.stringify(sched.stateDict()));
    const opt2 = { paramGroups: c.initial_lrs.map((lr) => ({ lr })) };
    const sched2 = new ReduceLROnPlateau(opt2, { mode: 'max', patience: 7 });
    opt.paramGroups.forEach((g, i) => {
      opt2.paramGroups[i]!.lr = g.lr;
    });
    sched2.loadStateDict(saved);
    assert.equal(sched2.lastEpoch, 10);
    const rest = runPlateau(c, sched2, 10);
    assert.deepEqual(rest.lrs, c.lrs.slice(10));
    assert.deepEqual(rest.best, c.best.slice(10));
    assert.deepEqual(rest.bad, c.num_bad_epochs.slice(10));
    assert.deepEqual(rest.cooldown, c.cooldown_counter.slice(10));
    // A fresh state brings back the infinite best: any metric improves on it.
    sched2.loadStateDict(fresh);
    sched2.step(1e300);
    assert.equal(sched2.best, 1e300);
    assert.throws(
      () => new ReduceLROnPlateau({ paramGroups: [{ lr: 1 }] }).loadStateDict(saved),
      /loadStateDict: state is for another number of parameter groups \(got minLr \[0.01,0.004\], expected 1 values\)/,
    );
    const cosine = new StepLR({ paramGroups: [{ lr: 1 }] }, { stepSize: 1 }).stateDict();
    assert.throws(
      () => sched2.loadStateDict(cosine as never),
      /loadStateDict: state is for another scheduler \(got options gamma,stepSize, expected cooldown,eps,factor,minLr,mode,patience,threshold,thresholdMode\)/,
    );
    assert.throws(
      () => sched2.loadStateDict({ ...saved, options: { ...saved.options, mode: 'avg' } }),
      /ReduceLROnPlateau: mode must be 'min' or 'max' \(got avg\)/,
    );
  });

  it('a NaN metric is no improvement, as in PyTorch', () => {
    const opt = { paramGroups: [{ lr: 1 }] };
    const sched = new ReduceLROnPlateau(opt, { patience: 1 });
    sched.step(1);
    sched.step(Number.NaN);
    assert.equal(sched.numBadEpochs, 1);
    sched.step(Number.NaN);
    assert.equal(opt.paramGroups[0]!.lr, 0.1);
    assert.equal(sched.best, 1);
  });

  it('plugs into fit through onEpochEnd: the lr logged for an epoch is the one reduced after the last', async () => {
    const g = new mb.Generator(0);
    const x = mb.randn([8, 3], { generator: g });
    const y = mb.tensor(Int32Array.from([0, 1, 0, 1, 1, 0, 0, 1]), { shape: [8] });
    const model = new mb.Linear(3, 2, { generator: g });
    const opt = new SGD(model.parameters(), { lr: 0.1 });
    // threshold 1e9 (abs): no metric after the first improves; patience 0: every later epoch reduces.
    const sched = new ReduceLROnPlateau(opt, {
      factor: 0.5,
      patience: 0,
      threshold: 1e9,
      thresholdMode: 'abs',
    });
    const { history } = await fit(model, {
      train: [[x, y]],
      val: [[x, y]],
      optimizer: opt,
      epochs: 4,
      callbacks: { onEpochEnd: (log) => void sched.step(log.valLoss!) },
    });
    assert.deepEqual(
      history.map((h) => h.lr),
      [0.1, 0.1, 0.05, 0.025],
    );
    assert.deepEqual(sched.getLastLr(), [0.0125]);
  });

  it('rejects bad options and metrics, naming the scheduler and the value', () => {
    const opt = () => ({ paramGroups: [{ lr: 0.1 }, { lr: 0.2 }] });
    const bad: [Record<string, unknown>, RegExp][] = [
      [{ factor: 1 }, /ReduceLROnPlateau: factor must be in \[0, 1\): the new lr is lr \* factor \(got 1\)/],
      [{ factor: -0.5 }, /ReduceLROnPlateau: factor must be in \[0, 1\).*\(got -0.5\)/],
      [{ mode: 'avg' }, /ReduceLROnPlateau: mode must be 'min' or 'max' \(got avg\)/],
      [{ thresholdMode: 'pct' }, /ReduceLROnPlateau: thresholdMode must be 'rel' or 'abs' \(got pct\)/],
      [{ patience: -1 }, /ReduceLROnPlateau: patience must be an integer >= 0 \(got -1\)/],
      [{ patience: 1.5 }, /ReduceLROnPlateau: patience must be an integer >= 0 \(got 1.5\)/],
      [{ cooldown: -2 }, /ReduceLROnPlateau: cooldown must be an integer >= 0 \(got -2\)/],
      [{ threshold: -1e-4 }, /ReduceLROnPlateau: threshold must be >= 0 \(got -0.0001\)/],
      [{ eps: Number.NaN }, /ReduceLROnPlateau: eps must be >= 0 \(got NaN\)/],
      [
        { minLr: [0.1] },
        /ReduceLROnPlateau: minLr needs one value per parameter group \(got 1, expected 2\)/,
      ],
      [{ minLr: -1 }, /ReduceLROnPlateau: minLr must be >= 0 \(got -1\)/],
      [
        { threshold_mode: 'abs' },
        /ReduceLROnPlateau: unknown option 'threshold_mode' .*did you mean 'thresholdMode'\?/,
      ],
    ];
    for (const [options, message] of bad) {
      assert.throws(() => new ReduceLROnPlateau(opt(), options as ReduceLROnPlateauOptions), message);
    }
    const sched = new ReduceLROnPlateau(opt());
    assert.throws(
      () => sched.step(mb.tensor([0.5]) as unknown as number),
      /ReduceLROnPlateau.step: metric must be a number \(got object\): pass loss.item\(\) for a Tensor/,
    );
    assert.equal(sched.lastEpoch, 0);
  });
});
