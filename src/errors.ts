/**
 * Typed errors. One message template everywhere: `op: what is wrong (got X, expected Y)`.
 * Libraries throw; only the CLI turns errors into exit codes.
 */
export class MinibatchError extends Error {
  constructor(
    /** The operation that rejected its input, e.g. `matmul`. */
    readonly op: string,
    detail: string,
  ) {
    super(`${op}: ${detail}`);
    this.name = new.target.name;
  }
}

/** Shapes that do not fit together (broadcasting, matmul, reshape, cat). */
export class ShapeError extends MinibatchError {}

/** An argument with a bad value or type (a negative size, an unknown option). */
export class ValueError extends MinibatchError {}

/** An operation that is not allowed in the current state (backward twice, BatchNorm on one value). */
export class StateError extends MinibatchError {}

/** A file that is truncated, corrupt or of the wrong kind. Nothing is read half-way. */
export class FormatError extends MinibatchError {
  constructor(
    op: string,
    readonly file: string,
    detail: string,
  ) {
    super(op, `${file}: ${detail}`);
  }
}

/** What a bad argument is, for a message: `null`, `an array`, or its typeof (`undefined`, `string`...). */
export function kindOf(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v;
}

/** Format a shape the way error messages show it: `[32,784]`. */
export function fmtShape(shape: readonly number[]): string {
  return `[${shape.join(',')}]`;
}

/**
 * Refuses the keys of an options object outside `allowed`: a misspelt option, or PyTorch's snake_case
 * (`new SGD(params, { weight_decay: 1e-4 })`), would otherwise be ignored without a word and the run would
 * train without it. Names the camelCase spelling when that is an option.
 */
export function checkOptions(op: string, options: unknown, allowed: readonly string[]): void {
  if (options === undefined) return;
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    const got =
      options === null
        ? 'null'
        : Array.isArray(options)
          ? 'an array'
          : `${typeof options} ${String(options)}`;
    throw new ValueError(op, `options must be an object (got ${got})`);
  }
  for (const key of Object.keys(options)) {
    if (allowed.includes(key)) continue;
    const camel = key.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
    const hint = camel !== key && allowed.includes(camel) ? `; did you mean '${camel}'?` : '';
    throw new ValueError(op, `unknown option '${key}' (expected one of ${allowed.join(', ')}${hint})`);
  }
}

/**
 * The keys of options type T, listed for `checkOptions`; the compiler rejects a list that misses one:
 * `optionKeys<StepLROptions>()(['stepSize', 'gamma'])`.
 */
export function optionKeys<T>() {
  return <const K extends readonly (keyof T & string)[]>(
    keys: K &
      ([Exclude<keyof T, K[number]>] extends [never] ? unknown : { missing: Exclude<keyof T, K[number]> }),
  ): readonly string[] => keys;
}
