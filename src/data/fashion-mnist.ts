/**
 * Fashion-MNIST (Zalando, MIT licence): 28×28 greyscale images of clothes in 10 classes, 60,000 for training
 * and 10,000 for testing, in the same IDX files as MNIST.
 *
 * Where the files come from, first match wins:
 *   1. `dir`, when the caller names one (it must hold all four files);
 *   2. `$MINIBATCH_DATA/fashion-mnist`, then `$MINIBATCH_DATA` itself;
 *   3. `/usr/share/datasets/fashion-mnist` (Debian: `apt-get install dataset-fashion-mnist`);
 *   4. the subset shipped in the package, `data/fashion-mnist/` (1,000 training and 200 test images per class,
 *      made by `scripts/make-fashion-subset.mjs`), so examples run offline.
 * A searched directory with none of the files is skipped; one with only some of them is an error, because
 * that is a broken download the user would want to hear about rather than silently train on the subset.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkOptions, FormatError, fmtShape, ValueError } from '../errors.js';
import { readIdx } from './idx.js';

/** Class names by label, from the Fashion-MNIST README. */
export const FASHION_MNIST_CLASSES: readonly string[] = Object.freeze([
  'T-shirt/top',
  'Trouser',
  'Pullover',
  'Dress',
  'Coat',
  'Sandal',
  'Shirt',
  'Sneaker',
  'Bag',
  'Ankle boot',
]);

/** Debian's `dataset-fashion-mnist` package installs the four gzipped files here. */
export const FASHION_MNIST_SYSTEM_DIR = '/usr/share/datasets/fashion-mnist';

export type FashionMnistSplitName = 'train' | 'test';

const FILES: Record<FashionMnistSplitName, { images: string; labels: string }> = {
  train: { images: 'train-images-idx3-ubyte', labels: 'train-labels-idx1-ubyte' },
  test: { images: 't10k-images-idx3-ubyte', labels: 't10k-labels-idx1-ubyte' },
};
const FILE_NAMES = Object.values(FILES).flatMap((f) => [f.images, f.labels]);

/** One split: `images` is N×784 bytes (row-major 28×28 per image, 0 = background), `labels` N bytes in 0..9. */
export interface FashionMnistSplit {
  images: Uint8Array;
  labels: Uint8Array;
  length: number;
}

/** The loaded splits plus where they came from. `shipped` is true for the small subset inside the package. */
export type FashionMnist<S extends FashionMnistSplitName = FashionMnistSplitName> = Record<
  S,
  FashionMnistSplit
> & {
  source: string;
  shipped: boolean;
  classes: readonly string[];
};

export interface FashionMnistOptions<S extends FashionMnistSplitName> {
  /** A directory holding the four files (gzipped or raw); an error if it does not. */
  dir?: string;
  /** Load only this split; both when left out. */
  split?: S;
  /** Where to look when `dir` is not given; `fashionMnistSearchPath()` by default. */
  searchPath?: readonly string[];
}

/**
 * Load Fashion-MNIST from the first directory that has it (see the module comment for the order).
 *
 * @throws ValueError when `dir` is missing or lacks files, or a searched directory has only some of them
 * @throws FormatError when a file is corrupt or its shape is not Fashion-MNIST's
 * @example
 * const { train, test, source } = loadFashionMnist();
 * train.images.length === train.length * 784; // true
 * const { test: t } = loadFashionMnist({ split: 'test' });
 */
export function loadFashionMnist<S extends FashionMnistSplitName = FashionMnistSplitName>(
  options: FashionMnistOptions<S> = {},
): FashionMnist<S> {
  checkOptions('loadFashionMnist', options, ['dir', 'split', 'searchPath']);
  const source = findFashionMnist({ dir: options.dir, searchPath: options.searchPath });
  const splits = (options.split === undefined ? ['train', 'test'] : [options.split]) as S[];
  const result = {
    source,
    shipped: source === shippedFashionMnistDir(),
    classes: FASHION_MNIST_CLASSES,
  } as FashionMnist<S>;
  for (const split of splits) (result as Record<S, FashionMnistSplit>)[split] = readSplit(source, split);
  return result;
}

/**
 * The directory `loadFashionMnist` would read: `dir` if given (checked), else the first complete directory
 * on the search path.
 *
 * @example
 * findFashionMnist(); // '/usr/share/datasets/fashion-mnist' when Debian's package is installed
 */
export function findFashionMnist(options: { dir?: string; searchPath?: readonly string[] } = {}): string {
  checkOptions('findFashionMnist', options, ['dir', 'searchPath']);
  if (options.dir !== undefined) {
    if (!existsSync(options.dir)) {
      throw new ValueError('fashion-mnist', `directory ${options.dir} does not exist`);
    }
    if (!statSync(options.dir).isDirectory())
      throw new ValueError('fashion-mnist', `${options.dir} is a file, not a directory of IDX files`);
    const missing = missingFiles(options.dir);
    if (missing.length > 0) throw lacks(options.dir, missing);
    return options.dir;
  }
  const searchPath = options.searchPath ?? fashionMnistSearchPath();
  for (const dir of searchPath) {
    const missing = missingFiles(dir);
    if (missing.length === 0) return dir;
    if (missing.length < FILE_NAMES.length) throw lacks(dir, missing);
  }
  throw new ValueError(
    'fashion-mnist',
    `no Fashion-MNIST files found (searched ${searchPath.join(', ')}; expected ${FILE_NAMES.join(', ')}, ` +
      'each optionally .gz)',
  );
}

/**
 * The directories searched when no `dir` is given, in order.
 *
 * @example
 * fashionMnistSearchPath({ MINIBATCH_DATA: '/data' });
 * // ['/data/fashion-mnist', '/data', '/usr/share/datasets/fashion-mnist', '<package>/data/fashion-mnist']
 */
export function fashionMnistSearchPath(env: Record<string, string | undefined> = process.env): string[] {
  const root = env.MINIBATCH_DATA;
  const shipped = shippedFashionMnistDir();
  return [
    ...(root ? [join(root, 'fashion-mnist'), root] : []),
    FASHION_MNIST_SYSTEM_DIR,
    ...(shipped ? [shipped] : []),
  ];
}

let packageRoot: string | null | undefined;

/**
 * The subset shipped inside the package. Compiled code sits at different depths (`dist/data/` when
 * installed, `build/src/data/` in tests), so walk up to the `package.json` named `minibatch`. Undefined
 * when there is none, e.g. when minibatch has been bundled into another file.
 *
 * @example
 * shippedFashionMnistDir(); // '/home/me/app/node_modules/minibatch/data/fashion-mnist'
 */
export function shippedFashionMnistDir(): string | undefined {
  if (packageRoot === undefined) {
    packageRoot = null;
    for (let dir = dirname(fileURLToPath(import.meta.url)); dirname(dir) !== dir; dir = dirname(dir)) {
      const pkg = join(dir, 'package.json');
      if (
        existsSync(pkg) &&
        (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: unknown }).name === 'minibatch'
      ) {
        packageRoot = dir;
        break;
      }
    }
  }
  return packageRoot === null ? undefined : join(packageRoot, 'data', 'fashion-mnist');
}

/** The file for `name` in `dir`, preferring the gzipped one; undefined when neither exists. */
function locate(dir: string, name: string): string | undefined {
  return [`${name}.gz`, name].map((f) => join(dir, f)).find((p) => existsSync(p));
}

function missingFiles(dir: string): string[] {
  return FILE_NAMES.filter((name) => locate(dir, name) === undefined);
}

function lacks(dir: string, missing: string[]): ValueError {
  return new ValueError(
    'fashion-mnist',
    `directory ${dir} lacks ${missing.join(', ')} (each optionally .gz; expected all of ${FILE_NAMES.join(', ')})`,
  );
}

function readSplit(dir: string, split: FashionMnistSplitName): FashionMnistSplit {
  const imagesFile = locate(dir, FILES[split].images)!;
  const labelsFile = locate(dir, FILES[split].labels)!;
  const images = readIdx(imagesFile);
  const labels = readIdx(labelsFile);
  const n = labels.shape[0]!;
  if (!(labels.data instanceof Uint8Array) || labels.shape.length !== 1) {
    throw new FormatError(
      'fashion-mnist',
      labelsFile,
      `expected ubyte labels [N] (got ${fmtShape(labels.shape)})`,
    );
  }
  const [count, h, w] = images.shape;
  if (!(images.data instanceof Uint8Array) || images.shape.length !== 3 || h !== 28 || w !== 28) {
    throw new FormatError(
      'fashion-mnist',
      imagesFile,
      `expected ubyte images [N,28,28] (got ${images.data.constructor.name} ${fmtShape(images.shape)})`,
    );
  }
  if (count !== n) {
    throw new FormatError(
      'fashion-mnist',
      imagesFile,
      `has ${count} images but ${labelsFile} has ${n} labels`,
    );
  }
  const bad = labels.data.findIndex((l) => l >= FASHION_MNIST_CLASSES.length);
  if (bad >= 0) {
    throw new FormatError(
      'fashion-mnist',
      labelsFile,
      `label ${labels.data[bad]} at index ${bad} (expected 0..9)`,
    );
  }
  return { images: images.data, labels: labels.data, length: n };
}
