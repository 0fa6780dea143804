import { B158Error } from "../../errors.js";
import { openGgufFile, type GgufFile } from "./read.js";

/**
 * GGUFs b158 recognises and will not treat as ternary weights, and why. Inspect lists them; any
 * attempt to convert or export one is E_FORMAT_REFUSED with the same words.
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

/**
 * A GGUF given where b158 wants a checkpoint (convert) or a .b158 (export). Always throws: the
 * refused formats with E_FORMAT_REFUSED and what they are; any other GGUF with E_SOURCE_UNRECOGNIZED.
 */
export async function refuseGgufInput(path: string, use: "convert" | "export"): Promise<never> {
  const file = await openGgufFile(path);
  let refusals: Refusal[];
  try {
    refusals = ggufRefusals(file);
  } finally {
    await file.close();
  }
  if (refusals.length > 0) {
    throw new B158Error("E_FORMAT_REFUSED", `${path}: b158 will not ${use} this GGUF as ternary weights: ${refusals.map((r) => r.message).join("; ")}`, {
      details: { file: path, refusals: refusals.map((r) => r.kind) },
      hint: "Use the runtime this file was made for. For a ternary GGUF, convert the original ternary checkpoint (safetensors) instead.",
    });
  }
  throw new B158Error("E_SOURCE_UNRECOGNIZED", `${path}: is a GGUF; b158 ${use === "convert" ? "converts checkpoints (safetensors)" : "exports .b158 files"}, and reads GGUFs only with inspect and validate`, {
    details: { file: path },
    hint: use === "convert" ? "Convert the original checkpoint directory, or run b158 inspect on the GGUF." : "Export from the .b158 that b158 convert wrote.",
  });
}
