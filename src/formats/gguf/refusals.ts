import type { GgufFile } from "./read.js";

/**
 * GGUFs b158 recognises and will not treat as ternary weights, and why. Inspect lists them.
 * - Q1_0 (mainline 41): binary 1-bit weights, +-d per 128-weight block (1-bit Bonsai), not ternary.
 * - PQ2_0 (142) / PTQ1_0 (143): PrismML's g128 ternary types, published with Hadamard-folded weights.
 * - any `prism.hadamard.*` key: the weights are in a rotated basis; without the rotation they
 *   compute a different function, and repacking them cannot carry it.
 */
export type RefusalKind = "q1_0" | "pq2_0" | "ptq1_0" | "hadamard";

export interface Refusal {
  readonly kind: RefusalKind;
  readonly message: string;
}

const HADAMARD_PREFIX = "prism.hadamard.";

export function ggufRefusals(file: GgufFile): Refusal[] {
  const out: Refusal[] = [];
  const byType = (name: string) => file.tensors.filter((t) => t.type.name === name);
  const some = (tensors: readonly { name: string }[]) => `${tensors.length} tensor${tensors.length === 1 ? "" : "s"} (first "${tensors[0]!.name}")`;
  const q1 = byType("Q1_0");
  if (q1.length > 0) {
    out.push({ kind: "q1_0", message: `${some(q1)} are Q1_0: binary 1-bit weights (one sign bit each, +-d per 128-weight block, as in 1-bit Bonsai), not ternary {-1, 0, +1}; b158 converts ternary models only` });
  }
  const pq2 = byType("PQ2_0");
  if (pq2.length > 0) {
    out.push({ kind: "pq2_0", message: `${some(pq2)} are PrismML PQ2_0 (type 142): Ternary-Bonsai-2 weights published in a Hadamard-rotated basis; repacking them as plain ternary weights computes a different model` });
  }
  const ptq1 = byType("PTQ1_0");
  if (ptq1.length > 0) {
    out.push({ kind: "ptq1_0", message: `${some(ptq1)} are PrismML PTQ1_0 (type 143): Ternary-Bonsai-2 weights published in a Hadamard-rotated basis; repacking them as plain ternary weights computes a different model` });
  }
  const keys = file.kvs.map((kv) => kv.key).filter((k) => k.startsWith(HADAMARD_PREFIX));
  if (keys.length > 0) {
    out.push({ kind: "hadamard", message: `${keys.slice(0, 3).join(", ")}${keys.length > 3 ? ", ..." : ""}: the weights are stored in a Hadamard-rotated basis (PrismML); without that rotation they compute a different function, and no ternary layout b158 writes can carry it` });
  }
  return out;
}
