import { ValueError } from '../errors.js';

/**
 * Element types. float32 is the compute type; int32 holds labels and indices; bool holds masks (one byte per
 * element). float16/bfloat16 are storage formats (safetensors, mixed precision) converted at the edges.
 */
export type DType = 'float32' | 'int32' | 'bool';

export const DTYPES: readonly DType[] = ['float32', 'int32', 'bool'];

/**
 * Refuses a dtype name outside DTYPES (a JavaScript caller's 'int64' or 'float64' was stored in bytes and came
 * back as garbage: 300 as 44).
 */
export function checkDtype(op: string, dtype: unknown): asserts dtype is DType {
  if (DTYPES.includes(dtype as DType)) return;
  const hint =
    dtype === 'int64' || dtype === 'long'
      ? ': integers are int32 here'
      : dtype === 'float64' || dtype === 'double' || dtype === 'float16' || dtype === 'bfloat16'
        ? ': tensors compute in float32 (16-bit formats are for storage and autocast)'
        : '';
  throw new ValueError(op, `unknown dtype '${String(dtype)}' (expected float32, int32 or bool${hint})`);
}

export type TypedArray = Float32Array | Int32Array | Uint8Array;

/** The storage type behind each dtype. */
export interface StorageOf {
  float32: Float32Array;
  int32: Int32Array;
  bool: Uint8Array;
}

/** Node's Buffer, where there is one: its allocUnsafeSlow hands out memory without zeroing it. */
const NodeBuffer = (globalThis as { Buffer?: { allocUnsafeSlow(bytes: number): Uint8Array } }).Buffer;
/**
 * `MINIBATCH_POISON_UNINIT=1` (set by `npm test`) fills storage allocated without zeroing with 0xFF bytes (NaN
 * as float32, -1 as int32) at every size, so that a kernel which leaves part of its output unwritten fails
 * the tests instead of passing on zeros.
 */
const POISON =
  typeof process !== 'undefined' &&
  (process.env as Record<string, string | undefined>)?.MINIBATCH_POISON_UNINIT === '1';

/**
 * Small storage comes from slabs of SLAB_CHUNKS same-size chunks. V8 allocates a typed array over 64 bytes
 * outside the JS heap, which costs ~1.5 µs on the reference machine (more than the BLAS call of a 32×32×32
 * matmul), while a view into an existing buffer costs ~0.04 µs. Chunks are never reused: a slab is freed by
 * the GC with its last view, so a zeroed slab stays zeroed, and a retained small tensor keeps at most
 * SLAB_CHUNKS times its size alive. Above SLAB_MAX_BYTES the allocation itself is cheap next to the work.
 */
const SLAB_CHUNKS = 16;
const SLAB_MIN_BYTES = 65;
const SLAB_MAX_BYTES = 16384;
/**
 * Per chunk size (bytes, a multiple of 64 so chunks stay cache-line aligned): the open slab and next chunk;
 * zeroed slabs, and (Node) unzeroed ones for storage a kernel overwrites (see allocStorage).
 */
const slabs = new Map<number, { buffer: ArrayBuffer; next: number }>();
const unzeroedSlabs = new Map<number, { buffer: ArrayBuffer; next: number }>();

function slabChunk(bytes: number, zeroed: boolean): [ArrayBuffer, number] {
  const size = Math.ceil(bytes / 64) * 64;
  const pool = zeroed || !NodeBuffer ? slabs : unzeroedSlabs;
  let slab = pool.get(size);
  if (!slab || slab.next === SLAB_CHUNKS) {
    const total = size * SLAB_CHUNKS;
    const buffer = pool === slabs ? new ArrayBuffer(total) : NodeBuffer!.allocUnsafeSlow(total).buffer;
    slab = { buffer: buffer as ArrayBuffer, next: 0 };
    pool.set(size, slab);
  }
  return [slab.buffer, size * slab.next++];
}

/**
 * Storage for n elements: zeroed, or with `zeroed: false` contents unspecified, for an output its kernel
 * writes completely. NOTE: small arrays are views into a shared buffer (see SLAB_CHUNKS): code that transfers
 * an array's `.buffer` to another thread must copy it first (`Tensor.toTypedArray` does).
 *
 * Why unzeroed: V8 zeroes every new ArrayBuffer, and above glibc's mmap threshold each one is fresh pages, so a
 * 512 KiB Float32Array cost 60-90 µs here against 8-11 µs from Buffer.allocUnsafeSlow (a 512 KiB memcpy is
 * 17 µs): the allocation, not the kernel, was the cost of a large elementwise op. Browsers have no such call.
 */
export function allocStorage<D extends DType>(dtype: D, n: number, zeroed = true): StorageOf[D] {
  const bytes = dtype === 'bool' ? n : 4 * n;
  let a: StorageOf[D];
  if (bytes >= SLAB_MIN_BYTES && bytes <= SLAB_MAX_BYTES) {
    const [buffer, at] = slabChunk(bytes, zeroed);
    a = view(dtype, buffer, at, n);
  } else if (!zeroed && NodeBuffer && bytes > SLAB_MAX_BYTES) {
    const b = NodeBuffer.allocUnsafeSlow(bytes);
    a = view(dtype, b.buffer as ArrayBuffer, b.byteOffset, n);
  } else {
    a = view(dtype, new ArrayBuffer(bytes), 0, n);
  }
  if (!zeroed && POISON) new Uint8Array(a.buffer, a.byteOffset, bytes).fill(0xff);
  return a;
}

function view<D extends DType>(dtype: D, buffer: ArrayBuffer, at: number, n: number): StorageOf[D] {
  switch (dtype) {
    case 'float32':
      return new Float32Array(buffer, at, n) as StorageOf[D];
    case 'int32':
      return new Int32Array(buffer, at, n) as StorageOf[D];
    case 'bool':
      return new Uint8Array(buffer, at, n) as StorageOf[D];
    default:
      checkDtype('allocate', dtype);
      throw new Error('unreachable');
  }
}

export function dtypeOfArray(a: TypedArray): DType {
  if (a instanceof Float32Array) return 'float32';
  if (a instanceof Int32Array) return 'int32';
  return 'bool';
}

/** Type promotion for binary arithmetic, as PyTorch does it for these three types. */
export function promote(a: DType, b: DType): DType {
  if (a === 'float32' || b === 'float32') return 'float32';
  if (a === 'int32' || b === 'int32') return 'int32';
  return 'bool';
}
