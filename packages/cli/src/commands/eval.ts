import type { Command } from "commander";

/** `unmask eval`: not implemented yet. */
export function register(_program: Command): void {}
