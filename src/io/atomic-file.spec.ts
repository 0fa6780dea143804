import { readSync, writeSync } from "node:fs";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AtomicFile } from "./atomic-file.js";

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "b158-atomic-"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe("AtomicFile", () => {
  it("the target appears, whole, only at publish(); the temp file is gone", async () => {
    const dir = await mkdtemp(join(root, "publish-"));
    const target = join(dir, "out.bin");
    const file = await AtomicFile.create(target);
    await file.write(Uint8Array.of(1, 2, 3), 0);
    await file.write(Uint8Array.of(9), 10);
    await file.finish(12);
    expect(await readdir(dir)).toEqual([expect.stringMatching(/^\.out\.bin\..*\.partial$/)]);
    await file.publish();
    expect(await readdir(dir)).toEqual(["out.bin"]);
    expect([...(await readFile(target))]).toEqual([1, 2, 3, 0, 0, 0, 0, 0, 0, 0, 9, 0]);
  });

  it("refuses an existing target without force, and leaves it as it was", async () => {
    const target = join(root, "exists.bin");
    await writeFile(target, "precious");
    await expect(AtomicFile.create(target)).rejects.toMatchObject({ code: "E_OUTPUT_EXISTS" });
    expect(await readFile(target, "utf8")).toBe("precious");
  });

  it("its descriptor takes positional writes and reads from other code (as conversion workers use it)", async () => {
    const dir = await mkdtemp(join(root, "fd-"));
    const file = await AtomicFile.create(join(dir, "out.bin"));
    writeSync(file.fd, Uint8Array.of(7, 8), 0, 2, 4);
    const back = new Uint8Array(2);
    expect(readSync(file.fd, back, 0, 2, 4)).toBe(2);
    expect([...back]).toEqual([7, 8]);
    await file.finish(6);
    await file.publish();
    expect([...(await readFile(join(dir, "out.bin")))]).toEqual([0, 0, 0, 0, 7, 8]);
  });

  it("flushes early while writing goes on; the bytes are the same, and a flush after finish() is a no-op", async () => {
    const dir = await mkdtemp(join(root, "flush-"));
    const file = await AtomicFile.create(join(dir, "out.bin"));
    const chunk = new Uint8Array(1 << 20).fill(5);
    for (let i = 0; i < 8; i++) {
      await file.write(chunk, i * chunk.byteLength);
      file.flushSoFar(); // at most one in flight: calls while one runs are dropped
    }
    await file.finish(8 * chunk.byteLength);
    file.flushSoFar();
    await file.publish();
    const written = await readFile(join(dir, "out.bin"));
    expect(written.byteLength).toBe(8 << 20);
    expect(written.every((b) => b === 5)).toBe(true);
  });

  it("abort() during an early flush removes the temp file and leaves no target", async () => {
    const dir = await mkdtemp(join(root, "abort-"));
    const file = await AtomicFile.create(join(dir, "out.bin"));
    await file.write(new Uint8Array(1 << 20).fill(1), 0);
    file.flushSoFar();
    await file.abort();
    await file.abort();
    expect(await readdir(dir)).toEqual([]);
  });
});
