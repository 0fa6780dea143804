import { createHash } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { closeSync, openSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileSource, memorySource, readAhead } from "../io/byte-source.js";
import { countNonFinite as scanCount } from "../model/scan.js";
import { countNonFinite } from "./payload-scan.js";
import { Lease, Scratch } from "./scratch.js";

const sha = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");

describe("payload scans", () => {
  it.each([
    ["f32", "F32"],
    ["f16", "F16"],
    ["bf16", "BF16"],
  ] as const)("%s NaN/Inf count equals the checkpoint scan's, at any offset and length", (layout, dtype) => {
    const size = layout === "f32" ? 4 : 2;
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 0xffff }), { maxLength: 300, size: "max" }), fc.integer({ min: 0, max: 3 }), (halves, offset) => {
        // bias towards all-ones exponents so non-finite values are common
        const raw = Uint16Array.from(halves, (h, i) => (i % 3 === 0 ? h | (layout === "f16" ? 0x7c00 : 0x7f80) : h));
        const bytes = new Uint8Array(raw.buffer, 0, Math.floor(raw.byteLength / size) * size);
        const backing = new Uint8Array(offset + bytes.byteLength);
        backing.set(bytes, offset);
        expect(countNonFinite(backing.subarray(offset), layout)).toBe(scanCount(bytes, dtype));
      }),
      { numRuns: 300 },
    );
  });

  it("readAhead yields the bytes in order, with and without reused buffers", async () => {
    const bytes = Uint8Array.from({ length: 1000 }, (_, i) => i * 7);
    for (const reuse of [false, true]) {
      const seen: number[] = [];
      for await (const chunk of readAhead(memorySource("m", bytes), 10, 977, 64, reuse)) seen.push(...chunk);
      expect(seen).toEqual([...bytes.subarray(10, 987)]);
    }
  });
});

describe("scratch buffers", () => {
  it("a released buffer is reused by the next lease that fits, the largest few are kept", () => {
    const scratch = new Scratch(2);
    const first = new Lease(scratch);
    const a = first.bytes(100);
    const b = first.codes(50);
    first.release();
    const second = new Lease(scratch);
    expect(second.bytes(80).buffer).toBe(a.buffer);
    expect(second.codes(40).buffer).toBe(b.buffer);
    expect(second.bytes(500).buffer).not.toBe(a.buffer);
    second.release();
    const third = new Lease(scratch);
    expect(third.bytes(50).buffer.byteLength).toBe(100); // best fit among the kept 500 and 100
  });
});

describe("file reads into given buffers", () => {
  it("read and readSync fill `into` and return a view of it; a too-small `into` gets a fresh array", async () => {
    const dir = await mkdtemp(join(tmpdir(), "b158-read-"));
    try {
      const bytes = Uint8Array.from({ length: 300 }, (_, i) => i % 251);
      await writeFile(join(dir, "f"), bytes);
      const source = await fileSource(join(dir, "f"));
      const into = new Uint8Array(128);
      const a = await source.read(100, 100, into);
      expect(a.buffer).toBe(into.buffer);
      expect([...a]).toEqual([...bytes.subarray(100, 200)]);
      const b = source.readSync!(7, 128, into);
      expect(b.buffer).toBe(into.buffer);
      expect([...b]).toEqual([...bytes.subarray(7, 135)]);
      const c = source.readSync!(0, 200, into);
      expect(c.buffer).not.toBe(into.buffer);
      expect([...c]).toEqual([...bytes.subarray(0, 200)]);
      expect(() => source.readSync!(250, 100)).toThrow(/outside/);
      await source.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
