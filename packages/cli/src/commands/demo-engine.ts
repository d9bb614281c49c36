/**
 * The training engine of `unmask demo --device`: cpu, cuda, or auto (cuda when it starts, else the
 * cpu engine, with a one-line note saying why).
 */
import { isUnmaskError } from "@unmask/clip";
import { type EngineFactory, engineFactory } from "@unmask/trainer";
import type { Narrator } from "./demo-output.js";

export type DeviceChoice = "auto" | "cpu" | "cuda";

/** The engine for --device: auto tries CUDA and falls back to the cpu engine, saying why. */
export async function chooseEngine(
  device: DeviceChoice,
  narrator: Narrator,
): Promise<{ factory: EngineFactory; name: () => string }> {
  if (device !== "auto") {
    const create = await engineFactory(device);
    const factory: EngineFactory = async (model, options) => {
      const engine = await create(model, options);
      narrator.info(`training on the ${device} engine`);
      return engine;
    };
    return { factory, name: () => device };
  }
  let used = "cpu";
  const cpu = await engineFactory("cpu");
  const cuda = await engineFactory("cuda").catch((error: unknown) => {
    if (isUnmaskError(error, "CUDA_UNAVAILABLE")) {
      narrator.info(`no CUDA engine here (${firstLine(error)})`);
      return null;
    }
    throw error;
  });
  const factory: EngineFactory = async (model, options) => {
    if (cuda) {
      try {
        const engine = await cuda(model, options);
        used = "cuda";
        narrator.info("training on the cuda engine");
        return engine;
      } catch (error) {
        if (!isUnmaskError(error, "CUDA_UNAVAILABLE")) throw error;
        narrator.info(`no usable CUDA GPU (${firstLine(error)})`);
      }
    }
    used = "cpu";
    const engine = await cpu(model, options);
    narrator.info("training on the cpu engine");
    return engine;
  };
  return { factory, name: () => used };
}

/** The gist of an error for a one-line note: its first line, without the list of paths tried. */
function firstLine(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  const line = message.split("\n")[0].replace(/; tried: .*$/, "");
  return line.length > 160 ? `${line.slice(0, 157)}...` : line;
}
