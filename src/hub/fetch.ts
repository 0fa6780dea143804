import { B158Error } from "../errors.js";

/**
 * A fetch that retries what is worth retrying: 429 and 5xx answers and dropped connections, with
 * exponential backoff (honouring Retry-After). @huggingface/hub retries nothing on plain HTTP, so
 * every Hub call b158 makes goes through this. It is also how a Hub call is stopped: the library's
 * downloads take no abort signal, so `signal` is added to every request here, and once it fires
 * every call (and every backoff) ends at once with E_INTERRUPTED.
 */
export interface RetryOptions {
  readonly attempts?: number;
  /** First backoff; doubles each time. */
  readonly baseDelayMs?: number;
  readonly maxDelayMs?: number;
  readonly fetch?: typeof fetch;
  readonly onRetry?: (info: { url: string; attempt: number; reason: string; delayMs: number }) => void;
  /** Ctrl-C: aborts the request in flight (its body too) and fails this and every later call with E_INTERRUPTED. */
  readonly signal?: AbortSignal;
}

const RETRY_STATUS = new Set([408, 429, 500, 502, 503, 504]);

export function retryingFetch(options: RetryOptions = {}): typeof fetch {
  const attempts = options.attempts ?? 5;
  const base = options.baseDelayMs ?? 500;
  const max = options.maxDelayMs ?? 30_000;
  const inner = options.fetch ?? fetch;
  const stop = options.signal;
  return async (input, init) => {
    const url = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
    const signal = stop === undefined ? init?.signal : init?.signal ? AbortSignal.any([stop, init.signal]) : stop;
    for (let attempt = 1; ; attempt++) {
      if (stop?.aborted) throw interrupted(url);
      let reason: string;
      let retryAfter: number | undefined;
      try {
        const response = await inner(input, signal ? { ...init, signal } : init);
        if (!RETRY_STATUS.has(response.status) || attempt >= attempts) return response;
        reason = `HTTP ${response.status}`;
        // no header is no hint (Number(null) would be 0: an immediate retry)
        const header = Number(response.headers.get("retry-after") ?? Number.NaN);
        if (Number.isFinite(header) && header >= 0) retryAfter = header * 1000;
        await response.body?.cancel().catch(() => undefined);
      } catch (error) {
        if (stop?.aborted) throw interrupted(url);
        if (attempt >= attempts || init?.signal?.aborted) throw error;
        reason = (error as Error).message;
      }
      const delayMs = Math.min(max, retryAfter ?? base * 2 ** (attempt - 1));
      options.onRetry?.({ url, attempt, reason, delayMs });
      await sleep(delayMs, stop);
    }
  };
}

function interrupted(url: string): B158Error {
  return new B158Error("E_INTERRUPTED", `interrupted (Ctrl-C) during a Hub request (${url.replace(/\?.*$/, "")})`, { details: { url } });
}

/** Resolves after `ms`, or at once when `signal` fires (the caller's next check then stops). */
function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}
