// The package entry first: importing src/tensor/ops.js before it trips the tensor/autograd import cycle.
import '../../src/index.js';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { DataLoader } from '../../src/data/dataloader.js';
import { FashionMnistDataset } from '../../src/data/fashion-dataset.js';
import { encodeIdx } from '../../src/data/idx.js';
import * as mb from '../../src/index.js';

/** Six fake images: image i has pixel j = (i * 40 + j) % 256, label 9 - i. */
function fakeDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'fmnist-ds-'));
  const n = 6;
  const images = Uint8Array.from({ length: n * 784 }, (_, k) => (Math.floor(k / 784) * 40 + (k % 784)) % 256);
  const labels = Uint8Array.from({ length: n }, (_, i) => 9 - i);
  for (const split of ['train', 't10k']) {
    writeFileSync(join(dir, `${split}-images-idx3-ubyte`), encodeIdx([n, 28, 28], images));
    writeFileSync(join(dir, `${split}-labels-idx1-ubyte`), encodeIdx([n], labels));
  }
  return dir;
}

describe('FashionMnistDataset', () => {
  const dir = fakeDir();

  it('reads batches as float32 pixels / 255 and int32 labels', () => {
    const ds = new FashionMnistDataset({ dir });
    assert.equal(ds.length, 6);
    assert.equal(ds.source, dir);
    const [x, y] = ds.getItems(Int32Array.of(4, 1));
    assert.deepEqual(x.shape, [2, 784]);
    assert.equal(x.dtype, 'float32');
    const v = x.toTypedArray();
    assert.equal(v[0], Math.fround(160 / 255));
    assert.equal(v[784 + 5], Math.fround(45 / 255));
    assert.ok(v.every((p) => p >= 0 && p <= 1));
    assert.equal(y.dtype, 'int32');
    assert.deepEqual([...y.toTypedArray()], [5, 8]);
  });

  it('gives (N, 1, 28, 28) images unflattened, and single samples that match the batch rows', () => {
    const ds = new FashionMnistDataset({ dir, split: 'test', flatten: false });
    assert.deepEqual(ds.getItems(Int32Array.of(0, 1, 2))[0].shape, [3, 1, 28, 28]);
    const [image, label] = ds.getItem(3);
    assert.deepEqual(image.shape, [1, 28, 28]);
    assert.equal(label, 6);
    assert.deepEqual([...image.toTypedArray()], [...ds.getItems(Int32Array.of(3))[0].toTypedArray()]);
  });

  it("is read through a subclass's getItem (augmentation), not the getItems it inherits", () => {
    class Negated extends FashionMnistDataset {
      override getItem(index: number): [mb.Tensor, number] {
        const [image, label] = super.getItem(index);
        return [mb.neg(image), label];
      }
    }
    const ds = new Negated({ dir });
    const [[x, y]] = [...new DataLoader(ds, { batchSize: 3 })];
    const plain = ds.getItems(Int32Array.of(0, 1, 2));
    assert.deepEqual([...x!.toTypedArray()], [...mb.neg(plain[0]).toTypedArray()]);
    assert.deepEqual([...y!.toTypedArray()], [9, 8, 7]);
  });

  it('can be rebuilt from its spec, as a worker does', async () => {
    const ds = new FashionMnistDataset({ dir });
    const mod = (await import(ds.spec.module)) as Record<
      string,
      new (
        ...a: unknown[]
      ) => FashionMnistDataset
    >;
    const copy = new mod[ds.spec.export]!(...ds.spec.args!);
    assert.deepEqual(copy.labels, ds.labels);
  });

  it('rejects indices out of range', () => {
    assert.throws(() => new FashionMnistDataset({ dir }).getItems(Int32Array.of(6)), {
      name: 'ValueError',
      message: 'FashionMnistDataset: index 6 is out of range (expected [0, 6))',
    });
  });
});
