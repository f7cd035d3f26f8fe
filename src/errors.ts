/**
 * Errors thrown by flowvae. Argument problems are `TypeError` (wrong kind of
 * value) or `RangeError` (right kind, bad value), with `.code` `ERR_ARG` or
 * `ERR_SHAPE`; problems found while running are a `FlowVaeError` with a code
 * such as `ERR_NAN` or `ERR_NO_INVERSE`. One message format everywhere:
 *
 *     Expected positive integer for "latentDim" but received 0 (number)
 *
 * The native binding throws the same kinds with the same messages.
 */

export type ErrorCode =
  | 'ERR_ARG'
  | 'ERR_SHAPE'
  | 'ERR_NAN'
  | 'ERR_NO_INVERSE'
  | 'ERR_NOT_CONVERGED'
  | 'ERR_BACKEND_UNAVAILABLE'
  | 'ERR_CUDA'
  | 'ERR_CHECKPOINT'
  | 'ERR_DATA'
  | 'ERR_ABORTED'
  | 'ERR_BUSY'
  | 'ERR_ENV';

export class FlowVaeError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'FlowVaeError';
    this.code = code;
  }
}

export interface CodedTypeError extends TypeError {
  code: ErrorCode;
}
export interface CodedRangeError extends RangeError {
  code: ErrorCode;
}

/** Short description of a value for error messages: `0 (number)`, `Float64Array(12)`, `"x" (string)`. */
export function describe(value: unknown): string {
  if (value === undefined) return 'undefined';
  if (value === null) return 'null';
  switch (typeof value) {
    case 'number':
      return `${String(value)} (number)`;
    case 'boolean':
      return `${String(value)} (boolean)`;
    case 'string':
      return `"${value}" (string)`;
    case 'bigint':
      return `${String(value)}n (bigint)`;
    case 'function':
      return 'function';
    case 'symbol':
      return 'symbol';
    default:
      break;
  }
  if (ArrayBuffer.isView(value) && !(value instanceof DataView)) {
    const ctor = (value as { constructor: { name: string } }).constructor.name;
    return `${ctor}(${(value as unknown as ArrayLike<unknown>).length})`;
  }
  if (Array.isArray(value)) return `Array(${value.length})`;
  return 'object';
}

export function typeError(message: string, code: ErrorCode = 'ERR_ARG'): CodedTypeError {
  const err = new TypeError(message) as CodedTypeError;
  err.code = code;
  return err;
}

export function rangeError(message: string, code: ErrorCode = 'ERR_ARG'): CodedRangeError {
  const err = new RangeError(message) as CodedRangeError;
  err.code = code;
  return err;
}

/** `Expected <what> for "<name>" but received <value>` */
export function expected(what: string, name: string, value: unknown): string {
  return `Expected ${what} for "${name}" but received ${describe(value)}`;
}
