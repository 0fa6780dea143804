import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { B158Error } from "../../errors.js";
import { memorySource } from "../../io/byte-source.js";
import { DTYPE_BYTES, type Dtype } from "./dtypes.js";
import { readSafetensorsHeader, readTensorBytes, readTensorChunks } from "./read.js";
import { encodeSafetensors } from "./write.js";

describe("safetensors writer", () => {
  it("writes the exact bytes of a one-tensor file (header space-padded to 8)", () => {
    const bytes = encodeSafetensors([{ name: "w", dtype: "U8", shape: [2], data: Uint8Array.from([7, 9]) }]);
    const json = '{"w":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}'; // 52 bytes -> padded to 56
    const expected = new Uint8Array(8 + 56 + 2);
    expected[0] = 56;
    expected.set(new TextEncoder().encode(json), 8);
    expected.fill(0x20, 8 + json.length, 64);
    expected.set([7, 9], 64);
    expect([...bytes]).toEqual([...expected]);
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

  it("refuses data that does not match the shape, and duplicate names", () => {
    const bad = () => encodeSafetensors([{ name: "w", dtype: "F32", shape: [3], data: new Uint8Array(8) }]);
    expect(bad).toThrow(B158Error);
    try {
      bad();
    } catch (e) {
      expect((e as B158Error).code).toBe("E_SAFETENSORS_BYTE_LENGTH");
    }
    try {
      encodeSafetensors([
        { name: "w", dtype: "U8", shape: [1], data: new Uint8Array(1) },
        { name: "w", dtype: "U8", shape: [1], data: new Uint8Array(1) },
      ]);
      expect.unreachable();
    } catch (e) {
      expect((e as B158Error).code).toBe("E_SAFETENSORS_DUPLICATE");
    }
  });
});
