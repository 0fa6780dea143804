import { LAYOUT_IDS } from "../pack/layouts.js";
import type { Diagnostic } from "../model/diagnostics.js";
import type { PlanEntry } from "../model/plan.js";
import type { CheckpointReport, ValidateReport } from "./checkpoint-report.js";
import { appendAll, formatBytes, formatCount, formatShape, table } from "./format.js";

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

export function renderValidateReport(report: ValidateReport): string {
  const lines = [
    `Validated ${report.source}: ${report.tensors} tensors, ${report.tensorsScanned} scanned, ${formatBytes(report.bytesScanned)} read${report.family === null ? "" : ` (family ${report.family})`}`,
    "",
    ...renderDiagnostics(report.diagnostics, report.summary),
    "",
    report.ok ? "OK: no errors." : `FAILED: ${report.summary.errors} error${report.summary.errors === 1 ? "" : "s"}.`,
  ];
  return lines.join("\n");
}

function renderDiagnostics(diagnostics: readonly Diagnostic[], summary: { errors: number; warnings: number }): string[] {
  if (diagnostics.length === 0) return ["Diagnostics: none"];
  const order = { error: 0, warning: 1, info: 2 } as const;
  const sorted = [...diagnostics].sort((a, b) => order[a.severity] - order[b.severity]);
  return [`Diagnostics (${summary.errors} errors, ${summary.warnings} warnings)`, ...sorted.map((d) => `  ${d.severity.padEnd(7)} ${d.code}  ${d.message}`)];
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

export function renderB158Report(report: import("./b158-report.js").B158Report, options: RenderOptions = {}): string {
  const lines = table([
    ["File", `${report.file} (${formatBytes(report.size)}, .b158 ${report.version.major}.${report.version.minor}, header ${formatBytes(report.headerLength)}, data at ${report.dataOffset})`],
    ["Model", `${report.model.architecture ?? "unknown architecture"}, family ${report.model.family}`],
    ["Writer", `${report.writer.name} ${report.writer.version}`],
    ["Embedded", Object.entries(report.files).map(([n, s]) => `${n} (${formatBytes(s)})`).join(", ") || "none"],
    ["Layouts", Object.entries(report.summary.byLayout).map(([l, n]) => `${l} x${n}`).join(", ")],
    ["Bits/wt", Object.entries(report.summary.bitsPerWeight).map(([r, b]) => `${r} ${b.toFixed(3)}`).join(", ")],
  ]);
  lines.push("", `Tensors (${report.tensors.length})`);
  const rows = [["  tensor", "layout", "params", "shape", "scale", "-1 / 0 / +1", "bpw", "offset"]];
  for (const t of report.tensors) {
    if (!options.all && /\.layers\.[1-9]\d*\./.test(t.name)) continue;
    const params = Object.entries(t.params).map(([k, v]) => `${k}=${v}`).join(" ");
    const d = t.distribution;
    rows.push(["  " + t.name, t.layout, params, formatShape(t.shape), t.scale !== null ? t.scale.toPrecision(6) : t.groupSize !== null ? (t.groupSize === t.shape[1] ? "per row" : `per group of ${t.groupSize}`) : "", d ? `${pct(d.minus)} / ${pct(d.zero)} / ${pct(d.plus)}` : "", t.bitsPerWeight.toFixed(3), String(t.offset)]);
  }
  appendAll(lines, table(rows));
  if (!options.all && report.tensors.some((t) => /\.layers\.[1-9]\d*\./.test(t.name))) lines.push("  (layers after 0 hidden; --all lists every tensor)");
  if (report.diagnostics.length > 0) lines.push("");
  for (const d of report.diagnostics) lines.push(`${d.severity.padEnd(7)} ${d.code}  ${d.message}`);
  return lines.join("\n");
}

function pct(x: number): string {
  return `${(100 * x).toFixed(1)}%`;
}
