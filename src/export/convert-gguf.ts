import { rm } from "node:fs/promises";
import { resolveSource } from "../checkpoint/resolve.js";
import { convertCheckpoint, type ConvertOptions, type ConvertSummary } from "../convert/convert.js";
import { B158Error, interruptedError } from "../errors.js";
import { openB158File } from "../formats/b158/read.js";
import { partialPath, prepareOutput } from "../io/atomic-file.js";
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
  const notes = await prepareOutput(options.output, options.force);
  await requireGgufInputs(spec);
  const staging = partialPath(options.output, ".b158");
  try {
    const converted = await convertCheckpoint(spec, { ...rest, output: staging, force: true }).catch((error: unknown) =>
      // the staging file is an internal name: an interrupted conversion is reported against the output
      Promise.reject(error instanceof B158Error && error.code === "E_INTERRUPTED" ? interruptedError(options.output, "conversion", options.signal) : error),
    );
    const conversion = { ...converted, warnings: [...notes.map((d) => `${d.code}: ${d.message}`), ...converted.warnings] };
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

/** What export will need from the checkpoint, checked before minutes of conversion. */
async function requireGgufInputs(spec: string): Promise<void> {
  const files = await resolveSource(spec, { access: "headers" });
  const missing: string[] = [];
  if (!(await files.has("config.json"))) missing.push("config.json");
  if (!(await files.has("tokenizer.model")) && !(await files.has("tokenizer.json"))) missing.push("tokenizer.model or tokenizer.json");
  if (missing.length > 0) {
    throw new B158Error("E_GGUF_EXPORT", `${files.label}: a GGUF needs ${missing.join(" and ")}, which the checkpoint lacks`, {
      details: { source: files.label, missing },
      hint: "Convert from the full checkpoint directory (with its config and tokenizer files), or write a .b158 instead.",
    });
  }
}
