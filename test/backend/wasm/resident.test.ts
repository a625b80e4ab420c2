/**
 * Long-lived storage in the wasm memory (WasmRuntime.residentF32, Backend.allocLongLived): parameters, their
 * gradients and optimizer state live there under the wasm backend, kernels use them in place, and a block is
 * freed once the GC has collected its array.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { wasmRuntime } from '../../../src/backend/wasm/backend.js';
import * as mb from '../../../src/index.js';
import { assertClose } from '../../helpers.js';

const rt = wasmRuntime();
after(() => rt?.shutdown());
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

describe('resident storage', { skip: !rt?.features.sharedMemory && 'no shared memory here' }, () => {
  test('a model built under wasm keeps parameters, gradients and SGD state in the wasm memory', () => {
    const prev = mb.getBackend();
    mb.setBackend('wasm');
    try {
      const model = new mb.Sequential(new mb.Linear(64, 32), new mb.ReLU(), new mb.Linear(32, 4));
      const opt = new mb.SGD(model.parameters(), { lr: 0.1, momentum: 0.9 });
      const x = mb.randn([16, 64], { generator: new mb.Generator(3) });
      const y = mb.tensor(Int32Array.from({ length: 16 }, (_, i) => i % 4));
      const before = model.parameters().map((p) => p.toTypedArray());
      for (let i = 0; i < 3; i++) {
        opt.zeroGrad();
        mb.crossEntropy(model.forward(x), y).backward();
        opt.step();
      }
      // Filling resident storage runs in wasm (copy kernel), on one thread as on several: zeroGrad and fill_
      // give exact values.
      const grad = model.parameters()[0]!.grad!;
      const [threads, fill] = [rt!.threads, rt!.fill];
      let fills = 0;
      rt!.fill = (...args) => {
        fills++;
        fill.apply(rt, args);
      };
      try {
        for (const t of [1, 2]) {
          rt!.threads = t;
          grad.fill_(3);
          assert.ok(grad.toTypedArray().every((v) => v === 3));
          opt.zeroGrad();
          assert.ok(grad.toTypedArray().every((v) => v === 0));
        }
      } finally {
        rt!.fill = fill;
        rt!.threads = threads;
      }
      assert.equal(fills, 2 * (1 + model.parameters().length), 'every fill ran in wasm');
      mb.crossEntropy(model.forward(x), y).backward();
      for (const p of model.parameters()) {
        assert.ok(rt!.pointerOf(p.data as Float32Array) >= 0, 'parameter');
        assert.ok(rt!.pointerOf(p.grad!.data as Float32Array) >= 0, 'gradient');
        const buf = opt.state.get(p)!.momentumBuffer!;
        assert.ok(rt!.pointerOf(buf.data as Float32Array) >= 0, 'momentum');
      }
      // The same three steps on the reference backend, from the same initial values.
      mb.setBackend('js');
      const ref = new mb.Sequential(new mb.Linear(64, 32), new mb.ReLU(), new mb.Linear(32, 4));
      ref.parameters().forEach((p, i) => {
        p.copy_(mb.tensor(before[i] as Float32Array, { shape: [...p.shape] }));
      });
      const refOpt = new mb.SGD(ref.parameters(), { lr: 0.1, momentum: 0.9 });
      for (let i = 0; i < 3; i++) {
        refOpt.zeroGrad();
        mb.crossEntropy(ref.forward(x), y).backward();
        refOpt.step();
      }
      model.parameters().forEach((p, i) => {
        assertClose(p, ref.parameters()[i]!, { label: `parameter ${i}`, atol: 1e-6, rtol: 1e-5 });
      });
    } finally {
      mb.setBackend(prev);
    }
  });

  test('a registered parameter moves in place: the tensor the module was given is the parameter', () => {
    const prev = mb.getBackend();
    mb.setBackend('wasm');
    try {
      const w = mb.randn([64, 64], { generator: new mb.Generator(5) });
      const values = w.toTypedArray();
      class Holder extends mb.Module {
        readonly w: mb.Tensor;
        constructor() {
          super();
          this.w = this.registerParameter('w', w);
        }
        forward(x: mb.Tensor): mb.Tensor {
          return x.matmul(this.w);
        }
      }
      const m = new Holder();
      assert.equal(m.w, w);
      assert.ok(rt!.pointerOf(w.data as Float32Array) >= 0);
      assert.deepEqual(w.toTypedArray(), values);
      assert.equal(w.requiresGrad, true);
    } finally {
      mb.setBackend(prev);
    }
  });

  test('blocks are freed once their arrays are collected', async () => {
    const base = rt!.bytesInUse;
    let arrays: (Float32Array | undefined)[] = Array.from({ length: 20 }, () => rt!.residentF32(1 << 18));
    assert.ok(rt!.bytesInUse >= base + 20 * (1 << 20), 'allocated');
    arrays = [];
    assert.equal(arrays.length, 0);
    for (let i = 0; i < 10 && rt!.bytesInUse > base + (1 << 20); i++) {
      gc();
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.ok(rt!.bytesInUse <= base + (1 << 20), `${rt!.bytesInUse - base} bytes still in use`);
  });
});
