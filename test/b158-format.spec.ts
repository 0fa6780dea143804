import { createHash } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateCheckpoint } from "../fixtures/generate.js";
import { convertCheckpoint } from "../src/convert/convert.js";
import { validateB158 } from "../src/convert/validate-b158.js";
import type { ErrorCode } from "../src/errors.js";
import { decodeHeader, encodeHeader, type B158Header } from "../src/formats/b158/header.js";
import { openB158, openB158File } from "../src/formats/b158/read.js";
import { memorySource } from "../src/io/byte-source.js";
import { expectB158Error } from "./support/expect-error.js";
import { forgeB158 } from "./support/forge-b158.js";
import { GROUP_DAMAGE, OPEN_DAMAGE, u64, withHeader } from "./support/b158-damage.js";

const example = fileURLToPath(new URL("../fixtures/example/", import.meta.url));
let root: string;
let good: Uint8Array;
let goodPath: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "b158-format-"));
  goodPath = join(root, "example.b158");
  await convertCheckpoint(example, { layout: "tq2_0", output: goodPath, threads: 0 });
  good = new Uint8Array(await readFile(goodPath));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe(".b158 format", () => {
  it("starts as docs/FORMAT.md §4 shows", () => {
    expect(Buffer.from(good.subarray(0, 16)).toString("hex")).toBe("8942313538" + "0d0a1a" + "0100" + "0000" + "00000000");
    expect(u64(good, 24)).toBe(0x7000);
    const header = decodeHeader(good.subarray(64, 64 + u64(good, 16))) as B158Header;
    expect(header.tensors[0]).toMatchObject({ name: "model.embed_tokens.weight", layout: "bf16", offset: 0 });
    expect(Buffer.from(good.subarray(32, 64))).toEqual(createHash("sha256").update(good.subarray(64, 64 + u64(good, 16))).digest());
    // a fixmap of 6 keys, the first "files" (keys sorted)
    expect(Buffer.from(good.subarray(64, 71)).toString("hex")).toBe("86a566696c6573");
  });

  it("the same input and options give byte-identical files", async () => {
    const again = join(root, "again.b158");
    await convertCheckpoint(example, { layout: "tq2_0", output: again, threads: 0 });
    expect(Buffer.compare(new Uint8Array(await readFile(again)), good)).toBe(0);
  });

  it("a reader ignores unknown header fields of a known major (and a newer minor)", async () => {
    const bytes = withHeader(good, (h) => {
      h.future_field = { anything: [1, 2, 3] };
    });
    new DataView(bytes.buffer).setUint16(10, 7, true);
    const file = await openB158(memorySource("future.b158", bytes));
    expect(file.version).toEqual({ major: 1, minor: 7 });
    expect(await file.verify()).toEqual([]);
  });

  const firstTernary = () => {
    const header = decodeHeader(good.subarray(64, 64 + u64(good, 16))) as B158Header;
    return header.tensors.find((t) => t.layout === "tq2_0")!;
  };


  it.each(OPEN_DAMAGE)("%s -> %s", async (_name, damage, code) => {
    const opening = openB158(memorySource("damaged.b158", damage(good)));
    if (code === null) await opening;
    else await expectB158Error(opening, code, "damaged.b158");
  });

  it("a flipped payload byte opens, but verify and validate name the damaged tensor", async () => {
    const target = firstTernary();
    const bytes = good.slice();
    const at = u64(good, 24) + target.offset + 10;
    bytes[at] = bytes[at]! ^ 0x01;
    const file = await openB158(memorySource("flipped.b158", bytes));
    expect(await file.verify()).toEqual([target.name]);
    const path = join(root, "flipped.b158");
    await (await import("node:fs/promises")).writeFile(path, bytes);
    const report = await validateB158(path);
    expect(report.ok).toBe(false);
    expect(report.diagnostics.map((d) => [d.code, d.tensor])).toContainEqual(["E_B158_HASH", target.name]);
  });

  it("a nonzero byte in the padding between payloads opens, and validate reports E_B158_PADDING for the payload before it", async () => {
    const path = join(root, "i2s.b158");
    await convertCheckpoint(example, { layout: "i2_s", output: path, threads: 0 });
    const bytes = new Uint8Array(await readFile(path));
    const file = await openB158(memorySource("i2s.b158", bytes));
    // an I2_S payload is M*K/4 + 32 bytes: 32 bytes of padding follow it
    const target = file.tensors.find((t) => t.layout === "i2_s" && t.length % 64 !== 0)!;
    bytes[target.fileOffset + target.length + 5] = 1;
    expect(await (await openB158(memorySource("padded.b158", bytes))).verify()).toEqual([target.name]);
    const padded = join(root, "padded.b158");
    await (await import("node:fs/promises")).writeFile(padded, bytes);
    const report = await validateB158(padded);
    expect(report.diagnostics.filter((d) => d.severity === "error").map((d) => [d.code, d.tensor])).toEqual([["E_B158_PADDING", target.name]]);
  });

  it("validate flags degenerate tensors: an all-zero ternary payload with valid hashes", async () => {
    const target = firstTernary();
    // rewrite the payload as all-zero TQ2_0 blocks (code 1 everywhere, d = 0), then fix its sha256
    const bytes = good.slice();
    const start = u64(good, 24) + target.offset;
    for (let b = 0; b < target.length / 66; b++) {
      bytes.fill(0x55, start + b * 66, start + b * 66 + 64);
      bytes[start + b * 66 + 64] = 0;
      bytes[start + b * 66 + 65] = 0;
    }
    const sha = createHash("sha256").update(bytes.subarray(start, start + target.length)).digest("hex");
    const fixed = withHeader(bytes, (h) => {
      (h.tensors as Record<string, unknown>[]).find((t) => t.name === target.name)!.sha256 = sha;
    });
    const path = join(root, "zero.b158");
    await (await import("node:fs/promises")).writeFile(path, fixed);
    const report = await validateB158(path);
    expect(report.diagnostics.map((d) => [d.code, d.tensor])).toContainEqual(["E_ALL_ZERO", target.name]);
  });

  it("validate checks the d of every block that holds a nonzero code against the header's scale, not only the first", async () => {
    const target = firstTernary();
    // block 5's d (bytes 64..65 of the block) one f16 step up; the payload's sha256 rewritten to match
    const at = 5 * 66 + 64;
    const start = u64(good, 24) + target.offset;
    const forged = forgeB158(good, { payload: [{ tensor: target.name, at, value: good[start + at]! + 1 }] });
    const path = join(root, "block-d.b158");
    await (await import("node:fs/promises")).writeFile(path, forged);
    const report = await validateB158(path);
    expect(report.diagnostics.filter((d) => d.severity === "error").map((d) => [d.code, d.tensor])).toEqual([["E_B158_LAYOUT", target.name]]);
  });

  it("the library API reads payloads lazily and decodes to float32 as scale x code", async () => {
    const file = await openB158File(goodPath);
    try {
      const t = firstTernary();
      const { codes, scale } = await file.decodeTernary(t.name);
      if (typeof scale !== "number") throw new Error("per-tensor scale expected");
      const floats = await file.decodeFloat32(t.name);
      expect(floats.length).toBe(codes.length);
      expect(Array.from(floats.slice(0, 8))).toEqual(Array.from(codes.slice(0, 8), (c) => Math.fround(c * scale)));
      const embedding = await file.decodeFloat32("model.embed_tokens.weight");
      expect(embedding.length).toBe(512 * 256);
    } finally {
      await file.close();
    }
  });
});

describe(".b158 1.1: per-group scales (group_size, values in the payload's block d)", () => {
  let grouped: Uint8Array;
  let fixture: Awaited<ReturnType<typeof generateCheckpoint>>;
  const Q = "model.layers.0.self_attn.q_proj.weight";
  beforeAll(async () => {
    fixture = await generateCheckpoint({ family: "llama-fake-quantized", dir: join(root, "g128-src"), granularity: 128, dims: { layers: 1 } });
    const path = join(root, "g128.b158");
    await convertCheckpoint(fixture.dir, { layout: "q2_0", output: path, threads: 0 });
    grouped = new Uint8Array(await readFile(path));
  });
  const header = () => decodeHeader(grouped.subarray(64, 64 + u64(grouped, 16))) as B158Header;
  const edit = (name: string, change: (t: Record<string, unknown>) => void) =>
    withHeader(grouped, (h) => change((h.tensors as Record<string, unknown>[]).find((t) => t.name === name)!));

  it("writes minor 1, group_size and no scale on grouped tensors; reads the scales back from the blocks", async () => {
    expect(new DataView(grouped.buffer).getUint16(10, true)).toBe(1);
    const q = header().tensors.find((t) => t.name === Q)!;
    expect(q).toMatchObject({ layout: "q2_0", group_size: 128, params: { block_size: 64 } });
    expect(q).not.toHaveProperty("scale");
    const file = await openB158(memorySource("g128.b158", grouped));
    const { codes, scale } = await file.decodeTernary(Q);
    expect(codes).toEqual(fixture.ternary[Q]!.codes);
    expect(scale).toEqual(fixture.ternary[Q]!.scale);
  });

  it.each(GROUP_DAMAGE)("%s -> %s", async (_name, change, code) => {
    await expectB158Error(openB158(memorySource("bad-group.b158", edit(Q, change))), code, "bad-group.b158");
  });

  /** The grouped file with the d of payload blocks `blocks` of Q set to f16 `bits` (sha256 rewritten). */
  const withBlockD = (blocks: readonly number[], bits: number) =>
    forgeB158(grouped, { payload: blocks.flatMap((b) => [{ tensor: Q, at: b * 18, value: bits & 0xff }, { tensor: Q, at: b * 18 + 1, value: bits >> 8 }]) });

  it("a block with d = 0 beside one with d != 0 in the same group (both with nonzero codes) is a conflict, not a scale", async () => {
    const file = await openB158(memorySource("zero-d.b158", withBlockD([0], 0)));
    await expectB158Error(file.decodeTernary(Q), "E_B158_LAYOUT", "zero-d.b158");
  });

  it("a group whose nonzero blocks all have d = 0 decodes (scale 0); validate says E_SCALE_INVALID", async () => {
    const bytes = withBlockD([0, 1], 0);
    const file = await openB158(memorySource("zero-group.b158", bytes));
    const { scale } = await file.decodeTernary(Q);
    expect(typeof scale !== "number" && scale.values[0]).toBe(0);
    const path = join(root, "zero-group.b158");
    await (await import("node:fs/promises")).writeFile(path, bytes);
    const report = await validateB158(path);
    expect(report.diagnostics.filter((d) => d.severity === "error").map((d) => [d.code, d.tensor])).toEqual([["E_SCALE_INVALID", Q]]);
  });

  it("blocks of one group with different d: decodeTernary is E_B158_LAYOUT, validate names the tensor", async () => {
    const q = header().tensors.find((t) => t.name === Q)!;
    const bytes = grouped.slice();
    const start = u64(grouped, 24) + q.offset;
    // the second block of row 0's first group of 128 gets another d, then the payload's sha256 is fixed
    const at = start + 18;
    const d = bytes[at]! | (bytes[at + 1]! << 8);
    bytes[at] = (d + 1) & 0xff;
    bytes[at + 1] = (d + 1) >> 8;
    const sha = createHash("sha256").update(bytes.subarray(start, start + q.length)).digest("hex");
    const fixed = withHeader(bytes, (h) => {
      (h.tensors as Record<string, unknown>[]).find((t) => t.name === Q)!.sha256 = sha;
    });
    const file = await openB158(memorySource("conflict.b158", fixed));
    await expectB158Error(file.decodeTernary(Q), "E_B158_LAYOUT", "conflict.b158");
    const path = join(root, "conflict.b158");
    await (await import("node:fs/promises")).writeFile(path, fixed);
    const report = await validateB158(path);
    expect(report.diagnostics.map((d) => [d.code, d.tensor])).toContainEqual(["E_B158_LAYOUT", Q]);
  });
});
