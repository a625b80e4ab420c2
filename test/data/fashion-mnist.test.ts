import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import {
  FASHION_MNIST_CLASSES,
  FASHION_MNIST_SYSTEM_DIR,
  fashionMnistSearchPath,
  findFashionMnist,
  loadFashionMnist,
  shippedFashionMnistDir,
} from '../../src/data/fashion-mnist.js';
import { encodeIdx } from '../../src/data/idx.js';
import { FormatError, ValueError } from '../../src/errors.js';

const NAMES = [
  'train-images-idx3-ubyte',
  'train-labels-idx1-ubyte',
  't10k-images-idx3-ubyte',
  't10k-labels-idx1-ubyte',
];

function classCounts(labels: Uint8Array): number[] {
  const counts = new Array(10).fill(0);
  for (const l of labels) counts[l]++;
  return counts;
}

/** A tiny fake Fashion-MNIST: `n` images whose pixels all equal their label, raw (not gzipped) IDX files. */
function fakeDir(n = 4, labels = Uint8Array.from({ length: n }, (_, i) => i % 10)): string {
  const dir = mkdtempSync(join(tmpdir(), 'fmnist-'));
  const images = new Uint8Array(n * 784);
  labels.forEach((l, i) => {
    images.fill(l, i * 784, (i + 1) * 784);
  });
  for (const split of ['train', 't10k']) {
    writeFileSync(join(dir, `${split}-images-idx3-ubyte`), encodeIdx([n, 28, 28], images));
    writeFileSync(join(dir, `${split}-labels-idx1-ubyte`), encodeIdx([n], labels));
  }
  return dir;
}

const shipped = shippedFashionMnistDir()!;

describe('shipped Fashion-MNIST subset', () => {
  it('is found by walking up to the minibatch package.json', () => {
    assert.ok(shipped.endsWith(join('data', 'fashion-mnist')), shipped);
    assert.ok(existsSync(join(shipped, 'LICENSE')));
  });

  it('loads 10,000 + 2,000 images, 1,000 and 200 per class', () => {
    const ds = loadFashionMnist({ dir: shipped });
    assert.equal(ds.source, shipped);
    assert.equal(ds.shipped, true);
    assert.deepEqual(ds.classes, FASHION_MNIST_CLASSES);
    assert.equal(ds.classes[9], 'Ankle boot');
    assert.equal(ds.train.length, 10000);
    assert.equal(ds.train.images.length, 10000 * 784);
    assert.equal(ds.train.labels.length, 10000);
    assert.deepEqual(classCounts(ds.train.labels), new Array(10).fill(1000));
    assert.equal(ds.test.length, 2000);
    assert.equal(ds.test.images.length, 2000 * 784);
    assert.deepEqual(classCounts(ds.test.labels), new Array(10).fill(200));
    // Real pictures: mostly dark background with bright pixels, not a blank or constant buffer.
    let sum = 0;
    let max = 0;
    for (const p of ds.test.images) {
      sum += p;
      max = Math.max(max, p);
    }
    const mean = sum / ds.test.images.length;
    assert.equal(max, 255);
    assert.ok(mean > 50 && mean < 100, `mean pixel ${mean}`); // Fashion-MNIST's mean is about 73
    // Classes stay interleaved (original order kept), so the first 100 labels hold several classes.
    assert.ok(new Set(ds.train.labels.subarray(0, 100)).size >= 8);
  });

  it('loads one split when asked', () => {
    const ds = loadFashionMnist({ dir: shipped, split: 'test' });
    assert.equal(ds.test.length, 2000);
    assert.equal('train' in ds, false);
  });

  it('is the last resort on the search path', () => {
    const empty = mkdtempSync(join(tmpdir(), 'fmnist-empty-'));
    assert.equal(findFashionMnist({ searchPath: ['/no/such/dir', empty, shipped] }), shipped);
  });
});

describe('Fashion-MNIST search', () => {
  it('orders MINIBATCH_DATA, then Debian, then the shipped subset', () => {
    assert.deepEqual(fashionMnistSearchPath({ MINIBATCH_DATA: '/data' }), [
      '/data/fashion-mnist',
      '/data',
      '/usr/share/datasets/fashion-mnist',
      shipped,
    ]);
    assert.deepEqual(fashionMnistSearchPath({}), [FASHION_MNIST_SYSTEM_DIR, shipped]);
  });

  it('uses $MINIBATCH_DATA/fashion-mnist before anything else', () => {
    const root = mkdtempSync(join(tmpdir(), 'fmnist-root-'));
    const dir = join(root, 'fashion-mnist');
    mkdirSync(dir);
    for (const name of NAMES) {
      const shape = name.includes('images') ? [3, 28, 28] : [3];
      const data = new Uint8Array(shape.reduce((a, b) => a * b));
      writeFileSync(join(dir, `${name}.gz`), gzipSync(encodeIdx(shape, data)));
    }
    const ds = loadFashionMnist({ searchPath: fashionMnistSearchPath({ MINIBATCH_DATA: root }) });
    assert.equal(ds.source, dir);
    assert.equal(ds.shipped, false);
    assert.equal(ds.train.length, 3);
  });

  it('uses Debian files when installed', (t) => {
    if (!existsSync(FASHION_MNIST_SYSTEM_DIR)) return t.skip(`${FASHION_MNIST_SYSTEM_DIR} not installed`);
    const ds = loadFashionMnist({ split: 'test', searchPath: fashionMnistSearchPath({}) });
    assert.equal(ds.source, FASHION_MNIST_SYSTEM_DIR);
    assert.equal(ds.shipped, false);
    assert.equal(ds.test.length, 10000);
    assert.deepEqual(classCounts(ds.test.labels), new Array(10).fill(1000));
  });

  it('reads raw files with pixels and labels in place', () => {
    const dir = fakeDir(12);
    const { train } = loadFashionMnist({ dir, split: 'train' });
    assert.deepEqual([...train.labels], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]);
    assert.equal(train.images[7 * 784], 7);
    assert.equal(train.images[7 * 784 + 783], 7);
    assert.equal(train.images[8 * 784], 8);
  });
});

describe('Fashion-MNIST errors', () => {
  it('rejects a named directory that does not exist', () => {
    assert.throws(() => loadFashionMnist({ dir: '/no/such/dir' }), {
      name: 'ValueError',
      message: 'fashion-mnist: directory /no/such/dir does not exist',
    });
  });

  it('names the files a named directory lacks', () => {
    const empty = mkdtempSync(join(tmpdir(), 'fmnist-empty-'));
    assert.throws(() => loadFashionMnist({ dir: empty }), {
      name: 'ValueError',
      message: `fashion-mnist: directory ${empty} lacks ${NAMES.join(', ')} (each optionally .gz; expected all of ${NAMES.join(', ')})`,
    });
  });

  it('stops at a half-filled directory on the search path instead of falling back', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fmnist-half-'));
    writeFileSync(
      join(dir, 'train-images-idx3-ubyte.gz'),
      gzipSync(encodeIdx([0, 28, 28], new Uint8Array(0))),
    );
    writeFileSync(join(dir, 'train-labels-idx1-ubyte.gz'), gzipSync(encodeIdx([0], new Uint8Array(0))));
    assert.throws(
      () => findFashionMnist({ searchPath: [dir, shipped] }),
      (e: unknown) => {
        assert.ok(e instanceof ValueError);
        assert.match(e.message, /lacks t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte \(/);
        return true;
      },
    );
  });

  it('says where it searched when nothing is found', () => {
    assert.throws(() => findFashionMnist({ searchPath: ['/nope/a', '/nope/b'] }), {
      message:
        `fashion-mnist: no Fashion-MNIST files found (searched /nope/a, /nope/b; expected ${NAMES.join(', ')}, ` +
        'each optionally .gz)',
    });
  });

  it('passes on a corrupt file as a FormatError', () => {
    const dir = fakeDir();
    const file = join(dir, 't10k-labels-idx1-ubyte');
    writeFileSync(file, encodeIdx([4], new Uint8Array(4)).subarray(0, 10));
    assert.throws(() => loadFashionMnist({ dir, split: 'test' }), {
      name: 'FormatError',
      message: `idx: ${file}: truncated: header says 4 = 4 bytes, file has 2`,
    });
  });

  it('rejects images that are not 28x28', () => {
    const dir = fakeDir();
    const file = join(dir, 'train-images-idx3-ubyte');
    writeFileSync(file, encodeIdx([4, 28, 27], new Uint8Array(4 * 28 * 27)));
    assert.throws(
      () => loadFashionMnist({ dir, split: 'train' }),
      (e: unknown) => {
        assert.ok(e instanceof FormatError);
        assert.equal(e.file, file);
        assert.equal(
          e.message,
          `fashion-mnist: ${file}: expected ubyte images [N,28,28] (got Uint8Array [4,28,27])`,
        );
        return true;
      },
    );
  });

  it('rejects a count mismatch between images and labels', () => {
    const dir = fakeDir();
    writeFileSync(join(dir, 't10k-labels-idx1-ubyte'), encodeIdx([3], new Uint8Array(3)));
    assert.throws(() => loadFashionMnist({ dir, split: 'test' }), {
      message: `fashion-mnist: ${join(dir, 't10k-images-idx3-ubyte')}: has 4 images but ${join(dir, 't10k-labels-idx1-ubyte')} has 3 labels`,
    });
  });

  it('rejects labels outside 0..9', () => {
    const dir = fakeDir(4, Uint8Array.of(1, 2, 10, 3));
    assert.throws(() => loadFashionMnist({ dir, split: 'train' }), {
      message: `fashion-mnist: ${join(dir, 'train-labels-idx1-ubyte')}: label 10 at index 2 (expected 0..9)`,
    });
    const first = fakeDir(2, Uint8Array.of(255, 0));
    assert.throws(() => loadFashionMnist({ dir: first, split: 'test' }), {
      message: `fashion-mnist: ${join(first, 't10k-labels-idx1-ubyte')}: label 255 at index 0 (expected 0..9)`,
    });
  });
});
