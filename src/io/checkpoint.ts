/**
 * `save(stateDict, path)` and `load(path)`: state dicts as safetensors files PyTorch reads
 * (`safetensors.torch.load_file` then `model.load_state_dict`). float32 tensors are written as F32 (or F16/
 * BF16 on request), int32 counters such as `num_batches_tracked` as I64 as PyTorch keeps them. Loading
 * converts F16/BF16/F64 to float32 and integer types to int32 (rejecting values that do not fit).
 */
import { checkOptions, FormatError, ValueError } from '../errors.js';
import { tensor } from '../tensor/creation.js';
import { contiguous } from '../tensor/ops.js';
import { Tensor } from '../tensor/tensor.js';
import {
  type FloatDtype,
  fromFloat32Array,
  loadSafetensors,
  saveSafetensors,
  type TensorEntry,
  toFloat32Array,
} from './safetensors.js';

/** Convert a state dict to safetensors entries (copies only non-contiguous tensors). */
export function toEntries(
  stateDict: Record<string, Tensor>,
  floatDtype: FloatDtype = 'F32',
): Record<string, TensorEntry> {
  const out: Record<string, TensorEntry> = {};
  for (const [k, t] of Object.entries(stateDict)) {
    if (!(t instanceof Tensor)) {
      const what = t === null ? 'null' : typeof t === 'object' ? 'a nested object' : typeof t;
      throw new ValueError(
        'save',
        `'${k}' is ${what}, not a Tensor: save writes one flat { name: Tensor } state dict (an optimizer's state goes in a checkpoint: saveCheckpoint)`,
      );
    }
    const c = contiguous(t);
    const data = c.data.length === c.size ? c.data : c.data.subarray(0, c.size);
    const shape = [...t.shape];
    if (t.dtype === 'float32') out[k] = fromFloat32Array(data as Float32Array, shape, floatDtype);
    else if (t.dtype === 'int32')
      out[k] = { dtype: 'I64', shape, data: BigInt64Array.from(data as Int32Array, (v) => BigInt(v)) };
    else out[k] = { dtype: 'BOOL', shape, data: data as Uint8Array };
  }
  return out;
}

/** Convert decoded safetensors entries to tensors (float32 / int32 / bool). */
export function fromEntries(
  entries: ReadonlyMap<string, TensorEntry>,
  file = '<bytes>',
): Record<string, Tensor> {
  const out: Record<string, Tensor> = {};
  for (const [k, e] of entries) {
    const shape = e.shape;
    switch (e.dtype) {
      case 'F32':
      case 'F16':
      case 'BF16':
      case 'F64':
        out[k] = tensor(toFloat32Array(e), { shape });
        break;
      case 'BOOL':
        out[k] = tensor(Uint8Array.from(e.data), { shape });
        break;
      default: {
        const ints = new Int32Array(e.data.length);
        for (let i = 0; i < ints.length; i++) {
          const v = Number(e.data[i]!);
          if (!Number.isSafeInteger(v) || v > 2147483647 || v < -2147483648) {
            throw new FormatError(
              'load',
              file,
              `tensor ${k} (${e.dtype}) holds ${v}, which does not fit in int32`,
            );
          }
          ints[i] = v;
        }
        out[k] = tensor(ints, { shape });
      }
    }
  }
  return out;
}

/**
 * Save a state dict (a module's `stateDict()`, or any name -> tensor record) as safetensors, atomically.
 * @example await save(model.stateDict(), 'mlp.safetensors');
 */
export async function save(
  stateDict: Record<string, Tensor>,
  path: string,
  opts: { dtype?: FloatDtype; metadata?: Record<string, string> } = {},
): Promise<void> {
  checkOptions('save', opts, ['dtype', 'metadata']);
  await saveSafetensors(path, toEntries(stateDict, opts.dtype), { format: 'pt', ...opts.metadata });
}

/**
 * Load a safetensors file as a state dict; a truncated or corrupt file is rejected whole.
 * @example model.loadStateDict(await load('mlp.safetensors'));
 */
export async function load(path: string): Promise<Record<string, Tensor>> {
  return fromEntries((await loadSafetensors(path)).tensors, path);
}
