import { fileSource } from "../io/byte-source.js";
import { directRange, SlotWriter, type PayloadSlot } from "../formats/b158/slot.js";
import { runFloatTask, type FloatTask } from "./float-task.js";
import type { TensorScale } from "../pack/scales.js";
import { PayloadChecksum } from "./checksum.js";
import { countNonFinite, isFloatLayout, type PayloadScan } from "./payload-scan.js";
import { returnArena, takeArena } from "../pack/wasm/kernels.js";
import { runTernaryTask, type TernaryTask } from "./task.js";
import type { PackedCheck } from "./validate-b158.js";

/**
 * What the pool runs (pool.ts): one tensor's conversion. The thread that makes the payload writes
 * it into its slot of the output, hashing it on the way; writes through the page cache are read
 * back at once and compared (slot.ts), so validation need not read those payloads again, and
 * direct writes are checked by validation's one pass over the finished file, against the XXH64
 * taken here of the bytes written (checksum.ts).
 */
export type PoolJob = { readonly kind: "ternary"; readonly task: TernaryTask; readonly slot: PayloadSlot } | { readonly kind: "float"; readonly task: FloatTask; readonly slot: PayloadSlot };

/** A payload in place: what it hashed to written and read back, and what was learned making it. */
export interface WrittenPayload {
  /** sha256 of the bytes written: the header's entry. */
  readonly sha256: string;
  /**
   * The payload as read back from the file, when all of it was (written through the cache; direct
   * writes are checked by validation instead, slot.ts): damaged unless every byte, padding included, read back
   * as written (then it hashes to `sha256`); NaN/Inf of a fallback payload, counted before writing.
   */
  readonly readBack?: PayloadScan;
  /**
   * XXH64 of the payload as written (checksum.ts), when some of it went direct and so was not read
   * back: validation checks the disk's bytes against it rather than hashing them with sha256.
   */
  readonly checksum?: string;
  /** Ternary tensors: the scale, one value or per group (also for a fallback payload, which does not store it). */
  readonly scale?: TensorScale;
  /** Layout payloads: what decoding the packed bytes gave. */
  readonly check?: PackedCheck;
  /** Float tensors: the NaN/Inf count of the bytes written. */
  readonly nonFinite?: number;
  /** Bytes of it written past the page cache (O_DIRECT, slot.ts). */
  readonly directBytes: number;
}

/** Runs one job on the calling thread (a worker's, or this one's when inline). */
export async function runJob(job: PoolJob): Promise<WrittenPayload> {
  const source = await fileSource(job.task.path);
  try {
    // payloads are made in this thread's arena and written from it before the arena is reused
    const arena = takeArena();
    try {
      const direct = directRange(job.slot);
      // payloads made outside the arena (a float conversion's output) are left to validation's sha256
      const checksum = arena.kernels !== undefined && direct.end > direct.start ? new PayloadChecksum(arena.kernels, undefined, true) : undefined;
      const sink = new SlotWriter(job.slot, checksum === undefined ? undefined : (bytes) => checksum.update(bytes));
      if (job.kind === "float") {
        const nonFinite = await runFloatTask(job.task, source, sink, arena);
        const sha256 = await sink.finishAsync();
        return { sha256, ...readBackOf(sink, sha256, 0, checksum), directBytes: sink.directBytes, ...(nonFinite === undefined ? {} : { nonFinite }) };
      }
      const { encoding } = job.task;
      const result = await runTernaryTask(job.task, source, arena);
      // a fallback payload is floats made here: its NaN/Inf count, of the bytes the read-back matched
      const layout = encoding.kind === "layout" ? encoding.params.layout : encoding.dtype;
      const nonFinite = isFloatLayout(layout) ? countNonFinite(result.payload, layout, arena.kernels) : 0;
      await sink.writeAsync(result.payload);
      const sha256 = await sink.finishAsync();
      return { sha256, ...readBackOf(sink, sha256, nonFinite, checksum), directBytes: sink.directBytes, scale: result.scale, ...(result.check === undefined ? {} : { check: result.check }) };
    } finally {
      returnArena(arena);
    }
  } finally {
    await source.close();
  }
}

/** The read-back's findings, for a payload that was read back whole; else its checksum, if taken. */
function readBackOf(sink: SlotWriter, sha256: string, nonFinite: number, checksum: PayloadChecksum | undefined): { readBack?: PayloadScan; checksum?: string } {
  if (sink.verified) return { readBack: { damaged: sink.damaged, badPadding: sink.badPadding, sha256, nonFinite } };
  return checksum === undefined || checksum.lost ? {} : { checksum: checksum.digest() };
}
