import type { Command } from "commander";

/** `unmask serve`: not implemented yet. */
export function register(_program: Command): void {}
