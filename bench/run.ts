/**
 * `npm run bench`: speed and memory figures (never timed tests). Prints a table per section and,
 * with BENCH_OUT=<file>, writes all rows as JSON. Sections: node bench/run.ts [name...].
 */
import { writeFile } from "node:fs/promises";
import { cpus } from "node:os";
import { conversion, conversionVerdicts } from "./conversion.js";
import { exporting } from "./export.js";
import { kernels } from "./kernels.js";
import { packing } from "./packing.js";
import { runtime, runtimeVerdicts } from "./runtime.js";
import { startup } from "./startup.js";
import type { BenchSection } from "./types.js";

const SECTIONS: readonly BenchSection[] = [packing, conversion, exporting, kernels, runtime, startup];

function format(value: unknown): string {
  if (value === undefined) return "";
  if (typeof value !== "number") return String(value);
  if (value >= 1e6) return `${(value / 1e6).toFixed(0)} M`;
  if (value < 10) return value.toFixed(3);
  return value.toFixed(0);
}

const wanted = process.argv.slice(2);
const results: Record<string, unknown> = {
  node: process.version,
  cpu: cpus()[0]?.model ?? "unknown",
  cores: cpus().length,
};
for (const section of SECTIONS) {
  if (wanted.length > 0 && !wanted.includes(section.name)) continue;
  console.log(`\n## ${section.name}: ${section.description}\n`);
  const rows = await section.run();
  const columns = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  const cells = [columns, ...rows.map((r) => columns.map((c) => format(r[c])))];
  const widths = columns.map((_, i) => Math.max(...cells.map((row) => row[i]!.length)));
  for (const row of cells) console.log(row.map((cell, i) => cell.padStart(widths[i]!)).join("  "));
  for (const row of rows) {
    if (typeof row.target === "number" && typeof row.weightsPerSecond === "number") {
      row.meetsTarget = row.weightsPerSecond >= row.target;
    }
  }
  if (section.name === "conversion") {
    const verdicts = conversionVerdicts(rows);
    console.log("\n" + verdicts.join("\n"));
    results.conversionVerdicts = verdicts;
  } else if (section.name === "runtime") {
    const verdicts = runtimeVerdicts(rows);
    console.log("\n" + verdicts.join("\n"));
    results.runtimeVerdicts = verdicts;
  } else {
    const missed = rows.filter((r) => r.meetsTarget === false);
    console.log(missed.length === 0 ? "\nall targets met" : `\nbelow target: ${missed.map((r) => `${r.step} ${r.shape}`).join(", ")}`);
  }
  results[section.name] = rows;
}
if (process.env.BENCH_OUT) {
  await writeFile(process.env.BENCH_OUT, JSON.stringify(results, null, 2) + "\n");
  console.log(`\nwrote ${process.env.BENCH_OUT}`);
}
