import { loadModel, type LoadOptions } from "../../src/runtime/model.js";

/** The runtime's logits for `tokens` (a new sequence), one float64 row per position, for compareLogits. */
export async function runtimeLogits(path: string, tokens: readonly number[], options: LoadOptions = {}): Promise<Float64Array[]> {
  const model = await loadModel(path, options);
  try {
    const logits = await model.forward(tokens);
    const V = model.spec.vocabSize;
    return tokens.map((_, p) => Float64Array.from(logits.subarray(p * V, (p + 1) * V)));
  } finally {
    await model.close();
  }
}
