import type { Command } from "commander";

/** `unmask demo`: not implemented yet. */
export function register(_program: Command): void {}
