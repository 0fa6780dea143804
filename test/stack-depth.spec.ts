import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import ts from "typescript";
import { describe, expect, it } from "vitest";
import { REPO } from "./support/run-cli.js";

/**
 * `f(...items)` passes every item as an argument: past about 120,000 of them V8 throws "RangeError:
 * Maximum call stack size exceeded", and a file may hold a million tensors. So library code never
 * spreads into a call, except where the spread list is small by construction (listed below with
 * the reason). test/malformed/claims.spec.ts runs files with 150,000 tensors end to end.
 */
const BOUNDED: Readonly<Record<string, string>> = {
  "src/convert/validate-b158.ts: ...ternaryDiagnostics(t, check)": "at most four diagnostics per tensor",
  "src/export/gguf-tokenizer.ts: ...specialTokens(input, tokens, model)": "a handful of special-token keys",
  "src/export/gguf.ts: ...tokenizer.diagnostics": "a few tokenizer warnings",
  "src/export/gguf.ts: ...planTensor(b158, t, name, target, weights, embeddings, ternaryHeads).map((p) => ({ ...p, from: t }))": "one or two GGUF tensors per tensor",
  "src/export/gguf.ts: ...compat.diagnostics.filter((d) => d.severity !== \"info\")": "a few diagnostics per runtime table",
  "src/model/plan.ts: ...modelActivationDiagnostics({ family: family.id, hfArchitecture: config?.architectures[0], config: config?.raw as Record<string, unknown> | undefined })": "one diagnostic per target runtime",
  "src/export/gguf-target.ts: ...minicpmMetadata(b158, f32)": "MiniCPM's three or four scaling keys",
  "src/export/gguf-tokenizer.ts: ...spm.kvs": "a fixed set of tokenizer keys (each key's array is one argument)",
  "src/export/gguf.ts: ...gemmaWindowWarning(b158)": "zero or one warning",
  "src/runtime/architectures.ts: ...Object.values(PROJECTION_NORM_ROLES)": "the seven projection norms",
  "src/hub/model-card.ts: ...wrongOutputs(file, wrong)": "one line per runtime that computes the wrong activation",
  "src/hub/model-card.ts: ...(exportHere ? [`${b158} export ${local} -o ${local.replace(/\\.b158$/, \"\")}.gguf`] : [])": "zero or one line",
};

/** Build-time WebAssembly text generators: their spreads are fixed lists of locals, no file decides them. */
const GENERATORS = /^src\/runtime\/kernels\/wasm\/gen-[^/]+\.ts$/;

function spreadCalls(): string[] {
  const files = execFileSync("git", ["ls-files", "src"], { cwd: REPO, encoding: "utf8" })
    .split("\n")
    .filter((f) => f.endsWith(".ts") && !f.endsWith(".spec.ts") && !GENERATORS.test(f));
  const found: string[] = [];
  for (const file of files) {
    const source = ts.createSourceFile(file, readFileSync(join(REPO, file), "utf8"), ts.ScriptTarget.Latest, true);
    const visit = (node: ts.Node): void => {
      if (ts.isSpreadElement(node) && (ts.isCallExpression(node.parent) || ts.isNewExpression(node.parent))) {
        found.push(`${file}: ${node.getText(source).replace(/\s+/g, " ")}`);
      }
      ts.forEachChild(node, visit);
    };
    visit(source);
  }
  return found;
}

describe("stack depth does not grow with a file's contents", () => {
  it("no call spreads a list whose length a file decides", () => {
    expect(spreadCalls().filter((call) => BOUNDED[call] === undefined)).toEqual([]);
  });
});
