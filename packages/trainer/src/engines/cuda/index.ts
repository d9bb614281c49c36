/**
 * The cuda engine (docs/cuda-engine.md). Loaded by the training loop through a dynamic import so
 * that a machine without CUDA never touches koffi or libcuda unless it asks for this engine.
 */
export { createCudaEngine } from "./engine.js";
export { type CudaLibraries, openCudaLibraries } from "./libraries.js";
