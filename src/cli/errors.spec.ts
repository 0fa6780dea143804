import { Parser } from "@oclif/core";
import { describe, expect, it } from "vitest";
import Convert from "../commands/convert.js";
import Eval from "../commands/eval.js";
import { B158Error } from "../errors.js";
import { parseLayoutId } from "../pack/layouts.js";
import { normalizeOptionCase } from "./base-command.js";
import { renderError, toB158Error, type CommandShape } from "./errors.js";
import { closest } from "./suggest.js";

/** oclif's real parse error for `argv`, translated as a command's catch() does. */
async function usageErrorFor(command: typeof Convert | typeof Eval, argv: string[]): Promise<B158Error> {
  const error = await Parser.parse(argv, { flags: command.flags as never, args: command.args as never, strict: true }).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error, "oclif accepted the command line").toBeDefined();
  const translated = toB158Error(error, { id: command === Convert ? "convert" : "eval", flags: command.flags, args: command.args } as unknown as CommandShape);
  expect(translated).toBeInstanceOf(B158Error);
  return translated!;
}

describe("oclif parse errors become coded usage errors", () => {
  it("a missing argument: E_USAGE naming it and the usage line, without oclif's unrelated notes", async () => {
    const error = await usageErrorFor(Convert, []);
    expect(error.code).toBe("E_USAGE");
    expect(error.exitCode).toBe(2);
    expect(error.message).toMatch(/^b158 convert: missing SOURCE: The checkpoint: .*hf:\/\/org\/name/);
    expect(error.message + error.hint).not.toMatch(/Note:|--help\n|See more help/);
    expect(error.details).toMatchObject({ missing: ["source"] });
    expect(error.hint).toBe("Usage: b158 convert SOURCE -o <file> --layout <i2_s|tl1|tl2|tq1_0|tq2_0|q2_0> (b158 convert --help lists every flag).");
  });

  it("an unknown layout: E_LAYOUT_UNKNOWN with the closest layout", async () => {
    const error = await usageErrorFor(Convert, ["x", "-o", "y", "--layout", "tq3_0"]);
    expect(error.toJSON()).toMatchObject({ code: "E_LAYOUT_UNKNOWN", exit: 2, hint: "Did you mean --layout tq1_0?", details: { flag: "layout", value: "tq3_0" } });
  });

  it("a mistyped flag: E_USAGE with a suggestion", async () => {
    const error = await usageErrorFor(Convert, ["x", "-o", "y", "--layot", "tq2_0"]);
    expect(error.code).toBe("E_USAGE");
    expect(error.hint).toContain("Did you mean --layout?");
  });

  it("a flag value that does not parse, and flags that exclude each other", async () => {
    const threads = await usageErrorFor(Convert, ["x", "-o", "y", "--layout", "tq2_0", "--threads", "many"]);
    expect(threads.message).toContain("--threads: expected an integer but received: many");
    const exclusive = await usageErrorFor(Eval, ["a", "b", "--text", "t", "--tokens", "1"]);
    expect(exclusive.code).toBe("E_USAGE");
    expect(exclusive.message).not.toContain("The following error");
    expect(exclusive.message).toMatch(/--tokens.* cannot also be provided when using --text|--text.* cannot also be provided when using --tokens/);
  });

  it("anything else is a bug: E_INTERNAL (exit 70) whose rendering carries the stack", () => {
    const bug = new TypeError("Cannot read properties of undefined (reading 'x')");
    const error = toB158Error(bug)!;
    expect(error.code).toBe("E_INTERNAL");
    expect(error.exitCode).toBe(70);
    expect(renderError(error)).toContain(bug.stack!);
  });

});

describe("layout names in any case", () => {
  it("the CLI rewrites option values that differ only in case, nothing else", () => {
    const flags = Convert.flags as never;
    expect(normalizeOptionCase(["x", "--layout", "TQ2_0", "--format=GGUF", "-o", "Y.GGUF"], flags)).toEqual(["x", "--layout", "tq2_0", "--format=gguf", "-o", "Y.GGUF"]);
    expect(normalizeOptionCase(["x", "--layout", "TQ3_0"], flags)).toEqual(["x", "--layout", "TQ3_0"]);
    expect(normalizeOptionCase(["--", "--layout", "TQ2_0"], flags)).toEqual(["--", "--layout", "TQ2_0"]);
  });

  it("the library takes any case and refuses unknown names with E_LAYOUT_UNKNOWN", () => {
    expect(parseLayoutId("TQ2_0")).toBe("tq2_0");
    expect(() => parseLayoutId("tq3_0")).toThrow(expect.objectContaining({ code: "E_LAYOUT_UNKNOWN" }));
    expect(() => parseLayoutId(undefined)).toThrow(expect.objectContaining({ code: "E_LAYOUT_UNKNOWN" }));
  });
});

describe("did you mean", () => {
  const commands = ["convert", "eval", "export", "inspect", "pull", "push", "run", "validate"];
  it.each([
    ["conver", "convert"],
    ["vaildate", "validate"],
    ["insp", "inspect"],
    ["exprt", "export"],
  ])("%s -> %s", (typed, meant) => expect(closest(typed, commands)).toBe(meant));
  it("nothing when nothing is close", () => expect(closest("frobnicate", commands)).toBeUndefined());
});
