import { describe, expect, it } from "vitest";
import type { Checkpoint, CheckpointTensor } from "../checkpoint/open.js";
import { memorySource } from "../io/byte-source.js";
import { toF16Bits } from "../pack/float16.js";
import { countingSource } from "../../test/support/counting-source.js";
import { sampleTensor, SAMPLE_BYTES } from "./sample.js";

/** A one-tensor checkpoint over F16 bytes, counting what planning reads. */
function oneTensor(M: number, K: number, value: (i: number) => number) {
  const bits = Uint16Array.from({ length: M * K }, (_, i) => toF16Bits(value(i)));
  const source = countingSource(memorySource("model.safetensors", new Uint8Array(bits.buffer)));
  const tensor = { name: "model.layers.0.mlp.up_proj.weight", dtype: "F16", shape: [M, K], fileOffset: 0, byteLength: bits.byteLength, elements: M * K, shard: "model.safetensors" } as unknown as CheckpointTensor;
  const checkpoint = { source: async () => source } as unknown as Checkpoint;
  return { checkpoint, tensor, source };
}

describe("the planning sample", () => {
  it("reads about SAMPLE_BYTES of whole rows, whatever the tensor's size", async () => {
    const { checkpoint, tensor, source } = oneTensor(4096, 512, (i) => ((i % 3) - 1) * 0.25);
    const sample = await sampleTensor(checkpoint, tensor);
    expect(source.totalRead).toBeLessThanOrEqual(SAMPLE_BYTES);
    expect(sample).toMatchObject({ rows: SAMPLE_BYTES / 1024, verdict: "ternary", granularity: { kind: "tensor" } });
  });

  it("tells latent weights, exact group scales and all-zero rows apart", async () => {
    const latent = oneTensor(8, 256, (i) => Math.sin(i) * 0.02);
    expect(await sampleTensor(latent.checkpoint, latent.tensor)).toMatchObject({ verdict: "latent" });
    const grouped = oneTensor(8, 256, (i) => (i % 2 === 0 ? 1 : -1) * (Math.floor(i / 64) % 2 === 0 ? 0.25 : 0.5));
    expect(await sampleTensor(grouped.checkpoint, grouped.tensor)).toMatchObject({ verdict: "ternary", granularity: { kind: "group", size: 64 } });
    const zero = oneTensor(8, 256, () => 0);
    expect(await sampleTensor(zero.checkpoint, zero.tensor)).toMatchObject({ verdict: "zero" });
  });
});
