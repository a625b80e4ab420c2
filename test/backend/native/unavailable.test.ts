/**
 * Without a usable BLAS minibatch still works (on wasm, else js) and says once, plainly, why native is off:
 * a library that does not exist, `MINIBATCH_BLAS=none`, and koffi missing (a resolve hook hides it). Each in
 * a child process, since the backend loads at import.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { it } from 'node:test';

const indexUrl = new URL('../../../src/index.js', import.meta.url).href;

const script = `
import * as mb from '${indexUrl}';
const info = mb.backendInfo();
const y = mb.matmul(mb.tensor([[1, 2], [3, 4]]), mb.tensor([[5, 6], [7, 8]])).toList();
let err = '';
try { mb.setBackend('native'); } catch (e) { err = e.message; }
console.log(JSON.stringify({ name: info.name, unavailable: info.unavailable, y, err, backends: mb.listBackends() }));
`;

// A resolve hook that makes `import('koffi')` fail as it does where the package is not installed.
const hideKoffi = `data:text/javascript,${encodeURIComponent(
  `import { register } from 'node:module';
   register('data:text/javascript,' + encodeURIComponent(
     "export async function resolve(s, c, next) { return next(s === 'koffi' ? 'koffi-not-installed' : s, c); }"));`,
)}`;

interface Result {
  name: string;
  unavailable: Record<string, string>;
  y: number[][];
  err: string;
  backends: string[];
  stderr: string;
}

function run(env: Record<string, string>, flags: string[] = []): Result {
  const r = spawnSync(process.execPath, [...flags, '--input-type=module', '-e', script], {
    encoding: 'utf8',
    timeout: 20_000,
    // NODE_TEST_CONTEXT, set by `node --test`, would make the child report to a test runner instead.
    env: {
      ...process.env,
      NODE_TEST_CONTEXT: undefined,
      MINIBATCH_BACKEND: undefined,
      MINIBATCH_BLAS: undefined,
      ...env,
    },
  });
  assert.equal(r.status, 0, r.stderr);
  return { ...(JSON.parse(r.stdout.trim().split('\n').pop()!) as Omit<Result, 'stderr'>), stderr: r.stderr };
}

function expectFallback(r: Result, reason: RegExp): void {
  assert.ok(!r.backends.includes('native'), `native is not registered (${r.backends})`);
  assert.equal(r.name, r.backends.includes('wasm') ? 'wasm' : 'js');
  assert.deepEqual(r.y, [
    [19, 22],
    [43, 50],
  ]);
  assert.match(r.unavailable.native ?? '', reason);
  assert.match(r.err, /setBackend: backend 'native' is unavailable here: /);
  assert.ok(r.err.endsWith(r.unavailable.native!));
  console.log(`native off: ${r.unavailable.native}`);
}

it('a library that does not load: wasm runs, the reason is listed and warned about once', () => {
  const r = run({ MINIBATCH_BLAS: '/nonexistent/libnope.so.0' });
  // Where koffi itself is missing, that is the reason instead.
  expectFallback(r, /libnope\.so\.0|koffi/);
  assert.equal(r.stderr.match(/minibatch: native backend off, running on wasm: /g)?.length, 1, r.stderr);
});

it('MINIBATCH_BLAS=none turns it off without a warning', () => {
  const r = run({ MINIBATCH_BLAS: 'none' });
  expectFallback(r, /^turned off by MINIBATCH_BLAS=none$/);
  assert.doesNotMatch(r.stderr, /minibatch:/);
});

it('koffi missing: the reason says to install it, and nothing is printed', () => {
  const r = run({}, ['--import', hideKoffi]);
  expectFallback(r, /^the koffi package is not installed \(npm install koffi\)$/);
  assert.doesNotMatch(r.stderr, /minibatch:/);
});
