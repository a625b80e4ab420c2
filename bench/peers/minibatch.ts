/**
 * minibatch itself, through its public API (`src/index.ts`; the thread count through `wasmRuntime()`), on the
 * wasm or native backend at a given thread count, or on the js reference backend.
 */
import { availableParallelism } from 'node:os';
import { wasmRuntime } from '../../src/backend/wasm/backend.js';
import * as mb from '../../src/index.js';
import { longLived } from '../../src/tensor/ops.js';
import {
  argmaxRows,
  type Peer,
  type Split,
  TINY_ADD,
  type TrainResult,
  type TrainSpec,
  warmupSizes,
} from '../lib/common.js';

export function minibatchPeer(backend: 'wasm' | 'js' | 'native', threads = 1): Peer {
  const activate = () => {
    mb.setBackend(backend);
    // The native backend's BLAS threads follow the wasm runtime's thread count.
    if (backend !== 'js') wasmRuntime()!.threads = threads;
  };
  return {
    name: backend === 'js' ? 'minibatch js' : `minibatch ${backend} ${threads}t`,
    threads: backend === 'js' ? 1 : threads,
    activate,

    gemm(M, K, N) {
      const a = mb.uniform([M, K], -1, 1);
      const b = mb.uniform([K, N], -1, 1);
      return () => {
        mb.matmul(a, b);
      };
    },

    tinyOp(op) {
      const [a, b] =
        op === 'add'
          ? [mb.randn([TINY_ADD]), mb.randn([TINY_ADD])]
          : [mb.randn([32, 32]), mb.randn([32, 32])];
      return op === 'add'
        ? () => {
            mb.add(a, b);
          }
        : () => {
            mb.matmul(a, b);
          };
    },

    // Training on the js reference backend is 10-20× slower than wasm and adds minutes: wasm only.
    ...(backend !== 'js' ? { train } : {}),

    infer(batch: number, test: Split) {
      const model = mb.buildModel('mlp', new mb.Generator(1)).eval();
      let s = 0;
      return () => {
        if (s + batch > test.n) s = 0;
        // A tensor over the caller's Float32Array: no copy on the way in; the logits are a JS typed array.
        const x = mb.tensor(test.x.subarray(s * 784, (s + batch) * 784), { shape: [batch, 784] });
        mb.noGrad(() => model.forward(x)).toTypedArray();
        s += batch;
      };
    },
  };
}

/** One shuffled epoch through DataLoader/TensorDataset, as the README's loop; see Peer.train. */
async function train(spec: TrainSpec): Promise<TrainResult> {
  const X = mb.tensor(spec.train.x, { shape: [spec.train.n, 784] });
  const Y = mb.tensor(spec.train.y);
  const ds = new mb.TensorDataset(X, Y);
  const step = (model: mb.Sequential, opt: mb.SGD, x: mb.Tensor, y: mb.Tensor) => {
    opt.zeroGrad();
    const loss = mb.crossEntropy(model.forward(x), y);
    loss.backward();
    opt.step();
    loss.item(); // the loss read back each step, as a training loop that logs it does (as every peer does)
  };
  const fresh = () => {
    const model = mb.buildModel(spec.model, new mb.Generator(spec.seed));
    model.train();
    return { model, opt: new mb.SGD(model.parameters(), { lr: 0.05, momentum: 0.9 }) };
  };
  // Warm-up on a throwaway model: a few full batches and the epoch's last, smaller one.
  {
    const { model, opt } = fresh();
    for (const size of warmupSizes(spec)) {
      step(model, opt, X.slice(0, 0, size), Y.slice(0, 0, size));
    }
  }
  const { model, opt } = fresh();
  const loader = new mb.DataLoader(ds, { batchSize: spec.batch, shuffle: true, seed: spec.seed });
  let samples = 0;
  const t0 = performance.now();
  for (const [x, y] of loader) {
    step(model, opt, x!, y!);
    samples += x!.shape[0]!;
    if (samples >= spec.maxSamples || performance.now() - t0 > 1000 * spec.maxSeconds) break;
  }
  const seconds = (performance.now() - t0) / 1000;
  const accuracy = samples >= spec.train.n ? evaluate(model, spec.test) : undefined;
  return { samples, seconds, accuracy };
}

function evaluate(model: mb.Sequential, test: Split): number {
  model.eval();
  let correct = 0;
  mb.noGrad(() => {
    for (let s = 0; s < test.n; s += 1000) {
      const e = Math.min(test.n, s + 1000);
      const x = mb.tensor(test.x.subarray(s * 784, e * 784), { shape: [e - s, 784] });
      const pred = argmaxRows(model.forward(x).toTypedArray() as Float32Array, e - s);
      for (let i = 0; i < e - s; i++) if (pred[i] === test.y[s + i]) correct++;
    }
  });
  return correct / test.n;
}

/**
 * GEMM with both operands in the wasm backend's own memory, where minibatch keeps parameters, gradients and
 * optimizer state (`longLived`), and where tfjs-wasm and jax-js keep every tensor: the like-for-like kernel
 * comparison with them. `minibatch wasm Nt` above copies both operands in from JavaScript on every call (an
 * activation's path); both read the product back into a JavaScript array.
 */
export const RESIDENT = 'operands resident';
function residentGemmPeer(threads: number): Peer {
  const base = minibatchPeer('wasm', threads);
  return {
    name: `${base.name}, ${RESIDENT}`,
    threads,
    activate: base.activate,
    gemm(M, K, N) {
      const a = longLived(mb.uniform([M, K], -1, 1));
      const b = longLived(mb.uniform([K, N], -1, 1));
      return () => {
        mb.matmul(a, b);
      };
    },
  };
}

/** The minibatch configurations measured: wasm on one thread and on all cores, and the js reference. */
export function minibatchPeers(): Peer[] {
  const cores = availableParallelism();
  return [
    minibatchPeer('wasm', 1),
    ...(cores > 1 ? [minibatchPeer('wasm', cores)] : []),
    residentGemmPeer(1),
    ...(cores > 1 ? [residentGemmPeer(cores)] : []),
    ...(mb.listBackends().includes('native')
      ? [minibatchPeer('native', 1), ...(cores > 1 ? [minibatchPeer('native', cores)] : [])]
      : []),
    minibatchPeer('js'),
  ];
}
