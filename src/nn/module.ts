/**
 * The Module base: parameters, buffers and child modules registered by name, PyTorch's state-dict keys
 * (`0.weight`, `1.running_mean`, ...), train/eval mode, and a repr like PyTorch's.
 *
 * Attributes are registered as PyTorch's __setattr__ does: a Module assigned to a property is a child, a leaf
 * tensor that requires grad a parameter (nn.Parameter's role), under the property's name, in assignment
 * order (see `adopt`). `registerModule` / `registerParameter` name them explicitly (PyTorch's snake_case
 * keys on camelCase properties) and register buffers and absent parameters.
 *
 * @example
 * class TwoLayer extends Module {
 *   fc1 = new Linear(784, 128);
 *   fc2 = new Linear(128, 10);
 *   forward(x: Tensor) { return this.fc2.forward(this.fc1.forward(x).relu()); }
 * }
 * new TwoLayer().stateDict(); // fc1.weight, fc1.bias, fc2.weight, fc2.bias
 */
import { noGrad } from '../autograd/engine.js';
import { checkOptions, fmtShape, ShapeError, ValueError } from '../errors.js';
import { clearGrad, moveToLongLived } from '../tensor/ops.js';
import { sameShape } from '../tensor/shape.js';
import { Tensor } from '../tensor/tensor.js';

/** Entries whose value was not seen before, in order: each module or tensor under its first name. */
function once<T>(entries: [string, T][]): [string, T][] {
  const seen = new Set<T>();
  return entries.filter(([, v]) => {
    if (seen.has(v)) return false;
    seen.add(v);
    return true;
  });
}

export abstract class Module {
  /** Training mode (Dropout drops, BatchNorm uses batch statistics). `eval()` turns it off. */
  training = true;
  private readonly params = new Map<string, Tensor | null>();
  private readonly buffers_ = new Map<string, Tensor>();
  private readonly children_ = new Map<string, Module>();

  // Extra arguments (masks, options) are up to each module; TypeScript checks them per subclass.
  abstract forward(x: Tensor, ...rest: unknown[]): Tensor;

  /** Register a parameter (a leaf that requires grad); null registers an absent one (bias=false). */
  protected registerParameter<T extends Tensor | null>(name: string, t: T): T {
    if (t && !t.isLeaf) {
      // Its gradient would flow to the tensor it came from and .grad would stay null (PyTorch refuses too).
      throw new ValueError(
        'registerParameter',
        `cannot make the non-leaf tensor '${name}' a parameter (the output of an op); pass x.detach()`,
      );
    }
    if (t) {
      // Parameters live in the backend's long-lived storage, where its kernels read and update them in place.
      moveToLongLived(t);
      t.requiresGrad = true;
    }
    this.params.set(name, t);
    return t;
  }

  /** Register state that is saved but not trained (BatchNorm's running statistics). */
  protected registerBuffer(name: string, t: Tensor): Tensor {
    this.buffers_.set(name, t);
    return t;
  }

  protected registerModule<M extends Module>(name: string, m: M): M {
    this.children_.set(name, m);
    return m;
  }

  /**
   * Registers the module's attributes not registered yet (properties holding a Module, or a leaf tensor that
   * requires grad, not already registered under another name), so `this.fc1 = new Linear(...)` works as in
   * PyTorch. Runs whenever the module's contents are read: an attribute set after construction counts too.
   */
  private adopt(): void {
    for (const key of Object.keys(this)) {
      const v = (this as Record<string, unknown>)[key];
      if (v instanceof Module) {
        // An attribute assigned anew replaces the child of its name (PyTorch's __setattr__).
        if (this.children_.has(key)) this.children_.set(key, v);
        else if (v !== this && ![...this.children_.values()].includes(v)) this.children_.set(key, v);
      } else if (v instanceof Tensor && v.isLeaf && v.requiresGrad) {
        // Likewise a parameter: `dec.weight = emb.weight` ties the weights (it kept the old, unused tensor).
        if (this.params.has(key)) {
          if (this.params.get(key) !== v) this.params.set(key, v);
        } else if (![...this.params.values()].includes(v) && ![...this.buffers_.values()].includes(v)) {
          this.registerParameter(key, v);
        }
      }
    }
  }

  /** Direct children with their names, each module once (PyTorch's named_children: a module used twice once). */
  namedChildren(): [string, Module][] {
    this.adopt();
    return once([...this.children_]);
  }

  children(): Module[] {
    return this.namedChildren().map(([, m]) => m);
  }

  /** This module and every descendant with dotted names, each module once (PyTorch's named_modules). */
  namedModules(prefix = '', seen = new Set<Module>()): [string, Module][] {
    if (seen.has(this)) return [];
    seen.add(this);
    this.adopt();
    const out: [string, Module][] = [[prefix, this]];
    for (const [k, m] of this.children_) out.push(...m.namedModules(prefix ? `${prefix}.${k}` : k, seen));
    return out;
  }

  modules(): Module[] {
    return this.namedModules().map(([, m]) => m);
  }

  buffers(): Tensor[] {
    return this.namedBuffers().map(([, b]) => b);
  }

  /** Turn gradients on or off for every parameter (freezing a part of a model), in place. */
  requiresGrad_(on = true): this {
    for (const p of this.parameters()) p.requiresGrad = on;
    return this;
  }

  /**
   * Parameters with dotted names, own first, then children's (PyTorch's order), each tensor once under its
   * first name: a module used twice or a tied weight is listed once, as PyTorch's named_parameters.
   */
  namedParameters(prefix = ''): [string, Tensor][] {
    return once(this.everyParameter(prefix));
  }

  /** Every parameter once (see namedParameters). */
  parameters(): Tensor[] {
    return this.namedParameters().map(([, p]) => p);
  }

  /** Buffers with dotted names, each once (see namedParameters). */
  namedBuffers(prefix = ''): [string, Tensor][] {
    return once(this.everyBuffer(prefix));
  }

  /** Parameters under every name they have, repeats included. */
  private everyParameter(prefix: string): [string, Tensor][] {
    this.adopt();
    const out: [string, Tensor][] = [];
    for (const [k, p] of this.params) if (p) out.push([prefix + k, p]);
    for (const [k, m] of this.children_) out.push(...m.everyParameter(`${prefix}${k}.`));
    return out;
  }

  private everyBuffer(prefix: string): [string, Tensor][] {
    this.adopt();
    const out: [string, Tensor][] = [...this.buffers_].map(([k, b]) => [prefix + k, b] as [string, Tensor]);
    for (const [k, m] of this.children_) out.push(...m.everyBuffer(`${prefix}${k}.`));
    return out;
  }

  /** Set training mode on this module and all children. */
  train(on = true): this {
    this.adopt();
    this.training = on;
    for (const m of this.children_.values()) m.train(on);
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  /** Zero every parameter's gradient in place, or drop it with `setToNone` (see Optimizer.zeroGrad). */
  zeroGrad(setToNone = false): void {
    for (const p of this.parameters()) clearGrad(p, setToNone);
  }

  /**
   * Parameters and buffers by PyTorch key: within a module parameters, then buffers, then children.
   * The tensors are the module's own (not copies): save them, or clone to snapshot.
   */
  stateDict(prefix = ''): Record<string, Tensor> {
    this.adopt();
    const out: Record<string, Tensor> = {};
    for (const [k, p] of this.params) if (p) out[prefix + k] = p;
    for (const [k, b] of this.buffers_) out[prefix + k] = b;
    for (const [k, m] of this.children_) Object.assign(out, m.stateDict(`${prefix}${k}.`));
    return out;
  }

  /**
   * Copy values into this module's parameters and buffers. `strict` (default) rejects missing and unexpected
   * keys, like PyTorch; shapes must match. `num_batches_tracked` may be missing: it is then reset to 0, as
   * PyTorch's BatchNorm does.
   */
  loadStateDict(sd: Record<string, Tensor>, options: { strict?: boolean } = {}): void {
    checkOptions('loadStateDict', options, ['strict']);
    const { strict = true } = options;
    const own = this.stateDict();
    const optional = (k: string) => k.endsWith('num_batches_tracked');
    const missing = Object.keys(own).filter((k) => !(k in sd) && !optional(k));
    const unexpected = Object.keys(sd).filter((k) => !(k in own));
    if (strict && (missing.length || unexpected.length)) {
      const parts = [];
      if (missing.length)
        parts.push(`missing key(s) in state_dict: ${missing.map((k) => `"${k}"`).join(', ')}`);
      if (unexpected.length)
        parts.push(`unexpected key(s) in state_dict: ${unexpected.map((k) => `"${k}"`).join(', ')}`);
      throw new ValueError(
        'loadStateDict',
        `error(s) in loading state_dict for ${this.constructor.name}: ${parts.join('. ')}`,
      );
    }
    for (const [k, t] of Object.entries(own)) {
      const src = sd[k];
      if (!src) continue;
      if (!sameShape(src.shape, t.shape)) {
        throw new ShapeError(
          'loadStateDict',
          `size mismatch for ${k}: copying a param with shape ${fmtShape(src.shape)}, the shape in current model is ${fmtShape(t.shape)}`,
        );
      }
    }
    noGrad(() => {
      for (const [k, t] of Object.entries(own)) {
        if (sd[k]) t.copy_(sd[k]!);
        else if (optional(k)) t.fill_(0);
      }
    });
  }

  /** The text inside the parentheses of this module's repr (`in_features=784, ...`). */
  extraRepr(): string {
    return '';
  }

  /** PyTorch's repr: `Sequential(\n  (0): Linear(in_features=784, out_features=256, bias=True)\n ...)`. */
  toString(): string {
    this.adopt();
    const name = this.constructor.name;
    if (this.children_.size === 0) return `${name}(${this.extraRepr()})`;
    const lines = [...this.children_].map(([k, m]) => `  (${k}): ${m.toString().split('\n').join('\n  ')}`);
    const extra = this.extraRepr();
    return `${name}(${extra ? `\n  ${extra}` : ''}\n${lines.join('\n')}\n)`;
  }

  /** console.log(model) prints the repr, as print(model) does in PyTorch. */
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return this.toString();
  }
}
