import { Errors } from "@oclif/core";
import { B158Error, type ErrorCode } from "../errors.js";
import { closest } from "./suggest.js";

/**
 * Every failure a command reports goes through here: oclif's parse errors become coded usage
 * errors (E_USAGE, E_LAYOUT_UNKNOWN) with a hint and no parser internals, anything that is not a
 * B158Error is a bug (E_INTERNAL, with its stack on stderr), and both render the same way: one JSON
 * document on stdout under --json, a short "Error / Code / Try this" block on stderr otherwise.
 */

/** What the translation needs to know of a command (its class, or its manifest entry). */
export interface CommandShape {
  readonly id: string;
  readonly usage?: string | readonly string[] | undefined;
  readonly flags?: Readonly<Record<string, FlagShape | undefined>> | undefined;
  readonly args?: Readonly<Record<string, ArgShape | undefined>> | undefined;
}
interface FlagShape {
  readonly name?: string;
  readonly char?: string;
  readonly type?: string;
  readonly options?: readonly string[];
  readonly required?: boolean;
  readonly helpValue?: string | string[];
  readonly hidden?: boolean;
}
interface ArgShape {
  readonly name?: string;
  readonly required?: boolean;
  readonly description?: string;
}

/** The B158Error for `err`, or undefined when it is not a failure to report (an oclif exit). */
export function toB158Error(err: unknown, command?: CommandShape): B158Error | undefined {
  if (err instanceof B158Error) return err;
  if (err instanceof Errors.ExitError) return undefined;
  const usage = command === undefined ? undefined : usageError(err, command);
  if (usage !== undefined) return usage;
  const message = err instanceof Error ? err.message : String(err);
  return new B158Error("E_INTERNAL", `unexpected error: ${message}`, {
    hint: "This is a bug in b158: please report it with the command line and the stack trace printed on stderr.",
    cause: err,
  });
}

/** Removes what oclif appends or colours in its parse messages. */
function plain(message: string): string {
  return message
    .replace(/\u001b\[[0-9;]*m/g, "")
    .replace(/\n?See more help with --help\s*$/, "")
    .replace(/^The following errors? occurred:\s*/, "")
    .replace(/\s*\n\s*/g, "; ")
    .trim();
}

function errorName(err: unknown): string {
  return (err as { constructor?: { name?: string } } | undefined)?.constructor?.name ?? "";
}

/** `b158 convert SOURCE -o <file> --layout <i2_s|tl1|...>`: the required arguments and flags. */
export function usageLine(command: CommandShape): string {
  if (command.usage !== undefined) return `b158 ${[command.usage].flat()[0]!}`;
  const parts = [`b158 ${command.id}`];
  for (const [key, arg] of Object.entries(command.args ?? {})) if (arg?.required) parts.push((arg.name ?? key).toUpperCase());
  for (const [key, flag] of Object.entries(command.flags ?? {})) {
    if (!flag?.required) continue;
    const name = flag.char === undefined ? `--${flag.name ?? key}` : `-${flag.char}`;
    const value = flag.options !== undefined ? `<${flag.options.join("|")}>` : ([flag.helpValue].flat()[0] ?? "<value>");
    parts.push(flag.type === "boolean" ? name : `${name} ${value}`);
  }
  return parts.join(" ");
}

function flagNames(command: CommandShape): string[] {
  const names: string[] = [];
  for (const [key, flag] of Object.entries(command.flags ?? {})) {
    if (flag === undefined || flag.hidden) continue;
    names.push(`--${flag.name ?? key}`);
    if (flag.char !== undefined) names.push(`-${flag.char}`);
  }
  return names;
}

function usageHint(command: CommandShape): string {
  return `Usage: ${usageLine(command)} (b158 ${command.id} --help lists every flag).`;
}

function usageError(err: unknown, command: CommandShape): B158Error | undefined {
  if (!(err instanceof Error)) return undefined;
  const name = errorName(err);
  const text = plain(err.message);
  const fail = (code: ErrorCode, message: string, hint: string, details: Record<string, unknown>) => new B158Error(code, `b158 ${command.id}: ${message}`, { hint, details: { command: command.id, ...details } });

  if (name === "RequiredArgsError") {
    const missing = ((err as { args?: ArgShape[] }).args ?? []).map((a) => a.name ?? "argument");
    const described = missing.length === 1 ? command.args?.[missing[0]!]?.description : undefined;
    const what = `missing ${missing.map((m) => m.toUpperCase()).join(", ")}${described === undefined ? "" : `: ${described}`}`;
    return fail("E_USAGE", what, usageHint(command), { missing });
  }
  if (name === "UnexpectedArgsError") {
    const extra = (err as { args?: string[] }).args ?? [];
    return fail("E_USAGE", `unexpected argument${extra.length === 1 ? "" : "s"}: ${extra.join(" ")}`, usageHint(command), { unexpected: extra });
  }
  if (name === "NonExistentFlagsError") {
    const flags = (err as { flags?: string[] }).flags ?? [];
    const known = flagNames(command);
    const suggestions = flags.map((f) => closest(f.replace(/=.*$/, ""), known)).filter((s): s is string => s !== undefined);
    const hint = suggestions.length > 0 ? `Did you mean ${suggestions.join(", ")}? (b158 ${command.id} --help lists every flag)` : `b158 ${command.id} --help lists every flag.`;
    return fail("E_USAGE", `unknown flag${flags.length === 1 ? "" : "s"} ${flags.join(", ")}`, hint, { flags, suggestions });
  }
  const option = /^Expected --([\w-]+)=([\s\S]*) to be one of: (.*)$/.exec(text) ?? /^Flag --([\w-]+)()expects one of these values: (.*)$/.exec(text);
  if (option !== null || name === "FlagInvalidOptionError") {
    const [, flag = "?", value = "", list = ""] = option ?? [];
    const options = list.split(/,\s*/).filter((o) => o.length > 0);
    const guess = closest(value, options);
    const code: ErrorCode = flag === "layout" ? "E_LAYOUT_UNKNOWN" : "E_USAGE";
    const what = flag === "layout" ? "unknown layout" : "not a valid value";
    const hint = guess !== undefined ? `Did you mean --${flag} ${guess}?` : `Choose one of: ${options.join(", ")}.`;
    return fail(code, value === "" ? `--${flag} needs one of ${options.join(", ")}` : `--${flag} ${value}: ${what}; expected one of ${options.join(", ")}`, hint, { flag, value, options });
  }
  if (name === "FailedFlagValidationError" || name === "ViolatedFlagConstraintError") {
    const message = text.replace(/Missing required flag ([\w-]+)/g, "missing required flag --$1");
    return fail("E_USAGE", message, usageHint(command), {});
  }
  const parsing = /^Parsing --([\w-]+)\s*;?\s*([\s\S]*)$/.exec(text);
  if (parsing !== null) {
    const [, flag = "?", reason = ""] = parsing;
    const said = reason.replace(/^No (file|directory) found at /, "no $1 at ");
    return fail("E_USAGE", `--${flag}: ${said.charAt(0).toLowerCase()}${said.slice(1)}`, `b158 ${command.id} --help describes --${flag}.`, { flag });
  }
  if (/^(Flag --|Unexpected flag )/.test(text) || (err as { parse?: unknown }).parse !== undefined) {
    return fail("E_USAGE", text.replace(/^Flag /, ""), usageHint(command), {});
  }
  return undefined;
}

/** `b158 conver`: E_USAGE naming the closest command; for something that looks like a path, how to look into it. */
export function unknownCommand(typed: string, commands: readonly string[]): B158Error {
  const guess = closest(typed, commands);
  const hint =
    guess !== undefined
      ? `Did you mean b158 ${guess}? (b158 help lists every command)`
      : /[/\\.]/.test(typed)
        ? `To see what it holds: b158 inspect ${typed}. b158 help lists every command.`
        : `Commands: ${[...commands].sort().join(", ")}. b158 help <command> describes one.`;
  return new B158Error("E_USAGE", `"${typed}" is not a b158 command`, { hint, details: { command: typed, ...(guess === undefined ? {} : { suggestion: guess }) } });
}

/** The human rendering: message, code and exit status, the hint, and a short cause chain. */
export function renderError(error: B158Error): string {
  const lines = [`Error: ${error.message}`, `Code: ${error.code} (exit ${error.exitCode})`];
  if (error.hint !== undefined) lines.push(`Try this: ${error.hint}`);
  const causes: string[] = [];
  for (let cause = error.cause; cause instanceof Error && causes.length < 3 && error.code !== "E_INTERNAL"; cause = cause.cause) {
    if (!error.message.includes(cause.message)) causes.push(cause.message);
  }
  if (causes.length > 0) lines.push(`Cause: ${causes.join(": ")}`);
  if (error.code === "E_INTERNAL" && error.cause instanceof Error && error.cause.stack !== undefined) lines.push("", error.cause.stack);
  return lines.join("\n");
}
