import { readFileSync } from "node:fs";
import { gunzipSync } from "node:zlib";
import { fixturePath } from "@unmask/fixtures";
import { isUnmaskError } from "@unmask/mask-format";
import { describe, expect, it } from "vitest";
import { bytesToUnicode, CLIP_MERGE_COUNT } from "./bpe.js";
import { cleanText } from "./text-clean.js";
import {
  BPE_VOCABULARY_PATH,
  getClipTokenizer,
  tokenize,
  tokenizerFromVocabularyBytes,
} from "./tokenizer-node.js";

interface TokenizerFixture {
  context_length: number;
  truncate: boolean;
  cases: { text: string; ids: number[] }[];
}

const fixture = JSON.parse(
  readFileSync(fixturePath("text-image/tokenizer.json"), "utf8"),
) as TokenizerFixture;

function idsOf(text: string, truncate = false): number[] {
  return Array.from(tokenize(text, { truncate })).filter((id) => id !== 0);
}

describe("tokenize", () => {
  it("reproduces every case of OpenAI's clip.tokenize(truncate=True) exactly", () => {
    expect(fixture.cases.length).toBeGreaterThan(10);
    for (const { text, ids } of fixture.cases) {
      const got = tokenize(text, { contextLength: fixture.context_length, truncate: fixture.truncate });
      expect({ text, ids: Array.from(got) }).toEqual({ text, ids });
    }
  });

  it("tokenizes a batch into one row per text", () => {
    const texts = fixture.cases.map((c) => c.text);
    const batch = tokenize(texts, { truncate: true });
    expect(batch).toBeInstanceOf(Int32Array);
    expect(batch.length).toBe(texts.length * 77);
    expect(Array.from(batch.subarray(77 * 3, 77 * 4))).toEqual(fixture.cases[3].ids);
  });

  it("has CLIP's vocabulary layout", () => {
    const tokenizer = getClipTokenizer();
    expect(tokenizer.vocabSize).toBe(49408);
    expect(tokenizer.startOfTextId).toBe(49406);
    expect(tokenizer.endOfTextId).toBe(49407);
    expect(tokenizer.vocabulary.ranks.size).toBe(CLIP_MERGE_COUNT);
    expect(tokenizer.vocabulary.decoder[49405]).toBe("jeky" + "ll</w>");
    expect(bytesToUnicode()[32]).toBe("\u0120");
  });

  it("throws TEXT_TOO_LONG naming the text without truncate", () => {
    const long = "word ".repeat(100);
    let error: unknown;
    try {
      tokenize(["a photo of a cat.", long]);
    } catch (e) {
      error = e;
    }
    expect(isUnmaskError(error, "TEXT_TOO_LONG")).toBe(true);
    expect((error as Error).message).toContain("word word");
    expect((error as Error).message).toContain("77");
  });

  it("fits a text of exactly the context length without truncate", () => {
    // 75 words + SOT + EOT = 77 ids: the edge that must not throw; one more word must.
    expect(idsOf("word ".repeat(75)).length).toBe(77);
    expect(() => tokenize("word ".repeat(76))).toThrow(/76|77/);
    const cut = tokenize("word ".repeat(76), { truncate: true });
    expect(cut[76]).toBe(49407);
  });

  it("stops splitting a huge text once it cannot fit", () => {
    const huge = "lorem ipsum dolor sit amet ".repeat(40_000); // ~1 MB
    const row = tokenize(huge, { truncate: true });
    expect(row[0]).toBe(49406);
    expect(row[76]).toBe(49407);
    expect(Array.from(row.subarray(1, 76))).toEqual(
      Array.from(tokenize("lorem ipsum dolor sit amet ".repeat(20), { truncate: true }).subarray(1, 76)),
    );
    expect(() => tokenize(huge)).toThrow(/context length of 77/);
  });

  it("honours another context length", () => {
    const ids = tokenize("a photo of a cat.", { contextLength: 10 });
    expect(Array.from(ids)).toEqual([49406, 320, 1125, 539, 320, 2368, 269, 49407, 0, 0]);
    expect(() => tokenize("a", { contextLength: 0 })).toThrow(/contextLength/);
  });

  it("decodes ids back to the cleaned text, a space after every word as OpenAI's decode", () => {
    const tokenizer = getClipTokenizer();
    expect(tokenizer.decode(tokenizer.tokenize("A photo of a Café naïve 日本語 🐱"))).toBe(
      "a photo of a café naïve 日本語 🐱",
    );
    expect(tokenizer.decode(tokenizer.tokenize("t-shirt/top!"))).toBe("t - shirt / top !");
  });

  it("builds the same tokenizer from vocabulary bytes, gzipped or not", () => {
    const gz = readFileSync(BPE_VOCABULARY_PATH);
    const fromGz = tokenizerFromVocabularyBytes(gz);
    // Plain (decompressed) bytes, as a browser passes them after a DecompressionStream.
    const plain = tokenizerFromVocabularyBytes(gunzipSync(gz));
    for (const t of [fromGz, plain])
      expect(t.encode("a photo of a great white shark.")).toEqual([
        320, 1125, 539, 320, 830, 1579, 7980, 269,
      ]);
    expect(() => tokenizerFromVocabularyBytes(new Uint8Array([0x1f, 0x8b, 1, 2, 3]))).toThrow(/gzip/);
    expect(() => tokenizerFromVocabularyBytes(new TextEncoder().encode("#version\na b\n"))).toThrow(/merge/);
  });
});

describe("cleanText", () => {
  it("unescapes html twice, collapses whitespace and lowercases", () => {
    expect(cleanText("  A\t\nB  ")).toBe("a b");
    expect(cleanText("&amp;amp; &lt;b&gt;")).toBe("& <b>");
    expect(cleanText("\u00a0x\u2003y\u0085")).toBe("x y");
  });

  it("applies ftfy's context-free fixes and NFC", () => {
    expect(cleanText("\u2018quoted\u2019 \u201cwords\u201d")).toBe("'quoted' \"words\"");
    expect(cleanText("\ufb01sh")).toBe("fish");
    expect(cleanText("\uff21\uff22\u3000\uff43")).toBe("ab c");
    expect(cleanText("cafe\u0301")).toBe("caf\u00e9");
    expect(cleanText("a\u0000b\ufeffc")).toBe("abc");
  });
});
