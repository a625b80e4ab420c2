/**
 * Element types. float32 is the compute type; int32 holds labels and indices; bool holds masks (one byte per
 * element). float16/bfloat16 are storage formats (safetensors, mixed precision) converted at the edges.
 */
export type DType = 'float32' | 'int32' | 'bool';

export type TypedArray = Float32Array | Int32Array | Uint8Array;

/** The storage type behind each dtype. */
export interface StorageOf {
  float32: Float32Array;
  int32: Int32Array;
  bool: Uint8Array;
}

/**
 * Small storage comes from slabs of SLAB_CHUNKS same-size chunks. V8 allocates a typed array over 64 bytes
 * outside the JS heap, which costs ~1.5 µs on the reference machine (more than the BLAS call of a 32×32×32
 * matmul), while a view into an existing buffer costs ~0.04 µs. Chunks are never reused: a slab is freed by
 * the GC with its last view, so storage is always zeroed, and a retained small tensor keeps at most
 * SLAB_CHUNKS times its size alive. Above SLAB_MAX_BYTES the allocation itself is cheap next to the work.
 */
const SLAB_CHUNKS = 16;
const SLAB_MIN_BYTES = 65;
const SLAB_MAX_BYTES = 16384;
/** Per chunk size (bytes, a multiple of 64 so chunks stay cache-line aligned): the open slab and next chunk. */
const slabs = new Map<number, { buffer: ArrayBuffer; next: number }>();

function slabChunk(bytes: number): [ArrayBuffer, number] {
  const size = Math.ceil(bytes / 64) * 64;
  let slab = slabs.get(size);
  if (!slab || slab.next === SLAB_CHUNKS) {
    slab = { buffer: new ArrayBuffer(size * SLAB_CHUNKS), next: 0 };
    slabs.set(size, slab);
  }
  return [slab.buffer, size * slab.next++];
}

/**
 * Zeroed storage for n elements. NOTE: small arrays are views into a shared buffer (see SLAB_CHUNKS): code
 * that transfers an array's `.buffer` to another thread must copy it first (`Tensor.toTypedArray` does).
 */
export function allocStorage<D extends DType>(dtype: D, n: number): StorageOf[D] {
  const bytes = dtype === 'bool' ? n : 4 * n;
  if (bytes >= SLAB_MIN_BYTES && bytes <= SLAB_MAX_BYTES) {
    const [buffer, at] = slabChunk(bytes);
    switch (dtype) {
      case 'float32':
        return new Float32Array(buffer, at, n) as StorageOf[D];
      case 'int32':
        return new Int32Array(buffer, at, n) as StorageOf[D];
      default:
        return new Uint8Array(buffer, at, n) as StorageOf[D];
    }
  }
  switch (dtype) {
    case 'float32':
      return new Float32Array(n) as StorageOf[D];
    case 'int32':
      return new Int32Array(n) as StorageOf[D];
    default:
      return new Uint8Array(n) as StorageOf[D];
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
