/**
 * Launch profiler for benches: with a profiler set on Kernels and Cublas, every launch issued
 * eagerly (not inside a graph capture) is bracketed by two CUDA events; `report()` waits for the
 * stream and sums the milliseconds per launch name (kernel name, or GEMM shape). GEMM entries carry
 * their FLOPs so that the achieved TFLOP/s can be printed. Event pairs serialise the stream a
 * little: the total is an upper bound of the graph-replayed step.
 */
import type { CudaDriver } from "./driver.js";

export interface ProfileRow {
  name: string;
  calls: number;
  ms: number;
  flops: number;
}

export class LaunchProfiler {
  private readonly pool: number[] = [];
  private used = 0;
  private readonly marks: { name: string; flops: number; e0: number; e1: number }[] = [];

  constructor(
    private readonly cu: CudaDriver,
    private readonly stream: number,
  ) {}

  private event(): number {
    if (this.used === this.pool.length) this.pool.push(this.cu.createEvent());
    return this.pool[this.used++];
  }

  around(name: string, flops: number, launch: () => void): void {
    const e0 = this.event();
    const e1 = this.event();
    this.cu.record(e0, this.stream);
    launch();
    this.cu.record(e1, this.stream);
    this.marks.push({ name, flops, e0, e1 });
  }

  /** Per-name totals, largest first; resets the marks (the events are reused). */
  report(): ProfileRow[] {
    this.cu.synchronize(this.stream);
    const rows = new Map<string, ProfileRow>();
    for (const m of this.marks) {
      const ms = this.cu.elapsed(m.e0, m.e1);
      const row = rows.get(m.name) ?? { name: m.name, calls: 0, ms: 0, flops: 0 };
      row.calls++;
      row.ms += ms;
      row.flops += m.flops;
      rows.set(m.name, row);
    }
    this.marks.length = 0;
    this.used = 0;
    return [...rows.values()].sort((a, b) => b.ms - a.ms);
  }

  dispose(): void {
    for (const e of this.pool) this.cu.destroyEvent(e);
    this.pool.length = 0;
  }
}
