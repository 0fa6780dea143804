import { execFile } from "node:child_process";
import { mkdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { bitnet2B4T, ensureModel, ensureTokenizer } from "./models.js";
import type { BenchSection } from "./types.js";

/**
 * GGUF export at real size (issue #6): the packed 2B-4T model is converted to a TQ2_0 .b158 once,
 * then exported with f16 and q8_0 embeddings, each in its own process: wall and CPU seconds, peak
 * RSS, output bytes. The synthetic model gets a Llama-3-style tokenizer of its real vocab size.
 */
const ROOT = join(process.env.B158_BENCH_DIR ?? tmpdir(), "b158-bench");
const CONVERT = fileURLToPath(new URL("./convert-child.mjs", import.meta.url));
const EXPORT = fileURLToPath(new URL("./export-child.mjs", import.meta.url));
const VALIDATE = fileURLToPath(new URL("./validate-child.mjs", import.meta.url));

interface ChildResult {
  wallSeconds: number;
  cpuSeconds: number;
  peakRssBytes: number;
  outputBytes?: number;
  ok?: boolean;
}

function child(script: string, args: string[]): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [script, ...args], { maxBuffer: 1 << 20 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${args.join(" ")}: ${stderr || error.message}`));
      else resolve(JSON.parse(stdout) as ChildResult);
    });
  });
}

export const exporting: BenchSection = {
  name: "export",
  description: "GGUF export of the packed 2B-4T model (TQ2_0 .b158 -> GGUF), validate of the .b158 and of each result, one process per run",
  async run() {
    await mkdir(ROOT, { recursive: true });
    const model = bitnet2B4T(true);
    const { dir } = await ensureModel(model, join(ROOT, model.id));
    await ensureTokenizer(model, dir);
    const source = join(ROOT, `${model.id}-export-source.b158`);
    await child(CONVERT, [dir, source, "tq2_0", "0"]);
    const rows: Record<string, unknown>[] = [];
    try {
      // validate of a .b158 of unknown origin decodes every ternary payload: memory must hold one, not the model's
      const vs = await child(VALIDATE, [source]);
      rows.push({ model: model.id, step: "validate .b158", embeddings: "bf16", wallS: vs.wallSeconds, cpuS: vs.cpuSeconds, peakRssMiB: vs.peakRssBytes / 2 ** 20, ok: vs.ok });
      for (const embeddings of ["f16", "q8_0"]) {
        const output = join(ROOT, `${model.id}-${embeddings}.gguf`);
        const r = await child(EXPORT, [source, output, embeddings]);
        rows.push({ model: model.id, step: "export", embeddings, wallS: r.wallSeconds, cpuS: r.cpuSeconds, peakRssMiB: r.peakRssBytes / 2 ** 20, outGB: r.outputBytes! / 1e9 });
        // validate streams every tensor: memory must not follow the 656 MB embedding
        const v = await child(VALIDATE, [output]);
        rows.push({ model: model.id, step: "validate", embeddings, wallS: v.wallSeconds, cpuS: v.cpuSeconds, peakRssMiB: v.peakRssBytes / 2 ** 20, ok: v.ok });
        await rm(output, { force: true });
      }
    } finally {
      await rm(source, { force: true });
    }
    return rows;
  },
};
