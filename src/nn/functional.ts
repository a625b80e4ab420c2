/**
 * Functional forms of the layers: each nn module's forward is one call to a function here.
 * Shapes: N batch, D features, C classes.
 */
import { ValueError } from '../errors.js';
import * as ops from '../tensor/ops.js';
import type { Tensor } from '../tensor/tensor.js';

export { logSoftmax, relu, sigmoid, softmax, tanh } from '../tensor/ops.js';

/**
 * y = x·Wᵀ + b, PyTorch's layout: weight is (out, in). x: (..., in) -> (..., out).
 * @example linear(x, w, b) // (N,784) with w (256,784) -> (N,256)
 */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor | null): Tensor {
  if (weight.rank !== 2)
    throw new ValueError('linear', `weight must be 2-D (out, in), got shape [${weight.shape}]`);
  const y = ops.matmul(x, weight.mT);
  return bias ? ops.add(y, bias) : y;
}

/** GELU, exact (erf) form as PyTorch's default: x·Φ(x) = x/2·(1 + erf(x/√2)). */
export function gelu(x: Tensor): Tensor {
  return ops.mul(ops.mul(x, 0.5), ops.add(ops.erf(ops.mul(x, Math.SQRT1_2)), 1));
}
