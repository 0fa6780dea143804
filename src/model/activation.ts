import { GGUF_TABLES, type GgufTableId } from "../formats/gguf/spec.js";
import {
  architectureFor,
  architectureKind,
  GGUF_TARGET_IDS,
  normalizeActivation,
  runtimeActivation,
  targetWeightTypes,
  type Activation,
} from "../formats/gguf/targets.js";
import type { Diagnostic } from "./diagnostics.js";

/**
 * The runtimes that load a model but compute the wrong FFN activation for it: 2B-4T-style models
 * need relu2, and mainline llama.cpp's `bitnet` graph and the 2026 bitnet.cpp fork compute SiLU
 * (perplexity ~100 instead of ~17). One warning, W_GGUF_ACTIVATION, for checkpoints, .b158 files
 * and GGUFs alike, naming the runtimes (and the architecture each would run) on both sides.
 */
export interface RuntimeGraph {
  readonly table: GgufTableId;
  readonly architecture: string;
}

export function activationWarning(needed: Activation, source: string, graphs: readonly RuntimeGraph[], tensor?: string): Diagnostic | undefined {
  const want = normalizeActivation(needed);
  const wrong: string[] = [];
  const right: string[] = [];
  for (const g of graphs) {
    const computed = runtimeActivation(g.table, g.architecture);
    if (computed === undefined) continue;
    const line = `${GGUF_TABLES[g.table].label} (arch ${g.architecture}: ${computed})`;
    (computed === want ? right : wrong).push(line);
  }
  if (wrong.length === 0) return undefined;
  const message =
    `${source} is ${needed}, but ${wrong.join(", ")} compute${wrong.length === 1 ? "s" : ""} another activation in the FFN: ` +
    `the model loads and runs there with wrong outputs (2B-4T: perplexity ~100 instead of ~17). ` +
    (right.length > 0 ? `Correct in: ${right.join(", ")}.` : "No runtime b158 targets computes it for this file.");
  return { severity: "warning", code: "W_GGUF_ACTIVATION", message, ...(tensor === undefined ? {} : { tensor }) };
}

/**
 * For a model not yet in GGUF (a checkpoint, a .b158): the architecture b158 would write for each
 * target, and what that target computes there. `weightTypes` limits the targets to those that can
 * hold the file's layout (a .b158); none means every target (a checkpoint).
 */
export function modelActivationDiagnostics(model: { family: string; hfArchitecture?: string | undefined; config?: Readonly<Record<string, unknown>> | undefined; weightTypes?: readonly string[] }): Diagnostic[] {
  const act = model.config?.hidden_act;
  if (typeof act !== "string") return [];
  const kind = architectureKind(model.family, model.hfArchitecture, model.config?.model_type);
  if (kind === undefined) return [];
  const targets = GGUF_TARGET_IDS.filter((t) => model.weightTypes === undefined || model.weightTypes.some((w) => targetWeightTypes(t).includes(w)));
  const warning = activationWarning(
    act,
    "config.json hidden_act",
    targets.map((table) => ({ table, architecture: architectureFor(table, kind, act) })),
  );
  return warning === undefined ? [] : [warning];
}
