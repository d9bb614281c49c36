/**
 * Test helper: a tiny labelled image folder, `dataDir`/{train,test}/{red,green,blue}_things/*.png,
 * 6 train and 2 test images per class, each mostly of its class's colour, sizes varied so that
 * crop boxes differ per image.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import sharp from "sharp";

export async function writeColourImageFolder(dataDir: string): Promise<string> {
  for (const [c, cls] of ["red_things", "green_things", "blue_things"].entries())
    for (const [split, n] of [
      ["train", 6],
      ["test", 2],
    ] as const) {
      mkdirSync(join(dataDir, split, cls), { recursive: true });
      for (let i = 0; i < n; i++) {
        const w = 20 + 3 * i;
        const h = 24 + 2 * c;
        const px = Buffer.alloc(w * h * 3);
        for (let p = 0; p < w * h; p++) px[p * 3 + c] = 120 + 20 * i + (p % 7);
        await sharp(px, { raw: { width: w, height: h, channels: 3 } })
          .png()
          .toFile(join(dataDir, split, cls, `${i}.png`));
      }
    }
  return dataDir;
}
