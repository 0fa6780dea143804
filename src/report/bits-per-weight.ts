/** A tensor as the size report sees it: its role, its payload bytes and its weights (elements). */
export interface SizedTensor {
  readonly role: string;
  readonly bytes: number;
  readonly weights: number;
}

/**
 * Bits per weight by role (payload bytes x 8 / weights), roles in sorted order, and with
 * `fileSize` also for the whole file (headers and padding included): what convert's summary,
 * inspect and push's manifest all report, computed one way.
 */
export function bitsPerWeightByRole(tensors: Iterable<SizedTensor>, fileSize?: number): Record<string, number> {
  const bytes = new Map<string, number>();
  const weights = new Map<string, number>();
  let total = 0;
  for (const t of tensors) {
    bytes.set(t.role, (bytes.get(t.role) ?? 0) + t.bytes);
    weights.set(t.role, (weights.get(t.role) ?? 0) + t.weights);
    total += t.weights;
  }
  const result: Record<string, number> = {};
  for (const role of [...bytes.keys()].sort()) result[role] = (bytes.get(role)! * 8) / Math.max(1, weights.get(role)!);
  if (fileSize !== undefined) result.file = (fileSize * 8) / Math.max(1, total);
  return result;
}
