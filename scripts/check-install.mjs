#!/usr/bin/env node
// What a user installs, measured. Packs this checkout (npm pack), installs the tarball into an empty
// folder from the npm cache only (`npm ci --offline`: no registry request; the cache is the one
// `npm ci` filled here), runs the installed CLI there (npx b158 --version, convert and run the
// bundled example), checks what must not ship (bin/dev.js, source maps), and prints the tarball,
// the packages installed and their size on disk: the figures README's "What you install" quotes.
//
// The empty folder gets a lockfile made from this repository's: b158 (the tarball) plus exactly the
// production packages package-lock.json pins, at the same paths, so the install is offline and
// reproducible; a fresh `npm install b158` resolves the same ranges and may pick newer patches.
//
// Too slow for every CI run (about a minute); run it after changing dependencies or "files":
//   npm run build && node scripts/check-install.mjs
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const repo = fileURLToPath(new URL("..", import.meta.url));
const npm = process.platform === "win32" ? "npm.cmd" : "npm";
const npx = process.platform === "win32" ? "npx.cmd" : "npx";
const run = (cmd, args, cwd) => execFileSync(cmd, args, { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });

if (!existsSync(join(repo, "dist", "index.js"))) throw new Error("build first: npm run build");
const work = mkdtempSync(join(tmpdir(), "b158-install-"));
try {
  const pkg = JSON.parse(readFileSync(join(repo, "package.json"), "utf8"));
  const tarballName = run(npm, ["pack", "--ignore-scripts", "--silent", "--pack-destination", work], repo).trim().split("\n").pop();
  const tarball = join(work, tarballName);
  const entries = run("tar", ["-tzf", tarball], work).trim().split("\n");
  console.log(`packed ${tarballName}: ${kib(statSync(tarball).size)} KiB, ${entries.length} files`);

  const app = join(work, "app");
  mkdirSync(app);
  const spec = `file:../${tarballName}`;
  const lock = lockfile(pkg, spec, tarball);
  // this repository's overrides of production packages (msgpackr-extract's pin), as a user would need to
  // write them: a dependency's overrides do not apply to the project installing it
  const overrides = Object.fromEntries(Object.entries(pkg.overrides ?? {}).filter(([name]) => `node_modules/${name}` in lock.packages));
  writeFileSync(join(app, "package.json"), JSON.stringify({ name: "app", version: "1.0.0", private: true, dependencies: { [pkg.name]: spec }, overrides }, null, 2));
  writeFileSync(join(app, "package-lock.json"), JSON.stringify(lock, null, 2));
  if (Object.keys(overrides).length > 0) console.log(`overrides (from package.json): ${JSON.stringify(overrides)}`);
  run(npm, ["ci", "--offline", "--no-audit", "--no-fund", "--loglevel=error"], app);

  const installed = join(app, "node_modules", pkg.name);
  if (existsSync(join(installed, "bin", "dev.js"))) throw new Error("bin/dev.js was shipped");
  const maps = walk(installed).filter((f) => f.endsWith(".map"));
  if (maps.length > 0) throw new Error(`${maps.length} source maps were shipped, e.g. ${maps[0]}`);
  if (!existsSync(join(installed, "LICENSE"))) throw new Error("no LICENSE in the package");

  const packages = run(npm, ["ls", "--all", "--parseable"], app).trim().split("\n").slice(1);
  const files = walk(join(app, "node_modules")).map((f) => ({ f, stat: statSync(f) }));
  const bytes = files.reduce((sum, { stat }) => sum + stat.size, 0);
  const disk = files.reduce((sum, { stat }) => sum + stat.blocks * 512, 0);
  const sizeOf = (dir) => files.filter(({ f }) => f.startsWith(dir + "/")).reduce((sum, { stat }) => sum + stat.size, 0);
  console.log(`installed: ${pkg.name} and ${packages.length - 1} dependencies, ${(bytes / 1e6).toFixed(1)} MB of files (${(disk / 1e6).toFixed(1)} MB on disk), ${(sizeOf(installed) / 1e6).toFixed(1)} MB of it ${pkg.name} itself`);
  const largest = packages.slice(1).map((dir) => ({ name: dir.slice(dir.lastIndexOf("node_modules/") + 13), bytes: sizeOf(dir) })).sort((a, b) => b.bytes - a.bytes).slice(0, 6);
  console.log(`largest: ${largest.map((p) => `${p.name} ${(p.bytes / 1e6).toFixed(1)} MB`).join(", ")}`);

  // and it works, the way README says to use it
  console.log(run(npx, [pkg.name, "--version"], app).trim());
  run(npx, [pkg.name, "convert", join("node_modules", pkg.name, "fixtures", "example"), "-o", "example.b158", "--layout", "tq2_0"], app);
  const text = run(npx, [pkg.name, "run", "example.b158", "--prompt", "The quick brown fox", "-n", "4"], app);
  if (text.trim() === "") throw new Error("b158 run printed nothing");
  console.log("OK: the installed package converts and runs the bundled example");
} finally {
  if (!process.env.KEEP) rmSync(work, { recursive: true, force: true });
  else console.log(work);
}

/** The app's lockfile: b158 from the tarball, and the production packages of this repository's lockfile. */
function lockfile(pkg, spec, tarball) {
  const lock = JSON.parse(readFileSync(join(repo, "package-lock.json"), "utf8"));
  const packages = {
    "": { name: "app", version: "1.0.0", dependencies: { [pkg.name]: spec } },
    [`node_modules/${pkg.name}`]: {
      version: pkg.version,
      resolved: spec,
      integrity: `sha512-${createHash("sha512").update(readFileSync(tarball)).digest("base64")}`,
      license: pkg.license,
      dependencies: pkg.dependencies,
      bin: pkg.bin,
      engines: pkg.engines,
    },
  };
  for (const [path, entry] of Object.entries(lock.packages)) {
    // dev packages stay out; so do the local stand-ins of node-llama-cpp's GPU binaries (a dev dependency's)
    if (path === "" || entry.dev || entry.link || entry.version === undefined || (entry.resolved !== undefined && !/^https?:/.test(entry.resolved))) continue;
    const { devOptional, ...rest } = entry;
    packages[path] = devOptional ? { ...rest, optional: true } : rest;
  }
  return { name: "app", version: "1.0.0", lockfileVersion: 3, requires: true, packages };
}

function walk(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) => (d.isDirectory() ? walk(join(dir, d.name)) : d.isFile() ? [join(dir, d.name)] : []));
}

function kib(bytes) {
  return Math.round(bytes / 1024);
}
