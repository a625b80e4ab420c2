import { it } from 'node:test';
import * as mb from '../../src/index.js';
import { assertClose, type FixtureTensor, fixture, forEachBackend, ft } from '../helpers.js';

type Case = {
  init_state_dict: Record<string, FixtureTensor>;
  final_state_dict: Record<string, FixtureTensor>;
  batches: { x: FixtureTensor; y: FixtureTensor }[];
  losses: number[];
  eval_x: FixtureTensor;
  eval_logits: FixtureTensor;
};

const sd = (f: Record<string, FixtureTensor>) =>
  Object.fromEntries(
    Object.entries(f).map(([k, t]) => [
      k,
      k.endsWith('num_batches_tracked') ? mb.tensor(Int32Array.from(t.data), { shape: t.shape }) : ft(t),
    ]),
  );

forEachBackend(() => {
  it('a whole model (Linear, BatchNorm1d, ReLU) trained 3 SGD+momentum steps matches PyTorch: losses, final state, eval logits', () => {
    const c = fixture<{ cases: Case[] }>('mlp_training.json').cases[0]!;
    const model = new mb.Sequential(
      new mb.Linear(12, 16),
      new mb.BatchNorm1d(16),
      new mb.ReLU(),
      new mb.Linear(16, 8),
      new mb.ReLU(),
      new mb.Linear(8, 3),
    );
    model.loadStateDict(sd(c.init_state_dict));
    const opt = new mb.SGD(model.parameters(), { lr: 0.1, momentum: 0.9 });
    c.batches.forEach((b, i) => {
      opt.zeroGrad();
      const loss = mb.crossEntropy(model.forward(ft(b.x)), mb.tensor(Int32Array.from(b.y.data)));
      loss.backward();
      opt.step();
      assertClose(loss, [c.losses[i]!], { rtol: 1e-4, label: `loss ${i}` });
    });
    const final = model.stateDict();
    for (const [k, t] of Object.entries(c.final_state_dict))
      assertClose(final[k]!, t, { rtol: 1e-4, atol: 1e-5, label: k });
    model.eval();
    assertClose(
      mb.noGrad(() => model.forward(ft(c.eval_x))),
      c.eval_logits,
      { rtol: 1e-4, atol: 1e-5, label: 'eval logits' },
    );
  });
});
