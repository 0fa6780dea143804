import { fileSource } from "../io/byte-source.js";
import { SlotWriter, type PayloadSlot } from "../formats/b158/slot.js";
import { runFloatTask, type FloatTask } from "./float-task.js";
import type { TensorScale } from "../pack/scales.js";
import { readBack, type PayloadScan } from "./payload-scan.js";
import { runTernaryTask, type TernaryTask } from "./task.js";
import type { PackedCheck } from "./validate-b158.js";

/**
 * What the pool runs (pool.ts): one tensor's conversion. The thread that makes the payload writes
 * it into its slot of the output, hashing it on the way, then reads it back from the file and
 * scans it, so validation of the finished file need not read any payload again.
 */
export type PoolJob = { readonly kind: "ternary"; readonly task: TernaryTask; readonly slot: PayloadSlot } | { readonly kind: "float"; readonly task: FloatTask; readonly slot: PayloadSlot };

/** A payload in place: what it hashed to written and read back, and what was learned making it. */
export interface WrittenPayload {
  /** sha256 of the bytes written: the header's entry. */
  readonly sha256: string;
  /** The payload as read back from the file (its own sha256, zero padding, NaN/Inf of a fallback). */
  readonly readBack: PayloadScan;
  /** Ternary tensors: the scale, one value or per group (also for a fallback payload, which does not store it). */
  readonly scale?: TensorScale;
  /** Layout payloads: what decoding the packed bytes gave. */
  readonly check?: PackedCheck;
  /** Float tensors: the NaN/Inf count of the bytes written. */
  readonly nonFinite?: number;
}

/** Runs one job on the calling thread (a worker's, or this one's when inline). */
export async function runJob(job: PoolJob): Promise<WrittenPayload> {
  const source = await fileSource(job.task.path);
  try {
    const sink = new SlotWriter(job.slot);
    if (job.kind === "float") {
      const nonFinite = await runFloatTask(job.task, source, sink);
      const sha256 = sink.finish();
      return { sha256, readBack: readBack(job.slot, sha256, job.task.target, false), ...(nonFinite === undefined ? {} : { nonFinite }) };
    }
    const { encoding } = job.task;
    const result = await runTernaryTask(job.task, source);
    sink.write(result.payload);
    const sha256 = sink.finish();
    // a fallback payload is floats made here: the read-back counts its NaN/Inf
    const layout = encoding.kind === "layout" ? encoding.params.layout : encoding.dtype;
    return { sha256, readBack: readBack(job.slot, sha256, layout, true), scale: result.scale, ...(result.check === undefined ? {} : { check: result.check }) };
  } finally {
    await source.close();
  }
}
