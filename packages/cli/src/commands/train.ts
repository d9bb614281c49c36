import type { Command } from "commander";

/** `unmask train`: not implemented yet. */
export function register(_program: Command): void {}
