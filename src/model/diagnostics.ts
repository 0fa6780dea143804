/** One finding about a checkpoint or file: what inspect lists and validate counts. */
export interface Diagnostic {
  readonly severity: "error" | "warning" | "info";
  /** Stable identifier of the rule, e.g. "E_NONFINITE" or "W_SCALE_CONVENTION_ASSUMED". */
  readonly code: string;
  readonly message: string;
  readonly tensor?: string;
  readonly file?: string;
}

export function countBySeverity(diagnostics: readonly Diagnostic[]): { error: number; warning: number; info: number } {
  const counts = { error: 0, warning: 0, info: 0 };
  for (const d of diagnostics) counts[d.severity]++;
  return counts;
}
