/**
 * Attention modules with PyTorch's parameter layout, initialisation and state-dict names, so weights move
 * between the two unchanged: `MultiheadAttention` (`in_proj_weight`, `in_proj_bias`, `out_proj.*`) and
 * `TransformerEncoderLayer` (`self_attn.*`, `linear1`, `linear2`, `norm1`, `norm2`).
 *
 * Shape legend: N batch, L target (query) length, S source (key) length, E embedding size, H heads,
 * Dh = E/H head size.
 *
 * NOTE: `batchFirst` defaults to true here, (N, L, E), the layout TypeScript callers hold; PyTorch's default
 * is false, (L, N, E). Pass `batchFirst: false` when porting code that relies on it.
 */
import { checkOptions, fmtShape, optionKeys, ShapeError, ValueError } from '../errors.js';
import { arange, uniform, zeros } from '../tensor/creation.js';
import * as ops from '../tensor/ops.js';
import { defaultGenerator, type Generator } from '../tensor/random.js';
import type { Tensor } from '../tensor/tensor.js';
import { attentionProbabilities, scaledDotProductAttention } from './attention.js';
import * as F from './functional.js';
import { Dropout, type InitOptions, LayerNorm, Linear } from './layers.js';
import { Module } from './module.js';

export interface MultiheadAttentionOptions extends InitOptions {
  /** Dropout on the attention weights in training (default 0). */
  dropout?: number;
  /** (N, T, E) when true (default here), (T, N, E) when false (PyTorch's default). */
  batchFirst?: boolean;
}

/** Masks of one MultiheadAttention call, with PyTorch's nn.MultiheadAttention conventions. */
export interface MultiheadAttentionCall {
  /**
   * (L, S) or (N·H, L, S). bool: true = may NOT attend (PyTorch's MHA convention, the opposite of
   * scaledDotProductAttention's); float32: added to the scores.
   */
  attnMask?: Tensor | null;
  /** (N, S), or (S) for unbatched input. bool: true = padding, ignored; float32: added. */
  keyPaddingMask?: Tensor | null;
  /**
   * Causal (query i sees keys j <= i). PyTorch treats this as a hint that attnMask is causal and requires the
   * mask; here it is enough on its own, and combined with masks it is applied too (same result when the hint
   * is true).
   */
  isCausal?: boolean;
  /** forwardWithWeights only: average the weights over heads (default true, PyTorch's). */
  averageAttnWeights?: boolean;
}
const MHA_CALL = optionKeys<MultiheadAttentionCall>()([
  'attnMask',
  'keyPaddingMask',
  'isCausal',
  'averageAttnWeights',
]);

/** PyTorch's mask conventions (true = blocked) to an additive float mask (-Infinity = blocked). */
function additive(m: Tensor): Tensor {
  return m.dtype === 'bool' ? ops.where(m, -Infinity, 0) : m;
}

/**
 * Multi-head attention: q, k, v projections packed in one (3E, E) `in_proj_weight`, heads attended with
 * scaledDotProductAttention (the tiled kernel unless dropout is on), heads concatenated, `out_proj`.
 *
 * `forward` returns the output only (PyTorch's need_weights=False, which also picks its fused kernel);
 * `forwardWithWeights` also returns the attention weights (PyTorch's default need_weights=True), which
 * materialises the (N, H, L, S) weights, so it always takes the naive path.
 *
 * @example
 * const mha = new mb.MultiheadAttention(16, 4);                   // batchFirst: (N, T, E)
 * const x = mb.randn([2, 10, 16]);
 * const y = mha.forward(x);                                        // self-attention, (2, 10, 16)
 * const z = mha.forward(x, x, x, { isCausal: true });              // causal
 * const { weights } = mha.forwardWithWeights(x);                   // (2, 10, 10), averaged over heads
 */
export class MultiheadAttention extends Module {
  readonly inProjWeight: Tensor;
  readonly inProjBias: Tensor | null;
  readonly outProj: Linear;
  readonly headDim: number;
  readonly dropout: number;
  readonly batchFirst: boolean;
  private readonly generator: Generator;

  constructor(
    readonly embedDim: number,
    readonly numHeads: number,
    options: MultiheadAttentionOptions = {},
  ) {
    super();
    checkOptions(
      'MultiheadAttention',
      options,
      optionKeys<MultiheadAttentionOptions>()(['bias', 'generator', 'dropout', 'batchFirst']),
    );
    const { bias = true, dropout = 0, batchFirst = true, generator = defaultGenerator } = options;
    if (!Number.isInteger(embedDim) || embedDim <= 0 || !Number.isInteger(numHeads) || numHeads <= 0)
      throw new ValueError(
        'MultiheadAttention',
        `embed_dim and num_heads must be positive integers (got ${embedDim} and ${numHeads})`,
      );
    if (embedDim % numHeads !== 0)
      throw new ValueError(
        'MultiheadAttention',
        `embed_dim must be divisible by num_heads (got ${embedDim} and ${numHeads})`,
      );
    if (!(dropout >= 0 && dropout <= 1))
      throw new ValueError('MultiheadAttention', `dropout must be in [0, 1] (got ${dropout})`);
    this.headDim = embedDim / numHeads;
    this.dropout = dropout;
    this.batchFirst = batchFirst;
    this.generator = generator;
    const E = embedDim;
    // PyTorch's _reset_parameters: xavier_uniform_ on the (3E, E) packed weight (fan_in E, fan_out 3E), zero
    // biases; out_proj keeps Linear's weight init.
    const bound = Math.sqrt(6 / (E + 3 * E));
    this.inProjWeight = this.registerParameter(
      'in_proj_weight',
      uniform([3 * E, E], -bound, bound, { generator }),
    );
    this.inProjBias = this.registerParameter('in_proj_bias', bias ? zeros([3 * E]) : null);
    this.outProj = this.registerModule('out_proj', new Linear(E, E, { bias, generator }));
    this.outProj.bias?.zero_();
  }

  /** Attend `query` (default) to `key` and `value` (default: query, then key). Returns (N, L, E). */
  forward(query: Tensor, key?: Tensor, value?: Tensor): Tensor;
  forward(query: Tensor, key: Tensor, value: Tensor, opts: MultiheadAttentionCall): Tensor;
  forward(
    query: Tensor,
    key: Tensor = query,
    value: Tensor = key,
    opts: MultiheadAttentionCall = {},
  ): Tensor {
    return this.attend(query, key, value, opts, false).output;
  }

  /** As forward, plus the attention weights: (N, L, S) averaged over heads, or (N, H, L, S). */
  forwardWithWeights(
    query: Tensor,
    key: Tensor = query,
    value: Tensor = key,
    opts: MultiheadAttentionCall = {},
  ): { output: Tensor; weights: Tensor } {
    const r = this.attend(query, key, value, opts, true);
    return { output: r.output, weights: r.weights! };
  }

  private attend(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    opts: MultiheadAttentionCall,
    needWeights: boolean,
  ): { output: Tensor; weights: Tensor | null } {
    checkOptions('MultiheadAttention', opts, MHA_CALL);
    const E = this.embedDim;
    const H = this.numHeads;
    const unbatched = query.rank === 2;
    for (const [name, t] of [
      ['query', query],
      ['key', key],
      ['value', value],
    ] as const) {
      if (t.rank !== query.rank || (t.rank !== 2 && t.rank !== 3) || t.shape[t.rank - 1] !== E)
        throw new ShapeError(
          'MultiheadAttention',
          `${name} must be (N, T, ${E}) with batchFirst, (T, N, ${E}) without, or (T, ${E}) unbatched; got ${fmtShape(t.shape)} (query ${fmtShape(query.shape)})`,
        );
    }
    // Everything below is (N, T, E).
    const layout = (t: Tensor) =>
      unbatched ? ops.unsqueeze(t, 0) : this.batchFirst ? t : ops.transpose(t, 0, 1);
    const [q, k, v] = [layout(query), layout(key), layout(value)];
    const [N, L] = q.shape as [number, number];
    const S = k.shape[1]!;
    if (k.shape[0] !== N || v.shape[0] !== N || v.shape[1] !== S)
      throw new ShapeError(
        'MultiheadAttention',
        `query, key and value must share the batch size and key and value the length (got ${fmtShape(query.shape)}, ${fmtShape(key.shape)}, ${fmtShape(value.shape)})`,
      );
    const W = this.inProjWeight;
    const b = this.inProjBias;
    const part = (t: Tensor, i: number) => ops.slice(t, 0, i * E, (i + 1) * E);
    let qp: Tensor;
    let kp: Tensor;
    let vp: Tensor;
    if (query === key && key === value) {
      // Self-attention: one (3E, E) projection instead of three.
      const qkv = F.linear(q, W, b);
      [qp, kp, vp] = [0, 1, 2].map((i) => ops.slice(qkv, -1, i * E, (i + 1) * E)) as [Tensor, Tensor, Tensor];
    } else {
      [qp, kp, vp] = [q, k, v].map((t, i) => F.linear(t, part(W, i), b && part(b, i))) as [
        Tensor,
        Tensor,
        Tensor,
      ];
    }
    const heads = (t: Tensor, T: number) =>
      ops.permute(ops.reshape(t, [N, T, H, this.headDim]), [0, 2, 1, 3]);
    const [qh, kh, vh] = [heads(qp, L), heads(kp, S), heads(vp, S)];
    const { mask, isCausal } = this.sdpaMask(opts, N, L, S, unbatched);
    const dropoutP = this.training ? this.dropout : 0;
    let out: Tensor;
    let weights: Tensor | null = null;
    if (needWeights) {
      weights = attentionProbabilities(qh, kh, { mask, isCausal });
      if (dropoutP > 0) weights = F.dropout(weights, dropoutP, true, this.generator);
      out = ops.matmul(weights, vh);
      if (opts.averageAttnWeights ?? true) weights = ops.mean(weights, 1);
      if (unbatched) weights = ops.squeeze(weights, 0);
    } else {
      out = scaledDotProductAttention(qh, kh, vh, { mask, isCausal, dropoutP, generator: this.generator });
    }
    let y = this.outProj.forward(ops.reshape(ops.permute(out, [0, 2, 1, 3]), [N, L, E]));
    y = unbatched ? ops.squeeze(y, 0) : this.batchFirst ? y : ops.transpose(y, 0, 1);
    return { output: y, weights };
  }

  /**
   * PyTorch's masks (true = blocked) to one scaledDotProductAttention mask broadcastable to (N, H, L, S).
   * A single bool mask stays bool and broadcast ((N, 1, 1, S) for key padding), so nothing L×S is built for
   * it; two or more are added as float masks, as PyTorch does.
   */
  private sdpaMask(
    opts: MultiheadAttentionCall,
    N: number,
    L: number,
    S: number,
    unbatched: boolean,
  ): { mask: Tensor | null; isCausal: boolean } {
    const H = this.numHeads;
    const masks: Tensor[] = [];
    // PyTorch's convention here, the opposite of scaledDotProductAttention's bool mask: true = blocked.
    for (const name of ['attnMask', 'keyPaddingMask'] as const) {
      const m = opts[name];
      if (m && m.dtype !== 'bool' && m.dtype !== 'float32')
        throw new ValueError(
          'MultiheadAttention',
          `${name} must be bool (true = not allowed to attend) or float32 (added to the scores), got ${m.dtype}`,
        );
    }
    const am = opts.attnMask;
    if (am) {
      const ok =
        (am.rank === 2 && am.shape.join() === `${L},${S}`) ||
        (am.rank === 3 && am.shape.join() === `${N * H},${L},${S}`);
      if (!ok)
        throw new ShapeError(
          'MultiheadAttention',
          `attnMask must be (L, S) = ${fmtShape([L, S])} or (N·H, L, S) = ${fmtShape([N * H, L, S])}, got ${fmtShape(am.shape)}`,
        );
      masks.push(am.rank === 3 ? ops.reshape(am, [N, H, L, S]) : am);
    }
    const kpm = opts.keyPaddingMask;
    if (kpm) {
      const expected = unbatched ? [S] : [N, S];
      if (kpm.shape.join() !== expected.join())
        throw new ShapeError(
          'MultiheadAttention',
          `keyPaddingMask must be ${fmtShape(expected)} (N, S), got ${fmtShape(kpm.shape)}`,
        );
      masks.push(ops.reshape(kpm, [N, 1, 1, S]));
    }
    const causal = opts.isCausal ?? false;
    if (masks.length === 0) return { mask: null, isCausal: causal };
    if (causal) {
      const blocked = ops.gt(ops.reshape(arange(S), [1, S]), ops.reshape(arange(L), [L, 1]));
      masks.push(blocked);
    }
    if (masks.length === 1 && masks[0]!.dtype === 'bool')
      return { mask: ops.eq(masks[0]!, false), isCausal: false };
    return { mask: masks.map(additive).reduce((a, m) => ops.add(a, m)), isCausal: false };
  }
}

export interface TransformerEncoderLayerOptions extends InitOptions {
  /** Activation of the feed-forward block (default 'relu', PyTorch's). */
  activation?: 'relu' | 'gelu';
  layerNormEps?: number;
  /** (N, T, E) when true (default here), (T, N, E) when false (PyTorch's default). */
  batchFirst?: boolean;
  /** Pre-norm (LayerNorm before attention and feed-forward) when true; post-norm (default) otherwise. */
  normFirst?: boolean;
}

/** Masks of one encoder-layer call (PyTorch's src_mask, src_key_padding_mask, is_causal). */
export interface TransformerEncoderCall {
  srcMask?: Tensor | null;
  srcKeyPaddingMask?: Tensor | null;
  isCausal?: boolean;
}

/**
 * One Transformer encoder block, PyTorch's `nn.TransformerEncoderLayer`: self-attention and a feed-forward
 * block (linear1, activation, dropout, linear2), each with dropout, a residual connection and LayerNorm
 * (after the residual by default, before the block with normFirst).
 *
 * @example
 * const layer = new mb.TransformerEncoderLayer(32, 4, 64, 0.1, { normFirst: true });
 * const y = layer.forward(mb.randn([8, 12, 32]));             // (N, T, E) -> (8, 12, 32)
 * const c = layer.forward(mb.randn([8, 12, 32]), { isCausal: true });
 */
export class TransformerEncoderLayer extends Module {
  readonly selfAttn: MultiheadAttention;
  readonly linear1: Linear;
  readonly dropout: Dropout;
  readonly linear2: Linear;
  readonly norm1: LayerNorm;
  readonly norm2: LayerNorm;
  readonly dropout1: Dropout;
  readonly dropout2: Dropout;
  readonly normFirst: boolean;
  readonly activation: 'relu' | 'gelu';

  constructor(
    readonly dModel: number,
    readonly nHead: number,
    readonly dimFeedforward = 2048,
    dropout = 0.1,
    options: TransformerEncoderLayerOptions = {},
  ) {
    super();
    checkOptions(
      'TransformerEncoderLayer',
      options,
      optionKeys<TransformerEncoderLayerOptions>()([
        'bias',
        'generator',
        'activation',
        'layerNormEps',
        'batchFirst',
        'normFirst',
      ]),
    );
    const {
      activation = 'relu',
      layerNormEps = 1e-5,
      batchFirst = true,
      normFirst = false,
      bias = true,
      generator = defaultGenerator,
    } = options;
    if (activation !== 'relu' && activation !== 'gelu')
      throw new ValueError(
        'TransformerEncoderLayer',
        `activation should be relu or gelu, not ${String(activation)}`,
      );
    this.normFirst = normFirst;
    this.activation = activation;
    // Registered in PyTorch's order, so stateDict() lists keys as PyTorch does.
    this.selfAttn = this.registerModule(
      'self_attn',
      new MultiheadAttention(dModel, nHead, { dropout, batchFirst, bias, generator }),
    );
    this.linear1 = this.registerModule('linear1', new Linear(dModel, dimFeedforward, { bias, generator }));
    this.dropout = this.registerModule('dropout', new Dropout(dropout, generator));
    this.linear2 = this.registerModule('linear2', new Linear(dimFeedforward, dModel, { bias, generator }));
    this.norm1 = this.registerModule('norm1', new LayerNorm(dModel, layerNormEps));
    this.norm2 = this.registerModule('norm2', new LayerNorm(dModel, layerNormEps));
    this.dropout1 = this.registerModule('dropout1', new Dropout(dropout, generator));
    this.dropout2 = this.registerModule('dropout2', new Dropout(dropout, generator));
  }

  forward(src: Tensor): Tensor;
  forward(src: Tensor, opts: TransformerEncoderCall): Tensor;
  forward(src: Tensor, opts: TransformerEncoderCall = {}): Tensor {
    checkOptions(
      'TransformerEncoderLayer',
      opts,
      optionKeys<TransformerEncoderCall>()(['srcMask', 'srcKeyPaddingMask', 'isCausal']),
    );
    const sa = (x: Tensor) =>
      this.dropout1.forward(
        this.selfAttn.forward(x, x, x, {
          attnMask: opts.srcMask,
          keyPaddingMask: opts.srcKeyPaddingMask,
          isCausal: opts.isCausal,
        }),
      );
    const act = this.activation === 'gelu' ? F.gelu : F.relu;
    const ff = (x: Tensor) =>
      this.dropout2.forward(this.linear2.forward(this.dropout.forward(act(this.linear1.forward(x)))));
    if (this.normFirst) {
      const x = ops.add(src, sa(this.norm1.forward(src)));
      return ops.add(x, ff(this.norm2.forward(x)));
    }
    const x = this.norm1.forward(ops.add(src, sa(src)));
    return this.norm2.forward(ops.add(x, ff(x)));
  }
}
