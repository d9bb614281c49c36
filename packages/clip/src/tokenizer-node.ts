/**
 * The tokenizer with the vocabulary shipped in this package (assets/bpe_simple_vocab_16e6.txt.gz),
 * loaded once, lazily, on first use. Node only (node:fs, node:zlib); browsers build a
 * `ClipTokenizer` from vocabulary bytes with `tokenizerFromVocabularyBytes`.
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { gunzipSync } from "node:zlib";
import { UnmaskError } from "@unmask/mask-format";
import { ClipTokenizer, type TokenizeOptions } from "./tokenizer.js";

/** Where the packaged vocabulary lives (relative to src/ and dist/ alike). */
export const BPE_VOCABULARY_PATH = fileURLToPath(
  new URL("../assets/bpe_simple_vocab_16e6.txt.gz", import.meta.url),
);

let defaultTokenizer: ClipTokenizer | undefined;

/**
 * A tokenizer from the bytes of `bpe_simple_vocab_16e6.txt`, gzipped (as OpenAI ships it) or not.
 * @throws UnmaskError BAD_VOCABULARY when the bytes are not a gzip stream of the merges file.
 */
export function tokenizerFromVocabularyBytes(bytes: Uint8Array, source = "vocabulary bytes"): ClipTokenizer {
  let text: Uint8Array = bytes;
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) {
    try {
      text = gunzipSync(bytes);
    } catch (cause) {
      throw new UnmaskError("BAD_VOCABULARY", `${source} is not a valid gzip stream`, {
        cause,
        subject: source,
      });
    }
  }
  return ClipTokenizer.fromMergesText(new TextDecoder().decode(text));
}

/** The shared tokenizer over the packaged vocabulary (read and parsed on the first call). */
export function getClipTokenizer(): ClipTokenizer {
  if (defaultTokenizer === undefined) {
    let bytes: Uint8Array;
    try {
      bytes = readFileSync(BPE_VOCABULARY_PATH);
    } catch (cause) {
      throw new UnmaskError(
        "VOCABULARY_MISSING",
        `Cannot read the BPE vocabulary at ${BPE_VOCABULARY_PATH}`,
        {
          cause,
          subject: BPE_VOCABULARY_PATH,
        },
      );
    }
    defaultTokenizer = tokenizerFromVocabularyBytes(bytes, BPE_VOCABULARY_PATH);
  }
  return defaultTokenizer;
}

/**
 * OpenAI's `clip.tokenize(texts, context_length, truncate)` with the packaged vocabulary.
 * @returns Int32Array [texts, contextLength] (77 by default): SOT, tokens, EOT, zero padding.
 * @throws UnmaskError TEXT_TOO_LONG naming the text when it does not fit and `truncate` is off.
 */
export function tokenize(texts: string | readonly string[], options: TokenizeOptions = {}): Int32Array {
  return getClipTokenizer().tokenize(texts, options);
}
