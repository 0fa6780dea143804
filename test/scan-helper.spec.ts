import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

// The compiled helper (npm test builds dist/ first): from the TypeScript sources there is no worker script.
const compiled = fileURLToPath(new URL("../dist/convert/scan-helper.js", import.meta.url));
const { ScanHelper } = (await import(compiled)) as typeof import("../src/convert/scan-helper.js");
const range = { name: "t", fileOffset: 0, length: 4096, padding: 0, sha256: "00".repeat(32), layout: "u8" };

describe("validation's helper thread", () => {
  it("frees each buffer it scanned and reports the scans in the order of the ranges", async () => {
    const helper = ScanHelper.start([range], 4096, "file.b158")!;
    try {
      const buffers = await Promise.all([0, 1, 2, 3].map(() => helper.take()));
      // all four are out: the next take waits until the helper frees the one sent
      let fifth: Uint8Array | undefined;
      const waiting = helper.take().then((b) => (fifth = b));
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(fifth).toBeUndefined();
      buffers[2]!.fill(7);
      helper.send(buffers[2]!, 0);
      await waiting;
      expect(fifth!.byteOffset).toBe(buffers[2]!.byteOffset);
      const [scan] = await helper.finish();
      expect(scan!.damaged).toBe(true); // 4096 sevens do not hash to zeros
      expect(scan!.sha256).toMatch(/^[0-9a-f]{64}$/);
    } finally {
      await helper.close();
    }
  });

  it("a thread that ends before the pass does fails the waiting reader (E_INTERNAL) instead of leaving it waiting", async () => {
    const helper = ScanHelper.start([range], 4096, "file.b158")!;
    try {
      await Promise.all([0, 1, 2, 3].map(() => helper.take()));
      const waiting = helper.take();
      await (helper as unknown as { worker: { terminate(): Promise<number> } }).worker.terminate();
      const error = await waiting.then(
        () => undefined,
        (e: unknown) => e,
      );
      // the compiled module's B158Error: its code and message, not the class of the sources
      expect(error).toMatchObject({ code: "E_INTERNAL", message: expect.stringContaining("file.b158") });
      await expect(helper.finish()).rejects.toMatchObject({ code: "E_INTERNAL" });
    } finally {
      await helper.close();
    }
  });
});
