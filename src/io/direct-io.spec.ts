import { createHash } from "node:crypto";
import { closeSync, constants, openSync, readFileSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { convertCheckpoint } from "../convert/convert.js";
import { SlotWriter, type PayloadSlot } from "../formats/b158/slot.js";
import { closeDirect, DIRECT_BLOCK, openDirect } from "./direct-io.js";
import { fileSha256 } from "./file-hash.js";

const sha = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");
const EXAMPLE = fileURLToPath(new URL("../../fixtures/example", import.meta.url));
const FILL = 0xaa;

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "b158-direct-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Deterministic pseudo-random integers (xorshift32). */
function random(seed: number): (below: number) => number {
  let s = seed >>> 0 || 1;
  return (below) => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s % below;
  };
}

/** Whether this test folder's filesystem takes O_DIRECT (tmpfs does not): the direct path is then exercised for real. */
function directHere(): boolean {
  const probe = join(dir, "probe");
  writeFileSync(probe, new Uint8Array(DIRECT_BLOCK));
  const fd = openDirect(probe);
  closeDirect(fd);
  return fd !== undefined;
}

/**
 * Writes `payloads` into slots of one file of FILL bytes, each in random chunks (with write/finish,
 * or writeAsync/finishAsync: `mode` "async"); returns the file and what each writer said.
 */
async function writeSlots(slots: readonly (Omit<PayloadSlot, "fd" | "output" | "directFd"> & { payload: Uint8Array })[], size: number, mode: "cached" | "direct" | "async", next: (below: number) => number) {
  const path = join(dir, `out-${mode}`);
  writeFileSync(path, new Uint8Array(size).fill(FILL));
  const fd = openSync(path, "r+");
  const directFd = mode === "cached" ? -1 : (openDirect(path) ?? -1);
  try {
    const results = [];
    for (const { payload, ...slot } of slots) {
      const writer = new SlotWriter({ ...slot, fd, directFd, output: path });
      for (let at = 0; at < payload.byteLength; ) {
        const length = Math.min(payload.byteLength - at, 1 + next(mode === "async" ? (3 << 20) : 3 * DIRECT_BLOCK));
        if (mode === "async") await writer.writeAsync(payload.subarray(at, at + length));
        else writer.write(payload.subarray(at, at + length));
        at += length;
      }
      const sha256 = mode === "async" ? await writer.finishAsync() : writer.finish();
      results.push({ sha256, damaged: writer.damaged, badPadding: writer.badPadding, directBytes: writer.directBytes });
    }
    return { bytes: new Uint8Array(readFileSync(path)), results };
  } finally {
    closeSync(fd);
    closeDirect(directFd);
  }
}

describe("direct I/O (O_DIRECT) payload writes", () => {
  it("writes the same bytes as the page cache path for slots at any position and length; whole blocks go direct", async () => {
    const supported = directHere();
    for (let seed = 1; seed <= 12; seed++) {
      const next = random(seed);
      // contiguous slots as a .b158 lays them out: 64-aligned positions, padding up to the next one
      const slots: (Omit<PayloadSlot, "fd" | "output" | "directFd"> & { payload: Uint8Array })[] = [];
      let position = DIRECT_BLOCK * (1 + next(2)) + 64 * next(64);
      for (let i = 0, count = 1 + next(5); i < count; i++) {
        const length = next(4) === 0 ? next(200) : next(6 * DIRECT_BLOCK) + (next(2) === 0 ? 0 : 2 * (1 << 20));
        const padding = (64 - (length % 64)) % 64;
        const payload = Uint8Array.from({ length }, () => 1 + next(255));
        slots.push({ tensor: `t${i}`, position, length, padding, payload });
        position += length + padding;
      }
      const size = position + 100;
      const cached = await writeSlots(slots, size, "cached", random(seed));
      const direct = await writeSlots(slots, size, "direct", random(seed + 100));
      // writeAsync: chunks up to 3 MiB, so stages fill, swap and overlap
      const overlapped = await writeSlots(slots, size, "async", random(seed + 200));
      expect(Buffer.compare(direct.bytes, cached.bytes)).toBe(0);
      expect(Buffer.compare(overlapped.bytes, cached.bytes)).toBe(0);
      slots.forEach((slot, i) => {
        expect(cached.results[i]!.sha256).toBe(sha(slot.payload));
        expect(cached.results[i]!.directBytes).toBe(0);
        // the slot's whole blocks, between its first and last block boundary
        const end = slot.position + slot.length + slot.padding;
        const first = Math.ceil(slot.position / DIRECT_BLOCK) * DIRECT_BLOCK;
        const last = Math.floor(end / DIRECT_BLOCK) * DIRECT_BLOCK;
        for (const written of [direct, overlapped]) {
          expect(written.results[i]!.sha256).toBe(sha(slot.payload));
          expect(written.results[i]!.damaged || written.results[i]!.badPadding).toBe(false);
          expect(written.results[i]!.directBytes).toBe(supported ? Math.max(0, last - first) : 0);
        }
      });
      // the file around the slots is untouched
      expect(direct.bytes.subarray(0, slots[0]!.position).every((b) => b === FILL)).toBe(true);
      expect(direct.bytes.subarray(position).every((b) => b === FILL)).toBe(true);
    }
  });

  it.each(["write", "writeAsync"] as const)("a direct write is not read back: the slot says so, and validation's hash finds one that landed elsewhere (%s)", async (how) => {
    if (!directHere()) return; // the page cache path has its own test of this (slot.spec.ts)
    const path = join(dir, "appended");
    writeFileSync(path, new Uint8Array(4 * DIRECT_BLOCK).fill(FILL));
    const fd = openSync(path, "r+");
    // O_APPEND makes every write go to the end of the file whatever position it names
    const directFd = openSync(path, constants.O_RDWR | constants.O_APPEND | (constants as Record<string, number>).O_DIRECT!);
    try {
      const payload = new Uint8Array(2 * DIRECT_BLOCK).fill(7);
      const writer = new SlotWriter({ fd, directFd, output: path, tensor: "t", position: DIRECT_BLOCK, length: payload.byteLength, padding: 0 });
      if (how === "write") writer.write(payload);
      else await writer.writeAsync(payload);
      expect(how === "write" ? writer.finish() : await writer.finishAsync()).toBe(sha(payload));
      expect(writer.directBytes).toBe(2 * DIRECT_BLOCK);
      // not read back, so not known damaged: the payload is left to validation (jobs.ts sends no read-back)
      expect([writer.verified, writer.damaged]).toEqual([false, false]);
      // which hashes the file's bytes at the slot: the header's hash (of what was written) does not match
      const held = readFileSync(path).subarray(DIRECT_BLOCK, 3 * DIRECT_BLOCK);
      expect(sha(held)).not.toBe(sha(payload));
    } finally {
      closeSync(fd);
      closeSync(directFd);
    }
  });

  it("a job whose payload goes direct reports the XXH64 of what it wrote instead of a read-back; one through the cache, a read-back", async () => {
    const { runJob } = await import("../convert/jobs.js");
    const { convertKernelsKind } = await import("../pack/wasm/kernels.js");
    const { xxh64 } = await import("../pack/xxh64.js");
    const supported = directHere();
    const bytes = Uint8Array.from({ length: 5 * DIRECT_BLOCK + 100 }, (_, i) => Math.imul(i, 2654435761) >>> 24);
    const source = join(dir, "source.bin");
    writeFileSync(source, bytes);
    const path = join(dir, "job.out");
    writeFileSync(path, new Uint8Array(8 * DIRECT_BLOCK));
    const fd = openSync(path, "r+");
    const directFd = openDirect(path) ?? -1;
    try {
      const task = { name: "t", path: source, fileOffset: 0, byteLength: bytes.byteLength, sourceDtype: "U8", elementBytes: 1, target: "u8", chunkBytes: 3000 } as const;
      const slot = { fd, output: path, tensor: "t", position: DIRECT_BLOCK + 60, length: bytes.byteLength, padding: 40 };
      const direct = await runJob({ kind: "float", task, slot: { ...slot, directFd } });
      const cached = await runJob({ kind: "float", task, slot });
      expect(readFileSync(path).subarray(slot.position, slot.position + bytes.byteLength)).toEqual(Buffer.from(bytes));
      expect([direct.sha256, cached.sha256]).toEqual([sha(bytes), sha(bytes)]);
      expect(cached.readBack).toMatchObject({ damaged: false, sha256: sha(bytes) });
      expect(cached.checksum).toBeUndefined();
      if (supported && convertKernelsKind() === "wasm-simd128") {
        expect(direct.readBack).toBeUndefined();
        expect(direct.checksum).toBe(xxh64(bytes).toString(16).padStart(16, "0"));
      } else {
        expect(direct.checksum).toBeUndefined();
      }
      // converted floats are made outside the arena: no checksum (and no slow TypeScript one), validation hashes them
      const floats = Float32Array.from({ length: bytes.byteLength / 4 }, (_, i) => Math.sin(i));
      const f32Source = join(dir, "source-f32.bin");
      writeFileSync(f32Source, new Uint8Array(floats.buffer));
      const halves = await runJob({
        kind: "float",
        task: { name: "h", path: f32Source, fileOffset: 0, byteLength: floats.byteLength, sourceDtype: "F32", elementBytes: 4, target: "f16", chunkBytes: 4096 },
        slot: { ...slot, length: floats.byteLength / 2, directFd },
      });
      expect([halves.checksum, supported ? halves.readBack : undefined]).toEqual([undefined, undefined]);
    } finally {
      closeSync(fd);
      if (directFd >= 0) closeDirect(directFd);
    }
  });

  it("hashes a file through direct reads exactly as through the cache, at every size around the block and chunk edges", async () => {
    for (const size of [0, 1, DIRECT_BLOCK - 1, DIRECT_BLOCK, DIRECT_BLOCK + 1, (8 << 20) - 1, 8 << 20, (8 << 20) + 1, (16 << 20) + DIRECT_BLOCK + 3]) {
      const path = join(dir, `hash-${size}`);
      const bytes = new Uint8Array(size);
      for (let i = 0; i < size; i++) bytes[i] = Math.imul(i + size, 2654435761) >>> 24;
      writeFileSync(path, bytes);
      expect(await fileSha256(path, { direct: true })).toBe(sha(bytes));
      expect(await fileSha256(path)).toBe(sha(bytes));
    }
  });

  it("a conversion writes the same file with and without direct I/O, and says how much went direct", async () => {
    const supported = directHere();
    const on = await convertCheckpoint(EXAMPLE, { layout: "i2_s", output: join(dir, "on.b158"), threads: 0, directIo: "on" });
    const off = await convertCheckpoint(EXAMPLE, { layout: "i2_s", output: join(dir, "off.b158"), threads: 0, directIo: "off" });
    const auto = await convertCheckpoint(EXAMPLE, { layout: "i2_s", output: join(dir, "auto.b158"), threads: 0 });
    expect(Buffer.compare(readFileSync(join(dir, "on.b158")), readFileSync(join(dir, "off.b158")))).toBe(0);
    expect(on.sha256).toBe(off.sha256);
    expect(on.sha256).toBe(sha(readFileSync(join(dir, "on.b158"))));
    expect(off.directIoBytes).toBe(0);
    expect(auto.directIoBytes).toBe(0); // the example is far below 64 MiB
    if (supported) expect(on.directIoBytes).toBeGreaterThan(0);
    else expect(on.directIoBytes).toBe(0);
  });
});
