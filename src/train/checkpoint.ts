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
import { type GradScalerState, gradScalerStateProblem } from './grad-scaler.js';

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
/** The layout of the metadata below; a file of another version is refused rather than misread. */
const VERSION = 1;

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
    version: VERSION,
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

const isObject = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === 'object' && !Array.isArray(v);
const count = (v: unknown) => Number.isSafeInteger(v) && (v as number) >= 0;
const show = (v: unknown) => (v === undefined ? 'missing' : JSON.stringify(v));

/**
 * What is wrong with a checkpoint's metadata (undefined if nothing): every field a resumed run relies on, so a
 * hand-edited or damaged file is refused by name here instead of failing later with a TypeError or training
 * on to a NaN loss (a hand-edited "epoch": "two" resumed at epoch "two"; Adam's step "x" gave NaN updates).
 */
function metaProblem(meta: unknown): string | undefined {
  if (!isObject(meta)) return 'not an object';
  if (meta.version !== VERSION)
    return `version ${show(meta.version)} (this minibatch reads version ${VERSION})`;
  if (!count(meta.epoch)) return `epoch ${show(meta.epoch)}`;
  if (!count(meta.step)) return `step ${show(meta.step)}`;
  if (!Array.isArray(meta.history)) return 'no history';
  if (meta.scaler !== undefined) {
    const problem = gradScalerStateProblem(meta.scaler);
    if (problem) return `scaler: ${problem}`;
  }
  const o = meta.optimizer;
  if (!isObject(o)) return 'no optimizer state';
  if (!Array.isArray(o.param_groups)) return `optimizer.param_groups ${show(o.param_groups)}`;
  for (const [g, group] of o.param_groups.entries()) {
    const where = `optimizer.param_groups[${g}]`;
    if (!isObject(group)) return `${where} ${show(group)}`;
    if (!Array.isArray(group.params) || !group.params.every(count))
      return `${where}.params ${show(group.params)}`;
    for (const [k, v] of Object.entries(group)) {
      const hyper =
        typeof v === 'boolean' ||
        (typeof v === 'number' && !Number.isNaN(v)) ||
        (Array.isArray(v) && v.every((x) => typeof x === 'number' && !Number.isNaN(x)));
      if (k !== 'params' && !hyper) return `${where}.${k} ${show(v)}`;
    }
  }
  if (!count(o.step_count)) return `optimizer.step_count ${show(o.step_count)}`;
  if (!isObject(o.scalars)) return `optimizer.scalars ${show(o.scalars)}`;
  for (const [i, sc] of Object.entries(o.scalars)) {
    const where = `optimizer.scalars.${i}`;
    if (!/^(0|[1-9]\d*)$/.test(i)) return `${where} (not a parameter index)`;
    if (!isObject(sc)) return `${where} ${show(sc)}`;
    for (const [name, v] of Object.entries(sc)) {
      // A counter (Adam's, Adagrad's, RMSprop's step) is a whole number of updates; anything else is finite.
      const ok = name === 'step' ? count(v) : typeof v === 'number' && Number.isFinite(v);
      if (!ok) return `${where}.${name} ${show(v)}`;
    }
  }
  return undefined;
}

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
  const bad = metaProblem(meta);
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
