/**
 * minibatch: fast mini-batch deep learning for Node.js and the browser.
 *
 * @example
 * import * as mb from 'minibatch';
 * const x = mb.randn([32, 784]);            // a batch: (N, D)
 * const w = mb.randn([784, 10], { requiresGrad: true });
 * const loss = x.matmul(w).logSoftmax(-1).mean().neg();
 * loss.backward();                            // w.grad: (784, 10)
 */
// Everything a browser can use (src/browser.ts), plus what needs Node's file system.
export * from './browser.js';
export { FashionMnistDataset, type FashionMnistDatasetOptions } from './data/fashion-dataset.js';
export * from './data/fashion-mnist.js';
export { decodeIdx, encodeIdx, type IdxArray, readIdx } from './data/idx.js';
export { atomicWriteFile, atomicWriteFileSync } from './io/atomic.js';
