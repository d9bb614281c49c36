import type { Command } from "commander";

/** `unmask convert`: not implemented yet. */
export function register(_program: Command): void {}
