import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * Hermetic builders for hostile safetensors files: the smallest bytes that break one rule
 * each. Nothing here validates; that is the point.
 */
export interface BuildOptions {
  /** The header: an object (JSON-encoded), a raw string, or raw bytes. */
  header: object | string | Uint8Array;
  /** Overrides the 8-byte little-endian header length prefix. */
  headerLength?: bigint;
  /** The data section. */
  data?: Uint8Array;
}

export function buildSafetensors({ header, headerLength, data = new Uint8Array(0) }: BuildOptions): Uint8Array {
  const headerBytes = header instanceof Uint8Array ? header : new TextEncoder().encode(typeof header === "string" ? header : JSON.stringify(header));
  const out = new Uint8Array(8 + headerBytes.byteLength + data.byteLength);
  new DataView(out.buffer).setBigUint64(0, headerLength ?? BigInt(headerBytes.byteLength), true);
  out.set(headerBytes, 8);
  out.set(data, 8 + headerBytes.byteLength);
  return out;
}

/** A valid two-tensor file: w (F32 [2, 2], 16 bytes) then b (U8 [4], 4 bytes). */
export function validHeader(): Record<string, unknown> {
  return {
    __metadata__: { format: "pt" },
    w: { dtype: "F32", shape: [2, 2], data_offsets: [0, 16] },
    b: { dtype: "U8", shape: [4], data_offsets: [16, 20] },
  };
}
export const VALID_DATA_BYTES = 20;

export function validFile(): Uint8Array {
  return buildSafetensors({ header: validHeader(), data: new Uint8Array(VALID_DATA_BYTES).fill(1) });
}

/** A temp directory holding the given files; call cleanup() when done. */
export async function tempCheckpoint(files: Record<string, string | Uint8Array>): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), "b158-bad-"));
  await mkdir(dir, { recursive: true });
  for (const [name, content] of Object.entries(files)) await writeFile(join(dir, name), content);
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}
