import { expect } from "vitest";
import { B158Error, ERROR_CODES, EXIT, type ErrorCode } from "../../src/errors.js";

/**
 * Asserts that `action` throws (or rejects with) a B158Error carrying exactly `code`, with the exit
 * status its code's class prescribes, and (when `file` is given) that the message names the file.
 * Never looks at wording beyond the file name: messages may be reworded, codes may not.
 */
export async function expectB158Error(action: (() => unknown) | Promise<unknown>, code: ErrorCode, file?: string): Promise<B158Error> {
  let caught: unknown;
  let threw = false;
  try {
    await (typeof action === "function" ? action() : action);
  } catch (error) {
    caught = error;
    threw = true;
  }
  if (!threw) expect.fail(`expected B158Error ${code}, but nothing was thrown`);
  if (!(caught instanceof B158Error)) {
    expect.fail(`expected B158Error ${code}, got ${caught instanceof Error ? `${caught.name}: ${caught.message}` : String(caught)}`);
  }
  expect(caught.code).toBe(code);
  expect(caught.exitCode).toBe(EXIT[ERROR_CODES[code].exit]);
  if (file !== undefined) expect(caught.message, "the message names the file").toContain(file);
  return caught;
}
