/**
 * Shared test helpers: run a suite on every registered backend, compare with tolerances (printing the largest
 * difference, like llm.c's check_tensor), load PyTorch fixtures, and finite-difference gradient checks.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, describe } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Tensor } from '../src/index.js';
import * as mb from '../src/index.js';

/** The repository root (tests run from build/test/, sources live in test/). */
export const ROOT = (() => {
  let d = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    try {
      if (JSON.parse(readFileSync(join(d, 'package.json'), 'utf8')).name === 'minibatch') return d;
    } catch {}
    const up = dirname(d);
    if (up === d) throw new Error('package root not found');
    d = up;
  }
})();

export interface FixtureTensor {
  shape: number[];
  data: number[];
}

/** A golden file from test/fixtures (copied from PyTorch's output; see test/fixtures/README.md). */
export function fixture<T = { cases: Record<string, unknown>[] }>(name: string): T {
  return JSON.parse(readFileSync(join(ROOT, 'test', 'fixtures', name), 'utf8')) as T;
}

/** A float32 tensor from a fixture entry. */
export function ft(f: FixtureTensor, requiresGrad = false): Tensor {
  return mb.tensor(Float32Array.from(f.data), { shape: f.shape, requiresGrad });
}

/**
 * Run `body` once per registered backend (`describe('backend js', ...)`), with that backend active.
 * MINIBATCH_TEST_BACKENDS=js,wasm narrows the list.
 */
export function forEachBackend(body: (backend: string) => void): void {
  const only = process.env.MINIBATCH_TEST_BACKENDS?.split(',');
  for (const name of mb.listBackends()) {
    if (only && !only.includes(name)) continue;
    describe(`backend ${name}`, () => {
      let prev = '';
      before(() => {
        prev = mb.getBackend();
        mb.setBackend(name);
      });
      after(() => mb.setBackend(prev));
      body(name);
    });
  }
}

type Numbers = ArrayLike<number> | Tensor | FixtureTensor;

function values(x: Numbers): ArrayLike<number> {
  if (x instanceof mb.Tensor) return x.toTypedArray() as ArrayLike<number>;
  if ('data' in x && 'shape' in x && Array.isArray((x as FixtureTensor).data))
    return (x as FixtureTensor).data;
  return x as ArrayLike<number>;
}

/**
 * Assert |a - e| <= atol + rtol·|e| elementwise (NaN matches NaN, ±Infinity must match exactly); shapes are
 * compared when both sides have one. Logs `label: OK maxdiff=...` so runs show how close we are.
 */
export function assertClose(
  actual: Numbers,
  expected: Numbers,
  opts: { rtol?: number; atol?: number; label?: string } = {},
): number {
  const { rtol = 1e-5, atol = 1e-6, label = 'values' } = opts;
  const shapeOf = (x: Numbers) =>
    x instanceof mb.Tensor ? [...x.shape] : 'shape' in x ? (x as FixtureTensor).shape : null;
  const sa = shapeOf(actual);
  const se = shapeOf(expected);
  if (sa && se) assert.deepEqual(sa, se, `${label}: shape`);
  const a = values(actual);
  const e = values(expected);
  assert.equal(a.length, e.length, `${label}: length`);
  let maxdiff = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = e[i]!;
    if (Number.isNaN(y) || !Number.isFinite(y)) {
      assert.ok(
        Object.is(x, y) || (Number.isNaN(x) && Number.isNaN(y)),
        `${label}[${i}]: got ${x}, expected ${y}`,
      );
      continue;
    }
    const d = Math.abs(x - y);
    maxdiff = Math.max(maxdiff, d);
    assert.ok(d <= atol + rtol * Math.abs(y), `${label}[${i}]: got ${x}, expected ${y} (diff ${d})`);
  }
  if (process.env.MINIBATCH_TEST_VERBOSE) console.log(`${label}: OK maxdiff=${maxdiff.toExponential(2)}`);
  return maxdiff;
}

/**
 * Finite-difference check of the gradients of `fn` at `inputs`: compares autograd's vector-Jacobian product
 * with the central difference of sum(fn(x)·g) for a random upstream g. float32 limits eps and tolerance.
 */
export function gradcheck(
  fn: (...xs: Tensor[]) => Tensor,
  inputs: Tensor[],
  opts: { eps?: number; rtol?: number; atol?: number; seed?: number; label?: string } = {},
): void {
  const { eps = 1e-2, rtol = 2e-2, atol = 2e-3, seed = 7, label = 'gradcheck' } = opts;
  const leaves = inputs.map((x) =>
    x.dtype === 'float32'
      ? mb.tensor(Float32Array.from(x.toTypedArray()), { shape: [...x.shape], requiresGrad: true })
      : x,
  );
  const out = fn(...leaves);
  const g = mb.randn([...out.shape], { generator: new mb.Generator(seed) });
  mb.sum(mb.mul(out, g)).backward();
  const objective = (xs: Tensor[]) => mb.noGrad(() => mb.sum(mb.mul(fn(...xs), g)).item());
  leaves.forEach((leaf, k) => {
    if (leaf.dtype !== 'float32') return;
    const base = leaf.toTypedArray() as Float32Array;
    const numeric = new Float64Array(base.length);
    for (let i = 0; i < base.length; i++) {
      const plus = Float32Array.from(base);
      const minus = Float32Array.from(base);
      plus[i]! += eps;
      minus[i]! -= eps;
      const with_ = (arr: Float32Array) =>
        leaves.map((l, j) => (j === k ? mb.tensor(arr, { shape: [...l.shape] }) : l.detach()));
      numeric[i] = (objective(with_(plus)) - objective(with_(minus))) / (2 * eps);
    }
    assert.ok(leaf.grad, `${label}: input ${k} received no gradient`);
    assertClose(leaf.grad!, numeric, { rtol, atol, label: `${label} d/dinput${k}` });
  });
}
