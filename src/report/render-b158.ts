import type { B158Report } from "./b158-report.js";
import { appendAll, formatBytes, formatShape, plural, table, wrap } from "./format.js";
import { mdCode, mdDiagnostics, mdTable } from "./markdown.js";

/**
 * `b158 inspect <file.b158>` for people. By default it fits 80 columns whatever the model's size:
 * the ternary linears summarised per role across layers (scale and -1/0/+1 shares as min / median /
 * max), the layers that stand out named, the other tensors counted. `--all` prints the per-tensor
 * table (wide: one row per tensor, with its layout parameters and payload offset).
 */
export interface B158RenderOptions {
  readonly all?: boolean;
  /** Terminal width for wrapped text (default 80). */
  readonly columns?: number;
}

type Tensor = B158Report["tensors"][number];

/** `model.layers.12.self_attn.q_proj.weight` -> role `self_attn.q_proj`, layer 12. */
const LAYERED = /^(?:.*\.)?layers\.(\d+)\.(.+?)(?:\.weight)?$/;

export interface RoleSummary {
  readonly role: string;
  readonly layout: string;
  readonly params: string;
  readonly shape: readonly number[];
  readonly tensors: readonly { readonly tensor: Tensor; readonly layer: number | null }[];
  /** min / median / max across the role's tensors; null when the scales are per row or per group. */
  readonly scale: Stats | null;
  readonly granularity: string | null;
  readonly minus: Stats;
  readonly zero: Stats;
  readonly plus: Stats;
}

export interface Stats {
  readonly min: number;
  readonly median: number;
  readonly max: number;
}

export interface Outlier {
  readonly tensor: string;
  readonly role: string;
  readonly what: string;
}

function median(sorted: readonly number[]): number {
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function stats(values: readonly number[]): Stats {
  const sorted = [...values].sort((a, b) => a - b);
  return { min: sorted[0]!, median: median(sorted), max: sorted[sorted.length - 1]! };
}

function layoutParams(t: Tensor): string {
  return Object.entries(t.params).map(([k, v]) => `${k}=${v}`).join(" ");
}

/** Ternary tensors grouped by role (same name but for the layer index, same layout, shape and parameters). */
export function roleSummaries(report: B158Report): RoleSummary[] {
  const groups = new Map<string, { role: string; tensors: { tensor: Tensor; layer: number | null }[] }>();
  for (const t of report.tensors) {
    if (t.distribution === null) continue;
    const match = LAYERED.exec(t.name);
    const role = match === null ? t.name : match[2]!;
    const key = [role, t.layout, layoutParams(t), t.shape.join("x"), t.granularity ?? ""].join("|");
    const group = groups.get(key) ?? { role, tensors: [] };
    group.tensors.push({ tensor: t, layer: match === null ? null : Number(match[1]) });
    groups.set(key, group);
  }
  return [...groups.values()].map(({ role, tensors }) => {
    const first = tensors[0]!.tensor;
    const scales = tensors.map((x) => x.tensor.scale).filter((s): s is number => s !== null);
    return {
      role,
      layout: first.layout,
      params: layoutParams(first),
      shape: first.shape,
      tensors,
      scale: scales.length === tensors.length ? stats(scales) : null,
      granularity: scales.length === tensors.length ? null : first.granularity,
      minus: stats(tensors.map((x) => x.tensor.distribution!.minus)),
      zero: stats(tensors.map((x) => x.tensor.distribution!.zero)),
      plus: stats(tensors.map((x) => x.tensor.distribution!.plus)),
    };
  });
}

/**
 * Tensors that stand out from their role across layers: a scale more than 3 robust deviations
 * (1.4826 x MAD) and more than 25% away from the role's median, a share of zeros more than 3
 * deviations and 10 points away, and always a tensor whose codes are (almost) all zero.
 */
export function findOutliers(roles: readonly RoleSummary[]): Outlier[] {
  const out: Outlier[] = [];
  for (const r of roles) {
    const far = (values: readonly number[], floor: number) => {
      const med = median([...values].sort((a, b) => a - b));
      const mad = 1.4826 * median(values.map((v) => Math.abs(v - med)).sort((a, b) => a - b));
      return { med, limit: Math.max(3 * mad, floor) };
    };
    const scales = r.scale === null ? undefined : r.tensors.map((x) => x.tensor.scale!);
    const scaleRule = scales === undefined ? undefined : far(scales, 0.25 * Math.abs(median([...scales].sort((a, b) => a - b))));
    const zeroRule = far(r.tensors.map((x) => x.tensor.distribution!.zero), 0.1);
    for (const { tensor } of r.tensors) {
      const reasons: string[] = [];
      const zero = tensor.distribution!.zero;
      if (zero >= 0.99) reasons.push(`${pct(zero)} of its codes are 0`);
      else if (r.tensors.length >= 3 && Math.abs(zero - zeroRule.med) > zeroRule.limit) reasons.push(`${pct(zero)} zeros (role median ${pct(zeroRule.med)})`);
      if (scaleRule !== undefined && r.tensors.length >= 3 && Math.abs(tensor.scale! - scaleRule.med) > scaleRule.limit) {
        reasons.push(`scale ${sig(tensor.scale!)} (role median ${sig(scaleRule.med)}, ${(tensor.scale! / scaleRule.med).toFixed(1)}x)`);
      }
      if (reasons.length > 0) out.push({ tensor: tensor.name, role: r.role, what: reasons.join(", ") });
    }
  }
  return out;
}

const MAX_OUTLIERS = 10;

export function renderB158Report(report: B158Report, options: B158RenderOptions = {}): string {
  const width = options.columns ?? 80;
  const embedded = Object.entries(report.files);
  const lines = keyValues(
    [
      ["File", `${report.file}`],
      ["", `${formatBytes(report.size)}, .b158 ${report.version.major}.${report.version.minor}, header ${formatBytes(report.headerLength)}, data at ${report.dataOffset}`],
      ["Model", `${report.model.architecture ?? "unknown architecture"}, family ${report.model.family}, written by ${report.writer.name} ${report.writer.version}`],
      ["Embedded", embedded.length === 0 ? "none" : `${embedded.map(([n]) => n).join(", ")} (${formatBytes(embedded.reduce((s, [, b]) => s + b, 0))})`],
      ["Layouts", Object.entries(report.summary.byLayout).map(([l, n]) => `${l} x${n}`).join(", ")],
      ["Bits/wt", Object.entries(report.summary.bitsPerWeight).map(([r, b]) => `${r} ${b.toFixed(3)}`).join(", ")],
    ],
    width,
  );
  if (options.all) {
    lines.push("");
    appendAll(lines, tensorTable(report));
  } else appendAll(lines, roleSection(report, width));
  if (report.diagnostics.length > 0) lines.push("");
  for (const d of report.diagnostics) appendAll(lines, wrap(`${d.severity} ${d.code}: ${d.message}`, width, "  "));
  return lines.join("\n");
}

function roleSection(report: B158Report, width: number): string[] {
  const roles = roleSummaries(report);
  const lines: string[] = [];
  if (roles.length > 0) {
    const layers = new Set(roles.flatMap((r) => r.tensors.map((x) => x.layer).filter((l) => l !== null))).size;
    const layouts = new Set(roles.map((r) => `${r.layout}${r.params === "" ? "" : ` (${r.params})`}`));
    const oneLayout = layouts.size === 1 ? `, ${[...layouts][0]}` : "";
    lines.push("", `Ternary linears: ${plural(roles.length, "role")}${layers > 0 ? ` across ${plural(layers, "layer")}` : ""}${oneLayout}`);
    appendAll(
      lines,
      table(
        [
          ["  role", ...(oneLayout === "" ? ["layout"] : []), "shape", "n", "scale min", "median", "max"],
          ...roles.map((r) => [
            `  ${r.role}`,
            ...(oneLayout === "" ? [r.layout] : []),
            formatShape(r.shape),
            String(r.tensors.length),
            ...(r.scale === null ? [r.granularity ?? "", "", ""] : [sig(r.scale.min), sig(r.scale.median), sig(r.scale.max)]),
          ]),
        ],
        oneLayout === "" ? [3] : [2],
      ),
    );
    lines.push("", "Codes -1 / 0 / +1, % of weights (min median max across the role's tensors)");
    const triple = (s: Stats) => `${pct(s.min, false)} ${pct(s.median, false)} ${pct(s.max, false)}`;
    appendAll(lines, table([["  role", "-1", "0", "+1"], ...roles.map((r) => [`  ${r.role}`, triple(r.minus), triple(r.zero), triple(r.plus)])]));
    const outliers = findOutliers(roles);
    lines.push("", outliers.length === 0 ? "Outliers: none (no tensor's scale or share of zeros stands out from its role)" : `Outliers (${outliers.length})`);
    for (const o of outliers.slice(0, MAX_OUTLIERS)) appendAll(lines, wrap(`${o.tensor}: ${o.what}`, width, "    ", "  "));
    if (outliers.length > MAX_OUTLIERS) lines.push(`  ... and ${outliers.length - MAX_OUTLIERS} more (--json lists every tensor)`);
  }
  const others = new Map<string, number>();
  const fallbacks: Tensor[] = [];
  for (const t of report.tensors) {
    if (t.distribution !== null) continue;
    if (t.role === "ternary-linear") fallbacks.push(t);
    else others.set(`${t.role} ${t.layout}`, (others.get(`${t.role} ${t.layout}`) ?? 0) + 1);
  }
  if (fallbacks.length > 0) {
    lines.push("", `Linears kept as floats (${fallbacks.length})`);
    for (const t of fallbacks.slice(0, MAX_OUTLIERS)) lines.push(`  ${t.name} ${formatShape(t.shape)} ${t.layout}`);
    if (fallbacks.length > MAX_OUTLIERS) lines.push(`  ... and ${fallbacks.length - MAX_OUTLIERS} more`);
  }
  if (others.size > 0) {
    lines.push("");
    appendAll(lines, wrap(`Other tensors: ${[...others].map(([k, n]) => `${k} x${n}`).join(", ")}`, width, "  "));
  }
  lines.push("", "--all lists every tensor with its layout parameters and payload offset.");
  return lines;
}

function tensorTable(report: B158Report): string[] {
  const rows = [["  tensor", "layout", "layout params", "shape", "scale", "-1 / 0 / +1", "bpw", "offset"]];
  for (const t of report.tensors) {
    const d = t.distribution;
    const scale = t.scale !== null ? t.scale.toPrecision(6) : t.groupSize !== null ? (t.groupSize === t.shape[1] ? "per row" : `per group of ${t.groupSize}`) : "";
    rows.push([`  ${t.name}`, t.layout, layoutParams(t), formatShape(t.shape), scale, d ? `${pct(d.minus)} / ${pct(d.zero)} / ${pct(d.plus)}` : "", t.bitsPerWeight.toFixed(3), String(t.offset)]);
  }
  return [`Tensors (${report.tensors.length})`, ...table(rows)];
}

/** inspect <file.b158> --markdown: the same summary, as tables for the CI run page. */
export function markdownB158Report(report: B158Report): string {
  const roles = roleSummaries(report);
  const outliers = findOutliers(roles);
  const lines = [
    `### b158 inspect: ${mdCode(report.file)}`,
    "",
    `${formatBytes(report.size)}, ${report.model.architecture ?? "unknown architecture"} (family ${report.model.family}); layouts ${Object.entries(report.summary.byLayout).map(([l, n]) => `${l} x${n}`).join(", ")}; bits per weight ${Object.entries(report.summary.bitsPerWeight).map(([r, b]) => `${r} ${b.toFixed(3)}`).join(", ")}.`,
    "",
    ...mdTable(
      ["role", "layout", "shape", "tensors", "scale min / median / max", "-1 % (median)", "0 % (median)", "+1 % (median)"],
      roles.map((r) => [
        mdCode(r.role),
        `${r.layout}${r.params === "" ? "" : ` (${r.params})`}`,
        formatShape(r.shape),
        String(r.tensors.length),
        r.scale === null ? (r.granularity ?? "") : `${sig(r.scale.min)} / ${sig(r.scale.median)} / ${sig(r.scale.max)}`,
        pct(r.minus.median, false),
        pct(r.zero.median, false),
        pct(r.plus.median, false),
      ]),
      [3, 5, 6, 7],
    ),
    "",
    outliers.length === 0 ? "No outliers." : `**Outliers:** ${outliers.map((o) => `${mdCode(o.tensor)} ${o.what}`).join("; ")}`,
  ];
  if (report.diagnostics.length > 0) {
    lines.push("");
    appendAll(lines, mdDiagnostics(report.diagnostics));
  }
  return lines.join("\n");
}

function sig(x: number): string {
  return x.toPrecision(4);
}

function pct(x: number, unit = true): string {
  return `${(100 * x).toFixed(1)}${unit ? "%" : ""}`;
}

/** Key / value rows whose values wrap at `width` under their column. */
function keyValues(rows: readonly (readonly [string, string])[], width: number): string[] {
  const keyWidth = rows.reduce((most, [k]) => Math.max(most, k.length), 0) + 2;
  return rows.flatMap(([key, value]) => wrap(value, width, " ".repeat(keyWidth), key.padEnd(keyWidth)));
}
