/**
 * Memory stays flat over thousands of steps of a training loop with no dispose/tidy anywhere: the engine
 * releases each step's graph after backward and the garbage collector reclaims the storage.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { it } from 'node:test';
import * as mb from '../../src/index.js';
import { ROOT } from '../helpers.js';

for (const backend of process.env.MINIBATCH_TEST_BACKENDS?.split(',') ?? mb.listBackends()) {
  it(`memory is flat over 3000 steps of the documented training loop, no dispose anywhere (backend ${backend})`, () => {
    const child = spawnSync(
      process.execPath,
      ['--expose-gc', join(ROOT, 'build/test/memory/loop-child.js'), '3000'],
      {
        encoding: 'utf8',
        env: { ...process.env, MINIBATCH_BACKEND: backend },
      },
    );
    assert.equal(child.status, 0, child.stderr);
    const {
      samples,
      losses,
      backend: ran,
    } = JSON.parse(child.stdout) as { samples: number[]; losses: number[]; backend: string };
    assert.equal(ran, backend);
    assert.equal(samples.length, 9);
    // The trend, not single samples: the median of the last three checkpoints against the first three.
    const median3 = (xs: number[]) => [...xs].sort((a, b) => a - b)[1]!;
    const growth = median3(samples.slice(-3)) - median3(samples.slice(0, 3));
    // Steps allocate ~100 KB each: a leak of even one step's graph would add ~300 MB over the run.
    assert.ok(
      growth < 3e6,
      `live memory grew by ${(growth / 1e6).toFixed(2)} MB (samples ${samples.map((s) => (s / 1e6).toFixed(1)).join(', ')} MB)`,
    );
    assert.ok(losses.at(-1)! < losses[0]!, `the loop trains (loss ${losses[0]} -> ${losses.at(-1)})`);
  });
}
