/**
 * A pool worker (Node worker_threads, or a module Web Worker in a browser): instantiates the kernels on the
 * shared memory, then serves calls until told to exit. The protocol is the NOTE in pool.ts.
 */
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
  type WorkerReady,
} from './pool.js';
import { type Kernels, MAX_ARGS, runChunk } from './tasks.js';

/** The side of a dedicated web worker this file uses. */
interface WebWorkerScope {
  addEventListener(type: 'message', listener: (e: MessageEvent<WorkerInit>) => void, o: { once: true }): void;
  postMessage(message: WorkerReady): void;
}

// No static node: import (browser bundles): Node's worker_threads through process.getBuiltinModule.
const proc = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
const threads = proc?.getBuiltinModule?.('node:worker_threads') as
  | typeof import('node:worker_threads')
  | undefined;
if (threads) {
  if (!threads.isMainThread) start(threads.workerData as WorkerInit);
} else {
  const scope = globalThis as unknown as WebWorkerScope;
  scope.addEventListener('message', (e) => start(e.data, scope), { once: true });
}

function start(init: WorkerInit, web?: WebWorkerScope): void {
  const { module, memory, ctl, tid } = init;
  const c = new Int32Array(ctl);
  let kernels: Kernels | undefined;
  let error: string | undefined;
  try {
    kernels = new WebAssembly.Instance(module, { env: { memory } }).exports as unknown as Kernels;
  } catch (err) {
    // A web worker reports through its message only: calls may be running meanwhile, and one of them would
    // take an error recorded in ctl for its own.
    if (!web) recordError(ctl, tid, err);
    error = err instanceof Error ? err.message : String(err);
  }
  Atomics.add(c, READY, 1);
  Atomics.notify(c, READY);
  web?.postMessage(error === undefined ? { ready: true } : { ready: true, error });
  // A web worker never returns to its event loop from here: it is terminated (after EXIT) instead.
  if (kernels) serve(kernels, init, c);
}

function serve(k: Kernels, { ctl, tid, scratch, seq }: WorkerInit, c: Int32Array): void {
  const args = new Float64Array(ctl, ARGS_OFFSET, MAX_ARGS);
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
