import { Command, ux } from "@oclif/core";
import { B158Error } from "../errors.js";

const STOP_SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP"] as const;

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

  /**
   * An AbortSignal for long commands (convert, export, pull): SIGINT (Ctrl-C), SIGTERM (what
   * `timeout`, CI cancellation and `docker stop` send) and SIGHUP abort it, with the signal's name
   * as the reason, so the command stops, removes its temp output and exits 130 (E_INTERRUPTED).
   * Each handler runs once: a second signal ends the process at once. dispose() removes them.
   */
  protected stopOnSignals(): { signal: AbortSignal; dispose(): void } {
    const controller = new AbortController();
    const handlers = STOP_SIGNALS.map((name) => {
      const handler = () => controller.abort(name);
      process.once(name, handler);
      return [name, handler] as const;
    });
    return {
      signal: controller.signal,
      dispose: () => {
        for (const [name, handler] of handlers) process.removeListener(name, handler);
      },
    };
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
