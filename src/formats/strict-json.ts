/**
 * A strict JSON parser for headers and indexes we must not trust. JSON.parse silently keeps the
 * last of two duplicate keys, which lets two readers of one file disagree (a polyglot); this
 * parser reports duplicates, bounds nesting depth (no stack overflow on "[[[[..."), and
 * otherwise accepts exactly RFC 8259 JSON. Callers map its failures to their own error codes.
 */

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

export class StrictJsonError extends Error {
  constructor(
    readonly kind: "syntax" | "duplicate" | "depth",
    message: string,
    readonly position: number,
    readonly key?: string,
  ) {
    super(message);
  }
}

/** Deep enough for any real config or header (they nest 3-4 levels), shallow enough to never blow the stack. */
export const MAX_JSON_DEPTH = 64;

const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
// A string is scanned as runs of plain characters and single escapes. One regex over the whole
// body, /(?:plain|escape)*"/, pushes a backtrack entry per character and overflows V8's regexp
// stack (RangeError) on strings of a few million characters, which a 100 MiB header may hold.
const STRING_PLAIN = /[^"\\\u0000-\u001f]*/y;
const STRING_ESCAPE = /\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4})/y;

export function parseStrictJson(text: string): JsonValue {
  let pos = 0;

  const fail = (message: string, at = pos): never => {
    throw new StrictJsonError("syntax", `${message} at position ${at}`, at);
  };
  const skipWhitespace = (): void => {
    while (pos < text.length) {
      const c = text.charCodeAt(pos);
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) pos++;
      else break;
    }
  };
  const parseString = (): string => {
    const start = pos; // at the opening quote
    let at = pos + 1;
    let escaped = false;
    for (;;) {
      STRING_PLAIN.lastIndex = at;
      STRING_PLAIN.test(text);
      at = STRING_PLAIN.lastIndex;
      const c = text[at];
      if (c === '"') break;
      if (c !== "\\") fail("invalid string", start);
      STRING_ESCAPE.lastIndex = at;
      if (!STRING_ESCAPE.test(text)) fail("invalid string", start);
      at = STRING_ESCAPE.lastIndex;
      escaped = true;
    }
    pos = at + 1;
    return escaped ? (JSON.parse(text.slice(start, pos)) as string) : text.slice(start + 1, at);
  };
  const parseValue = (depth: number): JsonValue => {
    if (depth > MAX_JSON_DEPTH) throw new StrictJsonError("depth", `nesting deeper than ${MAX_JSON_DEPTH} at position ${pos}`, pos);
    skipWhitespace();
    const c = text[pos];
    if (c === "{") {
      pos++;
      const object: { [key: string]: JsonValue } = Object.create(null);
      skipWhitespace();
      if (text[pos] === "}") {
        pos++;
        return object;
      }
      for (;;) {
        skipWhitespace();
        if (text[pos] !== '"') fail("expected a string key");
        const keyAt = pos;
        const key = parseString();
        if (Object.hasOwn(object, key)) {
          throw new StrictJsonError("duplicate", `duplicate key "${key}" at position ${keyAt}`, keyAt, key);
        }
        skipWhitespace();
        if (text[pos] !== ":") fail("expected ':'");
        pos++;
        object[key] = parseValue(depth + 1);
        skipWhitespace();
        if (text[pos] === ",") {
          pos++;
          continue;
        }
        if (text[pos] === "}") {
          pos++;
          return object;
        }
        fail("expected ',' or '}'");
      }
    }
    if (c === "[") {
      pos++;
      const array: JsonValue[] = [];
      skipWhitespace();
      if (text[pos] === "]") {
        pos++;
        return array;
      }
      for (;;) {
        array.push(parseValue(depth + 1));
        skipWhitespace();
        if (text[pos] === ",") {
          pos++;
          continue;
        }
        if (text[pos] === "]") {
          pos++;
          return array;
        }
        fail("expected ',' or ']'");
      }
    }
    if (c === '"') return parseString();
    if (text.startsWith("true", pos)) {
      pos += 4;
      return true;
    }
    if (text.startsWith("false", pos)) {
      pos += 5;
      return false;
    }
    if (text.startsWith("null", pos)) {
      pos += 4;
      return null;
    }
    NUMBER.lastIndex = pos;
    const match = NUMBER.exec(text);
    if (match === null) return fail(c === undefined ? "unexpected end of input" : `unexpected character ${JSON.stringify(c)}`);
    pos = NUMBER.lastIndex;
    return Number(match[0]);
  };

  const value = parseValue(0);
  skipWhitespace();
  if (pos !== text.length) fail("unexpected data after the JSON value");
  return value;
}

export function isJsonObject(value: unknown): value is { [key: string]: JsonValue } {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
