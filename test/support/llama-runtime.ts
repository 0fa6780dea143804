import { getLlama, LlamaLogLevel, type Llama } from "node-llama-cpp";

/**
 * Real llama.cpp (v0.5.0, node-llama-cpp's CPU prebuilt: no GPU, no build, no network) as the
 * judge of our GGUFs. Logits are read for every position of one prompt; flash attention and the
 * thread count are pinned, since both change logits (docs/gguf.md, "How we know the files work").
 */
let llama: Promise<Llama> | undefined;

export function runtime(): Promise<Llama> {
  llama ??= getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error, progressLogs: false });
  return llama;
}

/** Full-vocabulary logits after each token of `tokens`. */
export async function llamaLogits(modelPath: string, tokens: readonly number[]): Promise<Float64Array[]> {
  const model = await (await runtime()).loadModel({ modelPath });
  try {
    const context = await model.createContext({ contextSize: 64, flashAttention: false, threads: 1 });
    try {
      const sequence = context.getSequence();
      const results = await sequence.controlledEvaluate(tokens.map((t) => [t as never, { generateNext: { logits: true } }]));
      return results.map((r, position) => {
        const logits = r?.next?.logits;
        if (logits === undefined) throw new Error(`no logits at position ${position}`);
        const row = new Float64Array(logits.size);
        for (const [token, value] of logits) row[token as number] = value;
        return row;
      });
    } finally {
      await context.dispose();
    }
  } finally {
    await model.dispose();
  }
}

export interface Agreement {
  readonly minCosine: number;
  /** Positions whose argmax differs. */
  readonly argmaxMismatches: number;
}

export function compareLogits(a: readonly Float64Array[], b: readonly Float64Array[]): Agreement {
  let minCosine = 1;
  let argmaxMismatches = 0;
  for (let p = 0; p < a.length; p++) {
    const [x, y] = [a[p]!, b[p]!];
    let dot = 0;
    let nx = 0;
    let ny = 0;
    let ix = 0;
    let iy = 0;
    for (let i = 0; i < x.length; i++) {
      dot += x[i]! * y[i]!;
      nx += x[i]! ** 2;
      ny += y[i]! ** 2;
      if (x[i]! > x[ix]!) ix = i;
      if (y[i]! > y[iy]!) iy = i;
    }
    minCosine = Math.min(minCosine, dot / Math.sqrt(nx * ny));
    if (ix !== iy) argmaxMismatches++;
  }
  return { minCosine, argmaxMismatches };
}
