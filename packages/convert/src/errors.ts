/**
 * Error codes of @unmask/convert. Every failure is an `UnmaskError` (from @unmask/clip) whose
 * `code` is one of these, and whose message names the file, entry, tensor, opcode or global.
 * Callers branch on `error.code`, never on the message.
 */
import { UnmaskError } from "@unmask/clip";

export type ConvertErrorCode =
  /** The zip archive is cut short: an offset or size points past the end of the file. */
  | "ZIP_TRUNCATED"
  /** The zip structure is malformed (bad signature, duplicate name, overlapping entry). */
  | "ZIP_BAD_FORMAT"
  /** A zip feature we refuse: encryption, a compression method other than stored/deflate, multi-disk. */
  | "ZIP_UNSUPPORTED"
  /** An entry's bytes do not match its CRC-32. */
  | "ZIP_CRC_MISMATCH"
  /** A pickle names a global outside the allow-list (os.system, builtins.eval, ...). */
  | "PICKLE_UNSAFE_GLOBAL"
  /** A pickle uses an opcode that can run code or build arbitrary objects (INST, OBJ, EXT*, NEWOBJ_EX). */
  | "PICKLE_FORBIDDEN_OPCODE"
  /** A byte that is not a pickle opcode we know. */
  | "PICKLE_UNKNOWN_OPCODE"
  /** The pickle stream ends before STOP or inside an argument. */
  | "PICKLE_TRUNCATED"
  /** Structurally wrong: stack underflow, missing MARK, bad memo index, wrong argument types. */
  | "PICKLE_MALFORMED"
  /** A named limit (string length, memo size, depth, pickle size) is exceeded. */
  | "PICKLE_LIMIT"
  /** A storage type the converter does not know (e.g. a quantized or complex storage). */
  | "TORCH_UNKNOWN_STORAGE"
  /** A tensor's storage record is missing from the archive. */
  | "TORCH_STORAGE_MISSING"
  /** A storage record's byte size differs from numel x element size. */
  | "TORCH_STORAGE_SIZE"
  /** A tensor's offset/size/stride reach outside its storage, or are not valid numbers. */
  | "TORCH_BAD_TENSOR"
  /** The input path does not exist. */
  | "FILE_NOT_FOUND"
  /** The input exists but cannot be read (permissions, a device, ...). */
  | "FILE_UNREADABLE"
  /** The file is no checkpoint format we read (or one we refuse, such as the tar-era format). */
  | "UNKNOWN_FORMAT"
  /** No CLIP state dict in the file, or a required CLIP tensor is missing (also thrown by @unmask/clip). */
  | "NOT_A_CLIP_MODEL"
  /** A CLIP variant we cannot represent in the canonical layout (LayerScale, SigLIP, custom towers). */
  | "UNSUPPORTED_MODEL"
  /** A tensor that is neither canonical nor a known harmless extra. */
  | "UNKNOWN_TENSOR"
  /** The output directory exists and is not empty (pass overwrite / --force). */
  | "OUTPUT_EXISTS"
  /** The conversion was aborted through its AbortSignal. */
  | "ABORTED"
  /** A mask checkpoint key or size does not fit the model. */
  | "MASK_MISMATCH";

/** Throws an UnmaskError with a convert code; `subject` is the file, tensor or field concerned. */
export function fail(code: ConvertErrorCode, message: string, subject?: string, cause?: unknown): never {
  throw new UnmaskError(code, message, { subject, cause });
}
