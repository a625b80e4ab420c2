/**
 * The worker pool: threads running the same kernels on the same shared WebAssembly memory: Node
 * worker_threads, or module Web Workers in a cross-origin isolated browser page (where SharedArrayBuffer
 * exists).
 *
 * NOTE: pool protocol (worker.ts is the other side). One SharedArrayBuffer `ctl`: the Int32 slots below,
 * then MAX_ARGS Float64 arguments at ARGS_OFFSET, then an error message at MSG_OFFSET.
 *  - Start: worker t (1..) gets its WorkerInit (Node: as workerData; web: as its first message),
 *    instantiates the module on the shared memory, then READY += 1 and notify(READY); a web worker also
 *    posts `{ ready: true, error? }` back. Node: the caller blocks (bounded) until READY counts every
 *    worker: the ready handshake. Web: nothing blocks (a browser main thread cannot, and may have to yield
 *    before a worker can even load); `start` resolves once every worker has posted ready, and until then
 *    calls use only the workers already ready (none: the caller alone).
 *  - Call: the caller writes the args and TASK, DONE = 0, NEXT = chunks << 16, then SEQ = (generation + 1)
 *    << 8 | n and, only if SLEEPING > 0, notify(SEQ). Every thread t < n, the caller included, claims
 *    chunks with Atomics.add(NEXT, 1): the old low half is its chunk while below the high half. After each
 *    chunk, DONE += 1 (the thread that completes the last one notifies DONE). The caller returns once DONE
 *    reaches the chunk count, without waiting for workers that found nothing left. A caller that may not
 *    block (a browser's main thread: Atomics.wait throws there) spins instead of waiting for DONE.
 *    Why this is safe: a worker reads TASK and the args only after a successful claim, and the caller
 *    cannot start the next call (rewrite them) before that claimed chunk is done; a late claim that lands in
 *    the next call is simply a valid claim of that call (the counter word says which chunk of how many).
 *    So is a worker that becomes ready in the middle of calls: it starts from the SEQ it was given and
 *    claims like a late waker, never needed for a call to finish.
 *  - Worker: spins on SEQ for WORKER_SPIN_MS (a wake-up from Atomics.wait costs 13-27 µs on an idle
 *    machine, 50-300 µs on a busy VM; a spinning worker picks a call up in 1-2 µs), then SLEEPING += 1,
 *    wait(SEQ), SLEEPING -= 1. A failing chunk records the first error (ERROR = t, message) and still
 *    counts as done.
 *  - Exit: EXIT = 1, SEQ changes, notify(SEQ). Node workers are unref'd, so they never keep a process
 *    alive; web workers are also terminated.
 */
import type { Worker as NodeWorker } from 'node:worker_threads';
import { MinibatchError } from '../../errors.js';
import { type Kernels, MAX_ARGS, runChunk } from './tasks.js';

export const SEQ = 0;
export const NEXT = 1;
export const DONE = 2;
export const SLEEPING = 3;
export const TASK = 4;
export const EXIT = 5;
export const ERROR = 6;
export const READY = 7;
export const MSG_LENGTH = 8;
/** Thread count field of SEQ (low 8 bits); the caller counts as one. */
export const MAX_THREADS = 255;
export const ARGS_OFFSET = 64;
export const MSG_OFFSET = ARGS_OFFSET + 8 * MAX_ARGS;
const MSG_BYTES = 1024;

/** How long a worker keeps polling for the next call before it sleeps: covers the gap between the kernels of
 * one training step, short enough that idle workers give their core back quickly. */
export const WORKER_SPIN_MS = 0.2;
/** How long the caller polls for workers to finish before it sleeps (it has nothing else to do). */
const CALLER_SPIN_MS = 2;
/** Workers start in tens of milliseconds; past this the pool is considered broken. */
const READY_TIMEOUT_MS = 10_000;

/** What worker.ts receives: workerData on Node, the first message in a web worker. */
export interface WorkerInit {
  module: WebAssembly.Module;
  memory: WebAssembly.Memory;
  ctl: SharedArrayBuffer;
  tid: number;
  scratch: number;
  seq: number;
}

/** What a web worker posts back once it has instantiated the module (or failed to). */
export interface WorkerReady {
  ready: true;
  error?: string;
}

/** How workers are made: Node worker_threads, or the browser's module Web Workers. */
export type Spawner = { kind: 'node'; Worker: typeof NodeWorker } | { kind: 'web'; Worker: typeof Worker };

type AnyWorker = NodeWorker | Worker;

export class Pool {
  readonly ctl = new SharedArrayBuffer(MSG_OFFSET + MSG_BYTES);
  /** Where callers write task arguments before `run`. */
  readonly args = new Float64Array(this.ctl, ARGS_OFFSET, MAX_ARGS);
  private readonly i32 = new Int32Array(this.ctl);
  private readonly workers: AnyWorker[] = [];
  /** Web workers that have posted ready (Node workers are ready once `grow` returns). */
  private ready = 0;
  private starting: Promise<void> | undefined;
  /** Whether this thread may block in Atomics.wait (not a browser's main thread). */
  private readonly canWait: boolean;

  constructor(
    private readonly spawner: Spawner,
    private readonly module: WebAssembly.Module,
    private readonly memory: WebAssembly.Memory,
  ) {
    this.canWait = canBlock(this.i32);
  }

  /** Workers ready to take calls (the caller is thread 0 and not among them). */
  get size(): number {
    return this.spawner.kind === 'node' ? this.workers.length : this.ready;
  }

  /** Workers created so far, ready or still starting. */
  get spawned(): number {
    return this.workers.length;
  }

  /** Starts workers until there are `count`, worker t using `scratch(t)`; blocks until all are ready (Node). */
  grow(count: number, scratch: (tid: number) => number): void {
    if (this.spawner.kind !== 'node') throw new MinibatchError('wasm', 'web workers start with Pool.start');
    const { Worker } = this.spawner;
    const seq = Atomics.load(this.i32, SEQ);
    while (this.workers.length < count) {
      const init = this.init(this.workers.length + 1, scratch, seq);
      // execArgv: [] because inherited `-e script` would run that script in the worker instead of
      // worker.js; V8 flags such as --experimental-wasm-relaxed-simd are process-wide anyway.
      const w = new Worker(new URL('./worker.js', import.meta.url), { workerData: init, execArgv: [] });
      w.unref();
      this.workers.push(w);
    }
    const deadline = performance.now() + READY_TIMEOUT_MS;
    // A worker that fails to start still counts itself ready, after recording its error.
    for (let ready = Atomics.load(this.i32, READY); ready < count; ready = Atomics.load(this.i32, READY)) {
      const left = deadline - performance.now();
      if (left <= 0)
        throw new MinibatchError(
          'wasm',
          `thread pool did not start (got ${ready} of ${count} workers ready)`,
        );
      Atomics.wait(this.i32, READY, ready, left);
    }
    if (this.i32[ERROR]) this.throwWorkerError();
  }

  /**
   * Starts workers until there are `count` without ever blocking this thread; resolves once all have
   * reported ready, rejects when one fails to load or start (the pool should then be closed). On Node this
   * is `grow`. Calls may run meanwhile: they use the workers ready so far (`size`).
   */
  start(count: number, scratch: (tid: number) => number): Promise<void> {
    if (this.spawner.kind === 'node') {
      try {
        this.grow(count, scratch);
        return Promise.resolve();
      } catch (err) {
        return Promise.reject(err);
      }
    }
    if (this.workers.length >= count) return this.starting ?? Promise.resolve();
    const { Worker } = this.spawner;
    const seq = Atomics.load(this.i32, SEQ);
    const started: Promise<void>[] = [];
    while (this.workers.length < count) {
      const init = this.init(this.workers.length + 1, scratch, seq);
      const w = new Worker(new URL('./worker.js', import.meta.url), {
        type: 'module',
        name: `minibatch-wasm-${init.tid}`,
      });
      this.workers.push(w);
      started.push(this.awaitReady(w, init.tid));
      w.postMessage(init);
    }
    const all = Promise.all([this.starting, ...started]).then(() => undefined);
    this.starting = all;
    return all;
  }

  private awaitReady(w: Worker, tid: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const fail = (why: string) => {
        clearTimeout(timer);
        reject(new MinibatchError('wasm', `worker ${tid} failed to start: ${why}`));
      };
      const timer = setTimeout(() => fail(`not ready after ${READY_TIMEOUT_MS} ms`), READY_TIMEOUT_MS);
      w.onerror = (e) => {
        e.preventDefault();
        fail(e.message || 'its script did not load');
      };
      w.onmessageerror = () => fail('it could not receive the shared memory');
      w.onmessage = (e: MessageEvent<WorkerReady>) => {
        if (!e.data?.ready) return;
        clearTimeout(timer);
        if (e.data.error) {
          reject(new MinibatchError('wasm', `worker ${tid} failed: ${e.data.error}`));
          return;
        }
        this.ready += 1;
        resolve();
      };
    });
  }

  private init(tid: number, scratch: (tid: number) => number, seq: number): WorkerInit {
    return { module: this.module, memory: this.memory, ctl: this.ctl, tid, scratch: scratch(tid), seq };
  }

  /** Runs the `chunks` chunks of `task` on threads 0..n-1 (n - 1 <= size), this thread being thread 0. */
  run(k: Kernels, task: number, chunks: number, n: number, scratch: number): void {
    const c = this.i32;
    c[TASK] = task;
    c[ERROR] = 0;
    Atomics.store(c, DONE, 0);
    Atomics.store(c, NEXT, chunks << 16);
    this.publish(n);
    if (Atomics.load(c, SLEEPING) > 0) Atomics.notify(c, SEQ);
    let failure: unknown;
    let failed = false;
    for (let v = claim(c); v >= 0; v = claim(c)) {
      // After a failure the remaining chunks are still claimed, so DONE reaches the count.
      if (!failed) {
        try {
          runChunk(k, task, this.args, v & 0xffff, chunks, scratch);
        } catch (err) {
          failure = err;
          failed = true;
        }
      }
      Atomics.add(c, DONE, 1);
    }
    const spinUntil = performance.now() + CALLER_SPIN_MS;
    for (let done = Atomics.load(c, DONE); done !== chunks; done = Atomics.load(c, DONE)) {
      if (this.canWait && performance.now() > spinUntil) Atomics.wait(c, DONE, done);
    }
    if (failed) throw failure;
    if (c[ERROR]) this.throwWorkerError();
  }

  /** Tells every worker to return and lets them go; the pool is unusable afterwards. */
  close(): void {
    if (this.workers.length === 0) return;
    Atomics.store(this.i32, EXIT, 1);
    this.publish(MAX_THREADS);
    Atomics.notify(this.i32, SEQ);
    if (this.spawner.kind === 'web') for (const w of this.workers) (w as Worker).terminate();
    this.workers.length = 0;
    this.ready = 0;
  }

  private publish(n: number): void {
    Atomics.store(this.i32, SEQ, (((Atomics.load(this.i32, SEQ) >>> 8) + 1) << 8) | n);
  }

  private throwWorkerError(): never {
    const tid = this.i32[ERROR];
    const msg = new TextDecoder().decode(new Uint8Array(this.ctl, MSG_OFFSET, this.i32[MSG_LENGTH]).slice());
    throw new MinibatchError('wasm', `worker ${tid} failed: ${msg}`);
  }
}

/** Whether Atomics.wait may block here: it throws on a browser's main thread before comparing values. */
function canBlock(i32: Int32Array): boolean {
  try {
    Atomics.wait(i32, MSG_LENGTH, -1, 0); // the value differs: returns 'not-equal' at once where allowed
    return true;
  } catch {
    return false;
  }
}

/** Claims the next chunk of the current call: `chunks << 16 | index`, or -1 when all are taken. */
export function claim(c: Int32Array): number {
  const v = Atomics.add(c, NEXT, 1);
  return (v & 0xffff) < v >>> 16 ? v : -1;
}

/** Records the first failure of a worker so the caller can rethrow it (see the protocol NOTE). */
export function recordError(ctl: SharedArrayBuffer, tid: number, err: unknown): void {
  const i32 = new Int32Array(ctl);
  if (Atomics.compareExchange(i32, ERROR, 0, tid) !== 0) return;
  const bytes = new TextEncoder()
    .encode(err instanceof Error ? err.message : String(err))
    .slice(0, MSG_BYTES);
  new Uint8Array(ctl, MSG_OFFSET, MSG_BYTES).set(bytes);
  i32[MSG_LENGTH] = bytes.length;
}
