/**
 * Kill -9 in the middle of an epoch, resume, and get the same bytes: a child process trains the
 * tiny model with the cpu engine (test/train-child.mjs, on the built package), is SIGKILLed during
 * epoch 2, and a second child resumes from the last epoch checkpoint. Its .umask must be
 * byte-identical to the one of an uninterrupted run.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import sharp from "sharp";
import { beforeAll, describe, expect, it } from "vitest";
import { makeTinyModelDir } from "../test/tiny-model.js";

const child = join(dirname(fileURLToPath(import.meta.url)), "..", "test", "train-child.mjs");
let work: string;
let modelDir: string;
let dataDir: string;

interface Run {
  events: { status: string; epoch?: number; step?: number; globalStep?: number }[];
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

/** Runs the child; `killWhen` sees each event and returns true to SIGKILL the process. */
function runChild(args: string[], killWhen?: (e: Run["events"][number]) => boolean): Promise<Run> {
  return new Promise((resolve, reject) => {
    const proc: ChildProcess = spawn(process.execPath, [child, ...args], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    const run: Run = { events: [], code: null, signal: null, stderr: "" };
    let buffered = "";
    proc.stdout?.on("data", (chunk: Buffer) => {
      buffered += chunk.toString();
      let newline = buffered.indexOf("\n");
      while (newline >= 0) {
        const event = JSON.parse(buffered.slice(0, newline));
        buffered = buffered.slice(newline + 1);
        run.events.push(event);
        if (killWhen?.(event)) proc.kill("SIGKILL");
        newline = buffered.indexOf("\n");
      }
    });
    proc.stderr?.on("data", (chunk: Buffer) => {
      run.stderr += chunk.toString();
    });
    proc.on("error", reject);
    proc.on("close", (code, signal) => resolve({ ...run, code, signal }));
  });
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "unmask-resume-"));
  modelDir = await makeTinyModelDir(join(work, "model"));
  dataDir = join(work, "data");
  for (const [c, cls] of ["ant", "bee", "cat"].entries())
    for (const [split, n] of [
      ["train", 5],
      ["test", 2],
    ] as const) {
      mkdirSync(join(dataDir, split, cls), { recursive: true });
      for (let i = 0; i < n; i++) {
        const w = 30 + 2 * i;
        const h = 26 + 3 * c;
        const px = Buffer.alloc(w * h * 3);
        for (let p = 0; p < w * h; p++) px[p * 3 + ((c + (p % w > w / 2 ? 1 : 0)) % 3)] = 90 + 30 * i;
        await sharp(px, { raw: { width: w, height: h, channels: 3 } })
          .png()
          .toFile(join(dataDir, split, cls, `${i}.png`));
      }
    }
});

describe("resume after SIGKILL", () => {
  it("continues from the last epoch checkpoint to a byte-identical .umask", async () => {
    const whole = join(work, "whole.umask");
    const first = await runChild([modelDir, dataDir, whole, "0", "0"]);
    expect(first.stderr).toBe("");
    expect(first.code).toBe(0);
    // the run really moves the mask, so identical bytes mean identical training
    expect(JSON.parse(readFileSync(join(work, "whole.report.json"), "utf8")).switchedOff).toBeGreaterThan(0);

    const cut = join(work, "cut.umask");
    // An epoch's checkpoint is written while the next epoch trains (its "checkpoint" event comes
    // once the file is in place): the kill comes in epoch 2 after epoch 1's checkpoint, while no
    // write is in flight (the child's steps take 150 ms, the tiny checkpoint a few)
    let checkpointed = -1;
    const killed = await runChild([modelDir, dataDir, cut, "0", "150"], (e) => {
      if (e.status === "checkpoint") checkpointed = e.epoch ?? -1;
      return checkpointed === 1 && e.status === "step" && e.epoch === 2;
    });
    expect(killed.signal).toBe("SIGKILL");
    expect(killed.events.filter((e) => e.status === "step").at(-1)).toMatchObject({ epoch: 2 });
    expect(killed.events.filter((e) => e.status === "checkpoint").map((e) => e.epoch)).toEqual([0, 1]);
    expect(existsSync(cut)).toBe(false);
    expect(existsSync(`${cut}.ckpt`)).toBe(true);

    const resumed = await runChild([modelDir, dataDir, cut, "1", "0"]);
    expect(resumed.code).toBe(0);
    expect(resumed.events.find((e) => e.status === "resume")).toMatchObject({ globalStep: 6 });
    expect(resumed.events.filter((e) => e.status === "step")[0]).toMatchObject({ epoch: 2, step: 0 });
    expect(existsSync(`${cut}.ckpt`)).toBe(false);
    expect(readFileSync(cut).equals(readFileSync(whole))).toBe(true);
  }, 60_000);
});
