import type { ConvertSummary } from "../convert/convert.js";
import type { GgufExportSummary } from "../export/gguf.js";
import type { Diagnostic } from "../model/diagnostics.js";
import type { EvalReport } from "../runtime/eval.js";
import { appendAll, formatBytes, plural, wrap } from "./format.js";
import { mdCode, mdDiagnostics, mdTable } from "./markdown.js";

/** What `b158 convert` returns under --json: a .b158 summary, or the conversion and the GGUF (schemas/convert.schema.json). */
export type ConvertResult = (ConvertSummary | { conversion: ConvertSummary; gguf: GgufExportSummary }) & { eval?: EvalReport };

/**
 * Warnings for people: W_FALLBACK folded into one line per (dtype, reason) with a count and an
 * example, as a model with 200 ineligible tensors would otherwise print 200 lines; --json lists each.
 */
export function foldWarnings(warnings: readonly Diagnostic[]): string[] {
  const lines: string[] = [];
  const fallbacks = new Map<string, { count: number; example: string }>();
  for (const w of warnings) {
    if (w.code !== "W_FALLBACK" || w.tensor === undefined) {
      lines.push(`${w.code}  ${w.message}`);
      continue;
    }
    const reason = w.message.slice(w.message.indexOf(" kept as ") + 1);
    const item = fallbacks.get(reason);
    if (item === undefined) fallbacks.set(reason, { count: 1, example: w.tensor });
    else item.count++;
  }
  for (const [reason, { count, example }] of fallbacks) lines.push(`W_FALLBACK  ${plural(count, "tensor")} ${reason} (e.g. ${example})`);
  return lines;
}

/** `  warning   CODE  message`, wrapped at 80 columns under the message. */
export function warningLines(warnings: readonly Diagnostic[]): string[] {
  return foldWarnings(warnings).flatMap((w) => wrap(w, 80, " ".repeat(12), "  warning   "));
}

export function renderConvertSummary(s: ConvertSummary): string {
  const layouts = Object.entries(s.tensors.byLayout).map(([l, n]) => `${l} x${n}`).join(", ");
  const bpw = Object.entries(s.bitsPerWeight).map(([role, b]) => `${role} ${b.toFixed(3)}`).join(", ");
  const lines = [
    `Wrote ${s.path} (${formatBytes(s.size)}) in ${s.seconds.toFixed(2)} s with ${s.threads || "no"} worker thread${s.threads === 1 ? "" : "s"}${s.validated ? ", validated" : ", NOT validated (--no-validate)"}`,
    `  sha256    ${s.sha256}`,
    `  family    ${s.family}, layout ${s.layout}`,
    `  tensors   ${s.tensors.total}: ${layouts}`,
    `  bits/wt   ${bpw}`,
  ];
  appendAll(lines, warningLines(s.warnings));
  return lines.join("\n");
}

/** The conversion summary as Markdown, for the CI run page. */
export function markdownConvertSummary(result: ConvertResult): string {
  const conversion = "conversion" in result ? result.conversion : result;
  const gguf = "gguf" in result ? result.gguf : undefined;
  const file = gguf ?? conversion;
  const lines = [
    `### b158 convert: ${mdCode(file.path)}`,
    "",
    ...mdTable(
      ["", ""],
      [
        ["file", `${mdCode(file.path)}, ${formatBytes(file.size)}${gguf === undefined ? "" : `, GGUF arch ${gguf.architecture}, target ${gguf.target}`}`],
        ["sha256", mdCode(file.sha256)],
        ["family / layout", `${conversion.family} / ${conversion.layout}`],
        ["tensors", Object.entries(gguf?.types ?? conversion.tensors.byLayout).map(([l, n]) => `${l} x${n}`).join(", ")],
        ["bits per weight", Object.entries(conversion.bitsPerWeight).map(([role, b]) => `${role} ${b.toFixed(3)}`).join(", ")],
        ["validated", conversion.validated ? "yes" : "no (--no-validate)"],
        ...(gguf === undefined ? [] : [["loads in", gguf.loadableBy]]),
        ...(result.eval === undefined ? [] : [["eval", evalVerdict(result.eval)]]),
        ["time", `${conversion.seconds.toFixed(2)} s, ${plural(conversion.threads, "worker thread")}`],
      ],
    ),
  ];
  const diagnostics = [...conversion.warnings, ...(gguf?.diagnostics.filter((d) => d.severity !== "info") ?? [])];
  if (diagnostics.length > 0) {
    lines.push("", `#### ${plural(diagnostics.length, "warning")}`, "");
    appendAll(lines, mdDiagnostics(diagnostics));
  }
  return lines.join("\n");
}

function evalVerdict(report: EvalReport): string {
  const c = report.comparisons[0]!;
  const enforced = c.checks.some((k) => k.enforced);
  return `${!report.pass ? "FAIL" : enforced ? "pass" : "report only (lossy)"}: ${report.tokens.length} tokens, min cosine ${c.summary.minCosine.toFixed(6)}, top-1 ${(100 * c.summary.top1Agreement).toFixed(1)}%`;
}
