/**
 * A fetch that retries what is worth retrying: 429 and 5xx answers and dropped connections, with
 * exponential backoff (honouring Retry-After). @huggingface/hub retries nothing on plain HTTP, so
 * every Hub call b158 makes goes through this.
 */
export interface RetryOptions {
  readonly attempts?: number;
  /** First backoff; doubles each time. */
  readonly baseDelayMs?: number;
  readonly maxDelayMs?: number;
  readonly fetch?: typeof fetch;
  readonly onRetry?: (info: { url: string; attempt: number; reason: string; delayMs: number }) => void;
}

const RETRY_STATUS = new Set([408, 429, 500, 502, 503, 504]);

export function retryingFetch(options: RetryOptions = {}): typeof fetch {
  const attempts = options.attempts ?? 5;
  const base = options.baseDelayMs ?? 500;
  const max = options.maxDelayMs ?? 30_000;
  const inner = options.fetch ?? fetch;
  return async (input, init) => {
    const url = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
    for (let attempt = 1; ; attempt++) {
      let reason: string;
      let retryAfter: number | undefined;
      try {
        const response = await inner(input, init);
        if (!RETRY_STATUS.has(response.status) || attempt >= attempts) return response;
        reason = `HTTP ${response.status}`;
        const header = Number(response.headers.get("retry-after"));
        if (Number.isFinite(header) && header >= 0) retryAfter = header * 1000;
        await response.body?.cancel().catch(() => undefined);
      } catch (error) {
        if (attempt >= attempts || init?.signal?.aborted) throw error;
        reason = (error as Error).message;
      }
      const delayMs = Math.min(max, retryAfter ?? base * 2 ** (attempt - 1));
      options.onRetry?.({ url, attempt, reason, delayMs });
      await new Promise((resolve) => setTimeout(resolve, delayMs));
    }
  };
}
