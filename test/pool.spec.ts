import { closeSync, openSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { PoolJob } from "../src/convert/jobs.js";

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

async function floatJob(name: string, fd: number): Promise<PoolJob> {
  const source = join(root, `${name}.bin`);
  await writeFile(source, new Uint8Array(4096).fill(1));
  return {
    kind: "float",
    task: { name, path: source, fileOffset: 0, byteLength: 4096, sourceDtype: "U8", elementBytes: 1, target: "u8", chunkBytes: 1024 },
    slot: { fd, output: join(root, "out.b158"), tensor: name, position: 0, length: 4096, padding: 0 },
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
