import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { expectB158Error } from "../../../test/support/expect-error.js";
import { memorySource } from "../../io/byte-source.js";
import { npyHeader, NpyWriter, readNpy, readNpyFile, writeNpy } from "./npy.js";

/**
 * What NumPy 2.4.6 writes for np.save(f, np.arange(6, dtype="<f4").reshape(2, 3) - 2.5): the
 * interoperability anchor (the header bytes and the data both).
 */
const NUMPY_2x3 =
  "934e554d5059010076007b276465736372273a20273c6634272c2027666f727472616e5f6f72646572273a2046616c73652c20277368617065273a2028322c2033292c207d202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020200a" +
  "000020c00000c0bf000000bf0000003f0000c03f00002040";

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "b158-npy-"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe(".npy v1.0", () => {
  it("writes the bytes NumPy writes, and reads NumPy's file", async () => {
    const values = Float32Array.from([0, 1, 2, 3, 4, 5], (v) => v - 2.5);
    const path = join(root, "a.npy");
    await writeNpy(path, values, [2, 3]);
    expect(Buffer.from(await readFile(path)).toString("hex")).toBe(NUMPY_2x3);
    const read = await readNpy(memorySource("numpy.npy", Buffer.from(NUMPY_2x3, "hex")));
    expect(read.shape).toEqual([2, 3]);
    expect(Array.from(read.values)).toEqual(Array.from(values));
  });

  it("headers are 64-byte aligned and round-trip any shape and values", async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: 5 }), fc.integer({ min: 1, max: 7 }), fc.integer(), async (rows, cols, seed) => {
        expect(npyHeader([rows, cols]).byteLength % 64).toBe(0);
        const values = Float32Array.from({ length: rows * cols }, (_, i) => Math.fround(Math.sin(seed + i) * 1e3));
        const path = join(root, `p-${rows}-${cols}.npy`);
        await writeNpy(path, values, [rows, cols]);
        const read = await readNpyFile(path);
        expect(read.shape).toEqual([rows, cols]);
        expect(Array.from(read.values)).toEqual(Array.from(values));
      }),
      { numRuns: 25 },
    );
  });

  it("reading a file closes it: no descriptor is left for the garbage collector (Linux: /proc/self/fd)", async () => {
    const openDescriptors = async () => (await readdir("/proc/self/fd").catch(() => undefined))?.length;
    if ((await openDescriptors()) === undefined) return; // no /proc here
    const path = join(await mkdtemp(join(root, "close-")), "m.npy");
    await writeNpy(path, Float32Array.of(1, 2, 3, 4), [2, 2]);
    await readNpyFile(path); // whatever the first read opens for good (lazy handles) is opened here
    const before = await openDescriptors();
    for (let i = 0; i < 20; i++) await readNpyFile(path);
    expect(await openDescriptors()).toBe(before);
  });

  it("streams rows, and an aborted writer leaves nothing behind", async () => {
    const dir = await mkdtemp(join(root, "stream-"));
    const writer = await NpyWriter.create(join(dir, "s.npy"), [3, 2]);
    await writer.write(Float32Array.of(1, 2));
    await writer.write(Float32Array.of(3, 4, 5, 6));
    await writer.commit();
    expect(Array.from((await readNpyFile(join(dir, "s.npy"))).values)).toEqual([1, 2, 3, 4, 5, 6]);
    const aborted = await NpyWriter.create(join(dir, "t.npy"), [2, 2]);
    await aborted.write(Float32Array.of(1, 2));
    await aborted.abort();
    expect(await readdir(dir)).toEqual(["s.npy"]);
  });

  it.each([
    ["a bad magic", (b: Buffer) => b.write("X", 1)],
    ["version 2.0", (b: Buffer) => (b[6] = 2)],
    ["float64 values", (b: Buffer) => b.write("<f8", b.indexOf("<f4"), "latin1")],
    ["big-endian float32", (b: Buffer) => b.write(">f4", b.indexOf("<f4"), "latin1")],
    ["Fortran order", (b: Buffer) => b.write("True, ", b.indexOf("False"), "latin1")],
    ["a header length past the end", (b: Buffer) => b.writeUInt16LE(0xffff, 8)],
  ])("rejects %s with E_NPY", async (_, damage) => {
    const bytes = Buffer.from(NUMPY_2x3, "hex");
    damage(bytes);
    await expectB158Error(readNpy(memorySource("bad.npy", bytes)), "E_NPY");
  });

  it("rejects data that does not fill the shape exactly, and 3-D arrays", async () => {
    const good = Buffer.from(NUMPY_2x3, "hex");
    await expectB158Error(readNpy(memorySource("short.npy", good.subarray(0, good.length - 4))), "E_NPY");
    await expectB158Error(readNpy(memorySource("long.npy", Buffer.concat([good, Buffer.alloc(4)]))), "E_NPY");
    const threeD = Buffer.from(good.toString("latin1").replace("(2, 3), }", "(1, 2, 3),"), "latin1");
    await expectB158Error(readNpy(memorySource("3d.npy", threeD)), "E_NPY");
    const path = join(root, "tiny.npy");
    await writeFile(path, Buffer.from("\x93NUMP"));
    await expectB158Error(readNpyFile(path), "E_NPY");
  });
});
