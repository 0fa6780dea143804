import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { convertCheckpoint } from "../../src/convert/convert.js";
import { exportGguf } from "../../src/export/gguf.js";
import { openB158File } from "../../src/formats/b158/read.js";
import { openGgufFile } from "../../src/formats/gguf/read.js";
import type { LayoutId } from "../../src/pack/layouts.js";
import { inspectB158, validateB158Report } from "../../src/report/b158-report.js";
import { validateGgufReport } from "../../src/report/gguf-report.js";
import { expectB158Error } from "../support/expect-error.js";
import { forgeB158 } from "../support/forge-b158.js";
import { runCli } from "../support/run-cli.js";

/**
 * Damaged ternary payloads in files whose structure is intact (the .b158's sha256 rewritten to
 * match, as a buggy or hostile writer would): decoding names the file and the tensor with
 * E_PACKED_CODE, and validate reports every damaged tensor and goes on.
 */
const example = fileURLToPath(new URL("../../fixtures/example/", import.meta.url));
let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "b158-codes-"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

/** Sets payload byte `at` of each named tensor to `value`, with sha256s rewritten to match: only the codes are wrong. */
async function damage(path: string, edits: readonly { tensor: string; at: number; value: number }[]): Promise<void> {
  await writeFile(path, forgeB158(new Uint8Array(await readFile(path)), { payload: edits }));
}

async function converted(layout: LayoutId): Promise<{ path: string; ternary: string[] }> {
  const path = join(await mkdtemp(join(root, `${layout}-`)), "model.b158");
  await convertCheckpoint(example, { layout, output: path, threads: 0 });
  const file = await openB158File(path);
  const ternary = file.tensors.filter((t) => t.layoutParams !== undefined).map((t) => t.name);
  await file.close();
  return { path, ternary };
}

describe(".b158: a code outside the ternary alphabet", () => {
  it.each([
    // the report: a TL pair index of 12, once without the file or the tensor
    ["tl1", 0xc4, "pair index 12"],
    // once decoded silently as 0
    ["i2_s", 0xff, "code 3"],
    // once decoded silently as the value 2
    ["tq2_0", 0x03, "code 3"],
  ] as const)("%s: decodeTernary and inspect fail with E_PACKED_CODE naming the file and the tensor", async (layout, value, words) => {
    const { path, ternary } = await converted(layout);
    const tensor = ternary[3]!;
    await damage(path, [{ tensor, at: 20, value }]);
    const file = await openB158File(path);
    try {
      const error = await expectB158Error(file.decodeTernary(tensor), "E_PACKED_CODE", path);
      expect(error.message).toContain(`"${tensor}"`);
      expect(error.message).toContain(words);
      expect(error.details).toMatchObject({ file: path, tensor, layout, byte: 20 });
    } finally {
      await file.close();
    }
    await expectB158Error(inspectB158(path), "E_PACKED_CODE", path);
  });

  it("validate reports every damaged tensor as its own E_PACKED_CODE and checks the rest", async () => {
    const { path, ternary } = await converted("tq1_0");
    const damaged = [ternary[0]!, ternary[5]!, ternary.at(-1)!];
    // 0x01 is not ceil(v * 256 / 243) for any five trits (v = 0 gives 0, v = 1 gives 2)
    await damage(path, damaged.map((tensor) => ({ tensor, at: 7, value: 0x01 })));
    const report = await validateB158Report(path);
    expect(report.ok).toBe(false);
    expect(report.tensorsScanned).toBe(report.tensors);
    const errors = report.diagnostics.filter((d) => d.severity === "error");
    expect(errors.map((d) => [d.code, d.tensor])).toEqual(damaged.map((tensor) => ["E_PACKED_CODE", tensor]));
    for (const d of errors) expect(d.message).toContain(path);

    const run = await runCli(["validate", path, "--json"]);
    expect(run.status, run.stderr).toBe(4);
    expect(JSON.parse(run.stdout).diagnostics.filter((d: { code: string }) => d.code === "E_PACKED_CODE")).toHaveLength(3);
  });
});

describe("GGUF: validate reports every tensor holding a code outside the alphabet", () => {
  it.each([
    ["i2_s", 0xff, 0],
    ["tq2_0", 0x03, 0],
    ["tq1_0", 0x01, 0],
    ["tl1", 0xc4, 0],
  ] as const)("%s", async (layout, value, at) => {
    const { path: b158 } = await converted(layout);
    const gguf = b158.replace(/\.b158$/, ".gguf");
    const source = await openB158File(b158);
    await exportGguf(source, { output: gguf });
    await source.close();
    const file = await openGgufFile(gguf);
    const targets = file.tensors.filter((t) => t.type.name === layout.toUpperCase()).map((t) => t);
    await file.close();
    const bytes = new Uint8Array(await readFile(gguf));
    const damaged = [targets[1]!, targets.at(-1)!];
    for (const t of damaged) bytes[t.fileOffset + at] = value;
    await writeFile(gguf, bytes);
    const report = await validateGgufReport(gguf);
    const found = report.diagnostics.filter((d) => d.code === "E_PACKED_CODE");
    expect(found.map((d) => d.tensor)).toEqual(damaged.map((t) => t.name));
    expect(found[0]!.message).toContain("the first at byte 0");
  });
});
