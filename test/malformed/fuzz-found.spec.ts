import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, it } from "vitest";
import { convertCheckpoint } from "../../src/convert/convert.js";
import { exportGguf } from "../../src/export/gguf.js";
import { openB158File } from "../../src/formats/b158/read.js";
import { expectB158Error } from "../support/expect-error.js";
import { forgeB158, signB158Bytes } from "../support/forge-b158.js";
import { expect } from "vitest";
import { decodeHeader, encodeHeader, type B158Header } from "../../src/formats/b158/header.js";
import { inspectB158 } from "../../src/report/b158-report.js";
import { runCli } from "../support/run-cli.js";

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

type Header = Parameters<NonNullable<Parameters<typeof forgeB158>[1]["header"]>>[0];
const config = (h: Header) => (h.model as { config: Record<string, unknown> }).config;

/** Exports a .b158 rewritten by `edit` and expects `code`, with no file left at the output. */
async function exportFails(name: string, edit: Parameters<typeof forgeB158>[1], code: "E_GGUF_EXPORT"): Promise<void> {
  const dir = await mkdtemp(join(root, `${name}-`));
  const path = join(dir, "model.b158");
  await writeFile(path, forgeB158(good, edit));
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

describe("a .b158 header nested thousands of levels deep (re-signed)", () => {
  /** The good file with provenance.deep = `depth` nested one-element arrays, written as raw MessagePack. */
  function nested(depth: number): Uint8Array {
    const u64 = (at: number) => Number(new DataView(good.buffer, good.byteOffset).getBigUint64(at, true));
    const header = decodeHeader(good.subarray(64, 64 + u64(16))) as B158Header & { provenance: Record<string, unknown> };
    header.provenance.deep = "MARKER";
    const encoded = Buffer.from(encodeHeader(header));
    const at = encoded.indexOf(Buffer.from([0xa6, ...Buffer.from("MARKER")]));
    const raw = Buffer.concat([encoded.subarray(0, at), Buffer.alloc(depth, 0x91), Buffer.from([0x01]), encoded.subarray(at + 7)]);
    return signB158Bytes(raw, good.subarray(u64(24)));
  }
  // found by hand while widening the fuzzer's nesting: msgpackr decoded 3,000 levels, and
  // inspect --json then crashed in JSON.stringify with a RangeError
  it.each([100, 3000, 100_000])("%i levels: E_B158_HEADER (nesting bounded at 64, like JSON), from the library and inspect --json", async (depth) => {
    const path = join(root, `deep-${depth}.b158`);
    await writeFile(path, nested(depth));
    await expectB158Error(inspectB158(path), "E_B158_HEADER", path);
    const run = await runCli(["inspect", path, "--json"]);
    expect(run.status, run.stderr).toBe(3);
    expect(JSON.parse(run.stdout).error.code).toBe("E_B158_HEADER");
  });
});
