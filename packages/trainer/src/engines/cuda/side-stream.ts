/**
 * A second stream for the work of a step that nothing on its critical path waits for at once:
 * the weight-gradient GEMMs (and, on one GPU, the mask updates). The in_proj weight gradient of
 * ViT-B/16 (2304 x 768 outputs per signal) runs as 108 blocks of cuBLAS's 128 x 256 tiles, so a
 * fifth of the 132 SMs of an H100/H200 would sit idle beside it; issued on this stream, it runs
 * alongside the input-gradient chain (LayerNorm and QuickGELU backwards, GEMMs) instead of between
 * its launches.
 *
 * run(mark, issue) queues issue's launches after everything queued on the main stream so far and
 * records `mark` behind them; join(mark) makes the main stream wait for that point before it
 * overwrites what those launches read. Events order the streams the same way eagerly and under
 * graph capture (where they become graph edges), and every step joins all of it back (joinAll)
 * before it ends: a capture must, and the next step reuses the buffers.
 */
import type { StreamTarget } from "./cublas.js";
import type { CudaDriver } from "./driver.js";

export class SideStream implements StreamTarget {
  readonly stream: number;
  private readonly forkEvent: number;
  private readonly endEvent: number;
  private readonly marks = new Map<string, number>();
  /** Marks recorded since begin(): a capture may only wait on events recorded inside it. */
  private readonly recorded = new Set<string>();
  /** Whether anything was queued here since the last joinAll. */
  private active = false;

  constructor(
    private readonly cu: CudaDriver,
    private readonly main: number,
    /** A cuBLAS workspace for this stream alone (CUBLAS_WORKSPACE_BYTES). */
    readonly workspace: number,
  ) {
    this.stream = cu.createStream();
    this.forkEvent = cu.createEvent(false);
    this.endEvent = cu.createEvent(false);
  }

  /** Starts a step's use: marks of earlier steps are forgotten. */
  begin(): void {
    this.recorded.clear();
    this.active = false;
  }

  /** Queues `issue`'s launches on this stream behind the main stream's so far; records `mark` after them. */
  run(mark: string, issue: (stream: number) => void): void {
    this.cu.record(this.forkEvent, this.main);
    this.cu.waitEvent(this.stream, this.forkEvent);
    issue(this.stream);
    let event = this.marks.get(mark);
    if (event === undefined) {
      event = this.cu.createEvent(false);
      this.marks.set(mark, event);
    }
    this.cu.record(event, this.stream);
    this.recorded.add(mark);
    this.active = true;
  }

  /** The main stream waits for this stream's work up to `mark`'s last run in this step (none: no wait). */
  join(mark: string): void {
    const event = this.marks.get(mark);
    if (event !== undefined && this.recorded.has(mark)) this.cu.waitEvent(this.main, event);
  }

  /** The main stream waits for everything queued on this stream. */
  joinAll(): void {
    if (!this.active) return;
    this.cu.record(this.endEvent, this.stream);
    this.cu.waitEvent(this.main, this.endEvent);
    this.recorded.clear();
    this.active = false;
  }

  dispose(): void {
    for (const e of [this.forkEvent, this.endEvent, ...this.marks.values()]) this.cu.destroyEvent(e);
    this.marks.clear();
    this.cu.destroyStream(this.stream);
  }
}
