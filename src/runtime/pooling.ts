import { modelError, type ModelSpec, type Pooling } from "./spec.js";

/**
 * How an embedding model turns its final hidden states into one vector, as sentence-transformers
 * does: modules.json lists a Pooling module (its `<path>/config.json` picks last-token, mean or
 * CLS pooling) and, usually, a Normalize module (L2 norm). A BitNet-embedding checkpoint without
 * these files is pooled as its model card says: last token, L2-normalized.
 */
export function poolingFromFiles(text: (name: string) => string | undefined, file: string, embeddingModel: boolean): ModelSpec["pooling"] {
  const modulesText = text("modules.json");
  if (modulesText === undefined) return embeddingModel ? { mode: "last", normalize: true } : undefined;
  let modules: unknown;
  try {
    modules = JSON.parse(modulesText);
  } catch {
    throw modelError(file, "modules.json is not valid JSON");
  }
  if (!Array.isArray(modules)) throw modelError(file, "modules.json is not a list of modules");
  const typeOf = (m: unknown) => (typeof m === "object" && m !== null && typeof (m as { type?: unknown }).type === "string" ? (m as { type: string }).type : "");
  const pooling = modules.find((m) => typeOf(m).endsWith("Pooling")) as { path?: unknown } | undefined;
  const normalize = modules.some((m) => typeOf(m).endsWith("Normalize"));
  if (pooling === undefined) return embeddingModel ? { mode: "last", normalize } : undefined;
  const path = typeof pooling.path === "string" ? pooling.path : "";
  const configText = text(`${path}/config.json`);
  if (configText === undefined) return { mode: "last", normalize };
  let config: Record<string, unknown>;
  try {
    config = JSON.parse(configText) as Record<string, unknown>;
  } catch {
    throw modelError(file, `${path}/config.json is not valid JSON`);
  }
  // sentence-transformers' order of precedence for the modes it can combine; b158 runs one
  let mode: Pooling | undefined;
  if (config.pooling_mode_lasttoken === true) mode = "last";
  else if (config.pooling_mode_mean_tokens === true) mode = "mean";
  else if (config.pooling_mode_cls_token === true) mode = "cls";
  const others = ["pooling_mode_max_tokens", "pooling_mode_mean_sqrt_len_tokens", "pooling_mode_weightedmean_tokens"].filter((k) => config[k] === true);
  if (mode === undefined || others.length > 0) {
    throw modelError(file, `${path}/config.json asks for ${others.length > 0 ? others.join(", ") : "no pooling mode"}; the runtime pools by last token, mean or CLS`);
  }
  return { mode, normalize };
}

/**
 * The pooled embedding of `count` tokens' final hidden states ([count, width], row-major), L2
 * normalized when asked, in float64 sums.
 */
export function poolHidden(hidden: Float32Array, count: number, width: number, pooling: NonNullable<ModelSpec["pooling"]>): Float32Array {
  const out = new Float32Array(width);
  if (pooling.mode === "mean") {
    const sums = new Float64Array(width);
    for (let t = 0; t < count; t++) for (let i = 0; i < width; i++) sums[i] = sums[i]! + hidden[t * width + i]!;
    for (let i = 0; i < width; i++) out[i] = sums[i]! / count;
  } else {
    const row = pooling.mode === "cls" ? 0 : count - 1;
    out.set(hidden.subarray(row * width, (row + 1) * width));
  }
  if (pooling.normalize) {
    let ss = 0;
    for (let i = 0; i < width; i++) ss += out[i]! * out[i]!;
    // torch.nn.functional.normalize: x / max(|x|, 1e-12)
    const k = 1 / Math.max(Math.sqrt(ss), 1e-12);
    for (let i = 0; i < width; i++) out[i] = out[i]! * k;
  }
  return out;
}
