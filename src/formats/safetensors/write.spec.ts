import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { expectB158Error } from "../../../test/support/expect-error.js";
import { memorySource } from "../../io/byte-source.js";
import { DTYPE_BYTES, type Dtype } from "./dtypes.js";
import { readSafetensorsHeader, readTensorBytes, readTensorChunks } from "./read.js";
import { encodeSafetensors, encodeSafetensorsHeader, writeSafetensorsFile, type TensorToWrite } from "./write.js";

const hex = (text: string) => Uint8Array.from(text.replace(/\s+/g, "").match(/../g)!, (b) => parseInt(b, 16));
const u8 = (name: string, bytes: number[], shape = [bytes.length]): TensorToWrite => ({ name, dtype: "U8", shape, data: Uint8Array.from(bytes) });

/** Parses a written file back by hand (independently of read.ts) into its header length, raw JSON text and data. */
function split(bytes: Uint8Array): { n: number; text: string; json: Record<string, unknown>; data: Uint8Array } {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  const text = new TextDecoder().decode(bytes.subarray(8, 8 + n));
  return { n, text, json: JSON.parse(text) as Record<string, unknown>, data: bytes.subarray(8 + n) };
}

describe("safetensors writer", () => {
  it("writes the exact bytes of a one-tensor file (header space-padded to 8)", () => {
    const bytes = encodeSafetensors([u8("w", [7, 9])]);
    const json = '{"w":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}'; // 52 bytes -> padded to 56
    const expected = new Uint8Array(8 + 56 + 2);
    expected[0] = 56;
    expected.set(new TextEncoder().encode(json), 8);
    expected.fill(0x20, 8 + json.length, 64);
    expected.set([7, 9], 64);
    expect([...bytes]).toEqual([...expected]);
  });

  it("writes golden bytes for metadata plus two tensors, in the order given", () => {
    const bf16 = { name: "b", dtype: "BF16" as const, shape: [2], data: Uint8Array.from([0x80, 0x3f, 0x00, 0xc0]) }; // 1.0, -2.0
    const bytes = encodeSafetensors([bf16, u8("a", [1, 2, 3], [1, 3])], { metadata: { format: "pt" } });
    // u64 144, then {"__metadata__":{"format":"pt"},"b":{...,"data_offsets":[0,4]},"a":{...,"data_offsets":[4,7]}} (140 bytes) + 4 spaces, then 7 data bytes
    const golden = hex(`
      9000000000000000 7b225f5f6d657461646174615f5f223a7b22666f726d6174
      223a227074227d2c2262223a7b226474797065223a2242463136222c22736861
      7065223a5b325d2c22646174615f6f666673657473223a5b302c345d7d2c2261
      223a7b226474797065223a225538222c227368617065223a5b312c335d2c2264
      6174615f6f666673657473223a5b342c375d7d7d 20202020 803f00c0 010203`);
    expect(Buffer.from(bytes).toString("hex")).toBe(Buffer.from(golden).toString("hex"));
  });

  it("sort: true orders header entries and data by name", () => {
    const { text, data } = split(encodeSafetensors([u8("b", [2]), u8("a", [1]), u8("c", [3])], { sort: true }));
    expect(text.trimEnd()).toBe(
      '{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"b":{"dtype":"U8","shape":[1],"data_offsets":[1,2]},"c":{"dtype":"U8","shape":[1],"data_offsets":[2,3]}}',
    );
    expect([...data]).toEqual([1, 2, 3]);
  });

  it("keeps the caller's order even for integer-like names and __proto__", () => {
    const names = ["z", "10", "2", "__proto__", "a"];
    const { text } = split(encodeSafetensors(names.map((name, i) => u8(name, [i]))));
    const keys = [...text.matchAll(/"([^"]+)":\{"dtype"/g)].map((m) => m[1]);
    expect(keys).toEqual(names);
  });

  it("invariants: N is a multiple of 8, padding is spaces, offsets are contiguous from 0 and cover the data", () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.record({ name: fc.string({ minLength: 1, maxLength: 12 }), dtype: fc.constantFrom<Dtype>("F32", "BF16", "U8", "I64", "BOOL"), shape: fc.array(fc.integer({ min: 0, max: 4 }), { maxLength: 3 }) }), {
          selector: (t) => t.name,
          maxLength: 6,
        }).filter((ts) => ts.every((t) => t.name !== "__metadata__")),
        fc.option(fc.dictionary(fc.string({ maxLength: 6 }), fc.string({ maxLength: 6 })), { nil: undefined }),
        (specs, metadata) => {
          const tensors = specs.map((s) => ({ ...s, data: new Uint8Array(s.shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[s.dtype]).fill(0xab) }));
          const bytes = encodeSafetensors(tensors, metadata === undefined ? {} : { metadata });
          const { n, text, json, data } = split(bytes);
          expect(n % 8).toBe(0);
          expect(text.length - text.trimEnd().length).toBeLessThan(8);
          expect(bytes.subarray(8, 8 + n).subarray(new TextEncoder().encode(text.trimEnd()).byteLength).every((b) => b === 0x20)).toBe(true);
          expect(json.__metadata__).toEqual(metadata);
          let end = 0;
          for (const t of tensors) {
            const entry = Object.getOwnPropertyDescriptor(json, t.name)!.value as { dtype: string; shape: number[]; data_offsets: [number, number] };
            expect(entry).toEqual({ dtype: t.dtype, shape: t.shape, data_offsets: [end, end + t.data.byteLength] });
            end += t.data.byteLength;
          }
          expect(data.byteLength).toBe(end);
          expect(encodeSafetensorsHeader(tensors, metadata === undefined ? {} : { metadata })).toEqual(bytes.subarray(0, 8 + n));
        },
      ),
      { numRuns: 80 },
    );
  });

  it("accepts scalars ([] is one element) and empty tensors", () => {
    const { json, data } = split(encodeSafetensors([{ name: "s", dtype: "F32", shape: [], data: new Uint8Array(4) }, u8("e", [], [0, 5])]));
    expect(json).toEqual({ s: { dtype: "F32", shape: [], data_offsets: [0, 4] }, e: { dtype: "U8", shape: [0, 5], data_offsets: [4, 4] } });
    expect(data.byteLength).toBe(4);
  });

  it("round-trips random tensors through the strict reader, in memory and in chunks", async () => {
    const dtypes: Dtype[] = ["F32", "F16", "BF16", "U8", "I8", "I64", "F64", "BOOL"];
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ dtype: fc.constantFrom(...dtypes), shape: fc.array(fc.integer({ min: 0, max: 5 }), { maxLength: 3 }), seed: fc.integer({ min: 0, max: 255 }) }), { maxLength: 6 }),
        fc.boolean(),
        async (specs, sort) => {
          const tensors = specs.map((s, i) => {
            const n = s.shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[s.dtype];
            return { name: `t${i}.weight`, dtype: s.dtype, shape: s.shape, data: Uint8Array.from({ length: n }, (_, j) => (j * 31 + s.seed) & 0xff) };
          });
          const bytes = encodeSafetensors(tensors, { metadata: { format: "pt" }, sort });
          const source = memorySource("mem.safetensors", bytes);
          const header = await readSafetensorsHeader(source);
          expect(header.metadata).toEqual({ format: "pt" });
          expect(header.tensors).toHaveLength(tensors.length);
          for (const t of tensors) {
            const read = header.tensors.find((h) => h.name === t.name)!;
            expect(read.dtype).toBe(t.dtype);
            expect(read.shape).toEqual(t.shape);
            expect([...(await readTensorBytes(source, read))]).toEqual([...t.data]);
            const chunks: number[] = [];
            for await (const chunk of readTensorChunks(source, read, 5)) {
              expect(chunk.byteLength % DTYPE_BYTES[t.dtype]).toBe(0);
              chunks.push(...chunk);
            }
            expect(chunks).toEqual([...t.data]);
          }
        },
      ),
      { numRuns: 60 },
    );
  });

  it("refuses bad input with stable codes", async () => {
    await expectB158Error(() => encodeSafetensors([{ name: "w", dtype: "F32", shape: [3], data: new Uint8Array(8) }]), "E_SAFETENSORS_BYTE_LENGTH");
    await expectB158Error(() => encodeSafetensors([u8("w", [1]), u8("w", [1])]), "E_SAFETENSORS_DUPLICATE");
    await expectB158Error(() => encodeSafetensors([u8("__metadata__", [1])]), "E_SAFETENSORS_DUPLICATE");
    await expectB158Error(() => encodeSafetensors([u8("w", [1, 1], [-1, -1])]), "E_SAFETENSORS_SHAPE");
    await expectB158Error(() => encodeSafetensors([u8("w", [1], [0.5, 2])]), "E_SAFETENSORS_SHAPE");
    await expectB158Error(() => encodeSafetensors([{ name: "w", dtype: "Q4" as Dtype, shape: [1], data: new Uint8Array(1) }]), "E_SAFETENSORS_DTYPE");
    await expectB158Error(() => encodeSafetensorsHeader([{ name: "w", dtype: "F64", shape: [2 ** 40, 2 ** 20], data: new Uint8Array(0) }]), "E_SAFETENSORS_OVERFLOW");
    await expectB158Error(() => encodeSafetensors([], { metadata: { format: 1 as unknown as string } }), "E_SAFETENSORS_METADATA");
  });
});

describe("writeSafetensorsFile", () => {
  let root: string;
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), "b158-st-write-"));
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it("writes exactly encodeSafetensors' bytes, replaces an existing file and leaves no temp file", async () => {
    const path = join(root, "model.safetensors");
    await writeFile(path, "old");
    const tensors = [u8("b", [1, 2]), { name: "a", dtype: "F32" as const, shape: [2], data: new Uint8Array(Float32Array.of(1, -1).buffer) }];
    await writeSafetensorsFile(path, tensors, { metadata: { format: "pt" }, sort: true });
    expect(Buffer.compare(await readFile(path), encodeSafetensors(tensors, { metadata: { format: "pt" }, sort: true }))).toBe(0);
    expect(await readdir(root)).toEqual(["model.safetensors"]);
  });

  it("fails with E_IO when the folder is missing, and validates before touching the disk", async () => {
    await expectB158Error(writeSafetensorsFile(join(root, "missing", "x.safetensors"), [u8("w", [1])]), "E_IO", "x.safetensors");
    await expectB158Error(writeSafetensorsFile(join(root, "bad.safetensors"), [u8("w", [1], [2])]), "E_SAFETENSORS_BYTE_LENGTH");
    expect((await readdir(root)).filter((f) => f !== "model.safetensors")).toEqual([]);
  });
});
