/**
 * IDX files, the format of MNIST and Fashion-MNIST (http://yann.lecun.com/exdb/mnist/, "FILE FORMATS").
 *
 * Layout, all integers big-endian:
 *   bytes 0-1   zero
 *   byte  2     type code: 0x08 ubyte, 0x09 byte, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64
 *   byte  3     D, the number of dimensions
 *   4·D bytes   the dimensions, unsigned 32-bit each
 *   the data    row-major, prod(dims) · itemsize bytes, nothing after it
 * Files are usually gzipped; a gzip stream is recognised by its own magic (1f 8b), not by the file name,
 * because browsers and some servers silently decompress `.gz` downloads.
 */
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { FormatError, fmtShape, ValueError } from '../errors.js';

/** The typed arrays an IDX file can decode to, one per type code. */
export type IdxData = Uint8Array | Int8Array | Int16Array | Int32Array | Float32Array | Float64Array;

/** A decoded IDX file: its dimensions and its data, row-major, in native byte order. */
export interface IdxArray {
  shape: number[];
  data: IdxData;
}

type IdxCtor =
  | Uint8ArrayConstructor
  | Int8ArrayConstructor
  | Int16ArrayConstructor
  | Int32ArrayConstructor
  | Float32ArrayConstructor
  | Float64ArrayConstructor;

interface IdxType {
  name: string;
  ctor: IdxCtor;
  /** Reads one big-endian element. */
  get: (view: DataView, offset: number) => number;
}

const TYPES: ReadonlyMap<number, IdxType> = new Map([
  [0x08, { name: 'ubyte', ctor: Uint8Array, get: (v, o) => v.getUint8(o) }],
  [0x09, { name: 'byte', ctor: Int8Array, get: (v, o) => v.getInt8(o) }],
  [0x0b, { name: 'int16', ctor: Int16Array, get: (v, o) => v.getInt16(o) }],
  [0x0c, { name: 'int32', ctor: Int32Array, get: (v, o) => v.getInt32(o) }],
  [0x0d, { name: 'float32', ctor: Float32Array, get: (v, o) => v.getFloat32(o) }],
  [0x0e, { name: 'float64', ctor: Float64Array, get: (v, o) => v.getFloat64(o) }],
] satisfies [number, IdxType][]);

const hex = (bytes: Uint8Array): string => [...bytes].map((b) => b.toString(16).padStart(2, '0')).join(' ');

/**
 * Read an IDX file, gzipped or raw, from a path or from bytes already in memory. Everything is checked
 * before anything is returned: the magic, the type code, the header length, and that the data is exactly
 * prod(dims) · itemsize bytes (a truncated download and trailing bytes are both errors).
 *
 * @param source a file path, or the file's bytes
 * @param name what error messages call the file when `source` is bytes
 * @throws FormatError naming the file and the problem
 * @example
 * const { shape, data } = readIdx('/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz');
 * shape; // [10000]
 * data;  // Uint8Array of labels 0..9
 */
export function readIdx(source: string | Uint8Array, name = '<buffer>'): IdxArray {
  const file = typeof source === 'string' ? source : name;
  let bytes = typeof source === 'string' ? readFileSync(source) : source;
  if (bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b) {
    try {
      bytes = gunzipSync(bytes);
    } catch (e) {
      throw new FormatError('idx', file, `bad gzip: ${(e as Error).message}`);
    }
  }
  return decodeIdx(bytes, file);
}

/**
 * Decode raw (not gzipped) IDX bytes. `readIdx` is the usual entry point; this is the part after gunzip.
 *
 * @example
 * decodeIdx(encodeIdx([2], new Uint8Array([7, 9]))); // { shape: [2], data: Uint8Array [7, 9] }
 */
export function decodeIdx(bytes: Uint8Array, file = '<buffer>'): IdxArray {
  const fail = (detail: string): never => {
    throw new FormatError('idx', file, detail);
  };
  if (bytes.length < 4) fail(`too short for an IDX header (got ${bytes.length} bytes, expected at least 4)`);
  if (bytes[0] !== 0 || bytes[1] !== 0) {
    fail(
      `bad magic (got ${hex(bytes.subarray(0, 4))}, expected 00 00 then a type code and a dimension count)`,
    );
  }
  const type = TYPES.get(bytes[2]!);
  if (type === undefined) {
    const code = bytes[2]!.toString(16).padStart(2, '0');
    fail(
      `unknown type code 0x${code} (expected 08 ubyte, 09 byte, 0b int16, 0c int32, 0d float32 or 0e float64)`,
    );
  }
  const { name, ctor, get } = type!;
  const ndim = bytes[3]!;
  if (ndim === 0) fail('header has 0 dimensions (expected at least 1)');
  const headerBytes = 4 + 4 * ndim;
  if (bytes.length < headerBytes) {
    fail(`truncated header: ${ndim} dimensions need ${headerBytes} bytes, file has ${bytes.length}`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const shape: number[] = [];
  for (let i = 0; i < ndim; i++) shape.push(view.getUint32(4 + 4 * i));
  // A float product: with hostile dims it may be huge or Infinity, which still compares unequal below.
  const count = shape.reduce((a, b) => a * b, 1);
  const expected = count * ctor.BYTES_PER_ELEMENT;
  const actual = bytes.length - headerBytes;
  if (actual !== expected) {
    const what = ctor === Uint8Array ? '' : ` ${name}`;
    fail(
      `${actual < expected ? 'truncated' : 'trailing bytes'}: header says ${shape.join('x')}${what} = ` +
        `${expected} bytes, file has ${actual}`,
    );
  }
  const data = new ctor(count);
  if (ctor.BYTES_PER_ELEMENT === 1) {
    // No byte order to fix; for int8, `set` wraps 0x80..0xff to -128..-1, which is the IDX meaning.
    data.set(bytes.subarray(headerBytes));
  } else {
    const size = ctor.BYTES_PER_ELEMENT;
    for (let i = 0; i < count; i++) data[i] = get(view, headerBytes + i * size);
  }
  return { shape, data };
}

/**
 * Encode a ubyte array as raw IDX bytes (gzip them with `gzipSync` for the usual `.gz` files).
 *
 * @throws ValueError when the data does not have prod(shape) elements or a dimension is not a u32
 * @example
 * const bytes = encodeIdx([2, 2], new Uint8Array([0, 1, 2, 3]));
 * bytes.length; // 4 + 2·4 + 4 = 16
 */
export function encodeIdx(shape: readonly number[], data: Uint8Array): Uint8Array {
  if (shape.length < 1 || shape.length > 255) {
    throw new ValueError('encodeIdx', `IDX needs 1 to 255 dimensions (got ${shape.length})`);
  }
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0 || d > 0xffffffff) {
      throw new ValueError('encodeIdx', `dimensions must be integers in [0, 2^32) (got ${fmtShape(shape)})`);
    }
  }
  const count = shape.reduce((a, b) => a * b, 1);
  if (count !== data.length) {
    throw new ValueError(
      'encodeIdx',
      `data has ${data.length} elements (expected ${count} for shape ${fmtShape(shape)})`,
    );
  }
  const headerBytes = 4 + 4 * shape.length;
  const out = new Uint8Array(headerBytes + count);
  const view = new DataView(out.buffer);
  out[2] = 0x08;
  out[3] = shape.length;
  shape.forEach((d, i) => {
    view.setUint32(4 + 4 * i, d);
  });
  out.set(data, headerBytes);
  return out;
}
