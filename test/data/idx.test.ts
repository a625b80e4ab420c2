import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { decodeIdx, encodeIdx, readIdx } from '../../src/data/idx.js';
import { FormatError, ValueError } from '../../src/errors.js';

const bytes = (...b: number[]) => new Uint8Array(b);

/** Asserts that `fn` throws a FormatError about `file` with exactly this message. */
function throwsFormat(fn: () => unknown, file: string, message: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof FormatError, `expected FormatError, got ${e}`);
    assert.equal(e.file, file);
    assert.equal(e.message, message);
    return true;
  });
}

describe('readIdx', () => {
  const images = Uint8Array.from({ length: 3 * 2 * 2 }, (_, i) => i * 20);
  const raw = encodeIdx([3, 2, 2], images);

  it('encodes the header big-endian', () => {
    assert.deepEqual([...raw.subarray(0, 16)], [0, 0, 8, 3, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 2]);
    assert.equal(raw.length, 16 + 12);
  });

  it('round-trips ubyte data, raw and gzipped, from bytes and from a path', () => {
    const dir = mkdtempSync(join(tmpdir(), 'idx-'));
    writeFileSync(join(dir, 'a-idx3-ubyte'), raw);
    writeFileSync(join(dir, 'a-idx3-ubyte.gz'), gzipSync(raw));
    for (const got of [
      readIdx(raw),
      readIdx(gzipSync(raw)),
      readIdx(join(dir, 'a-idx3-ubyte')),
      readIdx(join(dir, 'a-idx3-ubyte.gz')),
    ]) {
      assert.deepEqual(got.shape, [3, 2, 2]);
      assert.ok(got.data instanceof Uint8Array);
      assert.deepEqual([...got.data], [...images]);
    }
  });

  it('copies the data out of the caller buffer', () => {
    const buf = encodeIdx([2], bytes(1, 2));
    const { data } = readIdx(buf);
    buf[8] = 99;
    assert.deepEqual([...data], [1, 2]);
  });

  it('accepts an empty dimension', () => {
    const got = readIdx(encodeIdx([0, 28, 28], new Uint8Array(0)));
    assert.deepEqual(got.shape, [0, 28, 28]);
    assert.equal(got.data.length, 0);
  });

  it('converts every multi-byte type from big-endian', () => {
    // [type code, element bytes, typed array, expected values]
    const cases: [number, number[], unknown, number[]][] = [
      [0x09, [0xff, 0x80, 0x7f], Int8Array, [-1, -128, 127]],
      [0x0b, [0xff, 0xfe, 0x01, 0x00], Int16Array, [-2, 256]],
      [0x0c, [0x01, 0x02, 0x03, 0x04, 0xff, 0xff, 0xff, 0xff], Int32Array, [16909060, -1]],
      [0x0d, [0x3f, 0xc0, 0, 0, 0xc1, 0x20, 0, 0], Float32Array, [1.5, -10]],
      [
        0x0e,
        [0xc0, 0, 0, 0, 0, 0, 0, 0, 0x3f, 0xb9, 0x99, 0x99, 0x99, 0x99, 0x99, 0x9a],
        Float64Array,
        [-2, 0.1],
      ],
    ];
    for (const [code, body, ctor, expected] of cases) {
      const n = expected.length;
      const got = readIdx(bytes(0, 0, code, 1, 0, 0, 0, n, ...body));
      assert.equal(got.data.constructor, ctor, `type 0x${code.toString(16)}`);
      assert.deepEqual(got.shape, [n]);
      assert.deepEqual([...got.data], expected);
    }
  });

  it('rejects truncated data, naming the sizes', () => {
    const dir = mkdtempSync(join(tmpdir(), 'idx-'));
    const file = join(dir, 'train-images-idx3-ubyte.gz');
    writeFileSync(file, gzipSync(raw.subarray(0, 16 + 5)));
    throwsFormat(
      () => readIdx(file),
      file,
      `idx: ${file}: truncated: header says 3x2x2 = 12 bytes, file has 5`,
    );
  });

  it('rejects truncated multi-byte data, naming the type', () => {
    throwsFormat(
      () => readIdx(bytes(0, 0, 0x0b, 2, 0, 0, 0, 2, 0, 0, 0, 2, 1, 2, 3, 4, 5, 6), 'x.idx'),
      'x.idx',
      'idx: x.idx: truncated: header says 2x2 int16 = 8 bytes, file has 6',
    );
  });

  it('rejects trailing bytes', () => {
    throwsFormat(
      () => readIdx(gzipSync(Buffer.concat([raw, bytes(0, 0)])), 'y.gz'),
      'y.gz',
      'idx: y.gz: trailing bytes: header says 3x2x2 = 12 bytes, file has 14',
    );
  });

  it('rejects a shape that disagrees with the data size', () => {
    const wrong = raw.slice();
    wrong[7] = 4; // says 4x2x2 = 16 bytes, has 12
    throwsFormat(
      () => readIdx(wrong),
      '<buffer>',
      'idx: <buffer>: truncated: header says 4x2x2 = 16 bytes, file has 12',
    );
  });

  it('rejects a wrong magic', () => {
    throwsFormat(
      () => readIdx(bytes(0, 1, 8, 1, 0, 0, 0, 0)),
      '<buffer>',
      'idx: <buffer>: bad magic (got 00 01 08 01, expected 00 00 then a type code and a dimension count)',
    );
    throwsFormat(
      () => readIdx(bytes(0x50, 0x4b, 3, 4, 0, 0), 'z.zip'),
      'z.zip',
      'idx: z.zip: bad magic (got 50 4b 03 04, expected 00 00 then a type code and a dimension count)',
    );
  });

  it('rejects an unknown type code', () => {
    throwsFormat(
      () => readIdx(bytes(0, 0, 0x0a, 1, 0, 0, 0, 0)),
      '<buffer>',
      'idx: <buffer>: unknown type code 0x0a (expected 08 ubyte, 09 byte, 0b int16, 0c int32, 0d float32 or 0e float64)',
    );
  });

  it('rejects a header with no dimensions, a cut header and a tiny file', () => {
    throwsFormat(
      () => readIdx(bytes(0, 0, 8, 0)),
      '<buffer>',
      'idx: <buffer>: header has 0 dimensions (expected at least 1)',
    );
    throwsFormat(
      () => readIdx(bytes(0, 0, 8, 3, 0, 0, 0, 1, 0, 0)),
      '<buffer>',
      'idx: <buffer>: truncated header: 3 dimensions need 16 bytes, file has 10',
    );
    throwsFormat(
      () => readIdx(bytes(0, 0)),
      '<buffer>',
      'idx: <buffer>: too short for an IDX header (got 2 bytes, expected at least 4)',
    );
  });

  it('rejects bad gzip: a cut stream and a corrupted checksum', () => {
    const gz = gzipSync(raw);
    throwsFormat(
      () => readIdx(gz.subarray(0, gz.length - 10), 'a.gz'),
      'a.gz',
      'idx: a.gz: bad gzip: unexpected end of file',
    );
    const flipped = Buffer.from(gz);
    flipped[flipped.length - 6]! ^= 0xff; // inside the CRC32 trailer
    throwsFormat(() => readIdx(flipped, 'b.gz'), 'b.gz', 'idx: b.gz: bad gzip: incorrect data check');
  });

  it('decodeIdx does not gunzip', () => {
    throwsFormat(
      () => decodeIdx(gzipSync(raw), 'c.gz'),
      'c.gz',
      'idx: c.gz: bad magic (got 1f 8b 08 00, expected 00 00 then a type code and a dimension count)',
    );
  });

  it('reads a real Fashion-MNIST file when Debian has it', (t) => {
    const file = '/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz';
    if (!existsSync(file)) return t.skip(`${file} not installed (apt-get install dataset-fashion-mnist)`);
    const { shape, data } = readIdx(file);
    assert.deepEqual(shape, [10000]);
    // The Fashion-MNIST test set has exactly 1,000 images of each class.
    const counts = new Array(10).fill(0);
    for (const l of data) counts[l]++;
    assert.deepEqual(counts, new Array(10).fill(1000));
  });
});

describe('encodeIdx', () => {
  it('rejects data of the wrong size and bad dimensions', () => {
    assert.throws(() => encodeIdx([2, 3], new Uint8Array(5)), {
      name: 'ValueError',
      message: 'encodeIdx: data has 5 elements (expected 6 for shape [2,3])',
    });
    assert.throws(() => encodeIdx([-1], new Uint8Array(0)), ValueError);
    assert.throws(() => encodeIdx([1.5], new Uint8Array(1)), {
      message: 'encodeIdx: dimensions must be integers in [0, 2^32) (got [1.5])',
    });
    assert.throws(() => encodeIdx([], new Uint8Array(1)), {
      message: 'encodeIdx: IDX needs 1 to 255 dimensions (got 0)',
    });
  });
});
