import { Command, Flags, ux, type Interfaces } from "@oclif/core";
import { B158Error } from "../errors.js";
import { renderError, toB158Error, type CommandShape } from "./errors.js";
import { Progress, progressMode } from "./progress.js";

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- oclif's own FlagOutput / ArgOutput, which it does not export
type Output = { [name: string]: any };

/** `--quiet` for the commands that show progress (their "GLOBAL FLAGS", beside --json). */
export const progressFlags = {
  quiet: Flags.boolean({ char: "q", helpGroup: "GLOBAL", description: "No progress or log lines on stderr (errors still print)." }),
};

/**
 * Shared behaviour of b158 commands:
 * - every failure is a B158Error (oclif's parse errors become E_USAGE / E_LAYOUT_UNKNOWN, anything
 *   else E_INTERNAL) with the exit status of its code; under --json stdout holds exactly
 *   `{"error": {code, message, hint, details, exit}}`, otherwise stderr gets "Error / Code / Try this";
 * - option values are matched case-insensitively (`--layout TQ2_0`, as llama-quantize accepts);
 * - progress goes to stderr in one style (src/cli/progress.ts), also under --json.
 */
export abstract class B158Command extends Command {
  /**
   * Plain JSON text. oclif's default colourizer tokenizes the whole document into one object per
   * token (1.3 GB of heap for the 50 MB report of a file with 150,000 tensors) to colour it.
   */
  override logJson(json: unknown): void {
    ux.stdout(JSON.stringify(json, null, 2));
  }

  /**
   * oclif ends a failed command with process.exit, which drops what a pipe has not taken yet: a
   * long report printed before the failure (validate's) would be cut at 64 KiB. Wait for it first.
   */
  override async finally(err: Error | undefined): Promise<unknown> {
    const result = await super.finally(err);
    if (err !== undefined && process.stdout.writableLength > 0) await new Promise((resolve) => process.stdout.once("drain", resolve));
    return result;
  }

  protected override toErrorJson(err: unknown): unknown {
    if (err instanceof B158Error) return { error: err.toJSON() };
    return super.toErrorJson(err);
  }

  private activeProgress: Progress | undefined;

  protected override async parse<F extends Output, B extends Output, A extends Output>(
    options?: Interfaces.Input<F, B, A>,
    argv: string[] = this.argv,
  ): Promise<Interfaces.ParserOutput<F, B, A>> {
    const flags = { ...(options?.baseFlags ?? {}), ...(options?.flags ?? {}) } as Record<string, { char?: string; options?: readonly string[] } | undefined>;
    try {
      return await super.parse(options, normalizeOptionCase(argv, flags));
    } finally {
      // a command line that failed to parse was parsed: oclif's "did not parse its arguments" warning is for commands that never call parse
      this.parsed = true;
    }
  }

  protected override async catch(err: Error & { exitCode?: number }): Promise<unknown> {
    this.activeProgress?.end();
    const error = toB158Error(err, this.ctor as unknown as CommandShape);
    if (error === undefined) return super.catch(err);
    process.exitCode = error.exitCode;
    if (this.jsonEnabled()) {
      this.logJson({ error: error.toJSON() });
      if (error.code === "E_INTERNAL") process.stderr.write(`${renderError(error)}\n`);
      return undefined;
    }
    process.stderr.write(`${renderError(error)}\n`);
    // printed: oclif's handler only exits with error.oclif.exit
    throw Object.assign(error, { skipOclifErrorHandling: true });
  }

  /** The command's progress reporter on stderr (off with --quiet). */
  protected progress(quiet = false): Progress {
    this.activeProgress?.end();
    this.activeProgress = new Progress({ mode: progressMode(quiet), stream: process.stderr });
    return this.activeProgress;
  }
}

/** Rewrites option values that differ from a flag's options only in case: `--layout TQ2_0` -> `tq2_0`. */
export function normalizeOptionCase(argv: readonly string[], flags: Readonly<Record<string, { char?: string; options?: readonly string[] } | undefined>>): string[] {
  const byToken = new Map<string, readonly string[]>();
  for (const [name, flag] of Object.entries(flags)) {
    if (flag?.options === undefined) continue;
    byToken.set(`--${name}`, flag.options);
    if (flag.char !== undefined) byToken.set(`-${flag.char}`, flag.options);
  }
  const fix = (value: string, options: readonly string[]) => (options.includes(value) ? value : (options.find((o) => o.toLowerCase() === value.toLowerCase()) ?? value));
  const out = [...argv];
  for (let i = 0; i < out.length; i++) {
    const token = out[i]!;
    if (token === "--") break;
    const eq = token.indexOf("=");
    if (token.startsWith("--") && eq > 0) {
      const options = byToken.get(token.slice(0, eq));
      if (options !== undefined) out[i] = `${token.slice(0, eq + 1)}${fix(token.slice(eq + 1), options)}`;
      continue;
    }
    const options = byToken.get(token);
    if (options !== undefined && i + 1 < out.length) out[i + 1] = fix(out[i + 1]!, options);
  }
  return out;
}
