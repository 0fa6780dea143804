import { describe, expect, it } from "vitest";
import { parseStrictJson, StrictJsonError, MAX_JSON_DEPTH } from "./strict-json.js";

describe("parseStrictJson", () => {
  it("parses the same values as JSON.parse for well-formed input", () => {
    const samples = ['{"a":[1,2.5,-3e2,true,false,null],"b":{"c":"\\u00e9\\n"}}', "[]", '""', "0", ' { "x" : [ ] } '];
    for (const text of samples) expect(parseStrictJson(text)).toEqual(JSON.parse(text));
  });

  it("reports a duplicate key with its name instead of keeping the last one", () => {
    const error = (() => {
      try {
        parseStrictJson('{"w":{"a":1},"w":{"a":2}}');
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(StrictJsonError);
    expect((error as StrictJsonError).kind).toBe("duplicate");
    expect((error as StrictJsonError).key).toBe("w");
  });

  it("treats keys differing only by escapes as the same key", () => {
    expect(() => parseStrictJson('{"a":1,"\\u0061":2}')).toThrow(StrictJsonError);
  });

  it("bounds nesting depth instead of overflowing the stack", () => {
    const deep = "[".repeat(100_000) + "]".repeat(100_000);
    try {
      parseStrictJson(deep);
      expect.unreachable();
    } catch (e) {
      expect((e as StrictJsonError).kind).toBe("depth");
    }
    const ok = "[".repeat(MAX_JSON_DEPTH) + "]".repeat(MAX_JSON_DEPTH);
    expect(() => parseStrictJson(ok)).not.toThrow();
  });

  it.each(["{", '{"a" 1}', "[1,]", '{"a":1,}', "01", "1.", "NaN", "'x'", '"\u0001"', "{} x", ""])("rejects malformed %j", (text) => {
    try {
      parseStrictJson(text);
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(StrictJsonError);
      expect((e as StrictJsonError).kind).toBe("syntax");
    }
  });

  it("does not let __proto__ keys reach Object.prototype", () => {
    const value = parseStrictJson('{"__proto__":{"polluted":1}}') as Record<string, unknown>;
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.keys(value)).toEqual(["__proto__"]);
  });
});
