import { fileSource } from "../io/byte-source.js";
import { scanPayloads, type PayloadRange, type PayloadScan } from "./payload-scan.js";
import { runTernaryTask, type TernaryResult, type TernaryTask } from "./task.js";

/** What the pool runs (pool.ts): a ternary tensor's conversion, or a scan of written payloads. */
export type PoolJob = { readonly kind: "ternary"; readonly task: TernaryTask } | { readonly kind: "scan"; readonly path: string; readonly ranges: readonly PayloadRange[] };

export type Outcome = TernaryResult | PayloadScan[];

/** Runs one job on the calling thread (a worker's, or this one's when inline). */
export async function runJob(job: PoolJob): Promise<Outcome> {
  const source = await fileSource(job.kind === "ternary" ? job.task.path : job.path);
  try {
    return job.kind === "ternary" ? await runTernaryTask(job.task, source) : await scanPayloads(source, job.ranges);
  } finally {
    await source.close();
  }
}
