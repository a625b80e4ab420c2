/**
 * A process that ran GEMMs on BLAS threads exits cleanly, also with the OpenMP build of OpenBLAS (Debian's
 * libopenblas0-openmp, where it is the only one installed the default `libopenblas.so.0`): koffi unloads its
 * libraries as Node exits while libgomp's threads still run, which crashed every such exit with a segfault until
 * the loaded library was pinned (see `pin` in src/backend/native/blas.ts). Each run in a child process.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { it } from 'node:test';

const indexUrl = new URL('../../../src/index.js', import.meta.url).href;
const OPENMP = '/usr/lib/x86_64-linux-gnu/openblas-openmp/libopenblas.so.0';

const script = `
import * as mb from '${indexUrl}';
mb.setBackend('native');
mb.wasmRuntime().threads = 2;
const a = mb.uniform([256, 256], -1, 1);
for (let i = 0; i < 100; i++) mb.matmul(a, a);
console.log(mb.backendInfo().facts.library);
`;

function runs(library: string | undefined, times: number): void {
  for (let i = 0; i < times; i++) {
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
      encoding: 'utf8',
      timeout: 30_000,
      env: {
        ...process.env,
        NODE_TEST_CONTEXT: undefined,
        MINIBATCH_BACKEND: undefined,
        MINIBATCH_BLAS: library,
      },
    });
    assert.equal(r.signal, null, `run ${i + 1}: killed by ${r.signal} (${r.stderr.trim().slice(-300)})`);
    assert.equal(r.status, 0, `run ${i + 1}: exit status ${r.status}: ${r.stderr.trim().slice(-300)}`);
    if (library) assert.equal(r.stdout.trim(), library);
  }
}

it('exits cleanly after threaded GEMMs on the default BLAS', { skip: process.platform !== 'linux' }, () => {
  runs(undefined, 3);
});

it('exits cleanly after threaded GEMMs on the OpenMP OpenBLAS', {
  skip: !existsSync(OPENMP) && `${OPENMP} is not installed (apt-get install libopenblas0-openmp)`,
}, () => {
  runs(OPENMP, 8);
});
