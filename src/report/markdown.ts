/**
 * GitHub-flavoured Markdown for `--markdown`: reports CI shows on the run page
 * (`b158 validate ./model --markdown >> "$GITHUB_STEP_SUMMARY"`).
 */

/** A cell: pipes escaped, newlines folded, so any message stays inside its cell. */
export function mdCell(text: string): string {
  return text.replace(/\\/g, "\\\\").replace(/\|/g, "\\|").replace(/\r?\n/g, " ");
}

/** Inline code that survives backticks in the text. */
export function mdCode(text: string): string {
  const fence = text.includes("`") ? "``" : "`";
  return `${fence}${fence.length > 1 ? " " : ""}${text}${fence.length > 1 ? " " : ""}${fence}`;
}

/** A table; `right` lists the columns to right-align (numbers). */
export function mdTable(header: readonly string[], rows: readonly (readonly string[])[], right: readonly number[] = []): string[] {
  const align = header.map((_, i) => (right.includes(i) ? "---:" : "---"));
  return [`| ${header.map(mdCell).join(" | ")} |`, `| ${align.join(" | ")} |`, ...rows.map((row) => `| ${row.map(mdCell).join(" | ")} |`)];
}

/** The diagnostics table every report shares (severity, code, tensor, message), errors first. */
export function mdDiagnostics(diagnostics: readonly { severity: string; code: string; message: string; tensor?: string }[]): string[] {
  if (diagnostics.length === 0) return ["No diagnostics."];
  const order: Record<string, number> = { error: 0, warning: 1, info: 2 };
  const sorted = [...diagnostics].sort((a, b) => (order[a.severity] ?? 3) - (order[b.severity] ?? 3));
  return mdTable(
    ["severity", "code", "tensor", "message"],
    sorted.map((d) => [d.severity, mdCode(d.code), d.tensor === undefined ? "" : mdCode(d.tensor), d.message]),
  );
}
