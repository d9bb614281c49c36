/**
 * One device allocation for everything a model needs (weights, scores, moments, activations,
 * workspace), carved into 256-byte aligned regions from sizes computed up front. No allocation
 * happens inside the training loop.
 */
import type { CudaDriver } from "./driver.js";

const ALIGN = 256;

export class ArenaPlan {
  private offset = 0;
  private readonly regions: { name: string; offset: number; bytes: number; shared: boolean }[] = [];

  /** Reserves `bytes` and returns a handle that resolves to a device pointer once allocated. */
  take(name: string, bytes: number): Region {
    const region = { name, offset: this.offset, bytes, shared: this.unionStart >= 0 };
    this.regions.push(region);
    this.offset += Math.ceil(Math.max(bytes, 1) / ALIGN) * ALIGN;
    return new Region(this, region.offset, bytes, name);
  }

  private unionStart = -1;
  private unionEnd = 0;

  /**
   * Regions taken between beginUnion() and endUnion() share memory between alternatives: buffers
   * used only by the forward and buffers used only by the backward occupy the same bytes.
   */
  beginUnion(): void {
    this.unionStart = this.offset;
    this.unionEnd = this.offset;
  }

  alternative(): void {
    this.unionEnd = Math.max(this.unionEnd, this.offset);
    this.offset = this.unionStart;
  }

  endUnion(): void {
    this.offset = Math.max(this.unionEnd, this.offset);
    this.unionStart = -1;
  }

  /**
   * Bytes per buffer kind (per-block copies summed under one name); buffers inside a union are
   * listed with "(shared)" and overlap each other.
   */
  breakdown(): { name: string; bytes: number; count: number }[] {
    const rows = new Map<string, { name: string; bytes: number; count: number }>();
    for (const r of this.regions) {
      let name = r.name.replace(/^act\d+\./, "act.").replace(/resblocks\.\d+\./, "resblocks.*.");
      if (r.shared) name += " (shared)";
      const row = rows.get(name) ?? { name, bytes: 0, count: 0 };
      row.bytes += r.bytes;
      row.count++;
      rows.set(name, row);
    }
    return [...rows.values()].sort((a, b) => b.bytes - a.bytes);
  }

  get totalBytes(): number {
    return this.offset;
  }

  base = 0;

  allocate(cu: CudaDriver): number {
    this.base = cu.alloc(this.offset);
    return this.base;
  }
}

export class Region {
  constructor(
    private readonly plan: ArenaPlan,
    private readonly offset: number,
    readonly bytes: number,
    readonly name: string,
  ) {}

  /** Device address (valid after the arena is allocated). */
  get ptr(): number {
    return this.plan.base + this.offset;
  }
}
