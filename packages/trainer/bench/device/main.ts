/**
 * The device run: bundled by scripts/bundle-device.mjs into .gpu/ and run on the GPU machine.
 *   node main.mjs parity <fixtureDir>        tiny-vit-p8 step vs the float64 fixture, Philox check
 *   node main.mjs bench <batch>...           ViT-B/16 R-AMT step throughput (random weights)
 *   node main.mjs profile <batch>...         the same, then one eager step with every launch timed
 *   node main.mjs tunecheck <batch> <steps>  GEMM tuning changes no bit of the state
 *   node main.mjs cpuparity <fixtureDir> [steps]  the cuda engine against the cpu engine, step by step
 *   node main.mjs samebits <batch> <steps> <K=V,...|->...  the state under environment variants, against the first
 *   node main.mjs abtest <batch> <rounds> <K=V,...|->...  the step under environment variants, alternated
 *   node main.mjs gemmlayouts <batch> [random]  the weight-gradient GEMMs as written and transposed
 *   node main.mjs mlpgemm <batch>            the fused MLP GEMMs against float64 and against cuBLAS + the activation kernels
 *   node main.mjs dpcheck [gpus]             data-parallel: a world of gpus against one GPU (run/dp-worker.mjs)
 *   node main.mjs dpbench [gpus] [perGpu] [steps]  data-parallel: the step's scaling on gpus GPUs
 *   node main.mjs dpreduce [gpus]            the NCCL gradient reducer's exact weighted all-reduce (run/nccl-worker.mjs)
 * Prints one JSON line per result.
 */
import { fileURLToPath } from "node:url";
import type { EngineModel, EngineState, FloatTensor } from "../../src/engine.js";
import { createCudaEngine } from "../../src/engines/cuda/engine.js";
import { philoxUniforms } from "../../src/random/philox.js";
import { attentionCheck } from "./attention-check.js";
import { benchBatches, benchCache, benchEngine, vitB16 } from "./bench-model.js";
import { cpuParity } from "./cpu-parity.js";
import { dataParallelBench, dataParallelCheck, ncclReduceCheck } from "./data-parallel.js";
import { agreement, loadTinyFixture, normError, relError } from "./fixture.js";
import { gemmLayouts } from "./gemm-layouts.js";
import { mlpGemmCheck } from "./mlp-gemm-check.js";
import { benchPrecision, variantEnv, withEnv } from "./with-env.js";

const out = (o: unknown) => console.log(JSON.stringify(o));
/** The bundled dp-worker.ts (scripts/bundle-device.mjs writes it beside main.mjs). */
const DP_WORKER = fileURLToPath(new URL("./run/dp-worker.mjs", import.meta.url));
const NCCL_WORKER = fileURLToPath(new URL("./run/nccl-worker.mjs", import.meta.url));

async function parity(dir: string) {
  const fx = loadTinyFixture(dir);
  const s = fx.step;
  const B = 6;
  const engine = await createCudaEngine(fx.model, {
    maxBatch: B,
    hyper: fx.hyper,
    seed: 1234,
    ...benchPrecision(),
  });
  const init: EngineState = { scores: new Map(), adamM: new Map(), adamV: new Map() };
  for (const name of fx.model.maskedTensors) {
    const sc = (s.get(`${name}.scores`) as FloatTensor).data;
    init.scores.set(name, sc);
    init.adamM.set(name, new Float32Array(sc.length));
    init.adamV.set(name, new Float32Array(sc.length));
  }
  await engine.setState(init);
  const labels = Int32Array.from((s.get("labels") as FloatTensor).data);
  const pixels = (s.get("images") as FloatTensor).data;
  const uniforms = new Map<string, Float32Array>();
  for (const name of fx.model.maskedTensors)
    uniforms.set(name, (s.get(`${name}.uniform`) as FloatTensor).data);
  const r = await engine.step({ labels, pixels }, { lr: 8e-5, step: 0, uniforms, debug: true });
  const after = await engine.getState();
  const d = r.debug;
  if (!d) throw new Error("no debug output");
  const report: Record<string, number> = {
    student_logits: relError(d.studentLogits, (s.get("student_logits") as FloatTensor).data),
    teacher_logits: relError(d.teacherLogits, (s.get("teacher_logits") as FloatTensor).data),
    loss_ce:
      Math.abs(r.lossCe - (s.get("loss_ce") as FloatTensor).data[0]) /
      (s.get("loss_ce") as FloatTensor).data[0],
    loss_kl:
      Math.abs(r.lossKl - (s.get("loss_kl") as FloatTensor).data[0]) /
      (s.get("loss_kl") as FloatTensor).data[0],
    loss_reg:
      Math.abs(r.lossReg / fx.hyper.regWeight - (s.get("loss_reg") as FloatTensor).data[0]) /
      (s.get("loss_reg") as FloatTensor).data[0],
  };
  for (const name of fx.model.maskedTensors) {
    const g = d.grads.get(name);
    if (!g) throw new Error(`no grads for ${name}`);
    const short = name.replace("visual.transformer.resblocks.", "b").replace(".attn.", ".");
    report[`${short}.grad_ce`] = relError(g.ce, (s.get(`${name}.grad_ce`) as FloatTensor).data);
    report[`${short}.grad_kl`] = relError(g.kl, (s.get(`${name}.grad_kl`) as FloatTensor).data);
    report[`${short}.grad_ce_norm`] = normError(g.ce, (s.get(`${name}.grad_ce`) as FloatTensor).data);
    report[`${short}.grad_kl_norm`] = normError(g.kl, (s.get(`${name}.grad_kl`) as FloatTensor).data);
    report[`${short}.grad_gdr_norm`] = normError(g.gdr, (s.get(`${name}.grad_gdr`) as FloatTensor).data);
    const s0 = (s.get(`${name}.scores`) as FloatTensor).data;
    const s1 = (s.get(`${name}.scores_after_adam`) as FloatTensor).data;
    const got = after.scores.get(name) as Float32Array;
    const dRef = new Float32Array(s0.length);
    const dGot = new Float32Array(s0.length);
    for (let i = 0; i < s0.length; i++) {
      dRef[i] = s1[i] - s0[i];
      dGot[i] = got[i] - s0[i];
    }
    // Adam's first step moves each score by lr * sign(g): count the entries that moved alike
    report[`${short}.adam_step_agree`] = agreement(dGot, dRef, 8e-7);
  }
  out({ check: "fixture", ...report });
  // Philox: the kernel's own draws must equal the host's philoxUniforms bit for bit.
  await engine.setState(init);
  const host = new Map<string, Float32Array>();
  fx.model.maskedTensors.forEach((name, t) => {
    host.set(name, philoxUniforms(1234, 7, t, (init.scores.get(name) as Float32Array).length));
  });
  await engine.step({ labels, pixels }, { lr: 8e-5, step: 7, uniforms: host });
  const withHost = await engine.getState();
  await engine.setState(init);
  await engine.step({ labels, pixels }, { lr: 8e-5, step: 7 });
  const withGpu = await engine.getState();
  let mismatches = 0;
  for (const name of fx.model.maskedTensors) {
    const a = withHost.scores.get(name) as Float32Array;
    const b = withGpu.scores.get(name) as Float32Array;
    for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) mismatches++;
  }
  out({ check: "philox_graph_vs_host_draws", mismatches });
  await engine.dispose();
}

/** Values of `got` (scores, Adam moments) that differ from `want`'s (missing tensors count whole). */
function statesDiffering(got: EngineState, want: EngineState): number {
  let differing = 0;
  for (const kind of ["scores", "adamM", "adamV"] as const)
    for (const [name, w] of want[kind]) {
      const g = got[kind].get(name);
      for (let i = 0; i < w.length; i++) if (g?.[i] !== w[i]) differing++;
    }
  return differing;
}

/**
 * Switches that must not change a bit: `steps` steps at batch B under each environment variant
 * (as abTest's) against the first, the losses and the whole state (scores, Adam moments)
 * compared (tunecheck: GEMM tuning against UNMASK_GEMM_TUNE=0).
 */
async function sameBits(check: string, B: number, steps: number, variants: string[]) {
  const model = vitB16(100);
  const cache = benchCache();
  const run = (variant: string) =>
    withEnv(variantEnv(variant), async () => {
      const engine = await benchEngine(model, B, cache);
      const { labels, makeCrops } = benchBatches(B);
      const losses: number[] = [];
      for (let s = 0; s < steps; s++) {
        const r = await engine.step({ labels, crops: makeCrops(s) }, { lr: 8e-5, step: s });
        losses.push(r.lossCe, r.lossKl);
      }
      const state = await engine.getState();
      const tuned = engine.gemmTuning().filter((t) => t.chosen >= 0).length;
      await engine.dispose();
      return { losses, state, tuned };
    });
  const [reference, ...others] = variants;
  const b = await run(reference);
  for (const variant of others) {
    const a = await run(variant);
    out({
      check,
      reference,
      variant,
      batch: B,
      steps,
      shapes_tuned: a.tuned,
      state_differing: statesDiffering(a.state, b.state),
      losses_differing: a.losses.filter((x, i) => x !== b.losses[i]).length,
    });
  }
}

async function bench(batches: number[], profile = false) {
  const model = vitB16(100);
  const cache = benchCache();
  for (const B of batches) await benchOne(model, cache, B, profile);
}

/**
 * Side-by-side runs of the step at batch B under environment variants ("K=V,K=V", or "-" for
 * the defaults), alternated `rounds` times in one process: the same model, machine and clocks.
 */
async function abTest(B: number, rounds: number, variants: string[]) {
  const model = vitB16(100);
  const cache = benchCache();
  for (let round = 0; round < rounds; round++)
    for (const variant of variants)
      await withEnv(variantEnv(variant), () => benchOne(model, cache, B, false, { variant, round }));
}

async function benchOne(
  model: EngineModel,
  cache: ReturnType<typeof benchCache>,
  B: number,
  profile: boolean,
  label: Record<string, unknown> = {},
) {
  const t0 = performance.now();
  const engine = await benchEngine(model, B, cache);
  const setupMs = performance.now() - t0;
  const { labels, makeCrops } = benchBatches(B);
  const losses: number[] = [];
  const t1 = performance.now();
  for (let s = 0; s < 3; s++) {
    const r = await engine.step({ labels, crops: makeCrops(s) }, { lr: 8e-5, step: s });
    losses.push(r.lossCe, r.lossKl);
  }
  const warmMs = performance.now() - t1;
  const steps = 20;
  const t2 = performance.now();
  for (let s = 3; s < 3 + steps; s++)
    await engine.step({ labels, crops: makeCrops(s) }, { lr: 8e-5, step: s });
  const stepMs = (performance.now() - t2) / steps;
  const graphMs = engine.timeGraph(B, 10);
  const mem = engine.memoryInUse();
  // what a checkpoint costs the training loop: the state copied to the host (train() writes the
  // file while the next epoch trains)
  const stateMs: number[] = [];
  for (let k = 0; k < 3; k++) {
    const t = performance.now();
    await engine.getState();
    stateMs.push(performance.now() - t);
  }
  // the asynchronous snapshot train() takes every epoch: what queuing it costs the loop, and
  // its bits against getState's
  if (!engine.snapshotState) throw new Error("the cuda engine snapshots its state");
  const q0 = performance.now();
  const pending = engine.snapshotState();
  const snapshotIssueMs = performance.now() - q0;
  const reference = await engine.getState();
  const snapshot = await pending;
  out({
    bench: "cuda_rmt_step",
    ...label,
    batch: B,
    ms_per_step_wall: +stepMs.toFixed(2),
    img_per_s_wall: +((B * 1000) / stepMs).toFixed(1),
    ms_per_step_graph: +graphMs.toFixed(2),
    img_per_s_graph: +((B * 1000) / graphMs).toFixed(1),
    arena_gib: +(mem.arenaBytes / 2 ** 30).toFixed(2),
    device_used_gib: +(mem.deviceUsed / 2 ** 30).toFixed(2),
    setup_s: +(setupMs / 1000).toFixed(1),
    warmup_s: +(warmMs / 1000).toFixed(1),
    first_losses: losses.slice(0, 2).map((x) => +x.toFixed(4)),
    get_state_ms: stateMs.map((x) => +x.toFixed(1)),
    snapshot_issue_ms: +snapshotIssueMs.toFixed(2),
    snapshot_differing: statesDiffering(snapshot, reference),
    epilogues: engine.gemmEpilogues(),
  });
  for (const t of engine.gemmTuning()) out({ gemm_tuning: t.shape, ...t });
  if (profile) {
    engine.profileStep(B); // warm the eager path
    const rows = engine.profileStep(B);
    const total = rows.reduce((a, r) => a + r.ms, 0);
    const gemm = rows.filter((r) => r.flops > 0);
    const gemmMs = gemm.reduce((a, r) => a + r.ms, 0);
    const gemmFlops = gemm.reduce((a, r) => a + r.flops, 0);
    out({
      profile: "cuda_rmt_step_eager",
      batch: B,
      total_ms: +total.toFixed(2),
      gemm_ms: +gemmMs.toFixed(2),
      gemm_tflops: +(gemmFlops / gemmMs / 1e9).toFixed(1),
      other_ms: +(total - gemmMs).toFixed(2),
    });
    for (const r of rows.slice(0, 40))
      console.log(
        `  ${r.ms.toFixed(3).padStart(9)} ms ${String(r.calls).padStart(4)}x  ${r.flops ? `${(r.flops / r.ms / 1e9).toFixed(0).padStart(4)} TF/s` : "         "}  ${r.name}`,
      );
    for (const m of engine.memoryBreakdown().slice(0, 24))
      console.log(
        `  ${(m.bytes / 2 ** 20).toFixed(1).padStart(9)} MiB ${String(m.count).padStart(3)}x  ${m.name}`,
      );
  }
  await engine.dispose();
}

const [cmd, ...rest] = process.argv.slice(2);
if (cmd === "parity") {
  out({ check: "attention_vit_b16_shape", ...(await attentionCheck()) });
  out({ check: "attention_nano_shape", ...(await attentionCheck(3, 65, 2)) });
  await parity(rest[0]);
} else if (cmd === "bench") await bench(rest.map(Number));
else if (cmd === "profile") await bench(rest.map(Number), true);
else if (cmd === "tunecheck")
  await sameBits("gemm_tuning_bits", Number(rest[0] ?? 32), Number(rest[1] ?? 4), [
    "UNMASK_GEMM_TUNE=0",
    "-",
  ]);
else if (cmd === "cpuparity")
  out({ check: "cpu_parity", ...(await cpuParity(rest[0], Number(rest[1] ?? 20))) });
else if (cmd === "samebits") await sameBits("same_bits", Number(rest[0]), Number(rest[1]), rest.slice(2));
else if (cmd === "abtest") await abTest(Number(rest[0]), Number(rest[1]), rest.slice(2));
else if (cmd === "gemmlayouts")
  for (const row of await gemmLayouts(Number(rest[0] ?? 256), rest[1] === "random"))
    out({ bench: "weight_gradient_layouts", ...row });
else if (cmd === "mlpgemm") for (const row of await mlpGemmCheck(Number(rest[0] ?? 256))) out(row);
else if (cmd === "dpcheck")
  out({ check: "data_parallel", ...(await dataParallelCheck(DP_WORKER, Number(rest[0] ?? 2))) });
else if (cmd === "dpreduce")
  out({ check: "nccl_reduce", ...(await ncclReduceCheck(NCCL_WORKER, Number(rest[0] ?? 2))) });
else if (cmd === "dpbench")
  out({
    bench: "data_parallel_step",
    ...(await dataParallelBench(
      DP_WORKER,
      Number(rest[0] ?? 2),
      Number(rest[1] ?? 256),
      Number(rest[2] ?? 20),
    )),
  });
else {
  console.error(
    "usage: main.mjs parity <dir> | cpuparity <dir> [steps] | bench <batch>... | profile <batch>... | tunecheck <batch> <steps> | samebits <batch> <steps> <K=V,...|->... | abtest <batch> <rounds> <K=V,...|->... | gemmlayouts <batch> [random] | mlpgemm <batch> | dpcheck [gpus] | dpbench [gpus] [perGpu] [steps] | dpreduce [gpus]",
  );
  process.exit(2);
}
