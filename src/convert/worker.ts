import { parentPort } from "node:worker_threads";
import { B158Error } from "../errors.js";
import { runJob, type PoolJob } from "./jobs.js";

/** A conversion worker: runs jobs sent by the pool (src/convert/pool.ts), one at a time. */
parentPort!.on("message", async ({ id, job }: { id: number; job: PoolJob }) => {
  try {
    parentPort!.postMessage({ id, result: await runJob(job) });
  } catch (error) {
    const e = error instanceof B158Error ? error.toJSON() : { code: "E_INTERNAL", message: String((error as Error)?.stack ?? error), details: {} };
    parentPort!.postMessage({ id, error: e });
  }
});
