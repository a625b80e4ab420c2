import { it } from 'node:test';
import * as mb from '../../src/index.js';
import { assertClose, type FixtureTensor, fixture, forEachBackend, ft } from '../helpers.js';

type Case = Record<string, FixtureTensor> & { op?: string };

forEachBackend(() => {
  const cases = fixture<{ cases: Case[] }>('linear.json').cases;
  for (const c of cases) {
    if (c.op === 'matmul') {
      it(`batched matmul ${c.a!.shape} @ ${c.b!.shape} matches PyTorch`, () => {
        const a = ft(c.a!, true);
        const b = ft(c.b!, true);
        const y = mb.matmul(a, b);
        assertClose(y, c.y!, { label: 'y' });
        y.backward(ft(c.g!));
        assertClose(a.grad!, c.da!, { label: 'da' });
        assertClose(b.grad!, c.db!, { label: 'db' });
      });
    } else {
      it(`linear ${c.x!.shape} with weight ${c.weight!.shape} matches PyTorch`, () => {
        const x = ft(c.x!, true);
        const w = ft(c.weight!, true);
        const b = ft(c.bias!, true);
        const y = mb.functional.linear(x, w, b);
        assertClose(y, c.y!, { label: 'y' });
        y.backward(ft(c.g!));
        assertClose(x.grad!, c.dx!, { label: 'dx' });
        assertClose(w.grad!, c.dweight!, { label: 'dweight' });
        assertClose(b.grad!, c.dbias!, { label: 'dbias' });
      });
    }
  }
});
