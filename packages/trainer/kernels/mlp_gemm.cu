// The MLP's GEMMs with QuickGELU in their epilogues, on Hopper's warpgroup MMAs and TMA (sm_90a).
// cuBLASLt's GELU epilogues are the tanh GELU, not CLIP's QuickGELU, so without these kernels the
// activation is a pass of its own over [R, F] values each way (mlp.cu bias_gelu_fwd, gelu_bwd).
//   mlp_gemm_gelu (c_fc): acc = A B^T for A [M, K] (LN2's output) and B [N, K] (c_fc's weight),
//     row-major bf16 (K contiguous in both), fp32 accumulation, then per output value x =
//     bf16(acc + bias[n]) (one rounding where cuBLAS + bias_gelu_fwd round twice), xout = x (the
//     student keeps it for the backward; null for the teacher) and out = bf16(QuickGELU(x)),
//     QuickGELU(x) = x sigmoid(1.702 x) = x (1 + tanh(0.851 x)) / 2 through tanh.approx: its error
//     (~2^-11 of tanh) makes g off by at most ~2^-12 |x|, below bf16's rounding of the values that
//     carry the sum (the float64 check and the fixture step keep their tolerances; mlp.cu's form
//     is exact to fp32 rounding).
//   mlp_gemm_dgelu (the backward's dg = dres c_proj, both signals): du = bf16(acc QuickGELU'(x))
//     with the x the forward kept (its section below).
//
// Persistent blocks of three warpgroups take 128 x 256 output tiles blockIdx.x, + gridDim.x, ...
// (MgSchedule: the blocks of a wave share their A rows in L2, and B, a weight, stays in L2).
// Warpgroup 0: its thread 0 is the producer, issuing the TMA loads of each 64-wide K step (A 128 x
// 64, B 256 x 64 as two boxes, 128-byte swizzled) into a ring of MG_STAGES stages, each with a
// "full" mbarrier (the copies' bytes landed) and an "empty" one (every consumer warp is done
// reading); its warps 1-3 are the epilogue's workers. Warpgroups 1 and 2 are the consumers, rows
// 0-63 and 64-127 of the tile: m64n256k16 x 4 per K step, one step's MMAs in flight while the next
// is issued. At a tile's end the forward's consumers write x into a staged bf16 tile in shared
// memory and go on with the next tile, while the workers apply QuickGELU to the staged tile and
// write x and g out with 16-byte stores: the epilogue overlaps the next tile's MMAs.
//
// Measured (bench/device/NOTES.md, round 10, runs AU-BD): the main loop alone runs c_fc's GEMM
// in 0.29 ms at batch 256, faster than cuBLAS's 0.33; the workers' activation is what the whole
// kernel waits for (0.42 ms with tanh.approx, 0.51 with mlp.cu's exp and division; a bare copy
// 0.36), against cuBLAS + bias_gelu_fwd's 0.50.
#include "hopper.cuh"

#define MG_BM 128
#define MG_BN 256
#define MG_BK 64
#define MG_STAGES 3
#define MG_THREADS 384
#define MG_CONSUMER_THREADS 256
#define MG_WORKER_THREADS 96
#define MG_A_BYTES (MG_BM * MG_BK * 2)
#define MG_STAGE_BYTES ((MG_BM + MG_BN) * MG_BK * 2)
// the staged tile: bf16 rows of 256 values padded by 16 bytes, so that the 8 rows one store of
// the accumulator fragments spans fall on distinct banks (the backward uses its first 64 KB
// unpadded, in the TMA's swizzle instead: mg_swizzled)
#define MG_STAGED_PITCH (MG_BN * 2 + 16)
#define MG_STAGED_BYTES (MG_BM * MG_STAGED_PITCH)

// The consumers' part of the epilogue: x = bf16(acc + bias[n]) into the staged tile (rows
// 64 * half.. of it). Fragment layout of an m64nN accumulator: value 4 * j + 2 * h + e is row
// 16 * warp + lane / 4 + 8 * h, column 8 * j + 2 * (lane % 4) + e.
__device__ __forceinline__ void mlp_stage(const float (&acc)[128], uint8_t* staged, int half, int n0,
                                          const float* __restrict__ bias) {
  const int t = threadIdx.x & 127, warp = t >> 5, lane = t & 31;
  const int row = half * 64 + warp * 16 + (lane >> 2), col = 2 * (lane & 3);
#pragma unroll
  for (int j = 0; j < 32; j++) {
    const float2 b = __ldg((const float2*)(bias + n0 + col + 8 * j));
#pragma unroll
    for (int h = 0; h < 2; h++)
      *(lowp2*)(staged + (row + 8 * h) * MG_STAGED_PITCH + (col + 8 * j) * 2) =
          to_lowp2(acc[4 * j + 2 * h] + b.x, acc[4 * j + 2 * h + 1] + b.y);
  }
}

// QuickGELU through one tanh.approx (the MUFU op the workers are bound by: mlp.cu's form takes an
// exp and a reciprocal).
__device__ __forceinline__ float quick_gelu_tanh(float x) {
  float t;
  asm("tanh.approx.f32 %0, %1;" : "=f"(t) : "f"(0.851f * x));
  return 0.5f * x * (1.f + t);
}

// The workers' part (warps 1-3 of the producer warpgroup), 8 values of a staged row at a time
// with 16-byte accesses, MG_BATCH of them loaded before any is computed: xout = x (when kept),
// out = bf16(QuickGELU(x)).
#define MG_BATCH 8
__device__ __forceinline__ void mlp_finish(const uint8_t* staged, int m0, int n0, int M, int N,
                                           lowp* __restrict__ xout, lowp* __restrict__ out) {
  constexpr int CHUNKS = MG_BM * (MG_BN / 8);
  for (int first = threadIdx.x - 32; first < CHUNKS; first += MG_WORKER_THREADS * MG_BATCH) {
    Pack8 v[MG_BATCH];
#pragma unroll
    for (int b = 0; b < MG_BATCH; b++) {
      const int c = first + b * MG_WORKER_THREADS, r = c / (MG_BN / 8), chunk = c % (MG_BN / 8);
      if (c < CHUNKS && m0 + r < M) v[b].u = *(const uint4*)(staged + r * MG_STAGED_PITCH + chunk * 16);
    }
#pragma unroll
    for (int b = 0; b < MG_BATCH; b++) {
      const int c = first + b * MG_WORKER_THREADS, r = c / (MG_BN / 8), chunk = c % (MG_BN / 8), m = m0 + r;
      if (c >= CHUNKS || m >= M) continue;
      const long long at = (long long)m * N + n0 + chunk * 8;
      if (xout) *(uint4*)(xout + at) = v[b].u;
      Pack8 o;
#pragma unroll
      for (int e = 0; e < 8; e++) o.h[e] = to_lowp(quick_gelu_tanh(lowp_to_float(v[b].h[e])));
      *(uint4*)(out + at) = o.u;
    }
  }
}

// Which rows a tile covers. The forward's tiles are row-tile-major over [M, N]. The backward's A
// stacks two signals' gradients ([2 * xRows, K]) that share one x ([xRows, N]); its tiles take a
// row tile of signal 0 across N, then the same rows of signal 1, so that the two tiles reading the
// same x run in the same wave (the second finds x in L2). Rows past a signal's xRows belong to the
// next signal (or to no one): their values are computed but never written.
struct MgTile {
  int m0, n0;  // first row of A and of the output, first column
  int xRow0;   // the first row's row of x (backward)
  int rows;    // rows of the tile that are written
};
struct MgSchedule {
  int tilesN, rowTiles, signals, xRows;
  __device__ int count() const { return rowTiles * signals * tilesN; }
  __device__ MgTile at(int tile) const {
    const int mt = tile / tilesN, signal = mt % signals, rowTile = mt / signals;
    const int xRow0 = rowTile * MG_BM;
    return {signal * xRows + xRow0, tile % tilesN * MG_BN, xRow0, min(MG_BM, xRows - xRow0)};
  }
};

extern __shared__ uint8_t mg_raw[];

// Shared memory: the stages on 1024-byte boundaries (the swizzle pattern's period), then the
// staged tile (1024-aligned too: the backward's TMA writes it swizzled), then the barriers.
struct MgShared {
  uint8_t* stages;
  uint8_t* staged;
  uint64_t* full;   // [MG_STAGES] a stage's bytes landed
  uint64_t* empty;  // [MG_STAGES] every consumer warp is done reading a stage
  uint64_t* stagedFull;  // the consumers wrote the staged tile
  uint64_t* stagedFree;  // forward: the workers read it; backward: x landed in it
};
__device__ __forceinline__ MgShared mg_shared_layout(uint8_t* raw) {
  MgShared m;
  m.stages = raw + ((1024 - (shared_address(raw) & 1023)) & 1023);
  m.staged = m.stages + MG_STAGES * MG_STAGE_BYTES;
  m.full = (uint64_t*)(m.staged + MG_STAGED_BYTES);
  m.empty = m.full + MG_STAGES;
  m.stagedFull = m.empty + MG_STAGES;
  m.stagedFree = m.stagedFull + 1;
  return m;
}

// Thread 0: the TMA loads of each 64-wide K step of every tile of this block into the ring.
__device__ __forceinline__ void mg_produce(const MgShared& sm, const MgSchedule& sched, const void* mapA,
                                           const void* mapB, int steps) {
  int s = 0;
  unsigned phase = 0;
  for (int tile = blockIdx.x; tile < sched.count(); tile += gridDim.x) {
    const MgTile t = sched.at(tile);
    for (int k = 0; k < steps; k++) {
      mbar_wait(&sm.empty[s], phase ^ 1);
      uint8_t* stage = sm.stages + s * MG_STAGE_BYTES;
      mbar_arrive_expect_tx(&sm.full[s], MG_STAGE_BYTES);
      tma_load_2d(stage, mapA, k * MG_BK, t.m0, &sm.full[s]);
      for (int h = 0; h < 2; h++)  // B in two boxes of 128 rows (every map's box, as A's)
        tma_load_2d(stage + MG_A_BYTES + h * (MG_BN / 2) * 128, mapB, k * MG_BK, t.n0 + h * (MG_BN / 2), &sm.full[s]);
      if (++s == MG_STAGES) s = 0, phase ^= 1;
    }
  }
}

// A consumer warpgroup's main loop over one tile: acc = rows 64 * half.. of the tile's A B^T.
// (s, phase) walk the ring across tiles.
__device__ __forceinline__ void mg_accumulate(float (&acc)[128], const MgShared& sm, int half, int steps, int& s,
                                              unsigned& phase) {
  const int lane = threadIdx.x & 31;
#pragma unroll
  for (int i = 0; i < 128; i++) acc[i] = 0.f;
  int previous = -1;
  // a stage goes back to the producer once every consumer warp is done with it
  const auto release = [&](int stage) {
    if (lane == 0) mbar_arrive(&sm.empty[stage]);
  };
  for (int k = 0; k < steps; k++) {
    mbar_wait(&sm.full[s], phase);
    const uint32_t a = shared_address(sm.stages + s * MG_STAGE_BYTES) + half * 64 * 128;
    const uint32_t b = shared_address(sm.stages + s * MG_STAGE_BYTES + MG_A_BYTES);
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < 4; kk++) wgmma_ss_n256(acc, sw128_desc(a + kk * 32), sw128_desc(b + kk * 32), 1);
    wgmma_commit();
    // one step's MMAs left in flight: the previous step's stage goes back (waiting for this
    // step's own, to hand its stage back at once, measured no faster: run AX)
    wgmma_wait<1>();
    if (previous >= 0) release(previous);
    previous = s;
    if (++s == MG_STAGES) s = 0, phase ^= 1;
  }
  wgmma_wait<0>();
  release(previous);
  landed(acc);
}

__device__ __forceinline__ void mg_init_barriers(const MgShared& sm, unsigned stagedFreeCount) {
  if (threadIdx.x == 0) {
    for (int s = 0; s < MG_STAGES; s++) {
      mbar_init(&sm.full[s], 1);
      mbar_init(&sm.empty[s], MG_CONSUMER_THREADS / 32);
    }
    mbar_init(sm.stagedFull, MG_CONSUMER_THREADS);
    mbar_init(sm.stagedFree, stagedFreeCount);
    mbar_init_fence();
  }
  __syncthreads();
}

// mapA, mapB: CUtensorMaps in global memory (bf16, 2-D, boxes of 128 rows x 64, 128-byte
// swizzle; model.ts encodes them). N a multiple of 256, K of 64; rows >= M are neither read into
// results nor written.
extern "C" __global__ void __launch_bounds__(MG_THREADS, 1)
    mlp_gemm_gelu(const void* mapA, const void* mapB, const float* __restrict__ bias, lowp* __restrict__ xout,
                  lowp* __restrict__ out, int M, int N, int K) {
#ifdef UNMASK_WGMMA
  const MgShared sm = mg_shared_layout(mg_raw);
  mg_init_barriers(sm, MG_WORKER_THREADS);
  const MgSchedule sched{N / MG_BN, (M + MG_BM - 1) / MG_BM, 1, M};
  const int steps = K / MG_BK, wg = threadIdx.x >> 7;
  if (wg == 0) {
    if (threadIdx.x == 0) {
      mg_produce(sm, sched, mapA, mapB, steps);
    } else if (threadIdx.x >= 32) {  // the workers
      unsigned phase = 0;
      for (int tile = blockIdx.x; tile < sched.count(); tile += gridDim.x, phase ^= 1) {
        const MgTile t = sched.at(tile);
        mbar_wait(sm.stagedFull, phase);
        mlp_finish(sm.staged, t.m0, t.n0, M, N, xout, out);
        mbar_arrive(sm.stagedFree);
      }
    }
  } else {
    int s = 0;
    unsigned phase = 0, stagedPhase = 0;
    float acc[128];
    for (int tile = blockIdx.x; tile < sched.count(); tile += gridDim.x, stagedPhase ^= 1) {
      mg_accumulate(acc, sm, wg - 1, steps, s, phase);
      // the workers finish the tile while this warpgroup goes on with the next one
      mbar_wait(sm.stagedFree, stagedPhase ^ 1);
      mlp_stage(acc, sm.staged, wg - 1, sched.at(tile).n0, bias);
      mbar_arrive(sm.stagedFull);
    }
  }
#endif
}

// ---- the backward: c_proj's input gradient times QuickGELU'(x), both signals
//
// The staged tile holds x first, then du. A worker thread loads the tile's x by TMA (four
// 64-column panels of 128 rows, 128-byte swizzled, as the A and B tiles) while the consumers run
// the tile's main loop; each consumer thread then replaces, in place, the x values at its own
// accumulators' positions by du = bf16(acc QuickGELU'(x)) (one rounding where cuBLAS + gelu_bwd
// round dg first: 2.2e-3 against their 4.4e-3 relative to float64), and the workers copy the tile
// out with 16-byte stores, then load the next tile's x into it. So x never waits in a register for
// global memory: round 10's workers read it from global memory and lost to cuBLAS + gelu_bwd
// (1.38-1.56 ms against 1.03). Measured at batch 256 (run BF, bench/device/NOTES.md round 11):
// 0.97-0.99 ms against cuBLAS + gelu_bwd's 1.07-1.10; the workers turning x into QuickGELU'(x)
// first, to take the MUFU work off the consumers, was slower (1.28-1.33: x's load, their pass and
// the copy-out in one chain per tile). Ping-pong consumers (each warpgroup its own 128 x 128 tiles,
// one's MMAs running through the other's epilogue) made the kernel 6% faster but not the step
// (run BJ): the step is power-bound, so only less work moves it.

// Byte offset of (row, col) in the staged tile as the TMA writes it: panel col / 64 of 128 rows
// of 128 bytes, the 16-byte chunk c of row r at chunk c ^ (r % 8).
__device__ __forceinline__ int mg_swizzled(int row, int col) {
  const int byte = (col & 63) * 2;
  return (col >> 6) * (MG_BM * 128) + row * 128 + ((((byte >> 4) ^ row) & 7) << 4) + (byte & 15);
}

// QuickGELU'(x) = s + 1.702 x s (1 - s), s = sigmoid(1.702 x) = (1 + t) / 2 with t = tanh(0.851 x):
// = (1 + t) / 2 + 0.851 x (1 - t^2) / 2, through one tanh.approx as the forward's QuickGELU.
__device__ __forceinline__ float quick_gelu_grad_tanh(float x) {
  const float y = 0.851f * x;
  float t;
  asm("tanh.approx.f32 %0, %1;" : "=f"(t) : "f"(y));
  return fmaf(0.5f * y, fmaf(-t, t, 1.f), fmaf(0.5f, t, 0.5f));
}

// A consumer's part: x at each of its accumulators' positions (fragment layout as mlp_stage's)
// becomes du = bf16(acc QuickGELU'(x)). Rows 8 apart in a store hit distinct 16-byte chunks: no
// bank conflicts.
__device__ __forceinline__ void mlp_stage_dgelu(const float (&acc)[128], uint8_t* staged, int half) {
  const int t = threadIdx.x & 127, warp = t >> 5, lane = t & 31;
  const int row = half * 64 + warp * 16 + (lane >> 2), col = 2 * (lane & 3);
  // 16 values loaded before any is stored: the compiler cannot tell the swizzled addresses apart,
  // so a store would otherwise wait for the load before it and the next load for the store
#pragma unroll
  for (int j0 = 0; j0 < 32; j0 += 8) {
    uint32_t v[16];
#pragma unroll
    for (int i = 0; i < 16; i++)
      v[i] = *(const uint32_t*)(staged + mg_swizzled(row + 8 * (i & 1), col + 8 * (j0 + i / 2)));
#pragma unroll
    for (int i = 0; i < 16; i++) {
      const int j = j0 + i / 2, h = i & 1;
      float2 g = lowp2_to_float2(*(const lowp2*)&v[i]);
      g.x = quick_gelu_grad_tanh(g.x);
      g.y = quick_gelu_grad_tanh(g.y);
      *(lowp2*)(staged + mg_swizzled(row + 8 * h, col + 8 * j)) =
          to_lowp2(acc[4 * j + 2 * h] * g.x, acc[4 * j + 2 * h + 1] * g.y);
    }
  }
}

// The workers' last part: the staged du rows that belong to the tile out, 16 bytes a thread at a time.
__device__ __forceinline__ void mlp_copy_out(const uint8_t* staged, const MgTile& t, int N, lowp* __restrict__ out) {
  constexpr int PIECES = MG_BM * (MG_BN / 8);
  for (int first = threadIdx.x - 32; first < PIECES; first += MG_WORKER_THREADS * MG_BATCH) {
    uint4 v[MG_BATCH];  // loaded before any is stored (the stores could alias them for all the compiler knows)
#pragma unroll
    for (int b = 0; b < MG_BATCH; b++) {
      const int c = first + b * MG_WORKER_THREADS;
      if (c < PIECES) v[b] = *(const uint4*)(staged + mg_swizzled(c / (MG_BN / 8), c % (MG_BN / 8) * 8));
    }
#pragma unroll
    for (int b = 0; b < MG_BATCH; b++) {
      const int c = first + b * MG_WORKER_THREADS, r = c / (MG_BN / 8);
      if (c < PIECES && r < t.rows) *(uint4*)(out + (long long)(t.m0 + r) * N + t.n0 + c % (MG_BN / 8) * 8) = v[b];
    }
  }
}

// One worker thread: the tile's x into the staged tile, completing stagedFree's phase.
__device__ __forceinline__ void mlp_load_x(const MgShared& sm, const MgTile& t, const void* mapX) {
  mbar_arrive_expect_tx(sm.stagedFree, MG_BM * MG_BN * 2);
  for (int p = 0; p < MG_BN / 64; p++)
    tma_load_2d(sm.staged + p * MG_BM * 128, mapX, t.n0 + 64 * p, t.xRow0, sm.stagedFree);
}

__device__ __forceinline__ void mg_workers_sync() {
  asm volatile("bar.sync 1, %0;\n" ::"n"(MG_WORKER_THREADS) : "memory");
}

// mapA: the two signals' gradients dres [2 * xRows, K]; mapB: c_proj's weight transposed [N, K];
// mapX: the forward's kept x [xRows, N] (all boxes of 128 rows x 64, 128-byte swizzle). out [2 *
// xRows, N] = bf16(A B^T * QuickGELU'(x of the row's row in x)).
extern "C" __global__ void __launch_bounds__(MG_THREADS, 1)
    mlp_gemm_dgelu(const void* mapA, const void* mapB, const void* mapX, lowp* __restrict__ out, int xRows, int N,
                   int K) {
#ifdef UNMASK_WGMMA
  const MgShared sm = mg_shared_layout(mg_raw);
  mg_init_barriers(sm, 1);
  const MgSchedule sched{N / MG_BN, (xRows + MG_BM - 1) / MG_BM, 2, xRows};
  const int steps = K / MG_BK, wg = threadIdx.x >> 7;
  if (wg == 0) {
    if (threadIdx.x == 0) {
      mg_produce(sm, sched, mapA, mapB, steps);
    } else if (threadIdx.x >= 32) {  // the workers
      if (threadIdx.x == 32 && blockIdx.x < sched.count()) mlp_load_x(sm, sched.at(blockIdx.x), mapX);
      unsigned phase = 0;
      for (int tile = blockIdx.x; tile < sched.count(); tile += gridDim.x, phase ^= 1) {
        mbar_wait(sm.stagedFull, phase);  // the consumers turned it into du
        mlp_copy_out(sm.staged, sched.at(tile), N, out);
        mg_workers_sync();  // every worker has read it
        const int next = tile + gridDim.x;
        if (threadIdx.x == 32 && next < sched.count()) {
          fence_proxy_async();  // the workers' accesses before the TMA's writes
          mlp_load_x(sm, sched.at(next), mapX);
        }
      }
    }
  } else {
    int s = 0;
    unsigned phase = 0, xPhase = 0;
    float acc[128];
    for (int tile = blockIdx.x; tile < sched.count(); tile += gridDim.x, xPhase ^= 1) {
      mg_accumulate(acc, sm, wg - 1, steps, s, phase);
      mbar_wait(sm.stagedFree, xPhase);  // the tile's x landed (so the previous tile went out)
      mlp_stage_dgelu(acc, sm.staged, wg - 1);
      mbar_arrive(sm.stagedFull);
    }
  }
#endif
}
