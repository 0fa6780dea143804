import { existsSync } from "node:fs";
import { basename } from "node:path";
import { B158Error } from "../errors.js";
import { isB158File, isGgufFile } from "../formats/b158/detect.js";
import { openB158File } from "../formats/b158/read.js";
import { openGgufFile, type GgufFile } from "../formats/gguf/read.js";
import { GGUF_TABLES } from "../formats/gguf/spec.js";
import { architectureFor, architectureKind, GGUF_TARGET_IDS, normalizeActivation, runtimeActivation, TARGET_KEY, targetWeightTypes } from "../formats/gguf/targets.js";
import { fileSha256 } from "../io/file-hash.js";
import { isLayoutId, type LayoutId } from "../pack/layouts.js";
import { bitsPerWeightByRole } from "../report/bits-per-weight.js";
import { ggufCompat, neededActivation } from "../report/gguf-compat.js";
import { TERNARY_TYPE } from "../export/gguf.js";

/**
 * What `b158 push` says about each file it publishes (one entry of b158-manifest.json, and the
 * facts the model card is written from): a .b158 from its header, a GGUF (b158's or anyone's)
 * from its metadata and tensors; for both, which runtimes load it, read from the same tables
 * `inspect` uses (GGUF type ids, architectures, the FFN activation each runtime computes).
 */
export interface RuntimeFit {
  /** "b158" (b158's own runtime), or a GGUF runtime table id ("llama.cpp", "bitnet.cpp-2024", ...). */
  readonly id: string;
  readonly label: string;
  /** "file": loads this file as it is; "export": after `b158 export` to a GGUF for that runtime. */
  readonly via: "file" | "export";
  /** The FFN activation it computes for this model, when b158 knows. */
  readonly activation: string | null;
  /** False: it loads the model but computes another activation than the model needs (wrong outputs); null: unknown. */
  readonly computesModel: boolean | null;
}

export interface PublishedFile {
  readonly path: string;
  readonly size: number;
  readonly sha256: string;
  readonly format: "b158" | "gguf";
  /** The ternary layout of its linear weights (a GGUF's most common ternary type), or null. */
  readonly layout: LayoutId | null;
  readonly family: string | null;
  /** .b158: the HF architecture; GGUF: general.architecture. */
  readonly architecture: string | null;
  /** Where the weights came from: a .b158's provenance; a GGUF's general.source.repo_url when it is a Hub repo. */
  readonly source: { readonly kind?: string; readonly repo?: string; readonly revision?: string; readonly commit?: string };
  /** .b158: its conversion options; GGUF: the type table (runtime) its ids follow and what decided it. */
  readonly options: object;
  readonly tensors: number;
  readonly bitsPerWeight: Readonly<Record<string, number>>;
  /** The FFN activation the model needs (config.json hidden_act; a GGUF's <arch>.hidden_activation), when known. */
  readonly activation: string | null;
  readonly runtimes: readonly RuntimeFit[];
  /** A GGUF's general.license, when it has one (a .b158 has none). */
  readonly license: string | null;
}

export async function describePublishedFile(path: string): Promise<PublishedFile> {
  if (!existsSync(path)) throw new B158Error("E_SOURCE_NOT_FOUND", `${path}: no such file`, { details: { file: path } });
  if (await isGgufFile(path)) return describeGguf(path);
  if (await isB158File(path)) return describeB158(path);
  throw new B158Error("E_USAGE", `${path}: push publishes .b158 and GGUF files; this is neither`, {
    hint: "Convert a checkpoint first: b158 convert <source> -o model.b158 (or -o model.gguf).",
    details: { file: path },
  });
}

async function describeB158(path: string): Promise<PublishedFile> {
  const file = await openB158File(path);
  try {
    const header = file.header;
    const layout = header.provenance.options.layout;
    const config = header.model.config ?? {};
    const hiddenAct = typeof config.hidden_act === "string" ? config.hidden_act : undefined;
    const kind = architectureKind(header.model.family, header.model.architecture ?? undefined, config.model_type);
    const runtimes: RuntimeFit[] = [{ id: "b158", label: "b158's own runtime (b158 run)", via: "file", activation: hiddenAct ?? null, computesModel: true }];
    if (kind !== undefined) {
      for (const target of GGUF_TARGET_IDS.filter((t) => targetWeightTypes(t).includes(TERNARY_TYPE[layout]))) {
        const activation = runtimeActivation(target, architectureFor(target, kind, hiddenAct)) ?? null;
        runtimes.push({ id: target, label: GGUF_TABLES[target].label, via: "export", activation, computesModel: activation === null || hiddenAct === undefined ? null : activation === normalizeActivation(hiddenAct) });
      }
    }
    return {
      path: basename(path),
      size: file.size,
      sha256: await fileSha256(path),
      format: "b158",
      layout,
      family: header.model.family,
      architecture: header.model.architecture,
      source: header.provenance.source,
      options: header.provenance.options,
      tensors: file.tensors.length,
      bitsPerWeight: bitsPerWeightByRole(
        file.tensors.map((t) => ({ role: t.role, bytes: t.length, weights: t.shape.reduce((a, b) => a * b, 1) })),
        file.size,
      ),
      activation: hiddenAct ?? null,
      runtimes,
      license: null,
    };
  } finally {
    await file.close();
  }
}

const TERNARY_GGML = new Set(Object.values(TERNARY_TYPE));

async function describeGguf(path: string): Promise<PublishedFile> {
  const file = await openGgufFile(path);
  try {
    const compat = ggufCompat(file);
    const needed = neededActivation(file);
    const runtimes: RuntimeFit[] = compat.runtimes
      .filter((r) => r.loads !== false)
      .map((r) => ({ id: r.id, label: r.label, via: "file" as const, activation: r.activation, computesModel: r.activation === null || needed === undefined ? null : r.activation === normalizeActivation(needed.act) }));
    const architecture = file.scalar("general.architecture");
    const license = file.scalar("general.license");
    const target = file.scalar(TARGET_KEY);
    return {
      path: basename(path),
      size: file.size,
      sha256: await fileSha256(path),
      format: "gguf",
      layout: ggufLayout(file),
      family: null,
      architecture: typeof architecture === "string" ? architecture : null,
      source: ggufSource(file),
      options: { typeTable: compat.typeTable.table, decidedBy: compat.typeTable.decidedBy, ...(typeof target === "string" ? { target } : {}) },
      tensors: file.tensors.length,
      bitsPerWeight: bitsPerWeightByRole(
        file.tensors.map((t) => ({ role: ggufRole(t.name, t.type.name, t.ne.length), bytes: t.length, weights: t.ne.reduce((a, b) => a * b, 1) })),
        file.size,
      ),
      activation: needed?.act ?? null,
      runtimes,
      license: typeof license === "string" && license.trim() !== "" ? license.trim() : null,
    };
  } finally {
    await file.close();
  }
}

/** The ternary type most of the file's ternary tensors use, as a layout id. */
function ggufLayout(file: GgufFile): LayoutId | null {
  const counts = new Map<string, number>();
  for (const t of file.tensors) if (TERNARY_GGML.has(t.type.name)) counts.set(t.type.name, (counts.get(t.type.name) ?? 0) + 1);
  const [top] = [...counts].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
  const layout = top?.[0].toLowerCase();
  return isLayoutId(layout) ? layout : null;
}

function ggufRole(name: string, type: string, dims: number): string {
  if (name === "token_embd.weight") return "embedding";
  if (name === "output.weight") return "lm-head";
  if (TERNARY_GGML.has(type)) return "ternary-linear";
  return dims === 1 ? "norm" : "other";
}

/** general.source.repo_url naming a Hub model repo (https://<host>/org/name): the weights' origin, as b158's GGUF export records it. */
function ggufSource(file: GgufFile): PublishedFile["source"] {
  const url = file.scalar("general.source.repo_url");
  if (typeof url !== "string") return {};
  const match = /^https?:\/\/[^/\s]+\/([A-Za-z0-9][A-Za-z0-9._-]*\/[A-Za-z0-9][A-Za-z0-9._-]*)\/?$/.exec(url);
  return match === null || match[1]!.includes("..") ? {} : { kind: "hub", repo: match[1]! };
}
