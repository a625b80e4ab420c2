/**
 * TensorFlow.js (tfjs-core with its wasm and cpu backends; tfjs-layers is not installed, so the model is
 * written with core ops, `tf.variableGrads` through `optimizer.minimize`, and `tf.train.momentum`).
 *
 * In Node tfjs-backend-wasm reports no multithread support (its WASM_HAS_MULTITHREAD_SUPPORT flag is false),
 * so it runs its single-threaded SIMD build (XNNPACK kernels). tfjs-backend-cpu is plain JavaScript.
 */
import { createRequire, register } from 'node:module';
import { dirname } from 'node:path';
import '@tensorflow/tfjs-backend-cpu';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import * as tf from '@tensorflow/tfjs-core';
import {
  argmaxRows,
  batchStarts,
  gather,
  initLinear,
  type ModelKind,
  type Peer,
  permutation,
  rng,
  type Split,
  TINY_ADD,
  type TrainResult,
  type TrainSpec,
  WIDTHS,
  warmupSizes,
} from '../lib/common.js';

let wasmPathsSet = false;
let gradients: Promise<unknown> | undefined;

/**
 * Registers tfjs-core's gradients, as `@tensorflow/tfjs` does on import (see tfjs-resolve-hook.ts). They
 * are an ES-module copy of tfjs-core's ops, which share the CommonJS copy's engine and registries (tfjs keeps
 * those on globalThis and checks tensors by shape, not class, for exactly this case).
 */
function loadGradients(): Promise<unknown> {
  if (!gradients) {
    register(new URL('./tfjs-resolve-hook.js', import.meta.url));
    gradients = import('@tensorflow/tfjs-core/dist/register_all_gradients.js');
  }
  return gradients;
}

export function tfjsVersion(): string {
  return tf.version_core;
}

/** What tfjs-backend-wasm found in this engine (SIMD, threads). */
export async function tfjsFlags(): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  for (const f of ['WASM_HAS_SIMD_SUPPORT', 'WASM_HAS_MULTITHREAD_SUPPORT']) {
    out[f] = await tf
      .env()
      .getAsync(f)
      .catch(() => 'unknown');
  }
  return out;
}

/** Parameters of the MLP, optionally with BatchNorm after each hidden Linear (PyTorch's eps and momentum). */
interface TfModel {
  /** Trained parameters. */
  vars: tf.Variable[];
  /** Every variable, BatchNorm running statistics included. */
  all: tf.Variable[];
  forward(x: tf.Tensor2D, training: boolean): tf.Tensor2D;
}

function buildModel(kind: ModelKind, seed: number): TfModel {
  const rand = rng(seed);
  // tidy frees the initial values; the variables keep their own references.
  const layers = tf.tidy(() =>
    WIDTHS.slice(1).map((out, i) => {
      const { w, b } = initLinear(WIDTHS[i]!, out, rand);
      return { w: tf.variable(tf.tensor2d(w, [WIDTHS[i]!, out])), b: tf.variable(tf.tensor1d(b)) };
    }),
  );
  const bn = tf.tidy(() =>
    kind === 'mlp-bn'
      ? WIDTHS.slice(1, -1).map((c) => ({
          gamma: tf.variable(tf.ones([c])),
          beta: tf.variable(tf.zeros([c])),
          mean: tf.variable(tf.zeros([c]), false),
          var: tf.variable(tf.ones([c]), false),
        }))
      : [],
  );
  const vars = [...layers.flatMap((l) => [l.w, l.b]), ...bn.flatMap((n) => [n.gamma, n.beta])];
  return {
    vars,
    all: [...vars, ...bn.flatMap((n) => [n.mean, n.var])],
    forward(x, training) {
      let h: tf.Tensor2D = x;
      layers.forEach((l, i) => {
        h = tf.add(tf.matMul(h, l.w), l.b);
        if (i === layers.length - 1) return;
        const n = bn[i];
        if (n) {
          if (training) {
            const { mean, variance } = tf.moments(h, 0);
            const rows = h.shape[0];
            // Running statistics as PyTorch keeps them (momentum 0.1, unbiased variance); not differentiated.
            n.mean.assign(tf.add(tf.mul(n.mean, 0.9), tf.mul(mean, 0.1)));
            n.var.assign(tf.add(tf.mul(n.var, 0.9), tf.mul(variance, (0.1 * rows) / Math.max(rows - 1, 1))));
            h = tf.batchNorm(h, mean, variance, n.beta, n.gamma, 1e-5) as tf.Tensor2D;
          } else {
            h = tf.batchNorm(h, n.mean, n.var, n.beta, n.gamma, 1e-5) as tf.Tensor2D;
          }
        }
        h = tf.relu(h);
      });
      return h;
    },
  };
}

export function tfjsPeer(backend: 'wasm' | 'cpu'): Peer {
  return {
    name: `tfjs-${backend}`,
    threads: 1,
    info: async () => ({
      tfjs: tfjsVersion(),
      ...(backend === 'wasm' ? { tfjsFlags: await tfjsFlags() } : {}),
    }),
    async activate() {
      tf.enableProdMode(); // no console warnings (the "install tfjs-node" notice); kernels are unchanged
      if (backend === 'wasm' && !wasmPathsSet) {
        const require = createRequire(import.meta.url);
        setWasmPaths(
          `${dirname(require.resolve('@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm'))}/`,
        );
        wasmPathsSet = true;
      }
      if (!(await tf.setBackend(backend))) throw new Error(`tfjs backend ${backend} failed to initialise`);
      await tf.ready();
    },

    gemm(M, K, N) {
      const a = tf.randomUniform([M, K], -1, 1);
      const b = tf.randomUniform([K, N], -1, 1);
      return () => {
        const c = tf.matMul(a, b);
        c.dataSync();
        c.dispose();
      };
    },

    tinyOp(op) {
      const [a, b] =
        op === 'add'
          ? [tf.randomNormal([TINY_ADD]), tf.randomNormal([TINY_ADD])]
          : [tf.randomNormal([32, 32]), tf.randomNormal([32, 32])];
      return op === 'add'
        ? () => tf.add(a, b).dispose()
        : () => tf.matMul(a as tf.Tensor2D, b as tf.Tensor2D).dispose();
    },

    async train(spec: TrainSpec): Promise<TrainResult> {
      await loadGradients();
      const { batch, train } = spec;
      const xbuf = new Float32Array(batch * 784);
      const ybuf = new Int32Array(batch);
      const stepOn = (model: TfModel, opt: tf.Optimizer, idx: Int32Array, s: number, e: number) => {
        gather(train, idx, s, e, xbuf, ybuf);
        const rows = e - s;
        const loss = tf.tidy(() => {
          const x = tf.tensor2d(xbuf.subarray(0, rows * 784), [rows, 784]);
          const y = tf.oneHot(tf.tensor1d(ybuf.subarray(0, rows), 'int32'), 10);
          return opt.minimize(
            () => tf.losses.softmaxCrossEntropy(y, model.forward(x, true)) as tf.Scalar,
            true,
            model.vars,
          )!;
        });
        loss.dataSync(); // the loss read back each step, as a training loop that logs it does
        loss.dispose();
      };
      const fresh = () => {
        const model = buildModel(spec.model, spec.seed);
        return { model, opt: tf.train.momentum(0.05, 0.9) };
      };
      {
        const { model, opt } = fresh();
        const idx = permutation(train.n, rng(spec.seed + 1));
        for (const size of warmupSizes(spec)) stepOn(model, opt, idx, 0, size);
        dispose(model, opt);
      }
      const { model, opt } = fresh();
      const t0 = performance.now();
      const idx = permutation(train.n, rng(spec.seed));
      let samples = 0;
      for (const s of batchStarts(train.n, batch, spec.maxSamples, spec.maxSeconds)) {
        const e = Math.min(train.n, s + batch);
        stepOn(model, opt, idx, s, e);
        samples += e - s;
      }
      model.vars[0]!.dataSync();
      const seconds = (performance.now() - t0) / 1000;
      const accuracy = samples >= train.n ? evaluate(model, spec.test) : undefined;
      dispose(model, opt);
      return { samples, seconds, accuracy };
    },

    infer(batch: number, test: Split) {
      const model = buildModel('mlp', 1);
      let s = 0;
      return () => {
        if (s + batch > test.n) s = 0;
        const start = s;
        tf.tidy(() => {
          const x = tf.tensor2d(test.x.subarray(start * 784, (start + batch) * 784), [batch, 784]);
          model.forward(x, false).dataSync();
        });
        s += batch;
      };
    },
  };
}

function dispose(model: TfModel, opt: tf.Optimizer): void {
  opt.dispose();
  for (const v of model.all) v.dispose();
}

function evaluate(model: TfModel, test: Split): number {
  let correct = 0;
  for (let s = 0; s < test.n; s += 1000) {
    const e = Math.min(test.n, s + 1000);
    const logits = tf.tidy(() =>
      model.forward(tf.tensor2d(test.x.subarray(s * 784, e * 784), [e - s, 784]), false).dataSync(),
    );
    const pred = argmaxRows(logits, e - s);
    for (let i = 0; i < e - s; i++) if (pred[i] === test.y[s + i]) correct++;
  }
  return correct / test.n;
}
