/**
 * The worker side of launcher.ts: `runWorker(main)` joins the world (rendezvous.ts), runs `main`
 * with the world, the store and an AbortSignal, and reports back to the launcher over Node's IPC
 * channel: progress (rank 0's reaches the caller's onProgress), the result, or a typed error.
 *
 * SIGINT / SIGTERM abort the signal (main should save a checkpoint and stop); a second one, one
 * before main started (during the rendezvous), or the launcher going away, ends the process at
 * once. Works without a launcher too (torchrun style: the same variables set by hand; rank 0 then
 * hosts the store).
 */
import { isUnmaskError } from "@unmask/clip";
import { type Rendezvous, type RendezvousOptions, rendezvous, type WorldInfo } from "./rendezvous.js";

export type WorkerMessage =
  | { type: "progress"; event: unknown }
  | { type: "result"; value: unknown }
  | { type: "error"; error: { code: string; message: string; subject?: string } };

export interface WorkerContext {
  world: WorldInfo;
  rendezvous: Rendezvous;
  /** Aborted on SIGINT / SIGTERM: finish the current step, checkpoint, stop. */
  signal: AbortSignal;
  /** Sends a progress event to the launcher (only rank 0's are forwarded; others are dropped here). */
  progress(event: unknown): void;
}

export interface RunWorkerOptions {
  /** Rank 0 makes the NCCL unique id (nccl.getUniqueId; a fake for CPU tests). */
  createUniqueId: RendezvousOptions["createUniqueId"];
  env?: RendezvousOptions["env"];
  timeoutMs?: number;
}

/** The process exit code of a worker stopped by a signal (128 + SIGINT). */
export const INTERRUPTED_EXIT_CODE = 130;

function send(message: WorkerMessage): Promise<void> {
  const channel = process.send?.bind(process);
  if (!channel || !process.connected) return Promise.resolve();
  return new Promise((resolve) => channel(message, undefined, {}, () => resolve()));
}

/**
 * Runs `main` as one rank of the world described by the environment. Sets process.exitCode
 * (0, 1, or 130 when interrupted) and closes the IPC channel, so the process ends when main's
 * work is done; never throws.
 */
export async function runWorker<Result>(
  main: (context: WorkerContext) => Promise<Result>,
  options: RunWorkerOptions,
): Promise<void> {
  const controller = new AbortController();
  let mainStarted = false;
  const onSignal = () => {
    // Before main runs there is nothing to save (and the rendezvous may wait for a dead peer).
    if (controller.signal.aborted || !mainStarted) process.exit(INTERRUPTED_EXIT_CODE);
    controller.abort();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  // The launcher is gone: nobody will collect the result, and its peers are being stopped.
  const onDisconnect = () => process.exit(INTERRUPTED_EXIT_CODE);
  process.on("disconnect", onDisconnect);

  let joined: Rendezvous | undefined;
  let ok = false;
  try {
    joined = await rendezvous({
      createUniqueId: options.createUniqueId,
      env: options.env,
      timeoutMs: options.timeoutMs,
    });
    const { world } = joined;
    mainStarted = true;
    const value = await main({
      world,
      rendezvous: joined,
      signal: controller.signal,
      progress: (event) => {
        if (world.rank === 0) void send({ type: "progress", event });
      },
    });
    await send({ type: "result", value: value ?? null });
    ok = true;
    process.exitCode = 0;
  } catch (error) {
    const e = isUnmaskError(error)
      ? { code: error.code, message: error.message, ...(error.subject ? { subject: error.subject } : {}) }
      : { code: "WORKER_ERROR", message: String((error as Error)?.stack ?? error) };
    await send({ type: "error", error: e });
    process.exitCode = controller.signal.aborted || e.code === "INTERRUPTED" ? INTERRUPTED_EXIT_CODE : 1;
  } finally {
    // After a failure the peers may be gone: do not wait for their goodbyes.
    if (joined) await joined.close({ wait: ok }).catch(() => undefined);
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    process.off("disconnect", onDisconnect);
    if (process.connected) process.disconnect();
  }
}
