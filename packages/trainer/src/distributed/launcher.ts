/**
 * launchWorkers: one worker process per GPU of this host (what `unmask train --gpus N` runs).
 *
 * The launcher hosts the rendezvous store (on the first host of a multi-host run), starts each
 * worker with torchrun's variables (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR,
 * MASTER_PORT), its own GPU (CUDA_VISIBLE_DEVICES, so every worker sees it as device 0) and
 * NCCL_NVLS_ENABLE=0 (NVLink multicast stays off), and talks to the workers over Node's IPC
 * channel (worker.ts sends JSON messages): progress from rank 0, a result from every worker,
 * typed errors. One worker failing stops the others (SIGTERM, then SIGKILL after a grace period:
 * peers of a dead rank block inside NCCL and cannot stop by themselves) and rejects with
 * WORKER_FAILED naming the rank. An AbortSignal (or SIGINT/SIGTERM with forwardSignals) sends
 * SIGINT to the workers, which checkpoint and stop; the launch rejects with INTERRUPTED.
 *
 * Several hosts: run the launcher on each with the same MASTER_ADDR/MASTER_PORT, `nodes` and
 * its own `nodeRank`; the host of node 0 holds the store, ranks are nodeRank x gpus + local rank.
 */
import { type ChildProcess, fork } from "node:child_process";
import { existsSync } from "node:fs";
import { createInterface } from "node:readline";
import { UnmaskError } from "@unmask/clip";
import { listenAddress, MAX_WORLD_SIZE, type WorldInfo, worldEnv } from "./rendezvous.js";
import { startTcpStore, type TcpStoreServer } from "./tcp-store.js";
import type { WorkerMessage } from "./worker.js";

/** Last lines of a worker's stderr kept for the error message when it dies without a word. */
const STDERR_TAIL_LINES = 20;
/** Time a stopped worker gets to save a checkpoint and exit before SIGKILL. */
export const DEFAULT_GRACE_MS = 30_000;

export interface WorkerOutputLine {
  rank: number;
  stream: "stdout" | "stderr";
  line: string;
}

export interface LaunchOptions<Progress = unknown> {
  /** Workers on this host, one per GPU. */
  gpus: number;
  /** The worker script (an ES module that calls runWorker from worker.ts). */
  entry: string;
  args?: string[];
  /** Extra environment of every worker (on top of this process's). */
  env?: Record<string, string>;
  /** GPU ordinals, one per worker (default 0..gpus-1; or CUDA_VISIBLE_DEVICES's list when set). */
  devices?: string[];
  /** Hosts in the run (default 1) and this host's index (default 0). */
  nodes?: number;
  nodeRank?: number;
  /** Default: MASTER_ADDR, else 127.0.0.1. */
  masterAddr?: string;
  /** Default: MASTER_PORT, else a free port (one host only). */
  masterPort?: number;
  /** Node flags of the workers (default: this process's execArgv). */
  execArgv?: string[];
  signal?: AbortSignal;
  /** Handle SIGINT and SIGTERM of this process while the workers run (the CLI sets it). */
  forwardSignals?: boolean;
  /** Progress events sent by rank 0. */
  onProgress?: (event: Progress) => void;
  /** Every line the workers print (libraries never print: the caller decides). */
  onOutput?: (line: WorkerOutputLine) => void;
  graceMs?: number;
}

export interface LaunchResult<Result = unknown> {
  /** Each local worker's result, by local rank. */
  results: Result[];
  world: { worldSize: number; masterAddr: string; masterPort: number };
}

interface WorkerState {
  rank: number;
  child: ChildProcess;
  exited: Promise<void>;
  exit?: { code: number | null; signal: NodeJS.Signals | null };
  result?: unknown;
  hasResult: boolean;
  error?: { code: string; message: string; subject?: string };
  stderrTail: string[];
}

function positiveInteger(value: number, name: string, max = MAX_WORLD_SIZE): number {
  if (!(Number.isSafeInteger(value) && value >= 1 && value <= max))
    throw new UnmaskError("BAD_OPTION", `${name} must be an integer in 1..${max}, got ${value}`, {
      subject: name,
    });
  return value;
}

/**
 * Starts the workers and resolves when all have finished.
 * @throws UnmaskError BAD_OPTION, STORE_LISTEN, WORKER_FAILED (naming the rank), INTERRUPTED
 */
export async function launchWorkers<Progress = unknown, Result = unknown>(
  options: LaunchOptions<Progress>,
): Promise<LaunchResult<Result>> {
  const gpus = positiveInteger(options.gpus, "gpus");
  const nodes = positiveInteger(options.nodes ?? 1, "nodes");
  const nodeRank = options.nodeRank ?? 0;
  if (!(Number.isSafeInteger(nodeRank) && nodeRank >= 0 && nodeRank < nodes))
    throw new UnmaskError("BAD_OPTION", `nodeRank ${nodeRank} is outside 0..${nodes - 1}`, {
      subject: "nodeRank",
    });
  const worldSize = positiveInteger(gpus * nodes, "gpus x nodes");
  if (!existsSync(options.entry))
    throw new UnmaskError("BAD_OPTION", `worker entry ${options.entry} does not exist`, {
      subject: options.entry,
    });
  const visible = process.env.CUDA_VISIBLE_DEVICES?.split(",").filter((d) => d !== "");
  const devices = options.devices ?? (visible && visible.length >= gpus ? visible.slice(0, gpus) : undefined);
  if (devices && devices.length !== gpus)
    throw new UnmaskError("BAD_OPTION", `${devices.length} devices listed for ${gpus} workers`, {
      subject: "devices",
    });
  const masterAddr = options.masterAddr ?? process.env.MASTER_ADDR ?? "127.0.0.1";
  const envPort = process.env.MASTER_PORT ? Number(process.env.MASTER_PORT) : undefined;
  let masterPort = options.masterPort ?? envPort ?? 0;
  if (nodes > 1 && !(masterPort >= 1 && masterPort <= 65535))
    throw new UnmaskError("BAD_OPTION", "a run over several hosts needs MASTER_PORT (or masterPort)", {
      subject: "MASTER_PORT",
    });

  let server: TcpStoreServer | undefined;
  if (nodeRank === 0) {
    server = await startTcpStore({ host: listenAddress(masterAddr), port: masterPort });
    masterPort = server.port;
  }
  const graceMs = options.graceMs ?? DEFAULT_GRACE_MS;
  const workers: WorkerState[] = [];
  let failure: WorkerState | undefined;
  let interrupted = false;
  const killTimers: NodeJS.Timeout[] = [];

  const stopAll = (signal: NodeJS.Signals) => {
    for (const w of workers)
      if (!w.exit) {
        w.child.kill(signal);
        const timer = setTimeout(() => {
          if (!w.exit) w.child.kill("SIGKILL");
        }, graceMs);
        killTimers.push(timer);
      }
  };
  const interrupt = () => {
    if (interrupted) return;
    interrupted = true;
    stopAll("SIGINT");
  };
  const onSignal = () => interrupt();
  if (options.forwardSignals) {
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
  }
  options.signal?.addEventListener("abort", interrupt, { once: true });

  try {
    for (let localRank = 0; localRank < gpus; localRank++) {
      const world: WorldInfo = {
        rank: nodeRank * gpus + localRank,
        worldSize,
        localRank,
        localWorldSize: gpus,
        masterAddr,
        masterPort,
      };
      const child = fork(options.entry, options.args ?? [], {
        env: {
          ...process.env,
          ...options.env,
          ...worldEnv(world),
          CUDA_VISIBLE_DEVICES: devices ? devices[localRank] : String(localRank),
          NCCL_NVLS_ENABLE: "0",
          UNMASK_STORE_HOSTED: "1",
        },
        execArgv: options.execArgv ?? process.execArgv,
        stdio: ["ignore", "pipe", "pipe", "ipc"],
        serialization: "json",
        // Its own process group: a Ctrl-C in the terminal reaches the launcher alone, which sends
        // one SIGINT (a worker that got the terminal's too would take the second as "quit now"
        // and exit without its checkpoint). A launcher that dies disconnects IPC: workers exit.
        detached: true,
      });
      const state: WorkerState = {
        rank: world.rank,
        child,
        hasResult: false,
        stderrTail: [],
        exited: new Promise<void>((resolve) => {
          child.on("exit", (code, signal) => {
            state.exit = { code, signal };
            const failed = code !== 0 || signal !== null;
            if (failed && !failure && !interrupted) {
              failure = state;
              stopAll("SIGTERM");
            }
            resolve();
          });
          child.on("error", () => undefined); // exit follows
        }),
      };
      for (const [stream, source] of [
        ["stdout", child.stdout],
        ["stderr", child.stderr],
      ] as const)
        if (source)
          createInterface({ input: source }).on("line", (line) => {
            if (stream === "stderr") {
              state.stderrTail.push(line);
              if (state.stderrTail.length > STDERR_TAIL_LINES) state.stderrTail.shift();
            }
            options.onOutput?.({ rank: world.rank, stream, line });
          });
      child.on("message", (raw) => {
        const message = raw as WorkerMessage;
        if (message?.type === "progress" && world.rank === 0) options.onProgress?.(message.event as Progress);
        else if (message?.type === "result") {
          state.result = message.value;
          state.hasResult = true;
        } else if (message?.type === "error") state.error = message.error;
      });
      workers.push(state);
    }
    await Promise.all(workers.map((w) => w.exited));
  } finally {
    for (const t of killTimers) clearTimeout(t);
    options.signal?.removeEventListener("abort", interrupt);
    if (options.forwardSignals) {
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
    }
    if (failure === undefined && workers.length < gpus) stopAll("SIGKILL");
    await server?.close();
  }

  if (interrupted) {
    const said = workers.find((w) => w.error)?.error;
    throw new UnmaskError("INTERRUPTED", said?.message ?? "training was interrupted; the workers stopped", {
      subject: said?.subject ?? "workers",
    });
  }
  if (failure) throw workerFailed(failure);
  const missing = workers.find((w) => !w.hasResult);
  if (missing) throw workerFailed(missing, "exited without sending a result (did it call runWorker?)");
  return {
    results: workers.map((w) => w.result as Result),
    world: { worldSize, masterAddr, masterPort },
  };
}

function workerFailed(w: WorkerState, why?: string): UnmaskError {
  const how = w.exit?.signal ? `was killed by ${w.exit.signal}` : `exited with code ${w.exit?.code}`;
  const detail = w.error
    ? `${w.error.code}: ${w.error.message}`
    : (why ?? (w.stderrTail.length > 0 ? `last output:\n${w.stderrTail.join("\n")}` : "no output"));
  return new UnmaskError("WORKER_FAILED", `worker rank ${w.rank} ${how}: ${detail}`, {
    subject: `rank ${w.rank}`,
    cause: w.error,
  });
}
