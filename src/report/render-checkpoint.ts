import { LAYOUT_IDS } from "../pack/layouts.js";
import type { Diagnostic } from "../model/diagnostics.js";
import type { PlanEntry } from "../model/plan.js";
import type { CheckpointReport, ValidateReport } from "./checkpoint-report.js";
import { appendAll, formatBytes, formatCount, formatShape, plural, table } from "./format.js";
import { mdCode, mdDiagnostics, mdTable } from "./markdown.js";

export interface RenderOptions {
  /** List every tensor instead of folding identical layers into one row. */
  readonly all?: boolean;
}

const CONVENTION_TEXT = {
  absmean: "float weights: absmean (scale = mean|W| per tensor) when online, read exactly (codes and scales) when stored",
  multiply: "effective weight = ternary x weight_scale (AutoBitLinear, offline)",
  divide: "effective weight = ternary / weight_scale (BitLinear)",
} as const;

export function renderCheckpointReport(report: CheckpointReport, options: RenderOptions = {}): string {
  const lines: string[] = [];
  const { family, dims } = report;
  const origin = report.source.origin.kind === "local" ? "local" : `hub ${report.source.origin.repo}@${report.source.origin.revision}`;
  const conventionSource = family.conventionSource === "config" ? " [from config.json linear_class]" : family.conventionSource === "assumed" ? " [ASSUMED: no linear_class in config.json]" : "";
  appendAll(
    lines,
    table([
      ["Source", `${report.source.spec} (${origin})`],
      ["Family", `${family.number}. ${family.title}`],
      ["Evidence", family.evidence.join("; ")],
      ["Scales", `${CONVENTION_TEXT[family.convention]}${conventionSource}`],
      ["Semantics", describeSemantics(report)],
      ["Model", describeModel(report)],
      ["Files", describeFiles(report)],
    ]),
  );
  if (family.lossy) lines.push("", "Note: family 5 is post-training ternarization of a model not trained ternary. It is lossy.");

  lines.push("", "Parameters");
  const roles = Object.entries(report.parameters.byRole).filter(([, n]) => n > 0);
  appendAll(
    lines,
    table(
      [...roles.map(([role, n]) => ["  " + role, formatCount(n), `${((100 * n) / Math.max(1, report.parameters.total)).toFixed(1)}%`]), ["  total", formatCount(report.parameters.total), ""]],
      [1, 2],
    ),
  );
  lines.push(`Dtypes: ${Object.entries(report.dtypes).map(([d, n]) => `${d} x${n}`).join(", ")}`);

  lines.push("", `Plan (${report.tensors.length} tensors${options.all ? "" : "; identical layers folded, --all lists each"})`);
  const rows: string[][] = [["  tensor", "dtype", "shape", "role", "action", "scales", ...LAYOUT_IDS]];
  for (const group of groupEntries(report.tensors, options.all === true)) {
    const e = group.entry;
    const shape = e.logicalShape === e.shape || sameShape(e.shape, e.logicalShape) ? formatShape(e.shape) : `${formatShape(e.shape)} -> ${formatShape(e.logicalShape)}`;
    const marks = LAYOUT_IDS.map((l) => (e.layouts === undefined ? "" : e.layouts[l].eligible ? "yes" : "NO"));
    const scales = e.layouts === undefined ? "" : e.groupSize === undefined ? "tensor" : e.groupSize === e.logicalShape[1] ? "row" : `g${e.groupSize}`;
    rows.push(["  " + group.label, e.dtype, shape, e.role, e.action + (e.scaleTensor ? " +scale" : ""), scales, ...marks]);
  }
  appendAll(lines, table(rows));

  const reasons = ineligibleReasons(report.tensors);
  if (reasons.length > 0) {
    lines.push("", "Ineligible layouts");
    appendAll(lines, reasons.map((r) => `  ${r}`));
  }

  lines.push("", "Estimated output (tensor payloads; ineligible ternary tensors counted as F16)");
  appendAll(
    lines,
    table(
      [
        ["  layout", "size", "bpw all", "bpw ternary", "ineligible"],
        ...report.estimates.map((e) => ["  " + e.layout, formatBytes(e.bytes), e.bitsPerWeight.toFixed(3), e.ternaryBitsPerWeight.toFixed(3), String(e.ineligible.length)]),
      ],
      [1, 2, 3, 4],
    ),
  );

  lines.push("");
  appendAll(lines, renderDiagnostics(report.diagnostics, report.summary));
  return lines.join("\n");
}

/** Whether `validate` fails: any error, or with --strict any warning. */
export function validationFailed(report: ValidateReport, strict: boolean): boolean {
  return !report.ok || (strict && report.summary.warnings > 0);
}

/** The verdict line: what failed and why, in the same words as the exit status. */
function verdict(report: ValidateReport, strict: boolean): string {
  const { errors, warnings } = report.summary;
  if (!report.ok) return `FAILED: ${plural(errors, "error")}${warnings > 0 ? `, ${plural(warnings, "warning")}` : ""}.`;
  if (strict && warnings > 0) return `FAILED (--strict): no errors, but ${plural(warnings, "warning")}.`;
  return `OK: no errors${warnings > 0 ? `, ${plural(warnings, "warning")}` : ""}.`;
}

function validatedLine(report: ValidateReport): string {
  return `Validated ${report.source}: ${plural(report.tensors, "tensor")}, ${report.tensorsScanned} scanned, ${formatBytes(report.bytesScanned)} read${report.family === null ? "" : ` (family ${report.family})`}`;
}

export function renderValidateReport(report: ValidateReport, options: { strict?: boolean } = {}): string {
  return [validatedLine(report), "", ...renderDiagnostics(report.diagnostics, report.summary), "", verdict(report, options.strict === true)].join("\n");
}

/** validate's diagnostics as Markdown, for the CI run page. */
export function markdownValidateReport(report: ValidateReport, options: { strict?: boolean } = {}): string {
  const failed = validationFailed(report, options.strict === true);
  return [`### b158 validate: ${failed ? "FAILED" : "OK"}`, "", `${validatedLine(report)}.`, "", `**${verdict(report, options.strict === true)}**`, "", ...mdDiagnostics(report.diagnostics)].join("\n");
}

function renderDiagnostics(diagnostics: readonly Diagnostic[], summary: { errors: number; warnings: number }): string[] {
  if (diagnostics.length === 0) return ["Diagnostics: none"];
  const order = { error: 0, warning: 1, info: 2 } as const;
  const sorted = [...diagnostics].sort((a, b) => order[a.severity] - order[b.severity]);
  return [`Diagnostics (${plural(summary.errors, "error")}, ${plural(summary.warnings, "warning")})`, ...sorted.map((d) => `  ${d.severity.padEnd(7)} ${d.code}  ${d.message}`)];
}

const SEMANTICS_TEXT = {
  online: "online: the framework ternarizes the float linears with absmean at every forward pass; b158 does the same, whatever the values",
  stored: "stored: the framework uses the float linears as they are (already ternary x scale); b158 reads codes and scales exactly",
} as const;

function describeSemantics(report: CheckpointReport): string {
  const { family } = report;
  const packed = report.tensors.some((t) => t.semantics === "packed") ? "packed U8 linears are unpacked by their linear_class; " : "";
  if (family.semantics === null) return `${packed}float linears: ${family.id === "generic" ? "none ternarized but those --ternarize names (absmean, lossy)" : "none"}`;
  const source = family.semanticsSource === "flag" ? " [from --weights]" : family.semanticsSource === "values" ? " [from the values: the config names no BitNet quantization]" : " [from config.json]";
  return `${packed}${SEMANTICS_TEXT[family.semantics]}${source}`;
}

function describeModel(report: CheckpointReport): string {
  const d = report.dims;
  const parts = [
    d.hiddenSize !== undefined ? `hidden ${d.hiddenSize}` : undefined,
    d.intermediateSize !== undefined ? `intermediate ${d.intermediateSize}` : undefined,
    d.layers !== undefined ? `${d.layers} layers` : undefined,
    d.heads !== undefined ? `${d.heads} heads (${d.kvHeads} KV, head_dim ${d.headDim ?? "?"})` : undefined,
    d.vocabSize !== undefined ? `vocab ${d.vocabSize}` : undefined,
  ].filter((p) => p !== undefined);
  const arch = report.architecture === null ? "no config.json" : `${report.architecture}${report.modelType ? ` (${report.modelType})` : ""}`;
  return `${arch}${parts.length > 0 ? ": " + parts.join(", ") : ""}`;
}

function describeFiles(report: CheckpointReport): string {
  const weights = report.files.weights.map((w) => `${w.name} (${formatBytes(w.size)}, ${w.tensorCount} tensors)`);
  const extra = [report.files.config, report.files.index, ...report.files.auxiliary].filter((f): f is string => f !== null);
  return [...weights, ...extra].join(", ");
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

interface Group {
  label: string;
  entry: PlanEntry;
}

/** Folds per-layer tensors that differ only in their layer index into one row. */
function groupEntries(entries: readonly PlanEntry[], all: boolean): Group[] {
  if (all) return entries.map((entry) => ({ label: entry.name, entry }));
  const layered = /^((?:model\.)?layers\.)(\d+)(\..+)$/;
  const groups = new Map<string, { entry: PlanEntry; layers: number[] }>();
  const order: (string | Group)[] = [];
  for (const entry of entries) {
    const match = layered.exec(entry.name);
    if (match === null) {
      order.push({ label: entry.name, entry });
      continue;
    }
    const signature = [match[1], match[3], entry.dtype, entry.shape.join("x"), entry.logicalShape.join("x"), entry.role, entry.action, entry.groupSize ?? "", entry.layouts ? LAYOUT_IDS.map((l) => entry.layouts![l].eligible).join() : ""].join("|");
    const group = groups.get(signature);
    if (group === undefined) {
      groups.set(signature, { entry, layers: [Number(match[2])] });
      order.push(signature);
    } else group.layers.push(Number(match[2]));
  }
  return order.map((item) => {
    if (typeof item !== "string") return item;
    const { entry, layers } = groups.get(item)!;
    const match = layered.exec(entry.name)!;
    return { label: layers.length === 1 ? entry.name : `${match[1]}{${compressRanges(layers)}}${match[3]}`, entry };
  });
}

function compressRanges(values: number[]): string {
  const sorted = [...values].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    parts.push(j === i ? String(sorted[i]) : `${sorted[i]}-${sorted[j]}`);
    i = j + 1;
  }
  return parts.join(",");
}

/** One line per distinct (layout, reason), with how many tensors it hits and one example. */
function ineligibleReasons(entries: readonly PlanEntry[]): string[] {
  const seen = new Map<string, { count: number; example: string }>();
  for (const entry of entries) {
    if (entry.layouts === undefined) continue;
    for (const layout of LAYOUT_IDS) {
      const fit = entry.layouts[layout];
      if (fit.eligible) continue;
      const key = `${layout}: ${fit.reason} (rule ${fit.rule})`;
      const item = seen.get(key);
      if (item === undefined) seen.set(key, { count: 1, example: entry.name });
      else item.count++;
    }
  }
  return [...seen].map(([key, { count, example }]) => `${key}: ${count} tensor${count === 1 ? "" : "s"}, e.g. ${example}`);
}

/** inspect's plan as Markdown, for the CI run page: family, semantics, the folded plan, estimates and diagnostics. */
export function markdownCheckpointReport(report: CheckpointReport): string {
  const { family } = report;
  const lines = [
    `### b158 inspect: ${mdCode(report.source.spec)}`,
    "",
    `**${family.number}. ${family.title}**${family.lossy ? " (lossy: post-training ternarization)" : ""}. ${describeModel(report)}.`,
    "",
    `Semantics: ${describeSemantics(report)}.`,
    "",
    "#### Plan",
    "",
    ...mdTable(
      ["tensor", "dtype", "shape", "role", "action", "scales", ...LAYOUT_IDS],
      groupEntries(report.tensors, false).map(({ label, entry: e }) => [
        mdCode(label),
        e.dtype,
        formatShape(e.logicalShape),
        e.role,
        e.action + (e.scaleTensor ? " +scale" : ""),
        e.layouts === undefined ? "" : e.groupSize === undefined ? "tensor" : e.groupSize === e.logicalShape[1] ? "row" : `g${e.groupSize}`,
        ...LAYOUT_IDS.map((l) => (e.layouts === undefined ? "" : e.layouts[l].eligible ? "yes" : "**no**")),
      ]),
    ),
    "",
    "#### Estimated output",
    "",
    ...mdTable(
      ["layout", "size", "bits/weight (all)", "bits/weight (ternary)", "ineligible tensors"],
      report.estimates.map((e) => [e.layout, formatBytes(e.bytes), e.bitsPerWeight.toFixed(3), e.ternaryBitsPerWeight.toFixed(3), String(e.ineligible.length)]),
      [1, 2, 3, 4],
    ),
    "",
    `#### Diagnostics: ${plural(report.summary.errors, "error")}, ${plural(report.summary.warnings, "warning")}`,
    "",
    ...mdDiagnostics(report.diagnostics),
  ];
  const reasons = ineligibleReasons(report.tensors);
  if (reasons.length === 0) return lines.join("\n");
  const at = lines.indexOf("#### Estimated output");
  return [...lines.slice(0, at), "Ineligible layouts:", "", ...reasons.map((r) => `- ${r}`), "", ...lines.slice(at)].join("\n");
}
