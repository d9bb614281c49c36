/**
 * The fused attention kernels against a float64 reference at ViT-B/16's shape (N = 197, 12 heads)
 * and at nano-clip's (N = 65, 2 heads): bench/device/attention-check.ts, which `main.mjs parity`
 * also runs on the device. Errors are max |a - b| / max |b|; the kernels' inputs are bf16, their
 * outputs rounded to bf16, so o, dq, dk, dv sit at a few times bf16's 2^-9 (measured on an H200,
 * bench/device/NOTES.md: o 2.8e-3, dq 5.2e-3, dk 4.6e-3, dv 3.5e-3 at N = 197). The mma.sync
 * kernels agree bit for bit among themselves; on Hopper the warpgroup-MMA forward
 * (UNMASK_ATTN_FWD=wgmma) sums in another order and is held to the same reference.
 * Skips (with the reason) where there is no GPU, driver or cuBLAS.
 */
import { describe, expect, it } from "vitest";
import { attentionCheck } from "../../../bench/device/attention-check.js";
import { cudaUnavailable } from "../../../test/cuda-probe.js";

const unavailable = await cudaUnavailable();
if (unavailable) console.warn(`attention kernel tests skipped: ${unavailable}`);

const TOLERANCE = { o: 6e-3, lse: 1e-6, dq: 1e-2, dk: 1e-2, dv: 1e-2 };

describe.skipIf(unavailable !== "")("fused attention kernels against float64", () => {
  for (const [shape, args] of [
    ["ViT-B/16 (N = 197)", [2, 197, 12]],
    ["nano-clip (N = 65)", [3, 65, 2]],
  ] as const) {
    it(`agree with the reference and among themselves at ${shape}`, async () => {
      const r = await attentionCheck(...args);
      expect(r.block_widths_differing).toBe(0);
      expect(r.pipelined_vs_fwd16_many_pairs_differing).toBe(0);
      expect(r.fused_vs_split_dkdv_differing).toBe(0);
      for (const [name, tolerance] of Object.entries(TOLERANCE)) expect(r[name]).toBeLessThan(tolerance);
      expect(r.cls_unwritten).toBe(0);
      if (r.wgmma_o === undefined) {
        console.warn("attn_fwd_wgmma not checked: not a compute capability 9.0 GPU");
        return;
      }
      for (const [name, tolerance] of Object.entries(TOLERANCE))
        expect(r[`wgmma_${name}`]).toBeLessThan(tolerance);
      expect(r.wgmma_vs_pipe_many_pairs_o).toBeLessThan(6e-3);
      expect(r.wgmma_many_pairs_unwritten).toBe(0);
    });
  }
});
