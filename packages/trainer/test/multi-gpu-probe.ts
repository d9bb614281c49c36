/**
 * Why the multi-GPU suites cannot run here, or "" when they can: the CUDA driver must load, report
 * at least `gpus` devices, and libnccl must open. The suites skip with this reason printed.
 */
import { Nccl } from "../src/distributed/nccl.js";
import { openCudaLibraries } from "../src/engines/cuda/libraries.js";

export async function multiGpuUnavailable(gpus: number): Promise<string> {
  try {
    const libs = await openCudaLibraries();
    const init = libs.driver.func("int cuInit(unsigned int flags)") as (flags: number) => number;
    const count = libs.driver.func("int cuDeviceGetCount(_Out_ int *count)") as (out: number[]) => number;
    const n = [0];
    if (init(0) !== 0 || count(n) !== 0 || n[0] < gpus) return `needs ${gpus} GPUs, found ${n[0]}`;
    await Nccl.open();
    return "";
  } catch (error) {
    return (error as Error).message;
  }
}
