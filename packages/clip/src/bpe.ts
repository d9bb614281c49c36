/**
 * Byte-level BPE exactly as OpenAI's `clip/simple_tokenizer.py` builds it: a vocabulary of the 256
 * byte symbols, the same 256 with `</w>`, one entry per merge, then `<|startoftext|>` and
 * `<|endoftext|>`; merges applied lowest rank first. Pure (no Node APIs) so it runs in browsers.
 */
import { UnmaskError } from "@unmask/mask-format";

/** Merges OpenAI uses: lines[1 : 49152 - 256 - 2 + 1] of the merges file. */
export const CLIP_MERGE_COUNT = 49152 - 256 - 2;
export const START_OF_TEXT = "<|startoftext|>";
export const END_OF_TEXT = "<|endoftext|>";

/**
 * GPT-2's `bytes_to_unicode`: printable Latin-1 bytes map to themselves, the rest to U+0100 onwards,
 * so every byte is a visible, non-space character. Index = byte value.
 */
export function bytesToUnicode(): string[] {
  const printable: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) printable.push(b);
  for (let b = 0xa1; b <= 0xac; b++) printable.push(b);
  for (let b = 0xae; b <= 0xff; b++) printable.push(b);
  const table = new Array<string>(256);
  for (const b of printable) table[b] = String.fromCodePoint(b);
  let next = 0;
  for (let b = 0; b < 256; b++) {
    if (table[b] === undefined) table[b] = String.fromCodePoint(256 + next++);
  }
  return table;
}

/** The byte symbols in OpenAI's vocabulary order (printable bytes first, then the rest). */
function byteSymbolsInVocabOrder(byteEncoder: string[]): string[] {
  const printable: string[] = [];
  const rest: string[] = [];
  for (let b = 0; b < 256; b++) {
    const isPrintable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    (isPrintable ? printable : rest).push(byteEncoder[b]);
  }
  return [...printable, ...rest];
}

export interface BpeVocabulary {
  /** Symbol (byte-encoded, with `</w>` on word ends) -> token id. */
  readonly encoder: Map<string, number>;
  /** Token id -> symbol. */
  readonly decoder: string[];
  /** `"first second"` -> merge rank (lower merges first). */
  readonly ranks: Map<string, number>;
  /** Byte value -> its unicode symbol. */
  readonly byteEncoder: string[];
  readonly startOfTextId: number;
  readonly endOfTextId: number;
}

/**
 * Builds the vocabulary from the text of `bpe_simple_vocab_16e6.txt` (a version line, then one
 * merge `"a b"` per line).
 * @throws UnmaskError BAD_VOCABULARY when the file has fewer merges than CLIP uses or a bad line.
 */
export function parseBpeMerges(mergesText: string, mergeCount = CLIP_MERGE_COUNT): BpeVocabulary {
  const lines = mergesText.split("\n");
  if (lines.length < mergeCount + 1) {
    throw new UnmaskError(
      "BAD_VOCABULARY",
      `BPE vocabulary has ${lines.length - 1} merge lines, CLIP needs ${mergeCount}`,
      { subject: "bpe_simple_vocab_16e6.txt" },
    );
  }
  const byteEncoder = bytesToUnicode();
  const decoder = byteSymbolsInVocabOrder(byteEncoder);
  for (let i = 0; i < 256; i++) decoder.push(`${decoder[i]}</w>`);
  const ranks = new Map<string, number>();
  for (let i = 0; i < mergeCount; i++) {
    const line = lines[i + 1];
    const parts = line.split(/\s+/).filter((p) => p.length > 0);
    if (parts.length !== 2) {
      throw new UnmaskError(
        "BAD_VOCABULARY",
        `BPE merge line ${i + 2} is not two symbols: ${JSON.stringify(line)}`,
        {
          subject: "bpe_simple_vocab_16e6.txt",
        },
      );
    }
    ranks.set(`${parts[0]} ${parts[1]}`, i);
    decoder.push(parts[0] + parts[1]);
  }
  decoder.push(START_OF_TEXT, END_OF_TEXT);
  const encoder = new Map<string, number>();
  for (let id = 0; id < decoder.length; id++) encoder.set(decoder[id], id);
  return {
    encoder,
    decoder,
    ranks,
    byteEncoder,
    startOfTextId: decoder.length - 2,
    endOfTextId: decoder.length - 1,
  };
}

/**
 * BPE of one pre-tokenised piece whose characters are already byte symbols. Same loop as OpenAI's
 * `SimpleTokenizer.bpe`: repeatedly take the lowest-ranked adjacent pair and merge every
 * occurrence of it left to right. Returns the final symbols (the last carries `</w>`).
 */
export function bytePairEncode(symbols: string[], ranks: Map<string, number>): string[] {
  if (symbols.length === 0) return [];
  let word = symbols.slice();
  word[word.length - 1] += "</w>";
  while (word.length > 1) {
    let bestRank = Number.POSITIVE_INFINITY;
    let first = "";
    let second = "";
    for (let i = 0; i + 1 < word.length; i++) {
      const rank = ranks.get(`${word[i]} ${word[i + 1]}`);
      if (rank !== undefined && rank < bestRank) {
        bestRank = rank;
        first = word[i];
        second = word[i + 1];
      }
    }
    if (bestRank === Number.POSITIVE_INFINITY) break;
    const merged: string[] = [];
    for (let i = 0; i < word.length; ) {
      if (i + 1 < word.length && word[i] === first && word[i + 1] === second) {
        merged.push(first + second);
        i += 2;
      } else {
        merged.push(word[i]);
        i += 1;
      }
    }
    word = merged;
  }
  return word;
}
