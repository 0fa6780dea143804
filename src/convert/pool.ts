import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import { B158Error, type ErrorCode } from "../errors.js";
import { runJob, type Outcome, type PoolJob } from "./jobs.js";
import type { PayloadRange, PayloadScan } from "./payload-scan.js";
import type { TernaryResult, TernaryTask } from "./task.js";

/**
 * A fixed pool of worker threads for ternary tasks and, once the file is written, payload scans.
 * With `threads <= 0`, or when the compiled worker is not there (tests running the TypeScript
 * sources), jobs run inline on this thread: same functions, same bytes.
 */
export class TaskPool {
  private readonly workers: Worker[] = [];
  private readonly idle: Worker[] = [];
  private readonly queue: { id: number; job: PoolJob }[] = [];
  private readonly pending = new Map<number, { resolve: (r: Outcome) => void; reject: (e: unknown) => void }>();
  private nextId = 0;
  readonly threads: number;

  constructor(threads: number) {
    const script = new URL("./worker.js", import.meta.url);
    const usable = threads > 0 && existsSync(fileURLToPath(script));
    this.threads = usable ? threads : 0;
    for (let i = 0; i < this.threads; i++) {
      const worker = new Worker(script);
      worker.on("message", (message: { id: number; result?: Outcome; error?: { code: ErrorCode; message: string; hint?: string; details: Record<string, unknown> } }) => {
        const waiter = this.pending.get(message.id);
        this.pending.delete(message.id);
        this.idle.push(worker);
        this.dispatch();
        if (waiter === undefined) return;
        if (message.error) {
          const { code, message: text, hint, details } = message.error;
          waiter.reject(new B158Error(code, text, { ...(hint === undefined ? {} : { hint }), details }));
        } else waiter.resolve(message.result!);
      });
      worker.on("error", (error) => {
        for (const waiter of this.pending.values()) waiter.reject(new B158Error("E_INTERNAL", `conversion worker crashed: ${error.message}`, { cause: error }));
        this.pending.clear();
      });
      this.workers.push(worker);
      this.idle.push(worker);
    }
  }

  run(task: TernaryTask): Promise<TernaryResult> {
    return this.submit({ kind: "ternary", task }) as Promise<TernaryResult>;
  }

  /** Scans payload ranges of the file at `path` (payload-scan.ts). */
  scan(path: string, ranges: readonly PayloadRange[]): Promise<PayloadScan[]> {
    return this.submit({ kind: "scan", path, ranges }) as Promise<PayloadScan[]>;
  }

  private submit(job: PoolJob): Promise<Outcome> {
    if (this.threads === 0) return runJob(job);
    return new Promise((resolve, reject) => {
      const id = this.nextId++;
      this.pending.set(id, { resolve, reject });
      this.queue.push({ id, job });
      this.dispatch();
    });
  }

  private dispatch(): void {
    while (this.idle.length > 0 && this.queue.length > 0) this.idle.pop()!.postMessage(this.queue.shift());
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
    this.workers.length = 0;
  }
}
