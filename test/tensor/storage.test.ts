/**
 * allocStorage: small arrays are views into shared slabs (see SLAB_CHUNKS in src/tensor/dtype.ts). They must
 * be zeroed, never overlap, stay 64-byte aligned, and `toTypedArray` must hand out a buffer of its own.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as mb from '../../src/index.js';
import { allocStorage } from '../../src/tensor/dtype.js';

describe('storage allocation', () => {
  it('gives disjoint, aligned arrays of every size and dtype, zeroed when asked', () => {
    const seen: { buffer: ArrayBufferLike; start: number; end: number }[] = [];
    for (const dtype of ['float32', 'int32', 'bool'] as const) {
      for (const n of [0, 1, 16, 17, 100, 1000, 4096, 4097, 20000]) {
        for (let k = 0; k < 40; k++) {
          // Zeroed and unzeroed requests, interleaved: they come from separate slabs and must not overlap either.
          const zeroed = k % 2 === 0;
          const a = allocStorage(dtype, n, zeroed);
          assert.equal(a.length, n);
          if (zeroed) {
            assert.ok(
              a.every((v) => v === 0),
              `${dtype}[${n}] is zeroed`,
            );
          }
          assert.equal(a.byteOffset % 64, 0, `${dtype}[${n}] is 64-byte aligned`);
          a.fill(1);
          const [start, end] = [a.byteOffset, a.byteOffset + a.byteLength];
          for (const s of seen) {
            if (s.buffer === a.buffer) assert.ok(end <= s.start || start >= s.end, `${dtype}[${n}] overlaps`);
          }
          seen.push({ buffer: a.buffer, start, end });
        }
      }
    }
  });

  it('toTypedArray returns an array whose buffer is its own (safe to transfer)', () => {
    const t = mb.arange(0, 100);
    const copy = t.toTypedArray();
    assert.equal(copy.byteLength, copy.buffer.byteLength);
    assert.deepEqual(
      Array.from(copy),
      Array.from({ length: 100 }, (_, i) => i),
    );
    structuredClone(copy.buffer, { transfer: [copy.buffer] });
    assert.equal(t.sum().item(), 4950, 'the tensor is intact after its copy was transferred');
  });
});

it('storage allocated without zeroing has the size and type asked for (0xFF-poisoned under npm test)', () => {
  const poisoned = process.env.MINIBATCH_POISON_UNINIT === '1';
  for (const n of [3, 100, 5000, 70_000]) {
    const f = allocStorage('float32', n, false);
    const i = allocStorage('int32', n, false);
    const b = allocStorage('bool', n, false);
    assert.ok(f instanceof Float32Array && i instanceof Int32Array && b instanceof Uint8Array);
    assert.deepEqual([f.length, i.length, b.length], [n, n, n]);
    if (poisoned) {
      assert.ok(f.every(Number.isNaN), `float32 × ${n} poisoned`);
      assert.ok(i.every((v) => v === -1) && b.every((v) => v === 255), `int32/bool × ${n} poisoned`);
    }
  }
});
