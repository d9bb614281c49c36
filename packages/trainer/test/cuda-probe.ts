/**
 * Why the cuda engine cannot run here ("" where it can): the GPU test suites skip with this
 * message where there is no GPU, driver or cuBLAS.
 */
import { openCudaLibraries } from "../src/engines/cuda/libraries.js";

export async function cudaUnavailable(): Promise<string> {
  try {
    const libs = await openCudaLibraries();
    const { CudaDriver } = await import("../src/engines/cuda/driver.js");
    CudaDriver.open(libs.koffi, libs.driver).close();
    return "";
  } catch (error) {
    return (error as Error).message;
  }
}
