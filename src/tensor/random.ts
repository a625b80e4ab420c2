/**
 * A seedable random generator whose stream is identical on every platform: xoshiro128** over 32-bit
 * integer arithmetic (Math.imul, >>> 0), seeded through splitmix32. No Math.random anywhere in minibatch.
 *
 * @example
 * const g = new Generator(42);
 * g.uniform(); // same number on every machine for seed 42
 */
export class Generator {
  private s = new Uint32Array(4);
  private spare: number | null = null;

  constructor(seed = 0) {
    this.manualSeed(seed);
  }

  /** Re-seed: the same seed restarts the same stream. */
  manualSeed(seed: number): this {
    let x = seed >>> 0;
    // Mix in the high bits so seeds above 2^32 still differ.
    const hi = Math.floor(seed / 4294967296) >>> 0;
    for (let i = 0; i < 4; i++) {
      x = (x + 0x9e3779b9 + hi * (i + 1)) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      this.s[i] = (z ^ (z >>> 16)) >>> 0;
    }
    if (this.s[0] === 0 && this.s[1] === 0 && this.s[2] === 0 && this.s[3] === 0) this.s[0] = 1;
    this.spare = null;
    return this;
  }

  /** Next raw 32-bit unsigned integer. */
  nextUint32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1]!, 5), 7), 9) >>> 0;
    const t = s[1]! << 9;
    s[2]! ^= s[0]!;
    s[3]! ^= s[1]!;
    s[1]! ^= s[2]!;
    s[0]! ^= s[3]!;
    s[2]! ^= t;
    s[3] = rotl(s[3]!, 11);
    return result;
  }

  /** Uniform in [0, 1) with 32 bits of randomness. */
  uniform(): number {
    return this.nextUint32() / 4294967296;
  }

  /** Uniform integer in [low, high). Unbiased (rejection sampling). */
  int(low: number, high: number): number {
    const range = high - low;
    if (!(range > 0)) throw new RangeError(`Generator.int: empty range [${low}, ${high})`);
    if (range > 4294967296) return low + Math.floor(this.uniform() * range);
    const limit = 4294967296 - (4294967296 % range);
    let r = this.nextUint32();
    while (r >= limit) r = this.nextUint32();
    return low + (r % range);
  }

  /** Standard normal (Box-Muller, both values used). */
  normal(): number {
    if (this.spare !== null) {
      const v = this.spare;
      this.spare = null;
      return v;
    }
    let u = 0;
    while (u === 0) u = this.uniform();
    const v = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }

  /** A random permutation of 0..n-1 (Fisher-Yates). */
  permutation(n: number): Int32Array {
    const p = new Int32Array(n);
    for (let i = 0; i < n; i++) p[i] = i;
    for (let i = n - 1; i > 0; i--) {
      const j = this.int(0, i + 1);
      const t = p[i]!;
      p[i] = p[j]!;
      p[j] = t;
    }
    return p;
  }

  /** The full state, for checkpoints: restoring it resumes the exact stream. */
  getState(): number[] {
    return [...this.s, this.spare === null ? Number.NaN : this.spare];
  }

  setState(state: readonly number[]): this {
    if (state.length !== 5)
      throw new RangeError(`Generator.setState: expected 5 numbers, got ${state.length}`);
    for (let i = 0; i < 4; i++) this.s[i] = state[i]! >>> 0;
    this.spare = Number.isNaN(state[4]) ? null : state[4]!;
    return this;
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/** The process-wide default generator used when an op is given none. `manualSeed` re-seeds it. */
export const defaultGenerator = new Generator(0);

/** Seed the default generator (PyTorch's `torch.manual_seed`). */
export function manualSeed(seed: number): void {
  defaultGenerator.manualSeed(seed);
}
