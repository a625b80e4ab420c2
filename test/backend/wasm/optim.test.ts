/**
 * The wasm optimizer kernels (sgdUpdate, adamUpdate, rmspropUpdate, adagradUpdate) against the reference loops (src/optim/update-kernels.ts):
 * bit for bit, over every flag combination, sizes below WASM_MIN_OPTIM (reference path), with SIMD tails and
 * split across the thread pool, with gradients spanning 1e-40 (subnormal) to 1e3.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import type { RmspropUpdate, SgdUpdate } from '../../../src/backend/backend.js';
import { jsKernels } from '../../../src/backend/js/kernels.js';
import { WASM_MIN_OPTIM, wasmRuntime } from '../../../src/backend/wasm/backend.js';
import { ELEMENTWISE_MIN_PER_THREAD } from '../../../src/backend/wasm/runtime.js';
import { adamScalars } from '../../../src/optim/adam.js';
import { rand, wasmKernelTable } from './helpers.js';

const { wasm } = wasmKernelTable();
after(() => wasmRuntime()?.shutdown());
const f = Math.fround;
const SIZES = [WASM_MIN_OPTIM - 1, WASM_MIN_OPTIM + 3, 2 * ELEMENTWISE_MIN_PER_THREAD + 7];

/** Values over magnitudes 1e-40..1e3, both signs, plus exact zeros. */
function spread(n: number, seed: number): Float32Array {
  const u = rand(n, seed);
  const v = rand(n, seed + 50);
  return Float32Array.from(u, (a, i) =>
    i % 17 === 0 ? 0 : Math.sign(a) * 10 ** (Math.abs(v[i]!) * 43 - 40),
  );
}

function sameBits(label: string, got: Float32Array, want: Float32Array): void {
  const gi = new Uint32Array(got.buffer, got.byteOffset, got.length);
  const wi = new Uint32Array(want.buffer, want.byteOffset, want.length);
  for (let i = 0; i < got.length; i++) {
    if (gi[i] !== wi[i] && !(Number.isNaN(got[i]) && Number.isNaN(want[i]))) {
      assert.fail(`${label}: element ${i} is ${got[i]}, the reference gives ${want[i]}`);
    }
  }
}

describe('wasm optimizer kernels match the reference bit for bit', () => {
  test('sgdUpdate: every flag combination, with and without momentum', () => {
    for (const n of SIZES) {
      for (let flags = 0; flags < 32; flags++) {
        const momentum = (flags & 8) !== 0;
        const h: SgdUpdate = {
          first: (flags & 1) !== 0,
          nesterov: (flags & 2) !== 0,
          maximize: (flags & 4) !== 0,
          wd: flags & 16 ? f(5e-4) : 0,
          mu: momentum ? f(0.9) : 0,
          keep: f(1 - (flags & 1 ? 0 : 0.1)),
          negLr: f(-0.05),
        };
        const p = rand(n, 1 + flags);
        const g = spread(n, 2 + flags);
        const b = momentum ? spread(n, 3 + flags) : null;
        const [p1, b1] = [p.slice(), b?.slice() ?? null];
        const [p2, b2] = [p.slice(), b?.slice() ?? null];
        jsKernels.sgdUpdate(p1, g, b1, h);
        wasm.sgdUpdate(p2, g, b2, h);
        sameBits(`sgd p n=${n} flags=${flags}`, p2, p1);
        if (b1 && b2) sameBits(`sgd buf n=${n} flags=${flags}`, b2, b1);
        assert.ok(
          p1.some((v, i) => v !== p[i]),
          'the update changed the parameters',
        );
      }
    }
  });

  test('adamUpdate: coupled and decoupled decay, maximize, amsgrad, several steps', () => {
    for (const n of SIZES) {
      for (let flags = 0; flags < 8; flags++) {
        const decoupled = (flags & 1) !== 0;
        const amsgrad = (flags & 4) !== 0;
        const [lr, beta1, beta2, wd] = [1e-3, 0.9, 0.999, 1e-2];
        const p = rand(n, 10 + flags);
        const state = () => ({
          p: p.slice(),
          m: new Float32Array(n),
          v: new Float32Array(n),
          x: amsgrad ? new Float32Array(n) : null,
        });
        const [ref, got] = [state(), state()];
        for (let t = 1; t <= 3; t++) {
          const h = adamScalars(
            {
              lr,
              betas: [beta1, beta2],
              eps: 1e-8,
              weightDecay: wd,
              amsgrad,
              maximize: (flags & 2) !== 0,
              decoupledWeightDecay: decoupled,
            },
            t,
          );
          const g = spread(n, 20 + 3 * t + flags);
          jsKernels.adamUpdate(ref.p, g, ref.m, ref.v, ref.x, h);
          wasm.adamUpdate(got.p, g, got.m, got.v, got.x, h);
        }
        for (const k of ['p', 'm', 'v', 'x'] as const) {
          if (ref[k] && got[k]) sameBits(`adam ${k} n=${n} flags=${flags}`, got[k], ref[k]);
        }
      }
    }
  });

  test('rmspropUpdate: maximize, weight decay, centered, momentum, several steps', () => {
    for (const n of SIZES) {
      for (let flags = 0; flags < 16; flags++) {
        const [centered, momentum] = [(flags & 2) !== 0, (flags & 4) !== 0];
        const h: RmspropUpdate = {
          alpha: f(0.9),
          keep: f(1 - 0.9),
          eps: f(1e-8),
          wd: flags & 8 ? f(1e-2) : 0,
          mu: momentum ? f(0.9) : 0,
          negLr: f(-0.01),
          maximize: (flags & 1) !== 0,
        };
        const p = rand(n, 40 + flags);
        const state = () => ({
          p: p.slice(),
          sq: new Float32Array(n),
          ga: centered ? new Float32Array(n) : null,
          buf: momentum ? new Float32Array(n) : null,
        });
        const [ref, got] = [state(), state()];
        for (let t = 1; t <= 3; t++) {
          const g = spread(n, 60 + 3 * t + flags);
          jsKernels.rmspropUpdate(ref.p, g, ref.sq, ref.ga, ref.buf, h);
          wasm.rmspropUpdate(got.p, g, got.sq, got.ga, got.buf, h);
        }
        for (const k of ['p', 'sq', 'ga', 'buf'] as const) {
          if (ref[k] && got[k]) sameBits(`rmsprop ${k} n=${n} flags=${flags}`, got[k], ref[k]);
        }
        assert.ok(
          ref.p.some((v, i) => v !== p[i]),
          'the update changed the parameters',
        );
      }
    }
  });

  test('adagradUpdate: maximize, weight decay, a starting sum, several steps', () => {
    for (const n of SIZES) {
      for (let flags = 0; flags < 4; flags++) {
        const p = rand(n, 80 + flags);
        const sum0 = Float32Array.from(rand(n, 90 + flags), Math.abs);
        const [ref, got] = [
          { p: p.slice(), s: sum0.slice() },
          { p: p.slice(), s: sum0.slice() },
        ];
        for (let t = 1; t <= 3; t++) {
          const h = {
            eps: f(1e-10),
            wd: flags & 2 ? f(1e-2) : 0,
            negClr: f(-0.1 / (1 + (t - 1) * 0.01)),
            maximize: (flags & 1) !== 0,
          };
          const g = spread(n, 100 + 3 * t + flags);
          jsKernels.adagradUpdate(ref.p, g, ref.s, h);
          wasm.adagradUpdate(got.p, g, got.s, h);
        }
        sameBits(`adagrad p n=${n} flags=${flags}`, got.p, ref.p);
        sameBits(`adagrad sum n=${n} flags=${flags}`, got.s, ref.s);
      }
    }
  });
});
