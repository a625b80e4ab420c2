import { it } from 'node:test';
import * as mb from '../../src/index.js';
import { assertClose, type FixtureTensor, fixture, forEachBackend, ft } from '../helpers.js';

const F = mb.functional;
type Case = {
  op: string;
  dim: number;
  x: FixtureTensor;
  y: FixtureTensor;
  g: FixtureTensor;
  dx: FixtureTensor;
};
const fns: Record<string, (x: mb.Tensor, dim: number) => mb.Tensor> = {
  relu: (x) => F.relu(x),
  sigmoid: (x) => F.sigmoid(x),
  tanh: (x) => F.tanh(x),
  gelu: (x) => F.gelu(x),
  softmax: (x, d) => F.softmax(x, d),
  log_softmax: (x, d) => F.logSoftmax(x, d),
};

forEachBackend(() => {
  for (const c of fixture<{ cases: Case[] }>('activations.json').cases) {
    it(`${c.op} matches PyTorch (values and gradient), inputs up to ±1000`, () => {
      const x = ft(c.x, true);
      const y = fns[c.op]!(x, c.dim);
      assertClose(y, c.y, { label: `${c.op} y` });
      y.backward(ft(c.g));
      assertClose(x.grad!, c.dx, { label: `${c.op} dx` });
    });
  }
});
