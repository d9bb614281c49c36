/**
 * Terminal output shared by the commands: data on stdout (plain or JSON), progress bars and
 * messages on stderr. Bars draw only on a TTY and never in --json mode, so piped output stays clean.
 */
import cliProgress from "cli-progress";

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

export function printLine(line = ""): void {
  process.stdout.write(`${line}\n`);
}

export function note(message: string): void {
  process.stderr.write(`${message}\n`);
}

export interface Bar {
  update(value: number, payload?: Record<string, unknown>): void;
  setTotal(total: number): void;
  stop(): void;
}

/** A progress bar on stderr; a no-op when `quiet` or stderr is not a TTY. */
export function progressBar(
  label: string,
  total: number,
  options: { quiet?: boolean; format?: string; payload?: Record<string, unknown> } = {},
): Bar {
  if (options.quiet || !process.stderr.isTTY) return { update() {}, setTotal() {}, stop() {} };
  const bar = new cliProgress.SingleBar(
    {
      stream: process.stderr,
      format: options.format ?? `${label} [{bar}] {percentage}% | {value}/{total} | ETA {eta_formatted}`,
      hideCursor: true,
      clearOnComplete: false,
    },
    cliProgress.Presets.shades_classic,
  );
  bar.start(total, 0, options.payload);
  return {
    update: (value, payload) => bar.update(value, payload),
    setTotal: (t) => bar.setTotal(t),
    stop: () => bar.stop(),
  };
}

export function formatBytes(bytes: number): string {
  const units = ["B", "KB", "MB", "GB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}
