/**
 * jax-js: JAX's API in JavaScript; `jit` traces a function once per input shape and compiles it to fused
 * WebAssembly kernels. Its wasm device runs single-threaded in Node. Arrays are reference-counted: every
 * function consumes its arguments, `.ref` keeps one alive (see its README), so the code below threads
 * parameters through the jitted step and disposes what it no longer needs.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { init, jit, nn, numpy as np, tree, valueAndGrad } from '@jax-js/jax';
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

type Arr = np.Array;
/** w1 b1 w2 b2 w3 b3, and for mlp-bn g1 be1 g2 be2 (BatchNorm scale and shift). */
type Params = Record<string, Arr>;
/** BatchNorm running mean and variance per hidden layer: m1 v1 m2 v2. */
type Stats = Record<string, Arr>;

let ready: Promise<unknown> | undefined;

/** The installed version (its package.json is not among the package's exports, so read it from disk). */
export function jaxjsVersion(): string {
  const entry = createRequire(import.meta.url).resolve('@jax-js/jax');
  return (JSON.parse(readFileSync(join(dirname(entry), '..', 'package.json'), 'utf8')) as { version: string })
    .version;
}

function initParams(kind: ModelKind, seed: number): { params: Params; stats: Stats } {
  const rand = rng(seed);
  const params: Params = {};
  const stats: Stats = {};
  for (let i = 1; i < WIDTHS.length; i++) {
    const [fin, fout] = [WIDTHS[i - 1]!, WIDTHS[i]!];
    const { w, b } = initLinear(fin, fout, rand);
    params[`w${i}`] = np.array(w, { shape: [fin, fout] });
    params[`b${i}`] = np.array(b);
    if (kind === 'mlp-bn' && i < WIDTHS.length - 1) {
      params[`g${i}`] = np.ones([fout]);
      params[`be${i}`] = np.zeros([fout]);
      stats[`m${i}`] = np.zeros([fout]);
      stats[`v${i}`] = np.ones([fout]);
    }
  }
  return { params, stats };
}

/**
 * The MLP's logits. Training mode normalises hidden layers with batch statistics and returns them (mean and
 * biased variance per BatchNorm layer); eval mode uses the running statistics in `stats`. Consumes `p`, `x`
 * and `stats`.
 */
function forward(p: Params, x: Arr, stats: Stats | null, training: boolean): { logits: Arr; batch: Arr[] } {
  const layers = WIDTHS.length - 1;
  const batch: Arr[] = [];
  let h = x;
  for (let i = 1; i <= layers; i++) {
    h = np.matmul(h, p[`w${i}`]!).add(p[`b${i}`]!);
    if (i === layers) break;
    const g = p[`g${i}`];
    if (g) {
      const be = p[`be${i}`]!;
      let mean: Arr;
      let variance: Arr;
      if (training) {
        mean = np.mean(h.ref, 0);
        variance = np.var_(h.ref, 0);
        batch.push(mean.ref, variance.ref);
      } else {
        mean = stats![`m${i}`]!;
        variance = stats![`v${i}`]!;
      }
      h = h
        .sub(mean)
        .div(np.sqrt(variance.add(1e-5)))
        .mul(g)
        .add(be);
    }
    h = nn.relu(h);
  }
  return { logits: h, batch };
}

/** Mean softmax cross-entropy of the logits against one-hot labels, and the BatchNorm batch statistics. */
function loss(p: Params, x: Arr, y: Arr): [Arr, Arr[]] {
  const rows = x.shape[0]!;
  const { logits, batch } = forward(p, x, null, true);
  return [nn.logSoftmax(logits, -1).mul(y).sum().neg().div(rows), batch];
}

/**
 * SGD with momentum 0.9 and lr 0.05 (PyTorch's form: v = 0.9 v + g; p -= 0.05 v), running statistics too;
 * returns the new state and the batch's loss.
 */
const trainStep = jit((p: Params, v: Params, s: Stats, x: Arr, y: Arr): [Params, Params, Stats, Arr] => {
  const rows = x.shape[0]!;
  const [[value, batch], g] = valueAndGrad(loss, { hasAux: true })(tree.ref(p), x, y);
  const v2 = tree.map((vi: Arr, gi: Arr) => vi.mul(0.9).add(gi), v, g) as Params;
  const p2 = tree.map((pi: Arr, vi: Arr) => pi.sub(vi.mul(0.05)), p, tree.ref(v2)) as Params;
  const s2: Stats = {};
  for (let i = 1; 2 * (i - 1) < batch.length; i++) {
    const [mean, variance] = [batch[2 * (i - 1)]!, batch[2 * (i - 1) + 1]!];
    s2[`m${i}`] = s[`m${i}`]!.mul(0.9).add(mean.mul(0.1));
    s2[`v${i}`] = s[`v${i}`]!.mul(0.9).add(variance.mul((0.1 * rows) / Math.max(rows - 1, 1)));
  }
  return [p2, v2, s2, value];
});

const predict = jit((p: Params, s: Stats, x: Arr): Arr => forward(p, x, s, false).logits);

export function jaxjsPeer(): Peer {
  return {
    name: 'jax-js wasm',
    threads: 1,
    info: () => ({ jaxjs: jaxjsVersion() }),
    note: 'lazy arrays: results read back with dataSync',
    async activate() {
      ready ??= init('wasm');
      await ready;
    },

    gemm(M, K, N) {
      const rand = rng(1);
      const a = np.array(
        Float32Array.from({ length: M * K }, () => 2 * rand() - 1),
        { shape: [M, K] },
      );
      const b = np.array(
        Float32Array.from({ length: K * N }, () => 2 * rand() - 1),
        { shape: [K, N] },
      );
      return () => {
        np.matmul(a.ref, b.ref).dataSync();
      };
    },

    tinyOp(op) {
      const rand = rng(2);
      const n = op === 'add' ? TINY_ADD : 32 * 32;
      const shape = op === 'add' ? [TINY_ADD] : [32, 32];
      const a = np.array(Float32Array.from({ length: n }, rand), { shape });
      const b = np.array(Float32Array.from({ length: n }, rand), { shape });
      return op === 'add'
        ? () => {
            np.add(a.ref, b.ref).dataSync();
          }
        : () => {
            np.matmul(a.ref, b.ref).dataSync();
          };
    },

    async train(spec: TrainSpec): Promise<TrainResult> {
      const { batch, train } = spec;
      const xbuf = new Float32Array(batch * 784);
      const ybuf = new Int32Array(batch);
      const onehot = new Float32Array(batch * 10);
      type State = { params: Params; vel: Params; stats: Stats };
      const stepOn = (st: State, idx: Int32Array, s: number, e: number): State => {
        gather(train, idx, s, e, xbuf, ybuf);
        const rows = e - s;
        onehot.fill(0);
        for (let i = 0; i < rows; i++) onehot[i * 10 + ybuf[i]!] = 1;
        const x = np.array(xbuf.slice(0, rows * 784), { shape: [rows, 784] });
        const y = np.array(onehot.slice(0, rows * 10), { shape: [rows, 10] });
        const [params, vel, stats, value] = trainStep(st.params, st.vel, st.stats, x, y);
        // Reading the loss, as a training loop does to log it, also makes the lazy arrays run each step
        // (without it pending work piles up and an epoch runs several times slower).
        value.dataSync();
        return { params, vel, stats };
      };
      const fresh = (): State => {
        const { params, stats } = initParams(spec.model, spec.seed);
        return { params, vel: tree.map((p: Arr) => np.zerosLike(p.ref), params) as Params, stats };
      };
      {
        let st = fresh();
        const idx = permutation(train.n, rng(spec.seed + 1));
        for (const size of warmupSizes(spec)) st = stepOn(st, idx, 0, size);
        st.params.w1!.ref.dataSync();
        tree.dispose(st);
      }
      let st = fresh();
      const t0 = performance.now();
      const idx = permutation(train.n, rng(spec.seed));
      let samples = 0;
      for (const s of batchStarts(train.n, batch, spec.maxSamples, spec.maxSeconds)) {
        const e = Math.min(train.n, s + batch);
        st = stepOn(st, idx, s, e);
        samples += e - s;
      }
      st.params.w1!.ref.dataSync();
      const seconds = (performance.now() - t0) / 1000;
      const accuracy = samples >= train.n ? evaluate(st, spec.test) : undefined;
      tree.dispose(st);
      return { samples, seconds, accuracy };
    },

    infer(batch: number, test: Split) {
      const { params, stats } = initParams('mlp', 1);
      let s = 0;
      return () => {
        if (s + batch > test.n) s = 0;
        const x = np.array(test.x.slice(s * 784, (s + batch) * 784), { shape: [batch, 784] });
        predict(tree.ref(params), tree.ref(stats), x).dataSync();
        s += batch;
      };
    },
  };
}

function evaluate(st: { params: Params; stats: Stats }, test: Split): number {
  let correct = 0;
  for (let s = 0; s < test.n; s += 1000) {
    const e = Math.min(test.n, s + 1000);
    const x = np.array(test.x.slice(s * 784, e * 784), { shape: [e - s, 784] });
    const pred = argmaxRows(predict(tree.ref(st.params), tree.ref(st.stats), x).dataSync(), e - s);
    for (let i = 0; i < e - s; i++) if (pred[i] === test.y[s + i]) correct++;
  }
  return correct / test.n;
}
