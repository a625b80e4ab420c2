/**
 * DataLoader with worker threads: order, seeds, errors, timeouts, shutdown, buffer reuse. The workers build
 * their datasets from specs that point at build/test/data/loader-datasets.js, the compiled helper.
 */
// The package entry first: importing src/tensor/ops.js before it trips the tensor/autograd import cycle.
import '../../src/index.js';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { padCollate } from '../../src/data/collate.js';
import { DataLoader, type DataLoaderOptions, WorkerError } from '../../src/data/dataloader.js';
import { randomSplit } from '../../src/data/dataset.js';
import { FashionMnistDataset } from '../../src/data/fashion-dataset.js';
import { BucketBatchSampler } from '../../src/data/sampler.js';
import * as mb from '../../src/index.js';
import { ROOT } from '../helpers.js';
import {
  Augmented,
  Batch,
  batchCollate,
  functionCollate,
  Range,
  Rows,
  Seeds,
  Sequences,
  Stream,
} from './loader-datasets.js';
import { Script } from './loader-nested.js';

const lists = (batch: unknown) => (batch as mb.Tensor[]).map((t) => [...t.toTypedArray()]);

async function collect<B>(loader: AsyncIterable<B>): Promise<B[]> {
  const out: B[] = [];
  for await (const b of loader) out.push(b);
  return out;
}

/** The batches of `dataset` with `options`, in this thread and with workers; they must agree. */
async function sameAsInThread(
  dataset: ConstructorParameters<typeof DataLoader>[0],
  options: DataLoaderOptions,
) {
  const { numWorkers, prefetchFactor, reuseBuffers, ...inThread } = options;
  const expected = (await collect(new DataLoader(dataset, inThread))).map(lists);
  assert.ok(expected.length > 0);
  assert.deepEqual((await collect(new DataLoader(dataset, options))).map(lists), expected);
}

describe('DataLoader workers', () => {
  it('return batches in order, equal to the in-thread ones, though some workers are slower', async () => {
    const slow = new Range(37, { delays: [6, 0, 0, 0, 2, 0, 0] });
    await sameAsInThread(slow, { batchSize: 4, shuffle: true, seed: 5, numWorkers: 2, prefetchFactor: 3 });
    await sameAsInThread(new Rows(50), {
      batchSize: 8,
      dropLast: true,
      seed: 1,
      shuffle: true,
      numWorkers: 2,
    });
  });

  it("read a subclass's getItem (augmentation), not the getItems it inherits", async () => {
    const [[x]] = await collect(new DataLoader(new Augmented(4), { batchSize: 4, numWorkers: 1 }));
    assert.deepEqual(
      lists([x])[0],
      Array.from({ length: 12 }, (_, k) => k + 100),
    );
  });

  it('deal batches round-robin and seed worker w with baseSeed + w', async () => {
    // A batch: [indices, worker ids, seeds, draws from the worker's default generator]; seeds and draws as
    // strings, since numbers above 2^31 would collate to float32.
    type SeedBatch = [mb.Tensor, mb.Tensor, string[], string[]];
    const run = async (loader: DataLoader<SeedBatch>) =>
      (await collect(loader)).map(([i, w, seeds, draws]) => ({
        i: lists([i])[0],
        w: lists([w])[0],
        seeds,
        draws,
      }));
    const loader = new DataLoader<SeedBatch>(new Seeds(8), { batchSize: 2, numWorkers: 2, seed: 9 });
    const first = await run(loader);
    assert.deepEqual(
      first.map((b) => [b.i, b.w]),
      [
        [
          [0, 1],
          [0, 0],
        ],
        [
          [2, 3],
          [1, 1],
        ],
        [
          [4, 5],
          [0, 0],
        ],
        [
          [6, 7],
          [1, 1],
        ],
      ],
    );
    const [seed0, seed1] = [Number(first[0]!.seeds[0]), Number(first[1]!.seeds[0])];
    assert.equal(seed1, seed0 + 1);
    const again = new DataLoader<SeedBatch>(new Seeds(8), { batchSize: 2, numWorkers: 2, seed: 9 });
    assert.deepEqual(await run(again), first, 'same seed, same draws');
    const second = await run(loader);
    assert.notEqual(Number(second[0]!.seeds[0]), seed0, 'a new base seed each epoch');
  });

  it('read an iterable dataset round-robin, each worker its own shard, also with persistent workers', async () => {
    const expected = [[0, 2], [1, 3], [4, 6], [5]];
    const loader = new DataLoader<mb.Tensor>(new Stream(7), {
      batchSize: 2,
      numWorkers: 2,
      persistentWorkers: true,
    });
    assert.deepEqual(
      (await collect(loader)).map((b) => lists([b])[0]),
      expected,
    );
    assert.deepEqual(
      (await collect(loader)).map((b) => lists([b])[0]),
      expected,
      'the stream restarts',
    );
    loader.close();
  });

  it('build nested specs (a split of a dataset) and load a collate from its spec', async () => {
    const [train] = randomSplit(new Rows(30), [20, 10], { seed: 2 });
    await sameAsInThread(train!, { batchSize: 6, numWorkers: 2 });
    const ds = new Sequences(30);
    const lengths = Array.from({ length: 30 }, (_, i) => ds.lengthOf(i));
    const batchSampler = () => new BucketBatchSampler(lengths, 4, { seed: 3, bucketSize: 12 });
    const expected = [...new DataLoader(ds, { batchSampler: batchSampler(), collate: padCollate })].map(
      lists,
    );
    const viaWorkers = new DataLoader(ds, {
      batchSampler: batchSampler(),
      collate: padCollate,
      numWorkers: 2,
    });
    assert.deepEqual((await collect(viaWorkers)).map(lists), expected);
  });

  it('serve Fashion-MNIST as (N, 784) float32 in [0, 1] and int32 labels', async () => {
    const test = new FashionMnistDataset({ split: 'test' });
    await sameAsInThread(new FashionMnistDataset({ split: 'test', flatten: false }), {
      sampler: {
        length: 64,
        *[Symbol.iterator]() {
          for (let i = 0; i < 64; i++) yield (i * 37) % test.length;
        },
      },
      batchSize: 32,
      numWorkers: 2,
    });
    const [[x, y]] = await collect(new DataLoader(test, { batchSize: 16, numWorkers: 1 }));
    assert.deepEqual(x!.shape, [16, 784]);
    assert.equal(y!.dtype, 'int32');
  });
});

describe('DataLoader worker failures', () => {
  it('re-throw an error as "in DataLoader worker N: ..." with the worker stack, after the batches before it', async () => {
    const loader = new DataLoader(new Range(12, { failAt: 5 }), { batchSize: 2, numWorkers: 2 });
    const it = loader[Symbol.asyncIterator]();
    assert.deepEqual(lists((await it.next()).value)[1], [0, 1]);
    assert.deepEqual(lists((await it.next()).value)[1], [2, 3]);
    await assert.rejects(it.next(), (e: WorkerError) => {
      assert.ok(e instanceof WorkerError);
      assert.equal(e.message, 'in DataLoader worker 0: bad sample 5');
      assert.equal(e.workerId, 0);
      assert.match(
        e.stack!,
        /^WorkerError: in DataLoader worker 0: bad sample 5\n\s+at Range\.getItem \(.*loader-datasets\.js/,
      );
      assert.equal((e.cause as Error).name, 'RangeError');
      return true;
    });
    assert.deepEqual(await it.next(), { done: true, value: undefined }, 'iteration has stopped');
  });

  it('report a worker that dies', async () => {
    const loader = new DataLoader(new Range(8, { exitAt: 2 }), { batchSize: 2, numWorkers: 2 });
    await assert.rejects(collect(loader), {
      name: 'WorkerError',
      message: 'DataLoader: worker 1 exited unexpectedly (exit code 3)',
    });
  });

  it('report a worker that hangs past the timeout', async () => {
    const loader = new DataLoader(new Range(8, { hangAt: 0 }), { batchSize: 2, numWorkers: 2, timeout: 0.3 });
    const t0 = performance.now();
    await assert.rejects(collect(loader), {
      name: 'WorkerError',
      message: 'DataLoader: timed out after 0.3 seconds waiting for batch 0 from worker 0',
    });
    assert.ok(performance.now() - t0 < 5000);
  });

  it('refuse a batch that is a class instance, which would arrive as a plain object', async () => {
    const [inThread] = [...new DataLoader(new Range(2), { batchSize: 2, collate: batchCollate })];
    assert.ok(inThread instanceof Batch, 'with numWorkers 0 a class instance is fine');
    const loader = new DataLoader(new Range(4), { batchSize: 2, numWorkers: 1, collate: batchCollate });
    await assert.rejects(collect(loader), {
      name: 'WorkerError',
      message:
        'in DataLoader worker 0: DataLoader: batches crossing threads must be Tensors, typed arrays, numbers, strings, arrays or plain objects (got Batch): make the class instance from the batch in the main thread',
    });
  });

  it('report a batch that cannot be sent between threads, and a thrown value without a message', async () => {
    const loader = new DataLoader(new Range(4), { batchSize: 2, numWorkers: 1, collate: functionCollate });
    await assert.rejects(collect(loader), {
      name: 'WorkerError',
      message:
        'in DataLoader worker 0: DataLoader: the batch contains a value that cannot be sent between threads (DataCloneError: () => 1 could not be cloned.)',
    });
    const throwing = new DataLoader(new Range(40, { throwLaterAt: 0 }), { numWorkers: 1 });
    await assert.rejects(collect(throwing), {
      name: 'WorkerError',
      message: 'in DataLoader worker 0: bad sample 0',
    });
  });

  it('refuse to start workers inside a worker: a dataset module that runs its own loop when imported', async () => {
    const loader = new DataLoader(new Script(), { batchSize: 2, numWorkers: 1, timeout: 10 });
    await assert.rejects(collect(loader), {
      name: 'WorkerError',
      message:
        'in DataLoader worker 0: DataLoader: a DataLoader worker cannot start workers of its own: spec.module ran a DataLoader with workers when imported (move the Dataset to its own module, or guard the training code with isMainThread)',
    });
  });

  it('report a dataset module that cannot be built', async () => {
    const bad = Object.assign(new Range(4), { spec: { module: new Range(1).spec.module, export: 'Nope' } });
    const loader = new DataLoader(bad, { numWorkers: 1 });
    await assert.rejects(collect(loader), {
      message:
        /^in DataLoader worker 0: DataLoader: module file:.*loader-datasets\.js has no function or class 'Nope'/,
    });
  });
});

describe('DataLoader worker shutdown and memory', () => {
  it('stop the workers when the loop breaks early', async () => {
    const counter = new SharedArrayBuffer(4);
    const calls = new Int32Array(counter);
    const loader = new DataLoader(new Range(2000, { counter, delays: [1] }), {
      batchSize: 10,
      numWorkers: 2,
    });
    let n = 0;
    for await (const _ of loader) if (++n === 3) break;
    await sleep(300);
    const after = Atomics.load(calls, 0);
    await sleep(300);
    assert.equal(Atomics.load(calls, 0), after, 'nothing is fetched after the break');
    // 3 consumed + at most prefetchFactor (2) per worker in flight, 10 samples each.
    assert.ok(after <= 70, `${after} samples fetched`);
  });

  it('keep persistent workers across an epoch cut short, dropping its late batches', async () => {
    const loader = new DataLoader(new Rows(40), { batchSize: 4, numWorkers: 2, persistentWorkers: true });
    for await (const _ of loader) break;
    const all = (await collect(loader)).map((b) => lists(b)[1]);
    assert.deepEqual(
      all.flat(),
      Array.from({ length: 40 }, (_, i) => i),
    );
    loader.close();
  });

  it('end an iteration superseded by a new one over the same persistent workers', async () => {
    const loader = new DataLoader(new Rows(40), { batchSize: 4, numWorkers: 2, persistentWorkers: true });
    const old = loader[Symbol.asyncIterator]();
    await old.next();
    assert.equal((await collect(loader)).length, 10);
    await assert.rejects(old.next(), {
      name: 'StateError',
      message: 'DataLoader: a new iteration over these persistent workers began before this one ended',
    });
    assert.equal((await collect(loader)).length, 10, 'the workers still serve');
    loader.close();
  });

  it('let the process exit by itself after a break, with persistent workers, or with a dropped iterator', () => {
    const t0 = performance.now();
    const child = spawnSync(process.execPath, [join(ROOT, 'build/test/data/loader-child.js')], {
      encoding: 'utf8',
      timeout: 20_000,
    });
    assert.equal(child.status, 0, child.stderr);
    assert.equal(child.stdout.trim(), 'done');
    assert.ok(performance.now() - t0 < 10_000, `took ${performance.now() - t0} ms`);
  });

  it('reuse batch buffers, so allocation stays flat', async () => {
    const options = { batchSize: 20, numWorkers: 1, prefetchFactor: 2 };
    const recycled = new DataLoader(new Rows(4000), { ...options, reuseBuffers: true });
    let n = 0;
    let afterWarmup = 0;
    for await (const [, y] of recycled) {
      // Contents stay right while buffers go round.
      assert.equal(y!.toTypedArray()[0], n * 20);
      if (++n === 20) afterWarmup = recycled.bufferAllocations;
    }
    assert.equal(n, 200);
    assert.equal(recycled.bufferAllocations, afterWarmup, 'no allocation after warm-up');
    // Two tensors a batch; prefetchFactor batches in flight, one being filled, one held by the loop.
    assert.ok(afterWarmup <= 2 * (options.prefetchFactor + 2), `${afterWarmup} buffers`);
    const fresh = new DataLoader(new Rows(4000), options);
    await collect(fresh);
    assert.equal(fresh.bufferAllocations, 2 * 200, 'without reuse, two buffers a batch');
  });

  it('refuse to read a reused batch kept past its turn, rather than read zeros; a copy stays', async () => {
    const loader = new DataLoader(new Rows(8), { batchSize: 4, numWorkers: 1, reuseBuffers: true });
    const kept: mb.Tensor[] = [];
    const copies: mb.Tensor[] = [];
    for await (const [, y] of loader) {
      kept.push(y!);
      copies.push(mb.add(y!, 0));
    }
    const recycled = {
      name: 'StateError',
      message: "DataLoader: this batch's buffers were recycled (reuseBuffers): copy what you keep",
    };
    assert.throws(() => mb.sum(kept[0]!).item(), recycled);
    assert.throws(() => String(kept[1]), recycled);
    assert.deepEqual(kept[0]!.shape, [4], 'what is not storage stays readable');
    assert.deepEqual(lists(copies), [
      [0, 1, 2, 3],
      [4, 5, 6, 7],
    ]);
  });
});
