/**
 * The safetensors format (huggingface/safetensors `tensor.rs`), so weights move to and from PyTorch:
 *
 *   [8 bytes: N, u64 little-endian][N bytes: JSON header, padded with spaces][data buffer]
 *
 * The header maps each name to `{"dtype", "shape", "data_offsets": [BEGIN, END]}` (offsets into the data
 * buffer, END exclusive), plus an optional `"__metadata__"` string→string map. Tensors are row-major and
 * little-endian, and together cover the data buffer exactly once.
 *
 * NOTE: tensor data is read and written through typed arrays, i.e. in platform byte order. Every platform that
 * Node and the browsers run on is little-endian, as the format requires.
 *
 * This module imports no Node built-ins at load time (the path-based functions import them on first use), so
 * the encoder and decoder also work in a browser.
 */
import { FormatError, fmtShape, ValueError } from '../errors.js';

/** Largest header the reference reader accepts (`MAX_HEADER_SIZE` in tensor.rs): 100 MB. */
export const MAX_HEADER_SIZE = 100_000_000;

/** The typed array that holds each dtype's elements. F16 and BF16 keep their raw 16-bit patterns. */
interface ArrayOf {
  BOOL: Uint8Array;
  U8: Uint8Array;
  I8: Int8Array;
  I16: Int16Array;
  U16: Uint16Array;
  F16: Uint16Array;
  BF16: Uint16Array;
  I32: Int32Array;
  U32: Uint32Array;
  F32: Float32Array;
  F64: Float64Array;
  I64: BigInt64Array;
  U64: BigUint64Array;
}

/** A safetensors dtype this module reads and writes. */
export type SafetensorsDtype = keyof ArrayOf;

/** The floating-point dtypes, which {@link toFloat32Array} and {@link fromFloat32Array} convert. */
export type FloatDtype = 'F64' | 'F32' | 'BF16' | 'F16';

/** One tensor: its dtype, its shape (`[]` for a scalar) and its row-major elements. */
export type TensorEntry = {
  [D in SafetensorsDtype]: { dtype: D; shape: number[]; data: ArrayOf[D] };
}[SafetensorsDtype];

/** What {@link decodeSafetensors} returns: the tensors in file order, and `__metadata__` if present. */
export interface SafetensorsFile {
  tensors: Map<string, TensorEntry>;
  metadata: Record<string, string> | undefined;
}

type AnyArray = ArrayOf[SafetensorsDtype];

interface DtypeInfo {
  size: number;
  /** A view of `length` elements at `byteOffset`; the offset must be a multiple of `size`. */
  view: (buffer: ArrayBufferLike, byteOffset: number, length: number) => AnyArray;
  is: (data: unknown) => boolean;
}

function info<T extends AnyArray>(Ctor: {
  new (buffer: ArrayBufferLike, byteOffset: number, length: number): T;
  BYTES_PER_ELEMENT: number;
}): DtypeInfo {
  return {
    size: Ctor.BYTES_PER_ELEMENT,
    view: (buffer, byteOffset, length) => new Ctor(buffer, byteOffset, length),
    is: (data) => data instanceof Ctor,
  };
}

/**
 * Listed in the order of tensor.rs's `enum Dtype`, whose derived ordering the writer sorts by (descending), so
 * larger elements come first and every tensor starts at an offset aligned to its element size.
 */
const DTYPES: Record<SafetensorsDtype, DtypeInfo> = {
  BOOL: info(Uint8Array),
  U8: info(Uint8Array),
  I8: info(Int8Array),
  I16: info(Int16Array),
  U16: info(Uint16Array),
  F16: info(Uint16Array),
  BF16: info(Uint16Array),
  I32: info(Int32Array),
  U32: info(Uint32Array),
  F32: info(Float32Array),
  F64: info(Float64Array),
  I64: info(BigInt64Array),
  U64: info(BigUint64Array),
};
const RANK = Object.fromEntries(Object.keys(DTYPES).map((d, i) => [d, i])) as Record<
  SafetensorsDtype,
  number
>;

/** Dtypes the format defines that have no typed array here: named in errors instead of "unknown". */
const UNSUPPORTED = [
  'F8_E5M2',
  'F8_E4M3',
  'F8_E8M0',
  'F8_E4M3FNUZ',
  'F8_E5M2FNUZ',
  'F4',
  'F6_E2M3',
  'F6_E3M2',
  'C64',
];

function isDtype(d: unknown): d is SafetensorsDtype {
  return typeof d === 'string' && Object.hasOwn(DTYPES, d);
}

/**
 * Serialize tensors (and optional string→string metadata) to safetensors bytes, laid out as the reference
 * writer does: sorted by descending dtype then name, header padded with spaces to a multiple of 8.
 *
 * @example
 * const bytes = encodeSafetensors(
 *   { '0.weight': { dtype: 'F32', shape: [2, 3], data: new Float32Array(6) } },
 *   { format: 'pt' },
 * );
 */
export function encodeSafetensors(
  entries: Record<string, TensorEntry> | ReadonlyMap<string, TensorEntry>,
  metadata?: Record<string, string>,
): Uint8Array {
  const op = 'encodeSafetensors';
  const list = [...(entries instanceof Map ? entries : Object.entries(entries))] as [string, TensorEntry][];
  for (const [name, t] of list) checkEntry(op, name, t);
  list.sort(([a, ta], [b, tb]) => RANK[tb.dtype] - RANK[ta.dtype] || (a < b ? -1 : a > b ? 1 : 0));

  // Built as text, not JSON.stringify(object): JS objects would move integer-like names ("0", "1") first.
  const parts: string[] = [];
  if (metadata !== undefined) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') {
        throw new ValueError(op, `metadata must map strings to strings (key '${k}' has ${typeof v})`);
      }
    }
    parts.push(`"__metadata__":${JSON.stringify(metadata)}`);
  }
  let offset = 0;
  for (const [name, t] of list) {
    const end = offset + t.data.byteLength;
    parts.push(
      `${JSON.stringify(name)}:{"dtype":"${t.dtype}","shape":${JSON.stringify(t.shape)},"data_offsets":[${offset},${end}]}`,
    );
    offset = end;
  }
  const json = new TextEncoder().encode(`{${parts.join(',')}}`);
  const n = Math.ceil(json.length / 8) * 8;

  const out = new Uint8Array(8 + n + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(n), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + n);
  let pos = 8 + n;
  for (const [, t] of list) {
    out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), pos);
    pos += t.data.byteLength;
  }
  return out;
}

function checkEntry(op: string, name: string, t: TensorEntry): void {
  if (name === '__metadata__') {
    throw new ValueError(op, `'__metadata__' is reserved and cannot name a tensor`);
  }
  if (!isDtype(t.dtype)) {
    throw new ValueError(op, `tensor '${name}': unknown dtype '${t.dtype}' (expected one of ${dtypeList()})`);
  }
  const numel = checkShape(t.shape);
  if (numel === undefined) {
    throw new ValueError(
      op,
      `tensor '${name}': shape must be an array of non-negative integers (got ${JSON.stringify(t.shape)})`,
    );
  }
  if (!DTYPES[t.dtype].is(t.data)) {
    const got = (t.data as object | null)?.constructor?.name ?? String(t.data);
    throw new ValueError(
      op,
      `tensor '${name}': ${t.dtype} data must be a ${arrayName(t.dtype)} (got ${got})`,
    );
  }
  if (t.data.length !== numel) {
    throw new ValueError(
      op,
      `tensor '${name}': data length does not match shape ${fmtShape(t.shape)} (got ${t.data.length}, expected ${numel})`,
    );
  }
}

/** The element count of a valid shape, or undefined if the shape is not a list of non-negative integers. */
function checkShape(shape: unknown): number | undefined {
  if (!Array.isArray(shape)) return undefined;
  let numel = 1;
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d < 0) return undefined;
    numel *= d;
  }
  return Number.isSafeInteger(numel) ? numel : undefined;
}

/**
 * Parse safetensors bytes. Everything is validated before anything is returned (header length, JSON, dtypes,
 * shapes, offsets, full coverage of the data buffer, no duplicate keys, metadata); a bad file throws
 * {@link FormatError} naming `file` and the problem. Tensor data are views into `bytes` where the offset is
 * aligned to the element size (the reference writer guarantees it), copies otherwise.
 *
 * @example
 * const { tensors, metadata } = decodeSafetensors(bytes, 'model.safetensors');
 * tensors.get('0.weight'); // { dtype: 'F32', shape: [256, 784], data: Float32Array(200704) }
 */
export function decodeSafetensors(bytes: Uint8Array, file = '<bytes>'): SafetensorsFile {
  return decode('decodeSafetensors', bytes, file);
}

interface Slot {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  begin: number;
  end: number;
}

function decode(op: string, bytes: Uint8Array, file: string): SafetensorsFile {
  const fail = (detail: string): never => {
    throw new FormatError(op, file, detail);
  };
  if (bytes.length < 8) fail(`file is too short for the 8-byte header length (got ${bytes.length} bytes)`);
  const n64 = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  if (n64 > BigInt(MAX_HEADER_SIZE)) {
    fail(`header length ${n64} exceeds MAX_HEADER_SIZE (${MAX_HEADER_SIZE})`);
  }
  const n = Number(n64);
  if (8 + n > bytes.length) {
    fail(
      `header length ${n} runs past the end of the file (got ${bytes.length} bytes, expected at least ${8 + n})`,
    );
  }

  let text = '';
  try {
    // ignoreBOM keeps a byte-order mark in the text, so the '{' check below rejects it like the reference.
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes.subarray(8, 8 + n));
  } catch {
    fail('header is not valid UTF-8');
  }
  if (!text.startsWith('{')) fail(`header must start with '{' (got ${JSON.stringify(text.slice(0, 10))})`);
  let header: Record<string, unknown> = {};
  try {
    header = JSON.parse(text);
  } catch (err) {
    fail(`header is not valid JSON (${(err as Error).message})`);
  }
  const dup = findDuplicateKey(text);
  if (dup !== undefined) fail(`duplicate key ${JSON.stringify(dup)} in the header`);

  let metadata: Record<string, string> | undefined;
  const slots: Slot[] = [];
  for (const [name, raw] of Object.entries(header)) {
    if (name === '__metadata__') {
      if (!isRecord(raw)) fail(`'__metadata__' must be an object (got ${JSON.stringify(raw)})`);
      for (const [k, v] of Object.entries(raw as object)) {
        if (typeof v !== 'string') {
          fail(`'__metadata__' must map strings to strings (key '${k}' has ${typeOf(v)})`);
        }
      }
      metadata = raw as Record<string, string>;
      continue;
    }
    const where = `tensor '${name}'`;
    if (!isRecord(raw)) fail(`${where}: expected {dtype, shape, data_offsets} (got ${JSON.stringify(raw)})`);
    const { dtype, shape, data_offsets: offsets } = raw as Record<string, unknown>;
    if (!isDtype(dtype)) {
      fail(
        UNSUPPORTED.includes(dtype as string)
          ? `${where}: dtype ${dtype} is not supported (supported: ${dtypeList()})`
          : `${where}: unknown dtype ${JSON.stringify(dtype)} (expected one of ${dtypeList()})`,
      );
    }
    const numel = checkShape(shape);
    if (numel === undefined) {
      fail(`${where}: shape must be a list of non-negative integers (got ${JSON.stringify(shape)})`);
    }
    const [begin, end] = Array.isArray(offsets) ? offsets : [];
    if (
      !Array.isArray(offsets) ||
      offsets.length !== 2 ||
      !Number.isSafeInteger(begin) ||
      !Number.isSafeInteger(end) ||
      begin < 0 ||
      end < begin
    ) {
      fail(
        `${where}: data_offsets must be [BEGIN, END] with 0 <= BEGIN <= END (got ${JSON.stringify(offsets)})`,
      );
    }
    const d = dtype as SafetensorsDtype;
    const nbytes = (numel as number) * DTYPES[d].size;
    if (end - begin !== nbytes) {
      fail(
        `${where}: data_offsets [${begin},${end}] do not fit ${d}${fmtShape(shape as number[])} (got ${end - begin} bytes, expected ${nbytes})`,
      );
    }
    slots.push({ name, dtype: d, shape: shape as number[], begin, end });
  }

  // Anti-polyglot rule: sorted by offset, each tensor starts where the previous one ended, and the last one
  // ends at the end of the file, so no byte is unaccounted for and none is shared.
  slots.sort((a, b) => a.begin - b.begin || a.end - b.end);
  const dataLength = bytes.length - 8 - n;
  let pos = 0;
  let prev: Slot | undefined;
  for (const s of slots) {
    if (s.begin > pos) fail(`hole in the data buffer: bytes [${pos},${s.begin}) belong to no tensor`);
    if (s.begin < pos) {
      fail(
        `tensors '${prev!.name}' [${prev!.begin},${prev!.end}) and '${s.name}' [${s.begin},${s.end}) overlap`,
      );
    }
    if (s.end > dataLength) {
      fail(
        `tensor '${s.name}' ends at byte ${s.end} of the data buffer, which has only ${dataLength} bytes (truncated?)`,
      );
    }
    pos = s.end;
    prev = s;
  }
  if (pos !== dataLength) fail(`data buffer has ${dataLength} bytes but the tensors cover only ${pos}`);

  const tensors = new Map<string, TensorEntry>();
  for (const s of slots) {
    const { size, view } = DTYPES[s.dtype];
    const from = 8 + n + s.begin;
    const count = (s.end - s.begin) / size;
    const at = bytes.byteOffset + from;
    const data =
      at % size === 0
        ? view(bytes.buffer, at, count)
        : view(bytes.slice(from, 8 + n + s.end).buffer, 0, count);
    tensors.set(s.name, { dtype: s.dtype, shape: s.shape, data } as TensorEntry);
  }
  return { tensors, metadata };
}

/**
 * The first key that appears twice in one JSON object of `text` (already known to be valid JSON), at any
 * depth. JSON.parse would silently keep the last one.
 */
function findDuplicateKey(text: string): string | undefined {
  const objects: (Set<string> | null)[] = []; // one entry per open bracket; null for arrays
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      let j = i + 1;
      while (text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      const keys = objects[objects.length - 1];
      if (expectKey && keys) {
        const key: string = JSON.parse(text.slice(i, j + 1)); // decodes escapes: "a" and "\u0061" collide
        if (keys.has(key)) return key;
        keys.add(key);
        expectKey = false;
      }
      i = j;
    } else if (c === '{') {
      objects.push(new Set());
      expectKey = true;
    } else if (c === '[') {
      objects.push(null);
    } else if (c === '}' || c === ']') {
      objects.pop();
    } else if (c === ',') {
      expectKey = objects[objects.length - 1] != null;
    }
  }
  return undefined;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function typeOf(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v;
}

function dtypeList(): string {
  return Object.keys(DTYPES).join(', ');
}

function arrayName(dtype: SafetensorsDtype): string {
  return DTYPES[dtype].view(new ArrayBuffer(0), 0, 0).constructor.name;
}

/**
 * Write tensors to `path` in safetensors format, atomically (a crash leaves the old file or the new one).
 * Node only.
 *
 * @example
 * await saveSafetensors('mlp.safetensors', { '0.bias': { dtype: 'F32', shape: [16], data: bias } }, { format: 'pt' });
 * // Python: model.load_state_dict(safetensors.torch.load_file('mlp.safetensors'))
 */
export async function saveSafetensors(
  path: string,
  entries: Record<string, TensorEntry> | ReadonlyMap<string, TensorEntry>,
  metadata?: Record<string, string>,
): Promise<void> {
  const bytes = encodeSafetensors(entries, metadata);
  const { atomicWriteFile } = await import('./atomic.js');
  await atomicWriteFile(path, bytes);
}

/**
 * Read and validate a safetensors file (see {@link decodeSafetensors}); errors name the path. Node only.
 *
 * @example
 * const { tensors } = await loadSafetensors('mlp.safetensors');
 */
export async function loadSafetensors(path: string): Promise<SafetensorsFile> {
  const { readFile } = await import('node:fs/promises');
  let buf: Buffer;
  try {
    buf = await readFile(path);
  } catch (err) {
    // Node's EISDIR message names no file ("illegal operation on a directory, read").
    if ((err as NodeJS.ErrnoException).code === 'EISDIR')
      throw Object.assign(
        new FormatError('loadSafetensors', path, 'is a directory, not a safetensors file'),
        {
          code: 'EISDIR',
          cause: err,
        },
      );
    throw err;
  }
  return decode('loadSafetensors', new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength), path);
}

// ---- float conversions ----------------------------------------------------------------------------------

// Scratch for reinterpreting a float32's bits.
const F32 = new Float32Array(1);
const U32 = new Uint32Array(F32.buffer);

/**
 * The value of an IEEE half-precision bit pattern (exact: every f16 is a float32).
 *
 * @example
 * f16ToF32(0x3c00); // 1
 * f16ToF32(0x0001); // 5.960464477539063e-8 (smallest subnormal, 2^-24)
 */
export function f16ToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 31) return mant ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * (1024 + mant) * 2 ** (exp - 25);
}

/**
 * The half-precision bit pattern nearest to `x` (first rounded to float32), ties to even; overflow gives ±inf,
 * tiny values become subnormals or ±0, NaN becomes the quiet NaN 0x7e00 with its sign (as c10's fp16 does).
 *
 * @example
 * f32ToF16(1); // 0x3c00
 * f32ToF16(65520); // 0x7c00 (+inf: halfway above 65504 rounds to even, i.e. up)
 */
export function f32ToF16(x: number): number {
  F32[0] = x;
  const w = U32[0]!;
  const sign = (w >>> 16) & 0x8000;
  const abs = w & 0x7fffffff;
  if (abs > 0x7f800000) return sign | 0x7e00;
  if (abs >= 0x477ff000) return sign | 0x7c00; // >= 65520 (incl. inf) rounds to inf
  if (abs < 0x38800000) {
    // Below 2^-14, the smallest normal half: count units of 2^-24 (exact in a double), round half to even.
    // A result of 1024 is the bit pattern of 2^-14 itself, so rounding up into the normals just works.
    const v = Math.abs(F32[0]!) * 2 ** 24;
    let q = Math.floor(v);
    const r = v - q;
    if (r > 0.5 || (r === 0.5 && q & 1)) q++;
    return sign | q;
  }
  // Normal: rebias the exponent (127 -> 15) and drop 13 mantissa bits, rounding half to even. A carry out
  // of the mantissa correctly bumps the exponent.
  let h = (abs - 0x38000000) >>> 13;
  const rest = abs & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && h & 1)) h++;
  return sign | h;
}

/**
 * The value of a bfloat16 bit pattern: the top half of a float32.
 *
 * @example
 * bf16ToF32(0x3f80); // 1
 */
export function bf16ToF32(b: number): number {
  U32[0] = b << 16;
  return F32[0]!;
}

/**
 * The bfloat16 bit pattern nearest to `x` (first rounded to float32), ties to even: `(bits + 0x7fff +
 * ((bits >> 16) & 1)) >> 16`, as c10::BFloat16 rounds. NaN becomes 0x7fc0.
 *
 * @example
 * f32ToBf16(1); // 0x3f80
 * f32ToBf16(1 + 2 ** -8); // 0x3f80 (halfway, ties to even)
 */
export function f32ToBf16(x: number): number {
  F32[0] = x;
  const w = U32[0]!;
  if ((w & 0x7fffffff) > 0x7f800000) return 0x7fc0;
  // Largest non-NaN w is 0xff800000 (-inf), so the sum stays below 2^32 and >>> cannot wrap.
  return (w + 0x7fff + ((w >>> 16) & 1)) >>> 16;
}

/**
 * The values of a floating-point tensor as a Float32Array: F32 data is returned as is (not copied), F16, BF16
 * and F64 are converted (F64 rounds to nearest).
 *
 * @example
 * const w = toFloat32Array(tensors.get('extra.half')!); // Float32Array of the F16 values
 */
export function toFloat32Array(entry: TensorEntry): Float32Array {
  switch (entry.dtype) {
    case 'F32':
      return entry.data;
    case 'F64':
      return Float32Array.from(entry.data);
    case 'F16':
      return Float32Array.from(entry.data, f16ToF32);
    case 'BF16': {
      const bits = new Uint32Array(entry.data.length);
      for (let i = 0; i < bits.length; i++) bits[i] = entry.data[i]! << 16;
      return new Float32Array(bits.buffer);
    }
    default:
      throw new ValueError(
        'toFloat32Array',
        `dtype ${entry.dtype} is not a float dtype (expected F64, F32, BF16 or F16)`,
      );
  }
}

/**
 * Float32 values as a tensor entry of a float dtype, rounding to nearest even for F16/BF16. F32 keeps the
 * same array (not copied).
 *
 * @example
 * const half = fromFloat32Array(new Float32Array([1, 2.5]), [2], 'F16'); // data: Uint16Array [0x3c00, 0x4100]
 */
export function fromFloat32Array(
  data: Float32Array,
  shape: number[],
  dtype: FloatDtype = 'F32',
): TensorEntry {
  switch (dtype) {
    case 'F32':
      return { dtype, shape, data };
    case 'F64':
      return { dtype, shape, data: Float64Array.from(data) };
    case 'F16':
      return { dtype, shape, data: Uint16Array.from(data, f32ToF16) };
    case 'BF16':
      return { dtype, shape, data: Uint16Array.from(data, f32ToBf16) };
    default:
      throw new ValueError(
        'fromFloat32Array',
        `dtype ${dtype} is not a float dtype (expected F64, F32, BF16 or F16)`,
      );
  }
}
