/**
 * The one error type of unmask. Every package throws `UnmaskError` (or a subclass) with a stable
 * `code` that callers branch on, and a message that names the file, tensor, field or offset.
 *
 * Lives in mask-format because that package sits at the root of the dependency graph and has no
 * dependencies; the others re-export it. `isInstance` works across duplicate installs through a
 * global symbol marker, as vercel/ai does.
 */
const MARKER = Symbol.for("unmask.error");

export class UnmaskError extends Error {
  readonly [MARKER] = true;
  readonly code: string;
  /** The file, tensor or field the error is about, when there is one. */
  readonly subject?: string;

  constructor(code: string, message: string, options?: { cause?: unknown; subject?: string }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = "UnmaskError";
    this.code = code;
    if (options?.subject !== undefined) this.subject = options.subject;
  }

  static isInstance(value: unknown): value is UnmaskError {
    return typeof value === "object" && value !== null && (value as Record<symbol, unknown>)[MARKER] === true;
  }
}

/** True when `value` is an UnmaskError with the given code. */
export function isUnmaskError(value: unknown, code?: string): value is UnmaskError {
  return UnmaskError.isInstance(value) && (code === undefined || value.code === code);
}
