import { parentPort } from "node:worker_threads";
import { B158Error } from "../errors.js";
import { fileSource } from "../io/byte-source.js";
import { runTernaryTask, type TernaryTask } from "./task.js";

/** A conversion worker: runs ternary tasks sent by the pool (src/convert/pool.ts), one at a time. */
parentPort!.on("message", async ({ id, task }: { id: number; task: TernaryTask }) => {
  try {
    const source = await fileSource(task.path);
    try {
      const result = await runTernaryTask(task, source);
      parentPort!.postMessage({ id, result }, [result.payload.buffer as ArrayBuffer]);
    } finally {
      await source.close();
    }
  } catch (error) {
    const e = error instanceof B158Error ? error.toJSON() : { code: "E_INTERNAL", message: String((error as Error)?.stack ?? error), details: {} };
    parentPort!.postMessage({ id, error: e });
  }
});
