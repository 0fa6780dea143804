import type { GgufExportSummary } from "../export/gguf.js";
import { appendAll, formatBytes, table } from "./format.js";
import { mdCode, mdDiagnostics, mdTable } from "./markdown.js";
import type { GgufReport } from "./gguf-report.js";
import { GGUF_TABLES } from "../formats/gguf/spec.js";
import { TARGET_KEY } from "../formats/gguf/targets.js";

export function renderGgufExport(s: GgufExportSummary): string {
  const types = Object.entries(s.types).map(([t, n]) => `${t} x${n}`).join(", ");
  const lines = [
    `Wrote ${s.path} (${formatBytes(s.size)}): GGUF v3, arch ${s.architecture}, general.file_type ${s.fileType}`,
    `  sha256    ${s.sha256}`,
    `  target    ${s.target} (${GGUF_TABLES[s.target].label}'s type ids, recorded as ${TARGET_KEY}); loads in ${s.loadableBy}`,
    `  tensors   ${s.tensors}: ${types}`,
  ];
  for (const d of s.diagnostics) if (d.severity !== "info") lines.push(`  ${d.severity.padEnd(9)} ${d.message}`);
  return lines.join("\n");
}

export function renderGgufReport(report: GgufReport, options: { all?: boolean } = {}): string {
  const meta = (key: string) => {
    const v = report.metadata[key];
    return v === undefined ? "-" : typeof v === "object" ? `${v.itemType}[${v.length}]` : String(v);
  };
  const a = report.architecture ?? "?";
  const lines = table([
    ["File", `${report.file} (${formatBytes(report.size)}, GGUF v${report.version}, alignment ${report.alignment}, data at ${report.dataOffset})`],
    ["Runtime", `loads in ${report.loadableBy}`],
    ["Type ids", `read as ${report.typeTable.label}'s (${decision(report)})`],
    ...collisions(report),
    ["Model", `arch ${a}, "${meta("general.name")}", general.file_type ${report.fileType ?? "-"}`],
    ["Dims", `embedding ${meta(`${a}.embedding_length`)}, ffn ${meta(`${a}.feed_forward_length`)}, layers ${meta(`${a}.block_count`)}, heads ${meta(`${a}.attention.head_count`)}/${meta(`${a}.attention.head_count_kv`)}, ctx ${meta(`${a}.context_length`)}, rope base ${meta(`${a}.rope.freq_base`)}`],
    ["Tokenizer", `${meta("tokenizer.ggml.model")} (pre ${meta("tokenizer.ggml.pre")}), ${meta("tokenizer.ggml.tokens")} tokens, bos ${meta("tokenizer.ggml.bos_token_id")}, eos ${meta("tokenizer.ggml.eos_token_id")}${report.metadata["tokenizer.chat_template"] === undefined ? "" : ", chat template"}`],
    ["Types", Object.entries(report.summary.byType).map(([t, n]) => `${t} x${n}`).join(", ")],
    ["Size", `${report.summary.parameters.toLocaleString("en-US")} parameters, ${report.summary.bitsPerWeight.toFixed(3)} bits/weight overall`],
  ]);
  lines.push("", `Tensors (${report.tensors.length})`);
  const rows = [["  tensor", "type", "ne", "bpw", "offset"]];
  const hidden = (name: string) => !options.all && /^blk\.[1-9]\d*\./.test(name);
  for (const t of report.tensors) if (!hidden(t.name)) rows.push([`  ${t.name}`, t.type, `[${t.ne.join(", ")}]`, t.bitsPerWeight.toFixed(3), String(t.offset)]);
  appendAll(lines, table(rows));
  if (report.tensors.some((t) => hidden(t.name))) lines.push("  (blocks after 0 hidden; --all lists every tensor)");
  lines.push("", "Runtimes");
  for (const r of report.runtimes) lines.push(`  ${r.label.padEnd(26)} ${r.loads === true ? "loads" : r.loads === false ? "no   " : "?    "}  ${r.reason}${r.activation === null ? "" : `; FFN activation ${r.activation}`}`);
  for (const r of report.refusals) lines.push("", `Refused: ${r.message}`);
  if (report.diagnostics.length > 0) {
    lines.push("");
    for (const d of report.diagnostics) lines.push(`${d.severity.padEnd(7)} ${d.code}  ${d.message}`);
  }
  return lines.join("\n");
}

function decision(report: GgufReport): string {
  const t = report.typeTable;
  switch (t.decidedBy) {
    case "declared":
      return `b158.target says ${t.declared}`;
    case "sizes":
      return "decided by the tensors' sizes and offsets";
    case "architecture":
      return "sizes fit several tables; decided by the architecture";
    case "ambiguous":
      return "AMBIGUOUS: the file's sizes fit other meanings too";
  }
}

/** Type ids and the file type whose meaning depends on the runtime: every meaning, the one read marked. */
function collisions(report: GgufReport): [string, string][] {
  const rows: [string, string][] = [];
  for (const t of report.typeIds) {
    if (t.meanings.length < 2) continue;
    const meanings = t.meanings.map((m) => `${m.name} in ${m.runtime}${m.fits === false ? " (sizes do not fit)" : ""}`).join(" | ");
    rows.push([`  id ${t.id}`, `${t.tensors} tensors read as ${t.readAs}${t.ambiguous ? " (ambiguous)" : ""}; ${meanings}`]);
  }
  const fileTypes = new Map<string, string[]>();
  for (const m of report.fileTypeMeanings) fileTypes.set(m.name, [...(fileTypes.get(m.name) ?? []), m.runtime]);
  if (fileTypes.size > 1) rows.push(["  file_type", `${report.fileType}: ${[...fileTypes].map(([name, runtimes]) => `${name} in ${runtimes.join(", ")}`).join(" | ")} (printed by runtimes; never used to read the file)`]);
  return rows;
}

/** inspect <file.gguf> --markdown: what loads it, the types, and the diagnostics. */
export function markdownGgufReport(report: GgufReport): string {
  return [
    `### b158 inspect: ${mdCode(report.file)}`,
    "",
    ...mdTable(
      ["", ""],
      [
        ["file", `${formatBytes(report.size)}, GGUF v${report.version}`],
        ["loads in", report.loadableBy],
        ["architecture", report.architecture ?? "-"],
        ["types", Object.entries(report.summary.byType).map(([t, n]) => `${t} x${n}`).join(", ")],
        ["bits per weight", report.summary.bitsPerWeight.toFixed(3)],
      ],
    ),
    "",
    ...mdDiagnostics(report.diagnostics),
  ].join("\n");
}
