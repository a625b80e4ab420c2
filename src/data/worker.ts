/**
 * A DataLoader worker thread (the entry script of `new Worker`): builds its own dataset and collate from
 * their module specs, then turns fetch requests into batches whose storage is transferred, not copied.
 *
 * NOTE [DataLoader worker protocol]
 * Start: `new Worker(worker.js, { workerData: WorkerInit })`. The worker seeds its default generator with
 *   `seed` (baseSeed + id), publishes `workerInfo()`, activates the main thread's backend when it has it,
 *   and builds the dataset and collate from their specs; if that fails, every fetch is answered with
 *   the error.
 * Main -> worker:
 *   { type: 'fetch', epoch, task, indices? }  one batch: the samples at `indices` (map-style), or the next
 *       batch of this worker's stream (iterable; a new `epoch` restarts the stream). Tasks are numbered
 *       0, 1, 2, ... within an epoch and dealt round-robin, at most prefetchFactor per worker outstanding.
 *       Fetches are served one at a time, in the order they arrive.
 *   { type: 'recycle', buffers }  buffers of a batch the consumer has moved past, transferred back to be
 *       filled again instead of allocating. Handled on arrival, not queued behind fetches.
 * Worker -> main, one reply per fetch, in the order the fetches arrived:
 *   { type: 'batch', epoch, task, batch, fresh }  `batch` is the collated value with every Tensor replaced
 *       by { 'minibatch.tensor': shape, data }, data's buffer in the transfer list; `fresh` counts the
 *       buffers newly allocated for it (0 once recycling keeps up).
 *   { type: 'end', epoch, task }  the stream is exhausted; main sends this worker no more tasks this epoch.
 *   { type: 'error', epoch, task, error: { name, message, stack } }  the fetch threw, or its batch could not
 *       be packed or sent (a class instance, a function).
 * Main orders replies by task (a reorder buffer), drops replies from an earlier epoch (an iteration
 * abandoned while persistent workers were busy), and stops workers with `terminate()`.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { ValueError } from '../errors.js';
import { listBackends, setBackend } from '../index.js';
import type { TypedArray } from '../tensor/dtype.js';
import { contiguous } from '../tensor/ops.js';
import { defaultGenerator } from '../tensor/random.js';
import { Tensor } from '../tensor/tensor.js';
import {
  asyncStreamBatches,
  type Dataset,
  fetchBatch,
  type IterableDataset,
  type ModuleSpec,
  WORKER_INFO,
  type WorkerInfo,
} from './dataset.js';

/** What a worker is started with (workerData). */
export interface WorkerInit extends WorkerInfo {
  /** The main thread's active backend, used here too when this thread has it. */
  backend: string | undefined;
  dataset: ModuleSpec;
  collate: ModuleSpec;
  /** For iterable datasets, which the worker batches itself. */
  batchSize: number;
  dropLast: boolean;
}

export type Request =
  | { type: 'fetch'; epoch: number; task: number; indices?: Int32Array }
  | { type: 'recycle'; buffers: ArrayBuffer[] };

export type Reply = { epoch: number; task: number } & (
  | { type: 'batch'; batch: unknown; fresh: number }
  | { type: 'end' }
  | { type: 'error'; error: { name: string; message: string; stack?: string } }
);

/** Buffers given back by the consumer; the smallest that fits is reused. */
class BufferPool {
  private free: ArrayBuffer[] = [];
  /** Buffers allocated so far, because none given back fitted. */
  allocated = 0;

  take(bytes: number): ArrayBuffer {
    let best = -1;
    this.free.forEach((b, i) => {
      if (b.byteLength >= bytes && (best < 0 || b.byteLength < this.free[best]!.byteLength)) best = i;
    });
    if (best >= 0) return this.free.splice(best, 1)[0]!;
    this.allocated++;
    return new ArrayBuffer(bytes);
  }

  give(buffers: ArrayBuffer[]): void {
    this.free.push(...buffers);
    // Oldest out first: only a changing batch shape (padding, a new batch size) leaves buffers unused.
    if (this.free.length > POOL_MAX) this.free.splice(0, this.free.length - POOL_MAX);
  }
}

/** Buffers kept per worker: prefetchFactor batches of a few tensors each, with room for odd sizes. */
const POOL_MAX = 64;

/**
 * Copy every tensor of `value` into a pooled buffer and list the buffer for transfer. Copying, rather than
 * transferring the tensor's own storage, is what makes the transfer safe: that storage may belong to the
 * dataset (a view, a cached tensor) or live in a backend's memory, and a transferred buffer is gone here.
 * Class instances are refused: structured clone would deliver them as plain objects, without their
 * methods and with their tensors unpacked, so they would fail far from here.
 */
function pack(value: unknown, pool: BufferPool, transfer: ArrayBuffer[]): unknown {
  if (value instanceof Tensor) {
    const src = contiguous(value).data;
    const buffer = pool.take(src.byteLength);
    const Ctor = src.constructor as new (b: ArrayBuffer, offset: number, length: number) => TypedArray;
    const data = new Ctor(buffer, 0, src.length);
    data.set(src);
    transfer.push(buffer);
    return { 'minibatch.tensor': value.shape, data };
  }
  if (Array.isArray(value)) return value.map((v) => pack(v, pool, transfer));
  if (value === null || typeof value !== 'object' || ArrayBuffer.isView(value)) return value; // cloned as is
  const proto = Object.getPrototypeOf(value) as object | null;
  if (proto !== Object.prototype && proto !== null) {
    throw new ValueError(
      'DataLoader',
      `batches crossing threads must be Tensors, typed arrays, numbers, strings, arrays or plain objects (got ${proto.constructor?.name || 'an object of a class'}): make the class instance from the batch in the main thread`,
    );
  }
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, pack(v, pool, transfer)]));
}

const isSpec = (a: unknown): a is ModuleSpec =>
  typeof a === 'object' &&
  a !== null &&
  typeof (a as ModuleSpec).module === 'string' &&
  typeof (a as ModuleSpec).export === 'string';

async function load(spec: ModuleSpec): Promise<unknown> {
  const mod = (await import(spec.module)) as Record<string, unknown>;
  const value = mod[spec.export];
  if (typeof value !== 'function') {
    throw new ValueError(
      'DataLoader',
      `module ${spec.module} has no function or class '${spec.export}' (exports: ${Object.keys(mod).join(', ')})`,
    );
  }
  return value;
}

async function build(spec: ModuleSpec): Promise<unknown> {
  const Ctor = (await load(spec)) as new (...args: unknown[]) => unknown;
  const args = await Promise.all((spec.args ?? []).map((a) => (isSpec(a) ? build(a) : a)));
  return new Ctor(...args);
}

const init = workerData as WorkerInit;
(globalThis as { [WORKER_INFO]?: WorkerInfo })[WORKER_INFO] = {
  id: init.id,
  numWorkers: init.numWorkers,
  seed: init.seed,
};
defaultGenerator.manualSeed(init.seed);
if (init.backend && listBackends().includes(init.backend)) setBackend(init.backend);

const ready = Promise.all([build(init.dataset), load(init.collate)]);
ready.catch(() => {}); // reported by each fetch; unawaited, the rejection would kill the thread unexplained
const pool = new BufferPool();
let stream: { epoch: number; batches: AsyncIterator<unknown> } | undefined;
let queue = Promise.resolve();
const port = parentPort!;

async function serve(epoch: number, task: number, indices?: Int32Array): Promise<[Reply, ArrayBuffer[]]> {
  const [dataset, collate] = (await ready) as [unknown, (samples: unknown[]) => unknown];
  let batch: unknown;
  if (indices) {
    batch = fetchBatch(dataset as Dataset, indices, collate);
  } else {
    if (stream?.epoch !== epoch) {
      const s = dataset as IterableDataset;
      stream = { epoch, batches: asyncStreamBatches(s, init.batchSize, init.dropLast, collate) };
    }
    const next = await stream.batches.next();
    if (next.done) return [{ type: 'end', epoch, task }, []];
    batch = next.value;
  }
  const transfer: ArrayBuffer[] = [];
  const before = pool.allocated;
  const packed = pack(batch, pool, transfer);
  return [{ type: 'batch', epoch, task, batch: packed, fresh: pool.allocated - before }, transfer];
}

/** Sends a reply; a batch that structured clone refuses (a function in it) becomes the fetch's error. */
function send(reply: Reply, transfer: ArrayBuffer[]): void {
  try {
    port.postMessage(reply, transfer);
  } catch (e) {
    const { name, message } = e as Error;
    throw new ValueError(
      'DataLoader',
      `the batch contains a value that cannot be sent between threads (${name}: ${message})`,
    );
  }
}

port.on('message', (msg: Request) => {
  if (msg.type === 'recycle') {
    pool.give(msg.buffers);
    return;
  }
  const { epoch, task, indices } = msg;
  queue = queue.then(async () => {
    try {
      send(...(await serve(epoch, task, indices)));
    } catch (e) {
      const { name, message, stack } = e instanceof Error ? e : new Error(String(e));
      port.postMessage({ type: 'error', epoch, task, error: { name, message, stack } } satisfies Reply);
    }
  });
});
