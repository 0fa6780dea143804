import { createHash } from "node:crypto";
import { closeSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { expectB158Error } from "../../../test/support/expect-error.js";
import { validateB158 } from "../../convert/validate-b158.js";
import { packLayout } from "../../pack/codec.js";
import { encodeHeader, type B158Header, type EmbeddedFile } from "./header.js";
import { openB158File } from "./read.js";
import { readSlot, SlotWriter, type PayloadSlot } from "./slot.js";
import { DATA_ALIGNMENT, PAYLOAD_ALIGNMENT } from "./spec.js";
import { B158Writer, embeddedBytes, type PlannedTensor } from "./write.js";

const sha = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");
const FILL = 0xaa;

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "b158-slot-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A file of `size` FILL bytes, open for reading and writing; a padding of zeros cannot be there by accident. */
function filledFile(size: number, flags = "r+"): { path: string; fd: number } {
  const path = join(dir, `out-${Math.random().toString(16).slice(2)}`);
  writeFileSync(path, new Uint8Array(size).fill(FILL));
  return { path, fd: openSync(path, flags) };
}

describe("SlotWriter", () => {
  it("writes the chunks in order at the slot's position, hashes exactly the payload, zeroes the padding over old bytes", () => {
    // padding over 4096 bytes: the zeros go out in more than one write
    const slot0 = { tensor: "t", position: 100, length: 300, padding: 5000 };
    const { path, fd } = filledFile(100 + 300 + 5000 + 50);
    try {
      const payload = Uint8Array.from({ length: 300 }, (_, i) => (i * 13 + 1) % 251 || 1);
      const writer = new SlotWriter({ fd, output: path, ...slot0 });
      for (const [from, to] of [[0, 1], [1, 1], [1, 128], [128, 299], [299, 300]] as const) writer.write(payload.subarray(from, to));
      expect(writer.finish()).toBe(sha(payload));
    } finally {
      closeSync(fd);
    }
    const file = new Uint8Array(readFileSync(path));
    expect(file.byteLength).toBe(5450); // nothing written past the slot's end
    expect(file.subarray(0, 100).every((b) => b === FILL)).toBe(true);
    expect([...file.subarray(100, 400)]).toEqual(Array.from({ length: 300 }, (_, i) => (i * 13 + 1) % 251 || 1));
    expect(file.subarray(400, 5400).every((b) => b === 0)).toBe(true);
    expect(file.subarray(5400).every((b) => b === FILL)).toBe(true);
  });

  it("reads every write and the padding back: a slot that holds what was written is not damaged", () => {
    const { path, fd } = filledFile(64 + 8 + 1024 * 1024);
    try {
      // a write over the read-back buffer's 1 MiB is compared piece by piece
      const payload = new Uint8Array(1024 * 1024 + 5);
      for (let i = 0; i < payload.length; i++) payload[i] = (i * 7) % 253;
      const writer = new SlotWriter({ fd, output: path, tensor: "t", position: 64, length: payload.byteLength, padding: 3 });
      writer.write(payload.subarray(0, 10));
      writer.write(payload.subarray(10));
      expect(writer.finish()).toBe(sha(payload));
      expect([writer.verified, writer.damaged]).toEqual([true, false]);
    } finally {
      closeSync(fd);
    }
  });

  it("a write that lands elsewhere than its position is read back as damaged (O_APPEND ignores positions)", () => {
    const { path, fd } = filledFile(32, "a+");
    try {
      const writer = new SlotWriter({ fd, output: path, tensor: "t", position: 8, length: 4, padding: 0 });
      writer.write(Uint8Array.of(1, 2, 3, 4)); // appended at 32: bytes 8..11 still hold FILL
      expect(writer.finish()).toBe(sha(Uint8Array.of(1, 2, 3, 4)));
      expect(writer.damaged).toBe(true);
    } finally {
      closeSync(fd);
    }
  });

  it("padding that does not read back as zeros is bad padding (the payload is not damaged)", () => {
    const { path, fd } = filledFile(32, "a+");
    try {
      const writer = new SlotWriter({ fd, output: path, tensor: "t", position: 32, length: 0, padding: 4 });
      // appended zeros land at 32.. in this file, so they read back: then only a mismatch elsewhere counts
      writer.finish();
      expect([writer.damaged, writer.badPadding]).toEqual([false, false]);
      const late = new SlotWriter({ fd, output: path, tensor: "u", position: 0, length: 0, padding: 4 });
      late.finish(); // appended at 36: bytes 0..3 still hold FILL
      expect([late.damaged, late.badPadding]).toEqual([false, true]);
    } finally {
      closeSync(fd);
    }
  });

  it("an empty payload with no padding hashes to the sha256 of nothing and writes nothing", () => {
    const { path, fd } = filledFile(16);
    try {
      expect(new SlotWriter({ fd, output: path, tensor: "e", position: 8, length: 0, padding: 0 }).finish()).toBe(sha(new Uint8Array(0)));
    } finally {
      closeSync(fd);
    }
    expect(new Uint8Array(readFileSync(path)).every((b) => b === FILL)).toBe(true);
  });

  it("refuses a write past the planned length (E_INTERNAL) and writes none of it", async () => {
    const { path, fd } = filledFile(64);
    try {
      const writer = new SlotWriter({ fd, output: path, tensor: "t", position: 8, length: 10, padding: 6 });
      writer.write(new Uint8Array(6).fill(1));
      await expectB158Error(() => writer.write(new Uint8Array(5).fill(2)), "E_INTERNAL");
      // the refused bytes were not written: the slot still holds 6 ones then the old bytes
      const file = new Uint8Array(readFileSync(path));
      expect([...file.subarray(8, 18)]).toEqual([1, 1, 1, 1, 1, 1, FILL, FILL, FILL, FILL]);
      // and not counted: the rest still fits exactly
      writer.write(new Uint8Array(4).fill(3));
      expect(writer.finish()).toBe(sha(Uint8Array.from([1, 1, 1, 1, 1, 1, 3, 3, 3, 3])));
    } finally {
      closeSync(fd);
    }
  });

  it("finish() with fewer bytes than planned is E_INTERNAL and leaves the padding alone", async () => {
    const { path, fd } = filledFile(64);
    try {
      const writer = new SlotWriter({ fd, output: path, tensor: "short", position: 0, length: 10, padding: 6 });
      writer.write(new Uint8Array(9));
      const error = await expectB158Error(() => writer.finish(), "E_INTERNAL");
      expect(error.details).toEqual({ tensor: "short" });
    } finally {
      closeSync(fd);
    }
    expect(new Uint8Array(readFileSync(path)).subarray(9, 16).every((b) => b === FILL)).toBe(true);
  });

  it("a finished payload takes no more writes and cannot be finished again (E_INTERNAL)", async () => {
    const { path, fd } = filledFile(64);
    try {
      const writer = new SlotWriter({ fd, output: path, tensor: "done", position: 0, length: 4, padding: 4 });
      writer.write(new Uint8Array(4).fill(1));
      writer.finish();
      await expectB158Error(() => writer.finish(), "E_INTERNAL");
      await expectB158Error(() => writer.write(new Uint8Array(0)), "E_INTERNAL");
    } finally {
      closeSync(fd);
    }
  });

  it("a write to a closed descriptor is E_IO naming the output", async () => {
    const { path, fd } = filledFile(64);
    closeSync(fd);
    const writer = new SlotWriter({ fd, output: path, tensor: "t", position: 0, length: 4, padding: 0 });
    const error = await expectB158Error(() => writer.write(Uint8Array.of(1, 2, 3, 4)), "E_IO", path);
    expect(error.details).toMatchObject({ file: path, errno: "EBADF" });
  });

  it("a write to a read-only descriptor is E_IO naming the output, also for the padding", async () => {
    const { path, fd } = filledFile(64, "r");
    try {
      await expectB158Error(() => new SlotWriter({ fd, output: path, tensor: "t", position: 0, length: 4, padding: 0 }).write(Uint8Array.of(1, 2, 3, 4)), "E_IO", path);
      // an empty payload writes nothing until its padding
      await expectB158Error(() => new SlotWriter({ fd, output: path, tensor: "t", position: 0, length: 0, padding: 8 }).finish(), "E_IO", path);
    } finally {
      closeSync(fd);
    }
    expect(new Uint8Array(readFileSync(path)).every((b) => b === FILL)).toBe(true);
  });
});

describe("readSlot", () => {
  const bytes = Uint8Array.from({ length: 40 }, (_, i) => i + 1);

  async function withFile(run: (slot: PayloadSlot) => Promise<void> | void): Promise<void> {
    const path = join(dir, "f");
    writeFileSync(path, bytes);
    const fd = openSync(path, "r");
    try {
      await run({ fd, output: path, tensor: "t", position: 10, length: 12, padding: 4 });
    } finally {
      closeSync(fd);
    }
  }

  it("reads payload and padding bytes into the given buffer, relative to the slot", async () => {
    await withFile((slot) => {
      const into = new Uint8Array(32);
      const all = readSlot(slot, 0, 16, into);
      expect(all.buffer).toBe(into.buffer);
      expect([...all]).toEqual([...bytes.subarray(10, 26)]);
      expect([...readSlot(slot, 12, 4, into)]).toEqual([23, 24, 25, 26]); // the padding
      expect(readSlot(slot, 16, 0, into).byteLength).toBe(0);
    });
  });

  it("refuses reads outside payload + padding, or larger than the buffer (E_INTERNAL)", async () => {
    await withFile(async (slot) => {
      const into = new Uint8Array(32);
      await expectB158Error(() => readSlot(slot, 0, 17, into), "E_INTERNAL");
      await expectB158Error(() => readSlot(slot, 13, 4, into), "E_INTERNAL");
      await expectB158Error(() => readSlot(slot, 17, 0, into), "E_INTERNAL");
      await expectB158Error(() => readSlot(slot, -1, 2, into), "E_INTERNAL");
      await expectB158Error(() => readSlot(slot, 0, 8, new Uint8Array(7)), "E_INTERNAL");
      await expectB158Error(() => readSlot(slot, 0, -1, into), "E_INTERNAL");
    });
  });

  it("a file shorter than the slot is E_IO naming the output", async () => {
    await withFile(async (slot) => {
      const error = await expectB158Error(() => readSlot({ ...slot, position: 30 }, 0, 16, new Uint8Array(16)), "E_IO", slot.output);
      expect(error.message).toMatch(/shorter/);
      // a read wholly inside the file is still fine from that position
      expect([...readSlot({ ...slot, position: 30 }, 0, 10, new Uint8Array(16))]).toEqual([...bytes.subarray(30, 40)]);
    });
  });
});

describe("B158Writer slots", () => {
  const TERNARY_SHAPE = [2, 256] as const;
  const SCALE = 0.5;
  const tq2 = { layout: "tq2_0", blockSize: 256 } as const;
  const codes = Int8Array.from({ length: 512 }, (_, i) => ((i * 7) % 3) - 1);
  const ternaryPayload = packLayout(tq2, codes, TERNARY_SHAPE, SCALE);

  const norm = new Uint8Array(new Float32Array([1, 0.5, -2, 3.25, 8]).buffer); // 20 bytes: padded to 64
  const other = new Uint8Array(new Uint16Array([0x3c00, 0x4000, 0xbc00]).buffer); // f16 [1, 2, -1]

  const planned: PlannedTensor[] = [
    { name: "model.norm.weight", gguf_name: "output_norm.weight", shape: [5], role: "norm", layout: "f32", params: {}, source_dtype: "F32", length: norm.byteLength, ternary: false },
    { name: "model.layers.0.mlp.down_proj.weight", gguf_name: null, shape: [...TERNARY_SHAPE], role: "ternary-linear", layout: "tq2_0", params: { block_size: 256 }, source_dtype: "BF16", length: ternaryPayload.byteLength, ternary: true },
    { name: "model.extra", gguf_name: null, shape: [3], role: "other", layout: "f16", params: {}, source_dtype: "F16", length: other.byteLength, ternary: false },
  ];
  const payloads = [norm, ternaryPayload, other];

  const draft: Omit<B158Header, "tensors"> = {
    format: "b158",
    model: { family: "generic", architecture: null, config: null },
    files: { "config.json": new TextEncoder().encode("{}") },
    provenance: {
      source: { kind: "local" },
      files: [{ name: "model.safetensors", size: 1234 }],
      options: { layout: "tq2_0", i2s_variant: "x86", fallback: null, float_dtype: null, embeddings: null, ternarize: [], kernel_config_sha256: null },
    },
    tool: { name: "b158", version: "0.0.0-test" },
  };

  const create = () => B158Writer.create(join(dir, "out.b158"), draft, planned);

  it("slots are in order, 64-aligned, disjoint, and each one's padding reaches the next", async () => {
    const writer = await create();
    try {
      expect(ternaryPayload.byteLength).toBe(132);
      expect(writer.dataOffset % DATA_ALIGNMENT).toBe(0);
      const slots = planned.map((_, i) => writer.slot(i));
      expect(slots[0]!.position).toBe(writer.dataOffset);
      for (const [i, slot] of slots.entries()) {
        expect(slot.tensor).toBe(planned[i]!.name);
        expect(slot.length).toBe(planned[i]!.length);
        expect(slot.output).toBe(join(dir, "out.b158"));
        expect((slot.position - writer.dataOffset) % PAYLOAD_ALIGNMENT).toBe(0);
        expect(slot.padding).toBeGreaterThanOrEqual(0);
        expect(slot.padding).toBeLessThan(PAYLOAD_ALIGNMENT);
        const next = slots[i + 1];
        if (next !== undefined) {
          expect(next.position).toBeGreaterThan(slot.position);
          expect(slot.position + slot.length + slot.padding).toBe(next.position);
        }
      }
      expect(slots.map((s) => s.padding)).toEqual([44, 60, 0]);
      expect(slots[2]!.position + slots[2]!.length).toBe(writer.fileSize);
      expect(new Set(slots.map((s) => s.fd)).size).toBe(1);
      await expectB158Error(() => writer.slot(3), "E_INTERNAL");
      await expectB158Error(() => writer.slot(-1), "E_INTERNAL");
    } finally {
      await writer.abort();
    }
  });

  it("record() refuses an unknown index, a second record, a missing scale and a scale for a plain array", async () => {
    const writer = await create();
    try {
      const hash = "ab".repeat(32);
      await expectB158Error(() => writer.record(3, hash), "E_INTERNAL");
      await expectB158Error(() => writer.record(-1, hash), "E_INTERNAL");
      await expectB158Error(() => writer.record(1, hash), "E_INTERNAL"); // ternary, no scale
      await expectB158Error(() => writer.record(0, hash, 1), "E_INTERNAL"); // plain, with a scale
      // the refused records left the indices unrecorded
      writer.record(0, hash);
      writer.record(1, hash, SCALE);
      await expectB158Error(() => writer.record(0, hash), "E_INTERNAL");
      await expectB158Error(() => writer.record(1, hash, SCALE), "E_INTERNAL");
    } finally {
      await writer.abort();
    }
  });

  it("payloads written through their slots and recorded round-trip through finish, publish and the reader", async () => {
    const path = join(dir, "out.b158");
    const writer = await create();
    try {
      // write out of order, in several chunks, as workers do
      const hashes: string[] = [];
      for (const i of [2, 0, 1]) {
        const sink = new SlotWriter(writer.slot(i));
        const bytes = payloads[i]!;
        for (let at = 0; at < bytes.byteLength; at += 24) sink.write(bytes.subarray(at, at + 24));
        hashes[i] = sink.finish();
        expect(hashes[i]).toBe(sha(bytes));
      }
      writer.record(0, hashes[0]!);
      writer.record(2, hashes[2]!);
      await expectB158Error(writer.finish(), "E_INTERNAL"); // payload 1 not recorded yet
      writer.record(1, hashes[1]!, SCALE);
      const done = await writer.finish();
      expect(done.tempPath).toBe(writer.temporaryPath);
      expect(done.size).toBe(writer.fileSize);
      expect(done.dataOffset).toBe(writer.dataOffset);
      await writer.publish();
    } finally {
      await writer.abort();
    }

    expect((await readFile(path)).byteLength).toBe(writer.fileSize);
    const file = await openB158File(path);
    try {
      expect(file.tensors.map((t) => t.name)).toEqual(planned.map((t) => t.name));
      for (const [i, t] of file.tensors.entries()) {
        expect(t.fileOffset).toBe(writer.slot(i).position);
        expect(t.sha256).toBe(sha(payloads[i]!));
        expect(Buffer.compare(await file.readPayload(t.name), payloads[i]!)).toBe(0);
      }
      expect(file.tensors[1]!.scale).toBe(SCALE);
      expect("scale" in file.tensors[0]!).toBe(false);
      expect([...(await file.decodeTernary(planned[1]!.name)).codes]).toEqual([...codes]);
      expect([...(await file.decodeFloat32("model.extra"))]).toEqual([1, 2, -1]);
      expect(await file.verify()).toEqual([]);
    } finally {
      await file.close();
    }
    const validation = await validateB158(path);
    expect(validation.diagnostics).toEqual([]);
    expect(validation.ok).toBe(true);
    expect(validation.sha256).toBe(sha(new Uint8Array(await readFile(path))));
  });

  /** Every payload written and recorded, then finish() (which writes the header). */
  const writeAll = async (writer: B158Writer) => {
    for (const [i, bytes] of payloads.entries()) {
      const sink = new SlotWriter(writer.slot(i));
      sink.write(bytes);
      writer.record(i, sink.finish(), planned[i]!.ternary ? SCALE : undefined);
    }
    return writer.finish();
  };
  /** An embedded file read from a source in 1000-byte chunks, as convert streams tokenizer.json. */
  const streamed = (bytes: Uint8Array, now: () => Uint8Array = () => bytes): EmbeddedFile => ({
    ...embeddedBytes(bytes),
    async *chunks() {
      const current = now();
      for (let at = 0; at < current.byteLength; at += 1000) yield current.subarray(at, at + 1000);
    },
  });
  const tokenizer = Uint8Array.from({ length: 70_000 }, (_, i) => (i * 13) & 0xff);

  it("streams embedded files into the header: the same bytes as encoding them in memory", async () => {
    const path = join(dir, "streamed.b158");
    const writer = await B158Writer.create(path, { ...draft, files: { ...draft.files, "tokenizer.json": streamed(tokenizer) } }, planned);
    try {
      const done = await writeAll(writer);
      await writer.publish();
      const file = new Uint8Array(await readFile(path));
      const header = file.subarray(64, 64 + done.headerLength);
      const read = await openB158File(path);
      try {
        expect(Buffer.from(read.header.files["tokenizer.json"]!)).toEqual(Buffer.from(tokenizer));
        expect(Buffer.from(encodeHeader(read.header))).toEqual(Buffer.from(header));
      } finally {
        await read.close();
      }
      expect((await validateB158(path)).ok).toBe(true);
    } finally {
      await writer.abort();
    }
  });

  it("an embedded file that changed after create() is E_SOURCE_CHANGED naming it, and nothing is published", async () => {
    const changed = tokenizer.slice();
    changed[65_000] = changed[65_000]! ^ 1;
    for (const now of [() => changed, () => tokenizer.subarray(0, 69_999), () => Uint8Array.from([...tokenizer, 0])]) {
      const path = join(dir, "changed.b158");
      const writer = await B158Writer.create(path, { ...draft, files: { "tokenizer.json": streamed(tokenizer, now) } }, planned);
      try {
        await expectB158Error(writeAll(writer), "E_SOURCE_CHANGED", "tokenizer.json");
      } finally {
        await writer.abort();
      }
      await expect(readFile(path)).rejects.toThrow(/ENOENT/);
    }
  });

  it("finish() before every payload is recorded is E_INTERNAL", async () => {
    const writer = await create();
    try {
      await expectB158Error(writer.finish(), "E_INTERNAL");
      writer.record(0, sha(norm));
      await expectB158Error(writer.finish(), "E_INTERNAL");
    } finally {
      await writer.abort();
    }
  });
});
