import { readFileSync } from "node:fs";

/** The tool's own name and version, from package.json (recorded in reports and, later, provenance). */
const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { name: string; version: string };

export const TOOL: { readonly name: string; readonly version: string } = Object.freeze({ name: pkg.name, version: pkg.version });
