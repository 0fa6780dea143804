import { Command, ux } from "@oclif/core";
import { B158Error } from "../errors.js";

/**
 * Shared behaviour of b158 commands: B158Errors become `{"error": {...}}` under --json and a
 * short "Error / Code / Try this" block otherwise (oclif's printer reads our fields), with the
 * exit status from the error's code. Anything else is a bug and keeps its stack.
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

  /** A progress line on stderr, only for people: never under --json or when stderr is not a terminal. */
  protected progress(): ((text: string) => void) & { done(): void } {
    const enabled = process.stderr.isTTY === true && !this.jsonEnabled();
    let last = 0;
    const update = (text: string): void => {
      if (!enabled) return;
      const now = Date.now();
      if (now - last < 100) return;
      last = now;
      const width = Math.max(20, (process.stderr.columns ?? 80) - 1);
      process.stderr.write(`\r${text.slice(0, width).padEnd(width)}`);
    };
    return Object.assign(update, {
      done() {
        if (enabled && last !== 0) process.stderr.write(`\r${" ".repeat(Math.max(20, (process.stderr.columns ?? 80) - 1))}\r`);
      },
    });
  }
}
