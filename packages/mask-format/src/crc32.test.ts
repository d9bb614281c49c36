import { crc32 as zlibCrc32 } from "node:zlib";
import { describe, expect, it } from "vitest";
import { randomBits, rng } from "../test/helpers.js";
import { crc32 } from "./crc32.js";

describe("crc32", () => {
  it("matches the standard check value and zlib", () => {
    expect(crc32(new TextEncoder().encode("123456789"))).toBe(0xcbf43926);
    expect(crc32(new Uint8Array(0))).toBe(0);
    const random = rng(3);
    for (const length of [1, 3, 4, 5, 7, 8, 1000, 4097]) {
      const bytes = randomBits(length * 8, 0.5, random);
      expect(crc32(bytes)).toBe(zlibCrc32(bytes));
      expect(crc32(bytes.subarray(1))).toBe(zlibCrc32(bytes.subarray(1)));
    }
  });
});
