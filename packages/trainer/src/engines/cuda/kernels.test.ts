/**
 * The kernel launchers' arithmetic without a GPU: a stand-in driver records each launch (kernel,
 * grid, block, arguments), so these tests check the grids and the arguments each launcher derives
 * from the shapes, and the shapes it refuses. What the kernels compute is checked on the device
 * (bench/device: the attention check, the fixture step).
 */
import { describe, expect, it } from "vitest";
import { withEnv } from "../../../bench/device/with-env.js";
import type { CudaDriver, KernelArg } from "./driver.js";
import { fusedMlpBackward, fusedMlpSupported, Kernels } from "./kernels.js";

interface Launch {
  name: string;
  grid: number[];
  block: number[];
  args: KernelArg[];
}

function recordingKernels(computeCapability = 90): { k: Kernels; launches: Launch[] } {
  const launches: Launch[] = [];
  const cu = {
    multiprocessors: 132,
    computeCapability,
    loadModule: () => 1,
    getFunction: () => 2,
    setMaxDynamicShared: () => {},
    launch: (
      name: string,
      _fn: number,
      grid: number[],
      block: number[],
      _shared: number,
      _s: number,
      args: KernelArg[],
    ) => launches.push({ name, grid, block, args }),
  } as unknown as CudaDriver;
  return { k: new Kernels(cu, 7, new Uint8Array(0)), launches };
}

const values = (args: KernelArg[]) => args.map(([, v]) => v);

describe("kernel launchers", () => {
  it("patchify converts 8 values a thread where the patch allows, else what divides it", () => {
    const { k, launches } = recordingKernels();
    k.patchify(10, 20, 2, 224, 16); // ViT-B/16: 2 images, 196 patches of 768 values
    k.patchify(10, 20, 2, 224, 14); // ViT-L/14: 256 patches of 588 values, 14 = 2 x 7
    k.patchify(10, 20, 3, 32, 8); // the fixture's tiny ViT
    const [b16, l14, tiny] = launches.map((l) => values(l.args));
    expect(b16).toEqual([10, 20, 224, 16, 8, (2 * 196 * 768) / 8]);
    expect(l14).toEqual([10, 20, 224, 14, 2, (2 * 256 * 588) / 2]);
    expect(tiny).toEqual([10, 20, 32, 8, 8, (3 * 16 * 192) / 8]);
    expect(launches[0].grid[0]).toBe(Math.ceil((2 * 196 * 768) / 8 / 256));
  });

  it("runs the class-query attention one warp per (image, head), and per signal backward; both backwards take the pointers first", () => {
    const { k, launches } = recordingKernels();
    k.attnClsFwd(1, 2, 3, 4, 256, 197, 12);
    k.attnClsBwd({ qkv: 1, bias: 2, o: 3, dO: 4, lse: 5, dqkv: 6, S: 2, B: 5, N: 197, H: 12 });
    expect(launches.map((l) => [l.name, l.grid[0], l.block[0]])).toEqual([
      ["attn_cls_fwd", (256 * 12) / 4, 128],
      ["attn_cls_bwd", Math.ceil((2 * 5 * 12) / 4), 128],
    ]);
    expect(values(launches[1].args)).toEqual([1, 2, 3, 4, 5, 6, 5, 197, 12, 2, Math.LOG2E / 8, 1 / 8]);
    k.attnBwd({ qkv: 1, bias: 2, o: 3, dO: 4, lse: 5, dqkv: 6, S: 2, B: 5, N: 197, H: 12 });
    expect(launches[2].name).toBe("attn_bwd_fused");
    expect(values(launches[2].args)).toEqual([1, 2, 3, 4, 5, 6, 197, 12, 5 * 197, Math.LOG2E / 8, 1 / 8, 2]);
    expect(() => k.attnClsFwd(1, 2, 3, 4, 2, 705, 12)).toThrow(/tokens 705/);
  });

  it("copies rows of 16-byte units between strided layouts, and refuses others", () => {
    const { k, launches } = recordingKernels();
    k.copyRows(1, 197 * 768, 2, 768, 256, 768); // the class rows of a [256 x 197, 768] stream
    expect(values(launches[0].args)).toEqual([1, 197 * 768, 2, 768, 256, 768]);
    expect(launches[0].grid[0]).toBe((256 * 768) / 4 / 256);
    expect(() => k.copyRows(1, 770, 2, 768, 4, 768)).toThrow(/16-byte/);
    expect(() => k.copyRows(1, 768, 2, 768, 4, 766)).toThrow(/16-byte/);
  });

  it("takes one or two signals in gelu_bwd and a multiple of 8 for embed_ln_fwd", () => {
    const { k, launches } = recordingKernels();
    k.geluBwd(1, 2, 3, 4 * 3072, 3072, 2);
    expect(values(launches[0].args)).toEqual([1, 2, 3, (4 * 3072) / 8, 3072, 2]);
    expect(() => k.geluBwd(1, 2, 3, 4 * 3072, 3072, 3)).toThrow(/signals 3/);
    const ln = {
      patchOut: 1,
      cls: 2,
      pos: 3,
      gamma: 4,
      beta: 5,
      x0Save: 0,
      mean: 6,
      rstd: 7,
      resid: 8,
      R: 10,
      N: 5,
    };
    expect(() => k.embedLnFwd({ ...ln, D: 100 })).toThrow(/multiple of 8/);
    k.embedLnFwd({ ...ln, D: 768 });
    expect(launches.at(-1)?.name).toBe("embed_ln_fwd");
  });

  it("runs the pipelined forward attention by default and the warpgroup-MMA one on Hopper when asked", () => {
    const saved = process.env.UNMASK_ATTN_FWD;
    const forward = (computeCapability: number, choice: string | undefined) => {
      if (choice === undefined) delete process.env.UNMASK_ATTN_FWD;
      else process.env.UNMASK_ATTN_FWD = choice;
      const { k, launches } = recordingKernels(computeCapability);
      k.attnFwd(1, 2, 3, 4, 256, 197, 12);
      return [launches[0].name, launches[0].grid[0], launches[0].block[0]];
    };
    try {
      expect(forward(90, undefined)).toEqual(["attn_fwd_pipe", 132, 32 * 13]);
      // two warpgroups, persistent blocks; sm_90a code, so only on compute capability 9.0
      expect(forward(90, "wgmma")).toEqual(["attn_fwd_wgmma", 132, 256]);
      expect(forward(80, "wgmma")).toEqual(["attn_fwd_pipe", 132, 32 * 13]);
    } finally {
      if (saved === undefined) delete process.env.UNMASK_ATTN_FWD;
      else process.env.UNMASK_ATTN_FWD = saved;
    }
  });
});

describe("the MLP GEMM launcher", () => {
  it("runs where Hopper, TMA maps and the shapes allow, unless UNMASK_MLP_GEMM=cublas", () => {
    const hopper = { computeCapability: 90, canEncodeTensorMaps: true };
    withEnv({ UNMASK_MLP_GEMM: undefined }, () => {
      expect(fusedMlpSupported(hopper, 768, 3072)).toBe(true);
      expect(fusedMlpSupported(hopper, 128, 512)).toBe(true); // nano-clip
      expect(fusedMlpSupported({ ...hopper, computeCapability: 80 }, 768, 3072)).toBe(false);
      expect(fusedMlpSupported({ ...hopper, canEncodeTensorMaps: false }, 768, 3072)).toBe(false);
      expect(fusedMlpSupported(hopper, 96, 384)).toBe(false); // 384 columns: not whole 256-column tiles
    });
    withEnv({ UNMASK_MLP_GEMM: "cublas" }, () => expect(fusedMlpSupported(hopper, 768, 3072)).toBe(false));
    // the backward's fused dg GEMM goes with it, unless UNMASK_MLP_GEMM=forward keeps c_fc's alone
    withEnv({ UNMASK_MLP_GEMM: undefined }, () => expect(fusedMlpBackward()).toBe(true));
    withEnv({ UNMASK_MLP_GEMM: "forward" }, () => {
      expect(fusedMlpSupported(hopper, 768, 3072)).toBe(true);
      expect(fusedMlpBackward()).toBe(false);
    });
  });

  it("launch persistent blocks over 128 x 256 tiles, the maps and pointers first", () => {
    const { k, launches } = recordingKernels();
    k.mlpGemmGelu({ mapA: 1, mapB: 2, bias: 3, xout: 4, out: 5, M: 50432, N: 3072, K: 768 });
    k.mlpGemmGelu({ mapA: 1, mapB: 2, bias: 3, xout: 0, out: 5, M: 300, N: 512, K: 192 });
    expect(launches.map((l) => [l.name, l.grid[0], l.block[0]])).toEqual([
      ["mlp_gemm_gelu", 132, 384],
      ["mlp_gemm_gelu", Math.ceil(300 / 128) * 2, 384],
    ]);
    expect(values(launches[0].args)).toEqual([1, 2, 3, 4, 5, 50432, 3072, 768]);
    expect(values(launches[1].args)).toEqual([1, 2, 3, 0, 5, 300, 512, 192]);
    expect(() => k.mlpGemmGelu({ mapA: 1, mapB: 2, bias: 3, xout: 0, out: 5, M: 8, N: 384, K: 64 })).toThrow(
      /multiple of 256/,
    );
  });

  it("launches the backward's dg GEMM over both signals' row tiles", () => {
    const { k, launches } = recordingKernels();
    k.mlpGemmDgelu({ mapA: 1, mapB: 2, mapX: 3, out: 4, xRows: 50432, N: 3072, K: 768 });
    k.mlpGemmDgelu({ mapA: 1, mapB: 2, mapX: 3, out: 4, xRows: 130, N: 256, K: 768 });
    expect(launches.map((l) => [l.name, l.grid[0], l.block[0]])).toEqual([
      ["mlp_gemm_dgelu", 132, 384],
      ["mlp_gemm_dgelu", 2 * Math.ceil(130 / 128), 384], // two signals' tiles of 128 x 256
    ]);
    expect(values(launches[0].args)).toEqual([1, 2, 3, 4, 50432, 3072, 768]);
    expect(() => k.mlpGemmDgelu({ mapA: 1, mapB: 2, mapX: 3, out: 4, xRows: 8, N: 256, K: 96 })).toThrow(
      /K 96 of 64/,
    );
  });
});
