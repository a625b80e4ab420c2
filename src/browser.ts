/**
 * minibatch for browsers (the package's "browser" export condition, also `minibatch/browser`): everything
 * but what needs Node's file system (the Fashion-MNIST and IDX file loaders, atomic file writes), which
 * index.ts adds; nothing here imports a node: module statically (test/browser-entry.test.ts checks).
 *
 * The wasm backend runs single-threaded in a page without SharedArrayBuffer, and on Web Workers in a
 * cross-origin isolated one (COOP same-origin + COEP require-corp); those start in the background, or
 * ahead of the first call with `await startWasmThreads()`.
 *
 * @example
 * import * as mb from 'minibatch'; // a bundler picks this file; or import 'minibatch/browser'
 * await mb.startWasmThreads(); // optional: threads from the first large call on
 * const y = mb.randn([256, 256]).matmul(mb.randn([256, 256]));
 */
import './backend/register.js';

export { isGradEnabled, noGrad, savedBytes } from './autograd/engine.js';
export { gradRules, type Primitive } from './autograd/grad.js';
export {
  type Backend,
  backendInfo,
  getBackend,
  type KernelTable,
  listBackends,
  registerBackend,
  setBackend,
  type View,
} from './backend/backend.js';
export { loadNative, nativeUnavailable } from './backend/native/backend.js';
export { startWasmThreads, wasmRuntime } from './backend/wasm/backend.js';
export {
  type CollateFn,
  type CollateKey,
  type CollateRule,
  defaultCollate,
  defaultCollateRules,
  makeCollate,
  padCollate,
  padSequences,
} from './data/collate.js';
export { DataLoader, type DataLoaderOptions, WorkerError } from './data/dataloader.js';
export {
  Dataset,
  type IterableDataset,
  type ModuleSpec,
  randomSplit,
  Subset,
  TensorDataset,
  type WorkerInfo,
  workerInfo,
} from './data/dataset.js';
export {
  BatchSampler,
  BucketBatchSampler,
  batchSizeSchedule,
  RandomSampler,
  type Sampler,
  SequentialSampler,
  SubsetRandomSampler,
  VariableBatchSampler,
  WeightedRandomSampler,
} from './data/sampler.js';
export * from './errors.js';
export { fromEntries, load, save, toEntries } from './io/checkpoint.js';
export * from './io/safetensors.js';
export {
  type AttentionImpl,
  type AttentionOptions,
  attentionProbabilities,
  scaledDotProductAttention,
  TILED_MIN_SCORES,
} from './nn/attention.js';
export * as functional from './nn/functional.js';
export * from './nn/layers.js';
export {
  binaryCrossEntropyWithLogits,
  crossEntropy,
  huberLoss,
  l1Loss,
  mseLoss,
  nllLoss,
  type Reduction,
  smoothL1Loss,
} from './nn/losses.js';
export { Module } from './nn/module.js';
export * from './nn/transformer.js';
export { Adagrad } from './optim/adagrad.js';
export { Adam, AdamW } from './optim/adam.js';
export { type ClipGradNormOptions, clipGradNorm, clipGradValue } from './optim/clip.js';
export { Optimizer, type OptimizerStateDict } from './optim/optimizer.js';
export { RMSprop } from './optim/rmsprop.js';
export * from './optim/schedules.js';
export { SGD } from './optim/sgd.js';
export { findBatchSize, profileBatchSizes, profileConvergence } from './profile/profile.js';
export { autocast, type Precision } from './tensor/autocast.js';
export * from './tensor/creation.js';
export type { DType, TypedArray } from './tensor/dtype.js';
export {
  argsort,
  cumsum,
  gather,
  type SortOptions,
  sort,
  type TopkOptions,
  topk,
  type ValuesIndices,
} from './tensor/indexing.js';
export {
  abs,
  add,
  argmax,
  argmin,
  cast,
  cat,
  clamp,
  contiguous,
  customOp,
  div,
  eq,
  erf,
  exp,
  expand,
  flatten,
  ge,
  gt,
  indexSelect,
  le,
  log,
  logSoftmax,
  logsumexp,
  lt,
  matmul,
  max,
  maximum,
  mean,
  min,
  minimum,
  mul,
  narrow,
  ne,
  neg,
  permute,
  pow,
  relu,
  reshape,
  select,
  sigmoid,
  sign,
  slice,
  softmax,
  sqrt,
  squeeze,
  stack,
  std,
  sub,
  sum,
  tanh,
  transpose,
  unsqueeze,
  variance,
  view,
  where,
} from './tensor/ops.js';
export { defaultGenerator, Generator, manualSeed } from './tensor/random.js';
export { Tensor } from './tensor/tensor.js';
export { loadCheckpoint, readCheckpointMeta, saveCheckpoint } from './train/checkpoint.js';
export {
  type BatchLog,
  type EarlyStopping,
  type EpochLog,
  evaluate,
  type FitCallbacks,
  type FitOptions,
  type FitResult,
  fit,
} from './train/fit.js';
export { GradScaler } from './train/grad-scaler.js';
export { buildModel, MODEL_NAMES, type ModelName } from './train/models.js';
