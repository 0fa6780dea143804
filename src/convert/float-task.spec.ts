import { createHash } from "node:crypto";
import { closeSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { SlotWriter, type PayloadSlot } from "../formats/b158/slot.js";
import type { PlainLayout } from "../formats/b158/spec.js";
import { fileSource, memorySource, type ByteSource } from "../io/byte-source.js";
import { fromBf16Bits, fromF16Bits } from "../pack/float16.js";
import { convertFloats } from "./float-convert.js";
import { runFloatTask, type FloatTask } from "./float-task.js";

const sha = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");

/** Bit patterns of the values below, per source dtype. */
const F32 = (values: readonly number[]) => new Uint8Array(new Float32Array(values).buffer);
const U16 = (bits: readonly number[]) => new Uint8Array(new Uint16Array(bits).buffer);

/** NaN / Inf counted by decoding every element, not by exponent masks. */
function nonFiniteOf(bytes: Uint8Array, layout: "f32" | "f16" | "bf16"): number {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const size = layout === "f32" ? 4 : 2;
  let count = 0;
  for (let at = 0; at < bytes.byteLength; at += size) {
    const value = layout === "f32" ? view.getFloat32(at, true) : layout === "f16" ? fromF16Bits(view.getUint16(at, true)) : fromBf16Bits(view.getUint16(at, true));
    if (!Number.isFinite(value)) count++;
  }
  return count;
}

// bf16: 37 elements (74 bytes), NaN at 14 (last of a 15-element chunk), +Inf, -Inf, a signalling-style NaN
const BF16_BITS = Array.from({ length: 37 }, (_, i) => (i * 0x0123 + 0x3f00) & 0x7f7f); // finite: exponent never all ones
BF16_BITS[0] = 0x7fc0; // NaN
BF16_BITS[14] = 0xffc1; // -NaN with payload
BF16_BITS[20] = 0x7f80; // +Inf
BF16_BITS[36] = 0xff80; // -Inf
BF16_BITS[5] = 0x0001; // subnormal
// f32: 37 elements, 1e6 overflows f16, 65520 rounds to Inf in f16, 65504 is f16's max
const F32_VALUES = Array.from({ length: 37 }, (_, i) => (i - 18) * 0.375 + 1 / (i + 1));
F32_VALUES[3] = Number.NaN;
F32_VALUES[9] = Number.POSITIVE_INFINITY;
F32_VALUES[10] = -1e6;
F32_VALUES[11] = 65520;
F32_VALUES[12] = 65504;
F32_VALUES[36] = Number.NEGATIVE_INFINITY;
F32_VALUES[30] = 1e-8; // underflows to an f16 subnormal or zero
// f16: 37 elements
const F16_BITS = Array.from({ length: 37 }, (_, i) => (i * 0x0457 + 0x1000) & 0x7bff); // exponent never all ones
F16_BITS[1] = 0x7e00; // NaN
F16_BITS[2] = 0xfc00; // -Inf
F16_BITS[29] = 0x7c00; // +Inf
F16_BITS[30] = 0x7c01; // NaN, smallest payload
F16_BITS[31] = 0x0003; // subnormal

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "b158-float-task-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const PREFIX = 13; // the tensor starts at an odd offset in its weights file

interface Run {
  readonly result: number | undefined;
  readonly written: Uint8Array;
  readonly sha256: string;
  readonly slot: PayloadSlot;
}

/** Writes `tensor` at PREFIX in a weights file between junk bytes, runs the task into a slot of a second file, returns what landed. */
async function run(tensor: Uint8Array, fields: { sourceDtype: string; elementBytes: number; target: PlainLayout; chunkBytes: number; outBytes: number }, open: (path: string) => Promise<ByteSource> = fileSource): Promise<Run> {
  const weights = join(dir, "model.safetensors");
  const file = new Uint8Array(PREFIX + tensor.byteLength + 7).fill(0x7f); // 0x7f7f...: NaN-like junk if read by mistake
  file.set(tensor, PREFIX);
  writeFileSync(weights, file);
  const task: FloatTask = { name: "t", path: weights, fileOffset: PREFIX, byteLength: tensor.byteLength, ...fields };
  const output = join(dir, "out");
  const position = 64;
  writeFileSync(output, new Uint8Array(position + fields.outBytes + 16).fill(0xee));
  const fd = openSync(output, "r+");
  const source = await open(weights);
  try {
    const slot: PayloadSlot = { fd, output, tensor: "t", position, length: fields.outBytes, padding: 16 };
    const sink = new SlotWriter(slot);
    const result = await runFloatTask(task, source, sink);
    const sha256 = sink.finish();
    expect(sink.damaged).toBe(false);
    const written = new Uint8Array(readFileSync(output)).slice(position, position + fields.outBytes);
    return { result, written, sha256, slot };
  } finally {
    await source.close();
    closeSync(fd);
  }
}

describe("runFloatTask", () => {
  const CASES = [
    { label: "bf16 -> bf16 (copy)", input: U16(BF16_BITS), sourceDtype: "BF16", elementBytes: 2, target: "bf16", outSize: 2, nonFinite: 4 },
    { label: "bf16 -> f32", input: U16(BF16_BITS), sourceDtype: "BF16", elementBytes: 2, target: "f32", outSize: 4, nonFinite: 4 },
    { label: "f32 -> f16", input: F32(F32_VALUES), sourceDtype: "F32", elementBytes: 4, target: "f16", outSize: 2, nonFinite: 5 },
    { label: "f16 -> f32", input: U16(F16_BITS), sourceDtype: "F16", elementBytes: 2, target: "f32", outSize: 4, nonFinite: 4 },
    { label: "f32 -> bf16", input: F32(F32_VALUES), sourceDtype: "F32", elementBytes: 4, target: "bf16", outSize: 2, nonFinite: 3 },
  ] as const;

  // 37 elements: 30 bytes (15 16-bit elements, 3 chunks) / 7 f32 elements (28 bytes, 6 chunks); 31 rounds down to a whole element;
  // 1 is below one element; a chunk larger than the tensor reads it at once
  const CHUNKS = [30, 31, 1, 4096] as const;

  for (const c of CASES) {
    it.each(CHUNKS)(`${c.label}, chunkBytes %i: the bytes convertFloats gives for the whole tensor, and their NaN/Inf count`, async (chunkBytes) => {
      const outBytes = 37 * c.outSize;
      const { result, written, sha256 } = await run(c.input, { sourceDtype: c.sourceDtype, elementBytes: c.elementBytes, target: c.target, chunkBytes, outBytes });
      const expected = convertFloats(c.input.slice(), c.sourceDtype, c.target);
      expect(expected.byteLength).toBe(outBytes);
      expect(Buffer.compare(written, expected)).toBe(0);
      expect(sha256).toBe(sha(expected));
      expect(nonFiniteOf(expected, c.target)).toBe(c.nonFinite);
      expect(result).toBe(c.nonFinite);
    });
  }

  it("a copy leaves the bytes alone, NaN payloads and signs included", async () => {
    const { written } = await run(U16(BF16_BITS), { sourceDtype: "BF16", elementBytes: 2, target: "bf16", chunkBytes: 30, outBytes: 74 });
    expect([...new Uint16Array(written.buffer, written.byteOffset, 37)]).toEqual(BF16_BITS);
  });

  it("reads through read() where the source has no readSync", async () => {
    const input = F32(F32_VALUES);
    const memory = async (path: string) => memorySource(path, new Uint8Array(readFileSync(path)));
    const { result, written } = await run(input, { sourceDtype: "F32", elementBytes: 4, target: "f16", chunkBytes: 28, outBytes: 74 }, memory);
    expect(Buffer.compare(written, convertFloats(input.slice(), "F32", "f16"))).toBe(0);
    expect(result).toBe(5);
  });

  it("a non-float target copies the bytes and returns undefined", async () => {
    const input = Uint8Array.from({ length: 101 }, (_, i) => (i * 37) & 0xff);
    input[50] = 0xff;
    input[51] = 0x7f; // NaN bits as f16 / bf16 would be, but these are bytes
    const { result, written, sha256 } = await run(input, { sourceDtype: "U8", elementBytes: 1, target: "u8", chunkBytes: 10, outBytes: 101 });
    expect(result).toBeUndefined();
    expect([...written]).toEqual([...input]);
    expect(sha256).toBe(sha(input));
  });

  it("an empty float tensor writes nothing and counts 0", async () => {
    const { result, sha256 } = await run(new Uint8Array(0), { sourceDtype: "F32", elementBytes: 4, target: "f16", chunkBytes: 16, outBytes: 0 });
    expect(result).toBe(0);
    expect(sha256).toBe(sha(new Uint8Array(0)));
  });
});
