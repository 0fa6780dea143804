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

  it("an exclusive job has a worker to itself when there are two: a short job waits for a free slot rather than share its thread", async () => {
    const path = join(root, "exclusive.out");
    const fd = openSync(path, "w+");
    // long jobs' stages go to the disk past the page cache, so they wait on I/O (where a job sharing their thread runs)
    const directFd = openDirect(path);
    if (directFd === undefined) {
      closeSync(fd);
      return; // tmpfs: writes through the cache never wait, so jobs on one thread do not interleave
    }
    const MiB = 1 << 20;
    const longs = await Promise.all(["long-a", "long-b", "long-c"].map((name, i) => floatJob(name, fd, 32 * MiB, i * 32 * MiB, directFd)));
    const short = await floatJob("short", fd, 4096, 96 * MiB);
    const order = async (threads: number, exclusive: boolean) => {
      const pool = new TaskPool(threads, 2);
      try {
        const finished: string[] = [];
        const jobs = [pool.write(longs[0]!, { exclusive }), ...longs.slice(1, 1 + (threads - 1) * 2).map((job) => pool.write(job)), pool.write(short)];
        await Promise.all(jobs.map((job, i) => job.then(() => finished.push(i === jobs.length - 1 ? "short" : "long"))));
        return finished;
      } finally {
        await pool.close();
      }
    };
    try {
      // two workers, the first long job exclusive: the other two take the second worker's slots, so the short one waits for one to end
      expect((await order(2, true))[0]).toBe("long");
      // not exclusive: the short job shares a thread with a long one and slips in between its writes
      expect((await order(2, false))[0]).toBe("short");
      // one worker: nothing else would take the rest, so an exclusive job shares its thread all the same
      expect((await order(1, true))[0]).toBe("short");
    } finally {
      closeSync(fd);
      closeDirect(directFd);
    }
  }, 30_000);

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
