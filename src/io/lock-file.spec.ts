import { spawnSync } from "node:child_process";
import { mkdtemp, readdir, readFile, rm, utimes, writeFile } from "node:fs/promises";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { acquireLock } from "./lock-file.js";

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "b158-lock-"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

/** A pid that has just exited, so no process has it. */
function deadPid(): number {
  return Number(spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"], { encoding: "utf8" }).stdout);
}

describe("lock files shared by processes", () => {
  it("one holder at a time: the second waits for the first's release", async () => {
    const path = join(await mkdtemp(join(root, "wait-")), "blob.lock");
    const first = await acquireLock(path);
    expect(JSON.parse(await readFile(path, "utf8"))).toMatchObject({ pid: process.pid, host: hostname() });
    const waits: unknown[] = [];
    let second = false;
    const pending = acquireLock(path, { pollMs: 10, onWait: (owner) => waits.push(owner) }).then((lock) => {
      second = true;
      return lock;
    });
    await new Promise((resolve) => setTimeout(resolve, 60));
    expect(second).toBe(false);
    expect(waits).toEqual([expect.objectContaining({ pid: process.pid })]);
    await first.release();
    const lock = await pending;
    await lock.release();
    expect(await readdir(join(path, ".."))).toEqual([]);
  });

  it("a lock whose process is gone on this host is taken over", async () => {
    const path = join(await mkdtemp(join(root, "stale-")), "blob.lock");
    await writeFile(path, JSON.stringify({ pid: deadPid(), host: hostname(), token: "dead" }));
    const lock = await acquireLock(path, { pollMs: 10 });
    expect(JSON.parse(await readFile(path, "utf8")).pid).toBe(process.pid);
    await lock.release();
    expect(await readdir(join(path, ".."))).toEqual([]);
  });

  it("a lock of another host, or of a live process, is waited for, never taken", async () => {
    for (const owner of [{ pid: deadPid(), host: `${hostname()}-elsewhere`, token: "other" }, { pid: process.ppid, host: hostname(), token: "live" }]) {
      const path = join(await mkdtemp(join(root, "foreign-")), "blob.lock");
      await writeFile(path, JSON.stringify(owner));
      const controller = new AbortController();
      setTimeout(() => controller.abort("SIGTERM"), 80);
      await expect(acquireLock(path, { pollMs: 10, signal: controller.signal })).rejects.toMatchObject({ code: "E_INTERRUPTED" });
      expect(JSON.parse(await readFile(path, "utf8"))).toEqual(owner);
    }
  });

  it("an unreadable lock is a writer that has not written yet, until it is old", async () => {
    const path = join(await mkdtemp(join(root, "empty-")), "blob.lock");
    await writeFile(path, "");
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 50);
    await expect(acquireLock(path, { pollMs: 10, signal: controller.signal })).rejects.toMatchObject({ code: "E_INTERRUPTED" });
    const old = new Date(Date.now() - 60_000);
    await utimes(path, old, old);
    const lock = await acquireLock(path, { pollMs: 10 });
    await lock.release();
  });

  it("release() leaves a lock that is no longer this holder's", async () => {
    const path = join(await mkdtemp(join(root, "release-")), "blob.lock");
    const lock = await acquireLock(path);
    await writeFile(path, JSON.stringify({ pid: process.ppid, host: hostname(), token: "someone else" }));
    await lock.release();
    expect(JSON.parse(await readFile(path, "utf8")).token).toBe("someone else");
  });

  it("many takers of one stale lock: exactly one holds it at a time", async () => {
    const path = join(await mkdtemp(join(root, "race-")), "blob.lock");
    await writeFile(path, JSON.stringify({ pid: deadPid(), host: hostname(), token: "dead" }));
    let holders = 0;
    let most = 0;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        const lock = await acquireLock(path, { pollMs: 1 });
        holders++;
        most = Math.max(most, holders);
        await new Promise((resolve) => setTimeout(resolve, 5));
        holders--;
        await lock.release();
      }),
    );
    expect(most).toBe(1);
  });
});
