import { createHash } from "node:crypto";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { encodeHeader, type B158Header } from "../../src/formats/b158/header.js";

/**
 * Valid files holding `count` one-element tensors, in each format b158 reads: small on disk (a
 * few MB for 150,000 tensors) and quick to write, for the rule that work, output and stack depth
 * follow what a file holds. Written directly (not through the hostile builders, which go byte by
 * byte): only the tensor count is unusual.
 */

/** `model.layers.<i>.input_layernorm.weight`: one layer each, so nothing folds them into one row. */
export const layerNorm = (i: number): string => `model.layers.${i}.input_layernorm.weight`;

/**
 * A checkpoint directory: model.safetensors with `count` U8 [1] norms, and a config.json whose
 * hidden_size (8) contradicts every one of them, so `inspect` also has `count` diagnostics to show.
 */
export async function manyTensorCheckpoint(dir: string, count: number): Promise<string> {
  await mkdir(dir, { recursive: true });
  const entries: string[] = [];
  for (let i = 0; i < count; i++) entries.push(`"${layerNorm(i)}":{"dtype":"U8","shape":[1],"data_offsets":[${i},${i + 1}]}`);
  const header = Buffer.from(`{${entries.join(",")}}`);
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(header.byteLength));
  await writeFile(join(dir, "model.safetensors"), Buffer.concat([prefix, header, Buffer.alloc(count, 1)]));
  await writeFile(join(dir, "config.json"), JSON.stringify({ architectures: ["LlamaForCausalLM"], model_type: "llama", hidden_size: 8 }));
  return dir;
}

/** A GGUF with `count` F32 [1] tensors, 32-byte aligned; by default of an architecture b158 does not check. */
export async function manyTensorGguf(path: string, count: number, architecture = "many-tensors"): Promise<string> {
  const parts: Buffer[] = [];
  const u32 = (n: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(n);
    parts.push(b);
  };
  const u64 = (n: number) => {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(n));
    parts.push(b);
  };
  const str = (s: string) => {
    u64(Buffer.byteLength(s));
    parts.push(Buffer.from(s));
  };
  parts.push(Buffer.from("GGUF"));
  u32(3);
  u64(count);
  u64(1);
  str("general.architecture");
  u32(8); // string
  str(architecture);
  for (let i = 0; i < count; i++) {
    str(`blk.${i}.attn_norm.weight`);
    u32(1); // n_dims
    u64(1); // ne[0]
    u32(0); // F32
    u64(i * 32);
  }
  const header = Buffer.concat(parts);
  const dataOffset = Math.ceil(header.byteLength / 32) * 32;
  const file = Buffer.alloc(dataOffset + (count - 1) * 32 + 4);
  header.copy(file);
  await writeFile(path, file);
  return path;
}

/** A .b158 with `count` u8 [1] payloads (each 64-aligned, as the format requires). */
export async function manyTensorB158(path: string, count: number): Promise<string> {
  const sha = createHash("sha256").update(Uint8Array.of(1)).digest("hex");
  const tensors: B158Header["tensors"][number][] = [];
  for (let i = 0; i < count; i++) {
    tensors.push({ name: layerNorm(i), gguf_name: null, shape: [1], role: "norm", layout: "u8", params: {}, source_dtype: "U8", offset: i * 64, length: 1, sha256: sha });
  }
  const header = encodeHeader({
    format: "b158",
    model: { family: "generic", architecture: null, config: null },
    files: {},
    provenance: { source: { kind: "local" }, files: [], options: { layout: "tq2_0", i2s_variant: "x86", fallback: null, float_dtype: null, embeddings: null, ternarize: [], kernel_config_sha256: null } },
    tensors,
    tool: { name: "many-tensors", version: "0" },
  });
  const dataOffset = Math.ceil((64 + header.byteLength) / 4096) * 4096;
  const file = Buffer.alloc(dataOffset + (count - 1) * 64 + 1);
  Buffer.from([0x89, 0x42, 0x31, 0x35, 0x38, 0x0d, 0x0a, 0x1a]).copy(file);
  file.writeUInt16LE(1, 8);
  file.writeBigUInt64LE(BigInt(header.byteLength), 16);
  file.writeBigUInt64LE(BigInt(dataOffset), 24);
  createHash("sha256").update(header).digest().copy(file, 32);
  Buffer.from(header.buffer, header.byteOffset, header.byteLength).copy(file, 64);
  for (let i = 0; i < count; i++) file[dataOffset + i * 64] = 1;
  await writeFile(path, file);
  return path;
}
