/**
 * A pool worker (Node worker_threads): instantiates the kernels on the shared memory, then serves calls
 * until told to exit. The protocol is the NOTE in pool.ts.
 */
import { workerData } from 'node:worker_threads';
import {
  ARGS_OFFSET,
  claim,
  DONE,
  EXIT,
  MAX_THREADS,
  READY,
  recordError,
  SEQ,
  SLEEPING,
  TASK,
  WORKER_SPIN_MS,
  type WorkerInit,
} from './pool.js';
import { type Kernels, MAX_ARGS, runChunk } from './tasks.js';

const { module, memory, ctl, tid, scratch, seq }: WorkerInit = workerData;
const c = new Int32Array(ctl);
const args = new Float64Array(ctl, ARGS_OFFSET, MAX_ARGS);

let kernels: Kernels | undefined;
try {
  kernels = new WebAssembly.Instance(module, { env: { memory } }).exports as unknown as Kernels;
} catch (err) {
  recordError(ctl, tid, err);
}
Atomics.add(c, READY, 1);
Atomics.notify(c, READY);
if (kernels) serve(kernels);

function serve(k: Kernels): void {
  let seen = seq;
  for (;;) {
    const spinUntil = performance.now() + WORKER_SPIN_MS;
    let now = Atomics.load(c, SEQ);
    while (now === seen) {
      if (performance.now() > spinUntil) {
        Atomics.add(c, SLEEPING, 1);
        Atomics.wait(c, SEQ, seen);
        Atomics.sub(c, SLEEPING, 1);
      }
      now = Atomics.load(c, SEQ);
    }
    seen = now;
    if (Atomics.load(c, EXIT)) return;
    if (tid >= (now & MAX_THREADS)) continue;
    for (let v = claim(c); v >= 0; v = claim(c)) {
      const chunks = v >>> 16;
      try {
        runChunk(k, c[TASK]!, args, v & 0xffff, chunks, scratch);
      } catch (err) {
        recordError(ctl, tid, err);
      }
      if (Atomics.add(c, DONE, 1) + 1 === chunks) Atomics.notify(c, DONE);
    }
  }
}
