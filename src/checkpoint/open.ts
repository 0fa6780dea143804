import { B158Error } from "../errors.js";
import type { ByteSource } from "../io/byte-source.js";
import { parseHfConfig, type HfConfig } from "../formats/hf-config/read.js";
import { readSafetensorsHeader, type SafetensorsHeader, type SafetensorsTensor } from "../formats/safetensors/read.js";
import { parseSafetensorsIndex, type SafetensorsIndex } from "../formats/safetensors/index-file.js";
import type { Diagnostic } from "../model/diagnostics.js";
import type { CheckpointFiles } from "./files.js";

export const SINGLE_WEIGHTS_FILE = "model.safetensors";
export const INDEX_FILE = "model.safetensors.index.json";
export const CONFIG_FILE = "config.json";
const SHARD_NAME = /^(.+)-(\d{5})-of-(\d{5})\.safetensors$/;

/** Files a converted model needs besides weights: tokenizer, chat template, generation defaults. */
export const AUXILIARY_FILES = [
  "tokenizer.json",
  "tokenizer.model",
  "tokenizer_config.json",
  "special_tokens_map.json",
  "added_tokens.json",
  "generation_config.json",
  "chat_template.jinja",
  // sentence-transformers: how an embedding model pools and normalizes (plus the Pooling module's config.json, see poolingPaths)
  "modules.json",
  "config_sentence_transformers.json",
  "sentence_bert_config.json",
] as const;

/** The folders modules.json names for Pooling modules: each holds the config.json that picks the pooling mode. */
export function poolingPaths(modulesJson: string): string[] {
  try {
    const modules = JSON.parse(modulesJson) as unknown;
    if (!Array.isArray(modules)) return [];
    return modules.flatMap((m: unknown) => {
      const module = m as { type?: unknown; path?: unknown } | null;
      const pooling = typeof module?.type === "string" && module.type.endsWith("Pooling");
      // one plain folder name: nothing that leaves the checkpoint
      return pooling && typeof module.path === "string" && /^[\w.-]+$/.test(module.path) && module.path !== ".." && module.path !== "." ? [module.path] : [];
    });
  } catch {
    return [];
  }
}

export interface CheckpointTensor extends SafetensorsTensor {
  /** The weights file holding it. */
  readonly shard: string;
}

export interface WeightsFileSummary {
  readonly name: string;
  readonly size: number;
  readonly headerLength: number;
  readonly tensorCount: number;
  readonly metadata: Readonly<Record<string, string>> | undefined;
}

export interface Checkpoint {
  readonly files: CheckpointFiles;
  readonly label: string;
  readonly config: HfConfig | undefined;
  readonly weightsFiles: readonly WeightsFileSummary[];
  readonly index: SafetensorsIndex | undefined;
  /** All tensors, sorted by name. */
  readonly tensors: readonly CheckpointTensor[];
  readonly tensorsByName: ReadonlyMap<string, CheckpointTensor>;
  /** Tokenizer, generation and sentence-transformers files present (names relative to the checkpoint, "1_Pooling/config.json" included). */
  readonly auxiliaryFiles: readonly string[];
  /** Findings made while opening (never fatal ones: those throw). */
  readonly diagnostics: readonly Diagnostic[];
  /** The open byte source of a weights file (opened once, kept until close()). */
  source(shard: string): Promise<ByteSource>;
  close(): Promise<void>;
}

/** Finds the weights, reads and validates every header and the index, and reads config.json. */
export async function openCheckpoint(files: CheckpointFiles): Promise<Checkpoint> {
  const diagnostics: Diagnostic[] = [];
  const names = await files.list();
  const present = new Set(names);

  let config: HfConfig | undefined;
  if (present.has(CONFIG_FILE)) {
    config = parseHfConfig(await files.readText(CONFIG_FILE), `${files.label}/${CONFIG_FILE}`);
  } else {
    diagnostics.push({
      severity: "warning",
      code: "W_CONFIG_MISSING",
      message: `no ${CONFIG_FILE} beside the weights: the family is guessed from tensor names and shapes cannot be checked`,
    });
  }

  const { weightNames, index } = await locateWeights(files, names, present, diagnostics);
  const sources = new Map<string, ByteSource>();
  const openSource = async (shard: string): Promise<ByteSource> => {
    let source = sources.get(shard);
    if (source === undefined) {
      source = await files.open(shard);
      sources.set(shard, source);
    }
    return source;
  };
  const close = async (): Promise<void> => {
    const open = [...sources.values()];
    sources.clear();
    await Promise.all(open.map((s) => s.close()));
  };

  try {
    const headers: SafetensorsHeader[] = [];
    for (const name of weightNames) headers.push(await readSafetensorsHeader(await openSource(name)));

    const tensorsByName = new Map<string, CheckpointTensor>();
    headers.forEach((header, i) => {
      const shard = weightNames[i]!;
      for (const tensor of header.tensors) {
        const previous = tensorsByName.get(tensor.name);
        if (previous !== undefined) {
          throw new B158Error("E_INDEX_MISMATCH", `${files.label}: tensor "${tensor.name}" is stored in both ${previous.shard} and ${shard}`, {
            details: { tensor: tensor.name, shards: [previous.shard, shard] },
            hint: "A tensor must live in exactly one shard; the checkpoint is inconsistent.",
          });
        }
        tensorsByName.set(tensor.name, { ...tensor, shard });
      }
    });
    if (index !== undefined) crossCheckIndex(files.label, index, tensorsByName, diagnostics);

    const tensors = [...tensorsByName.values()].sort((a, b) => compareTensorNames(a.name, b.name));
    const weightsFiles = headers.map((h, i) => ({
      name: weightNames[i]!,
      size: h.fileSize,
      headerLength: h.headerLength,
      tensorCount: h.tensors.length,
      metadata: h.metadata,
    }));
    return {
      files,
      label: files.label,
      config,
      weightsFiles,
      index,
      tensors,
      tensorsByName: new Map(tensors.map((t) => [t.name, t])),
      auxiliaryFiles: await auxiliaryFiles(files, present),
      diagnostics,
      source: openSource,
      close,
    };
  } catch (error) {
    await close();
    throw error;
  }
}

/** The auxiliary files present, and the Pooling module's config.json that modules.json points to. */
async function auxiliaryFiles(files: CheckpointFiles, present: ReadonlySet<string>): Promise<string[]> {
  const found: string[] = AUXILIARY_FILES.filter((f) => present.has(f));
  if (present.has("modules.json")) {
    for (const path of poolingPaths(await files.readText("modules.json"))) if (await files.has(`${path}/config.json`)) found.push(`${path}/config.json`);
  }
  return found;
}

async function locateWeights(files: CheckpointFiles, names: string[], present: Set<string>, diagnostics: Diagnostic[]) {
  if (files.singleWeightsFile !== undefined) {
    return { weightNames: [files.singleWeightsFile], index: undefined };
  }
  if (present.has(INDEX_FILE)) {
    const index = parseSafetensorsIndex(await files.readText(INDEX_FILE), `${files.label}/${INDEX_FILE}`);
    for (const shard of index.shards) {
      if (!present.has(shard)) {
        throw new B158Error("E_INDEX_MISSING_SHARD", `${files.label}/${INDEX_FILE}: names shard "${shard}", which is not in the directory`, {
          details: { index: INDEX_FILE, shard },
          hint: "Download the missing shard, or fix the index.",
        });
      }
    }
    const unlisted = names.filter((n) => SHARD_NAME.test(n) && !index.shards.includes(n));
    for (const extra of unlisted) {
      diagnostics.push({ severity: "warning", code: "W_UNLISTED_SHARD", file: extra, message: `${extra} looks like a shard but the index does not list it; it is ignored` });
    }
    if (present.has(SINGLE_WEIGHTS_FILE) && !index.shards.includes(SINGLE_WEIGHTS_FILE)) {
      diagnostics.push({ severity: "warning", code: "W_UNLISTED_SHARD", file: SINGLE_WEIGHTS_FILE, message: `${SINGLE_WEIGHTS_FILE} is present but the index does not list it; it is ignored` });
    }
    return { weightNames: [...index.shards], index };
  }
  if (present.has(SINGLE_WEIGHTS_FILE)) return { weightNames: [SINGLE_WEIGHTS_FILE], index: undefined };
  const safetensors = names.filter((n) => n.endsWith(".safetensors"));
  if (safetensors.some((n) => SHARD_NAME.test(n))) {
    throw new B158Error("E_INDEX_MISSING_SHARD", `${files.label}: has shard files but no ${INDEX_FILE}`, {
      details: { shards: safetensors },
      hint: `Download ${INDEX_FILE} too: without it the shard set cannot be checked.`,
    });
  }
  if (safetensors.length === 1) return { weightNames: safetensors, index: undefined };
  if (safetensors.length > 1) {
    throw new B158Error("E_SOURCE_AMBIGUOUS", `${files.label}: holds ${safetensors.length} .safetensors files and no index`, {
      details: { files: safetensors },
      hint: "Pass one .safetensors file directly, or add model.safetensors.index.json.",
    });
  }
  throw new B158Error("E_SOURCE_UNRECOGNIZED", `${files.label}: no model.safetensors, no ${INDEX_FILE} and no .safetensors file`, {
    details: { source: files.label },
    hint: "Pass a Hugging Face checkpoint directory. b158 reads safetensors only (never pickle .bin files).",
  });
}

function crossCheckIndex(label: string, index: SafetensorsIndex, tensors: Map<string, CheckpointTensor>, diagnostics: Diagnostic[]): void {
  for (const [name, shard] of index.weightMap) {
    const tensor = tensors.get(name);
    if (tensor === undefined) {
      throw new B158Error("E_INDEX_MISMATCH", `${label}/${INDEX_FILE}: maps "${name}" to ${shard}, but no shard holds it`, {
        details: { tensor: name, shard },
        hint: "The index and the shards come from different exports; re-download both.",
      });
    }
    if (tensor.shard !== shard) {
      throw new B158Error("E_INDEX_MISMATCH", `${label}/${INDEX_FILE}: maps "${name}" to ${shard}, but it is stored in ${tensor.shard}`, {
        details: { tensor: name, indexShard: shard, actualShard: tensor.shard },
      });
    }
  }
  let total = 0;
  for (const tensor of tensors.values()) {
    if (!index.weightMap.has(tensor.name)) {
      throw new B158Error("E_INDEX_MISMATCH", `${label}: shard ${tensor.shard} holds "${tensor.name}", which the index does not list`, {
        details: { tensor: tensor.name, shard: tensor.shard },
      });
    }
    total += tensor.byteLength;
  }
  if (index.totalSize !== undefined && index.totalSize !== total) {
    diagnostics.push({
      severity: "warning",
      code: "W_INDEX_TOTAL_SIZE",
      message: `index metadata.total_size is ${index.totalSize} but the shards hold ${total} tensor bytes`,
    });
  }
}

/**
 * Orders "layers.10" after "layers.9", so plans (and .b158 files) read in model order; the exact
 * rule of docs/FORMAT.md §1.9. A name is split into runs of ASCII digits and runs of anything
 * else; runs compare in turn, text by code point (= UTF-8 byte order), digits by value and, for
 * equal values, as text ("007" before "7"); when every run compared is equal, fewer runs first.
 */
export function compareTensorNames(a: string, b: string): number {
  const pa = a.split(/([0-9]+)/);
  const pb = b.split(/([0-9]+)/);
  for (let i = 0; i < Math.min(pa.length, pb.length); i++) {
    const x = pa[i]!;
    const y = pb[i]!;
    if (x === y) continue;
    return i % 2 === 1 ? compareDigitRuns(x, y) : compareCodePoints(x, y);
  }
  return pa.length - pb.length;
}

/** By value, exactly (any length; no float rounding), then as text. */
function compareDigitRuns(x: string, y: string): number {
  const u = x.replace(/^0+/, "");
  const v = y.replace(/^0+/, "");
  if (u.length !== v.length) return u.length - v.length;
  if (u !== v) return u < v ? -1 : 1;
  return x < y ? -1 : 1;
}

/** Code point order (UTF-16 code unit order differs for characters above U+FFFF). */
function compareCodePoints(x: string, y: string): number {
  let i = 0;
  while (i < x.length && i < y.length) {
    const c = x.codePointAt(i)!;
    const d = y.codePointAt(i)!;
    if (c !== d) return c - d;
    i += c > 0xffff ? 2 : 1;
  }
  return x.length - y.length;
}
