import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { convertCheckpoint } from "../src/convert/convert.js";
import { readFile } from "node:fs/promises";
import type { PayloadScan } from "../src/convert/payload-scan.js";
import { validateB158, type PackedCheck } from "../src/convert/validate-b158.js";
import { openB158File } from "../src/formats/b158/read.js";
import { fileSha256 } from "../src/io/file-hash.js";
import type { WrittenChecksum } from "../src/convert/checksum.js";
import { xxh64 } from "../src/pack/xxh64.js";

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

/**
 * What convert's workers report for every payload of `file` (jobs.ts): each one read back from the
 * file and compared with what was written (the bytes of `written`, whose hash the header holds), so
 * it is damaged where the two files differ, and its padding bad where it is not zero.
 */
async function readBackAll(file: string, written = file): Promise<Map<string, PayloadScan>> {
  const b158 = await openB158File(file);
  const [held, sent] = [new Uint8Array(await readFile(file)), new Uint8Array(await readFile(written))];
  try {
    return new Map(
      b158.tensors.map((t, i) => {
        const end = b158.tensors[i + 1]?.fileOffset ?? t.fileOffset + t.length;
        const payloadEnd = t.fileOffset + t.length;
        const same = Buffer.compare(held.subarray(t.fileOffset, payloadEnd), sent.subarray(t.fileOffset, payloadEnd)) === 0;
        return [t.name, { damaged: !same, badPadding: !held.subarray(payloadEnd, end).every((b) => b === 0), sha256: t.sha256, nonFinite: 0 }];
      }),
    );
  } finally {
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
    const { writeFile } = await import("node:fs/promises");
    const bytes = new Uint8Array(await readFile(path));
    const file = await openB158File(path);
    const target = file.tensors.find((t) => t.name === ternary[1]!.name)!;
    await file.close();
    bytes[target.fileOffset + 3] = bytes[target.fileOffset + 3]! ^ 0x10;
    const damaged = join(root, "damaged.b158");
    await writeFile(damaged, bytes);
    for (const options of [{}, { packed: goodChecks() }, { packed: goodChecks(), readBack: await readBackAll(damaged, path) }]) {
      expect(codes(await validateB158(damaged, options))).toContainEqual(["E_B158_HASH", target.name]);
    }
  });

  it("payloads not read back (written with O_DIRECT) are hashed in the whole-file pass, at any chunking; the read-back ones are trusted", async () => {
    const { writeFile } = await import("node:fs/promises");
    const file = await openB158File(path);
    const names = file.tensors.map((t) => t.name);
    const target = file.tensors.find((t) => t.name === ternary[1]!.name)!;
    await file.close();
    // a padded tensor whose padding's last byte is not zero
    const padded = file.tensors.find((t, i) => i + 1 < file.tensors.length && file.tensors[i + 1]!.fileOffset > t.fileOffset + t.length + 1)!;
    const bytes = new Uint8Array(await readFile(path));
    bytes[target.fileOffset + target.length - 1] = bytes[target.fileOffset + target.length - 1]! ^ 0x01;
    const damaged = join(root, "damaged-direct.b158");
    const badPadding = join(root, "bad-padding.b158");
    const paddingBytes = new Uint8Array(await readFile(path));
    paddingBytes[file.tensors[file.tensors.indexOf(padded) + 1]!.fileOffset - 1] = 1;
    await writeFile(badPadding, paddingBytes);
    await writeFile(damaged, bytes);
    const without = (map: Map<string, PayloadScan>, ...drop: string[]) => new Map([...map].filter(([name]) => !drop.includes(name)));
    const asWritten = await readBackAll(damaged, path);
    const independent = await validateB158(path);
    // 4 KiB reads: chunk edges fall inside payloads, paddings and the header
    for (const chunkBytes of [undefined, 4096, 3 * 4096]) {
      const chunking = chunkBytes === undefined ? {} : { chunkBytes };
      // the damaged payload was written directly: hashed here, and found
      const found = await validateB158(damaged, { packed: goodChecks(), readBack: without(asWritten, target.name), ...chunking });
      expect(codes(found)).toEqual([["E_B158_HASH", target.name]]);
      expect(found.sha256).toBe(await fileSha256(damaged));
      // every other payload direct too, the damaged one said to have read back as written: a worker's word is taken
      const trusted = await validateB158(damaged, { packed: goodChecks(), readBack: without(await readBackAll(path), ...names.filter((n) => n !== target.name)), ...chunking });
      expect(codes(trusted)).toEqual([]);
      // the good file, nothing read back and nothing known: the same verdict, sha256 and counts as by default
      const scanned = await validateB158(path, chunking);
      expect(scanned.ok).toBe(true);
      expect(scanned.sha256).toBe(independent.sha256);
      expect(scanned.tensors).toEqual(independent.tensors);
      expect(codes(await validateB158(badPadding, { packed: goodChecks(), readBack: without(await readBackAll(path), padded.name), ...chunking }))).toEqual([["E_B158_PADDING", padded.name]]);
    }
  });

  it("payloads written direct are checked against the XXH64 the converter took of them, at any chunking, beside a helper or not", async () => {
    const compiled = fileURLToPath(new URL("../dist/convert/validate-b158.js", import.meta.url));
    const built = (await import(compiled)) as typeof import("../src/convert/validate-b158.js");
    const { writeFile } = await import("node:fs/promises");
    const good = new Uint8Array(await readFile(path));
    const file = await openB158File(path);
    const tensors = file.tensors;
    await file.close();
    // what the workers report for payloads they wrote direct: the sha256 and XXH64 of the bytes sent
    const written = new Map<string, WrittenChecksum>(tensors.map((t) => [t.name, { sha256: t.sha256, xxh64: xxh64(good.subarray(t.fileOffset, t.fileOffset + t.length)).toString(16).padStart(16, "0") }]));
    const target = tensors.find((t) => t.name === ternary[1]!.name)!;
    const padded = tensors.find((t, i) => i + 1 < tensors.length && tensors[i + 1]!.fileOffset > t.fileOffset + t.length + 1)!;
    const damaged = join(root, "damaged-checksum.b158");
    const flipped = good.slice();
    flipped[target.fileOffset + 5] = flipped[target.fileOffset + 5]! ^ 0x04;
    await writeFile(damaged, flipped);
    const badPadding = join(root, "bad-padding-checksum.b158");
    const dirty = good.slice();
    dirty[tensors[tensors.indexOf(padded) + 1]!.fileOffset - 1] = 9;
    await writeFile(badPadding, dirty);
    // half the payloads with a checksum, the others left to sha256 (on the helper thread when asked)
    const some = new Map([...written].filter((_, i) => i % 2 === 0).concat([[target.name, written.get(target.name)!], [padded.name, written.get(padded.name)!]]));
    for (const chunkBytes of [4096, 3 * 4096, undefined]) {
      const chunking = chunkBytes === undefined ? {} : { chunkBytes };
      for (const [checksums, scanThread] of [[written, false], [some, false], [some, true]] as const) {
        const options = { packed: goodChecks(), checksums, ...chunking, scanThread };
        const ok = await built.validateB158(path, options);
        expect(codes(ok)).toEqual([]);
        expect(ok.sha256).toBe(await fileSha256(path));
        expect(codes(await built.validateB158(damaged, options))).toEqual([["E_B158_HASH", target.name]]);
        expect(codes(await built.validateB158(badPadding, options))).toEqual([["E_B158_PADDING", padded.name]]);
      }
    }
    // the bytes are as written, but the worker hashed other bytes than the header names
    const misnamed = new Map(written).set(target.name, { ...written.get(target.name)!, sha256: "cd".repeat(32) });
    expect(codes(await validateB158(path, { packed: goodChecks(), checksums: misnamed }))).toEqual([["E_B158_HASH", target.name]]);
    // a read-back stands for its payload: its checksum is not consulted
    expect(codes(await validateB158(damaged, { packed: goodChecks(), checksums: written, readBack: await readBackAll(path) }))).toEqual([]);
  });

  it("on a second thread (the compiled helper), the scans and verdicts are the same as on one, at any chunking", async () => {
    // npm test builds dist/ first; from the TypeScript sources the helper is not there and the scan stays on this thread
    const compiled = fileURLToPath(new URL("../dist/convert/validate-b158.js", import.meta.url));
    const built = (await import(compiled)) as typeof import("../src/convert/validate-b158.js");
    const { writeFile } = await import("node:fs/promises");
    const bytes = new Uint8Array(await readFile(path));
    const target = ternary[0]!.name;
    const file = await openB158File(path);
    const at = file.tensors.find((t) => t.name === target)!.fileOffset;
    await file.close();
    bytes[at] = bytes[at]! ^ 0x80;
    const damaged = join(root, "damaged-threaded.b158");
    await writeFile(damaged, bytes);
    for (const chunkBytes of [4096, 2 * 4096, undefined]) {
      const chunking = chunkBytes === undefined ? {} : { chunkBytes };
      for (const [input, options] of [[path, {}], [damaged, {}], [damaged, { packed: goodChecks() }]] as const) {
        const one = await validateB158(input, { ...options, ...chunking, scanThread: false });
        const two = await built.validateB158(input, { ...options, ...chunking, scanThread: true });
        expect(two).toEqual(one);
      }
      expect(codes(await built.validateB158(damaged, { ...chunking, scanThread: true }))).toContainEqual(["E_B158_HASH", target]);
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
