import { randomBytes } from "node:crypto";
import { open, readFile, rm, stat, writeFile } from "node:fs/promises";
import { hostname } from "node:os";
import { interruptedError, ioError } from "../errors.js";

/**
 * A lock file shared by processes, like the per-blob locks Python's huggingface_hub takes
 * (b158 keeps them at blobs/<hash>.lock): created with O_EXCL and holding its owner
 * `{pid, host, token}`. Node has no flock, so a lock left by a killed process is recognised by its
 * owner being gone (same host, no such pid) and taken over; a lock from another host is waited
 * for. Taking over happens under a guard file, and removes only the very lock judged stale.
 */
export interface LockOwner {
  readonly pid: number;
  readonly host: string;
  readonly token: string;
}

export interface LockOptions {
  readonly signal?: AbortSignal;
  /** Called once per lock when it must wait, with the owner holding it. */
  readonly onWait?: (owner: LockOwner | undefined) => void;
  /** Poll interval while waiting (default 100 ms). */
  readonly pollMs?: number;
}

export interface HeldLock {
  readonly path: string;
  /** Removes the lock file if it is still this holder's. */
  release(): Promise<void>;
}

const HOST = hostname();
/** An unreadable lock (created, not yet written) this old is a crash between the two steps. */
const UNREADABLE_GRACE_MS = 10_000;

export async function acquireLock(path: string, options: LockOptions = {}): Promise<HeldLock> {
  const owner: LockOwner = { pid: process.pid, host: HOST, token: randomBytes(8).toString("hex") };
  const content = JSON.stringify(owner);
  let told = false;
  for (;;) {
    if (options.signal?.aborted) throw interruptedError(path, "waiting for the lock", options.signal, "the lock is left to its holder");
    try {
      const handle = await open(path, "wx");
      try {
        await handle.writeFile(content);
      } finally {
        await handle.close();
      }
      return { path, release: () => releaseLock(path, content) };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw ioError(path, "create the lock file", error);
    }
    const seen = await readFile(path, "utf8").catch((error: NodeJS.ErrnoException) => (error.code === "ENOENT" ? undefined : Promise.reject(ioError(path, "read the lock file", error))));
    if (seen === undefined) continue; // released meanwhile: try again at once
    const holder = parseOwner(seen);
    if (await isStale(path, holder)) {
      await takeOver(path, seen, owner);
      continue;
    }
    if (!told) {
      told = true;
      options.onWait?.(holder);
    }
    await new Promise((resolve) => setTimeout(resolve, options.pollMs ?? 100));
  }
}

function parseOwner(text: string): LockOwner | undefined {
  try {
    const value = JSON.parse(text) as Partial<LockOwner>;
    return typeof value.pid === "number" && typeof value.host === "string" && typeof value.token === "string" ? (value as LockOwner) : undefined;
  } catch {
    return undefined;
  }
}

async function isStale(path: string, holder: LockOwner | undefined): Promise<boolean> {
  if (holder === undefined) {
    const age = await stat(path).then((s) => Date.now() - s.mtimeMs, () => 0);
    return age > UNREADABLE_GRACE_MS;
  }
  return holder.host === HOST && !isRunning(holder.pid);
}

/**
 * Removes the stale lock, under a guard file only one taker holds at a time: the holder re-reads
 * the lock and removes it only if it is still the stale one judged, so a lock another process has
 * taken since (a fresh token) is never touched. Takers that find the guard held just poll again.
 * A guard left by a process killed inside this short step is cleared like any stale lock.
 */
async function takeOver(path: string, seen: string, owner: LockOwner): Promise<void> {
  const guard = `${path}.takeover`;
  const content = JSON.stringify(owner);
  try {
    await writeFile(guard, content, { flag: "wx" });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw ioError(guard, "create the take-over guard", error);
    const held = await readFile(guard, "utf8").catch(() => undefined);
    if (held !== undefined && (await isStale(guard, parseOwner(held)))) await removeIfUnchanged(guard, held);
    return;
  }
  try {
    await removeIfUnchanged(path, seen);
  } finally {
    await removeIfUnchanged(guard, content);
  }
}

async function removeIfUnchanged(path: string, content: string): Promise<void> {
  const current = await readFile(path, "utf8").catch(() => undefined);
  if (current === content) await rm(path, { force: true });
}

function releaseLock(path: string, content: string): Promise<void> {
  return removeIfUnchanged(path, content);
}

/** True unless signalling `pid` says there is no such process (EPERM: it exists, as another user). */
export function isRunning(pid: number): boolean {
  if (!(pid > 0)) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code !== "ESRCH";
  }
}
