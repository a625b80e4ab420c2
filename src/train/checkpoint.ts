/**
 * Training checkpoints: one safetensors file, written atomically (a crash leaves the previous checkpoint).
 * Tensors: the model's state dict under its PyTorch keys, the optimizer's buffers under
 * `optimizer.state.<param index>.<name>`. The rest (epoch, update step, optimizer hyper-parameters and
 * counters, the fp16 loss scaler, history, run arguments) is a small JSON in the header's
 * `__metadata__["minibatch"]`.
 * RNG and loader state need no storage: every epoch's shuffle and dropout are seeded from (seed, epoch), so
 * resuming at an epoch boundary replays them exactly.
 *
 * In PyTorch: `sd = safetensors.torch.load_file(path)`, then
 * `model.load_state_dict({k: v for k, v in sd.items() if not k.startswith('optimizer.')})`.
 */
import { FormatError } from '../errors.js';
import { fromEntries, toEntries } from '../io/checkpoint.js';
import { loadSafetensors, saveSafetensors } from '../io/safetensors.js';
import type { Module } from '../nn/module.js';
import type { OptimizerStateDict } from '../optim/optimizer.js';
import { Tensor } from '../tensor/tensor.js';
import type { GradScalerState } from './grad-scaler.js';

interface StatefulOptimizer {
  stateDict(): OptimizerStateDict;
  loadStateDict(sd: OptimizerStateDict): void;
}

export interface CheckpointState {
  model: Module;
  optimizer: StatefulOptimizer;
  /** Epochs completed. */
  epoch: number;
  /** Optimizer updates completed. */
  step: number;
  history: unknown[];
  args?: unknown;
  /** The fp16 loss scaler's state (its scale and growth tracker), so a resumed run scales as before. */
  scaler?: GradScalerState;
}

/** What a checkpoint says about the run that wrote it (its JSON metadata), tensors aside. */
export interface CheckpointMeta {
  epoch: number;
  step: number;
  history: unknown[];
  args: unknown;
  scaler?: GradScalerState;
}

const PREFIX = 'optimizer.state.';

export async function saveCheckpoint(path: string, s: CheckpointState): Promise<void> {
  const tensors: Record<string, Tensor> = { ...s.model.stateDict() };
  const osd = s.optimizer.stateDict();
  const scalars: Record<string, Record<string, number>> = {};
  for (const [i, st] of Object.entries(osd.state)) {
    for (const [name, v] of Object.entries(st)) {
      if (v instanceof Tensor) tensors[`${PREFIX}${i}.${name}`] = v;
      else (scalars[i] ??= {})[name] = v;
    }
  }
  const meta = {
    version: 1,
    epoch: s.epoch,
    step: s.step,
    history: s.history,
    args: s.args,
    ...(s.scaler && { scaler: s.scaler }),
    optimizer: { param_groups: osd.param_groups, step_count: osd.step_count, scalars },
  };
  await saveSafetensors(path, toEntries(tensors), { format: 'pt', minibatch: JSON.stringify(meta) });
}

type StoredMeta = CheckpointMeta & {
  optimizer: {
    param_groups: OptimizerStateDict['param_groups'];
    step_count: number;
    scalars: Record<string, Record<string, number>>;
  };
};

function parseMeta(path: string, raw: string | undefined): StoredMeta {
  if (!raw)
    throw new FormatError(
      'loadCheckpoint',
      path,
      'not a minibatch checkpoint (no "minibatch" metadata); use load() for plain state dicts',
    );
  let meta: StoredMeta;
  try {
    meta = JSON.parse(raw);
  } catch (e) {
    throw new FormatError('loadCheckpoint', path, `corrupt metadata: ${(e as Error).message}`);
  }
  // The fields a resumed run relies on, checked here (a hand-edited "epoch": "two" resumed at epoch "two").
  const count = (v: unknown) => Number.isSafeInteger(v) && (v as number) >= 0;
  const o = meta?.optimizer as Partial<StoredMeta['optimizer']> | undefined;
  const bad =
    meta === null || typeof meta !== 'object'
      ? 'not an object'
      : !count(meta.epoch)
        ? `epoch ${JSON.stringify(meta.epoch)}`
        : !count(meta.step)
          ? `step ${JSON.stringify(meta.step)}`
          : !Array.isArray(meta.history)
            ? 'no history'
            : !o || !Array.isArray(o.param_groups) || !count(o.step_count) || typeof o.scalars !== 'object'
              ? 'no optimizer state'
              : undefined;
  if (bad) throw new FormatError('loadCheckpoint', path, `corrupt metadata: ${bad}`);
  return meta;
}

/** The run a checkpoint belongs to (epoch, step, history, arguments, scaler), without building a model. */
export async function readCheckpointMeta(path: string): Promise<CheckpointMeta> {
  const { epoch, step, history, args, scaler } = parseMeta(
    path,
    (await loadSafetensors(path)).metadata?.minibatch,
  );
  return { epoch, step, history, args, ...(scaler && { scaler }) };
}

/** Restore model and optimizer in place from a checkpoint; returns where the run stopped. */
export async function loadCheckpoint(
  path: string,
  model: Module,
  optimizer: StatefulOptimizer,
): Promise<CheckpointMeta> {
  const file = await loadSafetensors(path);
  const meta = parseMeta(path, file.metadata?.minibatch);
  const all = fromEntries(file.tensors, path);
  const modelSd: Record<string, Tensor> = {};
  const state: OptimizerStateDict['state'] = {};
  for (const [k, t] of Object.entries(all)) {
    if (!k.startsWith(PREFIX)) {
      modelSd[k] = t;
      continue;
    }
    const [i, name] = k.slice(PREFIX.length).split('.') as [string, string];
    (state[Number(i)] ??= {})[name] = t;
  }
  for (const [i, sc] of Object.entries(meta.optimizer.scalars)) Object.assign((state[Number(i)] ??= {}), sc);
  model.loadStateDict(modelSd);
  optimizer.loadStateDict({
    state,
    param_groups: meta.optimizer.param_groups,
    step_count: meta.optimizer.step_count,
  });
  return {
    epoch: meta.epoch,
    step: meta.step,
    history: meta.history,
    args: meta.args,
    ...(meta.scaler && { scaler: meta.scaler }),
  };
}
