/**
 * validate: a full check of a .umask file (header, every payload CRC, every tensor's decoding,
 * the head, and optionally the base model), and assertBaseModel for callers that hold a mask.
 */
import { type DecodedMask, type DecodeOptions, decodeMask } from "./decode.js";
import { MaskFormatError, UnmaskError } from "./errors.js";

export interface ValidateOptions extends DecodeOptions {
  /** When given, the file must have been made for the base model with this fingerprint. */
  fingerprint?: string;
}

export type ValidationResult = { ok: true; mask: DecodedMask } | { ok: false; error: UnmaskError };

/**
 * Decodes everything in the file and reports the first problem instead of throwing it. Errors
 * that are not UnmaskErrors (bugs) still throw.
 */
export function validate(bytes: Uint8Array, options: ValidateOptions = {}): ValidationResult {
  try {
    const mask = decodeMask(bytes, options);
    for (const tensor of mask.tensors) tensor.bits();
    if (options.fingerprint !== undefined) assertBaseModel(mask, options.fingerprint);
    return { ok: true, mask };
  } catch (error) {
    if (UnmaskError.isInstance(error)) return { ok: false, error };
    throw error;
  }
}

/**
 * Refuses a mask made for another base model.
 * @throws MaskFormatError FINGERPRINT_MISMATCH
 */
export function assertBaseModel(mask: Pick<DecodedMask, "baseModel" | "source">, fingerprint: string): void {
  if (mask.baseModel.fingerprint !== fingerprint)
    throw new MaskFormatError(
      "FINGERPRINT_MISMATCH",
      `${mask.source}: made for base model ${mask.baseModel.name ?? "(unnamed)"} with fingerprint ${mask.baseModel.fingerprint.slice(0, 16)}..., this model's is ${fingerprint.slice(0, 16)}...`,
      { subject: "baseModel.fingerprint" },
    );
}
