/**
 * CLIP's BPE tokenizer (`clip.tokenize`), pure TypeScript with no Node APIs: the caller supplies
 * the merges text (`tokenizer-node.ts` loads the vocabulary shipped in this package).
 *
 * Per text: clean (text-clean.ts), split with OpenAI's regex, byte-encode each piece, BPE it, then
 * lay out [SOT, ...tokens, EOT] zero-padded to the context length.
 */
import { UnmaskError } from "@unmask/mask-format";
import { type BpeVocabulary, bytePairEncode, END_OF_TEXT, parseBpeMerges, START_OF_TEXT } from "./bpe.js";
import { cleanText } from "./text-clean.js";

export const DEFAULT_CONTEXT_LENGTH = 77;

/**
 * OpenAI's pre-tokeniser (`regex`, IGNORECASE): special tokens, English contractions, letter runs,
 * single digits, runs of other non-space characters. Whitespace is `\p{White_Space}` as in
 * Python's `regex`.
 */
const PIECE_PATTERN =
  /<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}|[^\p{White_Space}\p{L}\p{N}]+/giu;

/** Cached BPE results (piece -> ids). Prompts repeat words; the cap keeps memory bounded on corpora. */
const MAX_CACHED_PIECES = 200_000;

export interface TokenizeOptions {
  /** Tokens per row, SOT and EOT included (77 for every OpenAI CLIP). */
  contextLength?: number;
  /** Cut over-long texts to `contextLength` (the last id becomes EOT) instead of throwing. */
  truncate?: boolean;
}

export class ClipTokenizer {
  readonly vocabulary: BpeVocabulary;
  readonly startOfTextId: number;
  readonly endOfTextId: number;
  private readonly cache = new Map<string, readonly number[]>();
  private readonly utf8 = new TextEncoder();

  constructor(vocabulary: BpeVocabulary) {
    this.vocabulary = vocabulary;
    this.startOfTextId = vocabulary.startOfTextId;
    this.endOfTextId = vocabulary.endOfTextId;
  }

  /** From the text of `bpe_simple_vocab_16e6.txt` (decompressed). */
  static fromMergesText(mergesText: string): ClipTokenizer {
    return new ClipTokenizer(parseBpeMerges(mergesText));
  }

  /** Number of ids (49,408 for CLIP). */
  get vocabSize(): number {
    return this.vocabulary.decoder.length;
  }

  /** Token ids of one text, without SOT/EOT (OpenAI's `SimpleTokenizer.encode`). */
  encode(text: string): number[] {
    const ids: number[] = [];
    this.appendIds(cleanText(text), ids);
    return ids;
  }

  /** Text of token ids (SOT/EOT/padding dropped); word ends become spaces as in OpenAI's decode. */
  decode(ids: ArrayLike<number>): string {
    const byteDecoder = new Map<string, number>();
    for (let byte = 0; byte < 256; byte++) byteDecoder.set(this.vocabulary.byteEncoder[byte], byte);
    let symbols = "";
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (id === this.startOfTextId || id === this.endOfTextId || id === 0) continue;
      const symbol = this.vocabulary.decoder[id];
      if (symbol !== undefined) symbols += symbol;
    }
    const bytes: number[] = [];
    for (const char of symbols.replaceAll("</w>", " ")) {
      const byte = byteDecoder.get(char);
      if (byte !== undefined) bytes.push(byte);
      else bytes.push(...this.utf8.encode(char));
    }
    return new TextDecoder().decode(new Uint8Array(bytes)).trimEnd();
  }

  /**
   * `clip.tokenize`: one row of `contextLength` ids per text, [SOT, ...tokens, EOT, 0, ...].
   * @returns Int32Array of shape [texts, contextLength], row-major.
   * @throws UnmaskError TEXT_TOO_LONG naming the text when it does not fit and `truncate` is off;
   *   BAD_OPTION for a context length that is not a positive integer.
   */
  tokenize(texts: string | readonly string[], options: TokenizeOptions = {}): Int32Array {
    const contextLength = options.contextLength ?? DEFAULT_CONTEXT_LENGTH;
    if (!Number.isSafeInteger(contextLength) || contextLength < 1) {
      throw new UnmaskError("BAD_OPTION", `contextLength must be a positive integer, got ${contextLength}`, {
        subject: "contextLength",
      });
    }
    const list = typeof texts === "string" ? [texts] : texts;
    const out = new Int32Array(list.length * contextLength);
    const ids: number[] = [];
    for (let row = 0; row < list.length; row++) {
      ids.length = 0;
      ids.push(this.startOfTextId);
      // Stop splitting once the row cannot fit: a huge text costs no more than a full row.
      const complete = this.appendIds(cleanText(list[row]), ids, contextLength);
      if (complete) ids.push(this.endOfTextId);
      if (ids.length > contextLength) {
        if (!options.truncate) {
          throw new UnmaskError(
            "TEXT_TOO_LONG",
            `Text ${JSON.stringify(preview(list[row]))} needs more than the context length of ${contextLength} tokens (start and end tokens included); pass truncate: true to cut it`,
            { subject: list[row] },
          );
        }
        ids.length = contextLength;
        ids[contextLength - 1] = this.endOfTextId;
      }
      const base = row * contextLength;
      for (let i = 0; i < ids.length; i++) out[base + i] = ids[i];
    }
    return out;
  }

  /**
   * Splits cleaned text into pieces and appends each piece's BPE ids. Stops early, returning
   * false, once `ids` is longer than `limit` (the text will be cut or refused anyway).
   */
  private appendIds(cleaned: string, ids: number[], limit = Number.POSITIVE_INFINITY): boolean {
    PIECE_PATTERN.lastIndex = 0;
    for (let match = PIECE_PATTERN.exec(cleaned); match !== null; match = PIECE_PATTERN.exec(cleaned)) {
      const pieceIds = this.pieceIds(match[0]);
      for (let i = 0; i < pieceIds.length; i++) ids.push(pieceIds[i]);
      if (ids.length > limit) return false;
    }
    return true;
  }

  private pieceIds(piece: string): readonly number[] {
    const cached = this.cache.get(piece);
    if (cached !== undefined) return cached;
    let result: number[];
    if (piece === START_OF_TEXT) result = [this.startOfTextId];
    else if (piece === END_OF_TEXT) result = [this.endOfTextId];
    else {
      const { byteEncoder, encoder, ranks } = this.vocabulary;
      const symbols = Array.from(this.utf8.encode(piece), (byte) => byteEncoder[byte]);
      result = bytePairEncode(symbols, ranks).map((symbol) => {
        const id = encoder.get(symbol);
        if (id === undefined) {
          // Every merge result and every byte symbol is in the vocabulary; only a corrupt file gets here.
          throw new UnmaskError(
            "BAD_VOCABULARY",
            `BPE symbol ${JSON.stringify(symbol)} is not in the vocabulary`,
            {
              subject: symbol,
            },
          );
        }
        return id;
      });
    }
    if (this.cache.size >= MAX_CACHED_PIECES) this.cache.clear();
    this.cache.set(piece, result);
    return result;
  }
}

function preview(text: string): string {
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}
