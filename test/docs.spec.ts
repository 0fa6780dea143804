import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
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

describe("docs/errors.md lists every diagnostic code", () => {
  it("each W_/I_ code, and each E_ code a diagnostic carries, that src/ can emit", () => {
    const root = fileURLToPath(new URL("../src/", import.meta.url));
    const emitted = new Set<string>();
    const walk = (dir: string): void => {
      for (const name of readdirSync(join(root, dir))) {
        const path = join(dir, name);
        if (statSync(join(root, path)).isDirectory()) walk(path);
        else if (name.endsWith(".ts") && !name.endsWith(".spec.ts")) {
          const text = readFileSync(join(root, path), "utf8");
          for (const m of text.matchAll(/code: "([EWI]_[A-Z0-9_]+)"/g)) emitted.add(m[1]!);
          for (const m of text.matchAll(/"([WI]_[A-Z0-9_]+)"/g)) emitted.add(m[1]!);
        }
      }
    };
    walk(".");
    expect(emitted.size).toBeGreaterThan(30);
    expect([...emitted].filter((code) => !docs.includes(`\`${code}\``)).sort()).toEqual([]);
  });
});

describe("the repository stands alone", () => {
  it("no source, test, doc, bench or fixture names a path beside the repository", () => {
    const root = fileURLToPath(new URL("..", import.meta.url));
    const outside = new RegExp(["\\.\\./", "shared", "/"].join("")); // written in pieces so this file does not match itself
    const offenders: string[] = [];
    const walk = (dir: string): void => {
      for (const name of readdirSync(join(root, dir))) {
        const path = join(dir, name);
        if (statSync(join(root, path)).isDirectory()) walk(path);
        else if (/\.(ts|js|mjs|json|md|ini|sh)$/.test(name) || name === "run") {
          const text = readFileSync(join(root, path), "utf8");
          if (outside.test(text)) offenders.push(path);
        }
      }
    };
    for (const dir of ["src", "test", "docs", "bench", "fixtures", "schemas", "bin", ".ci"]) walk(dir);
    for (const file of ["README.md", "package.json"]) if (outside.test(readFileSync(join(root, file), "utf8"))) offenders.push(file);
    expect(offenders).toEqual([]);
  });
});
