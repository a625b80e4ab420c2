/**
 * DataLoader: batches from a dataset, in this thread or in worker threads, after PyTorch's
 * `torch/utils/data/dataloader.py`. It assembles the defaults (a RandomSampler or SequentialSampler, a
 * BatchSampler, the default collate) and rejects conflicting options with PyTorch's wording; batches come
 * from `fetchBatch`, which the workers share. The worker side and the messages between the two are in
 * NOTE [DataLoader worker protocol] (worker.ts).
 *
 * Randomness (REFERENCE §1.8): `seed` (or `generator`) drives both the shuffle and the workers' seeds.
 * Every iteration draws a base seed from it, as PyTorch does, so orders do not depend on numWorkers;
 * worker w seeds its default generator with baseSeed + w.
 */
import type { Worker } from 'node:worker_threads';
import { getBackend, listBackends } from '../backend/backend.js';
import { checkOptions as checkKeys, MinibatchError, optionKeys, StateError, ValueError } from '../errors.js';
import { tensor } from '../tensor/creation.js';
import type { TypedArray } from '../tensor/dtype.js';
import { defaultGenerator, Generator } from '../tensor/random.js';
import { Tensor } from '../tensor/tensor.js';
import { type CollateFn, defaultCollate } from './collate.js';
import {
  asyncStreamBatches,
  type Dataset,
  fetchBatch,
  type IterableDataset,
  type ModuleSpec,
  readsBatches,
  streamBatches,
  workerInfo,
} from './dataset.js';
import {
  BatchSampler,
  checkRandomOptions,
  type RandomOptions,
  RandomSampler,
  type Sampler,
  SequentialSampler,
} from './sampler.js';
import type { Reply, Request, WorkerInit } from './worker.js';

export interface DataLoaderOptions<B = unknown> extends RandomOptions {
  /** Samples per batch (default 1). */
  batchSize?: number;
  /** A new random order each epoch (default false). */
  shuffle?: boolean;
  /** Drop the last batch when it is short (default false). */
  dropLast?: boolean;
  /** Which indices, in which order (instead of shuffle). */
  sampler?: Sampler;
  /** The indices of each batch (instead of batchSize, shuffle, sampler and dropLast). */
  batchSampler?: Sampler<ArrayLike<number>>;
  /**
   * Samples to a batch (default `defaultCollate`); needs a `spec` with workers. Not for datasets read through
   * getItems (see `readsBatches`). With workers the batch must be Tensors, typed arrays, numbers, strings,
   * arrays and plain objects: a class instance would arrive as a plain object without its methods.
   */
  collate?: CollateFn<B>;
  /** Worker threads producing batches (default 0: this thread, on demand). */
  numWorkers?: number;
  /** Batches in flight per worker (default 2; only with workers). */
  prefetchFactor?: number;
  /** Keep the workers and their dataset copies between epochs (default false). */
  persistentWorkers?: boolean;
  /** Seconds to wait for a batch from the workers before failing (default 0: no limit). */
  timeout?: number;
  /**
   * Hand each batch's buffers back to its worker when the next batch is requested, so workers fill the
   * same buffers again and allocation stays flat (default false). A batch is then valid only until the
   * next one is requested: its storage moves back to the worker, and reading its tensors afterwards throws
   * (views made of them earlier read zeros). Copy what you keep. Only with workers.
   */
  reuseBuffers?: boolean;
}

const OPTIONS = optionKeys<DataLoaderOptions>()([
  'batchSize',
  'shuffle',
  'dropLast',
  'sampler',
  'batchSampler',
  'collate',
  'numWorkers',
  'prefetchFactor',
  'persistentWorkers',
  'timeout',
  'reuseBuffers',
  'seed',
  'generator',
]);

/** A failure in a worker thread: an error it threw, its death, or a timeout waiting for it. */
export class WorkerError extends MinibatchError {
  constructor(
    readonly workerId: number,
    op: string,
    detail: string,
  ) {
    super(op, detail);
  }
}

/** `in DataLoader worker 1: <message>`, with the worker's stack frames and the original error as `cause`. */
function thrownIn(id: number, original: unknown): WorkerError {
  // A worker's 'error' event carries whatever it threw: a string, or {} for a DOMException (Node sends
  // those without their fields), so the message falls back to the value itself.
  const { message, stack } = Object(original) as Partial<Error>;
  const detail = message ?? String(original);
  const e = new WorkerError(id, `in DataLoader worker ${id}`, detail);
  // The worker's frames: where the dataset failed, not where the main thread noticed.
  const frames = (stack ?? '').split('\n').filter((l) => /^\s+at /.test(l));
  e.stack = [`${e.name}: ${e.message}`, ...frames].join('\n');
  e.cause = typeof original === 'object' ? Object.assign(new Error(detail), original) : original;
  return e;
}

/**
 * Batches of a dataset. Map-style datasets are read through a batch sampler (one `getItems` call per
 * batch when the dataset has it and no subclass overrides `getItem` below it, else `getItem` per sample
 * and `collate`); iterable datasets are read front to back, `batchSize` samples at a time, from a new
 * iterator each epoch. `length` is the number of batches: ceil(n / batchSize),
 * floor with `dropLast`.
 *
 * `for (const b of loader)` runs in this thread (numWorkers 0); `for await` also runs with workers, which
 * build their own dataset from its `spec` (see dataset.ts), prefetch `prefetchFactor` batches each, and
 * hand batches back in order. Breaking out of the loop stops them.
 *
 * @example
 * const loader = new DataLoader(new TensorDataset(X, y), { batchSize: 64, shuffle: true, seed: 0 });
 * for (let epoch = 0; epoch < 10; epoch++) {
 *   for (const [xb, yb] of loader) step(xb, yb);
 * }
 * const fast = new DataLoader(new FashionMnistDataset(), { batchSize: 128, shuffle: true, numWorkers: 2 });
 * for await (const [xb, yb] of fast) step(xb, yb);
 */
export class DataLoader<B = Tensor[]> implements Iterable<B>, AsyncIterable<B> {
  /** For map-style datasets; undefined for iterable ones. */
  readonly batchSampler: Sampler<ArrayLike<number>> | undefined;
  readonly batchSize: number;
  readonly dropLast: boolean;
  readonly numWorkers: number;
  readonly prefetchFactor: number;
  readonly persistentWorkers: boolean;
  readonly timeout: number;
  readonly reuseBuffers: boolean;
  /** Buffers the workers have allocated for batches; stays flat once `reuseBuffers` recycles them. */
  bufferAllocations = 0;
  private readonly collate: CollateFn<B>;
  private readonly generator: Generator | undefined;
  private pool: WorkerPool | undefined;

  readonly dataset: Dataset<unknown, B> | IterableDataset;

  constructor(
    dataset: Dataset<unknown, B> | IterableDataset | readonly unknown[],
    options: DataLoaderOptions<B> = {},
  ) {
    // A plain array is a map-style dataset, as a Python list is for PyTorch's DataLoader.
    this.dataset = Array.isArray(dataset)
      ? ({ length: dataset.length, getItem: (i: number) => dataset[i] } as Dataset<unknown, B>)
      : (dataset as Dataset<unknown, B> | IterableDataset);
    const mapStyle = typeof (this.dataset as Dataset).getItem === 'function';
    const stream = this.dataset as Partial<Iterable<unknown> & AsyncIterable<unknown>> | null;
    if (
      !mapStyle &&
      typeof stream?.[Symbol.iterator] !== 'function' &&
      typeof stream?.[Symbol.asyncIterator] !== 'function'
    ) {
      const got =
        dataset instanceof Tensor
          ? 'a Tensor (wrap it: new TensorDataset(x, y))'
          : dataset === null
            ? 'null'
            : typeof dataset;
      throw new ValueError(
        'DataLoader',
        `the dataset needs getItem(i) and length, or to be iterable (got ${got})`,
      );
    }
    if (!mapStyle) checkRestartable(stream!);
    checkOptions(options, mapStyle && readsBatches(this.dataset as Dataset), mapStyle);
    checkRandomOptions('DataLoader', options);
    const { batchSize = 1, shuffle, sampler, batchSampler, dropLast = false, seed, generator } = options;
    this.batchSize = batchSize;
    this.dropLast = dropLast;
    this.numWorkers = options.numWorkers ?? 0;
    this.prefetchFactor = options.prefetchFactor ?? 2;
    this.persistentWorkers = options.persistentWorkers ?? false;
    this.timeout = options.timeout ?? 0;
    this.reuseBuffers = options.reuseBuffers ?? false;
    this.collate = options.collate ?? (defaultCollate as CollateFn<B>);
    this.generator = generator ?? (seed === undefined ? undefined : new Generator(seed));
    if (mapStyle) {
      const ds = this.dataset as Dataset;
      const order = sampler ?? (shuffle ? new RandomSampler(ds, { generator: this.generator }) : undefined);
      this.batchSampler =
        batchSampler ?? new BatchSampler(order ?? new SequentialSampler(ds), batchSize, dropLast);
    }
    if (this.numWorkers > 0) {
      // A batched dataset without a spec (TensorDataset, PyTorch's usual partner of num_workers) is one gather
      // per batch on this thread already: say so rather than only what workers would need.
      const batched = !this.dataset.spec && mapStyle && readsBatches(this.dataset as Dataset);
      checkSpec(
        'the dataset',
        this.dataset.spec,
        batched
          ? ': its batches are one gather each on this thread already, so numWorkers: 0 loses nothing'
          : '',
      );
      checkSpec('the collate function', this.collate.spec);
    }
  }

  /** Batches per epoch (PyTorch's `len(loader)`); for an iterable dataset, from its `length` if it has one. */
  get length(): number {
    if (this.batchSampler) return this.batchSampler.length;
    const n = (this.dataset as IterableDataset).length;
    if (n === undefined) throw new ValueError('DataLoader', 'the IterableDataset has no length');
    return this.dropLast ? Math.floor(n / this.batchSize) : Math.ceil(n / this.batchSize);
  }

  /** Tell the batch sampler which epoch comes next (a batch-size schedule reads it). */
  setEpoch(epoch: number): void {
    this.batchSampler?.setEpoch?.(epoch);
  }

  /** Stop persistent workers now rather than when the program exits. */
  close(): void {
    this.pool?.close();
    this.pool = undefined;
  }

  *[Symbol.iterator](): Iterator<B> {
    if (this.numWorkers > 0) {
      throw new StateError(
        'DataLoader',
        `a for...of loop runs in this thread, so it needs numWorkers 0 (got ${this.numWorkers}); use for await`,
      );
    }
    (this.generator ?? defaultGenerator).nextUint32(); // the base seed, drawn as with workers
    yield* this.inThread();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<B> {
    const baseSeed = (this.generator ?? defaultGenerator).nextUint32();
    if (this.numWorkers > 0) yield* this.fromWorkers(baseSeed);
    else if (this.batchSampler || Symbol.iterator in this.dataset) yield* this.inThread();
    else {
      const stream = this.dataset as AsyncIterable<unknown>;
      yield* asyncStreamBatches(stream, this.batchSize, this.dropLast, this.collate as Collate<B>);
    }
  }

  private *inThread(): IterableIterator<B> {
    const collate = this.collate as Collate<B>;
    if (this.batchSampler) {
      const dataset = this.dataset as Dataset<unknown, B>;
      for (const idx of this.batchSampler) yield fetchBatch(dataset, indices(idx), collate);
      return;
    }
    if (!(Symbol.iterator in this.dataset))
      throw new StateError('DataLoader', 'the dataset is an async iterable; iterate with for await');
    yield* streamBatches(this.dataset, this.batchSize, this.dropLast, collate);
  }

  // One side of NOTE [DataLoader worker protocol] (worker.ts): deal tasks, reorder replies, recycle buffers.
  private async *fromWorkers(baseSeed: number): AsyncGenerator<B> {
    // A worker that starts workers: almost always the training script named as spec.module, imported by
    // each worker, whose loop starts workers that import it again, without end.
    if (workerInfo()) {
      throw new StateError(
        'DataLoader',
        'a DataLoader worker cannot start workers of its own: spec.module ran a DataLoader with workers when imported (move the Dataset to its own module, or guard the training code with isMainThread)',
      );
    }
    // Loaded here, not at the top, so that importing the package does not need node:worker_threads.
    const { Worker } = await import('node:worker_threads');
    const pool =
      this.pool ??
      new WorkerPool(
        Worker,
        {
          numWorkers: this.numWorkers,
          backend: listBackends().length > 0 ? getBackend() : undefined,
          dataset: this.dataset.spec!,
          collate: this.collate.spec!,
          batchSize: this.batchSize,
          dropLast: this.dropLast,
        },
        baseSeed,
      );
    this.pool = this.persistentWorkers ? pool : undefined;
    const epoch = pool.startEpoch();
    const batches = this.batchSampler?.[Symbol.iterator]();
    const producing = new Array<boolean>(this.numWorkers).fill(true);
    let sent = 0;
    let next = 0;
    let turn = 0;
    // PyTorch's _try_put_index: round-robin over the workers still producing, prefetchFactor each in flight.
    const dispatch = () => {
      while (sent - next < this.prefetchFactor * producing.filter(Boolean).length) {
        let idx: Int32Array | undefined;
        if (batches) {
          const b = batches.next();
          if (b.done) return;
          idx = indices(b.value);
        }
        while (!producing[turn % this.numWorkers]) turn++;
        pool.post(turn++ % this.numWorkers, { type: 'fetch', epoch, task: sent++, indices: idx });
      }
    };
    let failed = false;
    try {
      for (dispatch(); next < sent; ) {
        const reply = await pool.reply(epoch, next++, this.timeout);
        if (reply.type === 'end') producing[reply.worker] = false;
        // Refill the freed slot before handing the batch over, so workers stay busy during the step.
        dispatch();
        if (reply.type === 'error') throw thrownIn(reply.worker, reply.error);
        if (reply.type === 'batch') {
          this.bufferAllocations += reply.fresh;
          const tensors: Tensor[] = [];
          yield unpack(reply.batch, tensors) as B;
          // The consumer asked for the next batch: it is done with this one.
          if (this.reuseBuffers) {
            const live = tensors.map((t) => t.data.buffer as ArrayBuffer).filter((b) => b.byteLength > 0);
            tensors.forEach(release);
            pool.post(reply.worker, { type: 'recycle', buffers: live }, live);
          }
        }
      }
    } catch (e) {
      failed = !(e instanceof StateError); // a superseded iteration leaves the workers to the new one
      throw e;
    } finally {
      // Persistent workers outlive an epoch, even one cut short; a failed pool is never reused.
      if (failed || !this.persistentWorkers) {
        pool.close();
        if (this.pool === pool) this.pool = undefined;
      }
    }
  }
}

/** Rejects conflicting or invalid options, with PyTorch's wording where PyTorch has a message. */
function checkOptions(options: DataLoaderOptions<unknown>, hasGetItems: boolean, mapStyle: boolean): void {
  const fail = (detail: string) => {
    throw new ValueError('DataLoader', detail);
  };
  checkKeys('DataLoader', options, OPTIONS);
  const { batchSize, shuffle, sampler, batchSampler, dropLast, numWorkers = 0, timeout = 0 } = options;
  const { prefetchFactor } = options;
  if (!Number.isSafeInteger(numWorkers) || numWorkers < 0)
    fail('num_workers option should be non-negative; use num_workers=0 to disable multiprocessing.');
  if (!(timeout >= 0)) fail('timeout option should be non-negative');
  if (numWorkers === 0 && prefetchFactor !== undefined) {
    fail(
      'prefetch_factor option could only be specified in multiprocessing. Let num_workers > 0 to enable multiprocessing, otherwise leave prefetch_factor unset.',
    );
  }
  if (prefetchFactor !== undefined && !(Number.isSafeInteger(prefetchFactor) && prefetchFactor > 0))
    fail(`prefetch_factor should be a positive integer value, but got prefetch_factor=${prefetchFactor}`);
  if (options.persistentWorkers && numWorkers === 0) fail('persistent_workers option needs num_workers > 0');
  if (options.reuseBuffers && numWorkers === 0) fail('reuseBuffers option needs num_workers > 0');
  if (options.seed !== undefined && options.generator !== undefined)
    fail('give either seed or generator, not both');
  if (!mapStyle) {
    for (const [name, value] of Object.entries({ shuffle, sampler, batch_sampler: batchSampler })) {
      if (value !== undefined && value !== false) {
        const shown = typeof value === 'object' ? value.constructor.name : value;
        fail(
          `DataLoader with IterableDataset: expected unspecified ${name} option, but got ${name}=${shown}`,
        );
      }
    }
  }
  if (sampler && shuffle) fail('sampler option is mutually exclusive with shuffle');
  // batchSize 1 is the default, so giving it explicitly is no conflict (PyTorch checks batch_size != 1).
  if (batchSampler && ((batchSize !== undefined && batchSize !== 1) || shuffle || sampler || dropLast))
    fail('batch_sampler option is mutually exclusive with batch_size, shuffle, sampler, and drop_last');
  if (batchSize !== undefined && !(Number.isSafeInteger(batchSize) && batchSize > 0))
    fail(`batch_size should be a positive integer value, but got batch_size=${batchSize}`);
  if (options.collate && hasGetItems)
    fail('the dataset has getItems, which returns whole batches, so a collate option would never be used');
}

type Collate<B> = (samples: unknown[]) => B;

/** A batch's indices as int32; a fractional one is refused (Int32Array.from would truncate it silently). */
function indices(idx: ArrayLike<number>): Int32Array {
  if (idx instanceof Int32Array) return idx;
  for (let i = 0; i < idx.length; i++) {
    if (!Number.isInteger(idx[i]))
      throw new ValueError('DataLoader', `indices must be integers (got ${idx[i]})`);
  }
  return Int32Array.from(idx);
}

function checkSpec(what: string, spec: ModuleSpec | undefined, hint = ''): void {
  if (!spec) {
    throw new ValueError(
      'DataLoader',
      `numWorkers > 0 needs ${what} to have a spec ({ module, export, args }) to build it in each worker, since objects cannot cross threads${hint}`,
    );
  }
  if (!/^([a-z][a-z\d+.-]*:|\/)/i.test(spec.module)) {
    throw new ValueError(
      'DataLoader',
      `a spec's module must be an absolute URL such as new URL('./my-dataset.js', import.meta.url).href (got '${spec.module}')`,
    );
  }
}

/**
 * A one-shot iterator (a generator object, `array.values()`) returns itself from [Symbol.iterator](): the
 * first epoch would drain it and every later one would be silently empty.
 */
function checkRestartable(stream: Partial<Iterable<unknown> & AsyncIterable<unknown>>): void {
  const key = typeof stream[Symbol.iterator] === 'function' ? Symbol.iterator : Symbol.asyncIterator;
  const it = stream[key]!() as Partial<Iterator<unknown>>;
  if (it === stream) {
    const example =
      key === Symbol.iterator
        ? '{ *[Symbol.iterator]() { ... } }'
        : '{ async *[Symbol.asyncIterator]() { ... } }';
    const method = key === Symbol.iterator ? '[Symbol.iterator]()' : '[Symbol.asyncIterator]()';
    throw new ValueError(
      'DataLoader',
      `the dataset is a one-shot iterator: pass an object whose ${method} makes a new iterator each epoch, e.g. ${example}`,
    );
  }
  void it.return?.(); // the probe is dropped: let it release what it opened
}

/** Rebuild the tensors of a packed batch (NOTE [DataLoader worker protocol]); they are listed in `tensors`. */
function unpack(value: unknown, tensors: Tensor[]): unknown {
  if (Array.isArray(value)) return value.map((v) => unpack(v, tensors));
  if (value === null || typeof value !== 'object' || ArrayBuffer.isView(value)) return value;
  const packed = value as { 'minibatch.tensor'?: number[]; data: TypedArray };
  if (packed['minibatch.tensor']) {
    const t = tensor(packed.data, { shape: packed['minibatch.tensor'] });
    tensors.push(t);
    return t;
  }
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, unpack(v, tensors)]));
}

/**
 * Makes a recycled batch tensor's storage unreadable. Its buffer is detached (moved back to the worker),
 * and kernels would read a detached buffer as zeros: every op reads `data`, so this one accessor turns
 * that silent wrong answer into an error. Views made before recycling keep the detached storage.
 */
function release(t: Tensor): void {
  Object.defineProperty(t, 'data', {
    get() {
      throw new StateError(
        'DataLoader',
        "this batch's buffers were recycled (reuseBuffers): copy what you keep",
      );
    },
  });
}

type Delivered = Reply & { worker: number };

/** The main side of NOTE [DataLoader worker protocol] (worker.ts): starts workers, collects their replies. */
class WorkerPool {
  private readonly workers: Worker[];
  private epoch = 0;
  /** The reorder buffer: replies that arrived, by task. */
  private readonly replies = new Map<number, Delivered>();
  private readonly owners = new Map<number, number>();
  private failure: Error | undefined;
  /** Iterations waiting for a reply; every reply or failure wakes them all to look. */
  private readonly waiters = new Set<() => void>();
  private closed = false;

  constructor(Thread: typeof Worker, init: Omit<WorkerInit, 'id' | 'seed'>, baseSeed: number) {
    this.workers = Array.from({ length: init.numWorkers }, (_, id) => {
      const workerData: WorkerInit = { ...init, id, seed: baseSeed + id };
      const w = new Thread(new URL('./worker.js', import.meta.url), { workerData });
      // Referenced only while a batch is awaited, so a program that stops iterating exits by itself.
      w.unref();
      w.on('message', (r: Reply) => this.receive(id, r));
      w.on('error', (e) => this.fail(thrownIn(id, e)));
      w.on('exit', (code) =>
        this.fail(new WorkerError(id, 'DataLoader', `worker ${id} exited unexpectedly (exit code ${code})`)),
      );
      return w;
    });
  }

  startEpoch(): number {
    this.replies.clear();
    this.owners.clear();
    return ++this.epoch;
  }

  post(id: number, msg: Request, transfer: ArrayBuffer[] = []): void {
    if (msg.type === 'fetch') this.owners.set(msg.task, id);
    this.workers[id]!.postMessage(msg, transfer);
  }

  /** The reply to `task` of `epoch`, waiting at most `timeout` seconds (0: no limit). */
  async reply(epoch: number, task: number, timeout: number): Promise<Delivered> {
    const deadline = timeout > 0 ? performance.now() + timeout * 1000 : Number.POSITIVE_INFINITY;
    for (;;) {
      if (this.failure) throw this.failure;
      if (epoch !== this.epoch) {
        throw new StateError(
          'DataLoader',
          'a new iteration over these persistent workers began before this one ended',
        );
      }
      const r = this.replies.get(task);
      if (r) {
        this.replies.delete(task);
        return r;
      }
      const left = deadline - performance.now();
      if (left <= 0) {
        const id = this.owners.get(task)!;
        throw new WorkerError(
          id,
          'DataLoader',
          `timed out after ${timeout} seconds waiting for batch ${task} from worker ${id}`,
        );
      }
      await this.message(left);
    }
  }

  close(): void {
    this.closed = true;
    for (const w of this.workers) void w.terminate();
  }

  private receive(worker: number, reply: Reply): void {
    if (reply.epoch !== this.epoch) return; // from an epoch cut short; its buffers go to the collector
    this.replies.set(reply.task, { ...reply, worker });
    for (const wake of this.waiters) wake();
  }

  private fail(e: Error): void {
    if (this.closed) return;
    this.failure ??= e;
    for (const wake of this.waiters) wake();
  }

  /** Resolves on the next reply or failure, or after `ms`. */
  private async message(ms: number): Promise<void> {
    for (const w of this.workers) w.ref();
    let timer: ReturnType<typeof setTimeout> | undefined;
    let wake = () => {};
    try {
      await new Promise<void>((resolve) => {
        wake = resolve;
        this.waiters.add(wake);
        if (Number.isFinite(ms)) timer = setTimeout(resolve, ms);
      });
    } finally {
      clearTimeout(timer);
      this.waiters.delete(wake);
      if (this.waiters.size === 0) for (const w of this.workers) w.unref();
    }
  }
}
