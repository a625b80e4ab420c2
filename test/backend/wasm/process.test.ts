import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';

const runtimeUrl = new URL('../../../src/backend/wasm/runtime.js', import.meta.url).href;
const helpersUrl = new URL('./helpers.js', import.meta.url).href;

// A script that trains-like: a 2-thread GEMM, checked, then simply falls off the end (no shutdown call).
const script = `
import { initWasm } from '${runtimeUrl}';
import { checkGemm } from '${helpersUrl}';
const rt = initWasm({ threads: 2 });
const worst = checkGemm(rt, { transA: false, transB: true, M: 96, N: 80, K: 200, alpha: 1, beta: 0, bias: true, relu: true });
console.log(JSON.stringify({ worst, workers: rt.workersStarted, relaxed: rt.features.relaxedSimd }));
`;

function runChild(flags: string[]): { worst: number; workers: number; relaxed: boolean } {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [...flags, '--input-type=module', '-e', script], {
    encoding: 'utf8',
    timeout: 10_000,
    // NODE_TEST_CONTEXT, set by `node --test`, would make the child report to a test runner instead.
    env: { ...process.env, NODE_TEST_CONTEXT: undefined },
  });
  const seconds = (performance.now() - t0) / 1000;
  assert.equal(r.error, undefined, `child did not exit by itself within 10 s (${r.error?.message})`);
  assert.equal(r.status, 0, r.stderr);
  assert.ok(seconds < 5, `child took ${seconds.toFixed(1)} s to exit`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}

test('a process that ran a 2-thread GEMM exits by itself', () => {
  const { worst, workers, relaxed } = runChild([]);
  console.log(`child (plain SIMD=${!relaxed}): OK maxdiff=${worst.toExponential(2)}`);
  assert.equal(workers, 1);
  assert.ok(worst <= 1e-5);
});

test('the relaxed-SIMD kernels are chosen where the engine has them, and agree', () => {
  const { worst, relaxed } = runChild(['--experimental-wasm-relaxed-simd']);
  console.log(`child (relaxed SIMD=${relaxed}): OK maxdiff=${worst.toExponential(2)}`);
  assert.equal(relaxed, true);
  assert.ok(worst <= 1e-5);
});
