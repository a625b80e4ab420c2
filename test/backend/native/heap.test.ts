/**
 * Op outputs reuse freed memory instead of faulting fresh pages in on every call (see `keepFreedHeap` in
 * src/backend/native/blas.ts): with glibc's defaults relu of a 512×256 tensor took 30-40 minor page faults
 * per call on the reference machine, with the kept heap 0.5. Counted in a child process, so the count is this
 * loop's alone; `MALLOC_PERTURB_` (any user malloc setting) makes minibatch leave malloc alone, which the
 * second case uses to show the count is not low anyway.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { listBackends } from '../../../src/index.js';

const indexUrl = new URL('../../../src/index.js', import.meta.url).href;

const script = `
import * as mb from '${indexUrl}';
mb.setBackend('native');
const x = mb.uniform([512, 256], -1, 1);
for (let i = 0; i < 300; i++) mb.relu(x);
const before = process.resourceUsage().minorPageFault;
for (let i = 0; i < 500; i++) mb.relu(x);
console.log((process.resourceUsage().minorPageFault - before) / 500);
`;

function faultsPerCall(env: Record<string, string | undefined>): number {
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    encoding: 'utf8',
    timeout: 60_000,
    env: { ...process.env, NODE_TEST_CONTEXT: undefined, MINIBATCH_BACKEND: undefined, ...env },
  });
  assert.equal(r.status, 0, r.stderr.trim().slice(-300));
  return Number(r.stdout.trim());
}

const glibc =
  process.platform === 'linux' && process.report?.getReport
    ? Boolean(
        (process.report.getReport() as { header?: { glibcVersionRuntime?: string } }).header
          ?.glibcVersionRuntime,
      )
    : false;

describe('native: freed tensor memory is kept for reuse', {
  skip: !listBackends().includes('native') || !glibc ? 'needs the native backend on glibc' : false,
}, () => {
  it('relu of 512×256 faults in under 5 pages per call', () => {
    const kept = faultsPerCall({});
    const left = faultsPerCall({ MALLOC_PERTURB_: '0' });
    assert.ok(kept < 5, `${kept} minor page faults per call (with malloc left alone: ${left})`);
  });
});
