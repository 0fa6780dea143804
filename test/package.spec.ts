import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { repoRoot } from "./support/cli.js";

/**
 * What `npm pack` would publish (the built dist/ must exist: `npm test` builds first). The full
 * check, installing the tarball offline into an empty folder and running it there, is
 * scripts/check-install.mjs (README, "What you install"); this is its fast part.
 */
let files: string[];
let pkg: { license: string; bin: Record<string, string>; main: string; types: string; exports: Record<string, Record<string, string>> };

beforeAll(async () => {
  const out = await new Promise<string>((resolve, reject) =>
    execFile(process.platform === "win32" ? "npm.cmd" : "npm", ["pack", "--dry-run", "--json", "--ignore-scripts"], { cwd: repoRoot, maxBuffer: 1 << 26 }, (error, stdout) => (error ? reject(error) : resolve(stdout))),
  );
  files = (JSON.parse(out) as { files: { path: string }[] }[])[0]!.files.map((f) => f.path);
  pkg = JSON.parse(await readFile(join(repoRoot, "package.json"), "utf8"));
});

describe("the npm package", () => {
  it("ships the CLI, the library, its types, schemas, docs, the example model and the LICENSE", () => {
    const referenced = [...Object.values(pkg.bin), pkg.main, pkg.types, ...Object.values(pkg.exports).flatMap((e) => Object.values(e))].map((p) => p.replace(/^\.\//, ""));
    for (const path of [...referenced, "LICENSE", "README.md", "package.json", "schemas/manifest.schema.json", "docs/FORMAT.md", "fixtures/example/model.safetensors"]) expect(files, path).toContain(path);
  });

  it("does not ship the development entry point, tests, sources or source maps", () => {
    expect(files).not.toContain("bin/dev.js"); // needs tsx and the sources: a stack trace from an install
    expect(files.filter((f) => f.endsWith(".map"))).toEqual([]);
    expect(files.filter((f) => /^(src|test|bench|scripts)\//.test(f) || f.endsWith(".spec.js") || f.endsWith(".spec.d.ts"))).toEqual([]);
  });

  it("no shipped script points at a source map or a source file that is not shipped", async () => {
    const scripts = files.filter((f) => f.endsWith(".js"));
    expect(scripts.length).toBeGreaterThan(10);
    for (const script of scripts) expect(await readFile(join(repoRoot, script), "utf8"), script).not.toMatch(/sourceMappingURL/);
  });

  it("LICENSE is the MIT license package.json names", async () => {
    expect(pkg.license).toBe("MIT");
    expect(await readFile(join(repoRoot, "LICENSE"), "utf8")).toMatch(/^MIT License\n\nCopyright \(c\) \d{4} /);
  });
});
