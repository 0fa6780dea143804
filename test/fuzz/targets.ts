import { createHash } from "node:crypto";
import { mkdir, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Random } from "../../fixtures/lib/random.js";
import { generateCheckpoint } from "../../fixtures/generate.js";
import { convertCheckpoint } from "../../src/convert/convert.js";
import { exportGguf } from "../../src/export/gguf.js";
import { decodeHeader } from "../../src/formats/b158/header.js";
import { openB158File } from "../../src/formats/b158/read.js";
import { openGguf } from "../../src/formats/gguf/read.js";
import { memorySource } from "../../src/io/byte-source.js";
import type { LayoutId } from "../../src/pack/layouts.js";
import { inspectB158, validateB158Report } from "../../src/report/b158-report.js";
import { inspectCheckpoint, validateCheckpoint } from "../../src/report/checkpoint-report.js";
import { inspectGguf, validateGgufReport } from "../../src/report/gguf-report.js";
import { renderB158Report } from "../../src/report/render-b158.js";
import { renderCheckpointReport, renderValidateReport } from "../../src/report/render-checkpoint.js";
import { renderGgufReport } from "../../src/report/render-gguf.js";
import { layoutGgufBytes, validGguf, type KvSpec, type TensorSpec as GgufTensorSpec } from "../support/build-gguf.js";
import { signB158 } from "../support/forge-b158.js";
import { concat, mutateBytes, mutateValue, pick } from "./mutate.js";

/**
 * What the fuzzer feeds and runs: valid seed files for each reader (a sharded U8-packed checkpoint
 * and a latent one with a SentencePiece tokenizer; .b158 files of every layout converted from them;
 * GGUFs exported from those, for llama.cpp and bitnet.cpp), the mutations made to them, and the
 * library calls a user's `inspect` and `validate` make on the result.
 */

export type TargetName = "gguf" | "safetensors" | "b158";
export const TARGETS: readonly TargetName[] = ["gguf", "safetensors", "b158"];

/** The files of one case, and what to open: a file name, or "" for the directory itself. */
export interface FuzzInput {
  readonly files: Readonly<Record<string, Uint8Array>>;
  readonly open: string;
  /** What was done to the seed file, for the reproducer. */
  readonly steps: readonly string[];
}

interface SeedFile {
  readonly name: string;
  readonly bytes: Uint8Array;
  /** Where the structure ends and bulk data begins: mutations go mostly before it. */
  readonly hot: number;
}

/** A GGUF taken apart into the hostile builder's specs, to damage one field and write it again. */
interface GgufParts {
  readonly kvs: KvSpec[];
  readonly tensors: GgufTensorSpec[];
  readonly alignment: number;
  readonly data: Uint8Array;
}

export interface Corpus {
  readonly gguf: readonly (SeedFile & { readonly parts: GgufParts })[];
  readonly checkpoints: readonly { readonly name: string; readonly files: Readonly<Record<string, Uint8Array>> }[];
  readonly b158: readonly SeedFile[];
}

const u64 = (bytes: Uint8Array, at: number): number => Number(new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getBigUint64(at, true));
const DIMS = { layers: 1, hidden: 256, intermediate: 256, heads: 2, vocab: 320 };

/** Builds the seed files under `dir` (about a second). */
export async function buildCorpus(dir: string): Promise<Corpus> {
  await mkdir(dir, { recursive: true });
  const packed = join(dir, "packed");
  const latent = join(dir, "latent");
  await generateCheckpoint({ family: "bitnet-2b4t-packed", dir: packed, shards: 2, dims: { ...DIMS, kvHeads: 1 } });
  await generateCheckpoint({ family: "bitnet-1bitllm", dir: latent, latentDtype: "BF16", dims: { ...DIMS, kvHeads: 2 } });
  const checkpoints = [];
  for (const source of [packed, latent]) {
    const files: Record<string, Uint8Array> = {};
    for (const name of await readdir(source)) files[name] = new Uint8Array(await readFile(join(source, name)));
    checkpoints.push({ name: source.split("/").pop()!, files });
  }

  const b158: SeedFile[] = [];
  const gguf: Corpus["gguf"][number][] = [];
  const addGguf = async (name: string, bytes: Uint8Array) => gguf.push({ name, bytes, ...(await ggufParts(name, bytes)) });
  await addGguf("hostile-builder.gguf", validGguf());
  const layouts: [LayoutId, string, boolean][] = [["i2_s", packed, true], ["tl1", packed, true], ["tl2", packed, false], ["tq1_0", packed, false], ["tq2_0", latent, true]];
  for (const [layout, source, exportToo] of layouts) {
    const path = join(dir, `${layout}.b158`);
    await convertCheckpoint(source, { layout, output: path, threads: 0, force: true });
    const bytes = new Uint8Array(await readFile(path));
    b158.push({ name: `${layout}.b158`, bytes, hot: u64(bytes, 24) });
    if (!exportToo) continue;
    const file = await openB158File(path);
    const ggufPath = join(dir, `${layout}.gguf`);
    try {
      await exportGguf(file, { output: ggufPath, force: true });
    } finally {
      await file.close();
    }
    await addGguf(`${layout}.gguf`, new Uint8Array(await readFile(ggufPath)));
  }
  return { gguf, checkpoints, b158 };
}

/** A case for `target`: a seed file and its mutations, all drawn from `random`. */
export function generate(target: TargetName, corpus: Corpus, random: Random): FuzzInput {
  switch (target) {
    case "gguf": {
      const seed = pick(random, corpus.gguf);
      if (random.next() < 0.5) return { files: { [seed.name]: mutateBytes(random, seed.bytes, seed.hot) }, open: seed.name, steps: [`bytes of ${seed.name}`] };
      const { bytes, steps } = mutateGguf(random, seed.parts);
      return { files: { [seed.name]: bytes }, open: seed.name, steps: [`fields of ${seed.name}: ${steps.join(", ")}`] };
    }
    case "safetensors":
      return mutateCheckpoint(random, pick(random, corpus.checkpoints));
    case "b158":
      return mutateB158(random, pick(random, corpus.b158));
  }
}

/** The seed's metadata and tensor infos as builder specs, its alignment and its data section. */
async function ggufParts(name: string, bytes: Uint8Array): Promise<{ hot: number; parts: GgufParts }> {
  const file = await openGguf(memorySource(name, bytes));
  try {
    const kvs: KvSpec[] = file.kvs.map(({ key, value }) =>
      value.type === "array" ? { key, type: "array", itemType: value.itemType, value: [...value.value] } : { key, type: value.type, value: value.value },
    );
    const tensors: GgufTensorSpec[] = file.tensors.map((t) => ({ name: t.name, ne: [...t.ne], typeId: t.type.id, bytes: t.length }));
    return { hot: file.dataOffset, parts: { kvs, tensors, alignment: file.alignment, data: bytes.slice(file.dataOffset) } };
  } finally {
    await file.close();
  }
}

/** One to three fields of a GGUF changed (a count, a value, a type, a dimension, an offset...), then written again around the same data. */
function mutateGguf(random: Random, parts: GgufParts): { bytes: Uint8Array; steps: string[] } {
  const kvs = parts.kvs.map((kv) => ({ ...kv, ...(Array.isArray(kv.value) ? { value: [...(kv.value as unknown[])] } : {}) })) as KvSpec[];
  const tensors = parts.tensors.map((t) => ({ ...t, ne: [...(t.ne ?? [])] }));
  const build: { tensorCount?: bigint; kvCount?: bigint } = {};
  const steps: string[] = [];
  const numbers = [0n, 1n, 2n, 3n, 31n, 32n, 255n, 256n, 2n ** 31n - 1n, 2n ** 32n - 1n, 2n ** 53n + 1n, 2n ** 63n - 1n, 2n ** 64n - 1n, 4_294_967_295n, 242_932n];
  for (let n = random.int(1, 3); n > 0; n--) {
    const kv = pick(random, kvs);
    const t = pick(random, tensors);
    switch (random.int(0, 11)) {
      case 0:
      case 1: {
        // a number (block_count, embedding_length, file_type, alignment, ...) on a boundary
        const numeric = kvs.filter((k) => typeof k.value === "number" || typeof k.value === "bigint");
        const target = numeric.length > 0 ? pick(random, numeric) : kv;
        const value = pick(random, numbers);
        (target as { value: unknown }).value = target.type === "uint64" || target.type === "int64" ? value : Number(BigInt.asUintN(32, value));
        steps.push(`${target.key as string} = ${value}`);
        break;
      }
      case 2:
        (kv as { type: unknown }).type = random.int(0, 13);
        steps.push(`${kv.key as string} type id`);
        break;
      case 3:
        if (Array.isArray(kv.value)) {
          (kv as { value: unknown }).value = (kv.value as unknown[]).slice(0, random.int(0, (kv.value as unknown[]).length));
          steps.push(`${kv.key as string} shortened`);
        } else {
          (kv as { value: unknown }).value = pick(random, ["", "llama", "bitnet", "bitnet-b1.58", "bitnet-25", "x".repeat(100)]);
          steps.push(`${kv.key as string} as a string`);
        }
        break;
      case 4:
        kvs.splice(kvs.indexOf(kv), 1);
        steps.push(`${kv.key as string} dropped`);
        break;
      case 5:
        kvs.push({ ...kv });
        steps.push(`${kv.key as string} twice`);
        break;
      case 6: {
        const d = random.int(0, Math.max(0, t.ne.length - 1));
        t.ne[d] = pick(random, numbers);
        steps.push(`${t.name as string} ne[${d}]`);
        break;
      }
      case 7:
        (t as { typeId?: number }).typeId = random.int(0, 42);
        steps.push(`${t.name as string} type`);
        break;
      case 8:
        (t as { offset?: bigint }).offset = pick(random, numbers);
        steps.push(`${t.name as string} offset`);
        break;
      case 9:
        (t as { name: string }).name = pick(random, [tensors[0]!.name as string, "", "blk.4000000000.attn_q.weight", "output.weight", "x".repeat(80), `${t.name as string}_scale`]);
        steps.push(`a tensor renamed`);
        break;
      case 10:
        tensors.splice(tensors.indexOf(t), 1);
        steps.push(`${t.name as string} dropped`);
        break;
      default:
        if (random.next() < 0.5) build.tensorCount = BigInt(tensors.length + random.int(-1, 1));
        else build.kvCount = BigInt(kvs.length + random.int(-1, 1));
        steps.push("a count");
    }
  }
  let header: Uint8Array;
  try {
    header = layoutGgufBytes({ kvs, tensors, alignment: parts.alignment, headerOnly: true, ...build }).bytes;
  } catch {
    // a value the builder cannot encode under its new type (a fraction as an integer): damage bytes instead
    return { bytes: mutateBytes(random, concat(layoutGgufBytes({ kvs: parts.kvs, tensors: parts.tensors, alignment: parts.alignment, headerOnly: true }).bytes), undefined), steps: [...steps, "bytes instead"] };
  }
  const dataOffset = Math.ceil(header.byteLength / parts.alignment) * parts.alignment;
  const bytes = new Uint8Array(dataOffset + parts.data.byteLength);
  bytes.set(header);
  bytes.set(parts.data, dataOffset);
  return { bytes, steps };
}

const JSON_FILES = /\.json$/;

/** The decoded JSON, or undefined when an earlier mutation of the same case broke it. */
function parseJson(bytes: Uint8Array): unknown {
  try {
    return JSON.parse(new TextDecoder().decode(bytes)) as unknown;
  } catch {
    return undefined;
  }
}

function mutateCheckpoint(random: Random, seed: Corpus["checkpoints"][number]): FuzzInput {
  const files = { ...seed.files };
  const names = Object.keys(files);
  const shards = names.filter((n) => n.endsWith(".safetensors"));
  const steps: string[] = [];
  for (let n = random.int(1, 2); n > 0; n--) {
    const roll = random.next();
    const name = roll < 0.5 ? pick(random, shards) : roll < 0.75 ? "config.json" : roll < 0.85 && files["model.safetensors.index.json"] ? "model.safetensors.index.json" : pick(random, names);
    const bytes = files[name]!;
    if (name.endsWith(".safetensors")) {
      const headerEnd = bytes.length >= 8 ? 8 + u64(bytes, 0) : 0;
      const header = random.next() < 0.4 ? parseJson(bytes.subarray(8, headerEnd)) : undefined;
      if (header !== undefined) {
        mutateValue(random, header);
        const text = new TextEncoder().encode(JSON.stringify(header));
        const prefix = new Uint8Array(8);
        new DataView(prefix.buffer).setBigUint64(0, BigInt(text.byteLength), true);
        files[name] = concat(prefix, text, bytes.subarray(headerEnd));
        steps.push(`header values of ${name}`);
      } else {
        files[name] = mutateBytes(random, bytes, headerEnd);
        steps.push(`bytes of ${name}`);
      }
    } else if (JSON_FILES.test(name) && random.next() < 0.6 && parseJson(bytes) !== undefined) {
      const value = parseJson(bytes);
      mutateValue(random, value);
      files[name] = new TextEncoder().encode(JSON.stringify(value) ?? "");
      steps.push(`values of ${name}`);
    } else {
      files[name] = mutateBytes(random, bytes);
      steps.push(`bytes of ${name}`);
    }
  }
  return { files, open: "", steps: [`checkpoint ${seed.name}`, ...steps] };
}

/**
 * Three kinds of damage: raw bytes (mostly caught by the sha256s); the decoded header's values,
 * re-encoded and re-signed (what a buggy or hostile writer produces); a payload's bytes with its
 * sha256 rewritten to match (only the codes are wrong).
 */
function mutateB158(random: Random, seed: SeedFile): FuzzInput {
  const roll = random.next();
  if (roll < 0.3) return { files: { [seed.name]: mutateBytes(random, seed.bytes, seed.hot) }, open: seed.name, steps: [`bytes of ${seed.name}`] };
  const bytes = seed.bytes;
  const header = decodeHeader(bytes.subarray(64, 64 + u64(bytes, 16))) as { tensors: { offset: number; length: number; sha256: string }[] };
  const data = bytes.subarray(u64(bytes, 24));
  let payloads = data;
  let step: string;
  if (roll < 0.7) {
    mutateValue(random, header);
    step = `header values of ${seed.name}, re-signed`;
  } else {
    const t = pick(random, header.tensors);
    payloads = data.slice();
    const edited = mutateBytes(random, payloads.subarray(t.offset, t.offset + t.length), undefined, 3).subarray(0, t.length);
    payloads.set(edited, t.offset);
    t.sha256 = createHash("sha256").update(payloads.subarray(t.offset, t.offset + t.length)).digest("hex");
    step = `payload bytes of ${seed.name}, sha256 rewritten`;
  }
  try {
    return { files: { [seed.name]: signB158(header, payloads) }, open: seed.name, steps: [step] };
  } catch {
    // nested past what the encoder's own recursion survives: damage bytes instead
    return { files: { [seed.name]: mutateBytes(random, seed.bytes, seed.hot) }, open: seed.name, steps: [`bytes of ${seed.name}`] };
  }
}

/** Writes a case into `dir` (emptied first); returns the path to open. */
export async function writeInput(dir: string, input: FuzzInput): Promise<string> {
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  for (const [name, bytes] of Object.entries(input.files)) await writeFile(join(dir, name), bytes);
  return input.open === "" ? dir : join(dir, input.open);
}

/**
 * What `b158 inspect` and `b158 validate` do with the input, through the library (rendering
 * included); `deep` adds what convert does with a checkpoint and export with a .b158, writing to `out`.
 */
export async function run(target: TargetName, path: string, deep = false, out = `${path}.out`): Promise<void> {
  // what the CLI prints: the text report, and the JSON one under --json
  const show = <T>(report: T, render: (report: T) => string): void => {
    render(report);
    JSON.stringify(report, null, 2);
  };
  switch (target) {
    case "gguf":
      show(await inspectGguf(path), (r) => renderGgufReport(r, { all: true }));
      show(await validateGgufReport(path), renderValidateReport);
      return;
    case "safetensors":
      show(await inspectCheckpoint(path), (r) => renderCheckpointReport(r, { all: true }));
      show(await validateCheckpoint(path), renderValidateReport);
      if (deep) await convertCheckpoint(path, { layout: "tq2_0", output: out, threads: 0, force: true });
      return;
    case "b158":
      show(await inspectB158(path), (r) => renderB158Report(r, { all: true }));
      show(await validateB158Report(path), renderValidateReport);
      if (deep) {
        const file = await openB158File(path);
        try {
          await exportGguf(file, { output: out, force: true });
        } finally {
          await file.close();
        }
      }
      return;
  }
}

/** The Random of case `index` of `target` under `seed`: any case replays alone. */
export function caseRandom(seed: number, target: TargetName, index: number): Random {
  return new Random((Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul(TARGETS.indexOf(target) + 1, 0x85ebca6b) ^ Math.imul(index + 1, 0xc2b2ae35)) >>> 0);
}
