/**
 * Test helper: runs `unmask ...args` in-process through a fresh commander program holding the
 * given commands, and returns what it printed on stdout (stderr, where progress and notes go, is
 * silenced). Errors reject, as commander's exitOverride makes them. Restore the spies after each
 * test: `afterEach(() => vi.restoreAllMocks())`.
 */
import { Command } from "commander";
import { vi } from "vitest";

export async function runProgram(
  commands: readonly ((program: Command) => void)[],
  args: readonly string[],
): Promise<string> {
  let out = "";
  vi.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => {
    out += chunk.toString();
    return true;
  });
  vi.spyOn(process.stderr, "write").mockImplementation(() => true);
  const program = new Command("unmask").exitOverride();
  for (const register of commands) register(program);
  await program.parseAsync([...args], { from: "user" });
  return out;
}
