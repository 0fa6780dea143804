import type { GgufExportSummary } from "../export/gguf.js";
import { appendAll, formatBytes, table } from "./format.js";
import type { GgufReport } from "./gguf-report.js";

export function renderGgufExport(s: GgufExportSummary): string {
  const types = Object.entries(s.types).map(([t, n]) => `${t} x${n}`).join(", ");
  const lines = [
    `Wrote ${s.path} (${formatBytes(s.size)}): GGUF v3, arch ${s.architecture}, general.file_type ${s.fileType}`,
    `  sha256    ${s.sha256}`,
    `  runtime   ${s.runtime === "bitnet.cpp" ? "bitnet.cpp only (its I2_S/TL1/TL2 type ids; mainline llama.cpp cannot load it)" : "llama.cpp"}`,
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
    ["Runtime", report.loadableBy],
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
  if (report.diagnostics.length > 0) {
    lines.push("");
    for (const d of report.diagnostics) lines.push(`${d.severity.padEnd(7)} ${d.code}  ${d.message}`);
  }
  return lines.join("\n");
}
