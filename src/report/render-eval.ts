import type { Check, EvalReport } from "../runtime/eval.js";
import type { GenerationStats } from "../runtime/model.js";
import { table } from "./format.js";

const METRIC_LABEL: Record<Check["metric"], string> = {
  minCosine: "min cosine",
  minEmbeddingCosine: "min embedding cosine",
  minTop1: "top-1 agreement",
  maxKl: "mean KL",
  maxPerplexityDelta: "perplexity delta",
};

function fixed(value: number | null, digits: number): string {
  return value === null ? "-" : value.toFixed(digits);
}

function checkText(c: Check): string {
  const op = c.metric.startsWith("min") ? ">=" : "<=";
  const value = c.value === null ? "-" : c.metric === "maxKl" ? c.value.toExponential(2) : c.metric === "minCosine" || c.metric === "minEmbeddingCosine" ? c.value.toFixed(6) : c.metric === "minTop1" ? `${(100 * c.value).toFixed(1)}%` : `${(100 * c.value).toFixed(2)}%`;
  const limit = c.metric === "minTop1" || c.metric === "maxPerplexityDelta" ? `${100 * c.threshold}%` : String(c.threshold);
  return `${METRIC_LABEL[c.metric]} ${value} (${op} ${limit}: ${c.pass ? "ok" : c.enforced ? "FAIL" : "missed, report-only"})`;
}

/** The human report of `b158 eval`: a table per position, then the summary and verdict per compared file. */
export function renderEvalReport(report: EvalReport): string {
  const lines: string[] = [];
  const what = report.text === null ? `${report.tokens.length} tokens (--tokens)` : `${report.tokens.length} tokens of text`;
  lines.push(`Source     ${report.source.file} (${report.source.kind}), perplexity ${fixed(report.source.perplexity, 3)}`);
  for (const c of report.comparisons) lines.push(`${c.side === "converted" ? "Converted " : "GGUF      "} ${c.file} (${c.kind}), perplexity ${fixed(c.perplexity, 3)}`);
  lines.push(`Input      ${what}, activations ${report.activations}${report.lossy ? ", lossy conversion (--ternarize)" : ""}`);
  if (report.embeddings !== null) {
    const { pooling, texts } = report.embeddings;
    lines.push(`Embedding  ${texts.length} text${texts.length === 1 ? "" : "s"} pooled by ${pooling.mode === "last" ? "last token" : pooling.mode}${pooling.normalize ? ", L2-normalized" : ""}: the embeddings decide, the logits are reported`);
  }
  for (const c of report.comparisons) {
    lines.push("", `Per position (${c.side})`);
    const rows = [["  pos", "token", "cosine", "KL", "top-1 source", "top-1 converted", "same", "nll source", "nll converted"]];
    for (const p of c.positions) {
      rows.push([`  ${p.position}`, String(p.token), p.cosine.toFixed(6), p.kl.toExponential(2), String(p.top1Source), String(p.top1Converted), p.top1Agree ? "yes" : "NO", fixed(p.nllSource, 4), fixed(p.nllConverted, 4)]);
    }
    for (const line of table(rows, [0, 1, 2, 3, 4, 5, 7, 8])) lines.push(line);
  }
  lines.push("");
  for (const c of report.comparisons) {
    const s = c.summary;
    lines.push(`Summary (${c.side}): mean cosine ${s.meanCosine.toFixed(6)}, max KL ${s.maxKl.toExponential(2)}`);
    if (c.embeddings !== null) lines.push(`  embedding cosines ${c.embeddings.cosines.map((x) => x.toFixed(6)).join(", ")}`);
    for (const check of c.checks) lines.push(`  ${checkText(check)}`);
  }
  const enforced = report.comparisons.some((c) => c.checks.some((k) => k.enforced));
  const verdict = !report.pass
    ? "FAIL: the converted model does not compute what the source computes, within the thresholds"
    : enforced
      ? "PASS: the converted model computes what the source computes, within the thresholds"
      : "REPORT ONLY: a lossy conversion (--ternarize); give thresholds explicitly to enforce them";
  lines.push("", `${verdict} (${report.seconds.toFixed(1)} s)`);
  for (const path of report.logitsOut) lines.push(`Logits written to ${path}`);
  return lines.join("\n");
}

/** The closing line of `b158 run`. */
export function renderGenerationStats(stats: GenerationStats): string {
  const rate = (n: number, seconds: number) => (seconds > 0 ? (n / seconds).toFixed(2) : "-");
  return (
    `prompt ${stats.promptTokens.length} tokens in ${stats.promptSeconds.toFixed(2)} s (${rate(stats.promptTokens.length, stats.promptSeconds)} tokens/s); ` +
    `generated ${stats.tokens.length} tokens in ${stats.generationSeconds.toFixed(2)} s (${rate(stats.tokens.length, stats.generationSeconds)} tokens/s); ` +
    `stopped at ${stats.stopReason === "eos" ? "end of sequence" : "the token limit"}`
  );
}
