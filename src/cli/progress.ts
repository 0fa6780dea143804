import { formatBytes, formatShape } from "../report/format.js";

/**
 * The one progress style of every long command (convert, export, validate, pull, push, eval, run),
 * always on stderr so stdout stays the report or the JSON document.
 *
 * - "tty": one status line, redrawn at most 10 times a second:
 *   `converting  [#######-------------]  35%  1.2 GiB / 3.4 GiB  48.1 MiB/s  0:25  ETA 47 s  <item>`
 * - "lines" (stderr is not a terminal: CI, a pipe, a log file): one line per finished step, as
 *   llama-quantize prints them (`[ 12/291] blk.0.attn_q.weight [2560, 2560] bf16 -> i2_s  12.5 MiB -> 1.6 MiB`),
 *   a line when a phase starts, and, inside long steps, a status line at most every 10 seconds.
 * - "off": --quiet. Errors are not progress: they print whatever the mode.
 *
 * Library code never prints: it reports through callbacks, and commands feed them to this.
 */
export type ProgressMode = "tty" | "lines" | "off";

export interface ProgressStream {
  write(text: string): unknown;
  readonly isTTY?: boolean;
  readonly columns?: number;
}

export interface ProgressOptions {
  readonly mode: ProgressMode;
  readonly stream: ProgressStream;
  /** Milliseconds; injectable for tests. */
  readonly now?: () => number;
  /** Lines mode: the least time between two status lines inside a phase (default 10 s). */
  readonly heartbeatMs?: number;
}

export interface PhaseOptions {
  /** What `done` counts up to; unknown when omitted (no bar, no ETA). */
  readonly total?: number;
  /** "bytes" (shown as KiB/MiB/GiB) or a plural noun: "tensors", "tokens", "files". */
  readonly unit?: string;
  /** Steps of the phase, for `[ i/N]` in front of step lines (default: total when the unit is not bytes). */
  readonly steps?: number;
}

export interface ProgressUpdate {
  /** Units done so far in this phase. */
  readonly done?: number;
  /** Units that arrived without work (cached or resumed downloads): left out of the rate. */
  readonly skipped?: number;
  /** What is being worked on (TTY status line). */
  readonly item?: string;
  /** A finished step: printed as `[ i/N] line` in lines mode (just `line` when the phase has no step count). */
  readonly line?: string;
  /** The step number of `line` (default: one more than the last). */
  readonly step?: number;
}

const TTY_INTERVAL_MS = 100;
const BAR_WIDTH = 20;

export class Progress {
  readonly mode: ProgressMode;
  private readonly stream: ProgressStream;
  private readonly now: () => number;
  private readonly heartbeatMs: number;
  private name = "";
  private options: PhaseOptions = {};
  private started = 0;
  private done = 0;
  private skipped = 0;
  private item = "";
  private step = 0;
  private lastDraw = -Infinity;
  private lastBeat = 0;
  private drawn = false;

  constructor(options: ProgressOptions) {
    this.mode = options.mode;
    this.stream = options.stream;
    this.now = options.now ?? Date.now;
    this.heartbeatMs = options.heartbeatMs ?? 10_000;
  }

  /** Starts a phase ("converting", "validating", "downloading"...): the rate and ETA restart. */
  phase(name: string, options: PhaseOptions = {}): void {
    if (this.mode === "off") return;
    this.name = name;
    this.options = options;
    this.started = this.now();
    this.lastBeat = this.started;
    this.done = 0;
    this.skipped = 0;
    this.item = "";
    this.step = 0;
    if (this.mode === "lines") this.print(`${name}${options.total === undefined ? "" : `: ${this.amount(options.total)}`}`);
    else this.draw(true);
  }

  update(update: ProgressUpdate): void {
    if (this.mode === "off") return;
    if (update.done !== undefined) this.done = update.done;
    if (update.skipped !== undefined) this.skipped = update.skipped;
    if (update.item !== undefined) this.item = update.item;
    if (update.line !== undefined) this.step = update.step ?? this.step + 1;
    if (this.mode === "tty") {
      this.draw(false);
      return;
    }
    const now = this.now();
    if (update.line !== undefined) {
      const steps = this.options.steps ?? (this.options.unit === "bytes" ? undefined : this.options.total);
      this.print(steps === undefined ? update.line : `[${String(this.step).padStart(String(steps).length)}/${steps}] ${update.line}`);
      this.lastBeat = now;
    } else if (now - this.lastBeat >= this.heartbeatMs) {
      this.print(`${this.name}: ${this.status(now)}`);
      this.lastBeat = now;
    }
  }

  /** A line that stays (both modes), e.g. "resuming model.safetensors at 1.2 GiB". */
  note(text: string): void {
    if (this.mode === "off") return;
    if (this.mode === "tty") {
      this.clear();
      this.stream.write(`${text}\n`);
      this.draw(true);
    } else this.print(text);
  }

  /** Clears the status line; the next phase starts a new one. Safe to call more than once. */
  end(): void {
    if (this.mode === "tty") this.clear();
    this.name = "";
  }

  /** `35%  1.2 GiB / 3.4 GiB  48.1 MiB/s  0:25  ETA 47 s` (what is known of it). */
  status(now = this.now()): string {
    const { total, unit } = this.options;
    const elapsedMs = Math.max(0, now - this.started);
    const parts: string[] = [];
    if (total !== undefined && total > 0) parts.push(`${Math.min(100, Math.floor((100 * this.done) / total))}%`);
    if (total !== undefined) parts.push(`${this.amount(this.done, false)} / ${this.amount(total)}`);
    else if (unit !== undefined) parts.push(this.amount(this.done));
    const worked = this.done - this.skipped;
    const rate = elapsedMs >= 1000 && worked > 0 ? worked / (elapsedMs / 1000) : undefined;
    if (rate !== undefined) parts.push(unit === "bytes" ? `${formatBytes(rate)}/s` : `${rate >= 10 ? rate.toFixed(0) : rate.toFixed(1)} ${unit ?? ""}/s`.replace(" /s", "/s"));
    parts.push(formatClock(elapsedMs / 1000));
    if (total !== undefined && this.done < total) parts.push(rate === undefined ? "ETA --" : `ETA ${formatDuration((total - this.done) / rate)}`);
    return parts.join("  ");
  }

  private amount(n: number, withUnit = true): string {
    const unit = this.options.unit;
    if (unit === "bytes") return formatBytes(n);
    return withUnit && unit !== undefined ? `${n} ${unit}` : String(n);
  }

  private draw(force: boolean): void {
    if (this.mode !== "tty" || this.name === "") return;
    const now = this.now();
    if (!force && now - this.lastDraw < TTY_INTERVAL_MS) return;
    this.lastDraw = now;
    const { total } = this.options;
    const filled = total !== undefined && total > 0 ? Math.round((BAR_WIDTH * Math.min(this.done, total)) / total) : undefined;
    const bar = filled === undefined ? "" : `[${"#".repeat(filled)}${"-".repeat(BAR_WIDTH - filled)}]  `;
    const width = Math.max(20, (this.stream.columns || 80) - 1);
    const text = fit(`${this.name}  ${bar}${this.status(now)}`, this.item, width);
    this.stream.write(`\r${text.padEnd(width)}`);
    this.drawn = true;
  }

  private clear(): void {
    if (!this.drawn) return;
    const width = Math.max(20, (this.stream.columns || 80) - 1);
    this.stream.write(`\r${" ".repeat(width)}\r`);
    this.drawn = false;
  }

  private print(text: string): void {
    this.stream.write(`${text}\n`);
  }
}

/** The status and as much of the item's end as `width` allows (a tensor's name ends with what tells it apart). */
function fit(status: string, item: string, width: number): string {
  const room = width - status.length - 2;
  if (item === "" || room < 8) return status.length <= width ? status : `${status.slice(0, width - 1)}…`;
  return `${status}  ${item.length <= room ? item : `…${item.slice(item.length - room + 1)}`}`;
}

/** 0:07, 12:34, 1:02:03. */
export function formatClock(seconds: number): string {
  const s = Math.floor(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = String(s % 60).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${sec}` : `${m}:${sec}`;
}

/** A duration people read: "4 s", "3 min 20 s", "1 h 05 min", "more than a day". */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds >= 86_400) return "more than a day";
  const s = Math.max(0, Math.ceil(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min${s % 60 === 0 ? "" : ` ${String(s % 60).padStart(2, "0")} s`}`;
  return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")} min`;
}

/** The mode for a command: off with --quiet, a status line on a terminal, else one line per step. */
export function progressMode(quiet: boolean, stream: ProgressStream = process.stderr): ProgressMode {
  if (quiet) return "off";
  const forced = process.env.B158_PROGRESS;
  if (forced === "tty" || forced === "lines" || forced === "off") return forced;
  return stream.isTTY === true ? "tty" : "lines";
}

/** The per-tensor log line, as llama-quantize prints it: `blk.0.attn_q.weight [2560, 2560] bf16 -> i2_s  12.5 MiB -> 1.6 MiB`. */
export function tensorLine(name: string, shape: readonly number[], from: string, to: string, fromBytes: number | undefined, toBytes: number): string {
  const sizes = fromBytes === undefined ? formatBytes(toBytes) : `${formatBytes(fromBytes)} -> ${formatBytes(toBytes)}`;
  return `${name} ${formatShape(shape)} ${from.toLowerCase()}${from === "" ? "" : " "}-> ${to.toLowerCase()}  ${sizes}`;
}

/** eval's two-sided progress (load each model's tensors, run the tokens through it) as phases of one reporter. */
export function evalProgress(progress: Progress): (p: { phase: "load" | "run"; side: string; done: number; total: number }) => void {
  let current = "";
  return (p) => {
    const key = `${p.phase} ${p.side}`;
    if (key !== current) {
      current = key;
      progress.phase(p.phase === "load" ? `loading the ${p.side} model` : `running ${p.total} tokens through the ${p.side} model`, { total: p.total, unit: p.phase === "load" ? "tensors" : "tokens" });
    }
    progress.update({ done: p.done });
  };
}

/**
 * A Hub download (pull, or a hf:// source read in full) as one phase: a line per finished file, a
 * note for each resumed file, and a rate that leaves out bytes already in the cache.
 */
export function downloadProgress(progress: Progress, what: string): (p: { file: string; fileBytes: number; fileSize: number; doneBytes: number; totalBytes: number }) => void {
  const seen = new Map<string, "new" | "resumed" | "cached">();
  const finished = new Set<string>();
  let skipped = 0;
  return (p) => {
    if (seen.size === 0) progress.phase(`downloading ${what}`, { total: p.totalBytes, unit: "bytes" });
    if (!seen.has(p.file)) {
      // bytes already in the cache (or of a partial download) arrive at once: they are not the download rate
      const state = p.fileBytes === p.fileSize && p.fileSize > 0 ? "cached" : p.fileBytes > 0 ? "resumed" : "new";
      seen.set(p.file, state);
      if (state !== "new") skipped += p.fileBytes;
      if (state === "resumed") progress.note(`resuming ${p.file} at ${formatBytes(p.fileBytes)} of ${formatBytes(p.fileSize)}`);
    }
    const done = p.fileBytes === p.fileSize && !finished.has(p.file);
    if (done) finished.add(p.file);
    const line = `${p.file}  ${formatBytes(p.fileSize)}${seen.get(p.file) === "cached" ? "  (already in the cache)" : ""}`;
    progress.update({ done: p.doneBytes, skipped, item: p.file, ...(done ? { line } : {}) });
  };
}
