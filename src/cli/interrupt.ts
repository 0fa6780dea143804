/**
 * Ctrl-C for long commands: the first SIGINT aborts the signal the library watches (it then stops,
 * removes its partial output and throws E_INTERRUPTED, exit 130). The one place commands get their
 * abort signal from, so other signals can be added here for every command at once.
 */
export interface Interrupt {
  readonly signal: AbortSignal;
  /** Stops listening; call in `finally`. */
  dispose(): void;
}

export function abortOnInterrupt(): Interrupt {
  const controller = new AbortController();
  const onSignal = () => controller.abort();
  process.once("SIGINT", onSignal);
  return {
    signal: controller.signal,
    dispose: () => void process.removeListener("SIGINT", onSignal),
  };
}
