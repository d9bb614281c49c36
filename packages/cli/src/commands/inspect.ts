/**
 * `unmask inspect FILE [--json]`: what a .umask file holds. Every tensor is decoded (a few
 * milliseconds for ViT-B/16) so the counts shown are proven, not just read from the header.
 * Errors are UnmaskErrors (TRUNCATED, CHECKSUM_MISMATCH, ...), which main turns into exit code 2.
 */
import { inspect, type MaskSummary } from "@unmask/mask-format";
import { readBytes } from "@unmask/mask-format/node";
import type { Command } from "commander";
import { formatBytes, printJson, printLine } from "../ui.js";

export function register(program: Command): void {
  program
    .command("inspect")
    .description("summarise a .umask mask: base model, tensors, masked-off counts, encodings, sizes")
    .argument("<file>", "the .umask file")
    .option(
      "--json",
      "print one JSON object (per tensor and in total: parameters, zeros, encoding, encodedBytes)",
    )
    .action(async (file: string, options: { json?: boolean }) => {
      const summary = inspect(await readBytes(file), { source: file });
      if (options.json) printJson(toJson(file, summary));
      else for (const line of formatSummary(file, summary)) printLine(line);
    });
}

/** The --json object: the library summary plus the file path and a count of encodings. */
export function toJson(file: string, summary: MaskSummary): Record<string, unknown> {
  const encodings: Record<string, number> = {};
  for (const t of summary.tensors) encodings[t.encoding] = (encodings[t.encoding] ?? 0) + 1;
  return {
    file,
    fileBytes: summary.fileBytes,
    version: summary.version,
    verified: summary.verified,
    baseModel: summary.baseModel,
    tensors: summary.tensors,
    total: { ...summary.total, encodings },
    recipe: summary.recipe ?? null,
    metrics: summary.metrics ?? null,
    head: summary.head ?? null,
  };
}

const count = (n: number) => n.toLocaleString("en-US");
const percent = (fraction: number) => `${(100 * fraction).toFixed(3)}%`;

/** The human-readable report, one string per line. */
export function formatSummary(file: string, s: MaskSummary): string[] {
  const lines: string[] = [];
  lines.push(
    `${file}: .umask v${s.version}, ${formatBytes(s.fileBytes)} (${count(s.fileBytes)} bytes), checksums verified`,
  );
  lines.push(`base model   ${s.baseModel.name ?? "(unnamed)"}, fingerprint ${s.baseModel.fingerprint}`);
  lines.push(
    `masked       ${count(s.total.parameters)} parameters in ${s.total.tensors} tensors, ${count(s.total.zeros)} masked off (${percent(s.total.zeroFraction)})`,
  );
  lines.push(
    `size         ${s.total.bitsPerParameter.toFixed(4)} bits/parameter; a 1-bit bitmap would take ${formatBytes(s.total.bitmapBytes)}`,
  );
  lines.push("");

  const rows = s.tensors.map((t) => [
    t.name,
    t.shape.join("x"),
    count(t.parameters),
    count(t.zeros),
    percent(t.zeroFraction),
    t.m !== undefined ? `${t.encoding} m=${t.m}` : t.encoding,
    count(t.encodedBytes),
  ]);
  rows.push([
    "total",
    "",
    count(s.total.parameters),
    count(s.total.zeros),
    percent(s.total.zeroFraction),
    "",
    count(s.total.encodedBytes),
  ]);
  const head = ["tensor", "shape", "parameters", "masked off", "off", "encoding", "bytes"];
  const rightAligned = [false, false, true, true, true, false, true];
  const widths = head.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c].length)));
  const format = (row: string[]) =>
    row
      .map((cell, c) => (rightAligned[c] ? cell.padStart(widths[c]) : cell.padEnd(widths[c])))
      .join("  ")
      .trimEnd();
  lines.push(format(head));
  for (const row of rows) lines.push(format(row));

  const about: string[] = [];
  if (s.recipe !== undefined) about.push(`recipe       ${JSON.stringify(s.recipe)}`);
  if (s.metrics !== undefined) about.push(`metrics      ${JSON.stringify(s.metrics)}`);
  if (about.length > 0) lines.push("", ...about);
  if (s.head !== undefined) {
    const shown = s.head.classNames.slice(0, 10).join(", ");
    const more = s.head.classNames.length > 10 ? `, ... (${s.head.classNames.length - 10} more)` : "";
    lines.push(
      "",
      `head         ${s.head.classes} classes x ${s.head.dim} fp16 text features (${formatBytes(s.head.encodedBytes)}), template ${JSON.stringify(s.head.template)}`,
      `classes      ${shown}${more}`,
    );
  }
  return lines;
}
