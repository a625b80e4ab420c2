/**
 * The models the command line trains and profiles, for 28×28 greyscale images in 10 classes
 * (Fashion-MNIST). Inputs: (N, 784) for the MLPs, (N, 1, 28, 28) for the CNN.
 */
import { ValueError } from '../errors.js';
import { BatchNorm1d, Conv2d, Flatten, Linear, MaxPool2d, ReLU, Sequential } from '../nn/layers.js';
import type { Generator } from '../tensor/random.js';

export const MODEL_NAMES = ['mlp', 'mlp-bn', 'cnn'] as const;
export type ModelName = (typeof MODEL_NAMES)[number];

/** The input shape of one sample for a model: the CNN takes images, the MLPs flat vectors. */
export function sampleShape(name: ModelName): number[] {
  return name === 'cnn' ? [1, 28, 28] : [784];
}

/**
 * - mlp: 784-256-128-10 with ReLU (the bench model of the seed's section 8)
 * - mlp-bn: the same with BatchNorm1d after each hidden Linear
 * - cnn: conv(1→8, 3×3) ReLU maxpool, conv(8→16, 3×3) ReLU maxpool, linear 784→10
 */
export function buildModel(name: ModelName, generator?: Generator): Sequential {
  const g = generator ? { generator } : {};
  switch (name) {
    case 'mlp':
      return new Sequential(
        new Linear(784, 256, g),
        new ReLU(),
        new Linear(256, 128, g),
        new ReLU(),
        new Linear(128, 10, g),
      );
    case 'mlp-bn':
      return new Sequential(
        new Linear(784, 256, g),
        new BatchNorm1d(256),
        new ReLU(),
        new Linear(256, 128, g),
        new BatchNorm1d(128),
        new ReLU(),
        new Linear(128, 10, g),
      );
    case 'cnn':
      return new Sequential(
        new Conv2d(1, 8, 3, { padding: 1, ...g }),
        new ReLU(),
        new MaxPool2d(2),
        new Conv2d(8, 16, 3, { padding: 1, ...g }),
        new ReLU(),
        new MaxPool2d(2),
        new Flatten(),
        new Linear(16 * 7 * 7, 10, g),
      );
    default:
      throw new ValueError(
        'buildModel',
        `unknown model '${String(name)}' (expected one of ${MODEL_NAMES.join(', ')})`,
      );
  }
}
