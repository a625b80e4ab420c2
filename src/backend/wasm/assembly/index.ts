// Entry point of the WebAssembly kernels (see gemm.ts and elementwise.ts for shape legends).
// Memory is imported and owned by the JS side (runtime.ts): kernels never allocate, they read and write
// the pointers they are given, so the same module can run on several threads over one shared memory.

export {
  binary,
  binaryRow,
  binaryScalar,
  clamp,
  exp,
  fill,
  reduceCols,
  reduceRows,
  relu,
  reluBackward,
  scale64,
  softmaxCrossEntropy,
  softmaxCrossEntropyBackward,
  softmaxRows,
  sumAxis0,
  sumAxis1,
  unary,
} from './elementwise';
export { attnBackwardKV, attnBackwardQ, attnForward, attnScratchBytes } from './attention';
export { argReduceRows, compare, select } from './compare';
export { gemmPackedBytes, gemmPacks, gemmPrepack, gemmScratchBytes, sgemm } from './gemm';
export { bnBackward, bnForward, col2im, im2col } from './layers';
export { erf, pow, scatterAdd } from './math';
export { adagradUpdate, adamUpdate, rmspropUpdate, sgdUpdate } from './optim';

/** First byte the JS allocator may hand out: everything below belongs to the module's static data. */
export function heapBase(): usize {
  return __heap_base;
}
