/**
 * Reverse-mode autograd. Every op that produces a tensor from inputs that require gradients records a `Node`
 * on its output: the primitive, its inputs and what its gradient rule needs (ctx). `backward` walks the nodes
 * in reverse topological order, applies each rule from the one gradient table (`grad.ts`), accumulates into
 * the leaves' `.grad`, and then releases the graph so its temporaries can be collected: the user never
 * disposes anything.
 */
import { StateError, ValueError } from '../errors.js';
import type { Tensor } from '../tensor/tensor.js';
import type { GradTable, Primitive, PrimitiveCtx } from './grad.js';

export interface Node<P extends Primitive = Primitive> {
  prim: P;
  inputs: Tensor[];
  ctx: PrimitiveCtx[P];
  /** Set once the graph has been through backward without retainGraph. */
  released: boolean;
  /**
   * Storage versions (see versionOf) of the inputs and then the output when recorded, for a primitive whose
   * gradient rule reads their values; null for one that reads none (add, views...).
   */
  versions: number[] | null;
}

/**
 * Writes into storage (copy_, fill_, an optimizer's update) count per storage, as PyTorch's version counter:
 * backward refuses a rule whose saved values were overwritten after the forward pass, instead of computing
 * the gradient from the new values. Per storage, so a write through any view (detach() included) counts.
 */
const versions = new WeakMap<object, number>();
export const versionOf = (t: Tensor): number => versions.get(t.data) ?? 0;
export function bumpVersion(t: Tensor): void {
  versions.set(t.data, (versions.get(t.data) ?? 0) + 1);
}

let gradEnabled = true;
/** Async noGrad callbacks not settled yet: recording stays off while any is pending. */
let pendingAsync = 0;

/** Whether ops record a graph right now (false inside `noGrad`). */
export function isGradEnabled(): boolean {
  return gradEnabled && pendingAsync === 0;
}

/**
 * Run `fn` without recording a graph (PyTorch's `torch.no_grad()`): for evaluation and parameter updates.
 *
 * @example
 * const logits = noGrad(() => model.forward(x));
 */
export function noGrad<T>(fn: () => T): T {
  if (typeof fn !== 'function')
    throw new ValueError('noGrad', `expected a function (got ${typeof fn}): noGrad(() => model.forward(x))`);
  const prev = gradEnabled;
  gradEnabled = false;
  let result: T;
  try {
    result = fn();
  } finally {
    gradEnabled = prev;
  }
  // An async callback (an evaluation loop over `for await`): nothing records until it settles, as PyTorch's
  // no_grad block covers its whole body. Other code running on this thread meanwhile records nothing either.
  if (typeof (result as { then?: unknown } | null)?.then === 'function') {
    pendingAsync++;
    return Promise.resolve(result).finally(() => {
      pendingAsync--;
    }) as T;
  }
  return result;
}

/** Ops computing a recorded output with recording off, and backward passes, in progress (see inGraphWork). */
let graphWork = 0;

/**
 * Whether the work running now belongs to building or running a graph: recording is on, an op is computing
 * an output it will record (`recordedCompute`), or backward is running its gradient rules. False inside a
 * user's `noGrad` (evaluation, inference). Backends that schedule by it (native: BLAS_SPLIT_MACS) thus tell a
 * training step, where other work runs between GEMMs, from a forward pass alone, although every GEMM of a
 * step runs with recording off.
 */
export function inGraphWork(): boolean {
  return isGradEnabled() || graphWork > 0;
}

/**
 * `noGrad` for an op's own computation of the output it then records itself (linear computes x·Wᵀ + b in
 * one fused kernel, then records one node): `inGraphWork()` keeps the caller's answer inside.
 */
export function recordedCompute<T>(fn: () => T): T {
  const graph = inGraphWork();
  if (graph) graphWork++;
  try {
    return noGrad(fn);
  } finally {
    if (graph) graphWork--;
  }
}

/** Used by the gradient rules' caller; public ops check it to decide whether to record. */
export function setGradEnabled(on: boolean): boolean {
  const prev = gradEnabled;
  gradEnabled = on;
  return prev;
}

/** Refuses a node whose inputs or output were written in place after it was recorded (see versionOf). */
function checkVersions(node: Node, out: Tensor): void {
  const saved = node.versions!;
  [...node.inputs, out].forEach((x, i) => {
    const now = versionOf(x);
    if (now === saved[i]) return;
    const what = i < node.inputs.length ? `input ${i}` : 'output';
    const name = node.prim === 'custom' ? (node.ctx as { name: string }).name : node.prim;
    throw new StateError(
      'backward',
      `one of the tensors needed for gradient computation has been modified by an inplace operation: the ${what} of ${name}, [${x.shape.join(',')}], is at version ${now}; expected version ${saved[i]}. Write into a clone, or after backward`,
    );
  });
}

/** Tensors reachable from `root` through recorded nodes, inputs before outputs. Iterative: graphs can be deep. */
function topoOrder(root: Tensor, uses: Map<Tensor, number>): Tensor[] {
  const order: Tensor[] = [];
  const seen = new Set<Tensor>();
  const stack: [Tensor, boolean][] = [[root, false]];
  while (stack.length) {
    const [t, done] = stack.pop()!;
    if (done) {
      order.push(t);
      continue;
    }
    if (seen.has(t)) continue;
    seen.add(t);
    stack.push([t, true]);
    const node = t._node;
    if (!node) continue;
    for (const i of node.inputs) {
      uses.set(i, (uses.get(i) ?? 0) + 1);
      if (i.requiresGrad && !seen.has(i)) stack.push([i, false]);
    }
  }
  return order;
}

/**
 * Bytes of the activations the graph below `root` keeps for its backward pass: each storage once, float32 or
 * its 16-bit copy under autocast; leaves (parameters, input batches) are not counted. What a forward pass holds
 * until backward releases it (bench/precision.ts reports it per precision).
 */
export function savedBytes(root: Tensor): number {
  const stores = new Set<object>();
  let bytes = 0;
  for (const t of topoOrder(root, new Map())) {
    for (const x of t._node?.inputs ?? []) {
      const store = x.packed ? x.packed.bits : x.isLeaf ? null : x.data;
      if (store && !stores.has(store)) {
        stores.add(store);
        bytes += store.byteLength;
      }
    }
  }
  return bytes;
}

export interface BackwardOptions {
  /** Keep the graph for a second backward (PyTorch's retain_graph). */
  retainGraph?: boolean;
}

/** Implementation of `Tensor.backward`; see there. */
export function runBackward(
  root: Tensor,
  grad: Tensor,
  opts: BackwardOptions,
  rules: GradTable,
  accumulate: (a: Tensor, b: Tensor) => Tensor,
  accumulateLeaf: (leaf: Tensor, g: Tensor) => void,
  unpack: (t: Tensor) => Tensor,
): void {
  // How many times each tensor is an input in the graph: a leaf used once may take its gradient in place.
  const uses = new Map<Tensor, number>();
  const order = topoOrder(root, uses);
  const grads = new Map<Tensor, Tensor>([[root, grad]]);
  const prev = setGradEnabled(false);
  graphWork++;
  try {
    for (let i = order.length - 1; i >= 0; i--) {
      const t = order[i]!;
      const g = grads.get(t);
      grads.delete(t); // drop as soon as used: peak memory is the live frontier, not the whole graph
      if (!g) continue;
      const node = t._node;
      if (!node) {
        if (t.requiresGrad) accumulateLeaf(t, g);
        continue;
      }
      if (node.released) {
        throw new StateError(
          'backward',
          'trying to backward through the graph a second time; pass {retainGraph: true} to the first backward',
        );
      }
      if (node.versions) checkVersions(node, t);
      const needs = node.inputs.map((x) => x.requiresGrad);
      const rule = rules[node.prim] as (
        g: Tensor,
        ctx: unknown,
        inputs: Tensor[],
        out: Tensor,
        needs: boolean[],
        sole: boolean[],
      ) => (Tensor | null)[];
      const sole = node.inputs.map((x) => !x._node && uses.get(x) === 1);
      // Activations kept in 16 bits (autocast) are restored to float32 just for this rule.
      const gs = rule(g, node.ctx, node.inputs.map(unpack), unpack(t), needs, sole);
      node.inputs.forEach((x, k) => {
        const gi = gs[k];
        if (!needs[k] || !gi) return;
        const old = grads.get(x);
        grads.set(x, old ? accumulate(old, gi) : gi);
      });
    }
  } finally {
    graphWork--;
    setGradEnabled(prev);
  }
  if (!opts.retainGraph) {
    for (const t of order) {
      if (t._node) {
        t._node.released = true;
        // Drop references to inputs and saved tensors so the graph's memory is freed now.
        t._node.inputs = [];
        t._node.ctx = null as never;
      }
    }
  }
}
