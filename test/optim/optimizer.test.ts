import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ShapeError, ValueError } from '../../src/errors.js';
import * as mb from '../../src/index.js';
import { decodeSafetensors, encodeSafetensors, type TensorEntry } from '../../src/io/safetensors.js';
import { Adagrad } from '../../src/optim/adagrad.js';
import { Adam, AdamW } from '../../src/optim/adam.js';
import type { OptimizerStateDict } from '../../src/optim/optimizer.js';
import { RMSprop } from '../../src/optim/rmsprop.js';
import { linearWarmup, StepLR } from '../../src/optim/schedules.js';
import { SGD } from '../../src/optim/sgd.js';
import { assertClose, type FixtureTensor, fixture, forEachBackend, ft } from '../helpers.js';

interface Case {
  optimizer: 'SGD' | 'Adam' | 'AdamW' | 'RMSprop' | 'Adagrad';
  options: Record<string, number | boolean | number[]>;
  param0: FixtureTensor;
  grads: FixtureTensor[];
  params: FixtureTensor[];
}
const { cases } = fixture<{ cases: Case[] }>('optimizers.json');
const more = fixture<{ cases: Case[] }>('optimizers_more.json').cases;

type AnyOptimizer = SGD | Adam | AdamW | RMSprop | Adagrad;
// biome-ignore lint/suspicious/noExplicitAny: fixture options are checked by the optimizers themselves
const KINDS: Record<Case['optimizer'], (params: mb.Tensor[], options: any) => AnyOptimizer> = {
  SGD: (params, options) => new SGD(params, options),
  Adam: (params, options) => new Adam(params, options),
  AdamW: (params, options) => new AdamW(params, options),
  RMSprop: (params, options) => new RMSprop(params, options),
  Adagrad: (params, options) => new Adagrad(params, options),
};
const camel = (k: string) => k.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
const optionsOf = (c: Case) => Object.fromEntries(Object.entries(c.options).map(([k, v]) => [camel(k), v]));

/** An optimizer state dict through the files a checkpoint would use: tensors to safetensors, the rest to JSON. */
function saveAndLoad(sd: OptimizerStateDict): OptimizerStateDict {
  const entries: Record<string, TensorEntry> = {};
  const state: Record<string, Record<string, number | string>> = {};
  for (const [i, s] of Object.entries(sd.state)) {
    state[i] = {};
    for (const [k, v] of Object.entries(s)) {
      if (typeof v === 'number') state[i]![k] = v;
      else {
        state[i]![k] = `state.${i}.${k}`;
        entries[`state.${i}.${k}`] = {
          dtype: 'F32',
          shape: [...v.shape],
          data: v.toTypedArray() as Float32Array,
        };
      }
    }
  }
  const json = JSON.stringify({ ...sd, state });
  const { tensors } = decodeSafetensors(encodeSafetensors(entries));
  return JSON.parse(json, (_, v) => {
    const e = typeof v === 'string' ? tensors.get(v) : undefined;
    return e ? mb.tensor(e.data as Float32Array, { shape: e.shape }) : v;
  });
}

forEachBackend(() => {
  describe('optimizers against torch 1.13 (optimizers.json, optimizers_more.json)', () => {
    for (const c of [...cases, ...more]) {
      it(`${c.optimizer} ${JSON.stringify(c.options)}: six steps`, () => {
        const w = ft(c.param0, true);
        const opt = KINDS[c.optimizer]([w], optionsOf(c));
        let maxdiff = 0;
        c.grads.forEach((g, s) => {
          w.grad = ft(g);
          opt.step();
          const label = `${c.optimizer} ${JSON.stringify(c.options)} step ${s + 1}`;
          maxdiff = Math.max(maxdiff, assertClose(w, ft(c.params[s]!), { rtol: 1e-6, atol: 0, label }));
        });
        console.log(`${c.optimizer} ${JSON.stringify(c.options)}: OK maxdiff=${maxdiff.toExponential(2)}`);
      });
    }
  });

  describe('state dict', () => {
    const c = cases.find((k) => k.optimizer === 'Adam')!;
    const configs: [string, (params: mb.Tensor[]) => AnyOptimizer][] = [
      ['SGD nesterov', (ps) => new SGD(ps, { lr: 0.1, momentum: 0.9, nesterov: true, weightDecay: 1e-2 })],
      ['Adam amsgrad', (ps) => new Adam(ps, { lr: 0.01, amsgrad: true })],
      ['AdamW', (ps) => new AdamW(ps, { lr: 0.01, betas: [0.8, 0.99] })],
      ['RMSprop centered + momentum', (ps) => new RMSprop(ps, { lr: 0.01, centered: true, momentum: 0.9 })],
      ['Adagrad lrDecay', (ps) => new Adagrad(ps, { lr: 0.1, lrDecay: 0.05, initialAccumulatorValue: 0.1 })],
    ];
    // Two groups; the bias has no gradient at step 2 (index 1): it gets no update and, at first, no state.
    const setup = (make: (params: mb.Tensor[]) => AnyOptimizer) => {
      const w = ft(c.param0, true);
      const b = mb.tensor([0.5, -0.25], { requiresGrad: true });
      const opt = make([w]);
      opt.addParamGroup({ params: [b], lr: 0.05 });
      const run = (steps: number[]) => {
        for (const s of steps) {
          w.grad = ft(c.grads[s]!);
          b.grad = s === 1 ? null : mb.tensor([c.grads[s]!.data[0]!, c.grads[s]!.data[1]!]);
          opt.step();
        }
      };
      return { w, b, opt, run };
    };
    for (const [name, make] of configs) {
      it(`${name}: 3 steps, save, load into a new optimizer, 3 steps == 6 steps`, () => {
        const straight = setup(make);
        straight.run([0, 1, 2, 3, 4, 5]);
        const first = setup(make);
        first.run([0, 1, 2]);
        const saved = saveAndLoad(first.opt.stateDict());
        const resumed = setup(make);
        resumed.w.copy_(first.w);
        resumed.b.copy_(first.b);
        resumed.opt.loadStateDict(saved);
        resumed.run([3, 4, 5]);
        assert.deepEqual(resumed.w.toTypedArray(), straight.w.toTypedArray());
        assert.deepEqual(resumed.b.toTypedArray(), straight.b.toTypedArray());
        assert.deepEqual(resumed.opt.stateDict(), straight.opt.stateDict());
      });
    }

    it("has PyTorch's layout and keys", () => {
      const { opt, run } = setup(configs[1]![1]);
      run([0]);
      const sd = opt.stateDict();
      assert.deepEqual(Object.keys(sd.state[0]!).sort(), ['exp_avg', 'exp_avg_sq', 'max_exp_avg_sq', 'step']);
      assert.equal(sd.state[0]!.step, 1);
      assert.deepEqual(sd.param_groups[1], {
        lr: 0.05,
        betas: [0.9, 0.999],
        eps: 1e-8,
        weight_decay: 0,
        amsgrad: true,
        maximize: false,
        decoupled_weight_decay: false,
        params: [1],
      });
      assert.equal(sd.step_count, 1);
      const sgd = setup(configs[0]![1]);
      sgd.run([0, 1]);
      const s2 = sgd.opt.stateDict();
      assert.deepEqual(Object.keys(s2.state), ['0', '1']);
      assert.deepEqual(Object.keys(s2.state[1]!), ['momentum_buffer']);
      assert.deepEqual(Object.keys(s2.param_groups[0]!), [
        'lr',
        'momentum',
        'dampening',
        'weight_decay',
        'nesterov',
        'maximize',
        'params',
      ]);
    });

    it("RMSprop and Adagrad: PyTorch's state keys and group options", () => {
      const rms = setup(configs[3]![1]);
      rms.run([0]);
      const sd = rms.opt.stateDict();
      assert.deepEqual(Object.keys(sd.state[0]!).sort(), [
        'grad_avg',
        'momentum_buffer',
        'square_avg',
        'step',
      ]);
      assert.deepEqual(Object.keys(sd.param_groups[0]!), [
        'lr',
        'alpha',
        'eps',
        'weight_decay',
        'momentum',
        'centered',
        'maximize',
        'params',
      ]);
      const plain = setup((ps) => new RMSprop(ps));
      plain.run([0]);
      assert.deepEqual(Object.keys(plain.opt.stateDict().state[0]!).sort(), ['square_avg', 'step']);
      const ada = setup(configs[4]![1]);
      ada.run([0, 1]);
      const sa = ada.opt.stateDict();
      assert.deepEqual(Object.keys(sa.state[0]!).sort(), ['step', 'sum']);
      assert.equal(sa.state[0]!.step, 2);
      assert.equal(sa.state[1]!.step, 1, 'the bias had no gradient at step 2');
      assert.deepEqual(Object.keys(sa.param_groups[0]!), [
        'lr',
        'lr_decay',
        'weight_decay',
        'initial_accumulator_value',
        'eps',
        'maximize',
        'params',
      ]);
    });

    it("Adagrad's sum starts at the group's initialAccumulatorValue; lrDecay counts the parameter's own steps", () => {
      const a = mb.tensor([1], { requiresGrad: true });
      const b = mb.tensor([1], { requiresGrad: true });
      const opt = new Adagrad([{ params: [a] }, { params: [b], initialAccumulatorValue: 3 }], {
        lr: 0.5,
        lrDecay: 1,
        initialAccumulatorValue: 1,
      });
      a.grad = mb.tensor([2]);
      b.grad = mb.tensor([2]);
      opt.step();
      b.grad = null;
      opt.step();
      opt.step();
      // a: 3 updates, sums 1+4, 9, 13, clr 0.5, 0.25, 1/6; b: one update, sum 3+4, clr 0.5.
      const f = Math.fround;
      let pa = 1;
      [
        [5, 0.5],
        [9, 0.25],
        [13, 0.5 / 3],
      ].forEach(([sum, clr]) => {
        pa = f(pa + f(f(f(-clr!) * 2) / f(f(Math.sqrt(sum!)) + f(1e-10))));
      });
      assert.deepEqual(a.toTypedArray(), Float32Array.from([pa]));
      assert.deepEqual(b.toTypedArray(), Float32Array.from([f(1 + f(f(-0.5 * 2) / f(Math.sqrt(7))))]));
      assert.deepEqual(opt.state.get(a)!.sum.toTypedArray(), Float32Array.from([13]));
    });

    it('RMSprop and Adagrad reject bad hyper-parameters and snake_case options, as PyTorch words them', () => {
      const w = mb.tensor([1, 2], { requiresGrad: true });
      const bad: [() => unknown, string][] = [
        [() => new RMSprop([w], { lr: -0.1 }), 'RMSprop: Invalid learning rate: -0.1'],
        [() => new RMSprop([w], { eps: -1 }), 'RMSprop: Invalid epsilon value: -1'],
        [() => new RMSprop([w], { momentum: -0.5 }), 'RMSprop: Invalid momentum value: -0.5'],
        [() => new RMSprop([w], { weightDecay: -1 }), 'RMSprop: Invalid weight_decay value: -1'],
        [() => new RMSprop([w], { alpha: Number.NaN }), 'RMSprop: Invalid alpha value: NaN'],
        [() => new Adagrad([w], { lrDecay: -1 }), 'Adagrad: Invalid lr_decay value: -1'],
        [
          () => new Adagrad([w], { initialAccumulatorValue: -1 }),
          'Adagrad: Invalid initial_accumulator_value value: -1',
        ],
        [() => new Adagrad([w], { eps: -1 }), 'Adagrad: Invalid epsilon value: -1'],
      ];
      for (const [make, message] of bad) {
        assert.throws(make, (e: unknown) => e instanceof ValueError && e.message === message, message);
      }
      // biome-ignore lint/suspicious/noExplicitAny: a PyTorch spelling, as a user would write it
      assert.throws(() => new Adagrad([w], { lr_decay: 0.1 } as any), /Adagrad: .*did you mean 'lrDecay'\?/);
    });

    it('loading a dict that does not fit changes nothing', () => {
      const a = setup(configs[1]![1]);
      a.run([0]);
      const sd = a.opt.stateDict();
      const fresh = setup(configs[1]![1]).opt;
      const before = fresh.stateDict();
      assert.throws(
        () => fresh.loadStateDict({ ...sd, param_groups: sd.param_groups.slice(1) }),
        /loadStateDict: loaded state dict has a different number of parameter groups \(got 1, expected 2\)/,
      );
      assert.throws(
        () =>
          fresh.loadStateDict({
            ...sd,
            param_groups: [sd.param_groups[0]!, { ...sd.param_groups[1]!, params: [1, 2] }],
          }),
        /loadStateDict: loaded state dict contains a parameter group that doesn't match the size of optimizer's group \(group 1: got 2 params, expected 1\)/,
      );
      const wrongShape = { ...sd, state: { 0: { ...sd.state[0]!, exp_avg: mb.zeros([6]) } } };
      assert.throws(
        () => fresh.loadStateDict(wrongShape),
        (e: unknown) =>
          e instanceof ShapeError &&
          e.message === "loadStateDict: exp_avg of parameter 0 has shape [6], expected the parameter's [3,2]",
      );
      // Another optimizer's state (SGD's momentum buffer), or Adam's without its moments: a clear error, not a
      // crash inside the next step.
      const sgdState = { ...sd, state: { 0: { momentum_buffer: mb.zeros([3, 2]) } } };
      assert.throws(
        () => fresh.loadStateDict(sgdState),
        (e: unknown) =>
          e instanceof ValueError &&
          e.message ===
            'loadStateDict: the state of parameter 0 has momentumBuffer, but Adam keeps step, expAvg, expAvgSq, maxExpAvgSq: a state dict of another optimizer?',
      );
      const noMoments = { ...sd, state: { 0: { step: 1, exp_avg: mb.zeros([3, 2]) } } };
      assert.throws(
        () => fresh.loadStateDict(noMoments),
        /the state of parameter 0 has step, expAvg, but Adam keeps/,
      );
      const badLr = { ...sd, param_groups: [{ ...sd.param_groups[0]!, lr: -1 }, sd.param_groups[1]!] };
      assert.throws(() => fresh.loadStateDict(badLr), /Adam: Invalid learning rate: -1/);
      assert.deepEqual(fresh.stateDict(), before);
    });

    it('loads copies: the dict and the optimizer do not share buffers', () => {
      const a = setup(configs[0]![1]);
      a.run([0]);
      const sd = a.opt.stateDict();
      const b = setup(configs[0]![1]);
      b.opt.loadStateDict(sd);
      b.run([1]);
      assert.notDeepEqual(b.opt.stateDict().state[0], sd.state[0]);
    });
  });

  describe('lr as a schedule', () => {
    it('is evaluated at the step count before each step, and resumes after loading', () => {
      const schedule = linearWarmup(0.1, 4);
      const w = mb.tensor([1, 2], { requiresGrad: true });
      const opt = new SGD([w], { lr: schedule });
      assert.equal(opt.paramGroups[0]!.lr, 0); // printable before training
      const expected = Float32Array.from([1, 2]);
      for (let t = 0; t < 3; t++) {
        w.grad = mb.tensor([1, -1]);
        opt.step();
        assert.equal(opt.paramGroups[0]!.lr, schedule(t));
        const negLr = Math.fround(-schedule(t));
        expected[0] = Math.fround(expected[0]! + negLr);
        expected[1] = Math.fround(expected[1]! - negLr);
      }
      assert.deepEqual(w.toTypedArray(), expected);
      assert.equal(opt.stepCount, 3);

      const opt2 = new SGD([w], { lr: schedule });
      opt2.loadStateDict(JSON.parse(JSON.stringify(opt.stateDict())));
      w.grad = mb.tensor([1, -1]);
      opt2.step();
      assert.equal(opt2.paramGroups[0]!.lr, schedule(3));
    });

    it('a PyTorch-style scheduler drives an optimizer whose lr is a number', () => {
      const w = mb.tensor([1], { requiresGrad: true });
      const opt = new SGD([w], { lr: 0.1 });
      const sched = new StepLR(opt, { stepSize: 2, gamma: 0.5 });
      const lrs = [];
      for (let t = 0; t < 5; t++) {
        w.grad = mb.tensor([1]);
        opt.step();
        lrs.push(opt.paramGroups[0]!.lr);
        sched.step();
      }
      assert.deepEqual(lrs, [0.1, 0.1, 0.05, 0.05, 0.025]);
      assert.equal(opt.stateDict().param_groups[0]!.initial_lr, 0.1);
    });

    it('per group: a schedule in one group, a number in another', () => {
      const a = mb.tensor([1], { requiresGrad: true });
      const b = mb.tensor([1], { requiresGrad: true });
      const opt = new Adam([{ params: [a], lr: (t) => 0.1 / (t + 1) }, { params: [b] }], { lr: 0.01 });
      a.grad = mb.tensor([1]);
      b.grad = mb.tensor([1]);
      opt.step();
      opt.step();
      assert.deepEqual(
        opt.paramGroups.map((g) => g.lr),
        [0.05, 0.01],
      );
    });
  });

  describe('parameter groups, zeroGrad, parameters without gradient', () => {
    it('group options override the defaults, the rest come from the defaults', () => {
      const a = mb.tensor([1], { requiresGrad: true });
      const b = mb.tensor([1], { requiresGrad: true });
      const opt = new SGD([{ params: [a] }, { params: [b], lr: 0.5, nesterov: true }], {
        lr: 0.1,
        momentum: 0.9,
      });
      const [g0, g1] = opt.paramGroups;
      assert.deepEqual([g0!.lr, g0!.momentum, g0!.nesterov], [0.1, 0.9, false]);
      assert.deepEqual([g1!.lr, g1!.momentum, g1!.nesterov], [0.5, 0.9, true]);
      assert.equal(opt.defaults.lr, 0.1);
    });

    it('a parameter without grad is skipped: no update, no state (PyTorch)', () => {
      const a = mb.tensor([1, 2], { requiresGrad: true });
      const b = mb.tensor([3], { requiresGrad: true });
      const opt = new Adam([a, b], { lr: 0.1 });
      a.grad = mb.tensor([1, 1]);
      opt.step();
      assert.deepEqual(b.toTypedArray(), Float32Array.from([3]));
      assert.deepEqual(Object.keys(opt.stateDict().state), ['0']);
      assert.equal(opt.state.has(b), false);
    });

    it('zeroGrad zeroes in place and keeps the gradient tensors', () => {
      const w = mb.tensor([1, 2], { requiresGrad: true });
      w.mul(3).sum().backward();
      const g = w.grad!;
      const opt = new SGD([w]);
      opt.zeroGrad();
      assert.equal(w.grad, g);
      assert.deepEqual(g.toTypedArray(), Float32Array.from([0, 0]));
    });

    it('after zeroGrad, backward passes accumulate from zero; a write through fill_ is kept', () => {
      const w = mb.tensor([1, 2], { requiresGrad: true });
      const opt = new SGD([w]);
      w.mul(3).sum().backward();
      opt.zeroGrad();
      w.mul(mb.tensor([5, 7]))
        .sum()
        .backward();
      assert.deepEqual(w.grad!.toTypedArray(), Float32Array.from([5, 7]));
      w.mul(2).sum().backward();
      assert.deepEqual(w.grad!.toTypedArray(), Float32Array.from([7, 9]), 'the second backward adds');
      opt.zeroGrad();
      w.grad!.fill_(10);
      w.mul(2).sum().backward();
      assert.deepEqual(w.grad!.toTypedArray(), Float32Array.from([12, 12]), 'fill_ after zeroGrad is kept');
      const m = new mb.Linear(3, 2);
      m.forward(mb.ones([4, 3]))
        .sum()
        .backward();
      m.zeroGrad();
      m.forward(mb.ones([4, 3]))
        .sum()
        .backward();
      assert.deepEqual(m.bias!.grad!.toTypedArray(), Float32Array.from([4, 4]), 'Module.zeroGrad too');
    });

    it('after zeroGrad, a write into a view of a gradient is kept (bias add and the weight GEMM alike)', () => {
      const m = new mb.Linear(3, 2);
      const opt = new SGD(m.parameters());
      const x = mb.ones([4, 3]);
      m.forward(x).sum().backward();
      opt.zeroGrad();
      m.weight.grad!.narrow(0, 1, 1).fill_(10); // row 1 of dW
      m.bias!.grad!.narrow(0, 0, 1).fill_(10);
      m.forward(x).sum().backward();
      // d(sum)/dW = Σ over the batch of x = 4 everywhere; d/db = 4.
      assert.deepEqual(m.weight.grad!.toTypedArray(), Float32Array.from([4, 4, 4, 14, 14, 14]));
      assert.deepEqual(m.bias!.grad!.toTypedArray(), Float32Array.from([14, 4]));
    });

    it('a gradient assigned by hand is checked and read as its values, whatever its strides', () => {
      // SGD with lr 1 from zeros: the parameter becomes -grad, element by element (torch 1.13's values).
      const step = (grad: mb.Tensor) => {
        const p = mb.zeros([2, 2], { requiresGrad: true });
        p.grad = grad;
        new SGD([p], { lr: 1 }).step();
        return [...(p.toTypedArray() as Float32Array)];
      };
      const g = mb.tensor([
        [1, 2],
        [3, 4],
      ]);
      assert.deepEqual(step(g.transpose(0, 1)), [-1, -3, -2, -4]);
      assert.deepEqual(
        step(
          mb
            .tensor([
              [9, 9, 9],
              [1, 2, 9],
              [3, 4, 9],
            ])
            .slice(0, 1, 3)
            .slice(1, 0, 2),
        ),
        [-1, -2, -3, -4],
      );
      assert.deepEqual(step(mb.tensor([[1, 2]]).expand([2, 2])), [-1, -2, -1, -2]);
      const p = mb.zeros([2, 2], { requiresGrad: true });
      assert.throws(
        () => {
          p.grad = mb.tensor([1, 2, 3]);
        },
        (e: unknown) =>
          e instanceof ShapeError &&
          e.message === 'grad: assigned grad has shape [3], but the tensor has [2,2]',
      );
      assert.throws(() => {
        p.grad = mb.zeros([2, 2], { dtype: 'int32' });
      }, /grad: assigned grad has dtype int32, but the tensor is float32/);
      assert.throws(() => {
        p.grad = [1, 2, 3, 4] as unknown as mb.Tensor;
      }, /grad: assigned grad must be a Tensor or null \(got an array\)/);
      p.grad = null;
      assert.equal(p.grad, null);
    });

    it('addParamGroup takes one tensor as a group of one, as PyTorch', () => {
      const a = mb.tensor([1], { requiresGrad: true });
      const b = mb.tensor([1], { requiresGrad: true });
      const opt = new SGD([a], { lr: 0.1 });
      opt.addParamGroup({ params: b, lr: 0.5 });
      assert.deepEqual(opt.paramGroups[1]!.params, [b]);
      assert.throws(
        () => opt.addParamGroup({ params: 3 as unknown as mb.Tensor }),
        /SGD: params must be a Tensor or an iterable of them \(got number\)/,
      );
    });

    it('rejects what it cannot optimize, with PyTorch-like messages', () => {
      const w = mb.tensor([1, 2], { requiresGrad: true });
      assert.throws(() => new SGD([]), /SGD: optimizer got an empty parameter list/);
      assert.throws(() => new Adam([w.mul(2)]), /Adam: can't optimize a non-leaf Tensor/);
      assert.throws(
        () => new SGD([w, w]),
        /SGD: some parameters appear more than once in the parameter groups/,
      );
      assert.throws(
        () => new SGD([{ params: [w] }, { params: [w] }]),
        /SGD: some parameters appear more than once/,
      );
      assert.throws(
        () => new SGD([mb.zeros([2, 3]).transpose(0, 1)]),
        /SGD: can only optimize contiguous float32 tensors \(got a float32 view\)/,
      );
      assert.throws(
        () => new SGD([mb.tensor([1, 2], { dtype: 'int32' })]),
        /SGD: can only optimize contiguous/,
      );
      assert.throws(
        () => new SGD([{ params: [w], lr: -1 }], { lr: 0.1 }),
        (e: unknown) => e instanceof ValueError && e.message === 'SGD: Invalid learning rate: -1',
      );
    });
  });
});
