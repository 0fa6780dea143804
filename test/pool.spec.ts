import { closeSync, openSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { PoolJob } from "../src/convert/jobs.js";
import { closeDirect, openDirect } from "../src/io/direct-io.js";

// The compiled pool (npm test builds it first): from the TypeScript sources it runs jobs inline,
// with no threads to stop. Imported by path, so type checking does not need dist/.
const compiled = fileURLToPath(new URL("../dist/convert/pool.js", import.meta.url));
const { TaskPool } = (await import(compiled)) as typeof import("../src/convert/pool.js");

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "b158-pool-"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

async function floatJob(name: string, fd: number, bytes = 4096, position = 0, directFd?: number): Promise<PoolJob> {
  const source = join(root, `${name}.bin`);
  await writeFile(source, new Uint8Array(bytes).fill(1));
  return {
    kind: "float",
    task: { name, path: source, fileOffset: 0, byteLength: bytes, sourceDtype: "U8", elementBytes: 1, target: "u8", chunkBytes: 1024 },
    slot: { fd, output: join(root, "out.b158"), tensor: name, position, length: bytes, padding: 0, ...(directFd === undefined ? {} : { directFd }) },
  };
}

describe("the conversion worker pool (real worker threads)", () => {
  it("runs a job on a worker: the payload lands in its slot, hashed and read back", async () => {
    const fd = openSync(join(root, "ok.out"), "w+");
    const pool = new TaskPool(1);
    try {
      expect(pool.threads).toBe(1);
      const written = await pool.write(await floatJob("ok", fd));
      expect(written.readBack).toMatchObject({ damaged: false, sha256: written.sha256 });
    } finally {
      await pool.close();
      closeSync(fd);
    }
  });

  it("an exclusive job has its worker to itself: a job queued after it waits for it rather than sharing the thread", async () => {
    const path = join(root, "exclusive.out");
    const fd = openSync(path, "w+");
    // the long job's stages go to the disk past the page cache, so it waits on I/O (where a job sharing its thread runs)
    const directFd = openDirect(path);
    if (directFd === undefined) {
      closeSync(fd);
      return; // tmpfs: writes through the cache never wait, so jobs on one thread do not interleave
    }
    // one worker with two slots; a long job then a short one
    const long = await floatJob("long", fd, 32 << 20, 0, directFd);
    const short = await floatJob("short", fd, 4096, 32 << 20);
    const order = async (exclusive: boolean) => {
      const pool = new TaskPool(1, 2);
      try {
        const finished: string[] = [];
        await Promise.all([pool.write(long, { exclusive }).then(() => finished.push("long")), pool.write(short).then(() => finished.push("short"))]);
        return finished;
      } finally {
        await pool.close();
      }
    };
    try {
      // sharing, the short job slips in between the long one's writes and ends first
      expect(await order(false)).toEqual(["short", "long"]);
      expect(await order(true)).toEqual(["long", "short"]);
    } finally {
      closeSync(fd);
      closeDirect(directFd);
    }
  }, 20_000);

  it("close(reason) fails the jobs not done and every later one with that reason, and waits for the threads", async () => {
    const fd = openSync(join(root, "stop.out"), "w+");
    const pool = new TaskPool(2);
    const reason = new Error("interrupted");
    try {
      const job = await floatJob("stop", fd);
      // the workers cannot answer within this turn of the event loop: both jobs are still pending
      const running = [pool.write(job), pool.write(job), pool.write(job)];
      const closed = pool.close(reason);
      for (const result of running) await expect(result).rejects.toBe(reason);
      await closed;
      await expect(pool.write(job)).rejects.toBe(reason);
      await pool.close(); // again: nothing left to stop
    } finally {
      closeSync(fd);
    }
  }, 10_000); // jobs left pending would never settle: fail fast rather than at the suite's timeout
});
