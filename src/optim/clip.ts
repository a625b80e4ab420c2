/**
 * Gradient clipping, in place on `.grad` (PyTorch `torch.nn.utils.clip_grad_norm_` / `clip_grad_value_`).
 * Parameters without a gradient are skipped. Gradients are contiguous float32 (autograd makes them so).
 */
import { checkOptions, ValueError } from '../errors.js';
import { Tensor } from '../tensor/tensor.js';

function grads(op: string, params: Iterable<Tensor> | Tensor): Float32Array[] {
  const out: Float32Array[] = [];
  // One tensor is a list of one, as in PyTorch.
  const list = params instanceof Tensor ? [params] : params;
  if (typeof (list as Partial<Iterable<Tensor>> | null)?.[Symbol.iterator] !== 'function')
    throw new ValueError(
      op,
      `expected tensors or an iterable of them (got ${typeof params}); pass model.parameters()`,
    );
  for (const p of list) {
    const g = p.grad;
    if (g) out.push((g.data as Float32Array).subarray(g.offset, g.offset + g.size));
  }
  return out;
}

/** The p-norm of a list of values (`normType` Infinity: the largest magnitude), accumulated in float64. */
function norm(values: ArrayLike<number>, normType: number): number {
  let acc = 0;
  for (let i = 0; i < values.length; i++) {
    const a = Math.abs(values[i]!);
    if (normType === Infinity) acc = Math.max(acc, a);
    else acc += normType === 2 ? a * a : a ** normType;
  }
  return normType === Infinity ? acc : normType === 2 ? Math.sqrt(acc) : acc ** (1 / normType);
}

export interface ClipGradNormOptions {
  /** Throw, leaving the gradients alone, when the total norm is NaN or infinite (default false, as PyTorch). */
  errorIfNonfinite?: boolean;
}

/**
 * Scale all gradients together so that their total norm is at most `maxNorm`, and return that total norm
 * (before clipping; NaN or Infinity if a gradient is not finite, the gradients are then scaled by 0 or NaN as in
 * PyTorch). As in PyTorch the total is the norm of the per-parameter norms, each rounded to float32, and every
 * gradient is multiplied by `min(1, maxNorm / (total + 1e-6))`.
 *
 * @example
 * loss.backward();
 * const total = clipGradNorm(model.parameters(), 1.0);
 * opt.step();
 */
export function clipGradNorm(
  params: Iterable<Tensor> | Tensor,
  maxNorm: number,
  normType = 2,
  opts: ClipGradNormOptions = {},
): number {
  const op = 'clipGradNorm';
  if (!(maxNorm >= 0)) throw new ValueError(op, `maxNorm must be >= 0 (got ${maxNorm})`);
  if (!(normType > 0)) {
    throw new ValueError(op, `normType must be > 0 or Infinity (got ${normType})`);
  }
  checkOptions(op, opts, ['errorIfNonfinite']);
  const gs = grads(op, params);
  if (gs.length === 0) return 0;
  const f = Math.fround;
  const total = f(
    norm(
      gs.map((g) => f(norm(g, normType))),
      normType,
    ),
  );
  if (opts.errorIfNonfinite && !Number.isFinite(total)) {
    // PyTorch's message; the gradients are left as they are.
    throw new ValueError(
      op,
      `the total norm of order ${normType} for gradients from \`parameters\` is non-finite (${total}), so it cannot be clipped. To disable this error and scale the gradients by the non-finite norm anyway, leave errorIfNonfinite false`,
    );
  }
  // PyTorch computes `max_norm / (total + 1e-6)` on a float32 tensor as `reciprocal(total + 1e-6) * max_norm`.
  const coef = Math.min(f(f(1 / f(total + f(1e-6))) * f(maxNorm)), 1);
  for (const g of gs) for (let i = 0; i < g.length; i++) g[i] = g[i]! * coef;
  return total;
}

/**
 * Clamp every gradient element into `[-clipValue, clipValue]` (NaN stays NaN).
 *
 * @example
 * clipGradValue(model.parameters(), 0.5);
 */
export function clipGradValue(params: Iterable<Tensor> | Tensor, clipValue: number): void {
  if (!(clipValue >= 0)) throw new ValueError('clipGradValue', `clipValue must be >= 0 (got ${clipValue})`);
  const c = Math.fround(clipValue);
  for (const g of grads('clipGradValue', params)) {
    for (let i = 0; i < g.length; i++) {
      if (g[i]! > c) g[i] = c;
      else if (g[i]! < -c) g[i] = -c;
    }
  }
}
