/**
 * Picks an engine by name. The cpu engine ships with the package; the CUDA engine is loaded on
 * demand (it needs libcuda through koffi), and a machine without it gets CUDA_UNAVAILABLE
 * naming what is missing rather than a crash.
 */
import { UnmaskError } from "@unmask/clip";
import type { EngineFactory } from "./engine.js";

export type EngineName = "cpu" | "cuda";

export async function engineFactory(name: EngineName): Promise<EngineFactory> {
  if (name === "cpu") {
    const { createCpuEngine } = await import("./engines/cpu/index.js");
    return createCpuEngine;
  }
  if (name === "cuda") {
    let module: { createCudaEngine?: EngineFactory };
    try {
      module = (await import("./engines/cuda/index.js")) as { createCudaEngine?: EngineFactory };
    } catch (cause) {
      throw new UnmaskError(
        "CUDA_UNAVAILABLE",
        `the CUDA engine could not be loaded (${(cause as Error).message}); use --device cpu`,
        { cause, subject: "engines/cuda" },
      );
    }
    if (typeof module.createCudaEngine !== "function")
      throw new UnmaskError(
        "CUDA_UNAVAILABLE",
        "engines/cuda does not export createCudaEngine; use --device cpu",
        {
          subject: "createCudaEngine",
        },
      );
    const create = module.createCudaEngine;
    return async (model, options) => {
      try {
        return await create(model, options);
      } catch (cause) {
        if (UnmaskError.isInstance(cause)) throw cause;
        throw new UnmaskError(
          "CUDA_UNAVAILABLE",
          `the CUDA engine failed to start: ${(cause as Error).message}`,
          {
            cause,
            subject: "createCudaEngine",
          },
        );
      }
    };
  }
  throw new UnmaskError("BAD_OPTION", `unknown engine ${name}; choose cpu or cuda`, { subject: "engine" });
}
