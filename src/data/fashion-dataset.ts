/**
 * Fashion-MNIST as a Dataset: images float32 in [0, 1] (pixel / 255, as torchvision's ToTensor), labels
 * int32. The bytes stay as loaded (47 MB for the full training set); a batch is scaled when it is read, so
 * each worker's copy costs the bytes, not four times as much.
 */
import { checkOptions, optionKeys, ValueError } from '../errors.js';
import { tensor } from '../tensor/creation.js';
import type { Tensor } from '../tensor/tensor.js';
import type { Dataset, ModuleSpec } from './dataset.js';
import { type FashionMnistSplitName, loadFashionMnist } from './fashion-mnist.js';

export interface FashionMnistDatasetOptions {
  /** Which split (default 'train'). */
  split?: FashionMnistSplitName;
  /** Images as (784) rows (default true) or (1, 28, 28). */
  flatten?: boolean;
  /** Where the files are; searched for as by `loadFashionMnist` when left out. */
  dir?: string;
  searchPath?: readonly string[];
}

/**
 * One split of Fashion-MNIST. A sample is `[image, label]`; a batch (`getItems`, what the DataLoader
 * reads) is `[images (N, 784) or (N, 1, 28, 28) float32, labels (N) int32]`. It carries a `spec`, so it
 * works with DataLoader workers as it is.
 *
 * @example
 * const train = new FashionMnistDataset({ split: 'train' });
 * const loader = new DataLoader(train, { batchSize: 128, shuffle: true, numWorkers: 2 });
 * for await (const [x, y] of loader) { ... } // x (128, 784), y (128)
 */
export class FashionMnistDataset implements Dataset<[Tensor, number], [Tensor, Tensor]> {
  /** N×784 bytes, row-major 28×28 per image. */
  readonly images: Uint8Array;
  readonly labels: Uint8Array;
  readonly length: number;
  /** The directory the files were read from. */
  readonly source: string;
  readonly spec: ModuleSpec;
  private readonly itemShape: number[];

  constructor(options: FashionMnistDatasetOptions = {}) {
    checkOptions(
      'FashionMnistDataset',
      options,
      optionKeys<FashionMnistDatasetOptions>()(['split', 'flatten', 'dir', 'searchPath']),
    );
    const { split = 'train', flatten = true, dir, searchPath } = options;
    const data = loadFashionMnist({ split, dir, searchPath });
    ({ images: this.images, labels: this.labels, length: this.length } = data[split]);
    this.source = data.source;
    this.itemShape = flatten ? [784] : [1, 28, 28];
    this.spec = { module: import.meta.url, export: 'FashionMnistDataset', args: [options] };
  }

  getItem(index: number): [Tensor, number] {
    const [x, y] = this.getItems(Int32Array.of(index));
    return [x.reshape(this.itemShape), y.item()];
  }

  getItems(indices: Int32Array): [Tensor, Tensor] {
    const x = new Float32Array(indices.length * 784);
    const y = new Int32Array(indices.length);
    indices.forEach((i, b) => {
      if (!(i >= 0 && i < this.length)) {
        throw new ValueError(
          'FashionMnistDataset',
          `index ${i} is out of range (expected [0, ${this.length}))`,
        );
      }
      for (let j = 0, src = i * 784, dst = b * 784; j < 784; j++) x[dst + j] = this.images[src + j]! / 255;
      y[b] = this.labels[i]!;
    });
    return [tensor(x, { shape: [indices.length, ...this.itemShape] }), tensor(y)];
  }
}
