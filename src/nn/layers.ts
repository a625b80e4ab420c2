/**
 * nn modules: tiny classes whose forward is one functional call. Parameter layouts, initialisation and
 * state-dict names are PyTorch's, so weights move between the two unchanged.
 */
import { checkOptions, fmtShape, kindOf, optionKeys, StateError, ValueError } from '../errors.js';
import { ones, randn, uniform, zeros } from '../tensor/creation.js';
import { defaultGenerator, type Generator } from '../tensor/random.js';
import type { Tensor } from '../tensor/tensor.js';
import * as F from './functional.js';
import { Module } from './module.js';

/** U(-1/√fanIn, 1/√fanIn): what PyTorch's kaiming_uniform_(a=√5) and its bias init reduce to. */
function initUniform(shape: number[], fanIn: number, generator: Generator): Tensor {
  const bound = fanIn > 0 ? 1 / Math.sqrt(fanIn) : 0;
  return uniform(shape, -bound, bound, { generator });
}

/** A number as Python's repr prints it (1e-05, 0.1), so reprs read like PyTorch's. */
function py(x: number): string {
  if (x === 0 || Math.abs(x) >= 1e-4) return String(x);
  const [m, e] = x.toExponential().split('e') as [string, string];
  return `${m}e${e[0]}${e.slice(1).padStart(2, '0')}`;
}

function positiveInt(op: string, name: string, v: number): void {
  if (!Number.isInteger(v) || v <= 0)
    throw new ValueError(op, `${name} must be a positive integer, got ${v}`);
}

function nonNegativeInt(op: string, name: string, v: number): void {
  if (!Number.isInteger(v) || v < 0)
    throw new ValueError(op, `${name} must be a non-negative integer, got ${v}`);
}

export interface InitOptions {
  bias?: boolean;
  /** Generator for the initial weights (the default generator otherwise; `manualSeed` re-seeds it). */
  generator?: Generator;
}
const INIT_OPTIONS = optionKeys<InitOptions>()(['bias', 'generator']);

/** y = x·Wᵀ + b. weight: (out, in), bias: (out). (N, in) -> (N, out). */
export class Linear extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor | null;
  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    options: InitOptions = {},
  ) {
    super();
    checkOptions('Linear', options, INIT_OPTIONS);
    const { bias = true, generator = defaultGenerator } = options;
    positiveInt('Linear', 'in_features', inFeatures);
    positiveInt('Linear', 'out_features', outFeatures);
    this.weight = this.registerParameter(
      'weight',
      initUniform([outFeatures, inFeatures], inFeatures, generator),
    );
    this.bias = this.registerParameter(
      'bias',
      bias ? initUniform([outFeatures], inFeatures, generator) : null,
    );
  }
  forward(x: Tensor): Tensor {
    return F.linear(x, this.weight, this.bias);
  }
  /** relu(forward(x)) as one fused op (Sequential uses it for Linear followed by ReLU). */
  forwardRelu(x: Tensor): Tensor {
    return F.linear(x, this.weight, this.bias, { relu: true });
  }
  override extraRepr(): string {
    return `in_features=${this.inFeatures}, out_features=${this.outFeatures}, bias=${this.bias ? 'True' : 'False'}`;
  }
}

/** A list of modules registered under their indices ("0", "1", ...): what Sequential and ModuleList share. */
abstract class ModuleSequence extends Module implements Iterable<Module> {
  private readonly list: Module[] = [];
  /** What the error messages call the entries. */
  protected abstract readonly noun: string;
  constructor(modules: Iterable<Module>) {
    super();
    for (const m of modules) this.append(m);
  }
  /** The modules in order (read it; add with `append`, which registers the module's parameters). */
  get layers(): readonly Module[] {
    return this.list;
  }
  get length(): number {
    return this.list.length;
  }
  /** The module at `i` (negative counts from the end, like `seq[-1]`). */
  at(i: number): Module {
    const m = Number.isInteger(i) ? this.list.at(i) : undefined;
    if (!m)
      throw new ValueError(
        this.constructor.name,
        `index ${i} is out of range for ${this.list.length} ${this.noun}`,
      );
    return m;
  }
  append(m: Module): this {
    if (!(m instanceof Module))
      throw new ValueError(
        this.constructor.name,
        `expected a Module, got ${typeof m === 'function' ? 'a function' : typeof m}`,
      );
    this.registerModule(String(this.list.length), m);
    this.list.push(m);
    return this;
  }
  [Symbol.iterator](): Iterator<Module> {
    return this.list[Symbol.iterator]();
  }
}

/** Modules applied in order; children are named "0", "1", ... as in PyTorch. */
export class Sequential extends ModuleSequence {
  protected readonly noun = 'layers';
  constructor(...layers: Module[]) {
    super(layers);
  }
  forward(x: Tensor): Tensor {
    let y = x;
    const layers = this.layers;
    for (let i = 0; i < layers.length; i++) {
      const m = layers[i]!;
      // A plain Linear or BatchNorm followed by a plain ReLU runs as one fused op: the ReLU rides in the
      // GEMM's epilogue or the BatchNorm kernels' last pass.
      const fuses =
        m.constructor === Linear || m.constructor === BatchNorm1d || m.constructor === BatchNorm2d;
      if (fuses && layers[i + 1]?.constructor === ReLU) {
        y = (m as Linear | BatchNormBase).forwardRelu(y);
        i++;
      } else {
        y = m.forward(y);
      }
    }
    return y;
  }
}

export class ReLU extends Module {
  forward(x: Tensor): Tensor {
    return F.relu(x);
  }
}
export class Sigmoid extends Module {
  forward(x: Tensor): Tensor {
    return F.sigmoid(x);
  }
}
export class Tanh extends Module {
  forward(x: Tensor): Tensor {
    return F.tanh(x);
  }
}
/** GELU, exact (erf) by default; `{ approximate: 'tanh' }` for the tanh form, as PyTorch's. */
export class GELU extends Module {
  readonly approximate: 'none' | 'tanh';
  constructor(options: { approximate?: 'none' | 'tanh' } = {}) {
    super();
    checkOptions('GELU', options, ['approximate']);
    const { approximate = 'none' } = options;
    if (approximate !== 'none' && approximate !== 'tanh')
      throw new ValueError('GELU', `approximate must be 'none' or 'tanh' (got ${String(approximate)})`);
    this.approximate = approximate;
  }
  forward(x: Tensor): Tensor {
    return F.gelu(x, { approximate: this.approximate });
  }
  override extraRepr(): string {
    return this.approximate === 'tanh' ? "approximate='tanh'" : '';
  }
}
/**
 * `nn.Softmax(dim)`. NOTE: dim defaults to -1, the class dim of (N, C) and the last dim of anything else;
 * PyTorch's `nn.Softmax()` without a dim (deprecated, with a warning) takes dim 0 for 1-D and 3-D inputs and 1
 * for 2-D and 4-D: give the dim when porting such code.
 */
export class Softmax extends Module {
  constructor(readonly dim = -1) {
    super();
  }
  forward(x: Tensor): Tensor {
    return F.softmax(x, this.dim);
  }
  override extraRepr(): string {
    return `dim=${this.dim}`;
  }
}
/** `nn.LogSoftmax(dim)`; dim defaults to -1 (see Softmax). */
export class LogSoftmax extends Module {
  constructor(readonly dim = -1) {
    super();
  }
  forward(x: Tensor): Tensor {
    return F.logSoftmax(x, this.dim);
  }
  override extraRepr(): string {
    return `dim=${this.dim}`;
  }
}

/** (N, C, H, W) -> (N, C·H·W) by default (dims startDim..endDim merged). */
export class Flatten extends Module {
  constructor(
    readonly startDim = 1,
    readonly endDim = -1,
  ) {
    super();
  }
  forward(x: Tensor): Tensor {
    return x.flatten(this.startDim, this.endDim);
  }
  override extraRepr(): string {
    return `start_dim=${this.startDim}, end_dim=${this.endDim}`;
  }
}

/** Inverted dropout with probability p (default 0.5), seeded; identity in eval mode. */
export class Dropout extends Module {
  constructor(
    readonly p = 0.5,
    readonly generator: Generator = defaultGenerator,
  ) {
    super();
    // Duck-typed, not instanceof: a Generator from another copy of the library (two bundles) is still one.
    if (typeof (generator as Partial<Generator> | null)?.uniform !== 'function')
      throw new ValueError(
        'Dropout',
        `generator must be a Generator (got ${typeof generator}); Dropout(p, generator)`,
      );
    if (!(p >= 0 && p <= 1))
      throw new ValueError('Dropout', `dropout probability has to be between 0 and 1, but got ${p}`);
  }
  forward(x: Tensor): Tensor {
    return F.dropout(x, this.p, this.training, this.generator);
  }
  override extraRepr(): string {
    return `p=${this.p}, inplace=False`;
  }
}

export interface BatchNormOptions {
  eps?: number;
  /** PyTorch's default 0.1; null for a cumulative moving average. */
  momentum?: number | null;
  affine?: boolean;
  trackRunningStats?: boolean;
}
const BATCH_NORM_OPTIONS = optionKeys<BatchNormOptions>()(['eps', 'momentum', 'affine', 'trackRunningStats']);

/** Shared by BatchNorm1d/2d; `ranks` are the input ranks each accepts. */
abstract class BatchNormBase extends Module {
  readonly weight: Tensor | null;
  readonly bias: Tensor | null;
  readonly runningMean: Tensor | null;
  readonly runningVar: Tensor | null;
  readonly numBatchesTracked: Tensor | null;
  readonly eps: number;
  readonly momentum: number | null;
  protected abstract readonly ranks: number[];

  constructor(
    readonly numFeatures: number,
    options: BatchNormOptions = {},
  ) {
    super();
    checkOptions(new.target.name, options, BATCH_NORM_OPTIONS);
    const { eps = 1e-5, momentum = 0.1, affine = true, trackRunningStats = true } = options;
    positiveInt(new.target.name, 'num_features', numFeatures);
    this.eps = eps;
    this.momentum = momentum;
    this.weight = this.registerParameter('weight', affine ? ones([numFeatures]) : null);
    this.bias = this.registerParameter('bias', affine ? zeros([numFeatures]) : null);
    this.runningMean = trackRunningStats ? this.registerBuffer('running_mean', zeros([numFeatures])) : null;
    this.runningVar = trackRunningStats ? this.registerBuffer('running_var', ones([numFeatures])) : null;
    // int64 in PyTorch; int32 here, written as I64 by save().
    this.numBatchesTracked = trackRunningStats
      ? this.registerBuffer('num_batches_tracked', zeros([], { dtype: 'int32' }))
      : null;
  }

  forward(x: Tensor): Tensor {
    return this.normalize(x, false);
  }
  /** relu(forward(x)) as one fused op (Sequential uses it for BatchNorm followed by ReLU). */
  forwardRelu(x: Tensor): Tensor {
    return this.normalize(x, true);
  }

  private normalize(x: Tensor, relu: boolean): Tensor {
    if (!this.ranks.includes(x.rank)) {
      throw new ValueError(
        this.constructor.name,
        `expected ${this.ranks.map((r) => `${r}D`).join(' or ')} input (got ${x.rank}D input ${fmtShape(x.shape)})`,
      );
    }
    return F.batchNorm(x, {
      runningMean: this.runningMean,
      runningVar: this.runningVar,
      weight: this.weight,
      bias: this.bias,
      training: this.training || !this.runningMean,
      momentum: this.momentum,
      eps: this.eps,
      numBatchesTracked: this.training ? this.numBatchesTracked : null,
      relu,
    });
  }

  override extraRepr(): string {
    return `${this.numFeatures}, eps=${py(this.eps)}, momentum=${this.momentum ?? 'None'}, affine=${this.weight ? 'True' : 'False'}, track_running_stats=${this.runningMean ? 'True' : 'False'}`;
  }
}

/** BatchNorm over (N, C) or (N, C, L): statistics per channel C. */
export class BatchNorm1d extends BatchNormBase {
  protected readonly ranks = [2, 3];
}

/** BatchNorm over images (N, C, H, W): statistics per channel C. */
export class BatchNorm2d extends BatchNormBase {
  protected readonly ranks = [4];
}

/** Normalise over the trailing `normalizedShape` dims, with an elementwise affine (weight 1, bias 0). */
export class LayerNorm extends Module {
  readonly normalizedShape: number[];
  readonly weight: Tensor | null;
  readonly bias: Tensor | null;
  constructor(
    normalizedShape: number | number[],
    readonly eps = 1e-5,
    elementwiseAffine = true,
  ) {
    super();
    if (typeof eps !== 'number' || typeof elementwiseAffine !== 'boolean')
      throw new ValueError(
        'LayerNorm',
        `expected LayerNorm(normalizedShape, eps: number, elementwiseAffine: boolean) (got eps ${typeof eps}, elementwiseAffine ${typeof elementwiseAffine})`,
      );
    this.normalizedShape = typeof normalizedShape === 'number' ? [normalizedShape] : normalizedShape;
    this.weight = this.registerParameter('weight', elementwiseAffine ? ones(this.normalizedShape) : null);
    this.bias = this.registerParameter('bias', elementwiseAffine ? zeros(this.normalizedShape) : null);
  }
  forward(x: Tensor): Tensor {
    return F.layerNorm(x, this.normalizedShape, this.weight, this.bias, this.eps);
  }
  override extraRepr(): string {
    return `(${this.normalizedShape.join(', ')},), eps=${py(this.eps)}, elementwise_affine=${this.weight ? 'True' : 'False'}`;
  }
}

type Conv2dOptions = InitOptions & {
  stride?: F.Size2;
  /** A size, `'valid'` (no padding) or `'same'` (the input's H×W out; stride 1 only). */
  padding?: F.Size2 | 'same' | 'valid';
  dilation?: F.Size2;
  /** Channels split into this many groups convolved separately (groups = in_channels: depthwise). */
  groups?: number;
};
// PyTorch's padding_mode (other than zeros), device and dtype are refused, not ignored.
const CONV2D_OPTIONS = optionKeys<Conv2dOptions>()([
  'bias',
  'generator',
  'stride',
  'padding',
  'dilation',
  'groups',
]);

/**
 * `nn.Conv2d` on NCHW images: see functional `conv2d`. weight: (Cout, Cin/groups, kh, kw), bias: (Cout), both
 * U(-1/√fan_in, 1/√fan_in) with fan_in = Cin/groups·kh·kw, as PyTorch.
 */
export class Conv2d extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor | null;
  readonly kernelSize: [number, number];
  readonly stride: [number, number];
  readonly padding: [number, number] | 'same' | 'valid';
  readonly dilation: [number, number];
  readonly groups: number;
  constructor(
    readonly inChannels: number,
    readonly outChannels: number,
    kernelSize: F.Size2,
    opts: Conv2dOptions = {},
  ) {
    super();
    const op = 'Conv2d';
    const {
      stride = 1,
      padding = 0,
      dilation = 1,
      groups = 1,
      bias = true,
      generator = defaultGenerator,
    } = opts;
    checkOptions(op, opts, CONV2D_OPTIONS);
    positiveInt(op, 'in_channels', inChannels);
    positiveInt(op, 'out_channels', outChannels);
    positiveInt(op, 'groups', groups);
    if (inChannels % groups !== 0 || outChannels % groups !== 0)
      throw new ValueError(
        op,
        `in_channels (${inChannels}) and out_channels (${outChannels}) must be divisible by groups (${groups})`,
      );
    this.kernelSize = F.pair(op, 'kernel_size', kernelSize, 1);
    this.stride = F.pair(op, 'stride', stride, 1);
    this.dilation = F.pair(op, 'dilation', dilation, 1);
    if (padding === 'same' || padding === 'valid') {
      if (padding === 'same' && (this.stride[0] !== 1 || this.stride[1] !== 1))
        throw new ValueError(op, "padding='same' is not supported for strided convolutions");
      this.padding = padding;
    } else if (typeof padding === 'string') {
      throw new ValueError(op, `padding must be a size, 'same' or 'valid', got '${padding}'`);
    } else {
      this.padding = F.pair(op, 'padding', padding, 0);
    }
    this.groups = groups;
    const [kh, kw] = this.kernelSize;
    const fanIn = (inChannels / groups) * kh * kw;
    this.weight = this.registerParameter(
      'weight',
      initUniform([outChannels, inChannels / groups, kh, kw], fanIn, generator),
    );
    this.bias = this.registerParameter('bias', bias ? initUniform([outChannels], fanIn, generator) : null);
  }
  forward(x: Tensor): Tensor {
    return F.conv2d(x, this.weight, this.bias, this.stride, this.padding, this.dilation, this.groups);
  }
  override extraRepr(): string {
    // PyTorch's: padding, dilation and groups only where not the default.
    const t = (p: readonly number[]) => `(${p.join(', ')})`;
    const pad = this.padding;
    return [
      `${this.inChannels}, ${this.outChannels}, kernel_size=${t(this.kernelSize)}, stride=${t(this.stride)}`,
      typeof pad === 'string' ? `padding=${pad}` : pad[0] || pad[1] ? `padding=${t(pad)}` : '',
      this.dilation[0] !== 1 || this.dilation[1] !== 1 ? `dilation=${t(this.dilation)}` : '',
      this.groups !== 1 ? `groups=${this.groups}` : '',
      this.bias ? '' : 'bias=False',
    ]
      .filter(Boolean)
      .join(', ');
  }
}

export interface MaxPool2dOptions {
  /** Spacing of the window's taps (default 1). */
  dilation?: F.Size2;
  /** Round the output size up instead of down (default false); a window must still start inside the input. */
  ceilMode?: boolean;
}

/** `nn.MaxPool2d`: see functional `maxPool2d`. stride defaults to the kernel size. */
export class MaxPool2d extends Module {
  readonly dilation: F.Size2;
  readonly ceilMode: boolean;
  constructor(
    readonly kernelSize: F.Size2,
    readonly stride: F.Size2 = kernelSize,
    readonly padding: F.Size2 = 0,
    opts: MaxPool2dOptions = {},
  ) {
    super();
    const op = 'MaxPool2d';
    checkOptions(op, opts, ['dilation', 'ceilMode']);
    const k = F.pair(op, 'kernel_size', kernelSize, 1);
    F.pair(op, 'stride', stride, 1);
    const p = F.pair(op, 'padding', padding, 0);
    for (const i of [0, 1]) {
      if (2 * p[i]! > k[i]!)
        throw new ValueError(
          op,
          `pad should be at most half of kernel size, but got pad=${p[i]} and kernel_size=${k[i]}`,
        );
    }
    this.dilation = opts.dilation ?? 1;
    F.pair(op, 'dilation', this.dilation, 1);
    this.ceilMode = opts.ceilMode ?? false;
    if (typeof this.ceilMode !== 'boolean')
      throw new ValueError(op, `ceil_mode must be a boolean, got ${kindOf(this.ceilMode)}`);
  }
  forward(x: Tensor): Tensor {
    return F.maxPool2d(x, this.kernelSize, this.stride, this.padding, this.dilation, this.ceilMode);
  }
  override extraRepr(): string {
    return `kernel_size=${fmtPair(this.kernelSize)}, stride=${fmtPair(this.stride)}, padding=${fmtPair(this.padding)}, dilation=${fmtPair(this.dilation)}, ceil_mode=${this.ceilMode ? 'True' : 'False'}`;
  }
}

/** `nn.AvgPool2d`: see functional `avgPool2d`. stride defaults to the kernel size. */
export class AvgPool2d extends Module {
  readonly ceilMode: boolean;
  readonly countIncludePad: boolean;
  constructor(
    readonly kernelSize: number | readonly [number, number],
    readonly stride: number | readonly [number, number] = kernelSize,
    readonly padding: number | readonly [number, number] = 0,
    opts: F.AvgPool2dOptions = {},
  ) {
    super();
    checkOptions('AvgPool2d', opts, ['ceilMode', 'countIncludePad']);
    const [k, s, p] = [pairOf(kernelSize), pairOf(stride), pairOf(padding)];
    for (const i of [0, 1]) {
      positiveInt('AvgPool2d', 'kernel_size', k[i]!);
      positiveInt('AvgPool2d', 'stride', s[i]!);
      nonNegativeInt('AvgPool2d', 'padding', p[i]!);
      if (2 * p[i]! > k[i]!) {
        throw new ValueError(
          'AvgPool2d',
          `pad should be at most half of kernel size, but got pad=${p[i]} and kernel_size=${k[i]}`,
        );
      }
    }
    this.ceilMode = opts.ceilMode ?? false;
    this.countIncludePad = opts.countIncludePad ?? true;
  }
  forward(x: Tensor): Tensor {
    return F.avgPool2d(x, this.kernelSize, this.stride, this.padding, {
      ceilMode: this.ceilMode,
      countIncludePad: this.countIncludePad,
    });
  }
  override extraRepr(): string {
    return `kernel_size=${fmtPair(this.kernelSize)}, stride=${fmtPair(this.stride)}, padding=${fmtPair(this.padding)}`;
  }
}

/** `nn.AdaptiveAvgPool2d`: see functional `adaptiveAvgPool2d`; `new AdaptiveAvgPool2d(1)` is global average pooling. */
export class AdaptiveAvgPool2d extends Module {
  constructor(readonly outputSize: number | readonly [number | null, number | null]) {
    super();
    const size = pairOf(outputSize);
    if (size.length !== 2)
      throw new ValueError(
        'AdaptiveAvgPool2d',
        `output_size must be a positive integer or a pair, got ${JSON.stringify(outputSize)}`,
      );
    for (const d of size) if (d !== null) positiveInt('AdaptiveAvgPool2d', 'output_size', d);
  }
  forward(x: Tensor): Tensor {
    return F.adaptiveAvgPool2d(x, this.outputSize);
  }
  override extraRepr(): string {
    return `output_size=${fmtPair(this.outputSize)}`;
  }
}

const pairOf = <T>(v: T | readonly T[]): readonly T[] => (Array.isArray(v) ? v : [v as T, v as T]);
// PyTorch prints a pair as a tuple and None for a kept dim.
const fmtPair = (v: number | readonly (number | null)[]) =>
  typeof v === 'number' ? String(v) : `(${v.map((d) => d ?? 'None').join(', ')})`;

export interface EmbeddingOptions {
  /** A row that gets no gradient and starts at zero (padding tokens); negative counts from the end. */
  paddingIdx?: number | null;
  /** Generator for the initial weights (N(0, 1), PyTorch's). */
  generator?: Generator;
}

/** A lookup table: int32 indices (...) -> their rows (..., embeddingDim). weight: (numEmbeddings, embeddingDim). */
export class Embedding extends Module {
  readonly weight: Tensor;
  readonly paddingIdx: number | null;
  constructor(
    readonly numEmbeddings: number,
    readonly embeddingDim: number,
    options: EmbeddingOptions = {},
  ) {
    super();
    checkOptions('Embedding', options, optionKeys<EmbeddingOptions>()(['paddingIdx', 'generator']));
    positiveInt('Embedding', 'num_embeddings', numEmbeddings);
    positiveInt('Embedding', 'embedding_dim', embeddingDim);
    const { paddingIdx = null, generator = defaultGenerator } = options;
    if (
      paddingIdx !== null &&
      !(Number.isInteger(paddingIdx) && paddingIdx >= -numEmbeddings && paddingIdx < numEmbeddings)
    )
      throw new ValueError(
        'Embedding',
        `padding_idx must be within num_embeddings (got ${paddingIdx} for ${numEmbeddings})`,
      );
    this.paddingIdx = paddingIdx === null ? null : paddingIdx < 0 ? paddingIdx + numEmbeddings : paddingIdx;
    const w = randn([numEmbeddings, embeddingDim], { generator });
    if (this.paddingIdx !== null) w.narrow(0, this.paddingIdx, 1).fill_(0);
    this.weight = this.registerParameter('weight', w);
  }
  forward(x: Tensor): Tensor {
    return F.embedding(x, this.weight, this.paddingIdx);
  }
  override extraRepr(): string {
    return `${this.numEmbeddings}, ${this.embeddingDim}${this.paddingIdx === null ? '' : `, padding_idx=${this.paddingIdx}`}`;
  }
}

/**
 * Modules held in a list and registered under their indices ("0", "1", ...), PyTorch's nn.ModuleList: for
 * a model that loops over its layers itself. Iterable; no forward of its own.
 * @example class Deep extends Module { blocks = new ModuleList([new Linear(8, 8), new Linear(8, 8)]); ... }
 */
export class ModuleList extends ModuleSequence {
  protected readonly noun = 'modules';
  constructor(modules: Iterable<Module> = []) {
    super(modules);
  }
  forward(): Tensor {
    throw new StateError('ModuleList', 'a ModuleList has no forward: iterate over it in your own forward');
  }
}

/** Passes its input through: a placeholder layer (PyTorch's nn.Identity). */
export class Identity extends Module {
  forward(x: Tensor): Tensor {
    return x;
  }
}

/** max(x, 0) + slope·min(x, 0) (PyTorch's default slope 0.01). */
export class LeakyReLU extends Module {
  constructor(readonly negativeSlope = 0.01) {
    super();
    if (typeof negativeSlope !== 'number' || !Number.isFinite(negativeSlope))
      throw new ValueError(
        'LeakyReLU',
        `negative_slope must be a finite number (got ${String(negativeSlope)})`,
      );
  }
  forward(x: Tensor): Tensor {
    return F.leakyRelu(x, this.negativeSlope);
  }
  override extraRepr(): string {
    return `negative_slope=${this.negativeSlope}`;
  }
}
