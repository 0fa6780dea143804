import { rm } from "node:fs/promises";
import { resolveSource } from "../checkpoint/resolve.js";
import { convertCheckpoint, type ConvertOptions, type ConvertSummary } from "../convert/convert.js";
import { B158Error, interruptedError } from "../errors.js";
import { openB158File } from "../formats/b158/read.js";
import { partialPath, prepareOutput } from "../io/atomic-file.js";
import { isGgufFile } from "../formats/b158/detect.js";
import { refuseGgufInput } from "../formats/gguf/refusals.js";
import { parseLayoutId } from "../pack/layouts.js";
import type { GgufTargetId } from "../formats/gguf/targets.js";
import { exportGguf, TERNARY_TYPE, type EmbeddingType, type GgufExportProgress, type GgufExportSummary } from "./gguf.js";
import { embeddingTargetProblem, resolveTargetId } from "./gguf-target.js";
import { openCheckpoint } from "../checkpoint/open.js";
import { EMBEDDING_BACKBONES, PROJECTION_NORM } from "../model/family.js";

export interface ConvertGgufOptions extends Omit<ConvertOptions, "embeddings"> {
  readonly embeddings?: EmbeddingType;
  /** The runtime whose type ids the GGUF uses (default: by layout, docs/gguf.md). */
  readonly target?: GgufTargetId;
  /** After each GGUF tensor is written (onProgress reports the conversion to .b158 before it). */
  readonly onExportProgress?: (progress: GgufExportProgress) => void;
}

/** Layouts whose GGUF b158's runtime can run (a TL1/TL2 GGUF does not record its tiling: its .b158 is checked instead). */
const RUNNABLE_GGUF_LAYOUTS = ["i2_s", "tq1_0", "tq2_0"];

/**
 * `b158 convert --format gguf`: the checkpoint goes through the same conversion and validation as
 * a .b158 (to a hidden temp file beside the output, embeddings kept in their source precision),
 * then is exported. The temp file is always removed; the output appears only when complete.
 */
export async function convertCheckpointToGguf(spec: string, ggufOptions: ConvertGgufOptions): Promise<{ conversion: ConvertSummary; gguf: GgufExportSummary }> {
  const options: ConvertGgufOptions = { ...ggufOptions, layout: parseLayoutId(ggufOptions.layout) };
  const { embeddings, beforePublish, target, onExportProgress, ...rest } = options;
  const checkGguf = RUNNABLE_GGUF_LAYOUTS.includes(options.layout);
  // refuse before converting, not after minutes of work
  if (await isGgufFile(spec)) await refuseGgufInput(spec, "convert");
  const targetId = resolveTargetId(TERNARY_TYPE[options.layout], target, `--layout ${options.layout} (${TERNARY_TYPE[options.layout]})`);
  const notes = await prepareOutput(options.output, options.force);
  await requireGgufInputs(spec, targetId, TERNARY_TYPE[options.layout]);
  const staging = partialPath(options.output, ".b158");
  try {
    const converted = await convertCheckpoint(spec, { ...rest, output: staging, force: true, ...(beforePublish !== undefined && !checkGguf ? { beforePublish } : {}) }).catch((error: unknown) =>
      // the staging file is an internal name: an interrupted conversion is reported against the output
      Promise.reject(error instanceof B158Error && error.code === "E_INTERRUPTED" ? interruptedError(options.output, "conversion", options.signal) : error),
    );
    const conversion = { ...converted, warnings: [...notes, ...converted.warnings] };
    const file = await openB158File(staging);
    try {
      const gguf = await exportGguf(file, {
        output: options.output,
        ...(options.force === undefined ? {} : { force: options.force }),
        ...(embeddings === undefined ? {} : { embeddings }),
        ...(target === undefined ? {} : { target }),
        ...(options.signal === undefined ? {} : { signal: options.signal }),
        ...(onExportProgress === undefined ? {} : { onProgress: onExportProgress }),
        ...(beforePublish !== undefined && checkGguf ? { beforePublish } : {}),
      });
      // the GGUF's own activation warning (the runtimes that load it) replaces the .b158's
      const warnings = gguf.diagnostics.some((d) => d.code === "W_GGUF_ACTIVATION") ? conversion.warnings.filter((w) => w.code !== "W_GGUF_ACTIVATION") : conversion.warnings;
      return { conversion: { ...conversion, warnings }, gguf };
    } finally {
      await file.close();
    }
  } finally {
    await rm(staging, { force: true });
  }
}

/** What export will need from the checkpoint, checked before minutes of conversion. */
async function requireGgufInputs(spec: string, target: GgufTargetId, weightType: string): Promise<void> {
  const files = await resolveSource(spec, { access: "headers" });
  // a BitNet-embedding model (per-projection norms) has one GGUF home: bitnet.cpp's fork
  const checkpoint = await openCheckpoint(files);
  try {
    const modelType = checkpoint.config?.modelType;
    if (modelType !== undefined && EMBEDDING_BACKBONES.includes(modelType) && checkpoint.tensors.some((t) => PROJECTION_NORM.test(t.name))) {
      const problem = embeddingTargetProblem(target, weightType);
      if (problem !== undefined) throw new B158Error("E_GGUF_EXPORT", `${files.label}: ${problem.message}`, { details: { source: files.label, target }, hint: problem.hint });
    }
  } finally {
    await checkpoint.close();
  }
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
