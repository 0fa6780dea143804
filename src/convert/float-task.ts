import type { ByteSource } from "../io/byte-source.js";
import type { SlotWriter } from "../formats/b158/slot.js";
import type { PlainLayout } from "../formats/b158/spec.js";
import { convertFloats, type FloatLayout } from "./float-convert.js";
import { countNonFinite, isFloatLayout } from "./payload-scan.js";
import type { Arena } from "../pack/wasm/kernels.js";
import { Lease, Scratch } from "./scratch.js";

/**
 * One plain tensor's copy into the output (embeddings, norms, anything kept as an array): read in
 * chunks, re-encoded when its dtype changes, counted for NaN/Inf, written. It runs on a worker
 * like a ternary tensor, so the thread that reads the bytes also hashes and writes them.
 */
export interface FloatTask {
  readonly name: string;
  /** Path of the weights file (workers open it themselves). */
  readonly path: string;
  readonly fileOffset: number;
  readonly byteLength: number;
  readonly sourceDtype: string;
  readonly elementBytes: number;
  readonly target: PlainLayout;
  /** Bytes per read; bounds memory. */
  readonly chunkBytes: number;
}

const scratch = new Scratch(1);

/** Streams the tensor into `sink`; returns the NaN/Inf count of an f32/f16/bf16 payload. */
export async function runFloatTask(task: FloatTask, source: ByteSource, sink: SlotWriter, arena?: Arena): Promise<number | undefined> {
  const same = task.target === task.sourceDtype.toLowerCase();
  const floats = isFloatLayout(task.target) ? task.target : undefined;
  const step = Math.max(task.elementBytes, Math.floor(task.chunkBytes / task.elementBytes) * task.elementBytes);
  const lease = new Lease(scratch);
  try {
    const size = Math.min(step, Math.max(1, task.byteLength));
    // read into the arena, where the NaN/Inf count of a copied chunk runs in WebAssembly
    const buffer = arena === undefined ? lease.bytes(size) : arena.carve(size)[0]!;
    let nonFinite = 0;
    for (let offset = 0; offset < task.byteLength; offset += step) {
      const length = Math.min(step, task.byteLength - offset);
      const chunk = source.readSync !== undefined ? source.readSync(task.fileOffset + offset, length, buffer) : await source.read(task.fileOffset + offset, length, buffer);
      const out = same ? chunk : convertFloats(chunk, task.sourceDtype, task.target as FloatLayout);
      if (floats !== undefined) nonFinite += countNonFinite(out, floats, arena?.kernels);
      await sink.writeAsync(out);
    }
    return floats === undefined ? undefined : nonFinite;
  } finally {
    lease.release();
  }
}
