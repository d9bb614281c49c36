// GEMM throughput of the cpu engine's kernels on the shapes of a nano-clip step at batch 32
// (65 tokens, width 128, MLP 512: rows = 32 * 65 = 2080). Run after `pnpm build`:
//   node bench/cpu-gemm.mjs
import { availableParallelism } from "node:os";
import { Arena, gemm, gemmReference } from "../dist/engines/cpu/index.js";

const rows = 32 * 65;
const shapes = [
  // [label, transA, transB, m, n, k]
  ["qkv forward   X.Win^T", false, true, rows, 384, 128],
  ["mlp c_fc      X.Wfc^T", false, true, rows, 512, 128],
  ["mlp c_proj    X.Wpr^T", false, true, rows, 128, 512],
  ["dX (2 signals) dY.W", false, false, 2 * rows, 128, 384],
  ["dW  dY^T.X", true, false, 384, 128, rows],
  ["attention S = Q.K^T", false, true, 65, 65, 64],
  ["square 512", false, false, 512, 512, 512],
];
function fill(a) {
  for (let i = 0; i < a.length; i++) a[i] = Math.random() - 0.5;
  return a;
}
for (const threads of [1, availableParallelism()]) {
  const arena = new Arena(undefined, threads);
  console.log(`threads ${threads}`);
  console.log("shape                       m x n x k          GFLOP/s");
  for (const [label, ta, tb, m, n, k] of shapes) {
    const a = fill(arena.floats(m * k));
    const b = fill(arena.floats(k * n));
    const c = arena.floats(m * n);
    const lda = ta ? m : k;
    const ldb = tb ? k : n;
    const flop = 2 * m * n * k;
    const reps = Math.max(3, Math.ceil(2e9 / flop));
    gemm(ta, tb, m, n, k, a, lda, b, ldb, c, n, false);
    const t0 = performance.now();
    for (let r = 0; r < reps; r++) gemm(ta, tb, m, n, k, a, lda, b, ldb, c, n, false);
    const seconds = (performance.now() - t0) / 1000;
    console.log(
      `${label.padEnd(28)}${`${m}x${n}x${k}`.padEnd(19)}${((flop * reps) / seconds / 1e9).toFixed(1)}`,
    );
  }
  await arena.close();
}
{
  // the float64 reference loop, for scale
  const [m, n, k] = [256, 256, 256];
  const a = fill(new Float32Array(m * k));
  const b = fill(new Float32Array(k * n));
  const c = new Float32Array(m * n);
  const t0 = performance.now();
  gemmReference(false, false, m, n, k, a, k, b, n, c, n, false);
  const seconds = (performance.now() - t0) / 1000;
  console.log(
    `${"reference JS loop".padEnd(28)}${`${m}x${n}x${k}`.padEnd(19)}${((2 * m * n * k) / seconds / 1e9).toFixed(2)}`,
  );
}
