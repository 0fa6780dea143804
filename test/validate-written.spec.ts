import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { convertCheckpoint } from "../src/convert/convert.js";
import { scanPayloads, type PayloadRange } from "../src/convert/payload-scan.js";
import { validateB158, type PackedCheck } from "../src/convert/validate-b158.js";
import { openB158File } from "../src/formats/b158/read.js";
import { fileSource } from "../src/io/byte-source.js";
import { fileSha256 } from "../src/io/file-hash.js";

/**
 * Validation of a file convert just wrote: the checks its workers made in memory stand in for
 * decoding, and its workers may scan the payloads while the main thread hashes the file. Each
 * way must reach the verdicts of the independent validation of a file of unknown origin.
 */
const example = fileURLToPath(new URL("../fixtures/example/", import.meta.url));
let root: string;
let path: string;
let ternary: { name: string; layout: string; scale: number }[];
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "b158-validate-"));
  path = join(root, "example.b158");
  await convertCheckpoint(example, { layout: "i2_s", output: path, threads: 0 });
  const file = await openB158File(path);
  ternary = file.tensors.filter((t) => t.layoutParams !== undefined).map((t) => ({ name: t.name, layout: t.layout, scale: t.scale! }));
  await file.close();
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

/** What convert's workers report for the file's ternary payloads when all is well. */
function goodChecks(): Map<string, PackedCheck> {
  return new Map(ternary.map((t) => [t.name, { nonzero: true, roundTrips: true, embeddedScale: Math.fround(t.scale) }]));
}

const scanHere = async (ranges: readonly PayloadRange[]) => {
  const source = await fileSource(path);
  try {
    return await scanPayloads(source, ranges);
  } finally {
    await source.close();
  }
};

const codes = (v: { diagnostics: readonly { code: string; tensor?: string }[] }) => v.diagnostics.map((d) => [d.code, d.tensor]);

describe("validating a file convert wrote", () => {
  it("independent, with the converter's checks, and with payloads scanned elsewhere: the same verdict and sha256", async () => {
    const independent = await validateB158(path);
    const trusted = await validateB158(path, { packed: goodChecks() });
    const parallel = await validateB158(path, { packed: goodChecks(), scanPayloads: scanHere });
    expect(independent.ok).toBe(true);
    expect(independent.sha256).toBe(await fileSha256(path));
    for (const v of [trusted, parallel]) {
      expect(v.ok).toBe(true);
      expect(v.sha256).toBe(independent.sha256);
      expect(v.tensors.map((t) => t.name)).toEqual(independent.tensors.map((t) => t.name));
    }
    // only a validation that decoded the payloads has their -1/0/+1 counts
    expect(independent.tensors.find((t) => t.name === ternary[0]!.name)!.counts).toBeDefined();
    expect(trusted.tensors.find((t) => t.name === ternary[0]!.name)!.counts).toBeUndefined();
  });

  it("the converter's findings become the same diagnostics: E_DECODE_MISMATCH, E_ALL_ZERO, E_B158_LAYOUT, E_NONFINITE", async () => {
    const [a, b, c] = ternary;
    const checks = goodChecks();
    checks.set(a!.name, { ...checks.get(a!.name)!, roundTrips: false });
    checks.set(b!.name, { ...checks.get(b!.name)!, nonzero: false });
    checks.set(c!.name, { ...checks.get(c!.name)!, embeddedScale: 1 });
    const file = await openB158File(path);
    const float = file.tensors.find((t) => t.layout === "f32" || t.layout === "f16" || t.layout === "bf16")!.name;
    await file.close();
    for (const scan of [undefined, scanHere]) {
      const v = await validateB158(path, { packed: checks, nonFinite: new Map([[float, 3]]), ...(scan === undefined ? {} : { scanPayloads: scan }) });
      expect(v.ok).toBe(false);
      expect(codes(v)).toEqual(expect.arrayContaining([["E_DECODE_MISMATCH", a!.name], ["E_ALL_ZERO", b!.name], ["E_B158_LAYOUT", c!.name], ["E_NONFINITE", float]]));
      expect(v.diagnostics.find((d) => d.code === "E_NONFINITE")!.message).toContain("3 NaN/Inf");
    }
  });

  it("a payload damaged on disk fails its hash however the payloads are scanned", async () => {
    const { writeFile, readFile } = await import("node:fs/promises");
    const bytes = new Uint8Array(await readFile(path));
    const file = await openB158File(path);
    const target = file.tensors.find((t) => t.name === ternary[1]!.name)!;
    await file.close();
    bytes[target.fileOffset + 3] = bytes[target.fileOffset + 3]! ^ 0x10;
    const damaged = join(root, "damaged.b158");
    await writeFile(damaged, bytes);
    for (const options of [{}, { packed: goodChecks() }]) expect(codes(await validateB158(damaged, options))).toContainEqual(["E_B158_HASH", target.name]);
  });
});
