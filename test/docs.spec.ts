import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { ERROR_CODES, EXIT } from "../src/errors.js";

const docs = readFileSync(new URL("../docs/errors.md", import.meta.url), "utf8");

describe("docs/errors.md", () => {
  it("lists every error code with its exit status, and no code that does not exist", () => {
    const documented = new Map<string, number>();
    for (const match of docs.matchAll(/^\| `(E_[A-Z0-9_]+)` \| (\d+) \|/gm)) documented.set(match[1]!, Number(match[2]));
    for (const [code, { exit }] of Object.entries(ERROR_CODES)) expect(documented.get(code), code).toBe(EXIT[exit]);
    for (const code of documented.keys()) expect(Object.hasOwn(ERROR_CODES, code), code).toBe(true);
  });
});
