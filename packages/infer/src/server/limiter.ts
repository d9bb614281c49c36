/**
 * A concurrency limiter with a bounded FIFO queue: at most `maxConcurrent` tasks run, at most
 * `maxQueued` wait; beyond that `acquire` refuses at once (the server answers 429), so load
 * never grows memory without bound.
 */
export class QueueFullError extends Error {
  constructor() {
    super("the request queue is full");
    this.name = "QueueFullError";
  }
}

export class ConcurrencyLimiter {
  private running = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(
    readonly maxConcurrent: number,
    readonly maxQueued: number,
  ) {}

  get inFlight(): number {
    return this.running;
  }

  get queued(): number {
    return this.waiting.length;
  }

  /**
   * Waits for a slot; resolves to the function that frees it (call it exactly once).
   * @throws QueueFullError when maxQueued tasks already wait
   */
  async acquire(): Promise<() => void> {
    if (this.running < this.maxConcurrent) {
      this.running++;
    } else {
      if (this.waiting.length >= this.maxQueued) throw new QueueFullError();
      // The slot is handed over by release(): `running` stays the same.
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiting.shift();
      if (next) next();
      else this.running--;
    };
  }

  /** Resolves once nothing runs or waits. */
  async idle(pollMs = 10): Promise<void> {
    while (this.running > 0 || this.waiting.length > 0) await new Promise((r) => setTimeout(r, pollMs));
  }
}
