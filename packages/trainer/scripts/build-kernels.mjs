#!/usr/bin/env node
// Compiles kernels/unmask.cu twice: into kernels/unmask.fatbin (activations and GEMM operands in
// bf16) and, with -DUNMASK_FP16, into kernels/unmask-fp16.fatbin (fp16; kernels/common.cuh's
// `lowp`, the engine's precision). Each holds sm_80 and sm_90a machine code, plus compute_90 PTX
// for newer GPUs. The Hopper code is built for sm_90a, the architecture-specific target that has
// the warpgroup MMAs (kernels/attention_wgmma.cu); it runs on every compute capability 9.0 GPU,
// and every other kernel's machine code is the same as for plain sm_90. Where nvcc is absent the
// build keeps the committed fatbins and says so: a machine without the CUDA toolkit still builds
// and runs the package.
import { execFile, spawnSync } from "node:child_process";
import { existsSync, renameSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const kernels = join(dirname(fileURLToPath(import.meta.url)), "..", "kernels");
const source = join(kernels, "unmask.cu");
const builds = [
  { output: join(kernels, "unmask.fatbin"), defines: [] },
  { output: join(kernels, "unmask-fp16.fatbin"), defines: ["-DUNMASK_FP16"] },
];

function findNvcc() {
  const candidates = [];
  if (process.env.CUDA_PATH) candidates.push(join(process.env.CUDA_PATH, "bin", "nvcc"));
  candidates.push("nvcc", "/usr/local/cuda/bin/nvcc");
  for (const c of candidates) {
    const r = spawnSync(c, ["--version"], { encoding: "utf8" });
    if (r.status === 0) return c;
  }
  return null;
}

const nvcc = findNvcc();
if (!nvcc) {
  for (const { output } of builds) {
    const kept = existsSync(output)
      ? `keeping ${output} (${statSync(output).size} bytes)`
      : `${output} does not exist`;
    console.log(`build-kernels: nvcc not found (CUDA_PATH, PATH, /usr/local/cuda/bin); ${kept}`);
  }
  process.exit(0);
}
// both builds at once (one nvcc uses about one core); each written to a temp name, then renamed
await Promise.all(
  builds.map(async ({ output, defines }) => {
    const temp = `${output}.tmp-${process.pid}`;
    const { stderr } = await promisify(execFile)(
      nvcc,
      [
        "-fatbin",
        "-O3",
        ...defines,
        "-gencode=arch=compute_80,code=sm_80",
        "-gencode=arch=compute_90a,code=sm_90a",
        "-gencode=arch=compute_90,code=compute_90",
        "-o",
        temp,
        source,
      ],
      { cwd: kernels },
    );
    if (stderr) process.stderr.write(stderr);
    renameSync(temp, output);
    console.log(`build-kernels: wrote ${output} (${statSync(output).size} bytes) with ${nvcc}`);
  }),
);
