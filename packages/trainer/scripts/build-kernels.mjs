#!/usr/bin/env node
// Compiles kernels/unmask.cu into kernels/unmask.fatbin (sm_80 and sm_90a machine code, plus
// compute_90 PTX for newer GPUs). The Hopper code is built for sm_90a, the architecture-specific
// target that has the warpgroup MMAs (kernels/attention_wgmma.cu); it runs on every compute
// capability 9.0 GPU, and every other kernel's machine code is the same as for plain sm_90. Where nvcc is absent the build keeps the committed fatbin and
// says so: a machine without the CUDA toolkit still builds and runs the package.
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, renameSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const kernels = join(dirname(fileURLToPath(import.meta.url)), "..", "kernels");
const source = join(kernels, "unmask.cu");
const output = join(kernels, "unmask.fatbin");

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
  const kept = existsSync(output) ? `keeping ${output} (${statSync(output).size} bytes)` : "no fatbin exists";
  console.log(`build-kernels: nvcc not found (CUDA_PATH, PATH, /usr/local/cuda/bin); ${kept}`);
  process.exit(0);
}
const temp = `${output}.tmp-${process.pid}`;
execFileSync(
  nvcc,
  [
    "-fatbin",
    "-O3",
    "-gencode=arch=compute_80,code=sm_80",
    "-gencode=arch=compute_90a,code=sm_90a",
    "-gencode=arch=compute_90,code=compute_90",
    "-o",
    temp,
    source,
  ],
  { cwd: kernels, stdio: "inherit" },
);
renameSync(temp, output);
console.log(`build-kernels: wrote ${output} (${statSync(output).size} bytes) with ${nvcc}`);
