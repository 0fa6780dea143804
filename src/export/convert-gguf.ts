import { randomBytes } from "node:crypto";
import { rm, stat } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { convertCheckpoint, type ConvertOptions, type ConvertSummary } from "../convert/convert.js";
import { B158Error } from "../errors.js";
import { openB158File } from "../formats/b158/read.js";
import { exportGguf, type EmbeddingType, type GgufExportSummary } from "./gguf.js";

export interface ConvertGgufOptions extends Omit<ConvertOptions, "embeddings"> {
  readonly embeddings?: EmbeddingType;
}

/**
 * `b158 convert --format gguf`: the checkpoint goes through the same conversion and validation as
 * a .b158 (to a hidden temp file beside the output, embeddings kept in their source precision),
 * then is exported. The temp file is always removed; the output appears only when complete.
 */
export async function convertCheckpointToGguf(spec: string, options: ConvertGgufOptions): Promise<{ conversion: ConvertSummary; gguf: GgufExportSummary }> {
  const { embeddings, ...rest } = options;
  // refuse before converting, not after minutes of work
  if (!options.force && (await stat(options.output).then(() => true, () => false))) {
    throw new B158Error("E_OUTPUT_EXISTS", `${options.output}: already exists`, { hint: "Pass --force to replace it, or choose another -o path.", details: { file: options.output } });
  }
  const staging = join(dirname(options.output), `.${basename(options.output)}.${randomBytes(6).toString("hex")}.b158.partial`);
  try {
    const conversion = await convertCheckpoint(spec, { ...rest, output: staging, force: true });
    const file = await openB158File(staging);
    try {
      const gguf = await exportGguf(file, {
        output: options.output,
        ...(options.force === undefined ? {} : { force: options.force }),
        ...(embeddings === undefined ? {} : { embeddings }),
        ...(options.signal === undefined ? {} : { signal: options.signal }),
      });
      return { conversion, gguf };
    } finally {
      await file.close();
    }
  } finally {
    await rm(staging, { force: true });
  }
}
