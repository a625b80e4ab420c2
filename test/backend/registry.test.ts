/**
 * The kernel registry composes a backend over its `base` chain down to the reference `js`: the nearest
 * backend's kernel wins, `backendInfo().fallbackFrom` says where each missing kernel comes from, a base not
 * registered here is passed over, and an unavailable backend says why when chosen. Fake backends with
 * priority below js, so the default is untouched.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { kernels, reportUnavailable } from '../../src/backend/backend.js';
import { jsKernels } from '../../src/backend/js/kernels.js';
import * as mb from '../../src/index.js';

const fake = (name: string, base?: string): mb.Backend => ({
  name,
  priority: -1,
  ...(base ? { base } : {}),
  alloc: (dtype, n) => (dtype === 'float32' ? new Float32Array(n) : new Int32Array(n)) as never,
  describe: () => ({ kind: name }),
});

describe('backend registry: base chains', () => {
  const exp: typeof jsKernels.exp = (x, out) => jsKernels.exp(x, out);
  const neg: typeof jsKernels.neg = (x, out) => jsKernels.neg(x, out);
  const negTop: typeof jsKernels.neg = (x, out) => jsKernels.neg(x, out);
  let prev = '';
  before(() => {
    prev = mb.getBackend();
    mb.registerBackend(fake('test-base'), { exp, neg });
    mb.registerBackend(fake('test-top', 'test-base'), { neg: negTop });
    mb.registerBackend(fake('test-orphan', 'test-missing'), { neg: negTop });
  });
  after(() => mb.setBackend(prev));

  it('the nearest kernel wins; fallbacks list the rest with the backend each comes from', () => {
    mb.setBackend('test-top');
    assert.equal(kernels().neg, negTop);
    assert.equal(kernels().exp, exp);
    assert.equal(kernels().log, jsKernels.log);
    const info = mb.backendInfo();
    assert.equal(info.name, 'test-top');
    assert.ok(!info.fallbacks.includes('neg'));
    assert.ok(info.fallbacks.includes('exp') && info.fallbacks.includes('log'));
    assert.equal(info.fallbackFrom.exp, 'test-base');
    assert.equal(info.fallbackFrom.log, 'js');
    assert.equal(info.fallbackFrom.neg, undefined);
    assert.deepEqual(Object.keys(info.fallbackFrom), info.fallbacks);
    // The composed table computes.
    assert.deepEqual(mb.neg(mb.tensor([1, -2])).toList(), [-1, 2]);
  });

  it('a base with no base of its own sits on js; js itself has no fallbacks', () => {
    mb.setBackend('test-base');
    assert.deepEqual(new Set(Object.values(mb.backendInfo().fallbackFrom)), new Set(['js']));
    mb.setBackend('js');
    assert.deepEqual(mb.backendInfo().fallbacks, []);
  });

  it('a base not registered here is passed over for the reference', () => {
    mb.setBackend('test-orphan');
    assert.equal(kernels().exp, jsKernels.exp);
    assert.equal(mb.backendInfo().fallbackFrom.exp, 'js');
  });

  it('registering a base again re-merges the chosen backend over it', () => {
    mb.setBackend('test-top');
    const exp2: typeof jsKernels.exp = (x, out) => jsKernels.exp(x, out);
    mb.registerBackend(fake('test-base'), { exp: exp2 });
    assert.equal(kernels().exp, exp2);
    assert.equal(kernels().neg, negTop);
    assert.equal(mb.backendInfo().fallbackFrom.neg, undefined);
  });

  it('an unavailable backend is listed with its reason, and choosing it says why', () => {
    reportUnavailable('test-gone', 'libgone.so: cannot open shared object file');
    assert.equal(mb.backendInfo().unavailable['test-gone'], 'libgone.so: cannot open shared object file');
    assert.throws(
      () => mb.setBackend('test-gone'),
      /setBackend: backend 'test-gone' is unavailable here: libgone\.so: cannot open shared object file/,
    );
    // A registered backend is never reported unavailable; registering clears an old report.
    reportUnavailable('test-top', 'nope');
    assert.equal(mb.backendInfo().unavailable['test-top'], undefined);
    mb.registerBackend(fake('test-gone'), {});
    assert.equal(mb.backendInfo().unavailable['test-gone'], undefined);
  });
});
