/**
 * Environment switches for the device checks: run something with some variables set, then put
 * them back (also when it throws, or when its promise rejects).
 */
import type { Precision } from "../../src/engine.js";

/** Runs `run` with the environment variables `env` set (undefined: unset), then restores them. */
export function withEnv<T>(env: Record<string, string | undefined>, run: () => T): T {
  const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
  const set = (vars: Record<string, string | undefined>) => {
    for (const [k, v] of Object.entries(vars)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  };
  set(env);
  let result: T;
  try {
    result = run();
  } catch (error) {
    set(saved);
    throw error;
  }
  if (result instanceof Promise) return result.finally(() => set(saved)) as T;
  set(saved);
  return result;
}

/** The variables of a command-line variant: "K=V,K=V", or "-" for none. */
export function variantEnv(variant: string): Record<string, string> {
  if (variant === "-") return {};
  return Object.fromEntries(variant.split(",").map((kv) => kv.split("=") as [string, string]));
}

/** The device checks' engine precision: UNMASK_PRECISION (bf16 or fp16), else the engine's default. */
export function benchPrecision(): { precision?: Precision } {
  const p = process.env.UNMASK_PRECISION;
  if (p === undefined || p === "") return {};
  if (p !== "bf16" && p !== "fp16") throw new Error(`UNMASK_PRECISION=${p}: bf16 or fp16`);
  return { precision: p };
}
