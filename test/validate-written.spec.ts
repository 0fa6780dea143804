import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { convertCheckpoint } from "../src/convert/convert.js";
import { closeSync, openSync } from "node:fs";
import { readBack, type PayloadScan } from "../src/convert/payload-scan.js";
import { validateB158, type PackedCheck } from "../src/convert/validate-b158.js";
import { openB158File } from "../src/formats/b158/read.js";
import { fileSha256 } from "../src/io/file-hash.js";

/**
 * Validation of a file convert just wrote: the checks its workers made in memory stand in for
 * decoding, and the payloads its workers read back from the file stand in for scanning them. Each
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

/** Every payload of `file` read back through a slot, as a worker does after writing it; `sha256` is what it hashed to when written. */
async function readBackAll(file: string, sha256 = (t: { sha256: string }) => t.sha256): Promise<Map<string, PayloadScan>> {
  const b158 = await openB158File(file);
  const fd = openSync(file, "r");
  try {
    return new Map(
      b158.tensors.map((t, i) => {
        const next = b158.tensors[i + 1]?.fileOffset ?? t.fileOffset + t.length;
        const slot = { fd, output: file, tensor: t.name, position: t.fileOffset, length: t.length, padding: next - t.fileOffset - t.length };
        return [t.name, readBack(slot, sha256(t), t.layout, true)];
      }),
    );
  } finally {
    closeSync(fd);
    await b158.close();
  }
}

const codes = (v: { diagnostics: readonly { code: string; tensor?: string }[] }) => v.diagnostics.map((d) => [d.code, d.tensor]);

describe("validating a file convert wrote", () => {
  it("independent, with the converter's checks, and with payloads read back by its workers: the same verdict and sha256", async () => {
    const independent = await validateB158(path);
    const trusted = await validateB158(path, { packed: goodChecks() });
    const parallel = await validateB158(path, { packed: goodChecks(), readBack: await readBackAll(path) });
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
    for (const readBack of [undefined, await readBackAll(path)]) {
      const v = await validateB158(path, { packed: checks, nonFinite: new Map([[float, 3]]), ...(readBack === undefined ? {} : { readBack }) });
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
    for (const options of [{}, { packed: goodChecks() }, { packed: goodChecks(), readBack: await readBackAll(damaged) }]) {
      expect(codes(await validateB158(damaged, options))).toContainEqual(["E_B158_HASH", target.name]);
    }
  });

  it("a payload read back as other bytes than the header's hash names fails, even if they matched what was written", async () => {
    // the worker hashed X on the way out and read X back, but the header says otherwise
    const name = ternary[2]!.name;
    const readBack = await readBackAll(path);
    readBack.set(name, { ...readBack.get(name)!, sha256: "ab".repeat(32) });
    expect(codes(await validateB158(path, { packed: goodChecks(), readBack }))).toEqual([["E_B158_HASH", name]]);
    // and padding found non-zero on read-back: its own code, the payload is fine
    const padded = await readBackAll(path);
    padded.set(name, { ...padded.get(name)!, badPadding: true });
    expect(codes(await validateB158(path, { packed: goodChecks(), readBack: padded }))).toEqual([["E_B158_PADDING", name]]);
  });
});
