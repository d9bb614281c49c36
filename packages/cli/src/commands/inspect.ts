import type { Command } from "commander";

/** `unmask inspect`: not implemented yet. */
export function register(_program: Command): void {}
