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

export function allocStorage<D extends DType>(dtype: D, n: number): StorageOf[D] {
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
