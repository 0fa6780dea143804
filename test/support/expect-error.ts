import { expect } from "vitest";
import { B158Error, type ErrorCode } from "../../src/errors.js";

/** Asserts a B158Error with exactly `code` (never its wording), and that the message names `file` when given. */
export async function expectB158Error(action: (() => unknown) | Promise<unknown>, code: ErrorCode, file?: string): Promise<B158Error> {
  let caught: unknown;
  try {
    await (typeof action === "function" ? action() : action);
  } catch (error) {
    caught = error;
  }
  expect(caught, `expected ${code}, got no error`).toBeDefined();
  if (!(caught instanceof B158Error)) throw new Error(`expected B158Error ${code}, got ${String((caught as Error)?.stack ?? caught)}`);
  expect(caught.code).toBe(code);
  if (file !== undefined) expect(caught.message).toContain(file);
  return caught;
}
