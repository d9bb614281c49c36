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

/**
 * Stable codes of the errors thrown by mask-format. Callers branch on these, never on messages.
 * SPEC.md lists when each one is thrown.
 */
export const MaskErrorCode = {
  /** The bytes end before a structure the file declares (magic, header, a payload section). */
  TRUNCATED: "TRUNCATED",
  /** The file does not start with the .umask magic. */
  BAD_MAGIC: "BAD_MAGIC",
  /** The format version is not one this decoder reads. */
  BAD_VERSION: "BAD_VERSION",
  /** Bytes follow the last payload section. */
  TRAILING_BYTES: "TRAILING_BYTES",
  /** A CRC-32 (header or a payload section) does not match. */
  CHECKSUM_MISMATCH: "CHECKSUM_MISMATCH",
  /** The mask was made for another base model. */
  FINGERPRINT_MISMATCH: "FINGERPRINT_MISMATCH",
  /** The header is not valid UTF-8 JSON or a field is missing or of the wrong type. */
  BAD_HEADER: "BAD_HEADER",
  /** Sections do not tile the payload (an offset or length disagrees with the others). */
  BAD_LAYOUT: "BAD_LAYOUT",
  /** A payload section does not decode to what the header says (bit stream, padding, counts). */
  BAD_PAYLOAD: "BAD_PAYLOAD",
  /** A declared size exceeds one of the caps in SPEC.md. */
  LIMIT_EXCEEDED: "LIMIT_EXCEEDED",
  /** A tensor encoding this decoder does not know. */
  UNSUPPORTED_ENCODING: "UNSUPPORTED_ENCODING",
  /** No masked tensor has the requested name. */
  UNKNOWN_TENSOR: "UNKNOWN_TENSOR",
  /** Arguments given to an encoder or helper are inconsistent (shapes, lengths, names, values). */
  BAD_INPUT: "BAD_INPUT",
  /** A safetensors file is malformed or not the U8/BOOL subset mask-format reads. */
  BAD_SAFETENSORS: "BAD_SAFETENSORS",
  /** A file could not be read or written (node helpers only). */
  FILE_ERROR: "FILE_ERROR",
} as const;
export type MaskErrorCode = (typeof MaskErrorCode)[keyof typeof MaskErrorCode];

/** An error about a .umask file, a mask, or its inputs. `code` is one of MaskErrorCode. */
export class MaskFormatError extends UnmaskError {
  declare readonly code: MaskErrorCode;

  constructor(code: MaskErrorCode, message: string, options?: { cause?: unknown; subject?: string }) {
    super(code, message, options);
    this.name = "MaskFormatError";
  }
}
