/**
 * Loss scaling for float16 training, with the arithmetic of PyTorch's `torch.amp.GradScaler`
 * (`_amp_foreach_non_finite_check_and_unscale_` and `_amp_update_scale_` in ATen's AmpGradScalerKernels.cpp).
 *
 * Protocol per optimizer step (with k-step accumulation, back-propagate `loss / k` scaled each micro-batch):
 *   backward(loss * scaler.scale) -> foundInf = scaler.unscale(grads) -> if (!foundInf) optimizer.step()
 *   -> scaler.update(foundInf)
 * bfloat16 has float32's range and needs no scaler.
 *
 * NOTE: PyTorch keeps the scale in a float32 tensor, so every new scale is rounded to float32 here too.
 */
import { checkOptions, optionKeys, ValueError } from '../errors.js';

/** Options of {@link GradScaler}; the defaults are PyTorch's. */
export interface GradScalerOptions {
  /** Starting scale (default 2^16). */
  initScale?: number;
  /** Scale multiplier after `growthInterval` steps without overflow, > 1 (default 2). */
  growthFactor?: number;
  /** Scale multiplier after an overflow, in (0, 1) (default 0.5). */
  backoffFactor?: number;
  /** Overflow-free steps before the scale grows (default 2000). */
  growthInterval?: number;
  /** When false, the scale is 1 and `unscale`/`update` do nothing (default true). */
  enabled?: boolean;
}
const GRAD_SCALER_OPTIONS = optionKeys<GradScalerOptions>()([
  'initScale',
  'growthFactor',
  'backoffFactor',
  'growthInterval',
  'enabled',
]);

/** The largest finite float32: above it a gradient is infinite. */
const FLOAT32_MAX = 3.4028234663852886e38;

/** `GradScaler.stateDict()`: PyTorch's `scale`, factors, interval and `_growth_tracker`. */
export interface GradScalerState {
  scale: number;
  growthFactor: number;
  backoffFactor: number;
  growthInterval: number;
  growthTracker: number;
}

const STATE_KEYS = ['scale', 'growthFactor', 'backoffFactor', 'growthInterval', 'growthTracker'] as const;

/**
 * What is wrong with a GradScaler state dict (undefined if nothing): each of its numbers present and in the
 * range the constructor accepts. Also checks the scaler state inside a checkpoint's metadata.
 */
export function gradScalerStateProblem(state: unknown): string | undefined {
  if (typeof state !== 'object' || state === null || Array.isArray(state))
    return `expected a GradScaler state dict, got ${state === null ? 'null' : Array.isArray(state) ? 'an array' : typeof state}`;
  const st = state as Record<string, unknown>;
  const missing = STATE_KEYS.filter((k) => typeof st[k] !== 'number');
  if (missing.length)
    return `the state dict lacks the numbers ${missing.join(', ')} (it has ${Object.keys(st).join(', ') || 'nothing'}): a GradScaler's stateDict() holds ${STATE_KEYS.join(', ')}`;
  const { scale, growthFactor, backoffFactor, growthInterval, growthTracker } =
    st as unknown as GradScalerState;
  const ok =
    scale > 0 &&
    Number.isFinite(scale) &&
    growthFactor > 1 &&
    Number.isFinite(growthFactor) &&
    backoffFactor > 0 &&
    backoffFactor < 1 &&
    Number.isSafeInteger(growthInterval) &&
    growthInterval >= 1 &&
    Number.isSafeInteger(growthTracker) &&
    growthTracker >= 0;
  return ok ? undefined : `out-of-range values in ${JSON.stringify(state)}`;
}

/**
 * Dynamic loss scale: backs off when gradients overflow, grows after a run of clean steps.
 *
 * @example
 * const scaler = new GradScaler();
 * backward(loss.mul(scaler.scale));
 * const foundInf = scaler.unscale(grads); // grads /= scale, in place
 * if (!foundInf) optimizer.step(); // PyTorch skips the step on overflow
 * scaler.update(foundInf);
 */
export class GradScaler {
  readonly enabled: boolean;
  private growthFactor: number;
  private backoffFactor: number;
  private growthInterval: number;
  private current: number;
  /** Consecutive steps without overflow since the last change of scale. */
  private growthTracker = 0;

  constructor(options: GradScalerOptions = {}) {
    const op = 'GradScaler';
    checkOptions(op, options, GRAD_SCALER_OPTIONS);
    const {
      initScale = 2 ** 16,
      growthFactor = 2,
      backoffFactor = 0.5,
      growthInterval = 2000,
      enabled = true,
    } = options;
    if (!(initScale > 0 && Number.isFinite(initScale))) {
      throw new ValueError(op, `initScale must be a positive finite number (got ${initScale})`);
    }
    if (!(growthFactor > 1)) throw new ValueError(op, `growthFactor must be > 1 (got ${growthFactor})`);
    if (!(backoffFactor > 0 && backoffFactor < 1)) {
      throw new ValueError(op, `backoffFactor must be in (0, 1) (got ${backoffFactor})`);
    }
    if (!Number.isInteger(growthInterval) || growthInterval < 1) {
      throw new ValueError(op, `growthInterval must be an integer >= 1 (got ${growthInterval})`);
    }
    this.enabled = enabled;
    this.growthFactor = growthFactor;
    this.backoffFactor = backoffFactor;
    this.growthInterval = growthInterval;
    this.current = Math.fround(initScale);
  }

  /** The factor to multiply the loss by before backward (PyTorch `get_scale()`; 1 when disabled). */
  get scale(): number {
    return this.enabled ? this.current : 1;
  }

  /**
   * Divide gradients by the scale in place (multiplying by the float32 inverse, as PyTorch does) and report
   * whether any value was inf or NaN, or above `maxFinite` in magnitude (65504 for gradients held in fp16,
   * which would have overflowed there). All values are multiplied even then; the caller skips the step.
   *
   * @example
   * const foundInf = scaler.unscale([w.grad, b.grad]);
   */
  unscale(grads: Float32Array[], maxFinite = FLOAT32_MAX): boolean {
    if (!this.enabled) return false;
    const inv = Math.fround(1 / this.current);
    let foundInf = false;
    for (const g of grads) {
      for (let i = 0; i < g.length; i++) {
        const v = g[i]!;
        if (!(Math.abs(v) <= maxFinite)) foundInf = true; // inf, NaN, or past what the gradients' format holds
        // A product of two float32s is exact in a double, so storing it rounds once: a float32 multiply.
        g[i] = v * inv;
      }
    }
    return foundInf;
  }

  /**
   * Adjust the scale after a step: times `backoffFactor` (and restart counting) if `foundInf`, else count
   * the step and, every `growthInterval` clean steps, times `growthFactor` unless that overflows float32.
   *
   * @example
   * scaler.update(foundInf);
   */
  update(foundInf: boolean): void {
    if (!this.enabled) return;
    if (foundInf) {
      this.current = Math.fround(this.current * this.backoffFactor);
      this.growthTracker = 0;
      return;
    }
    const successful = this.growthTracker + 1;
    if (successful === this.growthInterval) {
      const grown = Math.fround(this.current * this.growthFactor);
      if (Number.isFinite(grown)) this.current = grown;
      this.growthTracker = 0;
    } else {
      this.growthTracker = successful;
    }
  }

  /**
   * A JSON-able snapshot to checkpoint with the model.
   *
   * @example
   * const ckpt = { scaler: scaler.stateDict() };
   */
  stateDict(): GradScalerState {
    return {
      scale: this.current,
      growthFactor: this.growthFactor,
      backoffFactor: this.backoffFactor,
      growthInterval: this.growthInterval,
      growthTracker: this.growthTracker,
    };
  }

  /**
   * Continue from a {@link stateDict} snapshot.
   *
   * @example
   * scaler.loadStateDict(ckpt.scaler);
   */
  loadStateDict(state: GradScalerState): void {
    // Checked whole before anything changes: a PyTorch dict (growth_factor, _growth_tracker) left the factors
    // undefined and the scale NaN after the first overflow.
    const problem = gradScalerStateProblem(state);
    if (problem) throw new ValueError('GradScaler.loadStateDict', problem);
    this.current = Math.fround(state.scale);
    this.growthFactor = state.growthFactor;
    this.backoffFactor = state.backoffFactor;
    this.growthInterval = state.growthInterval;
    this.growthTracker = state.growthTracker;
  }
}
