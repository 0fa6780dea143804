/**
 * The one place long commands (convert, export, pull, push, eval, run) get their abort signal from.
 * SIGINT (Ctrl-C), SIGTERM (what `timeout`, CI cancellation and `docker stop` send) and SIGHUP abort
 * it with the signal's name as the reason: the library then stops, removes its partial output and
 * throws E_INTERRUPTED (exit 130). Each handler runs once: a second signal ends the process at once.
 */
export interface Interrupt {
  readonly signal: AbortSignal;
  /** Stops listening; call in `finally`. */
  dispose(): void;
}

const STOP_SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP"] as const;

export function abortOnInterrupt(): Interrupt {
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
