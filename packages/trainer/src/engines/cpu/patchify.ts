/**
 * patchify: images [B, 3, R, R] -> patches [B * P, 3 * p * p], P = (R / p)^2, patches in raster
 * order (row of patches, then column) and each patch's values in the conv weight's element order
 * (channel, ky, kx). The patch embedding (a stride-p convolution without bias) is then the GEMM
 * patches @ Wc^T with Wc [D, 3 * p * p], and its weight gradient dWc = dPE^T @ patches.
 */
export function patchifyForward(
  patches: Float32Array,
  images: Float32Array,
  batch: number,
  resolution: number,
  patch: number,
): void {
  const grid = resolution / patch;
  let dst = 0;
  for (let b = 0; b < batch; b++) {
    for (let gy = 0; gy < grid; gy++) {
      for (let gx = 0; gx < grid; gx++) {
        for (let c = 0; c < 3; c++) {
          const plane = (b * 3 + c) * resolution * resolution;
          for (let ky = 0; ky < patch; ky++) {
            const src = plane + (gy * patch + ky) * resolution + gx * patch;
            for (let kx = 0; kx < patch; kx++) patches[dst++] = images[src + kx];
          }
        }
      }
    }
  }
}
