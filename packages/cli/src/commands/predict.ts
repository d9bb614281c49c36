import type { Command } from "commander";

/** `unmask predict`: not implemented yet. */
export function register(_program: Command): void {}
