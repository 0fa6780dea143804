import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, it } from "vitest";
import { convertCheckpoint } from "../../src/convert/convert.js";
import { exportGguf } from "../../src/export/gguf.js";
import { openB158File } from "../../src/formats/b158/read.js";
import { expectB158Error } from "../support/expect-error.js";
import { rewriteB158 } from "../support/rewrite-b158.js";
import { expect } from "vitest";

/**
 * Inputs the fuzzer (test/fuzz, `npm run fuzz`) found mishandled, each kept as a regression test
 * with the seed and case that found it.
 */
const example = fileURLToPath(new URL("../../fixtures/example/", import.meta.url));
let root: string;
let good: Uint8Array;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "b158-fuzz-found-"));
  await convertCheckpoint(example, { layout: "tq2_0", output: join(root, "good.b158"), threads: 0 });
  good = new Uint8Array(await readFile(join(root, "good.b158")));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

type Header = Parameters<NonNullable<Parameters<typeof rewriteB158>[1]["header"]>>[0];
const config = (h: Header) => (h.model as { config: Record<string, unknown> }).config;

/** Exports a .b158 rewritten by `edit` and expects `code`, with no file left at the output. */
async function exportFails(name: string, edit: Parameters<typeof rewriteB158>[1], code: "E_GGUF_EXPORT"): Promise<void> {
  const dir = await mkdtemp(join(root, `${name}-`));
  const path = join(dir, "model.b158");
  await writeFile(path, rewriteB158(good, edit));
  const file = await openB158File(path);
  try {
    await expectB158Error(exportGguf(file, { output: join(dir, "model.gguf") }), code, path);
  } finally {
    await file.close();
  }
  expect(await readdir(dir)).toEqual(["model.b158"]);
}

describe("export of a .b158 whose header lies (re-signed, so it opens)", () => {
  // npm run fuzz -- --target b158 --seed 3 --case 513 --deep: E_INTERNAL from the GGUF writer,
  // "rope.dimension_count: 128.5 is not a valid uint32"
  it("a head count that does not divide hidden_size (head_dim 85.33) is E_GGUF_EXPORT, not an internal error", async () => {
    await exportFails("heads", { header: (h) => void (config(h).num_attention_heads = 3) }, "E_GGUF_EXPORT");
  });

  it.each([
    ["hidden_size", 1e300],
    ["num_hidden_layers", 2 ** 32],
    ["intermediate_size", 0.5],
    ["num_key_value_heads", -1],
  ])("config %s = %s is E_GGUF_EXPORT", async (field, value) => {
    await exportFails(field, { header: (h) => void (config(h)[field] = value) }, "E_GGUF_EXPORT");
  });

  // an empty embedding claiming 4 billion rows sized the tokenizer table (new Array(4e9)) by its claim
  it("an empty token embedding of [4000000000, 0] is E_GGUF_EXPORT, not a 4-billion-entry vocabulary", async () => {
    await exportFails(
      "embedding",
      {
        relayout: true,
        header: (h) => {
          const embedding = h.tensors.find((t) => (t as { role?: string }).role === "embedding") as unknown as { shape: number[]; length: number };
          embedding.shape = [4_000_000_000, 0];
          embedding.length = 0;
        },
      },
      "E_GGUF_EXPORT",
    );
  });
});
