/**
 * Shapes and strides stay arrays of small integers once V8 optimizes the ops that compute them (see `dims` in
 * src/tensor/shape.ts): a size computed in optimized code is a double there, an array built from it holds
 * doubles, and every optimized function that had seen only small-integer shapes then deoptimizes on it. In a
 * training run that happened mid-epoch when V8 optimized `indexSelect` (the DataLoader's batch gather).
 *
 * V8's own checks (`%HasSmiElements`, `%OptimizeFunctionOnNextCall`) need --allow-natives-syntax, so the ops
 * run in a child process: each op is warmed up with varying arguments, optimized, and its output checked.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';

const indexUrl = new URL('../../src/index.js', import.meta.url).href;

const script = `
import * as mb from '${indexUrl}';
mb.setBackend('js');
const X = mb.uniform([100, 8], 0, 1);
const ds = new mb.TensorDataset(X, mb.tensor(new Int32Array(100)));
for (let e = 0; e < 30; e++) for (const _ of new mb.DataLoader(ds, { batchSize: 32, shuffle: true, seed: e }));
const rows = new Int32Array([1, 2, 3]);
const cases = {
  indexSelect: [mb.indexSelect, (i) => [X, 0, rows.subarray(0, 1 + (i % 3))]],
  slice: [mb.slice, (i) => [X, 0, i % 7, 50 + (i % 13), 1 + (i % 3)]],
  reshape: [mb.reshape, (i) => [X, [-1, i % 2 ? 4 : 2]]],
  cat: [mb.cat, (i) => [[X, mb.slice(X, 0, 0, 1 + (i % 5))], 0]],
  sum: [mb.sum, (i) => [X, i % 2]],
  unsqueeze: [mb.unsqueeze, (i) => [X, i % 3]],
};
const smallInts = {};
for (const [name, [fn, args]] of Object.entries(cases)) {
  for (let i = 0; i < 2000; i++) fn(...args(i));
  %OptimizeFunctionOnNextCall(fn);
  const t = fn(...args(1));
  smallInts[name] = %HasSmiElements(t.shape) && %HasSmiElements(t.strides) && %IsSmi(t.offset);
}
const [x] = new mb.DataLoader(ds, { batchSize: 32 })[Symbol.iterator]().next().value;
smallInts.dataLoaderBatch = %HasSmiElements(x.shape) && %HasSmiElements(x.strides);
console.log(JSON.stringify(smallInts));
`;

describe('shapes stay small-integer arrays in optimized code', () => {
  it('indexSelect, slice, reshape(-1), cat, sum, unsqueeze and a DataLoader batch, after V8 optimizes them', () => {
    const r = spawnSync(process.execPath, ['--allow-natives-syntax', '--input-type=module', '-e', script], {
      encoding: 'utf8',
      timeout: 120_000,
      env: { ...process.env, NODE_TEST_CONTEXT: undefined },
    });
    assert.equal(r.status, 0, r.stderr.trim().slice(-500));
    const got = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as Record<string, boolean>;
    assert.deepEqual(got, {
      indexSelect: true,
      slice: true,
      reshape: true,
      cat: true,
      sum: true,
      unsqueeze: true,
      dataLoaderBatch: true,
    });
  });
});
