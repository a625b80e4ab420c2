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

/** Format a shape the way error messages show it: `[32,784]`. */
export function fmtShape(shape: readonly number[]): string {
  return `[${shape.join(',')}]`;
}
