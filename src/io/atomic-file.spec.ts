import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { readSync, writeSync } from "node:fs";
import { lstat, mkdtemp, readdir, readFile, readlink, rm, symlink, writeFile } from "node:fs/promises";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { B158Error } from "../errors.js";
import { AtomicFile, checkOutputPath, partialPath, prepareOutput } from "./atomic-file.js";

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

describe("the output path, checked before any work", () => {
  const expectCode = async (promise: Promise<unknown>, code: string, mentions: string) => {
    const error = await promise.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(B158Error);
    expect((error as B158Error).code).toBe(code);
    expect((error as B158Error).exitCode).toBe(2);
    expect((error as B158Error).message).toContain(mentions);
    expect((error as B158Error).message).not.toContain(".partial");
  };

  it("a directory is E_OUTPUT_PATH, with or without force", async () => {
    const dir = await mkdtemp(join(root, "dir-"));
    await expectCode(checkOutputPath(dir), "E_OUTPUT_PATH", "is a directory");
    await expectCode(AtomicFile.create(dir, true), "E_OUTPUT_PATH", "is a directory");
    expect(await readdir(dir)).toEqual([]);
  });

  it("a missing folder is E_OUTPUT_PATH naming the folder, not the temp file", async () => {
    const folder = join(root, "no-such-folder");
    await expectCode(AtomicFile.create(join(folder, "out.b158")), "E_OUTPUT_PATH", `${folder} does not exist`);
  });

  it("a FIFO is refused even with force, and stays a FIFO", async () => {
    const dir = await mkdtemp(join(root, "fifo-"));
    const fifo = join(dir, "out.b158");
    execFileSync("mkfifo", [fifo]);
    await expectCode(AtomicFile.create(fifo, true), "E_OUTPUT_PATH", "is a FIFO");
    expect((await lstat(fifo)).isFIFO()).toBe(true);
    expect(await readdir(dir)).toEqual(["out.b158"]);
  });

  it("a link to a character device (/dev/null) is refused even with force; the link is left as it was", async () => {
    const dir = await mkdtemp(join(root, "chr-"));
    const link = join(dir, "out.b158");
    await symlink("/dev/null", link);
    await expectCode(AtomicFile.create(link, true), "E_OUTPUT_PATH", "is a character device");
    expect(await readlink(link)).toBe("/dev/null");
  });

  it.runIf(process.getuid?.() === 0)("as root, a character device node is refused even with force and stays a device", async () => {
    const dir = await mkdtemp(join(root, "mknod-"));
    const node = join(dir, "null");
    execFileSync("mknod", [node, "c", "1", "3"]);
    await expectCode(AtomicFile.create(node, true), "E_OUTPUT_PATH", "is a character device");
    expect((await lstat(node)).isCharacterDevice()).toBe(true);
  });

  it("something other than a regular file appearing at the target during the work is not replaced at publish()", async () => {
    const dir = await mkdtemp(join(root, "late-"));
    const target = join(dir, "out.b158");
    const file = await AtomicFile.create(target);
    await file.write(Uint8Array.of(1), 0);
    await file.finish(1);
    execFileSync("mkfifo", [target]);
    await expectCode(file.publish(), "E_OUTPUT_PATH", "is a FIFO");
    expect(await readdir(dir)).toEqual(["out.b158"]);
    expect((await lstat(target)).isFIFO()).toBe(true);
  });

  it("a regular file is replaced with force, and a link to one too (the link itself)", async () => {
    const dir = await mkdtemp(join(root, "force-"));
    const target = join(dir, "out.b158");
    await writeFile(target, "old");
    await expectCode(AtomicFile.create(target), "E_OUTPUT_EXISTS", target);
    const file = await AtomicFile.create(target, true);
    await file.write(Uint8Array.of(7), 0);
    await file.finish(1);
    await file.publish();
    expect([...(await readFile(target))]).toEqual([7]);
  });
});

describe("temp files a killed run left behind", () => {
  /** A pid that has just exited, so no process has it. */
  const deadPid = (): number => {
    const child = spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"], { encoding: "utf8" });
    return Number(child.stdout);
  };
  const host = createHash("sha256").update(hostname()).digest("hex").slice(0, 8);

  it("are named after the target and this process", () => {
    expect(partialPath("/x/model.b158")).toMatch(new RegExp(`^/x/\\.model\\.b158\\.b158-${host}-${process.pid}-[0-9a-f]{12}\\.partial$`));
    expect(partialPath("/x/model.gguf", ".b158")).toMatch(/\.b158\.partial$/);
  });

  it("of a process gone on this host are removed; others are named and left; other files are not touched", async () => {
    const dir = await mkdtemp(join(root, "stale-"));
    const target = join(dir, "model.b158");
    const dead = deadPid();
    const names = {
      dead: `.model.b158.b158-${host}-${dead}-0123456789ab.partial`,
      deadStaging: `..model.b158.b158-${host}-${dead}-0123456789ab.b158.partial.b158-${host}-${dead}-ba9876543210.partial`,
      live: `.model.b158.b158-${host}-${process.ppid}-0123456789ab.partial`,
      own: `.model.b158.b158-${host}-${process.pid}-0123456789ab.partial`,
      otherHost: `.model.b158.b158-00000000-${dead}-0123456789ab.partial`,
      legacy: ".model.b158.0123456789ab.partial",
      otherTarget: `.model2.b158.b158-${host}-${dead}-0123456789ab.partial`,
      unrelated: "model.b158.partial",
    };
    for (const name of Object.values(names)) await writeFile(join(dir, name), "x");
    const notes = await prepareOutput(target);
    const left = await readdir(dir);
    expect(left).not.toContain(names.dead);
    expect(left).not.toContain(names.deadStaging);
    for (const kept of [names.live, names.own, names.otherHost, names.legacy, names.otherTarget, names.unrelated]) expect(left).toContain(kept);
    expect(notes.every((n) => n.code === "W_STALE_PARTIAL" && n.severity === "warning")).toBe(true);
    const said = (name: string) => notes.find((n) => n.message.startsWith(join(dir, name)))?.message;
    expect(said(names.dead)).toContain("removed");
    expect(said(names.deadStaging)).toContain("removed");
    expect(said(names.live)).toContain(`process ${process.ppid}`);
    expect(said(names.otherHost)).toContain("another host");
    expect(said(names.legacy)).toContain("older b158");
    for (const quiet of [names.own, names.otherTarget, names.unrelated]) expect(said(quiet)).toBeUndefined();
  });
});
