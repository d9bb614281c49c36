import type { Command } from "commander";

/** `unmask import-mask`: not implemented yet. */
export function register(_program: Command): void {}
