/**
 * Functional forms of the layers: each nn module's forward is one call to a function here.
 * Shape legend: N batch, D features, C channels or classes, L length, H×W image, k kernel size.
 */
import { recordedCompute } from '../autograd/engine.js';
import { type ConvGeometry, kernels } from '../backend/backend.js';
import { checkOptions, fmtShape, kindOf, optionKeys, ShapeError, ValueError } from '../errors.js';
import { autocastPrecision } from '../tensor/autocast.js';
import * as ops from '../tensor/ops.js';
import { defaultGenerator, type Generator } from '../tensor/random.js';
import { Tensor } from '../tensor/tensor.js';

export { logSoftmax, relu, sigmoid, softmax, tanh } from '../tensor/ops.js';
export { attentionProbabilities, scaledDotProductAttention } from './attention.js';
export * from './losses.js';

/**
 * y = x·Wᵀ + b, PyTorch's layout: weight is (out, in). x: (..., in) -> (..., out). `relu: true` gives
 * relu(x·Wᵀ + b) from the same GEMM pass (what `Sequential` uses for a Linear followed by a ReLU).
 * @example linear(x, w, b) // (N,784) with w (256,784) -> (N,256)
 */
export function linear(
  x: Tensor,
  weight: Tensor,
  bias?: Tensor | null,
  opts: { relu?: boolean } = {},
): Tensor {
  for (const [name, t] of [
    ['input', x],
    ['weight', weight],
  ] as const) {
    if (!(t instanceof Tensor)) {
      throw new ValueError('linear', `${name} must be a Tensor (got ${kindOf(t)}): tensor(...) makes one`);
    }
  }
  checkOptions('linear', opts, ['relu']);
  if (weight.rank !== 2)
    throw new ShapeError('linear', `weight must be 2-D (out, in), got ${fmtShape(weight.shape)}`);
  if (x.rank === 0 || x.shape[x.rank - 1] !== weight.shape[1]) {
    throw new ShapeError(
      'linear',
      `input ${fmtShape(x.shape)} does not end in in_features=${weight.shape[1]} (weight ${fmtShape(weight.shape)})`,
    );
  }
  const outF = weight.shape[0]!;
  if (bias && (bias.rank !== 1 || bias.size !== outF)) {
    throw new ShapeError('linear', `bias must be (${outF}), got ${fmtShape(bias.shape)}`);
  }
  // One fused op: the bias (and ReLU) ride in the GEMM's epilogue, and the backward writes dW in the (out, in)
  // layout directly instead of a transposed view of xᵀ·g that accumulation would then add strided. Under
  // autocast that is PyTorch's addmm: x·Wᵀ + b rounded to 16 bits once (see matmulFused). A 1-D x takes
  // separate kernels (still one op), and in float32 a separate ReLU op.
  const fused = x.rank >= 2;
  const relu = opts.relu ?? false;
  // The ReLU is part of this op (its mask read from the output in backward) except for a 1-D x in float32.
  const ownRelu = relu && (fused || autocastPrecision() !== 'fp32');
  let y: Tensor;
  if (fused) {
    y = recordedCompute(() => {
      const b = bias ? (ops.contiguous(bias.float()).data as Float32Array) : undefined;
      return ops.matmulFused(x, weight.mT, { bias: b, relu });
    });
  } else {
    const xw = recordedCompute(() => ops.matmul(x, weight.mT));
    y = bias ? recordedCompute(() => ops.add(xw, bias)) : xw;
    if (ownRelu) y = recordedCompute(() => ops.relu(y));
  }
  const kept: { y: Tensor | null } = { y: null };
  const out = ops.customOp(
    'linear',
    bias ? [x, weight, bias] : [x, weight],
    y,
    linearBackward(outF, weight.shape[1]!, !!bias, ownRelu ? kept : null),
  );
  // Under autocast the output is kept in 16 bits: the same stand-in the next layer keeps as its input, so the
  // activation is stored once (as in float32), not once for the ReLU's mask and once for the next GEMM.
  if (ownRelu) kept.y = ops.packActivation(out);
  return relu && !ownRelu ? ops.relu(out) : out;
}

/**
 * The backward of `linear`. Made outside `linear` so the closure sees only sizes (and, with its ReLU, the
 * output y whose sign masks g, in 16 bits under autocast): it reads x and W from the node's inputs, so under
 * autocast x is the node's 16-bit copy and the float32 activation is not kept alive.
 */
function linearBackward(outF: number, inF: number, hasBias: boolean, reluOut: { y: Tensor | null } | null) {
  return (gy: Tensor, needs: boolean[], [x, w]: Tensor[], sole: boolean[]): (Tensor | null)[] => {
    const g = reluOut ? ops.reluGrad(ops.unpack(reluOut.y!), gy) : gy;
    const g2 = g.reshape([-1, outF]);
    const x2 = x!.reshape([-1, inF]);
    // dW goes straight into W's zeroed .grad when W is used only here (accumulateGrad sees its own .grad).
    const into = needs[1] && sole[1] && w!.grad ? ops.matmulIntoZeroedGrad(g2.mT, x2, w!.grad) : null;
    return [
      needs[0] ? ops.matmul(g, w!) : null,
      needs[1] ? (into ?? ops.matmul(g2.mT, x2)) : null,
      ...(hasBias ? [needs[2] ? ops.sum(g2, 0) : null] : []),
    ];
  };
}

/**
 * GELU, exact (erf) form as PyTorch's default: x·Φ(x) = x/2·(1 + erf(x/√2)); with `approximate: 'tanh'`
 * PyTorch's x/2·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
 */
export function gelu(x: Tensor, opts: { approximate?: 'none' | 'tanh' } = {}): Tensor {
  checkOptions('gelu', opts, ['approximate']);
  const { approximate = 'none' } = opts;
  if (approximate === 'tanh') {
    const inner = ops.mul(ops.add(x, ops.mul(ops.mul(ops.mul(x, x), x), 0.044715)), Math.sqrt(2 / Math.PI));
    return ops.mul(ops.mul(x, 0.5), ops.add(ops.tanh(inner), 1));
  }
  return ops.mul(ops.mul(x, 0.5), ops.add(ops.erf(ops.mul(x, Math.SQRT1_2)), 1));
}

/**
 * Inverted dropout: zero each element with probability p and scale the rest by 1/(1-p), so eval needs no
 * rescale. Identity when not training or p = 0; p = 1 gives zeros.
 */
export function dropout(
  x: Tensor,
  p = 0.5,
  training = true,
  generator: Generator = defaultGenerator,
): Tensor {
  if (!(p >= 0 && p <= 1))
    throw new ValueError('dropout', `dropout probability has to be between 0 and 1, but got ${p}`);
  if (!training || p === 0 || x.size === 0) return x;
  if (p === 1) return ops.mul(x, 0);
  const keep = ops.empty(x.shape, 'bool');
  const m = keep.data as Uint8Array;
  for (let i = 0; i < m.length; i++) m[i] = generator.uniform() < 1 - p ? 1 : 0;
  return ops.mul(x, ops.mul(keep, 1 / (1 - p)));
}

export interface BatchNormOptions {
  runningMean?: Tensor | null;
  runningVar?: Tensor | null;
  weight?: Tensor | null;
  bias?: Tensor | null;
  /** Normalize with the batch's statistics and update the running ones (default false, as PyTorch's). */
  training?: boolean;
  /** Running-average factor (PyTorch default 0.1); null gives a cumulative average. */
  momentum?: number | null;
  eps?: number;
  /** Counter for the cumulative average (momentum null); incremented in training. */
  numBatchesTracked?: Tensor | null;
  /** relu(batchNorm(x)) as one op: in training the ReLU rides in the BatchNorm kernels' last pass. */
  relu?: boolean;
}
const BATCH_NORM_OPTIONS = optionKeys<BatchNormOptions>()([
  'runningMean',
  'runningVar',
  'weight',
  'bias',
  'training',
  'momentum',
  'eps',
  'numBatchesTracked',
  'relu',
]);

/**
 * Batch normalisation over (N, C), (N, C, L) or (N, C, H, W), statistics per channel C (seed section 5).
 * `training` defaults to false, as PyTorch's F.batch_norm. Training: one fused op whose backward is the analytic formula (not autograd through mean and var); running
 * statistics are updated in place with the unbiased variance. Eval: the running statistics. `relu: true`
 * gives relu(batchNorm(x)) (what `Sequential` uses for a BatchNorm followed by a ReLU).
 */
export function batchNorm(x: Tensor, opts: BatchNormOptions = {}): Tensor {
  checkOptions('batchNorm', opts, BATCH_NORM_OPTIONS);
  const {
    runningMean = null,
    runningVar = null,
    weight = null,
    bias = null,
    training = false,
    momentum = 0.1,
    eps = 1e-5,
    relu = false,
  } = opts;
  if (x.rank < 2)
    throw new ShapeError(
      'batchNorm',
      `expected input of rank 2 or more (N, C, ...), got ${fmtShape(x.shape)}`,
    );
  const [N, C] = x.shape as [number, number];
  const S = x.size / Math.max(N * C, 1);
  for (const [name, t] of [
    ['weight', weight],
    ['bias', bias],
    ['running_mean', runningMean],
    ['running_var', runningVar],
  ] as const) {
    if (t && (t.rank !== 1 || t.shape[0] !== C)) {
      throw new ShapeError(
        'batchNorm',
        `${name} has shape ${fmtShape(t.shape)}, expected [${C}] for input ${fmtShape(x.shape)}`,
      );
    }
  }
  const chan = [1, C, ...x.shape.slice(2).map(() => 1)];
  if (!training && !(runningMean && runningVar)) {
    // PyTorch's F.batch_norm: training defaults to false, and evaluation needs the running statistics (batch
    // statistics were used here without a word).
    throw new ValueError(
      'batchNorm',
      'runningMean and runningVar must be given when not training (training: false is the default, as in PyTorch); pass training: true to normalize with the batch statistics',
    );
  }
  if (!training && runningMean && runningVar) {
    // PyTorch's CPU inference form: y = x·α + β per channel with α = w/√(var + ε) and β = b − mean·α, made
    // on the C channels, so the input takes two passes instead of four.
    let alpha = ops.div(1, ops.sqrt(ops.add(runningVar, eps)));
    if (weight) alpha = ops.mul(alpha, weight);
    const shift = ops.mul(runningMean, alpha);
    const beta = bias ? ops.sub(bias, shift) : ops.neg(shift);
    const y = ops.add(ops.mul(x, alpha.reshape(chan)), beta.reshape(chan));
    return relu ? ops.relu(y) : y;
  }
  if (N * S <= 1) {
    throw new ValueError(
      'batchNorm',
      `expected more than 1 value per channel when training, got input size ${fmtShape(x.shape)}`,
    );
  }
  const xc = ops.contiguous(x);
  const xd = xc.data as Float32Array;
  const out = ops.uninitialized(x.shape);
  const mean = new Float32Array(C);
  const invstd = new Float32Array(C);
  const wd = weight ? (ops.contiguous(weight).data as Float32Array) : null;
  const bd = bias ? (ops.contiguous(bias).data as Float32Array) : null;
  kernels().batchNormForward(xd, N, C, S, wd, bd, eps, out.data as Float32Array, mean, invstd, relu);
  if (training && runningMean && runningVar) {
    const n = N * S;
    let m = momentum ?? 0;
    if (opts.numBatchesTracked) {
      opts.numBatchesTracked.data[0]! += 1;
      if (momentum === null) m = 1 / opts.numBatchesTracked.data[0]!;
    }
    const rm = runningMean.data as Float32Array;
    const rv = runningVar.data as Float32Array;
    for (let c = 0; c < C; c++) {
      const v = 1 / (invstd[c]! * invstd[c]!) - eps;
      rm[runningMean.offset + c] = (1 - m) * rm[runningMean.offset + c]! + m * mean[c]!;
      rv[runningVar.offset + c] = (1 - m) * rv[runningVar.offset + c]! + (m * v * n) / (n - 1);
    }
  }
  const inputs = [x, ...(weight ? [weight] : []), ...(bias ? [bias] : [])];
  return ops.customOp('batchNorm', inputs, out, (g) => {
    const dy = ops.contiguous(g).data as Float32Array;
    const dx = ops.uninitialized(x.shape);
    const dw = ops.empty([C]);
    const db = ops.empty([C]);
    kernels().batchNormBackward(
      xd,
      dy,
      N,
      C,
      S,
      wd,
      mean,
      invstd,
      dx.data as Float32Array,
      dw.data as Float32Array,
      db.data as Float32Array,
      relu ? (out.data as Float32Array) : null,
    );
    return [dx, ...(weight ? [dw] : []), ...(bias ? [db] : [])];
  });
}

/** Layer normalisation over the trailing dims given by `normalizedShape` (biased variance, eps inside sqrt). */
export function layerNorm(
  x: Tensor,
  normalizedShape: readonly number[],
  weight?: Tensor | null,
  bias?: Tensor | null,
  eps = 1e-5,
): Tensor {
  const k = normalizedShape.length;
  if (k === 0 || x.rank < k || x.shape.slice(-k).join() !== normalizedShape.join()) {
    throw new ShapeError(
      'layerNorm',
      `input ${fmtShape(x.shape)} does not end in normalized_shape ${fmtShape(normalizedShape)}`,
    );
  }
  const dims = Array.from({ length: k }, (_, i) => x.rank - k + i);
  const mu = ops.mean(x, dims, true);
  const xm = ops.sub(x, mu);
  const v = ops.mean(ops.mul(xm, xm), dims, true);
  let y = ops.mul(xm, ops.div(1, ops.sqrt(ops.add(v, eps))));
  if (weight) y = ops.mul(y, weight);
  return bias ? ops.add(y, bias) : y;
}

/** A size per spatial dim, PyTorch's `_size_2_t`: one number for both, or [h, w]. */
export type Size2 = number | readonly [number, number];

/**
 * The window geometry of a convolution or max pooling (see ConvGeometry): output size
 * ⌊(H + pads - d·(k-1) - 1) / s⌋ + 1 per axis, pads = 2·p + extra (extra: padding='same''s odd one, at the
 * bottom or right), or with ceilMode ⌈·⌉ + 1 with PyTorch's rule that the last window starts inside the input or
 * its left padding.
 */
function geometry(
  op: string,
  x: Tensor,
  k: [number, number],
  s: [number, number],
  p: [number, number],
  d: [number, number] = [1, 1],
  extra: [number, number] = [0, 0],
  ceilMode = false,
): ConvGeometry {
  if (x.rank !== 4) throw new ShapeError(op, `expected 4-D input (N, C, H, W), got ${fmtShape(x.shape)}`);
  const [N, C, H, W] = x.shape as [number, number, number, number];
  const out = (axis: 0 | 1, n: number): number => {
    const span = n + 2 * p[axis] + extra[axis] - d[axis] * (k[axis] - 1) - 1;
    if (span < 0) return 0;
    let o = (ceilMode ? Math.ceil(span / s[axis]) : Math.floor(span / s[axis])) + 1;
    if (ceilMode && (o - 1) * s[axis] >= n + p[axis]) o--;
    return o;
  };
  const [Ho, Wo] = [out(0, H), out(1, W)];
  if (Ho <= 0 || Wo <= 0) {
    const eff = (axis: 0 | 1) => d[axis] * (k[axis] - 1) + 1;
    throw new ShapeError(
      op,
      `kernel ${eff(0)}x${eff(1)}${d[0] > 1 || d[1] > 1 ? ' (dilated)' : ''} is larger than the padded input ${H + 2 * p[0] + extra[0]}x${W + 2 * p[1] + extra[1]} (input ${fmtShape(x.shape)})`,
    );
  }
  return {
    N,
    C,
    H,
    W,
    kh: k[0],
    kw: k[1],
    sh: s[0],
    sw: s[1],
    ph: p[0],
    pw: p[1],
    dh: d[0],
    dw: d[1],
    Ho,
    Wo,
  };
}

/** im2col of x for geometry g as a differentiable op: (N, C, H, W) -> (N, C·kh·kw, Ho·Wo); the gradient is col2im. */
function im2colOp(x: Tensor, g: ConvGeometry): Tensor {
  const out = ops.empty([g.N, g.C * g.kh * g.kw, g.Ho * g.Wo]);
  kernels().im2col(ops.contiguous(x).data as Float32Array, g, out.data as Float32Array);
  return ops.customOp('unfold', [x], out, (grad) => {
    const dx = ops.empty(x.shape);
    kernels().col2im(ops.contiguous(grad).data as Float32Array, g, dx.data as Float32Array);
    return [dx];
  });
}

/**
 * Sliding windows as columns (im2col), PyTorch's `F.unfold`: (N, C, H, W) -> (N, C·kh·kw, Ho·Wo). The gradient
 * is col2im. This is how convolutions become one GEMM. (The arguments come in this order, not torch's.)
 */
export function unfold(
  x: Tensor,
  kernelSize: Size2,
  stride: Size2 = 1,
  padding: Size2 = 0,
  dilation: Size2 = 1,
): Tensor {
  const op = 'unfold';
  const k = pair(op, 'kernel_size', kernelSize, 1);
  const g = geometry(
    op,
    x,
    k,
    pair(op, 'stride', stride, 1),
    pair(op, 'padding', padding, 0),
    pair(op, 'dilation', dilation, 1),
  );
  return im2colOp(x, g);
}

/**
 * 2-D convolution, NCHW, PyTorch's `F.conv2d` with its arguments in its order: x (N, Cin, H, W) or (Cin, H, W),
 * weight (Cout, Cin/groups, kh, kw), bias (Cout) -> (N, Cout, Ho, Wo). `padding` is a size, `'valid'` (0) or
 * `'same'` (output H×W = input's; stride 1 only; an odd total pads one more at the bottom and right, as
 * PyTorch). Lowered to im2col + one GEMM (groups: one batched GEMM over the groups), so it runs on the fastest
 * matmul the backend has.
 */
export function conv2d(
  x: Tensor,
  weight: Tensor,
  bias?: Tensor | null,
  stride: Size2 = 1,
  padding: Size2 | 'same' | 'valid' = 0,
  dilation: Size2 = 1,
  groups = 1,
): Tensor {
  const op = 'conv2d';
  // An unbatched (C, H, W) image is a batch of one, as in PyTorch.
  if (x instanceof Tensor && x.rank === 3)
    return conv2d(ops.unsqueeze(x, 0), weight, bias, stride, padding, dilation, groups).squeeze(0);
  if (!(weight instanceof Tensor) || weight.rank !== 4)
    throw new ShapeError(
      op,
      `weight must be (Cout, Cin/groups, kh, kw), got ${weight instanceof Tensor ? fmtShape(weight.shape) : kindOf(weight)}`,
    );
  if (!Number.isInteger(groups) || groups < 1)
    throw new ValueError(op, `groups must be a positive integer, got ${groups}`);
  const [Cout, Cg, kh, kw] = weight.shape as [number, number, number, number];
  if (!(x instanceof Tensor) || x.rank !== 4 || x.shape[1] !== Cg * groups) {
    throw new ShapeError(
      op,
      `expected input (N, ${Cg * groups}, H, W) or (${Cg * groups}, H, W) for weight ${fmtShape(weight.shape)}${groups > 1 ? ` and groups=${groups}` : ''}, got ${x instanceof Tensor ? fmtShape(x.shape) : kindOf(x)}`,
    );
  }
  if (Cout % groups !== 0)
    throw new ValueError(op, `out_channels (${Cout}) must be divisible by groups (${groups})`);
  if (bias && (bias.rank !== 1 || bias.shape[0] !== Cout)) {
    throw new ShapeError(op, `bias must be 1-D with ${Cout} elements (got ${fmtShape(bias.shape)})`);
  }
  const s = pair(op, 'stride', stride, 1);
  const d = pair(op, 'dilation', dilation, 1);
  let p: [number, number] = [0, 0];
  let extra: [number, number] = [0, 0];
  if (padding === 'same') {
    if (s[0] !== 1 || s[1] !== 1)
      throw new ValueError(
        op,
        `padding='same' is not supported for strided convolutions (stride ${fmtShape(s)})`,
      );
    // The total padding d·(k-1) split evenly, the odd one at the bottom or right (PyTorch's _conv_forward).
    const total: [number, number] = [d[0] * (kh - 1), d[1] * (kw - 1)];
    p = [Math.floor(total[0] / 2), Math.floor(total[1] / 2)];
    extra = [total[0] % 2, total[1] % 2];
  } else if (padding !== 'valid') {
    if (typeof padding === 'string')
      throw new ValueError(op, `padding must be a size, 'same' or 'valid', got '${padding}'`);
    p = pair(op, 'padding', padding, 0);
  }
  const g = geometry(op, x, [kh, kw], s, p, d, extra);
  const cols = im2colOp(x, g); // (N, Cin·kh·kw, L)
  const L = g.Ho * g.Wo;
  const K = Cg * kh * kw;
  // groups > 1: (G, Cout/G, K) · (N, G, K, L) -> (N, G, Cout/G, L), one batched GEMM.
  let y =
    groups === 1
      ? ops.matmul(weight.reshape([Cout, K]), cols)
      : ops
          .matmul(weight.reshape([groups, Cout / groups, K]), cols.reshape([g.N, groups, K, L]))
          .reshape([g.N, Cout, L]);
  if (bias) y = ops.add(y, bias.reshape([Cout, 1]));
  return y.reshape([g.N, Cout, g.Ho, g.Wo]);
}

/**
 * Max pooling, PyTorch's `F.max_pool2d` with its arguments in its order (stride defaults to the kernel size), over
 * (N, C, H, W) or (C, H, W). The window is padded with -Infinity; the gradient goes to the first maximum of each
 * window (a NaN counts as the maximum), as in PyTorch.
 */
export function maxPool2d(
  x: Tensor,
  kernelSize: Size2,
  stride?: Size2 | null,
  padding: Size2 = 0,
  dilation: Size2 = 1,
  ceilMode = false,
): Tensor {
  const op = 'maxPool2d';
  if (x instanceof Tensor && x.rank === 3)
    return maxPool2d(ops.unsqueeze(x, 0), kernelSize, stride, padding, dilation, ceilMode).squeeze(0);
  if (!(x instanceof Tensor)) throw new ValueError(op, `input must be a Tensor (got ${kindOf(x)})`);
  if (typeof ceilMode !== 'boolean')
    throw new ValueError(op, `ceil_mode must be a boolean, got ${kindOf(ceilMode)}`);
  const k = pair(op, 'kernel_size', kernelSize, 1);
  const p = pair(op, 'padding', padding, 0);
  for (const i of [0, 1]) {
    if (2 * p[i]! > k[i]!)
      throw new ValueError(
        op,
        `pad should be at most half of kernel size, but got pad=${p[i]} and kernel_size=${k[i]}`,
      );
  }
  const g = geometry(
    op,
    x,
    k,
    pair(op, 'stride', stride ?? kernelSize, 1),
    p,
    pair(op, 'dilation', dilation, 1),
    [0, 0],
    ceilMode,
  );
  const { N, C, H, W, kh, kw, sh, sw, ph, pw, dh, dw, Ho, Wo } = g;
  const xd = ops.contiguous(x).data as Float32Array;
  const out = ops.empty([N, C, Ho, Wo]);
  const od = out.data as Float32Array;
  const arg = new Int32Array(od.length); // flat index into x of each window's max
  for (let q = 0, o = 0; q < N * C; q++) {
    const base = q * H * W;
    for (let oy = 0; oy < Ho; oy++) {
      for (let ox = 0; ox < Wo; ox++, o++) {
        let best = -Infinity;
        let bi = -1;
        scan: for (let i = 0; i < kh; i++) {
          const y = oy * sh + i * dh - ph;
          if (y < 0 || y >= H) continue;
          for (let j = 0; j < kw; j++) {
            const xx = ox * sw + j * dw - pw;
            if (xx < 0 || xx >= W) continue;
            const v = xd[base + y * W + xx]!;
            if (v > best || Number.isNaN(v) || bi < 0) {
              best = v;
              bi = base + y * W + xx;
              if (Number.isNaN(v)) break scan;
            }
          }
        }
        od[o] = best;
        arg[o] = bi;
      }
    }
  }
  return ops.customOp(op, [x], out, (grad) => {
    const gd = ops.contiguous(grad).data as Float32Array;
    const dx = ops.empty(x.shape);
    const dd = dx.data as Float32Array;
    for (let o = 0; o < gd.length; o++) dd[arg[o]!]! += gd[o]!;
    return [dx];
  });
}

/** One averaging window over an axis: input positions [start, end), each weighted 1/divisor. */
type Window = [start: number, end: number, divisor: number];

/**
 * Average pooling of the last two dims of a (C, H, W) or (N, C, H, W) input over rectangular windows (a row
 * window × a column window; the divisor is the product of theirs). A direct loop over each window, not two GEMMs
 * with averaging matrices: the matrices' zero weights made one NaN or Inf pixel poison its whole plane (0·Inf).
 * The backward spreads each output's gradient over its window, / divisor.
 */
function windowPool(op: string, x: Tensor, rows: readonly Window[], cols: readonly Window[]): Tensor {
  const [H, W] = x.shape.slice(-2) as [number, number];
  const [Ho, Wo] = [rows.length, cols.length];
  const planes = x.size / (H * W);
  const xd = ops.contiguous(x).data as Float32Array;
  const out = ops.uninitialized([...x.shape.slice(0, -2), Ho, Wo]);
  const od = out.data as Float32Array;
  for (let p = 0; p < planes; p++) {
    for (let i = 0; i < Ho; i++) {
      const [r0, r1, rd] = rows[i]!;
      for (let j = 0; j < Wo; j++) {
        const [c0, c1, cd] = cols[j]!;
        let acc = 0;
        for (let r = r0; r < r1; r++)
          for (let c = c0, q = (p * H + r) * W + c0; c < c1; c++, q++) acc += xd[q]!;
        od[(p * Ho + i) * Wo + j] = acc / (rd * cd);
      }
    }
  }
  return ops.customOp(op, [x], out, (g) => {
    const gd = ops.contiguous(g).data as Float32Array;
    const dx = ops.empty(x.shape);
    const dd = dx.data as Float32Array;
    for (let p = 0; p < planes; p++) {
      for (let i = 0; i < Ho; i++) {
        const [r0, r1, rd] = rows[i]!;
        for (let j = 0; j < Wo; j++) {
          const [c0, c1, cd] = cols[j]!;
          const v = gd[(p * Ho + i) * Wo + j]! / (rd * cd);
          for (let r = r0; r < r1; r++)
            for (let c = c0, q = (p * H + r) * W + c0; c < c1; c++, q++) dd[q]! += v;
        }
      }
    }
    return [dx];
  });
}

function poolInput(op: string, x: Tensor): void {
  if (!(x instanceof Tensor)) throw new ValueError(op, `input must be a Tensor (got ${kindOf(x)})`);
  // PyTorch pools an empty batch or channel set to an empty output; an empty plane has no windows.
  if ((x.rank !== 3 && x.rank !== 4) || x.shape.slice(-2).some((d) => d === 0)) {
    throw new ShapeError(
      op,
      `expected a 3-D (C, H, W) or 4-D (N, C, H, W) input with non-zero H and W, got ${fmtShape(x.shape)}`,
    );
  }
  if (x.dtype !== 'float32') throw new ValueError(op, `expected a float32 input, got ${x.dtype}`);
}

/** A pair from a number or a [h, w] pair, each a checked integer (`op` names the caller in the error). */
export function pair(
  op: string,
  name: string,
  v: number | readonly [number, number],
  min: number,
): [number, number] {
  const p = typeof v === 'number' ? [v, v] : v;
  if (!Array.isArray(p) || p.length !== 2 || !p.every((k) => Number.isInteger(k) && k >= min)) {
    throw new ValueError(
      op,
      `${name} must be ${min > 0 ? 'a positive' : 'a non-negative'} integer or a pair of them, got ${JSON.stringify(v)}`,
    );
  }
  return p as [number, number];
}

export interface AvgPool2dOptions {
  /** Round the output size up instead of down (default false); a window must still start inside the input. */
  ceilMode?: boolean;
  /** Count the zero padding in a window's divisor (default true). */
  countIncludePad?: boolean;
}
const AVG_POOL_OPTIONS = optionKeys<AvgPool2dOptions>()(['ceilMode', 'countIncludePad']);

/**
 * PyTorch's `F.avg_pool2d` over (N, C, H, W) or (C, H, W): each output the mean of a kernel window, the input
 * padded with zeros. stride defaults to the kernel size.
 * @example avgPool2d(x, 2) // (N, C, 28, 28) -> (N, C, 14, 14)
 */
export function avgPool2d(
  x: Tensor,
  kernelSize: number | readonly [number, number],
  stride?: number | readonly [number, number],
  padding: number | readonly [number, number] = 0,
  opts: AvgPool2dOptions = {},
): Tensor {
  const op = 'avgPool2d';
  poolInput(op, x);
  checkOptions(op, opts, AVG_POOL_OPTIONS);
  const { ceilMode = false, countIncludePad = true } = opts;
  const k = pair(op, 'kernel_size', kernelSize, 1);
  const s = pair(op, 'stride', stride ?? kernelSize, 1);
  const p = pair(op, 'padding', padding, 0);
  const windows = (axis: 0 | 1): Window[] => {
    const n = x.shape[x.rank - 2 + axis]!;
    const [kk, ss, pp] = [k[axis], s[axis], p[axis]];
    if (2 * pp > kk) {
      throw new ValueError(
        op,
        `pad should be at most half of kernel size, but got pad=${pp} and kernel_size=${kk}`,
      );
    }
    const span = (n + 2 * pp - kk) / ss;
    let out = (ceilMode ? Math.ceil(span) : Math.floor(span)) + 1;
    // PyTorch's pooling_output_shape: with ceilMode the last window must start inside the input or left padding.
    if (ceilMode && (out - 1) * ss >= n + pp) out--;
    if (out < 1) {
      throw new ShapeError(
        op,
        `kernel ${k.join('x')} is larger than the padded input (input ${fmtShape(x.shape)})`,
      );
    }
    return Array.from({ length: out }, (_, o): Window => {
      const start = o * ss - pp;
      // PyTorch's divisor with padding counted: the window clipped to the padded extent, not to the input.
      const padded = Math.min(start + kk, n + pp) - start;
      const [lo, hi] = [Math.max(start, 0), Math.min(start + kk, n)];
      return [lo, hi, countIncludePad ? padded : hi - lo];
    });
  };
  return windowPool(op, x, windows(0), windows(1));
}

/**
 * PyTorch's `F.adaptive_avg_pool2d`: the output size is given and the windows follow from it, window o of an
 * axis of n spanning [⌊o·n/out⌋, ⌈(o+1)·n/out⌉) (they overlap when n is not a multiple). A null size keeps
 * that dim. `adaptiveAvgPool2d(x, 1)` is global average pooling.
 * @example adaptiveAvgPool2d(x, 1) // (N, C, H, W) -> (N, C, 1, 1)
 */
export function adaptiveAvgPool2d(
  x: Tensor,
  outputSize: number | readonly [number | null, number | null],
): Tensor {
  const op = 'adaptiveAvgPool2d';
  poolInput(op, x);
  const [H, W] = x.shape.slice(-2) as [number, number];
  if (!(typeof outputSize === 'number' || (Array.isArray(outputSize) && outputSize.length === 2))) {
    throw new ValueError(
      op,
      `output_size must be a positive integer or a pair, got ${JSON.stringify(outputSize)}`,
    );
  }
  const size = typeof outputSize === 'number' ? [outputSize, outputSize] : outputSize;
  const [oh, ow] = pair(op, 'output_size', [size[0] ?? H, size[1] ?? W] as [number, number], 1);
  const windows = (n: number, out: number): Window[] =>
    Array.from({ length: out }, (_, o): Window => {
      const [lo, hi] = [Math.floor((o * n) / out), Math.ceil(((o + 1) * n) / out)];
      return [lo, hi, hi - lo];
    });
  return windowPool(op, x, windows(H, oh), windows(W, ow));
}

/**
 * Rows of `weight` (num_embeddings, D) at integer `indices` of any shape: (...) -> (..., D), PyTorch's
 * F.embedding. Negative indices are refused (PyTorch's too); the gradient adds into the rows used, a row used
 * twice twice. With `paddingIdx` that row gets no gradient (it stays what it is, zeros by default in Embedding).
 * @example embedding(tensor(Int32Array.from([[1, 2], [2, 0]].flat()), { shape: [2, 2] }), w) // (2,2,D)
 */
export function embedding(indices: Tensor, weight: Tensor, paddingIdx: number | null = null): Tensor {
  if (!(indices instanceof Tensor) || indices.dtype !== 'int32')
    throw new ValueError(
      'embedding',
      `indices must be an int32 tensor (got ${indices instanceof Tensor ? indices.dtype : typeof indices})`,
    );
  if (!(weight instanceof Tensor) || weight.rank !== 2)
    throw new ShapeError(
      'embedding',
      `weight must be 2-D (num_embeddings, D) (got ${weight instanceof Tensor ? fmtShape(weight.shape) : typeof weight})`,
    );
  const [V, D] = weight.shape as [number, number];
  if (paddingIdx !== null && !(Number.isInteger(paddingIdx) && paddingIdx >= -V && paddingIdx < V)) {
    throw new ValueError(
      'embedding',
      `paddingIdx must be within num_embeddings (got ${paddingIdx} for ${V})`,
    );
  }
  // A negative paddingIdx counts from the end, as PyTorch's (it was compared with the indices as given).
  const pad = paddingIdx !== null && paddingIdx < 0 ? paddingIdx + V : paddingIdx;
  const flat = ops.contiguous(indices).data as Int32Array;
  for (const i of flat) {
    if (i < 0 || i >= V) throw new ValueError('embedding', `index ${i} is out of range for ${V} embeddings`);
  }
  const out = ops.reshape(ops.indexSelect(weight.detach(), 0, flat), [...indices.shape, D]);
  if (!weight.requiresGrad) return out;
  return ops.customOp('embedding', [weight], out, (g) => {
    let g2 = ops.reshape(g, [flat.length, D]);
    if (pad !== null) {
      // Zeroed by selection, not by a product with 0: an Inf or NaN gradient there must not reach the row.
      const keep = new Uint8Array(flat.length);
      for (let k = 0; k < flat.length; k++) keep[k] = flat[k] === pad ? 0 : 1;
      g2 = ops.where(new Tensor(keep, 'bool', [flat.length, 1]), g2, 0);
    }
    return [ops.indexAdd([V, D], 0, flat, g2)];
  });
}

/** max(x, 0) + slope·min(x, 0), PyTorch's F.leaky_relu (default slope 0.01; the gradient at 0 is the slope). */
export function leakyRelu(x: Tensor, negativeSlope = 0.01): Tensor {
  return ops.where(ops.gt(x, 0), x, ops.mul(x, negativeSlope));
}
